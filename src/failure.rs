//! Why a delivery failed, as a fixed set of codes: each with a stable text (what storage keeps and the JSON API
//! shows), a short title and a hint an admin can act on. The details of one failure (the host name, the
//! certificate problem, the redirect's target, the guard's rule) are in the log entry's `error` text beside it.
//!
//! ```
//! use crm_webhooks::failure::FailureReason;
//! let reason: FailureReason = "connection_refused".parse().unwrap();
//! assert_eq!(reason, FailureReason::ConnectionRefused);
//! assert_eq!(reason.title(), "Connection refused");
//! assert!(reason.hint().contains("port"));
//! assert!("lost_in_the_mail".parse::<FailureReason>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an attempt failed, or why a delivery waits without one. Stored with the log entry as its
/// [`as_str`](Self::as_str) text, which never changes for a code once released; new codes may come in later
/// versions, so a match needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureReason {
    /// The receiver's host name did not resolve (`dns`).
    Dns,
    /// The receiver's host answered that nothing listens on the port (`connection_refused`).
    ConnectionRefused,
    /// The connection could not be made, or broke during the request (`connection_failed`).
    ConnectionFailed,
    /// The TLS handshake failed; the error names the certificate problem (`tls`).
    Tls,
    /// No connection was made within the connect timeout (`connect_timeout`).
    ConnectTimeout,
    /// Connected, but no full answer came within the timeout (`response_timeout`).
    ResponseTimeout,
    /// The receiver answered with a redirect (3xx), which is not followed; the error names its target without
    /// its query (`redirect`).
    Redirect,
    /// The receiver answered with an error status; the entry keeps the status and the start of the body
    /// (`http_status`).
    HttpStatus,
    /// The address guard refused the destination before anything was sent; the error names the rule
    /// (`address_guard`).
    AddressGuard,
    /// The request could not be built, or its action is gone (`invalid_request`).
    InvalidRequest,
    /// The tenant's daily quota is used up; the delivery waits until the next day (`quota_reached`).
    QuotaReached,
    /// The endpoint is paused; the delivery waits until it is resumed (`paused`).
    Paused,
    /// The endpoint's rate limit holds the delivery back for a while (`rate_limited`).
    RateLimited,
    /// Anything else; the error text says what (`other`).
    Other,
}

