use rps_replay::fake::{FakeExchange, FaultSpec};
use rps_session::{Command, RunspacePool};
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe() {
    let fake = FakeExchange::builder().mailboxes(3)
        .faults(FaultSpec::parse("fault500=1,fault500-ops=command").unwrap()).start().await.unwrap();
    let pool = RunspacePool::connect(fake.connect_options()).await.unwrap();
    let r = pool.invoke([Command::new("Get-Mailbox")]).await;
    println!("invoke: {:?}", r.as_ref().map(|_| ()));
    if let Ok(p) = r { println!("collect: {:?}", p.collect().await.map(|r| r.output.len())); }
    let r2 = pool.invoke([Command::new("Get-Mailbox")]).await;
    println!("second invoke: {:?}", r2.as_ref().map(|_| ()));
    println!("close: {:?}", pool.close().await);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    println!("open shells: {}", fake.open_shells());
}
