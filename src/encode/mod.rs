//! Payload encoding: one file per content type.
//!
//! [`compile`] checks an action's parameter names for its content type and builds, once, the tree of names the
//! encoder walks ([`shape`]); [`render`] then writes the body of a record without parsing names again, and cannot
//! fail. The formats:
//! - JSON and JSONARRAY ([`json`]): an object of the parameters (in a one-element array for JSONARRAY), dotted names
//!   nesting objects and numeric segments building arrays, values keeping their JSON types;
//! - XML ([`xml`]): the declaration and a `<record>` root element with an element per parameter, nested the same
//!   way, a numeric segment repeating its parent element, values as escaped text;
//! - FORM ([`form`]): `application/x-www-form-urlencoded` pairs, names verbatim.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::action::{ContentType, Parameter};
use crate::record::Fields;

mod form;
mod json;
mod shape;
mod xml;

pub(crate) use shape::{compile, Shape};

use shape::Layout;

/// An encoded request body and its `Content-Type`.
///
/// The body is UTF-8 text; [`Payload::body`] and [`Payload::body_text`] share one allocation.
#[derive(Clone)]
pub struct Payload {
    content_type: ContentType,
    text: Arc<str>,
    body: Bytes,
}

/// Lets [`Bytes`] share the text's allocation.
struct SharedText(Arc<str>);

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Payload {
    /// A payload of a content type with this body.
    pub(crate) fn new(content_type: ContentType, body: String) -> Self {
        let text: Arc<str> = Arc::from(body);
        let body = Bytes::from_owner(SharedText(Arc::clone(&text)));
        Payload { content_type, text, body }
    }

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
        &self.text
    }
    /// Takes the body.
    pub fn into_body(self) -> Bytes {
        self.body
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.content_type == other.content_type && self.text == other.text
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload").field("content_type", &self.content_type).field("body", &&*self.text).finish()
    }
}

/// A parameter name that the content type cannot carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameError {
    /// The parameter name, as written.
    pub(crate) name: String,
    /// Why it cannot be sent, and what to do: a sentence that follows "cannot be sent as XML: ".
    pub(crate) reason: String,
    /// The limit the name passes, if that is the problem (the action reports those with their own variants).
    pub(crate) limit: Option<NameLimit>,
}

/// A limit on parameter names that a name passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameLimit {
    /// Longer than [`MAX_PARAMETER_NAME_BYTES`](crate::MAX_PARAMETER_NAME_BYTES): the length in bytes.
    Bytes(usize),
    /// More dotted segments than [`MAX_PARAMETER_NAME_SEGMENTS`](crate::MAX_PARAMETER_NAME_SEGMENTS): how many.
    Segments(usize),
}

impl NameError {
    fn new(name: &str, reason: impl Into<String>) -> Self {
        NameError { name: name.to_owned(), reason: reason.into(), limit: None }
    }
}

/// Encodes the parameters of a record as a body of `content_type`, using the shape compiled for it.
///
/// A shape compiled for another content type (which the crate never passes) is compiled again here; if the names
/// do not fit, the body is that of an action without parameters.
pub(crate) fn render(content_type: ContentType, shape: &Shape, parameters: &[Parameter], fields: &Fields) -> Payload {
    let recompiled;
    let shape = if shape.content_type == content_type {
        shape
    } else {
        recompiled = compile(content_type, parameters).unwrap_or_else(|_| Shape::empty(content_type));
        &recompiled
    };
    let mut out = String::with_capacity(64 + 32 * parameters.len());
    match (&shape.layout, content_type) {
        (Layout::Tree(entries), ContentType::Json) => json::write(entries, parameters, fields, false, &mut out),
        (Layout::Tree(entries), ContentType::JsonArray) => json::write(entries, parameters, fields, true, &mut out),
        (Layout::Tree(entries), ContentType::Xml) => xml::write(entries, parameters, fields, &mut out),
        (Layout::Pairs(names), ContentType::Form) => form::write(names, parameters, fields, &mut out),
        (Layout::Pairs(_), ContentType::Json | ContentType::JsonArray | ContentType::Xml)
        | (Layout::Tree(_), ContentType::Form) => {
            // Unreachable: `Shape::empty` and `compile` build the layout of their content type.
            return render(content_type, &Shape::empty(content_type), &[], fields);
        }
    }
    Payload::new(content_type, out)
}

/// The deepest nesting of arrays and objects a value may have to be written (serde_json's own parser refuses
/// deeper documents, so a host that parsed its records with it never has deeper values).
pub(crate) const MAX_VALUE_DEPTH: usize = 128;

