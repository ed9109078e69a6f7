//! The operators' metrics (feature `metrics`): what a pass records, read back through a debugging recorder.
#![cfg(feature = "metrics")]

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use crm_webhooks::testing::{ManualClock, MockHttp, MockReply, RecordingMailer, StaticDirectory};
use crm_webhooks::{Change, Edition, Engine, MemoryStorage, RecordEvent, WorkflowSet};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;

#[test]
fn a_pass_records_outcomes_latency_queue_and_quota() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let http = Arc::new(MockHttp::new_ok().then(MockReply::status(200)).then(MockReply::status(500)));
            let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap());
            let engine = Engine::builder()
                .storage(Arc::new(MemoryStorage::new()))
                .http(http)
                .mailer(Arc::new(RecordingMailer::new()))
                .directory(Arc::new(StaticDirectory::new().tenant(
                    "acme",
                    1,
                    chrono_tz::UTC,
                    Some(Edition::Custom { per_user: 2, per_day: 2 }),
                )))
                .clock(Arc::new(clock.clone()))
                .concurrency(1)
                .build()
                .unwrap();
            engine.set_workflows(
                "acme",
                WorkflowSet::from_json(
                    r#"[{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [{"title": "t",
                    "url": "https://r.example/h", "content_type": "JSON", "parameters": [{"name": "id", "field": "id"}]}]}]"#,
                )
                .unwrap(),
            ).unwrap();
            for i in 0..3 {
                let event = RecordEvent::new("acme", "Leads", format!("10x{i}"), Change::Created, "19x1").field("id", i);
                engine.on_event(&event).await.unwrap();
            }
            clock.advance(Duration::seconds(30));
            let depth = engine.queue_depth().await.unwrap();
            assert_eq!((depth.queued, depth.dispatched), (3, 0));
            engine.run_due().await.unwrap();
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let find = |kind: MetricKind, name: &str, label: Option<(&str, &str)>| {
        snapshot
            .iter()
            .find(|(key, _, _, _)| {
                key.kind() == kind
                    && key.key().name() == name
                    && label.is_none_or(|(k, v)| key.key().labels().any(|l| l.key() == k && l.value() == v))
            })
            .map(|(_, _, _, value)| value)
    };
    assert_eq!(
        find(MetricKind::Counter, "crm_webhooks_attempts_total", Some(("outcome", "success"))),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find(MetricKind::Counter, "crm_webhooks_attempts_total", Some(("outcome", "retry"))),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find(MetricKind::Counter, "crm_webhooks_deferred_total", None),
        Some(&DebugValue::Counter(1)),
        "over the quota"
    );
    match find(MetricKind::Histogram, "crm_webhooks_attempt_duration_seconds", None) {
        Some(DebugValue::Histogram(values)) => assert_eq!(values.len(), 2, "one latency per attempt"),
        other => panic!("no latency histogram: {other:?}"),
    }
    let gauge = |name: &str, label| match find(MetricKind::Gauge, name, label) {
        Some(DebugValue::Gauge(value)) => value.into_inner(),
        other => panic!("no gauge {name}: {other:?}"),
    };
    assert_eq!(gauge("crm_webhooks_queued", None), 3.0, "as measured before the pass");
    assert_eq!(gauge("crm_webhooks_oldest_queued_age_seconds", None), 30.0);
    assert_eq!(gauge("crm_webhooks_quota_used", Some(("tenant", "acme"))), 2.0);
}
