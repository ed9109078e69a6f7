//! JSON and JSONARRAY bodies.
//!
//! JSON is an object of the parameters, members in order of first appearance among the parameter names (a dotted
//! name nests objects, a numeric segment builds an array). JSONARRAY is that object as the single element of a
//! top-level array: `[{...}]`. Values keep their JSON types; a missing field is `null`. The text is compact (no
//! white space), and it is what serde_json writes: strings are escaped here with serde_json's table, numbers are
//! written by the formatters serde_json uses (`itoa`, `zmij`), and the arrays and objects inside values by
//! serde_json itself.
//!
//! Everything but the record's values is compiled into the action's [`Program`](super::program::Program): the
//! braces, brackets, commas and keys, literal values, and a template's quotes and fixed text (escaped as the
//! string it is part of).

use serde_json::Value;

use super::parameter::{Parameter, ValueSource};
use super::program::Builder;
use super::shape::{Entry, Node};
use super::template::Piece;
use crate::value::{bytes_below, bytes_equal, find, nests_deeper_than, push_json, NumberText};
use crate::value::{push_text as push_value_text, Body, Full, MAX_VALUE_DEPTH};

/// The deepest a body nests arrays and objects, values included: serde_json's reader, with its default limit,
/// reads at most this many, and receivers written with it would refuse a deeper body on every retry.
pub(crate) const MAX_BODY_DEPTH: usize = 127;

/// Compiles the body of a JSON (`array == false`) or JSONARRAY (`array == true`) request.
pub(super) fn compile(entries: &[Entry], parameters: &[Parameter], array: bool, program: &mut Builder) {
    if array {
        program.literal("[");
    }
    compile_object(entries, parameters, usize::from(array), program);
    if array {
        program.literal("]");
    }
}

// The recursion below goes one level per dotted segment of a name, at most `MAX_PARAMETER_NAME_SEGMENTS` deep.
// `outside` counts the arrays and objects around the one being written.

fn compile_object(entries: &[Entry], parameters: &[Parameter], outside: usize, program: &mut Builder) {
    let depth = outside.saturating_add(1);
    program.literal("{");
    for (position, entry) in entries.iter().enumerate() {
        if position > 0 {
            program.literal(",");
        }
        program.literal(&entry.open);
        compile_node(&entry.node, parameters, depth, program);
    }
    program.literal("}");
}

/// Compiles a node inside `depth` arrays and objects.
fn compile_node(node: &Node, parameters: &[Parameter], depth: usize, program: &mut Builder) {
    match node {
        Node::Value(index) => match parameters.get(*index).map(|parameter| &parameter.source) {
            Some(ValueSource::Value(value)) => program.literal_with(|out| push_value(value, depth, out)),
            Some(ValueSource::Field(field)) => program.field(field, push_value_or_null, depth),
            // A template is a string: its text, escaped, between quotes.
            Some(ValueSource::Template(template)) => {
                program.literal("\"");
                for piece in template.pieces() {
                    match piece {
                        Piece::Text(text) => program.literal_with(|out| push_string_contents(text, out)),
                        Piece::Field(field) => program.field(field, push_field_text, 0),
                    }
                }
                program.literal("\"");
            }
            None => program.literal("null"),
        },
        Node::Object(entries) => compile_object(entries, parameters, depth, program),
        Node::Array(items) => {
            program.literal("[");
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    program.literal(",");
                }
                compile_node(item, parameters, depth.saturating_add(1), program);
            }
            program.literal("]");
        }
    }
}

/// Appends the text of a field's value inside a JSON string (see [`push_text`]); `_depth` does not matter.
fn push_field_text(value: Option<&Value>, _depth: usize, out: &mut Body<'_>) -> Result<(), Full> {
    push_text(value, out)
}

/// Appends a field's value found inside `depth` arrays and objects (`null` for a missing field).
fn push_value_or_null(value: Option<&Value>, depth: usize, out: &mut Body<'_>) -> Result<(), Full> {
    match value {
        Some(value) => push_value(value, depth, out),
        None => out.push_str("null"),
    }
}

/// Appends a value found inside `depth` arrays and objects as JSON: `null` when it nests deeper than
/// [`MAX_VALUE_DEPTH`] (serde_json's writer recurses once per level) or than the body has room for within
/// [`MAX_BODY_DEPTH`].
pub(super) fn push_value(value: &Value, depth: usize, out: &mut Body<'_>) -> Result<(), Full> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::String(text) => push_string(text, out),
        Value::Number(number) => match NumberText::default().json(number) {
            Some(digits) => out.push_str(digits),
            None => push_json(number, out),
        },
        Value::Array(_) | Value::Object(_) => {
            let room = MAX_BODY_DEPTH.saturating_sub(depth).min(MAX_VALUE_DEPTH);
            if nests_deeper_than(value, room) {
                return out.push_str("null");
            }
            push_json(value, out)
        }
    }
}

/// Appends the text of a field's value (see [`crate::value::push_text`]) inside a JSON string, escaped; nothing
/// for a missing field.
fn push_text(value: Option<&Value>, out: &mut Body<'_>) -> Result<(), Full> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(text)) => push_string_contents(text, out),
        // Digits, signs, `.`, `e` or `true`/`false`: nothing to escape.
        Some(value @ (Value::Number(_) | Value::Bool(_))) => push_value_text(value, out),
        Some(value @ (Value::Array(_) | Value::Object(_))) => {
            // Escaping only adds, so the text may take at most what is left of the body.
            let mut text = String::new();
            push_value_text(value, &mut Body::new(&mut text, out.remaining()))?;
            push_string_contents(&text, out)
        }
    }
}

