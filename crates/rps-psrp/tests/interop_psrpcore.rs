//! Interoperability with psrpcore 0.3.1, an independent Python implementation of MS-PSRP.
//!
//! The peer is `tests/interop/psrpcore_peer.py` (see its docstring for the modes, the line
//! protocol and the canonical JSON form of a value both sides compute). The interpreter is
//! `$RPS_INTEROP_PYTHON`, else `<workspace>/target/interop-venv/bin/python`; `.ci/run`
//! creates that venv. Without it these tests fail, they never skip.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command as Proc, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use rps_psrp::clixml::{self, ListKind, Object, ObjectBase, Property, Value};
use rps_psrp::event::{ClientEvent, ServerEvent};
use rps_psrp::messages::{
    Argument, Command, CreatePipeline, PowerShell, PsInvocationState, RunspacePoolState,
};
use rps_psrp::pool::{PoolConfig, RunspacePool};
use rps_psrp::server::{
    PipelineHandler, PipelineOutcome, PipelineSink, ServerConfig, ServerRunspacePool,
};
use serde_json::{Value as J, json};
use uuid::Uuid;

const RPID: Uuid = Uuid::from_u128(0x5a1e_0c3d_7b2f_4e6a_9d80_1c2b_3a4d_5e6f);
const PID: Uuid = Uuid::from_u128(0x0f1e_2d3c_4b5a_4968_8776_6554_4332_2110);
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

// ---------------------------------------------------------------- the peer process

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    const HOW: &str = "create it with: python3 -m venv target/interop-venv && \
        target/interop-venv/bin/pip install psrpcore==0.3.1 pypsrp==0.9.1 \
        (from the workspace root; .ci/run does this), or set RPS_INTEROP_PYTHON";
    if let Some(p) = std::env::var_os("RPS_INTEROP_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "RPS_INTEROP_PYTHON={} does not exist",
            p.display()
        );
        return p;
    }
    let p = workspace().join("target/interop-venv/bin/python");
    assert!(
        p.exists(),
        "interop tests need a Python with psrpcore: {} is missing; {HOW}",
        p.display()
    );
    p
}

fn peer_script() -> PathBuf {
    workspace().join("tests/interop/psrpcore_peer.py")
}

