//! SQLite's own unit tests: what a damaged row, a busy file and the query plans do, and how the writer groups
//! requests into transactions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::outbox::ANY_DUE_NOTIFICATION;
use super::outbox::DUE_NOTIFICATIONS;
use super::queue::{any_due_delivery, claim_pick_sql, claim_take_sql};
use super::*;
use crate::ports::ClaimToken;
use crate::testing::storage_contract::{sample_delivery, t0};
use crate::DeliveryStatus;

fn raw(storage: &SqliteStorage) -> std::sync::MutexGuard<'_, Connection> {
    storage.inner.reader.lock().unwrap()
}

#[tokio::test]
async fn a_bad_row_is_a_corrupt_error_not_a_panic() {
    let storage = SqliteStorage::in_memory().unwrap();
    let d = sample_delivery("acme", "w1", t0());
    storage.enqueue(vec![d.clone()], vec![]).await.unwrap();
    raw(&storage).execute("UPDATE deliveries SET method = 'GET'", []).unwrap();
    let error = storage.delivery("acme", d.id).await.unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Corrupt);
    assert!(error.message().contains("`method`"), "{error}");

    // A claim sets an unreadable row aside (Failed, logged) and hands out the readable ones.
    let good = sample_delivery("acme", "w1", t0());
    storage.enqueue(vec![good.clone()], vec![]).await.unwrap();
    raw(&storage)
        .execute("UPDATE deliveries SET method = 'POST', id = x'0102' WHERE id = ?1", [&d.id.as_bytes()[..]])
        .unwrap();
    let claimed = storage.claim_due(&claim(t0())).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![good.id], "the readable one is claimed");
    let back: String =
        raw(&storage).query_row("SELECT status FROM deliveries WHERE id = x'0102'", [], |r| r.get(0)).unwrap();
    assert_eq!(back, "failed", "the unreadable one is set aside");
    let log = storage.log(&LogQuery::tenant("acme").status(DeliveryStatus::Failed)).await.unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].message.contains("set aside") && log[0].error.as_deref().unwrap().contains("2 bytes"), "{log:?}");
    assert!(storage
        .claim_due(&claim(t0() + chrono::Duration::hours(1)))
        .await
        .unwrap()
        .iter()
        .all(|c| c.id == good.id));

    raw(&storage)
        .execute("UPDATE deliveries SET id = ?1, attempts = -1 WHERE id = x'0102'", [&d.id.as_bytes()[..]])
        .unwrap();
    assert_eq!(storage.delivery("acme", d.id).await.unwrap_err().kind(), StorageErrorKind::Corrupt);
    raw(&storage).execute("UPDATE deliveries SET attempts = 'x'", []).unwrap();
    assert_eq!(storage.delivery("acme", d.id).await.unwrap_err().kind(), StorageErrorKind::Corrupt);
}

#[tokio::test]
async fn a_bad_sent_to_is_corrupt() {
    let storage = SqliteStorage::in_memory().unwrap();
    raw(&storage)
        .execute(
            "INSERT INTO notifications (delivery_id, tenant, owner, created_at, next_attempt_at, attempts, sent_to) \
             VALUES (?1, 'acme', '19x1', 0, 0, 0, 'not json')",
            [&DeliveryId::new().as_bytes()[..]],
        )
        .unwrap();
    let error = storage.claim_notifications(&claim(t0())).await.unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Corrupt, "{error}");
}

#[tokio::test]
async fn empty_bodies_and_sub_second_times_round_trip() {
    let storage = SqliteStorage::in_memory().unwrap();
    let mut d = sample_delivery("acme", "w1", t0() + chrono::Duration::microseconds(1));
    d.body = bytes::Bytes::new();
    d.redelivery_of = Some(DeliveryId::new());
    d.created_at = t0() - chrono::Duration::microseconds(123_456);
    storage.enqueue(vec![d.clone()], vec![]).await.unwrap();
    assert_eq!(storage.delivery("acme", d.id).await.unwrap(), Some(d));
}

#[test]
fn busy_maps_to_unavailable_and_names_the_operation() {
    let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
    let error = codec::error("claim_due", busy);
    assert!(error.is_transient());
    assert!(error.message().contains("claim_due"));
    let locked = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_LOCKED), None);
    assert_eq!(codec::error("complete", locked).kind(), StorageErrorKind::Unavailable);
    let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
    assert_eq!(codec::error("enqueue", full).kind(), StorageErrorKind::Other);
}

