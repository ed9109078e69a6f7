//! Field values: how deep they nest, their text form, and the bounded text buffer every body is written into.
//!
//! A leaf of the crate: the encoders, templates and criteria all read values through it, and it depends on
//! nothing of theirs.

use std::io;
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

/// The deepest nesting of arrays and objects a value may have to be written (serde_json's own parser refuses
/// deeper documents, so a host that parsed its records with it never has deeper values).
pub(crate) const MAX_VALUE_DEPTH: usize = 128;

/// Whether a value nests arrays and objects more than `limit` deep, found without recursion: writing, comparing,
/// cloning or dropping a `Value` recurses once per level, so a deeper value is never handed to any of those.
pub(crate) fn nests_deeper_than(value: &Value, limit: usize) -> bool {
    // Most values are scalars: no list to allocate for them.
    if !matches!(value, Value::Array(_) | Value::Object(_)) {
        return false;
    }
    let mut pending: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = pending.pop() {
        let children: &mut dyn Iterator<Item = &Value> = match value {
            Value::Array(items) => &mut items.iter(),
            Value::Object(map) => &mut map.values(),
            _ => continue,
        };
        if depth >= limit {
            return true;
        }
        let below = depth.saturating_add(1);
        pending.extend(children.map(|child| (child, below)));
    }
    false
}

/// A body being written, and the most bytes it may reach. Every write is checked before it copies anything, so a
/// body past its limit is never built: rendering stops at the first write that would pass it.
///
/// The body is text: every write is a `str`, so the whole is UTF-8 by construction and is never checked again.
pub(crate) struct Body<'a> {
    text: &'a mut String,
    limit: usize,
}

/// A write would have taken a [`Body`] past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

impl<'a> Body<'a> {
    /// Writes into `text`, which may grow up to `limit` bytes.
    pub(crate) fn new(text: &'a mut String, limit: usize) -> Self {
        Body { text, limit }
    }

    /// Writes into `text` without a limit: no write fails, since no `String` reaches `usize::MAX` bytes.
    pub(crate) fn unlimited(text: &'a mut String) -> Self {
        Body::new(text, usize::MAX)
    }

    pub(crate) fn push_str(&mut self, text: &str) -> Result<(), Full> {
        if text.len() > self.remaining() {
            return Err(Full);
        }
        self.text.push_str(text);
        Ok(())
    }

    /// How many more bytes may be written.
    pub(crate) fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.text.len())
    }
}

/// The eight bytes of `bytes` from `at` as one word, if there are eight: escapers skip runs with nothing to escape
/// eight bytes at a time, testing a word with [`bytes_equal`] and [`bytes_below`] (SWAR).
pub(crate) fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk = bytes.get(at..at.checked_add(8)?)?;
    <[u8; 8]>::try_from(chunk).ok().map(u64::from_le_bytes)
}