/// Runs the peer in a one-shot mode: `stdin` in, stdout out; panics with stderr on failure.
fn run_peer(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Proc::new(python())
        .arg(peer_script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().expect("python output");
    writer.join().unwrap().expect("write to python");
    assert!(
        out.status.success(),
        "psrpcore peer {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A long-running peer speaking the line protocol.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// What one SYNC returned: data payloads (pipeline id, bytes) and events.
struct Sync {
    data: Vec<(Option<Uuid>, Vec<u8>)>,
    events: Vec<J>,
}

impl Peer {
    fn spawn(args: &[&str]) -> Peer {
        let mut child = Proc::new(python())
            .arg(peer_script())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Peer {
            child,
            stdin,
            stdout,
        }
    }

    fn line(&mut self, line: &str) {
        if writeln!(self.stdin, "{line}").is_err() {
            self.die("peer closed its input");
        }
    }

    fn data(&mut self, bytes: &[u8]) {
        let line = format!("DATA {}", B64.encode(bytes));
        self.line(&line);
    }

    fn sync(&mut self) -> Sync {
        self.line("SYNC");
        self.stdin.flush().unwrap();
        let mut out = Sync {
            data: Vec::new(),
            events: Vec::new(),
        };
        loop {
            let mut line = String::new();
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 {
                self.die("peer ended before END");
            }
            let line = line.trim_end();
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            match word {
                "END" => return out,
                "EVENT" => out.events.push(serde_json::from_str(rest).unwrap()),
                "DATA" => {
                    let (pid, b64) = rest.split_once(' ').unwrap();
                    let pid = (pid != "-").then(|| pid.parse().unwrap());
                    out.data.push((pid, B64.decode(b64).unwrap()));
                }
                _ => panic!("unexpected peer line {line:?}"),
            }
        }
    }

    fn die(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        panic!("{what}:\n{err}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the canonical form

/// First type names psrpcore 0.3.1 rehydrates into its own classes (keeping the class's
/// type names, which these tests write identically). Any other type name list comes back
/// prefixed with `Deserialized.` (psrpcore's `TypeRegistry.rehydrate`).
const PSRPCORE_REGISTERED: &[&str] = &[
    "System.Collections.ArrayList",
    "System.Collections.Hashtable",
    "System.Collections.Stack",
    "System.Collections.Queue",
    "System.Collections.IEnumerable",
    "System.Management.Automation.PSCustomObject",
    "System.String",
];

/// Computes the peer's canonical JSON for a value rps holds (see the peer's docstring).
#[derive(Default)]
struct Canon {
    ids: HashMap<*const Object, usize>,
    /// Apply psrpcore's `Deserialized.` renaming (values psrpcore read, not values it wrote).
    deserialized: bool,
}

impl Canon {
    fn read_by_psrpcore() -> Canon {
        Canon {
            deserialized: true,
            ..Canon::default()
        }
    }

    fn value(&mut self, v: &Value) -> J {
        let p = |t: &str, v: J| json!({"t": t, "v": v});
        match v {
            Value::Nil => json!({"t": "Nil"}),
            Value::Str(s) => p("S", json!(s)),
            Value::Char(c) => p("C", json!(c)),
            Value::Bool(b) => p("B", json!(b)),
            Value::DateTime(s) => p("DT", json!(norm_datetime(s))),
            Value::Duration(s) => p("TS", json!(duration_ticks(s))),
            Value::U8(n) => p("By", json!(n)),
            Value::I8(n) => p("SB", json!(n)),
            Value::U16(n) => p("U16", json!(n)),
            Value::I16(n) => p("I16", json!(n)),
            Value::U32(n) => p("U32", json!(n)),
            Value::I32(n) => p("I32", json!(n)),
            Value::U64(n) => p("U64", json!(n)),
            Value::I64(n) => p("I64", json!(n)),
            Value::F32(f) => p("Sg", json!(f64::from(*f))),
            Value::F64(f) => p("Db", json!(f)),
            Value::Decimal(s) => p("D", json!(s)),
            Value::Bytes(b) => p("BA", json!(B64.encode(b))),
            Value::Guid(g) => p("G", json!(g.hyphenated().to_string())),
            Value::Uri(s) => p("URI", json!(s)),
            Value::Version(s) => p("Version", json!(s)),
            Value::Xml(s) => p("XD", json!(s)),
            Value::ScriptBlock(s) => p("SBK", json!(s)),
            Value::SecureString(s) => p("SS", json!(s)),
            Value::Object(o) => self.object(o),
            other => panic!("no canonical form for {other:?}"),
        }
    }

    fn object(&mut self, o: &Arc<Object>) -> J {
        let key = Arc::as_ptr(o);
        if let Some(id) = self.ids.get(&key) {
            return json!({"t": "Ref", "id": id});
        }
        let id = self.ids.len();
        self.ids.insert(key, id);
        let mut tn: Vec<String> = o.type_names.as_deref().unwrap_or_default().to_vec();
        if self.deserialized
            && tn
                .first()
                .is_some_and(|t| !PSRPCORE_REGISTERED.contains(&t.as_str()))
        {
            tn = tn.iter().map(|t| format!("Deserialized.{t}")).collect();
        }
        let base = match &o.base {
            ObjectBase::None => J::Null,
            ObjectBase::Primitive(v) => json!({"k": "prim", "v": self.value(v)}),
            ObjectBase::List(kind, items) => {
                json!({"k": kind.tag(), "items": items.iter().map(|i| self.value(i)).collect::<Vec<_>>()})
            }
            ObjectBase::Dict(entries) => {
                let e: Vec<J> = entries
                    .iter()
                    .map(|(k, v)| json!([self.value(k), self.value(v)]))
                    .collect();
                json!({"k": "DCT", "entries": e})
            }
            other => panic!("no canonical form for {other:?}"),
        };
        let mut props = |ps: &[Property]| -> Vec<J> {
            ps.iter()
                .map(|p| json!([p.name, self.value(&p.value)]))
                .collect()
        };
        let adapted = props(&o.adapted);
        let extended = props(&o.extended);
        json!({"t": "Obj", "id": id, "tn": tn, "str": o.to_string, "base": base,
               "props": adapted, "ms": extended})
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,7}][Z|±HH:MM]` as `YYYY-MM-DDTHH:MM:SS.fffffff[±HH:MM]`.
fn norm_datetime(s: &str) -> String {
    let (head, rest) = s.split_at(19);
    let (frac, tz) = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (&r[..n], &r[n..])
        }
        None => ("", rest),
    };
    let tz = if tz == "Z" { "+00:00" } else { tz };
    format!("{head}.{frac:0<7}{tz}")
}

/// An xs:duration (`-P1DT2H3M4.5S`) as 100 ns ticks.
fn duration_ticks(s: &str) -> i64 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let s = s.strip_prefix('P').expect("duration starts with P");
    let mut ticks: i64 = 0;
    let mut num = String::new();
    let mut in_time = false;
    for c in s.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' | '.' => num.push(c),
            unit => {
                let (int, frac) = num.split_once('.').unwrap_or((&num, ""));
                let int: i64 = int.parse().unwrap();
                let per = match (unit, in_time) {
                    ('D', false) => 864_000_000_000,
                    ('H', true) => 36_000_000_000,
                    ('M', true) => 600_000_000,
                    ('S', true) => 10_000_000,
                    _ => panic!("unsupported duration {s}"),
                };
                ticks += int * per;
                if !frac.is_empty() {
                    assert_eq!(unit, 'S', "fractions only on seconds");
                    ticks += format!("{frac:0<7}").parse::<i64>().unwrap();
                }
                num.clear();
            }
        }
    }
    if neg { -ticks } else { ticks }
}

// ---------------------------------------------------------------- values

fn tn(names: &[&str]) -> Option<Arc<[String]>> {
    Some(names.iter().map(|s| (*s).to_owned()).collect())
}

fn prop(name: &str, value: Value) -> Property {
    Property {
        name: name.to_owned(),
        value,
    }
}

fn list(names: &[&str], kind: ListKind, items: Vec<Value>) -> Value {
    Value::object(Object {
        type_names: tn(names),
        base: ObjectBase::List(kind, items),
        ..Object::default()
    })
}

fn enum_value(names: &[&str], label: &str, base: Value) -> Value {
    Value::object(Object {
        type_names: tn(names),
        to_string: Some(label.to_owned()),
        base: ObjectBase::Primitive(base),
        ..Object::default()
    })
}

/// One value of every CLIXML type rps writes, with the corners that matter.
fn rps_table() -> Vec<(&'static str, Value)> {
    let s = |x: &str| Value::Str(x.to_owned());
    let shared = Arc::new(Object {
        type_names: tn(&["My.Child", "System.Object"]),
        to_string: Some("child".into()),
        extended: vec![prop("Leaf", Value::I32(1))],
        ..Object::default()
    });
    let mailbox_tn = tn(&[
        "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox",
        "Deserialized.System.Object",
    ]);
    let mailbox = |name: &str| {
        Value::object(Object {
            type_names: mailbox_tn.clone(),
            to_string: Some(name.to_owned()),
            adapted: vec![
                prop("Name", s(name)),
                prop("Alias", s(&name.to_lowercase())),
                prop("Prop with space _x0041_\t", s("escaped name")),
                prop("Count", Value::I32(3)),
            ],
            extended: vec![
                prop("Extra", Value::I64(-5)),
                prop("Child", Value::Object(shared.clone())),
                prop("Again", Value::Object(shared.clone())),
            ],
            ..Object::default()
        })
    };
    let top_shared = Value::object(Object {
        type_names: tn(&["My.Top"]),
        extended: vec![prop("N", s("top"))],
        ..Object::default()
    });
    vec![
        ("S plain", s("plain")),
        ("S empty", s("")),
        ("S literal _x", s("a_x000A_b _X0041_ _x_ x_")),
        ("S control", s("ctl \t\r\n\u{0}\u{1}\u{1b} end")),
        ("S spaces", s("  padded  ")),
        ("S markup/unicode", s("<&>\"' é 中 😀 \u{FFFE}\u{FFFF}")),
        ("C", Value::Char(65)),
        ("C zero", Value::Char(0)),
        ("C max", Value::Char(0xFFFF)),
        ("B true", Value::Bool(true)),
        ("B false", Value::Bool(false)),
        (
            "DT offset",
            Value::DateTime("2018-04-12T10:42:08.6215765+00:00".into()),
        ),
        ("DT Z", Value::DateTime("2024-02-29T13:45:30Z".into())),
        (
            "DT negative offset",
            Value::DateTime("2001-01-01T00:00:00.5-08:00".into()),
        ),
        (
            "DT local",
            Value::DateTime("2010-06-15T12:00:00.1234567".into()),
        ),
        ("TS", Value::Duration("PT9.0269026S".into())),
        ("TS days", Value::Duration("P1DT2H3M4.5S".into())),
        ("TS zero", Value::Duration("PT0S".into())),
        ("TS negative", Value::Duration("-PT1.5S".into())),
        ("By", Value::U8(255)),
        ("SB", Value::I8(-128)),
        ("U16", Value::U16(u16::MAX)),
        ("I16", Value::I16(i16::MIN)),
        ("U32", Value::U32(u32::MAX)),
        ("I32 min", Value::I32(i32::MIN)),
        ("I32 max", Value::I32(i32::MAX)),
        ("U64", Value::U64(u64::MAX)),
        ("I64 min", Value::I64(i64::MIN)),
        ("I64 max", Value::I64(i64::MAX)),
        ("Sg", Value::F32(1.5)),
        ("Sg pi", Value::F32(std::f32::consts::PI)),
        ("Sg tiny", Value::F32(1e-30)),
        ("Db", Value::F64(-2.25e100)),
        ("Db tenth", Value::F64(0.1)),
        ("Db max", Value::F64(f64::MAX)),
        ("Db denormal", Value::F64(5e-324)),
        ("D", Value::Decimal("79228162514264337593543950335".into())),
        ("D fraction", Value::Decimal("-1.50".into())),
        ("BA", Value::Bytes(vec![0, 1, 254, 255])),
        ("BA empty", Value::Bytes(vec![])),
        (
            "G",
            Value::Guid("8e6b1a57-3a44-4b3c-9c1e-0d7f2b6a9c01".parse().unwrap()),
        ),
        (
            "URI",
            Value::Uri("https://outlook.office365.com/PowerShell?x=1&y=2".into()),
        ),
        ("Version", Value::Version("2.3".into())),
        ("Version 4", Value::Version("15.20.7472.0".into())),
        ("XD", Value::Xml("<a b=\"1\">x</a>".into())),
        ("SBK", Value::ScriptBlock("Get-Date | % { $_ }".into())),
        ("SS", Value::SecureString("AAECAwQFBgcICQ==".into())),
        ("Nil", Value::Nil),
        (
            "LST array",
            list(
                &["System.Object[]", "System.Array", "System.Object"],
                ListKind::List,
                vec![Value::I32(1), s("x"), Value::Nil],
            ),
        ),
        (
            "LST ArrayList",
            list(
                &["System.Collections.ArrayList", "System.Object"],
                ListKind::List,
                vec![
                    s("a"),
                    list(
                        &["System.Object[]", "System.Array", "System.Object"],
                        ListKind::List,
                        vec![],
                    ),
                ],
            ),
        ),
        (
            "IE",
            list(
                &[
                    "System.Collections.Generic.List`1[[System.String]]",
                    "System.Object",
                ],
                ListKind::Enumerable,
                vec![s("e1"), s("e2")],
            ),
        ),
        (
            "STK",
            list(
                &["System.Collections.Stack", "System.Object"],
                ListKind::Stack,
                vec![Value::I32(1), s("two")],
            ),
        ),
        (
            "QUE",
            list(
                &["System.Collections.Queue", "System.Object"],
                ListKind::Queue,
                vec![Value::I32(1), Value::I32(2)],
            ),
        ),
        (
            "DCT",
            Value::object(Object {
                type_names: tn(&["System.Collections.Hashtable", "System.Object"]),
                base: ObjectBase::Dict(vec![
                    (s("k"), Value::I32(1)),
                    (Value::I32(2), s("v")),
                    (
                        s("nested"),
                        list(
                            &["System.Object[]"],
                            ListKind::List,
                            vec![Value::Bool(true)],
                        ),
                    ),
                ]),
                ..Object::default()
            }),
        ),
        ("Obj mailbox", mailbox("Alice")),
        ("Obj mailbox TNRef", mailbox("Bob")),
        (
            "enum I32",
            enum_value(
                &[
                    "System.ConsoleColorX",
                    "System.Enum",
                    "System.ValueType",
                    "System.Object",
                ],
                "Red",
                Value::I32(12),
            ),
        ),
        (
            "enum I64 flags",
            enum_value(
                &[
                    "Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails",
                    "System.Enum",
                    "System.ValueType",
                    "System.Object",
                ],
                "UserMailbox, SharedMailbox",
                Value::I64(0x1_0000_0001),
            ),
        ),
        (
            "extended primitive",
            Value::object(Object {
                type_names: tn(&["System.String", "System.Object"]),
                base: ObjectBase::Primitive(s("hi")),
                extended: vec![prop("Note", Value::I32(1))],
                ..Object::default()
            }),
        ),
        (
            "Obj no type names",
            Value::object(Object {
                extended: vec![prop("Only", s("ms"))],
                ..Object::default()
            }),
        ),
        ("Obj shared", top_shared.clone()),
        ("Ref to shared", top_shared),
    ]
}

// ---------------------------------------------------------------- CLIXML tests

#[test]
fn peer_is_psrpcore_0_3_1() {
    let out: J = serde_json::from_slice(&run_peer(&["version"], b"")).unwrap();
    assert_eq!(out, json!({"psrpcore": "0.3.1"}));
}

#[test]
fn psrpcore_reads_an_rps_document_of_every_type() {
    let table = rps_table();
    let values: Vec<Value> = table.iter().map(|(_, v)| v.clone()).collect();
    let doc = clixml::write_document(&values);
    // The document must hold the sharing we claim to test.
    assert!(doc.contains("<TNRef RefId="), "{doc}");
    assert!(doc.contains("<Ref RefId="), "{doc}");
    let got: Vec<J> = serde_json::from_slice(&run_peer(&["read-doc"], doc.as_bytes())).unwrap();
    assert_eq!(got.len(), table.len());
    let mut canon = Canon::read_by_psrpcore();
    for ((name, v), got) in table.iter().zip(&got) {
        assert_eq!(got, &canon.value(v), "{name}: psrpcore read it differently");
    }
}

#[test]
fn psrpcore_reads_rps_message_payloads() {
    let table = rps_table();
    let texts: Vec<String> = table.iter().map(|(_, v)| clixml::to_string(v)).collect();
    let input = serde_json::to_vec(&texts).unwrap();
    let got: Vec<J> = serde_json::from_slice(&run_peer(&["read-each"], &input)).unwrap();
    assert_eq!(got.len(), table.len());
    for ((name, v), got) in table.iter().zip(&got) {
        let want = Canon::read_by_psrpcore().value(v);
        assert_eq!(
            got,
            &want,
            "{name}: psrpcore read {:?} differently",
            clixml::to_string(v)
        );
    }
}

/// What psrpcore's `write_table()` holds, as rps must read it.
fn psrpcore_table() -> Vec<Value> {
    let s = |x: &str| Value::Str(x.to_owned());
    let custom_tn = tn(&[
        "System.Management.Automation.PSCustomObject",
        "System.Object",
    ]);
    let shared = Arc::new(Object {
        type_names: custom_tn.clone(),
        extended: vec![prop("Name", s("shared")), prop("Size", Value::I32(7))],
        ..Object::default()
    });
    vec![
        s("plain"),
        s("esc _x0041_ \t\r\n\u{0} 😀 é <>&\"'"),
        s(""),
        Value::Char(65),
        Value::Bool(true),
        Value::Bool(false),
        Value::DateTime("2024-02-29T13:45:30.1234567Z".into()),
        Value::Duration("P1DT2H3M4.5S".into()),
        Value::U8(255),
        Value::I8(-128),
        Value::U16(u16::MAX),
        Value::I16(i16::MIN),
        Value::U32(u32::MAX),
        Value::I32(i32::MIN),
        Value::U64(u64::MAX),
        Value::I64(i64::MIN),
        Value::F32(1.5),
        Value::F64(-2.25e100),
        Value::Decimal("79228162514264337593543950335".into()),
        Value::Bytes(vec![0, 1, 254, 255]),
        Value::Guid("8e6b1a57-3a44-4b3c-9c1e-0d7f2b6a9c01".parse().unwrap()),
        Value::Uri("https://outlook.office365.com/PowerShell?x=1&y=2".into()),
        Value::Version("2.3.1.4".into()),
        Value::Xml("<a b=\"1\">x</a>".into()),
        Value::ScriptBlock("Get-Date | % { $_ }".into()),
        Value::Nil,
        list(
            &["System.Collections.ArrayList", "System.Object"],
            ListKind::List,
            vec![Value::I32(1), s("x"), Value::Nil],
        ),
        list(
            &["System.Collections.IEnumerable", "System.Object"],
            ListKind::Enumerable,
            vec![Value::I32(5)],
        ),
        list(
            &["System.Collections.Stack", "System.Object"],
            ListKind::Stack,
            vec![Value::I32(1), s("two")],
        ),
        list(
            &["System.Collections.Queue", "System.Object"],
            ListKind::Queue,
            vec![Value::I32(1), Value::I32(2)],
        ),
        Value::object(Object {
            type_names: tn(&["System.Collections.Hashtable", "System.Object"]),
            base: ObjectBase::Dict(vec![(s("k"), Value::I32(1)), (Value::I32(2), s("v"))]),
            ..Object::default()
        }),
        Value::object(Object {
            type_names: custom_tn,
            to_string: Some("custom".into()),
            extended: vec![
                prop("Name", s("a_x000A_b\n<&>")),
                prop("Nested", Value::Object(shared.clone())),
                prop("Again", Value::Object(shared)),
            ],
            ..Object::default()
        }),
        enum_value(
            &[
                "System.Management.Automation.Runspaces.PSThreadOptions",
                "System.Enum",
                "System.ValueType",
                "System.Object",
            ],
            "UseNewThread",
            Value::I32(1),
        ),
        Value::I64(2_147_483_648),
        Value::SecureString("AAECAwQFBgcICQ==".into()),
    ]
}

#[test]
fn rps_reads_a_psrpcore_document_of_every_type() {
    let doc = run_peer(&["write"], b"");
    let got = clixml::document_from_slice(&doc)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&doc)));
    let want = psrpcore_table();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "value {i} of psrpcore's table");
    }
    // `Nested` and `Again` are one object (a <Ref>), not two equal ones.
    let custom = got[31].as_object().unwrap();
    match (custom.get("Nested"), custom.get("Again")) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => assert!(Arc::ptr_eq(a, b)),
        other => panic!("{other:?}"),
    }
    // Same canonical form on both sides, too (types, order, sharing).
    let mut canon = Canon::default();
    let mine: Vec<J> = got.iter().map(|v| canon.value(v)).collect();
    let theirs: Vec<J> = serde_json::from_slice(&run_peer(&["read-doc"], &doc)).unwrap();
    assert_eq!(mine, theirs);
}

