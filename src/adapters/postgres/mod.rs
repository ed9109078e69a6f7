//! [`PostgresStorage`]: the [`Storage`] for several engines on several servers sharing one PostgreSQL database.
//!
//! ```no_run
//! # async fn start() -> Result<(), crm_webhooks::ports::StorageError> {
//! use std::sync::Arc;
//! use crm_webhooks::adapters::postgres::PostgresStorage;
//!
//! let storage = PostgresStorage::connect("postgres://app@db.internal/crm").await?.schema("crm_webhooks")?;
//! storage.setup().await?; // on every server at start-up: idempotent, and safe to run concurrently
//! let storage: Arc<dyn crm_webhooks::Storage> = Arc::new(storage);
//! # let _ = storage;
//! # Ok(())
//! # }
//! ```
//!
//! # Set-up
//! Construction ([`connect`](PostgresStorage::connect), [`from_pool`](PostgresStorage::from_pool),
//! [`schema`](PostgresStorage::schema)) never changes the database. [`setup`](PostgresStorage::setup) applies the
//! embedded, versioned migrations inside the storage's own schema (default `crm_webhooks`), recording them in
//! `schema_migrations`. It holds a transaction-scoped advisory lock while it migrates, so servers starting together
//! take turns, and it refuses a schema newer than this library ([`StorageErrorKind::Schema`]). Calling any other
//! method before `setup` fails with [`StorageErrorKind::Schema`].
//!
//! # How it keeps several servers honest
//! - A claim is one statement: a CTE picks due rows in due order `FOR UPDATE SKIP LOCKED` and an `UPDATE` marks
//!   them dispatched with the claim's token and lease. Concurrent claims skip each other's rows instead of waiting.
//! - Only the holder of a delivery's current claim token may finish it; a batch of completions is one transaction.
//! - Quota counters are one upsert per call: the `(tenant, day)` row lock serializes concurrent callers, so the
//!   allowance is never passed.
//! - `once` triggers and schedule compare-and-set rely on primary keys and conditional writes, never on reads
//!   followed by writes.
//!
//! # Waking the workers of every server
//! An enqueue that stores something sends a `NOTIFY` on the channel `crm_webhooks` (the payload is the schema's
//! name) in its transaction, so it leaves only when that transaction commits. The first worker to wait on a
//! storage starts one `LISTEN` connection (taken from the pool for as long as the storage lives) whose
//! notifications complete [`Storage::queued_elsewhere`]: a [`Worker`](crate::Worker) on any server sends a save
//! queued on another at once instead of at its next poll. The poll stays the fallback when the listening
//! connection is lost.
//!
//! # Differences from [`MemoryStorage`](crate::MemoryStorage)
//! - Times are stored to the microsecond (PostgreSQL's `timestamptz`); nanoseconds are truncated.
//! - PostgreSQL text cannot hold the character U+0000. In the free-form log fields (`message`, `error`,
//!   `response_snippet`) and a notification's `last_error`, which may quote a receiver or a mail server, it is
//!   replaced by U+FFFD rather than failing the write (a failing `complete` would send the delivery again).
//!   Elsewhere (tenant, ids, URLs) a U+0000 makes the write fail with [`StorageErrorKind::Other`].
//! - `u64` quota figures above `i64::MAX` count as `i64::MAX`.
//!
//! # Cancellation
//! Every call runs on a task of its own (`tokio::spawn`), and the future you await only waits for it. Dropping
//! that future (a `tokio::time::timeout`, an aborted task) stops the waiting, not the call: its transaction
//! commits or rolls back as it would have, and its connection goes back to the pool outside any transaction. So a
//! call you gave up on may still have taken effect (a claim then waits for its lease to run out); a call that
//! returned `Ok` always has. The calls therefore need a tokio runtime, which sqlx needs anyway.

// Here: the handle, its construction, and running each call on a task of its own. `setup` migrates, `statements`
// holds the text of every statement, `codec` reads rows and sorts errors, and `attached` is what a call runs on,
// with the calls in a file per concern (`queue`, `log`, `state`, `outbox`).
mod attached;
mod codec;
mod endpoint;
mod host;
mod listen;
mod log;
mod outbox;
mod queue;
mod setup;
mod state;
mod statements;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;

use crate::delivery::{Delivery, DeliveryId, LogEntry, LogQuery};
use crate::engine::{Engine, EngineError, Prepared};
use crate::ports::{
    Claim, Completion, Enqueue, Notification, NotificationUpdate, QueuedElsewhere, QuotaRequest, Storage, StorageError,
    StorageErrorKind,
};
use crate::record::RecordEvent;

use attached::Attached;
use codec::db_error;
use listen::Listener;
use statements::Statements;

/// The sqlx this adapter is built with: build the pool you pass to [`PostgresStorage::from_pool`] with it, so the
/// versions match.
pub use sqlx;

/// The schema used unless [`PostgresStorage::schema`] names another.
pub const DEFAULT_SCHEMA: &str = "crm_webhooks";

