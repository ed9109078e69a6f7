//! The storage contract and SQLite's own promises (durability, migrations), run on `SqliteStorage`.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use crm_webhooks::adapters::sqlite::SqliteStorage;
use crm_webhooks::ports::{Claim, ClaimToken, Completion, QuotaRequest, StorageErrorKind};
use crm_webhooks::testing::storage_contract::{self, sample_delivery, t0};
use crm_webhooks::{Delivery, DeliveryId, DeliveryStatus, LogEntry, LogQuery, Storage};

mod memory {
    crm_webhooks::storage_contract_tests!(async {
        std::sync::Arc::new(crm_webhooks::adapters::sqlite::SqliteStorage::in_memory().unwrap())
    });
}

/// On a file in a temporary directory that lives as long as the check.
mod file {
    use crm_webhooks::adapters::sqlite::{rusqlite, SqliteStorage};
    use crm_webhooks::engine::Prepared;
    use crm_webhooks::ports::StorageError;
    use crm_webhooks::testing::storage_contract::{Fixture, HostTransactions};
    use crm_webhooks::DeliveryId;

    /// The host: its own connection to the storage's file, its own table, its own transaction.
    struct Host {
        storage: SqliteStorage,
        path: std::path::PathBuf,
    }

    #[crm_webhooks::async_trait]
    impl HostTransactions for Host {
        async fn save_and_enqueue(&self, prepared: Prepared, commit: bool) -> Result<Vec<DeliveryId>, StorageError> {
            let mut crm = rusqlite::Connection::open(&self.path).unwrap();
            crm.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            crm.execute_batch("CREATE TABLE IF NOT EXISTS host_rows (id INTEGER PRIMARY KEY, note TEXT)").unwrap();
            let count = |crm: &rusqlite::Connection| -> i64 {
                crm.query_row("SELECT count(*) FROM host_rows", [], |r| r.get(0)).unwrap()
            };
            let before = count(&crm);
            let tx = crm.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
            tx.execute("INSERT INTO host_rows (note) VALUES ('saved')", []).unwrap();
            let queued = self.storage.enqueue_in(&tx, prepared)?;
            if commit {
                tx.commit().unwrap();
            } else {
                tx.rollback().unwrap();
            }
            assert_eq!(count(&crm), before + i64::from(commit), "the host's own row follows its transaction");
            Ok(queued)
        }
    }

    crm_webhooks::storage_contract_tests!(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhooks.db");
        let storage = SqliteStorage::open(&path).unwrap();
        let host = Host { storage: storage.clone(), path };
        Fixture::new(std::sync::Arc::new(storage)).host_transactions(host).keep(dir)
    });
}

fn claim(now: DateTime<Utc>, limit: usize) -> Claim {
    Claim { now, limit, lease_until: now + Duration::seconds(30), token: ClaimToken::new() }
}

fn success(d: &Delivery, token: ClaimToken, at: DateTime<Utc>) -> Completion {
    Completion {
        id: d.id,
        token,
        status: DeliveryStatus::Success,
        attempts: d.attempts + 1,
        next_attempt_at: None,
        at,
        entries: vec![LogEntry::about(d, DeliveryStatus::Success, at, "delivered")],
        notification: None,
    }
}

/// A store on a file in a temporary directory (which goes when the second half is dropped).
fn on_a_file() -> (SqliteStorage, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (SqliteStorage::open(dir.path().join("webhooks.db")).unwrap(), dir)
}

/// Enqueues and claims `n` deliveries due at `t0()`.
async fn claimed(storage: &SqliteStorage, n: usize) -> (ClaimToken, Vec<DeliveryId>) {
    let deliveries: Vec<Delivery> = (0..n).map(|_| sample_delivery("acme", "w1", t0())).collect();
    storage.enqueue(deliveries.clone(), vec![]).await.unwrap();
    let c = claim(t0(), n);
    assert_eq!(storage.claim_due(&c).await.unwrap().len(), n);
    (c.token, deliveries.iter().map(|d| d.id).collect())
}

fn quota(day: NaiveDate, allowance: u64, token: ClaimToken, ids: &[DeliveryId]) -> QuotaRequest {
    QuotaRequest { tenant: "acme".into(), day, allowance, token, deliveries: ids.to_vec() }
}

