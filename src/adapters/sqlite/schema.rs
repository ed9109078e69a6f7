//! Connection settings and the embedded, versioned migrations. The version lives in SQLite's `user_version`
//! header field, which a migration's transaction updates together with its tables.

use std::time::Duration;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::ports::{StorageError, StorageErrorKind};

use super::codec;

/// The newest schema this build knows; migration `n` (1-based) brings a database from `n - 1` to `n`.
pub(super) const LATEST_VERSION: u32 = MIGRATIONS.len() as u32;

/// How long a statement waits for another connection's write lock before failing as `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection (the claim, finish and log statements, and their variants).
const STATEMENT_CACHE: usize = 64;

const MIGRATIONS: [&str; 1] = [MIGRATION_1];

/// Everything: the queue, the log, quota counters, trigger state and the notification outbox.
///
/// `due_at` is when a row is next claimable (`NULL`: never by itself). It is a virtual column so that one
/// partial index serves both the claim (`due_at <= now ORDER BY due_at`) and `next_due_at` (`MIN(due_at)`).
/// A `Dispatched` delivery without a claim token (never claimed, or finished as `Dispatched`) is not due,
/// as in `MemoryStorage`, where only a lease taken by a claim runs out.
///
/// Written for the cost of a row: `status` is checked by a chain of `=` (SQLite builds a temporary table for
/// each row checked against an `IN` list of more than two values), and `log_entries.seq` is a plain rowid (the
/// largest plus one, so still in write order among the entries stored) rather than AUTOINCREMENT, which would
/// update `sqlite_sequence` with every entry. Every index is one more B-tree page written by a commit that
/// touches it; the log keeps one per filter that needs it to stay fast.
const MIGRATION_1: &str = "
CREATE TABLE deliveries (
    id               BLOB PRIMARY KEY NOT NULL,
    tenant           TEXT NOT NULL,
    workflow         TEXT NOT NULL,
    action           TEXT NOT NULL,
    module           TEXT NOT NULL,
    record_id        TEXT NOT NULL,
    owner            TEXT NOT NULL,
    method           TEXT NOT NULL,
    url              TEXT NOT NULL,
    content_type     TEXT NOT NULL,
    body             BLOB NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status = 'Queued' OR status = 'Dispatched' OR status = 'Success' OR status = 'Failed'),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER,
    lease_expires_at INTEGER,
    claim_token      BLOB,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    redelivery_of    BLOB,
    due_at           INTEGER GENERATED ALWAYS AS (
        CASE
            WHEN status = 'Queued' THEN next_attempt_at
            WHEN status = 'Dispatched' AND claim_token IS NOT NULL THEN lease_expires_at
        END
    ) VIRTUAL
);
CREATE INDEX deliveries_due ON deliveries (due_at, created_at, id) WHERE due_at IS NOT NULL;
CREATE INDEX deliveries_settled ON deliveries (updated_at) WHERE status IN ('Success', 'Failed');

CREATE TABLE log_entries (
    seq              INTEGER PRIMARY KEY,
    delivery_id      BLOB NOT NULL,
    tenant           TEXT NOT NULL,
    workflow         TEXT NOT NULL,
    action           TEXT NOT NULL,
    record_id        TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    http_status      INTEGER,
    response_snippet TEXT,
    error            TEXT,
    next_attempt_at  INTEGER,
    message          TEXT NOT NULL
);
CREATE INDEX log_by_tenant ON log_entries (tenant, at);
CREATE INDEX log_by_workflow ON log_entries (tenant, workflow, at);
CREATE INDEX log_by_record ON log_entries (tenant, record_id, at);
CREATE INDEX log_by_delivery ON log_entries (delivery_id, at);

CREATE TABLE quota_usage (
    tenant TEXT NOT NULL,
    day    TEXT NOT NULL,
    used   INTEGER NOT NULL,
    PRIMARY KEY (tenant, day)
) WITHOUT ROWID;

CREATE TABLE fired_once (
    tenant    TEXT NOT NULL,
    workflow  TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (tenant, workflow, record_id)
) WITHOUT ROWID;

CREATE TABLE schedules (
    tenant   TEXT NOT NULL,
    workflow TEXT NOT NULL,
    next_run INTEGER,
    PRIMARY KEY (tenant, workflow)
) WITHOUT ROWID;

CREATE TABLE notifications (
    delivery_id     BLOB PRIMARY KEY NOT NULL,
    tenant          TEXT NOT NULL,
    owner           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    sent_to         TEXT NOT NULL,
    last_error      TEXT,
    claim_token     BLOB,
    lease_until     INTEGER,
    due_at          INTEGER GENERATED ALWAYS AS (
        CASE WHEN claim_token IS NULL THEN next_attempt_at ELSE lease_until END
    ) VIRTUAL
);
CREATE INDEX notifications_due ON notifications (due_at, delivery_id) WHERE due_at IS NOT NULL;
";

/// Applies the connection settings: a busy timeout, `synchronous = NORMAL`, and WAL for files (readers do not
/// block the writer, and NORMAL is durable across application crashes in WAL mode).
pub(super) fn configure(connection: &Connection, file: bool) -> Result<(), StorageError> {
    connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| codec::error("setting the busy timeout", e))?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if file {
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| codec::error("switching to WAL mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::new(
                StorageErrorKind::Other,
                format!("SQLite kept journal mode \"{mode}\" instead of WAL; put the database on a local file system"),
            ));
        }
    }
    connection.pragma_update(None, "synchronous", "NORMAL").map_err(|e| codec::error("setting synchronous", e))?;
    Ok(())
}

/// Brings the database to [`LATEST_VERSION`] in one transaction, or refuses one written by a newer version.
/// The write lock is taken first, so two processes opening the same new file migrate it once.
pub(super) fn migrate(connection: &mut Connection, location: &str) -> Result<(), StorageError> {
    let failed = |step: &str, e: rusqlite::Error| {
        let busy = matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked));
        let mut error = codec::error(&format!("{step} of {location}"), e);
        if !busy && error.kind() == StorageErrorKind::Other {
            error = StorageError::new(StorageErrorKind::Schema, error.message());
        }
        error
    };
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| failed("locking for migration", e))?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| failed("reading the schema version", e))?;
    let found = u32::try_from(found).map_err(|_| {
        StorageError::new(
            StorageErrorKind::Schema,
            format!("{location} has schema version {found}, which no version of crm-webhooks writes"),
        )
    })?;
    if found > LATEST_VERSION {
        return Err(StorageError::new(
            StorageErrorKind::Schema,
            format!(
                "{location} has schema version {found}, newer than version {LATEST_VERSION} this build of \
                 crm-webhooks knows; upgrade crm-webhooks, or open another file"
            ),
        ));
    }
    if found == LATEST_VERSION {
        return Ok(());
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(migration).map_err(|e| failed(&format!("applying migration {}", index + 1), e))?;
    }
    tx.pragma_update(None, "user_version", LATEST_VERSION).map_err(|e| failed("recording the schema version", e))?;
    tx.commit().map_err(|e| failed("committing the migration", e))
}
