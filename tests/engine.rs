//! The delivery engine through its public API, driven by a manual clock and mock transports.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use crm_webhooks::ports::{HttpError, HttpErrorKind, MailError, User};
use crm_webhooks::retry::RetrySchedule;
use crm_webhooks::signature::verify_signature;
use crm_webhooks::testing::{ManualClock, MockHttp, MockReply, RecordingMailer, StaticDirectory};
use crm_webhooks::MemoryStorage;
use crm_webhooks::{
    Change, Clock, DeliveryStatus, Directory, Edition, Engine, EngineError, HttpClient, LogEntry, LogQuery, Mailer,
    QuotaPolicy, RecordEvent, Secret, Storage, WorkflowSet,
};

const WORKFLOWS: &str = r#"{"workflows": [{"id": "deal-won-invoice", "name": "Closed deal to accounting", "module": "Potentials",
  "trigger": "every_save",
  "criteria": {"all": [{"field": "sales_stage", "op": "is", "value": "Closed Won"}], "any": []},
  "actions": [{"kind": "webhook", "title": "Create invoice", "description": "Push the won deal",
    "url": "https://accounting.example.com/invoices", "method": "POST", "content_type": "JSON",
    "auth": {"type": "basic", "username": "api", "password": "s3cret"},
    "parameters": [{"name": "public_id", "value": "ACME-42"}, {"name": "amount", "field": "amount"},
      {"name": "customer.name", "field": "account_name"}, {"name": "summary", "template": "Deal ${potentialname} won"}]}]}]}"#;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap()
}

fn user(id: &str, email: &str, active: bool, admin: bool) -> User {
    User { id: id.into(), name: format!("User {id}"), email: email.into(), active, admin }
}

struct Harness {
    engine: Engine,
    storage: Arc<MemoryStorage>,
    http: Arc<MockHttp>,
    mailer: Arc<RecordingMailer>,
    directory: Arc<StaticDirectory>,
    clock: ManualClock,
}

fn harness_with(http: MockHttp, edition: Option<Edition>, licensed: u32) -> Harness {
    let storage = Arc::new(MemoryStorage::new());
    let http = Arc::new(http);
    let mailer = Arc::new(RecordingMailer::new());
    let directory = Arc::new(
        StaticDirectory::new()
            .tenant("acme", licensed, chrono_tz::Europe::Berlin, edition)
            .user("acme", user("19x1", "owner@acme.test", true, false))
            .user("acme", user("19x2", "admin@acme.test", true, true))
            .user("acme", user("19x3", "OWNER@acme.test", true, true))
            .user("acme", user("19x4", "gone@acme.test", false, true)),
    );
    let clock = ManualClock::new(start());
    let engine = Engine::builder()
        .storage(storage.clone())
        .http(http.clone())
        .mailer(mailer.clone())
        .directory(directory.clone())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    engine.set_workflows("acme", WorkflowSet::from_json(WORKFLOWS).unwrap()).unwrap();
    Harness { engine, storage, http, mailer, directory, clock }
}

impl Harness {
    /// Another engine on the same parts (another server, or other settings), holding the README workflow.
    fn engine_with(
        &self,
        configure: impl FnOnce(crm_webhooks::EngineBuilder) -> crm_webhooks::EngineBuilder,
    ) -> Engine {
        let builder = Engine::builder()
            .storage(self.storage.clone())
            .http(self.http.clone())
            .mailer(self.mailer.clone())
            .directory(self.directory.clone())
            .clock(Arc::new(self.clock.clone()));
        let engine = configure(builder).build().unwrap();
        engine.set_workflows("acme", WorkflowSet::from_json(WORKFLOWS).unwrap()).unwrap();
        engine
    }
}

fn harness(http: MockHttp) -> Harness {
    harness_with(http, None, 10)
}

fn won_deal() -> RecordEvent {
    serde_json::from_str(
        r#"{"tenant": "acme", "module": "Potentials", "record_id": "13x42", "change": "updated", "owner": "19x1",
        "actor": "19x5", "fields": {"sales_stage": "Closed Won", "amount": 1200.5, "account_name": "Globex",
        "potentialname": "Big deal"}, "previous": {"sales_stage": "Negotiation"}}"#,
    )
    .unwrap()
}

