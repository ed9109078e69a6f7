//! A ratio report: the crate's figures beside the bare tool each one is built on, measured side by side in one
//! process on this machine. Absolute numbers on a shared machine are noise; a ratio of two sides run alternately
//! is not.
//!
//! ```text
//! cargo run --release --example perf_report [-- SCALE] [WORD]
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --release --features postgres --example perf_report
//! ```
//!
//! `SCALE` (default 1) multiplies every case's size: `0.2` for a quick look, `3` for steadier figures. A word
//! that is not a number runs only the figures whose name contains it: `-- encode` runs the three encoder figures,
//! `-- 0.2 sqlite` the SQLite ones at a fifth of their size.
//!
//! How a comparison is measured ([`ratio_rounds`]): one untimed warm-up of each side, then [`ROUNDS`] rounds, each
//! running both sides one after the other, A B in even rounds and B A in odd ones, so that whatever drifts on
//! the machine (another engineer's build, a cache warming up, a file growing) falls on both sides alike. A round's
//! ratio is its two figures divided; the report gives the median over the rounds, and their range.
//!
//! Each figure prints one line `ratio NAME VALUE` as soon as it is known (higher is better unless the name says
//! `_us`, `_ms`, `_bytes_` or `depth`), and a table for a person at the end. The Postgres figures need the
//! `postgres` feature and `DATABASE_URL`; without either they are reported as skipped, and why.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::convert::Infallible;
use std::error::Error;
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use quick_xml::escape::partial_escape;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use crm_webhooks::engine::{preview, PreviewRequest};
use crm_webhooks::limits::DEFAULT_MAX_BODY_BYTES;
use crm_webhooks::payload::{ContentType, Parameter};
use crm_webhooks::ports::{Claim, ClaimToken, Clock, HttpError, SystemClock};
use crm_webhooks::testing::{RecordingMailer, StaticDirectory};
use crm_webhooks::workflow::Method;
use crm_webhooks::{
    Change, Delivery, DeliveryId, DeliveryStatus, Engine, Fields, HttpClient, MemoryStorage, RecordEvent,
    ReqwestClient, SqliteStorage, Storage, WebhookAction, Worker, WorkflowSet,
};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Rounds per figure (odd, so the median is a round's own figure).
const ROUNDS: usize = 9;
/// Requests in flight: the engine's default concurrency, and the bare client's.
const CONCURRENCY: usize = 16;

// --- the harness ---------------------------------------------------------------------------------------------

/// Runs `a` and `b` alternately: one untimed warm-up of each, then `rounds` rounds, A B in even rounds and B A in
/// odd ones. Each call returns one figure (a rate, or a time: the same kind on both sides); a round's ratio is
/// a's figure over b's, and the spread is taken over those ratios.
async fn ratio_rounds(
    rounds: usize,
    mut a: impl AsyncFnMut() -> Res<f64>,
    mut b: impl AsyncFnMut() -> Res<f64>,
) -> Res<Spread> {
    a().await?;
    b().await?;
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (x, y) = if round % 2 == 0 {
            let x = a().await?;
            (x, b().await?)
        } else {
            let y = b().await?;
            (a().await?, y)
        };
        ratios.push(x / y);
    }
    Ok(Spread::of(&ratios, format!("{rounds} rounds")))
}

/// Runs `f` `rounds` times (after one untimed run, when `warm_up`); the spread of what it returned.
async fn value_rounds(rounds: usize, warm_up: bool, mut f: impl AsyncFnMut() -> Res<f64>) -> Res<Spread> {
    if warm_up {
        f().await?;
    }
    let mut values = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        values.push(f().await?);
    }
    Ok(Spread::of(&values, format!("{rounds} rounds")))
}

/// The `p`th percentile (0–100) of sorted values, by nearest rank; NaN for none.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// One figure: its value (a median or a percentile), and the range it came from.
#[derive(Debug, Clone)]
struct Spread {
    value: f64,
    low: f64,
    high: f64,
    over: String,
}

impl Spread {
    /// The median of `values`, with their range.
    fn of(values: &[f64], over: String) -> Self {
        let sorted = sorted(values);
        Spread {
            value: percentile(&sorted, 50.0),
            low: sorted.first().copied().unwrap_or(f64::NAN),
            high: sorted.last().copied().unwrap_or(f64::NAN),
            over,
        }
    }
}

/// Calls of `f` per second, from `iterations` calls made in slices of [`SLICE`]: the median slice's time, so that
/// a slice in which another process had the core does not count. `f` returns a byte count, summed so that nothing
/// is optimised out.
fn rate(iterations: usize, mut f: impl FnMut() -> usize) -> f64 {
    let mut slices = Vec::with_capacity(iterations.div_ceil(SLICE));
    let mut bytes = 0usize;
    for _ in 0..iterations.div_ceil(SLICE) {
        let started = Instant::now();
        for _ in 0..SLICE {
            bytes = bytes.wrapping_add(f());
        }
        slices.push(started.elapsed().as_secs_f64());
    }
    black_box(bytes);
    SLICE as f64 / percentile(&sorted(&slices), 50.0)
}

/// Calls per timed slice of a CPU-bound case: well under a scheduler time slice.
const SLICE: usize = 50;

/// What a figure must reach.
#[derive(Debug, Clone, Copy)]
enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    fn met(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(bound) => value >= bound,
            Goal::AtMost(bound) => value <= bound,
        }
    }
    fn text(self) -> String {
        match self {
            Goal::AtLeast(bound) => format!(">= {bound}"),
            Goal::AtMost(bound) => format!("<= {bound}"),
        }
    }
}

