//! The admin router as a host mounts it (nested under `/settings/webhooks`), driven with `oneshot` against a
//! memory engine holding deliveries in every status: pages, JSON, tenant isolation, escaping, the cross-site
//! guard, paging, filters and refusals.
#![cfg(feature = "admin")]

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use chrono::{Duration, TimeZone, Utc};
use crm_webhooks::admin::{self, AdminKey, Caller, Refusal};
use crm_webhooks::ports::{Claim, ClaimToken, User};
use crm_webhooks::testing::{ManualClock, MockHttp, MockReply, RecordingMailer, StaticDirectory};
use crm_webhooks::{
    Change, DeliveryId, DeliveryStatus, Edition, Engine, LogQuery, MemoryStorage, RecordEvent, Storage, WorkflowSet,
};
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

const MOUNT: &str = "/settings/webhooks";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SCRIPT: &str = "<script>alert(1)</script>";

struct World {
    app: Router,
    engine: Engine,
    http: Arc<MockHttp>,
    success: DeliveryId,
    failed: DeliveryId,
    queued: DeliveryId,
    dispatched: DeliveryId,
    beta: DeliveryId,
}

fn workflows() -> WorkflowSet {
    WorkflowSet::from_json(&format!(
        r#"{{"workflows": [
          {{"id": "ok", "name": "New leads", "module": "Leads", "trigger": "every_save",
            "actions": [{{"title": "Notify", "url": "https://good.example/hook", "content_type": "JSON",
              "parameters": [{{"name": "id", "field": "id"}}, {{"name": "name", "field": "name"}}]}}]}},
          {{"id": "broken", "name": "Contacts <b>sync</b>", "module": "Contacts", "trigger": "every_save",
            "actions": [{{"title": "Push", "url": "https://bad.example/hook", "content_type": "JSON",
              "auth": {{"type": "basic", "username": "api", "password": "s3cret"}},
              "signing_secret": "{SECRET}",
              "parameters": [{{"name": "id", "field": "id"}}]}}]}}]}}"#
    ))
    .unwrap()
}

fn event(tenant: &str, module: &str, record: &str) -> RecordEvent {
    RecordEvent::new(tenant, module, record, Change::Created, "owner").field("id", record)
}

async fn only(engine: &Engine, event: &RecordEvent) -> DeliveryId {
    let ids = engine.on_event(event).await.unwrap();
    assert_eq!(ids.len(), 1);
    ids[0]
}

/// The tenant in `x-tenant`, the user in `x-user`; no tenant header: 401; the user "intruder": 403.
fn authorize(parts: &http::request::Parts) -> Result<Caller, Refusal> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(tenant) = header("x-tenant") else {
        return Err(Refusal::Unauthenticated("sign in to see webhooks".into()));
    };
    let user = header("x-user").unwrap_or_else(|| "ada".into());
    if user == "intruder" {
        return Err(Refusal::Forbidden("only administrators see webhooks".into()));
    }
    Ok(Caller::new(tenant, user))
}