async fn log(h: &Harness) -> Vec<LogEntry> {
    let mut entries = h.engine.log(&LogQuery::tenant("acme").limit(1000)).await.unwrap();
    entries.reverse();
    entries
}

#[tokio::test]
async fn the_readme_workflow_delivers_once_with_auth_and_standard_headers() {
    let h = harness(MockHttp::new_ok().then(MockReply::status(201).body("created #7")));
    let ids = h.engine.on_event(&won_deal()).await.unwrap();
    assert_eq!(ids.len(), 1);
    let report = h.engine.run_due().await.unwrap();
    assert_eq!((report.claimed, report.sent, report.succeeded), (1, 1, 1));

    let requests = h.http.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, http::Method::POST);
    assert_eq!(request.uri, "https://accounting.example.com/invoices");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"public_id": "ACME-42", "amount": 1200.5, "customer": {"name": "Globex"}, "summary": "Deal Big deal won"})
    );
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("authorization"), "Basic YXBpOnMzY3JldA==", "Basic api:s3cret");
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("webhook-id"), ids[0].to_string());
    assert_eq!(header("webhook-timestamp"), start().timestamp().to_string());
    assert!(request.headers.get("webhook-signature").is_none(), "no signing secret, no signature");

    let entries = log(&h).await;
    let statuses: Vec<_> = entries.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [DeliveryStatus::Queued, DeliveryStatus::Dispatched, DeliveryStatus::Success]);
    let last = entries.last().unwrap();
    assert_eq!((last.http_status, last.response_snippet.as_deref(), last.attempt), (Some(201), Some("created #7"), 1));
    let delivery = h.engine.delivery("acme", ids[0]).await.unwrap().unwrap();
    assert_eq!(delivery.body, request.body, "the stored body is what was sent");
    assert_eq!(delivery.status, DeliveryStatus::Success);
}

#[tokio::test]
async fn events_that_do_not_match_queue_nothing() {
    let h = harness(MockHttp::new_ok());
    let mut lost = won_deal();
    lost.fields.insert("sales_stage".into(), "Closed Lost".into());
    assert!(h.engine.on_event(&lost).await.unwrap().is_empty());
    let mut other_module = won_deal();
    other_module.module = "Leads".into();
    assert!(h.engine.on_event(&other_module).await.unwrap().is_empty());
    let mut other_tenant = won_deal();
    other_tenant.tenant = "globex".into();
    assert!(h.engine.on_event(&other_tenant).await.unwrap().is_empty());
    assert!(h.storage.is_empty());
    let mut bad = won_deal();
    bad.record_id = " ".into();
    assert!(matches!(h.engine.on_event(&bad).await, Err(EngineError::InvalidEvent(_))));
}

