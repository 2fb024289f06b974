//! Framing throughput: fragment parsing + defragmentation + message header decode, against a
//! plain copy of the same bytes.
//!
//! Input: `$RPS_BENCH_DATA/psrp_1000.frag` with its `.idx` of chunk lengths (see
//! `shared/bench/README.md`) when present; otherwise a stream of the same shape made here:
//! 1,000 PIPELINE_OUTPUT messages of about 7 KB, fragmented into 32 KiB chunks.

use std::hint::black_box;
use std::path::PathBuf;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rps_psrp::fragment::{Assembled, Defragmenter, OutgoingQueue};
use rps_psrp::message::{Destination, MessageHeader, MessageType, RawMessage};
use uuid::Uuid;

fn load_chunks() -> Option<Vec<Bytes>> {
    let dir = std::env::var_os("RPS_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench"));
    let data = std::fs::read(dir.join("psrp_1000.frag")).ok()?;
    let idx = std::fs::read_to_string(dir.join("psrp_1000.idx")).ok()?;
    let data = Bytes::from(data);
    let mut chunks = Vec::new();
    let mut at = 0usize;
    for len in idx
        .split_whitespace()
        .filter_map(|l| l.parse::<usize>().ok())
    {
        chunks.push(data.slice(at..at + len));
        at += len;
    }
    Some(chunks)
}

fn generate_chunks(budget: usize) -> Vec<Bytes> {
    let mut q = OutgoingQueue::new(1);
    for i in 0..1000u32 {
        let mut msg = Vec::new();
        MessageHeader {
            destination: Destination::Client,
            message_type: MessageType::PipelineOutput,
            rpid: Uuid::from_u128(0x8e6b_1a57_3a44_4b3c_9c1e_0d7f_2b6a_9c01),
            pid: Uuid::from_u128(0x2f1c_9d4e_7b58_4e1a_a3d2_6c0b_9e8f_7a12),
        }
        .write(&mut msg);
        msg.extend_from_slice(
            b"<Obj RefId=\"0\"><TN RefId=\"0\"><T>Deserialized.Mailbox</T></TN><Props>",
        );
        while msg.len() < 7000 + (i as usize % 500) {
            msg.extend_from_slice(format!("<S N=\"P{}\">value {i}</S>", msg.len()).as_bytes());
        }
        msg.extend_from_slice(b"</Props></Obj>");
        q.push(Bytes::from(msg));
    }
    let mut chunks = Vec::new();
    while let Ok(Some(c)) = q.take(budget) {
        chunks.push(Bytes::from(c));
    }
    chunks
}

fn framing(c: &mut Criterion) {
    let chunks = load_chunks().unwrap_or_else(|| generate_chunks(32 * 1024));
    bench_chunks(c, "framing", &chunks);
    // Every message split over several 1 KiB fragments: the copying path.
    bench_chunks(c, "framing_1k_fragments", &generate_chunks(1024));
}

fn bench_chunks(c: &mut Criterion, group: &str, chunks: &[Bytes]) {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(total as u64));

    g.bench_function("memcpy", |b| {
        let mut dst = vec![0u8; total];
        b.iter(|| {
            let mut at = 0;
            for ch in chunks {
                dst[at..at + ch.len()].copy_from_slice(ch);
                at += ch.len();
            }
            black_box(&dst);
        })
    });

    g.bench_function("defragment_and_decode_header", |b| {
        let mut done: Vec<Assembled> = Vec::with_capacity(1024);
        b.iter(|| {
            let mut d = Defragmenter::default();
            let mut count = 0usize;
            for ch in chunks {
                d.feed(ch.clone(), &mut done).expect("fragments");
                for m in done.drain(..) {
                    let raw = RawMessage::decode(m.data).expect("header");
                    count += raw.data.len();
                }
            }
            black_box(count);
        })
    });
    g.finish();
}

criterion_group!(benches, framing);
criterion_main!(benches);