/// Whether a value nests arrays and objects more than `limit` deep, found without recursion: writing, comparing,
/// cloning or dropping a `Value` recurses once per level, so a deeper value is never handed to any of those.
pub(crate) fn nests_deeper_than(value: &Value, limit: usize) -> bool {
    let mut pending: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = pending.pop() {
        let children: &mut dyn Iterator<Item = &Value> = match value {
            Value::Array(items) => &mut items.iter(),
            Value::Object(map) => &mut map.values(),
            _ => continue,
        };
        if depth >= limit {
            return true;
        }
        let below = depth.saturating_add(1);
        pending.extend(children.map(|child| (child, below)));
    }
    false
}

/// Writes a value as text: strings as is, numbers without a trailing `.0` (`1200.0` → `1200`, `1200.5` →
/// `1200.5`, `1e20` in serde_json's exponent form `1e+20`), booleans as `true`/`false`, null as nothing, arrays and
/// objects as compact JSON (as nothing, like null, when they nest deeper than [`MAX_VALUE_DEPTH`]).
pub(crate) fn push_text(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let start = out.len();
            json::push_json(n, out);
            if n.is_f64() && out.ends_with(".0") {
                out.truncate(out.len() - 2);
                if &out[start..] == "-0" {
                    out.truncate(start);
                    out.push('0');
                }
            }
        }
        other if nests_deeper_than(other, MAX_VALUE_DEPTH) => {}
        other => json::push_json(other, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn text(value: Value) -> String {
        let mut out = String::new();
        push_text(&value, &mut out);
        out
    }

    #[test]
    fn text_of_values() {
        assert_eq!(text(json!("a b")), "a b");
        assert_eq!(text(json!(1200.0)), "1200");
        assert_eq!(text(json!(1200.5)), "1200.5");
        assert_eq!(text(json!(-0.0)), "0");
        assert_eq!(text(json!(9.5e15)), "9500000000000000");
        assert_eq!(text(json!(1e20)), "1e+20");
        assert_eq!(text(json!(u64::MAX)), "18446744073709551615");
        assert_eq!(text(json!(-7)), "-7");
        assert_eq!(text(json!(true)), "true");
        assert_eq!(text(json!(false)), "false");
        assert_eq!(text(Value::Null), "");
        assert_eq!(text(json!([1, 2.0, "x"])), "[1,2.0,\"x\"]");
        assert_eq!(text(json!({"b": 1, "a": null})), "{\"a\":null,\"b\":1}");
    }

    proptest! {
        #[test]
        fn floats_are_written_without_a_trailing_point_zero(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let written = text(json!(f));
            prop_assert!(!written.ends_with(".0"), "{}", written);
            prop_assert_eq!(written.parse::<f64>().ok(), Some(f));
        }
    }

    #[test]
    fn nesting_is_measured_without_recursion() {
        assert!(!nests_deeper_than(&json!("x"), 0));
        assert!(nests_deeper_than(&json!([]), 0));
        assert!(!nests_deeper_than(&json!([[1], {"a": [2]}]), 3));
        assert!(nests_deeper_than(&json!([[1], {"a": [[2]]}]), 3));
        assert!(!nests_deeper_than(&json!([[1], {"a": [[2]]}]), 4));
        assert_eq!(text(json!([[[[1]]]])), "[[[[1]]]]");
    }

    #[test]
    fn payload_body_and_text_agree() {
        let payload = Payload::new(ContentType::Json, "{\"é\":1}".to_owned());
        assert_eq!(payload.body_text(), "{\"é\":1}");
        assert_eq!(payload.body().as_ref(), "{\"é\":1}".as_bytes());
        assert_eq!(payload.content_type_header(), "application/json");
        assert_eq!(payload.clone(), payload);
        assert_eq!(payload.into_body(), Bytes::from_static("{\"é\":1}".as_bytes()));
    }

    #[test]
    fn a_shape_of_another_content_type_is_compiled_again() {
        let parameters = [Parameter::value("a.b", 1)];
        let form = compile(ContentType::Form, &parameters).unwrap();
        let payload = render(ContentType::Json, &form, &parameters, &Fields::new());
        assert_eq!(payload.body_text(), "{\"a\":{\"b\":1}}");
        let bad = [Parameter::value("a..b", 1)];
        let form = compile(ContentType::Form, &bad).unwrap();
        assert_eq!(
            render(ContentType::Xml, &form, &bad, &Fields::new()).body_text(),
            format!("{}<record></record>", xml::DECLARATION)
        );
    }
}
