//! The webhook action: where a workflow sends a record, how, and with which parameters.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::auth::{check_auth, check_headers, check_signing_keys, Auth, Headers};
use super::parameters::check_parameters;
use super::policy::{HealthPolicy, RateLimit};
use super::tls::{check_tls, RawTls, TlsSettings};
use super::url::{check_url, shown_url, UrlProblem};
use crate::error::{Location, ValidationError};
use crate::limits::MAX_ACTION_TIMEOUT_SECS;
use crate::payload::{self, ContentType, Parameter, Payload, RenderError, Shape};
use crate::record::Fields;
use crate::secret::Secret;
use crate::shown::shown;
use crate::signature::SigningKey;
use crate::value::Full;

/// The HTTP method of a webhook: `POST` creates a record at the receiver, `PUT` updates one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// `POST`: create a record in the third-party application.
    #[serde(rename = "POST")]
    Post,
    /// `PUT`: update a record in the third-party application.
    #[serde(rename = "PUT")]
    Put,
}

impl Method {
    /// The `http` crate's method.
    pub fn as_http(self) -> http::Method {
        match self {
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
        }
    }

    /// `"POST"` or `"PUT"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A webhook action, validated: its URL is absolute http(s), without credentials and at most [`MAX_URL_BYTES`](crate::limits::MAX_URL_BYTES)
/// long, its parameter names fit its content type, its required parameters are present and not empty, and it keeps
/// to the limits on size ([`MAX_PARAMETERS_PER_ACTION`](crate::limits::MAX_PARAMETERS_PER_ACTION), [`MAX_PARAMETER_NAME_BYTES`](crate::limits::MAX_PARAMETER_NAME_BYTES),
/// [`MAX_PARAMETER_NAME_SEGMENTS`](crate::limits::MAX_PARAMETER_NAME_SEGMENTS), [`MAX_TEMPLATE_BYTES`](crate::limits::MAX_TEMPLATE_BYTES), [`MAX_TEMPLATE_PLACEHOLDERS`](crate::limits::MAX_TEMPLATE_PLACEHOLDERS)), its
/// authentication, custom headers and signing keys can be sent (see [`Auth`], [`WebhookAction::headers`] and
/// [`WebhookAction::signing_keys`]). Every way of making one (the builder, deserializing it, loading a
/// [`WorkflowSet`](crate::WorkflowSet)) checks all of that.
///
/// Build one with [`WebhookAction::builder`] or deserialize it from its JSON form (`kind` is optional and must be
/// `"webhook"`):
/// ```
/// use crm_webhooks::WebhookAction;
/// use crm_webhooks::payload::ContentType;
/// let action: WebhookAction = serde_json::from_str(r#"{
///   "kind": "webhook", "title": "Create invoice", "url": "https://accounting.example.com/invoices",
///   "method": "POST", "content_type": "JSON", "auth": {"type": "none"},
///   "parameters": [{"name": "public_id", "value": "ACME-42"}, {"name": "amount", "field": "amount"}],
///   "required": ["public_id"]
/// }"#).unwrap();
/// assert_eq!(action.content_type(), ContentType::Json);
/// ```
#[derive(Clone)]
pub struct WebhookAction {
    title: String,
    description: String,
    url: String,
    uri: http::Uri,
    method: Method,
    content_type: ContentType,
    auth: Auth,
    parameters: Vec<Parameter>,
    required: Vec<String>,
    signing_secret: Option<Secret>,
    signing_keys: Vec<SigningKey>,
    headers: Headers,
    ordered: bool,
    retry_jitter_percent: u8,
    // Delivery policy: the receiver's health and rate limit.
    endpoint_health: HealthPolicy,
    rate_limit: Option<RateLimit>,
    // Delivery policy: the request's own timeout and TLS.
    timeout: Option<Duration>,
    tls: Option<Arc<TlsSettings>>,
    shape: Shape,
}

impl fmt::Debug for WebhookAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookAction")
            .field("title", &self.title)
            .field("url", &self.url)
            .field("method", &self.method)
            .field("content_type", &self.content_type)
            .field("auth", &self.auth)
            .field("parameters", &self.parameters)
            .field("required", &self.required)
            .field("signing_secret", &self.signing_secret)
            .field("signing_keys", &self.signing_keys)
            .field("headers", &self.headers.0)
            .field("ordered", &self.ordered)
            .field("endpoint_health", &self.endpoint_health)
            .field("rate_limit", &self.rate_limit)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl PartialEq for WebhookAction {
    fn eq(&self, other: &Self) -> bool {
        self.title == other.title
            && self.description == other.description
            && self.url == other.url
            && self.method == other.method
            && self.content_type == other.content_type
            && self.auth == other.auth
            && self.parameters == other.parameters
            && self.required == other.required
            && self.signing_secret == other.signing_secret
            && self.signing_keys == other.signing_keys
            && self.headers == other.headers
            && self.ordered == other.ordered
            && self.retry_jitter_percent == other.retry_jitter_percent
            && self.endpoint_health == other.endpoint_health
            && self.rate_limit == other.rate_limit
            && self.timeout == other.timeout
            && self.tls == other.tls
    }
}

/// The serde form of [`WebhookAction`], before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAction {
    #[serde(default = "webhook_kind")]
    pub(super) kind: String,
    pub(crate) title: String,
    #[serde(default)]
    pub(super) description: String,
    pub(super) url: String,
    #[serde(default = "default_method")]
    pub(super) method: Method,
    pub(super) content_type: ContentType,
    #[serde(default)]
    pub(super) auth: Auth,
    #[serde(default)]
    pub(super) parameters: Vec<Parameter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) required: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) signing_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) signing_keys: Vec<SigningKey>,
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    pub(super) headers: Headers,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) ordered: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) retry_jitter_percent: u32,
    #[serde(default, skip_serializing_if = "is_default_health")]
    pub(super) endpoint_health: HealthPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rate_limit: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tls: Option<RawTls>,
}