#[tokio::test]
async fn the_whole_schedule_one_two_four_hours_then_failed_and_one_email_each() {
    let h = harness(
        MockHttp::new_status(500)
            .then(MockReply::status(502))
            .then(MockReply::error(HttpError::new(HttpErrorKind::Timeout, "no answer in 30s"))),
    );
    let id = h.engine.on_event(&won_deal()).await.unwrap()[0];
    let mut sent_at = Vec::new();
    for (attempt, wait_hours) in [(1, 1), (2, 2), (3, 4), (4, 0)] {
        // Just before it is due, nothing happens.
        if attempt > 1 {
            h.clock.advance(Duration::seconds(-1));
            assert_eq!(h.engine.run_due().await.unwrap().sent, 0, "attempt {attempt} must not go early");
            h.clock.advance(Duration::seconds(1));
        }
        let report = h.engine.run_due().await.unwrap();
        assert_eq!(report.sent, 1, "attempt {attempt} is sent when due");
        sent_at.push(h.clock.now());
        let delivery = h.engine.delivery("acme", id).await.unwrap().unwrap();
        assert_eq!(delivery.attempts, attempt);
        if attempt < 4 {
            assert_eq!(delivery.status, DeliveryStatus::Queued);
            assert_eq!(delivery.next_attempt_at, Some(h.clock.now() + Duration::hours(wait_hours)));
            h.clock.advance(Duration::hours(wait_hours));
        } else {
            assert_eq!(delivery.status, DeliveryStatus::Failed);
            assert_eq!(delivery.next_attempt_at, None);
        }
    }
    assert_eq!(
        sent_at,
        [start(), start() + Duration::hours(1), start() + Duration::hours(3), start() + Duration::hours(7)]
    );
    assert_eq!(h.http.requests().len(), 4);
    let bodies: Vec<_> = h.http.requests().into_iter().map(|r| r.body).collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every retry sends the same bytes");
    let ids: Vec<_> = h.http.requests().into_iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "the webhook-id is stable across retries");

    // Every attempt is logged: Queued, then Dispatched + outcome per attempt.
    let entries = log(&h).await;
    assert_eq!(entries.len(), 1 + 4 * 2);
    let outcomes: Vec<_> = entries.iter().filter(|e| e.status != DeliveryStatus::Dispatched).skip(1).collect();
    assert_eq!(
        outcomes.iter().map(|e| e.status).collect::<Vec<_>>(),
        [DeliveryStatus::Queued, DeliveryStatus::Queued, DeliveryStatus::Queued, DeliveryStatus::Failed]
    );
    assert_eq!(outcomes.iter().map(|e| e.attempt).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(outcomes[0].http_status, Some(502));
    assert!(outcomes[1].error.as_deref().unwrap().contains("no answer in 30s"), "{:?}", outcomes[1].error);
    assert_eq!(outcomes[3].http_status, Some(500));
    assert_eq!(outcomes[0].next_attempt_at, Some(start() + Duration::hours(1)));
    assert!(outcomes[0].message.contains("retry 1 of 3"), "{}", outcomes[0].message);

    // The owner and the active admins, each once: 19x3 shares the owner's address, 19x4 is inactive.
    let emails = h.mailer.sent();
    let mut to: Vec<_> = emails.iter().map(|e| e.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["admin@acme.test", "owner@acme.test"]);
    let email = &emails[0];
    assert!(
        email.subject.contains("Create invoice") && email.subject.contains("Closed deal to accounting"),
        "{}",
        email.subject
    );
    for needle in [
        "https://accounting.example.com/invoices",
        "13x42",
        "deal-won-invoice",
        "HTTP 502",
        "no answer in 30s",
        "HTTP 500",
    ] {
        assert!(email.body.contains(needle), "email body lacks {needle:?}:\n{}", email.body);
    }
    for needle in ["s3cret", "YXBpOnMzY3JldA"] {
        assert!(!email.body.contains(needle), "the email leaks a secret");
    }
    // Later passes email nobody again and send nothing more.
    h.clock.advance(Duration::days(2));
    let report = h.engine.run_due().await.unwrap();
    assert!(report.is_idle(), "{report:?}");
    assert_eq!(h.mailer.sent().len(), 2);
}

#[tokio::test]
async fn a_mailer_failure_keeps_the_notification_and_emails_nobody_twice() {
    let h = harness(MockHttp::new_status(404));
    let engine = h.engine_with(|b| b.retry_schedule(RetrySchedule::new(vec![]).unwrap()));
    engine.on_event(&won_deal()).await.unwrap();
    // First recipient works, the second fails transiently.
    h.mailer.fail_next(MailError::transient("451 try later"));
    let first = engine.run_due().await.unwrap();
    assert_eq!(first.failed, 1, "no retries configured: the first failure is final");
    assert_eq!(first.emails_sent, 1);
    assert_eq!(h.storage.pending_notifications().len(), 1, "the notification stays in the outbox");
    let pending = &h.storage.pending_notifications()[0];
    assert_eq!(pending.sent_to.len(), 1);
    assert!(pending.last_error.as_deref().unwrap().contains("451 try later"));
    // Not retried before its backoff.
    assert_eq!(engine.run_due().await.unwrap().emails_sent, 0);
    h.clock.advance(Duration::minutes(5));
    assert_eq!(engine.run_due().await.unwrap().emails_sent, 1);
    assert!(h.storage.pending_notifications().is_empty());
    let mut to: Vec<_> = h.mailer.sent().into_iter().map(|e| e.to).collect();
    to.sort();
    assert_eq!(to, ["admin@acme.test", "owner@acme.test"], "each recipient exactly once");
}

