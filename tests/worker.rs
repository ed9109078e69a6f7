//! The tokio worker loop.
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::time::Duration;

use crm_webhooks::testing::{ManualClock, MockHttp, MockReply, RecordingMailer, StaticDirectory};
use crm_webhooks::MemoryStorage;
use crm_webhooks::{Change, DeliveryStatus, Engine, RecordEvent, Worker, WorkflowSet};

const WORKFLOW: &str = r#"[{"id": "w", "module": "Leads", "trigger": "every_save",
  "actions": [{"title": "Notify", "url": "https://example.com/hook", "content_type": "FORM",
               "parameters": [{"name": "id", "field": "id"}]}]}]"#;

fn engine(http: Arc<MockHttp>) -> Engine {
    let engine = Engine::builder()
        .storage(Arc::new(MemoryStorage::new()))
        .http(http)
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(StaticDirectory::new()))
        .clock(Arc::new(ManualClock::new(chrono::DateTime::UNIX_EPOCH)))
        .batch_size(5)
        .build()
        .unwrap();
    engine.set_workflows("acme", WorkflowSet::from_json(WORKFLOW).unwrap()).unwrap();
    engine
}

async fn fire(engine: &Engine, n: usize) -> Vec<crm_webhooks::DeliveryId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let event = RecordEvent::new("acme", "Leads", format!("10x{i}"), Change::Created, "19x1").field("id", i);
        ids.extend(engine.on_event(&event).await.unwrap());
    }
    ids
}

#[tokio::test]
async fn the_worker_drains_the_queue_in_batches_and_stops_on_request() {
    let http = Arc::new(MockHttp::new_ok());
    let engine = engine(http.clone());
    let ids = fire(&engine, 12).await;
    let handle = Worker::new(engine.clone()).poll_interval(Duration::from_millis(10)).spawn();
    for _ in 0..500 {
        if http.requests().len() == 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Work arriving while it runs is picked up within the poll interval.
    let late = fire(&engine, 1).await;
    for _ in 0..500 {
        if http.requests().len() == 13 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let totals = handle.shutdown().await;
    assert_eq!((totals.sent, totals.succeeded), (13, 13));
    for id in ids.into_iter().chain(late) {
        assert_eq!(engine.delivery("acme", id).await.unwrap().unwrap().status, DeliveryStatus::Success);
    }
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    let http = Arc::new(MockHttp::with_fallback(MockReply::status(200).delay(Duration::from_millis(300))));
    let engine = engine(http.clone());
    let ids = fire(&engine, 3).await;
    let handle = Worker::new(engine.clone()).spawn();
    for _ in 0..200 {
        if http.requests().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(http.requests().len(), 3, "the requests are in flight");
    let totals = handle.shutdown().await;
    assert_eq!(totals.succeeded, 3, "the pass in flight was finished, not cancelled");
    for id in ids {
        let d = engine.delivery("acme", id).await.unwrap().unwrap();
        assert_eq!(d.status, DeliveryStatus::Success, "nothing is left Dispatched");
    }
}

/// Its engine's new work wakes the worker: with a poll interval of an hour, every event is still sent, and an
/// event queued while a pass runs starts the next pass.
#[tokio::test]
async fn work_queued_by_its_engine_wakes_the_worker() {
    let http = Arc::new(MockHttp::new_ok());
    let engine = engine(http.clone());
    let handle = Worker::new(engine.clone()).poll_interval(Duration::from_secs(3600)).spawn();
    for n in 1..=20 {
        fire(&engine, 1).await;
        let sent = async {
            while http.requests().len() < n {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        // Generous: without the wake-up the request would wait for the hour-long poll.
        assert!(tokio::time::timeout(Duration::from_secs(30), sent).await.is_ok(), "event {n} was not sent");
    }
    // A burst, some of it queued while passes run.
    let burst = tokio::spawn({
        let engine = engine.clone();
        async move { fire(&engine, 30).await }
    });
    burst.await.unwrap();
    let all = async {
        while http.requests().len() < 50 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    assert!(tokio::time::timeout(Duration::from_secs(30), all).await.is_ok(), "{} of 50 sent", http.requests().len());
    assert_eq!(handle.shutdown().await.sent, 50);
}
