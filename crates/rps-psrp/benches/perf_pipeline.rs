//! The client receive pipeline stage by stage, on the mailbox workload (see
//! `perf_support/mod.rs`; `$RPS_BENCH_DATA` selects the generated files, `$RPS_BENCH_N` the
//! size, default 1000):
//!
//! - `fragments/memcpy`: a copy of the fragment stream (the floor);
//! - `fragments/defrag_message`: fragment decode + defragment + message header decode;
//! - `clixml/tokenize_quick_xml`: quick-xml's bare tokenizer over the `<Objs>` document;
//! - `clixml/decode`: the document to values (one RefId scope);
//! - `clixml/encode`: the values back to a document;
//! - `clixml/receive`: fragments -> messages -> values (each message its own RefId scope);
//! - `json/jsonl`: values to JSON Lines, as `rps -o jsonl` prints them.
//!
//! Every result is checked before anything is timed (object count, type name, 120
//! properties, `CustomAttribute1` of each object, encode/decode round trip), so the quick
//! mode (`cargo bench -p rps-psrp --bench perf_pipeline -- --test`, or `cargo test --benches`)
//! is a correctness test.

#[path = "perf_support/mod.rs"]
mod perf_support;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perf_support::{Workload, check_all};
use rps_psrp::clixml::{self, Value};

/// `$RPS_BENCH_N`, else 1000 when timing (`cargo bench`) and 300 in the quick correctness
/// mode (`cargo test --benches`, which runs unoptimized and without `--bench`).
fn n() -> usize {
    let timing = std::env::args().any(|a| a == "--bench");
    std::env::var("RPS_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if timing { 1000 } else { 300 })
}

/// Checks every stage's output once; returns the decoded values.
fn verify(w: &Workload) -> Vec<Value> {
    let values = clixml::document_from_slice(&w.clixml).expect("document decodes");
    check_all(&values, w.n);

    let msgs = perf_support::defrag_messages(&w.chunks);
    assert_eq!(msgs.len(), w.n, "messages in the fragment stream");
    for m in &msgs {
        assert_eq!(m.header.rpid, perf_support::RPID);
        assert_eq!(m.header.pid, perf_support::PID);
        assert_eq!(
            m.header.message_type,
            rps_psrp::message::MessageType::PipelineOutput
        );
    }
    // Every byte is accounted for: message bytes plus 21 header bytes per fragment.
    let fragments: usize = w
        .chunks
        .iter()
        .map(|c| rps_psrp::fragment::FragmentReader::new(c.clone()).count())
        .sum();
    let message_bytes: usize = msgs.iter().map(|m| m.data.len() + 40).sum();
    assert_eq!(
        message_bytes + 21 * fragments,
        w.frag.len(),
        "byte accounting"
    );

    let received = perf_support::receive(&w.chunks);
    check_all(&received, w.n);

    // Encoding round-trips to the same values.
    let encoded = clixml::write_document(&values);
    let again = clixml::document_from_slice(encoded.as_bytes()).expect("re-decodes");
    assert!(
        again == values,
        "encode/decode round trip changed the values"
    );

    // JSON carries the same properties.
    let mut jsonl = Vec::new();
    perf_support::to_jsonl(&values[..values.len().min(50)], &mut jsonl);
    for (i, line) in jsonl
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let j: serde_json::Value = serde_json::from_slice(line).expect("valid JSON");
        assert_eq!(
            j["CustomAttribute1"],
            serde_json::Value::String(format!("EMP{:06}", 100_000 + i)),
            "JSON of object {i}"
        );
    }
    eprintln!(
        "perf_pipeline: {} objects checked; clixml {} bytes ({}), fragments {} bytes in {} chunks ({}); encode {} byte-identical",
        w.n,
        w.clixml.len(),
        w.clixml_source,
        w.frag.len(),
        w.chunks.len(),
        w.frag_source,
        if encoded.as_bytes() == &w.clixml[..] {
            "is"
        } else {
            "is not"
        }
    );
    values
}

fn bench(c: &mut Criterion) {
    let w = perf_support::load(n());
    let values = verify(&w);

    let mut g = c.benchmark_group("fragments");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(w.frag.len() as u64));
    let mut dst = vec![0u8; w.frag.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&w.frag));
            dst[dst.len() / 2]
        })
    });
    g.bench_function("defrag_message", |b| {
        b.iter_with_large_drop(|| perf_support::defrag_messages(black_box(&w.chunks)))
    });
    g.finish();

    let mut g = c.benchmark_group("clixml");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(w.clixml.len() as u64));
    g.bench_function("tokenize_quick_xml", |b| {
        b.iter(|| perf_support::tokenize(black_box(&w.clixml)))
    });
    g.bench_function("decode", |b| {
        b.iter_with_large_drop(|| clixml::document_from_slice(black_box(&w.clixml)))
    });
    let mut out = String::with_capacity(w.clixml.len() + 1024);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            clixml::write_document_into(&mut out, black_box(&values));
            out.len()
        })
    });
    g.throughput(Throughput::Bytes(w.frag.len() as u64));
    g.bench_function("receive", |b| {
        b.iter_with_large_drop(|| perf_support::receive(black_box(&w.chunks)))
    });
    g.finish();

    let mut g = c.benchmark_group("json");
    g.sample_size(10);
    g.throughput(Throughput::Elements(values.len() as u64));
    let mut buf = Vec::with_capacity(w.clixml.len());
    g.bench_function("jsonl", |b| {
        b.iter(|| {
            buf.clear();
            perf_support::to_jsonl(black_box(&values), &mut buf);
            buf.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
