//! Findings of the fuzz targets in `fuzz/`, reproduced through the public API.

use crm_webhooks::limits::MAX_PARAMETER_NAME_SEGMENTS;
use crm_webhooks::payload::{ContentType, Parameter};
use crm_webhooks::{Fields, WebhookAction};
use serde_json::Value;

/// Found while writing the `encoders` oracle (its JSON reader parses without serde_json's depth limit, so the
/// target does not stop on it): values are written as null only past 128 levels of their own, but the body adds
/// one level per dotted segment of the name (and one for JSONARRAY). A valid action whose name has the most
/// segments, and a record field that serde_json itself parsed with its default limits, make a body that
/// serde_json's default reader refuses ("recursion limit exceeded"). serde_json reads at most 127 nested arrays
/// and objects; this body nests 32 objects for the name's segments (and, for JSONARRAY, the array around them)
/// and the field's 126 arrays. A receiver written with serde_json's defaults rejects the request, and every retry
/// sends the same body. Fixed: a value is written as `null` when the body around it would then nest deeper than
/// 127 levels.
#[test]
fn a_json_body_is_no_deeper_than_serde_json_reads() {
    let name = vec!["a"; MAX_PARAMETER_NAME_SEGMENTS].join(".");
    // The deepest a field can be when the host parsed the record with serde_json: 126 arrays inside the record.
    let record = format!("{{\"deep\":{}1{}}}", "[".repeat(126), "]".repeat(126));
    let fields: Fields = serde_json::from_str(&record).expect("serde_json reads the record");
    for content_type in [ContentType::Json, ContentType::JsonArray] {
        let action = WebhookAction::builder("T", "https://x.example", content_type)
            .parameter(Parameter::field(name.clone(), "deep"))
            .build()
            .expect("the action is valid");
        let body = action.render(&fields);
        if let Err(error) = serde_json::from_str::<Value>(body.body_text()) {
            panic!("{content_type}: serde_json does not read the body ({error}): {}", body.body_text());
        }
    }
}

/// The fix nulls only what does not fit: a value that leaves the body at 127 levels is kept whole.
#[test]
fn a_value_that_fits_is_kept() {
    // 1 level for the body's object, 1 for the name's first segment (the second holds the value), 125 in the value.
    let record = format!("{{\"deep\":{}1{}}}", "[".repeat(125), "]".repeat(125));
    let fields: Fields = serde_json::from_str(&record).unwrap();
    let action = WebhookAction::builder("T", "https://x.example", ContentType::Json)
        .parameter(Parameter::field("a.b", "deep"))
        .build()
        .unwrap();
    let body: Value = serde_json::from_str(action.render(&fields).body_text()).expect("serde_json reads it");
    assert_eq!(body["a"]["b"], fields.get("deep").cloned().unwrap(), "kept whole at exactly 127 levels");
    // One level more and it is null.
    let action = WebhookAction::builder("T", "https://x.example", ContentType::JsonArray)
        .parameter(Parameter::field("a.b", "deep"))
        .build()
        .unwrap();
    let body: Value = serde_json::from_str(action.render(&fields).body_text()).expect("serde_json reads it");
    assert_eq!(body[0]["a"]["b"], Value::Null, "past 127 levels the value is null");
}
