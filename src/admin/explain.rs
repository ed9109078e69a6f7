//! Why a delivery failed, in words an admin can act on, read from its log entry's failure code (with its HTTP
//! status, error and the start of the answer for the details).

use crate::delivery::{DeliveryStatus, LogEntry};
use crate::failure::FailureReason;

/// How much of the receiver's answer the explanation quotes.
const QUOTED_CHARS: usize = 200;

/// What went wrong with the attempt this entry records, what happens next, and what to do; `None` when nothing
/// went wrong.
pub(crate) fn failure(entry: &LogEntry) -> Option<String> {
    let cause = cause(entry, reason(entry)?);
    let next = match (entry.status, entry.next_attempt_at) {
        (DeliveryStatus::Failed, _) => " No retries are left: once the cause is fixed, use Redeliver.".to_owned(),
        (_, Some(at)) => format!(" The next attempt is at {}.", at.format("%Y-%m-%d %H:%M:%S UTC")),
        _ => String::new(),
    };
    Some(format!("{cause}{next}"))
}

/// The entry's failure code. An entry written before codes were stored has none: its HTTP status tells a
/// redirect or an error status, and any other error counts as [`FailureReason::Other`].
fn reason(entry: &LogEntry) -> Option<FailureReason> {
    if entry.reason.is_some() {
        return entry.reason;
    }
    match entry.http_status {
        Some(200..=299) => None,
        Some(300..=399) => Some(FailureReason::Redirect),
        Some(_) => Some(FailureReason::HttpStatus),
        None => entry.error.as_ref().map(|_| FailureReason::Other),
    }
}

fn cause(entry: &LogEntry, reason: FailureReason) -> String {
    match (reason, entry.http_status) {
        (FailureReason::Redirect, Some(status)) => {
            // `outcome::complete` writes the target after " to ", without its query.
            let target = entry.error.as_deref().and_then(|e| e.rsplit_once(") to ")).map(|(_, target)| target);
            let code = status_words(status);
            match target {
                Some(target) => format!(
                    "The receiver answered {code}, a redirect to {target}; redirects are not followed. Change the \
                     action's URL to the one it points to."
                ),
                None => {
                    format!("The receiver answered {code}, a redirect; redirects are not followed. {}", reason.hint())
                }
            }
        }
        (FailureReason::HttpStatus, Some(status)) => {
            let mut said = http_status(status);
            if let Some(start) = entry.response_snippet.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                said.push_str(&format!(" It answered: \"{}\"", crate::shown::shown_up_to(start, QUOTED_CHARS)));
            }
            said
        }
        (FailureReason::QuotaReached | FailureReason::Paused | FailureReason::RateLimited, _) => {
            reason.hint().to_owned()
        }
        _ => match entry.error.as_deref() {
            Some(error) => format!("{} ({error}). {}", reason.title(), reason.hint()),
            None => format!("{}. {}", reason.title(), reason.hint()),
        },
    }
}

fn status_words(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    format!("HTTP {status} {reason}").trim_end().to_owned()
}

