//! Payload encoding: one file per content type.
//!
//! [`compile`] checks an action's parameter names for its content type and builds, once, the tree of names the
//! encoder walks ([`shape`]); [`render`] then writes the body of a record without parsing names again. It fails
//! only when the body would pass the limit it is given, and then stops at once: every write goes through a
//! [`Body`] that checks it before copying anything. The formats:
//! - JSON and JSONARRAY ([`json`]): an object of the parameters (in a one-element array for JSONARRAY), dotted names
//!   nesting objects and numeric segments building arrays, values keeping their JSON types;
//! - XML ([`xml`]): the declaration and a `<record>` root element with an element per parameter, nested the same
//!   way, a numeric segment repeating its parent element, values as escaped text;
//! - FORM ([`form`]): `application/x-www-form-urlencoded` pairs, names verbatim.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::action::{ContentType, Parameter, ValueSource};
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

/// A body being written, and the most bytes it may reach. Every write is checked before it copies anything, so a
/// body past its limit is never built: rendering stops at the first write that would pass it.
pub(crate) struct Body<'a> {
    text: &'a mut String,
    limit: usize,
}

/// A write would have taken a [`Body`] past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

impl<'a> Body<'a> {
    /// Writes into `text`, which may grow up to `limit` bytes.
    pub(crate) fn new(text: &'a mut String, limit: usize) -> Self {
        Body { text, limit }
    }

    /// Writes into `text` without a limit: no write fails, since no `String` reaches `usize::MAX` bytes.
    pub(crate) fn unlimited(text: &'a mut String) -> Self {
        Body::new(text, usize::MAX)
    }

    pub(crate) fn push_str(&mut self, text: &str) -> Result<(), Full> {
        if text.len() > self.remaining() {
            return Err(Full);
        }
        self.text.push_str(text);
        Ok(())
    }

    pub(crate) fn push(&mut self, c: char) -> Result<(), Full> {
        self.push_str(c.encode_utf8(&mut [0; 4]))
    }

    /// How many more bytes may be written.
    pub(crate) fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.text.len())
    }

    fn len(&self) -> usize {
        self.text.len()
    }

    fn truncate(&mut self, len: usize) {
        self.text.truncate(len);
    }
}

/// Encodes the parameters of a record as a body of `content_type`, using the shape compiled for it; stops with
/// [`Full`] as soon as the body would pass `limit` bytes.
///
/// A shape compiled for another content type (which the crate never passes) is compiled again here; if the names
/// do not fit, the body is that of an action without parameters.
pub(crate) fn render(
    content_type: ContentType,
    shape: &Shape,
    parameters: &[Parameter],
    fields: &Fields,
    limit: usize,
) -> Result<Payload, Full> {
    let recompiled;
    let shape = if shape.content_type == content_type {
        shape
    } else {
        recompiled = compile(content_type, parameters).unwrap_or_else(|_| Shape::empty(content_type));
        &recompiled
    };
    let capacity = parameters.len().saturating_mul(32).saturating_add(64).min(limit);
    let mut text = String::with_capacity(capacity);
    let out = &mut Body::new(&mut text, limit);
    match (&shape.layout, content_type) {
        (Layout::Tree(entries), ContentType::Json) => json::write(entries, parameters, fields, false, out)?,
        (Layout::Tree(entries), ContentType::JsonArray) => json::write(entries, parameters, fields, true, out)?,
        (Layout::Tree(entries), ContentType::Xml) => xml::write(entries, parameters, fields, out)?,
        (Layout::Pairs(names), ContentType::Form) => form::write(names, parameters, fields, out)?,
        (Layout::Pairs(_), ContentType::Json | ContentType::JsonArray | ContentType::Xml)
        | (Layout::Tree(_), ContentType::Form) => {
            // Unreachable: `Shape::empty` and `compile` build the layout of their content type.
            return render(content_type, &Shape::empty(content_type), &[], fields, limit);
        }
    }
    Ok(Payload::new(content_type, text))
}

/// The null a missing field reads as.
static NULL: Value = Value::Null;

