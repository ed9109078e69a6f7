//! Per-record order under concurrency: 200 records × 5 events, an ordered and an unordered action on the same
//! records, 2 engines × 4 concurrent passes, a receiver failing one request in five, retries on a manual clock.
//! For every record the receiver sees the ordered action's events in queue order, one at a time; the unordered
//! action's are sent side by side. On memory, a SQLite file opened twice, and PostgreSQL with two pools.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{Duration, TimeZone, Utc};
use crm_webhooks::ports::{HttpClient, HttpError};
use crm_webhooks::testing::{ManualClock, RecordingMailer, SeededRng, StaticDirectory};
use crm_webhooks::{Change, DeliveryStatus, Engine, LogQuery, RecordEvent, Storage, WorkflowSet};

const RECORDS: usize = 200;
const EVENTS: usize = 5;

/// What the receiver saw, per action and record.
#[derive(Default)]
struct Seen {
    in_flight: HashMap<(String, String), usize>,
    most_in_flight: HashMap<String, usize>,
    attempts: HashMap<(String, String), Vec<u64>>,
    delivered: HashMap<(String, String), Vec<u64>>,
}

struct Receiver {
    rng: Mutex<SeededRng>,
    seen: Mutex<Seen>,
}

#[crm_webhooks::async_trait]
impl HttpClient for Receiver {
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let action = request.uri().path().trim_start_matches('/').to_owned();
        let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
        let record = body["record"].as_str().unwrap().to_owned();
        let n = body["n"].as_u64().unwrap();
        let key = (action.clone(), record);
        {
            let mut seen = self.seen.lock().unwrap();
            let flying = seen.in_flight.entry(key.clone()).or_default();
            *flying += 1;
            let now = *flying;
            let most = seen.most_in_flight.entry(action.clone()).or_default();
            *most = (*most).max(now);
            seen.attempts.entry(key.clone()).or_default().push(n);
        }
        // Long enough for the other sends of the pass to start.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let fail = self.rng.lock().unwrap().below(5) == 0;
        let mut seen = self.seen.lock().unwrap();
        *seen.in_flight.get_mut(&key).unwrap() -= 1;
        if !fail {
            seen.delivered.entry(key).or_default().push(n);
        }
        Ok(http::Response::builder().status(if fail { 500 } else { 200 }).body(Bytes::new()).unwrap())
    }
}

fn workflows() -> WorkflowSet {
    let action = |title: &str, ordered: bool| {
        format!(
            r#"{{"title": "{title}", "url": "https://receiver.example/{title}", "content_type": "JSON", "ordered": {ordered},
            "parameters": [{{"name": "record", "field": "record"}}, {{"name": "n", "field": "n"}}]}}"#
        )
    };
    WorkflowSet::from_json(&format!(
        r#"[{{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [{}, {}]}}]"#,
        action("ordered", true),
        action("unordered", false)
    ))
    .unwrap()
}

