//! The engine when calls fail after they took effect, when receivers echo credentials, and when a body would be
//! too large: repeats queue nothing twice, secrets stay out of everything stored, limits are typed errors.

use std::sync::Arc;

use chrono::Duration;
use crm_webhooks::payload::RenderError;
use crm_webhooks::testing::{FaultyStorage, ManualClock, MockHttp, RecordingMailer};
use crm_webhooks::MemoryStorage;
use crm_webhooks::{DeliveryStatus, Engine, EngineError, LogQuery, RecordEvent, Storage};

mod common;

use common::{lead, make_engine, workflows};

/// The defect: a call that committed but lost its reply returned an error, and the host's repeat queued the event
/// again under new ids. With an event id, repeats until one succeeds store exactly one delivery.
#[tokio::test]
async fn a_repeated_event_with_an_id_is_queued_once_whatever_the_faults() {
    let memory = Arc::new(MemoryStorage::new());
    for seed in 0..20 {
        let faulty = Arc::new(FaultyStorage::new(memory.clone(), 1000, seed));
        let (engine, _) = make_engine(faulty.clone(), Arc::new(MockHttp::new_ok()), Arc::new(RecordingMailer::new()));
        let event = lead(seed as u32).event_id(format!("save-{seed}"));
        let mut tries = 0;
        while engine.on_event(&event).await.is_err() && tries < 5 {
            tries += 1;
        }
        faulty.set_enabled(false);
        let ids = engine.on_event(&event).await.unwrap();
        assert_eq!(ids.len(), 1);
        let log = memory.log(&LogQuery::tenant("acme").record(format!("10x{seed}"))).await.unwrap();
        assert_eq!(log.len(), 1, "seed {seed}: one Queued entry after {tries} failed tries: {log:?}");
        assert_eq!(log[0].delivery_id, ids[0], "the repeat returns the id of what was stored");
        assert!(faulty.faults().before + faulty.faults().after > 0);
    }
    // The same event twice in one batch is one event; without ids, each call is an event of its own.
    let (engine, _) = make_engine(memory.clone(), Arc::new(MockHttp::new_ok()), Arc::new(RecordingMailer::new()));
    let twice = [lead(100).event_id("x"), lead(100).event_id("x")];
    assert_eq!(engine.on_events(&twice).await.unwrap().len(), 1);
    assert_ne!(engine.on_event(&lead(101)).await.unwrap(), engine.on_event(&lead(101)).await.unwrap());
}

#[tokio::test]
async fn redelivery_is_safe_to_repeat() {
    let memory = Arc::new(MemoryStorage::new());
    let (engine, _) = make_engine(memory.clone(), Arc::new(MockHttp::new_ok()), Arc::new(RecordingMailer::new()));
    let original = engine.on_event(&lead(1)).await.unwrap()[0];
    engine.run_due().await.unwrap();
    let faulty = Arc::new(FaultyStorage::new(memory.clone(), 1000, 3));
    let (flaky, _) = make_engine(faulty.clone(), Arc::new(MockHttp::new_ok()), Arc::new(RecordingMailer::new()));
    for _ in 0..6 {
        let _ = flaky.redeliver("acme", original).await;
    }
    faulty.set_enabled(false);
    let again = flaky.redeliver("acme", original).await.unwrap();
    assert_eq!(flaky.redeliver("acme", original).await.unwrap(), again, "a pending redelivery is not queued twice");
    let copies = memory.log(&LogQuery::tenant("acme").limit(1000)).await.unwrap();
    let queued: Vec<_> = copies.iter().filter(|e| e.message.starts_with("redelivery of")).collect();
    assert_eq!(queued.len(), 1, "one redelivery queued: {queued:?}");
    // Once it has gone out, asking again sends it again, as a chain.
    engine.run_due().await.unwrap();
    let next = engine.redeliver("acme", original).await.unwrap();
    assert_ne!(next, again);
    assert_eq!(engine.delivery("acme", next).await.unwrap().unwrap().redelivery_of, Some(again));
}

/// The defect: nothing capped a rendered body. Now it is a typed error, nothing is stored, and a `once`
/// workflow keeps its single firing for when the record fits.
#[tokio::test]
async fn a_body_over_the_limit_is_a_typed_error_and_stores_nothing() {
    let memory = Arc::new(MemoryStorage::new());
    let (engine, _) = make_engine(memory.clone(), Arc::new(MockHttp::new_ok()), Arc::new(RecordingMailer::new()));
    let big_template = "${text}".repeat(60);
    engine.set_workflows("acme", workflows("once", &big_template)).unwrap();
    let huge = lead(1).field("text", "x".repeat(10 * 1024));
    match engine.on_event(&huge).await {
        Err(EngineError::Render { workflow, record_id, source: RenderError::BodyTooLarge { limit, .. }, .. }) => {
            assert_eq!((workflow.as_str(), record_id.as_str(), limit), ("w", "10x1", 64 * 1024));
        }
        other => panic!("expected a render error, got {other:?}"),
    }
    assert!(memory.log(&LogQuery::tenant("acme")).await.unwrap().is_empty(), "nothing is stored");
    let fits = lead(1).field("text", "small");
    assert_eq!(engine.on_event(&fits).await.unwrap().len(), 1, "the once-trigger did not fire on the failed event");
}

