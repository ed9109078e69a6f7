//! The storage contract, and what several servers sharing one database need, run on `PostgresStorage`.
//!
//! Needs `DATABASE_URL` (for example `postgres://postgres@127.0.0.1:5432/test`). Without it the tests print why
//! and pass, unless `CI=true`: then a missing or unreachable database fails them. Each test works in a fresh
//! schema of its own (dropped when it passes), so the tests run in parallel.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::{Arc, Once};
use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveDate};
use crm_webhooks::adapters::postgres::{PostgresStorage, DEFAULT_SCHEMA};
use crm_webhooks::ports::{Claim, ClaimToken, Completion, QuotaRequest, StorageErrorKind};
use crm_webhooks::testing::storage_contract::{self, sample_delivery, t0};
use crm_webhooks::{Delivery, DeliveryStatus, LogEntry, LogQuery, Storage};
use sqlx::postgres::PgPoolOptions;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The database to test against, or `None` (after saying why, once) when there is none outside CI.
fn database_url() -> Option<String> {
    static SKIP_NOTICE: Once = Once::new();
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if in_ci() => panic!(
            "CI=true but DATABASE_URL is not set: the PostgreSQL storage tests must run in CI \
             (set DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            // Straight to stderr, past the test harness's capture, so the reason shows in a normal run.
            SKIP_NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "storage_postgres: skipping the PostgreSQL tests: DATABASE_URL is not set \
                     (e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/test; with CI=true they fail instead)"
                );
            });
            None
        }
    }
}

/// One server: its own pool, on the given schema.
async fn server(url: &str, schema: &str) -> PostgresStorage {
    PostgresStorage::connect(url)
        .await
        .unwrap_or_else(|e| panic!("DATABASE_URL is set but the database cannot be reached: {e}"))
        .schema(schema)
        .unwrap()
}

/// A fresh schema of one test.
struct TestDb {
    url: String,
    schema: String,
    storage: PostgresStorage,
}

impl TestDb {
    /// A fresh, migrated schema; `None` when the tests skip.
    async fn new() -> Option<Self> {
        let db = Self::unmigrated().await?;
        db.storage.setup().await.unwrap_or_else(|e| panic!("setup of schema {} failed: {e}", db.schema));
        Some(db)
    }

    /// A fresh schema name, nothing created yet.
    async fn unmigrated() -> Option<Self> {
        let url = database_url()?;
        let schema = format!("crm_webhooks_test_{}", uuid::Uuid::new_v4().simple());
        let storage = server(&url, &schema).await;
        Some(TestDb { url, schema, storage })
    }

    fn storage(&self) -> Arc<dyn Storage> {
        Arc::new(self.storage.clone())
    }

    /// Another server on the same schema, with a pool of its own.
    async fn another_server(&self) -> PostgresStorage {
        server(&self.url, &self.schema).await
    }

    async fn execute(&self, sql: String) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(self.storage.pool()).await.unwrap();
    }

    /// Drops the schema. Skipped when a test fails, which leaves its data to look at.
    async fn drop_schema(self) {
        self.execute(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema)).await;
        self.storage.pool().close().await;
    }
}

/// The storage contract, each check in a schema of its own (dropped when it passes).
mod contract {
    use super::*;
    use crm_webhooks::engine::Prepared;
    use crm_webhooks::ports::StorageError;
    use crm_webhooks::testing::storage_contract::{Fixture, HostTransactions, Setup};
    use crm_webhooks::DeliveryId;

    /// The host: a transaction on the storage's pool, with a row of its own in a table beside the crate's.
    struct Host {
        storage: PostgresStorage,
    }

