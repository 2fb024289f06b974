//! Cmdlet line parsing: real Exchange command lines, script refusals, argv words, round trips.

use proptest::prelude::*;
use rps_psrp::clixml::{ObjectBase, Value};
use rps_session::cmdline::{
    self, CmdletLine, CmdlineError, MAX_DEPTH, MAX_LINE_LEN, ParsedCommand, ParsedParameter, array,
    hashtable, parse_args, parse_line, parse_script,
};

fn p(name: &str, value: impl Into<Value>) -> ParsedParameter {
    ParsedParameter::named(name, value)
}

fn s(text: &str) -> Value {
    Value::Str(text.to_owned())
}

fn cmd(name: &str, parameters: Vec<ParsedParameter>) -> ParsedCommand {
    ParsedCommand {
        name: name.to_owned(),
        parameters,
    }
}

fn single(line: &str) -> ParsedCommand {
    let parsed = parse_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(parsed.commands.len(), 1, "{line}");
    parsed.commands.into_iter().next().unwrap()
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

fn items(v: &Value) -> &[Value] {
    match &v.as_object().expect("an object").base {
        ObjectBase::List(_, items) => items,
        other => panic!("not a list: {other:?}"),
    }
}

/// Real command lines from Exchange administration, with the structure each must parse to.
#[test]
fn exchange_lines_parse_to_the_expected_commands() {
    let table: Vec<(&str, Vec<ParsedCommand>)> = vec![
        ("Get-Mailbox", vec![cmd("Get-Mailbox", vec![])]),
        (
            "Get-Mailbox -ResultSize 5",
            vec![cmd("Get-Mailbox", vec![p("ResultSize", 5)])],
        ),
        (
            r#"Get-Mailbox -Identity "john doe" -ResultSize Unlimited"#,
            vec![cmd(
                "Get-Mailbox",
                vec![p("Identity", "john doe"), p("ResultSize", "Unlimited")],
            )],
        ),
        (
            "Set-Mailbox -Identity x -EmailAddresses @{Add='smtp:a@b.c'}",
            vec![cmd(
                "Set-Mailbox",
                vec![
                    p("Identity", "x"),
                    p(
                        "EmailAddresses",
                        hashtable(vec![(s("Add"), s("smtp:a@b.c"))]),
                    ),
                ],
            )],
        ),
        (
            "Get-Recipient -RecipientTypeDetails UserMailbox,SharedMailbox -ResultSize 100",
            vec![cmd(
                "Get-Recipient",
                vec![
                    p(
                        "RecipientTypeDetails",
                        array(vec![s("UserMailbox"), s("SharedMailbox")]),
                    ),
                    p("ResultSize", 100),
                ],
            )],
        ),
        (
            "Get-MailboxStatistics x | Select-Object -Property DisplayName",
            vec![
                cmd(
                    "Get-MailboxStatistics",
                    vec![ParsedParameter::positional("x")],
                ),
                cmd("Select-Object", vec![p("Property", "DisplayName")]),
            ],
        ),
        (
            "Set-Mailbox john -ProhibitSendQuota 50GB -IssueWarningQuota 49.5GB",
            vec![cmd(
                "Set-Mailbox",
                vec![
                    ParsedParameter::positional("john"),
                    p("ProhibitSendQuota", 50i64 << 30),
                    p("IssueWarningQuota", Value::F64(49.5 * (1u64 << 30) as f64)),
                ],
            )],
        ),
        (
            "Remove-Mailbox -Identity 'O''Brien' -Confirm:$false -Force",
            vec![cmd(
                "Remove-Mailbox",
                vec![
                    p("Identity", "O'Brien"),
                    p("Confirm", false),
                    ParsedParameter::switch("Force"),
                ],
            )],
        ),
        (
            "Set-CASMailbox alice -OWAEnabled $true -ActiveSyncEnabled:$false -PopEnabled $null",
            vec![cmd(
                "Set-CASMailbox",
                vec![
                    ParsedParameter::positional("alice"),
                    p("OWAEnabled", true),
                    p("ActiveSyncEnabled", false),
                    p("PopEnabled", Value::Nil),
                ],
            )],
        ),
        (
            "Add-MailboxPermission -Identity shared@contoso.com -User bob@contoso.com -AccessRights FullAccess -InheritanceType All -AutoMapping:$false",
            vec![cmd(
                "Add-MailboxPermission",
                vec![
                    p("Identity", "shared@contoso.com"),
                    p("User", "bob@contoso.com"),
                    p("AccessRights", "FullAccess"),
                    p("InheritanceType", "All"),
                    p("AutoMapping", false),
                ],
            )],
        ),
        (
            "Set-Mailbox -Identity x -EmailAddresses @{Add='smtp:a@b.c','smtp:d@e.f'; Remove='smtp:old@b.c'}",
            vec![cmd(
                "Set-Mailbox",
                vec![
                    p("Identity", "x"),
                    p(
                        "EmailAddresses",
                        hashtable(vec![
                            (s("Add"), array(vec![s("smtp:a@b.c"), s("smtp:d@e.f")])),
                            (s("Remove"), s("smtp:old@b.c")),
                        ]),
                    ),
                ],
            )],
        ),
        (
            r#"Get-Recipient -Filter "EmailAddresses -like '*@contoso.com'" -ResultSize 1000"#,
            vec![cmd(
                "Get-Recipient",
                vec![
                    p("Filter", "EmailAddresses -like '*@contoso.com'"),
                    p("ResultSize", 1000),
                ],
            )],
        ),
        (
            "Get-MessageTrace -StartDate 2024-01-01 -EndDate '01/02/2024 10:00' -PageSize 5000 -Page 1",
            vec![cmd(
                "Get-MessageTrace",
                vec![
                    p("StartDate", "2024-01-01"),
                    p("EndDate", "01/02/2024 10:00"),
                    p("PageSize", 5000),
                    p("Page", 1),
                ],
            )],
        ),
        (
            "Set-MailboxAutoReplyConfiguration -Identity x -AutoReplyState Enabled -InternalMessage \"I'm out`nBack Monday\"",
            vec![cmd(
                "Set-MailboxAutoReplyConfiguration",
                vec![
                    p("Identity", "x"),
                    p("AutoReplyState", "Enabled"),
                    p("InternalMessage", "I'm out\nBack Monday"),
                ],
            )],
        ),
        (
            "New-DistributionGroup -Name Sales -Members @('a@x.com', 'b@x.com') -Type Security",
            vec![cmd(
                "New-DistributionGroup",
                vec![
                    p("Name", "Sales"),
                    p("Members", array(vec![s("a@x.com"), s("b@x.com")])),
                    p("Type", "Security"),
                ],
            )],
        ),
        (
            "Get-EXOMailbox -PropertySets Minimum,Quota -ResultSize 10 | Sort-Object -Property DisplayName -Descending",
            vec![
                cmd(
                    "Get-EXOMailbox",
                    vec![
                        p("PropertySets", array(vec![s("Minimum"), s("Quota")])),
                        p("ResultSize", 10),
                    ],
                ),
                cmd(
                    "Sort-Object",
                    vec![
                        p("Property", "DisplayName"),
                        ParsedParameter::switch("Descending"),
                    ],
                ),
            ],
        ),
        (
            "Search-UnifiedAuditLog -StartDate 2024-05-01 -EndDate 2024-05-02 -RecordType ExchangeAdmin -ResultSize 5000 -SessionId 'run 1' -SessionCommand ReturnLargeSet",
            vec![cmd(
                "Search-UnifiedAuditLog",
                vec![
                    p("StartDate", "2024-05-01"),
                    p("EndDate", "2024-05-02"),
                    p("RecordType", "ExchangeAdmin"),
                    p("ResultSize", 5000),
                    p("SessionId", "run 1"),
                    p("SessionCommand", "ReturnLargeSet"),
                ],
            )],
        ),
        (
            "Set-Mailbox x -RetainDeletedItemsFor 30.00:00:00 -MaxSendSize 35MB",
            vec![cmd(
                "Set-Mailbox",
                vec![
                    ParsedParameter::positional("x"),
                    p("RetainDeletedItemsFor", "30.00:00:00"),
                    p("MaxSendSize", 35 << 20),
                ],
            )],
        ),
        (
            "Get-Mailbox -Identity 7ad1f2a4-c5a0-4f8e-9d2b-3e4f5a6b7c8d",
            vec![cmd(
                "Get-Mailbox",
                vec![p("Identity", "7ad1f2a4-c5a0-4f8e-9d2b-3e4f5a6b7c8d")],
            )],
        ),
        (
            r"Get-User -Identity CONTOSO\jdoe -OrganizationalUnit 'contoso.com/Users' # who is this",
            vec![cmd(
                "Get-User",
                vec![
                    p("Identity", r"CONTOSO\jdoe"),
                    p("OrganizationalUnit", "contoso.com/Users"),
                ],
            )],
        ),
        (
            "Microsoft.PowerShell.Utility\\Select-Object -First 3",
            vec![cmd(
                "Microsoft.PowerShell.Utility\\Select-Object",
                vec![p("First", 3)],
            )],
        ),
        (
            "Set-TransportRule R1 -ExceptIfSenderDomainIs contoso.com, fabrikam.com -Priority 0",
            vec![cmd(
                "Set-TransportRule",
                vec![
                    ParsedParameter::positional("R1"),
                    p(
                        "ExceptIfSenderDomainIs",
                        array(vec![s("contoso.com"), s("fabrikam.com")]),
                    ),
                    p("Priority", 0),
                ],
            )],
        ),
        (
            "Get-Mailbox -Filter {Alias -eq 'x'}",
            vec![], // a script block: refused below
        ),
    ];
    for (line, expected) in table {
        if expected.is_empty() {
            assert!(parse_line(line).is_err(), "{line}");
            continue;
        }
        let parsed = parse_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(parsed.commands, expected, "{line}");
        // The display form parses back to the same thing.
        let text = parsed.to_string();
        assert_eq!(
            parse_line(&text).unwrap_or_else(|e| panic!("{text}: {e}")),
            parsed,
            "{line} -> {text}"
        );
    }
}

#[test]
fn many_real_lines_round_trip() {
    let lines = [
        "Get-Mailbox -RecipientTypeDetails SharedMailbox -ResultSize Unlimited",
        "Get-Mailbox -Identity 'Smith, John'",
        "Get-MailboxFolderStatistics -Identity x -FolderScope Inbox -IncludeOldestAndNewestItems",
        "Get-MailboxPermission -Identity x | Where-Object -Property IsInherited -EQ -Value $false",
        "Set-Mailbox -Identity x -GrantSendOnBehalfTo @{Add='a','b'}",
        "Set-Mailbox -Identity x -Type Shared",
        "Set-Mailbox x -LitigationHoldEnabled $true -LitigationHoldDuration 2555",
        "Get-DistributionGroupMember -Identity 'All Staff' -ResultSize Unlimited",
        "Add-DistributionGroupMember -Identity 'All Staff' -Member \"jane@contoso.com\" -BypassSecurityGroupManagerCheck",
        "Get-MobileDevice -Mailbox x | Select-Object -Property DeviceModel,DeviceOS,LastSyncAttemptTime",
        "Get-InboxRule -Mailbox x -IncludeHidden",
        "New-InboxRule -Name Move -Mailbox x -From boss@contoso.com -MoveToFolder 'x:\\Important'",
        "Set-OrganizationConfig -OAuth2ClientProfileEnabled $true",
        "Get-AcceptedDomain",
        "Get-OrganizationConfig | Format-List -Property Name,IsDehydrated",
        "Get-Mailbox -SoftDeletedMailbox -ResultSize 10",
        "Get-EXOMailboxStatistics -Identity x -Properties LastLogonTime,ItemCount",
        "Set-MailboxRegionalConfiguration -Identity x -Language en-US -TimeZone 'W. Europe Standard Time' -LocalizeDefaultFolderName:$true",
        "Set-CalendarProcessing -Identity room1 -AutomateProcessing AutoAccept -BookingWindowInDays 180 -MaximumDurationInMinutes 1440",
        "Get-MessageTraceV2 -SenderAddress a@b.c -StartDate 2024-06-01T00:00:00Z -EndDate 2024-06-02T00:00:00Z",
        "New-MailContact -Name 'Ext User' -ExternalEmailAddress smtp:ext@fabrikam.com",
        "Set-User x -Phone '+1 425 555 0100' -Office 'Bldg 3/2104'",
        "Get-Recipient -Identity x | Select-Object -ExpandProperty EmailAddresses",
        "Enable-Mailbox -Identity x -Archive",
        "Set-Mailbox -Identity x -CustomAttribute1 `$literal -CustomAttribute2 \"cost: 5 `$\"",
        "Get-Mailbox -Anr jo* -ResultSize 5L",
        "Set-Mailbox x -AuditOwner @{Add='MailboxLogin','HardDelete'} -AuditEnabled $true",
        "Test-MAPIConnectivity -Identity x -Timeout 0x1E",
        "Set-Mailbox -Identity x -ExtensionCustomAttribute1 @(@('a', 'b'), 'c')",
        "Set-Mailbox -Identity x -EmailAddresses @{'Add'='SMTP:x@y.z'; \"Remove\"='smtp:old@y.z'; 1=2}",
        "Set-AdminAuditLogConfig -AdminAuditLogAgeLimit 90.00:00:00 -Ratio 0.25 -Tiny 1e-3",
        "Get-Mailbox -Identity ‘typographic quotes’",
        "Get-Mailbox -Identity “smart double”",
        "Get-Mailbox -Identity ''",
        "Get-Mailbox -Identity -5",
        "Set-X -Y @() -Z @{}",
    ];
    for line in lines {
        let parsed = parse_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let text = parsed.to_string();
        let again = parse_line(&text).unwrap_or_else(|e| panic!("{line} -> {text}: {e}"));
        assert_eq!(again, parsed, "{line} -> {text}");
        // And the display form is stable.
        assert_eq!(again.to_string(), text);
    }
}

#[test]
fn pasted_dashes_work_like_hyphens() {
    let c = single("Get-Mailbox \u{2013}ResultSize \u{2013}5 \u{2014}Arbitration");
    assert_eq!(
        c.parameters,
        [p("ResultSize", -5), ParsedParameter::switch("Arbitration")]
    );
    let parsed = parse_args(&args(&["Get-Mailbox", "\u{2013}Identity:x"])).unwrap();
    assert_eq!(parsed.commands[0].parameters, [p("Identity", "x")]);
}

#[test]
fn typed_values() {
    let c = single(
        "Set-X -A 2147483647 -B 2147483648 -C -2147483648 -D 1.5 -E $TRUE -F 0x10 -G 1KB -H 3L -I 1e2 -J 007 -K 1.2.3 -L 5a",
    );
    let values: Vec<&Value> = c
        .parameters
        .iter()
        .map(|p| p.value.as_ref().unwrap())
        .collect();
    assert_eq!(
        values,
        [
            &Value::I32(i32::MAX),
            &Value::I64(2_147_483_648),
            &Value::I32(i32::MIN),
            &Value::F64(1.5),
            &Value::Bool(true),
            &Value::I32(16),
            &Value::I32(1024),
            &Value::I64(3),
            &Value::F64(100.0),
            &Value::I32(7),
            &s("1.2.3"),
            &s("5a"),
        ]
    );
}

#[test]
fn strings_and_escapes() {
    let c = single(
        r#"Set-X -A 'it''s' -B "say ""hi""" -C "tab`there" -D "`u{263A}" -E a`,b -F "a$" -G 'no $expansion'"#,
    );
    let values: Vec<Value> = c.parameters.into_iter().map(|p| p.value.unwrap()).collect();
    assert_eq!(
        values,
        [
            s("it's"),
            s("say \"hi\""),
            s("tab\there"),
            s("\u{263A}"),
            s("a,b"),
            s("a$"),
            s("no $expansion")
        ]
    );
}

#[test]
fn hashtable_is_a_clixml_hashtable() {
    let c = single("Set-X -H @{ k = 'v' ; n = 1 }");
    let v = c.parameters[0].value.as_ref().unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.type_name(), Some("System.Collections.Hashtable"));
    assert_eq!(
        obj.base,
        ObjectBase::Dict(vec![(s("k"), s("v")), (s("n"), Value::I32(1))])
    );
}

