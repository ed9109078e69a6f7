//! How a check runs: a fixture per check, a skip with its reason, a clean-up after a passing check.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::delivery::DeliveryId;
use crate::engine::Prepared;
use crate::ports::{Storage, StorageError};

/// A store that can write into a host's own database transaction (SQLite's and PostgreSQL's `enqueue_in`), as
/// the suite drives it: a fixture that has one runs the host-transaction checks; the others skip them.
#[async_trait::async_trait]
pub trait HostTransactions: Send + Sync {
    /// Opens a transaction of the host's on the store's database, writes a row of the host's own in it, writes
    /// `prepared` through the store's host entry point, then commits it (`commit`) or rolls it back. Returns what
    /// the entry point returned.
    async fn save_and_enqueue(&self, prepared: Prepared, commit: bool) -> Result<Vec<DeliveryId>, StorageError>;
}

/// A future the suite can hold and send between threads.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A store for one check, with what must live as long as it (a temporary directory) and a clean-up to run once
/// the check passed (dropping a database schema). A failed check skips the clean-up, which leaves its data to
/// look at.
pub struct Fixture {
    storage: Arc<dyn Storage>,
    host: Option<Arc<dyn HostTransactions>>,
    keep: Vec<Box<dyn Any + Send>>,
    teardown: Option<BoxFuture>,
}

impl Fixture {
    /// A fixture of just a store.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Fixture { storage, host: None, keep: Vec::new(), teardown: None }
    }

    /// The store also writes into a host's transactions, this way (see [`HostTransactions`]).
    pub fn host_transactions(mut self, host: impl HostTransactions + 'static) -> Self {
        self.host = Some(Arc::new(host));
        self
    }

    /// Keeps `guard` alive until the check ends.
    pub fn keep(mut self, guard: impl Any + Send) -> Self {
        self.keep.push(Box::new(guard));
        self
    }

    /// Runs `cleanup` after the check passed.
    pub fn teardown(mut self, cleanup: impl Future<Output = ()> + Send + 'static) -> Self {
        self.teardown = Some(Box::pin(cleanup));
        self
    }
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").field("keeps", &self.keep.len()).field("teardown", &self.teardown.is_some()).finish()
    }
}

/// What a fixture maker gives the suite: a store to check, or why the checks cannot run here.
#[derive(Debug)]
pub enum Setup {
    /// A store to check.
    Ready(Fixture),
    /// The checks are skipped, for this reason (printed once per check).
    Skip(String),
}

impl From<Fixture> for Setup {
    fn from(fixture: Fixture) -> Self {
        Setup::Ready(fixture)
    }
}

impl<S: Storage + 'static> From<Arc<S>> for Setup {
    fn from(storage: Arc<S>) -> Self {
        Setup::Ready(Fixture::new(storage))
    }
}

impl From<Arc<dyn Storage>> for Setup {
    fn from(storage: Arc<dyn Storage>) -> Self {
        Setup::Ready(Fixture::new(storage))
    }
}

/// Runs one check on a fixture: prints the reason and returns when it skips; otherwise runs the check, then the
/// fixture's clean-up when the check passed. A failed check panics with its message.
pub async fn run<F>(name: &str, setup: impl Into<Setup>, check: F)
where
    F: FnOnce(Arc<dyn Storage>) -> BoxFuture,
{
    let fixture = match setup.into() {
        Setup::Ready(fixture) => fixture,
        Setup::Skip(reason) => {
            eprintln!("storage contract: skipping {name}: {reason}");
            return;
        }
    };
    let Fixture { storage, host: _, keep, teardown } = fixture;
    check(storage).await;
    if let Some(teardown) = teardown {
        teardown.await;
    }
    drop(keep);
}

/// Runs one host-transaction check: like [`run`], and skipped (saying so) when the fixture has no
/// [`HostTransactions`] (a store with no database of the host's to share, such as memory).
pub async fn run_host<F>(name: &str, setup: impl Into<Setup>, check: F)
where
    F: FnOnce(Arc<dyn Storage>, Arc<dyn HostTransactions>) -> BoxFuture,
{
    let fixture = match setup.into() {
        Setup::Ready(fixture) => fixture,
        Setup::Skip(reason) => {
            eprintln!("storage contract: skipping {name}: {reason}");
            return;
        }
    };
    let Fixture { storage, host, keep, teardown } = fixture;
    let Some(host) = host else {
        eprintln!("storage contract: skipping {name}: this store writes into no host transaction");
        return;
    };
    check(storage, host).await;
    if let Some(teardown) = teardown {
        teardown.await;
    }
    drop(keep);
}