    #[crm_webhooks::async_trait]
    impl HostTransactions for Host {
        async fn save_and_enqueue(&self, prepared: Prepared, commit: bool) -> Result<Vec<DeliveryId>, StorageError> {
            let table = format!("\"{}\".host_rows", self.storage.schema_name());
            let pool = self.storage.pool();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE TABLE IF NOT EXISTS {table} (note text)")))
                .execute(pool)
                .await
                .unwrap();
            let count = || async {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(pool)
                    .await
                    .unwrap()
            };
            let before = count().await;
            let mut tx = pool.begin().await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("INSERT INTO {table} VALUES ('saved')")))
                .execute(&mut *tx)
                .await
                .unwrap();
            let queued = self.storage.enqueue_in(&mut tx, prepared).await?;
            if commit {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            assert_eq!(count().await, before + i64::from(commit), "the host's own row follows its transaction");
            Ok(queued)
        }
    }

    async fn fixture() -> Setup {
        let Some(db) = TestDb::new().await else { return Setup::Skip("DATABASE_URL is not set".into()) };
        let storage = db.storage();
        let host = Host { storage: db.storage.clone() };
        Fixture::new(storage).host_transactions(host).teardown(db.drop_schema()).into()
    }

    crm_webhooks::storage_contract_tests!(fixture());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_claim_every_delivery_exactly_once() {
    let Some(db) = TestDb::new().await else { return };
    let servers = [db.storage.clone(), db.another_server().await];
    let deliveries: Vec<_> =
        (0..500).map(|i| sample_delivery("acme", "w1", t0() + Duration::seconds(i % 13))).collect();
    servers[0].enqueue(deliveries.clone(), vec![]).await.unwrap();

    let workers = (0..8).map(|i| {
        let storage = servers[i % 2].clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let now = t0() + Duration::minutes(1);
                let claim = Claim { now, limit: 9, lease_until: now + Duration::hours(1), token: ClaimToken::new() };
                let claimed = storage.claim_due(&claim).await.unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                let done = claimed
                    .iter()
                    .map(|d| Completion {
                        id: d.id,
                        token: claim.token,
                        status: DeliveryStatus::Success,
                        attempts: 1,
                        next_attempt_at: None,
                        at: now,
                        entries: vec![LogEntry::about(d, DeliveryStatus::Success, now, "delivered")],
                        notification: None,
                    })
                    .collect();
                assert!(storage.complete(done).await.unwrap().is_empty(), "the claim holder completes its deliveries");
                mine.extend(claimed.into_iter().map(|d| d.id));
            }
        })
    });
    let mut times_claimed = HashMap::new();
    for worker in futures_util::future::join_all(workers).await {
        for id in worker.unwrap() {
            *times_claimed.entry(id).or_insert(0) += 1;
        }
    }
    assert_eq!(times_claimed.len(), 500, "every delivery is claimed");
    assert!(times_claimed.values().all(|n| *n == 1), "no delivery is claimed twice");
    let log = servers[1].log(&LogQuery::tenant("acme").limit(1000)).await.unwrap();
    assert_eq!(log.len(), 500, "one log entry per finished delivery");
    assert_eq!(servers[1].next_due_at().await.unwrap(), None, "nothing is left to do");
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_never_passes_the_allowance_across_servers() {
    let Some(db) = TestDb::new().await else { return };
    let servers = [db.storage.clone(), db.another_server().await];
    let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let allowance = 75;
    let deliveries: Vec<_> = (0..200).map(|_| sample_delivery("acme", "w1", t0())).collect();
    servers[0].enqueue(deliveries.clone(), vec![]).await.unwrap();
    let claim = Claim { now: t0(), limit: 200, lease_until: t0() + Duration::hours(1), token: ClaimToken::new() };
    assert_eq!(servers[0].claim_due(&claim).await.unwrap().len(), 200);
    let request = |ids: &[Delivery]| QuotaRequest {
        tenant: "acme".into(),
        day,
        allowance,
        token: claim.token,
        deliveries: ids.iter().map(|d| d.id).collect(),
    };
    let tasks = deliveries.chunks(2).enumerate().map(|(i, pair)| {
        let storage = servers[i % 2].clone();
        let request = request(pair);
        tokio::spawn(async move { storage.grant_quota(&request).await.unwrap().len() })
    });
    let grants: Vec<usize> = futures_util::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    assert!(grants.iter().all(|g| *g <= 2), "nobody is granted more than asked: {grants:?}");
    assert_eq!(grants.iter().sum::<usize>() as u64, allowance, "together they get exactly the allowance");
    assert_eq!(servers[0].quota_used("acme", day).await.unwrap(), allowance);
    // Asked again, the first pair gets exactly the grants it already holds (the allowance is used up).
    let held: Vec<_> = deliveries[..grants[0]].iter().map(|d| d.id).collect();
    assert_eq!(servers[1].grant_quota(&request(&deliveries[..2])).await.unwrap(), held, "only held grants");
    assert_eq!(servers[1].quota_used("acme", day).await.unwrap(), allowance, "nothing more is counted");
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_starting_together_migrate_once() {
    let Some(db) = TestDb::unmigrated().await else { return };
    let other = db.another_server().await;
    let (a, b, c, d) = tokio::join!(db.storage.setup(), other.setup(), db.storage.setup(), other.setup());
    for result in [a, b, c, d] {
        result.expect("concurrent setups all succeed");
    }
    let versions: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM \"{}\".schema_migrations ORDER BY version",
        db.schema
    )))
    .fetch_all(db.storage.pool())
    .await
    .unwrap();
    assert_eq!(versions, (1..=PostgresStorage::SCHEMA_VERSION).collect::<Vec<_>>(), "each migration is recorded once");
    other.setup().await.expect("setup again is a no-op");
    storage_contract::enqueue_and_read_back(Arc::new(other)).await;
    db.drop_schema().await;
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let Some(db) = TestDb::new().await else { return };
    db.execute(format!(
        "INSERT INTO \"{}\".schema_migrations (version, description) VALUES ({}, 'from the future')",
        db.schema,
        PostgresStorage::SCHEMA_VERSION + 1
    ))
    .await;
    let error = db.storage.setup().await.expect_err("an old library must not run on a newer schema");
    assert_eq!(error.kind(), StorageErrorKind::Schema, "{error}");
    db.drop_schema().await;
}

