//! Typed record views on real payloads from the peer recordings.

mod clixml_support;

use base64::Engine as _;
use clixml_support::{Msg, peer_fixtures, recorded_messages};
use rps_psrp::clixml::{self, Value};
use rps_psrp::records::*;

fn find(msgs: &[Msg], file: &str, exchange: usize, message_type: u32) -> Value {
    let m = msgs
        .iter()
        .find(|m| m.file == file && m.exchange == exchange && m.message_type == message_type)
        .unwrap_or_else(|| panic!("no message {message_type:#x} in {file} #{exchange}"));
    clixml::from_slice(&m.data).unwrap()
}

fn round_trip<T: PartialEq + std::fmt::Debug>(
    v: T,
    to: impl Fn(&T) -> Value,
    from: impl Fn(&Value) -> Result<T, RecordError>,
) {
    let value = to(&v);
    // Through the wire form too.
    let again = clixml::from_slice(clixml::to_string(&value).as_bytes()).unwrap();
    assert_eq!(from(&again).unwrap(), v);
}

#[test]
fn error_record_from_recording() {
    let msgs = recorded_messages();
    let v = find(&msgs, "test_psrp_merge_commands.yml", 4, 0x0004_1005);
    let er = ErrorRecord::from_value(&v).unwrap();
    assert_eq!(er.exception_message, "error stream");
    assert_eq!(
        er.exception_type.as_deref(),
        Some("Microsoft.PowerShell.Commands.WriteErrorException")
    );
    assert_eq!(
        er.fully_qualified_error_id,
        "Microsoft.PowerShell.Commands.WriteErrorException"
    );
    assert_eq!(
        er.category,
        CategoryInfo {
            category: 0,
            activity: "Write-Error".into(),
            reason: "WriteErrorException".into(),
            target_name: String::new(),
            target_type: String::new(),
            message: Some("NotSpecified: (:) [Write-Error], WriteErrorException".into()),
        }
    );
    assert_eq!(er.category.category_name(), "NotSpecified");
    assert_eq!(er.target_object, None);
    assert_eq!(
        er.script_stack_trace.as_deref(),
        Some("at <ScriptBlock>, <No file>: line 5")
    );
    assert_eq!(er.error_details_message, None);
    let inv = er.invocation.as_ref().unwrap();
    assert_eq!(inv.history_id, Some(1));
    assert_eq!(inv.pipeline_length, Some(0));
    assert_eq!(inv.script_line_number, Some(0));
    assert_eq!(inv.command_name, None);
    assert_eq!(inv.position_message.as_deref(), Some(""));
    assert_eq!(
        er.to_string(),
        "error stream\n    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException\n    + FullyQualifiedErrorId : Microsoft.PowerShell.Commands.WriteErrorException"
    );
    round_trip(er, ErrorRecord::to_value, ErrorRecord::from_value);
}

#[test]
fn error_record_command_not_found() {
    let path = peer_fixtures()
        .join("Devolutions__ironPosh/crates/ironposh-psrp/src/tests/resource/error_record.xml");
    let v = clixml::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let er = ErrorRecord::from_value(&v).unwrap();
    assert_eq!(
        er.exception_type.as_deref(),
        Some("System.Management.Automation.CommandNotFoundException")
    );
    assert_eq!(er.category.category, 13);
    assert_eq!(er.category.category_name(), "ObjectNotFound");
    assert_eq!(er.target_object, Some(Value::Str("ed".into())));
    let inv = er.invocation.as_ref().unwrap();
    assert_eq!(inv.line.as_deref(), Some("ed"));
    assert_eq!(inv.offset_in_line, Some(1));
    assert_eq!(
        er.to_string(),
        "ed : The term 'ed' is not recognized as the name of a cmdlet, function, script file, or operable program. \
Check the spelling of the name, or if a path was included, verify that the path is correct and try again.\n\
At line:1 char:1\n+ ed\n+ ~~\n    + CategoryInfo          : ObjectNotFound: (ed:String) [], CommandNotFoundException\n    \
+ FullyQualifiedErrorId : CommandNotFoundException"
    );
    round_trip(er, ErrorRecord::to_value, ErrorRecord::from_value);
}

#[test]
fn information_record_from_recording() {
    let msgs = recorded_messages();
    let v = find(&msgs, "test_psrp_merge_commands.yml", 4, 0x0004_1011);
    let ir = InformationRecord::from_value(&v).unwrap();
    assert_eq!(
        ir,
        InformationRecord {
            message_data: Value::Str("information stream".into()),
            source: "Write-Information".into(),
            time_generated: "2018-06-13T23:46:28.00516+00:00".into(),
            tags: vec![],
            user: "WIN-NNMU24VVKJ0\\vagrant".into(),
            computer: "WIN-NNMU24VVKJ0".into(),
            process_id: 2636,
            native_thread_id: 2840,
            managed_thread_id: 7,
        }
    );
    round_trip(
        ir,
        InformationRecord::to_value,
        InformationRecord::from_value,
    );
}

