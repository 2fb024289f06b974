//! Every PSRP payload in the pypsrp recordings reassembles and decodes into typed messages.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use rps_psrp::fragment::Defragmenter;
use rps_psrp::message::{MessageType, RawMessage};
use rps_psrp::messages::{Message, PsInvocationState, RunspacePoolState};

/// Per-file PSRP message counts from the inventory table of the peer-fixtures README.
fn readme_counts() -> BTreeMap<String, usize> {
    let readme =
        std::fs::read_to_string(common::peer_fixtures().join("README.md")).expect("README");
    readme
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?;
            if !name.starts_with("test_") || !name.ends_with(".yml") {
                return None;
            }
            Some((name.to_string(), cells.get(6)?.parse().ok()?))
        })
        .collect()
}

#[test]
fn all_recorded_messages_decode_typed() {
    let expected = readme_counts();
    let mut total = 0usize;
    let mut unlisted = 0usize;
    let mut types: BTreeMap<&'static str, usize> = BTreeMap::new();
    for name in common::recordings() {
        let mut in_file = 0usize;
        for (i, raw) in common::raw_messages(&name) {
            let ty = raw.header.message_type;
            assert!(
                !matches!(ty, MessageType::Unknown(_)),
                "{name} #{i}: unknown type {ty}"
            );
            let msg =
                Message::decode(ty, &raw.data).unwrap_or_else(|e| panic!("{name} #{i} {ty}: {e}"));
            assert!(
                !matches!(msg, Message::Other { .. }),
                "{name} #{i}: {ty} fell through to Other"
            );
            assert_eq!(msg.message_type(), ty);
            in_file += 1;
            *types.entry(ty.name()).or_default() += 1;
        }
        match expected.get(&name) {
            Some(n) => assert_eq!(in_file, *n, "{name}: message count"),
            None => unlisted += 1,
        }
        total += in_file;
    }
    if unlisted == 0 {
        // The shared copy: 53 recordings listed in the README inventory (13 held back).
        assert_eq!(
            total,
            expected.values().sum::<usize>(),
            "per type: {types:?}"
        );
        assert_eq!(total, 520, "per type: {types:?}");
        assert_eq!(types.len(), 25, "{types:?}");
    } else {
        // The full pypsrp set, as the README summary counts it.
        assert_eq!(total, 701, "per type: {types:?}");
        assert_eq!(types.len(), 27, "{types:?}");
    }
    for absent in ["PUBLIC_KEY_REQUEST", "USER_EVENT", "RUNSPACEPOOL_HOST_CALL"] {
        assert!(!types.contains_key(absent));
    }
}

#[test]
fn multi_fragment_messages_reassemble() {
    // test_psrp_small_msg_size: a message split in two fragments across envelopes.
    let mut max_fragments = BTreeMap::new();
    for name in ["test_psrp_small_msg_size.yml", "test_client_fetch_file.yml"] {
        let mut highest = 0u64;
        for ex in common::load(name) {
            for env in [Some(&ex.request), ex.response.as_ref()]
                .into_iter()
                .flatten()
            {
                for p in common::payloads(env) {
                    for f in rps_psrp::fragment::FragmentReader::new(Bytes::from(p)) {
                        highest = highest.max(f.expect("fragment").header.fragment_id);
                    }
                }
            }
        }
        max_fragments.insert(name, highest);
        let msgs = common::raw_messages(name);
        assert!(
            msgs.iter()
                .any(|(_, m)| m.header.message_type == MessageType::PipelineState)
        );
    }
    assert!(max_fragments["test_psrp_small_msg_size.yml"] >= 1);
    assert_eq!(max_fragments["test_client_fetch_file.yml"], 10);
}

