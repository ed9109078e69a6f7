//! What the two SQL storages (`sqlite` and `postgres`) share: how a status is stored.

use crate::delivery::DeliveryStatus;

/// Every status, in the order of its stored texts.
const STATUSES: [DeliveryStatus; 4] =
    [DeliveryStatus::Queued, DeliveryStatus::Dispatched, DeliveryStatus::Success, DeliveryStatus::Failed];

/// The text `status` is stored as, by both backends (and the only one either accepts back, see
/// [`status_from_text`]). The schemas' `CHECK` constraints and the SQL literals use the same texts.
pub(super) fn status_text(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Queued => "queued",
        DeliveryStatus::Dispatched => "dispatched",
        DeliveryStatus::Success => "success",
        DeliveryStatus::Failed => "failed",
    }
}

/// The status stored as `text`, or why `text` is none: exactly the texts of [`status_text`], nothing else (not
/// even another case of them), so that what a row holds and what a query matches never differ.
pub(super) fn status_from_text(text: &str) -> Result<DeliveryStatus, String> {
    STATUSES.into_iter().find(|status| status_text(*status) == text).ok_or_else(|| {
        let shown: String = text.chars().take(64).collect();
        format!("\"{}\" is not a stored status (queued, dispatched, success or failed)", shown.escape_debug())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn each_status_has_one_text_that_reads_back() {
        for status in STATUSES {
            let text = status_text(status);
            assert_eq!(status_from_text(text), Ok(status));
            assert_eq!(text, status.as_str().to_ascii_lowercase(), "the stored text is the name in lower case");
            assert!(status_from_text(status.as_str()).is_err(), "{} is not a stored text", status.as_str());
        }
        let error = status_from_text("lost in the mail").unwrap_err();
        assert!(error.contains("lost in the mail") && error.contains("queued"), "{error}");
    }
}