async fn run(storages: [Arc<dyn Storage>; 2]) {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap());
    let receiver = Arc::new(Receiver { rng: Mutex::new(SeededRng::new(7)), seen: Mutex::default() });
    let directory = Arc::new(StaticDirectory::new().tenant("acme", 1, chrono_tz::UTC, None));
    let engines: Vec<Engine> = storages
        .into_iter()
        .map(|storage| {
            let engine = Engine::builder()
                .storage(storage)
                .http(receiver.clone())
                .mailer(Arc::new(RecordingMailer::new()))
                .directory(directory.clone())
                .clock(Arc::new(clock.clone()))
                .batch_size(40)
                .concurrency(16)
                .build()
                .unwrap();
            engine.set_workflows("acme", workflows()).unwrap();
            engine
        })
        .collect();
    for n in 0..EVENTS {
        for r in 0..RECORDS {
            let change = if n == 0 { Change::Created } else { Change::Updated };
            let record = format!("10x{r}");
            let event = RecordEvent::new("acme", "Leads", &record, change, "19x1")
                .field("record", record.clone())
                .field("n", n);
            assert_eq!(engines[(n + r) % 2].on_event(&event).await.unwrap().len(), 2);
        }
    }
    let mut idle_rounds = 0;
    for _ in 0..10_000 {
        let passes = engines.iter().flat_map(|engine| (0..4).map(move |_| engine.run_due()));
        let claimed: usize = futures_util::future::join_all(passes).await.into_iter().map(|r| r.unwrap().claimed).sum();
        if claimed > 0 {
            idle_rounds = 0;
            continue;
        }
        if engines[0].next_due_at().await.unwrap().is_none() {
            break;
        }
        idle_rounds += 1;
        assert!(idle_rounds < 100, "nothing claimable for 50 hours while deliveries wait");
        clock.advance(Duration::minutes(30));
    }
    assert_eq!(engines[0].next_due_at().await.unwrap(), None, "everything settled");

    {
        let seen = receiver.seen.lock().unwrap();
        let failed_for_good = |action: &str, record: &str| {
            (0..EVENTS as u64)
                .filter(|n| {
                    let attempts = seen.attempts.get(&(action.to_owned(), record.to_owned()));
                    attempts.is_some_and(|a| a.iter().filter(|x| *x == n).count() == 4)
                        && !seen.delivered[&(action.to_owned(), record.to_owned())].contains(n)
                })
                .count()
        };
        for r in 0..RECORDS {
            let record = format!("10x{r}");
            let key = ("ordered".to_owned(), record.clone());
            let attempts = &seen.attempts[&key];
            assert!(
                attempts.windows(2).all(|w| w[0] <= w[1]),
                "record {record}: an event was tried before an earlier one settled: {attempts:?}"
            );
            let delivered = &seen.delivered[&key];
            assert!(delivered.windows(2).all(|w| w[0] < w[1]), "record {record}: out of order: {delivered:?}");
            assert_eq!(delivered.len() + failed_for_good("ordered", &record), EVENTS, "record {record}: {attempts:?}");
        }
        assert_eq!(seen.most_in_flight["ordered"], 1, "an ordered record's deliveries go one at a time");
        assert!(seen.most_in_flight["unordered"] > 1, "the unordered action is not held up: {:?}", seen.most_in_flight);
        let unordered_out_of_order = (0..RECORDS)
            .filter(|r| {
                let attempts = &seen.attempts[&("unordered".to_owned(), format!("10x{r}"))];
                attempts.windows(2).any(|w| w[0] > w[1])
            })
            .count();
        assert!(unordered_out_of_order > 0, "the unordered action's sends are not serialised per record");
    }

    // The log says why the later ones waited.
    let waits = engines[1]
        .log(&LogQuery::tenant("acme").action("ordered").record("10x0").status(DeliveryStatus::Queued).limit(100))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.message.starts_with("waits for "))
        .count();
    assert_eq!(waits, EVENTS - 1, "each later event of the record says what it waits for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_deliveries_keep_queue_order_per_record_on_memory() {
    let storage: Arc<dyn Storage> = Arc::new(crm_webhooks::MemoryStorage::new());
    run([storage.clone(), storage]).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_deliveries_keep_queue_order_per_record_on_a_sqlite_file_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let first = crm_webhooks::SqliteStorage::open(&path).unwrap();
    let second = crm_webhooks::SqliteStorage::open(&path).unwrap();
    run([Arc::new(first), Arc::new(second)]).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_deliveries_keep_queue_order_per_record_on_postgres_with_two_pools() {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true but DATABASE_URL is not set"),
        _ => {
            eprintln!("ordering: skipping PostgreSQL: DATABASE_URL is not set");
            return;
        }
    };
    let schema = format!("crm_webhooks_order_{}", uuid::Uuid::new_v4().simple());
    let open = || async { crm_webhooks::PostgresStorage::connect(&url).await.unwrap().schema(&schema).unwrap() };
    let (first, second) = (open().await, open().await);
    first.setup().await.unwrap();
    run([Arc::new(first.clone()), Arc::new(second)]).await;
    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(first.pool()).await.unwrap();
}