#[tokio::test]
async fn from_pool_uses_the_hosts_pool() {
    let Some(url) = database_url() else { return };
    let pool = PgPoolOptions::new().max_connections(2).connect(&url).await.expect("DATABASE_URL is reachable");
    let storage = PostgresStorage::from_pool(pool.clone());
    assert_eq!(storage.schema_name(), DEFAULT_SCHEMA);
    let schema = format!("crm_webhooks_test_{}", uuid::Uuid::new_v4().simple());
    let storage = storage.schema(&schema).unwrap();
    storage.setup().await.unwrap();
    storage_contract::complete_applies_status_and_log(Arc::new(storage.clone())).await;
    assert!(pool.size() >= 1, "the host's pool does the work");
    let db = TestDb { url, schema, storage };
    db.drop_schema().await;
}

#[tokio::test]
async fn before_setup_calls_fail_with_a_schema_error() {
    let Some(db) = TestDb::unmigrated().await else { return };
    let error = db.storage.next_due_at().await.expect_err("there are no tables yet");
    assert_eq!(error.kind(), StorageErrorKind::Schema, "{error}");
    assert!(error.message().contains("setup"), "the error says what to do: {error}");
    db.drop_schema().await;
}

#[tokio::test]
async fn corrupt_rows_are_reported_not_panicked_on() {
    let Some(db) = TestDb::new().await else { return };
    let d = sample_delivery("acme", "w1", t0());
    db.storage.enqueue(vec![d.clone()], vec![]).await.unwrap();
    db.execute(format!(
        "ALTER TABLE \"{s}\".deliveries DROP CONSTRAINT deliveries_status_known;
         UPDATE \"{s}\".deliveries SET status = 'lost in the mail'",
        s = db.schema
    ))
    .await;
    let error = db.storage.delivery("acme", d.id).await.expect_err("an unknown status does not read back");
    assert_eq!(error.kind(), StorageErrorKind::Corrupt, "{error}");
    db.drop_schema().await;
}

/// A failure code this build does not know (written by a newer one) reads back as `other`, not as an error.
#[tokio::test]
async fn an_unknown_failure_code_reads_back_as_other() {
    let Some(db) = TestDb::new().await else { return };
    let d = sample_delivery("acme", "w1", t0());
    let mut entry = LogEntry::about(&d, DeliveryStatus::Queued, t0(), "attempt 1 failed");
    entry.reason = Some(crm_webhooks::failure::FailureReason::Dns);
    db.storage.enqueue(vec![d.clone()], vec![entry]).await.unwrap();
    db.execute(format!("UPDATE \"{s}\".log_entries SET reason = 'carrier_pigeon'", s = db.schema)).await;
    let log = db.storage.log(&LogQuery::tenant("acme")).await.unwrap();
    assert_eq!(log[0].reason, Some(crm_webhooks::failure::FailureReason::Other));
    db.drop_schema().await;
}

/// One row that does not decode no longer fails every claim: it is set aside (Failed, logged) and the rest go out.
#[tokio::test]
async fn an_unreadable_row_is_set_aside_and_the_rest_are_claimed() {
    let Some(db) = TestDb::new().await else { return };
    let bad = sample_delivery("acme", "w1", t0());
    let good = sample_delivery("acme", "w1", t0() + Duration::seconds(1));
    db.storage.enqueue(vec![bad.clone(), good.clone()], vec![]).await.unwrap();
    db.execute(format!(
        "ALTER TABLE \"{s}\".deliveries DROP CONSTRAINT deliveries_method_known;
         UPDATE \"{s}\".deliveries SET method = 'GET' WHERE id = '\\x{hex}'",
        s = db.schema,
        hex = bad.id.as_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
    .await;
    let now = t0() + Duration::minutes(1);
    let claim = Claim { now, limit: 10, lease_until: now + Duration::minutes(5), token: ClaimToken::new() };
    let claimed = db.storage.claim_due(&claim).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![good.id], "the readable one is claimed");
    let log = db.storage.log(&LogQuery::tenant("acme").status(DeliveryStatus::Failed)).await.unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].delivery_id, bad.id);
    assert!(log[0].message.contains("set aside") && log[0].error.as_deref().unwrap().contains("method"), "{log:?}");
    let later = Claim { now: now + Duration::hours(1), token: ClaimToken::new(), ..claim };
    assert!(db.storage.claim_due(&later).await.unwrap().iter().all(|d| d.id == good.id), "the bad row stays aside");
    db.drop_schema().await;
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    // Nothing listens on port 1; this needs no database.
    let url = "postgres://postgres@127.0.0.1:1/test";
    let error = PostgresStorage::connect(url).await.expect_err("nothing to connect to");
    assert_eq!(error.kind(), StorageErrorKind::Unavailable, "{error}");
    assert!(error.is_transient());

    let pool = PgPoolOptions::new().acquire_timeout(StdDuration::from_millis(500)).connect_lazy(url).unwrap();
    let error = PostgresStorage::from_pool(pool).next_due_at().await.expect_err("nothing to talk to");
    assert_eq!(error.kind(), StorageErrorKind::Unavailable, "{error}");
}

