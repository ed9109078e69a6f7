//! [`PostgresStorage`]: the [`Storage`] for several engines on several servers sharing one PostgreSQL database.
//!
//! ```no_run
//! # async fn start() -> Result<(), crm_webhooks::StorageError> {
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
//! # Differences from [`MemoryStorage`](crate::testing::MemoryStorage)
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

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, Postgres, Row, SqlSafeStr, SqlStr};

mod attached;

use super::sql::{
    latest_version, pending, status_from_text, status_text, Migration, DELIVERY_COLUMNS, LOG_COLUMNS,
    NOTIFICATION_COLUMNS,
};
use crate::action::{ContentType, Method};
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry, LogQuery};
use crate::ports::{
    Claim, Completion, Notification, NotificationUpdate, QuotaRequest, Storage, StorageError, StorageErrorKind,
};

/// The sqlx this adapter is built with: build the pool you pass to [`PostgresStorage::from_pool`] with it, so the
/// versions match.
pub use sqlx;

/// The schema used unless [`PostgresStorage::schema`] names another.
pub const DEFAULT_SCHEMA: &str = "crm_webhooks";

/// Every migration, in order. `__SCHEMA__` in their SQL stands for the quoted schema name.
const MIGRATIONS: &[Migration] = &[
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
];

/// [`Storage`] on PostgreSQL, for many workers on many servers: claims take rows `FOR UPDATE SKIP LOCKED` and hold
/// them with a lease; see the [module documentation](self) for the details and for set-up.
///
/// Cloning is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    pool: PgPool,
    schema: String,
    sql: Arc<Statements>,
}

