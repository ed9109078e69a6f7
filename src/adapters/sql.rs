//! What the two SQL storages (`sqlite` and `postgres`) share: how a status is stored, the column lists, a log
//! query's SQL, and the shape of the migration list.
//!
//! Only what is the same on both lives here. Each backend keeps its own schema and migrations (the types, the
//! indexes and the claim statements differ), its value encoding (SQLite stores times as integer microseconds and
//! reads columns by position; PostgreSQL has `timestamptz` and reads them by name), its error classification and
//! its migration runner (a `user_version` header field in one, a `schema_migrations` table under an advisory lock
//! in the other).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::delivery::{DeliveryId, DeliveryStatus, LogQuery};
use crate::failure::FailureReason;
use crate::ports::Notice;

/// Columns of `deliveries`, in the order SQLite's codec reads them (PostgreSQL reads them by name).
pub(super) const DELIVERY_COLUMNS: &str = "id, tenant, workflow, action, module, record_id, owner, method, url, \
     content_type, body, status, attempts, next_attempt_at, lease_expires_at, created_at, updated_at, redelivery_of, \
     ordered";

/// The condition a claim adds for ordered deliveries of the table `deliveries` (written `table`: `deliveries`, or
/// `schema.deliveries`, unaliased): not ordered, or no delivery before it in its line is still queued or dispatched.
/// The subquery's terms imply the `WHERE` of the partial index `deliveries_line` in both schemas, so both planners
/// answer it from that index.
pub(super) fn first_in_line(table: &str) -> String {
    format!(
        "(deliveries.order_key IS NULL OR NOT EXISTS (SELECT 1 FROM {table} AS earlier \
         WHERE earlier.order_key = deliveries.order_key AND earlier.order_key IS NOT NULL \
         AND earlier.order_seq < deliveries.order_seq AND earlier.status IN ('queued', 'dispatched')))"
    )
}

/// Columns of `log_entries` (all but the `seq` that orders them), in the order SQLite's codec reads them.
pub(super) const LOG_COLUMNS: &str = "delivery_id, tenant, workflow, action, record_id, status, attempt, at, \
     http_status, response_snippet, error, next_attempt_at, message, reason";

/// Columns of `notifications` (all but the claim), in the order SQLite's codec reads them.
pub(super) const NOTIFICATION_COLUMNS: &str =
    "delivery_id, tenant, owner, created_at, next_attempt_at, attempts, sent_to, last_error, notice";

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

/// The failure code stored as `text` (its [`FailureReason::as_str`]). A code this build does not know reads as
/// [`FailureReason::Other`] rather than failing the row: codes are added without a schema change, so a newer
/// build sharing the database may write one, and the entry's `error` text still says what happened.
pub(super) fn reason_from_text(text: &str) -> FailureReason {
    text.parse().unwrap_or(FailureReason::Other)
}

/// A notice as stored: `None` for [`Notice::DeliveryFailed`] (so rows written before notices had kinds read back
/// as what they were), JSON otherwise.
pub(super) fn notice_text(notice: &Notice) -> Option<String> {
    match notice {
        Notice::DeliveryFailed => None,
        other => serde_json::to_string(other).ok(),
    }
}

/// A stored notice read back.
pub(super) fn notice_from_text(text: Option<&str>) -> Result<Notice, String> {
    match text {
        None => Ok(Notice::DeliveryFailed),
        Some(text) => serde_json::from_str(text).map_err(|e| format!("unreadable notice {text:?}: {e}")),
    }
}

/// How a backend writes its bind parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placeholders {
    /// `?1`, `?2`, ... (SQLite).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Question,
    /// `$1`, `$2`, ... (PostgreSQL).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Dollar,
}

impl Placeholders {
    /// Appends the `n`th (1-based) parameter to `sql`.
    fn push(self, sql: &mut String, n: usize) {
        let sign = match self {
            Placeholders::Question => '?',
            Placeholders::Dollar => '$',
        };
        // Writing to a String cannot fail.
        let _ = write!(sql, "{sign}{n}");
    }
}

