//! Message header and payload decoding: round trips, no panics on arbitrary bytes, errors.

use bytes::Bytes;
use proptest::prelude::*;
use rps_psrp::message::{
    Destination, HEADER_LEN, MessageError, MessageHeader, MessageType, RawMessage,
};
use rps_psrp::messages::{Message, PayloadError};
use uuid::Uuid;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn header_round_trip(
        client in any::<bool>(),
        ty in any::<u32>(),
        rpid in any::<u128>(),
        pid in any::<u128>(),
        data in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let h = MessageHeader {
            destination: if client { Destination::Client } else { Destination::Server },
            message_type: MessageType::from_u32(ty),
            rpid: Uuid::from_u128(rpid),
            pid: Uuid::from_u128(pid),
        };
        let m = RawMessage { header: h, data: Bytes::from(data) };
        let back = RawMessage::decode(Bytes::from(m.encode())).unwrap();
        prop_assert_eq!(back.header.message_type.to_u32(), ty);
        prop_assert_eq!(back, m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), ty in any::<u32>()) {
        let b = Bytes::from(bytes);
        let _ = RawMessage::decode(b.clone());
        let _ = Message::decode(MessageType::from_u32(ty), &b);
        for t in MessageType::ALL {
            let _ = Message::decode(*t, &b);
        }
    }
}

#[test]
fn guid_fields_use_dotnet_byte_order() {
    let rpid = Uuid::parse_str("2d353305-c595-1547-bf50-1f449ff1fc9b").unwrap();
    let h = MessageHeader {
        destination: Destination::Server,
        message_type: MessageType::SessionCapability,
        rpid,
        pid: Uuid::nil(),
    };
    let mut out = Vec::new();
    h.write(&mut out);
    assert_eq!(out.len(), HEADER_LEN);
    assert_eq!(&out[..8], &[2, 0, 0, 0, 2, 0, 1, 0]);
    assert_eq!(&out[8..12], &[0x05, 0x33, 0x35, 0x2d]);
}

#[test]
fn unknown_type_survives_round_trip() {
    let data = Bytes::from_static(b"<S>x</S>");
    let ty = MessageType::from_u32(0x0005_0001);
    let m = Message::decode(ty, &data).unwrap();
    assert_eq!(
        m,
        Message::Other {
            message_type: ty,
            data: data.clone()
        }
    );
    assert_eq!(m.message_type().to_u32(), 0x0005_0001);
    assert_eq!(m.encode_data(), data);
    assert_eq!(ty.name(), "UNKNOWN");
    assert_eq!(ty.to_string(), "UNKNOWN(0x00050001)");
}

#[test]
fn payload_errors_name_message_and_field() {
    let data = Bytes::from_static(b"<Obj RefId=\"0\"><MS><I32 N=\"Other\">4</I32></MS></Obj>");
    assert_eq!(
        Message::decode(MessageType::PipelineState, &data),
        Err(PayloadError::MissingProperty {
            message: "PIPELINE_STATE",
            field: "PipelineState"
        })
    );
    let data =
        Bytes::from_static(b"<Obj RefId=\"0\"><MS><I32 N=\"PipelineState\">42</I32></MS></Obj>");
    let err = Message::decode(MessageType::PipelineState, &data).unwrap_err();
    assert_eq!(
        err,
        PayloadError::InvalidValue {
            message: "PIPELINE_STATE",
            field: "PipelineState",
            value: "42".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "PIPELINE_STATE: invalid PipelineState value 42"
    );
    let data = Bytes::from_static(b"<S>x</S>");
    assert!(matches!(
        Message::decode(MessageType::RunspacePoolState, &data),
        Err(PayloadError::WrongType {
            message: "RUNSPACEPOOL_STATE",
            ..
        })
    ));
    assert!(matches!(
        Message::decode(MessageType::PipelineOutput, &Bytes::from_static(b"<S>x")),
        Err(PayloadError::Clixml {
            message: "PIPELINE_OUTPUT",
            ..
        })
    ));
}

#[test]
fn header_errors() {
    assert_eq!(
        RawMessage::decode(Bytes::from_static(&[1, 0, 0])).unwrap_err(),
        MessageError::Truncated { available: 3 }
    );
    let mut b = vec![0u8; HEADER_LEN];
    b[0] = 7;
    assert_eq!(
        RawMessage::decode(Bytes::from(b)).unwrap_err(),
        MessageError::InvalidDestination(7)
    );
}

mod typed_round_trip {
    use super::*;
    use rps_psrp::clixml::Value;
    use rps_psrp::messages::{
        Argument, Command, CreatePipeline, HostCall, HostMethod, Merges, PipelineResultTypes,
        PipelineStateInfo, PowerShell, PsInvocationState, RunspacePoolState, RunspacePoolStateInfo,
        SessionCapability, SetMaxRunspaces,
    };

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 <>&'\"_\\-]{0,16}"
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            text().prop_map(Value::Str),
            any::<i32>().prop_map(Value::I32),
            any::<i64>().prop_map(Value::I64),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Nil),
        ]
    }

    fn argument() -> impl Strategy<Value = Argument> {
        (prop::option::of("[A-Za-z]{1,12}"), value())
            .prop_map(|(name, value)| Argument { name, value })
    }

    fn command() -> impl Strategy<Value = Command> {
        (
            "[A-Za-z]{1,8}-[A-Za-z]{1,8}",
            any::<bool>(),
            prop::collection::vec(argument(), 0..4),
            any::<bool>(),
        )
            .prop_map(|(name, merged, args, local)| Command {
                name,
                is_script: false,
                use_local_scope: local.then_some(true),
                merges: if merged {
                    Merges::all_to_output()
                } else {
                    Merges::default()
                },
                args,
            })
    }

    fn round_trip(m: Message) -> Result<(), TestCaseError> {
        let again = Message::decode(m.message_type(), &m.encode_data())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again, m);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn create_pipeline(
            statements in prop::collection::vec(prop::collection::vec(command(), 1..3), 1..3),
            no_input in any::<bool>(),
            history in prop::option::of(text()),
        ) {
            let mut ps = PowerShell::new(Vec::new());
            ps.statements = statements;
            ps.history = history;
            let mut cp = CreatePipeline::new(ps);
            cp.no_input = no_input;
            round_trip(Message::CreatePipeline(Box::new(cp)))?;
        }

        #[test]
        fn small_payloads(
            ci in any::<i64>(),
            n in any::<i32>(),
            method in 1..57i32,
            params in prop::collection::vec(value(), 0..4),
            state in 0..7i32,
            pool_state in 0..10i32,
            version in "2\\.[1-3]",
        ) {
            round_trip(SetMaxRunspaces { max_runspaces: n, call_id: ci }.into())?;
            round_trip(SessionCapability::new(&version).into())?;
            round_trip(Message::PipelineHostCall(HostCall {
                call_id: ci,
                method: HostMethod::from_i32(method),
                parameters: params,
            }))?;
            round_trip(PipelineStateInfo {
                state: PsInvocationState::from_i32(state).unwrap(),
                error_record: None,
            }.into())?;
            round_trip(RunspacePoolStateInfo {
                state: RunspacePoolState::from_i32(pool_state).unwrap(),
                error: None,
            }.into())?;
            prop_assert_eq!(PipelineResultTypes::from_i32(7), Some(PipelineResultTypes::All));
        }
    }
}
