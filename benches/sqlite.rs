//! The embedded storage against the disk it runs on: `enqueue` (one delivery and its log entry a call) from one
//! caller and from 16 at once, beside a bare rusqlite loop that commits a ~400-byte row (primary key) and a
//! ~40-byte row in a second table per transaction with the same pragmas (WAL, `synchronous = NORMAL`); the same
//! bare loop writing the storage's own rows (its tables and every index, one transaction a call) to tell what
//! the schema costs from what the storage's plumbing costs; and a claim on an empty queue (a worker's idle poll).
//! Each store is a file of its own in a temporary directory.
//!
//! After criterion's figures, the cases run again in interleaved rounds (so that a change in the machine's load
//! falls on all of them alike) and their rates are printed as ratios to the bare loop.
//!
//! ```text
//! cargo bench --no-default-features --features sqlite --bench sqlite
//! ```

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crm_webhooks::adapters::sqlite::SqliteStorage;
use crm_webhooks::ports::{Claim, ClaimToken};
use crm_webhooks::testing::storage_contract::{sample_delivery, t0};
use crm_webhooks::{Delivery, DeliveryId, DeliveryStatus, LogEntry, Storage};

/// Concurrent callers in the concurrent case.
const CALLERS: u64 = 16;

/// Interleaved rounds for the ratios, and how long each case runs in a round.
const ROUNDS: u32 = 6;
const ROUND: Duration = Duration::from_millis(700);

