//! Delivery policy per action: `"tls"` (a private CA, mutual TLS) and `"timeout_seconds"`, against loopback
//! receivers (HTTPS with certificates made at run time, and a slow plain-HTTP one) through `ReqwestClient`, and
//! the engine's lease rule for action timeouts. Nothing here contacts any address but 127.0.0.1.
#![cfg(all(feature = "reqwest", feature = "tokio"))]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use crm_webhooks::adapters::reqwest::ReqwestClient;
use crm_webhooks::engine::RegisterError;
use crm_webhooks::ports::{HttpErrorKind, RequestOptions};
use crm_webhooks::testing::{ManualClock, MockHttp, RecordingMailer, StaticDirectory};
use crm_webhooks::workflow::{KeySource, PemSource};
use crm_webhooks::{
    Change, DeliveryStatus, Engine, HttpClient, LogEntry, LogQuery, MemoryStorage, RecordEvent, Secret, WebhookAction,
    WorkflowSet,
};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// A CA made for one test: its certificate's PEM, and what signs certificates under it.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa { pem, issuer: Issuer::new(params, key) }
    }

    /// A certificate for these names (IP addresses become IP SANs), and its key, both PEM.
    fn issue(&self, names: &[&str]) -> (String, String) {
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let key = KeyPair::generate().unwrap();
        (params.signed_by(&key, &self.issuer).unwrap().pem(), key.serialize_pem())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A receiver on 127.0.0.1: HTTPS with `server` (certificate, key) when given, asking for a client certificate
/// signed by `client_ca` when given; plain HTTP otherwise. `/slow` answers after two seconds, anything else at once.
async fn receiver(server: Option<(String, String)>, client_ca: Option<&TestCa>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = server.map(|(cert, key)| {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let builder =
            rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                    .build()
                    .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                    if request.uri().path() == "/slow" {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let http1 = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(acceptor) => {
                        // A refused handshake (no or an unknown client certificate) ends the connection here.
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = http1.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = http1.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    addr
}

fn client() -> ReqwestClient {
    ReqwestClient::builder().allow_private_networks(true).build().unwrap()
}

/// A POST of one attempt as the engine sends it: the action's options in the extensions.
fn request_for(action: &WebhookAction, url: &str) -> http::Request<Bytes> {
    let mut request = http::Request::post(url).body(Bytes::from_static(b"{}")).unwrap();
    let mut options = RequestOptions::default();
    if let Some(tls) = action.tls() {
        options = options.with_tls(Arc::clone(tls));
    }
    if let Some(timeout) = action.timeout() {
        options = options.with_timeout(timeout);
    }
    request.extensions_mut().insert(options);
    request
}

fn action(json: serde_json::Value) -> WebhookAction {
    let mut base = serde_json::json!({"title": "Hook", "url": "https://127.0.0.1/hook", "content_type": "JSON"});
    base.as_object_mut().unwrap().extend(json.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

#[tokio::test]
async fn a_private_ca_on_the_action_is_trusted_and_without_it_the_handshake_fails_as_tls() {
    let ca = TestCa::new();
    let addr = receiver(Some(ca.issue(&["localhost", "127.0.0.1"])), None).await;
    let url = format!("https://127.0.0.1:{}/hook", addr.port());
    let client = client();

    let trusting = action(serde_json::json!({"tls": {"ca_certificates": [ca.pem]}}));
    let response = client.send(request_for(&trusting, &url)).await.unwrap();
    assert_eq!((response.status(), response.body().as_ref()), (http::StatusCode::OK, b"ok".as_ref()));

    let plain = http::Request::post(url.as_str()).body(Bytes::new()).unwrap();
    let error = client.send(plain).await.unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::Tls, "{error}");
    assert!(error.message().contains("UnknownIssuer"), "names the certificate problem: {error}");

    // Another CA on the action does not make this receiver trusted either.
    let other = action(serde_json::json!({"tls": {"ca_certificates": [TestCa::new().pem]}}));
    let error = client.send(request_for(&other, &url)).await.unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::Tls, "{error}");
}

#[tokio::test]
async fn a_receiver_asking_for_a_client_certificate_takes_the_configured_one_and_refuses_none() {
    let (server_ca, client_ca) = (TestCa::new(), TestCa::new());
    let addr = receiver(Some(server_ca.issue(&["127.0.0.1"])), Some(&client_ca)).await;
    let url = format!("https://127.0.0.1:{}/hook", addr.port());
    let client = client();
    let (cert, key) = client_ca.issue(&["crm.example"]);

    // The key from a file, as an on-premises installation keeps it.
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("crm.key");
    std::fs::write(&key_path, &key).unwrap();
    let mutual = WebhookAction::builder("Hook", url.as_str(), crm_webhooks::payload::ContentType::Json)
        .tls_ca_certificate(PemSource::Pem(server_ca.pem.clone()))
        .tls_client_certificate(PemSource::Pem(cert.clone()), KeySource::Path(key_path))
        .build()
        .unwrap();
    let response = client.send(request_for(&mutual, &url)).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);

    let anonymous = action(serde_json::json!({"tls": {"ca_certificates": [server_ca.pem]}}));
    let error = client.send(request_for(&anonymous, &url)).await.unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::Tls, "{error}");
    assert!(error.message().contains("CertificateRequired"), "{error}");

    // A client certificate from a CA the receiver does not know is refused as well.
    let (stranger, stranger_key) = TestCa::new().issue(&["crm.example"]);
    let unknown = WebhookAction::builder("Hook", url.as_str(), crm_webhooks::payload::ContentType::Json)
        .tls_ca_certificate(PemSource::Pem(server_ca.pem.clone()))
        .tls_client_certificate(PemSource::Pem(stranger), KeySource::Pem(Secret::new(stranger_key)))
        .build()
        .unwrap();
    let error = client.send(request_for(&unknown, &url)).await.unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::Tls, "{error}");
    assert!(!error.message().contains("PRIVATE KEY"), "{error}");
}

fn engine_on(http: Arc<dyn HttpClient>, lease: Duration) -> Engine {
    Engine::builder()
        .storage(Arc::new(MemoryStorage::new()))
        .http(http)
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(StaticDirectory::new().tenant("acme", 5, chrono_tz::UTC, None)))
        .clock(Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap())))
        .lease(lease)
        .build()
        .unwrap()
}

