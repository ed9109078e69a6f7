//! Endpoint health and rate windows: each action's receiver as every engine sharing the file sees it.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::adapters::sql::DELIVERY_COLUMNS;
use crate::health;
use crate::ports::{EndpointHealth, EndpointKey, HealthChange, HealthReport, RateRequest, StorageError};

use super::codec::{self, collect, micros, opt_micros, HEALTH_COLUMNS};
use super::{log, outbox};

/// The action's deliveries held while it was paused: queued with no next attempt.
const HELD: &str =
    "FROM deliveries WHERE tenant = ?1 AND workflow = ?2 AND action = ?3 AND status = 'queued' AND next_attempt_at IS NULL";

/// The stored health of a tenant's actions, in key order.
pub(super) fn of_tenant(connection: &Connection, tenant: &str) -> Result<Vec<EndpointHealth>, StorageError> {
    const OP: &str = "endpoint_health";
    let sql = format!("SELECT {HEALTH_COLUMNS} FROM endpoint_health WHERE tenant = ?1 ORDER BY workflow, action");
    let mut statement = connection.prepare_cached(&sql).map_err(|e| codec::error(OP, e))?;
    collect(statement.query(params![tenant]), OP, codec::endpoint_health)
}

/// Applies each report in the writer's transaction (see [`Storage::record_health`](crate::Storage)).
pub(super) fn record(tx: &Connection, reports: &[HealthReport]) -> Result<Vec<HealthChange>, StorageError> {
    const OP: &str = "record_health";
    let mut changes = Vec::new();
    for report in reports {
        let key = &report.key;
        let sql =
            format!("SELECT {HEALTH_COLUMNS} FROM endpoint_health WHERE tenant = ?1 AND workflow = ?2 AND action = ?3");
        let mut read = tx.prepare_cached(&sql).map_err(|e| codec::error(OP, e))?;
        let current = collect(read.query(params![key.tenant, key.workflow, key.action]), OP, codec::endpoint_health)?;
        let applied = health::apply(current.first(), report);
        store(tx, key, applied.health.as_ref()).map_err(|e| codec::error(OP, e))?;
        let Some(change) = applied.change else { continue };
        let deliveries = match &change.resumed_by {
            Some(by) => resume(tx, key, by, report.at)?,
            None => waiting(tx, key).map_err(|e| codec::error(OP, e))?,
        };
        if let Some(entry) = &change.entry {
            log::insert_entries(tx, &[entry]).map_err(|e| codec::error(OP, e))?;
        }
        if let Some(n) = applied.health.as_ref().and_then(|h| health::notification(&change, h, report, deliveries)) {
            outbox::insert_notification(tx, &n)?;
        }
        changes.push(HealthChange { key: key.clone(), from: change.from, to: change.to, deliveries });
    }
    Ok(changes)
}

/// Stores an action's health, or forgets it (`None`: healthy with no failure).
fn store(tx: &Connection, key: &EndpointKey, health: Option<&EndpointHealth>) -> rusqlite::Result<()> {
    match health {
        None => {
            tx.prepare_cached("DELETE FROM endpoint_health WHERE tenant = ?1 AND workflow = ?2 AND action = ?3")?
                .execute(params![key.tenant, key.workflow, key.action])?;
        }
        Some(h) => {
            let sql = format!(
                "INSERT INTO endpoint_health ({HEALTH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (tenant, workflow, action) DO UPDATE SET state = excluded.state, \
                 failures = excluded.failures, failing_since = excluded.failing_since, \
                 changed_at = excluded.changed_at, reason = excluded.reason"
            );
            tx.prepare_cached(&sql)?.execute(params![
                key.tenant,
                key.workflow,
                key.action,
                h.state.as_str(),
                h.failures,
                opt_micros(h.failing_since),
                micros(h.changed_at),
                h.reason,
            ])?;
        }
    }
    Ok(())
}

/// The action's queued and dispatched deliveries.
fn waiting(tx: &Connection, key: &EndpointKey) -> rusqlite::Result<u64> {
    let count: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM deliveries WHERE tenant = ?1 AND workflow = ?2 AND action = ?3 \
             AND (status = 'queued' OR status = 'dispatched')",
        )?
        .query_row(params![key.tenant, key.workflow, key.action], |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Makes the action's held deliveries due at their `created_at` (oldest first), each with an entry.
fn resume(tx: &Connection, key: &EndpointKey, by: &str, at: DateTime<Utc>) -> Result<u64, StorageError> {
    const OP: &str = "record_health (resuming held deliveries)";
    let mut pick = tx
        .prepare_cached(&format!("SELECT {DELIVERY_COLUMNS} {HELD} ORDER BY created_at"))
        .map_err(|e| codec::error(OP, e))?;
    let held = collect(pick.query(params![key.tenant, key.workflow, key.action]), OP, codec::delivery)?;
    if held.is_empty() {
        return Ok(0);
    }
    tx.prepare_cached(&format!(
        "UPDATE deliveries SET next_attempt_at = min(created_at, ?4), updated_at = ?4 WHERE rowid IN (SELECT rowid {HELD})"
    ))
    .and_then(|mut s| s.execute(params![key.tenant, key.workflow, key.action, micros(at)]))
    .map_err(|e| codec::error(OP, e))?;
    let entries: Vec<_> = held.iter().map(|d| health::resumed_entry(d, by, at)).collect();
    log::insert_entries(tx, &entries.iter().collect::<Vec<_>>()).map_err(|e| codec::error(OP, e))?;
    Ok(held.len() as u64)
}

/// Lets requests through an action's rate window (see [`Storage::take_rate`](crate::Storage)).
pub(super) fn take_rate(tx: &Connection, request: &RateRequest) -> Result<u32, StorageError> {
    const OP: &str = "take_rate";
    let key = &request.key;
    let start = micros(request.window_start);
    let used: Option<i64> = tx
        .prepare_cached(
            "SELECT used FROM rate_windows WHERE tenant = ?1 AND workflow = ?2 AND action = ?3 AND window_start = ?4",
        )
        .and_then(|mut s| {
            s.query_row(params![key.tenant, key.workflow, key.action, start], |row| row.get(0)).optional()
        })
        .map_err(|e| codec::error(OP, e))?;
    let used = u32::try_from(used.unwrap_or(0).max(0)).unwrap_or(u32::MAX);
    let granted = request.limit.saturating_sub(used).min(request.wanted);
    if granted == 0 {
        return Ok(0);
    }
    let sql = "INSERT INTO rate_windows (tenant, workflow, action, window_start, used) VALUES (?1, ?2, ?3, ?4, ?5) \
               ON CONFLICT (tenant, workflow, action, window_start) DO UPDATE SET used = excluded.used";
    tx.prepare_cached(sql)
        .and_then(|mut s| s.execute(params![key.tenant, key.workflow, key.action, start, used.saturating_add(granted)]))
        .map_err(|e| codec::error(OP, e))?;
    // Windows of more than a day ago are of no more use.
    tx.prepare_cached(
        "DELETE FROM rate_windows WHERE tenant = ?1 AND workflow = ?2 AND action = ?3 AND window_start < ?4",
    )
    .and_then(|mut s| s.execute(params![key.tenant, key.workflow, key.action, start - 86_400_000_000]))
    .map_err(|e| codec::error(OP, e))?;
    Ok(granted)
}
