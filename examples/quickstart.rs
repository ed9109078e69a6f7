//! The whole path once, for real: a local HTTP receiver, embedded SQLite, the README's workflow, one event, a
//! worker until every delivery is settled, the delivery log printed as a table, and the failure email. The retry
//! schedule is the product's (1 h, 2 h, 4 h) scaled down to seconds for the demo, so the broken receiver's
//! delivery walks through its three retries to Failed in about seven seconds. With the feature `admin`
//! (`cargo run --features admin --example quickstart`) it then serves the same log as the admin page and prints its
//! URL, until Ctrl-C.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crm_webhooks::ports::User;
use crm_webhooks::retry::RetrySchedule;
use crm_webhooks::testing::{RecordingMailer, StaticDirectory};
use crm_webhooks::{Engine, LogQuery, RecordEvent, ReqwestClient, SqliteStorage, Worker, WorkflowSet};

type Received = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// A receiver like a third-party app: `/invoices` creates (201), `/contacts` updates (200), `/broken` fails (500).
async fn start_receiver() -> std::io::Result<(SocketAddr, Received)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let received: Received = Arc::default();
    let log = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let content_type =
                            parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
                        log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((
                            parts.method.to_string(),
                            parts.uri.path().to_owned(),
                            content_type.to_owned(),
                            String::from_utf8_lossy(&body).into_owned(),
                        ));
                        let (status, answer) = match parts.uri.path() {
                            "/invoices" => (201, r#"{"invoice":"INV-0001"}"#),
                            "/contacts" => (200, "updated"),
                            _ => (500, "internal error"),
                        };
                        let mut response = Response::new(Full::new(Bytes::from_static(answer.as_bytes())));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok((address, received))
}

fn workflows(base: &str) -> String {
    format!(
        r#"{{"workflows": [{{"id": "deal-won-invoice", "name": "Closed deal to accounting", "module": "Potentials",
  "trigger": "every_save",
  "criteria": {{"all": [{{"field": "sales_stage", "op": "is", "value": "Closed Won"}}], "any": []}},
  "actions": [
    {{"kind": "webhook", "title": "Create invoice", "description": "Push the won deal",
      "url": "{base}/invoices", "method": "POST", "content_type": "JSON",
      "auth": {{"type": "basic", "username": "api", "password": "s3cret"}},
      "parameters": [{{"name": "public_id", "value": "ACME-42"}}, {{"name": "amount", "field": "amount"}},
        {{"name": "customer.name", "field": "account_name"}}, {{"name": "summary", "template": "Deal ${{potentialname}} won"}}]}},
    {{"kind": "webhook", "title": "Update contact", "url": "{base}/contacts", "method": "PUT", "content_type": "FORM",
      "parameters": [{{"name": "account", "field": "account_name"}}, {{"name": "stage", "field": "sales_stage"}}]}},
    {{"kind": "webhook", "title": "Notify broken app", "url": "{base}/broken", "method": "POST", "content_type": "XML",
      "parameters": [{{"name": "deal.name", "field": "potentialname"}}, {{"name": "deal.amount", "field": "amount"}}]}}
  ]}}]}}"#
    )
}

