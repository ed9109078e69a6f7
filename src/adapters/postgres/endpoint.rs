//! Endpoint health and rate windows: each action's receiver as every engine sharing the schema sees it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, SqlSafeStr, SqlStr};

use crate::adapters::sql::DELIVERY_COLUMNS;
use crate::health;
use crate::ports::{EndpointHealth, EndpointKey, EndpointState, HealthChange, HealthReport, RateRequest, StorageError};

use super::attached::Attached;
use super::codec::{column, corrupt, db_error, delivery_from_row, to_i64, without_nul};

const COLUMNS: &str = "tenant, workflow, action, state, failures, failing_since, changed_at, reason";
/// The key's condition, `$1` to `$3`.
const KEY: &str = "tenant = $1 AND workflow = $2 AND action = $3";

/// The statements on the health and rate tables of one schema.
#[derive(Debug)]
pub(super) struct EndpointStatements {
    of_tenant: SqlStr,
    ensure: SqlStr,
    lock: SqlStr,
    store: SqlStr,
    forget: SqlStr,
    waiting: SqlStr,
    held: SqlStr,
    resume: SqlStr,
    ensure_window: SqlStr,
    lock_window: SqlStr,
    store_window: SqlStr,
    forget_windows: SqlStr,
}

fn sql(text: String) -> SqlStr {
    AssertSqlSafe(Arc::<str>::from(text)).into_sql_str()
}

impl EndpointStatements {
    /// The statements on the tables of the schema `s` (validated and quoted).
    pub(super) fn new(s: &str) -> Self {
        let held = format!("FROM {s}.deliveries WHERE {KEY} AND status = 'queued' AND next_attempt_at IS NULL");
        let window = format!("{KEY} AND window_start = $4");
        EndpointStatements {
            of_tenant: sql(format!(
                "SELECT {COLUMNS} FROM {s}.endpoint_health WHERE tenant = $1 ORDER BY workflow, action"
            )),
            ensure: sql(format!(
                "INSERT INTO {s}.endpoint_health ({COLUMNS}) VALUES ($1, $2, $3, 'healthy', 0, NULL, $4, NULL)
                 ON CONFLICT (tenant, workflow, action) DO NOTHING"
            )),
            lock: sql(format!("SELECT {COLUMNS} FROM {s}.endpoint_health WHERE {KEY} FOR UPDATE")),
            store: sql(format!(
                "UPDATE {s}.endpoint_health SET state = $4, failures = $5, failing_since = $6, changed_at = $7,
                     reason = $8 WHERE {KEY}"
            )),
            forget: sql(format!("DELETE FROM {s}.endpoint_health WHERE {KEY}")),
            waiting: sql(format!(
                "SELECT count(*) FROM {s}.deliveries WHERE {KEY} AND status IN ('queued', 'dispatched')"
            )),
            held: sql(format!("SELECT {DELIVERY_COLUMNS} {held} ORDER BY created_at FOR UPDATE")),
            resume: sql(format!(
                "UPDATE {s}.deliveries SET next_attempt_at = LEAST(created_at, $4), updated_at = $4
                 WHERE {KEY} AND status = 'queued' AND next_attempt_at IS NULL"
            )),
            ensure_window: sql(format!(
                "INSERT INTO {s}.rate_windows (tenant, workflow, action, window_start, used) VALUES ($1, $2, $3, $4, 0)
                 ON CONFLICT (tenant, workflow, action, window_start) DO NOTHING"
            )),
            lock_window: sql(format!("SELECT used FROM {s}.rate_windows WHERE {window} FOR UPDATE")),
            store_window: sql(format!("UPDATE {s}.rate_windows SET used = $5 WHERE {window}")),
            forget_windows: sql(format!("DELETE FROM {s}.rate_windows WHERE {KEY} AND window_start < $4")),
        }
    }
}

fn health_from_row(row: &PgRow) -> Result<EndpointHealth, StorageError> {
    let state: String = column(row, "state")?;
    let failures: i64 = column(row, "failures")?;
    Ok(EndpointHealth {
        key: EndpointKey::new(
            column::<String>(row, "tenant")?,
            column::<String>(row, "workflow")?,
            column::<String>(row, "action")?,
        ),
        state: EndpointState::parse(&state)
            .ok_or_else(|| corrupt(format!("endpoint_health: \"{state}\" is not a state")))?,
        failures: u32::try_from(failures).map_err(|_| corrupt(format!("endpoint_health: {failures} failures")))?,
        failing_since: column(row, "failing_since")?,
        changed_at: column(row, "changed_at")?,
        reason: column(row, "reason")?,
    })
}

impl Attached {
    fn endpoint(&self) -> &EndpointStatements {
        &self.sql.endpoint
    }

