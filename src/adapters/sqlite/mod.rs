//! [`SqliteStorage`]: the embedded [`Storage`], one SQLite file per host (or a private in-memory database).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), crm_webhooks::ports::StorageError> {
//! use crm_webhooks::adapters::sqlite::SqliteStorage;
//! use crm_webhooks::Storage;
//!
//! let dir = tempfile::tempdir().map_err(|e| crm_webhooks::ports::StorageError::new(crm_webhooks::ports::StorageErrorKind::Other, e.to_string()))?;
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

// Here: the handle, opening, and running calls on the blocking pool, one transaction each. The statements are in a
// file per concern (`queue`, `log`, `state`, `outbox`), each a function of a connection or transaction; `codec`
// turns values into columns and back, `schema` configures and migrates, `checkpoint` runs the checkpoints.
mod checkpoint;
mod codec;
mod log;
mod outbox;
mod queue;
mod schema;
mod state;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::delivery::{Delivery, DeliveryId, LogEntry, LogQuery};
use crate::ports::{
    Claim, Completion, Notification, NotificationUpdate, QuotaRequest, Storage, StorageError, StorageErrorKind,
};

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

#[async_trait]
impl Storage for SqliteStorage {
    async fn enqueue(&self, deliveries: Vec<Delivery>, entries: Vec<LogEntry>) -> Result<(), StorageError> {
        crate::ports::distinct_ids(&deliveries)?;
        self.write_checked("enqueue", move |tx| queue::enqueue(tx, &deliveries, &entries)).await
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Vec<Delivery>, StorageError> {
        let claim = claim.clone();
        self.write_checked("claim_due", move |tx| queue::claim_due(tx, &claim)).await
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<DeliveryId>, StorageError> {
        self.write_checked("complete", move |tx| queue::complete(tx, &completions)).await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.run("next_due_at", |connection| queue::next_due_at(connection)).await
    }

    async fn delivery(&self, tenant: &str, id: DeliveryId) -> Result<Option<Delivery>, StorageError> {
        let tenant = tenant.to_owned();
        self.run("delivery", move |connection| queue::delivery(connection, &tenant, id)).await
    }

    async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StorageError> {
        let query = query.clone();
        self.run("log", move |connection| log::page(connection, &query)).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        self.write("prune", move |tx| log::prune(tx, before)).await
    }

    async fn grant_quota(&self, request: &QuotaRequest) -> Result<Vec<DeliveryId>, StorageError> {
        let request = request.clone();
        self.write_checked("grant_quota", move |tx| state::grant_quota(tx, &request)).await
    }

    async fn quota_used(&self, tenant: &str, day: NaiveDate) -> Result<u64, StorageError> {
        let tenant = tenant.to_owned();
        self.run("quota_used", move |connection| state::quota_used(connection, &tenant, day)).await
    }

    async fn mark_fired(&self, tenant: &str, workflow: &str, record_id: &str) -> Result<bool, StorageError> {
        let (tenant, workflow, record_id) = (tenant.to_owned(), workflow.to_owned(), record_id.to_owned());
        self.write("mark_fired", move |tx| state::mark_fired(tx, &tenant, &workflow, &record_id)).await
    }

    async fn next_run(&self, tenant: &str, workflow: &str) -> Result<Option<DateTime<Utc>>, StorageError> {
        let (tenant, workflow) = (tenant.to_owned(), workflow.to_owned());
        self.run("next_run", move |connection| state::next_run(connection, &tenant, &workflow)).await
    }

    async fn set_next_run(
        &self,
        tenant: &str,
        workflow: &str,
        expected: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, StorageError> {
        let (tenant, workflow) = (tenant.to_owned(), workflow.to_owned());
        self.write("set_next_run", move |tx| state::set_next_run(tx, &tenant, &workflow, expected, next)).await
    }

    async fn claim_notifications(&self, claim: &Claim) -> Result<Vec<Notification>, StorageError> {
        let claim = claim.clone();
        self.write_checked("claim_notifications", move |tx| outbox::claim(tx, &claim)).await
    }

    async fn update_notification(&self, update: NotificationUpdate) -> Result<bool, StorageError> {
        self.write_checked("update_notification", move |tx| outbox::update(tx, &update)).await
    }
}
