//! The encoders as they were before bodies were compiled into programs, kept (for tests only) as the reference
//! the programs must match byte for byte: they walk the tree of names for every record, resolve each parameter by
//! name, and write every value, key and escape through serde_json and the original escapers.

use std::borrow::Cow;

use proptest::prelude::*;
use serde_json::Value;

use super::content_type::ContentType;
use super::parameter::{Parameter, ValueSource};
use super::shape::{compile, layout, Entry, Layout, Node};
use super::xml::{DECLARATION, ROOT};
use crate::record::Fields;
use crate::value::{nests_deeper_than, push_json, Body, Full, MAX_VALUE_DEPTH};

/// The body the old encoders wrote, or `Full`.
fn render(content_type: ContentType, parameters: &[Parameter], fields: &Fields, limit: usize) -> Result<String, Full> {
    let layout = layout(content_type, parameters).unwrap_or_else(|_| Layout::empty(content_type));
    let mut text = String::new();
    let out = &mut Body::new(&mut text, limit);
    match (&layout, content_type) {
        (Layout::Tree(entries), ContentType::Json) => json_write(entries, parameters, fields, false, out)?,
        (Layout::Tree(entries), ContentType::JsonArray) => json_write(entries, parameters, fields, true, out)?,
        (Layout::Tree(entries), ContentType::Xml) => xml_write(entries, parameters, fields, out)?,
        (Layout::Pairs(names), ContentType::Form) => form_write(names, parameters, fields, out)?,
        _ => unreachable!("the layout of another content type"),
    }
    Ok(text)
}

static NULL: Value = Value::Null;

/// What the old `Body::push_utf8` did: the old encoders wrote UTF-8 bytes.
fn push_utf8(out: &mut Body<'_>, bytes: &[u8]) -> Result<(), Full> {
    out.push_str(std::str::from_utf8(bytes).expect("the old encoders wrote UTF-8"))
}

fn resolve<'a>(parameter: &'a Parameter, fields: &'a Fields, budget: usize) -> Result<Cow<'a, Value>, Full> {
    Ok(match &parameter.source {
        ValueSource::Value(value) => Cow::Borrowed(value),
        ValueSource::Field(field) => Cow::Borrowed(fields.get(field).unwrap_or(&NULL)),
        ValueSource::Template(template) => {
            let mut text = String::new();
            template.fill_into(fields, &mut Body::new(&mut text, budget))?;
            Cow::Owned(Value::String(text))
        }
    })
}

fn push_text(value: &Value, out: &mut Body<'_>) -> Result<(), Full> {
    match value {
        Value::Null => Ok(()),
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let mut digits = String::with_capacity(24);
            push_json(n, &mut Body::unlimited(&mut digits))?;
            match digits.strip_suffix(".0") {
                Some("-0") if n.is_f64() => out.push_str("0"),
                Some(whole) if n.is_f64() => out.push_str(whole),
                _ => out.push_str(&digits),
            }
        }
        other if nests_deeper_than(other, MAX_VALUE_DEPTH) => Ok(()),
        other => push_json(other, out),
    }
}

// --- JSON

fn json_write(
    entries: &[Entry],
    parameters: &[Parameter],
    fields: &Fields,
    array: bool,
    out: &mut Body<'_>,
) -> Result<(), Full> {
    if array {
        out.push_str("[")?;
    }
    json_object(entries, parameters, fields, usize::from(array), out)?;
    if array {
        out.push_str("]")?;
    }
    Ok(())
}

fn json_object(
    entries: &[Entry],
    parameters: &[Parameter],
    fields: &Fields,
    outside: usize,
    out: &mut Body<'_>,
) -> Result<(), Full> {
    let depth = outside.saturating_add(1);
    out.push_str("{")?;
    for (position, entry) in entries.iter().enumerate() {
        if position > 0 {
            out.push_str(",")?;
        }
        out.push_str(&entry.open)?;
        json_node(&entry.node, parameters, fields, depth, out)?;
    }
    out.push_str("}")
}

fn json_node(
    node: &Node,
    parameters: &[Parameter],
    fields: &Fields,
    depth: usize,
    out: &mut Body<'_>,
) -> Result<(), Full> {
    match node {
        Node::Value(index) => match parameters.get(*index) {
            Some(parameter) => json_value(&*resolve(parameter, fields, out.remaining())?, depth, out),
            None => out.push_str("null"),
        },
        Node::Object(entries) => json_object(entries, parameters, fields, depth, out),
        Node::Array(items) => {
            out.push_str("[")?;
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push_str(",")?;
                }
                json_node(item, parameters, fields, depth.saturating_add(1), out)?;
            }
            out.push_str("]")
        }
    }
}

