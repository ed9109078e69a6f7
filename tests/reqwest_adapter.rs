//! `ReqwestClient` against a real HTTP server on 127.0.0.1. Nothing here contacts any other address: the
//! decisions for public and other blocked addresses are unit-tested in `src/adapters/reqwest/guard.rs`.
#![cfg(feature = "reqwest")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use crm_webhooks::adapters::reqwest::{ReqwestClient, ReqwestClientBuilder, ReqwestError};
use crm_webhooks::ports::{HttpError, HttpErrorKind};
use crm_webhooks::HttpClient;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const BIG_BODY_LEN: usize = 200 * 1024;

#[derive(Debug, Clone)]
struct Seen {
    method: http::Method,
    path_and_query: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// A hyper server on 127.0.0.1 that records every connection and request.
struct TestServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (conn_count, seen) = (Arc::clone(&connections), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                conn_count.fetch_add(1, Ordering::SeqCst);
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(request, Arc::clone(&seen), addr));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestServer { addr, connections, requests }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }
}

fn big_body() -> Bytes {
    (0..BIG_BODY_LEN).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
}

async fn handle(
    request: http::Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    addr: SocketAddr,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path_and_query = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    seen.lock().unwrap().push(Seen { method: parts.method, path_and_query, headers: parts.headers, body });
    let response = http::Response::builder();
    let response = match parts.uri.path() {
        "/echo" => response
            .status(201)
            .header("content-type", "text/plain")
            .header("x-reply", "yes")
            .body(Full::new(Bytes::from_static(b"hello back"))),
        "/redirect" => response
            .status(302)
            .header("location", format!("http://127.0.0.1:{}/echo", addr.port()))
            .body(Full::new(Bytes::new())),
        "/big" => response.status(200).body(Full::new(big_body())),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            response.status(200).body(Full::new(Bytes::new()))
        }
        _ => response.status(404).body(Full::new(Bytes::new())),
    };
    Ok(response.unwrap())
}

fn private_client() -> ReqwestClient {
    ReqwestClient::builder().allow_private_networks(true).build().unwrap()
}

fn get(url: &str) -> http::Request<Bytes> {
    http::Request::get(url).body(Bytes::new()).unwrap()
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn post_arrives_with_method_path_headers_and_exact_body() {
    let server = TestServer::start().await;
    let body = Bytes::from_static(b"{\"name\":\"Acme\"}\0\xff\xfe raw bytes");
    let request = http::Request::post(server.url("/echo?module=Leads"))
        .header("content-type", "application/json")
        .header("x-webhook-test", "abc-123")
        .body(body.clone())
        .unwrap();

    let response = private_client().send(request).await.unwrap();

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, http::Method::POST);
    assert_eq!(seen[0].path_and_query, "/echo?module=Leads");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(seen[0].headers["x-webhook-test"], "abc-123");
    assert_eq!(seen[0].headers["content-length"], body.len().to_string().as_str());
    assert_eq!(seen[0].body, body);

    assert_eq!(response.status(), http::StatusCode::CREATED);
    assert_eq!(response.headers()["x-reply"], "yes");
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.body(), &Bytes::from_static(b"hello back"));
}

#[tokio::test]
async fn put_is_sent_as_put() {
    let server = TestServer::start().await;
    let request = http::Request::put(server.url("/echo")).body(Bytes::from_static(b"a=1&b=2")).unwrap();
    let response = private_client().send(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::CREATED);
    assert_eq!(server.requests()[0].method, http::Method::PUT);
    assert_eq!(server.requests()[0].body, Bytes::from_static(b"a=1&b=2"));
}

#[tokio::test]
async fn user_agent_is_crate_name_and_version() {
    let server = TestServer::start().await;
    private_client().send(get(&server.url("/echo"))).await.unwrap();
    let expected = format!("crm-webhooks/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(server.requests()[0].headers["user-agent"], expected.as_str());
}

#[tokio::test]
async fn user_agent_can_be_changed_and_a_request_header_wins() {
    let server = TestServer::start().await;
    let client = ReqwestClient::builder().allow_private_networks(true).user_agent("acme-crm/7").build().unwrap();
    client.send(get(&server.url("/echo"))).await.unwrap();
    let own = http::Request::get(server.url("/echo")).header("user-agent", "per-request/1").body(Bytes::new());
    client.send(own.unwrap()).await.unwrap();
    let seen = server.requests();
    assert_eq!(seen[0].headers["user-agent"], "acme-crm/7");
    assert_eq!(seen[1].headers["user-agent"], "per-request/1");
}

#[tokio::test]
async fn redirect_is_returned_not_followed() {
    let server = TestServer::start().await;
    let response = private_client().send(get(&server.url("/redirect"))).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::FOUND);
    assert_eq!(response.headers()["location"], server.url("/echo").as_str());
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "the redirect must not be followed");
    assert_eq!(seen[0].path_and_query, "/redirect");
}