/// The position of the first byte from `from` on for which `stop` holds (`bytes.len()` if there is none), skipping
/// eight bytes at a time while `clean` says a word holds no such byte. `clean` may refuse a word that holds none
/// (then its bytes are tested one by one), but must never pass one that holds one.
#[inline]
pub(crate) fn find(bytes: &[u8], from: usize, clean: impl Fn(u64) -> bool, stop: impl Fn(u8) -> bool) -> usize {
    let mut at = from;
    while let Some(word) = word_at(bytes, at) {
        if !clean(word) {
            let end = at.saturating_add(8);
            while at < end {
                match bytes.get(at) {
                    Some(&byte) if stop(byte) => return at,
                    _ => at += 1,
                }
            }
            continue;
        }
        at = at.saturating_add(8);
    }
    // Fewer than eight bytes left: if the text's last eight are clean, none of them stops.
    let last = bytes.len().checked_sub(8).and_then(|start| word_at(bytes, start));
    if last.is_some_and(&clean) {
        return bytes.len();
    }
    while let Some(&byte) = bytes.get(at) {
        if stop(byte) {
            return at;
        }
        at = at.saturating_add(1);
    }
    bytes.len()
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Non-zero exactly when some byte of `word` is `byte` (the bits set say nothing more: a borrow may mark a byte
/// after a real match).
pub(crate) const fn bytes_equal(word: u64, byte: u8) -> u64 {
    let zero_where_equal = word ^ ONES.wrapping_mul(byte as u64);
    zero_where_equal.wrapping_sub(ONES) & !zero_where_equal & HIGHS
}

/// Non-zero exactly when some byte of `word` is below `limit`, which is at most 0x80 (as for [`bytes_equal`],
/// only whether it is zero counts).
pub(crate) const fn bytes_below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(ONES.wrapping_mul(limit as u64)) & !word & HIGHS
}

/// Appends the compact JSON text of a value (or a key), as `serde_json` writes it; stops as soon as the body is
/// full. serde_json writes bytes: they are written aside (never more than the body has room for) and checked to
/// be the UTF-8 they always are before they join the body.
pub(crate) fn push_json<T: Serialize + ?Sized>(value: &T, out: &mut Body<'_>) -> Result<(), Full> {
    let mut sink = Sink { bytes: Vec::new(), room: out.remaining(), full: false };
    let written = serde_json::to_writer(&mut sink, value);
    match (written, String::from_utf8(sink.bytes)) {
        (Ok(()), Ok(text)) => out.push_str(&text),
        (Err(_), _) if sink.full => Err(Full),
        // Serializing a `Value` or a `str` cannot fail otherwise, nor write anything but UTF-8; `null` keeps the
        // document well-formed if that ever changed.
        _ => out.push_str("null"),
    }
}

/// Where `serde_json` writes for [`push_json`]: at most `room` bytes, after which a write fails, which stops it.
struct Sink {
    bytes: Vec<u8>,
    room: usize,
    full: bool,
}

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.room.saturating_sub(self.bytes.len()) {
            self.full = true;
            return Err(io::Error::other("the body is full"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A number's text, written on the stack by the formatters serde_json itself writes numbers with (`itoa` for
/// integers, `zmij` for floats), which hand it back as a `str`.
#[derive(Default)]
pub(crate) struct NumberText {
    integer: itoa::Buffer,
    float: zmij::Buffer,
}

impl NumberText {
    /// The JSON text of a number exactly as serde_json writes it; `None` when serde_json must write it (a
    /// build with its `arbitrary_precision` feature, where a number keeps the text it was parsed from).
    pub(crate) fn json(&mut self, number: &serde_json::Number) -> Option<&str> {
        if !numbers_are_binary() {
            return None;
        }
        Some(match (number.as_u64(), number.as_i64(), number.as_f64()) {
            (Some(positive), _, _) => self.integer.format(positive),
            (None, Some(negative), _) => self.integer.format(negative),
            (None, None, Some(float)) if float.is_finite() => self.float.format_finite(float),
            _ => return None,
        })
    }

    /// A number as text (see [`push_text`]); `None` as for [`NumberText::json`].
    pub(crate) fn text(&mut self, number: &serde_json::Number) -> Option<&str> {
        let is_f64 = number.is_f64();
        self.json(number).map(|digits| without_point_zero(is_f64, digits))
    }
}

/// Whether serde_json holds numbers as integers and floats, as it does unless its `arbitrary_precision` feature
/// is on (which a host's dependencies may turn on; the build is the same for the whole process, so checked once).
fn numbers_are_binary() -> bool {
    static BINARY: OnceLock<bool> = OnceLock::new();
    *BINARY.get_or_init(|| {
        let parsed = serde_json::from_str::<Value>("1.50");
        matches!(parsed.and_then(|value| serde_json::to_string(&value)).as_deref(), Ok("1.5"))
    })
}

/// serde_json's text of a number without the `.0` it ends a whole float with (`-0.0` → `0`).
fn without_point_zero(is_f64: bool, digits: &str) -> &str {
    match digits.strip_suffix(".0") {
        Some("-0") if is_f64 => "0",
        Some(whole) if is_f64 => whole,
        _ => digits,
    }
}

/// Writes a value as text: strings as is, numbers without a trailing `.0` (`1200.0` → `1200`, `1200.5` →
/// `1200.5`, `1e20` in serde_json's exponent form `1e+20`), booleans as `true`/`false`, null as nothing, arrays and
/// objects as compact JSON (as nothing, like null, when they nest deeper than [`MAX_VALUE_DEPTH`]).
pub(crate) fn push_text(value: &Value, out: &mut Body<'_>) -> Result<(), Full> {
    match value {
        Value::Null => Ok(()),
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match NumberText::default().text(n) {
            Some(text) => out.push_str(text),
            // Written aside by serde_json, so that a `.0` about to be cut never counts.
            None => {
                let mut digits = String::new();
                push_json(n, &mut Body::unlimited(&mut digits))?;
                out.push_str(without_point_zero(n.is_f64(), &digits))
            }
        },
        other if nests_deeper_than(other, MAX_VALUE_DEPTH) => Ok(()),
        other => push_json(other, out),
    }
}

/// A value as text (see [`push_text`]), for comparisons.
pub(crate) fn text_of(value: &Value) -> String {
    let mut out = String::new();
    // Without a limit nothing is full.
    let _ = push_text(value, &mut Body::unlimited(&mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn text(value: Value) -> String {
        text_of(&value)
    }

    #[test]
    fn text_of_values() {
        assert_eq!(text(json!("a b")), "a b");
        assert_eq!(text(json!(1200.0)), "1200");
        assert_eq!(text(json!(1200.5)), "1200.5");
        assert_eq!(text(json!(-0.0)), "0");
        assert_eq!(text(json!(9.5e15)), "9500000000000000");
        assert_eq!(text(json!(1e20)), "1e+20");
        assert_eq!(text(json!(u64::MAX)), "18446744073709551615");
        assert_eq!(text(json!(-7)), "-7");
        assert_eq!(text(json!(true)), "true");
        assert_eq!(text(json!(false)), "false");
        assert_eq!(text(Value::Null), "");
        assert_eq!(text(json!([1, 2.0, "x"])), "[1,2.0,\"x\"]");
        assert_eq!(text(json!({"b": 1, "a": null})), "{\"a\":null,\"b\":1}");
    }

    proptest! {
        #[test]
        fn floats_are_written_without_a_trailing_point_zero(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let written = text(json!(f));
            prop_assert!(!written.ends_with(".0"), "{}", written);
            prop_assert_eq!(written.parse::<f64>().ok(), Some(f));
        }

        #[test]
        fn numbers_are_written_as_serde_json_writes_them(
            number in prop_oneof![
                any::<u64>().prop_map(serde_json::Number::from),
                any::<i64>().prop_map(serde_json::Number::from),
                prop::sample::select(vec![0, 9, 10, 99, 100, u64::MAX, i64::MAX as u64])
                    .prop_map(serde_json::Number::from),
                prop::sample::select(vec![0, -1, -9, -10, i64::MIN]).prop_map(serde_json::Number::from),
                any::<f64>().prop_filter_map("finite", serde_json::Number::from_f64),
            ]
        ) {
            let written = NumberText::default().json(&number).map(str::to_owned);
            prop_assert_eq!(written, Some(serde_json::to_string(&number).unwrap()));
        }
    }

    proptest! {
        #[test]
        fn word_tests_say_exactly_whether_a_byte_matches(
            bytes in proptest::collection::vec(
                prop_oneof![any::<u8>(), Just(0x1F), Just(0x20), Just(b'"'), Just(0xEF)],
                8,
            ),
            byte in prop_oneof![any::<u8>(), Just(b'"'), Just(0xEF)],
            limit in 0..=0x80u8,
        ) {
            let word = word_at(&bytes, 0).unwrap();
            prop_assert_eq!(bytes_equal(word, byte) != 0, bytes.contains(&byte));
            prop_assert_eq!(bytes_below(word, limit) != 0, bytes.iter().any(|b| *b < limit));
            prop_assert_eq!(word_at(&bytes, 1), None);
        }
    }

    #[test]
    fn this_build_of_serde_json_holds_binary_numbers() {
        assert!(numbers_are_binary(), "built without arbitrary_precision here, so the fast path is tested");
    }

    #[test]
    fn nesting_is_measured_without_recursion() {
        assert!(!nests_deeper_than(&json!("x"), 0));
        assert!(nests_deeper_than(&json!([]), 0));
        assert!(!nests_deeper_than(&json!([[1], {"a": [2]}]), 3));
        assert!(nests_deeper_than(&json!([[1], {"a": [[2]]}]), 3));
        assert!(!nests_deeper_than(&json!([[1], {"a": [[2]]}]), 4));
        assert_eq!(text(json!([[[[1]]]])), "[[[[1]]]]");
    }

    #[test]
    fn a_body_never_passes_its_limit() {
        let mut text = String::new();
        let mut body = Body::new(&mut text, 5);
        assert_eq!(body.push_str("abc"), Ok(()));
        assert_eq!(body.push_str("def"), Err(Full));
        assert_eq!(body.push_str("é"), Ok(()));
        assert_eq!(body.push_str("x"), Err(Full));
        assert_eq!(body.remaining(), 0);
        assert_eq!(text, "abcé");
        // A number's `.0` is cut before it is counted.
        let mut text = String::new();
        assert_eq!(push_text(&json!(12.0), &mut Body::new(&mut text, 2)), Ok(()));
        assert_eq!(text, "12");
    }

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
