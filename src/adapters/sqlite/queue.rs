//! The queue: storing deliveries, claiming the due ones, writing their results back, and reading them.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use std::sync::OnceLock;

use crate::adapters::sql::{first_in_line, sql_count, status_text, DELIVERY_COLUMNS};
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry};
use crate::ports::{
    drop_fired, waits_behind_message, Claim, Completion, Enqueue, OnceMark, StorageError, StorageErrorKind,
};

use super::codec::{self, collect, micros, opt_micros};
use super::{log, outbox};

/// Deliveries due at `?1` (ordered ones only when first in their line), earliest first, at most `?2`.
/// `LIMIT +?2` rather than `LIMIT ?2`: SQLite plans a statement again whenever the value bound to a bare LIMIT
/// parameter changes.
fn due_deliveries() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "FROM deliveries WHERE due_at <= ?1 AND {} ORDER BY due_at, created_at, id LIMIT +?2",
            first_in_line("deliveries")
        )
    })
}

/// Reads the deliveries a claim takes (`?1` now, `?2` the limit).
pub(super) fn claim_pick_sql() -> String {
    format!("SELECT {DELIVERY_COLUMNS}, rowid {}", due_deliveries())
}

/// Takes the deliveries [`claim_pick_sql`] read (`?3` the lease, `?4` the claim token).
///
/// OR FAIL: a row failing a constraint would fail the statement without SQLite undoing the rows before it. That
/// spares it the statement journal it otherwise keeps for a statement of many rows (a copy of every page the
/// statement changes, spilled to a temporary file past 64 KiB); any error rolls the whole transaction back anyway.
pub(super) fn claim_take_sql() -> String {
    format!(
        "UPDATE OR FAIL deliveries SET status = 'dispatched', lease_expires_at = ?3, claim_token = ?4, \
         updated_at = ?1 WHERE rowid IN (SELECT rowid {})",
        due_deliveries()
    )
}

/// Stores a batch: takes its `once` marks, drops the deliveries of marks taken before, stores the deliveries not
/// already stored with the log entries of those it stored, and an entry for each ordered one that waits behind an
/// earlier one. Returns the ids left after the marks. One id twice in the batch is found as the rows go in and
/// fails the call: the caller's savepoint then undoes the rows before it.
pub(super) fn enqueue(tx: &Connection, mut batch: Enqueue) -> Result<Vec<DeliveryId>, StorageError> {
    let mut taken: Vec<OnceMark> = Vec::new();
    for mark in &batch.once {
        if !super::state::mark_fired(tx, &mark.tenant, &mark.workflow, &mark.record_id)
            .map_err(|e| codec::error("enqueue (taking a once mark)", e))?
        {
            taken.push(mark.clone());
        }
    }
    let ids = drop_fired(&mut batch, &taken.iter().collect::<Vec<_>>());
    let mut seen = HashSet::with_capacity(batch.deliveries.len());
    let mut skipped = HashSet::new();
    let mut waits = Vec::new();
    for d in &batch.deliveries {
        if !seen.insert(d.id) {
            return Err(StorageError::new(
                StorageErrorKind::Other,
                format!("delivery {} is twice in one enqueue", d.id),
            ));
        }
        if !insert_delivery(tx, d).map_err(|e| codec::error("enqueue", e))? {
            skipped.insert(d.id);
        } else if let Some(key) = d.order_key() {
            if let Some(earlier) = waits_behind(tx, &key, d.id)? {
                waits.push(LogEntry::about(d, DeliveryStatus::Queued, d.created_at, waits_behind_message(earlier)));
            }
        }
    }
    let mut entries: Vec<&LogEntry> = batch.entries.iter().filter(|e| !skipped.contains(&e.delivery_id)).collect();
    entries.extend(waits.iter());
    log::insert_entries(tx, &entries).map_err(|e| codec::error("enqueue (appending log entries)", e))?;
    Ok(ids)
}

/// The latest delivery before `id` in its line that is still queued or dispatched, if any.
fn waits_behind(tx: &Connection, key: &[u8; 16], id: DeliveryId) -> Result<Option<DeliveryId>, StorageError> {
    const OP: &str = "enqueue (finding the delivery an ordered one waits for)";
    let mut statement = tx
        .prepare_cached(
            "SELECT earlier.id FROM deliveries AS earlier, deliveries AS this \
             WHERE this.id = ?2 AND earlier.order_key = ?1 AND earlier.order_key IS NOT NULL \
             AND earlier.order_seq < this.order_seq AND earlier.status IN ('queued', 'dispatched') \
             ORDER BY earlier.order_seq DESC LIMIT 1",
        )
        .map_err(|e| codec::error(OP, e))?;
    let found = collect(statement.query(params![&key[..], &id.as_bytes()[..]]), OP, codec::first_id)?;
    Ok(found.into_iter().next())
}