#[tokio::test]
async fn reopening_a_file_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let waiting = sample_delivery("acme", "w1", t0() + Duration::hours(1));
    let mut done = sample_delivery("acme", "w1", t0());
    done.body = bytes::Bytes::from_static(b"\x00\xffbinary\r\n");
    {
        let storage = SqliteStorage::open(&path).unwrap();
        let entries = [&waiting, &done].map(|d| LogEntry::about(d, DeliveryStatus::Queued, t0(), "queued")).to_vec();
        storage.enqueue(vec![waiting.clone(), done.clone()], entries).await.unwrap();
        let c = claim(t0(), 10);
        assert_eq!(storage.claim_due(&c).await.unwrap().len(), 1);
        assert!(storage.complete(vec![success(&done, c.token, t0())]).await.unwrap().is_empty());
        let (token, ids) = claimed(&storage, 4).await;
        let granted = storage.grant_quota(&quota(day, 3, token, &ids)).await.unwrap();
        assert_eq!(granted, ids[..3]);
        assert!(storage_contract::take_once_mark(&storage, "acme", "w1", "13x42").await.unwrap());
        assert!(storage.set_next_run("acme", "daily", None, Some(t0())).await.unwrap());
    }
    let storage = SqliteStorage::open(&path).unwrap();
    assert_eq!(storage.delivery("acme", waiting.id).await.unwrap(), Some(waiting.clone()));
    let done_back = storage.delivery("acme", done.id).await.unwrap().unwrap();
    assert_eq!((done_back.status, done_back.body), (DeliveryStatus::Success, done.body.clone()));
    let log: Vec<_> = storage.log(&LogQuery::tenant("acme")).await.unwrap().into_iter().map(|e| e.message).collect();
    assert_eq!(log, ["delivered", "queued", "queued"]);
    assert_eq!(storage.quota_used("acme", day).await.unwrap(), 3);
    assert!(!storage_contract::take_once_mark(&storage, "acme", "w1", "13x42").await.unwrap());
    assert_eq!(storage.next_run("acme", "daily").await.unwrap(), Some(t0()));
    assert_eq!(storage.next_due_at().await.unwrap(), Some(t0() + Duration::seconds(30)), "the claims' leases");
    let (token, ids) = claimed(&storage, 8).await;
    assert_eq!(storage.grant_quota(&quota(day, 10, token, &ids)).await.unwrap(), ids[..7], "the count carries on");
}

/// The crate's schema version recorded in a file.
fn schema_version(path: &std::path::Path) -> u32 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT version FROM crm_webhooks_schema", [], |r| r.get(0))
        .unwrap()
}

/// A host's own file, whose `user_version` numbers the host's own migrations: the crate's tables go in beside the
/// host's, and neither the header field nor the host's rows are touched.
#[tokio::test]
async fn a_hosts_file_keeps_its_own_user_version_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.db");
    let host = rusqlite::Connection::open(&path).unwrap();
    host.execute_batch(
        "CREATE TABLE leads (id TEXT PRIMARY KEY); INSERT INTO leads VALUES ('10x1'); PRAGMA user_version = 42;",
    )
    .unwrap();
    let d = sample_delivery("acme", "w1", t0());
    SqliteStorage::open(&path).unwrap().enqueue(vec![d.clone()], vec![]).await.unwrap();
    let again = SqliteStorage::open(&path).unwrap();
    assert_eq!(again.delivery("acme", d.id).await.unwrap(), Some(d), "opened again: no migration ran twice");
    let header: i64 = host.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(header, 42, "the host's header field is the host's");
    let leads: i64 = host.query_row("SELECT count(*) FROM leads", [], |r| r.get(0)).unwrap();
    assert_eq!(leads, 1);
    assert_eq!(schema_version(&path), SqliteStorage::SCHEMA_VERSION);
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let d = sample_delivery("acme", "w1", t0());
    SqliteStorage::open(&path).unwrap().enqueue(vec![d.clone()], vec![]).await.unwrap();
    let again = SqliteStorage::open(&path).unwrap();
    let third = SqliteStorage::open(&path).unwrap();
    assert_eq!(again.delivery("acme", d.id).await.unwrap(), Some(d.clone()));
    assert_eq!(third.delivery("acme", d.id).await.unwrap(), Some(d));
    assert_eq!(schema_version(&path), SqliteStorage::SCHEMA_VERSION);
    let mode: String =
        rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA journal_mode", [], |row| row.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