/// One workflow of these actions (JSON objects without `content_type`).
fn workflows(actions: &[serde_json::Value]) -> WorkflowSet {
    let actions: Vec<serde_json::Value> = actions
        .iter()
        .map(|a| {
            let mut a = a.clone();
            a.as_object_mut().unwrap().insert("content_type".into(), "JSON".into());
            a
        })
        .collect();
    WorkflowSet::from_value(serde_json::json!({"workflows": [
        {"id": "w", "module": "Leads", "trigger": "every_save", "actions": actions}
    ]}))
    .unwrap()
}

/// Queues one event, runs one pass, and returns each action's result of its first attempt, by action title.
async fn deliver_once(engine: &Engine) -> Vec<LogEntry> {
    engine.on_event(&RecordEvent::new("acme", "Leads", "10x1", Change::Created, "19x1")).await.unwrap();
    engine.run_due().await.unwrap();
    let log = engine.log(&LogQuery::tenant("acme")).await.unwrap();
    let mut results: Vec<LogEntry> =
        log.into_iter().filter(|e| e.attempt == 1 && e.status != DeliveryStatus::Dispatched).collect();
    results.sort_by(|a, b| a.action.cmp(&b.action));
    results
}

#[tokio::test]
async fn through_the_engine_the_log_shows_the_trusted_success_and_the_untrusted_tls_failure() {
    let ca = TestCa::new();
    let addr = receiver(Some(ca.issue(&["127.0.0.1"])), None).await;
    let url = format!("https://127.0.0.1:{}/hook", addr.port());
    let engine = engine_on(Arc::new(client()), Duration::from_secs(300));
    engine
        .set_workflows(
            "acme",
            workflows(&[
                serde_json::json!({"title": "Trusted", "url": url, "tls": {"ca_certificates": [ca.pem]}}),
                serde_json::json!({"title": "Untrusted", "url": url}),
            ]),
        )
        .unwrap();
    let log = deliver_once(&engine).await;
    assert_eq!(log.len(), 2, "{log:?}");
    let (trusted, untrusted) = (&log[0], &log[1]);
    // Failed once, to be retried: a TLS failure may go away (a certificate renewed at the receiver).
    assert_eq!(
        (trusted.action.as_str(), trusted.status, trusted.http_status),
        ("Trusted", DeliveryStatus::Success, Some(200))
    );
    assert_eq!(untrusted.action, "Untrusted");
    assert_eq!(untrusted.status, DeliveryStatus::Queued);
    let error = untrusted.error.as_deref().unwrap_or_default();
    assert!(error.contains("TLS failed") && error.contains("UnknownIssuer"), "{untrusted:?}");
}