#[tokio::test]
async fn a_nul_in_a_response_does_not_block_finishing() {
    // Receivers may answer with any bytes; PostgreSQL text cannot hold U+0000, and a finish that failed on it
    // would leave the delivery to be sent again and again.
    let Some(db) = TestDb::new().await else { return };
    let storage = db.storage();
    let d = sample_delivery("acme", "w1", t0());
    storage.enqueue(vec![d.clone()], vec![]).await.unwrap();
    let claim = Claim { now: t0(), limit: 1, lease_until: t0() + Duration::minutes(1), token: ClaimToken::new() };
    storage.claim_due(&claim).await.unwrap();
    let entry = LogEntry {
        response_snippet: Some("bin\0ary".into()),
        error: Some("odd\0error".into()),
        http_status: Some(500),
        ..LogEntry::about(&d, DeliveryStatus::Queued, t0(), "retry 1 of 3 scheduled")
    };
    let done = Completion {
        id: d.id,
        token: claim.token,
        status: DeliveryStatus::Queued,
        attempts: 1,
        next_attempt_at: Some(t0() + Duration::hours(1)),
        at: t0(),
        entries: vec![entry],
        notification: None,
    };
    assert!(storage.complete(vec![done]).await.unwrap().is_empty());
    let log = storage.log(&LogQuery::tenant("acme")).await.unwrap();
    assert_eq!(log[0].response_snippet.as_deref(), Some("bin\u{FFFD}ary"));
    assert_eq!(log[0].error.as_deref(), Some("odd\u{FFFD}error"));
    db.drop_schema().await;
}

#[tokio::test]
async fn duplicate_completions_in_one_batch_apply_once() {
    let Some(db) = TestDb::new().await else { return };
    let storage = db.storage();
    let d = sample_delivery("acme", "w1", t0());
    storage.enqueue(vec![d.clone()], vec![]).await.unwrap();
    let claim = Claim { now: t0(), limit: 1, lease_until: t0() + Duration::minutes(1), token: ClaimToken::new() };
    storage.claim_due(&claim).await.unwrap();
    let completion = |status| Completion {
        id: d.id,
        token: claim.token,
        status,
        attempts: 1,
        next_attempt_at: None,
        at: t0(),
        entries: vec![LogEntry::about(&d, status, t0(), "done")],
        notification: None,
    };
    let lost =
        storage.complete(vec![completion(DeliveryStatus::Success), completion(DeliveryStatus::Failed)]).await.unwrap();
    assert_eq!(lost, vec![d.id], "the second completion finds the delivery finished, as in a later call");
    let stored = storage.delivery("acme", d.id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeliveryStatus::Success, "the first completion wins");
    let statuses: HashSet<_> = storage.log(&LogQuery::tenant("acme")).await.unwrap().iter().map(|e| e.status).collect();
    assert_eq!(statuses, HashSet::from([DeliveryStatus::Success]), "only the applied completion is logged");
    db.drop_schema().await;
}

/// Writes, through the `Storage` API, a delivery in each status and log entries of each status.
async fn every_status(storage: &dyn Storage) {
    let deliveries: Vec<Delivery> = (0..4).map(|i| sample_delivery("acme", "w1", t0() + Duration::hours(i))).collect();
    let entries = deliveries.iter().map(|d| LogEntry::about(d, DeliveryStatus::Queued, t0(), "queued")).collect();
    storage.enqueue(deliveries.clone(), entries).await.unwrap();
    let now = t0() + Duration::hours(2);
    let claim = Claim { now, limit: 3, lease_until: now + Duration::minutes(1), token: ClaimToken::new() };
    assert_eq!(storage.claim_due(&claim).await.unwrap().len(), 3, "the fourth stays queued");
    let done = |d: &Delivery, status| Completion {
        id: d.id,
        token: claim.token,
        status,
        attempts: 1,
        next_attempt_at: None,
        at: now,
        entries: vec![
            LogEntry::about(d, DeliveryStatus::Dispatched, now, "sending"),
            LogEntry::about(d, status, now, "done"),
        ],
        notification: None,
    };
    let completions = vec![done(&deliveries[0], DeliveryStatus::Success), done(&deliveries[1], DeliveryStatus::Failed)];
    assert!(storage.complete(completions).await.unwrap().is_empty(), "the third stays dispatched");
}