/// A file written by the first release (schema version 1), with a queued delivery, a log entry and a quota
/// count, opens with this build: the rows read back and work.
#[tokio::test]
async fn a_version_1_file_is_upgraded_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let t0_micros = t0().timestamp_micros();
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(include_str!("../src/adapters/sqlite/migrations/0001_initial.sql")).unwrap();
        raw.execute_batch(&format!(
            "INSERT INTO deliveries (id, tenant, workflow, action, module, record_id, owner, method, url, \
             content_type, body, status, attempts, next_attempt_at, created_at, updated_at) VALUES \
             (x'000102030405060708090a0b0c0d0e0f', 'acme', 'w1', 'Create invoice', 'Potentials', '13x42', '19x1', \
             'POST', 'https://receiver.example/hook', 'JSON', x'7b7d', 'Queued', 0, {t0_micros}, {t0_micros}, \
             {t0_micros});
             INSERT INTO log_entries (delivery_id, tenant, workflow, action, record_id, status, attempt, at, message) \
             VALUES (x'000102030405060708090a0b0c0d0e0f', 'acme', 'w1', 'Create invoice', '13x42', 'Queued', 0, \
             {t0_micros}, 'queued');
             INSERT INTO quota_usage (tenant, day, used) VALUES ('acme', '2026-11-29', 7);
             PRAGMA user_version = 1;"
        ))
        .unwrap();
    }
    let storage = SqliteStorage::open(&path).unwrap();
    let id = DeliveryId::from_bytes(*b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f");
    let d = storage.delivery("acme", id).await.unwrap().expect("the version 1 row reads back");
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at, &d.body[..]),
        (DeliveryStatus::Queued, 0, Some(t0()), &b"{}"[..])
    );
    let log = storage.log(&LogQuery::tenant("acme")).await.unwrap();
    assert_eq!((log.len(), log[0].status), (1, DeliveryStatus::Queued));
    let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    assert_eq!(storage.quota_used("acme", day).await.unwrap(), 7);
    let c = claim(t0(), 10);
    assert_eq!(storage.claim_due(&c).await.unwrap().len(), 1, "the upgraded row is claimed");
    assert_eq!(storage.grant_quota(&quota(day, 8, c.token, &[id])).await.unwrap(), [id]);
    assert_eq!(storage.quota_used("acme", day).await.unwrap(), 8);
    assert_eq!(schema_version(&path), SqliteStorage::SCHEMA_VERSION);
}

/// The id of the `n`th delivery of the version 2 file.
fn v2_id(n: u8) -> DeliveryId {
    DeliveryId::from_bytes([n; 16])
}

/// `SELECT DISTINCT status` of `table`, sorted.
fn stored_statuses(connection: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut statement = connection.prepare(&format!("SELECT DISTINCT status FROM {table} ORDER BY status")).unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
}

