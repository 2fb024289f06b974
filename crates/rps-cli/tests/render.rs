//! Rendering Exchange-shaped output in every format.

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;

use rps_cli::render::{self, Format, Options, text};
use rps_psrp::clixml::{self, ListKind, Object, ObjectBase, Property, Value};
use serde_json::json;

const MAILBOX_TYPES: [&str; 6] = [
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledOrgPerson",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledRecipient",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADPresentationObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ConfigurableObject",
    "Deserialized.System.Object",
];

fn prop(name: &str, value: impl Into<Value>) -> Property {
    Property {
        name: name.to_owned(),
        value: value.into(),
    }
}

/// An Exchange value type: shown by its ToString in text formats.
fn typed(type_name: &str, to_string: &str) -> Value {
    let mut o = Object::with_type_names([type_name, "Deserialized.System.Object"]);
    o.to_string = Some(to_string.to_owned());
    Value::object(o)
}

/// A quota (`Unlimited<ByteQuantifiedSize>`): a ToString and properties.
fn quota(to_string: &str) -> Value {
    let mut o = Object::with_type_names([
        "Deserialized.Microsoft.Exchange.Data.Unlimited`1[[Microsoft.Exchange.Data.ByteQuantifiedSize]]",
        "Deserialized.System.ValueType",
        "Deserialized.System.Object",
    ]);
    o.to_string = Some(to_string.to_owned());
    o.adapted = vec![prop("IsUnlimited", to_string == "Unlimited")];
    Value::object(o)
}

fn enum_value(type_name: &str, name: &str, n: i64) -> Value {
    let mut o = Object::with_type_names([
        type_name,
        "System.Enum",
        "System.ValueType",
        "System.Object",
    ]);
    o.to_string = Some(name.to_owned());
    o.base = ObjectBase::Primitive(Value::I64(n));
    Value::object(o)
}

fn list(type_name: &str, items: &[&str]) -> Value {
    let mut o = Object::with_type_names([type_name, "Deserialized.System.Object"]);
    o.base = ObjectBase::List(
        ListKind::List,
        items.iter().map(|s| Value::from(*s)).collect(),
    );
    Value::object(o)
}

struct Mbx<'a> {
    name: &'a str,
    alias: &'a str,
    server: &'a str,
    quota: &'a str,
    emails: &'a [&'a str],
}

fn mailbox(m: &Mbx<'_>) -> Value {
    let mut o = Object::with_type_names(MAILBOX_TYPES);
    o.to_string = Some(m.name.to_owned());
    o.adapted = vec![
        prop(
            "Database",
            typed(
                "Deserialized.Microsoft.Exchange.Data.Directory.ADObjectId",
                "EURPR03DG123-db045",
            ),
        ),
        prop("ProhibitSendQuota", quota(m.quota)),
        prop("UseDatabaseQuotaDefaults", false),
        prop("RetainDeletedItemsFor", Value::Duration("P14D".into())),
        prop(
            "RecipientTypeDetails",
            enum_value(
                "Deserialized.Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails",
                "UserMailbox",
                1,
            ),
        ),
        prop(
            "EmailAddresses",
            list(
                "Deserialized.Microsoft.Exchange.Data.ProxyAddressCollection",
                m.emails,
            ),
        ),
        prop(
            "ExtensionCustomAttribute1",
            list(
                "Deserialized.Microsoft.Exchange.Data.MultiValuedProperty`1[[System.String]]",
                &[],
            ),
        ),
        prop(
            "WhenCreated",
            Value::DateTime("2021-03-04T09:15:27.123+00:00".into()),
        ),
        prop(
            "ExchangeGuid",
            Value::Guid(uuid::Uuid::from_u128(
                0x1b2c3d4e_5f60_4718_9a0b_1c2d3e4f5a6b,
            )),
        ),
        prop("ArchiveDatabase", Value::Nil),
        prop("ItemCount", Value::I32(1234)),
        prop("Name", m.name),
        prop("Alias", m.alias),
        prop("ServerName", m.server),
        prop("DisplayName", m.name),
    ];
    o.extended = vec![
        prop("PSComputerName", "outlook.office365.com"),
        prop("RunspaceId", Value::Guid(uuid::Uuid::from_u128(7))),
        prop("PSShowComputerName", false),
    ];
    Value::object(o)
}

