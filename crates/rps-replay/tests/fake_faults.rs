//! Fault injection: the spec parser, and the client living through injected faults.

use std::time::{Duration, Instant};

use rps_replay::fake::{FakeExchange, FaultSpec, FaultSpecError, Op};
use rps_session::{Command, RunspacePool};

#[test]
fn parses_every_key() {
    let s: FaultSpec = "drop-receive=0.05,fault500=0.01,throttle=0.1,slow=200ms,seed=42"
        .parse()
        .unwrap();
    assert_eq!(s.drop_receive, 0.05);
    assert_eq!(s.fault500, 0.01);
    assert_eq!(s.throttle, 0.1);
    assert_eq!(s.slow, Duration::from_millis(200));
    assert_eq!(s.seed, 42);
    assert_eq!(s.fault500_ops, vec![Op::Receive, Op::Command, Op::Send]);
    let s =
        FaultSpec::parse("503=0.5, retry-after=7, fault500-ops=create+delete, slow=1.5s").unwrap();
    assert_eq!(s.unavailable, 0.5);
    assert_eq!(s.retry_after_secs, 7);
    assert_eq!(s.fault500_ops, vec![Op::Create, Op::Delete]);
    assert_eq!(s.slow, Duration::from_millis(1500));
    assert_eq!(FaultSpec::parse("").unwrap(), FaultSpec::none());
}

#[test]
fn rejects_bad_specs() {
    assert!(matches!(
        FaultSpec::parse("nope=1"),
        Err(FaultSpecError::UnknownKey(_))
    ));
    assert!(matches!(
        FaultSpec::parse("fault500"),
        Err(FaultSpecError::NotPair(_))
    ));
    assert!(matches!(
        FaultSpec::parse("fault500=2"),
        Err(FaultSpecError::BadValue { .. })
    ));
    assert!(FaultSpec::parse("slow=fast").is_err());
    assert!(FaultSpec::parse("fault500-ops=receive+dance").is_err());
    assert!(FaultSpec::parse("seed=-1").is_err());
}

async fn list(pool: &RunspacePool, n: i32) -> usize {
    pool.invoke([Command::new("Get-Mailbox").param("ResultSize", n)])
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
        .output
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_receives_lose_nothing() {
    let fake = FakeExchange::builder()
        .mailboxes(400)
        .faults(FaultSpec::parse("drop-receive=0.2,seed=7").unwrap())
        .start()
        .await
        .unwrap();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    assert_eq!(list(&pool, 400).await, 400);
    pool.close().await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_refuses_create_as_max_concurrency() {
    let fake = FakeExchange::builder()
        .faults(FaultSpec::parse("throttle=1").unwrap())
        .start()
        .await
        .unwrap();
    let err = RunspacePool::connect(fake.connect_options())
        .await
        .unwrap_err();
    assert!(err.is_max_concurrency(), "{err}");
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault500_on_command_fails_the_pipeline_not_the_pool() {
    let fake = FakeExchange::builder()
        .mailboxes(3)
        .faults(FaultSpec::parse("fault500=1,fault500-ops=command").unwrap())
        .start()
        .await
        .unwrap();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let r = pool
        .invoke([Command::new("Get-Mailbox")])
        .await
        .unwrap()
        .collect()
        .await;
    let err = r.expect_err("the Command got a 500 fault");
    assert!(err.to_string().contains("internal error"), "{err}");
    // The pool outlives the lost pipeline: it still runs commands and closes cleanly.
    let again = pool.invoke([Command::new("Get-Mailbox")]).await;
    assert!(again.is_ok());
    drop(again);
    pool.close().await.unwrap();
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_and_slow() {
    let fake = FakeExchange::builder()
        .faults(FaultSpec::parse("503=1,retry-after=9").unwrap())
        .start()
        .await
        .unwrap();
    let err = RunspacePool::connect(fake.connect_options())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    fake.shutdown().await;

    let fake = FakeExchange::builder()
        .mailboxes(2)
        .faults(FaultSpec::parse("slow=100ms").unwrap())
        .start()
        .await
        .unwrap();
    let started = Instant::now();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    // Create and the opening Receive each wait 100 ms.
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(list(&pool, 2).await, 2);
    pool.close().await.unwrap();
    fake.shutdown().await;
}
