//! ReceiveResponse decode throughput: 40 streams of 32 KiB each.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rps_wsman::{Body, Envelope, Header, ReceiveResponse, Stream, ns};
use std::hint::black_box;

fn envelope() -> Vec<u8> {
    let streams = (0..40u8)
        .map(|i| Stream {
            name: ns::stream::STDOUT.to_owned(),
            command_id: Some("F91BD61F-CEC7-47A3-8CE3-DE7EB7AA5773".to_owned()),
            end: false,
            data: (0..32 * 1024).map(|j| (j as u8) ^ i).collect(),
        })
        .collect();
    let h = Header {
        action: Some(ns::action::RECEIVE_RESPONSE.to_owned()),
        ..Header::default()
    };
    Envelope::new(
        h,
        Body::ReceiveResponse(ReceiveResponse {
            streams,
            command_state: None,
            extra: Vec::new(),
        }),
    )
    .encode()
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let bytes = envelope();
    let mut g = c.benchmark_group("receive_response");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("decode_40x32k", |b| {
        b.iter(|| {
            let env = Envelope::decode(black_box(&bytes)).expect("decodes");
            black_box(env.streams().map(|s| s.data.len()).sum::<usize>())
        })
    });
    // Reference point: only the base64 work the decoder cannot avoid.
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    let payloads: Vec<&str> = text
        .split("\">")
        .skip(1)
        .filter_map(|p| p.split_once('<').map(|(b64, _)| b64))
        .filter(|p| p.len() > 1000)
        .collect();
    assert_eq!(payloads.len(), 40);
    g.bench_function("base64_only_40x32k", |b| {
        use base64::Engine as _;
        b.iter(|| {
            let mut n = 0;
            for p in &payloads {
                n += base64::engine::general_purpose::STANDARD
                    .decode(black_box(p))
                    .expect("b64")
                    .len();
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
