//! Property tests: encoders with arbitrary values, decoder on arbitrary bytes.

use proptest::prelude::*;
use rps_wsman::{
    Body, CommandLine, CommandState, Envelope, Header, ReceiveResponse, Send, Shell, Signal,
    Stream, ns,
};
use uuid::Uuid;

/// What XML 1.0 can carry: other control characters become U+FFFD.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// Element text is trimmed of XML whitespace on decode.
fn clean_trim(s: &str) -> String {
    clean(s)
        .trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
        .to_owned()
}

/// Strings heavy in markup characters, whitespace and control characters.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just('<'),
                Just('>'),
                Just('&'),
                Just('"'),
                Just('\''),
                Just(' '),
                Just('\t'),
                Just('\r'),
                Just('\n'),
                Just('\u{0}'),
                Just('\u{1b}'),
                Just(']'),
                Just(';'),
                Just('é'),
                Just('💥'),
                any::<char>(),
                proptest::char::range('a', 'z'),
            ],
            0..40
        )
        .prop_map(|v| v.into_iter().collect()),
    ]
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn round(env: &Envelope) -> Envelope {
    let xml = env.encode();
    let back = Envelope::decode(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    // encoding the decoded value again changes nothing
    assert_eq!(
        back.encode(),
        Envelope::decode(back.encode().as_bytes())
            .expect("again")
            .encode()
    );
    back
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn header_values_survive(
        to in nasty(), action in nasty(), ruri in nasty(), id in uuid(), session in uuid(),
        selectors in proptest::collection::vec((nasty(), nasty()), 0..4),
        options in proptest::collection::vec((nasty(), nasty(), any::<Option<bool>>()), 0..4),
        timeout in 0u64..100_000, max in any::<u64>(), seq in any::<Option<u64>>(),
    ) {
        let mut h = Header::request(to.clone(), action.clone(), ruri.clone(), id)
            .with_session_id(session)
            .with_operation_timeout_secs(timeout)
            .with_max_envelope_size(max);
        for (n, v) in &selectors {
            h = h.with_selector(n.clone(), v.clone());
        }
        for (n, v, mc) in &options {
            h = h.with_option(n.clone(), v.clone(), *mc);
        }
        h.sequence_id = seq;
        let back = round(&Envelope::new(h, Body::Get)).header;
        prop_assert_eq!(back.to.clone(), Some(clean_trim(&to)));
        prop_assert_eq!(back.action.clone(), Some(clean_trim(&action)));
        prop_assert_eq!(back.resource_uri.clone(), Some(clean_trim(&ruri)));
        prop_assert_eq!(back.message_uuid(), Some(id));
        prop_assert_eq!(back.session_id.as_deref().and_then(rps_wsman::parse_uuid_urn), Some(session));
        let got: Vec<(String, String)> = back.selectors.iter().map(|s| (s.name.clone(), s.value.clone())).collect();
        let want: Vec<(String, String)> = selectors.iter().map(|(n, v)| (clean(n), clean_trim(v))).collect();
        prop_assert_eq!(got, want);
        let got: Vec<(String, String, Option<bool>)> = back.options.iter().flat_map(|o| o.options.iter())
            .map(|o| (o.name.clone(), o.value.clone(), o.must_comply)).collect();
        let want: Vec<(String, String, Option<bool>)> = options.iter().map(|(n, v, m)| (clean(n), clean_trim(v), *m)).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(back.max_envelope_size.map(|m| m.value), Some(max));
        prop_assert_eq!(back.operation_timeout, Some(format!("PT{timeout}S")));
        prop_assert_eq!(back.sequence_id, seq);
    }

    #[test]
    fn streams_survive_byte_for_byte(
        streams in proptest::collection::vec(
            (nasty(), proptest::option::of(uuid()), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..2048)),
            0..40),
        state in proptest::option::of((nasty(), proptest::option::of(any::<i64>()))),
    ) {
        let streams: Vec<Stream> = streams.into_iter().map(|(name, id, end, data)| {
            let mut s = Stream::new(name, id, data);
            s.end = end;
            s
        }).collect();
        let command_state = state.map(|(state, exit_code)| CommandState { command_id: None, state, exit_code });
        let body = Body::ReceiveResponse(ReceiveResponse { streams: streams.clone(), command_state: command_state.clone(), extra: Vec::new() });
        let back = round(&Envelope::new(Header::default(), body));
        let Body::ReceiveResponse(r) = &back.body else { panic!("{:?}", back.body) };
        prop_assert_eq!(r.streams.len(), streams.len());
        for (a, b) in r.streams.iter().zip(&streams) {
            prop_assert_eq!(&a.data, &b.data);
            prop_assert_eq!(&a.name, &clean(&b.name));
            prop_assert_eq!(&a.command_id, &b.command_id);
            prop_assert_eq!(a.end, b.end);
        }
        prop_assert_eq!(r.command_state.as_ref().map(|c| (clean_trim(&c.state), c.exit_code)),
            command_state.as_ref().map(|c| (clean_trim(&c.state), c.exit_code)));
        // Send carries the same streams
        let back = round(&Envelope::new(Header::default(), Body::Send(Send { streams: streams.clone() })));
        prop_assert_eq!(back.streams().map(|s| s.data.clone()).collect::<Vec<_>>(),
            streams.iter().map(|s| s.data.clone()).collect::<Vec<_>>());
    }

    #[test]
    fn shell_command_and_signal_survive(
        id in uuid(), creation in proptest::collection::vec(any::<u8>(), 0..512),
        name in nasty(), wd in nasty(), env in proptest::collection::vec((nasty(), nasty()), 0..3),
        command in nasty(), args in proptest::collection::vec(nasty(), 0..3), code in nasty(),
    ) {
        let shell = Shell {
            name: Some(name.clone()),
            working_directory: Some(wd.clone()),
            environment: env.iter().map(|(n, v)| rps_wsman::EnvVar { name: n.clone(), value: v.clone() }).collect(),
            ..Shell::powershell(id, creation.clone())
        };
        let back = round(&Envelope::new(Header::default(), Body::Create(shell)));
        prop_assert_eq!(back.shell_uuid(), Some(id));
        let Body::Create(s) = &back.body else { panic!() };
        prop_assert_eq!(s.creation_xml.as_deref(), Some(creation.as_slice()));
        prop_assert_eq!(s.name.clone(), Some(clean_trim(&name)));
        prop_assert_eq!(s.working_directory.clone(), Some(clean_trim(&wd)));
        let got: Vec<(String, String)> = s.environment.iter().map(|e| (e.name.clone(), e.value.clone())).collect();
        let want: Vec<(String, String)> = env.iter().map(|(n, v)| (clean(n), clean(v))).collect();
        prop_assert_eq!(got, want);

        let back = round(&Envelope::new(Header::default(), Body::Command(CommandLine::winrs(command.clone(), args.clone()))));
        let Body::Command(c) = &back.body else { panic!() };
        prop_assert_eq!(c.command.clone(), Some(clean_trim(&command)));
        prop_assert_eq!(c.arguments.clone(), args.iter().map(|a| clean_trim(a)).collect::<Vec<_>>());

        let back = round(&Envelope::new(Header::default(), Body::Signal(Signal { command_id: Some(id.to_string()), code: code.clone() })));
        let Body::Signal(s) = &back.body else { panic!() };
        prop_assert_eq!(s.code.clone(), clean_trim(&code));
        prop_assert_eq!(back.command_uuid(), Some(id));
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::decode(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_mutated_envelopes(cut in 0usize..2000, pos in 0usize..2000, byte in any::<u8>()) {
        let env = Envelope::new(
            Header::request("http://h/wsman", ns::action::SEND, ns::resource::POWERSHELL, Uuid::nil())
                .with_shell_id(Uuid::nil()),
            Body::send("stdin", Some(Uuid::nil()), vec![1, 2, 3, 4, 5]),
        );
        let mut bytes = env.encode().into_bytes();
        let p = pos % bytes.len();
        bytes[p] = byte;
        bytes.truncate(cut.min(bytes.len()));
        let _ = Envelope::decode(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    #[test]
    fn large_payloads_survive(seed in any::<u8>(), len in 400_000usize..1_200_000) {
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        let env = Envelope::new(Header::default(), Body::send("stdin", None, data.clone()));
        let back = round(&env);
        prop_assert_eq!(back.streams().next().map(|s| &s.data), Some(&data));
    }
}
