//! Delivery policy through the engine, on every storage that holds state (memory, a SQLite file opened twice,
//! PostgreSQL with two pools), with a `ManualClock` and `MockHttp`: a failing receiver walks warning → pause →
//! resume → replay with the emails counted exactly; `410 Gone` pauses at once; a person pauses and resumes; the
//! rate limit holds across two engines and counts each call once against the quota; jitter stays within its bound
//! and after `Retry-After`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use crm_webhooks::ports::{Clock, EndpointState, HttpClient, HttpError, User};
use crm_webhooks::testing::{ManualClock, MockHttp, MockReply, RecordingMailer, StaticDirectory};
use crm_webhooks::{Change, DeliveryStatus, Engine, LogQuery, RecordEvent, Storage, WorkflowSet};

type Storages = [Arc<dyn Storage>; 2];

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap()
}

fn user(id: &str, active: bool, admin: bool) -> User {
    User { id: id.into(), name: format!("User {id}"), email: format!("{id}@crm.example"), active, admin }
}

/// The owner, two active admins and one inactive: each change emails three people.
fn directory() -> Arc<StaticDirectory> {
    Arc::new(
        StaticDirectory::new()
            .tenant("acme", 5, chrono_tz::UTC, None)
            .user("acme", user("19x1", true, false))
            .user("acme", user("19x2", true, true))
            .user("acme", user("19x3", true, true))
            .user("acme", user("19x4", false, true)),
    )
}

fn workflows(extra: &str) -> WorkflowSet {
    WorkflowSet::from_json(&format!(
        r#"[{{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [{{
            "title": "a", "url": "https://receiver.example/in", "content_type": "JSON",
            "parameters": [{{"name": "record", "field": "record"}}] {extra} }}]}}]"#
    ))
    .unwrap()
}

fn engine(
    storage: Arc<dyn Storage>,
    http: Arc<dyn HttpClient>,
    clock: &ManualClock,
    mailer: &Arc<RecordingMailer>,
    set: &WorkflowSet,
) -> Engine {
    let engine = Engine::builder()
        .storage(storage)
        .http(http)
        .mailer(mailer.clone())
        .directory(directory())
        .clock(Arc::new(clock.clone()))
        .concurrency(1)
        .build()
        .unwrap();
    engine.set_workflows("acme", set.clone()).unwrap();
    engine
}

/// Saves a record a millisecond after the last save (deliveries queued in the same microsecond have no order
/// between them, as in the queue).
async fn save(engine: &Engine, clock: &ManualClock, record: &str) {
    clock.advance(Duration::milliseconds(1));
    let event = RecordEvent::new("acme", "Leads", record, Change::Updated, "19x1").field("record", record);
    assert_eq!(engine.on_event(&event).await.unwrap().len(), 1);
}

fn records_sent(http: &MockHttp) -> Vec<String> {
    http.requests()
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["record"].as_str().unwrap().to_owned())
        .collect()
}

fn subjects(mailer: &RecordingMailer) -> Vec<String> {
    mailer.sent().iter().map(|e| e.subject.clone()).collect()
}

async fn messages(engine: &Engine) -> Vec<String> {
    let log = engine.log(&LogQuery::tenant("acme").limit(1000)).await.unwrap();
    log.into_iter().rev().map(|e| e.message).collect()
}