fn two_mailboxes() -> Vec<Value> {
    vec![
        mailbox(&Mbx {
            name: "John Doe",
            alias: "jdoe",
            server: "AM6PR03MB1234",
            quota: "99 GB (106,300,440,576 bytes)",
            emails: &[
                "SMTP:john.doe@contoso.com",
                "smtp:jdoe@contoso.onmicrosoft.com",
            ],
        }),
        mailbox(&Mbx {
            name: "Shared - Finance",
            alias: "finance",
            server: "AM6PR03MB5678",
            quota: "Unlimited",
            emails: &[
                "SMTP:finance@contoso.com",
                "smtp:f1@contoso.com",
                "smtp:f2@contoso.com",
                "smtp:f3@contoso.com",
                "smtp:f4@contoso.com",
            ],
        }),
    ]
}

fn render(format: Format, options: &Options, values: &[Value]) -> String {
    let mut out = Vec::new();
    render::render_all(format, options, values, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn table_uses_the_mailbox_default_columns() {
    let out = render(Format::Table, &Options::default(), &two_mailboxes());
    let expected = [
        format!(
            "{:<16} {:<7} {:<13} {}",
            "Name", "Alias", "ServerName", "ProhibitSendQuota"
        ),
        format!(
            "{:<16} {:<7} {:<13} {}",
            "----", "-----", "----------", "-----------------"
        ),
        format!(
            "{:<16} {:<7} {:<13} {}",
            "John Doe", "jdoe", "AM6PR03MB1234", "99 GB (106,300,440,576 bytes)"
        ),
        format!(
            "{:<16} {:<7} {:<13} {}",
            "Shared - Finance", "finance", "AM6PR03MB5678", "Unlimited"
        ),
    ]
    .join("\n")
        + "\n";
    assert_eq!(out, expected);
}

#[test]
fn table_fits_the_width_with_ellipses() {
    let opts = Options {
        width: 40,
        ..Options::default()
    };
    let out = render(Format::Table, &opts, &two_mailboxes());
    for line in out.lines() {
        assert!(
            text::width(line) <= 40,
            "{line:?} is {} wide",
            text::width(line)
        );
    }
    assert!(out.contains('…'), "{out}");
    assert!(out.contains("John Doe"), "short values stay whole: {out}");
    let ascii = render(
        Format::Table,
        &Options {
            ascii: true,
            ..opts
        },
        &two_mailboxes(),
    );
    assert!(ascii.contains("...") && !ascii.contains('…'), "{ascii}");
    // Very narrow: trailing columns are dropped rather than squeezed to nothing.
    let narrow = render(
        Format::Table,
        &Options {
            width: 20,
            ..Options::default()
        },
        &two_mailboxes(),
    );
    assert!(narrow.lines().all(|l| text::width(l) <= 20), "{narrow}");
    assert!(!narrow.contains("ProhibitSendQuota"), "{narrow}");
}

#[test]
fn table_selection_right_aligns_numbers_and_formats_values() {
    let opts = Options {
        width: 300,
        ..Options::default()
    }
    .with_properties("DisplayName, ItemCount,RecipientTypeDetails,EmailAddresses,Missing");
    let out = render(Format::Table, &opts, &two_mailboxes());
    let lines: Vec<&str> = out.lines().collect();
    // PowerShell's enumeration limit: four items, then "...".
    let long = "{SMTP:finance@contoso.com, smtp:f1@contoso.com, smtp:f2@contoso.com, smtp:f3@contoso.com...}";
    let w = text::width(long);
    assert_eq!(
        lines[0],
        format!(
            "{:<16} {:>9} {:<20} {:<w$} {}",
            "DisplayName", "ItemCount", "RecipientTypeDetails", "EmailAddresses", "Missing"
        )
    );
    assert_eq!(
        lines[2],
        format!(
            "{:<16} {:>9} {:<20} {}",
            "John Doe",
            1234,
            "UserMailbox",
            "{SMTP:john.doe@contoso.com, smtp:jdoe@contoso.onmicrosoft.com}"
        )
    );
    assert_eq!(
        lines[3],
        format!(
            "{:<16} {:>9} {:<20} {long}",
            "Shared - Finance", 1234, "UserMailbox"
        )
    );
    // Wildcards expand against the first object's properties.
    let out = render(
        Format::Table,
        &Options::default().with_properties("Prohibit*,*Guid"),
        &two_mailboxes(),
    );
    assert!(out.starts_with("ProhibitSendQuota"), "{out}");
    assert!(
        out.contains("ExchangeGuid") && out.contains("1b2c3d4e-5f60-4718-9a0b-1c2d3e4f5a6b"),
        "{out}"
    );
    assert!(!out.contains("RunspaceId"), "{out}");
}

/// A writer whose contents can be read while a renderer holds it.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.borrow().clone()).unwrap()
    }
}

