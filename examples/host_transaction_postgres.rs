//! Queueing a save's webhooks in the host's own PostgreSQL transaction: the CRM's table in `public`, the crate's
//! tables in their own schema of the same database, on the host's pool. A save that rolls back queues nothing; a
//! committed one is sent. (The receiver is the test double `MockHttp`, so the example needs no network.)
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --features postgres --example host_transaction_postgres
//! ```

use std::sync::Arc;

use crm_webhooks::adapters::postgres::{sqlx, PostgresStorage};
use crm_webhooks::testing::{MockHttp, RecordingMailer, StaticDirectory};
use crm_webhooks::{Change, Engine, LogQuery, RecordEvent, WorkflowSet};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const WORKFLOWS: &str = r#"[{"id": "lead-sync", "module": "Leads", "trigger": "every_save", "actions": [
    {"title": "Sync lead", "url": "https://mailing.example.com/contacts", "method": "PUT", "content_type": "JSON",
     "ordered": true, "parameters": [{"name": "id", "field": "id"}, {"name": "name", "field": "name"}]}]}]"#;

/// The host's save: its own row and the webhooks, in one transaction.
async fn save(engine: &Engine, storage: &PostgresStorage, id: &str, name: &str, commit: bool) -> Res<usize> {
    let event = RecordEvent::new("acme", "Leads", id, Change::Created, "19x1").field("id", id).field("name", name);
    let mut tx = storage.pool().begin().await?;
    sqlx::query("INSERT INTO example_leads (id, name) VALUES ($1, $2)").bind(id).bind(name).execute(&mut *tx).await?;
    let queued = storage.on_event_in(&mut tx, engine, &event).await?.len();
    if commit {
        tx.commit().await?; // the NOTIFY that wakes every server's workers leaves now
    } else {
        tx.rollback().await?;
    }
    Ok(queued)
}

#[tokio::main]
async fn main() -> Res<()> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("set DATABASE_URL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/test");
        std::process::exit(2);
    };
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url).await?;
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS example_leads; DROP SCHEMA IF EXISTS crm_webhooks_example CASCADE; \
                   CREATE TABLE example_leads (id text PRIMARY KEY, name text NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let storage = PostgresStorage::from_pool(pool.clone()).schema("crm_webhooks_example")?;
    storage.setup().await?;
    let http = Arc::new(MockHttp::new_ok());
    let engine = Engine::builder()
        .storage(Arc::new(storage.clone()))
        .http(http.clone())
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(StaticDirectory::new().tenant("acme", 5, chrono_tz::UTC, None)))
        .build()?;
    engine.set_workflows("acme", WorkflowSet::from_json(WORKFLOWS)?)?;

    let queued = save(&engine, &storage, "10x1", "Ada Lovelace", false).await?;
    let sent = engine.run_due().await?.claimed;
    println!("rolled-back save: {queued} delivery written in the transaction, {sent} sent after the rollback");

    let queued = save(&engine, &storage, "10x2", "Grace Hopper", true).await?;
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
    let leads: i64 = sqlx::query_scalar("SELECT count(*) FROM example_leads").fetch_one(&pool).await?;
    println!("leads in the CRM's table: {leads}");
    sqlx::raw_sql("DROP TABLE example_leads; DROP SCHEMA crm_webhooks_example CASCADE").execute(&pool).await?;
    Ok(())
}
