//! An action's parameters checked: names present and unique, templates within their limits, required names
//! present and not empty, and the names compiled into the shape its content type writes.

use serde_json::Value;

use crate::error::{Location, ValidationError};
use crate::limits::{MAX_PARAMETERS_PER_ACTION, MAX_TEMPLATE_BYTES, MAX_TEMPLATE_PLACEHOLDERS};
use crate::payload::{self, ContentType, NameLimit, Parameter, Shape, ValueSource};
use crate::shown::shown;

/// Checks the parameters and the required names, and compiles the parameter names; `None` when they do not fit.
pub(super) fn check_parameters(
    parameters: &[Parameter],
    required: &[String],
    content_type: ContentType,
    at: &Location,
    errors: &mut Vec<ValidationError>,
) -> Option<Shape> {
    // Past the limit only the count is reported: the other problems of a million parameters would make a million
    // problems, and removing parameters is the fix anyway.
    let mut within = true;
    for (list, count) in [("parameters", parameters.len()), ("required", required.len())] {
        if count > MAX_PARAMETERS_PER_ACTION {
            errors.push(ValidationError::TooManyParameters { at: at.clone(), list, count });
            within = false;
        }
    }
    if !within {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    for parameter in parameters {
        if parameter.name.is_empty() {
            errors.push(ValidationError::Empty { at: at.clone(), field: "parameters[].name" });
        } else if !seen.insert(parameter.name.as_str()) {
            errors.push(ValidationError::DuplicateParameter { at: at.clone(), name: shown(&parameter.name) });
        }
        match &parameter.source {
            ValueSource::Field(field) if field.is_empty() => {
                errors.push(ValidationError::Empty { at: at.clone(), field: "parameters[].field" });
            }
            ValueSource::Template(template) if template.source().len() > MAX_TEMPLATE_BYTES => {
                let (name, bytes) = (shown(&parameter.name), template.source().len());
                errors.push(ValidationError::TemplateTooLong { at: at.clone(), name, bytes });
            }
            ValueSource::Template(template) if template.fields().count() > MAX_TEMPLATE_PLACEHOLDERS => {
                let (name, count) = (shown(&parameter.name), template.fields().count());
                errors.push(ValidationError::TooManyPlaceholders { at: at.clone(), name, count });
            }
            ValueSource::Value(_) | ValueSource::Field(_) | ValueSource::Template(_) => {}
        }
    }
    // The first parameter of each name, looked up once per required name rather than searched for.
    let mut by_name = std::collections::HashMap::with_capacity(parameters.len());
    for parameter in parameters {
        by_name.entry(parameter.name.as_str()).or_insert(parameter);
    }
    for name in required {
        match by_name.get(name.as_str()) {
            None => errors.push(ValidationError::MissingRequiredParameter { at: at.clone(), name: shown(name) }),
            Some(parameter) if source_is_empty(&parameter.source) => {
                errors.push(ValidationError::EmptyRequiredParameter { at: at.clone(), name: shown(name) })
            }
            Some(_) => {}
        }
    }
    match payload::compile(content_type, parameters) {
        Ok(shape) => Some(shape),
        Err(errs) => {
            errors.extend(errs.into_iter().map(|e| {
                let (at, name, content_type) = (at.clone(), shown(&e.name), content_type);
                match e.limit {
                    Some(NameLimit::Bytes(bytes)) => ValidationError::ParameterNameTooLong { at, name, bytes },
                    Some(NameLimit::Segments(segments)) => {
                        ValidationError::ParameterNameTooDeep { at, name, content_type, segments }
                    }
                    None => ValidationError::InvalidParameterName { at, name, content_type, reason: e.reason },
                }
            }));
            None
        }
    }
}

fn source_is_empty(source: &ValueSource) -> bool {
    match source {
        ValueSource::Value(Value::Null) => true,
        ValueSource::Value(Value::String(s)) => s.trim().is_empty(),
        ValueSource::Value(_) => false,
        ValueSource::Field(field) => field.trim().is_empty(),
        ValueSource::Template(template) => template.source().trim().is_empty(),
    }
}
