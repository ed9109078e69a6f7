//! Values to and from SQLite columns. Reading is defensive: a row that does not read back as a valid value is a
//! [`StorageErrorKind::Corrupt`] error naming the table and column, never a panic.
//!
//! Times are integer microseconds since the Unix epoch (they sort and compare in SQL as instants do), ids and
//! claim tokens 16-byte BLOBs, bodies BLOBs, statuses their lower-case names (as in PostgreSQL), methods and
//! content types their documented names.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{ErrorCode, Row};

use crate::adapters::sql::{reason_from_text, status_from_text};
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry};
use crate::payload::ContentType;
use crate::ports::{Notification, StorageError, StorageErrorKind};
use crate::workflow::Method;

/// A rusqlite failure during `operation`, classified: busy or locked is worth retrying, a damaged file is corrupt.
pub(super) fn error(operation: &str, e: rusqlite::Error) -> StorageError {
    let (kind, advice) = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            (StorageErrorKind::Unavailable, "; another connection holds the database, try again")
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            (StorageErrorKind::Corrupt, "; the file is damaged or not a crm-webhooks database")
        }
        _ => match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => (StorageErrorKind::Corrupt, ""),
            _ => (StorageErrorKind::Other, ""),
        },
    };
    StorageError::new(kind, format!("SQLite {operation} failed: {e}{advice}"))
}

/// Runs a prepared query and decodes every row with `decode`.
pub(super) fn collect<T>(
    rows: rusqlite::Result<rusqlite::Rows<'_>>,
    operation: &str,
    decode: impl Fn(&Row<'_>) -> Result<T, StorageError>,
) -> Result<Vec<T>, StorageError> {
    let mut rows = rows.map_err(|e| error(operation, e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| error(operation, e))? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// An instant as stored: microseconds since the epoch (chrono's whole range fits in an `i64`).
pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// An instant as read back: `at` truncated to the microsecond. `micros` of a `DateTime` is always in range.
pub(super) fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// An optional instant as stored.
pub(super) fn opt_micros(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(micros)
}

/// Reads one row of `table`, column by column, turning every surprise into a `Corrupt` error.
struct Columns<'r, 's> {
    row: &'r Row<'s>,
    table: &'static str,
}

impl<'r, 's> Columns<'r, 's> {
    fn new(row: &'r Row<'s>, table: &'static str) -> Self {
        Columns { row, table }
    }

    fn corrupt(&self, index: usize, why: impl Display) -> StorageError {
        let column = self.row.as_ref().column_name(index).unwrap_or("?");
        StorageError::new(
            StorageErrorKind::Corrupt,
            format!("a stored {} row has an unreadable `{column}` column: {why}", self.table),
        )
    }

    fn raw(&self, index: usize) -> Result<ValueRef<'r>, StorageError> {
        self.row.get_ref(index).map_err(|e| self.corrupt(index, e))
    }

    fn is_null(&self, index: usize) -> Result<bool, StorageError> {
        Ok(matches!(self.raw(index)?, ValueRef::Null))
    }

    fn text(&self, index: usize) -> Result<String, StorageError> {
        match self.raw(index)? {
            ValueRef::Text(bytes) => {
                String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt(index, "the text is not UTF-8"))
            }
            other => Err(self.corrupt(index, format_args!("expected text, found {}", other.data_type()))),
        }
    }

    fn opt_text(&self, index: usize) -> Result<Option<String>, StorageError> {
        if self.is_null(index)? {
            return Ok(None);
        }
        self.text(index).map(Some)
    }

    fn blob(&self, index: usize) -> Result<Vec<u8>, StorageError> {
        match self.raw(index)? {
            ValueRef::Blob(bytes) => Ok(bytes.to_vec()),
            other => Err(self.corrupt(index, format_args!("expected a blob, found {}", other.data_type()))),
        }
    }

    fn int(&self, index: usize) -> Result<i64, StorageError> {
        match self.raw(index)? {
            ValueRef::Integer(n) => Ok(n),
            other => Err(self.corrupt(index, format_args!("expected an integer, found {}", other.data_type()))),
        }
    }

    fn number<T: TryFrom<i64>>(&self, index: usize) -> Result<T, StorageError> {
        let n = self.int(index)?;
        T::try_from(n).map_err(|_| self.corrupt(index, format_args!("{n} is out of range")))
    }

    fn flag(&self, index: usize) -> Result<bool, StorageError> {
        match self.int(index)? {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(self.corrupt(index, format_args!("{n} is not 0 or 1"))),
        }
    }

    fn opt_number<T: TryFrom<i64>>(&self, index: usize) -> Result<Option<T>, StorageError> {
        if self.is_null(index)? {
            return Ok(None);
        }
        self.number(index).map(Some)
    }

    fn time(&self, index: usize) -> Result<DateTime<Utc>, StorageError> {
        let n = self.int(index)?;
        DateTime::from_timestamp_micros(n).ok_or_else(|| self.corrupt(index, format_args!("{n} is not an instant")))
    }

    fn opt_time(&self, index: usize) -> Result<Option<DateTime<Utc>>, StorageError> {
        if self.is_null(index)? {
            return Ok(None);
        }
        self.time(index).map(Some)
    }

    fn id(&self, index: usize) -> Result<DeliveryId, StorageError> {
        let bytes = self.blob(index)?;
        let bytes: [u8; 16] =
            bytes.try_into().map_err(|b: Vec<u8>| self.corrupt(index, format_args!("{} bytes, not 16", b.len())))?;
        Ok(DeliveryId::from_bytes(bytes))
    }

    fn opt_id(&self, index: usize) -> Result<Option<DeliveryId>, StorageError> {
        if self.is_null(index)? {
            return Ok(None);
        }
        self.id(index).map(Some)
    }

    fn status(&self, index: usize) -> Result<DeliveryStatus, StorageError> {
        status_from_text(&self.text(index)?).map_err(|e| self.corrupt(index, e))
    }

    fn method(&self, index: usize) -> Result<Method, StorageError> {
        let text = self.text(index)?;
        [Method::Post, Method::Put]
            .into_iter()
            .find(|m| m.as_str() == text)
            .ok_or_else(|| self.corrupt(index, format_args!("\"{text}\" is not POST or PUT")))
    }

    fn content_type(&self, index: usize) -> Result<ContentType, StorageError> {
        let text = self.text(index)?;
        [ContentType::Xml, ContentType::Json, ContentType::JsonArray, ContentType::Form]
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| self.corrupt(index, format_args!("\"{text}\" is not XML, JSON, JSONARRAY or FORM")))
    }
}

