//! The admin example's world, shared with the browser test (`tests/admin_browser.rs` includes this file): a
//! local receiver, SQLite in a temporary directory, a worker, the admin router behind a fixed demo caller, and
//! deliveries in every status already there when [`Demo::start`] returns.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Redirect;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crm_webhooks::admin::{self, AdminKey, Caller, Refusal};
use crm_webhooks::ports::User;
use crm_webhooks::retry::RetrySchedule;
use crm_webhooks::testing::{RecordingMailer, StaticDirectory};
use crm_webhooks::worker::WorkerHandle;
use crm_webhooks::{
    Change, Delivery, DeliveryId, DeliveryStatus, Edition, Engine, EngineError, RecordEvent, ReqwestClient,
    SqliteStorage, Worker, WorkflowSet,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where the router is mounted, as a CRM host would nest it under its settings.
pub const MOUNT: &str = "/settings/webhooks";

/// How long the receiver's slow path takes to answer: the delivery sent there stays Dispatched that long.
pub const SLOW_ANSWER: Duration = Duration::from_secs(300);

/// The tenant and user every request of the demo is taken to come from.
pub const TENANT: &str = "acme";
pub const USER: &str = "admin";

/// One seeded delivery: the status it was brought to, its id, and what it shows.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub status: DeliveryStatus,
    pub id: DeliveryId,
    pub about: &'static str,
}

/// The running demo. Dropping it stops the server, the workers and the receiver, and removes the database.
pub struct Demo {
    /// The admin pages' address: `http://127.0.0.1:<port>/settings/webhooks`.
    pub url: String,
    /// One delivery per status, in the order Success, Failed, Queued, Dispatched.
    pub seeded: Vec<Seeded>,
    tasks: Vec<JoinHandle<()>>,
    workers: Vec<WorkerHandle>,
    _dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        // The workers' handles only stop them when asked; a demo that goes away stops everything at once.
        for task in &self.tasks {
            task.abort();
        }
        self.workers.clear();
    }
}

/// A receiver like the apps a CRM's webhooks reach: `/invoices` creates (201), `/chat` takes it (200), `/broken`
/// fails (500), `/busy` is overloaded (503, "try again in an hour" with `Retry-After`), `/slow` answers after
/// [`SLOW_ANSWER`].
async fn start_receiver() -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let (status, body, retry_after) = match request.uri().path() {
                        "/invoices" => (201, r#"{"invoice":"INV-0042","status":"created"}"#, None),
                        "/chat" => (200, "ok", None),
                        "/busy" => (503, "over capacity, come back later", Some("3600")),
                        "/slow" => {
                            tokio::time::sleep(SLOW_ANSWER).await;
                            (200, "enriched, eventually", None)
                        }
                        _ => (500, r#"{"error":"NullPointerException in ContactSync.apply"}"#, None),
                    };
                    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
                    if let Some(seconds) = retry_after {
                        response.headers_mut().insert("retry-after", hyper::header::HeaderValue::from_static(seconds));
                    }
                    Ok::<_, Infallible>(response)
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok((address, task))
}

fn workflows(base: &str) -> String {
    format!(
        r#"{{"workflows": [
  {{"id": "deal-won", "name": "Closed deal to accounting", "module": "Potentials", "trigger": "every_save",
    "criteria": {{"all": [{{"field": "sales_stage", "op": "is", "value": "Closed Won"}}], "any": []}},
    "actions": [{{"title": "Create invoice", "url": "{base}/invoices", "method": "POST", "content_type": "JSON",
      "auth": {{"type": "basic", "username": "api", "password": "s3cret"}},
      "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      "parameters": [{{"name": "deal", "field": "potentialname"}}, {{"name": "amount", "field": "amount"}},
        {{"name": "customer.name", "field": "account_name"}}]}}]}},
  {{"id": "contact-sync", "name": "Contacts to the help desk", "module": "Contacts", "trigger": "every_save",
    "actions": [{{"title": "Update help desk contact", "url": "{base}/broken", "method": "PUT", "content_type": "XML",
      "parameters": [{{"name": "contact.name", "field": "lastname"}}, {{"name": "contact.email", "field": "email"}}]}}]}},
  {{"id": "new-lead", "name": "New leads to marketing", "module": "Leads", "trigger": "every_save",
    "actions": [
      {{"title": "Post to sales chat", "url": "{base}/chat", "method": "POST", "content_type": "FORM",
        "parameters": [{{"name": "text", "template": "New lead: ${{company}}"}}]}},
      {{"title": "Sync to marketing", "url": "{base}/busy", "method": "POST", "content_type": "JSON",
        "parameters": [{{"name": "company", "field": "company"}}, {{"name": "email", "field": "email"}}]}},
      {{"title": "Enrich lead", "url": "{base}/slow", "method": "POST", "content_type": "JSON",
        "parameters": [{{"name": "company", "field": "company"}}]}}]}}
]}}"#
    )
}

