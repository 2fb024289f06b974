//! Token expiry during a session, on a clock the test moves: the fake judges tokens by it,
//! the client decides when to rebuild the pool by it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use rps_psrp::messages::PsInvocationState;
use rps_replay::fake::{FakeExchange, TokenSpec};
use rps_session::http::Credentials;
use rps_session::token::{AccessToken, Clock, StaticToken, TokenFuture, TokenProvider};
use rps_session::{Command, PipelineEvent, RunspacePool};

/// System time plus an offset the test moves forward.
#[derive(Debug, Clone, Default)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        let off = self.0.load(Ordering::SeqCst);
        let base = SystemTime::now();
        if off >= 0 {
            base + Duration::from_secs(off as u64)
        } else {
            base - Duration::from_secs(off.unsigned_abs())
        }
    }
}

/// Hands out the first of its tokens still valid five minutes from now, as a caching
/// provider refreshing ahead of expiry does; counts how often it is asked.
#[derive(Debug)]
struct Rotating {
    tokens: Vec<AccessToken>,
    clock: TestClock,
    asked: AtomicUsize,
}

impl TokenProvider for Rotating {
    fn token(&self) -> TokenFuture<'_> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let now = self.clock.now();
        let t = self
            .tokens
            .iter()
            .find(|t| t.is_fresh(now, Duration::from_secs(300)))
            .or(self.tokens.last())
            .cloned();
        Box::pin(async move { Ok(t.expect("tokens are minted up front")) })
    }
}

/// A fake on `clock`, and `lifetimes` tokens minted now.
async fn setup(mailboxes: usize, lifetimes: &[i64]) -> (FakeExchange, TestClock, Vec<AccessToken>) {
    let clock = TestClock::default();
    let c = clock.clone();
    let fake = FakeExchange::builder()
        .mailboxes(mailboxes)
        .clock(Arc::new(move || c.now()))
        .start()
        .await
        .unwrap();
    let now = clock.now();
    let tokens = lifetimes
        .iter()
        .map(|&l| {
            let jwt = fake.mint_token(&TokenSpec::app_only().lifetime(l));
            AccessToken::new(jwt, now + Duration::from_secs(l as u64))
        })
        .collect();
    (fake, clock, tokens)
}

