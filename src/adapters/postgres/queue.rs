//! The queue: storing deliveries, claiming the due ones, writing their results back, and reading them.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgRow};

use crate::adapters::sql::status_text;
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry};
use crate::ports::{drop_fired, waits_behind_message, Claim, Completion, Enqueue, StorageError};

use super::attached::Attached;
use super::codec::{self, db_error, delivery_from_row, id_from_row};

impl Attached {
    /// Stores a batch in one transaction of the storage's own; see [`enqueue_on`](Self::enqueue_on).
    pub(super) async fn enqueue(&self, batch: Enqueue) -> Result<Vec<DeliveryId>, StorageError> {
        if batch.deliveries.is_empty() && batch.entries.is_empty() && batch.once.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(|e| db_error("starting an enqueue", e))?;
        let ids = self.enqueue_on(&mut tx, batch).await?;
        tx.commit().await.map_err(|e| db_error("committing an enqueue", e))?;
        Ok(ids)
    }

    /// Stores a batch on `conn`, inside the transaction the caller holds there: takes its `once` marks, drops the
    /// deliveries of marks taken before, stores the deliveries not already stored (each ordered one at the next
    /// place of its line) with the log entries of those it stored and an entry for each ordered one that waits
    /// behind an earlier one, and notifies the listening engines (the notification leaves at commit). Returns the
    /// ids left after the marks.
    pub(super) async fn enqueue_on(
        &self,
        conn: &mut PgConnection,
        mut batch: Enqueue,
    ) -> Result<Vec<DeliveryId>, StorageError> {
        let batch_ids = crate::ports::distinct_ids(&batch.deliveries)?;
        let mut taken = Vec::new();
        for mark in &batch.once {
            let result = self
                .query(&self.sql.mark_fired)
                .bind(&mark.tenant)
                .bind(&mark.workflow)
                .bind(&mark.record_id)
                .execute(&mut *conn)
                .await
                .map_err(|e| db_error("taking a once mark", e))?;
            if result.rows_affected() == 0 {
                taken.push(mark.clone());
            }
        }
        let ids = drop_fired(&mut batch, &taken.iter().collect::<Vec<_>>());
        let kept: HashSet<DeliveryId> = ids.iter().copied().collect();
        let mut skipped: HashSet<DeliveryId> = batch_ids.into_iter().filter(|id| !kept.contains(id)).collect();
        let mut waits = Vec::new();
        if !batch.deliveries.is_empty() {
            let places = self.take_places(conn, &batch.deliveries).await?;
            let stored = self.insert_deliveries(conn, &batch.deliveries, &places).await?;
            if !stored.is_empty() {
                self.query(&self.sql.notify_queued)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| db_error("notifying other engines of queued work", e))?;
            }
            for (d, place) in batch.deliveries.iter().zip(&places) {
                if !stored.contains(&d.id) {
                    skipped.insert(d.id);
                    continue;
                }
                let (Some(key), Some(place)) = (d.order_key(), place) else { continue };
                let earlier: Option<[u8; 16]> = sqlx::query_scalar(self.sql.waits_behind.clone())
                    .bind(&key[..])
                    .bind(place)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| db_error("finding the delivery an ordered one waits for", e))?;
                if let Some(earlier) = earlier {
                    let message = waits_behind_message(DeliveryId::from_bytes(earlier));
                    waits.push(LogEntry::about(d, DeliveryStatus::Queued, d.created_at, message));
                }
            }
        }
        let entries = batch.entries.iter().filter(|e| !skipped.contains(&e.delivery_id)).chain(waits.iter());
        let entries: Vec<&LogEntry> = entries.collect();
        self.insert_entries(conn, entries.into_iter()).await?;
        Ok(ids)
    }

    /// The place each ordered delivery of the batch takes in its line (`None` for the others): the lines' rows are
    /// locked in key order (so two enqueues never wait on each other crosswise) until the transaction ends.
    async fn take_places(
        &self,
        conn: &mut PgConnection,
        deliveries: &[Delivery],
    ) -> Result<Vec<Option<i64>>, StorageError> {
        let keys: Vec<Option<[u8; 16]>> = deliveries.iter().map(Delivery::order_key).collect();
        let mut counts: std::collections::BTreeMap<[u8; 16], i64> = std::collections::BTreeMap::new();
        for key in keys.iter().flatten() {
            *counts.entry(*key).or_insert(0) += 1;
        }
        if counts.is_empty() {
            return Ok(vec![None; deliveries.len()]);
        }
        let (lines, taken): (Vec<&[u8]>, Vec<i64>) = counts.iter().map(|(k, n)| (&k[..], *n)).unzip();
        let rows = self
            .query(&self.sql.take_places)
            .bind(lines)
            .bind(taken)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error("taking places in ordered lines", e))?;
        // The first place of this batch in each line: the line's last place now, less what the batch took.
        let mut next: std::collections::HashMap<[u8; 16], i64> = std::collections::HashMap::new();
        for row in &rows {
            let key: [u8; 16] = codec::column(row, "order_key")?;
            let last: i64 = codec::column(row, "last_seq")?;
            let n = counts.get(&key).copied().unwrap_or(0);
            next.insert(key, last.saturating_sub(n).saturating_add(1));
        }
        let mut places = Vec::with_capacity(deliveries.len());
        for key in keys {
            places.push(match key.and_then(|k| next.get_mut(&k)) {
                Some(place) => {
                    let this = *place;
                    *place = place.saturating_add(1);
                    Some(this)
                }
                None => None,
            });
        }
        Ok(places)
    }

    /// Inserts the deliveries not already stored; returns the ids it inserted.
    async fn insert_deliveries(
        &self,
        conn: &mut PgConnection,
        deliveries: &[Delivery],
        places: &[Option<i64>],
    ) -> Result<HashSet<DeliveryId>, StorageError> {
        let n = deliveries.len();
        let mut id = Vec::with_capacity(n);
        let mut tenant = Vec::with_capacity(n);
        let mut workflow = Vec::with_capacity(n);
        let mut action = Vec::with_capacity(n);
        let mut module = Vec::with_capacity(n);
        let mut record_id = Vec::with_capacity(n);
        let mut owner = Vec::with_capacity(n);
        let mut method = Vec::with_capacity(n);
        let mut url = Vec::with_capacity(n);
        let mut content_type = Vec::with_capacity(n);
        let mut body = Vec::with_capacity(n);
        let mut status = Vec::with_capacity(n);
        let mut attempts = Vec::with_capacity(n);
        let mut next_attempt_at = Vec::with_capacity(n);
        let mut lease_expires_at = Vec::with_capacity(n);
        let mut created_at = Vec::with_capacity(n);
        let mut updated_at = Vec::with_capacity(n);
        let mut redelivery_of = Vec::with_capacity(n);
        let mut ordered = Vec::with_capacity(n);
        let mut order_key = Vec::with_capacity(n);
        let keys: Vec<Option<[u8; 16]>> = deliveries.iter().map(Delivery::order_key).collect();
        for (d, key) in deliveries.iter().zip(&keys) {
            id.push(d.id.as_bytes().as_slice());
            tenant.push(d.tenant.as_str());
            workflow.push(d.workflow.as_str());
            action.push(d.action.as_str());
            module.push(d.module.as_str());
            record_id.push(d.record_id.as_str());
            owner.push(d.owner.as_str());
            method.push(d.method.as_str());
            url.push(d.url.as_str());
            content_type.push(d.content_type.as_str());
            body.push(d.body.as_ref());
            status.push(status_text(d.status));
            attempts.push(i64::from(d.attempts));
            next_attempt_at.push(d.next_attempt_at);
            lease_expires_at.push(d.lease_expires_at);
            created_at.push(d.created_at);
            updated_at.push(d.updated_at);
            redelivery_of.push(d.redelivery_of.as_ref().map(|r| r.as_bytes().as_slice()));
            ordered.push(d.ordered);
            order_key.push(key.as_ref().map(|k| k.as_slice()));
        }
        let inserted = self
            .query(&self.sql.insert_deliveries)
            .bind(id)
            .bind(tenant)
            .bind(workflow)
            .bind(action)
            .bind(module)
            .bind(record_id)
            .bind(owner)
            .bind(method)
            .bind(url)
            .bind(content_type)
            .bind(body)
            .bind(status)
            .bind(attempts)
            .bind(next_attempt_at)
            .bind(lease_expires_at)
            .bind(created_at)
            .bind(updated_at)
            .bind(redelivery_of)
            .bind(ordered)
            .bind(order_key)
            .bind(places)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error("storing deliveries", e))?;
        ids_of(&inserted)
    }

    /// Claims the due deliveries, earliest first; sets aside those that do not decode.
    pub(super) async fn claim_due(&self, claim: &Claim) -> Result<Vec<Delivery>, StorageError> {
        let rows = self.claim_rows(&self.sql.claim_deliveries, claim, "claiming due deliveries").await?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in &rows {
            match delivery_from_row(row) {
                Ok(delivery) => claimed.push(delivery),
                Err(why) => unreadable.push((row, why)),
            }
        }
        if !unreadable.is_empty() {
            self.set_aside(&unreadable, claim).await?;
        }
        Ok(claimed)
    }

    /// Marks claimed rows that do not decode as Failed, each with a log entry saying why, so that one bad row
    /// does not fail every claim (and so every tenant's deliveries) until someone repairs it.
    async fn set_aside(&self, rows: &[(&PgRow, StorageError)], claim: &Claim) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await.map_err(|e| db_error("starting to set a row aside", e))?;
        let mut entries = Vec::with_capacity(rows.len());
        for (row, why) in rows {
            let (raw_id, entry) = codec::unreadable(row, why, claim.now);
            self.query(&self.sql.set_aside)
                .bind(&raw_id)
                .bind(claim.now)
                .bind(claim.token.as_bytes().as_slice())
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("setting an unreadable delivery aside", e))?;
            entries.push(entry);
        }
        self.insert_entries(&mut tx, entries.iter()).await?;
        tx.commit().await.map_err(|e| db_error("committing a set-aside", e))
    }

    /// Writes back the results of attempts whose claim is still held; the ids of the others (lost), in order.
    pub(super) async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<DeliveryId>, StorageError> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        // A second completion of one delivery in the same batch finds it no longer held, as it would one call
        // later: only the first is sent to the database.
        let mut seen = HashSet::with_capacity(completions.len());
        let first: Vec<&Completion> = completions.iter().filter(|c| seen.insert(c.id)).collect();
        let n = first.len();
        let mut id = Vec::with_capacity(n);
        let mut token = Vec::with_capacity(n);
        let mut status = Vec::with_capacity(n);
        let mut attempts = Vec::with_capacity(n);
        let mut next_attempt_at = Vec::with_capacity(n);
        let mut at = Vec::with_capacity(n);
        for c in &first {
            id.push(c.id.as_bytes().as_slice());
            token.push(c.token.as_bytes().as_slice());
            status.push(status_text(c.status));
            attempts.push(i64::from(c.attempts));
            next_attempt_at.push(c.next_attempt_at);
            at.push(c.at);
        }

        let mut tx = self.pool.begin().await.map_err(|e| db_error("starting a completion", e))?;
        let applied_rows = self
            .query(&self.sql.complete_deliveries)
            .bind(id)
            .bind(token)
            .bind(status)
            .bind(attempts)
            .bind(next_attempt_at)
            .bind(at)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db_error("completing deliveries", e))?;
        let applied = ids_of(&applied_rows)?;

        let entries: Vec<&LogEntry> =
            first.iter().filter(|c| applied.contains(&c.id)).flat_map(|c| c.entries.iter()).collect();
        self.insert_entries(&mut tx, entries.into_iter()).await?;

        // Failure notifications are rare (one per failed delivery), so one statement each is fine.
        for notification in first.iter().filter(|c| applied.contains(&c.id)).filter_map(|c| c.notification.as_ref()) {
            self.insert_notification(&mut tx, notification).await?;
        }
        tx.commit().await.map_err(|e| db_error("committing a completion", e))?;

        // Lost, in the order given: every completion not applied, and every repeat of one that was.
        let mut first_seen = HashSet::with_capacity(completions.len());
        Ok(completions.iter().filter(|c| !(first_seen.insert(c.id) && applied.contains(&c.id))).map(|c| c.id).collect())
    }

    /// When the earliest delivery is due, if any is.
    pub(super) async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        let due = sqlx::query_scalar::<_, Option<DateTime<Utc>>>(self.sql.next_due_at.clone())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("finding the next due time", e))?;
        Ok(due.flatten())
    }

    /// The queue's depth and the oldest queued delivery's time.
    pub(super) async fn queue_depth(&self) -> Result<crate::ports::QueueDepth, StorageError> {
        let (queued, dispatched, oldest): (i64, i64, Option<DateTime<Utc>>) =
            sqlx::query_as(self.sql.queue_depth.clone())
                .fetch_one(&self.pool)
                .await
                .map_err(|e| db_error("reading the queue's depth", e))?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(crate::ports::QueueDepth { queued: count(queued), dispatched: count(dispatched), oldest_queued_at: oldest })
    }

    /// One of `tenant`'s deliveries.
    pub(super) async fn delivery(&self, tenant: &str, id: DeliveryId) -> Result<Option<Delivery>, StorageError> {
        let row = self
            .query(&self.sql.delivery)
            .bind(id.as_bytes().as_slice())
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("reading a delivery", e))?;
        row.as_ref().map(delivery_from_row).transpose()
    }
}

/// The `id` column of each row.
fn ids_of(rows: &[PgRow]) -> Result<HashSet<DeliveryId>, StorageError> {
    rows.iter().map(|row| id_from_row(row, "id")).collect()
}
