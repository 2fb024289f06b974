//! rps's side of `bench/compare.sh`: times each receive stage on the workload of
//! `shared/bench/gen_workload.py` (or a synthetic one of the same shape, see
//! `benches/perf_support/mod.rs`) next to the floors it is compared with (a memcpy of the
//! fragment stream, quick-xml's bare tokenizer over the CLIXML), in interleaved rounds so
//! the ratios come from the same moments of a noisy machine.
//!
//! ```text
//! RPS_BENCH_DATA=target/bench-data cargo run --release -p rps-psrp --example perf_compare -- \
//!     --n 1000,10000 --reps 15 --reps-large 5 --json target/bench-results/rps.json
//! ```
//!
//! Prints one line per case and writes `{"results": [{case, n, reps, min_s, median_s,
//! objects, bytes_in, ...}]}`. Every decoded result is checked first (object count, type
//! name, 120 properties, `CustomAttribute1` per object).

#[path = "../benches/perf_support/mod.rs"]
mod perf_support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use rps_psrp::clixml;

struct Case {
    name: &'static str,
    times: Vec<Duration>,
    bytes_in: usize,
    objects: usize,
    note: String,
}

impl Case {
    fn new(name: &'static str, bytes_in: usize, objects: usize, note: String) -> Self {
        Case {
            name,
            times: Vec::new(),
            bytes_in,
            objects,
            note,
        }
    }
}

fn time<T>(case: &mut Case, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = black_box(f());
    case.times.push(t.elapsed());
    out
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ns: Vec<usize> = arg(&args, "--n")
        .unwrap_or_else(|| "1000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("--n takes numbers"))
        .collect();
    let reps: usize = arg(&args, "--reps").map_or(15, |s| s.parse().expect("--reps"));
    let reps_large: usize =
        arg(&args, "--reps-large").map_or(5, |s| s.parse().expect("--reps-large"));
    let json_out = arg(&args, "--json");

    let mut records = Vec::new();
    for n in ns {
        let w = perf_support::load(n);
        let values = clixml::document_from_slice(&w.clixml).expect("document decodes");
        perf_support::check_all(&values, n);
        perf_support::check_all(&perf_support::receive(&w.chunks), n);
        let messages = perf_support::defrag_messages(&w.chunks);
        assert_eq!(messages.len(), n, "messages");
        drop(messages);
        let events = perf_support::tokenize(&w.clixml);
        let mut out = String::with_capacity(w.clixml.len() + 4096);
        clixml::write_document_into(&mut out, &values);
        let encoded_len = out.len();
        let mut json = Vec::with_capacity(w.clixml.len());
        perf_support::to_jsonl(&values, &mut json);
        let json_len = json.len();
        let mut dst = vec![0u8; w.frag.len()];

        let frag_note = format!("{} ({} chunks)", w.frag_source, w.chunks.len());
        let mut memcpy = Case::new("memcpy", w.frag.len(), n, frag_note.clone());
        let mut defrag = Case::new("defrag", w.frag.len(), n, frag_note.clone());
        let mut tokenize = Case::new(
            "tokenize",
            w.clixml.len(),
            n,
            format!("{} ({events} events)", w.clixml_source),
        );
        let mut decode = Case::new(
            "deserialize_clixml",
            w.clixml.len(),
            n,
            w.clixml_source.clone(),
        );
        let mut encode = Case::new(
            "serialize_clixml",
            w.clixml.len(),
            n,
            format!("{encoded_len} bytes out"),
        );
        let mut receive = Case::new("receive", w.frag.len(), n, frag_note);
        let mut jsonl = Case::new("jsonl", w.clixml.len(), n, format!("{json_len} bytes out"));

        let rounds = if n <= 1000 { reps } else { reps_large };
        for _ in 0..rounds {
            time(&mut memcpy, || {
                dst.copy_from_slice(black_box(&w.frag));
                dst[dst.len() / 2]
            });
            let m = time(&mut defrag, || {
                perf_support::defrag_messages(black_box(&w.chunks))
            });
            drop(m);
            time(&mut tokenize, || {
                perf_support::tokenize(black_box(&w.clixml))
            });
            let v = time(&mut decode, || {
                clixml::document_from_slice(black_box(&w.clixml)).expect("decodes")
            });
            drop(v);
            out.clear();
            time(&mut encode, || {
                clixml::write_document_into(&mut out, black_box(&values));
                out.len()
            });
            let v = time(&mut receive, || perf_support::receive(black_box(&w.chunks)));
            drop(v);
            json.clear();
            time(&mut jsonl, || {
                perf_support::to_jsonl(black_box(&values), &mut json);
                json.len()
            });
        }
        for case in [memcpy, defrag, tokenize, decode, encode, receive, jsonl] {
            let mut t: Vec<f64> = case.times.iter().map(Duration::as_secs_f64).collect();
            t.sort_by(f64::total_cmp);
            let (min, median) = (t[0], t[t.len() / 2]);
            println!(
                "rps {:<20} N={:<6} min {:>9.3} ms  median {:>9.3} ms  {:>10.0} objects/s  {:>8.1} MB/s",
                case.name,
                n,
                min * 1e3,
                median * 1e3,
                case.objects as f64 / min,
                case.bytes_in as f64 / min / 1e6
            );
            records.push(serde_json::json!({
                "case": case.name,
                "n": n,
                "reps": t.len(),
                "min_s": min,
                "median_s": median,
                "times_s": t,
                "objects": case.objects,
                "bytes_in": case.bytes_in,
                "objects_per_s_best": case.objects as f64 / min,
                "objects_per_s_median": case.objects as f64 / median,
                "mb_per_s_best": case.bytes_in as f64 / min / 1e6,
                "note": case.note,
            }));
        }
    }
    println!("rps peak RSS {} MiB", peak_rss_kib() / 1024);
    if let Some(path) = json_out {
        let doc =
            serde_json::json!({"label": "rps", "peak_rss_kib": peak_rss_kib(), "results": records});
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&doc).expect("json") + "\n",
        )
        .unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
        println!("written {path}");
    }
}
