//! What every page shares: the frame (navigation, who is signed in, the style sheet), the error page, and how
//! times, statuses and long texts are shown. Markup is maud's, so every value is escaped unless marked otherwise.

use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderName, StatusCode};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::delivery::DeliveryStatus;

use super::data::EntryView;
use super::state::Ctx;

/// The pages need no script: the policy forbids every script, and forms may only post back to the router's origin.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'";

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#1d2330}\
nav{background:#243047;padding:.6em 1em;display:flex;gap:1.2em;align-items:center}\
nav a{color:#fff;text-decoration:none}nav .who{margin-left:auto;color:#c8d0e0;font-size:90%}\
main{padding:1em 1.5em;max-width:78em}table{border-collapse:collapse;width:100%;margin:.5em 0 1em}\
th,td{border-bottom:1px solid #dde2ea;padding:.35em .5em;text-align:left;vertical-align:top}td.time{white-space:nowrap}\
th{background:#f3f5f9}pre{background:#f6f8fa;padding:.8em;overflow:auto;white-space:pre-wrap;word-break:break-all}\
.status{font-weight:600}.status-success{color:#137333}.status-failed{color:#b3261e}\
.status-queued{color:#8a5a00}.status-dispatched{color:#1a56b0}.filters a{margin-right:.8em}\
.filters a[aria-current]{font-weight:700;text-decoration:none}.why{background:#fdecea;padding:.6em .9em}\
.error{background:#fdecea;padding:1em}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}\
dt{font-weight:600}dd{margin:0}.pager a{margin-right:1em}form.inline{display:inline}";

/// A page as a response: HTML, never cached, under the no-script policy.
pub(crate) fn html(page: Markup) -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
            (HeaderName::from_static("content-security-policy"), CONTENT_SECURITY_POLICY),
        ],
        page.into_string(),
    )
        .into_response()
}

/// The frame of a page.
pub(crate) fn frame(ctx: Option<&Ctx>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Webhooks" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                @if let Some(ctx) = ctx {
                    nav {
                        a href=(ctx.link("/")) { "Workflows" }
                        a href=(ctx.link("/log")) { "Webhook log" }
                        a href=(ctx.link("/usage")) { "Usage" }
                        span.who { (ctx.caller.user) " · " (ctx.caller.tenant) }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The page of an error.
pub(crate) fn error(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    frame(None, title, html! { p.error { (message) } })
}

/// A time as the pages show it.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A status, coloured by its class.
pub(crate) fn status(status: DeliveryStatus) -> Markup {
    let class = format!("status status-{}", status.as_str().to_ascii_lowercase());
    html! { span class=(class) { (status.as_str()) } }
}

/// At most `max` characters of a text, with `…` when cut.
pub(crate) fn start(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// The rows of a log table: time (a link to the delivery), status, attempt, HTTP status, duration, the start of the
/// response, and the message with its error; with `source`, the workflow, action and record too.
pub(crate) fn entry_rows(ctx: &Ctx, entries: &[EntryView], snippet_chars: usize, source: bool) -> Markup {
    html! {
        @for view in entries {
            @let e = &view.entry;
            tr.entry {
                td.time { a href=(ctx.link(&format!("/deliveries/{}", e.delivery_id))) { (time(e.at)) } }
                td { (status(e.status)) }
                @if source {
                    td { (e.workflow) } td { (e.action) }
                    td { a href=(ctx.link(&format!("/log?{}", record_query(&e.record_id)))) { (e.record_id) } }
                }
                td { (e.attempt) }
                td { @if let Some(code) = e.http_status { (code) } }
                td { @if let Some(ms) = view.duration_ms { (ms) " ms" } }
                td { @if let Some(snippet) = &e.response_snippet { code { (start(snippet, snippet_chars)) } } }
                td {
                    (e.message)
                    @if let Some(reason) = e.reason {
                        br; small.reason title=(reason.hint()) { code { (reason.as_str()) } " " (reason.title()) }
                    }
                    @if let Some(error) = &e.error { br; small { (error) } }
                }
            }
        }
    }
}

/// The header row of [`entry_rows`].
pub(crate) fn entry_head(source: bool) -> Markup {
    html! {
        tr {
            th { "Time" } th { "Status" }
            @if source { th { "Workflow" } th { "Action" } th { "Record" } }
            th { "Attempt" } th { "HTTP" } th { "Took" } th { "Response" } th { "Message" }
        }
    }
}

/// The query string of the log of one record.
pub(crate) fn record_query(record: &str) -> String {
    serde_urlencoded::to_string([("record", record)]).unwrap_or_default()
}
