//! Building a [`WebhookAction`] in code: the same checks as its JSON form.

use super::action::{Method, RawAction, WebhookAction};
use super::auth::Auth;
use super::policy::{HealthPolicy, RateLimit};
use super::tls::{ClientCertificate, KeySource, PemSource, RawTls};
use crate::error::Location;
use crate::payload::{ContentType, Parameter};
use crate::secret::Secret;
use crate::signature::SigningKey;

impl WebhookAction {
    /// Starts building an action; [`WebhookActionBuilder::build`] validates it.
    pub fn builder(
        title: impl Into<String>,
        url: impl Into<String>,
        content_type: ContentType,
    ) -> WebhookActionBuilder {
        WebhookActionBuilder { raw: RawAction::new(title.into(), url.into(), content_type) }
    }
}

/// Builds a [`WebhookAction`]; see [`WebhookAction::builder`].
#[derive(Debug, Clone)]
pub struct WebhookActionBuilder {
    raw: RawAction,
}

impl WebhookActionBuilder {
    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.raw.description = description.into();
        self
    }
    /// Sets the method (`POST` by default).
    pub fn method(mut self, method: Method) -> Self {
        self.raw.method = method;
        self
    }
    /// Sets the authorization (none by default).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.raw.auth = auth;
        self
    }
    /// Adds a parameter.
    pub fn parameter(mut self, parameter: Parameter) -> Self {
        self.raw.parameters.push(parameter);
        self
    }
    /// Declares a parameter name that must be present and not empty.
    pub fn require(mut self, name: impl Into<String>) -> Self {
        self.raw.required.push(name.into());
        self
    }
    /// Signs every request per Standard Webhooks with this `whsec_`-prefixed base64 secret.
    pub fn signing_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.raw.signing_secret = Some(secret.into());
        self
    }
    /// Adds a signing key (see [`WebhookAction::signing_keys`]).
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.raw.signing_keys.push(key);
        self
    }
    /// Adds a custom static header (see [`WebhookAction::headers`]).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.raw.headers.0.push((name.into(), value.into()));
        self
    }
    /// Spreads each retry up to `percent` % of its delay later (see [`WebhookAction::retry_jitter_percent`]).
    pub fn retry_jitter_percent(mut self, percent: u32) -> Self {
        self.raw.retry_jitter_percent = percent;
        self
    }
    /// Sets when the receiver counts as failing (see [`WebhookAction::endpoint_health`]).
    pub fn endpoint_health(mut self, policy: HealthPolicy) -> Self {
        self.raw.endpoint_health = policy;
        self
    }
    /// Caps the requests per second or minute (see [`WebhookAction::rate_limit`]).
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.raw.rate_limit = Some(limit);
        self
    }
    /// Sends a record's deliveries in order (see [`WebhookAction::ordered`]).
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.raw.ordered = ordered;
        self
    }
    /// Sets how long one request may take, in seconds (see [`WebhookAction::timeout`]).
    pub fn timeout_seconds(mut self, seconds: u64) -> Self {
        self.raw.timeout_seconds = Some(seconds);
        self
    }
    /// Trusts this root certificate (or bundle) for the action's receiver (see [`WebhookAction::tls`]).
    pub fn tls_ca_certificate(mut self, certificate: PemSource) -> Self {
        self.raw.tls.get_or_insert_with(RawTls::default).ca_certificates.push(certificate);
        self
    }
    /// Presents this client certificate and key when the receiver asks for one (see [`WebhookAction::tls`]).
    pub fn tls_client_certificate(mut self, certificate: PemSource, key: KeySource) -> Self {
        self.raw.tls.get_or_insert_with(RawTls::default).client_certificate =
            Some(ClientCertificate { certificate, key });
        self
    }
    /// Validates the action.
    pub fn build(self) -> Result<WebhookAction, crate::ConfigError> {
        WebhookAction::from_raw(self.raw, &Location::default()).map_err(crate::ConfigError::Invalid)
    }
}
