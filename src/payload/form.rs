//! FORM bodies: `application/x-www-form-urlencoded`.
//!
//! One `name=value` pair per parameter, in parameter order, joined by `&`. Names are sent verbatim (no nesting);
//! values are text as [`push_text`](super::push_text) writes them (a missing field is an empty value). Both are
//! encoded exactly as `serde_urlencoded` (the WHATWG `application/x-www-form-urlencoded` serializer) encodes them:
//! ASCII letters, digits and `*-._` as is, space as `+`, every other byte of the UTF-8 text as `%XX` (upper-case
//! hex). Names are encoded once, when the action is validated.

use serde_json::Value;

use super::parameter::{resolve, Parameter};
use crate::record::Fields;
use crate::value::{into_text, push_text, Body, Full};

/// A name, form-encoded.
pub(super) fn encode_name(name: &str) -> Box<str> {
    let mut out = Vec::with_capacity(name.len());
    // Without a limit nothing is full.
    let _ = push_encoded(name.as_bytes(), &mut Body::unlimited(&mut out));
    into_text(out).into_boxed_str()
}

/// Writes the body of a FORM request; `names` are the parameters' encoded names (encoded on the spot if missing).
pub(super) fn write(
    names: &[Box<str>],
    parameters: &[Parameter],
    fields: &Fields,
    out: &mut Body<'_>,
) -> Result<(), Full> {
    let mut text = Vec::new();
    for (position, parameter) in parameters.iter().enumerate() {
        if position > 0 {
            out.push('&')?;
        }
        match names.get(position) {
            Some(name) => out.push_str(name)?,
            None => push_encoded(parameter.name.as_bytes(), out)?,
        }
        out.push('=')?;
        match &*resolve(parameter, fields, out.remaining())? {
            Value::String(value) => push_encoded(value.as_bytes(), out)?,
            value => {
                // Encoding only adds, so the text may take at most what is left of the body.
                text.clear();
                push_text(value, &mut Body::new(&mut text, out.remaining()))?;
                push_encoded(&text, out)?;
            }
        }
    }
    Ok(())
}

/// Appends form-encoded text (UTF-8 bytes); see the module documentation.
fn push_encoded(text: &[u8], out: &mut Body<'_>) -> Result<(), Full> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = 0;
    for (at, byte) in text.iter().copied().enumerate() {
        if matches!(byte, b'*' | b'-' | b'.' | b'0'..=b'9' | b'A'..=b'Z' | b'_' | b'a'..=b'z') {
            continue;
        }
        // A non-empty run holds only ASCII bytes.
        if start < at {
            out.push_utf8(text.get(start..at).unwrap_or_default())?;
        }
        if byte == b' ' {
            out.push('+')?;
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
