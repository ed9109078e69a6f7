//! Configuration errors: what is wrong, where, and what to do about it.

use std::fmt::{self, Write as _};

use crate::payload::ContentType;
use crate::shown::shown;
use crate::signature::KeyError;

/// How many problems the text of [`ConfigError::Invalid`] lists; [`ConfigError::problems`] has them all.
pub(crate) const LISTED_PROBLEMS: usize = 20;

/// Where in the configuration a problem is: the workflow and, when it is in one, the action.
///
/// The id and the title are held as messages show them (see [`ValidationError`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The workflow's id (or its position in the document when it has none).
    pub workflow: Option<String>,
    /// The action's title.
    pub action: Option<String>,
}

impl Location {
    /// The location of a workflow, its id as messages show it (see [`ValidationError`]).
    pub(crate) fn workflow(id: &str) -> Self {
        Location { workflow: Some(shown(id)), action: None }
    }

    /// The location of one of this workflow's actions, its title as messages show it.
    pub(crate) fn with_action(&self, title: &str) -> Self {
        Location { workflow: self.workflow.clone(), action: Some(shown(title)) }
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
///
/// Every text taken from the configuration (ids, titles, URLs, names, kinds) is held as the message shows it:
/// control characters escaped (`\n`, `\r`, `\u{1b}`...), and at most its first 100 characters followed by
/// `… (N bytes)`. A message is one line of bounded length, whatever the configuration holds.
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
    /// The URL to notify is longer than [`MAX_URL_BYTES`](crate::limits::MAX_URL_BYTES).
    #[error(
        "{at}: url \"{url}\" is {bytes} bytes long, but at most {max} are allowed; shorten it",
        max = crate::limits::MAX_URL_BYTES
    )]
    UrlTooLong {
        /// Where.
        at: Location,
        /// The start of the URL, with any credentials removed.
        url: String,
        /// Its length in bytes.
        bytes: usize,
    },
    /// The URL to notify has a `user:password@` part, which HTTP clients do not send and which would be stored and
    /// shown as written.
    #[error(
        "{at}: url \"{url}\" contains a user name or password, which is never sent; remove it from the url and put \
         the credentials in \"auth\": {{\"type\": \"basic\", \"username\": \"...\", \"password\": \"...\"}}"
    )]
    UrlWithCredentials {
        /// Where.
        at: Location,
        /// The URL, its credentials replaced with `[redacted]`.
        url: String,
    },
    /// A Basic user name containing `:`, which Basic authentication cannot carry.
    #[error("{at}: auth.username contains ':', which HTTP Basic authentication cannot carry")]
    InvalidUsername {
        /// Where.
        at: Location,
    },
    /// `retry_jitter_percent` above 100.
    #[error("{at}: retry_jitter_percent is {percent}; write 0 (no jitter, the default) to 100")]
    JitterTooLarge {
        /// Where.
        at: Location,
        /// What was written.
        percent: u32,
    },
    /// An `endpoint_health` setting out of range, or a pause that would come before its warning.
    #[error("{at}: endpoint_health is invalid: {reason}")]
    InvalidEndpointHealth {
        /// Where.
        at: Location,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// A `rate_limit` of zero or above its most.
    #[error("{at}: rate_limit is {limit} per {per}; write 1 to {max} per {per}, or leave rate_limit out (no limit)")]
    RateLimitOutOfRange {
        /// Where.
        at: Location,
        /// What was written.
        limit: u32,
        /// `"second"` or `"minute"`.
        per: &'static str,
        /// The most allowed.
        max: u32,
    },
    /// The signing secret is not `whsec_` followed by base64.
    #[error("{at}: signing_secret is invalid: {reason}")]
    InvalidSigningSecret {
        /// Where.
        at: Location,
        /// What is wrong with it (never the secret itself).
        reason: String,
    },
    /// One of the `signing_keys` is not a `whsec_` or `whsk_` key (or is an Ed25519 key in a build without the
    /// feature `ed25519`).
    #[error("{at}: signing_keys[{index}] is invalid: {problem}")]
    InvalidSigningKey {
        /// Where.
        at: Location,
        /// The key's position in `signing_keys`, from 0.
        index: usize,
        /// What is wrong with it (never the key itself).
        problem: KeyError,
    },
    /// More `signing_keys` than [`MAX_SIGNING_KEYS`](crate::limits::MAX_SIGNING_KEYS).
    #[error(
        "{at}: \"signing_keys\" lists {count} keys, but at most {max} sign a request; remove the expired ones",
        max = crate::limits::MAX_SIGNING_KEYS
    )]
    TooManySigningKeys {
        /// Where.
        at: Location,
        /// How many it lists.
        count: usize,
    },
    /// Every signing key has an `expires_at` (and there is no `signing_secret`): once the last one passed,
    /// requests would go out unsigned and every receiver that checks signatures would refuse them.
    #[error(
        "{at}: every key of \"signing_keys\" has an \"expires_at\", so requests would go out unsigned after the \
         last; leave \"expires_at\" off the current key"
    )]
    EverySigningKeyExpires {
        /// Where.
        at: Location,
    },
    /// A custom header (`field` is `headers`) or the API-key header (`auth.header`) that cannot be sent: not a
    /// valid header name, one the crate or the HTTP client sets, too long, or with a value HTTP cannot carry.
    #[error("{at}: {field} \"{name}\" cannot be sent: {reason}")]
    InvalidHeader {
        /// Where.
        at: Location,
        /// The JSON field: `headers` or `auth.header`.
        field: &'static str,
        /// The header's name, as messages show it.
        name: String,
        /// Why, and what to do (never the value).
        reason: String,
    },
    /// Two custom headers with one name (names compare without regard to case).
    #[error("{at}: header \"{name}\" is given twice in \"headers\"; keep one")]
    DuplicateHeader {
        /// Where.
        at: Location,
        /// The header's name, as messages show it.
        name: String,
    },
    /// More custom headers than [`MAX_HEADERS_PER_ACTION`](crate::limits::MAX_HEADERS_PER_ACTION).
    #[error(
        "{at}: \"headers\" lists {count} headers, but an action adds at most {max}",
        max = crate::limits::MAX_HEADERS_PER_ACTION
    )]
    TooManyHeaders {
        /// Where.
        at: Location,
        /// How many it lists.
        count: usize,
    },
    /// A bearer token or API key that cannot be sent in a header. The message never contains it.
    #[error("{at}: {field} cannot be sent in a header: {reason}")]
    InvalidAuthValue {
        /// Where.
        at: Location,
        /// The JSON field: `auth.token` or `auth.value`.
        field: &'static str,
        /// Why, and what to do.
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
    /// An action with more than [`MAX_PARAMETERS_PER_ACTION`](crate::limits::MAX_PARAMETERS_PER_ACTION) parameters or
    /// required names. The parameters themselves are not checked further.
    #[error(
        "{at}: \"{list}\" lists {count} parameters, but an action has at most {max}; move some to another action",
        max = crate::limits::MAX_PARAMETERS_PER_ACTION
    )]
    TooManyParameters {
        /// Where.
        at: Location,
        /// The JSON field: `parameters` or `required`.
        list: &'static str,
        /// How many it lists.
        count: usize,
    },
    /// A template longer than [`MAX_TEMPLATE_BYTES`](crate::limits::MAX_TEMPLATE_BYTES).
    #[error(
        "{at}: the template of parameter \"{name}\" is {bytes} bytes long, but at most {max} are allowed; shorten it",
        max = crate::limits::MAX_TEMPLATE_BYTES
    )]
    TemplateTooLong {
        /// Where.
        at: Location,
        /// The parameter name.
        name: String,
        /// The template's length in bytes.
        bytes: usize,
    },
    /// A template with more than [`MAX_TEMPLATE_PLACEHOLDERS`](crate::limits::MAX_TEMPLATE_PLACEHOLDERS) placeholders.
    #[error(
        "{at}: the template of parameter \"{name}\" has {count} placeholders, but at most {max} are allowed; split \
         it into several parameters",
        max = crate::limits::MAX_TEMPLATE_PLACEHOLDERS
    )]
    TooManyPlaceholders {
        /// Where.
        at: Location,
        /// The parameter name.
        name: String,
        /// How many placeholders it has.
        count: usize,
    },
    /// A parameter name longer than [`MAX_PARAMETER_NAME_BYTES`](crate::limits::MAX_PARAMETER_NAME_BYTES).
    #[error(
        "{at}: parameter name \"{name}\" is {bytes} bytes long, but at most {max} are allowed; shorten it",
        max = crate::limits::MAX_PARAMETER_NAME_BYTES
    )]
    ParameterNameTooLong {
        /// Where.
        at: Location,
        /// The start of the parameter name.
        name: String,
        /// Its length in bytes.
        bytes: usize,
    },
    /// A dotted parameter name of more segments than
    /// [`MAX_PARAMETER_NAME_SEGMENTS`](crate::limits::MAX_PARAMETER_NAME_SEGMENTS) (JSON, JSONARRAY and XML only).
    #[error(
        "{at}: parameter name \"{name}\" has {segments} dotted parts, but {content_type} bodies nest at most {max} \
         deep; use fewer dots",
        max = crate::limits::MAX_PARAMETER_NAME_SEGMENTS
    )]
    ParameterNameTooDeep {
        /// Where.
        at: Location,
        /// The parameter name.
        name: String,
        /// The action's content type.
        content_type: ContentType,
        /// How many dotted segments it has.
        segments: usize,
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
    /// `timeout_seconds` is 0 or above [`MAX_ACTION_TIMEOUT_SECS`](crate::limits::MAX_ACTION_TIMEOUT_SECS).
    #[error(
        "{at}: timeout_seconds is {seconds}; write 1 to {max}, or leave it out to use the HTTP client's timeout",
        max = crate::limits::MAX_ACTION_TIMEOUT_SECS
    )]
    InvalidTimeout {
        /// Where.
        at: Location,
        /// What was written.
        seconds: u64,
    },
    /// More `tls.ca_certificates` entries than [`MAX_TLS_CA_CERTIFICATES`](crate::limits::MAX_TLS_CA_CERTIFICATES).
    #[error(
        "{at}: \"tls.ca_certificates\" lists {count} entries, but at most {max} are allowed; put several \
         certificates in one PEM bundle",
        max = crate::limits::MAX_TLS_CA_CERTIFICATES
    )]
    TooManyCaCertificates {
        /// Where.
        at: Location,
        /// How many it lists.
        count: usize,
    },
    /// A file named in `"tls"` cannot be read (missing, not permitted, too large, not text).
    #[error(
        "{at}: {field} names the file \"{path}\", which cannot be read: {reason}; check the path and its permissions"
    )]
    TlsFileUnreadable {
        /// Where.
        at: Location,
        /// The JSON field, such as `tls.ca_certificates[0]` or `tls.client_certificate.key`.
        field: String,
        /// The path, as messages show it.
        path: String,
        /// Why (never the file's content).
        reason: String,
    },
    /// A `"tls"` certificate entry that is not PEM of one or more X.509 certificates.
    #[error("{at}: {field} is not a usable certificate: {reason}")]
    InvalidTlsCertificate {
        /// Where.
        at: Location,
        /// The JSON field, such as `tls.ca_certificates[0]` or `tls.client_certificate.certificate`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The client certificate's key is not one unencrypted private key of a supported type that belongs to the
    /// certificate. The message never contains the key.
    #[error("{at}: tls.client_certificate.key is not a usable private key: {reason}")]
    InvalidTlsKey {
        /// Where.
        at: Location,
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// The JSON of one workflow does not have the documented form.
    #[error("{at}: {message}")]
    Malformed {
        /// Where.
        at: Location,
        /// The parser's message (field names and positions), at most its first 300 characters.
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

/// The problems as one text: all of them, or the first [`LISTED_PROBLEMS`] and how many more, so that a document
/// of a million bad parameters does not make a message of a million sentences.
pub(crate) fn join(errors: &[ValidationError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => {
            let mut text = format!("{} problems: ", many.len());
            for (i, e) in many.iter().take(LISTED_PROBLEMS).enumerate() {
                if i > 0 {
                    text.push_str("; ");
                }
                text.push_str(&e.to_string());
            }
            if let Some(more) = many.len().checked_sub(LISTED_PROBLEMS).filter(|more| *more > 0) {
                let _ = write!(text, "; and {more} more");
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_of_problems_are_cut() {
        let problem = ValidationError::Empty { at: Location::workflow("w"), field: "id" };
        let text = join(&vec![problem; 1000]);
        assert!(text.starts_with("1000 problems: workflow \"w\": \"id\" is empty"), "{text}");
        assert!(text.ends_with("; and 980 more"), "{text}");
        assert_eq!(text.matches("is empty").count(), LISTED_PROBLEMS);
    }
}