#[test]
fn execute_ps_payloads_have_expected_values() {
    let msgs = common::raw_messages("test_client_execute_ps.yml");
    let decoded: Vec<Message> = msgs
        .iter()
        .map(|(_, m)| Message::decode(m.header.message_type, &m.data).expect("decode"))
        .collect();
    let outputs: Vec<String> = decoded
        .iter()
        .filter_map(|m| match m {
            Message::PipelineOutput(v) => v.as_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(outputs.first().map(String::as_str), Some("winrm"));
    assert_eq!(outputs.get(1).map(String::as_str), Some("Running"));
    assert!(decoded.iter().any(|m| matches!(m,
        Message::RunspacePoolState(s) if s.state == RunspacePoolState::Opened)));
    assert!(decoded.iter().any(|m| matches!(m,
        Message::PipelineState(s) if s.state == PsInvocationState::Completed)));
    let Some(Message::SessionCapability(sc)) = decoded.first() else {
        panic!("first message is not SESSION_CAPABILITY");
    };
    assert_eq!(sc.protocol_version, "2.3");
    assert_eq!(sc.serialization_version, "1.1.0.1");
}

#[test]
fn typed_payloads_round_trip_through_clixml() {
    for name in [
        "test_psrp_set_runspaces.yml",
        "test_client_execute_ps.yml",
        "test_psrp_pshost_raw_ui_mocked_methods.yml",
        "test_psrp_disconnected_commands.yml",
    ] {
        for (i, raw) in common::raw_messages(name) {
            let ty = raw.header.message_type;
            let msg = Message::decode(ty, &raw.data).expect("decode");
            let again = Message::decode(ty, &msg.encode_data())
                .unwrap_or_else(|e| panic!("{name} #{i} {ty} re-decode: {e}"));
            assert_eq!(again, msg, "{name} #{i} {ty}");
        }
    }
}

#[test]
fn ironposh_creation_xml_decodes() {
    let path = common::peer_fixtures()
        .join("Devolutions__ironPosh/crates/ironposh-psrp/src/tests/resource/creationXml");
    let text = std::fs::read_to_string(&path).expect("creationXml");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("base64");
    let mut d = Defragmenter::default();
    let mut out = Vec::new();
    d.feed(Bytes::from(bytes), &mut out).expect("fragments");
    assert_eq!(out.len(), 2);
    let init = RawMessage::decode(out[1].data.clone()).expect("header");
    assert_eq!(
        init.header.rpid.to_string(),
        "2d6534d0-6b12-40e3-b773-cba26459cfa8"
    );
    match Message::decode(init.header.message_type, &init.data).expect("decode") {
        Message::InitRunspacePool(p) => {
            assert!(!p.host_info.is_host_null);
            assert!(p.host_info.host_default_data.is_some());
        }
        other => panic!("expected INIT_RUNSPACEPOOL, got {:?}", other.message_type()),
    }
}

#[test]
fn recorded_public_key_blob_parses() {
    use rsa::traits::PublicKeyParts;
    let msgs = common::raw_messages("test_psrp_key_exchange_timeout.yml");
    let (_, raw) = msgs
        .iter()
        .find(|(_, m)| m.header.message_type == MessageType::PublicKey)
        .expect("a PUBLIC_KEY message");
    let Message::PublicKey(pk) = Message::decode(raw.header.message_type, &raw.data).unwrap()
    else {
        panic!("not a public key");
    };
    let blob = base64::engine::general_purpose::STANDARD
        .decode(&pk.public_key)
        .unwrap();
    let key = rps_psrp::crypto::parse_public_key_blob(&blob).expect("blob");
    assert_eq!(key.size(), 256, "2048-bit key");
    assert_eq!(key.e().to_string(), "65537");
    // Writing it again gives the same bytes.
    assert_eq!(rps_psrp::crypto::public_key_blob(&key).unwrap(), blob);
}

#[test]
fn powershell_style_create_pipeline_fixture() {
    use rps_psrp::clixml::Value;
    use rps_psrp::messages::{PipelineResultTypes, RemoteStreamOptions};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/psrp/create_pipeline_get_mailbox.xml");
    let data = Bytes::from(std::fs::read(&path).expect("fixture"));
    let Message::CreatePipeline(cp) = Message::decode(MessageType::CreatePipeline, &data).unwrap()
    else {
        panic!("not a CREATE_PIPELINE");
    };
    assert!(cp.no_input);
    assert_eq!(
        cp.remote_stream_options,
        RemoteStreamOptions::ADD_INVOCATION_INFO
    );
    let cmds = &cp.power_shell.statements[0];
    assert_eq!(cmds.len(), 2);
    assert_eq!(cmds[0].name, "Get-Mailbox");
    assert!(!cmds[0].is_script);
    let args: Vec<_> = cmds[0]
        .args
        .iter()
        .map(|a| (a.name.as_deref(), a.value.clone()))
        .collect();
    assert_eq!(
        args,
        [
            (Some("Identity"), Value::from("alice@contoso.com")),
            (Some("ResultSize"), Value::from("Unlimited")),
            (Some("IgnoreDefaultScope"), Value::Nil),
        ]
    );
    assert_eq!(cmds[0].merges.information, Some(PipelineResultTypes::None));
    assert_eq!(cmds[1].merges.error, None);
    assert_eq!(cmds[1].args[0].name, None);
    assert_eq!(cmds[1].args[0].value, Value::from("DisplayName"));
    // Our encoding of it decodes to the same request.
    let again = Message::decode(
        MessageType::CreatePipeline,
        &Message::CreatePipeline(cp.clone()).encode_data(),
    )
    .unwrap();
    assert_eq!(again, Message::CreatePipeline(cp));
}
