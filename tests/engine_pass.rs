//! The worker pass under slow receivers, short leases and cancellation: a lease covers each delivery from its
//! claim to its result, results are written as they come, and a dropped pass re-sends only what was in flight.
//! Time is tokio's paused clock, so seconds of requests take no real time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use crm_webhooks::testing::{poll_at_most, MockHttp, MockReply, RecordingMailer, StaticDirectory};
use crm_webhooks::MemoryStorage;
use crm_webhooks::{Change, Clock, DeliveryStatus, Engine, EngineBuilder, LogQuery, RecordEvent, Storage, WorkflowSet};

const WORKFLOWS: &str = r#"{"workflows": [{"id": "w", "module": "Leads", "trigger": "every_save",
  "actions": [{"title": "Notify", "url": "https://receiver.example/hook", "content_type": "JSON",
    "parameters": [{"name": "public_id", "field": "id"}]}]}]}"#;

/// The wall clock of tokio's (paused) timer, starting at a fixed instant.
#[derive(Debug)]
struct TokioClock {
    origin: tokio::time::Instant,
    start: DateTime<Utc>,
}

impl TokioClock {
    fn new() -> Self {
        TokioClock { origin: tokio::time::Instant::now(), start: Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.origin.elapsed()).unwrap();
        self.start + elapsed
    }
}

struct Parts {
    storage: Arc<MemoryStorage>,
    http: Arc<MockHttp>,
    clock: Arc<TokioClock>,
}

impl Parts {
    fn new(http: MockHttp) -> Self {
        Parts { storage: Arc::new(MemoryStorage::new()), http: Arc::new(http), clock: Arc::new(TokioClock::new()) }
    }

    fn engine(&self, configure: impl FnOnce(EngineBuilder) -> EngineBuilder) -> Engine {
        let builder = Engine::builder()
            .storage(self.storage.clone())
            .http(self.http.clone())
            .mailer(Arc::new(RecordingMailer::new()))
            .directory(Arc::new(StaticDirectory::new()))
            .clock(self.clock.clone());
        let engine = configure(builder).build().unwrap();
        engine.set_workflows("acme", WorkflowSet::from_json(WORKFLOWS).unwrap()).unwrap();
        engine
    }

    /// How many times each delivery reached the receiver.
    fn sends(&self) -> HashMap<String, usize> {
        let mut sends = HashMap::new();
        for request in self.http.requests() {
            let id = request.headers["webhook-id"].to_str().unwrap().to_owned();
            *sends.entry(id).or_insert(0) += 1;
        }
        sends
    }
}

async fn queue(engine: &Engine, n: usize) {
    let events: Vec<RecordEvent> = (0..n)
        .map(|i| RecordEvent::new("acme", "Leads", format!("10x{i}"), Change::Created, "19x1").field("id", i as i64))
        .collect();
    assert_eq!(engine.on_events(&events).await.unwrap().len(), n);
}

async fn count(storage: &MemoryStorage, status: DeliveryStatus) -> usize {
    let log = storage.log(&LogQuery::tenant("acme").status(status).limit(LogQuery::MAX_LIMIT)).await.unwrap();
    log.iter().filter(|e| e.message.contains("delivered") || status != DeliveryStatus::Success).count()
}

