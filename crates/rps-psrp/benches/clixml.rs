//! CLIXML decode/encode throughput on a mailbox-like workload, next to quick-xml's bare
//! tokenizer on the same bytes (the ceiling).
//!
//! Uses `$RPS_BENCH_DATA/mailboxes_1000.clixml` (from `shared/bench/gen_workload.py`) when
//! present, else a synthetic document of 1000 deserialized-mailbox objects of 120 properties
//! each (117 adapted, 3 extended), built here.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rps_psrp::clixml::{self, ListKind, Object, ObjectBase, Property, Value};

const N: usize = 1000;

fn enum_value(type_names: &Arc<[String]>, text: &str, n: i32) -> Value {
    Value::object(Object {
        type_names: Some(Arc::clone(type_names)),
        to_string: Some(text.into()),
        base: ObjectBase::Primitive(Value::I32(n)),
        ..Object::default()
    })
}

fn tn(names: &[&str]) -> Arc<[String]> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A synthetic deserialized Exchange mailbox, about 7 KB of CLIXML.
fn mailbox(i: usize, shared: &Shared) -> Value {
    let mut props = Vec::with_capacity(117);
    let p = |name: &str, value: Value| Property {
        name: name.into(),
        value,
    };
    let alias = format!("user{i:05}");
    props.push(p("Alias", Value::Str(alias.clone())));
    props.push(p(
        "DisplayName",
        Value::Str(format!("Müller, Jürgen <{i}> & Co")),
    ));
    props.push(p(
        "Notes",
        Value::Str(format!("line one\nline two for {alias}\r\nend_x0041_")),
    ));
    props.push(p(
        "Guid",
        Value::Guid(uuid::Uuid::from_u128(
            0x1234_5678_9abc_def0_u128 + i as u128,
        )),
    ));
    props.push(p(
        "WhenCreated",
        Value::DateTime("2019-03-14T09:26:53+01:00".into()),
    ));
    props.push(p(
        "WhenChanged",
        Value::DateTime(format!("2024-11-{:02}T17:02:11.1234567Z", i % 28 + 1)),
    ));
    props.push(p("RetainDeletedItemsFor", Value::Duration("P14D".into())));
    props.push(p(
        "RecipientTypeDetails",
        Value::Object(Arc::clone(&shared.user_mailbox)),
    ));
    props.push(p(
        "RecipientType",
        enum_value(&shared.recipient_type, "UserMailbox", 1),
    ));
    props.push(p(
        "IssueWarningQuota",
        Value::I64(49_392_123_904 + i as i64),
    ));
    props.push(p("ProhibitSendQuota", Value::I64(53_687_091_200)));
    props.push(p(
        "MaxSendSize",
        Value::Str("35 MB (36,700,160 bytes)".into()),
    ));
    props.push(p(
        "HiddenFromAddressListsEnabled",
        Value::Bool(i.is_multiple_of(7)),
    ));
    props.push(p("LitigationHoldEnabled", Value::Bool(false)));
    props.push(p("ArchiveGuid", Value::Guid(uuid::Uuid::nil())));
    props.push(p("ForwardingAddress", Value::Nil));
    props.push(p("ForwardingSmtpAddress", Value::Nil));
    let addresses: Vec<Value> = (0..6)
        .map(|k| Value::Str(format!("smtp:{alias}.{k}@contoso{k}.example.com")))
        .collect();
    props.push(p(
        "EmailAddresses",
        Value::object(Object {
            type_names: Some(Arc::clone(&shared.list_tn)),
            base: ObjectBase::List(ListKind::List, addresses),
            ..Object::default()
        }),
    ));
    let db = Value::object(Object {
        type_names: Some(Arc::clone(&shared.db_tn)),
        to_string: Some(format!("DB{:02}", i % 12)),
        adapted: vec![
            Property {
                name: "Name".into(),
                value: Value::Str(format!("DB{:02}", i % 12)),
            },
            Property {
                name: "ObjectGuid".into(),
                value: Value::Guid(uuid::Uuid::from_u128(i as u128 % 12)),
            },
        ],
        ..Object::default()
    });
    props.push(p("Database", db.clone()));
    props.push(p("ArchiveDatabase", db));
    let mut k = 0;
    while props.len() < 117 {
        let name = format!("CustomAttribute{k}");
        let v = match k % 6 {
            0 => Value::Str(format!("value {k} of {alias}")),
            1 => Value::I32(k * 1000 + i as i32),
            2 => Value::Bool(k % 4 == 1),
            3 => Value::Nil,
            4 => Value::Str(String::new()),
            _ => Value::Str(format!("CN={alias},OU=Users{k},DC=contoso,DC=com")),
        };
        props.push(p(&name, v));
        k += 1;
    }
    Value::object(Object {
        type_names: Some(Arc::clone(&shared.mailbox_tn)),
        to_string: Some(alias.clone()),
        adapted: props,
        extended: vec![
            Property {
                name: "PSComputerName".into(),
                value: Value::Str("ex01.contoso.com".into()),
            },
            Property {
                name: "RunspaceId".into(),
                value: Value::Guid(uuid::Uuid::from_u128(77)),
            },
            Property {
                name: "PSShowComputerName".into(),
                value: Value::Bool(false),
            },
        ],
        ..Object::default()
    })
}

struct Shared {
    mailbox_tn: Arc<[String]>,
    list_tn: Arc<[String]>,
    db_tn: Arc<[String]>,
    recipient_type: Arc<[String]>,
    user_mailbox: Arc<Object>,
}

