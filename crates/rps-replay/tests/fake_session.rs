//! Our client (`rps_session::RunspacePool`) against the fake Exchange Online endpoint.

use std::time::Duration;

use rps_psrp::clixml::{ObjectBase, Value};
use rps_psrp::event::RecordKind;
use rps_psrp::messages::PsInvocationState;
use rps_psrp::records::ErrorRecord;
use rps_replay::fake::{FakeExchange, TokenSpec};
use rps_session::{Command, Error, PipelineEvent, RunspacePool};

const MAILBOX_TN: &str = "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox";

fn type_names(v: &Value) -> Vec<String> {
    v.as_object()
        .and_then(|o| o.type_names.as_deref())
        .map(|t| t.to_vec())
        .unwrap_or_default()
}

fn prop<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.as_object()
        .and_then(|o| o.get(name))
        .unwrap_or_else(|| panic!("no property {name}"))
}

async fn run(pool: &RunspacePool, cmd: Command) -> rps_session::PipelineResult {
    pool.invoke([cmd])
        .await
        .expect("invoke")
        .collect()
        .await
        .expect("collect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_session_redirect_cookie_cmdlets_and_close() {
    let fake = FakeExchange::builder().mailboxes(30).start().await.unwrap();
    let mut options = fake.connect_options();
    // Let the script reach the server so the server's NoLanguage refusal is exercised.
    options.pool.allow_scripts = true;
    let pool = RunspacePool::connect(options).await.expect("connect");
    let stats = fake.stats();
    assert!(
        stats.front_requests >= 1,
        "the front answered the first Create with 302"
    );
    assert_eq!(fake.open_shells(), 1);

    // Get-Mailbox -ResultSize 5
    let r = run(&pool, Command::new("Get-Mailbox").param("ResultSize", 5)).await;
    assert_eq!(r.state, Some(PsInvocationState::Completed));
    assert_eq!(r.output.len(), 5);
    for m in &r.output {
        let tn = type_names(m);
        assert_eq!(tn[0], MAILBOX_TN);
        assert!(tn.iter().any(|t| t.ends_with("ADPresentationObject")));
        let obj = m.as_object().unwrap();
        assert_eq!(obj.to_string.as_deref(), prop(m, "Name").as_str());
        // Enum: ToString + integer.
        let rtd = prop(m, "RecipientTypeDetails");
        let rtd_obj = rtd.as_object().unwrap();
        assert!(matches!(rtd_obj.base, ObjectBase::Primitive(Value::I64(_))));
        assert!(rtd_obj.to_string.as_deref().unwrap().ends_with("Mailbox"));
        // MultiValuedProperty list.
        let ea = prop(m, "EmailAddresses").as_object().unwrap();
        match &ea.base {
            ObjectBase::List(_, items) => {
                assert!(items[0].as_str().unwrap().starts_with("SMTP:"));
            }
            other => panic!("EmailAddresses is {other:?}"),
        }
        // ADObjectId.
        let id = prop(m, "Identity");
        assert_eq!(
            type_names(id)[0],
            "Deserialized.Microsoft.Exchange.Data.Directory.ADObjectId"
        );
    }
    let first_alias = prop(&r.output[0], "Alias").as_str().unwrap().to_owned();

    // -Identity finds one; nosuch is an ErrorRecord, the pipeline still completes.
    let r = run(
        &pool,
        Command::new("Get-Mailbox").param("Identity", first_alias.as_str()),
    )
    .await;
    assert_eq!(r.output.len(), 1);
    let r = run(
        &pool,
        Command::new("Get-Mailbox").param("Identity", "nosuch"),
    )
    .await;
    assert!(r.output.is_empty());
    assert_eq!(r.state, Some(PsInvocationState::Completed));
    let err = ErrorRecord::from_value(r.errors().next().expect("an error record")).unwrap();
    assert_eq!(err.category.category, 13, "ObjectNotFound");
    assert!(err.fully_qualified_error_id.contains(
        "[FailureCategory=Cmdlet-ManagementObjectNotFoundException] 2F0A3C4B,Microsoft.Exchange.Management.RecipientTasks.GetMailbox"
    ), "{}", err.fully_qualified_error_id);
    assert!(err.fully_qualified_error_id.starts_with("[Server="));
    assert!(err.exception_message.starts_with(
        "The operation couldn't be performed because object 'nosuch' couldn't be found on '"
    ));

    // A script is refused: NoLanguage.
    let r = run(
        &pool,
        Command::script("Get-Mailbox | ForEach-Object { $_ }"),
    )
    .await;
    assert_eq!(r.state, Some(PsInvocationState::Failed));
    let err = ErrorRecord::from_value(r.error_record.as_ref().unwrap()).unwrap();
    assert!(
        err.exception_message.contains("no-language mode"),
        "{}",
        err.exception_message
    );

    // Unknown cmdlet.
    let r = run(&pool, Command::new("Get-Nonsense")).await;
    assert_eq!(r.state, Some(PsInvocationState::Failed));
    let err = ErrorRecord::from_value(r.error_record.as_ref().unwrap()).unwrap();
    assert_eq!(err.fully_qualified_error_id, "CommandNotFoundException");

    // Static cmdlets.
    let r = run(&pool, Command::new("Get-AcceptedDomain")).await;
    assert_eq!(r.output.len(), 3);
    assert!(type_names(&r.output[0])[0].ends_with("SystemConfiguration.AcceptedDomain"));
    let r = run(&pool, Command::new("get-organizationconfig")).await;
    assert_eq!(r.output.len(), 1);

    pool.close().await.expect("close");
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_redirect_and_delegated_token() {
    let fake = FakeExchange::builder()
        .redirect(false)
        .mailboxes(3)
        .start()
        .await
        .unwrap();
    assert_eq!(fake.url(), fake.pod_url());
    let creds = fake.credentials_for(&TokenSpec::delegated("admin@contoso.onmicrosoft.com"));
    let pool = RunspacePool::connect(fake.connect_options_with(creds))
        .await
        .expect("connect");
    let r = run(&pool, Command::new("Get-Recipient")).await;
    assert_eq!(r.output.len(), 3);
    assert!(type_names(&r.output[0])[0].ends_with("ReducedRecipient"));
    pool.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_failures() {
    let fake = FakeExchange::builder().start().await.unwrap();
    let expired = fake.credentials_for(&TokenSpec::app_only().lifetime(-60));
    match RunspacePool::connect(fake.connect_options_with(expired)).await {
        Err(Error::Unauthorized { .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
    let no_role = fake.credentials_for(&TokenSpec::app_only().without_roles());
    match RunspacePool::connect(fake.connect_options_with(no_role)).await {
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains("403") && text.contains("Access is denied"),
                "{text}"
            );
        }
        Ok(_) => panic!("a token without roles must be refused"),
    }
    let no_scope = fake.credentials_for(&TokenSpec::delegated("a@b.c").without_roles());
    let e = RunspacePool::connect(fake.connect_options_with(no_scope))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Access is denied"), "{e}");
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourth_pool_hits_max_concurrency() {
    let fake = FakeExchange::builder().mailboxes(2).start().await.unwrap();
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(
            RunspacePool::connect(fake.connect_options())
                .await
                .expect("connect"),
        );
    }
    assert_eq!(fake.open_shells(), 3);
    let err = RunspacePool::connect(fake.connect_options())
        .await
        .expect_err("a fourth pool");
    assert!(err.is_max_concurrency(), "{err}");
    assert!(
        err.to_string()
            .contains("maximum number of connections allowed : 3"),
        "{err}"
    );
    // Another user is counted apart.
    let other = fake.credentials_for(&TokenSpec::delegated("someone@contoso.com"));
    let p = RunspacePool::connect(fake.connect_options_with(other))
        .await
        .expect("other user");
    p.close().await.unwrap();
    // Closing one frees a slot.
    pools.pop().unwrap().close().await.unwrap();
    pools.push(
        RunspacePool::connect(fake.connect_options())
            .await
            .expect("after close"),
    );
    for p in pools {
        p.close().await.unwrap();
    }
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_result_size_warns_and_set_mailbox_changes_state() {
    let fake = FakeExchange::builder()
        .mailboxes(1003)
        .start()
        .await
        .unwrap();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let r = run(&pool, Command::new("Get-Mailbox")).await;
    assert_eq!(r.output.len(), 1000);
    let warnings: Vec<_> = r
        .records
        .iter()
        .filter(|(k, _)| *k == RecordKind::Warning)
        .collect();
    assert_eq!(warnings.len(), 1);
    let text = warnings[0]
        .1
        .as_object()
        .unwrap()
        .to_string
        .clone()
        .unwrap();
    assert!(text.starts_with("By default, only the first 1000 items are returned."));
    // Unlimited returns all, without the warning.
    let r = run(
        &pool,
        Command::new("Get-Mailbox").param("ResultSize", "Unlimited"),
    )
    .await;
    assert_eq!(r.output.len(), 1003);
    assert!(r.records.iter().all(|(k, _)| *k != RecordKind::Warning));

    let alias = prop(&r.output[2], "Alias").as_str().unwrap().to_owned();
    let r = run(
        &pool,
        Command::new("Set-Mailbox")
            .param("Identity", alias.as_str())
            .param("CustomAttribute1", "changed"),
    )
    .await;
    assert!(r.succeeded(), "{r:?}");
    let r = run(
        &pool,
        Command::new("Get-Mailbox").param("Identity", alias.as_str()),
    )
    .await;
    assert_eq!(
        prop(&r.output[0], "CustomAttribute1").as_str(),
        Some("changed")
    );
    // -WhatIf changes nothing.
    let r = run(
        &pool,
        Command::new("Set-Mailbox")
            .param("Identity", alias.as_str())
            .param("CustomAttribute1", "whatif")
            .switch("WhatIf"),
    )
    .await;
    assert!(r.succeeded());
    let r = run(
        &pool,
        Command::new("Get-Mailbox").param("Identity", alias.as_str()),
    )
    .await;
    assert_eq!(
        prop(&r.output[0], "CustomAttribute1").as_str(),
        Some("changed")
    );
    // Unknown parameter.
    let r = run(
        &pool,
        Command::new("Set-Mailbox")
            .param("Identity", alias.as_str())
            .param("NoSuchParameter", 1),
    )
    .await;
    assert_eq!(r.state, Some(PsInvocationState::Failed));
    pool.close().await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_a_long_listing_and_progress() {
    let fake = FakeExchange::builder()
        .mailboxes(20_000)
        .progress_every(100)
        .start()
        .await
        .unwrap();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let mut p = pool
        .invoke([Command::new("Get-Mailbox").param("ResultSize", "Unlimited")])
        .await
        .unwrap();
    let mut outputs = 0usize;
    let mut progress = 0usize;
    let mut stopped = false;
    let mut finished = None;
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(60), p.next_event())
        .await
        .expect("events keep coming")
    {
        match ev.unwrap() {
            PipelineEvent::Output(_) => {
                outputs += 1;
                if outputs == 300 && !stopped {
                    p.stop().unwrap();
                    stopped = true;
                }
            }
            PipelineEvent::Record {
                kind: RecordKind::Progress,
                ..
            } => progress += 1,
            PipelineEvent::Finished { state, .. } => finished = Some(state),
            _ => {}
        }
    }
    assert_eq!(finished, Some(PsInvocationState::Stopped));
    assert!(
        (300..20_000).contains(&outputs),
        "streamed, then stopped: {outputs}"
    );
    assert!(progress >= 3, "progress records: {progress}");
    assert_eq!(fake.running_pipelines(), 0);
    pool.close().await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_views_micro_delay_and_plain_basic() {
    let fake = FakeExchange::builder()
        .redirect(false)
        .mailboxes(4)
        .micro_delay(1.0)
        .basic_user("admin@contoso.com", "P@ssw0rd")
        .start()
        .await
        .unwrap();
    let endpoint = rps_session::http::Endpoint {
        url: fake.basic_url().parse().unwrap(),
        configuration: "Microsoft.Exchange".into(),
        allow_redirection: false,
    };
    let mut options = rps_session::ConnectOptions::new(
        endpoint,
        Some(rps_session::http::Credentials::basic(
            "admin@contoso.com",
            "P@ssw0rd",
        )),
    );
    options.allow_insecure_http = true;
    let pool = RunspacePool::connect(options).await.expect("plain Basic");
    for (cmd, tn) in [
        (
            "Get-CASMailbox",
            "Deserialized.Microsoft.Exchange.Data.Directory.Management.CASMailbox",
        ),
        (
            "Get-User",
            "Deserialized.Microsoft.Exchange.Data.Directory.Management.User",
        ),
        (
            "Get-MailboxStatistics",
            "Deserialized.Microsoft.Exchange.Management.MapiTasks.Presentation.MailboxStatistics",
        ),
    ] {
        let r = run(&pool, Command::new(cmd)).await;
        assert_eq!(r.output.len(), 4, "{cmd}");
        assert_eq!(type_names(&r.output[0])[0], tn);
        let warning = r
            .records
            .iter()
            .find(|(k, _)| *k == RecordKind::Warning)
            .expect("micro delay warning");
        let text = warning.1.as_object().unwrap().to_string.clone().unwrap();
        assert!(
            text.starts_with("Micro delay applied. Actual delayed: "),
            "{text}"
        );
    }
    pool.close().await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_command_metadata_lists_catalog_cmdlets() {
    let fake = FakeExchange::builder().mailboxes(1).start().await.unwrap();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let r = pool
        .get_command_metadata(vec!["Get-*".to_owned()])
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(r.state, Some(PsInvocationState::Completed));
    // The count object, then one CommandInfo per Get-* cmdlet of the catalog.
    let count = prop(&r.output[0], "Count").as_i64().unwrap() as usize;
    assert_eq!(count, r.output.len() - 1);
    assert!(count >= 7);
    pool.close().await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_mailbox_over_pipeline_input_and_multi_command_pipelines() {
    let fake = FakeExchange::builder().mailboxes(6).start().await.unwrap();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let boxes = run(&pool, Command::new("Get-Mailbox").param("ResultSize", 2))
        .await
        .output;
    // `$boxes | Set-Mailbox -CustomAttribute2 Piped`
    let mut request =
        rps_psrp::messages::CreatePipeline::new(rps_psrp::messages::PowerShell::new(vec![
            Command::new("Set-Mailbox")
                .param("CustomAttribute2", "Piped")
                .into_inner(),
        ]));
    request.no_input = false;
    let p = pool.invoke_request(request).await.unwrap();
    for b in &boxes {
        p.send_input(b.clone()).unwrap();
    }
    p.end_input().unwrap();
    let r = p.collect().await.unwrap();
    assert!(r.succeeded(), "{r:?}");
    let after = run(&pool, Command::new("Get-Mailbox").param("ResultSize", 3))
        .await
        .output;
    assert_eq!(prop(&after[0], "CustomAttribute2").as_str(), Some("Piped"));
    assert_eq!(prop(&after[1], "CustomAttribute2").as_str(), Some("Piped"));
    assert_ne!(prop(&after[2], "CustomAttribute2").as_str(), Some("Piped"));
    // Two commands in one pipeline are refused, not half-run.
    let r = pool
        .invoke([Command::new("Get-Mailbox"), Command::new("Set-Mailbox")])
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(r.state, Some(PsInvocationState::Failed));
    assert!(r.output.is_empty());
    pool.close().await.unwrap();
    fake.shutdown().await;
}