/// A value a log query binds; each backend turns it into its own (a time is integer microseconds in SQLite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LogParam<'q> {
    Text(&'q str),
    Id(&'q DeliveryId),
    Time(DateTime<Utc>),
    Count(i64),
}

/// A page of the log as SQL and the values it binds, in placeholder order: `from` (`SELECT` [`LOG_COLUMNS`]
/// `FROM` the table), then `WHERE tenant = ...` (`tenant` is the left-hand side: the column, or an expression
/// of it that steers a planner), one `AND` term per filter the query sets, newest first, and the limit and
/// offset. Only fixed fragments go into the text; every value is a parameter.
pub(super) fn log_page<'q>(
    from: &str,
    tenant: &str,
    query: &'q LogQuery,
    placeholders: Placeholders,
) -> (String, Vec<LogParam<'q>>) {
    let filters = [
        ("workflow", "=", query.workflow.as_deref().map(LogParam::Text)),
        ("action", "=", query.action.as_deref().map(LogParam::Text)),
        ("status", "=", query.status.map(|status| LogParam::Text(status_text(status)))),
        ("record_id", "=", query.record_id.as_deref().map(LogParam::Text)),
        ("delivery_id", "=", query.delivery_id.as_ref().map(LogParam::Id)),
        ("at", ">=", query.since.map(LogParam::Time)),
        ("at", "<", query.until.map(LogParam::Time)),
    ];
    let mut sql = String::with_capacity(from.len() + 200);
    let mut params = Vec::with_capacity(filters.len() + 3);
    let mut term = |sql: &mut String, text: &str, param: LogParam<'q>| {
        params.push(param);
        sql.push_str(text);
        placeholders.push(sql, params.len());
    };
    sql.push_str(from);
    term(&mut sql, &format!(" WHERE {tenant} = "), LogParam::Text(&query.tenant));
    for (column, op, param) in filters {
        if let Some(param) = param {
            term(&mut sql, &format!(" AND {column} {op} "), param);
        }
    }
    term(&mut sql, " ORDER BY at DESC, seq DESC LIMIT ", LogParam::Count(sql_count(query.limit)));
    term(&mut sql, " OFFSET ", LogParam::Count(sql_count(query.offset)));
    (sql, params)
}

/// A count or limit as an SQL integer; values past `i64::MAX` mean "no limit" anyway.
pub(super) fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One embedded migration: it brings a schema from `version - 1` to `version`.
#[derive(Debug)]
pub(super) struct Migration {
    pub(super) version: u16,
    pub(super) description: &'static str,
    /// The SQL, from `migrations/NNNN_*.sql` beside the backend.
    pub(super) sql: &'static str,
}

/// The version `migrations` bring a schema to. Checked at compile time (use it in a `const`): they are numbered
/// 1, 2, 3, ... in order, with no gap: a schema records only the last version applied, so a number left out and
/// added later would never be applied to a schema already past it. Append only: a released migration never
/// changes.
pub(super) const fn latest_version(migrations: &[Migration]) -> u16 {
    assert!(!migrations.is_empty(), "a schema has at least one migration");
    let mut index = 0;
    while index < migrations.len() {
        assert!(migrations[index].version as usize == index + 1, "migrations are numbered 1, 2, 3, ... in order");
        index += 1;
    }
    migrations[migrations.len() - 1].version
}

/// The migrations a schema at version `current` lacks, in the order to apply them.
pub(super) fn pending(migrations: &[Migration], current: i64) -> impl Iterator<Item = &Migration> {
    migrations.iter().filter(move |migration| i64::from(migration.version) > current)
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

    #[test]
    fn every_failure_code_reads_back_and_an_unknown_one_is_other() {
        for &reason in FailureReason::ALL {
            assert_eq!(reason_from_text(reason.as_str()), reason);
        }
        for unknown in ["", "DNS", "carrier_pigeon_lost", "\u{0}"] {
            assert_eq!(reason_from_text(unknown), FailureReason::Other, "{unknown:?}");
        }
    }

    #[test]
    fn a_log_page_binds_what_it_filters_on_in_placeholder_order() {
        let id = DeliveryId::new();
        let since = DateTime::from_timestamp(1_000, 0).unwrap();
        let query = LogQuery::tenant("acme").status(DeliveryStatus::Failed).delivery(id).between(since, since);
        let (sql, params) = log_page("SELECT x FROM log_entries", "+tenant", &query, Placeholders::Question);
        assert_eq!(
            sql,
            "SELECT x FROM log_entries WHERE +tenant = ?1 AND status = ?2 AND delivery_id = ?3 AND at >= ?4 \
             AND at < ?5 ORDER BY at DESC, seq DESC LIMIT ?6 OFFSET ?7"
        );
        assert_eq!(
            params,
            [
                LogParam::Text("acme"),
                LogParam::Text("failed"),
                LogParam::Id(&id),
                LogParam::Time(since),
                LogParam::Time(since),
                LogParam::Count(sql_count(query.limit)),
                LogParam::Count(0),
            ]
        );
        let everything = LogQuery::tenant("acme").workflow("w").action("a").record("r");
        let (sql, params) = log_page("SELECT x FROM s.log_entries", "tenant", &everything, Placeholders::Dollar);
        assert_eq!(
            sql,
            "SELECT x FROM s.log_entries WHERE tenant = $1 AND workflow = $2 AND action = $3 AND record_id = $4 \
             ORDER BY at DESC, seq DESC LIMIT $5 OFFSET $6"
        );
        assert_eq!(params[1..4], [LogParam::Text("w"), LogParam::Text("a"), LogParam::Text("r")]);
    }

    #[test]
    fn pending_migrations_follow_the_current_version() {
        const LIST: [Migration; 2] =
            [Migration { version: 1, description: "a", sql: "" }, Migration { version: 2, description: "b", sql: "" }];
        const LATEST: u16 = latest_version(&LIST);
        assert_eq!(LATEST, 2);
        let versions = |current| pending(&LIST, current).map(|m| m.version).collect::<Vec<_>>();
        assert_eq!((versions(0), versions(1), versions(2)), (vec![1, 2], vec![2], vec![]));
    }
}
