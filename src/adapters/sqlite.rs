//! [`SqliteStorage`]: the embedded [`Storage`], one SQLite file per host (or a private in-memory database).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), crm_webhooks::StorageError> {
//! use crm_webhooks::adapters::sqlite::SqliteStorage;
//! use crm_webhooks::Storage;
//!
//! let dir = tempfile::tempdir().map_err(|e| crm_webhooks::StorageError::new(crm_webhooks::StorageErrorKind::Other, e.to_string()))?;
//! let storage = SqliteStorage::open(dir.path().join("webhooks.db"))?;
//! assert_eq!(storage.next_due_at().await?, None);
//! # Ok(())
//! # }
//! ```
//!
//! One connection does all the work, behind a mutex, on tokio's blocking thread pool: the async executor never
//! waits for the disk, and because every write is an `IMMEDIATE` transaction on that one writer, a claim's
//! select-then-update cannot interleave with another claim (SQLite has no `SKIP LOCKED`; it does not need it).
//! Several processes may open the same file; SQLite's write lock and the busy timeout serialise them.

mod checkpoint;
mod codec;
mod schema;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry, LogQuery};
use crate::ports::{
    Claim, Completion, Notification, NotificationUpdate, QuotaRequest, Storage, StorageError, StorageErrorKind,
};

use super::sql::{
    log_page, sql_count, status_text, LogParam, Placeholders, DELIVERY_COLUMNS, LOG_COLUMNS, NOTIFICATION_COLUMNS,
};
use codec::{micros, opt_micros};

/// The [`Storage`] for a single server: a SQLite database file (WAL mode, `synchronous = NORMAL`, a busy
/// timeout) or a private in-memory database, created and migrated on open.
///
/// Clones share one connection. Calls run on tokio's blocking pool (`spawn_blocking`) when made inside a tokio
/// runtime, and on the calling thread otherwise. A call whose future is dropped still completes; a claim made
/// that way is simply reclaimed when its lease runs out. A file's checkpoints run on a thread of their own, with
/// a second connection, which dropping the last clone stops.
///
/// Times are stored to the microsecond (as in Postgres); sub-microsecond parts are dropped.
#[derive(Clone)]
pub struct SqliteStorage {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Mutex<Connection>,
    path: Option<PathBuf>,
    /// For a file: checkpoints off the calls' path.
    checkpointer: Option<checkpoint::Checkpointer>,
}

impl fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("SqliteStorage");
        match &self.inner.path {
            Some(path) => s.field("path", path),
            None => s.field("path", &":memory:"),
        };
        s.field("schema_version", &Self::SCHEMA_VERSION).finish()
    }
}

impl SqliteStorage {
    /// The schema version this build creates and reads. A database of a newer version is refused.
    pub const SCHEMA_VERSION: u32 = schema::LATEST_VERSION;

