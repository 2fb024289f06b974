//! The workload shared by the `perf_` benches and the `perf_compare` example.
//!
//! With `$RPS_BENCH_DATA` pointing at the output of `shared/bench/gen_workload.py`, the real
//! files are read (`mailboxes_N.clixml`, `psrp_N.frag` + `.idx`); otherwise (or for a size
//! that was not generated) a workload of the same shape is built here: deserialized Exchange
//! mailboxes of 120 properties (117 adapted, 3 extended), about 7 KB of CLIXML each, with
//! enums, lists, a shared nested object, markup, non-ASCII and `_x000A_` escapes; each one
//! also as its own PIPELINE_OUTPUT message, fragmented into 32 KiB chunks.
//!
//! Both workloads carry `CustomAttribute1 = "EMP{100000 + i:06}"` on object `i`, which is
//! what [`check_object`] verifies, with the property count and the type name.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use rps_psrp::clixml::{self, ListKind, Object, ObjectBase, Property, Value};
use rps_psrp::fragment::{Assembled, DefragLimits, Defragmenter, OutgoingQueue};
use rps_psrp::message::{Destination, MessageHeader, MessageType, RawMessage};
use uuid::Uuid;

/// The runspace pool id of the generated streams.
pub const RPID: Uuid = Uuid::from_u128(0x8e6b_1a57_3a44_4b3c_9c1e_0d7f_2b6a_9c01);
/// The pipeline id of the generated streams.
pub const PID: Uuid = Uuid::from_u128(0x2f1c_9d4e_7b58_4e1a_a3d2_6c0b_9e8f_7a12);
/// Bytes per WS-Man stream chunk, fragment headers included.
pub const CHUNK: usize = 32_768;
/// The first type name of every mailbox.
pub const MAILBOX_TN: &str = "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox";

/// One workload size.
pub struct Workload {
    /// Objects.
    pub n: usize,
    /// An `<Objs>` document of the `n` mailboxes.
    pub clixml: Vec<u8>,
    /// Where `clixml` came from.
    pub clixml_source: String,
    /// The fragment stream: every mailbox in its own PIPELINE_OUTPUT message.
    pub frag: Bytes,
    /// `frag` cut into its WS-Man chunks (slices of `frag`).
    pub chunks: Vec<Bytes>,
    /// Where `frag` came from.
    pub frag_source: String,
}

/// `$RPS_BENCH_DATA`, if set.
pub fn data_dir() -> Option<PathBuf> {
    std::env::var_os("RPS_BENCH_DATA").map(PathBuf::from)
}

/// The workload of `n` objects: generated files where present, else synthetic.
pub fn load(n: usize) -> Workload {
    let dir = data_dir();
    let file = |name: String| dir.as_ref().map(|d| d.join(name));
    let (clixml, clixml_source) = match file(format!("mailboxes_{n}.clixml"))
        .and_then(|p| std::fs::read(&p).ok().map(|b| (b, p.display().to_string())))
    {
        Some(found) => found,
        None => (synthetic_clixml(n), format!("synthetic ({n} mailboxes)")),
    };
    let from_files = file(format!("psrp_{n}.frag")).and_then(|p| {
        let data = std::fs::read(&p).ok()?;
        let idx = std::fs::read_to_string(p.with_extension("idx")).ok()?;
        Some((data, idx, p.display().to_string()))
    });
    let (frag, chunks, frag_source) = match from_files {
        Some((data, idx, src)) => {
            let frag = Bytes::from(data);
            let mut chunks = Vec::new();
            let mut at = 0usize;
            for len in idx
                .split_whitespace()
                .filter_map(|l| l.parse::<usize>().ok())
            {
                chunks.push(frag.slice(at..at + len));
                at += len;
            }
            assert_eq!(at, frag.len(), "{src}: .idx does not cover the stream");
            (frag, chunks, src)
        }
        None => {
            let values = clixml::document_from_slice(&clixml).expect("workload decodes");
            let (frag, chunks) = fragment_stream(&values);
            (frag, chunks, format!("made here from {clixml_source}"))
        }
    };
    Workload {
        n,
        clixml,
        clixml_source,
        frag,
        chunks,
        frag_source,
    }
}

