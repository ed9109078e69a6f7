//! The delivery log: appending entries, reading pages of it, and pruning what settled.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use crate::adapters::sql::{log_page, status_text, LogParam, Placeholders, LOG_COLUMNS};
use crate::delivery::{LogEntry, LogQuery};
use crate::failure::FailureReason;
use crate::ports::StorageError;

use super::codec::{self, collect, micros, opt_micros};

/// The most log entries one `INSERT` writes. Longer runs go in chunks of 64, then 32, 16, ... 1, so seven
/// statements (one per size) cover every count and stay in the statement cache.
const ENTRIES_PER_INSERT: usize = 64;

/// Splits `entries` into the chunks described at [`ENTRIES_PER_INSERT`].
fn chunks<T>(mut entries: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if entries.is_empty() {
            return None;
        }
        let (chunk, rest) = entries.split_at(1 << entries.len().min(ENTRIES_PER_INSERT).ilog2());
        entries = rest;
        Some(chunk)
    })
}

/// `INSERT INTO log_entries ...` of `rows` entries, a chunk size.
fn insert_entries_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        let row = format!("({})", ["?"; 14].join(", "));
        (0..=ENTRIES_PER_INSERT.ilog2())
            .map(|k| {
                // OR FAIL, as in the claim's UPDATE: no statement journal for a statement of many rows.
                format!(
                    "INSERT OR FAIL INTO log_entries ({LOG_COLUMNS}) VALUES {}",
                    vec![row.as_str(); 1 << k].join(", ")
                )
            })
            .collect()
    });
    &all[rows.ilog2() as usize]
}

/// Appends log entries with a few multi-row `INSERT`s: a statement costs far more than a row.
pub(super) fn insert_entries(tx: &Connection, entries: &[&LogEntry]) -> Result<(), rusqlite::Error> {
    for chunk in chunks(entries) {
        let mut insert = tx.prepare_cached(insert_entries_sql(chunk.len()))?;
        let mut index = 0;
        let mut bind = |value: &dyn rusqlite::ToSql| {
            index += 1;
            insert.raw_bind_parameter(index, value)
        };
        for e in chunk {
            bind(&&e.delivery_id.as_bytes()[..])?;
            bind(&e.tenant)?;
            bind(&e.workflow)?;
            bind(&e.action)?;
            bind(&e.record_id)?;
            bind(&status_text(e.status))?;
            bind(&e.attempt)?;
            bind(&micros(e.at))?;
            bind(&e.http_status)?;
            bind(&e.response_snippet)?;
            bind(&e.error)?;
            bind(&opt_micros(e.next_attempt_at))?;
            bind(&e.message)?;
            bind(&e.reason.map(FailureReason::as_str))?;
        }
        insert.raw_execute()?;
    }
    Ok(())
}

/// A page of the log (see [`log_page`]) and the values it binds.
pub(super) fn page_sql(query: &LogQuery) -> (String, Vec<Value>) {
    // One delivery's few entries are found through `log_by_delivery`; `+tenant` (no index may use that term)
    // keeps the planner from walking the tenant's whole log in time order instead.
    let tenant = if query.delivery_id.is_some() { "+tenant" } else { "tenant" };
    let (sql, params) =
        log_page(&format!("SELECT {LOG_COLUMNS} FROM log_entries"), tenant, query, Placeholders::Question);
    let values = params
        .into_iter()
        .map(|param| match param {
            LogParam::Text(text) => Value::Text(text.to_owned()),
            LogParam::Id(id) => Value::Blob(id.as_bytes().to_vec()),
            LogParam::Time(at) => Value::Integer(micros(at)),
            LogParam::Count(n) => Value::Integer(n),
        })
        .collect();
    (sql, values)
}

/// A page of the log, newest first: every filter runs in SQL.
pub(super) fn page(connection: &Connection, query: &LogQuery) -> Result<Vec<LogEntry>, StorageError> {
    let (sql, values) = page_sql(query);
    let mut statement = connection.prepare_cached(&sql).map_err(|e| codec::error("log", e))?;
    collect(statement.query(params_from_iter(values)), "log", codec::log_entry)
}

/// Deletes the deliveries that settled before `before` (and their log), unless a notification about one is still
/// to be sent; how many.
pub(super) fn prune(tx: &Connection, before: DateTime<Utc>) -> Result<u64, rusqlite::Error> {
    const DOOMED: &str = "SELECT id FROM deliveries WHERE status IN ('success', 'failed') AND updated_at < ?1 \
         AND id NOT IN (SELECT delivery_id FROM notifications)";
    let before = micros(before);
    tx.execute(&format!("DELETE FROM log_entries WHERE delivery_id IN ({DOOMED})"), [before])?;
    let removed = tx.execute(&format!("DELETE FROM deliveries WHERE id IN ({DOOMED})"), [before])?;
    Ok(removed as u64)
}