/// Both SQL backends store a status as the same text: `queued`, `dispatched`, `success`, `failed`.
#[tokio::test]
async fn statuses_are_stored_as_the_same_texts_as_in_sqlite() {
    let Some(db) = TestDb::new().await else { return };
    every_status(&db.storage).await;
    let mut stored = Vec::new();
    for table in ["deliveries", "log_entries"] {
        let texts: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT status FROM \"{}\".{table} ORDER BY status",
            db.schema
        )))
        .fetch_all(db.storage.pool())
        .await
        .unwrap();
        assert_eq!(texts, ["dispatched", "failed", "queued", "success"], "{table}");
        stored.push(texts);
    }
    #[cfg(feature = "sqlite")]
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhooks.db");
        every_status(&crm_webhooks::adapters::sqlite::SqliteStorage::open(&path).unwrap()).await;
        let raw = rusqlite::Connection::open(&path).unwrap();
        for (table, postgres) in ["deliveries", "log_entries"].into_iter().zip(&stored) {
            let mut statement = raw.prepare(&format!("SELECT DISTINCT status FROM {table} ORDER BY status")).unwrap();
            let sqlite: Vec<String> = statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
            assert_eq!(&sqlite, postgres, "{table}: SQLite stores the texts PostgreSQL does");
        }
    }
    db.drop_schema().await;
}

/// Several engines on two servers, each with its own worker, share one database: every delivery is sent exactly
/// once, and a tenant's daily quota is never passed.
#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_engines_and_workers_send_each_delivery_once_within_quota() {
    use crm_webhooks::testing::{ManualClock, MockHttp, RecordingMailer, StaticDirectory};
    use crm_webhooks::{Change, Edition, Engine, RecordEvent, Worker, WorkflowSet};

    let Some(db) = TestDb::new().await else { return };
    let servers: [Arc<dyn Storage>; 2] = [db.storage(), Arc::new(db.another_server().await)];
    let http = Arc::new(MockHttp::new_ok());
    let directory = Arc::new(
        StaticDirectory::new()
            .tenant("acme", 1, chrono_tz::Tz::UTC, Some(Edition::Custom { per_user: 30, per_day: 1000 }))
            .tenant("globex", 5, chrono_tz::Tz::UTC, None),
    );
    let clock = ManualClock::new(t0());
    let workflows = |tenant: &str| {
        WorkflowSet::from_json(&format!(
            r#"[{{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [{{"title": "t",
            "url": "https://{tenant}.example/hook", "content_type": "JSON", "parameters": [{{"name": "id", "field": "id"}}]}}]}}]"#
        ))
        .unwrap()
    };
    let engines: Vec<Engine> = (0..4)
        .map(|i| {
            let engine = Engine::builder()
                .storage(servers[i % 2].clone())
                .http(http.clone())
                .mailer(Arc::new(RecordingMailer::new()))
                .directory(directory.clone())
                .clock(Arc::new(clock.clone()))
                .batch_size(7)
                .concurrency(4)
                .build()
                .unwrap();
            engine.set_workflows("acme", workflows("acme")).unwrap();
            engine.set_workflows("globex", workflows("globex")).unwrap();
            engine
        })
        .collect();
    for i in 0..60 {
        for tenant in ["acme", "globex"] {
            let event = RecordEvent::new(tenant, "Leads", format!("10x{i}"), Change::Created, "19x1").field("id", i);
            assert_eq!(engines[i % 4].on_event(&event).await.unwrap().len(), 1);
        }
    }
    let workers: Vec<_> = engines
        .iter()
        .flat_map(|e| (0..2).map(move |_| Worker::new(e.clone()).poll_interval(StdDuration::from_millis(5)).spawn()))
        .collect();
    // 60 for globex (no limit) and 30 for acme (its allowance); then nothing more may come.
    for _ in 0..3000 {
        if http.requests().len() >= 90 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    for worker in workers {
        worker.shutdown().await;
    }
    let requests = http.requests();
    let mut ids = HashSet::new();
    for request in &requests {
        assert!(ids.insert(request.headers["webhook-id"].clone()), "a delivery was sent twice");
    }
    let to = |host: &str| requests.iter().filter(|r| r.uri.host() == Some(host)).count();
    assert_eq!(to("globex.example"), 60, "every unlimited delivery is sent");
    assert_eq!(to("acme.example"), 30, "the quota is never passed");
    let usage = engines[3].usage("acme").await.unwrap();
    assert_eq!((usage.used, usage.allowed), (30, Some(30)));
    let deferred = engines[1]
        .log(&LogQuery::tenant("acme").status(DeliveryStatus::Queued).limit(1000))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.message.contains("daily quota"))
        .map(|e| e.delivery_id)
        .collect::<HashSet<_>>();
    assert_eq!(deferred.len(), 30, "the other 30 wait for the next day, logged");
    db.drop_schema().await;
}

