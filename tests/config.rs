//! Loading and validating configuration through the public API.

use crm_webhooks::error::ValidationError;
use crm_webhooks::payload::{ContentType, Parameter};
use crm_webhooks::workflow::{Auth, Criteria, Method, Trigger, Workflow};
use crm_webhooks::{ConfigError, WebhookAction, WorkflowSet};

const README: &str = include_str!("../examples/data/workflows.json");

#[test]
fn the_readme_document_loads_and_round_trips() {
    let set = WorkflowSet::from_json(README).unwrap();
    let workflow = set.get("deal-won-invoice").unwrap();
    assert_eq!(
        (workflow.name(), workflow.module(), workflow.trigger()),
        ("Closed deal to accounting", "Potentials", &Trigger::EverySave)
    );
    let action = &workflow.actions()[0];
    assert_eq!(
        (action.title(), action.method(), action.content_type()),
        ("Create invoice", Method::Post, ContentType::Json)
    );
    assert!(
        matches!(action.auth(), Auth::Basic { username, password } if username == "api" && password.expose() == "s3cret")
    );
    let json = serde_json::to_string(&set).unwrap();
    assert_eq!(WorkflowSet::from_json(&json).unwrap(), set, "serialized configuration loads back equal");
    let debug = format!("{set:?}");
    assert!(!debug.contains("s3cret"), "Debug output must redact the password: {debug}");
}

fn with_actions(n: usize) -> serde_json::Value {
    serde_json::json!({"workflows": [{"id": "w", "name": "W", "module": "Leads", "trigger": "every_save",
        "actions": (0..n).map(|i| serde_json::json!({"title": format!("a{i}"), "url": "https://example.com", "content_type": "JSON"})).collect::<Vec<_>>()}]})
}

#[test]
fn a_workflow_holds_at_most_three_webhooks() {
    assert!(WorkflowSet::from_value(with_actions(3)).is_ok());
    let err = WorkflowSet::from_value(with_actions(4)).unwrap_err();
    assert!(err.to_string().contains("at most 3 webhook actions"), "{err}");
    assert!(matches!(err.problems(), [ValidationError::TooManyActions { count: 4, .. }]));
    let action = || WebhookAction::builder("t", "https://example.com", ContentType::Json);
    let actions: Vec<_> = (0..4)
        .map(|i| WebhookAction::builder(format!("a{i}"), "https://x.example", ContentType::Form).build().unwrap())
        .collect();
    let err = Workflow::new("w", "W", "Leads", Trigger::EverySave, Criteria::default(), actions).unwrap_err();
    assert!(err.to_string().contains("at most 3 webhook actions"), "{err}");
    assert!(action().build().is_ok());
}

fn problems(doc: serde_json::Value) -> Vec<String> {
    match WorkflowSet::from_value(doc) {
        Ok(_) => vec![],
        Err(ConfigError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => vec![other.to_string()],
    }
}

fn action_doc(action: serde_json::Value) -> serde_json::Value {
    serde_json::json!([{"id": "w1", "module": "Leads", "trigger": "every_save", "actions": [action]}])
}

#[test]
fn urls_must_be_absolute_http_or_https() {
    for (url, hint) in [
        ("ftp://x.example/a", "scheme \"ftp\""),
        ("/relative", "not absolute"),
        ("", "empty"),
        ("javascript:alert(1)", ""),
    ] {
        let found = problems(action_doc(serde_json::json!({"title": "T", "url": url, "content_type": "JSON"})));
        assert_eq!(found.len(), 1, "{url:?}: {found:?}");
        assert!(found[0].starts_with("workflow \"w1\", action \"T\": url"), "{}", found[0]);
        assert!(found[0].contains(hint), "{}", found[0]);
    }
    let with_credentials = problems(action_doc(
        serde_json::json!({"title": "T", "url": "ftp://user:pw@x.example", "content_type": "JSON"}),
    ));
    assert!(!with_credentials[0].contains("pw@"), "credentials are redacted: {}", with_credentials[0]);
}

#[test]
fn required_parameters_must_be_present_and_not_empty() {
    let found =
        problems(action_doc(serde_json::json!({"title": "T", "url": "https://x.example", "content_type": "JSON",
        "parameters": [{"name": "authtoken", "value": ""}, {"name": "account", "field": "account_id"}],
        "required": ["public_id", "authtoken", "account"]})));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().any(|p| p.contains("required parameter \"public_id\" is missing")), "{found:?}");
    assert!(found.iter().any(|p| p.contains("required parameter \"authtoken\" is empty")), "{found:?}");
}

