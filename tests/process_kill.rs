//! A child process queues events and delivers them on a SQLite file; the test kills it with SIGKILL at random
//! moments, several times over the same file. Every `on_events` the child saw return `Ok` is there after a
//! restart, each batch is all or nothing, `PRAGMA integrity_check` is ok, and a final worker delivers it all.
#![cfg(all(unix, feature = "sqlite", feature = "tokio"))]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_webhooks::testing::{MockHttp, RecordingMailer, SeededRng, StaticDirectory};
use crm_webhooks::{Change, DeliveryStatus, Engine, LogQuery, RecordEvent, SqliteStorage, Storage, WorkflowSet};

const CHILD_DB: &str = "CRM_WEBHOOKS_KILL_CHILD_DB";
const CHILD_FIRST_BATCH: &str = "CRM_WEBHOOKS_KILL_CHILD_FIRST_BATCH";
const BATCH: usize = 10;

const WORKFLOWS: &str = r#"{"workflows": [{"id": "w", "module": "Leads", "trigger": "every_save",
  "actions": [{"title": "Notify", "url": "https://receiver.example/hook", "content_type": "JSON",
    "parameters": [{"name": "public_id", "field": "id"}]}]}]}"#;

fn engine(storage: Arc<SqliteStorage>) -> Engine {
    engine_with(storage, Engine::builder())
}

fn engine_at(storage: Arc<SqliteStorage>, now: chrono::DateTime<chrono::Utc>) -> Engine {
    engine_with(storage, Engine::builder().clock(Arc::new(crm_webhooks::testing::ManualClock::new(now))))
}

fn engine_with(storage: Arc<SqliteStorage>, builder: crm_webhooks::EngineBuilder) -> Engine {
    let engine = builder
        .storage(storage)
        .http(Arc::new(MockHttp::new_ok()))
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(StaticDirectory::new()))
        .build()
        .unwrap();
    engine.set_workflows("acme", WorkflowSet::from_json(WORKFLOWS).unwrap()).unwrap();
    engine
}

fn record(batch: usize, i: usize) -> String {
    format!("b{batch}-{i}")
}

/// The child: queues batches of events forever (printing `ACK n` after each one that returned Ok) with a worker
/// pass between them. Runs only when the parent starts it.
#[test]
#[ignore = "the child half of killed_children_lose_nothing_they_acknowledged"]
fn child() {
    let Ok(path) = std::env::var(CHILD_DB) else { return };
    let first: usize = std::env::var(CHILD_FIRST_BATCH).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let engine = engine(Arc::new(SqliteStorage::open(&path).unwrap()));
        for batch in first.. {
            let events: Vec<RecordEvent> = (0..BATCH)
                .map(|i| {
                    RecordEvent::new("acme", "Leads", record(batch, i), Change::Created, "19x1")
                        .field("id", i as i64)
                        .event_id(record(batch, i))
                })
                .collect();
            engine.on_events(&events).await.unwrap();
            println!("ACK {batch}");
            engine.run_due().await.unwrap();
        }
    });
}

#[test]
fn killed_children_lose_nothing_they_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.db");
    let seed = std::env::var("KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut rng = SeededRng::new(seed);
    let mut acknowledged = Vec::new();
    let mut next_batch = 0;
    for round in 0..6 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads", "1"])
            .env(CHILD_DB, &path)
            .env(CHILD_FIRST_BATCH, next_batch.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines, seen) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ACK ") {
                    let _ = lines.send(n.trim().parse::<usize>().unwrap());
                }
            }
        });
        // Let it get going (at least one batch), then kill it at a random moment.
        let first = seen.recv_timeout(Duration::from_secs(60)).expect("the child queues a batch");
        acknowledged.push(first);
        let until = Instant::now() + Duration::from_millis(50 + rng.below(400));
        while Instant::now() < until {
            if let Ok(n) = seen.recv_timeout(Duration::from_millis(5)) {
                acknowledged.push(n);
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        acknowledged.extend(seen.try_iter());
        next_batch = acknowledged.iter().max().map_or(0, |n| n + 1) + 1000 * (round + 1);
    }
    assert!(acknowledged.len() >= 6, "each child acknowledged batches: {acknowledged:?}");

    let connection = rusqlite::Connection::open(&path).unwrap();
    let check: String = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(check, "ok");
    drop(connection);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let storage = Arc::new(SqliteStorage::open(&path).unwrap());
        // Every acknowledged batch is whole; any other batch is whole or absent.
        let queued = |batch: usize, i: usize| {
            let storage = storage.clone();
            async move {
                let query = LogQuery::tenant("acme").record(record(batch, i)).status(DeliveryStatus::Queued);
                storage.log(&query).await.unwrap().len()
            }
        };
        for &batch in &acknowledged {
            for i in 0..BATCH {
                assert_eq!(queued(batch, i).await, 1, "acknowledged batch {batch} lost record {i}");
            }
        }
        let mut partial = Vec::new();
        for batch in acknowledged.iter().map(|b| b + 1) {
            let present = {
                let mut n = 0;
                for i in 0..BATCH {
                    n += queued(batch, i).await;
                }
                n
            };
            if present != 0 && present != BATCH {
                partial.push((batch, present));
            }
        }
        assert!(partial.is_empty(), "batches stored in part: {partial:?}");
        // A new worker an hour later (every lease of the killed children has run out) delivers everything,
        // including what was in flight at each kill.
        let later = crm_webhooks::Clock::now(&crm_webhooks::ports::SystemClock) + chrono::Duration::hours(1);
        let engine = engine_at(storage.clone(), later);
        engine.run_until_idle(10_000).await.unwrap();
        assert_eq!(engine.next_due_at().await.unwrap(), None, "nothing is left queued or leased");
        let failed = storage.log(&LogQuery::tenant("acme").status(DeliveryStatus::Failed)).await.unwrap();
        assert!(failed.is_empty(), "{failed:?}");
    });
    println!("process kill: 6 kills, {} batches acknowledged", acknowledged.len());
}
