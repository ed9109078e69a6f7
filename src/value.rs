//! Field values: how deep they nest, their text form, and the bounded text buffer every body is written into.
//!
//! A leaf of the crate: the encoders, templates and criteria all read values through it, and it depends on
//! nothing of theirs.

use std::io;

use serde::Serialize;
use serde_json::Value;

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

/// A body being written, and the most bytes it may reach. Every write is checked before it copies anything, so a
/// body past its limit is never built: rendering stops at the first write that would pass it.
///
/// The body is bytes, and every write is UTF-8 (text, or what serde_json writes), so the whole is UTF-8; it is
/// bytes so that serde_json can write straight into it without each fragment being checked again.
pub(crate) struct Body<'a> {
    text: &'a mut Vec<u8>,
    limit: usize,
}

/// A write would have taken a [`Body`] past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

impl<'a> Body<'a> {
    /// Writes into `text`, which may grow up to `limit` bytes.
    pub(crate) fn new(text: &'a mut Vec<u8>, limit: usize) -> Self {
        Body { text, limit }
    }

    /// Writes into `text` without a limit: no write fails, since no `Vec` reaches `usize::MAX` bytes.
    pub(crate) fn unlimited(text: &'a mut Vec<u8>) -> Self {
        Body::new(text, usize::MAX)
    }

    pub(crate) fn push_str(&mut self, text: &str) -> Result<(), Full> {
        self.push_utf8(text.as_bytes())
    }

    /// Appends bytes that are UTF-8 (a slice of a `str` cut at character boundaries, or serde_json's output).
    pub(crate) fn push_utf8(&mut self, bytes: &[u8]) -> Result<(), Full> {
        if bytes.len() > self.remaining() {
            return Err(Full);
        }
        self.text.extend_from_slice(bytes);
        Ok(())
    }

    pub(crate) fn push(&mut self, c: char) -> Result<(), Full> {
        self.push_str(c.encode_utf8(&mut [0; 4]))
    }

    /// How many more bytes may be written.
    pub(crate) fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.text.len())
    }

    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.text.truncate(len);
    }
}

/// The text of bytes a [`Body`] was written into (always UTF-8; anything else would be replaced, not trusted).
pub(crate) fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends the compact JSON text of a value (or a key), as `serde_json` writes it; stops as soon as the body is
/// full, in the middle of a string if need be.
pub(crate) fn push_json<T: Serialize + ?Sized>(value: &T, out: &mut Body<'_>) -> Result<(), Full> {
    let mark = out.len();
    let mut sink = Sink { out: &mut *out, full: false };
    let written = serde_json::to_writer(&mut sink, value);
    let full = sink.full;
    match written {
        Ok(()) => Ok(()),
        Err(_) if full => Err(Full),
        // Serializing a `Value` or a `str` cannot fail otherwise; `null` keeps the document well-formed if that
        // ever changed.
        Err(_) => {
            out.truncate(mark);
            out.push_str("null")
        }
    }
}

/// Lets `serde_json` write into a [`Body`]; a full body fails the write, which stops serde_json.
struct Sink<'a, 'b> {
    out: &'a mut Body<'b>,
    full: bool,
}

impl io::Write for Sink<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.push_utf8(buf).map_err(|Full| {
            self.full = true;
            io::Error::other("the body is full")
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
            let mut digits = Vec::with_capacity(24);
            push_json(n, &mut Body::unlimited(&mut digits))?;
            match digits.strip_suffix(b".0") {
                Some(b"-0") if n.is_f64() => out.push_str("0"),
                Some(whole) if n.is_f64() => out.push_utf8(whole),
                _ => out.push_utf8(&digits),
            }
        }
        other if nests_deeper_than(other, MAX_VALUE_DEPTH) => Ok(()),
        other => push_json(other, out),
    }
}

/// A value as text (see [`push_text`]), for comparisons.
pub(crate) fn text_of(value: &Value) -> String {
    let mut out = Vec::new();
    // Without a limit nothing is full.
    let _ = push_text(value, &mut Body::unlimited(&mut out));
    into_text(out)
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
    fn a_body_never_passes_its_limit() {
        let mut text = Vec::new();
        let mut body = Body::new(&mut text, 5);
        assert_eq!(body.push_str("abc"), Ok(()));
        assert_eq!(body.push_str("def"), Err(Full));
        assert_eq!(body.push('é'), Ok(()));
        assert_eq!(body.push('x'), Err(Full));
        assert_eq!(body.remaining(), 0);
        assert_eq!(text, "abcé".as_bytes());
        // A number's `.0` is cut before it is counted.
        let mut text = Vec::new();
        assert_eq!(push_text(&json!(12.0), &mut Body::new(&mut text, 2)), Ok(()));
        assert_eq!(text, b"12");
    }

    fn to_text(value: &Value) -> String {
        let mut out = Vec::new();
        push_json(value, &mut Body::unlimited(&mut out)).unwrap();
        into_text(out)
    }

    #[test]
    fn a_full_body_stops_serde_json_midway() {
        let mut out = Vec::new();
        let value = Value::String("x".repeat(100_000));
        assert_eq!(push_json(&value, &mut Body::new(&mut out, 1000)), Err(Full));
        assert!(out.len() <= 1000, "{}", out.len());
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let value = serde_json::json!({"b": [1, 2.5, -0.0, 1e300, true, null], "a": "\"\\\u{1}\u{7f}\u{2028}é😀"});
        assert_eq!(to_text(&value), serde_json::to_string(&value).unwrap());
    }

    proptest! {
        #[test]
        fn any_string_is_written_exactly_as_serde_json_writes_it(text in any::<String>()) {
            let value = Value::String(text);
            prop_assert_eq!(to_text(&value), serde_json::to_string(&value).unwrap());
        }
    }
}