/// Warning after 3 failures over at least 30 minutes; pause after 6 over at least 2 hours.
async fn warning_pause_resume_replay(storages: Storages) {
    let clock = ManualClock::new(start());
    let http = Arc::new(MockHttp::new_status(503));
    let mailer = Arc::new(RecordingMailer::new());
    let set = workflows(
        r#", "endpoint_health": {"warn_after_failures": 3, "warn_after_minutes": 30, "pause_after_failures": 6,
             "pause_after_hours": 2}"#,
    );
    let [a, b] = storages;
    let (one, two) = (engine(a, http.clone(), &clock, &mailer, &set), engine(b, http.clone(), &clock, &mailer, &set));
    for record in ["r1", "r2", "r3"] {
        save(&one, &clock, record).await;
    }
    // t = 0: three failures within a minute: past the count, not the half hour.
    one.run_until_idle(5).await.unwrap();
    assert_eq!((http.requests().len(), mailer.sent().len()), (3, 0));
    assert_eq!(one.endpoint_health("acme").await.unwrap()[0].failures, 3);
    // t = 1 h: the retries fail on the other engine; the first of them warns: one email to each of three people.
    clock.advance(Duration::hours(1));
    two.run_until_idle(5).await.unwrap();
    let health = one.endpoint_health("acme").await.unwrap();
    assert_eq!((health[0].state, health[0].failures), (EndpointState::Warning, 6), "{health:?}");
    assert_eq!(subjects(&mailer).len(), 3, "{:?}", subjects(&mailer));
    assert!(subjects(&mailer).iter().all(|s| s.starts_with("Webhook \"a\" keeps failing")), "{:?}", subjects(&mailer));
    assert!(mailer.sent()[0].body.contains("Deliveries waiting: 3"), "{}", mailer.sent()[0].body);
    // t = 3 h: the second retries; the first of them pauses. The engine claims one at a time (concurrency 1), so
    // the others are sent only when claimed before the pause was written, and change nothing then.
    clock.advance(Duration::hours(2));
    one.run_until_idle(5).await.unwrap();
    let health = two.endpoint_health("acme").await.unwrap();
    assert_eq!(health[0].state, EndpointState::Paused, "{health:?}");
    assert_eq!(subjects(&mailer).len(), 6);
    assert!(
        subjects(&mailer)[3..].iter().all(|s| s == "Webhook \"a\" is paused: 3 deliveries wait"),
        "{:?}",
        subjects(&mailer)
    );
    assert!(mailer.sent()[5].body.contains("resume the action"), "{}", mailer.sent()[5].body);
    let sent_before = http.requests().len();
    assert!((7..=9).contains(&sent_before), "{sent_before}");
    // Paused: a new save is queued and logged but not sent, and the retries due at 7 h are held, not failed.
    save(&two, &clock, "r4").await;
    two.run_until_idle(5).await.unwrap();
    clock.advance(Duration::hours(4));
    one.run_until_idle(5).await.unwrap();
    two.run_until_idle(5).await.unwrap();
    assert_eq!(http.requests().len(), sent_before, "nothing is sent while paused");
    assert_eq!(one.next_due_at().await.unwrap(), None, "held deliveries wake nobody");
    assert_eq!(subjects(&mailer).len(), 6, "no failure emails: nothing failed for good");
    let held = one.log(&LogQuery::tenant("acme").status(DeliveryStatus::Failed)).await.unwrap();
    assert!(held.is_empty(), "{held:?}");
    // The receiver is fixed; a person resumes: everything that waited goes, oldest first, once.
    http.set_fallback(MockReply::status(200));
    assert_eq!(two.resume_action("acme", "w", "a", "alice").await.unwrap(), 4);
    assert_eq!(one.resume_action("acme", "w", "a", "alice").await.unwrap(), 0, "resuming twice resumes nothing");
    one.run_until_idle(5).await.unwrap();
    two.run_until_idle(5).await.unwrap();
    assert_eq!(records_sent(&http)[sent_before..], ["r1", "r2", "r3", "r4"]);
    assert!(one.endpoint_health("acme").await.unwrap().is_empty(), "healthy again");
    let success = one.log(&LogQuery::tenant("acme").status(DeliveryStatus::Success)).await.unwrap();
    assert_eq!(success.len(), 4);
    assert_eq!(subjects(&mailer).len(), 6, "emails: exactly one warning and one pause, to three people each");
    let log = messages(&one).await;
    let count = |start: &str| log.iter().filter(|m| m.starts_with(start)).count();
    assert_eq!(count("warning: "), 1, "{log:#?}");
    assert_eq!(count("the action is paused: 7 attempts in a row failed"), 1, "{log:#?}");
    assert_eq!(count("held: the action is paused"), 4, "{log:#?}");
    assert_eq!(count("the action was resumed by alice"), 4, "{log:#?}");
    let entries = one.log(&LogQuery::tenant("acme").limit(LogQuery::MAX_LIMIT)).await.unwrap();
    let held = entries.iter().filter(|e| e.message.starts_with("held: ")).map(|e| e.reason).collect::<Vec<_>>();
    assert_eq!(held, [Some(crm_webhooks::failure::FailureReason::Paused); 4], "held entries carry `paused`");
}

