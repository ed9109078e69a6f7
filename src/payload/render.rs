//! Rendering a record's body: the [`Payload`] and the one function that runs the action's compiled program.

use std::fmt;

use bytes::Bytes;

use super::content_type::ContentType;
use super::parameter::Parameter;
use super::shape::{compile, Shape};
use crate::record::Fields;
use crate::value::{Body, Full};

/// Why [`WebhookAction::try_render`](crate::WebhookAction::try_render) wrote no body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The body would be longer than the limit; rendering stopped as soon as it passed it.
    #[error(
        "the body of \"{action}\" would exceed {limit} bytes; shorten the template or raise \
         EngineBuilder::max_body_bytes"
    )]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
        /// The action's title (as messages show it: see [`ValidationError`](crate::error::ValidationError)).
        action: String,
    },
}

/// An encoded request body and its `Content-Type`.
///
/// The body is UTF-8 text, held once: [`Payload::body`] shares it, [`Payload::body_text`] reads it as text.
#[derive(Clone)]
pub struct Payload {
    content_type: ContentType,
    body: Bytes,
}

impl Payload {
    /// A payload of a content type with this body.
    pub(crate) fn new(content_type: ContentType, body: String) -> Self {
        Payload { content_type, body: Bytes::from(body) }
    }

    /// The content type the body is encoded as.
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }
    /// The `Content-Type` header value.
    pub fn content_type_header(&self) -> &'static str {
        self.content_type.header_value()
    }
    /// The body bytes (shared, cheap to clone).
    pub fn body(&self) -> &Bytes {
        &self.body
    }
    /// The body as text (every encoder writes UTF-8).
    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or_default()
    }
    /// Takes the body.
    pub fn into_body(self) -> Bytes {
        self.body
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.content_type == other.content_type && self.body == other.body
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload").field("content_type", &self.content_type).field("body", &self.body_text()).finish()
    }
}

/// Encodes the parameters of a record as a body of `content_type`, by running the program compiled for it;
/// stops with [`Full`] as soon as the body would pass `limit` bytes.
///
/// A shape compiled for another content type (which the crate never passes) is compiled again here; if the names
/// do not fit, the body is that of an action without parameters.
pub(crate) fn render(
    content_type: ContentType,
    shape: &Shape,
    parameters: &[Parameter],
    fields: &Fields,
    limit: usize,
) -> Result<Payload, Full> {
    let recompiled;
    let shape = if shape.content_type == content_type {
        shape
    } else {
        recompiled = compile(content_type, parameters).unwrap_or_else(|_| Shape::empty(content_type));
        &recompiled
    };
    let mut text = String::with_capacity(shape.program.expected_len().min(limit));
    shape.program.run(fields, &mut Body::new(&mut text, limit))?;
    Ok(Payload::new(content_type, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_body_and_text_agree() {
        let payload = Payload::new(ContentType::Json, "{\"é\":1}".into());
        assert_eq!(payload.body_text(), "{\"é\":1}");
        assert_eq!(payload.body().as_ref(), "{\"é\":1}".as_bytes());
        assert_eq!(payload.content_type_header(), "application/json");
        assert_eq!(payload.clone(), payload);
        assert_eq!(payload.into_body(), Bytes::from_static("{\"é\":1}".as_bytes()));
    }

    #[test]
    fn a_shape_of_another_content_type_is_compiled_again() {
        let parameters = [Parameter::value("a.b", 1)];
        let form = compile(ContentType::Form, &parameters).unwrap();
        let payload = render(ContentType::Json, &form, &parameters, &Fields::new(), usize::MAX).unwrap();
        assert_eq!(payload.body_text(), "{\"a\":{\"b\":1}}");
        let bad = [Parameter::value("a..b", 1)];
        let form = compile(ContentType::Form, &bad).unwrap();
        assert_eq!(
            render(ContentType::Xml, &form, &bad, &Fields::new(), usize::MAX).unwrap().body_text(),
            format!("{}<record></record>", super::super::xml::DECLARATION)
        );
    }
}