// ---------------------------------------------------------------- runspace pools

fn custom(props: Vec<Property>) -> Value {
    Value::object(Object {
        type_names: tn(&[
            "System.Management.Automation.PSCustomObject",
            "System.Object",
        ]),
        extended: props,
        ..Object::default()
    })
}

/// The echo both servers run: per command an object {Command, one note property per
/// argument (positional ones as Arg<i>)}, then the input unchanged.
fn echo_outputs(request: &CreatePipeline, input: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for cmd in request.power_shell.statements.iter().flatten() {
        let mut props = vec![prop("Command", Value::Str(cmd.name.clone()))];
        for (i, a) in cmd.args.iter().enumerate() {
            let name = a.name.clone().unwrap_or_else(|| format!("Arg{i}"));
            props.push(prop(&name, a.value.clone()));
        }
        out.push(custom(props));
    }
    out.extend(input.iter().cloned());
    out
}

struct Echo;
impl PipelineHandler for Echo {
    fn invoke(
        &mut self,
        request: &CreatePipeline,
        input: &[Value],
        sink: &mut PipelineSink<'_>,
    ) -> PipelineOutcome {
        for v in echo_outputs(request, input) {
            sink.output(v);
        }
        PipelineOutcome::Completed
    }
}

fn event_types(events: &[J]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// `Get-Thing -Name alpha -Count 3 -Force 'pos' | Select-Thing -First 1`, and with `multi`
/// a second statement `Out-Thing -Tag <guid>`.
fn rps_statements(multi: bool) -> Vec<Vec<Command>> {
    let mut statements = vec![vec![
        Command::cmdlet("Get-Thing")
            .arg("Name", "alpha")
            .arg("Count", 3)
            .switch("Force")
            .positional("pos"),
        Command::cmdlet("Select-Thing").arg("First", 1),
    ]];
    if multi {
        statements.push(vec![
            Command::cmdlet("Out-Thing").arg("Tag", Value::Guid(PID)),
        ]);
    }
    statements
}

fn rps_client_against_psrpcore_server(multi: bool) {
    let mut peer = Peer::spawn(&["server"]);
    let mut pool = RunspacePool::new(RPID, PoolConfig::default());
    pool.open().unwrap();
    let mut seen: Vec<J> = Vec::new();
    let mut client_events = Vec::new();
    let mut announced = false;

    let input_obj = Value::object(Object {
        type_names: tn(&["My.Input", "System.Object"]),
        to_string: Some("in".into()),
        adapted: vec![prop("When", Value::DateTime("2024-01-02T03:04:05Z".into()))],
        ..Object::default()
    });
    let mut request = CreatePipeline::new(PowerShell {
        statements: rps_statements(multi),
        ..PowerShell::new(vec![])
    });
    request.no_input = false;
    let mut created = false;

    for _round in 0..10 {
        while let Some(out) = pool.data_to_send(32 * 1024).unwrap() {
            if let Some(pid) = out.target.pipeline_id
                && !announced
            {
                peer.line(&format!("CMD {pid}"));
                announced = true;
            }
            peer.data(&out.data);
        }
        let sync = peer.sync();
        seen.extend(sync.events);
        for (_, data) in &sync.data {
            pool.receive(data).unwrap();
        }
        while let Some(e) = pool.next_event().unwrap() {
            client_events.push(e);
        }
        if pool.state() == RunspacePoolState::Opened && !created {
            created = true;
            let mut p = pool.create_pipeline(PID, request.clone()).unwrap();
            p.send_input(Value::Str("in1".into())).unwrap();
            p.send_input(input_obj.clone()).unwrap();
            p.end_input().unwrap();
        }
        if pool.pipeline_state(PID).is_some_and(|s| s.is_terminal()) {
            break;
        }
    }

    // The pool opened and the version was negotiated.
    assert!(client_events.iter().any(|e| matches!(
        e,
        ClientEvent::PoolState {
            state: RunspacePoolState::Opened,
            ..
        }
    )));
    assert_eq!(pool.protocol_version(), Some("2.3"));

    // What psrpcore decoded from rps's fragments.
    assert_eq!(
        event_types(&seen),
        [
            "SessionCapabilityEvent",
            "InitRunspacePoolEvent",
            "CreatePipelineEvent",
            "PipelineInputEvent",
            "PipelineInputEvent",
            "EndOfPipelineInputEvent",
        ]
    );
    assert_eq!(seen[0]["protocol_version"], "2.3");
    assert_eq!(seen[1]["min_runspaces"], 1);
    assert_eq!(seen[1]["max_runspaces"], 1);
    let create = &seen[2];
    assert_eq!(create["pipeline_id"], PID.to_string());
    assert_eq!(create["no_input"], false);
    let want_commands: Vec<J> = request
        .power_shell
        .statements
        .iter()
        .flat_map(|st| {
            st.iter().enumerate().map(|(i, c)| {
                let params: Vec<J> = c
                    .args
                    .iter()
                    .map(|a| json!([a.name, Canon::read_by_psrpcore().value(&a.value)]))
                    .collect();
                json!({"name": c.name, "is_script": false,
                       "end_of_statement": i + 1 == st.len(), "params": params})
            })
        })
        .collect();
    assert_eq!(create["commands"], J::Array(want_commands));
    assert_eq!(seen[3]["data"], json!({"t": "S", "v": "in1"}));
    assert_eq!(seen[4]["data"], Canon::read_by_psrpcore().value(&input_obj));

    // What rps decoded from psrpcore's answer: the echo, in order, then Completed.
    assert_eq!(pool.pipeline_state(PID), Some(PsInvocationState::Completed));
    let outputs: Vec<&Value> = client_events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Output { pipeline_id, value } if *pipeline_id == PID => Some(value),
            _ => None,
        })
        .collect();
    let n_commands = request.power_shell.statements.iter().flatten().count();
    assert_eq!(outputs.len(), n_commands + 2, "{outputs:#?}");
    let get = outputs[0].as_object().unwrap();
    assert_eq!(
        get.type_name(),
        Some("System.Management.Automation.PSCustomObject")
    );
    let names: Vec<&str> = get.properties().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Command", "Name", "Count", "Force", "Arg3"]);
    assert_eq!(get.get("Command"), Some(&Value::Str("Get-Thing".into())));
    assert_eq!(get.get("Name"), Some(&Value::Str("alpha".into())));
    assert_eq!(get.get("Count"), Some(&Value::I32(3)));
    assert_eq!(get.get("Force"), Some(&Value::Bool(true)));
    assert_eq!(get.get("Arg3"), Some(&Value::Str("pos".into())));
    let select = outputs[1].as_object().unwrap();
    assert_eq!(
        select.get("Command"),
        Some(&Value::Str("Select-Thing".into()))
    );
    assert_eq!(select.get("First"), Some(&Value::I32(1)));
    if multi {
        let out = outputs[2].as_object().unwrap();
        assert_eq!(out.get("Command"), Some(&Value::Str("Out-Thing".into())));
        assert_eq!(out.get("Tag"), Some(&Value::Guid(PID)));
    }
    assert_eq!(outputs[n_commands], &Value::Str("in1".into()));
    // psrpcore re-serializes the object it read: same content, its own type names.
    let echoed = outputs[n_commands + 1].as_object().unwrap();
    assert_eq!(echoed.to_string.as_deref(), Some("in"));
    assert_eq!(
        echoed.type_names.as_deref().unwrap(),
        ["Deserialized.My.Input", "Deserialized.System.Object"]
    );
    assert_eq!(
        echoed.get("When"),
        Some(&Value::DateTime("2024-01-02T03:04:05Z".into()))
    );
}