/// acme: one success (yesterday, its record named `<script>`), 20 more successes, one delivery failed after
/// four attempts (HTTP 500), one dispatched (claimed, in flight), one queued; beta: one success.
async fn world() -> World {
    let storage = Arc::new(MemoryStorage::new());
    let http = Arc::new(MockHttp::new_ok());
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap());
    let user = User { id: "owner".into(), name: "O".into(), email: "o@acme.test".into(), active: true, admin: true };
    let directory = StaticDirectory::new()
        .tenant("acme", 5, chrono_tz::UTC, Some(Edition::SalesHelpDeskProfessional))
        .tenant("beta", 5, chrono_tz::UTC, None)
        .user("acme", user);
    let engine = Engine::builder()
        .storage(storage.clone())
        .http(http.clone())
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(directory))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    engine.set_workflows("acme", workflows()).unwrap();
    engine.set_workflows("beta", workflows()).unwrap();

    let success = only(&engine, &event("acme", "Leads", "10x1").field("name", SCRIPT)).await;
    engine.run_due().await.unwrap();

    clock.set(Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap());
    for n in 0..20 {
        clock.advance(Duration::seconds(1));
        only(&engine, &event("acme", "Leads", &format!("20x{n}"))).await;
        engine.run_due().await.unwrap();
    }
    let beta = only(&engine, &event("beta", "Leads", "10x1")).await;
    engine.run_due().await.unwrap();

    http.set_fallback(MockReply::status(500).body("upstream exploded"));
    clock.advance(Duration::seconds(1));
    let failed = only(&engine, &event("acme", "Contacts", "12x2")).await;
    engine.run_due().await.unwrap();
    for hours in [1, 2, 4] {
        clock.advance(Duration::hours(hours) + Duration::seconds(1));
        engine.run_due().await.unwrap();
    }
    assert_eq!(engine.delivery("acme", failed).await.unwrap().unwrap().status, DeliveryStatus::Failed);

    clock.advance(Duration::seconds(1));
    let dispatched = only(&engine, &event("acme", "Leads", "10x4")).await;
    let now = engine.now();
    let claim = Claim { now, limit: 10, lease_until: now + Duration::hours(1), token: ClaimToken::new() };
    assert_eq!(storage.claim_due(&claim).await.unwrap().len(), 1);
    let queued = only(&engine, &event("acme", "Leads", "10x3")).await;

    let key = AdminKey::new(*b"0123456789abcdef0123456789abcdef").unwrap();
    let app = Router::new().nest(MOUNT, admin::router(engine.clone(), authorize, key));
    World { app, engine, http, success, failed, queued, dispatched, beta }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn rows(&self) -> usize {
        self.body.matches("<tr class=\"entry\">").count()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
}

fn request(method: &str, path: &str, tenant: Option<&str>) -> http::request::Builder {
    let builder = Request::builder().method(method).uri(format!("{MOUNT}{path}"));
    match tenant {
        Some(tenant) => builder.header("x-tenant", tenant),
        None => builder,
    }
}

async fn get(app: &Router, path: &str) -> Answer {
    send(app, request("GET", path, Some("acme")).body(Body::empty()).unwrap()).await
}