/// Every figure, measured or skipped, in the order they were taken.
struct Report {
    /// Name, target, the figure or why it is missing, and the seconds it took.
    rows: Vec<(&'static str, Goal, Result<Spread, String>, f64)>,
    since: Instant,
}

impl Report {
    /// Records a figure and prints its `ratio` line (or why it is missing).
    fn add(&mut self, name: &'static str, goal: Goal, figure: Res<Spread>) {
        let figure = figure.map_err(|e| e.to_string());
        let took = std::mem::replace(&mut self.since, Instant::now()).elapsed().as_secs_f64();
        match &figure {
            Ok(spread) => println!("ratio {name} {:.3}", spread.value),
            Err(why) => println!("skipped {name}: {why}"),
        }
        self.rows.push((name, goal, figure, took));
    }

    fn skip(&mut self, name: &'static str, goal: Goal, why: &str) {
        self.add(name, goal, Err(why.into()));
    }

    fn print_table(&self) {
        println!();
        println!(
            "{:<40} {:>10}  {:<34} {:>8}  {:<4} {:>6}",
            "figure", "value", "min-max (over)", "target", "met", "took"
        );
        println!("{}", "-".repeat(110));
        for (name, goal, figure, took) in &self.rows {
            match figure {
                Ok(s) => println!(
                    "{name:<40} {:>10.3}  {:<34} {:>8}  {:<4} {took:>5.1}s",
                    s.value,
                    format!("{:.3}-{:.3} ({})", s.low, s.high, s.over),
                    goal.text(),
                    if goal.met(s.value) { "yes" } else { "NO" }
                ),
                Err(why) => println!("{name:<40} {:>10}  {:<34} {:>8}  -    ({why})", "skipped", "", goal.text()),
            }
        }
    }
}

/// Sizes, scaled by the first argument.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    scale: f64,
}

impl Sizes {
    fn of(&self, base: usize, min: usize) -> usize {
        ((base as f64 * self.scale).round() as usize).max(min)
    }
}

// --- a counting allocator, for memory_bytes_per_queued ----------------------------------------------------------

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to `System` unchanged; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` hold for `System` too.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        pointer
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        pointer
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` was allocated by `System` with `layout` (every allocation goes through this type).
        unsafe { System.dealloc(pointer, layout) };
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; the caller guarantees `new_size` is valid for `layout`'s alignment.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            ALLOCATED.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// --- the parts every engine case uses ------------------------------------------------------------------------

/// A loopback HTTP/1.1 receiver (keep-alive, answers 200 at once). With `arrivals`, it notes when each request's
/// headers arrived, by its `webhook-id`.
async fn receiver(arrivals: Option<Arc<Arrivals>>) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let arrivals = arrivals.clone();
                    async move {
                        let at = Instant::now();
                        if let (Some(arrivals), Some(id)) = (arrivals, request.headers().get("webhook-id")) {
                            arrivals.note(id.to_str().unwrap_or_default(), at);
                        }
                        let _ = request.into_body().collect().await;
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(format!("http://{address}/hook"))
}

/// When each request reached the receiver, by `webhook-id`.
#[derive(Default)]
struct Arrivals(Mutex<HashMap<String, Instant>>);

impl Arrivals {
    fn note(&self, id: &str, at: Instant) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(id.to_owned()).or_insert(at);
    }
    fn get(&self, id: &str) -> Option<Instant> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(id).copied()
    }
}

/// An HTTP client that answers 200 at once without any I/O, and states no request timeout.
struct NoopHttp;

#[crm_webhooks::async_trait]
impl HttpClient for NoopHttp {
    async fn send(&self, _request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        Ok(http::Response::new(Bytes::new()))
    }
}

/// The workflow of every engine case: one JSON webhook of eight parameters, a body of about 270 bytes (a stored
/// delivery row of about 400).
fn workflows(url: &str) -> Res<WorkflowSet> {
    let json = format!(
        r#"[{{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [{{"title": "t", "url": "{url}",
        "content_type": "JSON", "parameters": [{{"name": "id", "field": "id"}}, {{"name": "email", "field": "email"}},
        {{"name": "customer.name", "field": "name"}}, {{"name": "customer.phone", "field": "phone"}},
        {{"name": "amount", "field": "amount"}}, {{"name": "stage", "field": "stage"}},
        {{"name": "notes", "field": "notes"}}, {{"name": "summary", "template": "Lead $name, $amount EUR"}}]}}]}}]"#
    );
    Ok(WorkflowSet::from_json(&json)?)
}

fn event(i: usize) -> RecordEvent {
    RecordEvent::new("acme", "Leads", format!("10x{i}"), Change::Created, "19x1")
        .field("id", i)
        .field("email", format!("lead{i}@example.com"))
        .field("name", "Globex Corporation")
        .field("phone", "+1 555 0100 200")
        .field("amount", 1200.5)
        .field("stage", "Qualification")
        .field("notes", "Met at the trade fair; wants a quote for 40 seats before the end of the quarter, call back.")
}

fn events(from: usize, n: usize) -> Vec<RecordEvent> {
    (from..from + n).map(event).collect()
}

