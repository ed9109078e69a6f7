//! Queueing in the host's own transaction: the crate's rows written on the host's connection, so they commit or
//! roll back with the host's save, and the `NOTIFY` that wakes every server leaves only with the commit.

use sqlx::postgres::PgConnection;
use sqlx::Connection as _;

use crate::delivery::DeliveryId;
use crate::engine::Prepared;
use crate::ports::StorageError;

use super::attached::Attached;
use super::codec::db_error;

/// Writes `prepared` on `conn`: in a savepoint when the host holds a transaction there (so a failure leaves the
/// host's transaction usable), in a transaction of its own otherwise.
pub(super) async fn enqueue_in(
    attached: &Attached,
    conn: &mut PgConnection,
    prepared: Prepared,
) -> Result<Vec<DeliveryId>, StorageError> {
    let batch = prepared.into_batch();
    if batch.deliveries.is_empty() && batch.once.is_empty() {
        return Ok(Vec::new());
    }
    let mut savepoint = conn.begin().await.map_err(|e| db_error("starting the enqueue's savepoint", e))?;
    let ids = attached.enqueue_on(&mut savepoint, batch).await?;
    savepoint.commit().await.map_err(|e| db_error("releasing the enqueue's savepoint", e))?;
    Ok(ids)
}