/// A row of `sql::DELIVERY_COLUMNS`.
pub(super) fn delivery(row: &Row<'_>) -> Result<Delivery, StorageError> {
    let c = Columns::new(row, "delivery");
    Ok(Delivery {
        id: c.id(0)?,
        tenant: c.text(1)?,
        workflow: c.text(2)?,
        action: c.text(3)?,
        module: c.text(4)?,
        record_id: c.text(5)?,
        owner: c.text(6)?,
        method: c.method(7)?,
        url: c.text(8)?,
        content_type: c.content_type(9)?,
        body: c.blob(10)?.into(),
        status: c.status(11)?,
        attempts: c.number(12)?,
        next_attempt_at: c.opt_time(13)?,
        lease_expires_at: c.opt_time(14)?,
        created_at: c.time(15)?,
        updated_at: c.time(16)?,
        redelivery_of: c.opt_id(17)?,
        ordered: c.flag(18)?,
    })
}

/// What is left of a due delivery row that does not decode: its `rowid` (the pick reads it after
/// `sql::DELIVERY_COLUMNS`) and a log entry saying why it was set aside, from whatever of the row still reads.
pub(super) fn unreadable(row: &Row<'_>, why: &StorageError, now: DateTime<Utc>) -> (i64, LogEntry) {
    let c = Columns::new(row, "delivery");
    let rowid: i64 = row.get(19).unwrap_or(0);
    let text = |index| c.text(index).unwrap_or_else(|_| "?".to_owned());
    let delivery_id = c.id(0).unwrap_or_else(|_| DeliveryId::derived(&["unreadable sqlite row", &rowid.to_string()]));
    let entry = LogEntry {
        delivery_id,
        tenant: text(1),
        workflow: text(2),
        action: text(3),
        record_id: text(5),
        status: DeliveryStatus::Failed,
        attempt: c.number(12).unwrap_or(0),
        at: time(micros(now)),
        http_status: None,
        response_snippet: None,
        error: Some(why.message().to_owned()),
        reason: None,
        next_attempt_at: None,
        message: "set aside unsent: the stored delivery cannot be read; repair or delete the row".to_owned(),
    };
    (rowid, entry)
}