#[test]
fn table_streams_after_its_window() {
    let mbx = two_mailboxes();
    let shared = Shared::default();
    let mut sink = shared.clone();
    let opts = Options {
        window: 1,
        ..Options::default()
    };
    let mut r = render::renderer(Format::Table, &opts, &mut sink);
    r.render(&mbx[0]).unwrap();
    // One row fills the window: the header and that row are out already.
    assert_eq!(shared.text().lines().count(), 3, "{}", shared.text());
    r.render(&mbx[1]).unwrap();
    assert_eq!(shared.text().lines().count(), 4);
    r.finish().unwrap();
    drop(r);
    // Columns were sized from the first row, so the longer name is cut.
    let text = shared.text();
    assert!(
        text.lines().nth(3).unwrap().starts_with("Shared … "),
        "{text}"
    );

    // With a larger window nothing is written until the window fills or the stream ends.
    let shared = Shared::default();
    let mut sink = shared.clone();
    let mut r = render::renderer(Format::Table, &Options::default(), &mut sink);
    r.render(&mbx[0]).unwrap();
    assert_eq!(shared.text(), "");
    r.finish().unwrap();
    assert_eq!(shared.text().lines().count(), 3);
}

#[test]
fn table_of_many_rows_keeps_every_row() {
    let values: Vec<Value> = (0..500)
        .map(|i| {
            let name = format!("user{i:03}");
            mailbox(&Mbx {
                name: &name,
                alias: &name,
                server: "SRV",
                quota: "Unlimited",
                emails: &[],
            })
        })
        .collect();
    let out = render(
        Format::Table,
        &Options {
            window: 16,
            ..Options::default()
        },
        &values,
    );
    assert_eq!(out.lines().count(), 502);
    assert!(out.lines().last().unwrap().starts_with("user499"));
}

#[test]
fn list_shows_every_property_like_format_list() {
    let out = render(Format::List, &Options::default(), &two_mailboxes()[..1]);
    let expected = "\
Database                  : EURPR03DG123-db045
ProhibitSendQuota         : 99 GB (106,300,440,576 bytes)
UseDatabaseQuotaDefaults  : False
RetainDeletedItemsFor     : 14.00:00:00
RecipientTypeDetails      : UserMailbox
EmailAddresses            : {SMTP:john.doe@contoso.com, smtp:jdoe@contoso.onmicrosoft.com}
ExtensionCustomAttribute1 : {}
WhenCreated               : 2021-03-04 09:15:27Z
ExchangeGuid              : 1b2c3d4e-5f60-4718-9a0b-1c2d3e4f5a6b
ArchiveDatabase           :
ItemCount                 : 1234
Name                      : John Doe
Alias                     : jdoe
ServerName                : AM6PR03MB1234
DisplayName               : John Doe
";
    assert_eq!(out, expected);
    // Blocks are separated by a blank line; a selection limits the names.
    let out = render(
        Format::List,
        &Options::default().with_properties("Name,Alias"),
        &two_mailboxes(),
    );
    assert_eq!(
        out,
        "Name  : John Doe\nAlias : jdoe\n\nName  : Shared - Finance\nAlias : finance\n"
    );
}