#[test]
fn rps_client_opens_and_runs_a_pipeline_on_a_psrpcore_server() {
    rps_client_against_psrpcore_server(false);
}

/// psrpcore (like pypsrp, and PowerShell per psrpcore's notes) sends every statement of a
/// multi-statement pipeline in `ExtraCmds` (the first one included; `Cmds` repeats the
/// first) and reads `ExtraCmds` as the whole list. rps-psrp puts only statements 2.. in
/// `ExtraCmds` and reads `Cmds` + `ExtraCmds`, so psrpcore drops rps's first statement.
#[test]
fn rps_client_runs_a_multi_statement_pipeline_on_a_psrpcore_server() {
    rps_client_against_psrpcore_server(true);
}

/// A command as `(name, [(parameter name, value)])`.
type CommandShape<'a> = (&'a str, Vec<(Option<&'a str>, &'a Value)>);

fn psrpcore_client_against_rps_server(multi: bool) {
    let mode = if multi { "multi" } else { "single" };
    let mut peer = Peer::spawn(&["client", &RPID.to_string(), &PID.to_string(), mode]);
    let mut server = ServerRunspacePool::new(RPID, ServerConfig::default());
    let mut seen: Vec<J> = Vec::new();
    let mut server_events = Vec::new();
    let mut request = None;
    let mut inputs = Vec::new();

    for _round in 0..10 {
        let sync = peer.sync();
        let done = sync
            .events
            .iter()
            .any(|e| e["type"] == "PipelineStateEvent");
        seen.extend(sync.events);
        if done {
            break;
        }
        for (pid, data) in &sync.data {
            if pid.is_some() {
                assert_eq!(*pid, Some(PID));
            }
            server.receive(data).unwrap();
        }
        while let Some(e) = server.next_event().unwrap() {
            match &e {
                ServerEvent::CreatePipeline { request: r, .. } => request = Some(r.clone()),
                ServerEvent::Input { value, .. } => inputs.push(value.clone()),
                ServerEvent::EndOfInput { pipeline_id } => {
                    server.run_pipeline(*pipeline_id, &mut Echo).unwrap()
                }
                _ => {}
            }
            server_events.push(e);
        }
        while let Some(out) = server.data_to_send(32 * 1024).unwrap() {
            peer.data(&out.data);
        }
    }

    // What rps decoded from psrpcore's fragments.
    assert!(matches!(
        &server_events[0],
        ServerEvent::Negotiated { protocol_version, .. } if protocol_version == "2.3"
    ));
    assert!(matches!(&server_events[1], ServerEvent::Opened(init)
        if init.min_runspaces == 1 && init.max_runspaces == 1));
    let request = request.expect("CREATE_PIPELINE");
    assert!(!request.no_input);
    let shape: Vec<Vec<CommandShape<'_>>> = request
        .power_shell
        .statements
        .iter()
        .map(|st| {
            st.iter()
                .map(|c| {
                    let args = c
                        .args
                        .iter()
                        .map(|a: &Argument| (a.name.as_deref(), &a.value))
                        .collect();
                    (c.name.as_str(), args)
                })
                .collect()
        })
        .collect();
    let s = |x: &str| Value::Str(x.to_owned());
    let (alpha, pos) = (s("alpha"), s("pos"));
    let mut want = vec![vec![
        (
            "Get-Thing",
            vec![
                (Some("Name"), &alpha),
                (Some("Count"), &Value::I32(3)),
                (Some("Force"), &Value::Bool(true)),
                (None, &pos),
            ],
        ),
        ("Select-Thing", vec![(Some("First"), &Value::I32(1))]),
    ]];
    if multi {
        want.push(vec![("Out-Thing", vec![])]);
    }
    assert_eq!(shape, want);
    assert_eq!(inputs, [s("in1"), Value::I32(2)]);

    // What psrpcore decoded from rps's answers.
    let types = event_types(&seen);
    assert!(types.contains(&"SessionCapabilityEvent"), "{types:?}");
    let states: Vec<&J> = seen
        .iter()
        .filter(|e| e["type"] == "RunspacePoolStateEvent")
        .map(|e| &e["state"])
        .collect();
    assert_eq!(states, [&json!("Opened")]);
    let outputs: Vec<&J> = seen
        .iter()
        .filter(|e| e["type"] == "PipelineOutputEvent")
        .map(|e| &e["data"])
        .collect();
    let want: Vec<J> = echo_outputs(&request, &inputs)
        .iter()
        .map(|v| Canon::read_by_psrpcore().value(v))
        .collect();
    assert_eq!(outputs.len(), if multi { 5 } else { 4 });
    assert_eq!(outputs, want.iter().collect::<Vec<_>>());
    let last = seen.last().unwrap();
    assert_eq!(last["type"], "PipelineStateEvent");
    assert_eq!(last["state"], "Completed");
    assert_eq!(last["pipeline_id"], PID.to_string());
}