impl PostgresStorage {
    /// The schema version this library writes; [`setup`](Self::setup) brings the schema to it.
    pub const SCHEMA_VERSION: i32 = latest_version(MIGRATIONS) as i32;

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
        let sql = Arc::new(Statements::new(&quote_identifier(&schema)));
        PostgresStorage { pool, schema, sql }
    }

    /// Keeps everything in the schema `name` instead: ASCII letters, digits and `_`, not starting with a digit
    /// or `pg_`, at most 63 bytes (PostgreSQL would silently shorten a longer name). The name is used as written,
    /// case included. Fails with [`StorageErrorKind::Schema`] for any other name.
    pub fn schema(mut self, name: &str) -> Result<Self, StorageError> {
        validate_schema_name(name)?;
        self.sql = Arc::new(Statements::new(&quote_identifier(name)));
        self.schema = name.to_owned();
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

    /// Runs one of the claim statements (`$1` now, `$2` limit, `$3` token, `$4` lease end) and returns its rows.
    async fn claim_rows(&self, sql: &SqlStr, claim: &Claim, what: &str) -> Result<Vec<PgRow>, StorageError> {
        if claim.limit == 0 {
            return Ok(Vec::new());
        }
        self.query(sql)
            .bind(claim.now)
            .bind(to_i64(claim.limit))
            .bind(claim.token.as_bytes().as_slice())
            .bind(claim.lease_until)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(what, e))
    }

    /// Creates the schema if needed and applies the migrations it lacks, in one transaction under an advisory lock
    /// (so concurrent calls from several servers take turns and the later ones find nothing to do). Safe to call
    /// at every start.
    ///
    /// Fails with [`StorageErrorKind::Schema`] when the schema was migrated by a newer version of this library:
    /// upgrade this server rather than run old code on a new schema.
    pub async fn setup(&self) -> Result<(), StorageError> {
        detached(self, |s| async move { s.0.migrate().await }).await
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        let quoted = quote_identifier(&self.schema);
        let mut tx = self.pool.begin().await.map_err(|e| db_error("starting the migration", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(migration_lock_key(&self.schema))
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("taking the migration lock", e))?;

        // Checking before creating lets a host pre-create the schema for a role without CREATE on the database.
        let schema_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&self.schema)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db_error("looking for the schema", e))?;
        if !schema_exists {
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {quoted}")))
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("creating the schema", e))?;
        }
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
                version     integer     NOT NULL PRIMARY KEY,
                description text        NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )"
        )))
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error("creating schema_migrations", e))?;

        let current: Option<i32> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT max(version) FROM {quoted}.schema_migrations")))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| db_error("reading the schema version", e))?;
        let current = current.unwrap_or(0);
        if current > Self::SCHEMA_VERSION {
            return Err(StorageError::new(
                StorageErrorKind::Schema,
                format!(
                    "schema \"{}\" is at version {current}, newer than this crm-webhooks supports ({}): upgrade \
                     crm-webhooks on this server",
                    self.schema,
                    Self::SCHEMA_VERSION
                ),
            ));
        }
        for migration in pending(MIGRATIONS, i64::from(current)) {
            let doing = format!("applying migration {} ({})", migration.version, migration.description);
            sqlx::raw_sql(AssertSqlSafe(migration.sql.replace("__SCHEMA__", &quoted)))
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(&doing, e))?;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {quoted}.schema_migrations (version, description) VALUES ($1, $2)"
            )))
            .bind(i32::from(migration.version))
            .bind(migration.description)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error(&doing, e))?;
        }
        tx.commit().await.map_err(|e| db_error("committing the migration", e))
    }

    fn query(&self, sql: &SqlStr) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(sql.clone())
    }

    /// Appends log entries in the order given, in one statement.
    async fn insert_entries<'a>(
        &self,
        conn: &mut sqlx::PgConnection,
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
            .execute(conn)
            .await
            .map_err(|e| db_error("writing log entries", e))?;
        Ok(())
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
    F: FnOnce(attached::Attached) -> Fut,
    Fut: std::future::Future<Output = Result<T, StorageError>> + Send + 'static,
{
    let task = tokio::spawn(call(attached::Attached(storage.clone())));
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
    async fn enqueue(&self, deliveries: Vec<Delivery>, entries: Vec<LogEntry>) -> Result<(), StorageError> {
        detached(self, move |s| async move { s.enqueue(deliveries, entries).await }).await
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

    async fn mark_fired(&self, tenant: &str, workflow: &str, record_id: &str) -> Result<bool, StorageError> {
        let (tenant, workflow, record_id) = (tenant.to_owned(), workflow.to_owned(), record_id.to_owned());
        detached(self, move |s| async move { s.mark_fired(&tenant, &workflow, &record_id).await }).await
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
}

// --- SQL --------------------------------------------------------------------------------------------------------

/// Every statement, written once per schema (the schema name cannot be a bind parameter). Prepared statements
/// are cached per connection by their text.
#[derive(Debug)]
struct Statements {
    insert_deliveries: SqlStr,
    insert_entries: SqlStr,
    claim_deliveries: SqlStr,
    complete_deliveries: SqlStr,
    insert_notification: SqlStr,
    next_due_at: SqlStr,
    delivery: SqlStr,
    /// `SELECT` the log's columns `FROM` the table, for [`log_page`](crate::adapters::sql::log_page).
    log_from: String,
    prune: SqlStr,
    acquire_quota: SqlStr,
    held_grants: SqlStr,
    store_grants: SqlStr,
    quota_used: SqlStr,
    mark_fired: SqlStr,
    next_run: SqlStr,
    set_next_run_from_none: SqlStr,
    set_next_run_from_some: SqlStr,
    claim_notifications: SqlStr,
    delete_notification: SqlStr,
    set_aside: SqlStr,
    update_notification: SqlStr,
}

/// A statement built from fixed text and the validated, quoted schema name only.
fn sql(text: String) -> SqlStr {
    AssertSqlSafe(Arc::<str>::from(text)).into_sql_str()
}

impl Statements {
    fn new(s: &str) -> Self {
        Statements {
            insert_deliveries: sql(format!(
                "INSERT INTO {s}.deliveries ({DELIVERY_COLUMNS})
                 SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[], $12::text[], $13::int8[],
                     $14::timestamptz[], $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::bytea[])
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id"
            )),
            // ORDER BY ord: `seq` follows the order the entries were given in.
            insert_entries: sql(format!(
                "INSERT INTO {s}.log_entries ({LOG_COLUMNS})
                 SELECT {LOG_COLUMNS}
                 FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[],
                     $8::timestamptz[], $9::int4[], $10::text[], $11::text[], $12::timestamptz[], $13::text[])
                     WITH ORDINALITY AS e({LOG_COLUMNS}, ord)
                 ORDER BY ord"
            )),
            // `due_at` is `next_attempt_at` for queued rows and `lease_expires_at` for dispatched ones, so this is
            // `status='queued' AND next_attempt_at <= $1 OR status='dispatched' AND lease_expires_at <= $1`, in a
            // form the partial index `deliveries_due` answers in order. RETURNING has no order of its own: the
            // outer SELECT restores the due order.
            claim_deliveries: sql(format!(
                "WITH due AS (
                     SELECT id, due_at FROM {s}.deliveries
                     WHERE status IN ('queued', 'dispatched') AND due_at <= $1
                     ORDER BY due_at, created_at, id
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED
                 ), claimed AS (
                     UPDATE {s}.deliveries d
                     SET status = 'dispatched', claim_token = $3, lease_expires_at = $4, updated_at = $1
                     FROM due
                     WHERE d.id = due.id
                     RETURNING d.*, due.due_at AS was_due
                 )
                 SELECT {DELIVERY_COLUMNS} FROM claimed ORDER BY was_due, created_at, id"
            )),
            complete_deliveries: sql(format!(
                "UPDATE {s}.deliveries d
                 SET status = c.status, attempts = c.attempts, next_attempt_at = c.next_attempt_at,
                     lease_expires_at = NULL, claim_token = NULL, updated_at = c.at
                 FROM UNNEST($1::bytea[], $2::bytea[], $3::text[], $4::int8[], $5::timestamptz[], $6::timestamptz[])
                     AS c(id, token, status, attempts, next_attempt_at, at)
                 WHERE d.id = c.id AND d.status = 'dispatched' AND d.claim_token = c.token
                 RETURNING d.id"
            )),
            insert_notification: sql(format!(
                "INSERT INTO {s}.notifications ({NOTIFICATION_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (delivery_id) DO NOTHING"
            )),
            next_due_at: sql(format!(
                "SELECT min(due_at) FROM {s}.deliveries WHERE status IN ('queued', 'dispatched')"
            )),
            delivery: sql(format!("SELECT {DELIVERY_COLUMNS} FROM {s}.deliveries WHERE id = $1 AND tenant = $2")),
            log_from: format!("SELECT {LOG_COLUMNS} FROM {s}.log_entries"),
            // Data-modifying CTEs all run, in one statement: the log goes with its deliveries.
            prune: sql(format!(
                "WITH doomed AS (
                     DELETE FROM {s}.deliveries d
                     WHERE d.status IN ('success', 'failed') AND d.updated_at < $1
                       AND NOT EXISTS (SELECT 1 FROM {s}.notifications n WHERE n.delivery_id = d.id)
                     RETURNING d.id
                 ), entries AS (
                     DELETE FROM {s}.log_entries l USING doomed WHERE l.delivery_id = doomed.id
                 )
                 SELECT count(*) FROM doomed"
            )),
            // The conflict path holds the (tenant, day) row lock while it computes from the current `used`, so
            // concurrent callers queue up and each sees the previous one's count.
            acquire_quota: sql(format!(
                "INSERT INTO {s}.quota_usage AS q (tenant, day, used, last_granted)
                 VALUES ($1, $2, LEAST($3::int8, $4::int8), LEAST($3::int8, $4::int8))
                 ON CONFLICT (tenant, day) DO UPDATE
                 SET used = q.used + LEAST(GREATEST($3::int8 - q.used, 0), $4::int8),
                     last_granted = LEAST(GREATEST($3::int8 - q.used, 0), $4::int8)
                 RETURNING last_granted"
            )),
            // Claimed rows of the request, each with whether it holds the grant for the attempt it is about to make.
            held_grants: sql(format!(
                "SELECT id, (quota_day IS NOT DISTINCT FROM $3 AND quota_attempt = attempts + 1) AS held
                 FROM {s}.deliveries WHERE id = ANY($1) AND claim_token = $2 AND status = 'dispatched' FOR UPDATE"
            )),
            store_grants: sql(format!(
                "UPDATE {s}.deliveries SET quota_day = $2, quota_attempt = attempts + 1 WHERE id = ANY($1)"
            )),
            quota_used: sql(format!("SELECT used FROM {s}.quota_usage WHERE tenant = $1 AND day = $2")),
            mark_fired: sql(format!(
                "INSERT INTO {s}.fired_once (tenant, workflow, record_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            )),
            next_run: sql(format!("SELECT next_run FROM {s}.schedules WHERE tenant = $1 AND workflow = $2")),
            // Of two callers inserting at once, the second waits on the first's row and then finds it set.
            set_next_run_from_none: sql(format!(
                "INSERT INTO {s}.schedules AS sch (tenant, workflow, next_run) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, workflow) DO UPDATE SET next_run = EXCLUDED.next_run
                 WHERE sch.next_run IS NULL"
            )),
            set_next_run_from_some: sql(format!(
                "UPDATE {s}.schedules SET next_run = $4
                 WHERE tenant = $1 AND workflow = $2 AND next_run IS NOT DISTINCT FROM $3"
            )),
            claim_notifications: sql(format!(
                "WITH due AS (
                     SELECT delivery_id, due_at FROM {s}.notifications
                     WHERE due_at <= $1
                     ORDER BY due_at, delivery_id
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED
                 ), claimed AS (
                     UPDATE {s}.notifications n
                     SET claim_token = $3, lease_expires_at = $4
                     FROM due
                     WHERE n.delivery_id = due.delivery_id
                     RETURNING n.*, due.due_at AS was_due
                 )
                 SELECT {NOTIFICATION_COLUMNS} FROM claimed ORDER BY was_due, delivery_id"
            )),
            delete_notification: sql(format!(
                "DELETE FROM {s}.notifications WHERE delivery_id = $1 AND claim_token = $2"
            )),
            set_aside: sql(format!(
                "UPDATE {s}.deliveries SET status = 'failed', next_attempt_at = NULL, lease_expires_at = NULL,
                     claim_token = NULL, updated_at = $2
                 WHERE id = $1 AND claim_token = $3"
            )),
            update_notification: sql(format!(
                "UPDATE {s}.notifications
                 SET claim_token = CASE WHEN $7 THEN claim_token END,
                     lease_expires_at = CASE WHEN $7 THEN lease_expires_at END,
                     sent_to = $3, attempts = $4, next_attempt_at = $5,
                     last_error = $6
                 WHERE delivery_id = $1 AND claim_token = $2"
            )),
        }
    }
}