/// Appends a string as JSON, quoted and escaped as serde_json escapes it.
pub(super) fn push_string(text: &str, out: &mut Body<'_>) -> Result<(), Full> {
    out.push_str("\"")?;
    push_string_contents(text, out)?;
    out.push_str("\"")
}

/// What serde_json writes for each byte of a string: 0 for the byte itself, `u` for `\u00XX`, any other byte for
/// a backslash and that byte (`\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r`). Every other byte, DEL and all of UTF-8's
/// multi-byte sequences included, is written as is.
const ESCAPE: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0A] = b'n';
    table[0x0C] = b'f';
    table[0x0D] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// serde_json's `\u0000` to `\u001f` (lower-case hex), for the control characters without a short escape.
const CONTROL_ESCAPES: [&str; 0x20] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const BYTES: [u8; 6 * 0x20] = {
        let mut bytes = [0; 6 * 0x20];
        let mut byte = 0;
        while byte < 0x20 {
            let at = 6 * byte;
            bytes[at] = b'\\';
            bytes[at + 1] = b'u';
            bytes[at + 2] = b'0';
            bytes[at + 3] = b'0';
            bytes[at + 4] = HEX[byte >> 4];
            bytes[at + 5] = HEX[byte & 0xF];
            byte += 1;
        }
        bytes
    };
    const ALL: &[u8] = &BYTES;
    let mut escapes = [""; 0x20];
    let mut byte = 0;
    while byte < 0x20 {
        let (escape, _) = ALL.split_at(6 * byte + 6);
        let (_, escape) = escape.split_at(6 * byte);
        escapes[byte] = match std::str::from_utf8(escape) {
            Ok(escape) => escape,
            Err(_) => panic!("the escapes are ASCII"),
        };
        byte += 1;
    }
    escapes
};

/// Appends a string's contents escaped as serde_json escapes them (see [`ESCAPE`]), copying the runs between
/// escapes whole, found eight bytes at a time. Every byte it escapes is ASCII, so every run is cut at character
/// boundaries.
pub(super) fn push_string_contents(text: &str, out: &mut Body<'_>) -> Result<(), Full> {
    let bytes = text.as_bytes();
    let clean = |word| bytes_equal(word, b'"') | bytes_equal(word, b'\\') | bytes_below(word, 0x20) == 0;
    let mut start = 0;
    loop {
        let at = find(bytes, start, clean, |byte| ESCAPE[usize::from(byte)] != 0);
        let Some(&byte) = bytes.get(at) else { break };
        out.push_str(text.get(start..at).unwrap_or_default())?;
        out.push_str(match ESCAPE[usize::from(byte)] {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'b' => "\\b",
            b't' => "\\t",
            b'n' => "\\n",
            b'f' => "\\f",
            b'r' => "\\r",
            _ => CONTROL_ESCAPES.get(usize::from(byte)).copied().unwrap_or_default(),
        })?;
        start = at.saturating_add(1);
    }
    out.push_str(text.get(start..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(value: &Value, depth: usize) -> String {
        let mut out = String::new();
        push_value(value, depth, &mut Body::unlimited(&mut out)).unwrap();
        out
    }

    #[test]
    fn values_too_deep_for_the_body_are_null() {
        let nested = |levels: usize| (0..levels).fold(Value::Null, |inner, _| Value::Array(vec![inner]));
        assert_eq!(written(&nested(MAX_BODY_DEPTH + 1), 0), "null");
        assert_eq!(written(&nested(MAX_BODY_DEPTH), 0).len(), 2 * MAX_BODY_DEPTH + "null".len(), "fits exactly");
        assert_eq!(written(&nested(MAX_BODY_DEPTH), 1), "null", "the body's own levels count");
        assert_eq!(written(&nested(MAX_BODY_DEPTH - 3), 3).len(), 2 * (MAX_BODY_DEPTH - 3) + "null".len());
        assert_eq!(written(&nested(MAX_VALUE_DEPTH + 1), 0), "null");
        assert_eq!(written(&Value::Bool(true), MAX_BODY_DEPTH), "true", "a scalar adds no level");
    }

    #[test]
    fn every_byte_is_escaped_as_serde_json_escapes_it() {
        let all: String = (0..=0x7F_u8).map(char::from).chain(['é', '\u{2028}', '\u{FFFF}', '😀']).collect();
        for text in [all.as_str(), "", "\"", "\\", "a\u{1}b\u{1f}\u{7f}"] {
            let value = Value::String(text.to_owned());
            assert_eq!(written(&value, 0), serde_json::to_string(&value).unwrap());
        }
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<String>().prop_map(Value::String),
            "[\"\\\\\u{0}-\u{1f}\u{7f}a-c é😀]{0,20}".prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            (-1000i32..1000).prop_map(|i| Value::from(f64::from(i))),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    proptest! {
        #[test]
        fn values_are_written_exactly_as_serde_json_writes_them(
            value in scalar().prop_recursive(3, 16, 4, |inner| prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,4}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ])
        ) {
            let ours = written(&value, 0);
            prop_assert_eq!(&ours, &serde_json::to_string(&value).unwrap());
            prop_assert_eq!(serde_json::from_str::<Value>(&ours).unwrap(), value);
        }
    }
}
