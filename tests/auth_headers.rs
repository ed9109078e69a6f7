//! Each auth type, custom headers and rotating signatures reach a real receiver on 127.0.0.1 through the engine
//! and `ReqwestClient`; the receiver echoes the credentials back, and the log keeps none of them.
#![cfg(all(feature = "reqwest", feature = "ed25519"))]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{Duration, TimeZone, Utc};
use crm_webhooks::adapters::reqwest::ReqwestClient;
use crm_webhooks::signature::verify_signature;
use crm_webhooks::testing::{ManualClock, RecordingMailer, StaticDirectory};
use crm_webhooks::{Change, Engine, LogQuery, MemoryStorage, RecordEvent, Secret, WorkflowSet};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_WHSEC: &str = "whsec_c2Vjb25kIGtleSBvZiB0aGUgcm90YXRpb24=";
const WHSK: &str = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbc=";

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// A hyper receiver on 127.0.0.1 that records each request and answers 200 with the credentials it got, as
/// receivers that echo requests do.
async fn receiver() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let record = Arc::clone(&record);
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let echo = ["authorization", "x-api-key"]
                            .iter()
                            .filter_map(|name| parts.headers.get(*name))
                            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                            .collect::<Vec<_>>()
                            .join("\n");
                        let path = parts.uri.path().to_owned();
                        record.lock().unwrap().push(Seen { path, headers: parts.headers, body });
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(format!("you sent: {echo}")))))
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (addr, seen)
}

