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
//! Writes go to one writer thread, which holds the connection that writes and commits every write waiting at
//! the moment in one `IMMEDIATE` transaction, each inside a savepoint of its own (group commit, see `writer`):
//! callers writing at the same time share a commit, and a claim's select-then-update still runs under the write
//! lock, so two claims never take the same row (SQLite has no `SKIP LOCKED`; it does not need it). Reads run on
//! tokio's blocking thread pool with a connection of their own, beside the writer (WAL lets readers read while a
//! transaction writes): they never queue behind writes. A claim first asks that reading connection whether
//! anything is due, so an idle worker's poll takes no write lock. Several processes may open the same file;
//! SQLite's write lock and the busy timeout serialise them.

// Here: the handle, opening, and the calls: reads on the blocking pool, writes through the `writer` thread. The
// statements are in a file per concern (`queue`, `log`, `state`, `outbox`), each a function of a connection;
// `codec` turns values into columns and back, `schema` configures and migrates, `checkpoint` runs the
// checkpoints.
mod checkpoint;
mod codec;
mod endpoint;
mod host;
mod log;
mod outbox;
mod queue;
mod schema;
mod state;
#[cfg(test)]
mod tests;
mod writer;

/// The rusqlite this adapter is built with: open the host's connection with it (see
/// [`SqliteStorage::enqueue_in`]), so the versions match.
pub use rusqlite;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::Connection;

use crate::delivery::{Delivery, DeliveryId, LogEntry, LogQuery};
use crate::engine::Prepared;
use crate::ports::{
    Claim, Completion, Enqueue, Notification, NotificationUpdate, QuotaRequest, Storage, StorageError, StorageErrorKind,
};

/// The [`Storage`] for a single server: a SQLite database file (WAL mode, `synchronous = NORMAL`, a busy
/// timeout) or a private in-memory database, created and migrated on open.
///
/// Clones share one writer thread and one reading connection. Writes are committed in groups: every write
/// waiting when the writer begins a transaction goes into it, each all or nothing on its own, and each caller is
/// answered once the commit holding its writes is done. Reads run on tokio's blocking pool (`spawn_blocking`)
/// when made inside a tokio runtime, and on the calling thread otherwise; a write's future may be awaited on any
/// executor. A call whose future is dropped still completes; a claim made that way is simply reclaimed when its
/// lease runs out. A file's checkpoints run on a thread of their own, with a connection of their own; dropping
/// the last clone lets the writer finish what it was sent, then stops both threads.
///
/// An in-memory database has a single connection (a private database cannot have two), so there reads wait
/// while the writer runs a transaction.
///
/// Times are stored to the microsecond (as in Postgres); sub-microsecond parts are dropped.
#[derive(Clone)]
pub struct SqliteStorage {
    inner: Arc<Inner>,
}

