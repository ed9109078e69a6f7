//! Connection settings and the embedded, versioned migrations. The version lives in the one-row table
//! `crm_webhooks_schema`, which a migration's transaction updates together with the other tables. Versions 1 to
//! 4 kept it in SQLite's `user_version` header field, which is the file owner's: a host whose own tables share
//! the file may use it for its own migrations, so it is read only to recognise a file of those versions.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::ports::{StorageError, StorageErrorKind};

use super::codec;
use crate::adapters::sql::{latest_version, pending, Migration};

/// The newest schema this build knows; migration `n` brings a database from `n - 1` to `n`.
pub(super) const LATEST_VERSION: u32 = latest_version(&MIGRATIONS) as u32;

/// How long a statement waits for another connection's write lock before failing as `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The page cache of the connection that writes, in KiB (SQLite's default is 2 MiB). Every delivery and log
/// entry lands on a random leaf of the indexes keyed by delivery id, so under load a small cache re-reads pages
/// from the WAL for most rows; 16 MiB holds those indexes' leaves for a few hundred thousand deliveries, and is
/// only used as pages are read. The reading connection keeps the default: SQLite empties a reader's cache
/// whenever another connection has committed.
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// Prepared statements kept per connection (the claim, finish and log statements, and their variants).
const STATEMENT_CACHE: usize = 64;

/// Every migration, in order.
const MIGRATIONS: [Migration; 7] = [
    Migration {
        version: 1,
        description: "queue, log, quota counters, trigger state and notification outbox",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        description: "quota grants held by deliveries",
        sql: include_str!("migrations/0002_quota_grants.sql"),
    },
    Migration {
        version: 3,
        description: "statuses stored in lower case",
        sql: include_str!("migrations/0003_lowercase_statuses.sql"),
    },
    Migration {
        version: 4,
        description: "deliveries sent in order per record",
        sql: include_str!("migrations/0004_ordered_lines.sql"),
    },
    Migration {
        version: 5,
        description: "the schema version in a table of its own",
        sql: include_str!("migrations/0005_version_table.sql"),
    },
    Migration {
        version: 6,
        description: "endpoint health, rate limits and notices",
        sql: include_str!("migrations/0006_endpoint_health.sql"),
    },
    Migration {
        version: 7,
        description: "failure codes in the log",
        sql: include_str!("migrations/0007_failure_reasons.sql"),
    },
];

/// The last version recorded in `user_version` rather than in `crm_webhooks_schema`.
const LAST_HEADER_VERSION: i64 = 4;

/// Applies the settings of the connection that writes: a busy timeout, `synchronous = NORMAL`, a larger page
/// cache, and WAL for files (readers do not block the writer, and NORMAL is durable across application crashes in
/// WAL mode).
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
    // A negative size is in KiB.
    connection
        .pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(|e| codec::error("setting the page cache size", e))?;
    Ok(())
}

/// Opens the connection that reads a database file (configured and migrated by the writer's): the same busy
/// timeout and statement cache, and `query_only`, so that nothing it runs can write.
pub(super) fn open_reader(path: &Path, location: &str) -> Result<Connection, StorageError> {
    let connection = Connection::open(path).map_err(|e| codec::error(&format!("opening {location} for reading"), e))?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| codec::error("setting the reader's busy timeout", e))?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    connection.pragma_update(None, "query_only", true).map_err(|e| codec::error("making the reader read only", e))?;
    Ok(connection)
}

/// The crate's schema version in the file a connection is on: `crm_webhooks_schema` when it exists; otherwise,
/// when the crate's tables of versions 1 to 4 are there, `user_version`; otherwise 0 (none of the crate's tables,
/// whatever the host keeps in `user_version`).
pub(super) fn version(connection: &Connection) -> Result<i64, rusqlite::Error> {
    let table = |name: &str| {
        connection.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |row| {
            row.get::<_, i64>(0)
        })
    };
    if table("crm_webhooks_schema")? > 0 {
        let found: Option<i64> =
            connection.query_row("SELECT max(version) FROM crm_webhooks_schema", [], |row| row.get(0))?;
        return Ok(found.unwrap_or(0));
    }
    if table("deliveries")? > 0 && table("fired_once")? > 0 {
        let header: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if (1..=LAST_HEADER_VERSION).contains(&header) {
            return Ok(header);
        }
    }
    Ok(0)
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
    let found: i64 = version(&tx).map_err(|e| failed("reading the schema version", e))?;
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
    for migration in pending(&MIGRATIONS, i64::from(found)) {
        let doing = format!("applying migration {} ({})", migration.version, migration.description);
        tx.execute_batch(migration.sql).map_err(|e| failed(&doing, e))?;
    }
    tx.execute("DELETE FROM crm_webhooks_schema", []).map_err(|e| failed("recording the schema version", e))?;
    tx.execute("INSERT INTO crm_webhooks_schema (version) VALUES (?1)", [LATEST_VERSION])
        .map_err(|e| failed("recording the schema version", e))?;
    tx.commit().map_err(|e| failed("committing the migration", e))
}