fn workflows(addr: SocketAddr, old_key_expiry: chrono::DateTime<Utc>) -> WorkflowSet {
    let url = |path: &str| format!("http://{addr}/{path}");
    let action = |title: &str, extra: serde_json::Value| {
        let mut action = serde_json::json!({"title": title, "url": url(title), "content_type": "JSON",
            "parameters": [{"name": "id", "field": "id"}]});
        action.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        action
    };
    let doc = serde_json::json!({"workflows": [
        {"id": "auth", "module": "Leads", "trigger": "every_save", "actions": [
            action("basic", serde_json::json!({"auth": {"type": "basic", "username": "api", "password": "s3cret"},
                "headers": {"X-Tenant": "acme", "X-Trace": "on"}})),
            action("bearer", serde_json::json!({"auth": {"type": "bearer", "token": "tok-abc.123"},
                "headers": [["X-Tenant", "acme"]]})),
            action("api_key", serde_json::json!({"auth": {"type": "api_key", "header": "X-Api-Key", "value": "key-xyz"}})),
        ]},
        {"id": "signed", "module": "Leads", "trigger": "every_save", "actions": [
            action("none", serde_json::json!({"auth": {"type": "none"}, "signing_secret": WHSEC,
                "signing_keys": [{"secret": WHSK}, {"secret": OLD_WHSEC, "expires_at": old_key_expiry.to_rfc3339()}]})),
        ]},
    ]});
    WorkflowSet::from_json(&doc.to_string()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_auth_type_custom_headers_and_rotating_signatures_reach_a_real_receiver() {
    let (addr, seen) = receiver().await;
    let start = Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap();
    let clock = ManualClock::new(start);
    let engine = Engine::builder()
        .storage(Arc::new(MemoryStorage::new()))
        .http(Arc::new(ReqwestClient::builder().allow_private_networks(true).build().unwrap()))
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(StaticDirectory::new().tenant("acme", 5, chrono_tz::UTC, None)))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let expiry = start + Duration::hours(1);
    engine.set_workflows("acme", workflows(addr, expiry)).unwrap();
    let lead = |n: u32| RecordEvent::new("acme", "Leads", format!("10x{n}"), Change::Created, "owner").field("id", n);

    engine.on_event(&lead(1)).await.unwrap();
    engine.run_until_idle(10).await.unwrap();
    let requests = std::mem::take(&mut *seen.lock().unwrap());
    let by_path = |path: &str| requests.iter().find(|r| r.path == path).unwrap_or_else(|| panic!("no {path}"));
    let header = |path: &str, name: &str| by_path(path).headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(requests.len(), 4, "{requests:?}");

    assert_eq!(header("/basic", "authorization").as_deref(), Some("Basic YXBpOnMzY3JldA=="));
    assert_eq!(header("/basic", "x-tenant").as_deref(), Some("acme"));
    assert_eq!(header("/basic", "x-trace").as_deref(), Some("on"));
    assert_eq!(header("/bearer", "authorization").as_deref(), Some("Bearer tok-abc.123"));
    assert_eq!(header("/bearer", "x-tenant").as_deref(), Some("acme"));
    assert_eq!(header("/api_key", "x-api-key").as_deref(), Some("key-xyz"));
    assert_eq!(header("/api_key", "authorization"), None);
    assert_eq!(header("/none", "authorization"), None);
    for path in ["/basic", "/bearer", "/api_key"] {
        assert_eq!(header(path, "webhook-signature"), None, "{path} has no signing key");
        assert_eq!(header(path, "content-type").as_deref(), Some("application/json"));
    }

    // Before the old key's expiry: the signing secret, the Ed25519 key and the old key all sign.
    let check = |seen: &Seen, at: chrono::DateTime<Utc>, old_signs: bool| {
        let text = |name: &str| seen.headers[name].to_str().unwrap().to_owned();
        let (id, signature) = (text("webhook-id"), text("webhook-signature"));
        assert_eq!(text("webhook-timestamp"), at.timestamp().to_string());
        let versions: Vec<&str> = signature.split(' ').filter_map(|entry| entry.split(',').next()).collect();
        assert_eq!(versions, if old_signs { vec!["v1", "v1a", "v1"] } else { vec!["v1", "v1a"] }, "{signature}");
        let public = crm_webhooks::signature::PublicKey::from_secret(&Secret::new(WHSK)).unwrap();
        assert!(verify_signature(&Secret::new(WHSEC), &id, at.timestamp(), &seen.body, &signature));
        assert!(verify_signature(&public, &id, at.timestamp(), &seen.body, &signature));
        assert_eq!(verify_signature(&Secret::new(OLD_WHSEC), &id, at.timestamp(), &seen.body, &signature), old_signs);
        // And by an Ed25519 independent of the crate's.
        use base64::Engine as _;
        let v1a = signature.split(' ').find_map(|entry| entry.strip_prefix("v1a,")).unwrap();
        let bytes: [u8; 64] = base64::engine::general_purpose::STANDARD.decode(v1a).unwrap().try_into().unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(public.as_bytes()).unwrap();
        let mut content = format!("{id}.{}.", at.timestamp()).into_bytes();
        content.extend_from_slice(&seen.body);
        key.verify_strict(&content, &ed25519_dalek::Signature::from_bytes(&bytes)).unwrap();
    };
    check(by_path("/none"), start, true);

    // After it, the old key no longer signs.
    clock.advance(Duration::hours(2));
    engine.on_event(&lead(2)).await.unwrap();
    engine.run_until_idle(10).await.unwrap();
    let later = std::mem::take(&mut *seen.lock().unwrap());
    let signed = later.iter().find(|r| r.path == "/none").unwrap();
    check(signed, start + Duration::hours(2), false);

    // The receivers echoed every credential; the log holds none of them.
    let log = engine.log(&LogQuery::tenant("acme").limit(100)).await.unwrap();
    let snippets: Vec<&str> = log.iter().filter_map(|entry| entry.response_snippet.as_deref()).collect();
    assert_eq!(snippets.iter().filter(|s| s.contains("[redacted]")).count(), 6, "{snippets:#?}");
    let everything = format!("{log:?} {:?}", engine.workflows("acme"));
    for secret in ["s3cret", "YXBpOnMzY3JldA", "tok-abc.123", "key-xyz", "MfKQ9r8GKYqrTwjU", "6Xb/dCcHpPea"] {
        assert!(!everything.contains(secret), "{secret} leaked into the log or Debug");
    }
}