    /// Opens (or creates) the database file at `path` and brings its schema up to date. The parent directory
    /// must exist. This blocks while it reads the file; call it before serving, or inside `spawn_blocking`.
    ///
    /// Fails with [`StorageErrorKind::Schema`] when the file was written by a newer version of this crate (or
    /// holds unrelated tables), [`StorageErrorKind::Corrupt`] when it is not a SQLite database, and
    /// [`StorageErrorKind::Unavailable`] when another process holds its write lock past the busy timeout.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref();
        let location = path.display().to_string();
        let connection = Connection::open(path).map_err(|e| codec::error(&format!("opening {location}"), e))?;
        Self::start(connection, Some(path.to_path_buf()), &location)
    }

    /// A new, empty, private in-memory database. Nothing survives dropping its last clone.
    pub fn in_memory() -> Result<Self, StorageError> {
        let connection = Connection::open_in_memory().map_err(|e| codec::error("opening an in-memory database", e))?;
        Self::start(connection, None, "the in-memory database")
    }

    fn start(mut connection: Connection, path: Option<PathBuf>, location: &str) -> Result<Self, StorageError> {
        schema::configure(&connection, path.is_some())?;
        schema::migrate(&mut connection, location)?;
        let checkpointer = match &path {
            Some(path) => Some(checkpoint::Checkpointer::start(&connection, path, location)?),
            None => None,
        };
        Ok(SqliteStorage { inner: Arc::new(Inner { connection: Mutex::new(connection), path, checkpointer }) })
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Runs `work` with the connection, off the async executor.
    async fn run<T, F>(&self, operation: &'static str, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let job = move || {
            // A panic inside `work` rolled its transaction back while unwinding, so the connection is sound.
            let mut connection = inner.connection.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut connection)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime.spawn_blocking(job).await.map_err(|e| {
                StorageError::new(StorageErrorKind::Other, format!("SQLite {operation} did not complete: {e}"))
            })?,
            Err(_) => job(),
        }
    }

    /// Runs `work` in one `IMMEDIATE` transaction (the write lock is taken up front, so nothing read inside it
    /// can change before it commits); any error rolls everything back.
    async fn write<T, F>(&self, operation: &'static str, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        self.write_checked(operation, move |tx| work(tx).map_err(|e| codec::error(operation, e))).await
    }

    /// [`write`](Self::write) for work that produces its own [`StorageError`]s (a corrupt row, a duplicate).
    async fn write_checked<T, F>(&self, operation: &'static str, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StorageError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        self.run(operation, move |connection| {
            let changes = connection.total_changes();
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| codec::error(operation, e))?;
            let value = work(&tx)?;
            tx.commit().map_err(|e| codec::error(operation, e))?;
            // A transaction that changed no row wrote nothing to checkpoint.
            if let Some(checkpointer) = inner.checkpointer.as_ref().filter(|_| connection.total_changes() != changes) {
                checkpointer.committed();
            }
            Ok(value)
        })
        .await
    }
}

/// Runs a prepared query and decodes every row with `decode`.
fn collect<T>(
    rows: rusqlite::Result<rusqlite::Rows<'_>>,
    operation: &str,
    decode: impl Fn(&rusqlite::Row<'_>) -> Result<T, StorageError>,
) -> Result<Vec<T>, StorageError> {
    let mut rows = rows.map_err(|e| codec::error(operation, e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| codec::error(operation, e))? {
        out.push(decode(row)?);
    }
    Ok(out)
}

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
        let row = format!("({})", ["?"; 13].join(", "));
        (0..=ENTRIES_PER_INSERT.ilog2())
            .map(|k| {
                // OR FAIL, as in `claim_take_sql`: no statement journal for a statement of many rows.
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
fn insert_entries(tx: &Transaction<'_>, entries: &[&LogEntry]) -> Result<(), rusqlite::Error> {
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
        }
        insert.raw_execute()?;
    }
    Ok(())
}

/// Stores a delivery unless one with its id is already stored; `false` when it was.
fn insert_delivery(tx: &Transaction<'_>, d: &Delivery) -> Result<bool, rusqlite::Error> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
             ?13, ?14, ?15, ?16, ?17, ?18) ON CONFLICT (id) DO NOTHING"
        )
    });
    let mut insert = tx.prepare_cached(sql)?;
    insert
        .execute(params![
            &d.id.as_bytes()[..],
            d.tenant,
            d.workflow,
            d.action,
            d.module,
            d.record_id,
            d.owner,
            d.method.as_str(),
            d.url,
            d.content_type.as_str(),
            &d.body[..],
            status_text(d.status),
            d.attempts,
            opt_micros(d.next_attempt_at),
            opt_micros(d.lease_expires_at),
            micros(d.created_at),
            micros(d.updated_at),
            d.redelivery_of.as_ref().map(|id| &id.as_bytes()[..]),
        ])
        .map(|inserted| inserted == 1)
}