impl RawAction {
    /// An action's form with nothing but its title, URL and content type (what [`WebhookAction::builder`] starts
    /// from).
    pub(super) fn new(title: String, url: String, content_type: ContentType) -> Self {
        RawAction {
            kind: webhook_kind(),
            title,
            description: String::new(),
            url,
            method: Method::Post,
            content_type,
            auth: Auth::None,
            parameters: Vec::new(),
            required: Vec::new(),
            signing_secret: None,
            signing_keys: Vec::new(),
            headers: Headers::default(),
            ordered: false,
            retry_jitter_percent: 0,
            endpoint_health: HealthPolicy::default(),
            rate_limit: None,
            timeout_seconds: None,
            tls: None,
        }
    }
}

fn is_default_health(policy: &HealthPolicy) -> bool {
    *policy == HealthPolicy::default()
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn webhook_kind() -> String {
    "webhook".to_owned()
}

fn default_method() -> Method {
    Method::Post
}

impl WebhookAction {
    /// The action's title; it names the action in the delivery log and is unique within its workflow.
    pub fn title(&self) -> &str {
        &self.title
    }
    /// The free-text description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The URL to notify, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }
    /// The URL to notify, parsed.
    pub fn uri(&self) -> &http::Uri {
        &self.uri
    }
    /// `POST` or `PUT`.
    pub fn method(&self) -> Method {
        self.method
    }
    /// The body format.
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }
    /// The authorization.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }
    /// The parameters, in order.
    pub fn parameters(&self) -> &[Parameter] {
        &self.parameters
    }
    /// The names of the parameters that must be present and not empty.
    pub fn required(&self) -> &[String] {
        &self.required
    }
    /// How much later than the retry schedule each retry may go, in percent of its delay (`"retry_jitter_percent"`
    /// in the JSON form, 0 to 100; 0, the default, keeps the schedule exactly). A retry due 1 h after a failure
    /// goes out between 1 h and 1 h × (1 + N/100), at a point derived from the delivery's id and attempt (so it is
    /// the same on every engine and in tests), so that many records failing at once do not all retry in the same
    /// minute. Never earlier than the schedule, nor than a receiver's `Retry-After`. 10 to 20 suits installations
    /// that send thousands of webhooks to one receiver.
    pub fn retry_jitter_percent(&self) -> u8 {
        self.retry_jitter_percent
    }

    /// When the action's receiver counts as failing and what happens then: a warning email, then a pause
    /// (`"endpoint_health"` in the JSON form; see [`HealthPolicy`] for the defaults and why).
    pub fn endpoint_health(&self) -> &HealthPolicy {
        &self.endpoint_health
    }

    /// The most requests per second or minute the action sends to its receiver, across every engine sharing the
    /// storage (`"rate_limit"` in the JSON form; none by default); see [`RateLimit`].
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    /// Whether a record's deliveries of this action go out one after another, in the order their events were
    /// queued (`"ordered": true` in the JSON form; off by default): a delivery waits while an earlier one of the
    /// same record is queued, in flight or waiting for a retry, so a receiver never gets a record's update before
    /// its creation. When an earlier one fails for good (its last retry failed), the next one goes ahead. Other
    /// records, and other actions, are not held up. A redelivery joins the end of its record's line; a delivery
    /// the daily quota holds back holds its line until the next day.
    pub fn ordered(&self) -> bool {
        self.ordered
    }

    /// How long one request of this action may take, from connecting until the (capped) response body is read
    /// (`"timeout_seconds"` in the JSON form, 1 to [`MAX_ACTION_TIMEOUT_SECS`]); `None`, the default, leaves it
    /// to the HTTP client's own timeout. The engine hands it to the client with each request
    /// ([`RequestOptions`](crate::ports::RequestOptions)), and refuses to register workflows whose timeouts its lease
    /// does not cover ([`Engine::set_workflows`](crate::Engine::set_workflows)).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The TLS setting for this action's receiver (`"tls"` in the JSON form), for receivers behind a private CA
    /// or asking for a client certificate:
    ///
    /// ```json
    /// "tls": {
    ///   "ca_certificates": ["-----BEGIN CERTIFICATE-----\n...", {"path": "/etc/crm/ca/onprem.pem"}],
    ///   "client_certificate": {"certificate": {"path": "/etc/crm/crm.pem"}, "key": {"path": "/etc/crm/crm.key"}}
    /// }
    /// ```
    ///
    /// `ca_certificates` are trusted beside the client's own roots; `client_certificate` is presented when the
    /// receiver asks. Each is PEM text or `{"path": ...}`, read and checked when the action is validated (see
    /// [`TlsSettings`]); the key is a [`Secret`](crate::Secret). The engine hands the setting to the client with
    /// each request ([`RequestOptions`](crate::ports::RequestOptions)).
    pub fn tls(&self) -> Option<&Arc<TlsSettings>> {
        self.tls.as_ref()
    }

    /// The Standard Webhooks signing secret (`whsec_` + base64), when requests are signed with one HMAC key that
    /// never expires (`"signing_secret"` in the JSON form). It signs beside the [`signing_keys`](Self::signing_keys).
    pub fn signing_secret(&self) -> Option<&Secret> {
        self.signing_secret.as_ref()
    }

    /// The signing keys (`"signing_keys": [{"secret": "whsk_...", "expires_at": "..."}]`): `whsec_` keys sign `v1`,
    /// `whsk_` keys `v1a`. Every key current when an attempt leaves signs it, after the
    /// [`signing_secret`](Self::signing_secret), all in one space-separated `webhook-signature` header; a key stops
    /// signing at its `expires_at` (see [`SigningKey`]). At most
    /// [`MAX_SIGNING_KEYS`](crate::limits::MAX_SIGNING_KEYS), and one of them (or the signing secret) without an
    /// expiry.
    pub fn signing_keys(&self) -> &[SigningKey] {
        &self.signing_keys
    }

    /// The custom static headers every request of this action carries, sorted by name (`"headers": {"X-Tenant":
    /// "acme"}`, or a list of `[name, value]` pairs). They may not be hop-by-hop headers (`Connection`,
    /// `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`), nor `Host`, `Content-Length`,
    /// `Content-Type`, `Content-Encoding`, `Authorization`, the `webhook-*` headers or the API-key header; names
    /// are unique without regard to case; at most [`MAX_HEADERS_PER_ACTION`](crate::limits::MAX_HEADERS_PER_ACTION),
    /// names of at most [`MAX_HEADER_NAME_BYTES`](crate::limits::MAX_HEADER_NAME_BYTES) and values of at most
    /// [`MAX_HEADER_VALUE_BYTES`](crate::limits::MAX_HEADER_VALUE_BYTES) visible ASCII. Their values are stored and
    /// shown as they are: secrets belong in [`Auth`].
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers.0
    }

    /// Encodes the action's parameters for a record: the body that is sent, byte for byte, on every attempt.
    ///
    /// The body has no size limit; [`WebhookAction::try_render`] has one.
    pub fn render(&self, fields: &Fields) -> Payload {
        // Without a limit nothing is full (no `String` reaches `usize::MAX` bytes): the empty body is never used.
        self.try_render(fields, usize::MAX).unwrap_or_else(|_| Payload::new(self.content_type, String::new()))
    }

    /// Like [`WebhookAction::render`], but a body longer than `max_body` bytes is an error, found as it is being
    /// written: rendering stops at the first write that would pass the limit, so an oversized body is never built
    /// (at most about twice `max_body` is ever held, while an array or object inside a value is written aside).
    /// [`DEFAULT_MAX_BODY_BYTES`](crate::limits::DEFAULT_MAX_BODY_BYTES) is a sensible limit.
    ///
    /// ```
    /// use crm_webhooks::WebhookAction;
    /// use crm_webhooks::payload::{ContentType, Parameter, RenderError};
    /// let action = WebhookAction::builder("Notes", "https://example.com/hook", ContentType::Json)
    ///     .parameter(Parameter::template("text", "${notes} ${notes}").unwrap())
    ///     .build()
    ///     .unwrap();
    /// let fields = serde_json::json!({"notes": "x".repeat(600)});
    /// let fields = fields.as_object().unwrap();
    /// assert!(action.try_render(fields, 2000).is_ok());
    /// let error = action.try_render(fields, 1000).unwrap_err();
    /// assert_eq!(error, RenderError::BodyTooLarge { limit: 1000, action: "Notes".into() });
    /// ```
    pub fn try_render(&self, fields: &Fields, max_body: usize) -> Result<Payload, RenderError> {
        payload::render(self.content_type, &self.shape, &self.parameters, fields, max_body)
            .map_err(|Full| RenderError::BodyTooLarge { limit: max_body, action: shown(&self.title) })
    }

    pub(crate) fn from_raw(raw: RawAction, at: &Location) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let at = at.with_action(&raw.title);
        if raw.kind != "webhook" {
            errors.push(ValidationError::UnsupportedActionKind { at: at.clone(), kind: shown(&raw.kind) });
        }
        if raw.title.trim().is_empty() {
            errors.push(ValidationError::Empty { at: at.clone(), field: "title" });
        }
        let uri = match check_url(&raw.url) {
            Ok(uri) => Some(uri),
            Err(UrlProblem::TooLong) => {
                let (url, bytes) = (shown_url(&raw.url), raw.url.len());
                errors.push(ValidationError::UrlTooLong { at: at.clone(), url, bytes });
                None
            }
            Err(UrlProblem::Credentials) => {
                errors.push(ValidationError::UrlWithCredentials { at: at.clone(), url: shown_url(&raw.url) });
                None
            }
            Err(UrlProblem::Invalid(reason)) => {
                errors.push(ValidationError::InvalidUrl { at: at.clone(), url: shown_url(&raw.url), reason });
                None
            }
        };
        if raw.retry_jitter_percent > 100 {
            errors.push(ValidationError::JitterTooLarge { at: at.clone(), percent: raw.retry_jitter_percent });
        }
        raw.endpoint_health.check(&at, &mut errors);
        if let Some(limit) = &raw.rate_limit {
            limit.check(&at, &mut errors);
        }
        let timeout = match raw.timeout_seconds {
            Some(seconds @ 1..=MAX_ACTION_TIMEOUT_SECS) => Some(Duration::from_secs(seconds)),
            Some(seconds) => {
                errors.push(ValidationError::InvalidTimeout { at: at.clone(), seconds });
                None
            }
            None => None,
        };
        let tls = raw.tls.as_ref().and_then(|tls| check_tls(tls, &at, &mut errors)).map(Arc::new);
        check_auth(&raw.auth, &at, &mut errors);
        check_headers(&raw.headers, &raw.auth, &at, &mut errors);
        check_signing_keys(&raw.signing_keys, raw.signing_secret.as_ref(), &at, &mut errors);
        let shape = check_parameters(&raw.parameters, &raw.required, raw.content_type, &at, &mut errors);
        match (uri, shape) {
            (Some(uri), Some(shape)) if errors.is_empty() => Ok(WebhookAction {
                title: raw.title,
                description: raw.description,
                url: raw.url,
                uri,
                method: raw.method,
                content_type: raw.content_type,
                auth: raw.auth,
                parameters: raw.parameters,
                required: raw.required,
                signing_secret: raw.signing_secret,
                signing_keys: raw.signing_keys,
                headers: raw.headers.sorted(),
                ordered: raw.ordered,
                retry_jitter_percent: u8::try_from(raw.retry_jitter_percent).unwrap_or(100),
                endpoint_health: raw.endpoint_health,
                rate_limit: raw.rate_limit,
                timeout,
                tls,
                shape,
            }),
            _ => Err(errors),
        }
    }

    pub(crate) fn to_raw(&self) -> RawAction {
        RawAction {
            kind: webhook_kind(),
            title: self.title.clone(),
            description: self.description.clone(),
            url: self.url.clone(),
            method: self.method,
            content_type: self.content_type,
            auth: self.auth.clone(),
            parameters: self.parameters.clone(),
            required: self.required.clone(),
            signing_secret: self.signing_secret.clone(),
            signing_keys: self.signing_keys.clone(),
            headers: self.headers.clone(),
            ordered: self.ordered,
            retry_jitter_percent: u32::from(self.retry_jitter_percent),
            endpoint_health: self.endpoint_health,
            rate_limit: self.rate_limit,
            timeout_seconds: self.timeout.map(|timeout| timeout.as_secs()),
            tls: self.tls.as_ref().map(|tls| tls.raw().clone()),
        }
    }
}

