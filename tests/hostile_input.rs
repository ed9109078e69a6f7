//! Hostile configuration and records through the public API: every bad input is a typed error, never a panic
//! or an abort, on a 2 MiB thread (the smallest stack a host is likely to run the engine on).

use crm_webhooks::{ConfigError, ContentType, WebhookAction, WorkflowSet};
use serde_json::json;

fn messages(error: &ConfigError) -> Vec<String> {
    error.problems().iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// User text in messages: truncated, control characters escaped.

fn assert_safe(message: &str) {
    // The location, up to three texts of the configuration (100 characters each, escaped) and the sentence.
    assert!(message.len() < 1024, "{} bytes: {}...", message.len(), message.get(..300).unwrap_or(message));
    assert!(!message.contains(['\r', '\n', '\u{1b}']), "raw control characters: {message:?}");
}

#[test]
fn a_fifty_megabyte_url_gives_a_short_message() {
    let url = format!("https://x.example/{}", "a".repeat(50 * 1024 * 1024));
    let error = WebhookAction::builder("T", url, ContentType::Json).build().unwrap_err();
    let message = error.to_string();
    assert!(message.len() < 300, "{} bytes", message.len());
    assert!(message.contains("https://x.example/aaa"), "{message}");
    assert!(!message.contains(['\r', '\n']));
}

#[test]
fn user_text_in_messages_is_escaped_and_truncated() {
    let huge = "z".repeat(1024 * 1024);
    let evil = "a\r\nFAKE LOG LINE\u{1b}[31m";
    let doc = json!({"workflows": [
        {"id": format!("{evil}{huge}"), "module": "", "trigger": "every_save",
         "criteria": {"all": [{"field": format!("{evil}{huge}"), "op": "between", "value": 1}]},
         "actions": [
            {"title": format!("{evil}{huge}"), "url": format!("https://x.example/{evil}{huge}"), "content_type": "XML",
             "kind": format!("{evil}{huge}"),
             "parameters": [{"name": format!("{evil}{huge}"), "value": 1}, {"name": format!("{evil}{huge}"), "value": 2},
                            {"name": format!("k.{evil}"), "value": 1}],
             "required": [format!("{evil}{huge}")]}]},
        {"id": "m", "module": "Leads", "trigger": format!("{evil}{huge}")},
        {"id": "n", "module": "Leads", "trigger": "every_save",
         "actions": [{"title": "T", "url": "https://x.example", "content_type": "JSON",
                      "parameters": [{"name": format!("{evil}{huge}"), "value": 1, "field": "x"}]}]},
        {"id": "o", "module": "Leads", "trigger": {"schedule": {"every": "daily", "at": format!("{evil}{huge}")}}}
    ]})
    .to_string();
    let error = WorkflowSet::from_json(&doc).unwrap_err();
    let found = messages(&error);
    assert!(found.len() >= 10, "{found:#?}");
    for message in &found {
        assert_safe(message);
    }
    let all = error.to_string();
    assert!(all.len() < 20 * 1024, "{} bytes", all.len());
    assert!(!all.contains(['\r', '\n']));
    assert!(all.contains(r"a\r\nFAKE LOG LINE"), "{all}");
}
