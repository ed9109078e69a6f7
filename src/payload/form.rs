//! FORM bodies: `application/x-www-form-urlencoded`.
//!
//! One `name=value` pair per parameter, in parameter order, joined by `&`. Names are sent verbatim (no nesting);
//! values are text as [`push_text`](super::push_text) writes them (a missing field is an empty value). Both are
//! encoded exactly as `serde_urlencoded` (the WHATWG `application/x-www-form-urlencoded` serializer) encodes them:
//! ASCII letters, digits and `*-._` as is, space as `+`, every other byte of the UTF-8 text as `%XX` (upper-case
//! hex). Names are encoded once, when the action is validated.

use serde_json::Value;

use super::parameter::{Parameter, ValueSource};
use super::program::{Builder, Write};
use super::template::Piece;
use crate::value::{into_text, number_text, push_text as push_value_text, Body, Full, NUMBER_BYTES};

/// A name, form-encoded.
pub(super) fn encode_name(name: &str) -> Box<str> {
    let mut out = Vec::with_capacity(name.len());
    // Without a limit nothing is full.
    let _ = push_encoded(name.as_bytes(), &mut Body::unlimited(&mut out));
    into_text(out).into_boxed_str()
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
            ValueSource::Field(field) => program.field(field, Write::FormText),
            ValueSource::Template(template) => {
                for piece in template.pieces() {
                    match piece {
                        Piece::Text(text) => program.literal_with(|out| push_encoded(text.as_bytes(), out)),
                        Piece::Field(field) => program.field(field, Write::FormText),
                    }
                }
            }
        }
    }
}

/// Appends a value's text (see [`crate::value::push_text`]), form-encoded; nothing for a missing field.
pub(super) fn push_text(value: Option<&Value>, out: &mut Body<'_>) -> Result<(), Full> {
    let Some(value) = value else { return Ok(()) };
    match value {
        Value::Null => Ok(()),
        Value::String(text) => push_encoded(text.as_bytes(), out),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // An exponent's `+` is encoded.
        Value::Number(number) => match number_text(number, &mut [0; NUMBER_BYTES]) {
            Some(text) => push_encoded(text, out),
            None => push_encoded_aside(value, out),
        },
        Value::Array(_) | Value::Object(_) => push_encoded_aside(value, out),
    }
}

/// Appends a value's text, written aside first and then form-encoded.
fn push_encoded_aside(value: &Value, out: &mut Body<'_>) -> Result<(), Full> {
    // Encoding only adds, so the text may take at most what is left of the body.
    let mut text = Vec::new();
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

/// Appends form-encoded text (UTF-8 bytes); see the module documentation.
fn push_encoded(text: &[u8], out: &mut Body<'_>) -> Result<(), Full> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = 0;
    for (at, byte) in text.iter().copied().enumerate() {
        if UNRESERVED[usize::from(byte)] {
            continue;
        }
        // A non-empty run holds only ASCII bytes.
        if start < at {
            out.push_utf8(text.get(start..at).unwrap_or_default())?;
        }
        if byte == b' ' {
            out.push_utf8(b"+")?;
        } else {
            out.push_utf8(&[b'%', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xF)]])?;
        }
        start = at + 1;
    }
    out.push_utf8(text.get(start..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(text: &str) -> String {
        let mut out = Vec::new();
        push_encoded(text.as_bytes(), &mut Body::unlimited(&mut out)).unwrap();
        into_text(out)
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
            let mut ours = Vec::new();
            for (position, (name, value)) in pairs.iter().enumerate() {
                if position > 0 {
                    ours.push(b'&');
                }
                ours.extend_from_slice(encode_name(name).as_bytes());
                ours.push(b'=');
                push_encoded(value.as_bytes(), &mut Body::unlimited(&mut ours)).unwrap();
            }
            prop_assert_eq!(into_text(ours), serde_urlencoded::to_string(&pairs).unwrap());
        }
    }
}