#[test]
fn arrays_are_object_arrays() {
    let c = single("Set-X -A 1, 'two' ,3");
    let v = c.parameters[0].value.as_ref().unwrap();
    assert_eq!(v.as_object().unwrap().type_name(), Some("System.Object[]"));
    assert_eq!(items(v), [Value::I32(1), s("two"), Value::I32(3)]);
    let c = single("Set-X -A @(1; 2, @(3))");
    let v = c.parameters[0].value.as_ref().unwrap();
    assert_eq!(items(v).len(), 3);
    assert_eq!(items(&items(v)[2]), [Value::I32(3)]);
}

#[test]
fn switches_and_colon_values() {
    let c = single("Set-X -Force foo -Name: bar -WhatIf -Confirm:$false -Last");
    assert_eq!(
        c.parameters,
        [
            ParsedParameter::switch("Force"),
            ParsedParameter::positional("foo"),
            p("Name", "bar"),
            ParsedParameter::switch("WhatIf"),
            p("Confirm", false),
            ParsedParameter::switch("Last"),
        ]
    );
    let line = parse_line("Get-X -A | Get-Y").unwrap();
    assert_eq!(line.commands[0].parameters, [ParsedParameter::switch("A")]);
    assert_eq!(line.commands[1], cmd("Get-Y", vec![]));
}