fn insert_notification(tx: &Transaction<'_>, n: &Notification) -> Result<(), StorageError> {
    let sent_to = codec::sent_to(&n.sent_to)?;
    // The first notification about a delivery stays, as in `MemoryStorage`.
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!("INSERT OR IGNORE INTO notifications ({NOTIFICATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
    });
    let mut insert = tx.prepare_cached(sql).map_err(|e| codec::error("complete (queueing a notification)", e))?;
    insert
        .execute(params![
            &n.delivery_id.as_bytes()[..],
            n.tenant,
            n.owner,
            micros(n.created_at),
            micros(n.next_attempt_at),
            n.attempts,
            sent_to,
            n.last_error,
        ])
        .map_err(|e| codec::error("complete (queueing a notification)", e))?;
    Ok(())
}

/// Deliveries due at `?1`, earliest first, at most `?2`. `LIMIT +?2` rather than `LIMIT ?2`: SQLite plans a
/// statement again whenever the value bound to a bare LIMIT parameter changes.
const DUE_DELIVERIES: &str = "FROM deliveries WHERE due_at <= ?1 ORDER BY due_at, created_at, id LIMIT +?2";

/// Notifications due at `?1`, earliest first, at most `?2`.
const DUE_NOTIFICATIONS: &str = "FROM notifications WHERE due_at <= ?1 ORDER BY due_at, delivery_id LIMIT +?2";

/// Reads the deliveries a claim takes (`?1` now, `?2` the limit).
fn claim_pick_sql() -> String {
    format!("SELECT {DELIVERY_COLUMNS}, rowid {DUE_DELIVERIES}")
}

/// Takes the deliveries [`claim_pick_sql`] read (`?3` the lease, `?4` the claim token).
///
/// OR FAIL: a row failing a constraint would fail the statement without SQLite undoing the rows before it. That
/// spares it the statement journal it otherwise keeps for a statement of many rows (a copy of every page the
/// statement changes, spilled to a temporary file past 64 KiB); any error rolls the whole transaction back anyway.
fn claim_take_sql() -> String {
    format!(
        "UPDATE OR FAIL deliveries SET status = 'dispatched', lease_expires_at = ?3, claim_token = ?4, \
         updated_at = ?1 WHERE rowid IN (SELECT rowid {DUE_DELIVERIES})"
    )
}

