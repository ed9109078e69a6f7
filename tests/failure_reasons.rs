//! Failure codes end to end: the engine sends through the real `ReqwestClient` to receivers on loopback that fail
//! in each way (a name that does not resolve, a closed port, a listener whose queue is full, one that never
//! answers, a self-signed certificate, a redirect, an error status, the address guard), and the log entry of the
//! attempt carries the code and the details; the failure email carries the code and its hint. Offline: every
//! address is loopback, and the one host name is under `.invalid`, which never resolves.
//!
//! The certificate in `fixtures/` is self-signed for `localhost` and `127.0.0.1` (P-256, valid 100 years), made
//! with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500
//! -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE`
//! and converted to DER; it is trusted by nothing, which is the point.
#![cfg(all(feature = "reqwest", feature = "tokio"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use crm_webhooks::adapters::reqwest::ReqwestClient;
use crm_webhooks::failure::FailureReason;
use crm_webhooks::ports::User;
use crm_webhooks::retry::RetrySchedule;
use crm_webhooks::testing::{ManualClock, RecordingMailer, StaticDirectory};
use crm_webhooks::{Change, DeliveryStatus, Engine, LogEntry, LogQuery, MemoryStorage, RecordEvent, WorkflowSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Connecting gives up first, so a connect timeout is not taken for the total one.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(1000);

/// An engine over memory storage and a real client (private networks allowed unless `guarded`), with no retries,
/// so the first failure is the last and the owner is emailed.
fn engine(url: &str, guarded: bool) -> (Engine, Arc<RecordingMailer>) {
    let client = ReqwestClient::builder()
        .allow_private_networks(!guarded)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let owner =
        User { id: "owner".into(), name: String::new(), email: "owner@acme.test".into(), active: true, admin: false };
    let mailer = Arc::new(RecordingMailer::new());
    let engine = Engine::builder()
        .storage(Arc::new(MemoryStorage::new()))
        .http(Arc::new(client))
        .mailer(mailer.clone())
        .directory(Arc::new(StaticDirectory::new().tenant("acme", 5, chrono_tz::UTC, None).user("acme", owner)))
        .clock(Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap())))
        .retry_schedule(RetrySchedule::new(Vec::new()).unwrap())
        .build()
        .unwrap();
    let workflows = WorkflowSet::from_json(&format!(
        r#"{{"workflows": [{{"id": "w", "module": "Leads", "trigger": "every_save",
          "actions": [{{"title": "Notify", "url": "{url}", "content_type": "JSON",
            "parameters": [{{"name": "id", "field": "id"}}]}}]}}]}}"#
    ))
    .unwrap();
    engine.set_workflows("acme", workflows).unwrap();
    (engine, mailer)
}

/// Sends one delivery to `url` and returns the result entry of its attempt, and the emails sent.
async fn attempt(url: &str, guarded: bool) -> (LogEntry, Vec<crm_webhooks::ports::Email>) {
    let (engine, mailer) = engine(url, guarded);
    let event = RecordEvent::new("acme", "Leads", "10x1", Change::Created, "owner").field("id", 1);
    engine.on_event(&event).await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(20), engine.run_due()).await.expect("a pass ends").unwrap();
    assert_eq!(report.failed, 1, "{url}: {report:?}");
    let log = engine.log(&LogQuery::tenant("acme")).await.unwrap();
    let result = log.into_iter().find(|e| e.status == DeliveryStatus::Failed).expect("a result entry");
    (result, mailer.sent())
}

fn error(entry: &LogEntry) -> &str {
    entry.error.as_deref().unwrap_or_default()
}