#[test]
fn progress_record_from_recording() {
    let msgs = recorded_messages();
    let v = find(&msgs, "test_client_copy_expand_vars.yml", 5, 0x0004_1010);
    let pr = ProgressRecord::from_value(&v).unwrap();
    assert_eq!(
        pr,
        ProgressRecord {
            activity: "Preparing modules for first use.".into(),
            activity_id: 0,
            status_description: " ".into(),
            current_operation: None,
            parent_activity_id: -1,
            percent_complete: -1,
            seconds_remaining: -1,
            record_type: ProgressRecordType::Completed,
        }
    );
    round_trip(pr, ProgressRecord::to_value, ProgressRecord::from_value);
    // Every recorded progress record reads.
    let n = msgs
        .iter()
        .filter(|m| m.message_type == 0x0004_1010)
        .map(|m| ProgressRecord::from_value(&clixml::from_slice(&m.data).unwrap()).unwrap())
        .collect::<Vec<_>>()
        .len();
    assert_eq!(n, 27);
}

#[test]
fn progress_primitive_from_stderr_document() {
    let path = peer_fixtures()
        .join("jborean93__pypsrp/tests/tests_pypsrp/data/test_sanitise_clixml_with_error.xml");
    let values = clixml::document_from_slice(&std::fs::read(path).unwrap()).unwrap();
    let pr = values
        .iter()
        .find_map(|v| match &v.as_object()?.get("Record") {
            Some(p @ Value::Progress(_)) => Some(ProgressRecord::from_value(p).unwrap()),
            _ => None,
        });
    let pr = pr.expect("a <PR> in the stderr document");
    assert_eq!(pr.activity, "Preparing modules for first use.");
    assert_eq!(pr.record_type, ProgressRecordType::Completed);
    assert_eq!(pr.parent_activity_id, -1);
    assert_eq!(pr.current_operation, None);
    // Pretty-printed `<SD>` keeps its whitespace (a newline and indentation).
    assert_eq!(pr.status_description.trim(), "");
}

#[test]
fn informational_records_from_recording() {
    let msgs = recorded_messages();
    let debug = InformationalRecord::from_value(&find(
        &msgs,
        "test_psrp_merge_commands.yml",
        4,
        0x0004_1007,
    ))
    .unwrap();
    assert_eq!(debug.kind, Some(InformationalKind::Debug));
    assert_eq!(debug.message, "debug stream");
    assert_eq!(debug.to_string(), "DEBUG: debug stream");
    let inv = debug.invocation.as_ref().unwrap();
    assert_eq!(inv.history_id, Some(1));
    let verbose = InformationalRecord::from_value(&find(
        &msgs,
        "test_psrp_merge_commands.yml",
        4,
        0x0004_1008,
    ))
    .unwrap();
    assert_eq!(verbose.kind, Some(InformationalKind::Verbose));
    assert_eq!(verbose.message, "verbose stream");
    let warning = InformationalRecord::from_value(&find(
        &msgs,
        "test_psrp_merge_commands.yml",
        4,
        0x0004_1009,
    ))
    .unwrap();
    assert_eq!(warning.to_string(), "WARNING: warning stream");
    for r in [debug, verbose, warning] {
        round_trip(
            r,
            InformationalRecord::to_value,
            InformationalRecord::from_value,
        );
    }
}

#[test]
fn application_private_data_from_recording() {
    let msgs = recorded_messages();
    let apd = ApplicationPrivateData::from_value(&find(
        &msgs,
        "test_client_copy_expand_vars.yml",
        1,
        0x0002_1009,
    ))
    .unwrap();
    let t = apd.ps_version_table().unwrap();
    assert_eq!(t.ps_version.as_deref(), Some("5.1.17763.1971"));
    assert_eq!(t.ps_edition.as_deref(), Some("Desktop"));
    assert_eq!(
        t.ps_compatible_versions,
        ["1.0", "2.0", "3.0", "4.0", "5.0", "5.1.17763.1971"]
    );
    assert_eq!(t.ps_remoting_protocol_version.as_deref(), Some("2.3"));
    assert_eq!(t.serialization_version.as_deref(), Some("1.1.0.1"));
    assert_eq!(t.clr_version.as_deref(), Some("4.0.30319.42000"));
    round_trip(
        apd,
        ApplicationPrivateData::to_value,
        ApplicationPrivateData::from_value,
    );
}