/// The form token in a page's hidden field.
fn form_token(page: &str) -> String {
    let at = page.find("name=\"csrf_token\" value=\"").expect("a form token") + "name=\"csrf_token\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

fn entries(answer: &Answer) -> Vec<Value> {
    answer.json()["entries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn every_page_and_endpoint_answers_with_its_content() {
    let w = world().await;
    let home = get(&w.app, "").await;
    assert!(home.body.contains(&format!("<a href=\"{MOUNT}\">Workflows</a>")));
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(home.headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert!(!home.body.contains("<script"), "the pages need no script");
    assert_eq!(home.body.matches("View webhook log").count(), 2);
    assert!(home.body.contains(&format!("href=\"{MOUNT}/log?workflow=broken&amp;action=Push\"")), "{}", home.body);
    assert!(home.body.contains("Contacts &lt;b&gt;sync&lt;/b&gt;"));

    let log = get(&w.app, "/log").await;
    assert_eq!((log.status, log.rows()), (StatusCode::OK, 50));
    for status in ["Queued", "Dispatched", "Success", "Failed"] {
        assert!(log.body.contains(&format!("{MOUNT}/log?status={status}\"")), "a filter link for {status}");
    }
    assert!(log.body.contains("rel=\"next\""));

    let page = get(&w.app, &format!("/deliveries/{}", w.failed)).await;
    assert_eq!((page.status, page.rows()), (StatusCode::OK, 9), "queued + 4 × (dispatched, result)");
    assert!(page.body.contains("Why it failed"));
    assert!(page.body.contains("an error of its own (HTTP 500 Internal Server Error)"));
    assert!(page.body.contains("upstream exploded"));
    assert!(page.body.contains("Basic [redacted]") && page.body.contains("v1,[redacted]"));
    assert!(!page.body.contains("s3cret") && !page.body.contains("YXBpOnMzY3JldA"), "no credentials");
    assert!(page.body.contains(&format!("action=\"{MOUNT}/deliveries/{}/redeliver\"", w.failed)));
    assert!(page.body.contains("{&quot;id&quot;:&quot;12x2&quot;}"), "the exact body");
    for id in [w.queued, w.dispatched] {
        let page = get(&w.app, &format!("/deliveries/{id}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Redeliver becomes available once") && !page.body.contains("csrf_token"));
    }

    let usage = get(&w.app, "/usage").await;
    assert_eq!(usage.status, StatusCode::OK);
    assert!(usage.body.contains("Today: <strong>24</strong> calls of 1250 allowed (1%)"), "{}", usage.body);
    assert_eq!(usage.body.matches("<rect ").count(), 30);
    assert!(usage.body.contains("<title>2026-11-28: 1 calls</title>"));
    let yesterday = get(&w.app, "/usage?day=2026-11-28").await;
    assert!(yesterday.body.contains("2026-11-28: <strong>1</strong> calls"));

    let api = get(&w.app, "/api/usage").await.json();
    assert_eq!((api["day"]["used"].as_u64(), api["day"]["allowed"].as_u64()), (Some(24), Some(1250)));
    let days = api["days"].as_array().unwrap();
    assert_eq!((days.len(), days[29]["day"].as_str(), days[28]["used"].as_u64()), (30, Some("2026-11-29"), Some(1)));

    let session = get(&w.app, "/api/session").await.json();
    assert_eq!((session["tenant"].as_str(), session["user"].as_str()), (Some("acme"), Some("ada")));
    let flows = get(&w.app, "/api/workflows").await.json();
    assert_eq!(flows["workflows"][1]["actions"][0]["title"], "Push");

    let detail = get(&w.app, &format!("/api/deliveries/{}", w.failed)).await.json();
    assert_eq!((detail["status"].as_str(), detail["attempts"].as_u64()), (Some("Failed"), Some(4)));
    assert_eq!(detail["log"].as_array().unwrap().len(), 9);
    let headers = detail["headers"].as_array().unwrap();
    let header = |name: &str| headers.iter().find(|h| h["name"] == name).map(|h| h["value"].clone());
    assert_eq!(header("authorization"), Some(Value::from("Basic [redacted]")));
    assert_eq!(header("webhook-id"), Some(Value::from(w.failed.to_string())));
    assert!(detail["failure"].as_str().unwrap().contains("HTTP 500"));
    assert!(!detail.to_string().contains("s3cret"));
    let dispatched = get(&w.app, &format!("/api/deliveries/{}", w.dispatched)).await.json();
    assert_eq!(
        (dispatched["status"].as_str(), dispatched["redeliverable"].as_bool()),
        (Some("Dispatched"), Some(false))
    );

    let wrong = get(&w.app, &format!("/deliveries/{}/redeliver", w.failed)).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong.body.contains("Redeliver is a POST"), "a page: {}", wrong.body);
    let missing = get(&w.app, "/api/nothing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.json()["error"].as_str().unwrap().contains("no page"));
}

#[tokio::test]
async fn a_record_field_holding_a_script_shows_as_text() {
    let w = world().await;
    let page = get(&w.app, &format!("/deliveries/{}", w.success)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", page.body);
    assert!(!page.body.contains(SCRIPT));
    let api = get(&w.app, &format!("/api/deliveries/{}", w.success)).await.json();
    assert_eq!(serde_json::from_str::<Value>(api["body"].as_str().unwrap()).unwrap()["name"], SCRIPT);
}

#[tokio::test]
async fn another_tenants_deliveries_are_not_there() {
    let w = world().await;
    let page = get(&w.app, &format!("/deliveries/{}", w.beta)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("there is no delivery") && !page.body.contains("10x1\""));
    let api = get(&w.app, &format!("/api/deliveries/{}", w.beta)).await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(api.json()["error"].as_str().unwrap().contains(&w.beta.to_string()));

    let token = get(&w.app, "/api/session").await.json()["csrf_token"].as_str().unwrap().to_owned();
    let path = format!("/api/deliveries/{}/redeliver", w.beta);
    let post = request("POST", &path, Some("acme")).header("x-csrf-token", token).body(Body::empty()).unwrap();
    assert_eq!(send(&w.app, post).await.status, StatusCode::NOT_FOUND);
    assert_eq!(w.engine.log(&LogQuery::tenant("beta")).await.unwrap().len(), 3, "beta's log is untouched");

    let all = get(&w.app, "/api/log?page=1").await;
    assert!(entries(&all).iter().all(|e| e["tenant"] == "acme"));
    let beta = send(&w.app, request("GET", "/api/log", Some("beta")).body(Body::empty()).unwrap()).await;
    assert_eq!(entries(&beta).len(), 3);
}

#[tokio::test]
async fn redelivery_needs_the_callers_token() {
    let w = world().await;
    let queued_before = w.engine.log(&LogQuery::tenant("acme").status(DeliveryStatus::Queued)).await.unwrap().len();
    let path = format!("/deliveries/{}/redeliver", w.failed);
    let form = |body: String| {
        request("POST", &path, Some("acme"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
    };
    let page = get(&w.app, &format!("/deliveries/{}", w.failed)).await;
    let token = form_token(&page.body);

    let refused = [
        form(String::new()).unwrap(),
        form("csrf_token=forged".into()).unwrap(),
        // Bob's token is not Ada's.
        form(format!("csrf_token={token}")).unwrap().tap_user("bob"),
        form(format!("csrf_token={token}")).unwrap().tap_header("sec-fetch-site", "cross-site"),
    ];
    for request in refused {
        let answer = send(&w.app, request).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert!(answer.body.contains("no valid form token"));
    }
    let after = w.engine.log(&LogQuery::tenant("acme").status(DeliveryStatus::Queued)).await.unwrap().len();
    assert_eq!(after, queued_before, "nothing was queued");

    let done =
        send(&w.app, form(format!("csrf_token={token}")).unwrap().tap_header("sec-fetch-site", "same-origin")).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let location = done.headers["location"].to_str().unwrap().to_owned();
    let new_id: DeliveryId = location.strip_prefix(&format!("{MOUNT}/deliveries/")).unwrap().parse().unwrap();
    let copy = w.engine.delivery("acme", new_id).await.unwrap().unwrap();
    assert_eq!((copy.redelivery_of, copy.status), (Some(w.failed), DeliveryStatus::Queued));
    let shown = get(&w.app, &format!("/deliveries/{new_id}")).await;
    assert!(shown.body.contains(&format!("href=\"{MOUNT}/deliveries/{}\"", w.failed)), "links to the original");

    // The API: the token in x-csrf-token; without it, 403 as JSON.
    let api_path = format!("/api/deliveries/{}/redeliver", w.success);
    let bare = send(&w.app, request("POST", &api_path, Some("acme")).body(Body::empty()).unwrap()).await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    assert!(bare.json()["error"].as_str().unwrap().contains("x-csrf-token"));
    let api_token = get(&w.app, "/api/session").await.json()["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(api_token, token, "one token per caller and day");
    let post = request("POST", &api_path, Some("acme")).header("x-csrf-token", &api_token).body(Body::empty()).unwrap();
    let created = send(&w.app, post).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let new_id: DeliveryId = created.json()["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(created.headers["location"], format!("{MOUNT}/api/deliveries/{new_id}"));
    assert_eq!(w.engine.delivery("acme", new_id).await.unwrap().unwrap().redelivery_of, Some(w.success));

    // A delivery still under way cannot be redelivered: 409 with the reason.
    let path = format!("/api/deliveries/{}/redeliver", w.queued);
    let post = request("POST", &path, Some("acme")).header("x-csrf-token", &api_token).body(Body::empty()).unwrap();
    let conflict = send(&w.app, post).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert!(conflict.json()["error"].as_str().unwrap().contains("still Queued"));
}

trait Tap {
    fn tap_header(self, name: &'static str, value: &'static str) -> Self;
    fn tap_user(self, user: &'static str) -> Self;
}

impl Tap for Request<Body> {
    fn tap_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers_mut().insert(name, http::HeaderValue::from_static(value));
        self
    }
    fn tap_user(self, user: &'static str) -> Self {
        self.tap_header("x-user", user)
    }
}

#[tokio::test]
async fn the_log_pages_from_newest_to_oldest() {
    let w = world().await;
    let first = get(&w.app, "/api/log?workflow=ok").await.json();
    let second = get(&w.app, "/api/log?workflow=ok&page=2").await.json();
    let (a, b) = (first["entries"].as_array().unwrap(), second["entries"].as_array().unwrap());
    // 22 deliveries of "ok": 21 sent (queued, dispatched, success), one dispatched (queued), one queued.
    assert_eq!((a.len(), b.len()), (50, 15));
    assert_eq!((first["older"].as_u64(), first["newer"].as_u64()), (Some(2), None));
    assert_eq!((second["older"].as_u64(), second["newer"].as_u64()), (None, Some(1)));
    let at = |e: &Value| e["at"].as_str().unwrap().parse::<chrono::DateTime<Utc>>().unwrap();
    let oldest_of_first = a.iter().map(at).min().unwrap();
    assert!(b.iter().map(at).all(|t| t <= oldest_of_first), "the second page holds the older entries");
    assert!(a.windows(2).all(|p| at(&p[0]) >= at(&p[1])), "newest first");

    let html = get(&w.app, "/log?workflow=ok&page=2").await;
    assert_eq!(html.rows(), 15);
    assert!(html.body.contains(&format!("rel=\"prev\" href=\"{MOUNT}/log?workflow=ok\"")), "{}", html.body);
    assert!(!html.body.contains("rel=\"next\""));
}

#[tokio::test]
async fn each_status_filter_and_the_record_filter_return_only_theirs() {
    let w = world().await;
    for status in ["Queued", "Dispatched", "Success", "Failed"] {
        let api = get(&w.app, &format!("/api/log?status={}", status.to_lowercase())).await;
        assert_eq!(api.status, StatusCode::OK);
        let found = entries(&api);
        assert!(!found.is_empty(), "{status}");
        assert!(found.iter().all(|e| e["status"] == status), "{status}");
        let html = get(&w.app, &format!("/log?status={status}")).await;
        let class = format!("status status-{}", status.to_lowercase());
        assert_eq!(html.rows(), found.len(), "{status}");
        assert_eq!(html.body.matches(&class).count(), found.len(), "{status}");
        assert!(html.body.contains(&format!("aria-current=\"page\">{status}")));
    }
    let failed = entries(&get(&w.app, "/api/log?status=Failed").await);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["delivery_id"], w.failed.to_string());

    let record = entries(&get(&w.app, "/api/log?record=12x2").await);
    assert_eq!(record.len(), 9);
    assert!(record.iter().all(|e| e["record_id"] == "12x2"));
    let page = get(&w.app, "/log?record=12x2&status=").await;
    assert_eq!(page.rows(), 9);
    assert!(page.body.contains("record <strong>12x2</strong>"));

    let window = entries(&get(&w.app, "/api/log?since=2026-11-28&until=2026-11-29").await);
    assert_eq!(window.len(), 3, "yesterday's one delivery");
}

#[tokio::test]
async fn bad_parameters_are_400_with_what_to_write() {
    let w = world().await;
    let cases = [
        ("/api/log?status=done", "not a delivery status (Queued, Dispatched, Success or Failed)"),
        ("/api/log?since=yesterday", "since=\"yesterday\" is not a time"),
        ("/api/log?page=0", "pages count from 1"),
        ("/api/log?colour=red", "unknown field `colour`"),
        ("/api/deliveries/msg_nope", "not a delivery id (msg_ followed by 32 hex digits)"),
        ("/api/usage?day=tomorrow", "write it as 2026-05-01"),
    ];
    for (path, says) in cases {
        let answer = get(&w.app, path).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(answer.json()["error"].as_str().unwrap().contains(says), "{path}: {}", answer.body);
    }
    let page = get(&w.app, "/deliveries/12").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("is not a delivery id"));
    let page = get(&w.app, "/log?status=%3Cscript%3E").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("&quot;&lt;script&gt;&quot; is not a delivery status"));
}

#[tokio::test]
async fn the_hosts_refusals_answer_401_and_403() {
    let w = world().await;
    for path in ["", "/log", "/usage", "/api/log", "/nothing"] {
        let anonymous = send(&w.app, request("GET", path, None).body(Body::empty()).unwrap()).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(anonymous.body.contains("sign in to see webhooks"), "{path}");
    }
    let api = send(&w.app, request("GET", "/api/usage", None).body(Body::empty()).unwrap()).await;
    assert_eq!(api.json()["error"], "sign in to see webhooks");
    let path = format!("/api/deliveries/{}", w.failed);
    let intruder =
        send(&w.app, request("GET", &path, Some("acme")).body(Body::empty()).unwrap().tap_user("intruder")).await;
    assert_eq!(intruder.status, StatusCode::FORBIDDEN);
    assert_eq!(intruder.json()["error"], "only administrators see webhooks");
    let no_tenant = send(&w.app, request("GET", "", Some(" ")).body(Body::empty()).unwrap()).await;
    assert_eq!(no_tenant.status, StatusCode::FORBIDDEN);
    assert!(no_tenant.body.contains("has no tenant"));
}

/// "Send a test": the form offers the fields the action reads; the test is one real request with the action's
/// auth and signature (the receiver still answers 500 here), shown with its secrets redacted, logged under record
/// `test`, never retried and not counted; the JSON API does the same and needs the token.
#[tokio::test]
async fn a_test_send_goes_out_for_real_and_is_logged_as_a_test() {
    let w = world().await;
    let home = get(&w.app, "").await;
    assert_eq!(home.body.matches("class=\"test\"").count(), 2, "a Send a test link per action");
    let form = get(&w.app, "/test?workflow=broken&action=Push").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(
        form.body.contains("&quot;id&quot;") || form.body.contains("\"id\""),
        "the sample has the field the action reads"
    );
    let token = form_token(&form.body);
    let usage_before = w.engine.usage("acme").await.unwrap().used;
    let requests_before = w.http.requests().len();
    let post = |body: String| {
        request("POST", "/test", Some("acme"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let fields = serde_urlencoded::to_string([
        ("csrf_token", token.as_str()),
        ("workflow", "broken"),
        ("action", "Push"),
        ("record", r#"{"id": "99x9", "name": "<script>alert(1)</script>"}"#),
    ])
    .unwrap();
    let result = send(&w.app, post(fields)).await;
    assert_eq!(result.status, StatusCode::OK, "{}", result.body);
    assert!(result.body.contains("The test failed: HTTP 500"), "{}", result.body);
    assert!(result.body.contains("Basic [redacted]") && result.body.contains("v1,[redacted]"));
    assert!(!result.body.contains("s3cret") && !result.body.contains(SECRET), "no secret on the page");
    let sent = w.http.requests();
    assert_eq!(sent.len(), requests_before + 1, "one real request");
    let last = sent.last().unwrap();
    assert_eq!(&last.body[..], br#"{"id":"99x9"}"#);
    assert!(last.headers["authorization"].to_str().unwrap().starts_with("Basic "), "the action's own auth");
    assert!(last.headers["webhook-signature"].to_str().unwrap().starts_with("v1,"), "and its signature");
    let logged = w.engine.log(&LogQuery::tenant("acme").record("test")).await.unwrap();
    assert_eq!(logged.len(), 3, "{logged:?}");
    assert!(logged.iter().any(|e| e.message == "test send by ada"));
    let id = logged[0].delivery_id;
    assert_eq!(w.engine.usage("acme").await.unwrap().used, usage_before, "a test is not counted");
    w.engine.run_until_idle(10).await.unwrap();
    let stored = w.engine.delivery("acme", id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (DeliveryStatus::Failed, 1), "a test is never retried");
    assert_eq!(w.http.requests().iter().filter(|r| &r.body[..] == br#"{"id":"99x9"}"#).count(), 1);

    // Not a JSON object: the form again, saying why, escaped.
    let bad = serde_urlencoded::to_string([
        ("csrf_token", token.as_str()),
        ("workflow", "broken"),
        ("action", "Push"),
        ("record", "<b>not json"),
    ])
    .unwrap();
    let again = send(&w.app, post(bad)).await;
    assert!(again.body.contains("is not a JSON object of fields") && again.body.contains("&lt;b&gt;not json"));
    let no_token = serde_urlencoded::to_string([("workflow", "broken"), ("action", "Push"), ("record", "{}")]).unwrap();
    assert_eq!(send(&w.app, post(no_token)).await.status, StatusCode::FORBIDDEN);

    // The API: the token in x-csrf-token, the answer as JSON.
    let api_token = get(&w.app, "/api/session").await.json()["csrf_token"].as_str().unwrap().to_owned();
    let api = |token: Option<&str>, body: &str| {
        let mut builder = request("POST", "/api/test", Some("acme")).header("content-type", "application/json");
        if let Some(token) = token {
            builder = builder.header("x-csrf-token", token);
        }
        builder.body(Body::from(body.to_owned())).unwrap()
    };
    let body = r#"{"workflow": "ok", "action": "Notify", "fields": {"id": "77x7", "name": "Ada"}}"#;
    assert_eq!(send(&w.app, api(None, body)).await.status, StatusCode::FORBIDDEN);
    w.http.set_fallback(MockReply::status(200).body("fine"));
    let answer = send(&w.app, api(Some(&api_token), body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let json = answer.json();
    assert_eq!((json["delivered"].as_bool(), json["http_status"].as_u64()), (Some(true), Some(200)));
    assert_eq!(json["body"], r#"{"id":"77x7","name":"Ada"}"#);
    assert_eq!(json["response_snippet"], "fine");
    let unknown = send(&w.app, api(Some(&api_token), r#"{"workflow": "ok", "action": "Nope"}"#)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    let not_json = send(&w.app, api(Some(&api_token), "{")).await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert!(not_json.json()["error"].as_str().unwrap().contains("\"workflow\", \"action\", \"fields\""));
}

/// The workflows page shows each receiver's health; Pause and Resume are forms with the caller's token, and the
/// API does the same with `x-csrf-token`; a resume sends what waited.
#[tokio::test]
async fn actions_are_paused_and_resumed_from_the_page_and_the_api() {
    let w = world().await;
    let page = get(&w.app, "").await;
    let health = w.engine.endpoint_health("acme").await.unwrap();
    assert!(
        page.body.contains("healthy: 4 failed attempts in a row"),
        "the failing action shows its count: {health:?}"
    );
    assert!(page.body.contains(&format!("action=\"{MOUNT}/actions/pause\"")), "a Pause form");
    let token = form_token(&page.body);
    let form = |what: &str, body: String| {
        request("POST", &format!("/actions/{what}"), Some("acme"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let forged = send(&w.app, form("pause", "workflow=ok&action=Notify&csrf_token=forged".into())).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(w.engine.endpoint_health("acme").await.unwrap().iter().all(|h| h.key.action != "Notify"));
    let paused = send(&w.app, form("pause", format!("workflow=ok&action=Notify&csrf_token={token}"))).await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER);
    assert_eq!(paused.headers["location"], MOUNT);
    let page = get(&w.app, "").await;
    assert!(page.body.contains("paused") && page.body.contains("paused by ada"), "{}", page.body);
    assert!(page.body.contains("Resume: send what waited"));

    // Paused: a save is queued, not sent.
    let sent = w.http.requests().len();
    only(&w.engine, &event("acme", "Leads", "30x1")).await;
    w.engine.run_until_idle(3).await.unwrap();
    assert_eq!(w.http.requests().len(), sent, "nothing sent while paused");

    // The API resumes it: the held delivery (and the queued one of the world) go out.
    let api_token = get(&w.app, "/api/session").await.json()["csrf_token"].as_str().unwrap().to_owned();
    let post = |what: &str, body: &str, token: Option<&str>| {
        let mut r =
            request("POST", &format!("/api/actions/{what}"), Some("acme")).header("content-type", "application/json");
        if let Some(token) = token {
            r = r.header("x-csrf-token", token);
        }
        r.body(Body::from(body.to_owned())).unwrap()
    };
    let bare = send(&w.app, post("resume", r#"{"workflow": "ok", "action": "Notify"}"#, None)).await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    let bad = send(&w.app, post("resume", r#"{"workflow": "ok"}"#, Some(&api_token))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["error"].as_str().unwrap().contains("\"workflow\""), "{:?}", bad.json());
    let unknown = send(&w.app, post("resume", r#"{"workflow": "ok", "action": "Nope"}"#, Some(&api_token))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let other = send(&w.app, post("explode", r#"{"workflow": "ok", "action": "Notify"}"#, Some(&api_token))).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    w.http.set_fallback(MockReply::status(200));
    let resumed = send(&w.app, post("resume", r#"{"workflow": "ok", "action": "Notify"}"#, Some(&api_token))).await;
    assert_eq!(resumed.status, StatusCode::OK);
    assert!(resumed.json()["resumed"].as_u64().unwrap() >= 1, "{:?}", resumed.json());
    w.engine.run_until_idle(3).await.unwrap();
    assert!(w.http.requests().len() > sent, "what waited is sent");
    let workflows = get(&w.app, "/api/workflows").await.json();
    let push = &workflows["workflows"][1]["actions"][0];
    assert_eq!(push["health"]["failures"], 4, "{workflows}");
    assert_eq!(workflows["workflows"][0]["actions"][0]["health"], Value::Null, "healthy again");
    // Beta's page knows nothing of acme's receivers.
    let beta = send(&w.app, request("GET", "", Some("beta")).body(Body::empty()).unwrap()).await;
    assert!(!beta.body.contains("failed attempts in a row"));
}
