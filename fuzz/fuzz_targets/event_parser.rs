//! Any bytes as a record event (`serde_json::from_slice::<RecordEvent>`); an event that parses is evaluated
//! against a fixed set of workflows (a condition of every operator, actions of every content type, a signed one)
//! with `WorkflowSet::matching` and `preview`, in four zones, at a fixed time and at the event's own time.
#![no_main]

use std::sync::OnceLock;

use crm_webhooks::{RecordEvent, WorkflowSet};
use crm_webhooks::engine::preview;
use crm_webhooks_fuzz::{fixed_now, ZONES};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fn conditions() -> Vec<Value> {
    vec![
        json!({"field": "stage", "op": "is", "value": "Closed Won"}),
        json!({"field": "stage", "op": "is_not", "value": true}),
        json!({"field": "tags", "op": "contains", "value": "vip"}),
        json!({"field": "name", "op": "does_not_contain", "value": 42}),
        json!({"field": "name", "op": "starts_with", "value": "İ"}),
        json!({"field": "name", "op": "ends_with", "value": "Inc."}),
        json!({"field": "notes", "op": "is_empty"}),
        json!({"field": "notes", "op": "is_not_empty"}),
        json!({"field": "amount", "op": "less_than", "value": 1000}),
        json!({"field": "amount", "op": "greater_than", "value": "1200.50"}),
        json!({"field": "close_date", "op": "less_or_equal", "value": "2026-11-29"}),
        json!({"field": "created", "op": "greater_or_equal", "value": "2026-11-29T10:00:00Z"}),
        json!({"field": "stage", "op": "has_changed"}),
        json!({"field": "stage", "op": "has_changed_to", "value": "Closed Won"}),
        json!({"field": "stage", "op": "has_changed_from", "value": null}),
        json!({"field": "due", "op": "before", "value": "+262142-12-31"}),
        json!({"field": "due", "op": "after", "value": "-262143-01-01 00:00"}),
        json!({"field": "due", "op": "between", "value": ["9999-12-31T23:59:59Z", "2026-01-01"]}),
        json!({"field": "count", "op": "between", "value": [1, 1e300]}),
        json!({"field": "close_date", "op": "is_today"}),
        json!({"field": "created", "op": "less_than_days_ago", "value": 30}),
        json!({"field": "created", "op": "more_than_days_ago", "value": 0}),
        json!({"field": "due", "op": "in_less_than_days", "value": "7"}),
        json!({"field": "due", "op": "in_more_than_days", "value": 999999999}),
    ]
}

fn actions(n: usize) -> Vec<Value> {
    let parameters = json!([
        {"name": "id", "value": "ACME-42"},
        {"name": "amount", "field": "amount"},
        {"name": "customer.name", "field": "name"},
        {"name": "customer.tags.0", "field": "tags"},
        {"name": "customer.tags.1", "value": [1, {"k": "<&>"}]},
        {"name": "summary", "template": "Deal ${name} at $amount: $$${stage} ${notes}"},
        {"name": "due", "field": "due"},
    ]);
    let kinds = ["JSON", "JSONARRAY", "XML", "FORM"];
    let mut actions = vec![
        json!({"title": kinds[n % 4], "url": "https://example.com/a", "content_type": kinds[n % 4],
               "parameters": parameters}),
        json!({"title": "signed", "url": "https://user.example/b?q=1", "method": "PUT",
               "content_type": kinds[(n + 1) % 4], "parameters": parameters,
               "auth": {"type": "basic", "username": "api", "password": "s3cret"},
               "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    ];
    if n.is_multiple_of(2) {
        actions.push(json!({"title": "third", "url": "http://127.0.0.1:8080/", "content_type": kinds[(n + 2) % 4],
                            "parameters": [{"name": "all", "template": "$stage$amount$name$tags$notes$created$due"}]}));
    }
    actions
}

fn workflows() -> &'static WorkflowSet {
    static SET: OnceLock<WorkflowSet> = OnceLock::new();
    SET.get_or_init(|| {
        let triggers = [
            json!("every_save"),
            json!("first_save"),
            json!("modify"),
            json!("once"),
            json!("manual"),
            json!({"schedule": {"every": "daily", "at": "09:00"}}),
        ];
        let mut list: Vec<Value> = conditions()
            .into_iter()
            .enumerate()
            .map(|(i, condition)| {
                json!({"id": format!("w{i}"), "module": "Leads", "trigger": triggers[i % triggers.len()],
                       "criteria": {"all": [condition]}, "actions": actions(i)})
            })
            .collect();
        list.push(json!({"id": "any", "module": "leads", "trigger": "every_save",
                         "criteria": {"any": conditions()}, "actions": actions(1)}));
        list.push(json!({"id": "always", "module": "Potentials", "trigger": "every_save", "actions": actions(2)}));
        WorkflowSet::from_value(json!({"workflows": list})).expect("the fixed workflows are valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<RecordEvent>(data) else { return };
    let set = workflows();
    let mut nows = vec![fixed_now()];
    nows.extend(event.occurred_at);
    for tz in ZONES {
        for &now in &nows {
            let now = now.with_timezone(&tz);
            let matching: Vec<&str> = set.matching(&event, now).map(|w| w.id()).collect();
            let requests = preview(set, &event, now);
            let expected: usize = set
                .matching(&event, now)
                .filter(|w| event.workflow.as_deref().is_none_or(|only| only == w.id()))
                .map(|w| w.actions().len())
                .sum();
            assert_eq!(requests.len(), expected, "{matching:?}");
            for request in &requests {
                assert!(!request.body.is_empty());
                if let Some(auth) = request.headers.get("authorization") {
                    assert_eq!(auth, "Basic [redacted]");
                }
            }
        }
    }
    // An event that parsed serializes and parses back equal.
    let json = serde_json::to_string(&event).expect("an event serializes");
    let again: RecordEvent =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("the serialized event does not parse: {e}\n{json}"));
    assert_eq!(again, event);
});