#[test]
fn secrets_bytes_hashtables_and_multiline_text() {
    let mut o = Object::with_type_names(["Deserialized.Demo"]);
    let mut ht = Object::with_type_names(["System.Collections.Hashtable", "System.Object"]);
    ht.base = ObjectBase::Dict(vec![(Value::from("Add"), Value::from("smtp:a@b.c"))]);
    o.adapted = vec![
        prop("Password", Value::SecureString("AAECAwQFBgcICQ==".into())),
        prop("Thumbnail", Value::Bytes(vec![1, 2, 3, 4, 5])),
        prop("Changes", Value::object(ht)),
        prop("Notes", "line one\nline two\x1b[31m"),
        prop("Ratio", Value::F64(0.25)),
        prop("Huge", Value::F64(f64::INFINITY)),
        prop("Flag", Value::Char(u16::from(b'Y'))),
    ];
    let values = [Value::object(o)];
    let out = render(Format::List, &Options::default(), &values);
    assert!(
        out.contains("Password  : System.Security.SecureString\n"),
        "{out}"
    );
    assert!(!out.contains("AAECAwQFBgcICQ"), "{out}");
    assert!(out.contains("Thumbnail : {1, 2, 3, 4...}\n"), "{out}");
    assert!(out.contains("Changes   : {[Add, smtp:a@b.c]}\n"), "{out}");
    assert!(
        out.contains("Notes     : line one\n            line two [31m\n"),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "escape sequences are neutralised");
    assert!(
        out.contains("Ratio     : 0.25\n") && out.contains("Huge      : Infinity\n"),
        "{out}"
    );
    assert!(out.contains("Flag      : Y\n"), "{out}");

    let table = render(Format::Table, &Options::default(), &values);
    assert!(
        !table.contains('\x1b') && table.contains("line one line two"),
        "{table}"
    );

    let j: serde_json::Value =
        serde_json::from_str(&render(Format::Jsonl, &Options::default(), &values)).unwrap();
    assert_eq!(
        j["Password"],
        json!(rps_psrp::clixml::json::SECURE_STRING_MARKER)
    );
    assert!(!j.to_string().contains("AAECAwQFBgcICQ"));
    assert_eq!(j["Thumbnail"], json!("AQIDBAU="));
    assert_eq!(j["Changes"], json!({"Add": "smtp:a@b.c"}));
    assert_eq!(j["Huge"], json!("Infinity"));

    let csv = render(Format::Csv, &Options::default(), &values);
    assert!(csv.contains("System.Security.SecureString,AQIDBAU=,Add=smtp:a@b.c,\"line one\nline two\x1b[31m\",0.25"), "{csv:?}");
}

#[test]
fn json_is_one_array_of_records() {
    let out = render(Format::Json, &Options::default(), &two_mailboxes());
    assert!(out.starts_with("[\n  {\n    \"Database\""), "{out}");
    assert!(out.ends_with("\n]\n"), "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let arr = j.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    let m = &arr[0];
    assert_eq!(m["Name"], json!("John Doe"));
    assert_eq!(m["RecipientTypeDetails"], json!("UserMailbox"));
    // The project's JSON form: value types with properties stay objects, others their text.
    assert_eq!(m["ProhibitSendQuota"], json!({"IsUnlimited": false}));
    assert_eq!(m["Database"], json!("EURPR03DG123-db045"));
    assert_eq!(
        m["EmailAddresses"],
        json!([
            "SMTP:john.doe@contoso.com",
            "smtp:jdoe@contoso.onmicrosoft.com"
        ])
    );
    assert_eq!(m["ExtensionCustomAttribute1"], json!([]));
    assert_eq!(m["WhenCreated"], json!("2021-03-04T09:15:27.123+00:00"));
    assert_eq!(m["RetainDeletedItemsFor"], json!("P14D"));
    assert_eq!(m["ItemCount"], json!(1234));
    assert_eq!(m["UseDatabaseQuotaDefaults"], json!(false));
    assert_eq!(m["ArchiveDatabase"], json!(null));
    assert_eq!(
        m["ExchangeGuid"],
        json!("1b2c3d4e-5f60-4718-9a0b-1c2d3e4f5a6b")
    );
    assert_eq!(m["PSComputerName"], json!("outlook.office365.com"));

    let out = render(
        Format::Json,
        &Options::default().with_properties("Alias,Missing"),
        &two_mailboxes(),
    );
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        j,
        json!([{"Alias": "jdoe", "Missing": null}, {"Alias": "finance", "Missing": null}])
    );

    assert_eq!(render(Format::Json, &Options::default(), &[]), "[]\n");
}