#[tokio::test]
async fn body_longer_than_the_cap_is_cut_at_the_cap() {
    let server = TestServer::start().await;
    let client = ReqwestClient::builder().allow_private_networks(true).max_response_body(1000).build().unwrap();
    let response = client.send(get(&server.url("/big"))).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.body().len(), 1000);
    assert_eq!(response.body(), &big_body().slice(..1000));
    // the header still says what the server sent
    assert_eq!(response.headers()["content-length"], BIG_BODY_LEN.to_string().as_str());
}

#[tokio::test]
async fn default_cap_is_64_kib() {
    let server = TestServer::start().await;
    let response = private_client().send(get(&server.url("/big"))).await.unwrap();
    assert_eq!(response.body().len(), 64 * 1024);
    assert_eq!(response.body(), &big_body().slice(..64 * 1024));
}

#[tokio::test]
async fn zero_cap_reads_no_body() {
    let server = TestServer::start().await;
    let client = ReqwestClient::builder().allow_private_networks(true).max_response_body(0).build().unwrap();
    let response = client.send(get(&server.url("/echo"))).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::CREATED);
    assert!(response.body().is_empty());
}

#[tokio::test]
async fn slow_server_hits_the_total_timeout() {
    let server = TestServer::start().await;
    let client =
        ReqwestClient::builder().allow_private_networks(true).timeout(Duration::from_millis(300)).build().unwrap();
    let error = client.send(get(&server.url("/slow"))).await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(error.kind(), HttpErrorKind::Timeout);
    assert!(error.is_transient());
    assert!(error.message().contains(&format!("GET http://127.0.0.1:{}", server.port())), "{error}");
}

#[tokio::test]
async fn closed_port_is_a_refused_connection() {
    let port = closed_port().await;
    let error = private_client().send(get(&format!("http://127.0.0.1:{port}/hook"))).await.unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::ConnectionRefused, "{error}");
    assert!(error.is_transient());
    assert!(error.message().contains(&format!("127.0.0.1:{port}")), "{error}");
}

#[tokio::test]
async fn a_non_tls_server_on_https_is_a_tls_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let error = private_client().send(get(&format!("https://127.0.0.1:{port}/hook"))).await.unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::Tls, "{error}");
}

fn assert_refused(error: &HttpError, expected_in_message: &[&str]) {
    assert_eq!(error.kind(), HttpErrorKind::Refused, "{error}");
    assert!(error.is_permanent());
    for part in expected_in_message {
        assert!(error.message().contains(part), "{part:?} not in {error}");
    }
}

