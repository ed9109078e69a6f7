//! `ReqwestClient` against receivers that misbehave on purpose, all on 127.0.0.1: one that never answers, one
//! whose body never ends, one that trickles, one whose head never ends, and the engine delivering to a silent
//! receiver and a healthy one at once. Every receiver stops by itself (it writes at most `SERVER_WRITE_LIMIT`
//! bytes and lives at most `SERVER_LIFETIME`), so a client that failed to stop could not make a test hang.
#![cfg(feature = "reqwest")]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crm_webhooks::adapters::reqwest::ReqwestClient;
use crm_webhooks::ports::{HttpError, HttpErrorKind};
use crm_webhooks::testing::{RecordingMailer, StaticDirectory};
use crm_webhooks::MemoryStorage;
use crm_webhooks::{Change, DeliveryId, DeliveryStatus, Engine, HttpClient, LogQuery, RecordEvent, WorkflowSet};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The short total timeout the tests give the client.
const TIMEOUT: Duration = Duration::from_millis(300);
/// What "ended in time" means for a 300 ms timeout on a loaded two-core machine.
const BOUND: Duration = Duration::from_secs(10);
/// A receiver never writes more than this, whatever the client does.
const SERVER_WRITE_LIMIT: usize = 256 * 1024 * 1024;
/// A receiver's connection task never lives longer than this.
const SERVER_LIFETIME: Duration = Duration::from_secs(60);