impl<'de> Deserialize<'de> for WebhookAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawAction::deserialize(deserializer)?;
        WebhookAction::from_raw(raw, &Location::default())
            .map_err(|errors| serde::de::Error::custom(crate::error::join(&errors)))
    }
}

impl Serialize for WebhookAction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_raw().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_seconds_is_one_to_the_maximum_and_round_trips() {
        let json = |seconds: u64| {
            format!(
                r#"{{"title": "T", "url": "https://r.example/hook", "content_type": "JSON", "timeout_seconds": {seconds}}}"#
            )
        };
        let action: WebhookAction = serde_json::from_str(&json(5)).unwrap();
        assert_eq!(action.timeout(), Some(Duration::from_secs(5)));
        assert_eq!(serde_json::to_value(&action).unwrap()["timeout_seconds"], 5);
        let plain = WebhookAction::builder("T", "https://r.example/hook", ContentType::Json).build().unwrap();
        assert_eq!(plain.timeout(), None);
        assert!(serde_json::to_value(&plain).unwrap().get("timeout_seconds").is_none());
        assert_ne!(plain, action);
        for seconds in [0, MAX_ACTION_TIMEOUT_SECS + 1] {
            let error = serde_json::from_str::<WebhookAction>(&json(seconds)).unwrap_err().to_string();
            assert!(error.contains(&format!("timeout_seconds is {seconds}; write 1 to 300")), "{error}");
            let built = WebhookAction::builder("T", "https://r.example/hook", ContentType::Json)
                .timeout_seconds(seconds)
                .build()
                .unwrap_err();
            assert!(matches!(built.problems(), [ValidationError::InvalidTimeout { seconds: s, .. }] if *s == seconds));
        }
    }
}