#[tokio::test]
async fn default_guard_refuses_loopback_and_nothing_reaches_the_server() {
    let server = TestServer::start().await;
    let client = ReqwestClient::new().unwrap();
    let port = server.port();

    let error = client.send(get(&server.url("/echo"))).await.unwrap_err();
    assert_refused(&error, &["127.0.0.1", "loopback", "allow_private_networks"]);

    let error = client.send(get(&format!("http://localhost:{port}/echo"))).await.unwrap_err();
    assert_refused(&error, &["localhost", "127.0.0.1", "loopback"]);

    for host in ["[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "127.1", "2130706433", "0x7f.0.0.1"] {
        let error = client.send(get(&format!("http://{host}:{port}/echo"))).await.unwrap_err();
        assert_refused(&error, &["loopback"]);
    }
    let error = client.send(get(&format!("http://0.0.0.0:{port}/echo"))).await.unwrap_err();
    assert_refused(&error, &["unspecified"]);

    assert_eq!(server.connections(), 0, "a refused request must not connect");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn allow_private_networks_reaches_loopback() {
    let server = TestServer::start().await;
    let client = private_client();
    let by_ip = client.send(get(&server.url("/echo"))).await.unwrap();
    assert_eq!(by_ip.status(), http::StatusCode::CREATED);
    let by_name = client.send(get(&format!("http://localhost:{}/echo", server.port()))).await.unwrap();
    assert_eq!(by_name.status(), http::StatusCode::CREATED);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn allow_listed_cidr_reaches_loopback_and_others_stay_refused() {
    let server = TestServer::start().await;
    let port = server.port();
    let allowed = ReqwestClient::builder().allow_cidr("127.0.0.1/32".parse().unwrap()).build().unwrap();
    assert_eq!(allowed.send(get(&server.url("/echo"))).await.unwrap().status(), http::StatusCode::CREATED);
    let by_name = allowed.send(get(&format!("http://localhost:{port}/echo"))).await.unwrap();
    assert_eq!(by_name.status(), http::StatusCode::CREATED);
    assert_eq!(server.requests().len(), 2);

    // the allow list is exact: 127.0.0.2 is outside 127.0.0.1/32
    let error = allowed.send(get(&format!("http://127.0.0.2:{port}/echo"))).await.unwrap_err();
    assert_refused(&error, &["127.0.0.2", "loopback"]);

    let elsewhere = ReqwestClient::builder().allow_cidrs(["10.0.0.0/8".parse().unwrap()]).build().unwrap();
    let error = elsewhere.send(get(&server.url("/echo"))).await.unwrap_err();
    assert_refused(&error, &["loopback"]);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn keep_alive_reuses_the_connection() {
    let server = TestServer::start().await;
    let client = private_client();
    for _ in 0..3 {
        let response = client.send(get(&server.url("/echo"))).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::CREATED);
    }
    assert_eq!(server.requests().len(), 3);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn messages_never_contain_credentials_path_or_query() {
    let secrets = ["hunter2", "s3cr3t-bearer", "T0KEN", "SECRETPATH"];
    let check = |error: &HttpError| {
        for secret in secrets {
            assert!(!error.message().contains(secret), "{secret} leaked in {error}");
            assert!(!error.to_string().contains(secret), "{secret} leaked in {error}");
        }
    };
    let request = |port: u16, path: &str| {
        http::Request::post(format!("http://admin:hunter2@127.0.0.1:{port}/hooks/SECRETPATH{path}?token=T0KEN"))
            .header("authorization", "Bearer s3cr3t-bearer")
            .body(Bytes::from_static(b"{}"))
            .unwrap()
    };

    let server = TestServer::start().await;
    let refused = ReqwestClient::new().unwrap().send(request(server.port(), "")).await.unwrap_err();
    assert_eq!(refused.kind(), HttpErrorKind::Refused);
    check(&refused);

    let port = closed_port().await;
    let connect = private_client().send(request(port, "")).await.unwrap_err();
    assert_eq!(connect.kind(), HttpErrorKind::ConnectionRefused);
    check(&connect);

    let client =
        ReqwestClient::builder().allow_private_networks(true).timeout(Duration::from_millis(200)).build().unwrap();
    let slow = http::Request::post(format!("http://admin:hunter2@127.0.0.1:{}/slow?token=T0KEN", server.port()))
        .header("authorization", "Bearer s3cr3t-bearer")
        .body(Bytes::new())
        .unwrap();
    let timeout = client.send(slow).await.unwrap_err();
    assert_eq!(timeout.kind(), HttpErrorKind::Timeout);
    check(&timeout);

    let bad_scheme =
        http::Request::post("ftp://admin:hunter2@127.0.0.1/SECRETPATH?token=T0KEN").body(Bytes::new()).unwrap();
    let invalid = private_client().send(bad_scheme).await.unwrap_err();
    assert_eq!(invalid.kind(), HttpErrorKind::InvalidRequest, "{invalid}");
    check(&invalid);
}

#[tokio::test]
async fn a_request_without_scheme_and_host_is_invalid() {
    let request = http::Request::post("/only/a/path").body(Bytes::new()).unwrap();
    let error = private_client().send(request).await.unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::InvalidRequest, "{error}");
    assert!(error.is_permanent());
}

#[test]
fn builder_rejects_zero_timeouts_and_bad_user_agents() {
    let zero = ReqwestClient::builder().timeout(Duration::ZERO).build().unwrap_err();
    assert!(matches!(zero, ReqwestError::ZeroTimeout { which: "total" }), "{zero}");
    let zero = ReqwestClient::builder().connect_timeout(Duration::ZERO).build().unwrap_err();
    assert!(matches!(zero, ReqwestError::ZeroTimeout { which: "connect" }), "{zero}");
    let agent = ReqwestClientBuilder::default().user_agent("bad\nagent").build().unwrap_err();
    assert!(matches!(agent, ReqwestError::InvalidUserAgent(_)), "{agent}");
}

/// reqwest (feature `rustls-no-provider`) panics when it has to pick a crypto provider itself and none is
/// installed process-wide; this test binary installs none, so building proves the client brings its own.
#[test]
fn client_builds_outside_a_runtime_without_a_process_wide_crypto_provider() {
    ReqwestClient::new().unwrap();
}
