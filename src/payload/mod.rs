//! The payload: what a webhook sends. Its [`ContentType`], its [`Parameter`]s (each a literal [`ValueSource::Value`],
//! a record field, or a [`Template`]), and the [`Payload`] an action renders for a record.
//!
//! An action's parameter names are checked for its content type and compiled once into a tree of names (`shape`),
//! which the content type's encoder compiles into the body's writer program (`program`): all the text that does
//! not depend on the record, written and escaped ahead, between the record fields it reads. Rendering runs the
//! program for a record, parsing and looking up nothing by parameter name. It fails only when the body would pass
//! the limit it is given ([`RenderError::BodyTooLarge`]), and then stops at once: every write is checked before it
//! copies anything. The formats, one file each:
//! - JSON and JSONARRAY: an object of the parameters (in a one-element array for JSONARRAY), dotted names nesting
//!   objects and numeric segments building arrays, values keeping their JSON types;
//! - XML: the declaration and a `<record>` root element with an element per parameter, nested the same way, a
//!   numeric segment repeating its parent element, values as escaped text;
//! - FORM: `application/x-www-form-urlencoded` pairs, names verbatim.

mod content_type;
mod form;
mod json;
mod parameter;
mod program;
#[cfg(test)]
mod reference;
mod render;
mod shape;
mod template;
mod xml;

pub use content_type::ContentType;
pub use parameter::{Parameter, ValueSource};
pub(crate) use render::render;
pub use render::{Payload, RenderError};
pub(crate) use shape::{compile, NameLimit, Shape};
pub use template::{Template, TemplateError};