/// Storage calls dropped at random poll points (a host's timeout, an aborted task) never leave a pooled connection
/// inside a transaction, and every write a call acknowledged stays written: claims stay claimed, granted quota
/// stays counted, a `once` mark is granted once. Two connections only, so a spoiled one is reused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_leave_no_connection_in_a_transaction_and_keep_acknowledged_writes() {
    use crm_webhooks::testing::{poll_at_most, SeededRng};
    let Some(db) = TestDb::new().await else { return };
    let app = format!("cancel_{}", &db.schema[db.schema.len() - 12..]);
    let options: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let pool = PgPoolOptions::new().max_connections(2).connect_lazy_with(options.application_name(&app));
    let storage = PostgresStorage::from_pool(pool.clone()).schema(&db.schema).unwrap();
    let seed = std::env::var("CANCEL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut rng = SeededRng::new(seed);
    let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let now = t0() + Duration::minutes(1);

    let mut enqueued = Vec::new();
    let mut claimed: HashMap<crm_webhooks::DeliveryId, ClaimToken> = HashMap::new();
    let mut claimed_twice = Vec::new();
    let mut finished = HashSet::new();
    let mut finish_tried = HashSet::new();
    let mut granted = HashSet::new();
    let mut fired: HashMap<u64, u32> = HashMap::new();
    let (mut acknowledged, mut dropped) = (0, 0);
    // Before calls were detached, a spoiled connection held row locks that stalled the rest for minutes.
    let started = std::time::Instant::now();
    for _ in 0..400 {
        assert!(started.elapsed() < StdDuration::from_secs(120), "seed {seed}: storage calls stalled");
        let polls = 1 + rng.below(6) as usize;
        let done = match rng.below(5) {
            0 => {
                let d = sample_delivery("acme", "w1", t0());
                let id = d.id;
                poll_at_most(storage.enqueue(vec![d], vec![]), polls).await.map(|r| {
                    r.unwrap();
                    enqueued.push(id);
                })
            }
            1 => {
                let claim = Claim { now, limit: 3, lease_until: now + Duration::hours(1), token: ClaimToken::new() };
                poll_at_most(storage.claim_due(&claim), polls).await.map(|r| {
                    for d in r.unwrap() {
                        if claimed.insert(d.id, claim.token).is_some() {
                            claimed_twice.push(d.id);
                        }
                    }
                })
            }
            2 => {
                let Some((&id, &token)) = claimed.iter().nth(rng.below(claimed.len().max(1) as u64) as usize) else {
                    continue;
                };
                let request =
                    QuotaRequest { tenant: "acme".into(), day, allowance: 1_000_000, token, deliveries: vec![id] };
                poll_at_most(storage.grant_quota(&request), polls).await.map(|r| granted.extend(r.unwrap()))
            }
            3 => {
                let record = rng.below(40);
                poll_at_most(storage_contract::take_once_mark(&storage, "acme", "w1", &record.to_string()), polls)
                    .await
                    .map(|r| {
                        if r.unwrap() {
                            *fired.entry(record).or_default() += 1;
                        }
                    })
            }
            _ => {
                let Some((&id, &token)) = claimed.iter().find(|(id, _)| !finish_tried.contains(*id)) else { continue };
                finish_tried.insert(id);
                let completion = Completion {
                    id,
                    token,
                    status: DeliveryStatus::Success,
                    attempts: 1,
                    next_attempt_at: None,
                    at: now,
                    entries: vec![],
                    notification: None,
                };
                poll_at_most(storage.complete(vec![completion]), polls).await.map(|r| {
                    if r.unwrap().is_empty() {
                        finished.insert(id);
                    }
                })
            }
        };
        match done {
            Some(()) => acknowledged += 1,
            None => dropped += 1,
        }
    }
    assert!(
        acknowledged > 50 && dropped > 50,
        "the seed exercises both: {acknowledged} acknowledged, {dropped} dropped"
    );

    // Calls given up on may still be running; let them end, then look from another pool.
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let observer = db.another_server().await;
    let stuck: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
    )
    .bind(&app)
    .fetch_one(observer.pool())
    .await
    .unwrap();
    assert_eq!(stuck, 0, "seed {seed}: a connection went back to the pool inside a transaction");
    assert!(claimed_twice.is_empty(), "seed {seed}: claimed twice within one lease: {claimed_twice:?}");
    for id in &enqueued {
        assert!(observer.delivery("acme", *id).await.unwrap().is_some(), "seed {seed}: acknowledged enqueue {id} lost");
    }
    for id in claimed.keys() {
        let status = observer.delivery("acme", *id).await.unwrap().unwrap().status;
        // A finish given up on may have taken effect; one acknowledged must have, and a claim must hold otherwise.
        let expected: &[DeliveryStatus] = match (finished.contains(id), finish_tried.contains(id)) {
            (true, _) => &[DeliveryStatus::Success],
            (false, true) => &[DeliveryStatus::Success, DeliveryStatus::Dispatched],
            (false, false) => &[DeliveryStatus::Dispatched],
        };
        assert!(expected.contains(&status), "seed {seed}: acknowledged write to {id} undone: {status}");
    }
    let used = observer.quota_used("acme", day).await.unwrap();
    let granted = granted.len() as u64;
    assert!(used >= granted, "seed {seed}: {granted} granted calls acknowledged but only {used} counted");
    assert!(fired.values().all(|n| *n == 1), "seed {seed}: a once-trigger fired twice: {fired:?}");
    pool.close().await;
    observer.pool().close().await;
    db.drop_schema().await;
}

