//! Queueing in the host's own database transaction: a rolled-back save queues nothing (no delivery, no log
//! entry, nothing sent), a committed one exactly one delivery per action, and a transaction dropped before its
//! commit (a crash, a cancelled request) nothing. SQLite on the host's file, PostgreSQL on the host's pool with
//! the crate's tables in a schema of their own.
#![cfg(any(feature = "sqlite", feature = "postgres"))]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use crm_webhooks::testing::{ManualClock, MockHttp, RecordingMailer, StaticDirectory};
use crm_webhooks::{Change, Engine, LogQuery, RecordEvent, Storage, WorkflowSet};

/// Two webhook actions on every save of a lead, and a `once` workflow on the same leads.
fn workflows() -> WorkflowSet {
    WorkflowSet::from_json(
        r#"[{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [
              {"title": "a", "url": "https://a.example/hook", "content_type": "JSON", "parameters": [{"name": "id", "field": "id"}]},
              {"title": "b", "url": "https://b.example/hook", "content_type": "FORM", "parameters": [{"name": "id", "field": "id"}]}]},
            {"id": "first", "module": "Leads", "trigger": "once", "actions": [
              {"title": "c", "url": "https://c.example/hook", "content_type": "JSON", "parameters": [{"name": "id", "field": "id"}]}]}]"#,
    )
    .unwrap()
}

fn engine(storage: Arc<dyn Storage>, http: Arc<MockHttp>) -> Engine {
    let engine = Engine::builder()
        .storage(storage)
        .http(http)
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(StaticDirectory::new().tenant("acme", 1, chrono_tz::UTC, None)))
        .clock(Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap())))
        .build()
        .unwrap();
    engine.set_workflows("acme", workflows()).unwrap();
    engine
}

fn lead(record: &str) -> RecordEvent {
    RecordEvent::new("acme", "Leads", record, Change::Created, "19x1").field("id", record)
}

