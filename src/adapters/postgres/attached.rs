//! The storage's statements, run on the caller's task. [`PostgresStorage`](super::PostgresStorage) never runs
//! these on the caller's task directly: it hands each call to a task of its own (see `detached` there), so a
//! caller that drops its future cannot leave a connection halfway through a transaction.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::AssertSqlSafe;

use super::{
    corrupt, db_error, delivery_from_row, entry_from_row, id_from_row, notification_from_row, to_i64, without_nul,
    PostgresStorage,
};
use crate::adapters::sql::{log_page, status_text, LogParam, Placeholders};
use sqlx::postgres::PgRow;
use sqlx::Row as _;

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry, LogQuery};
use crate::ports::{Claim, Completion, Notification, NotificationUpdate, QuotaRequest, Storage, StorageError};

/// A [`PostgresStorage`] whose calls run where they are awaited: only ever awaited on a task that nothing
/// cancels.
#[derive(Debug, Clone)]
pub(super) struct Attached(pub(super) PostgresStorage);

impl Attached {
    /// Marks claimed rows that do not decode as Failed, each with a log entry saying why, so that one bad row
    /// does not fail every claim (and so every tenant's deliveries) until someone repairs it.
    async fn set_aside(&self, rows: &[(&PgRow, StorageError)], claim: &Claim) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await.map_err(|e| db_error("starting to set a row aside", e))?;
        let mut entries = Vec::with_capacity(rows.len());
        for (row, why) in rows {
            let raw_id: Vec<u8> = row.try_get("id").unwrap_or_default();
            self.query(&self.sql.set_aside)
                .bind(&raw_id)
                .bind(claim.now)
                .bind(claim.token.as_bytes().as_slice())
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("setting an unreadable delivery aside", e))?;
            let text = |column: &str| row.try_get::<String, _>(column).unwrap_or_else(|_| "?".to_owned());
            let delivery_id = <[u8; 16]>::try_from(raw_id.as_slice())
                .map(DeliveryId::from_bytes)
                .unwrap_or_else(|_| DeliveryId::derived(&["unreadable postgres row", &format!("{raw_id:x?}")]));
            entries.push(LogEntry {
                delivery_id,
                tenant: text("tenant"),
                workflow: text("workflow"),
                action: text("action"),
                record_id: text("record_id"),
                status: DeliveryStatus::Failed,
                attempt: row.try_get::<i64, _>("attempts").ok().and_then(|a| u32::try_from(a).ok()).unwrap_or(0),
                at: claim.now,
                http_status: None,
                response_snippet: None,
                error: Some(why.message().to_owned()),
                next_attempt_at: None,
                message: "set aside unsent: the stored delivery cannot be read; repair or delete the row".to_owned(),
            });
        }
        self.insert_entries(&mut tx, entries.iter()).await?;
        tx.commit().await.map_err(|e| db_error("committing a set-aside", e))
    }
}

/// The `id` column of each row.
fn ids_of(rows: &[PgRow]) -> Result<HashSet<DeliveryId>, StorageError> {
    rows.iter().map(|row| id_from_row(row, "id")).collect()
}

impl std::ops::Deref for Attached {
    type Target = PostgresStorage;
    fn deref(&self) -> &PostgresStorage {
        &self.0
    }
}

#[async_trait]
impl Storage for Attached {
    async fn enqueue(&self, deliveries: Vec<Delivery>, entries: Vec<LogEntry>) -> Result<(), StorageError> {
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
            skipped.extend(batch.into_iter().filter(|id| !stored.contains(id)));
        }
        let entries: Vec<&LogEntry> = entries.iter().filter(|e| !skipped.contains(&e.delivery_id)).collect();
        self.insert_entries(&mut tx, entries.into_iter()).await?;
        tx.commit().await.map_err(|e| db_error("committing an enqueue", e))
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Vec<Delivery>, StorageError> {
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

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<DeliveryId>, StorageError> {
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
            self.query(&self.sql.insert_notification)
                .bind(notification.delivery_id.as_bytes().as_slice())
                .bind(&notification.tenant)
                .bind(&notification.owner)
                .bind(notification.created_at)
                .bind(notification.next_attempt_at)
                .bind(i64::from(notification.attempts))
                .bind(&notification.sent_to)
                .bind(notification.last_error.as_deref().map(without_nul))
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("queueing a failure notification", e))?;
        }
        tx.commit().await.map_err(|e| db_error("committing a completion", e))?;

