//! What the engine fault and secrets tests share: one workflow with Basic auth and a signing secret, an engine
//! on given parts with a manual clock, and a lead event.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use crm_webhooks::ports::User;
use crm_webhooks::testing::{ManualClock, MockHttp, RecordingMailer, StaticDirectory};
use crm_webhooks::{Change, Engine, RecordEvent, Storage, WorkflowSet};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub fn workflows(trigger: &str, template: &str) -> WorkflowSet {
    WorkflowSet::from_json(&format!(
        r#"{{"workflows": [{{"id": "w", "module": "Leads", "trigger": "{trigger}",
      "actions": [{{"title": "Notify", "url": "https://receiver.example/hook", "content_type": "JSON",
        "auth": {{"type": "basic", "username": "api", "password": "s3cret"}},
        "signing_secret": "{SECRET}",
        "parameters": [{{"name": "public_id", "field": "id"}}, {{"name": "note", "template": "{template}"}}]}}]}}]}}"#
    ))
    .unwrap()
}

pub fn make_engine(
    storage: Arc<dyn Storage>,
    http: Arc<MockHttp>,
    mailer: Arc<RecordingMailer>,
) -> (Engine, ManualClock) {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap());
    let user = |id: &str, admin| User {
        id: id.into(),
        name: String::new(),
        email: format!("{id}@acme.test"),
        active: true,
        admin,
    };
    let directory = StaticDirectory::new()
        .tenant("acme", 5, chrono_tz::UTC, None)
        .tenant("beta", 5, chrono_tz::UTC, None)
        .user("acme", user("owner", false))
        .user("acme", user("admin1", true))
        .user("acme", user("admin2", true));
    let engine = Engine::builder()
        .storage(storage)
        .http(http)
        .mailer(mailer)
        .directory(Arc::new(directory))
        .clock(Arc::new(clock.clone()))
        .max_body_bytes(64 * 1024)
        .build()
        .unwrap();
    engine.set_workflows("acme", workflows("every_save", "Lead ${id}")).unwrap();
    (engine, clock)
}

pub fn lead(n: u32) -> RecordEvent {
    RecordEvent::new("acme", "Leads", format!("10x{n}"), Change::Created, "owner").field("id", n)
}
