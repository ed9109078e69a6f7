//! How a message quotes text from a configuration or a record: escaped to one honest line, and cut short.
//!
//! A leaf of the crate: every error message that quotes what a person wrote goes through it.

use std::fmt::Write as _;

/// How many characters of a text from the configuration or a record a message shows.
pub(crate) const SHOWN_CHARS: usize = 100;

/// How many characters of a parser's message [`ValidationError::Malformed`](crate::error::ValidationError::Malformed) shows (it quotes the offending text).
const SHOWN_MESSAGE_CHARS: usize = 300;

/// A text from the configuration as a message shows it: control characters (CR and LF included) and invisible
/// direction marks escaped as `\n`, `\r`, `\t` or `\u{..}`, so that a message stays one honest line in the host's
/// log; and at most [`SHOWN_CHARS`] characters of it, followed by `… (N bytes)` when it is longer, so that a
/// 50 MB URL does not make a 50 MB message.
pub(crate) fn shown(text: &str) -> String {
    shown_up_to(text, SHOWN_CHARS)
}

/// [`shown`] with another limit.
pub(crate) fn shown_up_to(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars) + 24);
    // `enumerate` stops at the limit: the rest of a long text is never read.
    for (count, c) in text.chars().enumerate() {
        if count == max_chars {
            let _ = write!(out, "… ({} bytes)", text.len());
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters that move or hide the text around them in a terminal or a log viewer: line and paragraph
/// separators, direction marks, embeddings, overrides and isolates, and the byte order mark.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{61C}' | '\u{200E}' | '\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A parser's message (which may quote the configuration) as [`ValidationError::Malformed`](crate::error::ValidationError::Malformed) holds it.
pub(crate) fn shown_message(message: &str) -> String {
    shown_up_to(message, SHOWN_MESSAGE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_text_is_one_short_line() {
        assert_eq!(shown("plain é 中"), "plain é 中");
        assert_eq!(
            shown("a\r\nb\tc\u{1b}[31m\u{0}\u{85}\u{202E}\u{2028}"),
            r"a\r\nb\tc\u{1b}[31m\u{0}\u{85}\u{202e}\u{2028}"
        );
        let long = "é".repeat(1000);
        let text = shown(&long);
        assert_eq!(text, format!("{}… (2000 bytes)", "é".repeat(SHOWN_CHARS)));
        assert_eq!(shown(&"x".repeat(SHOWN_CHARS)), "x".repeat(SHOWN_CHARS), "a text at the limit is whole");
    }
}
