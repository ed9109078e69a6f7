//! The delivery log: appending entries, reading pages of it, and pruning what settled.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgConnection};

use crate::adapters::sql::{log_page, status_text, LogParam, Placeholders};
use crate::delivery::{LogEntry, LogQuery};
use crate::failure::FailureReason;
use crate::ports::StorageError;

use super::attached::Attached;
use super::codec::{db_error, entry_from_row, without_nul};

impl Attached {
    /// Appends log entries in the order given, in one statement.
    pub(super) async fn insert_entries<'a>(
        &self,
        conn: &mut PgConnection,
        entries: impl ExactSizeIterator<Item = &'a LogEntry>,
    ) -> Result<(), StorageError> {
        if entries.len() == 0 {
            return Ok(());
        }
        let mut columns = EntryColumns::with_capacity(entries.len());
        for entry in entries {
            columns.push(entry);
        }
        self.query(&self.sql.insert_entries)
            .bind(columns.delivery_id)
            .bind(columns.tenant)
            .bind(columns.workflow)
            .bind(columns.action)
            .bind(columns.record_id)
            .bind(columns.status)
            .bind(columns.attempt)
            .bind(columns.at)
            .bind(columns.http_status)
            .bind(columns.response_snippet)
            .bind(columns.error)
            .bind(columns.next_attempt_at)
            .bind(columns.message)
            .bind(columns.reason)
            .execute(conn)
            .await
            .map_err(|e| db_error("writing log entries", e))?;
        Ok(())
    }

    /// A page of the log, newest first: every filter runs in SQL.
    pub(super) async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StorageError> {
        let (sql, params) = log_page(&self.sql.log_from, "tenant", query, Placeholders::Dollar);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for param in params {
            q = match param {
                LogParam::Text(text) => q.bind(text),
                LogParam::Id(id) => q.bind(id.as_bytes().as_slice()),
                LogParam::Time(at) => q.bind(at),
                LogParam::Count(n) => q.bind(n),
            };
        }
        let rows = q.fetch_all(&self.pool).await.map_err(|e| db_error("reading the delivery log", e))?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Deletes the deliveries that settled before `before` (and their log), unless a notification about one is
    /// still to be sent; how many.
    pub(super) async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let removed: i64 = sqlx::query_scalar(self.sql.prune.clone())
            .bind(before)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error("pruning settled deliveries", e))?;
        Ok(u64::try_from(removed).unwrap_or(0))
    }
}

/// The log entries of one write, column by column, for one `INSERT ... SELECT FROM UNNEST`.
struct EntryColumns<'a> {
    delivery_id: Vec<&'a [u8]>,
    tenant: Vec<&'a str>,
    workflow: Vec<&'a str>,
    action: Vec<&'a str>,
    record_id: Vec<&'a str>,
    status: Vec<&'static str>,
    attempt: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    http_status: Vec<Option<i32>>,
    response_snippet: Vec<Option<Cow<'a, str>>>,
    error: Vec<Option<Cow<'a, str>>>,
    next_attempt_at: Vec<Option<DateTime<Utc>>>,
    message: Vec<Cow<'a, str>>,
    reason: Vec<Option<&'static str>>,
}

impl<'a> EntryColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        EntryColumns {
            delivery_id: Vec::with_capacity(n),
            tenant: Vec::with_capacity(n),
            workflow: Vec::with_capacity(n),
            action: Vec::with_capacity(n),
            record_id: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            attempt: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            http_status: Vec::with_capacity(n),
            response_snippet: Vec::with_capacity(n),
            error: Vec::with_capacity(n),
            next_attempt_at: Vec::with_capacity(n),
            message: Vec::with_capacity(n),
            reason: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, entry: &'a LogEntry) {
        self.delivery_id.push(entry.delivery_id.as_bytes());
        self.tenant.push(&entry.tenant);
        self.workflow.push(&entry.workflow);
        self.action.push(&entry.action);
        self.record_id.push(&entry.record_id);
        self.status.push(status_text(entry.status));
        self.attempt.push(i64::from(entry.attempt));
        self.at.push(entry.at);
        self.http_status.push(entry.http_status.map(i32::from));
        self.response_snippet.push(entry.response_snippet.as_deref().map(without_nul));
        self.error.push(entry.error.as_deref().map(without_nul));
        self.next_attempt_at.push(entry.next_attempt_at);
        self.message.push(without_nul(&entry.message));
        self.reason.push(entry.reason.map(FailureReason::as_str));
    }
}