/// The defect: recipients were recorded only after all of them were mailed, so one lost write emailed everyone
/// again. Now each is recorded as soon as its mail is accepted: with 30% of the storage calls failing, an email goes out twice only where the write recording it failed before it was made.
#[tokio::test]
async fn failure_emails_go_to_each_recipient_once_but_for_lost_writes() {
    let memory = Arc::new(MemoryStorage::new());
    let faulty = Arc::new(FaultyStorage::new(memory.clone(), 0, 11));
    // The mail server is down while the deliveries fail, so every notification waits in the outbox.
    let down = Arc::new(RecordingMailer::new());
    for _ in 0..10_000 {
        down.fail_next(crm_webhooks::ports::MailError::transient("421 try again later"));
    }
    let (engine, clock) = make_engine(faulty.clone(), Arc::new(MockHttp::new_status(500)), down.clone());
    for n in 0..10 {
        engine.on_event(&lead(n)).await.unwrap();
    }
    for hours in [0, 1, 2, 4] {
        clock.advance(Duration::hours(hours));
        engine.run_until_idle(10).await.unwrap();
    }
    let failed = memory.log(&LogQuery::tenant("acme").status(DeliveryStatus::Failed)).await.unwrap();
    assert_eq!(failed.len(), 10, "every delivery failed for good");
    assert!(down.sent().is_empty());
    // From here on the mail server works and a third of the storage calls fail.
    let mailer = Arc::new(RecordingMailer::new());
    let faulty_notes = Arc::new(FaultyStorage::new(memory.clone(), 300, 11));
    let (notifier, clock) = engine_on(faulty_notes.clone(), mailer.clone());
    for _ in 0..40 {
        let _ = notifier.run_due().await;
        clock.advance(Duration::hours(1));
    }
    faulty_notes.set_enabled(false);
    notifier.run_until_idle(10).await.unwrap();
    let mut per_recipient = std::collections::HashMap::new();
    // Ten records failing over seven hours also pass the endpoint's warning (5 failures over an hour): that
    // email is one more per recipient, kept apart here.
    let (failures, warnings): (Vec<_>, Vec<_>) =
        mailer.sent().into_iter().partition(|e| e.subject.starts_with("Webhook failed"));
    let warned: std::collections::HashSet<_> = warnings.iter().map(|e| e.to.clone()).collect();
    assert!(warnings.iter().all(|e| e.subject.contains("keeps failing")), "{warnings:?}");
    assert_eq!(warned.len(), 3, "the warning reaches the owner and both admins");
    for email in failures {
        *per_recipient.entry((email.body.clone(), email.to.clone())).or_insert(0) += 1;
    }
    assert_eq!(per_recipient.len(), 30, "10 failures × (owner + 2 admins)");
    let twice: usize = per_recipient.values().map(|n| n - 1).sum();
    let lost_writes = faulty_notes.faults_in("update_notification").before as usize;
    assert!(twice <= lost_writes, "{twice} duplicate emails but only {lost_writes} recipient writes were lost");
    println!("failure emails: 30 recipients, {twice} duplicates, {lost_writes} lost recipient writes");
}

fn engine_on(storage: Arc<FaultyStorage>, mailer: Arc<RecordingMailer>) -> (Engine, ManualClock) {
    let (engine, clock) = make_engine(storage, Arc::new(MockHttp::new_ok()), mailer);
    clock.advance(Duration::days(1));
    (engine, clock)
}

/// Tenant B's reads and writes never see or touch tenant A's deliveries, even when B names A's ids: on memory,
/// on a SQLite file and (with `DATABASE_URL`) on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(unused_mut, unused_variables))]
async fn tenants_are_isolated_even_given_each_others_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<(&str, Arc<dyn Storage>)> = vec![("memory", Arc::new(MemoryStorage::new()))];
    #[cfg(feature = "sqlite")]
    stores.push(("sqlite", Arc::new(crm_webhooks::SqliteStorage::open(dir.path().join("isolation.db")).unwrap())));
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("DATABASE_URL") {
        let schema = format!("crm_webhooks_iso_{}", uuid::Uuid::new_v4().simple());
        let pg = crm_webhooks::PostgresStorage::connect(&url).await.unwrap().schema(&schema).unwrap();
        pg.setup().await.unwrap();
        stores.push(("postgres", Arc::new(pg)));
    }
    for (name, storage) in stores {
        let (engine, _) = make_engine(storage.clone(), Arc::new(MockHttp::new_ok()), Arc::new(RecordingMailer::new()));
        engine.set_workflows("beta", workflows("every_save", "Lead ${id}")).unwrap();
        let a = engine.on_event(&lead(1)).await.unwrap()[0];
        engine.run_due().await.unwrap();
        let b_event = RecordEvent { tenant: "beta".into(), ..lead(1) };
        let b = engine.on_event(&b_event).await.unwrap()[0];
        assert!(engine.delivery("beta", a).await.unwrap().is_none(), "{name}: B reads A's delivery");
        assert!(
            matches!(engine.redeliver("beta", a).await, Err(EngineError::UnknownDelivery { .. })),
            "{name}: B redelivers A's delivery"
        );
        let b_log = engine.log(&LogQuery::tenant("beta").limit(1000)).await.unwrap();
        assert!(b_log.iter().all(|e| e.tenant == "beta" && e.delivery_id != a), "{name}: B's log shows A's entries");
        assert!(engine.log(&LogQuery::tenant("beta").delivery(a)).await.unwrap().is_empty(), "{name}");
        let a_log = engine.log(&LogQuery::tenant("acme").limit(1000)).await.unwrap();
        assert!(a_log.iter().all(|e| e.delivery_id != b), "{name}: A's log shows B's entries");
        assert_eq!(engine.usage("acme").await.unwrap().used, 1, "{name}: A's usage counts A's call");
        assert_eq!(engine.delivery("acme", a).await.unwrap().unwrap().status, DeliveryStatus::Success, "{name}");
    }
}