/// [`Storage`] on PostgreSQL, for many workers on many servers: claims take rows `FOR UPDATE SKIP LOCKED` and hold
/// them with a lease; see the [module documentation](self) for the details and for set-up.
///
/// Cloning is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    pool: PgPool,
    schema: String,
    sql: Arc<Statements>,
    listener: Arc<Listener>,
}

impl PostgresStorage {
    /// The schema version this library writes; [`setup`](Self::setup) brings the schema to it.
    pub const SCHEMA_VERSION: i32 = setup::LATEST_VERSION;

    /// Opens a pool of connections to `url` (`postgres://user:password@host:port/database`) and checks that one
    /// connection can be made. Uses the [default schema](DEFAULT_SCHEMA); does not run [`setup`](Self::setup).
    ///
    /// To choose pool sizes and timeouts yourself, build a [`PgPool`] and use [`from_pool`](Self::from_pool).
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let options: PgConnectOptions = url.parse().map_err(|e| db_error("reading the database URL", e))?;
        // One direct connection first: a pool retries until its timeout and then reports only that it timed
        // out, while this reports why (refused, unknown host, bad password) at once.
        let probe = PgConnection::connect_with(&options).await.map_err(|e| db_error("connecting to PostgreSQL", e))?;
        // The probe only proved the database reachable; failing to say goodbye to it changes nothing.
        let _ = probe.close().await;
        let pool = PgPoolOptions::new().acquire_timeout(Duration::from_secs(10)).connect_lazy_with(options);
        Ok(Self::from_pool(pool))
    }

    /// Uses the host's own pool. Uses the [default schema](DEFAULT_SCHEMA); does not touch the database.
    pub fn from_pool(pool: PgPool) -> Self {
        let schema = DEFAULT_SCHEMA.to_owned();
        let sql = Arc::new(Statements::new(&setup::quote_identifier(&schema)));
        PostgresStorage { pool, schema, sql, listener: Arc::new(Listener::new()) }
    }

    /// Keeps everything in the schema `name` instead: ASCII letters, digits and `_`, not starting with a digit
    /// or `pg_`, at most 63 bytes (PostgreSQL would silently shorten a longer name). The name is used as written,
    /// case included. Fails with [`StorageErrorKind::Schema`] for any other name.
    pub fn schema(mut self, name: &str) -> Result<Self, StorageError> {
        setup::validate_schema_name(name)?;
        self.sql = Arc::new(Statements::new(&setup::quote_identifier(name)));
        self.schema = name.to_owned();
        self.listener = Arc::new(Listener::new());
        Ok(self)
    }

    /// The schema everything lives in.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// The pool this storage uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the schema if needed and applies the migrations it lacks, in one transaction under an advisory lock
    /// (so concurrent calls from several servers take turns and the later ones find nothing to do). Safe to call
    /// at every start.
    ///
    /// Fails with [`StorageErrorKind::Schema`] when the schema was migrated by a newer version of this library:
    /// upgrade this server rather than run old code on a new schema.
    pub async fn setup(&self) -> Result<(), StorageError> {
        let schema = self.schema.clone();
        detached(self, move |s| async move { setup::migrate(&s.pool, &schema).await }).await
    }

    /// Queues what [`Engine::prepare`] made inside the host's own transaction: the deliveries, their `Queued`
    /// log entries and the `once` marks are written on `conn` (pass `&mut *tx` for a
    /// [`sqlx::Transaction`]), so they commit with the host's save and vanish with its rollback. The `NOTIFY`
    /// that wakes the workers of every server leaves with the commit. Returns the ids queued (a `once` workflow
    /// that fired before queues nothing).
    ///
    /// The writes run in a savepoint of the host's transaction, so a failure leaves it usable. `conn` must be on
    /// the database this storage's schema is in, [`setup`](Self::setup) having run there; its role needs
    /// `INSERT`, `UPDATE` and `SELECT` on the schema's tables. Unlike the storage's own calls, this one runs where
    /// it is awaited, on the host's connection: dropping its future mid-way leaves the host's transaction for the
    /// host to roll back, which dropping an [`sqlx::Transaction`] does.
    pub async fn enqueue_in(
        &self,
        conn: &mut PgConnection,
        prepared: Prepared,
    ) -> Result<Vec<DeliveryId>, StorageError> {
        let attached = Attached { pool: self.pool.clone(), sql: Arc::clone(&self.sql) };
        host::enqueue_in(&attached, conn, prepared).await
    }

    /// [`Engine::prepare`] and [`enqueue_in`](Self::enqueue_in) in one call: the event is matched and rendered,
    /// then written on the host's `conn`, inside its transaction.
    ///
    /// ```no_run
    /// # async fn save(engine: crm_webhooks::Engine, storage: crm_webhooks::adapters::postgres::PostgresStorage)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// use crm_webhooks::{Change, RecordEvent};
    /// let mut tx = storage.pool().begin().await?;
    /// use crm_webhooks::adapters::postgres::sqlx;
    /// sqlx::query("INSERT INTO leads (id, name) VALUES ('10x1', 'Ada')").execute(&mut *tx).await?;
    /// let event = RecordEvent::new("acme", "Leads", "10x1", Change::Created, "19x1").field("id", "10x1");
    /// storage.on_event_in(&mut tx, &engine, &event).await?;
    /// tx.commit().await?; // the lead and its webhook, or neither; every server's worker wakes
    /// # Ok(())
    /// # }
    /// ```
    pub async fn on_event_in(
        &self,
        conn: &mut PgConnection,
        engine: &Engine,
        event: &RecordEvent,
    ) -> Result<Vec<DeliveryId>, EngineError> {
        let prepared = engine.prepare(std::slice::from_ref(event)).await?;
        Ok(self.enqueue_in(conn, prepared).await?)
    }
}