// --- rows -------------------------------------------------------------------------------------------------------

fn column<'r, T>(row: &'r PgRow, name: &str) -> Result<T, StorageError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(name).map_err(|e| db_error(&format!("reading column {name}"), e))
}

fn id_from_row(row: &PgRow, name: &str) -> Result<DeliveryId, StorageError> {
    column::<[u8; 16]>(row, name).map(DeliveryId::from_bytes)
}

fn count_from_row(row: &PgRow, name: &str) -> Result<u32, StorageError> {
    let value: i64 = column(row, name)?;
    u32::try_from(value).map_err(|_| corrupt(format!("column {name} holds {value}, which is not a count")))
}

fn status_from_row(row: &PgRow, name: &str) -> Result<DeliveryStatus, StorageError> {
    let text: String = column(row, name)?;
    status_from_text(&text).map_err(|e| corrupt(format!("column {name}: {e}")))
}

fn delivery_from_row(row: &PgRow) -> Result<Delivery, StorageError> {
    let method: String = column(row, "method")?;
    let method = match method.as_str() {
        "POST" => Method::Post,
        "PUT" => Method::Put,
        other => return Err(corrupt(format!("column method holds \"{other}\", not POST or PUT"))),
    };
    let content_type: String = column(row, "content_type")?;
    let content_type = match content_type.as_str() {
        "XML" => ContentType::Xml,
        "JSON" => ContentType::Json,
        "JSONARRAY" => ContentType::JsonArray,
        "FORM" => ContentType::Form,
        other => {
            return Err(corrupt(format!("column content_type holds \"{other}\", not XML, JSON, JSONARRAY or FORM")))
        }
    };
    let redelivery_of: Option<[u8; 16]> = column(row, "redelivery_of")?;
    Ok(Delivery {
        id: id_from_row(row, "id")?,
        tenant: column(row, "tenant")?,
        workflow: column(row, "workflow")?,
        action: column(row, "action")?,
        module: column(row, "module")?,
        record_id: column(row, "record_id")?,
        owner: column(row, "owner")?,
        method,
        url: column(row, "url")?,
        content_type,
        body: Bytes::from(column::<Vec<u8>>(row, "body")?),
        status: status_from_row(row, "status")?,
        attempts: count_from_row(row, "attempts")?,
        next_attempt_at: column(row, "next_attempt_at")?,
        lease_expires_at: column(row, "lease_expires_at")?,
        created_at: column(row, "created_at")?,
        updated_at: column(row, "updated_at")?,
        redelivery_of: redelivery_of.map(DeliveryId::from_bytes),
    })
}