/// A raw TCP receiver on 127.0.0.1 running `behave` on every connection, counting connections, the bytes it
/// wrote and the connections it is done with.
struct Receiver {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start<F, Fut>(behave: F) -> Self
    where
        F: Fn(TcpStream, Arc<AtomicUsize>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (connections, written, done) = Default::default();
        let receiver = Receiver { addr, connections, written, done };
        let (connections, written, done) =
            (Arc::clone(&receiver.connections), Arc::clone(&receiver.written), Arc::clone(&receiver.done));
        let behave = Arc::new(behave);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let (behave, written, done) = (Arc::clone(&behave), Arc::clone(&written), Arc::clone(&done));
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(SERVER_LIFETIME, behave(stream, written)).await;
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        receiver
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Waits (at most `BOUND`) until `n` connections are done, and says whether they are.
    async fn wait_done(&self, n: usize) -> bool {
        let start = Instant::now();
        while self.done.load(Ordering::SeqCst) < n {
            if start.elapsed() > BOUND {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// Reads the request head (bounded), so that the client is waiting for the answer.
async fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// Writes `prefix`, then `block` again and again (pausing `pause` between blocks) until the client goes away or
/// `SERVER_WRITE_LIMIT` is reached.
async fn write_forever(stream: &mut TcpStream, written: &AtomicUsize, prefix: &[u8], block: &[u8], pause: Duration) {
    if stream.write_all(prefix).await.is_err() {
        return;
    }
    written.fetch_add(prefix.len(), Ordering::SeqCst);
    while written.load(Ordering::SeqCst) < SERVER_WRITE_LIMIT {
        if stream.write_all(block).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        written.fetch_add(block.len(), Ordering::SeqCst);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Answers the request head with `prefix` followed by `block` forever, `pause` apart.
async fn endless(receiver_prefix: &'static [u8], block: Vec<u8>, pause: Duration) -> Receiver {
    let block = Arc::new(block);
    Receiver::start(move |mut stream, written| {
        let block = Arc::clone(&block);
        async move {
            read_head(&mut stream).await;
            write_forever(&mut stream, &written, receiver_prefix, &block, pause).await;
        }
    })
    .await
}

fn client(timeout: Duration, max_body: usize) -> ReqwestClient {
    ReqwestClient::builder()
        .allow_private_networks(true)
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .max_response_body(max_body)
        .build()
        .unwrap()
}

fn post(url: &str) -> http::Request<Bytes> {
    http::Request::post(url).body(Bytes::from_static(b"{\"id\":1}")).unwrap()
}

/// Sends one request and returns its result with how long it took.
async fn timed_send(client: &ReqwestClient, url: &str) -> (Result<http::Response<Bytes>, HttpError>, Duration) {
    let start = Instant::now();
    // The outer timeout is only a backstop so that a client that never stops fails the test instead of hanging it.
    let result = tokio::time::timeout(BOUND * 3, client.send(post(url))).await.expect("the client never stopped");
    (result, start.elapsed())
}

fn assert_timed_out(case: &str, result: Result<http::Response<Bytes>, HttpError>, elapsed: Duration) {
    let error = result.expect_err(case);
    assert_eq!(error.kind(), HttpErrorKind::Timeout, "{case}: {error}");
    assert!(error.is_transient(), "{case}");
    assert!(elapsed >= TIMEOUT - Duration::from_millis(50), "{case}: ended after {elapsed:?}, before the timeout");
    assert!(elapsed < BOUND, "{case}: took {elapsed:?}");
}

// (a) accepts and never answers

#[tokio::test]
async fn a_receiver_that_never_answers_ends_at_the_total_timeout() {
    let silent = Receiver::start(|mut stream, _| async move {
        read_head(&mut stream).await;
        tokio::time::sleep(SERVER_LIFETIME).await;
    })
    .await;
    let (result, elapsed) = timed_send(&client(TIMEOUT, 64 * 1024), &silent.url()).await;
    assert_timed_out("reads the request, never answers", result, elapsed);
    assert_eq!(silent.connections(), 1);
}

#[tokio::test]
async fn a_receiver_that_never_reads_ends_at_the_total_timeout() {
    let deaf = Receiver::start(|stream, _| async move {
        let _held_open = stream;
        tokio::time::sleep(SERVER_LIFETIME).await;
    })
    .await;
    let (result, elapsed) = timed_send(&client(TIMEOUT, 64 * 1024), &deaf.url()).await;
    assert_timed_out("accepts, never reads", result, elapsed);
}

#[tokio::test]
async fn a_listener_that_never_accepts_ends_at_the_total_timeout() {
    // The kernel completes the handshake into the backlog; nobody ever reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (result, elapsed) = timed_send(&client(TIMEOUT, 64 * 1024), &url).await;
    assert_timed_out("never accepts", result, elapsed);
    drop(listener);
}

#[tokio::test]
async fn a_receiver_that_answers_only_1xx_forever_ends_at_the_total_timeout() {
    let chatty = endless(b"", b"HTTP/1.1 102 Processing\r\n\r\n".to_vec(), Duration::from_millis(5)).await;
    let (result, elapsed) = timed_send(&client(TIMEOUT, 64 * 1024), &chatty.url()).await;
    let error = result.expect_err("an endless run of 1xx answers");
    assert!(error.is_transient(), "{error}");
    assert!(elapsed < BOUND, "took {elapsed:?}");
    assert!(chatty.wait_done(1).await, "the client let go of the connection");
}

// (b) an endless body

/// A 16 KiB block of the body.
fn body_block() -> Vec<u8> {
    (0..16 * 1024).map(|i| b'a' + (i % 26) as u8).collect()
}

fn chunked_block() -> Vec<u8> {
    let mut block = format!("{:x}\r\n", 16 * 1024).into_bytes();
    block.extend(body_block());
    block.extend_from_slice(b"\r\n");
    block
}

#[tokio::test]
async fn an_endless_body_ends_at_the_cap_and_the_client_stops_reading() {
    let framings: [(&str, &'static [u8], Vec<u8>); 3] = [
        ("chunked", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", chunked_block()),
        ("until close", b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", body_block()),
        ("content-length of 1 TB", b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000000\r\n\r\n", body_block()),
    ];
    for (framing, prefix, block) in framings {
        for cap in [1000, 64 * 1024] {
            let case = format!("{framing}, cap {cap}");
            let receiver = endless(prefix, block.clone(), Duration::ZERO).await;
            // A generous timeout: the cap, not the timeout, must end it.
            let (result, elapsed) = timed_send(&client(BOUND, cap), &receiver.url()).await;
            let response = result.unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(response.status(), http::StatusCode::OK, "{case}");
            assert_eq!(response.body().len(), cap, "{case}");
            assert_eq!(response.body(), &body_prefix(cap), "{case}");
            assert!(elapsed < BOUND, "{case}: took {elapsed:?}");
            // The client hung up: the receiver's writes fail long before its own limit.
            assert!(
                receiver.wait_done(1).await,
                "{case}: the receiver is still writing ({} bytes)",
                receiver.written()
            );
            assert!(
                receiver.written() < 64 * 1024 * 1024,
                "{case}: the receiver wrote {} bytes: the client kept reading past the cap",
                receiver.written()
            );
        }
    }
}

/// The first `len` bytes of the body the receiver sends.
fn body_prefix(len: usize) -> Bytes {
    body_block().into_iter().cycle().take(len).collect::<Vec<u8>>().into()
}

// (c) a trickle

#[tokio::test]
async fn a_body_trickling_forever_ends_at_the_timeout() {
    let trickle = endless(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        b"1\r\nx\r\n".to_vec(),
        Duration::from_millis(100),
    )
    .await;
    let (result, elapsed) = timed_send(&client(TIMEOUT, 64 * 1024), &trickle.url()).await;
    assert_timed_out("body trickles one byte per 100 ms", result, elapsed);
    assert!(trickle.wait_done(1).await, "the client let go of the connection");
}

#[tokio::test]
async fn a_head_trickling_forever_ends_at_the_timeout() {
    let trickle = endless(b"HTTP/1.1 200 OK\r\nx-slow: ", b"x".to_vec(), Duration::from_millis(100)).await;
    let (result, elapsed) = timed_send(&client(TIMEOUT, 64 * 1024), &trickle.url()).await;
    assert_timed_out("head trickles one byte per 100 ms", result, elapsed);
    assert!(trickle.wait_done(1).await, "the client let go of the connection");
}

#[tokio::test]
async fn a_body_trickling_forever_ends_at_the_cap_when_the_cap_comes_first() {
    let trickle =
        endless(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", b"x".to_vec(), Duration::from_millis(100)).await;
    let (result, elapsed) = timed_send(&client(BOUND, 3), &trickle.url()).await;
    let response = result.expect("three bytes arrive well before the 10 s timeout");
    assert_eq!(response.body().as_ref(), b"xxx");
    assert!(elapsed < BOUND, "took {elapsed:?}");
    assert!(trickle.wait_done(1).await, "the client let go of the connection");
}

// (d) an endless or huge head

async fn assert_bounded_failure(case: &str, receiver: Receiver) {
    // A generous timeout: the client's limit on the head, not the timeout, must end it.
    let (result, elapsed) = timed_send(&client(BOUND, 64 * 1024), &receiver.url()).await;
    let error = result.expect_err(case);
    assert_ne!(error.kind(), HttpErrorKind::Timeout, "{case}: the head should be refused before the timeout: {error}");
    assert!(error.is_transient(), "{case}: {error}");
    assert!(elapsed < BOUND, "{case}: took {elapsed:?}");
    assert!(receiver.wait_done(1).await, "{case}: the receiver is still writing ({} bytes)", receiver.written());
    assert!(receiver.written() < 64 * 1024 * 1024, "{case}: the receiver wrote {} bytes", receiver.written());
}

#[tokio::test]
async fn an_endless_header_line_is_a_bounded_error() {
    let receiver = endless(b"HTTP/1.1 200 OK\r\nx-endless: ", vec![b'a'; 16 * 1024], Duration::ZERO).await;
    assert_bounded_failure("one header line that never ends", receiver).await;
}

#[tokio::test]
async fn endless_headers_are_a_bounded_error() {
    let block: Vec<u8> = (0..512).flat_map(|i| format!("x-header-{i}: value\r\n").into_bytes()).collect();
    let receiver = endless(b"HTTP/1.1 200 OK\r\n", block, Duration::ZERO).await;
    assert_bounded_failure("headers that never end", receiver).await;
}

#[tokio::test]
async fn a_huge_but_finite_header_is_a_bounded_error() {
    let receiver = Receiver::start(|mut stream, written| async move {
        read_head(&mut stream).await;
        let mut head = b"HTTP/1.1 200 OK\r\nx-huge: ".to_vec();
        head.extend(std::iter::repeat_n(b'h', 4 * 1024 * 1024));
        head.extend_from_slice(b"\r\ncontent-length: 0\r\n\r\n");
        if stream.write_all(&head).await.is_ok() {
            written.fetch_add(head.len(), Ordering::SeqCst);
        }
    })
    .await;
    assert_bounded_failure("a 4 MiB header", receiver).await;
}

#[tokio::test]
async fn two_hundred_headers_are_a_bounded_error() {
    let receiver = Receiver::start(|mut stream, written| async move {
        read_head(&mut stream).await;
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        head.extend((0..200).flat_map(|i| format!("x-header-{i}: value\r\n").into_bytes()));
        head.extend_from_slice(b"content-length: 2\r\n\r\nok");
        if stream.write_all(&head).await.is_ok() {
            written.fetch_add(head.len(), Ordering::SeqCst);
        }
    })
    .await;
    assert_bounded_failure("200 headers", receiver).await;
}

#[tokio::test]
async fn an_endless_status_line_is_a_bounded_error() {
    let receiver = endless(b"HTTP/1.1 200 ", vec![b'O'; 16 * 1024], Duration::ZERO).await;
    assert_bounded_failure("a status line that never ends", receiver).await;
}

// and receivers that hang up

#[tokio::test]
async fn a_receiver_that_hangs_up_is_a_transient_error_at_once() {
    let cases: [(&str, &'static [u8]); 4] = [
        ("closes without answering", b""),
        ("closes inside the head", b"HTTP/1.1 200 OK\r\ncontent-le"),
        ("closes inside the body", b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b"),
        ("answers something that is not HTTP", b"SSH-2.0-OpenSSH_9.6\r\n"),
    ];
    for (case, answer) in cases {
        let receiver = Receiver::start(move |mut stream, written| async move {
            read_head(&mut stream).await;
            if stream.write_all(answer).await.is_ok() {
                written.fetch_add(answer.len(), Ordering::SeqCst);
            }
        })
        .await;
        // A generous timeout: the hang-up, not the timeout, must end it.
        let (result, elapsed) = timed_send(&client(BOUND, 64 * 1024), &receiver.url()).await;
        let error = result.expect_err(case);
        assert_ne!(error.kind(), HttpErrorKind::Timeout, "{case}: {error}");
        assert!(error.is_transient(), "{case}: {error}");
        assert!(elapsed < BOUND, "{case}: took {elapsed:?}");
    }
}

// (e) the engine, with one silent receiver among healthy ones

const WORKFLOWS: &str = r#"[
  {"id": "to-silent", "module": "Silent", "trigger": "every_save",
   "actions": [{"title": "Never answered", "url": "SILENT_URL", "content_type": "JSON",
                "parameters": [{"name": "id", "field": "id"}]}]},
  {"id": "to-healthy", "module": "Healthy", "trigger": "every_save",
   "actions": [{"title": "Answered", "url": "HEALTHY_URL", "content_type": "JSON",
                "parameters": [{"name": "id", "field": "id"}]}]}
]"#;

/// A hyper server on 127.0.0.1 that answers every request `200 ok` at once and counts them.
async fn healthy_receiver() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let counter = Arc::clone(&counter);
                    async move {
                        let _ = request.into_body().collect().await;
                        counter.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (addr, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_delivers_to_healthy_receivers_while_one_never_answers() {
    let silent = Receiver::start(|mut stream, _| async move {
        read_head(&mut stream).await;
        tokio::time::sleep(SERVER_LIFETIME).await;
    })
    .await;
    let (healthy, healthy_requests) = healthy_receiver().await;
    let workflows =
        WORKFLOWS.replace("SILENT_URL", &silent.url()).replace("HEALTHY_URL", &format!("http://{healthy}/hook"));

    let engine = Engine::builder()
        .storage(Arc::new(MemoryStorage::new()))
        .http(Arc::new(client(TIMEOUT, 64 * 1024)))
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(StaticDirectory::new()))
        .concurrency(4)
        .build()
        .unwrap();
    engine.set_workflows("acme", WorkflowSet::from_json(&workflows).unwrap()).unwrap();

    let event = |module: &str, i: usize| {
        RecordEvent::new("acme", module, format!("10x{i}"), Change::Created, "19x1").field("id", i)
    };
    let mut silent_ids: Vec<DeliveryId> = Vec::new();
    let mut healthy_ids: Vec<DeliveryId> = Vec::new();
    // The silent ones first, so that they take every slot at the start.
    for i in 0..20 {
        silent_ids.extend(engine.on_event(&event("Silent", i)).await.unwrap());
    }
    for i in 0..50 {
        healthy_ids.extend(engine.on_event(&event("Healthy", i)).await.unwrap());
    }
    assert_eq!((silent_ids.len(), healthy_ids.len()), (20, 50));

    let start = Instant::now();
    let report =
        tokio::time::timeout(BOUND * 3, engine.run_until_idle(10)).await.expect("the run never ended").unwrap();
    let elapsed = start.elapsed();

    // 20 timeouts of 300 ms, 4 at a time, is 1.5 s at best; "a few timeouts" on a loaded machine is well under 10 s.
    assert!(elapsed < BOUND, "the run took {elapsed:?}");
    assert_eq!(report.succeeded, 50, "{report:?}");
    assert_eq!(report.retried, 20, "the timeouts are retried later: {report:?}");
    assert_eq!(healthy_requests.load(Ordering::SeqCst), 50);
    assert_eq!(silent.connections(), 20, "each silent delivery was attempted once");

    let log = engine.log(&LogQuery::tenant("acme").limit(1000)).await.unwrap();
    let last = |id: DeliveryId| {
        // newest first
        log.iter().find(|e| e.delivery_id == id).unwrap_or_else(|| panic!("{id} is not in the log"))
    };
    for id in healthy_ids {
        let entry = last(id);
        assert_eq!(entry.status, DeliveryStatus::Success, "{id}: {entry:?}");
        assert_eq!(entry.http_status, Some(200), "{id}");
    }
    for id in silent_ids {
        let entry = last(id);
        assert_eq!(entry.status, DeliveryStatus::Queued, "{id} waits for a retry: {entry:?}");
        let error = entry.error.as_deref().unwrap_or_default();
        assert!(error.contains("timed out"), "{id}: {error}");
        assert!(entry.next_attempt_at.is_some(), "{id}");
    }
}
