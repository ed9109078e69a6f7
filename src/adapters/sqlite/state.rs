//! What the engine keeps between passes besides the queue: quota counts and grants, `once` marks and schedules.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::delivery::DeliveryId;
use crate::ports::{QuotaRequest, StorageError, StorageErrorKind};

use super::codec::{self, collect, opt_micros};

/// Grants the request's claimed deliveries a call each from the tenant's allowance for the day, in order, while it
/// lasts; a delivery that already holds the grant for the attempt it is about to make keeps it without counting
/// again. The ids granted, in the request's order.
pub(super) fn grant_quota(tx: &Connection, request: &QuotaRequest) -> Result<Vec<DeliveryId>, StorageError> {
    const OP: &str = "grant_quota";
    let day = request.day.to_string();
    let used: Option<i64> = tx
        .prepare_cached("SELECT used FROM quota_usage WHERE tenant = ?1 AND day = ?2")
        .and_then(|mut s| s.query_row(params![request.tenant, day], |row| row.get(0)).optional())
        .map_err(|e| codec::error(OP, e))?;
    let tenant = &request.tenant;
    let mut used = u64::try_from(used.unwrap_or(0))
        .map_err(|_| StorageError::new(StorageErrorKind::Corrupt, format!("quota of {tenant} on {day} is negative")))?;
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
}

/// The calls counted for `tenant` on `day`.
pub(super) fn quota_used(connection: &Connection, tenant: &str, day: NaiveDate) -> Result<u64, StorageError> {
    let mut statement = connection
        .prepare_cached("SELECT used FROM quota_usage WHERE tenant = ?1 AND day = ?2")
        .map_err(|e| codec::error("quota_used", e))?;
    let used =
        collect(statement.query(params![tenant, day.to_string()]), "quota_used", |row| codec::count(row, "quota"))?;
    Ok(used.into_iter().next().unwrap_or(0))
}

/// Marks a `once` workflow as fired for a record; `false` when it already was.
pub(super) fn mark_fired(
    tx: &Connection,
    tenant: &str,
    workflow: &str,
    record_id: &str,
) -> Result<bool, rusqlite::Error> {
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO fired_once (tenant, workflow, record_id) VALUES (?1, ?2, ?3)",
        params![tenant, workflow, record_id],
    )?;
    Ok(inserted == 1)
}

/// The next run of a scheduled workflow (`None`: none stored, or the schedule ran out).
pub(super) fn next_run(
    connection: &Connection,
    tenant: &str,
    workflow: &str,
) -> Result<Option<DateTime<Utc>>, StorageError> {
    let mut statement = connection
        .prepare_cached("SELECT next_run FROM schedules WHERE tenant = ?1 AND workflow = ?2")
        .map_err(|e| codec::error("next_run", e))?;
    let found =
        collect(statement.query(params![tenant, workflow]), "next_run", |row| codec::first_opt_time(row, "schedule"))?;
    Ok(found.into_iter().next().flatten())
}

/// Sets a workflow's next run to `next` if it is still `expected`; whether it was.
pub(super) fn set_next_run(
    tx: &Connection,
    tenant: &str,
    workflow: &str,
    expected: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
) -> Result<bool, rusqlite::Error> {
    // `IS` compares NULLs as equal: a stored "no next run" matches `expected = None`.
    let updated = tx.execute(
        "UPDATE schedules SET next_run = ?3 WHERE tenant = ?1 AND workflow = ?2 AND next_run IS ?4",
        params![tenant, workflow, opt_micros(next), opt_micros(expected)],
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
        params![tenant, workflow, opt_micros(next)],
    )?;
    Ok(inserted == 1)
}