/// Each value in its own PIPELINE_OUTPUT message (own RefId scope), fragmented into
/// [`CHUNK`]-byte chunks as a server sends them: the whole stream and its chunks.
pub fn fragment_stream(values: &[Value]) -> (Bytes, Vec<Bytes>) {
    let mut q = OutgoingQueue::new(1);
    for v in values {
        let mut msg = Vec::with_capacity(8 * 1024);
        MessageHeader {
            destination: Destination::Client,
            message_type: MessageType::PipelineOutput,
            rpid: RPID,
            pid: PID,
        }
        .write(&mut msg);
        clixml::write_value(&mut msg, v);
        q.push(Bytes::from(msg));
    }
    let mut all = Vec::new();
    let mut lens = Vec::new();
    while let Some(c) = q.take(CHUNK).expect("fragments") {
        lens.push(c.len());
        all.extend_from_slice(&c);
    }
    let frag = Bytes::from(all);
    let mut chunks = Vec::with_capacity(lens.len());
    let mut at = 0;
    for len in lens {
        chunks.push(frag.slice(at..at + len));
        at += len;
    }
    (frag, chunks)
}

/// Fragments -> messages -> header decode, the first receive stage. Returns the messages.
pub fn defrag_messages(chunks: &[Bytes]) -> Vec<RawMessage> {
    let mut d = Defragmenter::new(DefragLimits::default());
    let mut assembled: Vec<Assembled> = Vec::with_capacity(64);
    let mut out = Vec::with_capacity(chunks.len() * 4);
    for c in chunks {
        d.feed(c.clone(), &mut assembled).expect("fragments decode");
        for a in assembled.drain(..) {
            out.push(RawMessage::decode(a.data).expect("message decodes"));
        }
    }
    out
}

/// The complete receive path below the transport: fragments -> messages -> CLIXML values,
/// each message in its own RefId scope.
pub fn receive(chunks: &[Bytes]) -> Vec<Value> {
    let mut d = Defragmenter::new(DefragLimits::default());
    let mut assembled: Vec<Assembled> = Vec::with_capacity(64);
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c.clone(), &mut assembled).expect("fragments decode");
        for a in assembled.drain(..) {
            let m = RawMessage::decode(a.data).expect("message decodes");
            out.push(clixml::from_slice(m.body()).expect("payload decodes"));
        }
    }
    out
}

/// The values as JSON Lines (what `rps ... -o jsonl` writes), into `out`.
pub fn to_jsonl(values: &[Value], out: &mut Vec<u8>) {
    for v in values {
        serde_json::to_writer(&mut *out, &clixml::json::Json::new(v)).expect("json");
        out.push(b'\n');
    }
}

/// quick-xml's bare tokenizer over the bytes: the number of events.
pub fn tokenize(bytes: &[u8]) -> u64 {
    let mut r = quick_xml::Reader::from_reader(bytes);
    let mut events = 0u64;
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => events += 1,
            Err(e) => panic!("tokenizer: {e}"),
        }
    }
    events
}

/// What object `i` of either workload must look like after decoding.
pub fn check_object(i: usize, v: &Value) -> Result<(), String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("object {i} is not an <Obj>"))?;
    if o.type_name() != Some(MAILBOX_TN) {
        return Err(format!("object {i}: type name {:?}", o.type_name()));
    }
    let count = o.properties().count();
    if count != 120 {
        return Err(format!("object {i}: {count} properties, expected 120"));
    }
    let want = format!("EMP{:06}", 100_000 + i);
    match o.get("CustomAttribute1").and_then(Value::as_str) {
        Some(got) if got == want => Ok(()),
        got => Err(format!(
            "object {i}: CustomAttribute1 {got:?}, expected {want:?}"
        )),
    }
}

/// Checks every decoded object; panics with the first mismatch.
pub fn check_all(values: &[Value], n: usize) {
    assert_eq!(values.len(), n, "decoded object count");
    for (i, v) in values.iter().enumerate() {
        if let Err(e) = check_object(i, v) {
            panic!("{e}");
        }
    }
}

// ------------------------------------------------------------------ synthetic workload ---