#[test]
fn script_constructs_are_refused_with_a_column() {
    let cases = [
        ("Get-Mailbox -Identity $user", 23, "variable"),
        ("Get-Mailbox -Identity $(whoami)", 23, "subexpression"),
        ("Get-Mailbox -Identity ${x}", 23, "braced variable"),
        ("Get-Mailbox; Remove-Mailbox x", 12, "statement separator"),
        ("Get-Mailbox -Filter {Alias -eq 'x'}", 21, "script block"),
        ("Get-Mailbox -Identity (Get-User x)", 23, "parenthesised"),
        (
            "Get-Mailbox -Identity \"$env:USERNAME\"",
            24,
            "double-quoted",
        ),
        ("Get-Mailbox @params", 13, "splatting"),
        ("Get-Mailbox > out.txt", 13, "redirection"),
        ("Get-Mailbox x 2>&1", 16, "redirection"),
        ("& Get-Mailbox", 1, "call operator"),
        (". ./evil.ps1", 1, "dot-sourcing"),
        ("$x = Get-Mailbox", 1, "variable"),
        ("Get-Mailbox -ResultSize [int]5", 25, "type literal"),
        ("Get-Mailbox x || Get-User", 15, "'||'"),
        ("Get-Mailbox -Identity a$b", 24, "variable"),
        ("Get-Mailbox -H @{a=$x}", 20, "variable"),
        ("Get-Mailbox -H @'", 16, "here-string"),
    ];
    for (line, column, what) in cases {
        match parse_line(line) {
            Err(e @ CmdlineError::NotAllowed { .. }) => {
                assert_eq!(e.column(), Some(column), "{line}: {e}");
                assert!(e.to_string().contains(what), "{line}: {e}");
                assert!(e.to_string().contains("NoLanguage"), "{line}: {e}");
            }
            other => panic!("{line}: expected NotAllowed, got {other:?}"),
        }
    }
}

