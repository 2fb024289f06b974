//! The async client's shell operations (`RunspacePool::is_alive`, `read_server_config`,
//! `disconnect`/`reconnect`, `connect_disconnected`/`connect_pipeline`, `exchange_key`)
//! against the fake Exchange Online endpoint over loopback.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::time::SystemTime;

use rps_psrp::messages::PsInvocationState;
use rps_replay::fake::{
    DISCONNECT_NOT_SUPPORTED_CODE, EXCHANGE_RESOURCE_URI, FakeExchange, INVALID_SELECTORS_CODE,
    SHELL_DISCONNECTED_CODE,
};
use rps_session::http::{HttpClient, HttpRequest, HttpResponse, Transport, TransportConfig};
use rps_session::machine::SessionError;
use rps_session::{Command, Error, ExchangeObserver, Pipeline, PipelineEvent, RunspacePool};
use rps_wsman::ns::{action, resource};
use rps_wsman::{Body, Envelope, Header, Item, uuid_upper};
use uuid::Uuid;

/// What a request carried, as the observer saw it.
#[derive(Debug, Clone)]
struct Seen {
    action: String,
    resource_uri: String,
    command_id: Option<String>,
    max_envelope_size: Option<u64>,
    bytes: usize,
    status: Option<u16>,
}

/// Records every request of a pool, and the last affinity cookie set with its URL.
#[derive(Debug, Default)]
struct Spy(Mutex<Vec<Seen>>, Mutex<Option<(url::Url, String)>>);

impl ExchangeObserver for Spy {
    fn on_exchange(&self, request: &HttpRequest, response: Result<&HttpResponse, &str>) {
        if let Ok(resp) = response
            && let Some(c) = resp.headers.get("set-cookie")
        {
            *self.1.lock().unwrap() = Some((resp.url.clone(), c.to_owned()));
        }
        let Ok(env) = Envelope::decode(&request.body) else {
            return;
        };
        let seen = Seen {
            action: env.action().unwrap_or_default().to_owned(),
            resource_uri: env.resource_uri().unwrap_or_default().to_owned(),
            command_id: env.command_id().map(str::to_owned),
            max_envelope_size: env.header.max_envelope_size.as_ref().map(|m| m.value),
            bytes: request.body.len(),
            status: response.ok().map(|r| r.status),
        };
        self.0.lock().unwrap().push(seen);
    }
}

impl Spy {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    /// Receives on the shell's own stream (no CommandId).
    fn shell_receives(&self) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.action == action::RECEIVE && s.command_id.is_none())
            .count()
    }
}

/// Deterministic randomness for small test keys (xorshift; not for real keys).
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

fn small_key(seed: u64) -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut TestRng(seed), 1024).expect("a 1024-bit test key")
}

/// Outputs of `p` until it finishes, and its final state.
async fn drain(p: &mut Pipeline) -> (usize, Option<PsInvocationState>) {
    let mut outputs = 0;
    while let Some(ev) = p.next_event().await {
        match ev.expect("pipeline event") {
            PipelineEvent::Output(_) => outputs += 1,
            PipelineEvent::Finished { state, .. } => return (outputs, Some(state)),
            _ => {}
        }
    }
    (outputs, None)
}

