//! Why a delivery failed, in words an admin can act on, read from its log entry's error and HTTP status.

use crate::delivery::{DeliveryStatus, LogEntry};

/// What went wrong with the attempt this entry records, what happens next, and what to do; `None` when nothing
/// went wrong.
pub(crate) fn failure(entry: &LogEntry) -> Option<String> {
    let cause = cause(entry)?;
    let next = match (entry.status, entry.next_attempt_at) {
        (DeliveryStatus::Failed, _) => " No retries are left: once the cause is fixed, use Redeliver.".to_owned(),
        (_, Some(at)) => format!(" The next attempt is at {}.", at.format("%Y-%m-%d %H:%M:%S UTC")),
        _ => String::new(),
    };
    Some(format!("{cause}{next}"))
}

fn cause(entry: &LogEntry) -> Option<String> {
    if let Some(status) = entry.http_status.filter(|s| !(200..300).contains(s)) {
        return Some(http_status(status));
    }
    if entry.message.starts_with("deferred: daily quota reached") {
        return Some(
            "The tenant's daily webhook allowance was used up, so this delivery waits for the next day (or a \
             higher edition's limit)."
                .to_owned(),
        );
    }
    let error = entry.error.as_deref()?;
    let detail = |prefix: &str| error.strip_prefix(prefix).map(str::trim).unwrap_or(error).to_owned();
    let said = if error.starts_with("timed out") {
        format!("The receiver did not answer in time ({}). It may be down or slow.", detail("timed out:"))
    } else if error.starts_with("connection failed") {
        format!(
            "No connection could be made to the receiver ({}). Check the URL's host name and that the receiver is \
             running.",
            detail("connection failed:")
        )
    } else if error.starts_with("TLS failed") {
        format!(
            "The secure connection failed ({}). The receiver's certificate may be expired or not trusted.",
            detail("TLS failed:")
        )
    } else if error.starts_with("refused by policy") {
        format!(
            "The request was not sent: the address guard refused it ({}). Webhooks may not go to private or local \
             network addresses; use the receiver's public URL.",
            detail("refused by policy:")
        )
    } else if error.starts_with("invalid request") {
        format!("The request could not be built ({}). Check the action's URL and settings.", detail("invalid request:"))
    } else {
        format!("The request failed: {error}.")
    };
    Some(said)
}

fn http_status(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let code = format!("HTTP {status} {reason}");
    let code = code.trim_end();
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

    fn entry(http_status: Option<u16>, error: Option<&str>, message: &str) -> LogEntry {
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
            next_attempt_at: Some(DateTime::UNIX_EPOCH),
            message: message.into(),
        }
    }

    #[test]
    fn each_failure_in_words() {
        let cases = [
            (Some(404), None, "x", "nothing at this URL (HTTP 404 Not Found)"),
            (
                Some(500),
                Some("HTTP 500 Internal Server Error"),
                "x",
                "an error of its own (HTTP 500 Internal Server Error)",
            ),
            (Some(301), None, "x", "redirects are not followed"),
            (Some(401), None, "x", "Check the action's credentials"),
            (None, Some("timed out: no answer in 30 s"), "x", "did not answer in time (no answer in 30 s)"),
            (
                None,
                Some("refused by policy: 10.0.0.1 is private"),
                "x",
                "the address guard refused it (10.0.0.1 is private)",
            ),
            (None, Some("connection failed: dns error"), "x", "No connection could be made"),
            (None, None, "deferred: daily quota reached", "allowance was used up, so this delivery waits"),
            (None, Some("something odd"), "x", "The request failed: something odd."),
        ];
        for (status, error, message, says) in cases {
            let text = failure(&entry(status, error, message)).unwrap();
            assert!(text.contains(says), "{text}");
        }
        let queued = failure(&entry(Some(503), None, "x")).unwrap();
        assert!(queued.ends_with("The next attempt is at 1970-01-01 00:00:00 UTC."), "{queued}");
        let failed = failure(&LogEntry { status: DeliveryStatus::Failed, ..entry(Some(503), None, "x") }).unwrap();
        assert!(failed.ends_with("No retries are left: once the cause is fixed, use Redeliver."), "{failed}");
        assert_eq!(failure(&entry(Some(200), None, "attempt 1 delivered")), None);
        assert_eq!(failure(&entry(None, None, "queued")), None);
    }
}
