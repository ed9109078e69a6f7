//! The queue: storing deliveries, claiming the due ones, writing their results back, and reading them.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;

use crate::adapters::sql::status_text;
use crate::delivery::{Delivery, DeliveryId, LogEntry};
use crate::ports::{Claim, Completion, StorageError};

use super::attached::Attached;
use super::codec::{self, db_error, delivery_from_row, id_from_row};

impl Attached {
    /// Stores the deliveries not already stored, and the log entries of those it stored, in one transaction.
    pub(super) async fn enqueue(&self, deliveries: Vec<Delivery>, entries: Vec<LogEntry>) -> Result<(), StorageError> {
        if deliveries.is_empty() && entries.is_empty() {
            return Ok(());
        }
        let batch = crate::ports::distinct_ids(&deliveries)?;
        let mut tx = self.pool.begin().await.map_err(|e| db_error("starting an enqueue", e))?;
        let mut skipped = HashSet::new();
        if !deliveries.is_empty() {
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
            for d in &deliveries {
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
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| db_error("storing deliveries", e))?;
            let stored = ids_of(&inserted)?;
            if !stored.is_empty() {
                self.query(&self.sql.notify_queued)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error("notifying other engines of queued work", e))?;
            }
            skipped.extend(batch.into_iter().filter(|id| !stored.contains(id)));
        }
        let entries: Vec<&LogEntry> = entries.iter().filter(|e| !skipped.contains(&e.delivery_id)).collect();
        self.insert_entries(&mut tx, entries.into_iter()).await?;
        tx.commit().await.map_err(|e| db_error("committing an enqueue", e))
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
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(self.sql.next_due_at.clone())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error("finding the next due time", e))
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
