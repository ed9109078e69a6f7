//! JSON and JSONARRAY bodies.
//!
//! JSON is an object of the parameters, members in order of first appearance among the parameter names (a dotted
//! name nests objects, a numeric segment builds an array). JSONARRAY is that object as the single element of a
//! top-level array: `[{...}]`. Values keep their JSON types; a missing field is `null`. The text is compact (no
//! white space), and every value and key is written by `serde_json`, so its escaping is serde_json's.

use std::io;

use serde::Serialize;
use serde_json::Value;

use crate::action::Parameter;
use crate::record::Fields;

use super::shape::{Entry, Node};
use super::{nests_deeper_than, resolve, Body, Full, MAX_VALUE_DEPTH};

/// Writes the body of a JSON (`array == false`) or JSONARRAY (`array == true`) request.
pub(super) fn write(
    entries: &[Entry],
    parameters: &[Parameter],
    fields: &Fields,
    array: bool,
    out: &mut Body<'_>,
) -> Result<(), Full> {
    if array {
        out.push('[')?;
    }
    write_object(entries, parameters, fields, usize::from(array), out)?;
    if array {
        out.push(']')?;
    }
    Ok(())
}

/// The deepest a body nests arrays and objects, values included: serde_json's reader, with its default limit,
/// reads at most this many, and receivers written with it would refuse a deeper body on every retry.
pub(crate) const MAX_BODY_DEPTH: usize = 127;

// The recursion below goes one level per dotted segment of a name, at most `MAX_PARAMETER_NAME_SEGMENTS` deep.
// `outside` counts the arrays and objects around the one being written.

fn write_object(
    entries: &[Entry],
    parameters: &[Parameter],
    fields: &Fields,
    outside: usize,
    out: &mut Body<'_>,
) -> Result<(), Full> {
    let depth = outside.saturating_add(1);
    out.push('{')?;
    for (position, entry) in entries.iter().enumerate() {
        if position > 0 {
            out.push(',')?;
        }
        out.push_str(&entry.open)?;
        write_node(&entry.node, parameters, fields, depth, out)?;
    }
    out.push('}')
}

/// Writes a node inside `depth` arrays and objects.
fn write_node(
    node: &Node,
    parameters: &[Parameter],
    fields: &Fields,
    depth: usize,
    out: &mut Body<'_>,
) -> Result<(), Full> {
    match node {
        Node::Value(index) => match parameters.get(*index) {
            Some(parameter) => push_value(&*resolve(parameter, fields, out.remaining())?, depth, out),
            None => out.push_str("null"),
        },
        Node::Object(entries) => write_object(entries, parameters, fields, depth, out),
        Node::Array(items) => {
            out.push('[')?;
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(',')?;
                }
                write_node(item, parameters, fields, depth.saturating_add(1), out)?;
            }
            out.push(']')
        }
    }
}

/// Appends a value found inside `depth` arrays and objects as JSON: `null` when it nests deeper than
/// [`MAX_VALUE_DEPTH`] (serde_json's writer recurses once per level) or than the body has room for within
/// [`MAX_BODY_DEPTH`].
fn push_value(value: &Value, depth: usize, out: &mut Body<'_>) -> Result<(), Full> {
    let room = MAX_BODY_DEPTH.saturating_sub(depth).min(MAX_VALUE_DEPTH);
    if nests_deeper_than(value, room) {
        return out.push_str("null");
    }
    push_json(value, out)
}

/// Appends the compact JSON text of a value (or a key), as `serde_json` writes it; stops as soon as the body is
/// full, in the middle of a string if need be.
pub(super) fn push_json<T: Serialize + ?Sized>(value: &T, out: &mut Body<'_>) -> Result<(), Full> {
    let mark = out.len();
    let mut sink = TextSink { out: &mut *out, full: false };
    let written = serde_json::to_writer(&mut sink, value);
    let full = sink.full;
    match written {
        Ok(()) => Ok(()),
        Err(_) if full => Err(Full),
        // serde_json writes whole UTF-8 fragments (it only splits strings before ASCII escapes), and serializing
        // a `Value` or a `str` cannot fail otherwise; `null` keeps the document well-formed if that ever changed.
        Err(_) => {
            out.truncate(mark);
            out.push_str("null")
        }
    }
}

/// Lets `serde_json` write into a [`Body`]: each write must be whole UTF-8, which is checked, not assumed; a full
/// body fails the write, which stops serde_json.
struct TextSink<'a, 'b> {
    out: &'a mut Body<'b>,
    full: bool,
}

impl io::Write for TextSink<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = std::str::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.out.push_str(text).map_err(|Full| {
            self.full = true;
            io::Error::other("the body is full")
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn to_text(value: &Value) -> String {
        let mut out = String::new();
        push_json(value, &mut Body::unlimited(&mut out)).unwrap();
        out
    }

    #[test]
    fn a_full_body_stops_serde_json_midway() {
        let mut out = String::new();
        let value = Value::String("x".repeat(100_000));
        assert_eq!(push_json(&value, &mut Body::new(&mut out, 1000)), Err(Full));
        assert!(out.len() <= 1000, "{}", out.len());
    }

    #[test]
    fn values_too_deep_for_the_body_are_null() {
        let nested = |levels: usize| (0..levels).fold(Value::Null, |inner, _| Value::Array(vec![inner]));
        let written = |value: &Value, depth: usize| {
            let mut out = String::new();
            push_value(value, depth, &mut Body::unlimited(&mut out)).unwrap();
            out
        };
        assert_eq!(written(&nested(MAX_BODY_DEPTH + 1), 0), "null");
        assert_eq!(written(&nested(MAX_BODY_DEPTH), 0).len(), 2 * MAX_BODY_DEPTH + "null".len(), "fits exactly");
        assert_eq!(written(&nested(MAX_BODY_DEPTH), 1), "null", "the body's own levels count");
        assert_eq!(written(&nested(MAX_BODY_DEPTH - 3), 3).len(), 2 * (MAX_BODY_DEPTH - 3) + "null".len());
        assert_eq!(written(&nested(MAX_VALUE_DEPTH + 1), 0), "null");
        assert_eq!(written(&Value::Bool(true), MAX_BODY_DEPTH), "true", "a scalar adds no level");
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
