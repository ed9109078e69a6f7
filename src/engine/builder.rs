//! Building an engine: its parts, its numbers, and the checks that refuse settings that cannot hold.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::core::{Engine, Inner};
use super::error::BuildError;
use super::lease::{claim_window, LEASE_MARGIN};
use crate::limits::DEFAULT_MAX_BODY_BYTES;
use crate::ports::{Clock, Directory, HttpClient, Mailer, Storage, SystemClock};
use crate::quota::QuotaPolicy;
use crate::retry::RetrySchedule;

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }
}

/// Builds an [`Engine`]: storage, HTTP client, mailer and directory are required; the clock defaults to the
/// system clock, the retry schedule to 1 h/2 h/4 h, the quota policy to the directory's editions.
#[derive(Default)]
pub struct EngineBuilder {
    storage: Option<Arc<dyn Storage>>,
    http: Option<Arc<dyn HttpClient>>,
    mailer: Option<Arc<dyn Mailer>>,
    directory: Option<Arc<dyn Directory>>,
    clock: Option<Arc<dyn Clock>>,
    retry: RetrySchedule,
    quota: QuotaPolicy,
    batch_size: Option<usize>,
    lease: Option<Duration>,
    concurrency: Option<usize>,
    max_body_bytes: Option<usize>,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder").field("retry", &self.retry).field("quota", &self.quota).finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// The storage (required).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }
    /// The HTTP client (required).
    pub fn http(mut self, http: Arc<dyn HttpClient>) -> Self {
        self.http = Some(http);
        self
    }
    /// The mailer for failure notifications (required).
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }
    /// The host's users and tenants (required).
    pub fn directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = Some(directory);
        self
    }
    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
    /// The retry schedule (default: 1 h, 2 h, 4 h).
    pub fn retry_schedule(mut self, schedule: RetrySchedule) -> Self {
        self.retry = schedule;
        self
    }
    /// The quota policy (default: each tenant's edition from the directory).
    pub fn quota_policy(mut self, policy: QuotaPolicy) -> Self {
        self.quota = policy;
        self
    }
    /// Deliveries claimed per pass (default 100).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = Some(size);
        self
    }
    /// How long a claim holds a delivery before another worker may take it (default 5 minutes).
    ///
    /// A pass writes each result soon after its request ends, and never holds more claimed deliveries than it
    /// can send and write within the lease: `concurrency` × ⌊(lease − [`LEASE_MARGIN`]) ⁄ request timeout⌋ when
    /// the HTTP client states its [request timeout](HttpClient::request_timeout) (with the defaults, 144, more
    /// than a batch), and only as many as it has free slots when it does not. So whatever the batch size and
    /// concurrency, a lease has to cover one request and the writing of its result: [`build`](Self::build)
    /// refuses a lease shorter than the client's request timeout plus [`LEASE_MARGIN`] (30 seconds for the write
    /// and a slow clock). With a client that states no timeout, a request that outlives the lease may be sent
    /// twice. An action's own [`timeout`](crate::WebhookAction::timeout) counts as the request timeout of its
    /// requests: [`Engine::set_workflows`] refuses one the lease does not cover, and the claim window is computed
    /// for the longest.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }
    /// Requests in flight at once within a pass (default 16).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// The largest body a webhook may send (default [`DEFAULT_MAX_BODY_BYTES`](crate::limits::DEFAULT_MAX_BODY_BYTES),
    /// 1 MiB). An event whose body would be larger fails [`Engine::on_event`] with [`EngineError::Render`](crate::EngineError::Render) before
    /// anything is stored or sent; rendering stops as soon as the limit is passed.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = Some(bytes);
        self
    }

    /// Builds the engine; fails when a required part is missing or a number is zero.
    pub fn build(self) -> Result<Engine, BuildError> {
        let missing = |what: &str, call: &str| BuildError(format!("{what} is missing: call EngineBuilder::{call}"));
        let batch_size = self.batch_size.unwrap_or(100);
        let concurrency = self.concurrency.unwrap_or(16);
        let lease = self.lease.unwrap_or(Duration::from_secs(300));
        if batch_size == 0 || concurrency == 0 || lease.is_zero() {
            return Err(BuildError("batch_size, concurrency and lease must be more than zero".to_owned()));
        }
        let http = self.http.ok_or_else(|| missing("the HTTP client", "http"))?;
        let client_timeout = http.request_timeout();
        let claim_window = claim_window(concurrency, lease, client_timeout);
        if let Some(timeout) = client_timeout {
            if lease < timeout.saturating_add(LEASE_MARGIN) {
                return Err(BuildError(format!(
                    "the lease of {} s does not cover the HTTP client's request timeout of {} s plus {} s to write \
                     the result, so a slow request could be sent twice: raise EngineBuilder::lease or lower the \
                     client's timeout",
                    lease.as_secs_f64(),
                    timeout.as_secs_f64(),
                    LEASE_MARGIN.as_secs()
                )));
            }
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                storage: self.storage.ok_or_else(|| missing("the storage", "storage"))?,
                http,
                mailer: self.mailer.ok_or_else(|| missing("the mailer", "mailer"))?,
                directory: self.directory.ok_or_else(|| missing("the directory", "directory"))?,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                retry: self.retry,
                quota: self.quota,
                batch_size,
                lease,
                concurrency,
                claim_window: claim_window.into(),
                client_timeout,
                max_body_bytes: self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
                workflows: RwLock::new(HashMap::new()),
                wake: Arc::default(),
            }),
        })
    }
}