/// A file written by a build of schema version 2 (statuses stored as `Queued`, `Dispatched`, `Success`, `Failed`),
/// with a delivery in each status (the dispatched one claimed, leased and holding a quota grant), their log, a
/// quota count, a notification, a once mark and a schedule, is rebuilt by migration 3: every row reads back and
/// works, and only the lower-case texts are stored.
#[tokio::test]
async fn a_version_2_file_is_upgraded_to_lower_case_statuses_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let at = |d: Duration| (t0() + d).timestamp_micros();
    let (t, lease, later) = (at(Duration::zero()), at(Duration::seconds(30)), at(Duration::hours(1)));
    let token = ClaimToken::from_bytes([0xee; 16]);
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let (q, d, s, f) =
        (hex(v2_id(1).as_bytes()), hex(v2_id(2).as_bytes()), hex(v2_id(3).as_bytes()), hex(v2_id(4).as_bytes()));
    let token_hex = hex(token.as_bytes());
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(include_str!("../src/adapters/sqlite/migrations/0001_initial.sql")).unwrap();
        raw.execute_batch(include_str!("../src/adapters/sqlite/migrations/0002_quota_grants.sql")).unwrap();
        let columns = "id, tenant, workflow, action, module, record_id, owner, method, url, content_type, body, \
                       status, attempts, next_attempt_at, lease_expires_at, claim_token, created_at, updated_at, \
                       quota_day, quota_attempt";
        let fixed = "'acme', 'w1', 'Create invoice', 'Potentials', '13x42', '19x1', 'POST', \
                     'https://receiver.example/hook', 'JSON', x'7b7d'";
        let entry = |id: &str, status: &str, attempt: u32, message: &str| {
            format!(
                "INSERT INTO log_entries (delivery_id, tenant, workflow, action, record_id, status, attempt, at, \
                 message) VALUES (x'{id}', 'acme', 'w1', 'Create invoice', '13x42', '{status}', {attempt}, {t}, \
                 '{message}');"
            )
        };
        raw.execute_batch(&format!(
            "INSERT INTO deliveries ({columns}) VALUES
                 (x'{q}', {fixed}, 'Queued', 0, {later}, NULL, NULL, {t}, {t}, NULL, NULL),
                 (x'{d}', {fixed}, 'Dispatched', 1, NULL, {lease}, x'{token_hex}', {t}, {t}, '2026-11-29', 2),
                 (x'{s}', {fixed}, 'Success', 1, NULL, NULL, NULL, {t}, {t}, '2026-11-29', 1),
                 (x'{f}', {fixed}, 'Failed', 1, NULL, NULL, NULL, {t}, {t}, '2026-11-29', 1);
             {} {} {} {} {} {} {}
             INSERT INTO quota_usage (tenant, day, used) VALUES ('acme', '2026-11-29', 7);
             INSERT INTO notifications (delivery_id, tenant, owner, created_at, next_attempt_at, attempts, sent_to)
                 VALUES (x'{f}', 'acme', '19x1', {t}, {t}, 0, '[]');
             INSERT INTO fired_once (tenant, workflow, record_id) VALUES ('acme', 'w1', '13x42');
             INSERT INTO schedules (tenant, workflow, next_run) VALUES ('acme', 'daily', {later});
             PRAGMA user_version = 2;",
            entry(&q, "Queued", 0, "q queued"),
            entry(&d, "Queued", 0, "d queued"),
            entry(&d, "Dispatched", 1, "d dispatched"),
            entry(&s, "Queued", 0, "s queued"),
            entry(&s, "Success", 1, "s delivered"),
            entry(&f, "Queued", 0, "f queued"),
            entry(&f, "Failed", 1, "f failed"),
        ))
        .unwrap();
    }

    let storage = SqliteStorage::open(&path).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(schema_version(&path), SqliteStorage::SCHEMA_VERSION);
    let lower = ["dispatched", "failed", "queued", "success"];
    assert_eq!(stored_statuses(&raw, "deliveries"), lower);
    assert_eq!(stored_statuses(&raw, "log_entries"), lower);
    let integrity: String = raw.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    // Every column, `due_at` still virtual (hidden = 2), the grant and order columns last; every index again.
    let mut columns = raw.prepare("SELECT name, hidden FROM pragma_table_xinfo('deliveries') ORDER BY cid").unwrap();
    let columns: Vec<(String, i64)> =
        columns.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names.join(", "),
        "id, tenant, workflow, action, module, record_id, owner, method, url, content_type, body, status, attempts, \
         next_attempt_at, lease_expires_at, claim_token, created_at, updated_at, redelivery_of, due_at, quota_day, \
         quota_attempt, ordered, order_key, order_seq"
    );
    assert_eq!(columns.iter().find(|(name, _)| name == "due_at").map(|c| c.1), Some(2));
    let mut indexes = raw
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deliveries' AND sql IS NOT NULL \
             ORDER BY name",
        )
        .unwrap();
    let indexes: Vec<String> = indexes.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(indexes, ["deliveries_due", "deliveries_held", "deliveries_line", "deliveries_settled"]);
    let old_text = raw.execute(&format!("UPDATE deliveries SET status = 'Queued' WHERE id = x'{q}'"), []);
    assert!(old_text.is_err(), "the old text is refused");

    // Every row reads back.
    let mut read = Vec::new();
    for n in 1..=4 {
        read.push(storage.delivery("acme", v2_id(n)).await.unwrap().expect("the version 2 row reads back"));
    }
    let [queued, dispatched, succeeded, failed] = <[Delivery; 4]>::try_from(read).unwrap();
    assert_eq!(
        (queued.status, queued.attempts, queued.next_attempt_at),
        (DeliveryStatus::Queued, 0, Some(t0() + Duration::hours(1)))
    );
    assert_eq!(
        (dispatched.status, dispatched.attempts, dispatched.lease_expires_at),
        (DeliveryStatus::Dispatched, 1, Some(t0() + Duration::seconds(30)))
    );
    assert_eq!((succeeded.status, failed.status), (DeliveryStatus::Success, DeliveryStatus::Failed));
    assert_eq!(&queued.body[..], b"{}");
    let log = storage.log(&LogQuery::tenant("acme")).await.unwrap();
    assert_eq!(log.len(), 7);
    for (status, messages) in [
        (DeliveryStatus::Queued, &["q queued", "d queued", "s queued", "f queued"][..]),
        (DeliveryStatus::Dispatched, &["d dispatched"][..]),
        (DeliveryStatus::Success, &["s delivered"][..]),
        (DeliveryStatus::Failed, &["f failed"][..]),
    ] {
        let found = storage.log(&LogQuery::tenant("acme").status(status)).await.unwrap();
        let mut found: Vec<_> = found.into_iter().map(|e| e.message).collect();
        found.sort();
        let mut expected = messages.to_vec();
        expected.sort();
        assert_eq!(found, expected, "log entries of {status}");
    }

    // The claimed delivery is due when its lease runs out, and its claim and quota grant still hold.
    assert_eq!(storage.next_due_at().await.unwrap(), Some(t0() + Duration::seconds(30)));
    let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    assert_eq!(
        storage.grant_quota(&quota(day, 7, token, &[v2_id(2)])).await.unwrap(),
        [v2_id(2)],
        "the grant it holds"
    );
    assert_eq!(storage.quota_used("acme", day).await.unwrap(), 7, "not counted again");
    let c = claim(t0() + Duration::seconds(30), 10);
    let reclaimed = storage.claim_due(&c).await.unwrap();
    assert_eq!(reclaimed.iter().map(|d| d.id).collect::<Vec<_>>(), [v2_id(2)], "the lease ran out");
    assert!(storage.complete(vec![success(&reclaimed[0], c.token, c.now)]).await.unwrap().is_empty());
    assert_eq!(storage.next_due_at().await.unwrap(), Some(t0() + Duration::hours(1)));

    // The rest of the state, and pruning what settled (the failed one waits for its notification).
    let notifications = storage.claim_notifications(&claim(t0(), 10)).await.unwrap();
    assert_eq!(notifications.iter().map(|n| n.delivery_id).collect::<Vec<_>>(), [v2_id(4)]);
    assert!(!storage_contract::take_once_mark(&storage, "acme", "w1", "13x42").await.unwrap());
    assert_eq!(storage.next_run("acme", "daily").await.unwrap(), Some(t0() + Duration::hours(1)));
    assert_eq!(storage.prune(t0() + Duration::hours(2)).await.unwrap(), 2);
    assert!(storage.delivery("acme", v2_id(3)).await.unwrap().is_none());
    assert!(storage.delivery("acme", v2_id(4)).await.unwrap().is_some());
    assert_eq!(stored_statuses(&raw, "deliveries"), ["failed", "queued"]);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    drop(SqliteStorage::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE crm_webhooks_schema SET version = ?1", [SqliteStorage::SCHEMA_VERSION + 1])
        .unwrap();
    let error = SqliteStorage::open(&path).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Schema, "{error}");
    assert!(error.message().contains("newer"), "{error}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "this is not a database, just some text that is long enough to have a header").unwrap();
    let error = SqliteStorage::open(&path).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Corrupt, "{error}");
}