/// The value a parameter takes for a record, borrowed from the action or the record where it can be. A template
/// is rendered only up to `budget` bytes: its text is never shorter once encoded (escaping only adds), so a
/// template longer than what is left of the body could not fit anyway.
fn resolve<'a>(parameter: &'a Parameter, fields: &'a Fields, budget: usize) -> Result<Cow<'a, Value>, Full> {
    Ok(match &parameter.source {
        ValueSource::Value(value) => Cow::Borrowed(value),
        ValueSource::Field(field) => Cow::Borrowed(fields.get(field).unwrap_or(&NULL)),
        ValueSource::Template(template) => {
            let mut text = String::new();
            template.render_into(fields, &mut Body::new(&mut text, budget))?;
            Cow::Owned(Value::String(text))
        }
    })
}

/// The deepest nesting of arrays and objects a value may have to be written (serde_json's own parser refuses
/// deeper documents, so a host that parsed its records with it never has deeper values).
pub(crate) const MAX_VALUE_DEPTH: usize = 128;

/// Whether a value nests arrays and objects more than `limit` deep, found without recursion: writing, comparing,
/// cloning or dropping a `Value` recurses once per level, so a deeper value is never handed to any of those.
pub(crate) fn nests_deeper_than(value: &Value, limit: usize) -> bool {
    // Most values are scalars: no list to allocate for them.
    if !matches!(value, Value::Array(_) | Value::Object(_)) {
        return false;
    }
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
pub(crate) fn push_text(value: &Value, out: &mut Body<'_>) -> Result<(), Full> {
    match value {
        Value::Null => Ok(()),
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            // Written aside first, so that a `.0` about to be cut never counts against the limit.
            let mut digits = String::with_capacity(24);
            json::push_json(n, &mut Body::unlimited(&mut digits))?;
            match digits.strip_suffix(".0") {
                Some("-0") if n.is_f64() => out.push_str("0"),
                Some(whole) if n.is_f64() => out.push_str(whole),
                _ => out.push_str(&digits),
            }
        }
        other if nests_deeper_than(other, MAX_VALUE_DEPTH) => Ok(()),
        other => json::push_json(other, out),
    }
}

/// A value as text (see [`push_text`]), for comparisons.
pub(crate) fn text_of(value: &Value) -> String {
    let mut out = String::new();
    // Without a limit nothing is full.
    let _ = push_text(value, &mut Body::unlimited(&mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn text(value: Value) -> String {
        text_of(&value)
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
        let payload = render(ContentType::Json, &form, &parameters, &Fields::new(), usize::MAX).unwrap();
        assert_eq!(payload.body_text(), "{\"a\":{\"b\":1}}");
        let bad = [Parameter::value("a..b", 1)];
        let form = compile(ContentType::Form, &bad).unwrap();
        assert_eq!(
            render(ContentType::Xml, &form, &bad, &Fields::new(), usize::MAX).unwrap().body_text(),
            format!("{}<record></record>", xml::DECLARATION)
        );
    }

    #[test]
    fn a_body_never_passes_its_limit() {
        let mut text = String::new();
        let mut body = Body::new(&mut text, 5);
        assert_eq!(body.push_str("abc"), Ok(()));
        assert_eq!(body.push_str("def"), Err(Full));
        assert_eq!(body.push('é'), Ok(()));
        assert_eq!(body.push('x'), Err(Full));
        assert_eq!(body.remaining(), 0);
        assert_eq!(text, "abcé");
        // A number's `.0` is cut before it is counted.
        let mut text = String::new();
        assert_eq!(push_text(&json!(12.0), &mut Body::new(&mut text, 2)), Ok(()));
        assert_eq!(text, "12");
    }

    #[test]
    fn a_template_is_rendered_only_as_far_as_the_body_can_take() {
        let parameter = Parameter::template("t", "${big}${big}").unwrap();
        let mut fields = Fields::new();
        fields.insert("big".to_owned(), json!("x".repeat(1000)));
        assert_eq!(resolve(&parameter, &fields, 1999), Err(Full));
        assert_eq!(resolve(&parameter, &fields, 2000).unwrap().as_str().map(str::len), Some(2000));
    }
}