/// `410 Gone` pauses at once and holds its own delivery; a person pauses and resumes by hand.
async fn gone_pauses_at_once(storages: Storages) {
    let clock = ManualClock::new(start());
    let http = Arc::new(MockHttp::new_ok().then(MockReply::status(410)));
    let mailer = Arc::new(RecordingMailer::new());
    let set = workflows("");
    let [a, b] = storages;
    let (one, two) = (engine(a, http.clone(), &clock, &mailer, &set), engine(b, http.clone(), &clock, &mailer, &set));
    save(&one, &clock, "r1").await;
    one.run_until_idle(5).await.unwrap();
    let health = two.endpoint_health("acme").await.unwrap();
    assert_eq!(health[0].state, EndpointState::Paused, "{health:?}");
    assert!(health[0].reason.as_deref().unwrap().contains("410 Gone"), "{health:?}");
    assert_eq!(subjects(&mailer), vec!["Webhook \"a\" is paused: 1 deliveries wait".to_owned(); 3]);
    let log = one.log(&LogQuery::tenant("acme").record("r1")).await.unwrap();
    let attempt = log.iter().find(|e| e.http_status == Some(410)).unwrap();
    assert!(attempt.message.contains("failed with 410 Gone: the action is paused"), "{log:?}");
    assert_eq!((attempt.status, attempt.next_attempt_at), (DeliveryStatus::Queued, None), "held, not retried");
    assert!(log.iter().any(|e| e.message.starts_with("the action is paused: the receiver answered 410 Gone")));
    save(&two, &clock, "r2").await;
    clock.advance(Duration::hours(5));
    two.run_until_idle(5).await.unwrap();
    assert_eq!(http.requests().len(), 1);
    assert_eq!(one.resume_action("acme", "w", "a", "bob").await.unwrap(), 2);
    two.run_until_idle(5).await.unwrap();
    assert_eq!(records_sent(&http), ["r1", "r1", "r2"]);

    // By hand: pause (no email), a save waits, resume sends it.
    assert!(one.pause_action("acme", "w", "a", "carol").await.unwrap());
    assert!(!two.pause_action("acme", "w", "a", "carol").await.unwrap(), "already paused");
    save(&one, &clock, "r3").await;
    one.run_until_idle(5).await.unwrap();
    assert_eq!(http.requests().len(), 3);
    let health = one.endpoint_health("acme").await.unwrap();
    assert_eq!(health[0].reason.as_deref(), Some("paused by carol"));
    assert_eq!(two.resume_action("acme", "w", "a", "carol").await.unwrap(), 1);
    one.run_until_idle(5).await.unwrap();
    assert_eq!(records_sent(&http), ["r1", "r1", "r2", "r3"]);
    assert_eq!(mailer.sent().len(), 3, "a person's pause emails nobody");
    let unknown = one.pause_action("acme", "w", "nope", "carol").await.unwrap_err();
    assert!(unknown.to_string().contains("has no webhook action \"nope\""), "{unknown}");
}

/// An `HttpClient` that records at which clock second each request left.
struct Stamped {
    clock: ManualClock,
    seconds: Mutex<BTreeMap<i64, usize>>,
}