// Fields drop in order: the reader first, so that the writer's connection, closed last, runs the final checkpoint.
struct Inner {
    /// The connection that reads: for a file, one of its own; in memory, the writer's.
    reader: Arc<Mutex<Connection>>,
    /// The thread with the connection that writes (it owns the checkpointer).
    writer: writer::Writer,
    path: Option<PathBuf>,
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
        let connection = Arc::new(Mutex::new(connection));
        let reader = match &path {
            Some(path) => Arc::new(Mutex::new(schema::open_reader(path, location)?)),
            None => Arc::clone(&connection),
        };
        let writer = writer::Writer::start(connection, checkpointer, location)?;
        Ok(SqliteStorage { inner: Arc::new(Inner { reader, writer, path }) })
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Queues what [`Engine::prepare`](crate::Engine::prepare) made inside the host's own transaction on this
    /// storage's file: the deliveries, their `Queued` log entries and the `once` marks are written on `connection`
    /// (a [`rusqlite::Transaction`] derefs to one), so they commit with the host's save and vanish with its
    /// rollback. Returns the ids queued (a `once` workflow that fired before queues nothing).
    ///
    /// No I/O but those writes, and no waiting for this storage's writer: the host's transaction holds the
    /// file's write lock. The writes run in a savepoint, so a failure leaves the host's transaction as it was.
    /// Start the host's transaction with [`TransactionBehavior::Immediate`](rusqlite::TransactionBehavior) (a
    /// deferred one that read first may fail with `SQLITE_BUSY` when it comes to write), and after the commit call
    /// [`Engine::notify_workers`](crate::Engine::notify_workers), so the workers send at once rather than at their
    /// next poll.
    ///
    /// Fails when `connection` is on another file (its rows would never be sent), when this storage is in
    /// memory, or when the file's schema is not this library's version.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::sync::Arc;
    /// # use crm_webhooks::testing::{MockHttp, RecordingMailer, StaticDirectory};
    /// use crm_webhooks::adapters::sqlite::{rusqlite, SqliteStorage};
    /// use crm_webhooks::{Change, Engine, RecordEvent, WorkflowSet};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("crm.db");
    /// let storage = SqliteStorage::open(&file)?; // migrates the crate's tables into the host's file
    /// # let engine = Engine::builder().storage(Arc::new(storage.clone())).http(Arc::new(MockHttp::new_ok()))
    /// #     .mailer(Arc::new(RecordingMailer::new())).directory(Arc::new(StaticDirectory::new())).build()?;
    /// # engine.set_workflows("acme", WorkflowSet::from_json(r#"[{"id": "w", "module": "Leads", "trigger": "every_save",
    /// #     "actions": [{"title": "t", "url": "https://hooks.example/in", "content_type": "JSON",
    /// #     "parameters": [{"name": "id", "field": "id"}]}]}]"#)?)?;
    /// let mut crm = rusqlite::Connection::open(&file)?;
    /// crm.execute_batch("CREATE TABLE IF NOT EXISTS leads (id TEXT PRIMARY KEY, name TEXT)")?;
    ///
    /// let event = RecordEvent::new("acme", "Leads", "10x1", Change::Created, "19x1").field("id", "10x1");
    /// let prepared = engine.prepare(&[event]).await?; // matching and rendering, before the transaction
    /// let tx = crm.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    /// tx.execute("INSERT INTO leads (id, name) VALUES ('10x1', 'Ada')", [])?;
    /// let queued = storage.enqueue_in(&tx, prepared)?;
    /// tx.commit()?; // the lead and its webhook, or neither
    /// engine.notify_workers();
    /// assert_eq!(queued.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn enqueue_in(&self, connection: &Connection, prepared: Prepared) -> Result<Vec<DeliveryId>, StorageError> {
        host::enqueue_in(connection, self.path(), prepared)
    }

    /// Runs `work` with the reading connection, off the async executor.
    async fn read<T, F>(&self, operation: &'static str, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let reader = Arc::clone(&self.inner.reader);
        let job = move || {
            // A panic inside `work` left no transaction open (reads run in autocommit), so the connection is sound.
            let connection = reader.lock().unwrap_or_else(PoisonError::into_inner);
            work(&connection)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime.spawn_blocking(job).await.map_err(|e| {
                StorageError::new(StorageErrorKind::Other, format!("SQLite {operation} did not complete: {e}"))
            })?,
            Err(_) => job(),
        }
    }

    /// Runs `work` in the writer's next transaction, all or nothing (see `writer`); it is answered after the
    /// commit.
    async fn write<T, F>(&self, operation: &'static str, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        self.write_checked(operation, move |connection| work(connection).map_err(|e| codec::error(operation, e))).await
    }

    /// [`write`](Self::write) for work that produces its own [`StorageError`]s (a corrupt row, a duplicate).
    async fn write_checked<T, F>(&self, operation: &'static str, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        self.inner.writer.submit(operation, work).await
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn enqueue_batch(&self, batch: Enqueue) -> Result<Vec<DeliveryId>, StorageError> {
        // One id twice fails inside the request's savepoint, as the rows go in.
        self.write_checked("enqueue", move |tx| queue::enqueue(tx, batch)).await
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Vec<Delivery>, StorageError> {
        // Nothing due (an idle poll): answered by the reading connection, without the write lock. Otherwise the
        // writer picks the due rows again under the lock, so the claim stays exact.
        let now = claim.now;
        if !self.read("claim_due", move |connection| queue::any_due(connection, now)).await? {
            return Ok(Vec::new());
        }
        let claim = claim.clone();
        self.write_checked("claim_due", move |tx| queue::claim_due(tx, &claim)).await
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<DeliveryId>, StorageError> {
        self.write_checked("complete", move |tx| queue::complete(tx, &completions)).await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.read("next_due_at", queue::next_due_at).await
    }

    async fn queue_depth(&self) -> Result<crate::ports::QueueDepth, StorageError> {
        self.read("queue_depth", queue::queue_depth).await
    }

    async fn delivery(&self, tenant: &str, id: DeliveryId) -> Result<Option<Delivery>, StorageError> {
        let tenant = tenant.to_owned();
        self.read("delivery", move |connection| queue::delivery(connection, &tenant, id)).await
    }

    async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StorageError> {
        let query = query.clone();
        self.read("log", move |connection| log::page(connection, &query)).await
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
        self.read("quota_used", move |connection| state::quota_used(connection, &tenant, day)).await
    }

    async fn next_run(&self, tenant: &str, workflow: &str) -> Result<Option<DateTime<Utc>>, StorageError> {
        let (tenant, workflow) = (tenant.to_owned(), workflow.to_owned());
        self.read("next_run", move |connection| state::next_run(connection, &tenant, &workflow)).await
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

    async fn endpoint_health(&self, tenant: &str) -> Result<Vec<crate::ports::EndpointHealth>, StorageError> {
        let tenant = tenant.to_owned();
        self.read("endpoint_health", move |connection| endpoint::of_tenant(connection, &tenant)).await
    }

    async fn record_health(
        &self,
        reports: Vec<crate::ports::HealthReport>,
    ) -> Result<Vec<crate::ports::HealthChange>, StorageError> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        self.write_checked("record_health", move |tx| endpoint::record(tx, &reports)).await
    }

    async fn take_rate(&self, request: &crate::ports::RateRequest) -> Result<u32, StorageError> {
        let request = request.clone();
        self.write_checked("take_rate", move |tx| endpoint::take_rate(tx, &request)).await
    }

    async fn claim_notifications(&self, claim: &Claim) -> Result<Vec<Notification>, StorageError> {
        // As in `claim_due`: an idle poll takes no write lock.
        let now = claim.now;
        if !self.read("claim_notifications", move |connection| outbox::any_due(connection, now)).await? {
            return Ok(Vec::new());
        }
        let claim = claim.clone();
        self.write_checked("claim_notifications", move |tx| outbox::claim(tx, &claim)).await
    }

    async fn update_notification(&self, update: NotificationUpdate) -> Result<bool, StorageError> {
        self.write_checked("update_notification", move |tx| outbox::update(tx, &update)).await
    }
}
