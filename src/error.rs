//! Configuration errors: what is wrong, where, and what to do about it.

use std::fmt;

use crate::action::ContentType;

/// Where in the configuration a problem is: the workflow and, when it is in one, the action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The workflow's id (or its position in the document when it has none).
    pub workflow: Option<String>,
    /// The action's title.
    pub action: Option<String>,
}

impl Location {
    pub(crate) fn workflow(id: impl Into<String>) -> Self {
        Location { workflow: Some(id.into()), action: None }
    }

    pub(crate) fn with_action(&self, title: &str) -> Self {
        Location { workflow: self.workflow.clone(), action: Some(title.to_owned()) }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.workflow, &self.action) {
            (Some(w), Some(a)) => write!(f, "workflow \"{w}\", action \"{a}\""),
            (Some(w), None) => write!(f, "workflow \"{w}\""),
            (None, Some(a)) => write!(f, "action \"{a}\""),
            (None, None) => f.write_str("configuration"),
        }
    }
}

/// One problem found while validating a workflow or an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The seed product's limit: a workflow holds at most three webhook actions.
    #[error("{at}: has {count} webhook actions, but a workflow holds at most 3 webhook actions; move the others to another workflow")]
    TooManyActions {
        /// Where.
        at: Location,
        /// How many the workflow has.
        count: usize,
    },
    /// A required text is empty.
    #[error("{at}: \"{field}\" is empty; give it a value")]
    Empty {
        /// Where.
        at: Location,
        /// The JSON field that is empty.
        field: &'static str,
    },
    /// Two actions of one workflow have the same title; the title names the action in the log.
    #[error(
        "{at}: another action of this workflow has the same title; titles name actions in the log, make them unique"
    )]
    DuplicateActionTitle {
        /// Where.
        at: Location,
    },
    /// Two workflows of one set share an id.
    #[error("{at}: another workflow has the same id; ids must be unique")]
    DuplicateWorkflowId {
        /// Where.
        at: Location,
    },
    /// An action whose `kind` is not `webhook`.
    #[error("{at}: action kind \"{kind}\" is not supported; this crate runs \"webhook\" actions only")]
    UnsupportedActionKind {
        /// Where.
        at: Location,
        /// The kind found.
        kind: String,
    },
    /// The URL to notify is not an absolute http or https URL.
    #[error("{at}: url \"{url}\" is not an absolute http or https URL: {reason}")]
    InvalidUrl {
        /// Where.
        at: Location,
        /// The URL, with any credentials removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A Basic user name containing `:`, which Basic authentication cannot carry.
    #[error("{at}: auth.username contains ':', which HTTP Basic authentication cannot carry")]
    InvalidUsername {
        /// Where.
        at: Location,
    },
    /// The signing secret is not `whsec_` followed by base64.
    #[error("{at}: signing_secret is invalid: {reason}")]
    InvalidSigningSecret {
        /// Where.
        at: Location,
        /// What is wrong with it (never the secret itself).
        reason: String,
    },
    /// Two parameters with one name.
    #[error("{at}: parameter \"{name}\" is defined twice")]
    DuplicateParameter {
        /// Where.
        at: Location,
        /// The parameter name.
        name: String,
    },
    /// A parameter name the content type cannot carry.
    #[error("{at}: parameter name \"{name}\" cannot be sent as {content_type}: {reason}")]
    InvalidParameterName {
        /// Where.
        at: Location,
        /// The parameter name.
        name: String,
        /// The action's content type.
        content_type: ContentType,
        /// Why it cannot.
        reason: String,
    },
    /// A required parameter is not configured.
    #[error("{at}: required parameter \"{name}\" is missing; add a parameter with that name")]
    MissingRequiredParameter {
        /// Where.
        at: Location,
        /// The parameter name.
        name: String,
    },
    /// A required parameter is configured with an empty value.
    #[error("{at}: required parameter \"{name}\" is empty; give it a value, a field or a template")]
    EmptyRequiredParameter {
        /// Where.
        at: Location,
        /// The parameter name.
        name: String,
    },
    /// An entry condition that cannot be evaluated as written.
    #[error("{at}: condition on field \"{field}\" with operator \"{op}\": {reason}")]
    InvalidCondition {
        /// Where.
        at: Location,
        /// The condition's field.
        field: String,
        /// The operator.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// A schedule that can never fire or does not make sense.
    #[error("{at}: schedule is invalid: {reason}")]
    InvalidSchedule {
        /// Where.
        at: Location,
        /// What is wrong.
        reason: String,
    },
    /// The JSON of one workflow does not have the documented form.
    #[error("{at}: {message}")]
    Malformed {
        /// Where.
        at: Location,
        /// The parser's message (field names and positions).
        message: String,
    },
}

/// Loading or building configuration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The document is not JSON, or not of the documented top-level form.
    #[error("configuration is not valid JSON of the documented form: {0}")]
    Json(#[from] serde_json::Error),
    /// One or more validation problems; all of them are listed, not just the first.
    #[error("{}", join(.0))]
    Invalid(Vec<ValidationError>),
}

impl ConfigError {
    /// Every validation problem found (empty for a JSON syntax error).
    pub fn problems(&self) -> &[ValidationError] {
        match self {
            ConfigError::Invalid(problems) => problems,
            ConfigError::Json(_) => &[],
        }
    }
}

pub(crate) fn join(errors: &[ValidationError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => {
            let mut text = format!("{} problems: ", many.len());
            for (i, e) in many.iter().enumerate() {
                if i > 0 {
                    text.push_str("; ");
                }
                text.push_str(&e.to_string());
            }
            text
        }
    }
}