#[test]
fn psrpcore_client_opens_and_runs_a_pipeline_on_the_rps_server() {
    psrpcore_client_against_rps_server(false);
}

/// The reverse of [`rps_client_runs_a_multi_statement_pipeline_on_a_psrpcore_server`]:
/// rps reads psrpcore's `Cmds` and then every `ExtraCmds` entry, so the first statement
/// runs twice.
#[test]
fn psrpcore_client_runs_a_multi_statement_pipeline_on_the_rps_server() {
    psrpcore_client_against_rps_server(true);
}

// ---------------------------------------------------------------- session keys

const SECRET: &str = "s3cret pässword";

/// A deterministic generator for test keys (never for real ones).
struct TestRng(u64);
impl rsa::rand_core::RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.next_u64() as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rsa::rand_core::CryptoRng for TestRng {}

/// rps's RSA public key blob reaches psrpcore, psrpcore's encrypted session key reaches
/// rps, and a SecureString encrypted by either side decrypts on the other.
#[test]
fn rps_client_exchanges_keys_with_a_psrpcore_server_and_sends_a_secure_string() {
    let mut peer = Peer::spawn(&["server"]);
    let mut pool = RunspacePool::new(RPID, PoolConfig::default());
    pool.open().unwrap();
    let mut seen: Vec<J> = Vec::new();
    let mut client_events = Vec::new();
    let mut announced = false;
    let mut step = 0;
    for _round in 0..10 {
        while let Some(out) = pool.data_to_send(32 * 1024).unwrap() {
            if let Some(pid) = out.target.pipeline_id
                && !announced
            {
                peer.line(&format!("CMD {pid}"));
                announced = true;
            }
            peer.data(&out.data);
        }
        let sync = peer.sync();
        seen.extend(sync.events);
        for (_, data) in &sync.data {
            pool.receive(data).unwrap();
        }
        while let Some(e) = pool.next_event().unwrap() {
            client_events.push(e);
        }
        if step == 0 && pool.state() == RunspacePoolState::Opened {
            step = 1;
            let key = rsa::RsaPrivateKey::new(&mut TestRng(0x9e37_79b9_7f4a_7c15), 1024).unwrap();
            pool.exchange_key(key).unwrap();
        } else if step == 1 && pool.session_key().is_some() {
            step = 2;
            let ss = pool.encrypt_secure_string(SECRET).unwrap();
            let cmd = Command::cmdlet("Set-Secret").arg("Password", ss);
            pool.create_pipeline(PID, CreatePipeline::new(PowerShell::new(vec![cmd])))
                .unwrap();
        }
        if pool.pipeline_state(PID).is_some_and(|s| s.is_terminal()) {
            break;
        }
    }
    assert!(client_events.contains(&ClientEvent::SessionKeyReady));
    assert!(event_types(&seen).contains(&"PublicKeyEvent"), "{seen:?}");
    // psrpcore decrypted what rps encrypted.
    let create = seen
        .iter()
        .find(|e| e["type"] == "CreatePipelineEvent")
        .expect("CREATE_PIPELINE reached psrpcore");
    assert_eq!(create["secure"], json!({"Password": SECRET}));
    // rps decrypts the SecureString psrpcore echoed back.
    assert_eq!(pool.pipeline_state(PID), Some(PsInvocationState::Completed));
    let echoed = client_events
        .iter()
        .find_map(|e| match e {
            ClientEvent::Output { value, .. } => value.as_object()?.get("Password").cloned(),
            _ => None,
        })
        .expect("echoed Password");
    assert!(matches!(echoed, Value::SecureString(_)), "{echoed:?}");
    assert_eq!(pool.decrypt_secure_string(&echoed).unwrap(), SECRET);
}