fn json_value(value: &Value, depth: usize, out: &mut Body<'_>) -> Result<(), Full> {
    let room = super::json::MAX_BODY_DEPTH.saturating_sub(depth).min(MAX_VALUE_DEPTH);
    if nests_deeper_than(value, room) {
        return out.push_str("null");
    }
    push_json(value, out)
}

// --- XML

fn xml_write(entries: &[Entry], parameters: &[Parameter], fields: &Fields, out: &mut Body<'_>) -> Result<(), Full> {
    out.push_str(DECLARATION)?;
    out.push_str("<")?;
    out.push_str(ROOT)?;
    out.push_str(">")?;
    xml_members(entries, parameters, fields, out)?;
    out.push_str("</")?;
    out.push_str(ROOT)?;
    out.push_str(">")
}

fn xml_members(entries: &[Entry], parameters: &[Parameter], fields: &Fields, out: &mut Body<'_>) -> Result<(), Full> {
    for entry in entries {
        xml_element(entry, &entry.node, parameters, fields, out)?;
    }
    Ok(())
}

fn xml_element(
    entry: &Entry,
    node: &Node,
    parameters: &[Parameter],
    fields: &Fields,
    out: &mut Body<'_>,
) -> Result<(), Full> {
    match node {
        Node::Array(items) => {
            for item in items {
                xml_element(entry, item, parameters, fields, out)?;
            }
            Ok(())
        }
        Node::Value(index) => {
            out.push_str(&entry.open)?;
            if let Some(parameter) = parameters.get(*index) {
                xml_value(&*resolve(parameter, fields, out.remaining())?, out)?;
            }
            out.push_str(&entry.close)
        }
        Node::Object(children) => {
            out.push_str(&entry.open)?;
            xml_members(children, parameters, fields, out)?;
            out.push_str(&entry.close)
        }
    }
}

fn xml_value(value: &Value, out: &mut Body<'_>) -> Result<(), Full> {
    match value {
        Value::Null => Ok(()),
        Value::String(text) => xml_escaped(text, out),
        Value::Number(_) | Value::Bool(_) => push_text(value, out),
        Value::Array(_) | Value::Object(_) => {
            let mut text = String::new();
            push_text(value, &mut Body::new(&mut text, out.remaining()))?;
            xml_escaped(&text, out)
        }
    }
}

fn xml_escaped(text: &str, out: &mut Body<'_>) -> Result<(), Full> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        let (replacement, width) = match byte {
            b'&' => ("&amp;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'\r' => ("&#13;", 1),
            b'\t' | b'\n' => {
                at += 1;
                continue;
            }
            0..=0x1F => ("\u{FFFD}", 1),
            0xEF if matches!(bytes.get(at + 1..at + 3), Some([0xBF, 0xBE | 0xBF])) => ("\u{FFFD}", 3),
            _ => {
                at += 1;
                continue;
            }
        };
        push_utf8(out, bytes.get(start..at).unwrap_or_default())?;
        out.push_str(replacement)?;
        at += width;
        start = at;
    }
    push_utf8(out, bytes.get(start..).unwrap_or_default())
}

// --- FORM

fn form_write(names: &[Box<str>], parameters: &[Parameter], fields: &Fields, out: &mut Body<'_>) -> Result<(), Full> {
    let mut text = String::new();
    for (position, parameter) in parameters.iter().enumerate() {
        if position > 0 {
            out.push_str("&")?;
        }
        match names.get(position) {
            Some(name) => out.push_str(name)?,
            None => form_encoded(parameter.name.as_bytes(), out)?,
        }
        out.push_str("=")?;
        match &*resolve(parameter, fields, out.remaining())? {
            Value::String(value) => form_encoded(value.as_bytes(), out)?,
            value => {
                text.clear();
                push_text(value, &mut Body::new(&mut text, out.remaining()))?;
                form_encoded(text.as_bytes(), out)?;
            }
        }
    }
    Ok(())
}

fn form_encoded(text: &[u8], out: &mut Body<'_>) -> Result<(), Full> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = 0;
    for (at, byte) in text.iter().copied().enumerate() {
        if matches!(byte, b'*' | b'-' | b'.' | b'0'..=b'9' | b'A'..=b'Z' | b'_' | b'a'..=b'z') {
            continue;
        }
        if start < at {
            push_utf8(out, text.get(start..at).unwrap_or_default())?;
        }
        if byte == b' ' {
            out.push_str("+")?;
        } else {
            push_utf8(out, &[b'%', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xF)]])?;
        }
        start = at + 1;
    }
    push_utf8(out, text.get(start..).unwrap_or_default())
}

// --- the programs against the reference