#[crm_webhooks::async_trait]
impl HttpClient for Stamped {
    async fn send(&self, _request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        *self.seconds.lock().unwrap().entry(self.clock.now().timestamp()).or_default() += 1;
        Ok(http::Response::builder().status(200).body(Bytes::new()).unwrap())
    }
}

/// Five requests a second across two engines; every delivery goes, each counted once against the quota.
async fn rate_limit_holds_across_engines(storages: Storages) {
    let clock = ManualClock::new(start());
    let http = Arc::new(Stamped { clock: clock.clone(), seconds: Mutex::default() });
    let mailer = Arc::new(RecordingMailer::new());
    let set = workflows(r#", "rate_limit": {"per_second": 5}"#);
    let [a, b] = storages;
    let engines = [engine(a, http.clone(), &clock, &mailer, &set), engine(b, http.clone(), &clock, &mailer, &set)];
    for i in 0..32 {
        save(&engines[i % 2], &clock, &format!("r{i}")).await;
    }
    for _ in 0..40 {
        let passes = engines.iter().flat_map(|e| [e.run_due(), e.run_due()]);
        for result in futures_util::future::join_all(passes).await {
            result.unwrap();
        }
        clock.advance(Duration::milliseconds(500));
    }
    let seconds = http.seconds.lock().unwrap().clone();
    assert_eq!(seconds.values().sum::<usize>(), 32, "every delivery is sent once: {seconds:?}");
    assert!(seconds.values().all(|n| *n <= 5), "at most 5 in any second: {seconds:?}");
    assert!(seconds.len() >= 7, "32 at 5 a second take 7 seconds: {seconds:?}");
    assert_eq!(engines[0].usage("acme").await.unwrap().used, 32, "each call counted once against the quota");
    let log = messages(&engines[0]).await;
    assert!(log.iter().any(|m| m.starts_with("waits: the action sends at most 5 requests per second")), "{log:#?}");
    let success = engines[1].log(&LogQuery::tenant("acme").status(DeliveryStatus::Success)).await.unwrap();
    assert_eq!(success.len(), 32);
}

/// Jitter: every retry after `Retry-After` (2 h), by at most 20 % of the 1 h delay, and spread out.
async fn jitter_stays_within_bounds(storages: Storages) {
    let clock = ManualClock::new(start());
    let http = Arc::new(MockHttp::with_fallback(MockReply::status(503).header("retry-after", "7200")));
    let mailer = Arc::new(RecordingMailer::new());
    let set = workflows(r#", "retry_jitter_percent": 20, "endpoint_health": {"enabled": false}"#);
    let [a, _] = storages;
    let one = engine(a, http.clone(), &clock, &mailer, &set);
    let mut ids = Vec::new();
    for i in 0..20 {
        let event = RecordEvent::new("acme", "Leads", format!("r{i}"), Change::Updated, "19x1").field("record", i);
        ids.extend(one.on_event(&event).await.unwrap());
    }
    one.run_until_idle(5).await.unwrap();
    let mut due = std::collections::BTreeSet::new();
    for id in ids {
        let d = one.delivery("acme", id).await.unwrap().unwrap();
        let at = d.next_attempt_at.unwrap();
        assert!(
            at >= start() + Duration::hours(2) && at <= start() + Duration::hours(2) + Duration::minutes(12),
            "{at}"
        );
        due.insert(at);
    }
    assert!(due.len() > 10, "retries spread out: {due:?}");
    assert!(one.endpoint_health("acme").await.unwrap().is_empty(), "health off: nothing counted");
}

fn memory() -> Storages {
    let storage: Arc<dyn Storage> = Arc::new(crm_webhooks::MemoryStorage::new());
    [storage.clone(), storage]
}

#[cfg(feature = "sqlite")]
fn sqlite(dir: &tempfile::TempDir) -> Storages {
    let path = dir.path().join("webhooks.db");
    [
        Arc::new(crm_webhooks::SqliteStorage::open(&path).unwrap()),
        Arc::new(crm_webhooks::SqliteStorage::open(&path).unwrap()),
    ]
}

#[cfg(feature = "postgres")]
async fn postgres(test: &str) -> Option<(Storages, crm_webhooks::PostgresStorage)> {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true but DATABASE_URL is not set"),
        _ => {
            eprintln!("{test}: skipping PostgreSQL: DATABASE_URL is not set");
            return None;
        }
    };
    let schema = format!("crm_webhooks_health_{}", uuid::Uuid::new_v4().simple());
    let open = || async { crm_webhooks::PostgresStorage::connect(&url).await.unwrap().schema(&schema).unwrap() };
    let (first, second) = (open().await, open().await);
    first.setup().await.unwrap();
    Some(([Arc::new(first.clone()), Arc::new(second)], first))
}

#[cfg(feature = "postgres")]
async fn drop_schema(storage: crm_webhooks::PostgresStorage) {
    let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", storage.schema_name());
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(storage.pool()).await.unwrap();
}

macro_rules! on_every_backend {
    ($($scenario:ident),+) => {
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::memory()).await;
                }
            )+
        }
        #[cfg(feature = "sqlite")]
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$scenario(super::sqlite(&dir)).await;
                }
            )+
        }
        #[cfg(feature = "postgres")]
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some((storages, first)) = super::postgres(stringify!($scenario)).await else { return };
                    super::$scenario(storages).await;
                    super::drop_schema(first).await;
                }
            )+
        }
    };
}