/// A line, a check of its error, and the column the error should name.
type SyntaxCase = (&'static str, fn(&CmdlineError) -> bool, Option<usize>);

#[test]
fn syntax_errors() {
    let cases: [SyntaxCase; 12] = [
        ("", |e| matches!(e, CmdlineError::Empty), None),
        (
            "   # just a comment",
            |e| matches!(e, CmdlineError::Empty),
            None,
        ),
        (
            "Get-X -A 'open",
            |e| matches!(e, CmdlineError::Unterminated { .. }),
            Some(10),
        ),
        (
            "Get-X -A \"open",
            |e| matches!(e, CmdlineError::Unterminated { .. }),
            Some(10),
        ),
        (
            "Get-X -A @{a=1",
            |e| matches!(e, CmdlineError::Unterminated { .. }),
            Some(10),
        ),
        (
            "Get-X -A @(1,2",
            |e| matches!(e, CmdlineError::Unterminated { .. }),
            Some(10),
        ),
        (
            "Get-X -A:",
            |e| matches!(e, CmdlineError::MissingValue { .. }),
            Some(7),
        ),
        (
            "Get-X -A: -B",
            |e| matches!(e, CmdlineError::MissingValue { .. }),
            Some(7),
        ),
        (
            "Get-X |",
            |e| matches!(e, CmdlineError::Unexpected { .. }),
            Some(8),
        ),
        (
            "| Get-X",
            |e| {
                matches!(
                    e,
                    CmdlineError::BadCommandName { .. } | CmdlineError::Unexpected { .. }
                )
            },
            Some(1),
        ),
        (
            "Get-X -A 1,",
            |e| matches!(e, CmdlineError::Unexpected { .. }),
            Some(12),
        ),
        (
            "'Get-X'",
            |e| matches!(e, CmdlineError::BadCommandName { .. }),
            Some(1),
        ),
    ];
    for (line, check, column) in cases {
        let e = parse_line(line).expect_err(line);
        assert!(check(&e), "{line}: {e:?}");
        assert_eq!(e.column(), column, "{line}: {e}");
        // Messages are lowercase and say where.
        let msg = e.to_string();
        assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
    }
}

#[test]
fn limits() {
    let long = format!("Get-X -A {}", "a".repeat(MAX_LINE_LEN));
    assert!(matches!(
        parse_line(&long),
        Err(CmdlineError::TooLong { .. })
    ));
    let deep = format!(
        "Get-X -A {}1{}",
        "@(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(
        matches!(parse_line(&deep), Err(CmdlineError::TooDeep { .. })),
        "{:?}",
        parse_line(&deep)
    );
    let ok = format!(
        "Get-X -A {}1{}",
        "@(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    parse_line(&ok).unwrap();
    let deep_h = format!(
        "Get-X -A {}1{}",
        "@{a=".repeat(MAX_DEPTH + 1),
        "}".repeat(MAX_DEPTH + 1)
    );
    assert!(matches!(
        parse_line(&deep_h),
        Err(CmdlineError::TooDeep { .. })
    ));
    let words = vec!["x".repeat(MAX_LINE_LEN); 2];
    assert!(matches!(
        parse_args(&words),
        Err(CmdlineError::TooLong { .. })
    ));
}

#[test]
fn argv_words_keep_shell_quoting_decisions() {
    let parsed = parse_args(&args(&[
        "Get-Mailbox",
        "-Identity",
        "john doe",
        "-ResultSize",
        "5",
    ]))
    .unwrap();
    assert_eq!(
        parsed.commands,
        [cmd(
            "Get-Mailbox",
            vec![p("Identity", "john doe"), p("ResultSize", 5)]
        )]
    );

    let parsed = parse_args(&args(&[
        "Get-Recipient",
        "-RecipientTypeDetails",
        "UserMailbox,SharedMailbox",
        "-Confirm:$false",
        "-Force",
        "|",
        "Select-Object",
        "-Property",
        "DisplayName",
    ]))
    .unwrap();
    assert_eq!(
        parsed.commands,
        [
            cmd(
                "Get-Recipient",
                vec![
                    p(
                        "RecipientTypeDetails",
                        array(vec![s("UserMailbox"), s("SharedMailbox")])
                    ),
                    p("Confirm", false),
                    ParsedParameter::switch("Force"),
                ]
            ),
            cmd("Select-Object", vec![p("Property", "DisplayName")]),
        ]
    );

    let parsed = parse_args(&args(&[
        "Set-Mailbox",
        "x",
        "-EmailAddresses",
        "@{Add='smtp:a@b.c'}",
        "-Name:",
        "Smith, John",
    ]))
    .unwrap();
    assert_eq!(
        parsed.commands[0].parameters,
        [
            ParsedParameter::positional("x"),
            p(
                "EmailAddresses",
                hashtable(vec![(s("Add"), s("smtp:a@b.c"))])
            ),
            p("Name", "Smith, John"),
        ]
    );

    // Words the shell kept whole stay literal, except those that start like PowerShell syntax.
    let parsed = parse_args(&args(&[
        "Set-X",
        "O'Brien",
        "a;b",
        "-N",
        "-5",
        "-D",
        "",
        "$null",
        "it's a $5 deal",
    ]))
    .unwrap();
    assert_eq!(
        parsed.commands[0].parameters,
        [
            ParsedParameter::positional("O'Brien"),
            ParsedParameter::positional("a;b"),
            p("N", -5),
            p("D", ""),
            ParsedParameter::positional(Value::Nil),
            ParsedParameter::positional("it's a $5 deal"),
        ]
    );
}

#[test]
fn argv_errors_point_into_the_joined_line() {
    let e = parse_args(&args(&["Get-Mailbox", "-Identity", "$user"])).unwrap_err();
    assert!(
        matches!(e, CmdlineError::NotAllowed { column: 23, .. }),
        "{e}"
    );
    let e = parse_args(&args(&["Get-Mailbox", "-Identity:$(x)"])).unwrap_err();
    assert_eq!(e.column(), Some(23), "{e}");
    assert!(matches!(parse_args(&[]), Err(CmdlineError::Empty)));
    let e = parse_args(&args(&["Get-X", "|"])).unwrap_err();
    assert_eq!(e.column(), Some(8), "{e}");
    let e = parse_args(&args(&["Gét-X", "-A", "'x", "|"])).unwrap_err();
    assert!(
        matches!(e, CmdlineError::Unterminated { column: 10, .. }),
        "{e}"
    );
    assert!(parse_args(&args(&["|", "Get-X"])).is_err());
    assert!(matches!(
        parse_args(&args(&["Get-X", "-A:"])),
        Err(CmdlineError::MissingValue { .. })
    ));
    assert!(matches!(
        parse_args(&args(&["$x"])),
        Err(CmdlineError::NotAllowed { .. })
    ));
    assert!(matches!(
        parse_args(&args(&["1abc"])),
        Err(CmdlineError::BadCommandName { .. })
    ));
}

#[test]
fn argv_and_line_agree_on_simple_lines() {
    let line =
        "Get-Mailbox -Identity x -ResultSize 5 -Arbitration | Select-Object -Property Name,Alias";
    let words: Vec<String> = line.split(' ').map(str::to_owned).collect();
    assert_eq!(parse_args(&words).unwrap(), parse_line(line).unwrap());
}

#[test]
fn scripts_skip_blank_and_comment_lines_and_name_the_bad_line() {
    let script = "\u{feff}# header\n\nGet-Mailbox -ResultSize 1\r\n   # indented comment\nGet-User x | Select-Object Name\n";
    let lines = parse_script(script).unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1].commands.len(), 2);
    let e = parse_script("Get-Mailbox\n\nGet-User $x\n").unwrap_err();
    assert!(matches!(&e, CmdlineError::AtLine { line: 3, .. }), "{e}");
    assert_eq!(e.column(), Some(10));
    assert!(e.to_string().starts_with("line 3: column 10:"), "{e}");
    assert!(matches!(
        parse_script(&"#".repeat(cmdline::MAX_SCRIPT_LEN + 1)),
        Err(CmdlineError::ScriptTooLong { .. })
    ));
}