#[tokio::test]
async fn a_file_with_foreign_tables_is_a_schema_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE deliveries (x INTEGER)").unwrap();
    let error = SqliteStorage::open(&path).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Schema, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_500_claims_and_finishes_in_one_call() {
    let (storage, _dir) = on_a_file();
    let deliveries: Vec<_> =
        (0..500).map(|i| sample_delivery("acme", "w1", t0() + Duration::milliseconds(i))).collect();
    let entries = deliveries.iter().map(|d| LogEntry::about(d, DeliveryStatus::Queued, t0(), "queued")).collect();
    storage.enqueue(deliveries.clone(), entries).await.unwrap();
    let c = Claim { limit: 500, ..claim(t0() + Duration::seconds(1), 0) };
    let claimed = storage.claim_due(&c).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), deliveries.iter().map(|d| d.id).collect::<Vec<_>>());
    let completions = claimed.iter().map(|d| success(d, c.token, c.now)).collect();
    assert!(storage.complete(completions).await.unwrap().is_empty());
    assert_eq!(storage.next_due_at().await.unwrap(), None);
    let successes = storage.log(&LogQuery::tenant("acme").status(DeliveryStatus::Success).limit(1000)).await.unwrap();
    assert_eq!(successes.len(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_never_claim_the_same_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let a: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&path).unwrap());
    let b: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&path).unwrap());
    let deliveries: Vec<_> = (0..200).map(|_| sample_delivery("acme", "w1", t0())).collect();
    a.enqueue(deliveries, vec![]).await.unwrap();
    let claims = (0..20).map(|i| {
        let storage = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move { storage.claim_due(&claim(t0(), 10)).await.unwrap() })
    });
    let mut seen = std::collections::HashSet::new();
    for handle in claims {
        for d in handle.await.unwrap() {
            assert!(seen.insert(d.id), "{} was claimed twice", d.id);
        }
    }
    assert_eq!(seen.len(), 200);
}