/// The defect: one lease for a whole batch sent one at a time ran out mid-pass, and a second engine sent the
/// rest again. Now each delivery is claimed when it can be sent.
#[tokio::test(start_paused = true)]
async fn a_short_lease_holds_for_a_batch_sent_one_at_a_time() {
    let parts = Parts::new(MockHttp::with_fallback(MockReply::status(200).delay(Duration::from_secs(1))));
    let slow = parts.engine(|b| b.batch_size(8).concurrency(1).lease(Duration::from_secs(3)));
    let other = parts.engine(|b| b.batch_size(8).concurrency(1).lease(Duration::from_secs(3)));
    queue(&slow, 8).await;

    let first = tokio::spawn({
        let slow = slow.clone();
        async move { slow.run_due().await.unwrap() }
    });
    // The other server polls every half second while the first pass runs.
    let second = tokio::spawn(async move {
        let mut total = 0;
        for _ in 0..40 {
            total += other.run_due().await.unwrap().sent;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        total
    });
    let first = first.await.unwrap();
    let second_sent = second.await.unwrap();
    let sends = parts.sends();
    assert_eq!(sends.len(), 8, "every delivery is sent");
    assert!(sends.values().all(|n| *n == 1), "no delivery is sent twice within its lease: {sends:?}");
    assert_eq!(first.sent + second_sent, 8, "the two servers shared the work without overlap");
    assert_eq!(count(&parts.storage, DeliveryStatus::Success).await, 8);
}

/// A client that states its timeout: the pass holds as many claimed deliveries as fit in the lease at that
/// timeout (here 3 rounds of one), and a second engine still never sends one twice.
#[tokio::test(start_paused = true)]
async fn with_a_stated_timeout_claims_fill_the_lease_and_still_never_overlap() {
    #[derive(Debug)]
    struct Timed(Arc<MockHttp>);
    #[crm_webhooks::async_trait]
    impl crm_webhooks::HttpClient for Timed {
        async fn send(
            &self,
            request: http::Request<bytes::Bytes>,
        ) -> Result<http::Response<bytes::Bytes>, crm_webhooks::ports::HttpError> {
            self.0.send(request).await
        }
        fn request_timeout(&self) -> Option<Duration> {
            Some(Duration::from_secs(1))
        }
    }
    let parts = Parts::new(MockHttp::with_fallback(MockReply::status(200).delay(Duration::from_secs(1))));
    let timed = Arc::new(Timed(parts.http.clone()));
    let lease = Duration::from_secs(33);
    let first = parts.engine(|b| b.http(timed.clone()).batch_size(8).concurrency(1).lease(lease));
    let other = parts.engine(|b| b.http(timed.clone()).batch_size(8).concurrency(1).lease(lease));
    queue(&first, 8).await;
    let pass = tokio::spawn(async move { first.run_due().await.unwrap() });
    let second = tokio::spawn(async move {
        let mut sent = 0;
        for _ in 0..40 {
            sent += other.run_due().await.unwrap().sent;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        sent
    });
    let report = pass.await.unwrap();
    let second_sent = second.await.unwrap();
    assert!(parts.sends().values().all(|n| *n == 1), "{:?}", parts.sends());
    assert_eq!(report.sent + second_sent, 8);
    assert_eq!(count(&parts.storage, DeliveryStatus::Success).await, 8);
}

/// A slow request holds only its own slot, and every other result is written while it is still in flight.
#[tokio::test(start_paused = true)]
async fn results_are_written_while_a_slow_request_is_in_flight() {
    let http =
        MockHttp::with_fallback(MockReply::status(200)).then(MockReply::status(200).delay(Duration::from_secs(60)));
    let parts = Parts::new(http);
    let engine = parts.engine(|b| b.batch_size(50).concurrency(4));
    queue(&engine, 50).await;
    let pass = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run_due().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        count(&parts.storage, DeliveryStatus::Success).await,
        49,
        "49 healthy deliveries are written while the 60 s request is in flight"
    );
    let report = pass.await.unwrap();
    assert_eq!((report.claimed, report.sent, report.succeeded), (50, 50, 50));
    assert_eq!(count(&parts.storage, DeliveryStatus::Success).await, 50);
}

/// A pass that has taken everything due and waits for one slow request still takes work queued meanwhile: a save
/// (or a redelivery) is not held up by another receiver's slow answer.
#[tokio::test(start_paused = true)]
async fn work_queued_during_a_slow_request_is_sent_in_the_same_pass() {
    let http =
        MockHttp::with_fallback(MockReply::status(200)).then(MockReply::status(200).delay(Duration::from_secs(300)));
    let parts = Parts::new(http);
    let engine = parts.engine(|b| b.batch_size(50).concurrency(4));
    queue(&engine, 1).await;
    let pass = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run_due().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(parts.http.requests().len(), 1, "the slow request is in flight");
    let late = RecordEvent::new("acme", "Leads", "10x99", Change::Created, "19x1").field("id", 99);
    engine.on_event(&late).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(parts.http.requests().len(), 2, "the new save went out while the slow request was still in flight");
    assert_eq!(count(&parts.storage, DeliveryStatus::Success).await, 1);
    let report = pass.await.unwrap();
    assert_eq!((report.claimed, report.succeeded), (2, 2));
}

/// A pass dropped after most of its requests ended re-sends only what was in flight when it was dropped, once
/// their leases run out.
#[tokio::test(start_paused = true)]
async fn a_dropped_pass_resends_only_what_was_in_flight() {
    let parts = Parts::new(MockHttp::with_fallback(MockReply::status(200).delay(Duration::from_millis(100))));
    let engine = parts.engine(|b| b.batch_size(40).concurrency(4).lease(Duration::from_secs(60)));
    queue(&engine, 40).await;
    // Run the pass for about half its requests, then drop it (as a host's timeout would).
    assert!(tokio::time::timeout(Duration::from_millis(550), engine.run_due()).await.is_err());
    let sent_before = parts.http.requests().len();
    assert!(sent_before < 40, "the pass was dropped mid-way ({sent_before} sent)");
    tokio::time::sleep(Duration::from_secs(61)).await;
    let report = engine.run_until_idle(20).await.unwrap();
    let sends = parts.sends();
    assert_eq!(sends.len(), 40, "every delivery is sent");
    let twice = sends.values().filter(|n| **n > 1).count();
    assert!(twice <= 4, "only the requests in flight when the pass was dropped are sent again: {twice}");
    assert_eq!(count(&parts.storage, DeliveryStatus::Success).await, 40);
    assert!(report.claimed <= 40 - (sent_before - 4), "the written results were not claimed again: {report:?}");
}

/// A dropped pass at any poll point leaves every delivery to be sent in the end, each result written once.
#[tokio::test(start_paused = true)]
async fn passes_dropped_at_any_poll_lose_nothing() {
    let parts = Parts::new(MockHttp::with_fallback(MockReply::status(200).delay(Duration::from_millis(10))));
    let engine = parts.engine(|b| b.batch_size(16).concurrency(4).lease(Duration::from_secs(5)));
    queue(&engine, 60).await;
    for polls in 1..40 {
        let _ = poll_at_most(engine.run_due(), polls).await;
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    engine.run_until_idle(50).await.unwrap();
    assert_eq!(parts.sends().len(), 60);
    assert_eq!(count(&parts.storage, DeliveryStatus::Success).await, 60, "one Success entry per delivery");
}

#[test]
fn a_lease_shorter_than_the_request_timeout_is_refused() {
    #[derive(Debug)]
    struct SlowClient;
    #[crm_webhooks::async_trait]
    impl crm_webhooks::HttpClient for SlowClient {
        async fn send(
            &self,
            _: http::Request<bytes::Bytes>,
        ) -> Result<http::Response<bytes::Bytes>, crm_webhooks::ports::HttpError> {
            Ok(http::Response::new(bytes::Bytes::new()))
        }
        fn request_timeout(&self) -> Option<Duration> {
            Some(Duration::from_secs(30))
        }
    }
    let build = |lease: u64| {
        Engine::builder()
            .storage(Arc::new(MemoryStorage::new()))
            .http(Arc::new(SlowClient))
            .mailer(Arc::new(RecordingMailer::new()))
            .directory(Arc::new(StaticDirectory::new()))
            .lease(Duration::from_secs(lease))
            .build()
    };
    let refused = build(45).unwrap_err().to_string();
    assert!(refused.contains("request timeout of 30 s") && refused.contains("EngineBuilder::lease"), "{refused}");
    assert!(build(60).is_ok());
    assert!(build(300).is_ok(), "the default lease covers the default reqwest timeout");
}
