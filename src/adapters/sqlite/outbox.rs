//! The notification outbox: a notification queued with a failed delivery, claimed and updated until every
//! recipient has been emailed.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use crate::adapters::sql::{sql_count, NOTIFICATION_COLUMNS};
use crate::ports::{Claim, Notification, NotificationUpdate, StorageError, StorageErrorKind};

use super::codec::{self, collect, micros};

/// Notifications due at `?1`, earliest first, at most `?2`.
pub(super) const DUE_NOTIFICATIONS: &str =
    "FROM notifications WHERE due_at <= ?1 ORDER BY due_at, delivery_id LIMIT +?2";

/// Whether a notification is due at `?1`, through the `notifications_due` index.
pub(super) const ANY_DUE_NOTIFICATION: &str = "SELECT 1 FROM notifications WHERE due_at <= ?1 LIMIT 1";

/// Whether any notification is due at `now`: the claim's check on the reading connection, so that an idle poll
/// takes no write lock.
pub(super) fn any_due(connection: &Connection, now: DateTime<Utc>) -> Result<bool, StorageError> {
    const OP: &str = "claim_notifications (checking for due notifications)";
    let mut statement = connection.prepare_cached(ANY_DUE_NOTIFICATION).map_err(|e| codec::error(OP, e))?;
    statement.exists([micros(now)]).map_err(|e| codec::error(OP, e))
}

/// Queues a notification, unless one about its delivery is queued already: the first stays, as in
/// `MemoryStorage`.
pub(super) fn insert_notification(tx: &Connection, n: &Notification) -> Result<(), StorageError> {
    const OP: &str = "complete (queueing a notification)";
    let sent_to = codec::sent_to(&n.sent_to)?;
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "INSERT OR IGNORE INTO notifications ({NOTIFICATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        )
    });
    let mut insert = tx.prepare_cached(sql).map_err(|e| codec::error(OP, e))?;
    insert
        .execute(params![
            &n.delivery_id.as_bytes()[..],
            n.tenant,
            n.owner,
            micros(n.created_at),
            micros(n.next_attempt_at),
            n.attempts,
            sent_to,
            n.last_error,
            crate::adapters::sql::notice_text(&n.notice),
        ])
        .map_err(|e| codec::error(OP, e))?;
    Ok(())
}

/// Claims the due notifications, earliest first.
pub(super) fn claim(tx: &Connection, claim: &Claim) -> Result<Vec<Notification>, StorageError> {
    const OP: &str = "claim_notifications";
    let now = micros(claim.now);
    // As in the deliveries' claim: the batch is read in due order, then the same rows are taken by one UPDATE.
    let mut pick = tx
        .prepare_cached(&format!("SELECT {NOTIFICATION_COLUMNS} {DUE_NOTIFICATIONS}"))
        .map_err(|e| codec::error(OP, e))?;
    let claimed = collect(pick.query(params![now, sql_count(claim.limit)]), OP, codec::notification)?;
    if claimed.is_empty() {
        return Ok(claimed);
    }
    let mut take = tx
        .prepare_cached(&format!(
            "UPDATE notifications SET claim_token = ?3, lease_until = ?4 \
             WHERE delivery_id IN (SELECT delivery_id {DUE_NOTIFICATIONS})"
        ))
        .map_err(|e| codec::error(OP, e))?;
    let params = params![now, sql_count(claim.limit), &claim.token.as_bytes()[..], micros(claim.lease_until)];
    let taken = take.execute(params).map_err(|e| codec::error(OP, e))?;
    if taken != claimed.len() {
        return Err(StorageError::new(
            StorageErrorKind::Other,
            format!("SQLite {OP} read {} due notifications but took {taken}", claimed.len()),
        ));
    }
    Ok(claimed)
}

/// Records a claimed notification's progress, or deletes it when it is done; whether the claim was still held.
pub(super) fn update(tx: &Connection, update: &NotificationUpdate) -> Result<bool, StorageError> {
    const OP: &str = "update_notification";
    let id = &update.delivery_id.as_bytes()[..];
    let token = &update.token.as_bytes()[..];
    let changed = if update.done {
        tx.execute("DELETE FROM notifications WHERE delivery_id = ?1 AND claim_token = ?2", params![id, token])
    } else {
        tx.execute(
            "UPDATE notifications SET claim_token = CASE WHEN ?7 THEN claim_token END, \
             lease_until = CASE WHEN ?7 THEN lease_until END, sent_to = ?3, attempts = ?4, \
             next_attempt_at = ?5, last_error = ?6 WHERE delivery_id = ?1 AND claim_token = ?2",
            params![
                id,
                token,
                codec::sent_to(&update.sent_to)?,
                update.attempts,
                micros(update.next_attempt_at),
                update.last_error,
                update.keep_claim,
            ],
        )
    }
    .map_err(|e| codec::error(OP, e))?;
    Ok(changed == 1)
}
