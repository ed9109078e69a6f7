//! FORM bodies: `application/x-www-form-urlencoded`.
//!
//! One `name=value` pair per parameter, in parameter order, joined by `&`. Names are sent verbatim (no nesting);
//! values are text as [`push_text`](crate::value::push_text) writes them (a missing field is an empty value). Both are
//! encoded exactly as `serde_urlencoded` (the WHATWG `application/x-www-form-urlencoded` serializer) encodes them:
//! ASCII letters, digits and `*-._` as is, space as `+`, every other byte of the UTF-8 text as `%XX` (upper-case
//! hex). Names, `=` and `&`, literal values and a template's fixed text are encoded once, into the action's
//! program, when the action is validated.

use serde_json::Value;

use super::parameter::{Parameter, ValueSource};
use super::program::Builder;
use super::template::Piece;
use crate::value::{push_text as push_value_text, Body, Full, NumberText};

/// A name, form-encoded.
pub(super) fn encode_name(name: &str) -> Box<str> {
    let mut out = String::with_capacity(name.len());
    // Without a limit nothing is full.
    let _ = push_encoded(name, &mut Body::unlimited(&mut out));
    out.into_boxed_str()
}

/// Compiles the body of a FORM request; `names` are the parameters' encoded names (encoded on the spot if
/// missing). Everything but the record's values is literal text: names, `=` and `&`, literal values and the fixed
/// text of templates, encoded.
pub(super) fn compile(names: &[Box<str>], parameters: &[Parameter], program: &mut Builder) {
    for (position, parameter) in parameters.iter().enumerate() {
        if position > 0 {
            program.literal("&");
        }
        match names.get(position) {
            Some(name) => program.literal(name),
            None => program.literal(&encode_name(&parameter.name)),
        }
        program.literal("=");
        match &parameter.source {
            ValueSource::Value(value) => program.literal_with(|out| push_text(Some(value), out)),
            ValueSource::Field(field) => program.field(field, push_field_text, 0),
            ValueSource::Template(template) => {
                for piece in template.pieces() {
                    match piece {
                        Piece::Text(text) => program.literal_with(|out| push_encoded(text, out)),
                        Piece::Field(field) => program.field(field, push_field_text, 0),
                    }
                }
            }
        }
    }
}

/// Appends a field's value as form-encoded text (see [`push_text`]); `_depth` does not matter.
fn push_field_text(value: Option<&Value>, _depth: usize, out: &mut Body<'_>) -> Result<(), Full> {
    push_text(value, out)
}

/// Appends a value's text (see [`crate::value::push_text`]), form-encoded; nothing for a missing field.
pub(super) fn push_text(value: Option<&Value>, out: &mut Body<'_>) -> Result<(), Full> {
    let Some(value) = value else { return Ok(()) };
    match value {
        Value::Null => Ok(()),
        Value::String(text) => push_encoded(text, out),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // An exponent's `+` is encoded.
        Value::Number(number) => match NumberText::default().text(number) {
            Some(text) => push_encoded(text, out),
            None => push_encoded_aside(value, out),
        },
        Value::Array(_) | Value::Object(_) => push_encoded_aside(value, out),
    }
}

/// Appends a value's text, written aside first and then form-encoded.
fn push_encoded_aside(value: &Value, out: &mut Body<'_>) -> Result<(), Full> {
    // Encoding only adds, so the text may take at most what is left of the body.
    let mut text = String::new();
    push_value_text(value, &mut Body::new(&mut text, out.remaining()))?;
    push_encoded(&text, out)
}

/// The bytes written as they are: ASCII letters, digits and `*-._`.
const UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x80 {
        table[byte] = matches!(byte as u8, b'*' | b'-' | b'.' | b'0'..=b'9' | b'A'..=b'Z' | b'_' | b'a'..=b'z');
        byte += 1;
    }
    table
};

/// `%00` to `%FF` (upper-case hex), for the bytes that are encoded.
const PERCENT_ESCAPES: [&str; 256] = {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    const BYTES: [u8; 3 * 256] = {
        let mut bytes = [0; 3 * 256];
        let mut byte = 0;
        while byte < 256 {
            bytes[3 * byte] = b'%';
            bytes[3 * byte + 1] = HEX[byte >> 4];
            bytes[3 * byte + 2] = HEX[byte & 0xF];
            byte += 1;
        }
        bytes
    };
    const ALL: &[u8] = &BYTES;
    let mut escapes = [""; 256];
    let mut byte = 0;
    while byte < 256 {
        let (escape, _) = ALL.split_at(3 * byte + 3);
        let (_, escape) = escape.split_at(3 * byte);
        escapes[byte] = match std::str::from_utf8(escape) {
            Ok(escape) => escape,
            Err(_) => panic!("the escapes are ASCII"),
        };
        byte += 1;
    }
    escapes
};

/// Appends form-encoded text; see the module documentation. A run of bytes written as they are holds only ASCII,
/// so it is cut at character boundaries.
fn push_encoded(text: &str, out: &mut Body<'_>) -> Result<(), Full> {
    let mut start = 0;
    for (at, byte) in text.bytes().enumerate() {
        if UNRESERVED[usize::from(byte)] {
            continue;
        }
        if start < at {
            out.push_str(text.get(start..at).unwrap_or_default())?;
        }
        if byte == b' ' {
            out.push_str("+")?;
        } else {
            out.push_str(PERCENT_ESCAPES[usize::from(byte)])?;
        }
        start = at.saturating_add(1);
    }
    out.push_str(text.get(start..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(text: &str) -> String {
        let mut out = String::new();
        push_encoded(text, &mut Body::unlimited(&mut out)).unwrap();
        out
    }

    #[test]
    fn encoding_matches_the_whatwg_serializer() {
        assert_eq!(encoded("a b+c%d=e&f*g-h.i_j~k/é"), "a+b%2Bc%25d%3De%26f*g-h.i_j%7Ek%2F%C3%A9");
        assert_eq!(encoded("\r\n\t"), "%0D%0A%09");
        assert_eq!(encoded(""), "");
    }

    proptest! {
        #[test]
        fn pairs_are_byte_identical_to_serde_urlencoded(pairs in proptest::collection::vec((any::<String>(), any::<String>()), 0..5)) {
            let mut ours = String::new();
            for (position, (name, value)) in pairs.iter().enumerate() {
                if position > 0 {
                    ours.push('&');
                }
                ours.push_str(&encode_name(name));
                ours.push('=');
                push_encoded(value, &mut Body::unlimited(&mut ours)).unwrap();
            }
            prop_assert_eq!(ours, serde_urlencoded::to_string(&pairs).unwrap());
        }
    }
}