#[test]
fn display_quotes_what_needs_quoting() {
    let line = CmdletLine {
        commands: vec![cmd(
            "Set-X",
            vec![
                p("A", "-notaparam"),
                p("B", "12"),
                p("C", "two words"),
                p("D", "it's"),
                p("E", Value::I64(5)),
                p("Force", "x"),
                ParsedParameter::positional("$x"),
                p("F", true),
            ],
        )],
    };
    assert_eq!(
        line.to_string(),
        "Set-X -A '-notaparam' -B '12' -C 'two words' -D 'it''s' -E 5L -Force:x '$x' -F:$true"
    );
    assert_eq!(parse_line(&line.to_string()).unwrap(), line);
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::Str),
        "[A-Za-z][A-Za-z0-9@.:_-]{0,12}".prop_map(Value::Str),
        any::<i32>().prop_map(Value::I32),
        any::<i64>().prop_map(Value::I64),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::F64),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Nil),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(array),
            prop::collection::vec(
                ("[A-Za-z][A-Za-z0-9]{0,6}".prop_map(Value::Str), inner),
                0..3
            )
            .prop_map(hashtable),
        ]
    })
}

fn parameter() -> impl Strategy<Value = ParsedParameter> {
    prop_oneof![
        ("[A-Za-z][A-Za-z0-9]{0,10}", value()).prop_map(|(n, v)| ParsedParameter {
            name: Some(n),
            value: Some(v)
        }),
        "[A-Za-z][A-Za-z0-9]{0,10}".prop_map(ParsedParameter::switch),
        value().prop_map(|v| ParsedParameter {
            name: None,
            value: Some(v)
        }),
    ]
}