#[test]
fn psrpcore_client_exchanges_keys_with_the_rps_server_and_sends_a_secure_string() {
    let mut peer = Peer::spawn(&["client", &RPID.to_string(), &PID.to_string(), "secure"]);
    let mut server = ServerRunspacePool::new(RPID, ServerConfig::default());
    let mut seen: Vec<J> = Vec::new();
    let mut request = None;
    for _round in 0..10 {
        let sync = peer.sync();
        let done = sync
            .events
            .iter()
            .any(|e| e["type"] == "PipelineStateEvent");
        seen.extend(sync.events);
        if done {
            break;
        }
        for (_, data) in &sync.data {
            server.receive(data).unwrap();
        }
        while let Some(e) = server.next_event().unwrap() {
            match e {
                ServerEvent::PublicKey(pk) => {
                    let key = rps_psrp::crypto::SessionKey::from_bytes([0x5a; 32]);
                    server
                        .send_session_key(&mut TestRng(0x2545_f491_4f6c_dd1d), &pk, key)
                        .unwrap();
                }
                ServerEvent::CreatePipeline {
                    pipeline_id,
                    request: r,
                } => {
                    request = Some(r);
                    server.run_pipeline(pipeline_id, &mut Echo).unwrap();
                }
                _ => {}
            }
        }
        while let Some(out) = server.data_to_send(32 * 1024).unwrap() {
            peer.data(&out.data);
        }
    }
    // rps decrypts what psrpcore encrypted with the key rps sent.
    let request = request.expect("CREATE_PIPELINE");
    let cmd = &request.power_shell.statements[0][0];
    assert_eq!(cmd.name, "Set-Secret");
    let [arg] = cmd.args.as_slice() else {
        panic!("{:?}", cmd.args)
    };
    assert_eq!(arg.name.as_deref(), Some("Password"));
    let Value::SecureString(b64) = &arg.value else {
        panic!("{:?}", arg.value)
    };
    let key = server.session_key().expect("session key sent");
    assert_eq!(key.decrypt_secure_string(b64).unwrap(), SECRET);
    // psrpcore decrypts the SecureString rps echoed back.
    assert!(event_types(&seen).contains(&"EncryptedSessionKeyEvent"));
    let output = seen
        .iter()
        .find(|e| e["type"] == "PipelineOutputEvent")
        .expect("output");
    assert_eq!(output["secure"], json!({"Password": SECRET}));
    let last = seen.last().unwrap();
    assert_eq!(last["type"], "PipelineStateEvent");
    assert_eq!(last["state"], "Completed");
}