        // Lost, in the order given: every completion not applied, and every repeat of one that was.
        let mut first_seen = HashSet::with_capacity(completions.len());
        Ok(completions.iter().filter(|c| !(first_seen.insert(c.id) && applied.contains(&c.id))).map(|c| c.id).collect())
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(self.sql.next_due_at.clone())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error("finding the next due time", e))
    }

    async fn delivery(&self, tenant: &str, id: DeliveryId) -> Result<Option<Delivery>, StorageError> {
        let row = self
            .query(&self.sql.delivery)
            .bind(id.as_bytes().as_slice())
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("reading a delivery", e))?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StorageError> {
        let (sql, params) = log_page(&self.sql.log_from, "tenant", query, Placeholders::Dollar);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for param in params {
            q = match param {
                LogParam::Text(text) => q.bind(text),
                LogParam::Id(id) => q.bind(id.as_bytes().as_slice()),
                LogParam::Time(at) => q.bind(at),
                LogParam::Count(n) => q.bind(n),
            };
        }
        let rows = q.fetch_all(&self.pool).await.map_err(|e| db_error("reading the delivery log", e))?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let removed: i64 = sqlx::query_scalar(self.sql.prune.clone())
            .bind(before)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error("pruning settled deliveries", e))?;
        Ok(u64::try_from(removed).unwrap_or(0))
    }

    async fn grant_quota(&self, request: &QuotaRequest) -> Result<Vec<DeliveryId>, StorageError> {
        if request.deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&[u8]> = request.deliveries.iter().map(|id| id.as_bytes().as_slice()).collect();
        let mut tx = self.pool.begin().await.map_err(|e| db_error("starting a quota grant", e))?;
        let rows = self
            .query(&self.sql.held_grants)
            .bind(&ids)
            .bind(request.token.as_bytes().as_slice())
            .bind(request.day)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db_error("reading the deliveries' quota grants", e))?;
        let mut held = HashSet::with_capacity(rows.len());
        let mut claimed = HashSet::with_capacity(rows.len());
        for row in &rows {
            let id = id_from_row(row, "id")?;
            claimed.insert(id);
            if row.try_get::<Option<bool>, _>("held").map_err(|e| db_error("reading a quota grant", e))? == Some(true) {
                held.insert(id);
            }
        }
        // The rest are counted, in the request's order, while the allowance lasts.
        let wanted: Vec<DeliveryId> =
            request.deliveries.iter().filter(|id| claimed.contains(id) && !held.contains(id)).copied().collect();
        let mut new = HashSet::new();
        if !wanted.is_empty() {
            let granted: i64 = sqlx::query_scalar(self.sql.acquire_quota.clone())
                .bind(&request.tenant)
                .bind(request.day)
                .bind(to_i64(request.allowance))
                .bind(to_i64(wanted.len() as u64))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| db_error("counting quota", e))?;
            let granted = usize::try_from(granted).map_err(|_| {
                corrupt(format!("the quota upsert granted a negative count ({granted}) to tenant {}", request.tenant))
            })?;
            new.extend(wanted.into_iter().take(granted));
            let ids: Vec<&[u8]> = new.iter().map(|id| id.as_bytes().as_slice()).collect();
            self.query(&self.sql.store_grants)
                .bind(&ids)
                .bind(request.day)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("storing quota grants", e))?;
        }
        tx.commit().await.map_err(|e| db_error("committing a quota grant", e))?;
        Ok(request.deliveries.iter().filter(|id| held.contains(id) || new.contains(id)).copied().collect())
    }

    async fn quota_used(&self, tenant: &str, day: NaiveDate) -> Result<u64, StorageError> {
        let used: Option<i64> = sqlx::query_scalar(self.sql.quota_used.clone())
            .bind(tenant)
            .bind(day)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("reading quota", e))?;
        let used = used.unwrap_or(0);
        u64::try_from(used)
            .map_err(|_| corrupt(format!("tenant {tenant} has a negative quota count ({used}) for {day}")))
    }

    async fn mark_fired(&self, tenant: &str, workflow: &str, record_id: &str) -> Result<bool, StorageError> {
        let result = self
            .query(&self.sql.mark_fired)
            .bind(tenant)
            .bind(workflow)
            .bind(record_id)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("marking a once-trigger as fired", e))?;
        Ok(result.rows_affected() == 1)
    }

    async fn next_run(&self, tenant: &str, workflow: &str) -> Result<Option<DateTime<Utc>>, StorageError> {
        let next: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(self.sql.next_run.clone())
            .bind(tenant)
            .bind(workflow)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("reading a schedule", e))?;
        Ok(next.flatten())
    }

    async fn set_next_run(
        &self,
        tenant: &str,
        workflow: &str,
        expected: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, StorageError> {
        let result = match expected {
            // No row and a NULL row both mean "none stored"; the upsert covers both without a read.
            None => self.query(&self.sql.set_next_run_from_none).bind(tenant).bind(workflow).bind(next),
            Some(expected) => {
                self.query(&self.sql.set_next_run_from_some).bind(tenant).bind(workflow).bind(expected).bind(next)
            }
        }
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("advancing a schedule", e))?;
        Ok(result.rows_affected() == 1)
    }

    async fn claim_notifications(&self, claim: &Claim) -> Result<Vec<Notification>, StorageError> {
        let rows = self.claim_rows(&self.sql.claim_notifications, claim, "claiming due notifications").await?;
        rows.iter().map(notification_from_row).collect()
    }

    async fn update_notification(&self, update: NotificationUpdate) -> Result<bool, StorageError> {
        let id = update.delivery_id.as_bytes().as_slice();
        let token = update.token.as_bytes().as_slice();
        let query = if update.done {
            self.query(&self.sql.delete_notification).bind(id).bind(token)
        } else {
            self.query(&self.sql.update_notification)
                .bind(id)
                .bind(token)
                .bind(&update.sent_to)
                .bind(i64::from(update.attempts))
                .bind(update.next_attempt_at)
                .bind(update.last_error.as_deref().map(without_nul))
                .bind(update.keep_claim)
        };
        let result = query.execute(&self.pool).await.map_err(|e| db_error("updating a notification", e))?;
        Ok(result.rows_affected() == 1)
    }
}