fn get_mailbox(n: &str) -> Command {
    Command::new("Get-Mailbox").param("ResultSize", n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_is_rebuilt_before_the_next_command_when_its_token_expires() {
    // Token A lives 10 minutes, token B 70.
    let (fake, clock, tokens) = setup(40, &[600, 4200]).await;
    let provider = Arc::new(Rotating {
        tokens,
        clock: clock.clone(),
        asked: AtomicUsize::new(0),
    });
    let mut options =
        fake.connect_options_with(Credentials::app_only(fake.tenant_id(), provider.clone()));
    options.clock = Arc::new(clock.clone());
    options.token_refresh_margin = Some(Duration::from_secs(300));
    let pool = RunspacePool::connect(options).await.unwrap();
    let first_shell = pool.shell_id();
    let r = pool
        .invoke([get_mailbox("10")])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(r.unwrap().output.len(), 10);

    // 7 minutes later token A has 3 minutes left, inside the 5-minute margin: the next
    // command runs on a new shell made with token B; the old shell is deleted.
    clock.advance(420);
    let r = pool
        .invoke([get_mailbox("20")])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(r.unwrap().output.len(), 20);
    let second_shell = pool.shell_id();
    assert_ne!(second_shell, first_shell);
    assert_eq!(fake.open_shells(), 1);

    // Token A expires; B has an hour left: commands keep working on the same shell.
    clock.advance(600);
    for n in ["5", "40"] {
        let r = pool.invoke([get_mailbox(n)]).await.unwrap().collect().await;
        assert_eq!(r.unwrap().output.len(), n.parse::<usize>().unwrap());
    }
    assert_eq!(pool.shell_id(), second_shell);
    assert!(provider.asked.load(Ordering::SeqCst) >= 4);
    pool.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiring_mid_stream_is_refreshed_and_the_listing_completes() {
    let (fake, clock, tokens) = setup(1500, &[600, 4200]).await;
    let provider = Arc::new(Rotating {
        tokens,
        clock: clock.clone(),
        asked: AtomicUsize::new(0),
    });
    let mut options = fake.connect_options_with(Credentials::app_only(fake.tenant_id(), provider));
    options.clock = Arc::new(clock.clone());
    let pool = RunspacePool::connect(options).await.unwrap();
    let mut p = pool.invoke([get_mailbox("Unlimited")]).await.unwrap();
    let mut seen = HashSet::new();
    let mut state = None;
    while let Some(ev) = p.next_event().await {
        match ev.expect("no error: the shell survives the token change") {
            PipelineEvent::Output(v) => {
                assert!(seen.insert(rps_psrp::clixml::to_string(&v)), "duplicate");
                if seen.len() == 100 {
                    // Token A expires while the listing streams.
                    clock.advance(700);
                }
            }
            PipelineEvent::Finished { state: s, .. } => state = Some(s),
            _ => {}
        }
    }
    assert_eq!(state, Some(PsInvocationState::Completed));
    assert_eq!(seen.len(), 1500);
    pool.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiring_mid_stream_without_a_new_one_is_a_typed_error() {
    let (fake, clock, mut tokens) = setup(1500, &[600]).await;
    let only = tokens.remove(0);
    let provider = Arc::new(StaticToken::with_expiry(only));
    let mut options = fake.connect_options_with(Credentials::app_only(fake.tenant_id(), provider));
    options.clock = Arc::new(clock.clone());
    let pool = RunspacePool::connect(options).await.unwrap();
    let mut p = pool.invoke([get_mailbox("Unlimited")]).await.unwrap();
    let mut outputs = 0usize;
    let err = loop {
        match p.next_event().await {
            Some(Ok(PipelineEvent::Output(_))) => {
                outputs += 1;
                if outputs == 100 {
                    clock.advance(700);
                }
            }
            Some(Ok(PipelineEvent::Finished { .. })) | None => {
                panic!("the listing cannot complete on an expired token ({outputs} objects)")
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break e,
        }
    };
    assert!(err.is_unauthorized(), "{err}");
    // What arrived before the expiry was delivered; the rest was refused, not dropped.
    assert!((100..1500).contains(&outputs), "{outputs}");
    drop(pool);
    fake.shutdown().await;
}

/// A proxy in front of the fake (without redirection) that answers 401 to every Command,
/// Send and Receive on a shell it is told to refuse, as Exchange Online does once the token
/// a shell was created with has expired; it counts its refusals.
struct RefusingProxy {
    server: rps_replay::server::Server,
    refuse: Arc<std::sync::Mutex<Option<uuid::Uuid>>>,
    refused: Arc<AtomicUsize>,
}

async fn refusing_proxy(pod: String) -> RefusingProxy {
    use rps_replay::server::{Response, Server};
    use rps_session::http::{HttpRequest, Method, Transport, TransportConfig};
    let refuse: Arc<std::sync::Mutex<Option<uuid::Uuid>>> = Arc::default();
    let refused = Arc::new(AtomicUsize::new(0));
    let (r, n) = (refuse.clone(), refused.clone());
    let server = Server::bind("127.0.0.1:0", move |req| {
        let (r, n, pod) = (r.clone(), n.clone(), pod.clone());
        async move {
            let env = rps_wsman::Envelope::decode(&req.body).ok();
            let shell = env.as_ref().and_then(|e| e.shell_uuid());
            let deleting = env
                .as_ref()
                .and_then(|e| e.action())
                .is_some_and(|a| a == rps_wsman::ns::action::DELETE);
            let blocked = *r.lock().unwrap();
            if shell.is_some() && shell == blocked && !deleting {
                n.fetch_add(1, Ordering::SeqCst);
                return Response::new(401).with_header("WWW-Authenticate", "Basic Realm=\"\"");
            }
            let url = format!("{pod}{}", req.uri).parse().unwrap();
            let mut fwd = HttpRequest::new(Method::Post, url);
            for (k, v) in &req.headers {
                if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("content-length") {
                    fwd.headers.append(k.clone(), v.clone());
                }
            }
            fwd.body = req.body.clone();
            let mut t = Transport::new(TransportConfig::default()).unwrap();
            match t.send(&fwd).await {
                Ok(resp) => {
                    let mut out = Response::new(resp.status).with_body(resp.body);
                    for (k, v) in resp.headers.iter() {
                        if k.eq_ignore_ascii_case("content-type")
                            || k.eq_ignore_ascii_case("set-cookie")
                        {
                            out = out.with_header(k, v);
                        }
                    }
                    out
                }
                Err(_) => Response::dropped(),
            }
        }
    })
    .await
    .unwrap();
    RefusingProxy {
        server,
        refuse,
        refused,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_refusing_the_token_is_rebuilt_and_the_command_sent_again() {
    let fake = FakeExchange::builder()
        .mailboxes(300)
        .redirect(false)
        .start()
        .await
        .unwrap();
    let pod = fake
        .pod_url()
        .split("/powershell-liveid")
        .next()
        .unwrap()
        .to_owned();
    let proxy = refusing_proxy(pod).await;
    let mut options = fake.connect_options();
    options.endpoint.url = format!("{}{}", proxy.server.url(), rps_replay::fake::LIVEID_PATH)
        .parse()
        .unwrap();
    let pool = RunspacePool::connect(options).await.unwrap();
    let r = pool
        .invoke([get_mailbox("5")])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(r.unwrap().output.len(), 5);
    let first = pool.shell_id();

    // The shell now refuses the token: the Command is refused (also after the client's own
    // token refresh), the pool is rebuilt, and the command runs on the new shell in full.
    *proxy.refuse.lock().unwrap() = Some(first);
    let r = pool
        .invoke([get_mailbox("50")])
        .await
        .unwrap()
        .collect()
        .await
        .expect("the command runs again on a new shell");
    assert_eq!(r.output.len(), 50);
    assert_eq!(r.state, Some(PsInvocationState::Completed));
    let second = pool.shell_id();
    assert_ne!(second, first);
    assert!(proxy.refused.load(Ordering::SeqCst) >= 2);
    assert_eq!(fake.open_shells(), 1, "the refused shell was deleted");

    // Refused mid-stream: the listing ends with a typed error after what it delivered (it
    // already ran on the server, so it is not repeated); the next command gets a new shell.
    let mut p = pool.invoke([get_mailbox("Unlimited")]).await.unwrap();
    let mut outputs = 0;
    while outputs < 10 {
        if let PipelineEvent::Output(_) = p.next_event().await.unwrap().unwrap() {
            outputs += 1;
        }
    }
    *proxy.refuse.lock().unwrap() = Some(second);
    let err = loop {
        match p.next_event().await {
            Some(Ok(PipelineEvent::Output(_))) => outputs += 1,
            Some(Ok(PipelineEvent::Finished { .. })) | None => panic!("cannot finish"),
            Some(Ok(_)) => {}
            Some(Err(e)) => break e,
        }
    };
    assert!(err.is_unauthorized(), "{err}");
    assert!(outputs < 300);
    let r = pool
        .invoke([get_mailbox("3")])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(r.unwrap().output.len(), 3);
    assert_ne!(pool.shell_id(), second);
    pool.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    proxy.server.shutdown().await;
    fake.shutdown().await;
}
