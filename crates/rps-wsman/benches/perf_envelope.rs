//! ReceiveResponse envelope decode over a whole output stream: the fragment chunks of the
//! mailbox workload (`$RPS_BENCH_DATA/psrp_1000.frag` + `.idx` from
//! `shared/bench/gen_workload.py`, else 322 chunks of 32 KiB of pseudo-random bytes), ten
//! `<rsp:Stream Name="stdout">` elements per envelope (about 440 KB of XML, what a 512 KB
//! MaxEnvelopeSize carries), next to the base64 decoding it cannot avoid.
//!
//! Before timing, the decoded streams are checked to be the chunks, byte for byte, in order,
//! so `cargo bench -p rps-wsman --bench perf_envelope -- --test` is a correctness test.

use std::hint::black_box;
use std::path::PathBuf;

use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rps_wsman::{Body, CommandState, Envelope, Header, ReceiveResponse, Stream, ns};

const COMMAND_ID: &str = "2F1C9D4E-7B58-4E1A-A3D2-6C0B9E8F7A12";
const STREAMS_PER_ENVELOPE: usize = 10;

fn chunks() -> (Vec<Vec<u8>>, String) {
    if let Some(dir) = std::env::var_os("RPS_BENCH_DATA").map(PathBuf::from) {
        let frag = std::fs::read(dir.join("psrp_1000.frag"));
        let idx = std::fs::read_to_string(dir.join("psrp_1000.idx"));
        if let (Ok(frag), Ok(idx)) = (frag, idx) {
            let mut out = Vec::new();
            let mut at = 0;
            for len in idx
                .split_whitespace()
                .filter_map(|l| l.parse::<usize>().ok())
            {
                out.push(frag[at..at + len].to_vec());
                at += len;
            }
            assert_eq!(at, frag.len(), ".idx covers the stream");
            return (out, dir.join("psrp_1000.frag").display().to_string());
        }
    }
    // xorshift: incompressible, reproducible.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let out = (0..322)
        .map(|_| {
            (0..32_768)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    (out, "synthetic (322 x 32 KiB)".into())
}

fn envelopes(chunks: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let groups: Vec<&[Vec<u8>]> = chunks.chunks(STREAMS_PER_ENVELOPE).collect();
    let last = groups.len().saturating_sub(1);
    groups
        .into_iter()
        .enumerate()
        .map(|(i, group)| {
            let streams = group
                .iter()
                .map(|data| Stream {
                    name: ns::stream::STDOUT.to_owned(),
                    command_id: Some(COMMAND_ID.to_owned()),
                    end: false,
                    data: data.clone(),
                })
                .collect();
            let header = Header {
                action: Some(ns::action::RECEIVE_RESPONSE.to_owned()),
                ..Header::default()
            };
            let command_state = (i == last).then(|| CommandState {
                command_id: Some(COMMAND_ID.to_owned()),
                state: ns::command_state::DONE.to_owned(),
                exit_code: None,
            });
            Envelope::new(
                header,
                Body::ReceiveResponse(ReceiveResponse {
                    streams,
                    command_state,
                    extra: Vec::new(),
                }),
            )
            .encode()
            .into_bytes()
        })
        .collect()
}

fn decode_all(envs: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for e in envs {
        let env = Envelope::decode(e).expect("envelope decodes");
        n += env.streams().map(|s| s.data.len()).sum::<usize>();
    }
    n
}

fn bench(c: &mut Criterion) {
    let (chunks, source) = chunks();
    let envs = envelopes(&chunks);
    let total: usize = envs.iter().map(Vec::len).sum();

    // The decoded streams are the chunks, in order, with their names and command ids.
    let mut got: Vec<Vec<u8>> = Vec::new();
    for (i, e) in envs.iter().enumerate() {
        let env = Envelope::decode(e).expect("envelope decodes");
        assert_eq!(
            env.header.action.as_deref(),
            Some(ns::action::RECEIVE_RESPONSE)
        );
        let Body::ReceiveResponse(r) = &env.body else {
            panic!("envelope {i} is not a ReceiveResponse");
        };
        assert_eq!(r.command_state.is_some(), i == envs.len() - 1);
        for s in &r.streams {
            assert_eq!(s.name, ns::stream::STDOUT);
            assert_eq!(s.command_id.as_deref(), Some(COMMAND_ID));
            got.push(s.data.clone());
        }
    }
    assert!(got == chunks, "decoded streams differ from the chunks");
    eprintln!(
        "perf_envelope: {} envelopes, {total} bytes of XML, {} stream bytes checked ({source})",
        envs.len(),
        chunks.iter().map(Vec::len).sum::<usize>()
    );

    // The base64 texts alone, for the floor.
    let texts: Vec<String> = chunks
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
        .collect();

    let mut g = c.benchmark_group("receive_response");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("decode_stream", |b| b.iter(|| decode_all(black_box(&envs))));
    g.bench_function("base64_only", |b| {
        b.iter(|| {
            let mut n = 0;
            for t in &texts {
                n += base64::engine::general_purpose::STANDARD
                    .decode(black_box(t))
                    .expect("base64")
                    .len();
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