#[tokio::test]
async fn an_unavailable_directory_delays_the_notification_without_losing_it() {
    let h = harness(MockHttp::new_status(500));
    let engine =
        h.engine_with(|b| b.retry_schedule(RetrySchedule::new(vec![]).unwrap()).quota_policy(QuotaPolicy::Unlimited));
    engine.on_event(&won_deal()).await.unwrap();
    h.directory.set_unavailable(true);
    let report = engine.run_due().await.unwrap();
    assert_eq!((report.failed, report.emails_sent), (1, 0));
    h.directory.set_unavailable(false);
    h.clock.advance(Duration::minutes(5));
    assert_eq!(engine.run_due().await.unwrap().emails_sent, 2);
}

#[tokio::test]
async fn retry_after_pushes_the_retry_later_but_never_earlier() {
    let h = harness(
        MockHttp::new_ok()
            .then(MockReply::status(429).header("retry-after", "10800"))
            .then(MockReply::status(503).header("retry-after", "60")),
    );
    let id = h.engine.on_event(&won_deal()).await.unwrap()[0];
    h.engine.run_due().await.unwrap();
    let d = h.engine.delivery("acme", id).await.unwrap().unwrap();
    assert_eq!(d.next_attempt_at, Some(start() + Duration::hours(3)), "429 asked for 3 h, later than 1 h");
    h.clock.advance(Duration::hours(3));
    h.engine.run_due().await.unwrap();
    let d = h.engine.delivery("acme", id).await.unwrap().unwrap();
    assert_eq!(
        d.next_attempt_at,
        Some(h.clock.now() + Duration::hours(2)),
        "503 asked for 60 s: the schedule's 2 h wins"
    );
}

#[tokio::test]
async fn redirects_and_policy_refusals() {
    // A 3xx is a failed attempt (retried); a refusal by policy fails at once.
    let h = harness(MockHttp::new_ok().then(MockReply::status(302).header("location", "https://elsewhere.example/")));
    let id = h.engine.on_event(&won_deal()).await.unwrap()[0];
    h.engine.run_due().await.unwrap();
    let d = h.engine.delivery("acme", id).await.unwrap().unwrap();
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Queued, 1));
    let entry = log(&h).await.pop().unwrap();
    assert!(entry.error.unwrap().contains("redirects are not followed"));

    let refused = harness(MockHttp::new_error(HttpError::new(HttpErrorKind::Refused, "10.0.0.5 is a private address")));
    let id = refused.engine.on_event(&won_deal()).await.unwrap()[0];
    let report = refused.engine.run_due().await.unwrap();
    assert_eq!(report.failed, 1);
    let d = refused.engine.delivery("acme", id).await.unwrap().unwrap();
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Failed, 1));
    assert!(log(&refused).await.pop().unwrap().error.unwrap().contains("refused by policy"));
}