/// Runs `call` on a task of its own and waits for it. A caller that drops the returned future (a timeout, an
/// aborted task) stops waiting, but the call still runs to its end: a transaction is committed or rolled back
/// before its connection goes back to the pool. sqlx cannot promise that for a future dropped mid-way (a
/// `BEGIN` whose answer had not arrived leaves the server inside a transaction that sqlx thinks closed, and every
/// later autocommit statement on that pooled connection would be rolled back with it).
async fn detached<T, F, Fut>(storage: &PostgresStorage, call: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce(Attached) -> Fut,
    Fut: std::future::Future<Output = Result<T, StorageError>> + Send + 'static,
{
    let attached = Attached { pool: storage.pool.clone(), sql: Arc::clone(&storage.sql) };
    let task = tokio::spawn(call(attached));
    match task.await {
        Ok(result) => result,
        // Only when the runtime shuts down (the task is dropped with its connection, which then closes rather
        // than going back to the pool) or the call panicked.
        Err(e) => {
            Err(StorageError::new(StorageErrorKind::Unavailable, format!("a PostgreSQL call did not complete: {e}")))
        }
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn enqueue_batch(&self, batch: Enqueue) -> Result<Vec<DeliveryId>, StorageError> {
        detached(self, move |s| async move { s.enqueue(batch).await }).await
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Vec<Delivery>, StorageError> {
        let claim = claim.clone();
        detached(self, move |s| async move { s.claim_due(&claim).await }).await
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<DeliveryId>, StorageError> {
        detached(self, move |s| async move { s.complete(completions).await }).await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        detached(self, move |s| async move { s.next_due_at().await }).await
    }

    async fn queue_depth(&self) -> Result<crate::ports::QueueDepth, StorageError> {
        detached(self, move |s| async move { s.queue_depth().await }).await
    }

    async fn delivery(&self, tenant: &str, id: DeliveryId) -> Result<Option<Delivery>, StorageError> {
        let tenant = tenant.to_owned();
        detached(self, move |s| async move { s.delivery(&tenant, id).await }).await
    }

    async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StorageError> {
        let query = query.clone();
        detached(self, move |s| async move { s.log(&query).await }).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        detached(self, move |s| async move { s.prune(before).await }).await
    }

    async fn grant_quota(&self, request: &QuotaRequest) -> Result<Vec<DeliveryId>, StorageError> {
        let request = request.clone();
        detached(self, move |s| async move { s.grant_quota(&request).await }).await
    }

    async fn quota_used(&self, tenant: &str, day: NaiveDate) -> Result<u64, StorageError> {
        let tenant = tenant.to_owned();
        detached(self, move |s| async move { s.quota_used(&tenant, day).await }).await
    }

    async fn next_run(&self, tenant: &str, workflow: &str) -> Result<Option<DateTime<Utc>>, StorageError> {
        let (tenant, workflow) = (tenant.to_owned(), workflow.to_owned());
        detached(self, move |s| async move { s.next_run(&tenant, &workflow).await }).await
    }

    async fn set_next_run(
        &self,
        tenant: &str,
        workflow: &str,
        expected: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, StorageError> {
        let (tenant, workflow) = (tenant.to_owned(), workflow.to_owned());
        detached(self, move |s| async move { s.set_next_run(&tenant, &workflow, expected, next).await }).await
    }

    async fn claim_notifications(&self, claim: &Claim) -> Result<Vec<Notification>, StorageError> {
        let claim = claim.clone();
        detached(self, move |s| async move { s.claim_notifications(&claim).await }).await
    }

    async fn update_notification(&self, update: NotificationUpdate) -> Result<bool, StorageError> {
        detached(self, move |s| async move { s.update_notification(update).await }).await
    }

    async fn endpoint_health(&self, tenant: &str) -> Result<Vec<crate::ports::EndpointHealth>, StorageError> {
        let tenant = tenant.to_owned();
        detached(self, move |s| async move { s.endpoint_health(&tenant).await }).await
    }

    async fn record_health(
        &self,
        reports: Vec<crate::ports::HealthReport>,
    ) -> Result<Vec<crate::ports::HealthChange>, StorageError> {
        detached(self, move |s| async move { s.record_health(reports).await }).await
    }

    async fn take_rate(&self, request: &crate::ports::RateRequest) -> Result<u32, StorageError> {
        let request = request.clone();
        detached(self, move |s| async move { s.take_rate(&request).await }).await
    }

    fn queued_elsewhere(&self) -> QueuedElsewhere {
        self.listener.next(&self.pool, &self.schema)
    }
}
