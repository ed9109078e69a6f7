//! XML bodies.
//!
//! The document is the declaration `<?xml version="1.0" encoding="UTF-8"?>` followed by one root element,
//! `<record>`, with no white space anywhere between tags:
//! - each parameter is an element named by its key, nested by the dotted name (`customer.name` →
//!   `<customer><name>…</name></customer>`), elements in order of first appearance among the parameter names;
//! - a numeric segment repeats its parent element once per index, in index order: `lines.0.sku`, `lines.1.sku` →
//!   `<lines><sku>A</sku></lines><lines><sku>B</sku></lines>`, and `tags.0`, `tags.1` →
//!   `<tags>a</tags><tags>b</tags>`. Two indexes in a row (`a.0.1`) are rejected when the action is validated;
//! - a value is the element's text: a string as is, a number without a trailing `.0` (`1200`, `1200.5`), a boolean
//!   as `true`/`false`, null or a missing field as an empty element (`<a></a>`);
//! - an array or object *inside a value* is written as its compact JSON text (`[1,2]`, `{"k":"v"}`), escaped like
//!   any other text, never as nested elements (its keys need not be XML names, so no value can make the body
//!   ill-formed).
//!
//! Text escaping: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;` (so `]]>` never appears), carriage return →
//! `&#13;` (a raw one would be turned into a line feed by every parser), tab and line feed as is. Quotes need no
//! escaping in element text and are written as is. Characters XML 1.0 cannot carry at all — the C0 controls other
//! than tab, line feed and carriage return, and U+FFFE, U+FFFF — are replaced with U+FFFD; they are never
//! written raw, nor as character references (which XML 1.0 forbids for them too).

use serde_json::Value;

use super::parameter::{Parameter, ValueSource};
use super::program::Builder;
use super::shape::{Entry, Node};
use super::template::Piece;
use crate::value::{bytes_below, bytes_equal, find, push_text as push_value_text, Body, Full};

/// The XML declaration every body starts with.
pub(super) const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// The root element's name.
pub(super) const ROOT: &str = "record";

/// Compiles the body of an XML request: everything but the record's values is literal text (tags, literal values
/// and the fixed text of templates, escaped).
pub(super) fn compile(entries: &[Entry], parameters: &[Parameter], program: &mut Builder) {
    program.literal(DECLARATION);
    program.literal("<");
    program.literal(ROOT);
    program.literal(">");
    compile_members(entries, parameters, program);
    program.literal("</");
    program.literal(ROOT);
    program.literal(">");
}

// The recursion below goes one level per dotted segment of a name, at most `MAX_PARAMETER_NAME_SEGMENTS` deep.

fn compile_members(entries: &[Entry], parameters: &[Parameter], program: &mut Builder) {
    for entry in entries {
        compile_element(entry, &entry.node, parameters, program);
    }
}

fn compile_element(entry: &Entry, node: &Node, parameters: &[Parameter], program: &mut Builder) {
    match node {
        // The element repeats once per item.
        Node::Array(items) => {
            for item in items {
                compile_element(entry, item, parameters, program);
            }
        }
        Node::Value(index) => {
            program.literal(&entry.open);
            match parameters.get(*index).map(|parameter| &parameter.source) {
                Some(ValueSource::Value(value)) => program.literal_with(|out| push_text(Some(value), out)),
                Some(ValueSource::Field(field)) => program.field(field, push_field_text, 0),
                Some(ValueSource::Template(template)) => {
                    for piece in template.pieces() {
                        match piece {
                            Piece::Text(text) => program.literal_with(|out| push_escaped(text, out)),
                            Piece::Field(field) => program.field(field, push_field_text, 0),
                        }
                    }
                }
                None => {}
            }
            program.literal(&entry.close);
        }
        Node::Object(children) => {
            program.literal(&entry.open);
            compile_members(children, parameters, program);
            program.literal(&entry.close);
        }
    }
}

/// Appends a field's value as escaped element text (see [`push_text`]); `_depth` does not matter.
fn push_field_text(value: Option<&Value>, _depth: usize, out: &mut Body<'_>) -> Result<(), Full> {
    push_text(value, out)
}

/// Appends a value as escaped element text (nothing for a missing field): its text (see
/// [`crate::value::push_text`]), escaped.
fn push_text(value: Option<&Value>, out: &mut Body<'_>) -> Result<(), Full> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(text)) => push_escaped(text, out),
        // Digits, signs, `.`, `e` or `true`/`false`: nothing to escape.
        Some(value @ (Value::Number(_) | Value::Bool(_))) => push_value_text(value, out),
        Some(value @ (Value::Array(_) | Value::Object(_))) => {
            // Escaping only adds, so the text may take at most what is left of the body.
            let mut text = String::new();
            push_value_text(value, &mut Body::new(&mut text, out.remaining()))?;
            push_escaped(&text, out)
        }
    }
}