/// An engine with test doubles for mail and directory, the given storage, client and concurrency, and
/// [`workflows`] registered for tenant `acme`. Everything else is the engine's default.
fn engine(storage: Arc<dyn Storage>, http: Arc<dyn HttpClient>, url: &str, concurrency: usize) -> Res<Engine> {
    let engine = Engine::builder()
        .storage(storage)
        .http(http)
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(StaticDirectory::new()))
        .concurrency(concurrency)
        .build()?;
    engine.set_workflows("acme", workflows(url)?)?;
    Ok(engine)
}

/// The URL of engines whose client never connects.
const NOWHERE: &str = "https://receiver.example/hook";

// --- encoders --------------------------------------------------------------------------------------------------

/// The record the encoder cases render.
fn encode_fields() -> Fields {
    let record = json!({
        "id": 4211, "account_id": "11x7", "account_name": "Globex <EMEA> & Partners",
        "website": "https://globex.example/about?x=1&y=2", "amount": 1200.5, "close_date": "2026-12-31",
        "email": "ana.lopez@globex.example", "first_name": "Ana María", "last_name": "López",
        "phone": "+34 600 123 456", "currency": "EUR",
        "description": "Renewal of the \"gold\" plan: 3 seats, <urgent> & tax-exempt.\nSecond line\tafter a tab",
        "sku0": "GLD-001", "price0": 19.99, "qty0": 3, "sku1": "GLD-SUPPORT", "price1": 249.5, "qty1": 1,
        "sku2": "SEAT-EXTRA", "price2": 35.25, "qty2": 12, "owner_email": "olga@acme.example",
        "owner_name": "Olga Owner", "probability": 75, "stage": "Closed Won", "tag0": "renewal",
        "tag1": "priority", "won": true
    });
    record.as_object().cloned().unwrap_or_default()
}

/// 30 parameters: fields, nesting by dotted names, array items by numeric segments, a literal and a template.
/// At every level, the names come in sorted order: serde_json's map (without `preserve_order`) sorts its keys, and
/// our encoders keep the order of first appearance, so only then can the bytes match.
fn encode_parameters() -> Res<Vec<Parameter>> {
    let fields = [
        ("account.id", "account_id"),
        ("account.name", "account_name"),
        ("account.website", "website"),
        ("amount", "amount"),
        ("close_date", "close_date"),
        ("contact.email", "email"),
        ("contact.first_name", "first_name"),
        ("contact.last_name", "last_name"),
        ("contact.phone", "phone"),
        ("currency", "currency"),
        ("description", "description"),
        ("id", "id"),
        ("lines.0.price", "price0"),
        ("lines.0.qty", "qty0"),
        ("lines.0.sku", "sku0"),
        ("lines.1.price", "price1"),
        ("lines.1.qty", "qty1"),
        ("lines.1.sku", "sku1"),
        ("lines.2.price", "price2"),
        ("lines.2.qty", "qty2"),
        ("lines.2.sku", "sku2"),
        ("owner.email", "owner_email"),
        ("owner.name", "owner_name"),
        ("probability", "probability"),
    ];
    let mut parameters: Vec<Parameter> = fields.iter().map(|(name, field)| Parameter::field(*name, *field)).collect();
    parameters.push(Parameter::value("source", "crm-webhooks"));
    parameters.push(Parameter::field("stage", "stage"));
    parameters.push(Parameter::template("summary", "Deal ${account_name} won: ${amount} ${currency}")?);
    parameters.push(Parameter::field("tags.0", "tag0"));
    parameters.push(Parameter::field("tags.1", "tag1"));
    parameters.push(Parameter::field("won", "won"));
    Ok(parameters)
}

fn encode_action(content_type: ContentType, parameters: &[Parameter]) -> Res<WebhookAction> {
    let builder = WebhookAction::builder("encode", NOWHERE, content_type);
    Ok(parameters.iter().cloned().fold(builder, |b, p| b.parameter(p)).build()?)
}

/// The parameters' values nested by their dotted names, built independently of the crate's encoder.
fn nested_json(parameters: &[Parameter], fields: &Fields) -> Value {
    let mut root = Value::Object(Map::new());
    for parameter in parameters {
        let path: Vec<&str> = parameter.name.split('.').collect();
        insert_at(&mut root, &path, parameter.resolve(fields));
    }
    root
}

fn insert_at(node: &mut Value, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return;
    };
    if let Ok(index) = first.parse::<usize>() {
        if !node.is_array() {
            *node = Value::Array(Vec::new());
        }
        if let Value::Array(items) = node {
            if items.len() <= index {
                items.resize(index + 1, Value::Null);
            }
            insert_at(&mut items[index], rest, value);
        }
    } else {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        if let Value::Object(members) = node {
            insert_at(members.entry(*first).or_insert(Value::Null), rest, value);
        }
    }
}

/// A value as element or form text: a string as is, null as nothing, anything else as its JSON text.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A prebuilt XML element.
enum Element {
    Text(String, String),
    Parent(String, Vec<Element>),
}

/// The elements of an object: one per member, an array repeating its element once per item.
fn elements(members: &Map<String, Value>) -> Vec<Element> {
    fn push(name: &str, value: &Value, out: &mut Vec<Element>) {
        match value {
            Value::Object(members) => out.push(Element::Parent(name.to_owned(), elements(members))),
            Value::Array(items) => items.iter().for_each(|item| push(name, item, out)),
            scalar => out.push(Element::Text(name.to_owned(), text_of(scalar))),
        }
    }
    let mut out = Vec::new();
    for (name, value) in members {
        push(name, value, &mut out);
    }
    out
}

