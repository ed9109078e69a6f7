//! The content types a webhook's body can have.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The format of the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContentType {
    /// `application/xml`: one root element with an element per parameter.
    #[serde(rename = "XML")]
    Xml,
    /// `application/json`: an object of the parameters.
    #[serde(rename = "JSON")]
    Json,
    /// `application/json`: the same object as the single element of an array.
    #[serde(rename = "JSONARRAY")]
    JsonArray,
    /// `application/x-www-form-urlencoded`: one pair per parameter.
    #[serde(rename = "FORM")]
    Form,
}

impl ContentType {
    /// The `Content-Type` header value this content type is sent with.
    pub fn header_value(self) -> &'static str {
        match self {
            ContentType::Xml => "application/xml; charset=utf-8",
            ContentType::Json | ContentType::JsonArray => "application/json",
            ContentType::Form => "application/x-www-form-urlencoded; charset=utf-8",
        }
    }

    /// The name used in configuration: `XML`, `JSON`, `JSONARRAY` or `FORM`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Xml => "XML",
            ContentType::Json => "JSON",
            ContentType::JsonArray => "JSONARRAY",
            ContentType::Form => "FORM",
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
