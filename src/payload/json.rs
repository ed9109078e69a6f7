//! JSON and JSONARRAY bodies.
//!
//! JSON is an object of the parameters, members in order of first appearance among the parameter names (a dotted
//! name nests objects, a numeric segment builds an array). JSONARRAY is that object as the single element of a
//! top-level array: `[{...}]`. Values keep their JSON types; a missing field is `null`. The text is compact (no
//! white space), and every value and key is written by `serde_json`, so its escaping is serde_json's.

use serde_json::Value;

use super::parameter::{resolve, Parameter};
use super::shape::{Entry, Node};
use crate::record::Fields;
use crate::value::{nests_deeper_than, push_json, Body, Full, MAX_VALUE_DEPTH};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_too_deep_for_the_body_are_null() {
        let nested = |levels: usize| (0..levels).fold(Value::Null, |inner, _| Value::Array(vec![inner]));
        let written = |value: &Value, depth: usize| {
            let mut out = Vec::new();
            push_value(value, depth, &mut Body::unlimited(&mut out)).unwrap();
            crate::value::into_text(out)
        };
        assert_eq!(written(&nested(MAX_BODY_DEPTH + 1), 0), "null");
        assert_eq!(written(&nested(MAX_BODY_DEPTH), 0).len(), 2 * MAX_BODY_DEPTH + "null".len(), "fits exactly");
        assert_eq!(written(&nested(MAX_BODY_DEPTH), 1), "null", "the body's own levels count");
        assert_eq!(written(&nested(MAX_BODY_DEPTH - 3), 3).len(), 2 * (MAX_BODY_DEPTH - 3) + "null".len());
        assert_eq!(written(&nested(MAX_VALUE_DEPTH + 1), 0), "null");
        assert_eq!(written(&Value::Bool(true), MAX_BODY_DEPTH), "true", "a scalar adds no level");
    }
}