/// The document quick-xml's `Writer` writes for prebuilt elements, text escaped as the crate escapes it
/// (`partial_escape`: `&`, `<`, `>` and carriage return).
fn quick_xml_document(elements: &[Element]) -> std::io::Result<Vec<u8>> {
    fn write(writer: &mut quick_xml::Writer<Vec<u8>>, elements: &[Element]) -> std::io::Result<()> {
        for element in elements {
            match element {
                Element::Text(name, text) => {
                    writer.write_event(Event::Start(BytesStart::new(name.as_str())))?;
                    writer.write_event(Event::Text(BytesText::from_escaped(partial_escape(text.as_str()))))?;
                    writer.write_event(Event::End(BytesEnd::new(name.as_str())))?;
                }
                Element::Parent(name, children) => {
                    writer.write_event(Event::Start(BytesStart::new(name.as_str())))?;
                    write(writer, children)?;
                    writer.write_event(Event::End(BytesEnd::new(name.as_str())))?;
                }
            }
        }
        Ok(())
    }
    let mut writer = quick_xml::Writer::new(Vec::with_capacity(2048));
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    writer.write_event(Event::Start(BytesStart::new("record")))?;
    write(&mut writer, elements)?;
    writer.write_event(Event::End(BytesEnd::new("record")))?;
    Ok(writer.into_inner())
}

/// Renders per second of `action` over renders per second of `bare`, which must write the same bytes.
async fn encode_ratio(
    action: &WebhookAction,
    fields: &Fields,
    iterations: usize,
    mut bare: impl FnMut() -> Res<Vec<u8>>,
) -> Res<Spread> {
    let ours = action.try_render(fields, DEFAULT_MAX_BODY_BYTES)?;
    let theirs = bare()?;
    assert_eq!(ours.body_text(), String::from_utf8_lossy(&theirs), "both sides must write the same bytes");
    ratio_rounds(
        ROUNDS,
        async || {
            Ok(rate(iterations, || {
                action.try_render(black_box(fields), DEFAULT_MAX_BODY_BYTES).map_or(0, |p| p.body().len())
            }))
        },
        async || Ok(rate(iterations, || bare().map_or(0, |bytes| bytes.len()))),
    )
    .await
}

async fn encode_json_vs_serde_json(iterations: usize) -> Res<Spread> {
    let (parameters, fields) = (encode_parameters()?, encode_fields());
    let prebuilt = nested_json(&parameters, &fields);
    let action = encode_action(ContentType::Json, &parameters)?;
    encode_ratio(&action, &fields, iterations, || Ok(serde_json::to_vec(black_box(&prebuilt))?)).await
}

async fn encode_form_vs_serde_urlencoded(iterations: usize) -> Res<Spread> {
    let (parameters, fields) = (encode_parameters()?, encode_fields());
    let pairs: Vec<(String, String)> =
        parameters.iter().map(|p| (p.name.clone(), text_of(&p.resolve(&fields)))).collect();
    let action = encode_action(ContentType::Form, &parameters)?;
    encode_ratio(&action, &fields, iterations, || Ok(serde_urlencoded::to_string(black_box(&pairs))?.into_bytes()))
        .await
}

async fn encode_xml_vs_quick_xml(iterations: usize) -> Res<Spread> {
    let (parameters, fields) = (encode_parameters()?, encode_fields());
    let prebuilt = match nested_json(&parameters, &fields) {
        Value::Object(members) => elements(&members),
        _ => Vec::new(),
    };
    let action = encode_action(ContentType::Xml, &parameters)?;
    encode_ratio(&action, &fields, iterations, || Ok(quick_xml_document(black_box(&prebuilt))?)).await
}

// --- SQLite intake -----------------------------------------------------------------------------------------

/// The bare side's rows: about the size of the engine's delivery row, and of a short log row.
const RAW_ROW_BODY: usize = 384;
const RAW_NOTE: &str = "queued: waiting for a worker";

fn raw_database(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(path)?;
    let _: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS item (id BLOB PRIMARY KEY NOT NULL, body BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS note (seq INTEGER PRIMARY KEY, item BLOB NOT NULL, text TEXT NOT NULL);",
    )?;
    Ok(connection)
}

/// Transactions per second of a bare rusqlite loop, on tokio's blocking pool: per transaction (`IMMEDIATE`), one
/// ~400 B row with a random 16-byte primary key and one ~40 B row in a second table.
async fn raw_insert_rate(db: Arc<Mutex<rusqlite::Connection>>, rows: usize) -> Res<f64> {
    let rate = tokio::task::spawn_blocking(move || -> rusqlite::Result<f64> {
        let mut connection = db.lock().unwrap_or_else(PoisonError::into_inner);
        let body = vec![b'x'; RAW_ROW_BODY];
        let started = Instant::now();
        for _ in 0..rows {
            let id = DeliveryId::new();
            let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.prepare_cached("INSERT INTO item (id, body) VALUES (?1, ?2)")?
                .execute(rusqlite::params![&id.as_bytes()[..], &body[..]])?;
            tx.prepare_cached("INSERT INTO note (item, text) VALUES (?1, ?2)")?
                .execute(rusqlite::params![&id.as_bytes()[..], RAW_NOTE])?;
            tx.commit()?;
        }
        Ok(rows as f64 / started.elapsed().as_secs_f64())
    })
    .await??;
    Ok(rate)
}

