//! "Send a test" on a webhook action: a form for a sample record, the real request it sends, and the answer; the
//! same as JSON under `/api/test`. The test is stored and logged (record `test`), so the log shows it too.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::Extension;
use http::HeaderMap;
use maud::{html, Markup};
use serde::Deserialize;

use crate::engine::TestSend;
use crate::payload::ValueSource;
use crate::record::Fields;

use super::error::{AdminError, ApiError, PageError};
use super::layout::{frame, html as page, time};
use super::state::{AdminState, Ctx};

/// What a test names: the workflow, the action and the sample record.
#[derive(Debug, Deserialize)]
pub(crate) struct TestRequest {
    workflow: String,
    action: String,
    #[serde(default)]
    fields: Fields,
}

/// The workflow and action of `?workflow=&action=`.
fn which(query: Option<&str>) -> Result<(String, String), AdminError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| AdminError::BadSample(format!("the query does not read: {e}")))?;
    let get = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    match (get("workflow"), get("action")) {
        (Some(workflow), Some(action)) => Ok((workflow, action)),
        _ => Err(AdminError::BadSample("say which action to test: ?workflow=<id>&action=<title>".to_owned())),
    }
}

/// A sample record for the form: every field the action reads, empty.
fn sample(state: &AdminState, tenant: &str, workflow: &str, action: &str) -> Result<String, AdminError> {
    let set = state.engine.workflows(tenant).ok_or_else(|| AdminError::UnknownAction(action.to_owned()))?;
    let webhook =
        set.get(workflow).and_then(|w| w.action(action)).ok_or_else(|| AdminError::UnknownAction(action.to_owned()))?;
    let mut fields = Fields::new();
    for parameter in webhook.parameters() {
        match &parameter.source {
            ValueSource::Field(name) => {
                fields.insert(name.clone(), serde_json::Value::String(String::new()));
            }
            ValueSource::Template(template) => {
                for name in template.fields() {
                    fields.insert(name.to_owned(), serde_json::Value::String(String::new()));
                }
            }
            ValueSource::Value(_) => {}
        }
    }
    serde_json::to_string_pretty(&fields).map_err(|e| AdminError::BadSample(e.to_string()))
}

/// `GET /test?workflow=&action=`: the form.
pub(crate) async fn form(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let (workflow, action) = which(query.as_deref())?;
    let record = sample(&state, &ctx.caller.tenant, &workflow, &action)?;
    Ok(page(form_page(&ctx, &workflow, &action, &record, None)))
}

/// `POST /test` (form fields `workflow`, `action`, `record` as a JSON object, `csrf_token`): sends, and shows what
/// went and what came back.
pub(crate) async fn send(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let get = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if !state.same_site_post(&ctx, &headers, get("csrf_token")) {
        return Err(AdminError::CrossSite.into());
    }
    let (Some(workflow), Some(action)) = (get("workflow"), get("action")) else {
        return Err(AdminError::BadSample("the form names no workflow and action".to_owned()).into());
    };
    let record = get("record").unwrap_or("{}");
    let fields: Fields = match serde_json::from_str(record) {
        Ok(fields) => fields,
        Err(e) => {
            let why = format!("the sample record is not a JSON object of fields: {e}");
            return Ok(page(form_page(&ctx, workflow, action, record, Some(&why))));
        }
    };
    let sent = state.engine.send_test(&ctx.caller.tenant, workflow, action, &fields, &ctx.caller.user).await?;
    Ok(page(result_page(&ctx, workflow, action, &sent)))
}

/// `POST /api/test` with `{"workflow", "action", "fields"}` and the caller's token in `x-csrf-token`.
pub(crate) async fn api(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !state.same_site_post(&ctx, &headers, None) {
        return Err(AdminError::CrossSite.into());
    }
    let request: TestRequest = serde_json::from_slice(&body).map_err(|e| {
        AdminError::BadSample(format!("the body must be {{\"workflow\", \"action\", \"fields\": {{...}}}}: {e}"))
    })?;
    let sent = state
        .engine
        .send_test(&ctx.caller.tenant, &request.workflow, &request.action, &request.fields, &ctx.caller.user)
        .await?;
    Ok(super::api::json(http::StatusCode::OK, &sent))
}

fn form_page(ctx: &Ctx, workflow: &str, action: &str, record: &str, problem: Option<&str>) -> Markup {
    let body = html! {
        p { "Sends one real request of " strong { (action) } " (workflow " strong { (workflow) } ") with the record below: "
            "the same encoder, authentication, signature and address guard as a workflow's call. It is logged as a test "
            "(record " code { "test" } "), not retried, and not counted against the daily quota." }
        @if let Some(problem) = problem { p.why { (problem) } }
        form method="post" action=(ctx.link("/test")) {
            input type="hidden" name="csrf_token" value=(ctx.token);
            input type="hidden" name="workflow" value=(workflow);
            input type="hidden" name="action" value=(action);
            label { "Sample record (a JSON object of fields)" br; textarea name="record" rows="12" cols="70" { (record) } }
            br;
            button type="submit" { "Send the test" }
        }
    };
    frame(Some(ctx), "Send a test", body)
}

fn result_page(ctx: &Ctx, workflow: &str, action: &str, sent: &TestSend) -> Markup {
    let body = html! {
        p.why {
            @if sent.delivered { "The receiver accepted the test." } @else { "The test failed: " (sent.error.as_deref().unwrap_or("no answer")) }
        }
        p { a href=(ctx.link(&format!("/deliveries/{}", sent.delivery_id))) { "The test in the webhook log" } " · "
            a href=(ctx.link(&format!("/test?{}", serde_urlencoded::to_string([("workflow", workflow), ("action", action)]).unwrap_or_default()))) { "Send another" } }
        h2 { "Request" }
        p { (sent.method) " " code { (sent.url) } " at " (time(sent.sent_at)) }
        table.headers { @for (name, value) in &sent.headers { tr.header { th { (name) } td { code { (value) } } } } }
        pre.body { (sent.body) }
        h2 { "Response" }
        dl {
            dt { "HTTP status" } dd { @if let Some(s) = sent.http_status { (s) } @else { "none (no answer)" } }
            dt { "Took" } dd { (sent.duration_ms) " ms" }
        }
        @if let Some(snippet) = &sent.response_snippet { pre.response { (snippet) } }
    };
    frame(Some(ctx), "Test result", body)
}