async fn mailboxes(pool: &RunspacePool, n: i32) -> rps_session::PipelineResult {
    pool.invoke([Command::new("Get-Mailbox").param("ResultSize", n)])
        .await
        .expect("invoke")
        .collect()
        .await
        .expect("collect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_alive_until_the_server_forgets_the_shell() {
    let fake = FakeExchange::builder().start().await.unwrap();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let shell = pool.shell_id();
    assert_eq!(fake.shell_state(shell), Some("Connected"));
    assert!(pool.is_alive().await.unwrap());
    assert!(
        pool.is_alive().await.unwrap(),
        "asking again changes nothing"
    );
    assert_eq!(mailboxes(&pool, 2).await.output.len(), 2);
    // Let the terminate Signal for that finished pipeline go out first.
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert!(fake.kill_shell(shell));
    assert_eq!(fake.shell_state(shell), None);
    let before = fake.stats().pod_requests;
    assert!(!pool.is_alive().await.unwrap());
    // Only the Get went out: no Delete of a shell the server does not have.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.stats().pod_requests - before, 1);
    // The pool is over.
    assert!(!pool.is_alive().await.unwrap());
    let err = pool
        .invoke([Command::new("Get-Mailbox")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_server_config_sets_the_envelope_size_the_fake_enforces() {
    const KB: u32 = 40;
    // No front listener: see `read_server_config_through_the_redirect` for why.
    let fake = FakeExchange::builder()
        .max_envelope_size_kb(KB)
        .redirect(false)
        .start()
        .await
        .unwrap();
    // Larger than one 40 KiB envelope: it must be split to get through.
    let identity: String = "x".repeat(60_000);
    let big = || Command::new("Get-Mailbox").param("Identity", identity.clone());

    let spy = Arc::new(Spy::default());
    let mut options = fake.connect_options();
    options.read_server_config = true;
    options.observer = Some(spy.clone());
    let pool = RunspacePool::connect(options).await.unwrap();
    let result = pool
        .invoke([big()])
        .await
        .unwrap()
        .collect()
        .await
        .expect("the split pipeline reaches the server");
    // The server ran it (and found no such mailbox): a PSRP answer, not a WS-Man refusal.
    assert!(result.state.is_some(), "{result:?}");
    assert_eq!(mailboxes(&pool, 2).await.output.len(), 2);
    pool.close().await.unwrap();

    let seen = spy.seen();
    let first = &seen[0];
    assert_eq!(first.action, action::GET);
    assert_eq!(first.resource_uri, resource::CONFIG);
    assert_eq!(
        first.max_envelope_size,
        Some(153_600),
        "the configured size"
    );
    let limit = u64::from(KB) * 1024;
    for s in &seen[1..] {
        assert_eq!(s.max_envelope_size, Some(limit), "{s:?}");
        assert!(s.bytes as u64 <= limit, "{s:?}");
        if s.action != action::RECEIVE {
            // Receives may time out; nothing else was refused.
            assert_eq!(s.status, Some(200), "{s:?}");
        }
    }
    let commands = seen.iter().filter(|s| s.action == action::COMMAND).count();
    let sends = seen.iter().filter(|s| s.action == action::SEND).count();
    assert_eq!(commands, 2, "{seen:?}");
    assert!(
        sends >= 1,
        "the rest of the big CREATE_PIPELINE went in Sends"
    );

    // The control: without reading the configuration, the client raises its envelope size
    // after negotiation and the fake refuses the big Command.
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let mut p = pool.invoke([big()]).await.unwrap();
    let err = loop {
        match p.next_event().await {
            Some(Err(e)) => break e,
            Some(Ok(PipelineEvent::Finished { state, .. })) => {
                panic!("the oversized Command was accepted: {state:?}")
            }
            Some(Ok(_)) => {}
            None => panic!("no error"),
        }
    };
    assert!(err.to_string().contains("maximum envelope size"), "{err}");
    // Only that pipeline was lost.
    assert_eq!(mailboxes(&pool, 1).await.output.len(), 1);
    pool.close().await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_and_reconnect_keep_the_pipeline_running() {
    let fake = FakeExchange::builder()
        .mailboxes(60)
        .disconnect_supported(true)
        .start()
        .await
        .unwrap();
    let spy = Arc::new(Spy::default());
    let mut options = fake.connect_options();
    options.observer = Some(spy.clone());
    let pool = RunspacePool::connect(options).await.unwrap();
    let shell = pool.shell_id();

    let mut p = pool
        .invoke([Command::new("Get-Mailbox").param("ResultSize", 60)])
        .await
        .unwrap();
    let mut outputs = 0;
    while outputs == 0 {
        match p.next_event().await.unwrap().unwrap() {
            PipelineEvent::Output(_) => outputs += 1,
            PipelineEvent::Finished { .. } => panic!("finished before the disconnect"),
            _ => {}
        }
    }
    pool.disconnect().await.unwrap();
    assert_eq!(fake.shell_state(shell), Some("Disconnected"));
    // We disconnected it ourselves: still alive.
    assert!(pool.is_alive().await.unwrap());
    // Nothing but that Get goes out while disconnected.
    let sent = spy.seen().len();
    let err = pool
        .invoke([Command::new("Get-Mailbox")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Session(SessionError::State { .. })),
        "{err}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(spy.seen().len(), sent, "{:?}", &spy.seen()[sent..]);

    pool.reconnect().await.unwrap();
    assert_eq!(fake.shell_state(shell), Some("Connected"));
    let (rest, state) = drain(&mut p).await;
    assert_eq!(state, Some(PsInvocationState::Completed));
    assert_eq!(outputs + rest, 60, "no object lost across the disconnect");
    assert_eq!(mailboxes(&pool, 3).await.output.len(), 3);
    pool.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_is_refused_as_exchange_online_refuses_it() {
    let fake = FakeExchange::builder().start().await.unwrap();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let err = pool.disconnect().await.unwrap_err();
    match &err {
        Error::Session(SessionError::Fault { operation, fault }) => {
            assert_eq!(*operation, "Disconnect");
            assert_eq!(fault.wsman_code(), Some(DISCONNECT_NOT_SUPPORTED_CODE));
        }
        other => panic!("not the fault: {other:?}"),
    }
    assert_eq!(fake.shell_state(pool.shell_id()), Some("Connected"));
    // The pool carries on.
    assert!(pool.is_alive().await.unwrap());
    assert_eq!(mailboxes(&pool, 2).await.output.len(), 2);
    pool.close().await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_connection_takes_over_a_disconnected_pool_and_its_pipeline() {
    // No front listener: see `connect_disconnected_through_the_redirect` for why.
    let fake = FakeExchange::builder()
        .mailboxes(2000)
        .disconnect_supported(true)
        .redirect(false)
        .start()
        .await
        .unwrap();
    // Enough output that the pipeline is still running when the Disconnect goes out (a
    // finished command is terminated and freed, and could not be taken over).
    let first = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let shell = first.shell_id();
    let mut p = first
        .invoke([Command::new("Get-Mailbox").param("ResultSize", 2000)])
        .await
        .unwrap();
    let pid = p.id();
    // The first object (progress records may come before it).
    loop {
        match p.next_event().await {
            Some(Ok(PipelineEvent::Output(_))) => break,
            Some(Ok(_)) => {}
            other => panic!("no output: {other:?}"),
        }
    }
    first.disconnect().await.unwrap();
    // Everything the first connection received was delivered before the Disconnect.
    let mut got_first = 1;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(50), p.next_event()).await {
        if let Ok(PipelineEvent::Output(_)) = ev {
            got_first += 1;
        }
    }

    let second = RunspacePool::connect_disconnected(fake.connect_options(), shell)
        .await
        .expect("the takeover");
    assert_eq!(second.shell_id(), shell);
    assert_eq!(fake.shell_state(shell), Some("Connected"));
    assert_eq!(fake.open_shells(), 1);
    let mut taken = second.connect_pipeline(pid).await.unwrap();
    let (rest, state) = drain(&mut taken).await;
    assert_eq!(state, Some(PsInvocationState::Completed));
    assert_eq!(got_first + rest, 2000, "{got_first} + {rest}");
    assert_eq!(mailboxes(&second, 2).await.output.len(), 2);
    second.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    drop(first);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_key_succeeds() {
    let fake = FakeExchange::builder().start().await.unwrap();
    let spy = Arc::new(Spy::default());
    let mut options = fake.connect_options();
    options.observer = Some(spy.clone());
    let pool = RunspacePool::connect(options).await.unwrap();
    let receives = spy.shell_receives();
    pool.exchange_key(Duration::from_secs(60)).await.unwrap();
    assert!(
        spy.shell_receives() > receives,
        "the key came on the shell's stream"
    );
    // With a key of our own too, and the pool works on.
    pool.exchange_key_with(small_key(0x5eed), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(mailboxes(&pool, 1).await.output.len(), 1);
    pool.close().await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_key_times_out_fast_when_the_server_never_answers() {
    let fake = FakeExchange::builder()
        .answer_key_exchange(false)
        .operation_timeout_cap(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    let spy = Arc::new(Spy::default());
    let mut options = fake.connect_options();
    options.observer = Some(spy.clone());
    let pool = RunspacePool::connect(options).await.unwrap();

    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = pool
        .exchange_key_with(small_key(0xcafe), timeout)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::KeyExchangeTimeout(t) if t == timeout),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    // The pool still works, and stops reading the shell's stream for the key.
    assert_eq!(mailboxes(&pool, 2).await.output.len(), 2);
    let receives = spy.shell_receives();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        spy.shell_receives(),
        receives,
        "no Receive for a cancelled key"
    );
    pool.close().await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_server_config_through_the_redirect() {
    let fake = FakeExchange::builder()
        .max_envelope_size_kb(40)
        .start()
        .await
        .unwrap();
    let mut options = fake.connect_options();
    options.read_server_config = true;
    let pool = RunspacePool::connect(options)
        .await
        .expect("the config Get follows the 302 to the pod");
    assert_eq!(mailboxes(&pool, 1).await.output.len(), 1);
    pool.close().await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_disconnected_through_the_redirect() {
    let fake = FakeExchange::builder()
        .disconnect_supported(true)
        .start()
        .await
        .unwrap();
    let first = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let shell = first.shell_id();
    first.disconnect().await.unwrap();
    let second = RunspacePool::connect_disconnected(fake.connect_options(), shell)
        .await
        .expect("the Connect follows the 302 to the pod");
    assert_eq!(mailboxes(&second, 1).await.output.len(), 1);
    second.close().await.unwrap();
    drop(first);
    fake.shutdown().await;
}

/// Sends one hand-made request for shell `shell` (and command `command`) to the pod with
/// `pool`'s affinity cookie, as a second connection of the same user would.
async fn by_hand(
    spy: &Spy,
    credentials: Option<rps_session::http::Credentials>,
    action: &str,
    resource_uri: &str,
    shell: Uuid,
    body: Body,
) -> (u16, Envelope) {
    let (pod, cookie) = spy.1.lock().unwrap().clone().expect("the pod set a cookie");
    let mut other = HttpClient::new(
        Transport::new(TransportConfig::default()).unwrap(),
        credentials,
    )
    .allow_insecure_http(true);
    other
        .cookies_mut()
        .store(&pod, &cookie, SystemTime::now())
        .unwrap();
    let req = Envelope::new(
        Header::request(pod.to_string(), action, resource_uri, Uuid::new_v4())
            .with_shell_id(shell)
            .with_operation_timeout_secs(1),
        body,
    );
    let resp = other
        .send(HttpRequest::winrm(pod, req.encode()))
        .await
        .unwrap();
    let env = Envelope::decode(&resp.body).expect("a SOAP answer");
    (resp.status, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_answers_shell_gets_and_refuses_receives_on_a_disconnected_shell() {
    let fake = FakeExchange::builder()
        .mailboxes(60)
        .disconnect_supported(true)
        .redirect(false)
        .start()
        .await
        .unwrap();
    let spy = Arc::new(Spy::default());
    let mut options = fake.connect_options();
    options.observer = Some(spy.clone());
    let credentials = options.credentials.clone();
    let pool = RunspacePool::connect(options).await.unwrap();
    let shell = pool.shell_id();
    let get = |id| {
        by_hand(
            &spy,
            credentials.clone(),
            action::GET,
            resource::SHELL,
            id,
            Body::Get,
        )
    };

    let (status, env) = get(shell).await;
    assert_eq!(status, 200);
    match &env.body {
        Body::GetResponse(Item::Shell(sh)) => {
            assert_eq!(sh.shell_id.as_deref(), Some(uuid_upper(shell).as_str()));
            assert_eq!(sh.state.as_deref(), Some("Connected"));
            assert_eq!(sh.resource_uri.as_deref(), Some(EXCHANGE_RESOURCE_URI));
            assert_eq!(
                sh.owner.as_deref(),
                Some(
                    format!("oauthuser@{}", fake.tenant_id())
                        .to_ascii_lowercase()
                        .as_str()
                )
            );
        }
        other => panic!("not a shell: {other:?}"),
    }
    let (status, env) = get(Uuid::from_u128(0xdead)).await;
    assert_eq!(status, 500);
    let f = env.fault().expect("a fault for an unknown shell");
    assert!(f.is_invalid_selectors());
    assert_eq!(f.wsman_code(), Some(INVALID_SELECTORS_CODE));

    let mut p = pool
        .invoke([Command::new("Get-Mailbox").param("ResultSize", 60)])
        .await
        .unwrap();
    let mut outputs = 0;
    while outputs == 0 {
        if let PipelineEvent::Output(_) = p.next_event().await.unwrap().unwrap() {
            outputs += 1;
        }
    }
    pool.disconnect().await.unwrap();
    let (_, env) = get(shell).await;
    match &env.body {
        Body::GetResponse(Item::Shell(sh)) => {
            assert_eq!(sh.state.as_deref(), Some("Disconnected"));
        }
        other => panic!("not a shell: {other:?}"),
    }
    let (status, env) = by_hand(
        &spy,
        credentials.clone(),
        action::RECEIVE,
        EXCHANGE_RESOURCE_URI,
        shell,
        Body::receive(Some(p.id())),
    )
    .await;
    assert_eq!(status, 500);
    let f = env.fault().expect("a fault for a disconnected shell");
    assert_eq!(f.wsman_code(), Some(SHELL_DISCONNECTED_CODE));
    assert!(!f.is_invalid_selectors(), "the shell is not gone");

    // The refused Receive took nothing: every object still arrives.
    pool.reconnect().await.unwrap();
    let (rest, state) = drain(&mut p).await;
    assert_eq!(state, Some(PsInvocationState::Completed));
    assert_eq!(outputs + rest, 60);
    pool.close().await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_alive_is_false_once_another_connection_disconnected_the_shell() {
    let fake = FakeExchange::builder()
        .disconnect_supported(true)
        .redirect(false)
        .start()
        .await
        .unwrap();
    let spy = Arc::new(Spy::default());
    let mut options = fake.connect_options();
    options.observer = Some(spy.clone());
    let credentials = options.credentials.clone();
    let pool = RunspacePool::connect(options).await.unwrap();
    let shell = pool.shell_id();
    assert!(pool.is_alive().await.unwrap());

    let (status, _) = by_hand(
        &spy,
        credentials,
        action::DISCONNECT,
        EXCHANGE_RESOURCE_URI,
        shell,
        Body::disconnect(None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(fake.shell_state(shell), Some("Disconnected"));

    let sent = spy.seen().len();
    assert!(!pool.is_alive().await.unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after: Vec<String> = spy.seen()[sent..]
        .iter()
        .map(|s| s.action.clone())
        .collect();
    assert_eq!(after, vec![action::GET.to_owned()], "no Delete followed");
    // The disconnected shell is left on the server for whoever disconnected it.
    assert_eq!(fake.shell_state(shell), Some("Disconnected"));
    assert!(matches!(
        pool.invoke([Command::new("Get-Mailbox")]).await,
        Err(Error::Closed)
    ));
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_while_disconnected_deletes_the_shell() {
    let fake = FakeExchange::builder()
        .disconnect_supported(true)
        .start()
        .await
        .unwrap();
    let spy = Arc::new(Spy::default());
    let mut options = fake.connect_options();
    options.observer = Some(spy.clone());
    let pool = RunspacePool::connect(options).await.unwrap();
    let _running = pool
        .invoke([Command::new("Get-Mailbox").param("ResultSize", "Unlimited")])
        .await
        .unwrap();
    pool.disconnect().await.unwrap();
    let sent = spy.seen().len();
    pool.close().await.unwrap();
    let after: Vec<String> = spy.seen()[sent..]
        .iter()
        .map(|s| s.action.clone())
        .collect();
    assert_eq!(after, vec![action::DELETE.to_owned()]);
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_an_abandoned_disconnect_still_deletes_the_shell() {
    let fake = FakeExchange::builder()
        .disconnect_supported(true)
        .faults(rps_replay::fake::FaultSpec::parse("slow=300ms").unwrap())
        .start()
        .await
        .unwrap();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let _running = pool
        .invoke([Command::new("Get-Mailbox").param("ResultSize", "Unlimited")])
        .await
        .unwrap();
    // Given up while a Receive is in flight: the Disconnect is still queued.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let gave_up = tokio::time::timeout(Duration::from_millis(50), pool.disconnect()).await;
    assert!(gave_up.is_err(), "the Disconnect waited behind the Receive");
    tokio::time::timeout(Duration::from_secs(10), pool.close())
        .await
        .expect("close resolves")
        .expect("close succeeds");
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}
