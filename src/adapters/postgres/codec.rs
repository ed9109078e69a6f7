//! Values to and from PostgreSQL columns, and errors. Reading is defensive: a row that does not read back as a
//! valid value is a [`StorageErrorKind::Corrupt`] error naming the column, never a panic.
//!
//! Rows are read by column name (the statements select the column lists shared with SQLite); ids and claim tokens
//! are 16-byte `bytea`, times `timestamptz`, statuses their stored texts.

use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

use crate::adapters::sql::{reason_from_text, status_from_text};
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry};
use crate::payload::ContentType;
use crate::ports::{Notification, StorageError, StorageErrorKind};
use crate::workflow::Method;

/// The column `name` of `row`, as a `T`.
pub(super) fn column<'r, T>(row: &'r PgRow, name: &str) -> Result<T, StorageError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(name).map_err(|e| db_error(&format!("reading column {name}"), e))
}

/// A delivery id from a `bytea` column.
pub(super) fn id_from_row(row: &PgRow, name: &str) -> Result<DeliveryId, StorageError> {
    column::<[u8; 16]>(row, name).map(DeliveryId::from_bytes)
}

/// A count from a `bigint` column.
fn count_from_row(row: &PgRow, name: &str) -> Result<u32, StorageError> {
    let value: i64 = column(row, name)?;
    u32::try_from(value).map_err(|_| corrupt(format!("column {name} holds {value}, which is not a count")))
}

/// A status from its stored text.
fn status_from_row(row: &PgRow, name: &str) -> Result<DeliveryStatus, StorageError> {
    let text: String = column(row, name)?;
    status_from_text(&text).map_err(|e| corrupt(format!("column {name}: {e}")))
}

/// A row of `deliveries`.
pub(super) fn delivery_from_row(row: &PgRow) -> Result<Delivery, StorageError> {
    let method: String = column(row, "method")?;
    let method = match method.as_str() {
        "POST" => Method::Post,
        "PUT" => Method::Put,
        other => return Err(corrupt(format!("column method holds \"{other}\", not POST or PUT"))),
    };
    let content_type: String = column(row, "content_type")?;
    let content_type = match content_type.as_str() {
        "XML" => ContentType::Xml,
        "JSON" => ContentType::Json,
        "JSONARRAY" => ContentType::JsonArray,
        "FORM" => ContentType::Form,
        other => {
            return Err(corrupt(format!("column content_type holds \"{other}\", not XML, JSON, JSONARRAY or FORM")))
        }
    };
    let redelivery_of: Option<[u8; 16]> = column(row, "redelivery_of")?;
    Ok(Delivery {
        id: id_from_row(row, "id")?,
        tenant: column(row, "tenant")?,
        workflow: column(row, "workflow")?,
        action: column(row, "action")?,
        module: column(row, "module")?,
        record_id: column(row, "record_id")?,
        owner: column(row, "owner")?,
        method,
        url: column(row, "url")?,
        content_type,
        body: Bytes::from(column::<Vec<u8>>(row, "body")?),
        status: status_from_row(row, "status")?,
        attempts: count_from_row(row, "attempts")?,
        next_attempt_at: column(row, "next_attempt_at")?,
        lease_expires_at: column(row, "lease_expires_at")?,
        created_at: column(row, "created_at")?,
        updated_at: column(row, "updated_at")?,
        redelivery_of: redelivery_of.map(DeliveryId::from_bytes),
        ordered: column(row, "ordered")?,
    })
}

/// What is left of a claimed delivery row that does not decode: its raw `id` and a log entry saying why it was
/// set aside, from whatever of the row still reads.
pub(super) fn unreadable(row: &PgRow, why: &StorageError, now: DateTime<Utc>) -> (Vec<u8>, LogEntry) {
    let raw_id: Vec<u8> = row.try_get("id").unwrap_or_default();
    let text = |column: &str| row.try_get::<String, _>(column).unwrap_or_else(|_| "?".to_owned());
    let delivery_id = <[u8; 16]>::try_from(raw_id.as_slice())
        .map(DeliveryId::from_bytes)
        .unwrap_or_else(|_| DeliveryId::derived(&["unreadable postgres row", &format!("{raw_id:x?}")]));
    let entry = LogEntry {
        delivery_id,
        tenant: text("tenant"),
        workflow: text("workflow"),
        action: text("action"),
        record_id: text("record_id"),
        status: DeliveryStatus::Failed,
        attempt: row.try_get::<i64, _>("attempts").ok().and_then(|a| u32::try_from(a).ok()).unwrap_or(0),
        at: now,
        http_status: None,
        response_snippet: None,
        error: Some(why.message().to_owned()),
        reason: None,
        next_attempt_at: None,
        message: "set aside unsent: the stored delivery cannot be read; repair or delete the row".to_owned(),
    };
    (raw_id, entry)
}

