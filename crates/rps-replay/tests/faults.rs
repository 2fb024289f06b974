//! The client (`rps_session::RunspacePool`) against the fake endpoint's injected faults:
//! nothing lost or repeated, typed errors naming the operation, retries within a budget,
//! timeouts, and the shell always deleted after errors and cancellation.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rps_psrp::clixml::Value;
use rps_psrp::messages::{CreatePipeline, PowerShell, PsInvocationState};
use rps_replay::fake::{FakeExchange, FaultSpec};
use rps_replay::server::{Response, Server};
use rps_session::http::{HttpClient, HttpRequest, HttpResponse, Transport, TransportConfig};
use rps_session::runspace::RetryPolicy;
use rps_session::{Command, ExchangeObserver, PipelineEvent, RunspacePool};
use rps_wsman::{Body, Envelope, Header};
use uuid::Uuid;

async fn start(mailboxes: usize, faults: &str) -> FakeExchange {
    FakeExchange::builder()
        .mailboxes(mailboxes)
        .faults(FaultSpec::parse(faults).expect("fault spec"))
        .start()
        .await
        .expect("fake starts")
}

fn get_mailbox(n: &str) -> Command {
    Command::new("Get-Mailbox").param("ResultSize", n)
}

/// Waits until the fake has no shell left (deletes can run in the background).
async fn until_no_shells(fake: &FakeExchange) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.open_shells() > 0 {
        assert!(Instant::now() < deadline, "the shell was never deleted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each object's CLIXML: equal text means an equal object.
fn texts(objects: &[Value]) -> Vec<String> {
    objects.iter().map(rps_psrp::clixml::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_receives_lose_and_repeat_nothing_over_2000_mailboxes() {
    // The reference: the same tenant without faults.
    let clean = start(2000, "").await;
    let pool = RunspacePool::connect(clean.connect_options())
        .await
        .unwrap();
    let reference = pool
        .invoke([get_mailbox("Unlimited")])
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    pool.close().await.unwrap();
    let clean_connections = clean.stats().pod_connections;
    clean.shutdown().await;
    assert_eq!(reference.output.len(), 2000);

    let faulty = start(2000, "drop-receive=0.2,seed=42").await;
    let pool = RunspacePool::connect(faulty.connect_options())
        .await
        .unwrap();
    let got = pool
        .invoke([get_mailbox("Unlimited")])
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(got.state, Some(PsInvocationState::Completed));
    // Each dropped Receive cost a connection: faults really happened.
    let dropped = faulty
        .stats()
        .pod_connections
        .saturating_sub(clean_connections);
    assert!(dropped >= 3, "only {dropped} receives were dropped");
    eprintln!("{dropped} receives dropped; 2000 objects compared");
    // Every object, in order, exactly once.
    let (want, have) = (texts(&reference.output), texts(&got.output));
    assert_eq!(have.len(), 2000);
    assert_eq!(
        have.iter().collect::<HashSet<_>>().len(),
        2000,
        "duplicates"
    );
    for (i, (w, h)) in want.iter().zip(&have).enumerate() {
        assert_eq!(w, h, "object {i} differs");
    }
    pool.close().await.unwrap();
    assert_eq!(faulty.open_shells(), 0);
    faulty.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault500_on_create_and_opening_receive_name_the_operation() {
    for (op, name) in [("create", "Create"), ("receive", "Receive")] {
        let fake = start(3, &format!("fault500=1,fault500-ops={op}")).await;
        let err = RunspacePool::connect(fake.connect_options())
            .await
            .expect_err("the fault ends the connect");
        assert_eq!(err.operation(), Some(name), "{err}");
        assert!(err.to_string().contains("internal error"), "{err}");
        assert!(!err.is_max_concurrency());
        // The shell of a failed opening Receive is deleted.
        until_no_shells(&fake).await;
        fake.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault500_on_command_fails_the_pipeline_not_the_pool() {
    let fake = start(3, "fault500=1,fault500-ops=command").await;
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    for _ in 0..2 {
        let err = pool
            .invoke([get_mailbox("3")])
            .await
            .unwrap()
            .collect()
            .await
            .expect_err("the Command got a 500 fault");
        assert_eq!(err.operation(), Some("Command"), "{err}");
    }
    // The pool lived on, and closes cleanly.
    pool.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault500_on_send_fails_the_pipeline_with_input() {
    let fake = start(3, "fault500=1,fault500-ops=send").await;
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let mut request = CreatePipeline::new(PowerShell::new(vec![
        Command::new("Get-Mailbox").into_inner(),
    ]));
    request.no_input = false;
    let p = pool.invoke_request(request).await.unwrap();
    p.send_input(Value::Str("alice".into())).unwrap();
    p.end_input().unwrap();
    let err = p.collect().await.expect_err("the Send got a 500 fault");
    assert_eq!(err.operation(), Some("Send"), "{err}");
    pool.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault500_on_signal_is_harmless_and_on_delete_fails_close() {
    // Signals (terminate after each pipeline) fault; the session does not care.
    let fake = start(5, "fault500=1,fault500-ops=signal").await;
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    for _ in 0..2 {
        let r = pool
            .invoke([get_mailbox("5")])
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(r.output.len(), 5);
    }
    pool.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;

    let fake = fake_with_delete_fault().await;
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let err = pool.close().await.expect_err("the Delete got a 500 fault");
    assert_eq!(err.operation(), Some("Delete"), "{err}");
    fake.shutdown().await;
}

async fn fake_with_delete_fault() -> FakeExchange {
    start(2, "fault500=1,fault500-ops=delete").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_retries_on_503_and_max_concurrency_within_the_budget() {
    // Always 503: two attempts, the Retry-After (3 s) capped by max_delay (150 ms).
    let fake = start(2, "503=1,retry-after=3").await;
    let mut options = fake.connect_options();
    options.retry = RetryPolicy::new(2, Duration::from_millis(50), Duration::from_millis(150));
    let started = Instant::now();
    let err = RunspacePool::connect(options).await.unwrap_err();
    assert_eq!(err.http_status(), Some(503), "{err}");
    assert_eq!(err.operation(), Some("Create"));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    fake.shutdown().await;

    // Throttled half the time: the retries get through.
    let fake = start(4, "throttle=0.5,seed=3").await;
    let mut options = fake.connect_options();
    options.retry = RetryPolicy::new(12, Duration::from_millis(5), Duration::from_millis(20));
    let pool = RunspacePool::connect(options)
        .await
        .expect("a retry succeeds");
    let r = pool
        .invoke([get_mailbox("4")])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(r.unwrap().output.len(), 4);
    pool.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;

    // Always throttled: the budget runs out with a typed MaxConcurrency error.
    let fake = start(2, "throttle=1").await;
    let mut options = fake.connect_options();
    options.retry = RetryPolicy::new(3, Duration::from_millis(40), Duration::from_secs(1));
    let started = Instant::now();
    let err = RunspacePool::connect(options).await.unwrap_err();
    assert!(err.is_max_concurrency(), "{err}");
    // Two retries: 40 ms, then 80 ms.
    assert!(started.elapsed() >= Duration::from_millis(120));
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourth_pool_waits_for_a_free_slot_when_retrying() {
    let fake = start(3, "").await;
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(RunspacePool::connect(fake.connect_options()).await.unwrap());
    }
    // Without retries the fourth is refused at once.
    let err = RunspacePool::connect(fake.connect_options())
        .await
        .unwrap_err();
    assert!(err.is_max_concurrency(), "{err}");
    assert_eq!(fake.open_shells(), 3);
    // With retries, it gets the slot a closing pool frees.
    let mut options = fake.connect_options();
    options.retry = RetryPolicy::new(20, Duration::from_millis(50), Duration::from_millis(100));
    let fourth = tokio::spawn(RunspacePool::connect(options));
    tokio::time::sleep(Duration::from_millis(200)).await;
    pools.pop().unwrap().close().await.unwrap();
    let fourth = fourth
        .await
        .unwrap()
        .expect("the retry gets the freed slot");
    let r = fourth
        .invoke([get_mailbox("3")])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(r.unwrap().output.len(), 3);
    fourth.close().await.unwrap();
    for p in pools {
        p.close().await.unwrap();
    }
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_loops_are_capped() {
    // A server that redirects every request to itself.
    let addr: Arc<Mutex<String>> = Arc::default();
    let a = addr.clone();
    let server = Server::bind("127.0.0.1:0", move |req| {
        let base = a.lock().unwrap().clone();
        let hop: u32 = req
            .query()
            .and_then(|q| q.split("hop=").nth(1))
            .and_then(|h| h.parse().ok())
            .unwrap_or(0);
        async move {
            Response::new(302)
                .with_header(
                    "Location",
                    format!("{base}/powershell-liveid?hop={}", hop + 1),
                )
                .with_header("Content-Length", "0")
        }
    })
    .await
    .unwrap();
    *addr.lock().unwrap() = server.url();
    let fake = start(1, "").await;
    let mut options = fake.connect_options();
    options.endpoint.url = format!("{}/powershell-liveid?hop=0", server.url())
        .parse()
        .unwrap();
    let started = Instant::now();
    let err = RunspacePool::connect(options).await.unwrap_err();
    assert_eq!(err.operation(), Some("Create"), "{err}");
    assert!(err.to_string().contains("redirect"), "{err}");
    assert!(server.stats().requests <= 20, "{}", server.stats().requests);
    assert!(started.elapsed() < Duration::from_secs(5));
    server.shutdown().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_responses_time_out_with_a_typed_error() {
    let fake = start(1, "slow=1500ms").await;
    let mut options = fake.connect_options();
    options.transport = TransportConfig::default().request_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = RunspacePool::connect(options).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.operation(), Some("Create"), "{err}");
    assert!(started.elapsed() < Duration::from_millis(1450));
    fake.shutdown().await;
}

/// Keeps what it needs to delete a shell behind the client's back: the pod URL and the
/// affinity cookie of the Create's answer.
#[derive(Debug, Default)]
struct Spy(Mutex<Option<(url::Url, String)>>);

impl ExchangeObserver for Spy {
    fn on_exchange(&self, _: &HttpRequest, response: Result<&HttpResponse, &str>) {
        if let Ok(resp) = response
            && let Some(c) = resp.headers.get("set-cookie")
        {
            *self.0.lock().unwrap() = Some((resp.url.clone(), c.to_owned()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_deleted_on_the_server_is_a_typed_error() {
    let fake = start(3000, "").await;
    let spy = Arc::new(Spy::default());
    let mut options = fake.connect_options();
    options.observer = Some(spy.clone());
    let credentials = options.credentials.clone();
    let pool = RunspacePool::connect(options).await.unwrap();
    let mut p = pool.invoke([get_mailbox("Unlimited")]).await.unwrap();
    let mut outputs = 0;
    while outputs < 10 {
        if let PipelineEvent::Output(_) = p.next_event().await.unwrap().unwrap() {
            outputs += 1;
        }
    }
    // Someone else deletes the shell (an admin, the server's idle timeout).
    let (pod, cookie) = spy.0.lock().unwrap().clone().expect("the pod set a cookie");
    let mut other = HttpClient::new(
        Transport::new(TransportConfig::default()).unwrap(),
        credentials,
    )
    .allow_insecure_http(true);
    other
        .cookies_mut()
        .store(&pod, &cookie, SystemTime::now())
        .unwrap();
    let delete = Envelope::new(
        Header::request(
            pod.to_string(),
            rps_wsman::ns::action::DELETE,
            rps_replay::fake::EXCHANGE_RESOURCE_URI,
            Uuid::new_v4(),
        )
        .with_shell_id(pool.shell_id()),
        Body::Delete,
    );
    let resp = other
        .send(HttpRequest::winrm(pod, delete.encode()))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(fake.open_shells(), 0);
    // The stream ends with a typed error, never with silently short output.
    let err = loop {
        match p.next_event().await {
            Some(Ok(PipelineEvent::Output(_))) => outputs += 1,
            Some(Ok(PipelineEvent::Finished { .. })) | None => {
                panic!("a listing of a deleted shell cannot finish")
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break e,
        }
    };
    assert!(err.is_shell_gone(), "{err}");
    assert!(outputs < 3000);
    // The pool reports the session as over.
    assert!(pool.invoke([get_mailbox("1")]).await.is_err());
    drop(pool);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_pipeline_is_stopped_and_the_pool_goes_on() {
    let fake = start(3000, "").await;
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let mut p = pool.invoke([get_mailbox("Unlimited")]).await.unwrap();
    let mut outputs = 0;
    while outputs < 5 {
        if let PipelineEvent::Output(_) = p.next_event().await.unwrap().unwrap() {
            outputs += 1;
        }
    }
    drop(p);
    let r = pool
        .invoke([get_mailbox("7")])
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(r.output.len(), 7);
    assert_eq!(fake.running_pipelines(), 0);
    // Dropping the pool deletes the shell in the background.
    drop(pool);
    until_no_shells(&fake).await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_dropped_mid_stream_deletes_the_shell() {
    let fake = start(3000, "").await;
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let mut p = pool.invoke([get_mailbox("Unlimited")]).await.unwrap();
    let _ = p.next_event().await;
    drop(pool);
    drop(p);
    until_no_shells(&fake).await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_does_not_wait_for_the_receive_long_poll() {
    // A pipeline waiting for input produces nothing: its Receive long-polls for 8 s.
    let fake = FakeExchange::builder()
        .mailboxes(2)
        .operation_timeout_cap(Duration::from_secs(8))
        .start()
        .await
        .unwrap();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let mut request = CreatePipeline::new(PowerShell::new(vec![
        Command::new("Get-Mailbox").into_inner(),
    ]));
    request.no_input = false;
    let p = pool.invoke_request(request).await.unwrap();
    // Let the Command go out and the Receive start waiting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    p.stop().unwrap();
    let r = p.collect().await.unwrap();
    assert_eq!(r.state, Some(PsInvocationState::Stopped));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    // The pool still works, and a close during a long-poll is prompt too.
    let r = pool
        .invoke([get_mailbox("2")])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(r.unwrap().output.len(), 2);
    let mut request = CreatePipeline::new(PowerShell::new(vec![
        Command::new("Get-Mailbox").into_inner(),
    ]));
    request.no_input = false;
    let _waiting = pool.invoke_request(request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    pool.close().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pipelines_on_one_pool_have_disjoint_streams() {
    let fake = start(600, "").await;
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let collect = |c: Command| {
        let started = pool.invoke([c]);
        async move { started.await.unwrap().collect().await.unwrap() }
    };
    // Three Get-Mailbox at once, and a Get-Recipient beside them.
    let (a, b, c, d) = tokio::join!(
        collect(get_mailbox("150")),
        collect(get_mailbox("300")),
        collect(get_mailbox("600")),
        collect(Command::new("Get-Recipient").param("ResultSize", 100)),
    );
    assert_eq!(
        (
            a.output.len(),
            b.output.len(),
            c.output.len(),
            d.output.len()
        ),
        (150, 300, 600, 100)
    );
    // The same listing three times: each is exactly the full listing's prefix, each
    // object once, so no object went to the wrong pipeline or came twice.
    let (ta, tb, tc) = (texts(&a.output), texts(&b.output), texts(&c.output));
    assert_eq!(tc.iter().collect::<HashSet<_>>().len(), 600);
    assert_eq!(ta[..], tc[..150]);
    assert_eq!(tb[..], tc[..300]);
    // Get-Recipient's objects are not mailboxes: nothing crossed over.
    let td = texts(&d.output);
    assert!(td.iter().all(|t| !tc.contains(t)));
    for r in [&a, &b, &c, &d] {
        assert_eq!(r.state, Some(PsInvocationState::Completed));
    }
    pool.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pools_at_once_and_the_fourth_is_refused() {
    let fake = start(200, "").await;
    let (p1, p2, p3) = tokio::join!(
        RunspacePool::connect(fake.connect_options()),
        RunspacePool::connect(fake.connect_options()),
        RunspacePool::connect(fake.connect_options()),
    );
    let pools = [p1.unwrap(), p2.unwrap(), p3.unwrap()];
    let err = RunspacePool::connect(fake.connect_options())
        .await
        .unwrap_err();
    assert!(err.is_max_concurrency(), "{err}");
    let counts = tokio::join!(
        count(&pools[0], "50"),
        count(&pools[1], "100"),
        count(&pools[2], "200")
    );
    assert_eq!(counts, (50, 100, 200));
    for p in pools {
        p.close().await.unwrap();
    }
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

async fn count(pool: &RunspacePool, n: &str) -> usize {
    pool.invoke([get_mailbox(n)])
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
        .output
        .len()
}