/// Events per second through `Engine::on_event`, from `callers` tasks at once (each calling in turn).
async fn on_event_rate(engine: &Engine, events: Vec<RecordEvent>, callers: usize) -> Res<f64> {
    let total = events.len();
    let per_caller = total.div_ceil(callers);
    let mut chunks = Vec::with_capacity(callers);
    let mut events = events.into_iter();
    for _ in 0..callers {
        chunks.push(events.by_ref().take(per_caller).collect::<Vec<_>>());
    }
    let started = Instant::now();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let engine = engine.clone();
            tokio::spawn(async move {
                for event in &chunk {
                    engine.on_event(event).await?;
                }
                Ok::<_, crm_webhooks::EngineError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn sqlite_enqueue_vs_raw_insert(dir: &Path, events_per_round: usize, callers: usize) -> Res<Spread> {
    let storage = SqliteStorage::open(dir.join(format!("enqueue-{callers}.sqlite3")))?;
    let engine = engine(Arc::new(storage), Arc::new(NoopHttp), NOWHERE, CONCURRENCY)?;
    let raw = Arc::new(Mutex::new(raw_database(&dir.join(format!("raw-{callers}.sqlite3")))?));
    let mut next = 0;
    ratio_rounds(
        ROUNDS,
        async || {
            next += events_per_round;
            on_event_rate(&engine, events(next - events_per_round, events_per_round), callers).await
        },
        async || raw_insert_rate(raw.clone(), events_per_round).await,
    )
    .await
}

// --- the claim at depth ----------------------------------------------------------------------------------------

fn queued_delivery(i: usize, due: DateTime<Utc>) -> Delivery {
    Delivery {
        // Ascending ids: the big queue fills at append speed.
        id: DeliveryId::from_bytes((i as u128 + 1).to_be_bytes()),
        tenant: "acme".into(),
        workflow: "w".into(),
        action: "t".into(),
        module: "Leads".into(),
        record_id: format!("10x{i}"),
        owner: "19x1".into(),
        method: Method::Post,
        url: NOWHERE.into(),
        content_type: ContentType::Json,
        body: Bytes::from_static(br#"{"id":1,"email":"lead@example.com","customer":{"name":"Globex Corporation"}}"#),
        status: DeliveryStatus::Queued,
        attempts: 0,
        next_attempt_at: Some(due + chrono::Duration::microseconds(i as i64)),
        lease_expires_at: None,
        created_at: due,
        updated_at: due,
        redelivery_of: None,
        ordered: false,
    }
}

/// Fills a queue with `n` deliveries through `Storage::enqueue`, 10,000 a call, no log entries.
async fn fill(storage: &SqliteStorage, n: usize, due: DateTime<Utc>) -> Res<()> {
    for start in (0..n).step_by(10_000) {
        let batch = (start..(start + 10_000).min(n)).map(|i| queued_delivery(i, due)).collect();
        storage.enqueue(batch, Vec::new()).await?;
    }
    Ok(())
}

/// The median time of `claims` claims of 100 (the engine's default batch). Each claim's lease ends at once, so
/// the queue keeps its depth: a claimed row is due again, behind the rows still queued.
async fn claim_time(storage: &SqliteStorage, now: &mut DateTime<Utc>, claims: usize) -> Res<f64> {
    let mut times = Vec::with_capacity(claims);
    for _ in 0..claims {
        *now += chrono::Duration::milliseconds(1);
        let claim = Claim { now: *now, limit: 100, lease_until: *now, token: ClaimToken::new() };
        let started = Instant::now();
        let taken = storage.claim_due(&claim).await?.len();
        times.push(started.elapsed().as_secs_f64());
        if taken != 100 {
            return Err(format!("a claim took {taken} deliveries instead of 100").into());
        }
    }
    Ok(percentile(&sorted(&times), 50.0))
}

/// A claim takes about a millisecond: many short rounds (five claims a side) keep both queues under the same load.
async fn sqlite_claim_depth(dir: &Path, deep: usize, shallow: usize, rounds: usize) -> Res<Spread> {
    let due = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let (big_path, small_path) = (dir.join("depth-big.sqlite3"), dir.join("depth-small.sqlite3"));
    let started = Instant::now();
    fill(&SqliteStorage::open(&big_path)?, deep, due).await?;
    fill(&SqliteStorage::open(&small_path)?, shallow, due).await?;
    // Opened again: closing checkpointed the WAL the fill wrote, so no checkpoint runs while claims are timed.
    let (big, small) = (SqliteStorage::open(&big_path)?, SqliteStorage::open(&small_path)?);
    println!("    (filled {deep} + {shallow} deliveries in {:.1} s)", started.elapsed().as_secs_f64());
    let (mut big_now, mut small_now) = (due + chrono::Duration::days(1), due + chrono::Duration::days(1));
    ratio_rounds(
        rounds,
        async || claim_time(&big, &mut big_now, 5).await,
        async || claim_time(&small, &mut small_now, 5).await,
    )
    .await
}

// --- delivering over HTTP ------------------------------------------------------------------------------------

/// The requests the engine would send for `n` events, built with `engine::preview` (same URL, headers and body).
fn bare_requests(url: &str, n: usize) -> Res<Vec<http::Request<Bytes>>> {
    let set = workflows(url)?;
    let now = SystemClock.now().with_timezone(&chrono_tz::UTC);
    let mut requests = Vec::with_capacity(n);
    for i in 0..n {
        for PreviewRequest { method, url, headers, body, .. } in preview(&set, &event(i), now)? {
            let mut request = http::Request::builder().method(method.as_str()).uri(url);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            requests.push(request.body(Bytes::from(body))?);
        }
    }
    Ok(requests)
}

/// Requests per second of a bare `ReqwestClient`, `CONCURRENCY` in flight, prebuilt requests.
async fn bare_http_rate(http: &ReqwestClient, url: &str, n: usize) -> Res<f64> {
    let requests = bare_requests(url, n)?;
    let count = requests.len();
    let started = Instant::now();
    let ok = stream::iter(requests)
        .map(|request| http.send(request))
        .buffer_unordered(CONCURRENCY)
        .filter(|answer| std::future::ready(answer.as_ref().is_ok_and(|a| a.status().is_success())))
        .count()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    if ok != count {
        return Err(format!("the bare client got {} of {count} requests answered with 2xx", ok).into());
    }
    Ok(count as f64 / elapsed)
}

/// Deliveries per second: `n` events queued through the first engine (untimed, 250 an `on_events` call), then
/// every engine running passes at once until idle (timed).
async fn engine_http_rate(engines: &[Engine], n: usize) -> Res<f64> {
    let Some(first) = engines.first() else { return Err("no engine".into()) };
    for chunk in events(0, n).chunks(250) {
        first.on_events(chunk).await?;
    }
    let started = Instant::now();
    let reports = futures_util::future::join_all(engines.iter().map(|e| e.run_until_idle(usize::MAX))).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut succeeded = 0;
    for report in reports {
        succeeded += report?.succeeded;
    }
    if succeeded != n {
        return Err(format!("the engine delivered {succeeded} of {n}").into());
    }
    Ok(n as f64 / elapsed)
}

async fn engine_memory_vs_raw_http(http: &Arc<ReqwestClient>, url: &str, n: usize) -> Res<Spread> {
    ratio_rounds(
        ROUNDS,
        async || {
            let engine = engine(Arc::new(MemoryStorage::new()), http.clone(), url, CONCURRENCY)?;
            engine_http_rate(&[engine], n).await
        },
        async || bare_http_rate(http, url, n).await,
    )
    .await
}

async fn engine_sqlite_vs_raw_http(dir: &Path, http: &Arc<ReqwestClient>, url: &str, n: usize) -> Res<Spread> {
    let mut round = 0;
    ratio_rounds(
        ROUNDS,
        async || {
            round += 1;
            let storage = SqliteStorage::open(dir.join(format!("http-{round}.sqlite3")))?;
            let engine = engine(Arc::new(storage), http.clone(), url, CONCURRENCY)?;
            engine_http_rate(&[engine], n).await
        },
        async || bare_http_rate(http, url, n).await,
    )
    .await
}

// --- the engine's own cost, and its memory -----------------------------------------------------------------------

/// Microseconds per delivery from `on_event` to `Success`, with `NoopHttp` and `MemoryStorage`: `n` events
/// queued one call each, then passes until idle.
async fn engine_overhead_us(n: usize) -> Res<Spread> {
    value_rounds(5, false, async || {
        let engine = engine(Arc::new(MemoryStorage::new()), Arc::new(NoopHttp), NOWHERE, CONCURRENCY)?;
        let events = events(0, n);
        let started = Instant::now();
        for event in &events {
            engine.on_event(event).await?;
        }
        let report = engine.run_until_idle(usize::MAX).await?;
        let elapsed = started.elapsed();
        if report.succeeded != n {
            return Err(format!("{} of {n} deliveries succeeded", report.succeeded).into());
        }
        Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
    })
    .await
}

/// Bytes allocated per delivery queued in `MemoryStorage` through `on_event`, beyond its body. Measured first,
/// while nothing else in the process allocates.
async fn memory_bytes_per_queued(n: usize) -> Res<Spread> {
    let set = workflows(NOWHERE)?;
    let action = set.get("w").and_then(|w| w.actions().first().cloned()).ok_or("the workflow has no action")?;
    value_rounds(ROUNDS, true, async || {
        let engine = engine(Arc::new(MemoryStorage::new()), Arc::new(NoopHttp), NOWHERE, CONCURRENCY)?;
        let events = events(0, n);
        let bodies: usize = events.iter().map(|e| action.render(&e.fields).body().len()).sum();
        let before = ALLOCATED.load(Ordering::SeqCst);
        for event in &events {
            engine.on_event(event).await?;
        }
        let after = ALLOCATED.load(Ordering::SeqCst);
        Ok((after - before - bodies as isize) as f64 / n as f64)
    })
    .await
}

// --- save to send ------------------------------------------------------------------------------------------------

/// Milliseconds from `on_event` returning (on `queueing`) to the request reaching the receiver, `n` events at
/// 100 a second, sent by a `Worker` at its default settings on `sending`. Every request must arrive.
async fn save_to_send(queueing: &Engine, sending: Engine, arrivals: &Arrivals, n: usize) -> Res<Vec<f64>> {
    let worker = Worker::new(sending).spawn();
    let mut sent = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..n {
        tick.tick().await;
        let ids = queueing.on_event(&event(i)).await?;
        let returned = Instant::now();
        sent.extend(ids.into_iter().map(|id| (id.to_string(), returned)));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent.iter().any(|(id, _)| arrivals.get(id).is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await;
    let mut latencies = Vec::with_capacity(sent.len());
    for (id, returned) in &sent {
        let at = arrivals.get(id).ok_or_else(|| format!("request {id} did not reach the receiver within 10 s"))?;
        latencies.push(at.saturating_duration_since(*returned).as_secs_f64() * 1e3);
    }
    Ok(latencies)
}

/// The p50 and p99 of latencies, each with the samples' range.
fn latency_spreads(latencies: &[f64]) -> (Spread, Spread) {
    let sorted = sorted(latencies);
    let over = format!("{} samples", sorted.len());
    let low = sorted.first().copied().unwrap_or(f64::NAN);
    let high = sorted.last().copied().unwrap_or(f64::NAN);
    let at = |p| Spread { value: percentile(&sorted, p), low, high, over: over.clone() };
    (at(50.0), at(99.0))
}

async fn save_to_send_sqlite(dir: &Path, n: usize) -> Res<(Spread, Spread)> {
    let arrivals = Arc::new(Arrivals::default());
    let url = receiver(Some(arrivals.clone())).await?;
    let http = Arc::new(ReqwestClient::builder().allow_private_networks(true).build()?);
    let storage = SqliteStorage::open(dir.join("save-to-send.sqlite3"))?;
    let engine = engine(Arc::new(storage), http, &url, CONCURRENCY)?;
    let latencies = save_to_send(&engine, engine.clone(), &arrivals, n).await?;
    Ok(latency_spreads(&latencies))
}

// --- PostgreSQL ------------------------------------------------------------------------------------------------

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crm_webhooks::PostgresStorage;

    /// Two storages on two pools, in one fresh schema.
    pub(super) struct Pair {
        pub(super) a: PostgresStorage,
        pub(super) b: PostgresStorage,
    }

    impl Pair {
        pub(super) async fn new(database_url: &str) -> Res<Pair> {
            let schema = format!("perf_{}", DeliveryId::new().to_string().trim_start_matches("msg_"));
            let a = PostgresStorage::connect(database_url).await?.schema(&schema)?;
            a.setup().await?;
            let b = PostgresStorage::connect(database_url).await?.schema(&schema)?;
            Ok(Pair { a, b })
        }

        /// Drops the schema and closes both pools.
        pub(super) async fn drop_schema(self) -> Res<()> {
            // The name is ours, checked by `PostgresStorage::schema`, and quoted.
            let sql = format!("DROP SCHEMA \"{}\" CASCADE", self.a.schema_name());
            crm_webhooks::adapters::postgres::sqlx::query(crm_webhooks::adapters::postgres::sqlx::AssertSqlSafe(sql))
                .execute(self.a.pool())
                .await?;
            self.a.pool().close().await;
            self.b.pool().close().await;
            Ok(())
        }

        /// Runs `f` on the pair, then drops the schema whatever `f` returned.
        pub(super) async fn with<T>(database_url: &str, f: impl AsyncFnOnce(&Pair) -> Res<T>) -> Res<T> {
            let pair = Pair::new(database_url).await?;
            let result = f(&pair).await;
            let dropped = pair.drop_schema().await;
            let value = result?;
            dropped?;
            Ok(value)
        }
    }

    /// Two engines on two pools sharing a fresh schema, `CONCURRENCY / 2` in flight each (so `CONCURRENCY` in
    /// all, as the bare client), against the bare client.
    pub(super) async fn engine_postgres_vs_raw_http(
        database_url: &str,
        http: &Arc<ReqwestClient>,
        url: &str,
        n: usize,
    ) -> Res<Spread> {
        ratio_rounds(
            ROUNDS,
            async || {
                Pair::with(database_url, async |pair: &Pair| {
                    let a = engine(Arc::new(pair.a.clone()), http.clone(), url, CONCURRENCY / 2)?;
                    let b = engine(Arc::new(pair.b.clone()), http.clone(), url, CONCURRENCY / 2)?;
                    engine_http_rate(&[a, b], n).await
                })
                .await
            },
            async || bare_http_rate(http, url, n).await,
        )
        .await
    }

    /// Events queued on one engine, sent by the default `Worker` of another engine on another pool.
    pub(super) async fn save_to_send_postgres(database_url: &str, n: usize) -> Res<Spread> {
        let arrivals = Arc::new(Arrivals::default());
        let url = receiver(Some(arrivals.clone())).await?;
        let http = Arc::new(ReqwestClient::builder().allow_private_networks(true).build()?);
        let latencies = Pair::with(database_url, async |pair: &Pair| {
            let queueing = engine(Arc::new(pair.a.clone()), http.clone(), &url, CONCURRENCY)?;
            let sending = engine(Arc::new(pair.b.clone()), http.clone(), &url, CONCURRENCY)?;
            save_to_send(&queueing, sending, &arrivals, n).await
        })
        .await?;
        Ok(latency_spreads(&latencies).0)
    }
}

const POSTGRES_FIGURES: [(&str, Goal); 2] =
    [("engine_postgres_vs_raw_http", Goal::AtLeast(0.3)), ("save_to_send_postgres_p50_ms", Goal::AtMost(20.0))];

#[cfg(feature = "postgres")]
async fn postgres_figures(report: &mut Report, database_url: &str, http: &Arc<ReqwestClient>, url: &str, sizes: Sizes) {
    let [(throughput, throughput_goal), (latency, latency_goal)] = POSTGRES_FIGURES;
    report.add(
        throughput,
        throughput_goal,
        postgres::engine_postgres_vs_raw_http(database_url, http, url, sizes.of(1000, 100)).await,
    );
    report.add(latency, latency_goal, postgres::save_to_send_postgres(database_url, sizes.of(300, 20)).await);
}

#[cfg(not(feature = "postgres"))]
async fn postgres_figures(report: &mut Report, _database_url: &str, _: &Arc<ReqwestClient>, _: &str, _: Sizes) {
    for (name, goal) in POSTGRES_FIGURES {
        report.skip(name, goal, "built without the `postgres` feature (add --features postgres)");
    }
}

/// The 1, 5 and 15 minute load averages where the system tells them (Linux), for reading the figures: other
/// processes on the same cores widen every spread.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

// --- the report ------------------------------------------------------------------------------------------------

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let (mut scale, mut filter) = (1.0, None);
    for arg in std::env::args().skip(1) {
        match arg.parse::<f64>() {
            Ok(factor) if factor > 0.0 => scale = factor,
            Ok(_) => return Err("the size factor must be above 0, e.g. 0.5".into()),
            Err(_) => filter = Some(arg),
        }
    }
    // Only the figures whose name contains the word, if one was given.
    let wanted = |names: &[&str]| filter.as_deref().is_none_or(|word| names.iter().any(|name| name.contains(word)));
    let sizes = Sizes { scale };
    let database_url = std::env::var("DATABASE_URL").ok().filter(|url| !url.is_empty());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "crm-webhooks perf report: scale {scale}, {ROUNDS} rounds a figure, {cores} cores, {CONCURRENCY} in flight"
    );
    println!("load average at start: {}", load_average());
    if database_url.is_none() {
        println!("DATABASE_URL is not set: the Postgres figures are skipped");
    }
    let started = Instant::now();
    let mut report = Report { rows: Vec::new(), since: Instant::now() };

    // First, while nothing else in the process allocates.
    if wanted(&["memory_bytes_per_queued"]) {
        report.add(
            "memory_bytes_per_queued",
            Goal::AtMost(512.0),
            memory_bytes_per_queued(sizes.of(20_000, 1000)).await,
        );
    }

    let iterations = sizes.of(5000, 200);
    if wanted(&["encode_json_vs_serde_json"]) {
        report.add("encode_json_vs_serde_json", Goal::AtLeast(1.0), encode_json_vs_serde_json(iterations).await);
    }
    if wanted(&["encode_form_vs_serde_urlencoded"]) {
        report.add(
            "encode_form_vs_serde_urlencoded",
            Goal::AtLeast(1.0),
            encode_form_vs_serde_urlencoded(iterations).await,
        );
    }
    if wanted(&["encode_xml_vs_quick_xml"]) {
        report.add("encode_xml_vs_quick_xml", Goal::AtLeast(1.0), encode_xml_vs_quick_xml(iterations).await);
    }
    if wanted(&["engine_overhead_us"]) {
        report.add("engine_overhead_us", Goal::AtMost(3.0), engine_overhead_us(sizes.of(20_000, 1000)).await);
    }

    let dir = tempfile::tempdir()?;
    let intake = sizes.of(2000, 160);
    if wanted(&["sqlite_enqueue_vs_raw_insert"]) {
        report.add(
            "sqlite_enqueue_vs_raw_insert",
            Goal::AtLeast(0.8),
            sqlite_enqueue_vs_raw_insert(dir.path(), intake, 1).await,
        );
    }
    if wanted(&["sqlite_enqueue_16_callers_vs_raw_insert"]) {
        report.add(
            "sqlite_enqueue_16_callers_vs_raw_insert",
            Goal::AtLeast(2.0),
            sqlite_enqueue_vs_raw_insert(dir.path(), intake, 16).await,
        );
    }
    if wanted(&["sqlite_claim_depth_1m_vs_1k"]) {
        report.add(
            "sqlite_claim_depth_1m_vs_1k",
            Goal::AtMost(1.3),
            sqlite_claim_depth(dir.path(), sizes.of(1_000_000, 10_000), 1000, 41).await,
        );
    }

    let url = receiver(None).await?;
    let http = Arc::new(ReqwestClient::builder().allow_private_networks(true).build()?);
    let deliveries = sizes.of(2000, 200);
    if wanted(&["engine_memory_vs_raw_http"]) {
        report.add(
            "engine_memory_vs_raw_http",
            Goal::AtLeast(0.9),
            engine_memory_vs_raw_http(&http, &url, deliveries).await,
        );
    }
    if wanted(&["engine_sqlite_vs_raw_http"]) {
        report.add(
            "engine_sqlite_vs_raw_http",
            Goal::AtLeast(0.6),
            engine_sqlite_vs_raw_http(dir.path(), &http, &url, deliveries).await,
        );
    }
    if wanted(&["save_to_send_p50_ms", "save_to_send_p99_ms"]) {
        match save_to_send_sqlite(dir.path(), sizes.of(300, 20)).await {
            Ok((p50, p99)) => {
                report.add("save_to_send_p50_ms", Goal::AtMost(5.0), Ok(p50));
                report.add("save_to_send_p99_ms", Goal::AtMost(20.0), Ok(p99));
            }
            Err(error) => {
                report.skip("save_to_send_p50_ms", Goal::AtMost(5.0), &error.to_string());
                report.skip("save_to_send_p99_ms", Goal::AtMost(20.0), &error.to_string());
            }
        }
    }

    if POSTGRES_FIGURES.iter().any(|(name, _)| wanted(&[name])) {
        match &database_url {
            Some(database_url) => postgres_figures(&mut report, database_url, &http, &url, sizes).await,
            None => {
                for (name, goal) in POSTGRES_FIGURES {
                    report.skip(name, goal, "DATABASE_URL is not set");
                }
            }
        }
    }

    report.print_table();
    println!("\nfinished in {:.0} s; load average at the end: {}", started.elapsed().as_secs_f64(), load_average());
    Ok(())
}