/// A page of the log (see [`log_page`]) and the values it binds.
fn log_sql(query: &LogQuery) -> (String, Vec<Value>) {
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

#[async_trait]
impl Storage for SqliteStorage {
    async fn enqueue(&self, deliveries: Vec<Delivery>, entries: Vec<LogEntry>) -> Result<(), StorageError> {
        crate::ports::distinct_ids(&deliveries)?;
        self.write_checked("enqueue", move |tx| {
            let mut skipped = HashSet::new();
            for d in &deliveries {
                if !insert_delivery(tx, d).map_err(|e| codec::error("enqueue", e))? {
                    skipped.insert(d.id);
                }
            }
            let entries: Vec<&LogEntry> = entries.iter().filter(|e| !skipped.contains(&e.delivery_id)).collect();
            insert_entries(tx, &entries).map_err(|e| codec::error("enqueue (appending log entries)", e))
        })
        .await
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Vec<Delivery>, StorageError> {
        let claim = claim.clone();
        self.write_checked("claim_due", move |tx| {
            const OP: &str = "claim_due";
            let now = micros(claim.now);
            let lease_until = micros(claim.lease_until);
            // The batch is read in due order, then taken by one UPDATE of the same rows: the write lock held since
            // BEGIN IMMEDIATE keeps them due until then. A statement costs far more than a row, so not one each.
            let mut pick = tx.prepare_cached(&claim_pick_sql()).map_err(|e| codec::error(OP, e))?;
            let mut rows = pick.query(params![now, sql_count(claim.limit)]).map_err(|e| codec::error(OP, e))?;
            let mut claimed = Vec::new();
            // A row that does not decode is set aside (Failed, with a log entry saying why) rather than failing
            // every claim, and so every tenant's deliveries, until someone repairs it.
            let mut unreadable = Vec::new();
            while let Some(row) = rows.next().map_err(|e| codec::error(OP, e))? {
                match codec::delivery(row) {
                    Ok(delivery) => claimed.push(delivery),
                    Err(why) => unreadable.push(codec::unreadable(row, &why, claim.now)),
                }
            }
            drop(rows);
            if claimed.is_empty() && unreadable.is_empty() {
                return Ok(claimed);
            }
            let mut take = tx.prepare_cached(&claim_take_sql()).map_err(|e| codec::error(OP, e))?;
            let taken = take
                .execute(params![now, sql_count(claim.limit), lease_until, &claim.token.as_bytes()[..]])
                .map_err(|e| codec::error(OP, e))?;
            if taken != claimed.len() + unreadable.len() {
                // Cannot happen under the write lock; refuse (and roll back) rather than hand out a row not taken.
                return Err(StorageError::new(
                    StorageErrorKind::Other,
                    format!("SQLite {OP} read {} due deliveries but took {taken}", claimed.len()),
                ));
            }
            if !unreadable.is_empty() {
                let mut set_aside = tx
                    .prepare_cached(
                        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, lease_expires_at = NULL, \
                         claim_token = NULL, updated_at = ?2 WHERE rowid = ?1",
                    )
                    .map_err(|e| codec::error(OP, e))?;
                for (rowid, _) in &unreadable {
                    set_aside.execute(params![rowid, now]).map_err(|e| codec::error(OP, e))?;
                }
                let entries: Vec<&LogEntry> = unreadable.iter().map(|(_, entry)| entry).collect();
                insert_entries(tx, &entries).map_err(|e| codec::error(OP, e))?;
            }
            // What the UPDATE wrote, as it reads back (to the microsecond).
            let (lease_until, now) = (codec::time(lease_until), codec::time(now));
            for d in &mut claimed {
                d.status = DeliveryStatus::Dispatched;
                d.lease_expires_at = Some(lease_until);
                d.updated_at = now;
            }
            Ok(claimed)
        })
        .await
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<DeliveryId>, StorageError> {
        self.write_checked("complete", move |tx| {
            const OP: &str = "complete";
            // One statement a completion: a multi-row UPDATE ... FROM costs more a row than this does.
            let mut complete = tx
                .prepare_cached(
                    "UPDATE deliveries SET status = ?3, attempts = ?4, next_attempt_at = ?5, lease_expires_at = NULL, \
                     claim_token = NULL, updated_at = ?6 \
                     WHERE id = ?1 AND claim_token = ?2 AND status = 'dispatched'",
                )
                .map_err(|e| codec::error(OP, e))?;
            let mut lost = Vec::new();
            let mut entries = Vec::new();
            for c in &completions {
                let changed = complete
                    .execute(params![
                        &c.id.as_bytes()[..],
                        &c.token.as_bytes()[..],
                        status_text(c.status),
                        c.attempts,
                        opt_micros(c.next_attempt_at),
                        micros(c.at),
                    ])
                    .map_err(|e| codec::error(OP, e))?;
                if changed == 0 {
                    lost.push(c.id);
                    continue;
                }
                entries.extend(&c.entries);
                if let Some(notification) = &c.notification {
                    insert_notification(tx, notification)?;
                }
            }
            // The batch's entries together, in the order given (the log's order for entries of one instant).
            insert_entries(tx, &entries).map_err(|e| codec::error("complete (appending log entries)", e))?;
            Ok(lost)
        })
        .await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.run("next_due_at", |connection| {
            let mut statement = connection
                .prepare_cached("SELECT MIN(due_at) FROM deliveries WHERE due_at IS NOT NULL")
                .map_err(|e| codec::error("next_due_at", e))?;
            let due = collect(statement.query([]), "next_due_at", |row| codec::first_opt_time(row, "delivery"))?;
            Ok(due.into_iter().next().flatten())
        })
        .await
    }

    async fn delivery(&self, tenant: &str, id: DeliveryId) -> Result<Option<Delivery>, StorageError> {
        let tenant = tenant.to_owned();
        self.run("delivery", move |connection| {
            let mut statement = connection
                .prepare_cached(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1 AND tenant = ?2"))
                .map_err(|e| codec::error("delivery", e))?;
            let found = collect(statement.query(params![&id.as_bytes()[..], tenant]), "delivery", codec::delivery)?;
            Ok(found.into_iter().next())
        })
        .await
    }

    async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StorageError> {
        let (sql, values) = log_sql(query);
        self.run("log", move |connection| {
            let mut statement = connection.prepare_cached(&sql).map_err(|e| codec::error("log", e))?;
            collect(statement.query(params_from_iter(values)), "log", codec::log_entry)
        })
        .await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        self.write("prune", move |tx| {
            const DOOMED: &str = "SELECT id FROM deliveries WHERE status IN ('success', 'failed') AND updated_at < ?1 \
                 AND id NOT IN (SELECT delivery_id FROM notifications)";
            let before = micros(before);
            tx.execute(&format!("DELETE FROM log_entries WHERE delivery_id IN ({DOOMED})"), [before])?;
            let removed = tx.execute(&format!("DELETE FROM deliveries WHERE id IN ({DOOMED})"), [before])?;
            Ok(removed as u64)
        })
        .await
    }

    async fn grant_quota(&self, request: &QuotaRequest) -> Result<Vec<DeliveryId>, StorageError> {
        let request = request.clone();
        self.write_checked("grant_quota", move |tx| {
            const OP: &str = "grant_quota";
            let day = request.day.to_string();
            let used: Option<i64> = tx
                .prepare_cached("SELECT used FROM quota_usage WHERE tenant = ?1 AND day = ?2")
                .and_then(|mut s| s.query_row(params![request.tenant, day], |row| row.get(0)).optional())
                .map_err(|e| codec::error(OP, e))?;
            let tenant = &request.tenant;
            let mut used = u64::try_from(used.unwrap_or(0)).map_err(|_| {
                StorageError::new(StorageErrorKind::Corrupt, format!("quota of {tenant} on {day} is negative"))
            })?;
            let before = used;
            // Counts are i64 in SQLite; an allowance past i64::MAX is as good as unlimited.
            let allowance = request.allowance.min(i64::MAX as u64);
            let mut held = tx
                .prepare_cached(
                    "SELECT attempts, quota_day, quota_attempt FROM deliveries \
                     WHERE id = ?1 AND claim_token = ?2 AND status = 'dispatched'",
                )
                .map_err(|e| codec::error(OP, e))?;
            let mut grant = tx
                .prepare_cached("UPDATE deliveries SET quota_day = ?2, quota_attempt = ?3 WHERE id = ?1")
                .map_err(|e| codec::error(OP, e))?;
            let mut granted = Vec::with_capacity(request.deliveries.len());
            for id in &request.deliveries {
                let row: Option<(i64, Option<String>, Option<i64>)> = held
                    .query_row(params![&id.as_bytes()[..], &request.token.as_bytes()[..]], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()
                    .map_err(|e| codec::error(OP, e))?;
                let Some((attempts, held_day, held_attempt)) = row else { continue };
                let attempt = attempts.saturating_add(1);
                if held_day.as_deref() == Some(day.as_str()) && held_attempt == Some(attempt) {
                    granted.push(*id);
                } else if used < allowance {
                    used += 1;
                    grant.execute(params![&id.as_bytes()[..], day, attempt]).map_err(|e| codec::error(OP, e))?;
                    granted.push(*id);
                }
            }
            if used > before {
                tx.prepare_cached(
                    "INSERT INTO quota_usage (tenant, day, used) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (tenant, day) DO UPDATE SET used = excluded.used",
                )
                .and_then(|mut s| s.execute(params![request.tenant, day, used as i64]))
                .map_err(|e| codec::error(OP, e))?;
            }
            Ok(granted)
        })
        .await
    }

    async fn quota_used(&self, tenant: &str, day: NaiveDate) -> Result<u64, StorageError> {
        let tenant = tenant.to_owned();
        let day = day.to_string();
        self.run("quota_used", move |connection| {
            let mut statement = connection
                .prepare_cached("SELECT used FROM quota_usage WHERE tenant = ?1 AND day = ?2")
                .map_err(|e| codec::error("quota_used", e))?;
            let used = collect(statement.query(params![tenant, day]), "quota_used", |row| codec::count(row, "quota"))?;
            Ok(used.into_iter().next().unwrap_or(0))
        })
        .await
    }

    async fn mark_fired(&self, tenant: &str, workflow: &str, record_id: &str) -> Result<bool, StorageError> {
        let key = (tenant.to_owned(), workflow.to_owned(), record_id.to_owned());
        self.write("mark_fired", move |tx| {
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO fired_once (tenant, workflow, record_id) VALUES (?1, ?2, ?3)",
                params![key.0, key.1, key.2],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn next_run(&self, tenant: &str, workflow: &str) -> Result<Option<DateTime<Utc>>, StorageError> {
        let key = (tenant.to_owned(), workflow.to_owned());
        self.run("next_run", move |connection| {
            let mut statement = connection
                .prepare_cached("SELECT next_run FROM schedules WHERE tenant = ?1 AND workflow = ?2")
                .map_err(|e| codec::error("next_run", e))?;
            let found = collect(statement.query(params![key.0, key.1]), "next_run", |row| {
                codec::first_opt_time(row, "schedule")
            })?;
            Ok(found.into_iter().next().flatten())
        })
        .await
    }

    async fn set_next_run(
        &self,
        tenant: &str,
        workflow: &str,
        expected: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, StorageError> {
        let key = (tenant.to_owned(), workflow.to_owned());
        self.write("set_next_run", move |tx| {
            // `IS` compares NULLs as equal: a stored "no next run" matches `expected = None`.
            let updated = tx.execute(
                "UPDATE schedules SET next_run = ?3 WHERE tenant = ?1 AND workflow = ?2 AND next_run IS ?4",
                params![key.0, key.1, opt_micros(next), opt_micros(expected)],
            )?;
            if updated == 1 {
                return Ok(true);
            }
            // A missing row reads as `None`, so only `expected = None` may create it.
            if expected.is_some() {
                return Ok(false);
            }
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO schedules (tenant, workflow, next_run) VALUES (?1, ?2, ?3)",
                params![key.0, key.1, opt_micros(next)],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn claim_notifications(&self, claim: &Claim) -> Result<Vec<Notification>, StorageError> {
        let claim = claim.clone();
        self.write_checked("claim_notifications", move |tx| {
            const OP: &str = "claim_notifications";
            let now = micros(claim.now);
            // As in `claim_due`: the batch is read in due order, then the same rows are taken by one UPDATE.
            let mut pick = tx
                .prepare_cached(&format!("SELECT {NOTIFICATION_COLUMNS} {DUE_NOTIFICATIONS}"))
                .map_err(|e| codec::error(OP, e))?;
            let claimed = collect(pick.query(params![now, sql_count(claim.limit)]), OP, codec::notification)?;
            if claimed.is_empty() {
                return Ok(claimed);
            }
            let mut take = tx
                .prepare_cached(&format!(
                    "UPDATE notifications SET claim_token = ?3, lease_until = ?4 \
                     WHERE delivery_id IN (SELECT delivery_id {DUE_NOTIFICATIONS})"
                ))
                .map_err(|e| codec::error(OP, e))?;
            let params = params![now, sql_count(claim.limit), &claim.token.as_bytes()[..], micros(claim.lease_until)];
            let taken = take.execute(params).map_err(|e| codec::error(OP, e))?;
            if taken != claimed.len() {
                return Err(StorageError::new(
                    StorageErrorKind::Other,
                    format!("SQLite {OP} read {} due notifications but took {taken}", claimed.len()),
                ));
            }
            Ok(claimed)
        })
        .await
    }

    async fn update_notification(&self, update: NotificationUpdate) -> Result<bool, StorageError> {
        self.write_checked("update_notification", move |tx| {
            const OP: &str = "update_notification";
            let id = &update.delivery_id.as_bytes()[..];
            let token = &update.token.as_bytes()[..];
            let changed = if update.done {
                tx.execute("DELETE FROM notifications WHERE delivery_id = ?1 AND claim_token = ?2", params![id, token])
            } else {
                tx.execute(
                    "UPDATE notifications SET claim_token = CASE WHEN ?7 THEN claim_token END, \
                     lease_until = CASE WHEN ?7 THEN lease_until END, sent_to = ?3, attempts = ?4, \
                     next_attempt_at = ?5, last_error = ?6 WHERE delivery_id = ?1 AND claim_token = ?2",
                    params![
                        id,
                        token,
                        codec::sent_to(&update.sent_to)?,
                        update.attempts,
                        micros(update.next_attempt_at),
                        update.last_error,
                        update.keep_claim,
                    ],
                )
            }
            .map_err(|e| codec::error(OP, e))?;
            Ok(changed == 1)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::testing::storage_contract::{sample_delivery, t0};
    use crate::{ClaimToken, DeliveryStatus};

    fn raw(storage: &SqliteStorage) -> std::sync::MutexGuard<'_, Connection> {
        storage.inner.connection.lock().unwrap()
    }

    #[tokio::test]
    async fn a_bad_row_is_a_corrupt_error_not_a_panic() {
        let storage = SqliteStorage::in_memory().unwrap();
        let d = sample_delivery("acme", "w1", t0());
        storage.enqueue(vec![d.clone()], vec![]).await.unwrap();
        raw(&storage).execute("UPDATE deliveries SET method = 'GET'", []).unwrap();
        let error = storage.delivery("acme", d.id).await.unwrap_err();
        assert_eq!(error.kind(), StorageErrorKind::Corrupt);
        assert!(error.message().contains("`method`"), "{error}");

        // A claim sets an unreadable row aside (Failed, logged) and hands out the readable ones.
        let good = sample_delivery("acme", "w1", t0());
        storage.enqueue(vec![good.clone()], vec![]).await.unwrap();
        raw(&storage)
            .execute("UPDATE deliveries SET method = 'POST', id = x'0102' WHERE id = ?1", [&d.id.as_bytes()[..]])
            .unwrap();
        let claimed = storage.claim_due(&claim(t0())).await.unwrap();
        assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![good.id], "the readable one is claimed");
        let back: String =
            raw(&storage).query_row("SELECT status FROM deliveries WHERE id = x'0102'", [], |r| r.get(0)).unwrap();
        assert_eq!(back, "failed", "the unreadable one is set aside");
        let log = storage.log(&LogQuery::tenant("acme").status(DeliveryStatus::Failed)).await.unwrap();
        assert_eq!(log.len(), 1);
        assert!(
            log[0].message.contains("set aside") && log[0].error.as_deref().unwrap().contains("2 bytes"),
            "{log:?}"
        );
        assert!(storage
            .claim_due(&claim(t0() + chrono::Duration::hours(1)))
            .await
            .unwrap()
            .iter()
            .all(|c| c.id == good.id));

        raw(&storage)
            .execute("UPDATE deliveries SET id = ?1, attempts = -1 WHERE id = x'0102'", [&d.id.as_bytes()[..]])
            .unwrap();
        assert_eq!(storage.delivery("acme", d.id).await.unwrap_err().kind(), StorageErrorKind::Corrupt);
        raw(&storage).execute("UPDATE deliveries SET attempts = 'x'", []).unwrap();
        assert_eq!(storage.delivery("acme", d.id).await.unwrap_err().kind(), StorageErrorKind::Corrupt);
    }

    #[tokio::test]
    async fn a_bad_sent_to_is_corrupt() {
        let storage = SqliteStorage::in_memory().unwrap();
        raw(&storage)
            .execute(
                "INSERT INTO notifications (delivery_id, tenant, owner, created_at, next_attempt_at, attempts, sent_to) \
                 VALUES (?1, 'acme', '19x1', 0, 0, 0, 'not json')",
                [&DeliveryId::new().as_bytes()[..]],
            )
            .unwrap();
        let error = storage.claim_notifications(&claim(t0())).await.unwrap_err();
        assert_eq!(error.kind(), StorageErrorKind::Corrupt, "{error}");
    }

    #[tokio::test]
    async fn empty_bodies_and_sub_second_times_round_trip() {
        let storage = SqliteStorage::in_memory().unwrap();
        let mut d = sample_delivery("acme", "w1", t0() + chrono::Duration::microseconds(1));
        d.body = bytes::Bytes::new();
        d.redelivery_of = Some(DeliveryId::new());
        d.created_at = t0() - chrono::Duration::microseconds(123_456);
        storage.enqueue(vec![d.clone()], vec![]).await.unwrap();
        assert_eq!(storage.delivery("acme", d.id).await.unwrap(), Some(d));
    }

    #[test]
    fn busy_maps_to_unavailable_and_names_the_operation() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        let error = codec::error("claim_due", busy);
        assert!(error.is_transient());
        assert!(error.message().contains("claim_due"));
        let locked = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_LOCKED), None);
        assert_eq!(codec::error("complete", locked).kind(), StorageErrorKind::Unavailable);
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        assert_eq!(codec::error("enqueue", full).kind(), StorageErrorKind::Other);
    }

    #[test]
    fn queries_use_the_indexes() {
        let storage = SqliteStorage::in_memory().unwrap();
        let plan = |sql: &str| -> String {
            let connection = raw(&storage);
            let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            // Unbound parameters are NULL, which the plan does not depend on.
            let mut rows = statement.raw_query();
            let mut steps = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                steps.push(row.get::<_, String>(3).unwrap());
            }
            steps.join("; ")
        };
        let claim = plan(&claim_pick_sql());
        assert!(claim.contains("deliveries_due") && !claim.contains("TEMP B-TREE"), "{claim}");
        let take = plan(&claim_take_sql());
        assert!(take.contains("deliveries_due") && !take.contains("SCAN"), "{take}");
        let id = DeliveryId::new();
        let logs = [
            (LogQuery::tenant("a"), "log_by_tenant"),
            (LogQuery::tenant("a").status(DeliveryStatus::Failed).action("x"), "log_by_tenant"),
            (LogQuery::tenant("a").between(t0(), t0()), "log_by_tenant"),
            (LogQuery::tenant("a").workflow("w"), "log_by_workflow"),
            (LogQuery::tenant("a").record("r").workflow("w"), "log_by_record"),
            (LogQuery::tenant("a").delivery(id), "log_by_delivery"),
            (LogQuery::tenant("a").delivery(id).workflow("w").between(t0(), t0()), "log_by_delivery"),
        ];
        for (query, index) in logs {
            let log = plan(&log_sql(&query).0);
            assert!(log.contains(index) && !log.contains("TEMP B-TREE"), "{query:?}: {log}");
        }
        let prune = plan("SELECT id FROM deliveries WHERE status IN ('success', 'failed') AND updated_at < 5");
        assert!(prune.contains("deliveries_settled"), "{prune}");
        let log_prune = plan("DELETE FROM log_entries WHERE delivery_id IN (SELECT id FROM deliveries)");
        assert!(log_prune.contains("log_by_delivery"), "{log_prune}");
        let outbox = plan(&format!("SELECT delivery_id {DUE_NOTIFICATIONS}"));
        assert!(outbox.contains("notifications_due") && !outbox.contains("TEMP B-TREE"), "{outbox}");
    }

    #[test]
    fn debug_names_the_location() {
        let storage = SqliteStorage::in_memory().unwrap();
        assert!(format!("{storage:?}").contains(":memory:"));
        assert_eq!(storage.path(), None);
    }

    #[test]
    fn works_outside_a_tokio_runtime() {
        let storage = SqliteStorage::in_memory().unwrap();
        let d = sample_delivery("acme", "w1", t0());
        futures_util::FutureExt::now_or_never(storage.enqueue(vec![d.clone()], vec![])).unwrap().unwrap();
        let back = futures_util::FutureExt::now_or_never(storage.delivery("acme", d.id)).unwrap().unwrap();
        assert_eq!(back.map(|b| b.status), Some(DeliveryStatus::Queued));
    }

    fn claim(now: DateTime<Utc>) -> Claim {
        Claim { now, limit: 10, lease_until: now + chrono::Duration::seconds(30), token: ClaimToken::new() }
    }
}
