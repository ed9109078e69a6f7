//! Actions built from the input (parameter names, literal values, fields and templates), for each of the four
//! content types, loaded through their JSON form. An action the crate accepts renders a body that an independent
//! parser reads back, value for value: serde_json for JSON and JSONARRAY, quick-xml for XML, serde_urlencoded for
//! FORM; and `try_render` fails exactly when the whole body is longer than its limit.
#![no_main]

use arbitrary::Arbitrary;
use std::borrow::Cow;

use crm_webhooks::{Fields, WebhookAction};
use crm_webhooks::payload::{ContentType, Parameter, RenderError, ValueSource};
use crm_webhooks_fuzz::{
    dismantle, fields_of, nesting, parse_json, parse_xml, pick, very_deep, ArbKey, ArbValue, Element, Expected,
    MAX_VALUE_DEPTH,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const CONTENT_TYPES: [ContentType; 4] =
    [ContentType::Json, ContentType::JsonArray, ContentType::Xml, ContentType::Form];

/// Keys for dotted names: valid XML names and a few that are not.
const KEYS: [&str; 16] =
    ["a", "b", "customer", "name", "lines", "sku", "x_y", "é", "_a", "-a", "1a", "a:b", "xml", "ab cd", "a-b", "中"];

#[derive(Arbitrary, Debug)]
struct Input {
    parameters: Vec<ParameterIn>,
    fields: Vec<(ArbKey, ArbValue)>,
    /// A field nested far deeper than any value the crate writes (200 to 20,199 arrays).
    deep_field: Option<(ArbKey, u16)>,
    limit: u32,
    limit_form: u8,
}

#[derive(Arbitrary, Debug)]
struct ParameterIn {
    name: NameIn,
    source: SourceIn,
}

#[derive(Arbitrary, Debug)]
enum NameIn {
    Raw(String),
    Dotted(Vec<SegmentIn>),
}

#[derive(Arbitrary, Debug)]
enum SegmentIn {
    Key(u8),
    Index(u8),
    Raw(String),
}

impl NameIn {
    fn text(&self) -> String {
        match self {
            NameIn::Raw(s) => s.clone(),
            NameIn::Dotted(segments) => segments
                .iter()
                .map(|s| match s {
                    SegmentIn::Key(k) => pick(&KEYS, *k).to_owned(),
                    SegmentIn::Index(i) => (i % 4).to_string(),
                    SegmentIn::Raw(s) => s.clone(),
                })
                .collect::<Vec<_>>()
                .join("."),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum SourceIn {
    Value(ArbValue),
    Field(ArbKey),
    Template(TemplateIn),
}

#[derive(Arbitrary, Debug)]
enum TemplateIn {
    Raw(String),
    Parts(Vec<TemplatePart>),
}

#[derive(Arbitrary, Debug)]
enum TemplatePart {
    Literal(String),
    Braced(ArbKey),
    Bare(ArbKey),
    Dollars,
}

impl TemplateIn {
    fn text(&self) -> String {
        match self {
            TemplateIn::Raw(s) => s.clone(),
            TemplateIn::Parts(parts) => parts
                .iter()
                .map(|p| match p {
                    TemplatePart::Literal(s) => s.clone(),
                    TemplatePart::Braced(k) => format!("${{{}}}", k.name()),
                    TemplatePart::Bare(k) => format!("${} ", k.name()),
                    TemplatePart::Dollars => "$$".to_owned(),
                })
                .collect(),
        }
    }
}

fn parameter_json(parameter: &ParameterIn) -> Value {
    let name = parameter.name.text();
    match &parameter.source {
        SourceIn::Value(v) => json!({"name": name, "value": v.to_value()}),
        SourceIn::Field(f) => json!({"name": name, "field": f.name()}),
        SourceIn::Template(t) => json!({"name": name, "template": t.text()}),
    }
}

static NULL: Value = Value::Null;

/// A parameter's value as the body must carry it: values nesting deeper than 128 are written as null. Borrowed, not
/// cloned: serde_json clones one level per call, and a record's field may be far deeper than that.
fn expected_value<'a>(parameter: &'a Parameter, fields: &'a Fields) -> Cow<'a, Value> {
    let value = match &parameter.source {
        ValueSource::Value(value) => Cow::Borrowed(value),
        ValueSource::Field(field) => Cow::Borrowed(fields.get(field).unwrap_or(&NULL)),
        ValueSource::Template(_) => Cow::Owned(parameter.resolve(fields)),
    };
    if nesting(&value) > MAX_VALUE_DEPTH {
        Cow::Borrowed(&NULL)
    } else {
        value
    }
}

fn check_json(action: &WebhookAction, body: &str, fields: &Fields, array: bool) {
    let document = parse_json(body).unwrap_or_else(|e| panic!("JSON body does not parse ({e}): {body}"));
    let object = if array {
        match &document {
            Value::Array(items) if items.len() == 1 => &items[0],
            other => panic!("JSONARRAY body is not a one-element array: {other}"),
        }
    } else {
        &document
    };
    assert!(object.is_object(), "the body holds no object: {body}");
    for parameter in action.parameters() {
        let mut at = object;
        for segment in parameter.name.split('.') {
            let next = if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                at.as_array().and_then(|items| items.get(segment.parse::<usize>().ok()?))
            } else {
                at.as_object().and_then(|map| map.get(segment))
            };
            at = next.unwrap_or_else(|| panic!("{:?} is not in the body {body}", parameter.name));
        }
        let want = expected_value(parameter, fields);
        assert_eq!(at, &*want, "{:?} in {body}", parameter.name);
    }
}

fn check_xml(action: &WebhookAction, body: &str, fields: &Fields) {
    let root = parse_xml(body).unwrap_or_else(|e| panic!("XML body does not parse: {e}"));
    assert_eq!(root.name, "record");
    for parameter in action.parameters() {
        let segments: Vec<&str> = parameter.name.split('.').collect();
        let mut parent: &Element = &root;
        let mut position = 0;
        let leaf = loop {
            let key = segments[position];
            let index = segments
                .get(position + 1)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<usize>().ok());
            let element = parent
                .children
                .iter()
                .filter(|child| child.name == key)
                .nth(index.unwrap_or(0))
                .unwrap_or_else(|| panic!("{:?} is not in the body {body}", parameter.name));
            position += if index.is_some() { 2 } else { 1 };
            if position >= segments.len() {
                break element;
            }
            parent = element;
        };
        assert!(leaf.children.is_empty(), "{:?} has children in {body}", parameter.name);
        let want = Expected::of(&expected_value(parameter, fields), true);
        if let Err(e) = want.check(&leaf.text) {
            panic!("{:?}: {e} in {body}", parameter.name);
        }
    }
}

fn check_form(action: &WebhookAction, body: &str, fields: &Fields) {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(body).unwrap_or_else(|e| panic!("FORM body does not parse ({e}): {body}"));
    assert_eq!(pairs.len(), action.parameters().len(), "{body}");
    for (parameter, (name, value)) in action.parameters().iter().zip(&pairs) {
        assert_eq!(&parameter.name, name, "{body}");
        let want = Expected::of(&expected_value(parameter, fields), false);
        if let Err(e) = want.check(value) {
            panic!("{name:?}: {e} in {body}");
        }
    }
}

fuzz_target!(|input: Input| {
    let parameters: Vec<Value> = input.parameters.iter().map(parameter_json).collect();
    let mut fields = fields_of(&input.fields);
    if let Some((key, depth)) = &input.deep_field {
        if let Some(old) = fields.insert(key.name(), very_deep(200 + usize::from(*depth) % 20_000)) {
            dismantle(old);
        }
    }
    for content_type in CONTENT_TYPES {
        let document = json!({
            "title": "T", "url": "https://example.com/hook", "content_type": content_type.as_str(),
            "parameters": parameters,
        });
        let action = match serde_json::from_value::<WebhookAction>(document) {
            Ok(action) => action,
            Err(error) => {
                let _ = error.to_string();
                continue;
            }
        };
        let full = action.try_render(&fields, usize::MAX).expect("no body passes usize::MAX bytes");
        assert_eq!(action.render(&fields), full);
        assert_eq!(full.content_type(), content_type);
        assert_eq!(full.body().as_ref(), full.body_text().as_bytes());
        let body = full.body_text();
        match content_type {
            ContentType::Json => check_json(&action, body, &fields, false),
            ContentType::JsonArray => check_json(&action, body, &fields, true),
            ContentType::Xml => check_xml(&action, body, &fields),
            ContentType::Form => check_form(&action, body, &fields),
        }

        let length = body.len();
        let limit = match input.limit_form % 4 {
            0 => length,
            1 => length.saturating_sub(1),
            2 => input.limit as usize % (length + 16),
            _ => input.limit as usize,
        };
        match action.try_render(&fields, limit) {
            Ok(payload) => {
                assert!(length <= limit, "a body of {length} bytes passed a limit of {limit}");
                assert_eq!(payload, full);
            }
            Err(RenderError::BodyTooLarge { limit: reported, action: title }) => {
                assert!(length > limit, "a body of {length} bytes was refused under a limit of {limit}");
                assert_eq!((reported, title.as_str()), (limit, "T"));
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    // Values nesting past the crate's limit are taken apart without recursion.
    fields.into_iter().for_each(|(_, v)| dismantle(v));
});