fn http_status(status: u16) -> String {
    let code = status_words(status);
    match status {
        300..=399 => {
            format!("The receiver answered {code}, a redirect; redirects are not followed. Use the URL it points to.")
        }
        401 | 403 => format!("The receiver refused the request ({code}). Check the action's credentials."),
        404 | 410 => format!("The receiver says there is nothing at this URL ({code}). Check the action's URL."),
        408 | 504 => format!("The receiver (or a proxy before it) gave up waiting ({code})."),
        413 => format!("The receiver refused the body as too large ({code})."),
        429 => format!("The receiver asked to slow down ({code})."),
        400..=499 => {
            format!("The receiver refused the request ({code}). Check what it expects against the action's parameters.")
        }
        500..=599 => {
            format!("The receiver had an error of its own ({code}). If it keeps failing, tell the receiver's owner.")
        }
        _ => format!("The receiver answered {code}, which is not a success."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::DeliveryId;
    use chrono::DateTime;

    fn entry(http_status: Option<u16>, error: Option<&str>, reason: Option<FailureReason>) -> LogEntry {
        LogEntry {
            delivery_id: DeliveryId::new(),
            tenant: "acme".into(),
            workflow: "w".into(),
            action: "a".into(),
            record_id: "1".into(),
            status: DeliveryStatus::Queued,
            attempt: 1,
            at: DateTime::UNIX_EPOCH,
            http_status,
            response_snippet: None,
            error: error.map(str::to_owned),
            reason,
            next_attempt_at: Some(DateTime::UNIX_EPOCH),
            message: "x".into(),
        }
    }

    #[test]
    fn each_failure_in_words() {
        use FailureReason as R;
        let redirect = "HTTP 302 Found (redirects are not followed) to https://new.example/hook";
        let cases = [
            (Some(404), None, Some(R::HttpStatus), "nothing at this URL (HTTP 404 Not Found)"),
            (Some(500), Some("HTTP 500 Internal Server Error"), Some(R::HttpStatus), "an error of its own (HTTP 500"),
            (Some(302), Some(redirect), Some(R::Redirect), "a redirect to https://new.example/hook; redirects are not"),
            (Some(301), None, Some(R::Redirect), "a redirect; redirects are not followed"),
            (Some(401), None, Some(R::HttpStatus), "Check the action's credentials"),
            (None, Some("timed out: no answer in 30 s"), Some(R::ResponseTimeout), "No answer in time (timed out: no"),
            (None, Some("connect timed out: x"), Some(R::ConnectTimeout), "did not take the connection in time"),
            (None, Some("DNS lookup failed: x"), Some(R::Dns), "DNS lookup failed (DNS lookup failed: x). The"),
            (None, Some("connection refused: x"), Some(R::ConnectionRefused), "nothing listens on that port"),
            (None, Some("connection failed: x"), Some(R::ConnectionFailed), "reachable from this server"),
            (None, Some("TLS failed: x: unknown issuer"), Some(R::Tls), "TLS failed (TLS failed: x: unknown issuer)"),
            (None, Some("refused by policy: 10.0.0.1 is private"), Some(R::AddressGuard), "10.0.0.1 is private"),
            (None, Some("invalid request: x"), Some(R::InvalidRequest), "Check the action's URL and settings"),
            (None, None, Some(R::QuotaReached), "daily webhook allowance is used up"),
            (None, None, Some(R::Paused), "paused and wait until it is resumed"),
            (None, None, Some(R::RateLimited), "held to its rate limit"),
            (None, Some("something odd"), Some(R::Other), "Request failed (something odd)."),
            // Written before codes were stored: the status or the error still explains it.
            (Some(503), None, None, "an error of its own (HTTP 503"),
            (Some(307), None, None, "a redirect; redirects are not followed"),
            (None, Some("something odd"), None, "Request failed (something odd)."),
        ];
        for (status, error, reason, says) in cases {
            let text = failure(&entry(status, error, reason)).unwrap();
            assert!(text.contains(says), "{reason:?}: {text}");
        }
        let queued = failure(&entry(Some(503), None, Some(R::HttpStatus))).unwrap();
        assert!(queued.ends_with("The next attempt is at 1970-01-01 00:00:00 UTC."), "{queued}");
        let failed = failure(&LogEntry { status: DeliveryStatus::Failed, ..entry(Some(503), None, None) }).unwrap();
        assert!(failed.ends_with("No retries are left: once the cause is fixed, use Redeliver."), "{failed}");
        assert_eq!(failure(&entry(Some(200), None, None)), None);
        assert_eq!(failure(&entry(None, None, None)), None);
    }

    #[test]
    fn an_error_status_quotes_the_start_of_the_answer() {
        let mut e = entry(Some(422), None, Some(FailureReason::HttpStatus));
        e.response_snippet = Some(format!("  {{\"error\":\"missing field email\"}}\n{}", "x".repeat(500)));
        let text = failure(&e).unwrap();
        assert!(text.contains("It answered: \"{\"error\":\"missing field email\"}\\nxxx"), "{text}");
        assert!(text.contains("… (") && text.len() < 600, "cut short: {text}");
    }
}