// ---------------------------------------------------------------- records

/// Opens a pool on a psrpcore server and runs `request` (no input) to its end.
fn run_on_psrpcore_server(request: CreatePipeline) -> (RunspacePool, Vec<ClientEvent>) {
    let mut peer = Peer::spawn(&["server"]);
    let mut pool = RunspacePool::new(RPID, PoolConfig::default());
    pool.open().unwrap();
    let mut events = Vec::new();
    let mut announced = false;
    let mut request = Some(request);
    for _round in 0..10 {
        while let Some(out) = pool.data_to_send(32 * 1024).unwrap() {
            if let Some(pid) = out.target.pipeline_id
                && !announced
            {
                peer.line(&format!("CMD {pid}"));
                announced = true;
            }
            peer.data(&out.data);
        }
        for (_, data) in peer.sync().data {
            pool.receive(&data).unwrap();
        }
        while let Some(e) = pool.next_event().unwrap() {
            events.push(e);
        }
        if pool.state() == RunspacePoolState::Opened
            && let Some(r) = request.take()
        {
            pool.create_pipeline(PID, r).unwrap();
        }
        if pool.pipeline_state(PID).is_some_and(|s| s.is_terminal()) {
            break;
        }
    }
    (pool, events)
}

/// Records psrpcore writes (its ErrorRecord, Warning/Verbose/DebugRecord, InformationRecord
/// and ProgressRecord classes) read through rps's typed views; the stopped pipeline's error
/// record too.
#[test]
fn rps_reads_every_record_kind_psrpcore_writes() {
    use rps_psrp::event::{RecordKind, TypedRecord};
    use rps_psrp::records::{ErrorRecord, InformationalKind, ProgressRecordType};

    let request = CreatePipeline::new(PowerShell::new(vec![Command::cmdlet("Write-Records")]));
    let (pool, events) = run_on_psrpcore_server(request);
    assert_eq!(pool.pipeline_state(PID), Some(PsInvocationState::Stopped));
    let records: Vec<(RecordKind, TypedRecord)> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Record {
                pipeline_id,
                kind,
                value,
            } => {
                assert_eq!(*pipeline_id, PID);
                Some((*kind, kind.read(value).expect("typed view reads it")))
            }
            _ => None,
        })
        .collect();
    let kinds: Vec<RecordKind> = records.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [
            RecordKind::Error,
            RecordKind::Warning,
            RecordKind::Verbose,
            RecordKind::Debug,
            RecordKind::Information,
            RecordKind::Progress,
        ]
    );

    let TypedRecord::Error(e) = &records[0].1 else {
        panic!("{:?}", records[0])
    };
    assert_eq!(e.exception_message, "Boom: alice_x000A_ not found");
    assert_eq!(e.exception_type.as_deref(), Some("System.Exception"));
    assert_eq!(e.fully_qualified_error_id, "NotFound,Get-Thing");
    assert_eq!(e.category.category_name(), "ObjectNotFound");
    assert_eq!(e.category.activity, "Get-Thing");
    assert_eq!(e.category.reason, "ItemNotFoundException");
    assert_eq!(e.category.target_name, "alice");
    assert_eq!(e.category.target_type, "String");
    assert_eq!(e.target_object, Some(Value::Str("alice".into())));

    for ((_, r), (kind, text)) in records[1..4].iter().zip([
        (InformationalKind::Warning, "careful"),
        (InformationalKind::Verbose, "chatty"),
        (InformationalKind::Debug, "dbg"),
    ]) {
        let TypedRecord::Informational(i) = r else {
            panic!("{r:?}")
        };
        assert_eq!(i.kind, Some(kind));
        assert_eq!(i.message, text);
    }

    let TypedRecord::Information(i) = &records[4].1 else {
        panic!("{:?}", records[4])
    };
    assert_eq!(i.message_data, Value::Str("info msg".into()));
    assert_eq!(i.source, "Write-Information");
    assert_eq!(
        norm_datetime(&i.time_generated),
        "2024-05-06T07:08:09.0000000+00:00"
    );
    assert_eq!(i.tags, ["t1", "t2"]);
    assert_eq!(i.user, "CONTOSO\\admin");
    assert_eq!(i.computer, "EXCH01");
    assert_eq!(
        (i.process_id, i.native_thread_id, i.managed_thread_id),
        (4242, 7, 9)
    );

    let TypedRecord::Progress(p) = &records[5].1 else {
        panic!("{:?}", records[5])
    };
    assert_eq!(p.activity, "Act");
    assert_eq!(p.activity_id, 3);
    assert_eq!(p.status_description, "Half way");
    assert_eq!(p.current_operation.as_deref(), Some("op"));
    assert_eq!(p.parent_activity_id, -1);
    assert_eq!(p.percent_complete, 50);
    assert_eq!(p.seconds_remaining, 12);
    assert_eq!(p.record_type, ProgressRecordType::Processing);

    let stopped = events
        .iter()
        .find_map(|e| match e {
            ClientEvent::PipelineState {
                state: PsInvocationState::Stopped,
                error_record: Some(v),
                ..
            } => Some(ErrorRecord::from_value(v).expect("stopped error record")),
            _ => None,
        })
        .expect("Stopped with an error record");
    assert_eq!(stopped.fully_qualified_error_id, "PipelineStopped");
    assert_eq!(stopped.exception_message, "The pipeline has been stopped.");
    assert_eq!(
        stopped.exception_type.as_deref(),
        Some("System.Management.Automation.PipelineStoppedException")
    );
    assert_eq!(stopped.category.category_name(), "OperationStopped");
}