fn deal(record: &str, name: &str, amount: f64, account: &str) -> RecordEvent {
    RecordEvent::new(TENANT, "Potentials", record, Change::Updated, "19x1")
        .field("sales_stage", "Closed Won")
        .field("potentialname", name)
        .field("amount", amount)
        .field("account_name", account)
}

/// Waits (at most a minute) until `check` holds for the delivery.
async fn until(engine: &Engine, id: DeliveryId, what: &str, check: impl Fn(&Delivery) -> bool) -> Result<(), Error> {
    let wait = async {
        loop {
            if engine.delivery(TENANT, id).await?.as_ref().is_some_and(&check) {
                return Ok::<_, EngineError>(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .map_err(|_| format!("delivery {id} did not become {what} within a minute"))??;
    Ok(())
}

fn one(ids: &[DeliveryId], what: &str) -> Result<DeliveryId, Error> {
    match ids {
        [id] => Ok(*id),
        _ => Err(format!("{what}: expected one delivery, {} queued", ids.len()).into()),
    }
}

impl Demo {
    /// Starts everything, with the admin server on `127.0.0.1:port` (0: a free port), and returns once a
    /// delivery of every status is there (about ten seconds: the failing delivery's retries run first).
    pub async fn start(port: u16) -> Result<Demo, Error> {
        #[cfg(feature = "metrics")]
        prometheus();
        // First, so that a port already taken says so at once rather than after the seeding.
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let address = listener.local_addr()?;
        let (receiver, receiver_task) = start_receiver().await?;
        let base = format!("http://{receiver}");
        let dir = tempfile::tempdir()?;
        let storage = Arc::new(SqliteStorage::open(dir.path().join("webhooks.sqlite3"))?);
        // The receiver is on loopback, which the SSRF guard refuses by default. The timeout outlasts the slow
        // path, so its delivery stays Dispatched until it answers; the lease must cover the timeout.
        let http = Arc::new(
            ReqwestClient::builder()
                .allow_private_networks(true)
                .timeout(SLOW_ANSWER + Duration::from_secs(60))
                .build()?,
        );
        let user = |id: &str, name: &str, admin: bool| User {
            id: id.into(),
            name: name.into(),
            email: format!("{}@acme.test", name.to_lowercase()),
            active: true,
            admin,
        };
        let directory = StaticDirectory::new()
            .tenant(TENANT, 10, chrono_tz::UTC, Some(Edition::SalesHelpDeskProfessional))
            .user(TENANT, user("19x1", "Olga", false))
            .user(TENANT, user("19x2", "Ada", true));
        let engine = Engine::builder()
            .storage(storage)
            .http(http)
            .mailer(Arc::new(RecordingMailer::new()))
            .directory(Arc::new(directory))
            // The product's 1 h, 2 h and 4 h, scaled down to seconds for the demo.
            .retry_schedule(RetrySchedule::new([1, 2, 4].map(Duration::from_secs).to_vec())?)
            .lease(SLOW_ANSWER + Duration::from_secs(120))
            .build()?;
        engine.set_workflows(TENANT, WorkflowSet::from_json(&workflows(&base))?)?;

        // Two workers: a pass that has sent everything it claimed waits for its slowest request before it claims
        // again, so the one holding the slow delivery leaves the other to send retries and redeliveries.
        let poll = Duration::from_millis(100);
        let workers = vec![
            Worker::new(engine.clone()).poll_interval(poll).spawn(),
            Worker::new(engine.clone()).poll_interval(poll).spawn(),
        ];

        let mut invoices = Vec::new();
        for (record, name, amount, account) in [
            ("13x40", "Renewal 2027", 4800.0, "Initech"),
            ("13x41", "Pilot", 950.5, "Umbrella"),
            ("13x42", "Big deal", 1200.5, "Globex"),
        ] {
            invoices.push(one(&engine.on_event(&deal(record, name, amount, account)).await?, "a won deal")?);
        }
        let contact = RecordEvent::new(TENANT, "Contacts", "12x7", Change::Updated, "19x1")
            .field("lastname", "Nakamura <ops>")
            .field("email", "k.nakamura@globex.test");
        let failed = one(&engine.on_event(&contact).await?, "a contact change")?;
        for id in &invoices {
            until(&engine, *id, "Success", |d| d.status == DeliveryStatus::Success).await?;
        }
        // Four attempts, 1 s, 2 s and 4 s apart.
        until(&engine, failed, "Failed", |d| d.status == DeliveryStatus::Failed).await?;

        // Only now the lead, so that the slow request does not hold the worker that sends the retries above.
        let lead = RecordEvent::new(TENANT, "Leads", "10x9", Change::Created, "19x1")
            .field("company", "Soylent Corp")
            .field("email", "buyer@soylent.test");
        let lead_ids = engine.on_event(&lead).await?;
        let mut queued = None;
        let mut dispatched = None;
        for id in lead_ids {
            match engine.delivery(TENANT, id).await?.map(|d| d.action) {
                Some(action) if action == "Sync to marketing" => queued = Some(id),
                Some(action) if action == "Enrich lead" => dispatched = Some(id),
                _ => {}
            }
        }
        let (queued, dispatched) =
            queued.zip(dispatched).ok_or("the new lead did not queue its marketing and enrichment webhooks")?;
        until(&engine, queued, "Queued for a retry", |d| d.status == DeliveryStatus::Queued && d.attempts == 1).await?;
        until(&engine, dispatched, "Dispatched", |d| d.status == DeliveryStatus::Dispatched).await?;

        let key = AdminKey::new(random_key())?;
        // A demo: every request is the tenant's admin. A real host reads its own session here (see the README).
        let authorize = |_: &http::request::Parts| Ok::<_, Refusal>(Caller::new(TENANT, USER));
        let app = axum::Router::new()
            .route("/", get(|| async { Redirect::to(MOUNT) }))
            // Browsers ask every origin for one; a host serves its own.
            .route("/favicon.ico", get(|| async { http::StatusCode::NO_CONTENT }))
            .nest(MOUNT, admin::router(engine.clone(), authorize, key));
        // The operators' metrics in Prometheus text (feature `metrics`), as a host would expose them.
        #[cfg(feature = "metrics")]
        let app = app.route("/metrics", get(|| async { prometheus().map(|h| h.render()).unwrap_or_default() }));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the admin server stopped: {error}");
            }
        });

        let seeded = vec![
            Seeded {
                status: DeliveryStatus::Success,
                id: invoices[2],
                about: "an invoice the accounting app created (201)",
            },
            Seeded {
                status: DeliveryStatus::Failed,
                id: failed,
                about: "the help desk answered 500 four times (its retries are done); Redeliver it",
            },
            Seeded {
                status: DeliveryStatus::Queued,
                id: queued,
                about: "marketing answered 503 with Retry-After: 3600, so it waits an hour for its retry",
            },
            Seeded {
                status: DeliveryStatus::Dispatched,
                id: dispatched,
                about: "in flight: the enrichment service takes five minutes to answer",
            },
        ];
        Ok(Demo {
            url: format!("http://{address}{MOUNT}"),
            seeded,
            tasks: vec![server, receiver_task],
            workers,
            _dir: dir,
        })
    }
}

/// The Prometheus recorder of the process (feature `metrics`), installed the first time: the crate records through
/// the `metrics` facade, and this exporter renders what it recorded as Prometheus text.
#[cfg(feature = "metrics")]
fn prometheus() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().ok()).as_ref()
}

/// 32 random bytes for the form-token key (a real host loads the same key on every server from its config).
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key
}