#[test]
fn parameters_are_checked() {
    let found =
        problems(action_doc(serde_json::json!({"title": "T", "url": "https://x.example", "content_type": "JSON",
        "parameters": [{"name": "a", "value": 1, "field": "b"}]})));
    assert!(found[0].contains("exactly one of"), "{found:?}");
    let found =
        problems(action_doc(serde_json::json!({"title": "T", "url": "https://x.example", "content_type": "JSON",
        "parameters": [{"name": "s", "template": "Hi ${name"}]})));
    assert!(found[0].contains("unclosed placeholder"), "{found:?}");
    let found =
        problems(action_doc(serde_json::json!({"title": "T", "url": "https://x.example", "content_type": "XML",
        "parameters": [{"name": "1st", "value": 1}, {"name": "ok", "value": 1}, {"name": "ok", "value": 2}]})));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().any(|p| p.contains("\"1st\"") && p.contains("XML")), "{found:?}");
    assert!(found.iter().any(|p| p.contains("\"ok\" is defined twice")), "{found:?}");
    // FORM keeps names verbatim, so any non-empty name is fine.
    assert!(problems(action_doc(serde_json::json!({"title": "T", "url": "https://x.example", "content_type": "FORM",
        "parameters": [{"name": "1st weird[name]", "value": 1}]})))
    .is_empty());
}

#[test]
fn every_problem_of_every_workflow_is_reported() {
    let doc = serde_json::json!({"workflows": [
        {"id": "a", "module": "Leads", "trigger": "every_save", "criteria": {"all": [{"field": "x", "op": "between", "value": 3}]},
         "actions": [{"title": "T", "url": "mailto:x@y.z", "content_type": "JSON", "signing_secret": "nope"}]},
        {"id": "a", "module": "Leads", "trigger": "every_save"},
        {"id": "c", "module": "Leads", "trigger": {"schedule": {"every": "weekly", "days": [], "at": "09:00"}}},
        {"id": "d", "module": "Leads", "trigger": "every_save", "actions": [{"title": "T", "url": "https://x.example", "content_type": "YAML"}]}
    ]});
    let found = problems(doc);
    assert_eq!(found.len(), 6, "{found:#?}");
    for needle in
        ["\"between\"", "url \"mailto:x@y.z\"", "signing_secret", "same id", "weekly needs at least one day", "YAML"]
    {
        assert!(found.iter().any(|p| p.contains(needle)), "{needle} not reported: {found:#?}");
    }
    assert!(found.iter().all(|p| !p.contains("nope")), "the bad secret itself is not echoed");
}

#[test]
fn builders_validate_too() {
    let err = WebhookAction::builder("T", "https://x.example", ContentType::Json)
        .parameter(Parameter::value("a", 1))
        .require("b")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("required parameter \"b\" is missing"), "{err}");
    let err = WebhookAction::builder("T", "https://x.example", ContentType::Json)
        .signing_secret("whsec_***")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("not valid base64"), "{err}");
}

#[test]
fn json_syntax_errors_are_reported_with_their_position() {
    let err = WorkflowSet::from_json("{\"workflows\": [").unwrap_err();
    assert!(matches!(err, ConfigError::Json(_)));
    assert!(err.to_string().contains("line 1"), "{err}");
    let err = WorkflowSet::from_json("{\"flows\": []}").unwrap_err();
    assert!(err.to_string().contains("{\"workflows\": [...]}"), "{err}");
}

#[test]
fn inactive_workflows_never_match_and_descriptions_are_kept() {
    let doc = README.replace(
        r#""name": "Closed deal to accounting","#,
        r#""name": "Closed deal to accounting", "description": "Invoices won deals", "active": false,"#,
    );
    let set = WorkflowSet::from_json(&doc).unwrap();
    let workflow = set.get("deal-won-invoice").unwrap();
    assert_eq!((workflow.description(), workflow.is_active()), ("Invoices won deals", false));
    let event: crm_webhooks::RecordEvent = serde_json::from_str(include_str!("../examples/data/event.json")).unwrap();
    let now = chrono::DateTime::UNIX_EPOCH.with_timezone(&chrono_tz::Tz::UTC);
    assert_eq!(set.matching(&event, now).count(), 0, "an inactive workflow does not run");
    let mut on = workflow.clone();
    on.set_active(true);
    assert!(on.matches(&event, now), "the same workflow, active, matches");
    let round = WorkflowSet::from_json(&serde_json::to_string(&set).unwrap()).unwrap();
    assert_eq!(round, set);
}