const EVENT: &str = r#"{"tenant": "acme", "module": "Potentials", "record_id": "13x42", "change": "updated",
 "owner": "19x1", "actor": "19x5", "fields": {"sales_stage": "Closed Won", "amount": 1200.5,
 "account_name": "Globex", "potentialname": "Big deal"}, "previous": {"sales_stage": "Negotiation"}}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (address, received) = start_receiver().await?;
    let base = format!("http://{address}");
    println!("receiver listening on {base}");

    let dir = tempfile::tempdir()?;
    let db = dir.path().join("webhooks.sqlite3");
    let storage = Arc::new(SqliteStorage::open(&db)?);
    println!("queue and log in {}", db.display());

    // The receiver is on loopback, which the SSRF guard refuses by default.
    let http = Arc::new(ReqwestClient::builder().allow_private_networks(true).build()?);
    let user = |id: &str, name: &str, active: bool, admin: bool| User {
        id: id.into(),
        name: name.into(),
        email: format!("{}@acme.test", name.split(' ').next().unwrap_or(id).to_lowercase()),
        active,
        admin,
    };
    // The record's owner, an active admin, and an admin who left: the failure email goes to the first two.
    let directory = Arc::new(
        StaticDirectory::new()
            .user("acme", user("19x1", "Olga Owner", true, false))
            .user("acme", user("19x2", "Ada Admin", true, true))
            .user("acme", user("19x3", "Lee Left", false, true)),
    );
    // The product's schedule is 1 h, 2 h and 4 h after a failure; the demo waits seconds instead.
    let demo_schedule = RetrySchedule::new([1, 2, 4].map(Duration::from_secs).to_vec())?;
    println!("retries after 1 s, 2 s and 4 s (the product's 1 h, 2 h and 4 h, scaled down for the demo)");
    let mailer = Arc::new(RecordingMailer::new());
    let engine = Engine::builder()
        .storage(storage)
        .http(http)
        .mailer(mailer.clone())
        .directory(directory)
        .retry_schedule(demo_schedule)
        .build()?;
    engine.set_workflows("acme", WorkflowSet::from_json(&workflows(&base))?)?;

    let event: RecordEvent = serde_json::from_str(EVENT)?;
    let ids = engine.on_event(&event).await?;
    println!("record 13x42 saved: {} webhooks queued\n", ids.len());

    let worker = Worker::new(engine.clone()).poll_interval(Duration::from_millis(20)).spawn();
    let settled = async {
        loop {
            let mut waiting = 0;
            for id in &ids {
                // Delivered, or failed for good after its last retry.
                let delivery = engine.delivery("acme", *id).await?;
                if delivery.is_none_or(|d| !d.status.is_settled()) {
                    waiting += 1;
                }
            }
            // ... and the failure email sent.
            if waiting == 0 && !mailer.sent().is_empty() {
                return Ok::<_, crm_webhooks::EngineError>(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), settled).await??;
    worker.shutdown().await;

    let header = ["at", "status", "action", "attempt", "http", "next attempt", "message"];
    println!(
        "{:<20}  {:<10}  {:<18}  {:>7}  {:>4}  {:<25}  {}",
        header[0], header[1], header[2], header[3], header[4], header[5], header[6]
    );
    let mut entries = engine.log(&LogQuery::tenant("acme")).await?;
    entries.reverse();
    for e in &entries {
        println!(
            "{:<20}  {:<10}  {:<18}  {:>7}  {:>4}  {:<25}  {}{}",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.status.as_str(),
            e.action,
            e.attempt,
            e.http_status.map(|s| s.to_string()).unwrap_or_default(),
            e.next_attempt_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default(),
            e.message,
            e.error.as_deref().map(|err| format!(" ({err})")).unwrap_or_default(),
        );
    }

    println!("\nwhat the receiver got:");
    let received = received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let mut by_path: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for (method, path, content_type, body) in received {
        by_path.insert(path, (method, content_type, body));
    }
    for (path, (method, content_type, body)) in by_path {
        println!("  {method} {path} [{content_type}]\n    {body}");
    }
    let emails = mailer.sent();
    let to: Vec<String> =
        emails.iter().map(|e| format!("{} <{}>", e.to_name.as_deref().unwrap_or_default(), e.to)).collect();
    println!(
        "\nthe failure email, to the record's owner and every active admin ({}; not Lee Left, who left):",
        to.join(", ")
    );
    if let Some(email) = emails.first() {
        println!("  subject: {}", email.subject);
        for line in email.body.lines() {
            println!("    {line}");
        }
    }
    let usage = engine.usage("acme").await?;
    println!("\nusage today ({}): {} calls", usage.day, usage.used);
    #[cfg(feature = "admin")]
    serve_admin(engine).await?;
    Ok(())
}

/// With the feature `admin`: the same log in a browser, until Ctrl-C (or `QUICKSTART_SERVE_SECONDS` seconds). A
/// demo: every request is tenant `acme`'s admin; a real host plugs in its own session check (see the README).
#[cfg(feature = "admin")]
async fn serve_admin(engine: Engine) -> Result<(), Box<dyn std::error::Error>> {
    use crm_webhooks::admin::{self, AdminKey, Caller, Refusal};
    // 32 random bytes for the form tokens (a real host loads one key, the same on every server, from its config).
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let authorize = |_: &http::request::Parts| Ok::<_, Refusal>(Caller::new("acme", "19x1"));
    let app = axum::Router::new().nest("/settings/webhooks", admin::router(engine, authorize, AdminKey::new(key)?));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("\nthe webhook log in a browser: http://{}/settings/webhooks (Ctrl-C stops it)", listener.local_addr()?);
    let seconds = std::env::var("QUICKSTART_SERVE_SECONDS").ok().and_then(|s| s.parse().ok());
    let stop = async move {
        match seconds {
            Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    axum::serve(listener, app).with_graceful_shutdown(stop).await?;
    Ok(())
}