#[test]
fn host_info_from_init_runspacepool() {
    let msgs = recorded_messages();
    let irp = find(&msgs, "test_psrp_open_runspace.yml", 0, 0x0001_0004);
    let hi = HostInfo::from_value(irp.as_object().unwrap().get("HostInfo").unwrap()).unwrap();
    assert_eq!(hi, HostInfo::default());
    // A PowerShell client's full host data (ironPosh creationXml).
    let b64 = std::fs::read_to_string(
        peer_fixtures()
            .join("Devolutions__ironPosh/crates/ironposh-psrp/src/tests/resource/creationXml"),
    )
    .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    let mut irp = None;
    clixml_support::messages(&bytes, |t, data| {
        if t == 0x0001_0004 {
            irp = Some(clixml::from_slice(&data).unwrap());
        }
    });
    let irp = irp.expect("INIT_RUNSPACEPOOL in creationXml");
    let hi = HostInfo::from_value(irp.as_object().unwrap().get("HostInfo").unwrap()).unwrap();
    assert!(
        !hi.is_host_null && !hi.is_host_ui_null && !hi.is_host_raw_ui_null && !hi.use_runspace_host
    );
    assert!(hi.host_default_data.is_some());
    round_trip(hi, HostInfo::to_value, HostInfo::from_value);
}

#[test]
fn credential_debug_hides_password() {
    let c = PsCredential {
        user_name: "DOMAIN\\admin".into(),
        password: "c2VjcmV0Y2lwaGVy".into(),
    };
    let dbg = format!("{c:?}");
    assert!(
        dbg.contains("DOMAIN\\\\admin") && !dbg.contains("c2VjcmV0Y2lwaGVy"),
        "{dbg}"
    );
    let xml = clixml::to_string(&c.to_value());
    assert!(
        xml.contains("<SS N=\"Password\">c2VjcmV0Y2lwaGVy</SS>"),
        "{xml}"
    );
    round_trip(c, PsCredential::to_value, PsCredential::from_value);
    let bad = clixml::from_slice(
        b"<Obj><Props><S N=\"UserName\">u</S><S N=\"Password\">p</S></Props></Obj>",
    )
    .unwrap();
    assert_eq!(
        PsCredential::from_value(&bad),
        Err(RecordError::WrongType {
            record: "PSCredential",
            property: "Password",
            expected: "a SecureString"
        })
    );
}

#[test]
fn command_metadata_round_trip_and_errors() {
    let xml = r#"<Obj RefId="0"><TN RefId="0"><T>Deserialized.System.Management.Automation.CommandInfo</T></TN><Props>
      <S N="Name">Get-Mailbox</S><Obj N="CommandType" RefId="1"><TN RefId="1"><T>System.Management.Automation.CommandTypes</T><T>System.Enum</T></TN><ToString>Function</ToString><I32>2</I32></Obj>
      <S N="Namespace">tmp_exchange</S><Nil N="HelpUri"/><Obj N="OutputType" RefId="2"><LST/></Obj>
      <Obj N="Parameters" RefId="3"><DCT><En><S N="Key">Identity</S><Obj N="Value" RefId="4"><Props><S N="Name">Identity</S>
      <S N="ParameterType">Microsoft.Exchange.Configuration.Tasks.MailboxIdParameter</S><Obj N="Aliases" RefId="5"><LST><S>Id</S></LST></Obj>
      <B N="IsDynamic">false</B><B N="SwitchParameter">false</B></Props></Obj></En></DCT></Obj></Props></Obj>"#;
    let cm = CommandMetadata::from_value(&clixml::from_slice(xml.as_bytes()).unwrap()).unwrap();
    assert_eq!(cm.name, "Get-Mailbox");
    assert_eq!(cm.command_type, "Function");
    assert_eq!(cm.command_type_value, Some(2));
    assert_eq!(cm.namespace.as_deref(), Some("tmp_exchange"));
    assert_eq!(cm.help_uri, None);
    assert_eq!(
        cm.parameters,
        [ParameterMetadata {
            name: "Identity".into(),
            parameter_type: "Microsoft.Exchange.Configuration.Tasks.MailboxIdParameter".into(),
            aliases: vec!["Id".into()],
            is_dynamic: false,
            switch_parameter: false,
        }]
    );
    round_trip(cm, CommandMetadata::to_value, CommandMetadata::from_value);
    let e = CommandMetadata::from_value(
        &clixml::from_slice(b"<Obj><Props><S N=\"Name\">x</S></Props></Obj>").unwrap(),
    );
    assert_eq!(
        e,
        Err(RecordError::MissingProperty {
            record: "CommandMetadata",
            property: "CommandType"
        })
    );
    assert_eq!(
        ErrorRecord::from_value(&Value::I32(1))
            .unwrap_err()
            .to_string(),
        "ErrorRecord: value is not an object"
    );
}
