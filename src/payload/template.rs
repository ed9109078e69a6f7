//! `${field}` templates: parsed once when the action is built, filled in for each record.

use std::fmt;

use crate::record::Fields;
use crate::value::{push_text, Body, Full};

/// A parameter template, compiled once: `${field}` and `$field` insert a record field, `$$` writes `$`.
///
/// A `$` not followed by `{`, `$` or a letter, digit or `_` is written as is. Field values are written as text:
/// numbers without a trailing `.0`, booleans as `true`/`false`, a missing field or null as nothing.
///
/// ```
/// use crm_webhooks::payload::Template;
/// let template = Template::parse("Deal ${potentialname} won: $amount USD").unwrap();
/// let fields = serde_json::json!({"potentialname": "Big deal", "amount": 1200.0});
/// assert_eq!(template.fill(fields.as_object().unwrap()), "Deal Big deal won: 1200 USD");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Literal(String),
    Field(String),
}

/// A piece of a template: literal text, or the record field whose text goes in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece<'a> {
    Text(&'a str),
    Field(&'a str),
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `${` without its closing `}`.
    #[error("unclosed placeholder \"${{\" at byte {at}: close it with \"}}\" or write \"$$\" for a literal \"$\"")]
    Unclosed {
        /// Byte offset of the `$`.
        at: usize,
    },
    /// `${}`.
    #[error("empty placeholder \"${{}}\" at byte {at}: put a field name between the braces")]
    Empty {
        /// Byte offset of the `$`.
        at: usize,
    },
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Template {
    /// Parses a template.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            let at = offset + dollar;
            let after = &rest[dollar + 1..];
            let consumed;
            if let Some(braced) = after.strip_prefix('{') {
                let close = braced.find('}').ok_or(TemplateError::Unclosed { at })?;
                let name = braced[..close].trim();
                if name.is_empty() {
                    return Err(TemplateError::Empty { at });
                }
                push_field(&mut parts, &mut literal, name);
                consumed = 1 + 1 + close + 1;
            } else if after.starts_with('$') {
                literal.push('$');
                consumed = 2;
            } else {
                let len: usize = after.chars().take_while(|c| is_name_char(*c)).map(char::len_utf8).sum();
                if len == 0 {
                    literal.push('$');
                } else {
                    push_field(&mut parts, &mut literal, &after[..len]);
                }
                consumed = 1 + len;
            }
            rest = &rest[dollar + consumed..];
            offset += dollar + consumed;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        Ok(Template { source: source.to_owned(), parts })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The record fields the template reads, in order of appearance.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            TemplatePart::Field(name) => Some(name.as_str()),
            TemplatePart::Literal(_) => None,
        })
    }

    /// The template in order: its literal text and the fields it inserts, for compiling it into a body.
    pub(super) fn pieces(&self) -> impl Iterator<Item = Piece<'_>> {
        self.parts.iter().map(|part| match part {
            TemplatePart::Literal(text) => Piece::Text(text),
            TemplatePart::Field(name) => Piece::Field(name),
        })
    }

    /// Fills in the template for a record.
    pub fn fill(&self, fields: &Fields) -> String {
        let mut out = String::with_capacity(self.source.len());
        // Without a limit nothing is full.
        let _ = self.fill_into(fields, &mut Body::unlimited(&mut out));
        out
    }

    /// Fills in the template for a record into a body, stopping as soon as it is full.
    pub(crate) fn fill_into(&self, fields: &Fields, out: &mut Body<'_>) -> Result<(), Full> {
        for part in &self.parts {
            match part {
                TemplatePart::Literal(text) => out.push_str(text)?,
                TemplatePart::Field(name) => {
                    if let Some(value) = fields.get(name) {
                        push_text(value, out)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn push_field(parts: &mut Vec<TemplatePart>, literal: &mut String, name: &str) {
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(std::mem::take(literal)));
    }
    parts.push(TemplatePart::Field(name.to_owned()));
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_both_placeholder_forms() {
        let t = Template::parse("a ${x} $y_1-$$ $ ${ z }").unwrap();
        let fields = serde_json::json!({"x": 1.0, "y_1": true, "z": "Z"});
        assert_eq!(t.fill(fields.as_object().unwrap()), "a 1 true-$ $ Z");
        assert_eq!(t.fields().collect::<Vec<_>>(), ["x", "y_1", "z"]);
        assert_eq!(Template::parse("x ${oops").unwrap_err(), TemplateError::Unclosed { at: 2 });
        assert_eq!(Template::parse("${}").unwrap_err(), TemplateError::Empty { at: 0 });
    }

    #[test]
    fn missing_fields_fill_in_as_nothing() {
        let t = Template::parse("[$missing]").unwrap();
        assert_eq!(t.fill(&Fields::new()), "[]");
    }
}
