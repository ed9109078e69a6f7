//! The notification outbox: a notification queued with a failed delivery, claimed and updated until every
//! recipient has been emailed.

use sqlx::PgConnection;

use crate::ports::{Claim, Notification, NotificationUpdate, StorageError};

use super::attached::Attached;
use super::codec::{db_error, notification_from_row, without_nul};

impl Attached {
    /// Queues a notification in the transaction of a completion, unless one about its delivery is queued already
    /// (the first stays). Failure notifications are rare (one per failed delivery), so one statement each is fine.
    pub(super) async fn insert_notification(
        &self,
        conn: &mut PgConnection,
        notification: &Notification,
    ) -> Result<(), StorageError> {
        self.query(&self.sql.insert_notification)
            .bind(notification.delivery_id.as_bytes().as_slice())
            .bind(&notification.tenant)
            .bind(&notification.owner)
            .bind(notification.created_at)
            .bind(notification.next_attempt_at)
            .bind(i64::from(notification.attempts))
            .bind(&notification.sent_to)
            .bind(notification.last_error.as_deref().map(without_nul))
            .bind(crate::adapters::sql::notice_text(&notification.notice).as_deref().map(without_nul))
            .execute(conn)
            .await
            .map_err(|e| db_error("queueing a failure notification", e))?;
        Ok(())
    }

    /// Claims the due notifications, earliest first.
    pub(super) async fn claim_notifications(&self, claim: &Claim) -> Result<Vec<Notification>, StorageError> {
        let rows = self.claim_rows(&self.sql.claim_notifications, claim, "claiming due notifications").await?;
        rows.iter().map(notification_from_row).collect()
    }

    /// Records a claimed notification's progress, or deletes it when it is done; whether the claim was held.
    pub(super) async fn update_notification(&self, update: NotificationUpdate) -> Result<bool, StorageError> {
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