fn tn(names: &[&str]) -> Arc<[String]> {
    names.iter().map(|s| s.to_string()).collect()
}

struct Shared {
    mailbox: Arc<[String]>,
    proxies: Arc<[String]>,
    strings: Arc<[String]>,
    adobjectid: Arc<[String]>,
    recipient_type: Arc<[String]>,
    details: Arc<[String]>,
}

fn enum_value(type_names: &Arc<[String]>, text: &str, n: i32) -> Value {
    Value::object(Object {
        type_names: Some(Arc::clone(type_names)),
        to_string: Some(text.into()),
        base: ObjectBase::Primitive(Value::I32(n)),
        ..Object::default()
    })
}

fn list(type_names: &Arc<[String]>, items: Vec<Value>) -> Value {
    Value::object(Object {
        type_names: Some(Arc::clone(type_names)),
        base: ObjectBase::List(ListKind::List, items),
        ..Object::default()
    })
}

const DEPTS: [&str; 5] = ["Finance", "R&D", "Sales & Marketing", "IT <Ops>", "Legal"];
const FIRST: [&str; 6] = ["John", "Åsa", "José", "Zoë", "Søren", "Chloé"];

fn mailbox(i: usize, s: &Shared) -> Value {
    let first = FIRST[i % FIRST.len()];
    let dept = DEPTS[i % DEPTS.len()];
    let alias = format!("{}.user{i:06}", first.to_lowercase());
    let smtp = format!("{alias}@contoso.com");
    let display = format!("{first} O'Brien-Müller ({dept})");
    let db = Value::object(Object {
        type_names: Some(Arc::clone(&s.adobjectid)),
        to_string: Some(format!("DB{:02}", i % 12 + 1)),
        adapted: vec![
            Property {
                name: "Name".into(),
                value: Value::Str(format!("DB{:02}", i % 12 + 1)),
            },
            Property {
                name: "ObjectGuid".into(),
                value: Value::Guid(Uuid::from_u128(0xdb00 + (i % 12) as u128)),
            },
            Property {
                name: "DistinguishedName".into(),
                value: Value::Str(format!(
                    "CN=DB{:02},CN=Databases,CN=Exchange Administrative Group (FYDIBOHF23SPDLT),CN=Contoso,DC=contoso,DC=com",
                    i % 12 + 1
                )),
            },
        ],
        ..Object::default()
    });
    let mut props: Vec<Property> = Vec::with_capacity(117);
    let mut p = |name: &str, value: Value| {
        props.push(Property {
            name: name.into(),
            value,
        })
    };
    p("Alias", Value::Str(alias.clone()));
    p("DisplayName", Value::Str(display.clone()));
    p(
        "CustomAttribute1",
        Value::Str(format!("EMP{:06}", 100_000 + i)),
    );
    p("CustomAttribute2", Value::Str(dept.into()));
    p("PrimarySmtpAddress", Value::Str(smtp.clone()));
    p("UserPrincipalName", Value::Str(smtp.clone()));
    p(
        "Notes",
        Value::Str(format!(
            "line one\nline two for <{alias}> & co\r\n\tend_x000A_"
        )),
    );
    p(
        "Guid",
        Value::Guid(Uuid::from_u128(0x1234_5678_9abc_def0 + i as u128)),
    );
    p(
        "ExchangeGuid",
        Value::Guid(Uuid::from_u128(0xfeed_0000 + i as u128)),
    );
    p("ArchiveGuid", Value::Guid(Uuid::nil()));
    p(
        "WhenCreated",
        Value::DateTime("2019-03-14T09:26:53+10:00".into()),
    );
    p(
        "WhenChanged",
        Value::DateTime(format!("2024-11-{:02}T17:02:11.1234567Z", i % 28 + 1)),
    );
    p("RetainDeletedItemsFor", Value::Duration("P14D".into()));
    p("AuditLogAgeLimit", Value::Duration("P90D".into()));
    p(
        "RecipientType",
        enum_value(&s.recipient_type, "UserMailbox", 1),
    );
    p(
        "RecipientTypeDetails",
        enum_value(&s.details, "UserMailbox", 1),
    );
    p(
        "ProhibitSendQuota",
        Value::Str("99 GB (106,300,440,576 bytes)".into()),
    );
    p("MaxSendSize", Value::Str("35 MB (36,700,160 bytes)".into()));
    p(
        "ResourceCapacity",
        if i.is_multiple_of(9) {
            Value::I32(12)
        } else {
            Value::Nil
        },
    );
    p(
        "HiddenFromAddressListsEnabled",
        Value::Bool(i.is_multiple_of(20)),
    );
    p("Database", db.clone());
    p(
        "ArchiveDatabase",
        if i.is_multiple_of(4) { db } else { Value::Nil },
    );
    let proxies: Vec<Value> = (0..5)
        .map(|k| Value::Str(format!("smtp:{alias}.{k}@contoso{k}.mail.onmicrosoft.com")))
        .chain(std::iter::once(Value::Str(format!("SMTP:{smtp}"))))
        .collect();
    p("EmailAddresses", list(&s.proxies, proxies));
    p(
        "AddressListMembership",
        list(
            &s.strings,
            vec![
                Value::Str("\\Default Global Address List".into()),
                Value::Str(format!("\\{dept} Users")),
            ],
        ),
    );
    p("InPlaceHolds", list(&s.strings, Vec::new()));
    p("IssueWarningQuota", Value::I64(53_150_220_288 + i as i64));
    let mut k = 0;
    while props.len() < 117 {
        let name = format!("ExtensionAttribute{k}");
        let v = match k % 7 {
            0 => Value::Str(format!("value {k} of {alias}")),
            1 => Value::I32(k * 1000 + i as i32),
            2 => Value::Bool(k % 4 == 1),
            3 => Value::Nil,
            4 => Value::Str(String::new()),
            5 => Value::I64(1 << 40 | k as i64),
            _ => Value::Str(format!("CN={alias},OU=Users {k},DC=contoso,DC=com")),
        };
        props.push(Property { name, value: v });
        k += 1;
    }
    Value::object(Object {
        type_names: Some(Arc::clone(&s.mailbox)),
        to_string: Some(display),
        adapted: props,
        extended: vec![
            Property {
                name: "PSComputerName".into(),
                value: Value::Str("outlook.office365.com".into()),
            },
            Property {
                name: "RunspaceId".into(),
                value: Value::Guid(Uuid::from_u128(77)),
            },
            Property {
                name: "PSShowComputerName".into(),
                value: Value::Bool(false),
            },
        ],
        ..Object::default()
    })
}