#[tokio::test]
async fn a_claim_returns_the_rows_as_stored() {
    let (storage, _dir) = on_a_file();
    let deliveries: Vec<_> = (0..3).map(|i| sample_delivery("acme", "w1", t0() + Duration::seconds(i))).collect();
    storage.enqueue(deliveries.clone(), vec![]).await.unwrap();
    // Sub-microsecond parts are not stored: what a claim hands out must equal what reads back.
    let now = t0() + Duration::seconds(5) + Duration::nanoseconds(1_234_567);
    let c =
        Claim { now, limit: 10, lease_until: now + Duration::nanoseconds(30_000_000_999), token: ClaimToken::new() };
    let claimed = storage.claim_due(&c).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), deliveries.iter().map(|d| d.id).collect::<Vec<_>>());
    for d in &claimed {
        assert_eq!(d.status, DeliveryStatus::Dispatched);
        assert_eq!(storage.delivery("acme", d.id).await.unwrap().as_ref(), Some(d));
    }
    assert_eq!(claimed[0].lease_expires_at.unwrap().timestamp_subsec_nanos() % 1000, 0);
}

#[tokio::test]
async fn a_large_finish_keeps_the_log_in_write_order() {
    let (storage, _dir) = on_a_file();
    // 100 completions, 200 entries: the entries go in several multi-row statements.
    let deliveries: Vec<_> = (0..100).map(|_| sample_delivery("acme", "w1", t0())).collect();
    storage.enqueue(deliveries.clone(), vec![]).await.unwrap();
    let c = claim(t0(), 100);
    assert_eq!(storage.claim_due(&c).await.unwrap().len(), 100);
    let mut written = Vec::new();
    let mut expected_lost = Vec::new();
    let completions = deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut done = success(d, c.token, t0());
            // Every entry at the same instant: only the order they were written in tells them apart.
            done.entries = ["a", "b"]
                .into_iter()
                .map(|part| LogEntry::about(d, DeliveryStatus::Success, t0(), format!("{i}{part}")))
                .collect();
            if i % 7 == 3 {
                done.token = ClaimToken::new();
                expected_lost.push(d.id);
            } else {
                written.extend(done.entries.iter().map(|e| e.message.clone()));
            }
            done
        })
        .collect();
    assert_eq!(storage.complete(completions).await.unwrap(), expected_lost, "a claim not held is lost, in order");
    let log = storage.log(&LogQuery::tenant("acme").limit(1000)).await.unwrap();
    let messages: Vec<_> = log.into_iter().map(|e| e.message).collect();
    written.reverse();
    assert_eq!(messages, written, "last written first, nothing of a lost completion");
    let one = storage.log(&LogQuery::tenant("acme").delivery(deliveries[98].id)).await.unwrap();
    assert_eq!(one.into_iter().map(|e| e.message).collect::<Vec<_>>(), ["98b", "98a"]);
}

#[tokio::test]
async fn a_delivery_twice_in_one_finish_settles_once() {
    let (storage, _dir) = on_a_file();
    let d = sample_delivery("acme", "w1", t0());
    storage.enqueue(vec![d.clone()], vec![]).await.unwrap();
    let c = claim(t0(), 1);
    storage.claim_due(&c).await.unwrap();
    let mut stale = success(&d, ClaimToken::new(), t0());
    stale.entries[0].message = "stale".into();
    let first = success(&d, c.token, t0());
    let mut again = success(&d, c.token, t0() + Duration::seconds(1));
    again.entries[0].message = "again".into();
    let lost = storage.complete(vec![stale, first, again]).await.unwrap();
    assert_eq!(lost, [d.id, d.id], "the stale claim and the second finish are both lost");
    let log = storage.log(&LogQuery::tenant("acme")).await.unwrap();
    assert_eq!(log.into_iter().map(|e| e.message).collect::<Vec<_>>(), ["delivered"]);
}

