//! Hearing that another engine queued work: one `LISTEN` connection per storage, started by the first worker
//! that waits, whose notifications complete the futures of [`Storage::queued_elsewhere`](crate::Storage).
//!
//! An enqueue that stored something sends `NOTIFY crm_webhooks, '<schema>'` in its own transaction, so the
//! notification leaves when (and only if) the transaction commits, whoever's transaction it is (the storage's own
//! or a host's). Every engine listening on the database hears it, the sender's own included. A notification for
//! another schema wakes nobody. A lost connection wakes everyone (something may have been missed meanwhile) and is
//! made again after a pause; the workers' poll covers the gap.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::task::JoinHandle;

use crate::ports::QueuedElsewhere;
use crate::signal::Signal;

/// The channel every enqueue notifies; the payload is the schema's name.
pub(super) const CHANNEL: &str = "crm_webhooks";

/// How long to wait before connecting again after the listening connection failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The listening side of a storage, shared by its clones.
#[derive(Debug)]
pub(super) struct Listener {
    signal: Arc<Signal>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Listener {
    pub(super) fn new() -> Self {
        Listener { signal: Arc::default(), task: Mutex::new(None) }
    }

    /// A future completing at the next notification for `schema`; starts listening on the first call.
    pub(super) fn next(self: &Arc<Self>, pool: &PgPool, schema: &str) -> QueuedElsewhere {
        let next = self.signal.next();
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        let running = task.as_ref().is_some_and(|t| !t.is_finished());
        if !running {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    *task = Some(runtime.spawn(listen(Arc::downgrade(&self.signal), pool.clone(), schema.to_owned())));
                }
                // Without a runtime nothing can listen: the future waits for nobody, and the poll covers it.
                Err(_) => return Box::pin(std::future::pending()),
            }
        }
        Box::pin(next)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            task.abort();
        }
    }
}

/// Listens until the storage is gone (its last clone dropped aborts this task).
async fn listen(signal: Weak<Signal>, pool: PgPool, schema: String) {
    loop {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for work queued by other engines; polling meanwhile");
                tokio::time::sleep(RECONNECT_AFTER).await;
                continue;
            }
        };
        // Connected: whatever was queued while nobody listened may be waiting.
        let Some(strong) = signal.upgrade() else { return };
        strong.notify();
        drop(strong);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if notification.payload() == schema {
                        let Some(strong) = signal.upgrade() else { return };
                        strong.notify();
                    }
                }
                // The connection was lost: anything sent meanwhile was missed.
                Ok(None) => {
                    let Some(strong) = signal.upgrade() else { return };
                    strong.notify();
                }
                Err(error) => {
                    tracing::warn!(%error, "lost the connection listening for work queued by other engines");
                    break;
                }
            }
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