/// A loopback port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A server that answers every connection with `response` (written whole after the request's head is read).
async fn answering(response: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                let mut read = Vec::new();
                while !read.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_dns() {
    let (entry, _) = attempt("http://no-such-receiver.invalid/hook", true).await;
    assert_eq!(entry.reason, Some(FailureReason::Dns), "{entry:?}");
    assert!(error(&entry).contains("no-such-receiver.invalid"), "the host is named: {}", error(&entry));
}

#[tokio::test]
async fn a_closed_port_is_a_refused_connection_and_the_email_says_so() {
    let port = closed_port().await;
    let (entry, emails) = attempt(&format!("http://127.0.0.1:{port}/hook"), false).await;
    assert_eq!(entry.reason, Some(FailureReason::ConnectionRefused), "{entry:?}");
    assert!(error(&entry).contains(&format!("127.0.0.1:{port}")), "{}", error(&entry));
    let email = emails.first().expect("the owner is emailed");
    assert!(email.body.contains("  1. ") && email.body.contains("[connection_refused]"), "{}", email.body);
    assert!(
        email.body.contains("Why the last attempt failed: Connection refused (connection_refused)"),
        "{}",
        email.body
    );
    assert!(email.body.contains(FailureReason::ConnectionRefused.hint()), "{}", email.body);
}

/// A listener whose accept queue is full: the kernel drops further connection attempts, so connecting times out.
#[tokio::test]
async fn a_listener_that_takes_no_more_connections_is_a_connect_timeout() {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    // Fill the queue (never accepted) until a connection attempt itself no longer completes.
    let mut held = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(address)).await {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => panic!("connecting to the listener failed: {e}"),
            Err(_) => break,
        }
        assert!(held.len() < 64, "the accept queue never filled");
    }
    let (entry, _) = attempt(&format!("http://{address}/hook"), false).await;
    assert_eq!(entry.reason, Some(FailureReason::ConnectTimeout), "{entry:?}");
    drop((held, listener));
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_response_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let (entry, _) = attempt(&format!("http://127.0.0.1:{port}/hook"), false).await;
    assert_eq!(entry.reason, Some(FailureReason::ResponseTimeout), "{entry:?}");
}

#[tokio::test]
async fn a_self_signed_certificate_is_tls_with_the_problem_named() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let certificate = rustls::pki_types::CertificateDer::from(include_bytes!("fixtures/self_signed_cert.der").to_vec());
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(include_bytes!("fixtures/self_signed_key.der").to_vec());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key.into())
        .unwrap();
    let config = Arc::new(config);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let Ok(mut connection) = rustls::ServerConnection::new(Arc::clone(&config)) else { return };
            // The handshake ends when the client refuses the certificate.
            while connection.is_handshaking() {
                if connection.complete_io(&mut stream).is_err() {
                    break;
                }
            }
        }
    });
    let (entry, _) = attempt(&format!("https://127.0.0.1:{port}/hook"), false).await;
    assert_eq!(entry.reason, Some(FailureReason::Tls), "{entry:?}");
    assert!(error(&entry).contains("not signed by a trusted authority (unknown issuer"), "{}", error(&entry));
}

#[tokio::test]
async fn a_redirect_names_its_target_and_never_its_token() {
    let location = "https://admin:hunter2@moved.example/v2/hook?token=S3CR3T-T0KEN#part";
    let port = answering(format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n")).await;
    let (engine, _) = engine(&format!("http://127.0.0.1:{port}/hook"), false);
    let event = RecordEvent::new("acme", "Leads", "10x1", Change::Created, "owner").field("id", 1);
    engine.on_event(&event).await.unwrap();
    engine.run_due().await.unwrap();
    let log = engine.log(&LogQuery::tenant("acme")).await.unwrap();
    let entry = log.iter().find(|e| e.status == DeliveryStatus::Failed).expect("a result entry");
    assert_eq!((entry.reason, entry.http_status), (Some(FailureReason::Redirect), Some(302)), "{entry:?}");
    assert!(error(entry).ends_with("to https://moved.example/v2/hook"), "{}", error(entry));
    let everything = serde_json::to_string(&log).unwrap();
    for secret in ["S3CR3T", "hunter2", "token=", "#part"] {
        assert!(!everything.contains(secret), "{secret} reached the log: {everything}");
    }
}

#[tokio::test]
async fn an_error_status_keeps_the_start_of_the_answer() {
    let body = r#"{"error":"the field email is required"}"#;
    let port = answering(format!(
        "HTTP/1.1 422 Unprocessable Entity\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let (entry, emails) = attempt(&format!("http://127.0.0.1:{port}/hook"), false).await;
    assert_eq!((entry.reason, entry.http_status), (Some(FailureReason::HttpStatus), Some(422)), "{entry:?}");
    assert_eq!(entry.response_snippet.as_deref(), Some(body));
    let email = emails.first().expect("the owner is emailed");
    assert!(email.body.contains(&format!("The receiver answered: {body}")), "{}", email.body);
}

#[tokio::test]
async fn the_address_guard_names_its_rule() {
    let port = closed_port().await;
    let (entry, _) = attempt(&format!("http://127.0.0.1:{port}/hook"), true).await;
    assert_eq!(entry.reason, Some(FailureReason::AddressGuard), "{entry:?}");
    assert!(error(&entry).contains("127.0.0.1 is a loopback address"), "the rule is named: {}", error(&entry));
}