fn command() -> impl Strategy<Value = ParsedCommand> {
    (
        "[A-Z][a-z]{1,6}-[A-Z][A-Za-z]{1,10}",
        prop::collection::vec(parameter(), 0..5),
    )
        .prop_map(|(name, parameters)| ParsedCommand { name, parameters })
}

/// A switch directly before a positional argument reads as `-Switch value`; that ambiguity is
/// PowerShell's, so generated lines avoid it.
fn unambiguous(line: &CmdletLine) -> bool {
    line.commands.iter().all(|c| {
        c.parameters
            .windows(2)
            .all(|w| !(w[0].value.is_none() && w[1].name.is_none()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_line(&text);
        let _ = parse_script(&text);
        let words: Vec<String> = text.split(' ').map(str::to_owned).collect();
        let _ = parse_args(&words);
    }

    #[test]
    fn powershell_shaped_text_never_panics(text in r"[-A-Za-z0-9 @{}()\[\]=;,|'`$:#.\x22\n\u{2013}]{0,80}") {
        let _ = parse_line(&text);
        let _ = parse_script(&text);
        let words: Vec<String> = text.split(' ').map(str::to_owned).collect();
        let _ = parse_args(&words);
    }

    #[test]
    fn generated_lines_round_trip(commands in prop::collection::vec(command(), 1..3)) {
        let line = CmdletLine { commands };
        prop_assume!(unambiguous(&line));
        let text = line.to_string();
        let parsed = parse_line(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&line), "{}", text);
    }
}

#[test]
fn scripts_continue_commands_like_powershell() {
    let script = "\
# provision a shared mailbox
New-Mailbox -Shared -Name 'Finance Team' `
    -DisplayName 'Finance' `
    -Alias finance
Set-Mailbox -Identity finance -EmailAddresses @{
    Add = 'smtp:fin@contoso.com',
          'smtp:accounts@contoso.com'   # both
    Remove = 'smtp:old@contoso.com'
}
Get-Mailbox -ResultSize Unlimited |
    Where-Object -Property IsShared -EQ -Value $true
Get-Recipient -RecipientTypeDetails UserMailbox,
    SharedMailbox
Get-Mailbox
    | Select-Object -Property Name
Set-X -Members @(
    'a'
    'b'; 'c'
)
Set-X -Note 'first line
second line'
";
    let lines = parse_script(script).unwrap();
    assert_eq!(lines.len(), 7);
    assert_eq!(
        lines[0].commands[0].parameters,
        [
            ParsedParameter::switch("Shared"),
            p("Name", "Finance Team"),
            p("DisplayName", "Finance"),
            p("Alias", "finance"),
        ]
    );
    assert_eq!(
        lines[1].commands[0].parameters[1],
        p(
            "EmailAddresses",
            hashtable(vec![
                (
                    s("Add"),
                    array(vec![
                        s("smtp:fin@contoso.com"),
                        s("smtp:accounts@contoso.com")
                    ])
                ),
                (s("Remove"), s("smtp:old@contoso.com")),
            ])
        )
    );
    assert_eq!(lines[2].commands.len(), 2);
    assert_eq!(
        lines[3].commands[0].parameters,
        [p(
            "RecipientTypeDetails",
            array(vec![s("UserMailbox"), s("SharedMailbox")])
        )]
    );
    assert_eq!(lines[4].commands.len(), 2);
    assert_eq!(
        lines[5].commands[0].parameters,
        [p("Members", array(vec![s("a"), s("b"), s("c")]))]
    );
    assert_eq!(
        lines[6].commands[0].parameters,
        [p("Note", "first line\nsecond line")]
    );
}

#[test]
fn script_errors_point_at_the_physical_line() {
    let script = "Get-Mailbox\nSet-Mailbox x -EmailAddresses @{\n  Add = 'a'\n  Remove = $old\n}\n";
    let e = parse_script(script).unwrap_err();
    assert!(matches!(&e, CmdlineError::AtLine { line: 4, .. }), "{e}");
    assert_eq!(e.column(), Some(12), "{e}");
    // Still open at the end of the file.
    let e = parse_script("Get-X @{\n a = 1\n").unwrap_err();
    assert!(matches!(&e, CmdlineError::AtLine { line: 1, .. }), "{e}");
    assert!(e.to_string().contains("unterminated hashtable"), "{e}");
    // A new line outside brackets ends the statement: no second command hides in a line.
    let e = parse_line("Get-Mailbox\nRemove-Mailbox x").unwrap_err();
    assert!(
        matches!(e, CmdlineError::NotAllowed { column: 12, .. }),
        "{e}"
    );
    assert!(parse_line("Get-Mailbox -ResultSize 1\n").is_ok());
}
