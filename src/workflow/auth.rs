//! What an action adds to its requests besides the body: [`Auth`], custom static headers and signing keys, and
//! the checks that keep them to what HTTP, the receiver and the crate's own headers allow.

use std::fmt;

use http::header::{HeaderName, HeaderValue};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Location, ValidationError};
use crate::limits::{
    MAX_AUTH_VALUE_BYTES, MAX_HEADERS_PER_ACTION, MAX_HEADER_NAME_BYTES, MAX_HEADER_VALUE_BYTES, MAX_SIGNING_KEYS,
};
use crate::secret::Secret;
use crate::shown::shown;
use crate::signature::{self, SigningKey};

/// How the webhook authenticates to the receiver. Every secret is a [`Secret`]: the header is built at send time
/// and is never stored, logged or shown (a receiver echoing it back has it replaced by `[redacted]` in the log).
///
/// JSON: `{"type": "none"}`, `{"type": "basic", "username": "api", "password": "s3cret"}`,
/// `{"type": "bearer", "token": "..."}` (`Authorization: Bearer ...`) or
/// `{"type": "api_key", "header": "X-Api-Key", "value": "..."}` (the key in a header of that name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Auth {
    /// No authentication.
    #[default]
    None,
    /// HTTP Basic authentication.
    Basic {
        /// The third-party account's user name.
        username: String,
        /// The third-party account's password.
        password: Secret,
    },
    /// A bearer token: `Authorization: Bearer <token>`.
    Bearer {
        /// The token, as the receiver issued it.
        token: Secret,
    },
    /// An API key in a header of its own, such as `X-Api-Key: <value>`.
    ApiKey {
        /// The header's name: a valid HTTP header name, not one the crate or the HTTP client sets.
        header: String,
        /// The key.
        value: Secret,
    },
}

/// An action's custom static headers: JSON `{"X-Tenant": "acme"}` or `[["X-Tenant", "acme"]]`, written back as
/// an object. A validated action holds them sorted by name (as a JSON object read into a `serde_json::Value`
/// holds its keys), so that the object form loads back equal; the order of different header names carries no
/// meaning in HTTP (RFC 9110, section 5.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers(pub(crate) Vec<(String, String)>);

impl Headers {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same headers, sorted by name.
    pub(crate) fn sorted(mut self) -> Self {
        self.0.sort();
        self
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;

        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = Headers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header names and values, or a list of [name, value] pairs")
            }

            // Entries are kept as written, repeated names too: the checks report a repeat rather than a parser
            // keeping one of them silently.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut headers = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    headers.push(entry);
                }
                Ok(Headers(headers))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Headers, A::Error> {
                let mut headers = Vec::new();
                while let Some(entry) = seq.next_element::<(String, String)>()? {
                    headers.push(entry);
                }
                Ok(Headers(headers))
            }
        }

        deserializer.deserialize_any(HeadersVisitor)
    }
}

/// Why a header name cannot be a custom header or the API-key header: the crate or the HTTP client sets it, or
/// it concerns only one connection (hop-by-hop). `None` when it may be.
fn reserved(name: &HeaderName) -> Option<&'static str> {
    let name = name.as_str();
    match name {
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade" => {
            Some("it is a hop-by-hop header, which the HTTP client manages")
        }
        _ if name.starts_with("proxy-") => Some("it is a hop-by-hop header, which the HTTP client manages"),
        "host" => Some("the host comes from \"url\""),
        "content-length" => Some("the HTTP client sets it from the body"),
        "content-type" => Some("it comes from \"content_type\""),
        "content-encoding" => Some("the body is sent as it is, without a content encoding"),
        "authorization" => Some(
            "it carries \"auth\"; use {\"type\": \"bearer\", \"token\": ...} or {\"type\": \"api_key\", \"header\": \
             ..., \"value\": ...}",
        ),
        _ if name.starts_with("webhook-") => {
            Some("the webhook-* headers are the Standard Webhooks id, timestamp and signature, set by the crate")
        }
        _ => None,
    }
}

/// Checks a header name: a valid HTTP token, not too long, not reserved. The parsed name when it may be sent.
fn check_name(name: &str, field: &'static str, at: &Location, errors: &mut Vec<ValidationError>) -> Option<HeaderName> {
    let problem = |reason: String| ValidationError::InvalidHeader { at: at.clone(), field, name: shown(name), reason };
    if name.len() > MAX_HEADER_NAME_BYTES {
        let reason = format!("its name is {} bytes long, but at most {MAX_HEADER_NAME_BYTES} are allowed", name.len());
        errors.push(problem(reason));
        return None;
    }
    let Ok(parsed) = HeaderName::from_bytes(name.as_bytes()) else {
        let reason = "it is not a valid header name (letters, digits and !#$%&'*+-.^_`|~, without spaces or colons)";
        errors.push(problem(reason.to_owned()));
        return None;
    };
    if let Some(reason) = reserved(&parsed) {
        errors.push(problem(reason.to_owned()));
        return None;
    }
    Some(parsed)
}