on_every_backend!(
    warning_pause_resume_replay,
    gone_pauses_at_once,
    rate_limit_holds_across_engines,
    jitter_stays_within_bounds
);

/// A storage that cannot read an action's health or its rate window does not leave the claim dispatched until its
/// lease runs out: the deliveries are put back (for a minute, or for the next window), and nothing is sent blind.
#[tokio::test]
async fn a_failed_health_read_or_rate_window_puts_deliveries_back() {
    use crm_webhooks::testing::FaultyStorage;
    let clock = ManualClock::new(start());
    let http = Arc::new(MockHttp::new_ok());
    let mailer = Arc::new(RecordingMailer::new());
    let memory: Arc<dyn Storage> = Arc::new(crm_webhooks::MemoryStorage::new());
    let unreadable: Arc<dyn Storage> = Arc::new(FaultyStorage::new(memory.clone(), 1000, 3).only(&["endpoint_health"]));
    let one = engine(unreadable, http.clone(), &clock, &mailer, &workflows(""));
    save(&one, &clock, "r1").await;
    one.run_due().await.unwrap();
    assert!(http.requests().is_empty(), "not sent without knowing whether the action is paused");
    let log = one.log(&LogQuery::tenant("acme")).await.unwrap();
    assert_eq!(log[0].status, DeliveryStatus::Queued, "{log:?}");
    assert!(log[0].message.starts_with("deferred: ") && log[0].message.contains("endpoint_health"), "{log:?}");
    assert_eq!(log[0].next_attempt_at, Some(clock.now() + Duration::minutes(1)));
    // The storage answers again: sent at the next minute.
    let two = engine(memory.clone(), http.clone(), &clock, &mailer, &workflows(""));
    clock.advance(Duration::minutes(1));
    two.run_due().await.unwrap();
    assert_eq!(records_sent(&http), ["r1"]);

    let no_windows: Arc<dyn Storage> = Arc::new(FaultyStorage::new(memory, 1000, 3).only(&["take_rate"]));
    let limited = engine(no_windows, http.clone(), &clock, &mailer, &workflows(r#", "rate_limit": {"per_second": 5}"#));
    save(&limited, &clock, "r2").await;
    limited.run_due().await.unwrap();
    assert_eq!(records_sent(&http), ["r1"], "a window that cannot be read lets nothing through");
    let log = limited.log(&LogQuery::tenant("acme").record("r2")).await.unwrap();
    assert!(log[0].message.starts_with("waits: the action sends at most 5 requests per second"), "{log:?}");
    assert_eq!(log[0].status, DeliveryStatus::Queued);
}
