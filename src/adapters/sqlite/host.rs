//! Queueing in the host's own transaction: the crate's rows written on the host's connection to the same file,
//! so they commit or roll back with the host's save.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::delivery::DeliveryId;
use crate::engine::Prepared;
use crate::ports::{StorageError, StorageErrorKind};

use super::{codec, queue, schema};

/// The savepoint the writes run in, so that a failed enqueue leaves the host's transaction as it was.
const SAVEPOINT: &str = "crm_webhooks_enqueue";

/// Writes `prepared` on `connection` (the host's, inside its transaction) to the file at `path`.
pub(super) fn enqueue_in(
    connection: &Connection,
    path: Option<&Path>,
    prepared: Prepared,
) -> Result<Vec<DeliveryId>, StorageError> {
    let Some(path) = path else {
        return Err(StorageError::new(
            StorageErrorKind::Other,
            "an in-memory SqliteStorage cannot share a host's transaction: open the storage on the host's file",
        ));
    };
    same_file(connection, path)?;
    let version = schema::version(connection).map_err(|e| codec::error("reading the schema version", e))?;
    if version != i64::from(schema::LATEST_VERSION) {
        return Err(StorageError::new(
            StorageErrorKind::Schema,
            format!(
                "the host's connection sees schema version {version} of crm-webhooks, not {}: open the \
                 SqliteStorage on this file first, which migrates it",
                schema::LATEST_VERSION
            ),
        ));
    }
    if prepared.is_empty() && prepared.batch.once.is_empty() {
        return Ok(Vec::new());
    }
    connection
        .execute_batch(&format!("SAVEPOINT {SAVEPOINT}"))
        .map_err(|e| codec::error("starting the enqueue's savepoint", e))?;
    match queue::enqueue(connection, prepared.into_batch()) {
        Ok(ids) => {
            connection
                .execute_batch(&format!("RELEASE {SAVEPOINT}"))
                .map_err(|e| codec::error("releasing the enqueue's savepoint", e))?;
            Ok(ids)
        }
        Err(error) => {
            // Undo what this call wrote, and keep the host's transaction going; the error is what the host
            // needs to see, so a failure to roll back only adds to it.
            if let Err(undo) = connection.execute_batch(&format!("ROLLBACK TO {SAVEPOINT}; RELEASE {SAVEPOINT}")) {
                return Err(StorageError::new(
                    error.kind(),
                    format!("{} (and undoing it failed: {undo})", error.message()),
                ));
            }
            Err(error)
        }
    }
}

/// Refuses a connection to another file than the storage's: its rows would never be sent.
fn same_file(connection: &Connection, path: &Path) -> Result<(), StorageError> {
    let file: String = connection
        .query_row("SELECT file FROM pragma_database_list WHERE name = 'main'", [], |row| row.get(0))
        .map_err(|e| codec::error("reading which file the host's connection is on", e))?;
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if file.is_empty() || canonical(Path::new(&file)) != canonical(path) {
        let shown = if file.is_empty() { "a private or in-memory database".to_owned() } else { file };
        return Err(StorageError::new(
            StorageErrorKind::Other,
            format!(
                "the host's connection is on {shown}, not on the storage's file {}: its webhooks would never be \
                 sent; open the connection on the storage's file",
                PathBuf::from(path).display()
            ),
        ));
    }
    Ok(())
}