/// Which bytes [`push_escaped`] stops at: `&`, `<`, `>`, every C0 control but tab and line feed, and `EF`, the
/// first byte of U+FFFE and U+FFFF (and of the other characters from U+F000 on, which it copies).
const STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = byte != 0x09 && byte != 0x0A;
        byte += 1;
    }
    table[b'&' as usize] = true;
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[0xEF] = true;
    table
};

/// Appends text escaped for element content; see the module documentation. Scans bytes, eight at a time where
/// none stops it: every character it replaces is ASCII but U+FFFE and U+FFFF (`EF BF BE`, `EF BF BF`), so a run
/// between two of them is copied whole.
pub(super) fn push_escaped(text: &str, out: &mut Body<'_>) -> Result<(), Full> {
    let bytes = text.as_bytes();
    let clean = |word| {
        bytes_below(word, 0x20)
            | bytes_equal(word, b'&')
            | bytes_equal(word, b'<')
            | bytes_equal(word, b'>')
            | bytes_equal(word, 0xEF)
            == 0
    };
    let mut start = 0;
    let mut from = 0;
    loop {
        let at = find(bytes, from, clean, |byte| STOP[usize::from(byte)]);
        let Some(&byte) = bytes.get(at) else { break };
        let after = at.saturating_add(1);
        let (replacement, width) = match byte {
            b'&' => ("&amp;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'\r' => ("&#13;", 1),
            0..=0x1F => ("\u{FFFD}", 1),
            0xEF if matches!(bytes.get(after..after.saturating_add(2)), Some([0xBF, 0xBE | 0xBF])) => ("\u{FFFD}", 3),
            // Another character that starts with `EF`: copied.
            _ => {
                from = after;
                continue;
            }
        };
        // Both ends of the run are character boundaries: each is the start of the text, of an ASCII byte or of a
        // whole three-byte character.
        out.push_str(text.get(start..at).unwrap_or_default())?;
        out.push_str(replacement)?;
        start = at.saturating_add(width);
        from = start;
    }
    out.push_str(text.get(start..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        push_escaped(text, &mut Body::unlimited(&mut out)).unwrap();
        out
    }

    fn value(value: Value) -> String {
        let mut out = String::new();
        push_text(Some(&value), &mut Body::unlimited(&mut out)).unwrap();
        out
    }

    #[test]
    fn markup_and_carriage_returns_are_escaped() {
        assert_eq!(escaped("a & b < c > d ]]> \"q\" 'a'"), "a &amp; b &lt; c &gt; d ]]&gt; \"q\" 'a'");
        assert_eq!(escaped("l1\r\nl2\rl3\n\tend"), "l1&#13;\nl2&#13;l3\n\tend");
        assert_eq!(escaped(""), "");
        assert_eq!(escaped("é中😀 "), "é中😀 ");
    }

    #[test]
    fn characters_xml_cannot_carry_become_replacement_characters() {
        assert_eq!(
            escaped("a\u{0}b\u{1}\u{8}\u{B}\u{C}\u{E}\u{1F}c"),
            "a\u{FFFD}b\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}c"
        );
        assert_eq!(escaped("\u{FFFE}\u{FFFF}\u{FFFD}"), "\u{FFFD}\u{FFFD}\u{FFFD}");
        // Allowed by XML 1.0, kept.
        assert_eq!(
            escaped("\u{7F}\u{85}\u{9F}\u{D7FF}\u{E000}\u{10FFFF}"),
            "\u{7F}\u{85}\u{9F}\u{D7FF}\u{E000}\u{10FFFF}"
        );
    }

    #[test]
    fn values_are_written_as_text() {
        assert_eq!(value(serde_json::json!(1200.0)), "1200");
        assert_eq!(value(serde_json::json!(1200.5)), "1200.5");
        assert_eq!(value(serde_json::json!(-3)), "-3");
        assert_eq!(value(serde_json::json!(true)), "true");
        assert_eq!(value(Value::Null), "");
        assert_eq!(value(serde_json::json!([1, "<a>"])), "[1,\"&lt;a&gt;\"]");
        assert_eq!(value(serde_json::json!({"k": "\r\u{FFFE}"})), "{\"k\":\"\\r\u{FFFD}\"}");
    }
}