/// A row of `log_entries`.
pub(super) fn entry_from_row(row: &PgRow) -> Result<LogEntry, StorageError> {
    let http_status: Option<i32> = column(row, "http_status")?;
    let http_status = http_status
        .map(|s| u16::try_from(s).map_err(|_| corrupt(format!("column http_status holds {s}, not an HTTP status"))))
        .transpose()?;
    Ok(LogEntry {
        delivery_id: id_from_row(row, "delivery_id")?,
        tenant: column(row, "tenant")?,
        workflow: column(row, "workflow")?,
        action: column(row, "action")?,
        record_id: column(row, "record_id")?,
        status: status_from_row(row, "status")?,
        attempt: count_from_row(row, "attempt")?,
        at: column(row, "at")?,
        http_status,
        response_snippet: column(row, "response_snippet")?,
        error: column(row, "error")?,
        next_attempt_at: column(row, "next_attempt_at")?,
        message: column(row, "message")?,
        reason: column::<Option<String>>(row, "reason")?.as_deref().map(reason_from_text),
    })
}

/// A row of `notifications`.
pub(super) fn notification_from_row(row: &PgRow) -> Result<Notification, StorageError> {
    Ok(Notification {
        delivery_id: id_from_row(row, "delivery_id")?,
        tenant: column(row, "tenant")?,
        owner: column(row, "owner")?,
        created_at: column(row, "created_at")?,
        next_attempt_at: column(row, "next_attempt_at")?,
        attempts: count_from_row(row, "attempts")?,
        sent_to: column(row, "sent_to")?,
        last_error: column(row, "last_error")?,
        notice: crate::adapters::sql::notice_from_text(column::<Option<String>>(row, "notice")?.as_deref())
            .map_err(|e| StorageError::new(StorageErrorKind::Corrupt, format!("notifications: {e}")))?,
    })
}

/// PostgreSQL text cannot hold U+0000; free-form text quoting the outside world keeps the rest of its content.
pub(super) fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A count or limit as a `bigint`; values past `i64::MAX` count as `i64::MAX`.
pub(super) fn to_i64<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// A stored row that does not read back as valid.
pub(super) fn corrupt(message: String) -> StorageError {
    StorageError::new(StorageErrorKind::Corrupt, format!("postgres: stored data is not valid: {message}"))
}

/// Sorts a driver error into the kinds callers branch on, with what to do about it.
pub(super) fn db_error(doing: &str, error: sqlx::Error) -> StorageError {
    use sqlx::Error as E;
    let kind = match &error {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => StorageErrorKind::Unavailable,
        E::Database(db) => match db.code().as_deref() {
            // connection exceptions, insufficient resources (too many connections), shutdowns, cancelled for a
            // timeout, lock timeouts, serialization failures and deadlocks, a read-only standby after failover
            Some(code)
                if code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || matches!(code, "57014" | "55P03" | "40001" | "40P01" | "25006") =>
            {
                StorageErrorKind::Unavailable
            }
            // the schema, a table, a column or a function is missing
            Some("3F000" | "42P01" | "42703" | "42883") => StorageErrorKind::Schema,
            _ => StorageErrorKind::Other,
        },
        E::ColumnDecode { .. }
        | E::Decode(_)
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. }
        | E::TypeNotFound { .. }
        | E::RowNotFound => StorageErrorKind::Corrupt,
        _ => StorageErrorKind::Other,
    };
    let advice = match kind {
        StorageErrorKind::Unavailable => " (the database is unreachable or busy: try again later)",
        StorageErrorKind::Schema => " (the tables are missing or of another version: run PostgresStorage::setup)",
        StorageErrorKind::Corrupt => " (a stored row does not read back as valid)",
        _ => "",
    };
    StorageError::new(kind, format!("postgres: {doing}: {error}{advice}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_replaced_only_when_present() {
        assert!(matches!(without_nul("ok"), Cow::Borrowed("ok")));
        assert_eq!(without_nul("a\0b"), "a\u{FFFD}b");
    }

    #[test]
    fn errors_are_sorted_by_kind() {
        assert_eq!(db_error("x", sqlx::Error::PoolTimedOut).kind(), StorageErrorKind::Unavailable);
        assert_eq!(db_error("x", sqlx::Error::RowNotFound).kind(), StorageErrorKind::Corrupt);
        assert_eq!(db_error("x", sqlx::Error::Protocol("?".into())).kind(), StorageErrorKind::Other);
    }
}
