//! The four pages: the tenant's workflows, the webhook log, one delivery, and usage with its 30-day chart.

use maud::{html, Markup};

use crate::delivery::DeliveryStatus;

use super::data::{DeliveryView, LogPage, UsageView, WorkflowView};
use super::layout::{entry_head, entry_rows, frame, record_query, status, time};
use super::params::LogFilters;
use super::state::Ctx;

const STATUSES: [DeliveryStatus; 4] =
    [DeliveryStatus::Queued, DeliveryStatus::Dispatched, DeliveryStatus::Success, DeliveryStatus::Failed];

/// The tenant's workflows, each webhook action with its "View webhook log" link.
pub(crate) fn workflows(ctx: &Ctx, workflows: &[WorkflowView]) -> Markup {
    let body = html! {
        @if workflows.is_empty() {
            p { "This tenant has no workflows with webhook actions yet." }
        }
        @for w in workflows {
            section.workflow {
                h2 {
                    (w.name) " "
                    small { "(" (w.module) @if !w.active { ", inactive" } ")" }
                }
                p { a href=(ctx.link(&format!("/log?{}", filters_of(&w.id, None).query_string()))) { "View the workflow's log" } }
                table {
                    tr { th { "Webhook action" } th { "Method" } th { "URL" } th { "Content type" } th { "Receiver" } th {} }
                    @for a in &w.actions {
                        tr.action {
                            td { (a.title) }
                            td { (a.method) }
                            td { code { (a.url) } }
                            td { (a.content_type) }
                            td.health { (health(ctx, &w.id, a)) }
                            td {
                                a href=(ctx.link(&format!("/log?{}", filters_of(&w.id, Some(&a.title)).query_string()))) {
                                    "View webhook log"
                                }
                                " · "
                                a.test href=(ctx.link(&format!("/test?{}", serde_urlencoded::to_string([("workflow", w.id.as_str()), ("action", a.title.as_str())]).unwrap_or_default()))) {
                                    "Send a test"
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    frame(Some(ctx), "Workflows", body)
}

/// An action's receiver: healthy, failing (with since when), warned or paused (with why), and the button that
/// pauses or resumes it.
fn health(ctx: &Ctx, workflow: &str, a: &super::data::ActionView) -> Markup {
    use crate::ports::EndpointState;
    let button = |what: &str, label: &str| {
        html! {
            form.inline method="post" action=(ctx.link(&format!("/actions/{what}"))) {
                input type="hidden" name="workflow" value=(workflow);
                input type="hidden" name="action" value=(a.title);
                input type="hidden" name="csrf_token" value=(ctx.token);
                button type="submit" { (label) }
            }
        }
    };
    html! {
        @match &a.health {
            None => { span.healthy { "healthy" } " " (button("pause", "Pause")) }
            Some(h) => {
                @let since = h.failing_since.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
                @match h.state {
                    EndpointState::Paused => {
                        strong.paused { "paused" } " since " (time(h.changed_at))
                        @if let Some(reason) = &h.reason { br; small { (reason) } }
                        br; (button("resume", "Resume: send what waited"))
                    }
                    EndpointState::Warning | EndpointState::Healthy => {
                        span class=(if h.state == EndpointState::Warning { "warning" } else { "failing" }) {
                            (h.state.as_str()) ": " (h.failures) " failed attempts in a row"
                        }
                        @if let Some(since) = since { br; small { "since " (since) } }
                        " " (button("pause", "Pause"))
                    }
                }
            }
        }
    }
}

fn filters_of(workflow: &str, action: Option<&str>) -> LogFilters {
    LogFilters {
        workflow: Some(workflow.to_owned()),
        action: action.map(str::to_owned),
        page: 1,
        ..LogFilters::default()
    }
}

/// The log, newest first: status filters, a form for the record and the time range, a page of entries, pager.
pub(crate) fn log(ctx: &Ctx, filters: &LogFilters, page: &LogPage) -> Markup {
    let link = |f: &LogFilters| ctx.link(&format!("/log?{}", f.query_string()));
    let minutes = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.format("%Y-%m-%dT%H:%M").to_string());
    let body = html! {
        @if filters.workflow.is_some() || filters.action.is_some() || filters.record.is_some() {
            p.scope {
                @if let Some(w) = &filters.workflow { "Workflow " strong { (w) } " " }
                @if let Some(a) = &filters.action { "action " strong { (a) } " " }
                @if let Some(r) = &filters.record { "record " strong { (r) } " " }
                a href=(ctx.link("/log")) { "(whole log)" }
            }
        }
        p.filters {
            "Status: "
            a href=(link(&filters.with_status(None))) aria-current=[filters.status.is_none().then_some("page")] { "All" }
            @for s in STATUSES {
                a href=(link(&filters.with_status(Some(s)))) aria-current=[(filters.status == Some(s)).then_some("page")] {
                    (s.as_str())
                }
            }
        }
        form.filters method="get" action=(ctx.link("/log")) {
            @if let Some(w) = &filters.workflow { input type="hidden" name="workflow" value=(w); }
            @if let Some(a) = &filters.action { input type="hidden" name="action" value=(a); }
            @if let Some(s) = filters.status { input type="hidden" name="status" value=(s.as_str()); }
            label { "Record " input type="text" name="record" value=[filters.record.as_deref()]; } " "
            label { "From (UTC) " input type="datetime-local" name="since" value=[minutes(filters.since)]; } " "
            label { "Until (UTC) " input type="datetime-local" name="until" value=[minutes(filters.until)]; } " "
            button type="submit" { "Filter" }
        }
        @if page.entries.is_empty() {
            p.empty { "No log entries match." }
        } @else {
            table.log {
                (entry_head(true))
                (entry_rows(ctx, &page.entries, 120, true))
            }
        }
        p.pager {
            @if let Some(newer) = page.newer { a rel="prev" href=(link(&filters.with_page(newer))) { "← Newer" } }
            "Page " (page.page)
            @if let Some(older) = page.older { " " a rel="next" href=(link(&filters.with_page(older))) { "Older →" } }
        }
    };
    frame(Some(ctx), "Webhook log", body)
}

/// One delivery: what it is, why it failed, the Redeliver button, its attempts, its headers and body.
pub(crate) fn delivery(ctx: &Ctx, d: &DeliveryView) -> Markup {
    let log_of = |f: LogFilters| ctx.link(&format!("/log?{}", f.query_string()));
    let body = html! {
        dl {
            dt { "Status" } dd { (status(d.status)) }
            dt { "Workflow" } dd { a href=(log_of(filters_of(&d.workflow, None))) { (d.workflow) } }
            dt { "Action" } dd { a href=(log_of(filters_of(&d.workflow, Some(&d.action)))) { (d.action) } }
            dt { "Record" } dd { a href=(ctx.link(&format!("/log?{}", record_query(&d.record_id)))) { (d.record_id) } " (" (d.module) ")" }
            dt { "Request" } dd { (d.method) " " code { (d.url) } }
            dt { "Attempts" } dd { (d.attempts) }
            dt { "Queued" } dd { (time(d.created_at)) }
            dt { "Last change" } dd { (time(d.updated_at)) }
            @if let Some(next) = d.next_attempt_at { dt { "Next attempt" } dd { (time(next)) } }
            @if let Some(of) = d.redelivery_of {
                dt { "Redelivers" } dd { a href=(ctx.link(&format!("/deliveries/{of}"))) { (of) } }
            }
        }
        @if let Some(why) = &d.failure {
            h2 { "Why it failed" }
            p.why { (why) }
        }
        @if d.redeliverable {
            form.inline method="post" action=(ctx.link(&format!("/deliveries/{}/redeliver", d.id))) {
                input type="hidden" name="csrf_token" value=(ctx.token);
                button type="submit" { "Redeliver" }
            }
            " Sends the same body again as a new delivery."
        } @else {
            p { "Redeliver becomes available once this delivery has succeeded or failed." }
        }
        h2 { "Attempts" }
        table.attempts {
            (entry_head(false))
            (entry_rows(ctx, &d.log, 400, false))
        }
        h2 { "Request headers" }
        p { small { "As the last attempt sent them; webhook-timestamp and the signature change with each attempt." } }
        table.headers {
            @for h in &d.headers { tr.header { th { (h.name) } td { code { (h.value) } } } }
        }
        h2 { "Body (" (d.content_type) ")" }
        pre.body { (d.body) }
    };
    frame(Some(ctx), &format!("Delivery {}", d.id), body)
}

/// Usage of one day against the allowance, and calls per day for the last 30 days.
pub(crate) fn usage(ctx: &Ctx, u: &UsageView) -> Markup {
    let day = u.day;
    let body = html! {
        p.usage {
            @if day.day == u.today { "Today" } @else { (day.day.to_string()) }
            ": " strong { (day.used) } " calls"
            @match day.allowed {
                Some(allowed) => {
                    " of " (allowed) " allowed ("
                    (percent(day.used, allowed)) "%)"
                },
                None => { ", no daily limit" },
            }
        }
        form method="get" action=(ctx.link("/usage")) {
            label { "Another day " input type="date" name="day" value=(day.day.to_string()); } " "
            button type="submit" { "Show" }
        }
        h2 { "Calls per day, last " (u.days.len()) " days" }
        (chart(u))
    };
    frame(Some(ctx), "Usage", body)
}

fn percent(used: u64, allowed: u64) -> u64 {
    used.saturating_mul(100).checked_div(allowed).unwrap_or(100)
}

/// A bar per day, scaled to the busiest day; each bar's title gives its day and count.
fn chart(u: &UsageView) -> Markup {
    const BAR: u64 = 20;
    const GAP: u64 = 4;
    const HEIGHT: u64 = 120;
    let busiest = u.days.iter().map(|d| d.used).max().unwrap_or(0);
    let top = busiest.max(1);
    let width = (BAR + GAP) * u64::try_from(u.days.len()).unwrap_or(0);
    let label = format!("Calls per day from {} to {}", first_day(u), u.today);
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" width=(width) height=(HEIGHT + 20)
            viewBox=(format!("0 0 {width} {}", HEIGHT + 20)) role="img" aria-label=(label) {
            @for (i, d) in u.days.iter().enumerate() {
                @let x = (BAR + GAP) * u64::try_from(i).unwrap_or(0);
                @let h = (d.used.saturating_mul(HEIGHT) / top).max(u64::from(d.used > 0));
                rect x=(x) y=(HEIGHT - h) width=(BAR) height=(h) fill="#3b6fd4" {
                    title { (d.day.to_string()) ": " (d.used) " calls" }
                }
            }
            line x1="0" y1=(HEIGHT) x2=(width) y2=(HEIGHT) stroke="#98a2b3" {}
            text x="0" y=(HEIGHT + 15) font-size="11" { (first_day(u)) }
            text x=(width) y=(HEIGHT + 15) font-size="11" text-anchor="end" { (u.today.to_string()) }
        }
        p { small { "Busiest day: " (busiest) " calls. Hover a bar for its day." } }
    }
}

fn first_day(u: &UsageView) -> String {
    u.days.first().map(|d| d.day.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_of_an_allowance() {
        assert_eq!((percent(0, 100), percent(50, 200), percent(3, 0)), (0, 25, 100));
    }
}