#[test]
fn queries_use_the_indexes() {
    let storage = SqliteStorage::in_memory().unwrap();
    let plan = |sql: &str| -> String {
        let connection = raw(&storage);
        let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        // Unbound parameters are NULL, which the plan does not depend on.
        let mut rows = statement.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps.join("; ")
    };
    let claim = plan(&claim_pick_sql());
    assert!(claim.contains("deliveries_due") && !claim.contains("TEMP B-TREE"), "{claim}");
    let take = plan(&claim_take_sql());
    assert!(take.contains("deliveries_due") && !take.contains("SCAN"), "{take}");
    let id = DeliveryId::new();
    let logs = [
        (LogQuery::tenant("a"), "log_by_tenant"),
        (LogQuery::tenant("a").status(DeliveryStatus::Failed).action("x"), "log_by_tenant"),
        (LogQuery::tenant("a").between(t0(), t0()), "log_by_tenant"),
        (LogQuery::tenant("a").workflow("w"), "log_by_workflow"),
        (LogQuery::tenant("a").record("r").workflow("w"), "log_by_record"),
        (LogQuery::tenant("a").delivery(id), "log_by_delivery"),
        (LogQuery::tenant("a").delivery(id).workflow("w").between(t0(), t0()), "log_by_delivery"),
    ];
    for (query, index) in logs {
        let log = plan(&log::page_sql(&query).0);
        assert!(log.contains(index) && !log.contains("TEMP B-TREE"), "{query:?}: {log}");
    }
    let prune = plan("SELECT id FROM deliveries WHERE status IN ('success', 'failed') AND updated_at < 5");
    assert!(prune.contains("deliveries_settled"), "{prune}");
    let log_prune = plan("DELETE FROM log_entries WHERE delivery_id IN (SELECT id FROM deliveries)");
    assert!(log_prune.contains("log_by_delivery"), "{log_prune}");
    let due = plan(any_due_delivery());
    assert!(due.contains("deliveries_due") && !due.contains("SCAN"), "{due}");
    let due = plan(ANY_DUE_NOTIFICATION);
    assert!(due.contains("notifications_due") && !due.contains("SCAN"), "{due}");
    let outbox = plan(&format!("SELECT delivery_id {DUE_NOTIFICATIONS}"));
    assert!(outbox.contains("notifications_due") && !outbox.contains("TEMP B-TREE"), "{outbox}");
}

#[test]
fn debug_names_the_location() {
    let storage = SqliteStorage::in_memory().unwrap();
    assert!(format!("{storage:?}").contains(":memory:"));
    assert_eq!(storage.path(), None);
}

#[test]
fn works_outside_a_tokio_runtime() {
    let storage = SqliteStorage::in_memory().unwrap();
    let d = sample_delivery("acme", "w1", t0());
    // A write is answered by the writer thread: any executor can wait for it.
    block_on(storage.enqueue(vec![d.clone()], vec![])).unwrap();
    // A read runs on the calling thread.
    let back = futures_util::FutureExt::now_or_never(storage.delivery("acme", d.id)).unwrap().unwrap();
    assert_eq!(back.map(|b| b.status), Some(DeliveryStatus::Queued));
}

/// Waits for `future` on this thread, without a runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// Sends `n` requests to the writer of `storage` while another connection holds the write lock, then lets it
/// go: request `i` marks record `r{i}` fired, and those in `failing` fail after writing. Their answers, in order,
/// and the transactions committed meanwhile.
async fn queued_behind_a_lock(
    storage: &SqliteStorage,
    n: usize,
    failing: &[usize],
    panicking: &[usize],
) -> (Vec<Result<bool, StorageError>>, u64) {
    let path = storage.path().unwrap().to_path_buf();
    let holder = Connection::open(path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let before = storage.inner.writer.commits();
    let requests: Vec<_> = (0..n)
        .map(|i| {
            let storage = storage.clone();
            let (fail, panic) = (failing.contains(&i), panicking.contains(&i));
            tokio::spawn(async move {
                storage
                    .inner
                    .writer
                    .submit("test", move |connection| {
                        let marked = state::mark_fired(connection, "acme", "w", &format!("r{i}"))
                            .map_err(|e| codec::error("test", e))?;
                        assert!(!panic, "request {i} panics on purpose");
                        if fail {
                            return Err(StorageError::new(StorageErrorKind::Other, format!("request {i} fails")));
                        }
                        Ok(marked)
                    })
                    .await
            })
        })
        .collect();
    // Every request is sent (the writer waits for the lock with the first of them), then the lock goes.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    holder.execute_batch("COMMIT").unwrap();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    (answers, storage.inner.writer.commits() - before)
}

fn fired(storage: &SqliteStorage) -> Vec<String> {
    let connection = raw(storage);
    let mut statement = connection.prepare("SELECT record_id FROM fired_once ORDER BY record_id").unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_writes_share_a_transaction_and_a_failure_undoes_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(dir.path().join("webhooks.db")).unwrap();
    let failing = [0, 3, 7, 19];
    let (answers, commits) = queued_behind_a_lock(&storage, 20, &failing, &[]).await;
    assert!(commits <= 2, "20 waiting requests took {commits} transactions");
    let mut expected = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        if failing.contains(&i) {
            assert_eq!(answer.as_ref().unwrap_err().message(), format!("request {i} fails"));
        } else {
            assert_eq!(answer, &Ok(true), "request {i}");
            expected.push(format!("r{i}"));
        }
    }
    expected.sort();
    assert_eq!(fired(&storage), expected, "the failed requests' writes were undone, and only theirs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_panics_is_rolled_back_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(dir.path().join("webhooks.db")).unwrap();
    let (answers, _) = queued_behind_a_lock(&storage, 6, &[], &[0, 4]).await;
    for (i, answer) in answers.iter().enumerate() {
        if i == 0 || i == 4 {
            assert!(answer.as_ref().unwrap_err().message().contains("panicked"), "{answer:?}");
        } else {
            assert_eq!(answer, &Ok(true), "request {i}");
        }
    }
    assert_eq!(fired(&storage), ["r1", "r2", "r3", "r5"]);
    assert!(
        crate::testing::storage_contract::take_once_mark(&storage, "acme", "w", "later").await.unwrap(),
        "the writer still works"
    );
}

fn claim(now: DateTime<Utc>) -> Claim {
    Claim { now, limit: 10, lease_until: now + chrono::Duration::seconds(30), token: ClaimToken::new() }
}