/// Why a value cannot be sent in a header, or `None`. Never quotes the value.
fn value_problem(value: &str, max: usize) -> Option<String> {
    if value.len() > max {
        return Some(format!("it is {} bytes long, but at most {max} are allowed", value.len()));
    }
    // `http` takes bytes past ASCII (obs-text), but receivers read them as they like: only ASCII is sent.
    if !value.is_ascii() || HeaderValue::from_str(value).is_err() {
        return Some(
            "it holds a character a header cannot carry (a line break, another control character, or text other \
             than ASCII)"
                .to_owned(),
        );
    }
    if value.trim() != value {
        return Some("it starts or ends with a space or a tab, which receivers strip".to_owned());
    }
    None
}

/// Checks the authentication: a Basic user name Basic can carry, a token or key a header can carry, an API-key
/// header name that is valid and not reserved.
pub(crate) fn check_auth(auth: &Auth, at: &Location, errors: &mut Vec<ValidationError>) {
    let mut check_value = |field: &'static str, value: &Secret| {
        if value.is_empty() {
            errors.push(ValidationError::Empty { at: at.clone(), field });
        } else if let Some(reason) = value_problem(value.expose(), MAX_AUTH_VALUE_BYTES) {
            errors.push(ValidationError::InvalidAuthValue { at: at.clone(), field, reason });
        }
    };
    match auth {
        Auth::None => {}
        Auth::Basic { username, .. } => {
            if username.is_empty() {
                errors.push(ValidationError::Empty { at: at.clone(), field: "auth.username" });
            }
            if username.contains(':') {
                errors.push(ValidationError::InvalidUsername { at: at.clone() });
            }
        }
        Auth::Bearer { token } => check_value("auth.token", token),
        Auth::ApiKey { header, value } => {
            check_value("auth.value", value);
            if header.is_empty() {
                errors.push(ValidationError::Empty { at: at.clone(), field: "auth.header" });
            } else {
                check_name(header, "auth.header", at, errors);
            }
        }
    }
}

/// Checks the custom headers: at most [`MAX_HEADERS_PER_ACTION`], each a valid name that is not reserved, not the
/// API-key header and not repeated, with a value a header can carry.
pub(crate) fn check_headers(headers: &Headers, auth: &Auth, at: &Location, errors: &mut Vec<ValidationError>) {
    if headers.0.len() > MAX_HEADERS_PER_ACTION {
        errors.push(ValidationError::TooManyHeaders { at: at.clone(), count: headers.0.len() });
        return;
    }
    let api_key_header = match auth {
        Auth::ApiKey { header, .. } => HeaderName::from_bytes(header.as_bytes()).ok(),
        _ => None,
    };
    let mut seen = std::collections::HashSet::new();
    for (name, value) in &headers.0 {
        let Some(parsed) = check_name(name, "headers", at, errors) else { continue };
        if api_key_header.as_ref() == Some(&parsed) {
            let reason = "it is the header \"auth\" puts the API key in".to_owned();
            errors.push(ValidationError::InvalidHeader { at: at.clone(), field: "headers", name: shown(name), reason });
        } else if !seen.insert(parsed) {
            errors.push(ValidationError::DuplicateHeader { at: at.clone(), name: shown(name) });
        }
        if value.is_empty() {
            let reason = "its value is empty; give it one or remove the header".to_owned();
            errors.push(ValidationError::InvalidHeader { at: at.clone(), field: "headers", name: shown(name), reason });
        } else if let Some(reason) = value_problem(value, MAX_HEADER_VALUE_BYTES) {
            let reason = format!("its value: {reason}");
            errors.push(ValidationError::InvalidHeader { at: at.clone(), field: "headers", name: shown(name), reason });
        }
    }
}

/// Checks the signing keys: at most [`MAX_SIGNING_KEYS`], each a `whsec_` or `whsk_` key this build can sign
/// with, and one of them (or the `signing_secret`) without an expiry.
pub(crate) fn check_signing_keys(
    keys: &[SigningKey],
    signing_secret: Option<&Secret>,
    at: &Location,
    errors: &mut Vec<ValidationError>,
) {
    if let Some(secret) = signing_secret {
        if let Err(problem) = signature::decode_secret(secret) {
            let reason = if secret.expose().starts_with(signature::SECRET_KEY_PREFIX) {
                "an Ed25519 \"whsk_\" key goes in \"signing_keys\": [{\"secret\": \"whsk_...\"}]".to_owned()
            } else {
                problem.to_string()
            };
            errors.push(ValidationError::InvalidSigningSecret { at: at.clone(), reason });
        }
    }
    if keys.len() > MAX_SIGNING_KEYS {
        errors.push(ValidationError::TooManySigningKeys { at: at.clone(), count: keys.len() });
        return;
    }
    for (index, key) in keys.iter().enumerate() {
        if let Err(problem) = signature::signer(key.secret()) {
            errors.push(ValidationError::InvalidSigningKey { at: at.clone(), index, problem });
        }
    }
    if signing_secret.is_none() && !keys.is_empty() && keys.iter().all(|key| key.expires_at().is_some()) {
        errors.push(ValidationError::EverySigningKeyExpires { at: at.clone() });
    }
}