/// Two engines on two pools, four concurrent pass loops each, one tenant allowed 1,000 calls a day and 3,000
/// deliveries: exactly 1,000 requests on the first day; on the second day passes are cancelled at random
/// moments, and still exactly 1,000 deliveries go out and are counted (a delivery whose pass was dropped after
/// its grant goes out on that grant once its lease runs out; one dropped after sending may go out twice, as
/// the same message and the same counted call); on the third day, the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_holds_for_3000_deliveries_on_two_pools_also_with_passes_cancelled() {
    use crm_webhooks::testing::{ManualClock, MockHttp, RecordingMailer, SeededRng, StaticDirectory};
    use crm_webhooks::{Change, Edition, Engine, RecordEvent, WorkflowSet};

    let Some(db) = TestDb::new().await else { return };
    let servers: [Arc<dyn Storage>; 2] = [db.storage(), Arc::new(db.another_server().await)];
    let http = Arc::new(MockHttp::new_ok());
    let directory = Arc::new(StaticDirectory::new().tenant(
        "acme",
        1,
        chrono_tz::Tz::UTC,
        Some(Edition::Custom { per_user: 1000, per_day: 1000 }),
    ));
    let clock = ManualClock::new(t0());
    let workflows = WorkflowSet::from_json(
        r#"[{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [{"title": "t",
        "url": "https://acme.example/hook", "content_type": "JSON", "parameters": [{"name": "id", "field": "id"}]}]}]"#,
    )
    .unwrap();
    let engines: Vec<Engine> = (0..2)
        .map(|i| {
            let engine = Engine::builder()
                .storage(servers[i].clone())
                .http(http.clone())
                .mailer(Arc::new(RecordingMailer::new()))
                .directory(directory.clone())
                .clock(Arc::new(clock.clone()))
                .batch_size(25)
                .concurrency(8)
                .build()
                .unwrap();
            engine.set_workflows("acme", workflows.clone()).unwrap();
            engine
        })
        .collect();
    for chunk in 0..30 {
        let events: Vec<RecordEvent> = (0..100)
            .map(|i| {
                let n = chunk * 100 + i;
                RecordEvent::new("acme", "Leads", format!("10x{n}"), Change::Created, "19x1").field("id", n)
            })
            .collect();
        engines[chunk % 2].on_events(&events).await.unwrap();
    }

    // Four pass loops per engine until a whole round of passes finds nothing to send.
    async fn day(engines: &[Engine], cancel: bool, seed: u64) -> usize {
        let loops = (0..8).map(|i| {
            let engine = engines[i % 2].clone();
            tokio::spawn(async move {
                let mut rng = SeededRng::new(seed + i as u64);
                let (mut idle, mut cancelled) = (0, 0);
                while idle < 3 {
                    let pass = engine.run_due();
                    let report = if cancel && rng.chance(300) {
                        let limit = StdDuration::from_micros(200 + rng.below(3000));
                        match tokio::time::timeout(limit, pass).await {
                            Ok(report) => report,
                            Err(_) => {
                                cancelled += 1;
                                continue;
                            }
                        }
                    } else {
                        pass.await
                    };
                    match report {
                        Ok(r) if r.sent == 0 => idle += 1,
                        Ok(_) => idle = 0,
                        Err(e) => panic!("a pass failed: {e}"),
                    }
                }
                cancelled
            })
        });
        let mut cancelled = 0;
        for task in futures_util::future::join_all(loops).await {
            cancelled += task.unwrap();
        }
        cancelled
    }

    day(&engines, false, 1).await;
    let first_day = http.requests().len();
    assert_eq!(first_day, 1000, "exactly the allowance goes out on the first day");
    assert_eq!(engines[0].usage("acme").await.unwrap().used, 1000);

    clock.advance(Duration::days(1));
    let cancelled = day(&engines, true, 2).await;
    // Passes dropped after their grant leave deliveries claimed; once those leases run out (the same day), the
    // deliveries go out on the grants they hold.
    clock.advance(Duration::minutes(6));
    day(&engines, false, 4).await;
    let day_two: Vec<http::HeaderValue> =
        http.requests()[first_day..].iter().map(|r| r.headers["webhook-id"].clone()).collect();
    let second_day = day_two.iter().collect::<HashSet<_>>().len();
    let counted = engines[1].usage("acme").await.unwrap().used;
    assert!(cancelled > 0, "passes were cancelled");
    assert_eq!(second_day, 1000, "exactly the allowance reaches the receiver on day two, passes cancelled or not");
    assert_eq!(counted, 1000, "and exactly that is counted");
    let resent_two = day_two.len() - second_day;

    // The rest, on as many more days as it takes (a grant wasted on day two leaves more than a day's worth).
    let sent_before_later = http.requests().len();
    let mut later_days = Vec::new();
    let distinct = || http.requests().iter().map(|r| r.headers["webhook-id"].clone()).collect::<HashSet<_>>().len();
    while distinct() < 3000 && later_days.len() < 2 {
        let before = http.requests().len();
        clock.advance(Duration::days(1));
        day(&engines, false, 3).await;
        let sent = http.requests().len() - before;
        assert!(sent <= 1000, "{sent} sent on a later day");
        later_days.push(sent);
    }
    assert_eq!(distinct(), 3000, "every delivery went out");
    println!(
        "quota contention: day 1 {first_day} sent; day 2 {second_day} sent, {counted} counted, {cancelled} passes \
         cancelled, {resent_two} sent again after their lease ran out; later days {later_days:?} ({} in all)",
        http.requests().len() - sent_before_later
    );
    db.drop_schema().await;
}

