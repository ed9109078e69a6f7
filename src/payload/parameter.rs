//! Parameters: the name → value pairs a body carries, and where each value comes from.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::template::{Template, TemplateError};
use crate::record::Fields;
use crate::shown::shown;

/// Where a parameter's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSource {
    /// A literal JSON value, sent as written.
    Value(Value),
    /// The value of a record field (null, or empty text, when the record lacks it).
    Field(String),
    /// Text with `${field}` or `$field` placeholders.
    Template(Template),
}

/// One name → value pair sent to the receiver.
///
/// JSON: `{"name": "public_id", "value": "ACME-42"}`, `{"name": "amount", "field": "amount"}` or
/// `{"name": "summary", "template": "Deal ${potentialname} won"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// The name at the receiver. In JSON, JSONARRAY and XML a dotted name (`customer.name`) nests and a
    /// numeric segment (`lines.0.sku`) builds an array; FORM sends names verbatim.
    pub name: String,
    /// Where the value comes from.
    pub source: ValueSource,
}

impl Parameter {
    /// A parameter with a literal value.
    pub fn value(name: impl Into<String>, value: impl Into<Value>) -> Self {
        Parameter { name: name.into(), source: ValueSource::Value(value.into()) }
    }

    /// A parameter taken from a record field.
    pub fn field(name: impl Into<String>, field: impl Into<String>) -> Self {
        Parameter { name: name.into(), source: ValueSource::Field(field.into()) }
    }

    /// A parameter rendered from a template such as `"Deal ${potentialname} won"`.
    pub fn template(name: impl Into<String>, template: &str) -> Result<Self, TemplateError> {
        Ok(Parameter { name: name.into(), source: ValueSource::Template(Template::parse(template)?) })
    }

    /// The value this parameter takes for a record.
    pub fn resolve(&self, fields: &Fields) -> Value {
        match &self.source {
            ValueSource::Value(value) => value.clone(),
            ValueSource::Field(field) => fields.get(field).cloned().unwrap_or(Value::Null),
            ValueSource::Template(template) => Value::String(template.fill(fields)),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameter {
    name: String,
    // `Some(Value::Null)` for an explicit `"value": null`, `None` when the key is absent.
    #[serde(default, deserialize_with = "present")]
    value: Option<Value>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    template: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl<'de> Deserialize<'de> for Parameter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = RawParameter::deserialize(deserializer)?;
        let source = match (raw.value, raw.field, raw.template) {
            (Some(value), None, None) => ValueSource::Value(value),
            (None, Some(field), None) => ValueSource::Field(field),
            (None, None, Some(template)) => ValueSource::Template(
                Template::parse(&template)
                    .map_err(|e| D::Error::custom(format!("parameter \"{}\": {e}", shown(&raw.name))))?,
            ),
            _ => {
                return Err(D::Error::custom(format!(
                    "parameter \"{}\" must have exactly one of \"value\", \"field\" or \"template\"",
                    shown(&raw.name)
                )))
            }
        };
        Ok(Parameter { name: raw.name, source })
    }
}

impl Serialize for Parameter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("name", &self.name)?;
        match &self.source {
            ValueSource::Value(value) => map.serialize_entry("value", value)?,
            ValueSource::Field(field) => map.serialize_entry("field", field)?,
            ValueSource::Template(template) => map.serialize_entry("template", template.source())?,
        }
        map.end()
    }
}
