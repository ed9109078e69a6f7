//! The HTTP port: how the engine sends one request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::workflow::TlsSettings;

/// Sends one HTTP request. Implement it over your HTTP stack, or use
/// [`ReqwestClient`](crate::ReqwestClient) (feature `reqwest`) or [`MockHttp`](crate::testing::MockHttp) in tests.
///
/// An implementation must not follow redirects (a 3xx is an answer, and fails the attempt), should read at most
/// a bounded prefix of the response body, and must classify its errors with an [`HttpErrorKind`]. It should
/// honour the [`RequestOptions`] a request carries in its extensions (an action's own timeout and TLS setting).
#[async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends the request and returns the response, or why there is none.
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError>;

    /// The longest one [`send`](Self::send) may take, when the client enforces such a limit. The engine refuses
    /// a lease that does not cover it ([`EngineBuilder::lease`](crate::EngineBuilder::lease)); `None` (the
    /// default) skips that check.
    fn request_timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

/// What kind of failure an [`HttpError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpErrorKind {
    /// Connected, but no full answer in time (the total timeout). A client that cannot tell a connect timeout
    /// apart reports this one.
    Timeout,
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// The receiver's host name did not resolve.
    Dns,
    /// The receiver's host refused the connection (nothing listens on the port).
    ConnectionRefused,
    /// The connection could not be made or broke (reset, unreachable), for a cause none of the kinds above
    /// names.
    Connect,
    /// The TLS handshake failed (certificate, protocol); the message names the problem.
    Tls,
    /// The request was refused by policy before it was sent (for example the SSRF guard).
    Refused,
    /// The request cannot be sent as built (for example a URL the client cannot use).
    InvalidRequest,
    /// Anything else.
    Other,
}

/// Why an HTTP request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    kind: HttpErrorKind,
    message: String,
}

impl HttpError {
    /// An error of a kind, with a message a person can act on (it is written to the delivery log, so it must
    /// not contain secrets).
    pub fn new(kind: HttpErrorKind, message: impl Into<String>) -> Self {
        HttpError { kind, message: message.into() }
    }
    /// The kind.
    pub fn kind(&self) -> HttpErrorKind {
        self.kind
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// A timeout, connecting or waiting for the answer.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, HttpErrorKind::Timeout | HttpErrorKind::ConnectTimeout)
    }
    /// A failure that may go away by itself: a timeout, a DNS, connection or TLS failure, anything unclassified.
    pub fn is_transient(&self) -> bool {
        !self.is_permanent()
    }
    /// A failure that retrying cannot fix: the request was refused by policy or cannot be built. The engine
    /// fails such a delivery at once instead of retrying.
    pub fn is_permanent(&self) -> bool {
        matches!(self.kind, HttpErrorKind::Refused | HttpErrorKind::InvalidRequest)
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            HttpErrorKind::Timeout => "timed out",
            HttpErrorKind::ConnectTimeout => "connect timed out",
            HttpErrorKind::Dns => "DNS lookup failed",
            HttpErrorKind::ConnectionRefused => "connection refused",
            HttpErrorKind::Connect => "connection failed",
            HttpErrorKind::Tls => "TLS failed",
            HttpErrorKind::Refused => "refused by policy",
            HttpErrorKind::InvalidRequest => "invalid request",
            HttpErrorKind::Other => "request failed",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for HttpError {}

/// What an action asks of the HTTP client for one request beyond the request itself: its own timeout and TLS
/// setting. The engine puts it in the request's [`extensions`](http::Request::extensions) when the action sets
/// either ([`WebhookAction::timeout`](crate::WebhookAction::timeout), [`WebhookAction::tls`](crate::WebhookAction::tls));
/// an [`HttpClient`] reads it with [`RequestOptions::of`]. [`ReqwestClient`](crate::ReqwestClient) honours both.
///
/// ```
/// use std::time::Duration;
/// use crm_webhooks::ports::RequestOptions;
/// let mut request = http::Request::new(bytes::Bytes::new());
/// request.extensions_mut().insert(RequestOptions::default().with_timeout(Duration::from_secs(5)));
/// assert_eq!(RequestOptions::of(&request).and_then(|o| o.timeout), Some(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// The longest the whole request may take, in place of the client's own timeout.
    pub timeout: Option<Duration>,
    /// Extra trusted roots and a client certificate for this request's TLS connection.
    pub tls: Option<Arc<TlsSettings>>,
}

impl RequestOptions {
    /// The options a request carries, if any.
    pub fn of<B>(request: &http::Request<B>) -> Option<&RequestOptions> {
        request.extensions().get::<RequestOptions>()
    }
    /// With this timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// With this TLS setting.
    pub fn with_tls(mut self, tls: Arc<TlsSettings>) -> Self {
        self.tls = Some(tls);
        self
    }
    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.timeout.is_none() && self.tls.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_policy_and_unbuildable_requests_are_permanent() {
        use HttpErrorKind::*;
        #[rustfmt::skip]
        let table = [
            (Timeout, false, true), (ConnectTimeout, false, true), (Dns, false, false),
            (ConnectionRefused, false, false), (Connect, false, false), (Tls, false, false),
            (Refused, true, false), (InvalidRequest, true, false), (Other, false, false),
        ];
        for (kind, permanent, timeout) in table {
            let error = HttpError::new(kind, "x");
            assert_eq!(
                (error.is_permanent(), error.is_transient(), error.is_timeout()),
                (permanent, !permanent, timeout)
            );
        }
    }
}