/// A worker that only ever polls once an hour still sends at once what another server queued: the enqueue's
/// commit notifies, and every storage listening on the database wakes its workers.
#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_another_server_wakes_when_work_is_queued() {
    use crm_webhooks::testing::{MockHttp, RecordingMailer, StaticDirectory};
    use crm_webhooks::{Change, Engine, RecordEvent, Worker, WorkflowSet};

    let Some(db) = TestDb::new().await else { return };
    let workflows = WorkflowSet::from_json(
        r#"[{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [{"title": "t",
        "url": "https://acme.example/hook", "content_type": "JSON", "parameters": [{"name": "id", "field": "id"}]}]}]"#,
    )
    .unwrap();
    let http = Arc::new(MockHttp::new_ok());
    let engine = |storage: Arc<dyn Storage>| {
        let engine = Engine::builder()
            .storage(storage)
            .http(http.clone())
            .mailer(Arc::new(RecordingMailer::new()))
            .directory(Arc::new(StaticDirectory::new().tenant("acme", 1, chrono_tz::Tz::UTC, None)))
            .build()
            .unwrap();
        engine.set_workflows("acme", workflows.clone()).unwrap();
        engine
    };
    let (saving, sending) = (engine(db.storage()), engine(Arc::new(db.another_server().await)));
    let worker = Worker::new(sending).poll_interval(StdDuration::from_secs(3600)).spawn();
    // The worker's first pass finds nothing, and then it waits for an hour unless woken.
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    for i in 0..3 {
        let event = RecordEvent::new("acme", "Leads", format!("10x{i}"), Change::Created, "19x1").field("id", i);
        saving.on_event(&event).await.unwrap();
        let sent = tokio::time::timeout(StdDuration::from_secs(20), async {
            while http.requests().len() <= i {
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            }
        })
        .await;
        assert!(sent.is_ok(), "save {i} on one server was not sent by the other server's waiting worker");
    }
    worker.shutdown().await;
    db.drop_schema().await;
}

/// The notification carries the schema: work queued in another schema of the same database wakes nobody here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queued_in_another_schema_wakes_nobody() {
    use futures_util::FutureExt as _;

    let Some(here) = TestDb::new().await else { return };
    let Some(there) = TestDb::new().await else { return };
    let first = here.storage.queued_elsewhere();
    // The listener says so once it is connected (whatever was queued before it listened may be waiting).
    tokio::time::timeout(StdDuration::from_secs(20), first).await.expect("the listener never connected");
    let mut waiting = here.storage.queued_elsewhere();
    there.storage.enqueue(vec![sample_delivery("acme", "w1", t0())], vec![]).await.unwrap();
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    assert!((&mut waiting).now_or_never().is_none(), "woken by another schema's work");
    here.storage.enqueue(vec![sample_delivery("acme", "w1", t0())], vec![]).await.unwrap();
    tokio::time::timeout(StdDuration::from_secs(20), waiting).await.expect("its own schema's work did not wake it");
    here.drop_schema().await;
    there.drop_schema().await;
}
