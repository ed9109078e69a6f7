//! Secrets (Basic credentials, bearer tokens, API keys, signing secrets and keys) never reach anything stored or
//! printed, even when a receiver echoes them back. A test binary of its own: it installs a tracing subscriber,
//! which must not race other tests.
#![cfg(all(feature = "sqlite", feature = "tokio"))]

use std::sync::Arc;

use chrono::Duration;
use crm_webhooks::testing::{MockHttp, MockReply, RecordingMailer};
use crm_webhooks::{LogQuery, SqliteStorage, WorkflowSet};

mod common;

use common::{lead, make_engine};

/// The defect: a receiver that echoes request headers put `Authorization: Basic ...` into the log. Whole
/// deliveries with Basic auth and a signing secret, to such a receiver, on a SQLite file: no secret in any log
/// entry, error, `Debug`, or byte of the database file and its WAL.
#[tokio::test(flavor = "current_thread")]
async fn echoed_credentials_never_reach_storage() {
    let echo = "HTTP/1.1 echo\r\nAuthorization: Basic YXBpOnMzY3JldA==\r\nX-Debug: user api:s3cret, key \
                whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw / MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let proxy = "proxy said: Authorization: Basic YXBpOnMzY3JldA== rejected";
    leaks_nothing(None, echo, proxy, &["s3cret", "YXBpOnMzY3JldA", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).await;
}

/// The same with the other secrets: a bearer token or an API key, and signing keys of both kinds (one of them
/// expired), echoed back whole and without their prefixes.
#[cfg(feature = "ed25519")]
#[tokio::test(flavor = "current_thread")]
async fn echoed_bearer_tokens_api_keys_and_signing_keys_never_reach_storage() {
    let (whsk, old) = ("6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbc=", "c2Vjb25kIGtleSBvZiB0aGUgcm90YXRpb24=");
    for (auth, secret) in [
        (r#"{"type": "bearer", "token": "tok-s3cr3t.abc"}"#, "tok-s3cr3t.abc"),
        (r#"{"type": "api_key", "header": "X-Api-Key", "value": "key-s3cr3t-xyz"}"#, "key-s3cr3t-xyz"),
    ] {
        let workflows = WorkflowSet::from_json(&format!(
            r#"{{"workflows": [{{"id": "w", "module": "Leads", "trigger": "every_save",
          "actions": [{{"title": "Notify", "url": "https://receiver.example/hook", "content_type": "JSON",
            "auth": {auth}, "headers": {{"X-Tenant": "acme"}},
            "signing_keys": [{{"secret": "whsk_{whsk}"}}, {{"secret": "whsec_{old}", "expires_at": "2000-01-01T00:00:00Z"}}],
            "parameters": [{{"name": "public_id", "field": "id"}}]}}]}}]}}"#
        ))
        .unwrap();
        let echo = format!(
            "HTTP/1.1 echo\r\nAuthorization: Bearer {secret}\r\nX-Api-Key: {secret}\r\nX-Debug: keys whsk_{whsk} \
             whsec_{old} / {whsk} {old}"
        );
        let proxy = format!("proxy said: Authorization: Bearer {secret} rejected");
        leaks_nothing(Some(workflows), &echo, &proxy, &[secret, whsk, old]).await;
    }
}

/// Delivers three events (a success, a failure and a transport error, then the retries) to a receiver answering
/// with `echo`, and asserts that none of `secrets` is in the log, an error, `Debug`, the tracing output, or any
/// byte of the SQLite file and its WAL.
async fn leaks_nothing(workflows: Option<WorkflowSet>, echo: &str, proxy: &str, secrets: &[&str]) {
    let traced = Arc::new(std::sync::Mutex::new(String::new()));
    let _tracing = tracing::subscriber::set_default(Capture(traced.clone()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let storage = Arc::new(SqliteStorage::open(&path).unwrap());
    let http = Arc::new(
        MockHttp::with_fallback(MockReply::status(200).body(echo.to_owned()))
            .then(MockReply::status(500).body(echo.to_owned()))
            .then(MockReply::error(crm_webhooks::ports::HttpError::new(
                crm_webhooks::ports::HttpErrorKind::Connect,
                proxy.to_owned(),
            ))),
    );
    let (engine, clock) = make_engine(storage.clone(), http.clone(), Arc::new(RecordingMailer::new()));
    if let Some(workflows) = workflows {
        engine.set_workflows("acme", workflows).unwrap();
    }
    for n in 0..3 {
        engine.on_event(&lead(n)).await.unwrap();
    }
    engine.run_until_idle(10).await.unwrap();
    clock.advance(Duration::hours(2));
    engine.run_until_idle(10).await.unwrap();
    // A worker too, for its own tracing events.
    let worker = crm_webhooks::Worker::new(engine.clone()).poll_interval(std::time::Duration::from_millis(5)).spawn();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    worker.shutdown().await;
    let log = engine.log(&LogQuery::tenant("acme").limit(1000)).await.unwrap();
    assert!(log.iter().any(|e| e.response_snippet.as_deref().is_some_and(|s| s.contains("[redacted]"))));
    let traced = traced.lock().unwrap().clone();
    assert!(traced.contains("tenant=acme"), "the tracing output was captured: {traced}");
    let mut everything = format!("{log:?} {:?} {:?} {traced}", engine.workflows("acme"), engine);
    for entry in &log {
        everything.push_str(&format!("{:?}", engine.delivery("acme", entry.delivery_id).await.unwrap()));
    }
    drop(engine);
    for file in ["webhooks.db", "webhooks.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
            everything.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    for secret in secrets {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

/// Collects every span field and event of the tracing output as text.
struct Capture(Arc<std::sync::Mutex<String>>);

struct Fields(Arc<std::sync::Mutex<String>>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let mut text = self.0.lock().unwrap();
        text.push_str(&format!("{}={:?} ", field.name(), value).replace('"', ""));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut Fields(self.0.clone()));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(self.0.clone()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        event.record(&mut Fields(self.0.clone()));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
