//! Records a full Exchange Online session against the fake endpoint into a transcript:
//! the 302 to the pod, the cookie, open, `Get-Mailbox -ResultSize 5`, an error record, close.
//!
//! ```text
//! cargo run -p rps-replay --example record_fake_session -- fixtures/transcripts/exo-fake-get-mailbox.yaml
//! ```
//!
//! The transcript is marked synthesized: it comes from our fake, not from Exchange.

use std::sync::Arc;

use rps_replay::fake::FakeExchange;
use rps_replay::recorder::{Redaction, TranscriptRecorder};
use rps_session::{Command, RunspacePool};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "exo-fake-get-mailbox.yaml".to_owned());
    let fake = FakeExchange::builder()
        .mailboxes(12)
        .seed(7)
        .bind("127.0.0.1:0")
        .start()
        .await?;
    let mut options = fake.connect_options();
    let recorder = Arc::new(
        TranscriptRecorder::new(
            &out,
            "rps-replay example record_fake_session against the fake Exchange Online endpoint",
            Redaction::default(),
        )
        .synthesized(
            "synthesized: recorded from rps's own fake Exchange Online endpoint (loopback), \
             app-only OAuth-as-Basic, 302 to the pod, MS-WSMAN cookie; Get-Mailbox -ResultSize 5 \
             and Get-Mailbox -Identity nobody@contoso.com (ManagementObjectNotFoundException)",
        ),
    );
    options.observer = Some(recorder.clone());
    let pool = RunspacePool::connect(options).await?;
    let ok = pool
        .invoke([Command::new("Get-Mailbox").param("ResultSize", 5)])
        .await?
        .collect()
        .await?;
    let err = pool
        .invoke([Command::new("Get-Mailbox").param("Identity", "nobody@contoso.com")])
        .await?
        .collect()
        .await?;
    pool.close().await?;
    recorder.save()?;
    eprintln!(
        "{}: {} exchanges, {} mailboxes, {} error record(s)",
        out,
        recorder.transcript().exchanges.len(),
        ok.output.len(),
        err.errors().count()
    );
    Ok(())
}