fn workload() -> Vec<u8> {
    if let Some(dir) = std::env::var_os("RPS_BENCH_DATA") {
        let path = std::path::Path::new(&dir).join("mailboxes_1000.clixml");
        if let Ok(bytes) = std::fs::read(&path) {
            eprintln!("using {}", path.display());
            return bytes;
        }
    }
    let details = tn(&[
        "Deserialized.Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails",
        "Deserialized.System.Enum",
        "Deserialized.System.ValueType",
        "Deserialized.System.Object",
    ]);
    let shared = Shared {
        mailbox_tn: tn(&[
            "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox",
            "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledOrgPerson",
            "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledRecipient",
            "Deserialized.Microsoft.Exchange.Data.Directory.ADPresentationObject",
            "Deserialized.Microsoft.Exchange.Data.ConfigurableObject",
            "Deserialized.System.Object",
        ]),
        list_tn: tn(&[
            "Deserialized.Microsoft.Exchange.Data.ProxyAddressCollection",
            "Deserialized.System.Object",
        ]),
        db_tn: tn(&[
            "Deserialized.Microsoft.Exchange.Data.Directory.ADObjectId",
            "Deserialized.System.Object",
        ]),
        recipient_type: tn(&[
            "Deserialized.Microsoft.Exchange.Data.Directory.Recipient.RecipientType",
            "Deserialized.System.Enum",
            "Deserialized.System.ValueType",
            "Deserialized.System.Object",
        ]),
        user_mailbox: Arc::new(Object {
            type_names: Some(details),
            to_string: Some("UserMailbox".into()),
            base: ObjectBase::Primitive(Value::I64(1)),
            ..Object::default()
        }),
    };
    let values: Vec<Value> = (0..N).map(|i| mailbox(i, &shared)).collect();
    clixml::write_document(&values).into_bytes()
}

fn bench(c: &mut Criterion) {
    let bytes = workload();
    let values = clixml::document_from_slice(&bytes).expect("workload decodes");
    let n = values.len() as u64;
    eprintln!(
        "workload: {} bytes, {} objects, {} bytes/object",
        bytes.len(),
        n,
        bytes.len() as u64 / n.max(1)
    );

    ratios(&bytes, &values);

    let mut g = c.benchmark_group("clixml");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("tokenize_quick_xml", |b| {
        b.iter(|| {
            let mut r = quick_xml::Reader::from_reader(black_box(&bytes[..]));
            let mut events = 0u64;
            loop {
                match r.read_event() {
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(_) => events += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            events
        })
    });
    // Decoding alone: dropping the values is left out of the timing.
    g.bench_function("decode", |b| {
        b.iter_with_large_drop(|| clixml::document_from_slice(black_box(&bytes)))
    });
    g.bench_function("decode_and_drop", |b| {
        b.iter(|| clixml::document_from_slice(black_box(&bytes)).map(|v| v.len()))
    });
    let mut out = String::with_capacity(bytes.len() + 1024);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            clixml::write_document_into(&mut out, black_box(&values));
            out.len()
        })
    });
    g.finish();
}

fn tokenize(bytes: &[u8]) -> u64 {
    let mut r = quick_xml::Reader::from_reader(bytes);
    let mut events = 0u64;
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => events += 1,
            Err(e) => panic!("{e}"),
        }
    }
    events
}

/// Interleaved best-of-N timings: on a shared, noisy machine the ratio of minimums is more
/// stable than criterion's separate runs.
fn ratios(bytes: &[u8], values: &[Value]) {
    use std::time::{Duration, Instant};
    let rounds: usize = std::env::var("RPS_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let (mut tok, mut dec, mut enc) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut round_ratios = Vec::with_capacity(rounds);
    let mut out = String::with_capacity(bytes.len() + 1024);
    // `RPS_BENCH_ONLY=tokenize|decode|encode` runs just that phase `rounds` times (for
    // `perf stat -e cycles:u`, which a busy machine does not skew the way it skews wall time).
    if let Ok(only) = std::env::var("RPS_BENCH_ONLY") {
        for _ in 0..rounds {
            match only.as_str() {
                "tokenize" => drop(black_box(tokenize(black_box(bytes)))),
                "decode" => drop(black_box(clixml::document_from_slice(black_box(bytes)))),
                _ => {
                    out.clear();
                    clixml::write_document_into(&mut out, black_box(values));
                }
            }
        }
        return;
    }
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(tokenize(black_box(bytes)));
        let t_tok = t.elapsed();
        let t = Instant::now();
        let v = black_box(clixml::document_from_slice(black_box(bytes)));
        let t_dec = t.elapsed();
        drop(v);
        out.clear();
        let t = Instant::now();
        clixml::write_document_into(&mut out, black_box(values));
        enc = enc.min(t.elapsed());
        tok = tok.min(t_tok);
        dec = dec.min(t_dec);
        round_ratios.push(t_tok.as_secs_f64() / t_dec.as_secs_f64());
    }
    round_ratios.sort_by(f64::total_cmp);
    let median = round_ratios[round_ratios.len() / 2];
    let mb = bytes.len() as f64 / 1e6;
    let n = values.len() as f64;
    let rate = |d: Duration| (mb / d.as_secs_f64(), n / d.as_secs_f64());
    let (tm, _) = rate(tok);
    let (dm, dn) = rate(dec);
    let (em, en) = rate(enc);
    eprintln!(
        "best of {rounds}: tokenize {tm:.0} MB/s | decode {dm:.0} MB/s, {dn:.0} objects/s ({:.0}% of tokenizer; median per-round ratio {:.0}%) | encode {em:.0} MB/s, {en:.0} objects/s ({:.0}x psrpcore's 360/s)",
        100.0 * dm / tm,
        100.0 * median,
        en / 360.0
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