#[tokio::test]
async fn the_daily_quota_defers_until_the_tenant_day_ends_and_counts_retries() {
    // Custom edition: 2 per user × 1 user = 2 calls a day.
    let h = harness_with(MockHttp::new_status(500), Some(Edition::Custom { per_user: 2, per_day: 100 }), 1);
    for _ in 0..2 {
        h.engine.on_event(&won_deal()).await.unwrap();
    }
    let report = h.engine.run_due().await.unwrap();
    assert_eq!((report.sent, report.retried), (2, 2));
    let usage = h.engine.usage("acme").await.unwrap();
    assert_eq!((usage.used, usage.allowed), (2, Some(2)));
    // Retries are due in an hour, but the day's allowance is spent: they wait for Berlin's midnight.
    h.clock.advance(Duration::hours(1));
    let report = h.engine.run_due().await.unwrap();
    assert_eq!((report.claimed, report.sent, report.deferred), (2, 0, 2));
    let midnight_berlin = Utc.with_ymd_and_hms(2026, 11, 29, 23, 0, 0).unwrap();
    let deferred = log(&h).await.into_iter().filter(|e| e.message.contains("daily quota")).collect::<Vec<_>>();
    assert_eq!(deferred.len(), 2);
    assert!(deferred.iter().all(|e| e.status == DeliveryStatus::Queued && e.next_attempt_at == Some(midnight_berlin)));
    assert_eq!(h.engine.next_due_at().await.unwrap(), Some(midnight_berlin));
    h.clock.set(midnight_berlin - Duration::seconds(1));
    assert_eq!(h.engine.run_due().await.unwrap().sent, 0);
    h.clock.set(midnight_berlin);
    assert_eq!(h.engine.run_due().await.unwrap().sent, 2, "a new day, a new allowance");
    assert_eq!(h.http.requests().len(), 4, "never more than the allowance per day");
    let usage = h.engine.usage("acme").await.unwrap();
    assert_eq!(usage.day.to_string(), "2026-11-30");
    assert_eq!(usage.used, 2);
    let yesterday =
        h.engine.usage_on("acme", Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap())).await.unwrap();
    assert_eq!((yesterday.used, yesterday.allowed), (2, Some(2)), "each day keeps its own count");
}

#[tokio::test]
async fn seed_editions_limit_the_tenant() {
    let h = harness_with(MockHttp::new_ok(), Some(Edition::SalesHelpDeskProfessional), 2);
    let usage = h.engine.usage("acme").await.unwrap();
    assert_eq!(usage.allowed, Some(500), "250 per user × 2 users");
    let h = harness_with(MockHttp::new_ok(), Some(Edition::HelpDeskEnterprise), 1000);
    assert_eq!(h.engine.usage("acme").await.unwrap().allowed, Some(25_000), "capped by calls per day");
}

#[tokio::test]
async fn once_fires_only_the_first_time_the_criteria_hold() {
    let h = harness(MockHttp::new_ok());
    h.engine.set_workflows("acme", WorkflowSet::from_json(&WORKFLOWS.replace("every_save", "once")).unwrap()).unwrap();
    let mut not_yet = won_deal();
    not_yet.fields.insert("sales_stage".into(), "Negotiation".into());
    assert!(h.engine.on_event(&not_yet).await.unwrap().is_empty(), "criteria do not hold: not fired, not marked");
    assert_eq!(h.engine.on_event(&won_deal()).await.unwrap().len(), 1);
    assert!(h.engine.on_event(&won_deal()).await.unwrap().is_empty(), "never again for this record");
    let mut other = won_deal();
    other.record_id = "13x43".into();
    assert_eq!(h.engine.on_event(&other).await.unwrap().len(), 1, "another record fires");
}

#[tokio::test]
async fn triggers_follow_the_change() {
    let h = harness(MockHttp::new_ok());
    let created = RecordEvent { change: Change::Created, ..won_deal() };
    for (trigger, on_create, on_update) in
        [("first_save", 1, 0), ("every_save", 1, 1), ("modify", 0, 1), ("manual", 0, 0)]
    {
        h.engine
            .set_workflows("acme", WorkflowSet::from_json(&WORKFLOWS.replace("every_save", trigger)).unwrap())
            .unwrap();
        assert_eq!(h.engine.on_event(&created).await.unwrap().len(), on_create, "{trigger} on create");
        assert_eq!(h.engine.on_event(&won_deal()).await.unwrap().len(), on_update, "{trigger} on update");
    }
    // Manual workflows run on demand only.
    assert_eq!(h.engine.run_manual("deal-won-invoice", &won_deal()).await.unwrap().len(), 1);
    assert!(matches!(h.engine.run_manual("nope", &won_deal()).await, Err(EngineError::UnknownWorkflow { .. })));
    h.engine.set_workflows("acme", WorkflowSet::from_json(WORKFLOWS).unwrap()).unwrap();
    assert!(matches!(h.engine.run_manual("deal-won-invoice", &won_deal()).await, Err(EngineError::NotManual(_))));
}

