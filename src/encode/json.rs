//! JSON and JSONARRAY bodies.
//!
//! JSON is an object of the parameters, members in order of first appearance among the parameter names (a dotted
//! name nests objects, a numeric segment builds an array). JSONARRAY is that object as the single element of a
//! top-level array: `[{...}]`. Values keep their JSON types; a missing field is `null`. The text is compact (no
//! white space), and every value and key is written by `serde_json`, so its escaping is serde_json's.

use std::io;

use serde::Serialize;

use crate::action::Parameter;
use crate::record::Fields;

use super::shape::{Entry, Node};

/// Writes the body of a JSON (`array == false`) or JSONARRAY (`array == true`) request.
pub(super) fn write(entries: &[Entry], parameters: &[Parameter], fields: &Fields, array: bool, out: &mut String) {
    if array {
        out.push('[');
    }
    write_object(entries, parameters, fields, out);
    if array {
        out.push(']');
    }
}

fn write_object(entries: &[Entry], parameters: &[Parameter], fields: &Fields, out: &mut String) {
    out.push('{');
    for (position, entry) in entries.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        out.push_str(&entry.open);
        write_node(&entry.node, parameters, fields, out);
    }
    out.push('}');
}

fn write_node(node: &Node, parameters: &[Parameter], fields: &Fields, out: &mut String) {
    match node {
        Node::Value(index) => match parameters.get(*index) {
            Some(parameter) => push_json(&parameter.resolve(fields), out),
            None => out.push_str("null"),
        },
        Node::Object(entries) => write_object(entries, parameters, fields, out),
        Node::Array(items) => {
            out.push('[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write_node(item, parameters, fields, out);
            }
            out.push(']');
        }
    }
}

/// Appends the compact JSON text of a value (or a key), as `serde_json` writes it.
pub(super) fn push_json<T: Serialize + ?Sized>(value: &T, out: &mut String) {
    let mark = out.len();
    // serde_json writes whole UTF-8 fragments (it only splits strings before ASCII escapes), and serializing a
    // `Value` or a `str` cannot fail otherwise; `null` keeps the document well-formed if that ever changed.
    if serde_json::to_writer(TextSink(out), value).is_err() {
        out.truncate(mark);
        out.push_str("null");
    }
}

/// Lets `serde_json` write into a `String`: each write must be whole UTF-8, which is checked, not assumed.
struct TextSink<'a>(&'a mut String);

impl io::Write for TextSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = std::str::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.0.push_str(text);
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
    use serde_json::Value;

    fn to_text(value: &Value) -> String {
        let mut out = String::new();
        push_json(value, &mut out);
        out
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