#[tokio::test]
async fn a_short_action_timeout_fails_a_slow_receiver_while_another_action_waits_for_it() {
    let addr = receiver(None, None).await;
    let slow = format!("http://127.0.0.1:{}/slow", addr.port());
    let client = client();

    let quick = action(serde_json::json!({"timeout_seconds": 1}));
    let error = client.send(request_for(&quick, &slow)).await.unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::Timeout, "{error}");

    let engine = engine_on(Arc::new(client), Duration::from_secs(300));
    engine
        .set_workflows(
            "acme",
            workflows(&[
                serde_json::json!({"title": "Impatient", "url": slow, "timeout_seconds": 1}),
                serde_json::json!({"title": "Patient", "url": slow}),
            ]),
        )
        .unwrap();
    let log = deliver_once(&engine).await;
    assert_eq!(log.len(), 2, "{log:?}");
    let (impatient, patient) = (&log[0], &log[1]);
    assert_eq!((patient.action.as_str(), patient.status), ("Patient", DeliveryStatus::Success), "{log:?}");
    assert_eq!((impatient.action.as_str(), impatient.status), ("Impatient", DeliveryStatus::Queued));
    assert!(impatient.error.as_deref().unwrap_or_default().contains("timed out"), "{impatient:?}");
}

#[test]
fn an_action_timeout_the_lease_does_not_cover_is_refused_when_registered() {
    // The client's 30 s timeout fits a 60 s lease exactly; an action's 45 s does not.
    let engine = engine_on(Arc::new(client()), Duration::from_secs(60));
    let refused = engine
        .set_workflows(
            "acme",
            workflows(&[serde_json::json!({"title": "Slow", "url": "https://r.example/h", "timeout_seconds": 45})]),
        )
        .unwrap_err();
    let RegisterError::LeaseTooShort { tenant, workflow, action, timeout, lease } = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(
        (tenant.as_str(), workflow.as_str(), action.as_str(), *timeout, *lease),
        ("acme", "w", "Slow", Duration::from_secs(45), Duration::from_secs(60))
    );
    let text = refused.to_string();
    assert!(text.contains("timeout_seconds is 45 s") && text.contains("at most 30 s"), "{text}");
    assert!(engine.workflows("acme").is_none(), "nothing was registered");

    engine
        .set_workflows(
            "acme",
            workflows(&[serde_json::json!({"title": "Fits", "url": "https://r.example/h", "timeout_seconds": 30})]),
        )
        .unwrap();
    // The check holds whatever the client states: a MockHttp states no timeout.
    let mock = engine_on(Arc::new(MockHttp::new_ok()), Duration::from_secs(60));
    let over = workflows(&[serde_json::json!({"title": "Slow", "url": "https://r.example/h", "timeout_seconds": 31})]);
    assert!(matches!(mock.set_workflows("acme", over), Err(RegisterError::LeaseTooShort { .. })));
}

#[tokio::test]
async fn the_engine_hands_the_action_options_to_the_client() {
    let ca = TestCa::new();
    let http = Arc::new(MockHttp::new_ok());
    let engine = engine_on(http.clone(), Duration::from_secs(300));
    let set = workflows(&[
        serde_json::json!({"title": "A", "url": "https://r.example/a", "timeout_seconds": 5, "tls": {"ca_certificates": [ca.pem]}}),
        serde_json::json!({"title": "B", "url": "https://r.example/b"}),
    ]);
    let configured = Arc::clone(set.workflows()[0].actions()[0].tls().unwrap());
    engine.set_workflows("acme", set).unwrap();
    deliver_once(&engine).await;
    let mut requests = http.requests();
    requests.sort_by_key(|r| r.uri.to_string());
    let options = requests[0].options.as_ref().unwrap();
    assert_eq!(options.timeout, Some(Duration::from_secs(5)));
    assert_eq!(options.tls.as_ref().unwrap().fingerprint(), configured.fingerprint());
    assert!(requests[1].options.is_none(), "an action without options adds none");
}
