//! What the engine keeps between passes besides the queue: quota counts and grants, `once` marks and schedules.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row as _;

use crate::delivery::DeliveryId;
use crate::ports::{QuotaRequest, StorageError};

use super::attached::Attached;
use super::codec::{corrupt, db_error, id_from_row, to_i64};

impl Attached {
    /// Grants the request's claimed deliveries a call each from the tenant's allowance for the day (see
    /// [`Storage::grant_quota`](crate::Storage::grant_quota)).
    pub(super) async fn grant_quota(&self, request: &QuotaRequest) -> Result<Vec<DeliveryId>, StorageError> {
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

    /// The calls counted for `tenant` on `day`.
    pub(super) async fn quota_used(&self, tenant: &str, day: NaiveDate) -> Result<u64, StorageError> {
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

    /// The next run of a scheduled workflow.
    pub(super) async fn next_run(&self, tenant: &str, workflow: &str) -> Result<Option<DateTime<Utc>>, StorageError> {
        let next: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(self.sql.next_run.clone())
            .bind(tenant)
            .bind(workflow)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("reading a schedule", e))?;
        Ok(next.flatten())
    }

    /// Sets a workflow's next run to `next` if it is still `expected`; whether it was.
    pub(super) async fn set_next_run(
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
}
