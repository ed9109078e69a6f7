//! A long-running worker loop over [`Engine::run_due`] (feature `tokio`).

use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::engine::{Engine, RunReport};

/// How often a worker records the queue's gauges (feature `metrics`).
const QUEUE_METRICS_EVERY: Duration = Duration::from_secs(15);

/// Runs worker passes until told to stop: after a full batch it goes on at once, otherwise it sleeps until its
/// engine queues work ([`Engine::work_queued`]), the next delivery is due, or the poll interval passes, whichever
/// is first. Sends within a pass run concurrently
/// (see [`EngineBuilder::concurrency`](crate::EngineBuilder::concurrency)).
///
/// Shutdown is graceful: a pass in flight is never cancelled; its requests finish and their results are
/// recorded before the loop ends. A worker that dies anyway loses nothing: its claims' leases run out and
/// another worker takes the deliveries.
///
/// ```no_run
/// # async fn demo(engine: crm_webhooks::Engine) {
/// use crm_webhooks::Worker;
/// let handle = Worker::new(engine).spawn();
/// // ... on shutdown:
/// let totals = handle.shutdown().await;
/// # let _ = totals;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Worker {
    engine: Engine,
    poll_interval: Duration,
    error_backoff: Duration,
}

impl Worker {
    /// A worker for this engine, polling at least every second.
    pub fn new(engine: Engine) -> Self {
        Worker { engine, poll_interval: Duration::from_secs(1), error_backoff: Duration::from_secs(5) }
    }

    /// The longest the worker sleeps between passes (default 1 s). Work its own engine queues wakes it at once,
    /// and so does work another engine queues when the storage hears of it (PostgreSQL's `LISTEN`); otherwise
    /// (another process on one SQLite file, a lost listening connection) it is picked up within this interval.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long to wait after a pass failed (storage down, say) before trying again (default 5 s).
    pub fn error_backoff(mut self, backoff: Duration) -> Self {
        self.error_backoff = backoff;
        self
    }

    /// Runs passes until `shutdown` completes, then returns the totals of every pass.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> RunReport {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        let mut totals = RunReport::default();
        let mut measured: Option<tokio::time::Instant> = None;
        loop {
            // With the `metrics` feature, the queue's gauges about every 15 seconds (a count of the whole queue).
            if cfg!(feature = "metrics") && measured.is_none_or(|at| at.elapsed() >= QUEUE_METRICS_EVERY) {
                measured = Some(tokio::time::Instant::now());
                if let Err(error) = self.engine.queue_depth().await {
                    tracing::debug!(%error, "the queue's depth is not known");
                }
            }
            // Taken before the pass, so that work queued while it runs starts the next one at once.
            let queued = self.engine.work_queued();
            let pause = match self.engine.run_due().await {
                Ok(report) => {
                    totals.add(&report);
                    if report.claimed > 0 || report.emails_sent > 0 {
                        tracing::debug!(?report, "worker pass");
                    }
                    if report.claimed >= self.engine.batch_size() {
                        Duration::ZERO
                    } else {
                        self.sleep_for().await
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "worker pass failed; trying again after the back-off");
                    self.error_backoff
                }
            };
            if pause.is_zero() {
                if (&mut shutdown).now_or_never().is_some() {
                    break;
                }
                continue;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(pause) => {}
                _ = queued => {}
            }
        }
        totals
    }

    async fn sleep_for(&self) -> Duration {
        let now = self.engine.now();
        match self.engine.next_due_at().await {
            Ok(Some(due)) if due <= now => Duration::ZERO,
            Ok(Some(due)) => (due - now).to_std().unwrap_or(self.poll_interval).min(self.poll_interval),
            _ => self.poll_interval,
        }
    }

    /// Runs the worker on the tokio runtime; the handle stops it.
    pub fn spawn(self) -> WorkerHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async move {
            let _ = stopped.await;
        }));
        WorkerHandle { stop: Some(stop), task }
    }
}

/// Stops a spawned [`Worker`].
#[derive(Debug)]
pub struct WorkerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<RunReport>,
}

impl WorkerHandle {
    /// Asks the worker to stop after its current pass and waits for it; returns the totals of every pass.
    pub async fn shutdown(mut self) -> RunReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap_or_default()
    }
}