fn entry_from_row(row: &PgRow) -> Result<LogEntry, StorageError> {
    let http_status: Option<i32> = column(row, "http_status")?;
    let http_status = http_status
        .map(|s| u16::try_from(s).map_err(|_| corrupt(format!("column http_status holds {s}, not an HTTP status"))))
        .transpose()?;
    Ok(LogEntry {
        delivery_id: id_from_row(row, "delivery_id")?,
        tenant: column(row, "tenant")?,
        workflow: column(row, "workflow")?,
        action: column(row, "action")?,
        record_id: column(row, "record_id")?,
        status: status_from_row(row, "status")?,
        attempt: count_from_row(row, "attempt")?,
        at: column(row, "at")?,
        http_status,
        response_snippet: column(row, "response_snippet")?,
        error: column(row, "error")?,
        next_attempt_at: column(row, "next_attempt_at")?,
        message: column(row, "message")?,
    })
}

fn notification_from_row(row: &PgRow) -> Result<Notification, StorageError> {
    Ok(Notification {
        delivery_id: id_from_row(row, "delivery_id")?,
        tenant: column(row, "tenant")?,
        owner: column(row, "owner")?,
        created_at: column(row, "created_at")?,
        next_attempt_at: column(row, "next_attempt_at")?,
        attempts: count_from_row(row, "attempts")?,
        sent_to: column(row, "sent_to")?,
        last_error: column(row, "last_error")?,
    })
}