#[tokio::test]
async fn commits_reach_the_database_file_without_waiting_for_a_thousand_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let storage = SqliteStorage::open(&path).unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    let deliveries: Vec<_> = (0..50).map(|_| sample_delivery("acme", "w1", t0())).collect();
    storage.enqueue(deliveries.clone(), vec![]).await.unwrap();
    // Far below SQLite's automatic checkpoint: only the background checkpointer copies the pages back (and so
    // syncs the WAL) while the store is open.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&path).unwrap().len() <= before {
        assert!(std::time::Instant::now() < deadline, "no checkpoint within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let reader = rusqlite::Connection::open(&path).unwrap();
    let stored: i64 = reader.query_row("SELECT count(*) FROM deliveries", [], |row| row.get(0)).unwrap();
    assert_eq!(stored, 50);
    drop(storage);
}

/// Holds SQLite's write lock on `path` from a connection of its own until dropped (or committed).
fn hold_the_write_lock(path: &std::path::Path) -> rusqlite::Connection {
    let holder = rusqlite::Connection::open(path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    holder
}

/// How many of `ids` are stored, and how many log entries they have.
async fn stored(storage: &SqliteStorage, ids: &[DeliveryId]) -> (usize, usize) {
    let (mut deliveries, mut entries) = (0, 0);
    for &id in ids {
        deliveries += usize::from(storage.delivery("acme", id).await.unwrap().is_some());
        entries += storage.log(&LogQuery::tenant("acme").delivery(id)).await.unwrap().len();
    }
    (deliveries, entries)
}

/// Two deliveries and a `queued` entry each; `twice` puts the first delivery in the batch a second time.
fn batch(twice: bool) -> (Vec<Delivery>, Vec<LogEntry>) {
    let mut deliveries: Vec<Delivery> = (0..2).map(|_| sample_delivery("acme", "w1", t0())).collect();
    let entries = deliveries.iter().map(|d| LogEntry::about(d, DeliveryStatus::Queued, t0(), "queued")).collect();
    if twice {
        deliveries.push(deliveries[0].clone());
    }
    (deliveries, entries)
}

/// 200 enqueues from as many tasks, sent while another connection holds the write lock so that they pile up and
/// share transactions; every 17th puts one id in its batch twice. Each good one is stored whole, with its log;
/// each bad one stored nothing and got its own error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_share_commits_and_each_is_all_or_nothing() {
    let (storage, dir) = on_a_file();
    let storage = Arc::new(storage);
    let holder = hold_the_write_lock(&dir.path().join("webhooks.db"));
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let storage = Arc::clone(&storage);
            let bad = i % 17 == 5;
            let (deliveries, entries) = batch(bad);
            let ids: Vec<DeliveryId> = deliveries.iter().map(|d| d.id).collect();
            let call = tokio::spawn(async move { storage.enqueue(deliveries, entries).await });
            (bad, ids, call)
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    holder.execute_batch("COMMIT").unwrap();
    let mut bad_calls = 0;
    for (bad, mut ids, call) in calls {
        let answer = call.await.unwrap();
        ids.dedup();
        if bad {
            bad_calls += 1;
            let error = answer.unwrap_err();
            assert!(error.message().contains("twice in one enqueue"), "{error}");
            assert_eq!(stored(&storage, &ids).await, (0, 0), "a failed enqueue stored nothing");
        } else {
            answer.unwrap();
            assert_eq!(stored(&storage, &ids).await, (2, 2), "a good enqueue is stored whole, with its log");
        }
    }
    assert_eq!(bad_calls, 12);
    let count: i64 = rusqlite::Connection::open(dir.path().join("webhooks.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM deliveries", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 2 * (200 - 12));
}

/// An enqueue whose caller drops it after a few polls is stored whole or not at all, and the store goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_dropped_by_its_caller_is_whole_or_absent() {
    let (storage, _dir) = on_a_file();
    let mut dropped = Vec::new();
    for polls in 0..6 {
        let (deliveries, entries) = batch(false);
        dropped.push(deliveries.iter().map(|d| d.id).collect::<Vec<_>>());
        let outcome = crm_webhooks::testing::poll_at_most(storage.enqueue(deliveries, entries), polls).await;
        assert!(outcome.as_ref().is_none_or(|answer| answer.is_ok()), "{outcome:?}");
    }
    // A later call works, and, answered after everything sent before it, shows every dropped one settled.
    let (deliveries, entries) = batch(false);
    let later: Vec<DeliveryId> = deliveries.iter().map(|d| d.id).collect();
    storage.enqueue(deliveries, entries).await.unwrap();
    assert_eq!(stored(&storage, &later).await, (2, 2));
    for (polls, ids) in dropped.iter().enumerate() {
        let found = stored(&storage, ids).await;
        assert!(found == (0, 0) || found == (2, 2), "dropped after {polls} polls: {found:?}");
    }
    assert_eq!(stored(&storage, &dropped[0]).await, (0, 0), "never polled, never sent");
}