impl FailureReason {
    /// Every code, in the order of the list above.
    pub const ALL: &'static [FailureReason] = &[
        FailureReason::Dns,
        FailureReason::ConnectionRefused,
        FailureReason::ConnectionFailed,
        FailureReason::Tls,
        FailureReason::ConnectTimeout,
        FailureReason::ResponseTimeout,
        FailureReason::Redirect,
        FailureReason::HttpStatus,
        FailureReason::AddressGuard,
        FailureReason::InvalidRequest,
        FailureReason::QuotaReached,
        FailureReason::Paused,
        FailureReason::RateLimited,
        FailureReason::Other,
    ];

    /// The code's stable text: `dns`, `connection_refused`, `connection_failed`, `tls`, `connect_timeout`,
    /// `response_timeout`, `redirect`, `http_status`, `address_guard`, `invalid_request`, `quota_reached`,
    /// `paused`, `rate_limited` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Dns => "dns",
            FailureReason::ConnectionRefused => "connection_refused",
            FailureReason::ConnectionFailed => "connection_failed",
            FailureReason::Tls => "tls",
            FailureReason::ConnectTimeout => "connect_timeout",
            FailureReason::ResponseTimeout => "response_timeout",
            FailureReason::Redirect => "redirect",
            FailureReason::HttpStatus => "http_status",
            FailureReason::AddressGuard => "address_guard",
            FailureReason::InvalidRequest => "invalid_request",
            FailureReason::QuotaReached => "quota_reached",
            FailureReason::Paused => "paused",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::Other => "other",
        }
    }

    /// A few words naming the failure, for a page or an email ("DNS lookup failed").
    pub fn title(self) -> &'static str {
        match self {
            FailureReason::Dns => "DNS lookup failed",
            FailureReason::ConnectionRefused => "Connection refused",
            FailureReason::ConnectionFailed => "Connection failed",
            FailureReason::Tls => "TLS failed",
            FailureReason::ConnectTimeout => "Connecting timed out",
            FailureReason::ResponseTimeout => "No answer in time",
            FailureReason::Redirect => "Redirected",
            FailureReason::HttpStatus => "Error status",
            FailureReason::AddressGuard => "Refused by the address guard",
            FailureReason::InvalidRequest => "Invalid request",
            FailureReason::QuotaReached => "Daily quota reached",
            FailureReason::Paused => "Endpoint paused",
            FailureReason::RateLimited => "Rate limited",
            FailureReason::Other => "Request failed",
        }
    }

    /// What an admin can do about it, in a sentence or two.
    pub fn hint(self) -> &'static str {
        match self {
            FailureReason::Dns => {
                "The receiver's host name does not resolve. Check the URL's host name for typos and that its DNS \
                 record exists."
            }
            FailureReason::ConnectionRefused => {
                "The receiver's host is reachable but nothing listens on that port. Check the URL's port and that \
                 the receiver is running."
            }
            FailureReason::ConnectionFailed => {
                "No connection could be made to the receiver, or it broke off. Check that the receiver is up and \
                 reachable from this server (firewall, network)."
            }
            FailureReason::Tls => {
                "The secure connection failed; the error names the certificate problem. Renew or fix the \
                 receiver's certificate, or use one from a trusted authority for this host name."
            }
            FailureReason::ConnectTimeout => {
                "The receiver's host did not take the connection in time; a firewall may drop it, or the host is \
                 down. Check the URL's host and port."
            }
            FailureReason::ResponseTimeout => {
                "The receiver took the request but did not answer in time. It may be overloaded or slow: it should \
                 answer at once and do slow work afterwards."
            }
            FailureReason::Redirect => {
                "The receiver answered with a redirect, and redirects are not followed. Change the action's URL to \
                 the target the error names."
            }
            FailureReason::HttpStatus => {
                "The receiver answered with an error status. Its status and the start of its answer say what it \
                 objects to: fix the credentials, URL or parameters, or tell the receiver's owner."
            }
            FailureReason::AddressGuard => {
                "The request was not sent: the URL leads to a private, local or reserved address, and the error \
                 names the rule. Use the receiver's public URL, or ask the operator to allow that network."
            }
            FailureReason::InvalidRequest => {
                "The request could not be built. Check the action's URL and settings, and that the workflow still \
                 has the action."
            }
            FailureReason::QuotaReached => {
                "The tenant's daily webhook allowance is used up; the delivery waits until the next day starts. A \
                 higher edition raises the limit."
            }
            FailureReason::Paused => {
                "Deliveries to this endpoint are paused and wait until it is resumed. Resume it once the receiver \
                 works again."
            }
            FailureReason::RateLimited => {
                "Deliveries to this endpoint are held to its rate limit and go out as the limit allows. Raise the \
                 limit if the receiver can take more."
            }
            FailureReason::Other => "The request failed for another reason; the error says what happened.",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not a failure code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not a failure code (dns, connection_refused, connection_failed, tls, connect_timeout, \
         response_timeout, redirect, http_status, address_guard, invalid_request, quota_reached, paused, \
         rate_limited or other)"
)]
pub struct InvalidFailureReason(String);

impl FromStr for FailureReason {
    type Err = InvalidFailureReason;
    /// Exactly the texts of [`as_str`](FailureReason::as_str).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureReason::ALL
            .iter()
            .copied()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| InvalidFailureReason(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_from_its_text_and_serde_writes_the_same_text() {
        let mut texts = std::collections::HashSet::new();
        for &reason in FailureReason::ALL {
            let text = reason.as_str();
            assert!(texts.insert(text), "{text} twice");
            assert_eq!(text.parse::<FailureReason>(), Ok(reason));
            assert_eq!(reason.to_string(), text);
            assert_eq!(serde_json::to_value(reason).unwrap(), serde_json::Value::String(text.to_owned()));
            assert_eq!(serde_json::from_str::<FailureReason>(&format!("\"{text}\"")).unwrap(), reason);
            assert!(!reason.title().is_empty() && reason.hint().ends_with('.'), "{text}");
        }
        assert_eq!(texts.len(), 14);
        let error = "DNS".parse::<FailureReason>().unwrap_err();
        assert!(error.to_string().contains("\"DNS\" is not a failure code"), "{error}");
        assert!(serde_json::from_str::<FailureReason>("\"nope\"").is_err());
    }
}