#[tokio::test]
async fn scheduled_workflows_are_handed_out_once_per_run() {
    let h = harness(MockHttp::new_ok());
    let scheduled = WORKFLOWS.replace(r#""every_save""#, r#"{"schedule": {"every": "daily", "at": "10:00"}}"#);
    h.engine.set_workflows("acme", WorkflowSet::from_json(&scheduled).unwrap()).unwrap();
    // A second engine on the same storage, as on another server.
    let other = h.engine_with(|b| b);
    other.set_workflows("acme", WorkflowSet::from_json(&scheduled).unwrap()).unwrap();
    assert!(h.engine.due_schedules(h.clock.now()).await.unwrap().is_empty(), "first sight: the next run is stored");
    // 10:00 Berlin is 09:00 UTC, which is now: the first run is tomorrow.
    let tomorrow = start() + Duration::days(1);
    assert!(h.engine.due_schedules(tomorrow - Duration::seconds(1)).await.unwrap().is_empty());
    let due = h.engine.due_schedules(tomorrow).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].workflow.as_str(), due[0].module.as_str(), due[0].due_at),
        ("deal-won-invoice", "Potentials", tomorrow)
    );
    assert!(other.due_schedules(tomorrow).await.unwrap().is_empty(), "the other server does not get the same run");
    let event = RecordEvent { change: Change::Scheduled, workflow: Some(due[0].workflow.clone()), ..won_deal() };
    assert_eq!(h.engine.on_event(&event).await.unwrap().len(), 1);
    assert!(h.engine.on_event(&won_deal()).await.unwrap().is_empty(), "saves do not run scheduled workflows");
    assert_eq!(other.due_schedules(tomorrow + Duration::days(1)).await.unwrap().len(), 1, "and the day after");
}

#[tokio::test]
async fn redelivery_starts_a_new_chain_and_is_logged_on_both() {
    let h = harness(MockHttp::new_ok().then(MockReply::status(400)));
    let engine = h.engine_with(|b| b.retry_schedule(RetrySchedule::new(vec![]).unwrap()));
    let id = engine.on_event(&won_deal()).await.unwrap()[0];
    assert!(matches!(engine.redeliver("acme", id).await, Err(EngineError::NotSettled { .. })), "not while queued");
    engine.run_due().await.unwrap();
    assert!(
        matches!(engine.redeliver("globex", id).await, Err(EngineError::UnknownDelivery { .. })),
        "tenants are apart"
    );
    let again = engine.redeliver("acme", id).await.unwrap();
    assert_ne!(again, id);
    engine.run_due().await.unwrap();
    let copy = engine.delivery("acme", again).await.unwrap().unwrap();
    assert_eq!((copy.status, copy.attempts, copy.redelivery_of), (DeliveryStatus::Success, 1, Some(id)));
    let requests = h.http.requests();
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(requests[1].headers["webhook-id"], again.to_string());
    let original_log = engine.log(&LogQuery::tenant("acme").delivery(id)).await.unwrap();
    assert!(original_log[0].message.contains(&again.to_string()), "{}", original_log[0].message);
    let copy_log = engine.log(&LogQuery::tenant("acme").delivery(again)).await.unwrap();
    assert!(copy_log.last().unwrap().message.contains(&format!("redelivery of {id}")));
}

#[tokio::test]
async fn prune_removes_old_settled_deliveries_only() {
    let h = harness(MockHttp::new_ok());
    let done = h.engine.on_event(&won_deal()).await.unwrap()[0];
    h.engine.run_due().await.unwrap();
    h.clock.advance(Duration::days(40));
    let waiting = h.engine.on_event(&won_deal()).await.unwrap()[0];
    assert_eq!(h.engine.prune_log(std::time::Duration::from_secs(30 * 86400)).await.unwrap(), 1);
    assert!(h.engine.delivery("acme", done).await.unwrap().is_none());
    assert!(h.engine.delivery("acme", waiting).await.unwrap().is_some());
}

