//! Queueing a save's webhooks in the host's own SQLite transaction: the CRM's `leads` table and the crate's tables
//! in one file. A save that rolls back queues nothing; a committed one is sent. (The receiver here is the test
//! double `MockHttp`, so the example needs no network; a host uses `ReqwestClient`.)
//!
//! ```text
//! cargo run --example host_transaction_sqlite
//! ```

use std::sync::Arc;

use crm_webhooks::adapters::sqlite::rusqlite::{self, TransactionBehavior};
use crm_webhooks::testing::{MockHttp, RecordingMailer, StaticDirectory};
use crm_webhooks::{Change, Engine, LogQuery, RecordEvent, SqliteStorage, WorkflowSet};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const WORKFLOWS: &str = r#"[{"id": "lead-sync", "module": "Leads", "trigger": "every_save", "actions": [
    {"title": "Sync lead", "url": "https://mailing.example.com/contacts", "method": "PUT", "content_type": "JSON",
     "ordered": true, "parameters": [{"name": "id", "field": "id"}, {"name": "name", "field": "name"}]}]}]"#;

/// The host's save: its own row and the webhooks, in one transaction.
async fn save(
    engine: &Engine,
    storage: &SqliteStorage,
    crm: &mut rusqlite::Connection,
    id: &str,
    name: &str,
    commit: bool,
) -> Res<usize> {
    let event = RecordEvent::new("acme", "Leads", id, Change::Created, "19x1").field("id", id).field("name", name);
    // Matching and rendering happen before the transaction opens, so it stays short.
    let prepared = engine.prepare(&[event]).await?;
    let tx = crm.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("INSERT INTO leads (id, name) VALUES (?1, ?2)", [id, name])?;
    let queued = storage.enqueue_in(&tx, prepared)?.len();
    if commit {
        tx.commit()?;
        engine.notify_workers();
    } else {
        tx.rollback()?;
    }
    Ok(queued)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("crm.db");
    let mut crm = rusqlite::Connection::open(&file)?;
    crm.execute_batch("CREATE TABLE leads (id TEXT PRIMARY KEY, name TEXT NOT NULL)")?;
    // Opening the storage on the host's file adds the crate's tables beside `leads`.
    let storage = SqliteStorage::open(&file)?;
    let http = Arc::new(MockHttp::new_ok());
    let engine = Engine::builder()
        .storage(Arc::new(storage.clone()))
        .http(http.clone())
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(StaticDirectory::new().tenant("acme", 5, chrono_tz::UTC, None)))
        .build()?;
    engine.set_workflows("acme", WorkflowSet::from_json(WORKFLOWS)?)?;

    let queued = save(&engine, &storage, &mut crm, "10x1", "Ada Lovelace", false).await?;
    let sent = engine.run_due().await?.claimed;
    println!("rolled-back save: {queued} delivery written in the transaction, {sent} sent after the rollback");

    let queued = save(&engine, &storage, &mut crm, "10x2", "Grace Hopper", true).await?;
    let report = engine.run_due().await?;
    println!("committed save:   {queued} delivery queued, {} sent, {} succeeded", report.claimed, report.succeeded);
    for request in http.requests() {
        println!("  {} {} {}", request.method, request.uri, String::from_utf8_lossy(&request.body));
    }
    println!("the log:");
    for entry in engine.log(&LogQuery::tenant("acme")).await?.iter().rev() {
        println!(
            "  {} {:<10} record {} {}",
            entry.at.format("%H:%M:%S"),
            entry.status.as_str(),
            entry.record_id,
            entry.message
        );
    }
    let leads: i64 = crm.query_row("SELECT count(*) FROM leads", [], |r| r.get(0))?;
    println!("leads in the CRM's table: {leads}");
    Ok(())
}
