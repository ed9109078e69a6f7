//! Any text as a template: `Template::parse` answers with a template or a typed error; a template renders, against
//! fields derived from the input, exactly what an independent reading of the documented syntax renders.
#![no_main]

use crm_webhooks::Fields;
use crm_webhooks::payload::{Template, TemplateError};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// The documented syntax, read independently: `${name}` (trimmed), `$name` (letters, digits, `_`), `$$` → `$`,
/// any other `$` as is. `Ok(pieces)`, where a piece is literal text or a field name; `Err` for `${` unclosed or
/// `${}` empty, with the byte offset of the `$`.
fn reference(source: &str) -> Result<Vec<Result<String, String>>, TemplateError> {
    let chars: Vec<(usize, char)> = source.char_indices().collect();
    let mut pieces: Vec<Result<String, String>> = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c != '$' {
            literal.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1).map(|(_, c)| *c) {
            Some('{') => {
                let Some(close) = chars[i + 2..].iter().position(|(_, c)| *c == '}') else {
                    return Err(TemplateError::Unclosed { at });
                };
                let name: String = chars[i + 2..i + 2 + close].iter().map(|(_, c)| *c).collect();
                let name = name.trim();
                if name.is_empty() {
                    return Err(TemplateError::Empty { at });
                }
                pieces.push(Ok(std::mem::take(&mut literal)));
                pieces.push(Err(name.to_owned()));
                i += 2 + close + 1;
            }
            Some('$') => {
                literal.push('$');
                i += 2;
            }
            _ => {
                let len = chars[i + 1..].iter().take_while(|(_, c)| c.is_alphanumeric() || *c == '_').count();
                if len == 0 {
                    literal.push('$');
                } else {
                    pieces.push(Ok(std::mem::take(&mut literal)));
                    pieces.push(Err(chars[i + 1..i + 1 + len].iter().map(|(_, c)| *c).collect()));
                }
                i += 1 + len;
            }
        }
    }
    pieces.push(Ok(literal));
    Ok(pieces)
}

/// A field value as the documentation says templates write it.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => {
            let written = n.to_string();
            match written.strip_suffix(".0") {
                Some("-0") => "0".to_owned(),
                Some(whole) => whole.to_owned(),
                None => written,
            }
        }
        other => other.to_string(),
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte chooses how field values are derived; the rest is the template.
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(source) = std::str::from_utf8(rest) else { return };
    let parsed = Template::parse(source);
    let expected = reference(source);
    let template = match (parsed, expected) {
        (Ok(template), Ok(pieces)) => (template, pieces),
        (Err(ours), Err(theirs)) => {
            assert_eq!(ours, theirs, "different errors for {source:?}");
            let _ = ours.to_string();
            return;
        }
        (ours, theirs) => panic!("{source:?}: the crate says {ours:?}, the documented syntax {theirs:?}"),
    };
    let (template, pieces) = template;
    assert_eq!(template.source(), source);
    let names: Vec<String> = pieces.iter().filter_map(|p| p.as_ref().err().cloned()).collect();
    assert_eq!(template.fields().collect::<Vec<_>>(), names, "fields of {source:?}");

    // Fields: every name the template reads (or every other one, when `mode` says so) gets a value.
    let mut fields = Fields::new();
    for (position, name) in names.iter().enumerate() {
        if mode & 1 == 1 && position % 2 == 1 {
            continue;
        }
        let value = match (mode >> 1).wrapping_add(position as u8) % 8 {
            0 => json!(name),
            1 => json!(position),
            2 => json!(position as f64 + 0.5),
            3 => json!(1200.0),
            4 => json!(mode & 4 == 4),
            5 => Value::Null,
            6 => json!([name, position, {"k": null}]),
            _ => json!(format!("${{{name}}}$$")),
        };
        fields.insert(name.clone(), value);
    }
    let rendered = template.render(&fields);
    let want: String = pieces
        .iter()
        .map(|piece| match piece {
            Ok(literal) => literal.clone(),
            Err(name) => fields.get(name).map(text).unwrap_or_default(),
        })
        .collect();
    assert_eq!(rendered, want, "{source:?} with {fields:?}");

    // As a parameter, through the public constructor, the same text comes out.
    let parameter = crm_webhooks::payload::Parameter::template("t", source).expect("it parsed once");
    assert_eq!(parameter.resolve(&fields), Value::String(want));
});