#[tokio::test]
async fn secrets_never_reach_the_log_or_debug_output() {
    let signed = WORKFLOWS
        .replace(r#""parameters""#, r#""signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "parameters""#);
    let h = harness(MockHttp::with_fallback(MockReply::status(401).body("bad credentials")));
    h.engine.set_workflows("acme", WorkflowSet::from_json(&signed).unwrap()).unwrap();
    let id = h.engine.on_event(&won_deal()).await.unwrap()[0];
    h.engine.run_due().await.unwrap();
    let request = &h.http.requests()[0];
    let signature = request.headers["webhook-signature"].to_str().unwrap();
    let timestamp: i64 = request.headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    assert!(verify_signature(
        &Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        &id.to_string(),
        timestamp,
        &request.body,
        signature
    ));
    let everything = format!(
        "{:?} {:?} {:?} {:?}",
        log(&h)
            .await
            .into_iter()
            .map(|mut e| {
                e.response_snippet = None;
                e
            })
            .collect::<Vec<_>>(),
        h.engine.delivery("acme", id).await.unwrap(),
        h.engine.workflows("acme"),
        h.engine,
    );
    for secret in ["s3cret", "YXBpOnMzY3JldA", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[tokio::test]
async fn concurrent_engines_share_one_store_without_sending_twice() {
    let h = harness(MockHttp::new_ok());
    for i in 0..50 {
        let mut event = won_deal();
        event.record_id = format!("13x{i}");
        h.engine.on_event(&event).await.unwrap();
    }
    let engines: Vec<Engine> = (0..4).map(|_| h.engine_with(|b| b.batch_size(7))).collect();
    let passes = engines.iter().map(|e| async move {
        let mut sent = 0;
        loop {
            let report = e.run_due().await.unwrap();
            if report.claimed == 0 {
                return sent;
            }
            sent += report.sent;
        }
    });
    let sent: usize = futures_util::future::join_all(passes).await.into_iter().sum();
    assert_eq!(sent, 50);
    let mut ids: Vec<_> = h.http.requests().into_iter().map(|r| r.headers["webhook-id"].clone()).collect();
    ids.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    ids.dedup();
    assert_eq!(ids.len(), 50, "each delivery sent exactly once");
}

#[tokio::test]
async fn a_removed_action_fails_its_queued_deliveries_clearly() {
    let h = harness(MockHttp::new_ok());
    let id = h.engine.on_event(&won_deal()).await.unwrap()[0];
    h.engine.set_workflows("acme", WorkflowSet::default()).unwrap();
    h.engine.run_due().await.unwrap();
    let d = h.engine.delivery("acme", id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert!(h.http.requests().is_empty(), "nothing is sent without its configuration");
    assert!(log(&h).await.pop().unwrap().error.unwrap().contains("no action \"Create invoice\" any more"));
}

#[test]
fn the_ports_are_object_safe() {
    fn _obj_safe(
        _: Arc<dyn Storage>,
        _: Arc<dyn HttpClient>,
        _: Arc<dyn Mailer>,
        _: Arc<dyn Directory>,
        _: Arc<dyn crm_webhooks::Clock>,
    ) {
    }
    fn _send_sync<T: Send + Sync>() {}
    _send_sync::<Engine>();
}

#[test]
fn building_without_a_part_says_which() {
    let err = Engine::builder().storage(Arc::new(MemoryStorage::new())).build().unwrap_err();
    assert!(err.to_string().contains("HTTP client is missing"), "{err}");
}

#[tokio::test]
async fn many_events_are_queued_together_or_not_at_all() {
    let h = harness(MockHttp::new_ok());
    let mut events: Vec<RecordEvent> = (0..5)
        .map(|i| {
            let mut e = won_deal();
            e.record_id = format!("13x{i}");
            e
        })
        .collect();
    events[2].fields.insert("sales_stage".into(), "Closed Lost".into());
    let ids = h.engine.on_events(&events).await.unwrap();
    assert_eq!(ids.len(), 4, "the lost deal does not match");
    assert_eq!(h.storage.len(), 4);
    events[4].tenant = String::new();
    let err = h.engine.on_events(&events).await.unwrap_err();
    assert!(matches!(err, EngineError::InvalidEvent(_)), "{err}");
    assert_eq!(h.storage.len(), 4, "an invalid event stores nothing of the batch");
    assert_eq!(h.engine.run_until_idle(10).await.unwrap().succeeded, 4);
}