/// The error record the rps server's `Write-Records` writes (and fails with).
fn rps_error_record(fqid: &str) -> rps_psrp::records::ErrorRecord {
    rps_psrp::records::ErrorRecord {
        exception_message: "Cannot find alice_x000A_.".into(),
        exception_type: Some("System.Management.Automation.ItemNotFoundException".into()),
        fully_qualified_error_id: fqid.into(),
        category: rps_psrp::records::CategoryInfo {
            category: 13, // ObjectNotFound
            activity: "Get-Thing".into(),
            reason: "ItemNotFoundException".into(),
            target_name: "alice".into(),
            target_type: "String".into(),
            message: None,
        },
        target_object: Some(Value::Str("alice".into())),
        invocation: None,
        error_details_message: None,
        recommended_action: None,
        script_stack_trace: None,
    }
}

/// `Write-Records`: one record of every stream built with rps's typed records, then fails.
struct WriteRecords;
impl PipelineHandler for WriteRecords {
    fn invoke(
        &mut self,
        _request: &CreatePipeline,
        _input: &[Value],
        sink: &mut PipelineSink<'_>,
    ) -> PipelineOutcome {
        use rps_psrp::event::RecordKind;
        use rps_psrp::records::{
            InformationRecord, InformationalKind, InformationalRecord, ProgressRecord,
        };
        sink.record(
            RecordKind::Error,
            rps_error_record("NotFound,Get-Thing").to_value(),
        );
        for (kind, rk, text) in [
            (InformationalKind::Warning, RecordKind::Warning, "careful"),
            (InformationalKind::Verbose, RecordKind::Verbose, "chatty"),
            (InformationalKind::Debug, RecordKind::Debug, "dbg"),
        ] {
            let r = InformationalRecord {
                kind: Some(kind),
                message: text.into(),
                invocation: None,
            };
            sink.record(rk, r.to_value());
        }
        let info = InformationRecord {
            message_data: Value::Str("info msg".into()),
            source: "Write-Information".into(),
            time_generated: "2024-05-06T07:08:09.1234567+02:00".into(),
            tags: vec!["t1".into(), "t2".into()],
            user: "CONTOSO\\admin".into(),
            computer: "EXCH01".into(),
            process_id: 4242,
            native_thread_id: 7,
            managed_thread_id: 9,
        };
        sink.record(RecordKind::Information, info.to_value());
        let progress = ProgressRecord {
            activity: "Act".into(),
            activity_id: 3,
            status_description: "Half way".into(),
            current_operation: Some("op".into()),
            parent_activity_id: -1,
            percent_complete: 50,
            seconds_remaining: 12,
            ..ProgressRecord::default()
        };
        sink.record(RecordKind::Progress, progress.to_value());
        PipelineOutcome::Failed(rps_error_record("Failed,Get-Thing").to_value())
    }
}

/// Records rps's typed records write, read by psrpcore; the failed pipeline's error too.
#[test]
fn psrpcore_reads_every_record_kind_the_rps_server_writes() {
    let mut peer = Peer::spawn(&["client", &RPID.to_string(), &PID.to_string(), "records"]);
    let mut server = ServerRunspacePool::new(RPID, ServerConfig::default());
    let mut seen: Vec<J> = Vec::new();
    for _round in 0..10 {
        let sync = peer.sync();
        let done = sync
            .events
            .iter()
            .any(|e| e["type"] == "PipelineStateEvent");
        seen.extend(sync.events);
        if done {
            break;
        }
        for (_, data) in &sync.data {
            server.receive(data).unwrap();
        }
        while let Some(e) = server.next_event().unwrap() {
            if let ServerEvent::CreatePipeline { pipeline_id, .. } = e {
                server.run_pipeline(pipeline_id, &mut WriteRecords).unwrap();
            }
        }
        while let Some(out) = server.data_to_send(32 * 1024).unwrap() {
            peer.data(&out.data);
        }
    }
    let records: Vec<(&str, &J)> = seen
        .iter()
        .filter(|e| e.get("record").is_some())
        .map(|e| (e["type"].as_str().unwrap(), &e["record"]))
        .collect();
    let error = json!({
        "message": "Cannot find alice_x000A_.",
        "exception_types": [
            "Deserialized.System.Management.Automation.ItemNotFoundException",
            "Deserialized.System.Exception",
            "Deserialized.System.Object",
        ],
        "fqid": "NotFound,Get-Thing",
        "category": "ObjectNotFound",
        "activity": "Get-Thing",
        "reason": "ItemNotFoundException",
        "target_name": "alice",
        "target_type": "String",
        "target_object": {"t": "S", "v": "alice"},
    });
    assert_eq!(
        records,
        [
            ("ErrorRecordEvent", &error),
            ("WarningRecordEvent", &json!({"message": "careful"})),
            ("VerboseRecordEvent", &json!({"message": "chatty"})),
            ("DebugRecordEvent", &json!({"message": "dbg"})),
            (
                "InformationRecordEvent",
                &json!({
                    "message_data": {"t": "S", "v": "info msg"},
                    "source": "Write-Information",
                    "time_generated": "2024-05-06T07:08:09.1234567+02:00",
                    "tags": ["t1", "t2"],
                    "user": "CONTOSO\\admin",
                    "computer": "EXCH01",
                    "ids": [4242, 7, 9],
                })
            ),
            (
                "ProgressRecordEvent",
                &json!({
                    "activity": "Act",
                    "activity_id": 3,
                    "status_description": "Half way",
                    "current_operation": "op",
                    "parent_activity_id": -1,
                    "percent_complete": 50,
                    "seconds_remaining": 12,
                    "record_type": "Processing",
                })
            ),
        ]
    );
    let last = seen.last().unwrap();
    assert_eq!(last["type"], "PipelineStateEvent");
    assert_eq!(last["state"], "Failed");
    let mut failed = error;
    failed["fqid"] = json!("Failed,Get-Thing");
    assert_eq!(last["reason"], failed);
}