/// Idle claims (nothing due) and reads are answered while another connection holds the write lock: they take no
/// write transaction and do not wait behind the writer, which meanwhile waits for the lock with a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_claims_and_reads_take_no_write_lock() {
    let (storage, dir) = on_a_file();
    let storage = Arc::new(storage);
    let waiting = sample_delivery("acme", "w1", t0() + Duration::hours(1));
    storage.enqueue(vec![waiting.clone()], vec![]).await.unwrap();
    let holder = hold_the_write_lock(&dir.path().join("webhooks.db"));
    // A write now waits for the lock (up to the busy timeout, 5 s) in the writer.
    let write = tokio::spawn({
        let storage = Arc::clone(&storage);
        async move { storage_contract::take_once_mark(&*storage, "acme", "w1", "13x42").await }
    });
    let prompt = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    let claimed = tokio::time::timeout(prompt, storage.claim_due(&claim(t0(), 10))).await;
    assert!(claimed.expect("an idle claim_due waits for no lock").unwrap().is_empty());
    let notifications = tokio::time::timeout(prompt, storage.claim_notifications(&claim(t0(), 10))).await;
    assert!(notifications.expect("an idle claim_notifications waits for no lock").unwrap().is_empty());
    let read = tokio::time::timeout(prompt, storage.delivery("acme", waiting.id)).await;
    assert_eq!(read.expect("a read waits for no write").unwrap(), Some(waiting.clone()));
    assert_eq!(storage.next_due_at().await.unwrap(), Some(t0() + Duration::hours(1)));
    assert!(started.elapsed() < prompt, "{:?}", started.elapsed());
    assert!(!write.is_finished(), "the write waits for the lock");
    holder.execute_batch("COMMIT").unwrap();
    assert!(write.await.unwrap().unwrap(), "and goes through once it is free");
    // Once something is due, a claim takes it through the writer.
    let due = claim(t0() + Duration::hours(1), 10);
    assert_eq!(storage.claim_due(&due).await.unwrap().iter().map(|d| d.id).collect::<Vec<_>>(), [waiting.id]);
}

/// Dropping the last clone lets the writer finish, then closes every connection: the last one to close copies the
/// WAL back and removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_clone_closes_the_file_cleanly() {
    let (storage, dir) = on_a_file();
    let wal = dir.path().join("webhooks.db-wal");
    let (deliveries, entries) = batch(false);
    storage.enqueue(deliveries.clone(), entries).await.unwrap();
    assert!(wal.exists());
    let clone = storage.clone();
    drop(storage);
    assert!(clone.delivery("acme", deliveries[0].id).await.unwrap().is_some(), "a clone keeps it open");
    drop(clone);
    assert!(!wal.exists(), "the WAL was checkpointed and removed");
    let reopened = SqliteStorage::open(dir.path().join("webhooks.db")).unwrap();
    assert_eq!(stored(&reopened, &deliveries.iter().map(|d| d.id).collect::<Vec<_>>()).await, (2, 2));
}

/// A failure code this build does not know (written by a newer one) reads back as `other`, not as an error.
#[tokio::test]
async fn an_unknown_failure_code_reads_back_as_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let d = sample_delivery("acme", "w1", t0());
    let mut entry = LogEntry::about(&d, DeliveryStatus::Queued, t0(), "attempt 1 failed");
    entry.reason = Some(crm_webhooks::failure::FailureReason::Dns);
    SqliteStorage::open(&path).unwrap().enqueue(vec![d.clone()], vec![entry]).await.unwrap();
    rusqlite::Connection::open(&path).unwrap().execute("UPDATE log_entries SET reason = 'carrier_pigeon'", []).unwrap();
    let log = SqliteStorage::open(&path).unwrap().log(&LogQuery::tenant("acme")).await.unwrap();
    assert_eq!(log[0].reason, Some(crm_webhooks::failure::FailureReason::Other));
}
