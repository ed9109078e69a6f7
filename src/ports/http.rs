//! The HTTP port: how the engine sends one request.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

/// Sends one HTTP request. Implement it over your HTTP stack, or use
/// [`ReqwestClient`](crate::ReqwestClient) (feature `reqwest`) or [`MockHttp`](crate::testing::MockHttp) in tests.
///
/// An implementation must not follow redirects (a 3xx is an answer, and fails the attempt), should read at most
/// a bounded prefix of the response body, and must classify its errors with an [`HttpErrorKind`].
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
    /// No answer in time (connect or total timeout).
    Timeout,
    /// The connection could not be made or broke (DNS, refused, reset).
    Connect,
    /// The TLS handshake failed (certificate, protocol).
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
    /// A timeout.
    pub fn is_timeout(&self) -> bool {
        self.kind == HttpErrorKind::Timeout
    }
    /// A failure that may go away by itself: a timeout, a connection or TLS failure, anything unclassified.
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
