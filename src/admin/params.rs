//! Reading what a request asks for: the log's filters and page, a delivery id, a day. Anything that does not
//! read is a [`BadParam`] that says what to write instead.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;

use crate::delivery::{DeliveryId, DeliveryStatus, InvalidDeliveryId, InvalidStatus, LogQuery};

/// Log entries on one page.
pub(crate) const PER_PAGE: usize = 50;
/// The last page a query may ask for (50,000 entries deep); narrow the filters to see older entries.
pub(crate) const MAX_PAGE: usize = 1000;

/// A query parameter or path segment that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadParam {
    /// The query string itself (an unknown or repeated parameter).
    #[error("bad query: {0}")]
    Query(String),
    /// `status=`.
    #[error("status: {0}")]
    Status(#[from] InvalidStatus),
    /// A delivery id in the path.
    #[error(transparent)]
    Id(#[from] InvalidDeliveryId),
    /// `since=` or `until=`.
    #[error(
        "{name}=\"{value}\" is not a time: write 2026-05-01, 2026-05-01T14:30 (both UTC) or an RFC 3339 time such \
         as 2026-05-01T14:30:00+02:00"
    )]
    Time {
        /// The parameter.
        name: &'static str,
        /// What it held (cut short).
        value: String,
    },
    /// `since` after `until`.
    #[error("since ({since}) is after until ({until}): nothing can match")]
    Range {
        /// The start.
        since: DateTime<Utc>,
        /// The end.
        until: DateTime<Utc>,
    },
    /// `page=`.
    #[error("page=\"{0}\" is not a page: pages count from 1 to {MAX_PAGE}")]
    Page(String),
    /// `day=`.
    #[error("day=\"{0}\" is not a day: write it as 2026-05-01")]
    Day(String),
}

/// What the log page shows: its filters and page. Empty parameters (as a form sends them) are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogFilters {
    pub(crate) workflow: Option<String>,
    pub(crate) action: Option<String>,
    pub(crate) record: Option<String>,
    pub(crate) status: Option<DeliveryStatus>,
    pub(crate) since: Option<DateTime<Utc>>,
    pub(crate) until: Option<DateTime<Utc>>,
    /// From 1.
    pub(crate) page: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    workflow: Option<String>,
    action: Option<String>,
    record: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    page: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDay {
    day: Option<String>,
}

impl LogFilters {
    /// The filters of a query string (`None`: no query string).
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, BadParam> {
        let raw: RawLog = serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| {
            BadParam::Query(format!("{e}; the log takes workflow, action, record, status, since, until and page"))
        })?;
        let page = match present(raw.page) {
            None => 1,
            Some(text) => {
                text.parse().ok().filter(|p| (1..=MAX_PAGE).contains(p)).ok_or_else(|| BadParam::Page(cut(&text)))?
            }
        };
        let filters = LogFilters {
            workflow: present(raw.workflow),
            action: present(raw.action),
            record: present(raw.record),
            status: present(raw.status).map(|s| s.parse()).transpose()?,
            since: present(raw.since).map(|t| time("since", &t)).transpose()?,
            until: present(raw.until).map(|t| time("until", &t)).transpose()?,
            page,
        };
        if let (Some(since), Some(until)) = (filters.since, filters.until) {
            if since > until {
                return Err(BadParam::Range { since, until });
            }
        }
        Ok(filters)
    }

    /// The storage query of this page, one entry more than a page, to know whether an older page exists.
    pub(crate) fn query(&self, tenant: &str) -> LogQuery {
        LogQuery {
            workflow: self.workflow.clone(),
            action: self.action.clone(),
            status: self.status,
            record_id: self.record.clone(),
            since: self.since,
            until: self.until,
            ..LogQuery::tenant(tenant)
        }
        .offset((self.page - 1) * PER_PAGE)
        .limit(PER_PAGE + 1)
    }

    /// The query string of these filters (without a leading `?`; page 1 is left out).
    pub(crate) fn query_string(&self) -> String {
        let status = self.status.map(DeliveryStatus::as_str);
        let since = self.since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        let until = self.until.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        let page = (self.page > 1).then(|| self.page.to_string());
        let pairs = [
            ("workflow", self.workflow.as_deref()),
            ("action", self.action.as_deref()),
            ("record", self.record.as_deref()),
            ("status", status),
            ("since", since.as_deref()),
            ("until", until.as_deref()),
            ("page", page.as_deref()),
        ];
        let present: Vec<(&str, &str)> = pairs.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
        serde_urlencoded::to_string(present).unwrap_or_default()
    }

    /// The same filters with another status (and back on page 1).
    pub(crate) fn with_status(&self, status: Option<DeliveryStatus>) -> Self {
        LogFilters { status, page: 1, ..self.clone() }
    }

    /// The same filters on another page.
    pub(crate) fn with_page(&self, page: usize) -> Self {
        LogFilters { page, ..self.clone() }
    }
}