/// Nothing of `record` is queued, logged or sent after a pass.
async fn nothing_for(engine: &Engine, http: &MockHttp, record: &str) {
    let report = engine.run_due().await.unwrap();
    assert_eq!(report.claimed, 0, "nothing was queued");
    assert!(engine.log(&LogQuery::tenant("acme").record(record)).await.unwrap().is_empty(), "no log entry");
    assert!(http.requests().is_empty(), "nothing sent");
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use crm_webhooks::adapters::sqlite::rusqlite::{self, TransactionBehavior};
    use crm_webhooks::adapters::sqlite::SqliteStorage;
    use crm_webhooks::ports::StorageErrorKind;

    struct Host {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        storage: SqliteStorage,
        http: Arc<MockHttp>,
        engine: Engine,
        crm: rusqlite::Connection,
    }

    fn host() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.db");
        // The host's own table first: the crate's migrations run beside it.
        let crm = rusqlite::Connection::open(&path).unwrap();
        crm.execute_batch("CREATE TABLE leads (id TEXT PRIMARY KEY, name TEXT NOT NULL)").unwrap();
        let storage = SqliteStorage::open(&path).unwrap();
        let http = Arc::new(MockHttp::new_ok());
        let engine = engine(Arc::new(storage.clone()), http.clone());
        Host { _dir: dir, path, storage, http, engine, crm }
    }

    fn leads(crm: &rusqlite::Connection) -> i64 {
        crm.query_row("SELECT count(*) FROM leads", [], |r| r.get(0)).unwrap()
    }

    #[tokio::test]
    async fn a_rolled_back_save_queues_nothing() {
        let mut h = host();
        let prepared = h.engine.prepare(&[lead("10x1")]).await.unwrap();
        assert_eq!(prepared.ids().len(), 3);
        let tx = h.crm.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        tx.execute("INSERT INTO leads VALUES ('10x1', 'Ada')", []).unwrap();
        assert_eq!(h.storage.enqueue_in(&tx, prepared).unwrap().len(), 3);
        tx.rollback().unwrap();
        assert_eq!(leads(&h.crm), 0);
        nothing_for(&h.engine, &h.http, "10x1").await;
        // The `once` mark went with it: the record's first committed save still fires the `once` workflow.
        let prepared = h.engine.prepare(&[lead("10x1")]).await.unwrap();
        let tx = h.crm.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        assert_eq!(h.storage.enqueue_in(&tx, prepared).unwrap().len(), 3, "the once workflow fires");
        tx.commit().unwrap();
    }

    #[tokio::test]
    async fn a_committed_save_queues_one_delivery_per_action_and_sends_it() {
        let mut h = host();
        let prepared = h.engine.prepare(&[lead("10x1")]).await.unwrap();
        let tx = h.crm.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        tx.execute("INSERT INTO leads VALUES ('10x1', 'Ada')", []).unwrap();
        let ids = h.storage.enqueue_in(&tx, prepared).unwrap();
        tx.commit().unwrap();
        h.engine.notify_workers();
        assert_eq!(leads(&h.crm), 1);
        assert_eq!(h.engine.run_due().await.unwrap().succeeded, 3);
        let mut hosts: Vec<String> =
            h.http.requests().iter().map(|r| r.uri.host().unwrap_or_default().to_owned()).collect();
        hosts.sort();
        assert_eq!(hosts, ["a.example", "b.example", "c.example"], "one request per action");
        for id in ids {
            assert!(h.engine.delivery("acme", id).await.unwrap().is_some());
        }
        // A second save of the record: the `once` workflow fired already, in the first transaction.
        let prepared = h.engine.prepare(&[lead("10x1")]).await.unwrap();
        let tx = h.crm.transaction().unwrap();
        assert_eq!(h.storage.enqueue_in(&tx, prepared).unwrap().len(), 2);
        tx.commit().unwrap();
    }

    #[tokio::test]
    async fn a_transaction_dropped_before_its_commit_queues_nothing() {
        let mut h = host();
        let prepared = h.engine.prepare(&[lead("10x1")]).await.unwrap();
        {
            let tx = h.crm.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
            tx.execute("INSERT INTO leads VALUES ('10x1', 'Ada')", []).unwrap();
            h.storage.enqueue_in(&tx, prepared).unwrap();
            // The host's request handler panics or is cancelled here: the transaction is dropped unfinished.
        }
        nothing_for(&h.engine, &h.http, "10x1").await;
        // What the dropped transaction wrote is gone for a storage opened afresh too.
        let reopened = SqliteStorage::open(&h.path).unwrap();
        assert!(reopened.log(&LogQuery::tenant("acme")).await.unwrap().is_empty());
        assert_eq!(reopened.next_due_at().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_failing_enqueue_leaves_the_hosts_transaction_usable() {
        let mut h = host();
        let prepared = h.engine.prepare(&[lead("10x1")]).await.unwrap();
        let tx = h.crm.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        tx.execute("INSERT INTO leads VALUES ('10x1', 'Ada')", []).unwrap();
        // Break the crate's table for this transaction only: the enqueue fails inside its savepoint.
        tx.execute_batch("CREATE TEMP TABLE deliveries (x)").unwrap();
        let error = h.storage.enqueue_in(&tx, prepared).unwrap_err();
        assert!(!error.message().is_empty());
        tx.execute("INSERT INTO leads VALUES ('10x2', 'Grace')", []).unwrap();
        tx.execute_batch("DROP TABLE temp.deliveries").unwrap();
        tx.commit().unwrap();
        assert_eq!(leads(&h.crm), 2, "the host's writes before and after the failure commit");
        nothing_for(&h.engine, &h.http, "10x1").await;
    }

    #[tokio::test]
    async fn a_connection_to_another_file_or_an_in_memory_storage_is_refused() {
        let h = host();
        let other_dir = tempfile::tempdir().unwrap();
        let other = rusqlite::Connection::open(other_dir.path().join("other.db")).unwrap();
        let prepared = h.engine.prepare(&[lead("10x1")]).await.unwrap();
        let error = h.storage.enqueue_in(&other, prepared.clone()).unwrap_err();
        assert!(error.message().contains("not on the storage's file"), "{error}");
        let memory = SqliteStorage::in_memory().unwrap();
        let error = memory.enqueue_in(&h.crm, prepared).unwrap_err();
        assert!(error.message().contains("in-memory"), "{error}");
        assert_eq!(error.kind(), StorageErrorKind::Other);
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crm_webhooks::adapters::postgres::sqlx::{self, Connection as _};
    use crm_webhooks::adapters::postgres::PostgresStorage;

    struct Host {
        storage: PostgresStorage,
        http: Arc<MockHttp>,
        engine: Engine,
        table: String,
    }

    /// The crate in a fresh schema of the host's database, on the host's pool; the host's own table in `public`.
    async fn host() -> Option<Host> {
        let url = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true but DATABASE_URL is not set"),
            _ => {
                eprintln!("host_transaction: skipping PostgreSQL: DATABASE_URL is not set");
                return None;
            }
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url).await.unwrap();
        let table = format!("leads_{id}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE TABLE public.{table} (id text PRIMARY KEY)")))
            .execute(&pool)
            .await
            .unwrap();
        let storage = PostgresStorage::from_pool(pool).schema(&format!("crm_webhooks_host_{id}")).unwrap();
        storage.setup().await.unwrap();
        let http = Arc::new(MockHttp::new_ok());
        let engine = engine(Arc::new(storage.clone()), http.clone());
        Some(Host { storage, http, engine, table })
    }

    impl Host {
        async fn leads(&self) -> i64 {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM public.{}", self.table)))
                .fetch_one(self.storage.pool())
                .await
                .unwrap()
        }

        fn insert(&self, id: &str) -> String {
            format!("INSERT INTO public.{} VALUES ('{id}')", self.table)
        }

        async fn drop(self) {
            let sql =
                format!("DROP TABLE public.{}; DROP SCHEMA \"{}\" CASCADE", self.table, self.storage.schema_name());
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(self.storage.pool()).await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rolled_back_save_queues_nothing() {
        let Some(h) = host().await else { return };
        let mut tx = h.storage.pool().begin().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(h.insert("10x1"))).execute(&mut *tx).await.unwrap();
        assert_eq!(h.storage.on_event_in(&mut tx, &h.engine, &lead("10x1")).await.unwrap().len(), 3);
        tx.rollback().await.unwrap();
        assert_eq!(h.leads().await, 0);
        nothing_for(&h.engine, &h.http, "10x1").await;
        // The `once` mark was rolled back with the rest: the first committed save fires it.
        let mut tx = h.storage.pool().begin().await.unwrap();
        assert_eq!(h.storage.on_event_in(&mut tx, &h.engine, &lead("10x1")).await.unwrap().len(), 3);
        tx.commit().await.unwrap();
        h.drop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committed_save_queues_one_delivery_per_action_and_wakes_every_worker() {
        let Some(h) = host().await else { return };
        let waiting = h.engine.work_queued();
        // Let the listener connect, so the wake-up below is the commit's.
        tokio::time::timeout(std::time::Duration::from_secs(20), waiting).await.expect("the listener connected");
        let woken = h.engine.work_queued();
        let mut tx = h.storage.pool().begin().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(h.insert("10x1"))).execute(&mut *tx).await.unwrap();
        let prepared = h.engine.prepare(&[lead("10x1")]).await.unwrap();
        let ids = h.storage.enqueue_in(&mut tx, prepared).await.unwrap();
        tx.commit().await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(20), woken).await.expect("the commit wakes the workers");
        assert_eq!(h.leads().await, 1);
        assert_eq!(h.engine.run_due().await.unwrap().succeeded, 3);
        let mut hosts: Vec<String> =
            h.http.requests().iter().map(|r| r.uri.host().unwrap_or_default().to_owned()).collect();
        hosts.sort();
        assert_eq!(hosts, ["a.example", "b.example", "c.example"], "one request per action");
        assert_eq!(ids.len(), 3);
        let mut tx = h.storage.pool().begin().await.unwrap();
        assert_eq!(h.storage.on_event_in(&mut tx, &h.engine, &lead("10x1")).await.unwrap().len(), 2, "once fired");
        tx.commit().await.unwrap();
        h.drop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_dropped_before_its_commit_queues_nothing() {
        let Some(h) = host().await else { return };
        // The host's request task queues, then is aborted before it commits.
        let (queued, was_queued) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let (storage, engine, insert) = (h.storage.clone(), h.engine.clone(), h.insert("10x1"));
            async move {
                let mut tx = storage.pool().begin().await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(insert)).execute(&mut *tx).await.unwrap();
                storage.on_event_in(&mut tx, &engine, &lead("10x1")).await.unwrap();
                let _ = queued.send(());
                std::future::pending::<()>().await;
                tx.commit().await.unwrap();
            }
        });
        was_queued.await.unwrap();
        task.abort();
        let _ = task.await;
        // The pool's connection is back without the transaction: the next statements on it see nothing.
        assert_eq!(h.leads().await, 0);
        nothing_for(&h.engine, &h.http, "10x1").await;
        // Dropped at every point of the call itself: never half a batch.
        for polls in 0..40 {
            let mut conn = h.storage.pool().acquire().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            let record = format!("10x{}", polls + 100);
            let event = lead(&record);
            let call = h.storage.on_event_in(&mut tx, &h.engine, &event);
            let finished = crm_webhooks::testing::poll_at_most(call, polls).await.is_some();
            if finished {
                tx.rollback().await.unwrap();
            } else {
                drop(tx);
            }
            drop(conn);
            nothing_for(&h.engine, &h.http, &record).await;
        }
        h.drop().await;
    }
}