// --- helpers ----------------------------------------------------------------------------------------------------

/// PostgreSQL text cannot hold U+0000; free-form text quoting the outside world keeps the rest of its content.
fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

fn to_i64<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

fn validate_schema_name(name: &str) -> Result<(), StorageError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.bytes().next().is_some_and(|first| !first.is_ascii_digit())
        && !name.to_ascii_lowercase().starts_with("pg_");
    if valid {
        Ok(())
    } else {
        Err(StorageError::new(
            StorageErrorKind::Schema,
            format!(
                "\"{}\" is not a usable schema name: use 1 to 63 ASCII letters, digits and underscores, not starting \
                 with a digit or pg_",
                name.chars().take(80).collect::<String>()
            ),
        ))
    }
}

/// Quotes an identifier; validated names contain no quote, but quoting keeps case and reserved words safe.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A stable advisory-lock key per schema (FNV-1a, so it never changes between Rust versions).
fn migration_lock_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"crm-webhooks migrations ".iter().chain(schema.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

fn corrupt(message: String) -> StorageError {
    StorageError::new(StorageErrorKind::Corrupt, format!("postgres: stored data is not valid: {message}"))
}

/// Sorts a driver error into the kinds callers branch on, with what to do about it.
fn db_error(doing: &str, error: sqlx::Error) -> StorageError {
    use sqlx::Error as E;
    let kind = match &error {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => StorageErrorKind::Unavailable,
        E::Database(db) => match db.code().as_deref() {
            // connection exceptions, insufficient resources (too many connections), shutdowns, cancelled for a
            // timeout, lock timeouts, serialization failures and deadlocks, a read-only standby after failover
            Some(code)
                if code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || matches!(code, "57014" | "55P03" | "40001" | "40P01" | "25006") =>
            {
                StorageErrorKind::Unavailable
            }
            // the schema, a table, a column or a function is missing
            Some("3F000" | "42P01" | "42703" | "42883") => StorageErrorKind::Schema,
            _ => StorageErrorKind::Other,
        },
        E::ColumnDecode { .. }
        | E::Decode(_)
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. }
        | E::TypeNotFound { .. }
        | E::RowNotFound => StorageErrorKind::Corrupt,
        _ => StorageErrorKind::Other,
    };
    let advice = match kind {
        StorageErrorKind::Unavailable => " (the database is unreachable or busy: try again later)",
        StorageErrorKind::Schema => " (the tables are missing or of another version: run PostgresStorage::setup)",
        StorageErrorKind::Corrupt => " (a stored row does not read back as valid)",
        _ => "",
    };
    StorageError::new(kind, format!("postgres: {doing}: {error}{advice}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        for good in ["crm_webhooks", "_x", "Tenant_7", &"a".repeat(63)] {
            assert!(validate_schema_name(good).is_ok(), "{good} should be accepted");
        }
        for bad in ["", "1abc", "a-b", "a b", "x\"; DROP TABLE y; --", "pg_temp", "PG_x", "ä", &"a".repeat(64)] {
            let error = validate_schema_name(bad).expect_err(bad);
            assert_eq!(error.kind(), StorageErrorKind::Schema);
        }
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn lock_keys_differ_per_schema_and_stay_put() {
        assert_ne!(migration_lock_key("a"), migration_lock_key("b"));
        assert_eq!(migration_lock_key("crm_webhooks"), migration_lock_key("crm_webhooks"));
    }

    #[test]
    fn nul_is_replaced_only_when_present() {
        assert!(matches!(without_nul("ok"), Cow::Borrowed("ok")));
        assert_eq!(without_nul("a\0b"), "a\u{FFFD}b");
    }

    #[test]
    fn errors_are_sorted_by_kind() {
        assert_eq!(db_error("x", sqlx::Error::PoolTimedOut).kind(), StorageErrorKind::Unavailable);
        assert_eq!(db_error("x", sqlx::Error::RowNotFound).kind(), StorageErrorKind::Corrupt);
        assert_eq!(db_error("x", sqlx::Error::Protocol("?".into())).kind(), StorageErrorKind::Other);
    }

    #[test]
    fn migrations_are_numbered_in_order_up_to_the_schema_version() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(usize::from(migration.version), i + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| i32::from(m.version)), Some(PostgresStorage::SCHEMA_VERSION));
    }
}