#[test]
fn jsonl_is_one_compact_object_per_line() {
    let out = render(
        Format::Jsonl,
        &Options::default().with_properties("Name,ItemCount"),
        &two_mailboxes(),
    );
    assert_eq!(
        out,
        "{\"Name\":\"John Doe\",\"ItemCount\":1234}\n{\"Name\":\"Shared - Finance\",\"ItemCount\":1234}\n"
    );
    let scalars = render(
        Format::Jsonl,
        &Options::default(),
        &[Value::from("x"), Value::I32(2), Value::Nil],
    );
    assert_eq!(scalars, "\"x\"\n2\nnull\n");
    assert_eq!(render(Format::Jsonl, &Options::default(), &[]), "");
}

#[test]
fn csv_quotes_per_rfc_4180() {
    let mut values = two_mailboxes();
    values.push(mailbox(&Mbx {
        name: "Doe, \"JD\" John",
        alias: "jd2",
        server: "S",
        quota: "Unlimited",
        emails: &["SMTP:a@b.c"],
    }));
    let out = render(Format::Csv, &Options::default(), &values);
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "Database,ProhibitSendQuota,UseDatabaseQuotaDefaults,RetainDeletedItemsFor,RecipientTypeDetails,EmailAddresses,ExtensionCustomAttribute1,WhenCreated,ExchangeGuid,ArchiveDatabase,ItemCount,Name,Alias,ServerName,DisplayName"
    );
    assert_eq!(
        lines[1],
        "EURPR03DG123-db045,\"99 GB (106,300,440,576 bytes)\",False,14.00:00:00,UserMailbox,SMTP:john.doe@contoso.com;smtp:jdoe@contoso.onmicrosoft.com,,2021-03-04T09:15:27.123+00:00,1b2c3d4e-5f60-4718-9a0b-1c2d3e4f5a6b,,1234,John Doe,jdoe,AM6PR03MB1234,John Doe"
    );
    // Every item of a list, not just four.
    assert!(lines[2].contains("smtp:f4@contoso.com"), "{}", lines[2]);
    assert!(
        lines[3].contains(",\"Doe, \"\"JD\"\" John\",jd2,S,\"Doe, \"\"JD\"\" John\""),
        "{}",
        lines[3]
    );
    assert_eq!(lines.len(), 5, "three rows, a header and the final CRLF");

    let out = render(
        Format::Csv,
        &Options::default().with_properties("Alias"),
        &values,
    );
    assert_eq!(out, "Alias\r\njdoe\r\nfinance\r\njd2\r\n");
    let out = render(
        Format::Csv,
        &Options::default(),
        &[Value::from("a,b"), Value::I32(1)],
    );
    assert_eq!(out, "Value\r\n\"a,b\"\r\n1\r\n");
}

#[test]
fn clixml_is_an_objs_document_that_reads_back() {
    let values = two_mailboxes();
    let out = render(Format::Clixml, &Options::default(), &values);
    assert!(
        out.starts_with(
            "<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">"
        ),
        "{out}"
    );
    assert!(out.ends_with("</Objs>\n"));
    // Type names repeated across objects are written once and referenced after.
    assert!(out.contains("<TNRef"), "{out}");
    let back = clixml::document_from_slice(out.as_bytes()).unwrap();
    assert_eq!(back, values);

    let empty = render(Format::Clixml, &Options::default(), &[]);
    assert_eq!(
        clixml::document_from_slice(empty.as_bytes()).unwrap(),
        Vec::<Value>::new()
    );
}

#[test]
fn scalars_print_as_lines_in_text_formats() {
    let values = [
        Value::from("plain text"),
        Value::I32(42),
        Value::Bool(true),
        Value::DateTime("2024-05-01T12:00:00Z".into()),
        enum_value("System.DayOfWeek", "Monday", 1),
        Value::Nil,
    ];
    let out = render(Format::Table, &Options::default(), &values);
    assert_eq!(
        out,
        "plain text\n42\nTrue\n2024-05-01 12:00:00Z\nMonday\n\n"
    );
    // Mixed with records, order is kept even while rows are buffered.
    let mbx = two_mailboxes();
    let mixed = [
        mbx[0].clone(),
        Value::from("WARNING-like text"),
        mbx[1].clone(),
    ];
    let out = render(Format::Table, &Options::default(), &mixed);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[2].starts_with("John Doe"));
    assert_eq!(lines[3], "WARNING-like text");
    assert!(lines[4].starts_with("Shared - Finance"));
}