/// What one event queues, as `Engine::on_event` would: a delivery of about 400 bytes as stored, due now, and its
/// `queued` log entry. "Now" advances a microsecond a call, as a clock would.
fn event() -> (Vec<Delivery>, Vec<LogEntry>) {
    static NOW: AtomicI64 = AtomicI64::new(0);
    let now = t0() + chrono::Duration::microseconds(NOW.fetch_add(1, Ordering::Relaxed));
    let mut d = sample_delivery("acme", "w1", now);
    d.body = Bytes::from(format!(r#"{{"id":"10x1","customer":{{"name":"Globex","note":"{}"}}}}"#, "x".repeat(220)));
    (d.created_at, d.updated_at) = (now, now);
    let entry = LogEntry::about(&d, DeliveryStatus::Queued, now, "queued");
    (vec![d], vec![entry])
}

/// The bare loop's file: two tables, the storage's pragmas.
fn bare(path: &Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).unwrap();
    connection.pragma_update(None, "synchronous", "NORMAL").unwrap();
    connection
        .execute_batch(
            "CREATE TABLE rows (id BLOB PRIMARY KEY NOT NULL, body BLOB NOT NULL);
             CREATE TABLE notes (id BLOB NOT NULL, note TEXT NOT NULL);",
        )
        .unwrap();
    connection
}

/// One transaction of the bare loop: a ~400-byte row and a ~40-byte one.
fn bare_row(connection: &mut rusqlite::Connection, body: &[u8]) {
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
    let id = DeliveryId::new();
    let mut row = tx.prepare_cached("INSERT INTO rows (id, body) VALUES (?1, ?2)").unwrap();
    row.execute((&id.as_bytes()[..], body)).unwrap();
    let mut note = tx.prepare_cached("INSERT INTO notes (id, note) VALUES (?1, ?2)").unwrap();
    note.execute((&id.as_bytes()[..], "queued: a note about forty bytes")).unwrap();
    drop((row, note));
    tx.commit().unwrap();
}

/// A file with the storage's schema (created by opening it), for the bare loop to write the storage's rows.
fn bare_schema(path: &Path) -> rusqlite::Connection {
    drop(SqliteStorage::open(path).unwrap());
    let connection = rusqlite::Connection::open(path).unwrap();
    connection.pragma_update(None, "synchronous", "NORMAL").unwrap();
    connection
}

/// One transaction of the bare loop on the storage's schema: what `enqueue` stores for one event.
fn bare_schema_row(connection: &mut rusqlite::Connection) {
    let (deliveries, entries) = event();
    let (d, e) = (&deliveries[0], &entries[0]);
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
    let mut delivery = tx
        .prepare_cached(
            "INSERT INTO deliveries (id, tenant, workflow, action, module, record_id, owner, method, url, \
             content_type, body, status, attempts, next_attempt_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'POST', ?8, 'JSON', ?9, 'queued', 0, ?10, ?10, ?10) \
             ON CONFLICT (id) DO NOTHING",
        )
        .unwrap();
    let at = d.created_at.timestamp_micros();
    let id = &d.id.as_bytes()[..];
    delivery
        .execute(rusqlite::params![
            id,
            d.tenant,
            d.workflow,
            d.action,
            d.module,
            d.record_id,
            d.owner,
            d.url,
            &d.body[..],
            at
        ])
        .unwrap();
    let mut entry = tx
        .prepare_cached(
            "INSERT INTO log_entries (delivery_id, tenant, workflow, action, record_id, status, attempt, at, \
             message) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?7)",
        )
        .unwrap();
    entry.execute(rusqlite::params![id, e.tenant, e.workflow, e.action, e.record_id, at, e.message]).unwrap();
    drop((delivery, entry));
    tx.commit().unwrap();
}

/// `calls` enqueues, one after the other.
async fn enqueue_one(storage: &SqliteStorage, calls: u64) {
    for _ in 0..calls {
        let (deliveries, entries) = event();
        storage.enqueue(deliveries, entries).await.unwrap();
    }
}

/// `calls` enqueues shared out among [`CALLERS`] concurrent tasks.
async fn enqueue_many(storage: &Arc<SqliteStorage>, calls: u64) {
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let storage = Arc::clone(storage);
            let calls = calls / CALLERS + u64::from(caller < calls % CALLERS);
            tokio::spawn(async move { enqueue_one(&storage, calls).await })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
}

/// `calls` claims on an empty queue.
async fn idle_claims(storage: &SqliteStorage, calls: u64) {
    for _ in 0..calls {
        let lease_until = t0() + chrono::Duration::minutes(5);
        let claim = Claim { now: t0(), limit: 100, lease_until, token: ClaimToken::new() };
        assert!(storage.claim_due(&claim).await.unwrap().is_empty());
    }
}

/// How long `runtime` takes to run `future`.
fn timed(runtime: &tokio::runtime::Runtime, future: impl std::future::Future<Output = ()>) -> Duration {
    let start = Instant::now();
    runtime.block_on(future);
    start.elapsed()
}

/// Calls a second of `run(calls)`, run for about [`ROUND`].
fn rate(mut run: impl FnMut(u64)) -> (u64, Duration) {
    let start = Instant::now();
    let mut calls = 0;
    let mut step = 16;
    while start.elapsed() < ROUND {
        run(step);
        calls += step;
        step = (step * 2).min(1024);
    }
    (calls, start.elapsed())
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut bare_connection = bare(&dir.path().join("bare.db"));
    let mut schema_connection = bare_schema(&dir.path().join("bare-schema.db"));
    let one = SqliteStorage::open(dir.path().join("one.db")).unwrap();
    let many = Arc::new(SqliteStorage::open(dir.path().join("many.db")).unwrap());
    let idle = SqliteStorage::open(dir.path().join("idle.db")).unwrap();
    let body = vec![b'x'; 400];

    let mut group = c.benchmark_group("sqlite");
    group.throughput(Throughput::Elements(1)).measurement_time(Duration::from_secs(5)).sample_size(20);
    group.bench_function("bare_loop_row_per_transaction", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            (0..iters).for_each(|_| bare_row(&mut bare_connection, &body));
            start.elapsed()
        })
    });
    group.bench_function("bare_loop_storage_schema", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            (0..iters).for_each(|_| bare_schema_row(&mut schema_connection));
            start.elapsed()
        })
    });
    group.bench_function("enqueue_one_caller", |b| b.iter_custom(|iters| timed(&runtime, enqueue_one(&one, iters))));
    group.bench_function("enqueue_16_callers", |b| b.iter_custom(|iters| timed(&runtime, enqueue_many(&many, iters))));
    group.bench_function("idle_claim_due", |b| b.iter_custom(|iters| timed(&runtime, idle_claims(&idle, iters))));
    group.finish();

    // The ratios: every case in each round, one after the other.
    let mut totals = [(0, Duration::ZERO); 5];
    for _ in 0..ROUNDS {
        let rounds = [
            rate(|n| (0..n).for_each(|_| bare_row(&mut bare_connection, &body))),
            rate(|n| (0..n).for_each(|_| bare_schema_row(&mut schema_connection))),
            rate(|n| runtime.block_on(enqueue_one(&one, n))),
            rate(|n| runtime.block_on(enqueue_many(&many, n))),
            rate(|n| runtime.block_on(idle_claims(&idle, n))),
        ];
        for (total, (calls, took)) in totals.iter_mut().zip(rounds) {
            total.0 += calls;
            total.1 += took;
        }
    }
    let rates = totals.map(|(calls, took)| calls as f64 / took.as_secs_f64());
    let bare = rates[0];
    println!("\nInterleaved, {ROUNDS} rounds of {ROUND:?} a case: calls a second, and as a ratio to the bare loop");
    for (name, rate) in [
        "bare loop, a ~400-byte and a ~40-byte row a transaction",
        "bare loop, the storage's rows (its schema) a transaction",
        "enqueue, one caller",
        "enqueue, 16 concurrent callers",
        "claim_due on an empty queue",
    ]
    .iter()
    .zip(rates)
    {
        println!("  {name:<58} {rate:>9.0}  {:>5.2}", rate / bare);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