/// Stores a delivery unless one with its id is already stored; `false` when it was. An ordered one takes the
/// place after the last of its line.
fn insert_delivery(tx: &Connection, d: &Delivery) -> Result<bool, rusqlite::Error> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "INSERT INTO deliveries ({DELIVERY_COLUMNS}, order_key, order_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
             ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, CASE WHEN ?20 IS NULL THEN NULL ELSE \
             (SELECT coalesce(max(order_seq), 0) + 1 FROM deliveries WHERE order_key = ?20) END) \
             ON CONFLICT (id) DO NOTHING"
        )
    });
    let mut insert = tx.prepare_cached(sql)?;
    let order_key = d.order_key();
    insert
        .execute(params![
            &d.id.as_bytes()[..],
            d.tenant,
            d.workflow,
            d.action,
            d.module,
            d.record_id,
            d.owner,
            d.method.as_str(),
            d.url,
            d.content_type.as_str(),
            &d.body[..],
            status_text(d.status),
            d.attempts,
            opt_micros(d.next_attempt_at),
            opt_micros(d.lease_expires_at),
            micros(d.created_at),
            micros(d.updated_at),
            d.redelivery_of.as_ref().map(|id| &id.as_bytes()[..]),
            d.ordered,
            order_key.as_ref().map(|k| &k[..]),
        ])
        .map(|inserted| inserted == 1)
}

/// Claims the due deliveries, earliest first. A row that does not decode is set aside (failed, with a log entry
/// saying why) rather than failing every claim, and so every tenant's deliveries, until someone repairs it.
pub(super) fn claim_due(tx: &Connection, claim: &Claim) -> Result<Vec<Delivery>, StorageError> {
    const OP: &str = "claim_due";
    let now = micros(claim.now);
    let lease_until = micros(claim.lease_until);
    // The batch is read in due order, then taken by one UPDATE of the same rows: the write lock held since
    // BEGIN IMMEDIATE keeps them due until then. A statement costs far more than a row, so not one each.
    let mut pick = tx.prepare_cached(&claim_pick_sql()).map_err(|e| codec::error(OP, e))?;
    let mut rows = pick.query(params![now, sql_count(claim.limit)]).map_err(|e| codec::error(OP, e))?;
    let mut claimed = Vec::new();
    let mut unreadable = Vec::new();
    while let Some(row) = rows.next().map_err(|e| codec::error(OP, e))? {
        match codec::delivery(row) {
            Ok(delivery) => claimed.push(delivery),
            Err(why) => unreadable.push(codec::unreadable(row, &why, claim.now)),
        }
    }
    drop(rows);
    if claimed.is_empty() && unreadable.is_empty() {
        return Ok(claimed);
    }
    let mut take = tx.prepare_cached(&claim_take_sql()).map_err(|e| codec::error(OP, e))?;
    let taken = take
        .execute(params![now, sql_count(claim.limit), lease_until, &claim.token.as_bytes()[..]])
        .map_err(|e| codec::error(OP, e))?;
    if taken != claimed.len() + unreadable.len() {
        // Cannot happen under the write lock; refuse (and roll back) rather than hand out a row not taken.
        return Err(StorageError::new(
            StorageErrorKind::Other,
            format!("SQLite {OP} read {} due deliveries but took {taken}", claimed.len()),
        ));
    }
    if !unreadable.is_empty() {
        set_aside(tx, &unreadable, now).map_err(|e| codec::error(OP, e))?;
    }
    // What the UPDATE wrote, as it reads back (to the microsecond).
    let (lease_until, now) = (codec::time(lease_until), codec::time(now));
    for d in &mut claimed {
        d.status = DeliveryStatus::Dispatched;
        d.lease_expires_at = Some(lease_until);
        d.updated_at = now;
    }
    Ok(claimed)
}

/// Marks the unreadable rows a claim took (by `rowid`) as failed, and logs why.
fn set_aside(tx: &Connection, unreadable: &[(i64, LogEntry)], now: i64) -> Result<(), rusqlite::Error> {
    let mut set_aside = tx.prepare_cached(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, lease_expires_at = NULL, \
         claim_token = NULL, updated_at = ?2 WHERE rowid = ?1",
    )?;
    for (rowid, _) in unreadable {
        set_aside.execute(params![rowid, now])?;
    }
    let entries: Vec<&LogEntry> = unreadable.iter().map(|(_, entry)| entry).collect();
    log::insert_entries(tx, &entries)
}