#[test]
fn formats_parse_and_print() {
    for f in Format::ALL {
        assert_eq!(f.to_string().parse::<Format>(), Ok(f));
    }
    assert_eq!(" JSONL ".parse::<Format>(), Ok(Format::Jsonl));
    let err = "yaml".parse::<Format>().unwrap_err();
    assert!(err.to_string().contains("yaml"));
    assert_eq!(Format::default(), Format::Table);
    assert_eq!(Options::default().with_properties(" , ").properties, None);
}

#[test]
fn unknown_types_get_their_first_properties() {
    let mut o = Object::with_type_names(["Deserialized.Some.Other.Type"]);
    o.adapted = (0..10)
        .map(|i| prop(&format!("P{i}"), Value::I32(i)))
        .collect();
    o.extended = vec![prop("PSComputerName", "x")];
    let out = render(Format::Table, &Options::default(), &[Value::object(o)]);
    assert_eq!(out.lines().next().unwrap(), "P0 P1 P2 P3 P4 P5");
    assert_eq!(out.lines().nth(2).unwrap(), " 0  1  2  3  4  5");
}

#[test]
fn type_defaults_apply_only_when_the_object_has_them() {
    // A Mailbox-typed object with a trimmed property set (as Get-EXOMailbox returns).
    let mut o = Object::with_type_names(MAILBOX_TYPES);
    o.adapted = vec![
        prop("UserPrincipalName", "a@contoso.com"),
        prop("PrimarySmtpAddress", "a@contoso.com"),
    ];
    let out = render(Format::Table, &Options::default(), &[Value::object(o)]);
    assert_eq!(
        out.lines().next().unwrap(),
        "UserPrincipalName PrimarySmtpAddress"
    );
    // A mailbox with only some of the default columns still gets all four.
    let mut o = Object::with_type_names(MAILBOX_TYPES);
    o.adapted = vec![prop("Name", "n"), prop("Other", 1)];
    let out = render(Format::Table, &Options::default(), &[Value::object(o)]);
    assert_eq!(
        out.lines().next().unwrap(),
        "Name Alias ServerName ProhibitSendQuota"
    );
}

#[test]
fn auto_format_follows_powershell() {
    // Known type: its table view.
    assert_eq!(render::auto_format(&two_mailboxes()[0]), Format::Table);
    // Unknown type: a table up to four properties (remoting's own not counted), else a list.
    let obj = |n: usize| {
        let mut o = Object::with_type_names(["Deserialized.X"]);
        o.adapted = (0..n).map(|i| prop(&format!("P{i}"), i as i32)).collect();
        o.extended = vec![prop("PSComputerName", "x"), prop("RunspaceId", "y")];
        Value::object(o)
    };
    assert_eq!(render::auto_format(&obj(4)), Format::Table);
    assert_eq!(render::auto_format(&obj(5)), Format::List);
    assert_eq!(render::auto_format(&Value::from("text")), Format::Table);
}

#[test]
fn table_buffer_is_bounded_by_the_window_even_for_plain_lines() {
    let mbx = two_mailboxes();
    let shared = Shared::default();
    let mut sink = shared.clone();
    let opts = Options {
        window: 4,
        ..Options::default()
    };
    let mut r = render::renderer(Format::Table, &opts, &mut sink);
    r.render(&mbx[0]).unwrap();
    for i in 0..2 {
        r.render(&Value::from(format!("line {i}"))).unwrap();
    }
    assert_eq!(shared.text(), "", "three entries buffered");
    r.render(&Value::from("line 2")).unwrap();
    assert_eq!(shared.text().lines().count(), 6, "{}", shared.text());
    r.render(&Value::from("line 3")).unwrap();
    assert!(shared.text().ends_with("line 2\nline 3\n"));
    r.finish().unwrap();
}