/// A row of `sql::LOG_COLUMNS`.
pub(super) fn log_entry(row: &Row<'_>) -> Result<LogEntry, StorageError> {
    let c = Columns::new(row, "log entry");
    Ok(LogEntry {
        delivery_id: c.id(0)?,
        tenant: c.text(1)?,
        workflow: c.text(2)?,
        action: c.text(3)?,
        record_id: c.text(4)?,
        status: c.status(5)?,
        attempt: c.number(6)?,
        at: c.time(7)?,
        http_status: c.opt_number(8)?,
        response_snippet: c.opt_text(9)?,
        error: c.opt_text(10)?,
        next_attempt_at: c.opt_time(11)?,
        message: c.text(12)?,
        reason: c.opt_text(13)?.as_deref().map(reason_from_text),
    })
}

/// A row of `sql::NOTIFICATION_COLUMNS`.
pub(super) fn notification(row: &Row<'_>) -> Result<Notification, StorageError> {
    let c = Columns::new(row, "notification");
    let sent_to = c.text(6)?;
    Ok(Notification {
        delivery_id: c.id(0)?,
        tenant: c.text(1)?,
        owner: c.text(2)?,
        created_at: c.time(3)?,
        next_attempt_at: c.time(4)?,
        attempts: c.number(5)?,
        sent_to: serde_json::from_str(&sent_to).map_err(|e| c.corrupt(6, e))?,
        last_error: c.opt_text(7)?,
        notice: crate::adapters::sql::notice_from_text(c.opt_text(8)?.as_deref())
            .map_err(|e| StorageError::new(StorageErrorKind::Corrupt, format!("notifications: {e}")))?,
    })
}

/// The user ids of a notification's `sent_to`, as stored: a JSON array of strings.
pub(super) fn sent_to(ids: &[String]) -> Result<String, StorageError> {
    serde_json::to_string(ids)
        .map_err(|e| StorageError::new(StorageErrorKind::Other, format!("cannot encode a notification's sent_to: {e}")))
}

/// A `u64` count read from an integer column.
pub(super) fn count(row: &Row<'_>, table: &'static str) -> Result<u64, StorageError> {
    Columns::new(row, table).number(0)
}

/// An optional instant read from the first column.
pub(super) fn first_opt_time(row: &Row<'_>, table: &'static str) -> Result<Option<DateTime<Utc>>, StorageError> {
    Columns::new(row, table).opt_time(0)
}

/// The delivery id in a row's first column.
pub(super) fn first_id(row: &Row<'_>) -> Result<DeliveryId, StorageError> {
    Columns::new(row, "delivery").id(0)
}

/// The row of the queue-depth query: the queued count, the dispatched count, the oldest queued time.
pub(super) fn queue_depth(row: &Row<'_>) -> Result<crate::ports::QueueDepth, StorageError> {
    let c = Columns::new(row, "delivery");
    Ok(crate::ports::QueueDepth { queued: c.number(0)?, dispatched: c.number(1)?, oldest_queued_at: c.opt_time(2)? })
}

/// The columns of `endpoint_health`, in the order [`endpoint_health`] reads them.
pub(super) const HEALTH_COLUMNS: &str = "tenant, workflow, action, state, failures, failing_since, changed_at, reason";

/// A row of `endpoint_health`.
pub(super) fn endpoint_health(row: &Row<'_>) -> Result<crate::ports::EndpointHealth, StorageError> {
    let c = Columns::new(row, "endpoint_health");
    let state = c.text(3)?;
    Ok(crate::ports::EndpointHealth {
        key: crate::ports::EndpointKey::new(c.text(0)?, c.text(1)?, c.text(2)?),
        state: crate::ports::EndpointState::parse(&state)
            .ok_or_else(|| c.corrupt(3, format_args!("\"{state}\" is not a state")))?,
        failures: c.number(4)?,
        failing_since: c.opt_time(5)?,
        changed_at: c.time(6)?,
        reason: c.opt_text(7)?,
    })
}