/// The synthetic mailboxes.
pub fn synthetic_values(n: usize) -> Vec<Value> {
    let enum_tn = |t: &str| {
        tn(&[
            t,
            "Deserialized.System.Enum",
            "Deserialized.System.ValueType",
            "Deserialized.System.Object",
        ])
    };
    let s = Shared {
        mailbox: tn(&[
            MAILBOX_TN,
            "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledOrgPerson",
            "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledRecipient",
            "Deserialized.Microsoft.Exchange.Data.Directory.ADPresentationObject",
            "Deserialized.Microsoft.Exchange.Data.ConfigurableObject",
            "Deserialized.System.Object",
        ]),
        proxies: tn(&[
            "Deserialized.Microsoft.Exchange.Data.ProxyAddressCollection",
            "Deserialized.Microsoft.Exchange.Data.MultiValuedProperty`1[[Microsoft.Exchange.Data.ProxyAddress]]",
            "Deserialized.System.Object",
        ]),
        strings: tn(&[
            "Deserialized.Microsoft.Exchange.Data.MultiValuedProperty`1[[System.String]]",
            "Deserialized.System.Object",
        ]),
        adobjectid: tn(&[
            "Deserialized.Microsoft.Exchange.Data.Directory.ADObjectId",
            "Deserialized.System.Object",
        ]),
        recipient_type: enum_tn(
            "Deserialized.Microsoft.Exchange.Data.Directory.Recipient.RecipientType",
        ),
        details: enum_tn(
            "Deserialized.Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails",
        ),
    };
    (0..n).map(|i| mailbox(i, &s)).collect()
}

/// The synthetic `<Objs>` document.
pub fn synthetic_clixml(n: usize) -> Vec<u8> {
    clixml::write_document(&synthetic_values(n)).into_bytes()
}
