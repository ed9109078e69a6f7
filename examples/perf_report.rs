//! One-run ratio report: the engine's delivery rate beside a bare HTTP client, measured side by side on this
//! machine in one run (absolute numbers on shared machines are noise; the ratios are the result).
//!
//! ```text
//! cargo run --release --example perf_report [-- N]
//! ```
//!
//! Against a local HTTP/1.1 receiver on 127.0.0.1 (keep-alive, answers 200 at once), with 16 requests in
//! flight in every case:
//! - `bare`: `ReqwestClient` sending N prebuilt requests;
//! - `engine+memory`: `Engine::on_event` N times, then worker passes until idle, `MemoryStorage`;
//! - `engine+sqlite`: the same on a `SqliteStorage` file (WAL);
//! - `engine+memory, mock http`: the engine's own cost with no network at all.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crm_webhooks::payload::{ContentType, Parameter};
use crm_webhooks::testing::{MockHttp, RecordingMailer, StaticDirectory};
use crm_webhooks::MemoryStorage;
use crm_webhooks::{
    Change, Engine, HttpClient, RecordEvent, ReqwestClient, SqliteStorage, Storage, WebhookAction, WorkflowSet,
};

async fn receiver() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let _ = request.into_body().collect().await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(format!("http://{address}/hook"))
}

fn workflows(url: &str) -> WorkflowSet {
    let json = format!(
        r#"[{{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [{{"title": "t", "url": "{url}",
        "content_type": "JSON", "parameters": [{{"name": "id", "field": "id"}}, {{"name": "email", "field": "email"}},
        {{"name": "customer.name", "field": "name"}}, {{"name": "amount", "field": "amount"}},
        {{"name": "summary", "template": "Lead $name"}}]}}]}}]"#
    );
    WorkflowSet::from_json(&json).unwrap_or_default()
}

fn event(i: usize) -> RecordEvent {
    RecordEvent::new("acme", "Leads", format!("10x{i}"), Change::Created, "19x1")
        .field("id", i)
        .field("email", format!("lead{i}@example.com"))
        .field("name", "Globex Corporation")
        .field("amount", 1200.5)
}

async fn bare(http: Arc<ReqwestClient>, url: &str, n: usize) -> f64 {
    let action = WebhookAction::builder("t", url, ContentType::Json)
        .parameter(Parameter::field("id", "id"))
        .parameter(Parameter::field("email", "email"))
        .build();
    let Ok(action) = action else { return 0.0 };
    let bodies: Vec<Bytes> = (0..n).map(|i| action.render(&event(i).fields).into_body()).collect();
    let started = Instant::now();
    let ok = stream::iter(bodies)
        .map(|body| {
            let http = http.clone();
            let request = http::Request::post(url).header("content-type", "application/json").body(body);
            async move {
                match request {
                    Ok(request) => http.send(request).await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    ok as f64 / started.elapsed().as_secs_f64()
}

struct EngineRun {
    enqueue_per_s: f64,
    deliver_per_s: f64,
    delivered: usize,
}

async fn engine_run(
    storage: Arc<dyn Storage>,
    http: Arc<dyn HttpClient>,
    url: &str,
    n: usize,
    passes: usize,
) -> EngineRun {
    let engine = Engine::builder()
        .storage(storage)
        .http(http)
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(StaticDirectory::new()))
        .batch_size(256)
        .concurrency(16)
        .build();
    let Ok(engine) = engine else { return EngineRun { enqueue_per_s: 0.0, deliver_per_s: 0.0, delivered: 0 } };
    engine.set_workflows("acme", workflows(url));
    let started = Instant::now();
    for i in 0..n {
        if engine.on_event(&event(i)).await.is_err() {
            break;
        }
    }
    let enqueue_per_s = n as f64 / started.elapsed().as_secs_f64();
    // `passes` worker loops at once: one pass's storage work may overlap another's HTTP.
    let started = Instant::now();
    let loops = (0..passes).map(|_| engine.run_until_idle(10_000));
    let succeeded: usize =
        futures_util::future::join_all(loops).await.into_iter().map(|r| r.unwrap_or_default().succeeded).sum();
    EngineRun { enqueue_per_s, deliver_per_s: succeeded as f64 / started.elapsed().as_secs_f64(), delivered: succeeded }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let url = receiver().await?;
    let http = Arc::new(ReqwestClient::builder().allow_private_networks(true).build()?);
    // Warm the connection pool and the receiver.
    let _ = bare(http.clone(), &url, 200).await;

    let dir = tempfile::tempdir()?;
    let bare_rate = bare(http.clone(), &url, n).await;
    let memory = engine_run(Arc::new(MemoryStorage::new()), http.clone(), &url, n, 1).await;
    let sqlite =
        engine_run(Arc::new(SqliteStorage::open(dir.path().join("a.sqlite3"))?), http.clone(), &url, n, 1).await;
    let sqlite2 =
        engine_run(Arc::new(SqliteStorage::open(dir.path().join("b.sqlite3"))?), http.clone(), &url, n, 2).await;
    let mock = engine_run(Arc::new(MemoryStorage::new()), Arc::new(MockHttp::new_ok()), &url, n, 1).await;

    println!("crm-webhooks perf report: {n} deliveries each, 16 in flight, loopback HTTP/1.1 receiver");
    println!("{:<28} {:>14} {:>14} {:>10} {:>10}", "case", "enqueue/s", "deliver/s", "delivered", "vs bare");
    println!("{:<28} {:>14} {:>14.0} {:>10} {:>10}", "bare ReqwestClient", "-", bare_rate, n, "1.00");
    let cases = [
        ("engine+memory", &memory),
        ("engine+sqlite (file, WAL)", &sqlite),
        ("engine+sqlite, 2 passes", &sqlite2),
        ("engine+memory, mock http", &mock),
    ];
    for (name, run) in cases {
        println!(
            "{:<28} {:>14.0} {:>14.0} {:>10} {:>10.2}",
            name,
            run.enqueue_per_s,
            run.deliver_per_s,
            run.delivered,
            run.deliver_per_s / bare_rate.max(f64::MIN_POSITIVE)
        );
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
