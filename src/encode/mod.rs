//! Payload encoding: one file per content type. STUB: being replaced by the encoder work.

use bytes::Bytes;
use serde_json::Value;

use crate::action::{ContentType, Parameter};
use crate::record::Fields;

/// An encoded request body and its `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    content_type: ContentType,
    body: Bytes,
}

impl Payload {
    /// The content type the body is encoded as.
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }
    /// The `Content-Type` header value.
    pub fn content_type_header(&self) -> &'static str {
        self.content_type.header_value()
    }
    /// The body bytes (shared, cheap to clone).
    pub fn body(&self) -> &Bytes {
        &self.body
    }
    /// The body as text (every encoder writes UTF-8).
    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or_default()
    }
    /// Takes the body.
    pub fn into_body(self) -> Bytes {
        self.body
    }
}

/// The parameter names compiled into the tree each content type writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shape {}

/// A parameter name that the content type cannot carry.
#[derive(Debug, Clone)]
pub(crate) struct NameError {
    pub(crate) name: String,
    pub(crate) reason: String,
}

pub(crate) fn compile(_content_type: ContentType, _parameters: &[Parameter]) -> Result<Shape, Vec<NameError>> {
    Ok(Shape {})
}

pub(crate) fn render(content_type: ContentType, _shape: &Shape, parameters: &[Parameter], fields: &Fields) -> Payload {
    let mut map = serde_json::Map::new();
    for p in parameters {
        map.insert(p.name.clone(), p.resolve(fields));
    }
    Payload { content_type, body: Bytes::from(serde_json::to_vec(&map).unwrap_or_default()) }
}

/// Writes a value as text: strings as is, numbers without a trailing `.0`, booleans as `true`/`false`, null as
/// nothing, arrays and objects as JSON.
pub(crate) fn push_text(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() && f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                out.push_str(&(f as i64).to_string())
            }
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}