/// Writes back the results of attempts whose claim is still held; the ids of the others (lost), in order.
pub(super) fn complete(tx: &Connection, completions: &[Completion]) -> Result<Vec<DeliveryId>, StorageError> {
    const OP: &str = "complete";
    // One statement a completion: a multi-row UPDATE ... FROM costs more a row than this does.
    let mut complete = tx
        .prepare_cached(
            "UPDATE deliveries SET status = ?3, attempts = ?4, next_attempt_at = ?5, lease_expires_at = NULL, \
             claim_token = NULL, updated_at = ?6 \
             WHERE id = ?1 AND claim_token = ?2 AND status = 'dispatched'",
        )
        .map_err(|e| codec::error(OP, e))?;
    let mut lost = Vec::new();
    let mut entries = Vec::new();
    for c in completions {
        let changed = complete
            .execute(params![
                &c.id.as_bytes()[..],
                &c.token.as_bytes()[..],
                status_text(c.status),
                c.attempts,
                opt_micros(c.next_attempt_at),
                micros(c.at),
            ])
            .map_err(|e| codec::error(OP, e))?;
        if changed == 0 {
            lost.push(c.id);
            continue;
        }
        entries.extend(&c.entries);
        if let Some(notification) = &c.notification {
            outbox::insert_notification(tx, notification)?;
        }
    }
    // The batch's entries together, in the order given (the log's order for entries of one instant).
    log::insert_entries(tx, &entries).map_err(|e| codec::error("complete (appending log entries)", e))?;
    Ok(lost)
}

/// Whether any delivery is due at `now`: the claim's check on the reading connection, so that an idle poll takes
/// no write lock.
pub(super) fn any_due(connection: &Connection, now: DateTime<Utc>) -> Result<bool, StorageError> {
    let mut statement = connection
        .prepare_cached(any_due_delivery())
        .map_err(|e| codec::error("claim_due (checking for due deliveries)", e))?;
    statement.exists([micros(now)]).map_err(|e| codec::error("claim_due (checking for due deliveries)", e))
}

/// Whether a delivery a claim may take is due at `?1`, through the `deliveries_due` index.
pub(super) fn any_due_delivery() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!("SELECT 1 FROM deliveries WHERE due_at <= ?1 AND {} LIMIT 1", first_in_line("deliveries"))
    })
}

/// When the earliest delivery is due, if any is.
pub(super) fn next_due_at(connection: &Connection) -> Result<Option<DateTime<Utc>>, StorageError> {
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT due_at FROM deliveries WHERE due_at IS NOT NULL AND {} ORDER BY due_at LIMIT 1",
            first_in_line("deliveries")
        )
    });
    let mut statement = connection.prepare_cached(sql).map_err(|e| codec::error("next_due_at", e))?;
    let due = collect(statement.query([]), "next_due_at", |row| codec::first_opt_time(row, "delivery"))?;
    Ok(due.into_iter().next().flatten())
}

/// How many deliveries are queued and dispatched, and when the oldest queued one was queued (the rows of the
/// `deliveries_due` index, and the dispatched ones a set-aside or a lost token left out of it).
pub(super) fn queue_depth(connection: &Connection) -> Result<crate::ports::QueueDepth, StorageError> {
    const OP: &str = "queue_depth";
    let mut statement = connection
        .prepare_cached(
            "SELECT coalesce(sum(status = 'queued'), 0), coalesce(sum(status = 'dispatched'), 0), \
             min(CASE WHEN status = 'queued' THEN created_at END) \
             FROM deliveries WHERE status IN ('queued', 'dispatched')",
        )
        .map_err(|e| codec::error(OP, e))?;
    let rows = collect(statement.query([]), OP, codec::queue_depth)?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

/// One of `tenant`'s deliveries.
pub(super) fn delivery(
    connection: &Connection,
    tenant: &str,
    id: DeliveryId,
) -> Result<Option<Delivery>, StorageError> {
    let mut statement = connection
        .prepare_cached(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1 AND tenant = ?2"))
        .map_err(|e| codec::error("delivery", e))?;
    let found = collect(statement.query(params![&id.as_bytes()[..], tenant]), "delivery", codec::delivery)?;
    Ok(found.into_iter().next())
}