    /// The stored health of a tenant's actions, in key order.
    pub(super) async fn endpoint_health(&self, tenant: &str) -> Result<Vec<EndpointHealth>, StorageError> {
        let rows = self
            .query(&self.endpoint().of_tenant)
            .bind(tenant)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("reading endpoint health", e))?;
        rows.iter().map(health_from_row).collect()
    }

    /// Applies the reports in one transaction, their rows locked in key order (so that two engines cannot
    /// deadlock), each key's reports in the order given.
    pub(super) async fn record_health(
        &self,
        mut reports: Vec<HealthReport>,
    ) -> Result<Vec<HealthChange>, StorageError> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        reports.sort_by(|a, b| a.key.cmp(&b.key));
        let mut tx = self.pool.begin().await.map_err(|e| db_error("starting to record endpoint health", e))?;
        let mut changes = Vec::new();
        for report in &reports {
            if let Some(change) = self.record_one(&mut tx, report).await? {
                changes.push(change);
            }
        }
        tx.commit().await.map_err(|e| db_error("committing endpoint health", e))?;
        Ok(changes)
    }

    async fn record_one(
        &self,
        conn: &mut PgConnection,
        report: &HealthReport,
    ) -> Result<Option<HealthChange>, StorageError> {
        let sql = self.endpoint();
        let key = &report.key;
        let bind_key = |q: sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>| {
            q.bind(key.tenant.clone()).bind(key.workflow.clone()).bind(key.action.clone())
        };
        // A row to lock, so that two engines reporting the action's first failure count two.
        bind_key(self.query(&sql.ensure))
            .bind(report.at)
            .execute(&mut *conn)
            .await
            .map_err(|e| db_error("recording endpoint health", e))?;
        let row = bind_key(self.query(&sql.lock))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| db_error("locking endpoint health", e))?;
        let stored = health_from_row(&row)?;
        let current = (stored.state != EndpointState::Healthy || stored.failures > 0).then_some(stored);
        let applied = health::apply(current.as_ref(), report);
        match &applied.health {
            None => bind_key(self.query(&sql.forget)).execute(&mut *conn).await,
            Some(h) => {
                bind_key(self.query(&sql.store))
                    .bind(h.state.as_str())
                    .bind(i64::from(h.failures))
                    .bind(h.failing_since)
                    .bind(h.changed_at)
                    .bind(h.reason.as_deref().map(without_nul))
                    .execute(&mut *conn)
                    .await
            }
        }
        .map_err(|e| db_error("storing endpoint health", e))?;
        let Some(change) = applied.change else { return Ok(None) };
        let deliveries = match &change.resumed_by {
            Some(by) => self.resume_held(conn, key, by, report.at).await?,
            None => {
                let count: i64 = sqlx::query_scalar(sql.waiting.clone())
                    .bind(&key.tenant)
                    .bind(&key.workflow)
                    .bind(&key.action)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|e| db_error("counting an action's deliveries", e))?;
                u64::try_from(count).unwrap_or(0)
            }
        };
        if let Some(entry) = &change.entry {
            self.insert_entries(conn, std::iter::once(entry)).await?;
        }
        if let Some(n) = applied.health.as_ref().and_then(|h| health::notification(&change, h, report, deliveries)) {
            self.insert_notification(conn, &n).await?;
        }
        Ok(Some(HealthChange { key: key.clone(), from: change.from, to: change.to, deliveries }))
    }

    async fn resume_held(
        &self,
        conn: &mut PgConnection,
        key: &EndpointKey,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let sql = self.endpoint();
        let rows = self
            .query(&sql.held)
            .bind(&key.tenant)
            .bind(&key.workflow)
            .bind(&key.action)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error("reading held deliveries", e))?;
        let held = rows.iter().map(delivery_from_row).collect::<Result<Vec<_>, _>>()?;
        if held.is_empty() {
            return Ok(0);
        }
        self.query(&sql.resume)
            .bind(&key.tenant)
            .bind(&key.workflow)
            .bind(&key.action)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map_err(|e| db_error("resuming held deliveries", e))?;
        let entries: Vec<_> = held.iter().map(|d| health::resumed_entry(d, by, at)).collect();
        self.insert_entries(conn, entries.iter()).await?;
        Ok(held.len() as u64)
    }

    /// Lets requests through an action's rate window, under the window row's lock.
    pub(super) async fn take_rate(&self, request: &RateRequest) -> Result<u32, StorageError> {
        let sql = self.endpoint();
        let key = &request.key;
        let window = |q: sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>| {
            q.bind(key.tenant.clone()).bind(key.workflow.clone()).bind(key.action.clone()).bind(request.window_start)
        };
        let mut tx = self.pool.begin().await.map_err(|e| db_error("starting a rate window", e))?;
        window(self.query(&sql.ensure_window))
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("opening a rate window", e))?;
        let used: i64 = sqlx::query_scalar(sql.lock_window.clone())
            .bind(&key.tenant)
            .bind(&key.workflow)
            .bind(&key.action)
            .bind(request.window_start)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db_error("locking a rate window", e))?;
        let used = u32::try_from(used.max(0)).unwrap_or(u32::MAX);
        let granted = request.limit.saturating_sub(used).min(request.wanted);
        if granted > 0 {
            window(self.query(&sql.store_window))
                .bind(to_i64(used.saturating_add(granted)))
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("counting a rate window", e))?;
            let day_before = request.window_start - chrono::Duration::days(1);
            self.query(&sql.forget_windows)
                .bind(&key.tenant)
                .bind(&key.workflow)
                .bind(&key.action)
                .bind(day_before)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("forgetting old rate windows", e))?;
        }
        tx.commit().await.map_err(|e| db_error("committing a rate window", e))?;
        Ok(granted)
    }
}
