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

fn auth_problems(extra: serde_json::Value) -> Vec<ValidationError> {
    let mut action = serde_json::json!({"title": "T", "url": "https://x.example", "content_type": "JSON"});
    action.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    match WorkflowSet::from_value(action_doc(action)) {
        Ok(_) => vec![],
        Err(ConfigError::Invalid(problems)) => problems,
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn bearer_and_api_key_auth_and_custom_headers_round_trip() {
    for extra in [
        serde_json::json!({"auth": {"type": "bearer", "token": "tok-123"}, "headers": {"X-Tenant": "acme", "X-Region": "eu"}}),
        serde_json::json!({"auth": {"type": "api_key", "header": "X-Api-Key", "value": "key-456"},
            "headers": [["x-trace", "1"], ["X-Tenant", "acme"]]}),
    ] {
        let mut doc = serde_json::json!({"title": "T", "url": "https://x.example", "content_type": "JSON"});
        doc.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let action: WebhookAction = serde_json::from_value(doc).unwrap();
        let json = serde_json::to_string(&action).unwrap();
        let again: WebhookAction = serde_json::from_str(&json).unwrap();
        assert_eq!(again, action, "{json}");
        assert!(
            json.contains(r#""headers":{"X-Region":"eu","X-Tenant":"acme"}"#)
                || json.contains(r#""headers":{"X-Tenant":"acme","x-trace":"1"}"#),
            "headers are an object, by name: {json}"
        );
        let set = WorkflowSet::from_json(
            &serde_json::json!([{"id": "w", "module": "Leads", "trigger": "every_save",
            "actions": [action]}])
            .to_string(),
        )
        .unwrap();
        assert_eq!(WorkflowSet::from_json(&serde_json::to_string(&set).unwrap()).unwrap(), set);
        let debug = format!("{action:?}");
        assert!(!debug.contains("tok-123") && !debug.contains("key-456"), "{debug}");
    }
    let built = WebhookAction::builder("T", "https://x.example", ContentType::Json)
        .auth(Auth::ApiKey { header: "X-Api-Key".into(), value: "key-456".into() })
        .header("X-Tenant", "acme")
        .build()
        .unwrap();
    assert_eq!(built.headers(), [("X-Tenant".to_owned(), "acme".to_owned())]);
    assert!(
        matches!(built.auth(), Auth::ApiKey { header, value } if header == "X-Api-Key" && value.expose() == "key-456")
    );
}

#[test]
fn custom_headers_may_not_be_hop_by_hop_or_override_what_the_crate_sends() {
    for name in [
        "Connection",
        "keep-alive",
        "Proxy-Authorization",
        "proxy-connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
        "Content-Type",
        "content-encoding",
        "Authorization",
        "webhook-id",
        "Webhook-Signature",
        "webhook-timestamp",
        "X-Api-Key",
    ] {
        let found = auth_problems(serde_json::json!({"auth": {"type": "api_key", "header": "X-Api-Key", "value": "k"},
            "headers": {name: "v"}}));
        assert!(
            matches!(found.as_slice(), [ValidationError::InvalidHeader { field: "headers", .. }]),
            "{name}: {found:?}"
        );
        let text = found[0].to_string();
        assert!(
            text.starts_with(&format!("workflow \"w1\", action \"T\": headers \"{name}\" cannot be sent: ")),
            "{text}"
        );
    }
    for name in ["Connection", "Authorization", "webhook-signature", "Content-Type", "Bad Name", "", "X:Y"] {
        let found = auth_problems(serde_json::json!({"auth": {"type": "api_key", "header": name, "value": "k"}}));
        let expected = if name.is_empty() { "\"auth.header\" is empty" } else { "auth.header \"" };
        assert!(found.len() == 1 && found[0].to_string().contains(expected), "{name:?}: {found:?}");
    }
}

#[test]
fn custom_header_names_and_values_are_checked_and_never_echo_a_secret() {
    let long_name = "X".repeat(65);
    let cases = [
        (serde_json::json!({"Bad Name": "v"}), "not a valid header name"),
        (serde_json::json!({"X-Ok": "line\r\nX-Injected: 1"}), "a line break"),
        (serde_json::json!({"X-Ok": "caf\u{e9}"}), "other than ASCII"),
        (serde_json::json!({"X-Ok": " padded"}), "starts or ends with a space"),
        (serde_json::json!({"X-Ok": ""}), "its value is empty"),
        (serde_json::json!({"X-Ok": "v".repeat(1025)}), "1025 bytes long, but at most 1024"),
        (serde_json::json!({long_name: "v"}), "65 bytes long, but at most 64"),
        (serde_json::json!([["X-Tenant", "a"], ["x-tenant", "b"]]), "is given twice"),
    ];
    for (headers, hint) in cases {
        let found = auth_problems(serde_json::json!({"headers": headers}));
        assert!(found.len() == 1 && found[0].to_string().contains(hint), "{headers}: {found:?}");
    }
    let many: serde_json::Map<_, _> = (0..21).map(|i| (format!("X-{i}"), "v".into())).collect();
    let found = auth_problems(serde_json::json!({"headers": many}));
    assert!(matches!(found.as_slice(), [ValidationError::TooManyHeaders { count: 21, .. }]), "{found:?}");
    assert!(auth_problems(serde_json::json!({"headers": {"X-Tenant": 1}}))[0].to_string().contains("invalid type"));

    for auth in [
        serde_json::json!({"type": "bearer", "token": "tok\nen-s3cr3t"}),
        serde_json::json!({"type": "api_key", "header": "X-Api-Key", "value": "k\r\ney-s3cr3t"}),
        serde_json::json!({"type": "bearer", "token": format!("s3cr3t{}", "a".repeat(4096))}),
        serde_json::json!({"type": "bearer", "token": " s3cr3t"}),
    ] {
        let found = auth_problems(serde_json::json!({"auth": auth}));
        assert!(matches!(found.as_slice(), [ValidationError::InvalidAuthValue { .. }]), "{found:?}");
        let text = found[0].to_string();
        assert!(text.contains("cannot be sent in a header") && !text.contains("s3cr3t"), "{text}");
    }
    for (auth, field) in [
        (serde_json::json!({"type": "bearer", "token": ""}), "auth.token"),
        (serde_json::json!({"type": "api_key", "header": "X-Api-Key", "value": ""}), "auth.value"),
    ] {
        let found = auth_problems(serde_json::json!({"auth": auth}));
        assert!(matches!(found.as_slice(), [ValidationError::Empty { field: f, .. }] if *f == field), "{found:?}");
    }
}

#[test]
fn retry_jitter_is_a_percentage_that_round_trips() {
    let action = |jitter: &str| {
        format!(
            r#"{{"title": "t", "url": "https://r.example/h", "content_type": "JSON", "retry_jitter_percent": {jitter},
            "parameters": [{{"name": "id", "field": "id"}}]}}"#
        )
    };
    let loaded: crm_webhooks::WebhookAction = serde_json::from_str(&action("20")).unwrap();
    assert_eq!(loaded.retry_jitter_percent(), 20);
    let again: crm_webhooks::WebhookAction = serde_json::from_str(&serde_json::to_string(&loaded).unwrap()).unwrap();
    assert_eq!(again, loaded);
    let plain: crm_webhooks::WebhookAction = serde_json::from_str(&action("0")).unwrap();
    assert!(!serde_json::to_string(&plain).unwrap().contains("jitter"), "the default is not written");
    let error = serde_json::from_str::<crm_webhooks::WebhookAction>(&action("150")).unwrap_err().to_string();
    assert!(error.contains("retry_jitter_percent is 150; write 0"), "{error}");
    assert!(serde_json::from_str::<crm_webhooks::WebhookAction>(&action("-5")).is_err(), "not negative");
}

#[test]
fn endpoint_health_and_rate_limits_load_round_trip_and_say_what_is_wrong() {
    let doc = |extra: serde_json::Value| {
        let mut action = serde_json::json!({"title": "t", "url": "https://r.example/h", "content_type": "JSON",
            "parameters": [{"name": "id", "field": "id"}]});
        for (k, v) in extra.as_object().unwrap() {
            action[k] = v.clone();
        }
        action_doc(action)
    };
    let set = WorkflowSet::from_value(doc(serde_json::json!({
        "endpoint_health": {"pause_after_hours": 72, "pause_on_gone": false},
        "rate_limit": {"per_minute": 600}
    })))
    .unwrap();
    let action = &set.get("w1").unwrap().actions()[0];
    let health = action.endpoint_health();
    assert_eq!(
        (health.enabled, health.warn_after_failures, health.pause_after_hours, health.pause_on_gone),
        (true, 5, 72, false)
    );
    assert_eq!(action.rate_limit(), Some(crm_webhooks::workflow::RateLimit::PerMinute(600)));
    let json = serde_json::to_string(&set).unwrap();
    assert_eq!(WorkflowSet::from_json(&json).unwrap(), set, "round trip");
    let plain = WorkflowSet::from_value(doc(serde_json::json!({}))).unwrap();
    let plain_json = serde_json::to_string(&plain).unwrap();
    assert!(!plain_json.contains("endpoint_health") && !plain_json.contains("rate_limit"), "defaults are not written");

    for (extra, says) in [
        (serde_json::json!({"rate_limit": {"per_second": 0}}), "rate_limit is 0 per second; write 1 to 10000"),
        (serde_json::json!({"rate_limit": {"per_second": 20000}}), "rate_limit is 20000 per second"),
        (serde_json::json!({"rate_limit": {"per_hour": 5}}), "per_hour"),
        (
            serde_json::json!({"rate_limit": {"per_second": 5, "per_minute": 60}}),
            "takes one of per_second or per_minute",
        ),
        (serde_json::json!({"endpoint_health": {"warn_after_failures": 0}}), "warn_after_failures is 0; write 1 to"),
        (
            serde_json::json!({"endpoint_health": {"pause_after_failures": 2}}),
            "the pause would come before the warning",
        ),
        (serde_json::json!({"endpoint_health": {"pause_after_hours": 100000}}), "pause_after_hours is 100000"),
        (serde_json::json!({"endpoint_health": {"pause_after": 3}}), "pause_after"),
        (serde_json::json!({"endpoint_health": "off"}), "expected struct HealthPolicy"),
    ] {
        let found = problems(doc(extra.clone()));
        assert!(found.iter().any(|p| p.contains(says)), "{extra}: {found:?}");
        assert!(found.iter().all(|p| p.contains("w1")), "the workflow is named: {found:?}");
    }
}