/// The `day=` of a usage query (`None`: today).
pub(crate) fn day(query: Option<&str>) -> Result<Option<NaiveDate>, BadParam> {
    let raw: RawDay = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| BadParam::Query(format!("{e}; usage takes day")))?;
    present(raw.day).map(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| BadParam::Day(cut(&d)))).transpose()
}

/// A delivery id from the path.
pub(crate) fn delivery_id(text: &str) -> Result<DeliveryId, BadParam> {
    Ok(text.parse()?)
}

fn present(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn time(name: &'static str, text: &str) -> Result<DateTime<Utc>, BadParam> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)));
    local.map(|t| t.and_utc()).ok_or_else(|| BadParam::Time { name, value: cut(text) })
}

/// A value quoted in a message: at most 64 characters.
fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn filters_read_and_write_back() {
        let f = LogFilters::parse(Some(
            "workflow=w%201&status=failed&since=2026-05-01&until=2026-05-02T10:30&page=3&record=",
        ))
        .unwrap();
        assert_eq!(f.workflow.as_deref(), Some("w 1"));
        assert_eq!((f.status, f.record.as_deref(), f.page), (Some(DeliveryStatus::Failed), None, 3));
        assert_eq!(f.since, Some(Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap()));
        assert_eq!(f.until, Some(Utc.with_ymd_and_hms(2026, 5, 2, 10, 30, 0).unwrap()));
        assert_eq!(LogFilters::parse(Some(&f.query_string())).unwrap(), f);
        let q = f.query("acme");
        assert_eq!((q.tenant.as_str(), q.offset, q.limit), ("acme", 100, PER_PAGE + 1));
        assert_eq!(LogFilters::parse(None).unwrap(), LogFilters { page: 1, ..LogFilters::default() });
        assert!(!f.with_status(None).query_string().contains("page"));
    }

    #[test]
    fn what_does_not_read_says_what_to_write() {
        let cases = [
            ("status=done", "\"done\" is not a delivery status (Queued, Dispatched, Success or Failed)"),
            ("since=yesterday", "since=\"yesterday\" is not a time: write 2026-05-01"),
            ("page=0", "pages count from 1"),
            ("page=-1", "pages count from 1"),
            ("page=1001", "pages count from 1 to 1000"),
            ("colour=red", "unknown field `colour`"),
            ("since=2026-05-02&until=2026-05-01", "is after until"),
        ];
        for (query, says) in cases {
            let message = LogFilters::parse(Some(query)).unwrap_err().to_string();
            assert!(message.contains(says), "{query}: {message}");
        }
        assert!(delivery_id("msg_nope").unwrap_err().to_string().contains("msg_ followed by 32 hex digits"));
        assert_eq!(day(Some("day=2026-02-03")).unwrap(), NaiveDate::from_ymd_opt(2026, 2, 3));
        assert_eq!(day(Some("day=")).unwrap(), None);
        assert!(day(Some("day=3 Feb")).unwrap_err().to_string().contains("write it as 2026-05-01"));
    }
}