/// Text with every kind of character the escapers treat apart.
fn tricky_text() -> impl Strategy<Value = String> {
    let tricky = prop_oneof![
        2 => any::<char>(),
        3 => prop::sample::select(vec![
            '&', '<', '>', '"', '\'', '\\', '/', '+', '%', '=', '*', '-', '.', '_', '~', ' ', '\r', '\n', '\t',
            '\u{0}', '\u{1}', '\u{8}', '\u{B}', '\u{C}', '\u{1F}', '\u{7F}', '\u{85}', '\u{2028}', '\u{FFFD}',
            '\u{FFFE}', '\u{FFFF}', '\u{EFFF}', '\u{F000}', 'é', '中', '😀', '$', '{', '}',
        ]),
        2 => proptest::char::range('a', 'z'),
    ];
    prop::collection::vec(tricky, 0..40).prop_map(|chars| chars.into_iter().collect())
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => tricky_text().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        2 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        1 => (-1000i32..1000).prop_map(|i| Value::from(f64::from(i))),
        1 => prop::sample::select(vec![0.0, -0.0, 1e20, -1e-7, 1e300, 5e-324]).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(tricky_text(), inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Field names the record and the parameters share, so that some are found and some are missing.
fn field_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "", "é", "a b", "zz"]).prop_map(str::to_owned)
}

fn source() -> impl Strategy<Value = ValueSource> {
    let template = prop::collection::vec(
        prop_oneof![
            tricky_text().prop_map(|text| text.replace('$', "$$")),
            "[a-d]".prop_map(|name| format!("${{{name}}}")),
            "[a-d]".prop_map(|name| format!("${name} ")),
        ],
        0..4,
    )
    .prop_filter_map("a template", |pieces| super::Template::parse(&pieces.concat()).ok());
    prop_oneof![
        2 => value().prop_map(ValueSource::Value),
        3 => field_name().prop_map(ValueSource::Field),
        2 => template.prop_map(ValueSource::Template),
    ]
}

/// Names from few segments, so that many sets of them nest validly (the others are refused, as before).
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "0", "1", "x y", "é"]), 1..4)
        .prop_map(|segments| segments.join("."))
}

fn record() -> impl Strategy<Value = Fields> {
    (prop::collection::btree_map(field_name(), value(), 0..8), 0..40usize).prop_map(|(fields, extra)| {
        let mut record: Fields = fields.into_iter().collect();
        // Sometimes many more fields than the action reads, which are looked up one by one instead.
        for index in 0..extra {
            record.insert(format!("extra{index}"), Value::from(index));
        }
        record
    })
}

fn written(write: impl FnOnce(&mut Body<'_>) -> Result<(), Full>) -> String {
    let mut out = String::new();
    write(&mut Body::unlimited(&mut out)).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Each escaper, on text of any length (so that words of eight bytes and the bytes after them are both tried),
    /// writes what the old one did, or serde_json.
    #[test]
    fn escapers_write_what_the_old_ones_did(text in prop_oneof![tricky_text(), any::<String>()], cut in 0usize..8) {
        let text: String = text.chars().skip(cut).collect();
        prop_assert_eq!(written(|out| super::xml::push_escaped(&text, out)), written(|out| xml_escaped(&text, out)));
        let value = Value::String(text.clone());
        prop_assert_eq!(written(|out| super::json::push_value(&value, 0, out)), serde_json::to_string(&value).unwrap());
        let form = written(|out| super::form::push_text(Some(&value), out));
        prop_assert_eq!(form, written(|out| form_encoded(text.as_bytes(), out)));
    }

    /// The compiled program writes exactly the bytes the old encoders wrote, and fails exactly when they did, under
    /// any limit.
    #[test]
    fn programs_write_what_the_old_encoders_wrote(
        parameters in prop::collection::vec((name(), source()), 0..8),
        fields in record(),
        content_type in prop::sample::select(
            vec![ContentType::Json, ContentType::JsonArray, ContentType::Xml, ContentType::Form]
        ),
        fraction in 0.0f64..1.0,
    ) {
        let parameters: Vec<Parameter> =
            parameters.into_iter().map(|(name, source)| Parameter { name, source }).collect();
        let shape = compile(content_type, &parameters).unwrap_or_else(|_| super::Shape::empty(content_type));
        let expected = render(content_type, &parameters, &fields, usize::MAX).unwrap();
        let length = expected.len();
        let inside = (length as f64 * fraction) as usize;
        for limit in [usize::MAX, length, length.saturating_sub(1), length + 1, inside, 0] {
            let old = render(content_type, &parameters, &fields, limit);
            let new = super::render(content_type, &shape, &parameters, &fields, limit);
            match (&old, &new) {
                (Ok(old), Ok(new)) => prop_assert_eq!(new.body().as_ref(), old.as_bytes()),
                (Err(Full), Err(Full)) => prop_assert!(length > limit),
                _ => prop_assert!(false, "limit {}: old {:?}, new {:?}", limit, old, new),
            }
        }
    }
}
