//! The worker pass: claim what can be sent at once, send it, write each result as it comes.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use chrono::{DateTime, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::core::{chrono_duration, Engine};
use super::endpoints;
use super::error::EngineError;
use super::metrics;
use super::outcome::{self, Attempted};
use super::redact;
use super::report::RunReport;
use super::wire;
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus};
use crate::health;
use crate::ports::{
    Claim, ClaimToken, Completion, HealthEvent, HealthReport, HttpError, HttpErrorKind, QuotaRequest, StorageError,
    TenantInfo,
};
use crate::quota::{next_day_start, quota_day, QuotaPolicy};
use crate::retry::{self, AttemptOutcome};
use crate::workflow::WebhookAction;

/// What a pass waits for next.
enum Step {
    Attempted(Completion, Option<Box<HealthReport>>),
    Written(Result<Vec<DeliveryId>, StorageError>),
    Claimed(Claimed),
    /// Work was queued after the pass had taken everything due.
    MoreWork,
}

/// What a claim (and its quota check) brings back: how many it asked for, how many it took, those to send and
/// those put back, and the tenant cache it borrowed.
struct Claimed {
    want: usize,
    token: ClaimToken,
    result: Result<ClaimedSplit, EngineError>,
    tenants: TenantCache,
}

/// How many a claim took, those to send (each with whether its action has stored health) and those put back.
type ClaimedSplit = (usize, Vec<(Delivery, bool)>, Vec<Completion>);

/// A claim in progress, run beside the requests in flight and the running write.
type Claiming<'a> = Pin<Box<dyn Future<Output = Claimed> + Send + 'a>>;

/// A `complete` call in progress (then the health reports of what it applied), with a copy of what it writes
/// (to try once more if it fails).
struct Write<'a> {
    future: Pin<Box<dyn Future<Output = Result<Vec<DeliveryId>, StorageError>> + Send + 'a>>,
    batch: Vec<Completion>,
    reports: Vec<HealthReport>,
}

impl<'a> Write<'a> {
    fn start(engine: &'a Engine, batch: Vec<Completion>, reports: Vec<HealthReport>) -> Self {
        let (completions, health) = (batch.clone(), reports.clone());
        let future = Box::pin(async move {
            let lost = engine.inner.storage.complete(completions).await?;
            // Only what was applied counts: a completion whose claim was lost was another worker's to report.
            let reported = |r: &HealthReport| r.delivery.as_ref().is_some_and(|d| !lost.contains(&d.id));
            endpoints::record(engine, health.into_iter().filter(reported).collect()).await;
            Ok(lost)
        });
        Write { future, batch, reports }
    }
}

/// Each tenant's directory entry, read once per pass.
#[derive(Default)]
struct TenantCache(std::collections::HashMap<String, Result<TenantInfo, String>>);

impl TenantCache {
    async fn get(&mut self, engine: &Engine, tenant: &str) -> Result<TenantInfo, String> {
        if let Some(known) = self.0.get(tenant) {
            return known.clone();
        }
        let found = engine.inner.directory.tenant(tenant).await.map_err(|e| e.to_string());
        self.0.insert(tenant.to_owned(), found.clone());
        found
    }
}

impl Engine {
    /// One worker pass: claims due deliveries only as fast as it can send them within their lease (at most
    /// `batch_size` in the pass, `concurrency` in flight), holds those of paused actions, lets each action's rate
    /// limit through what it allows now (the rest wait for later windows), checks each tenant's daily quota, sends
    /// what the quota allows, writes each result soon after its request ends (results that finish while a write is
    /// running go in the next one together) with the actions' health, schedules retries, fails what is exhausted,
    /// and sends due failure notifications.
    ///
    /// Claimed and not yet finished are never more than every delivery can be sent and written within its lease:
    /// `concurrency` × ⌊(lease − [`LEASE_MARGIN`](crate::engine::LEASE_MARGIN)) ⁄ the longest of the HTTP
    /// client's [request timeout](crate::HttpClient::request_timeout) and the registered actions'
    /// [`timeout_seconds`](crate::WebhookAction::timeout)⌋, or just `concurrency` (claim per free slot) when
    /// the client states no timeout; see [`EngineBuilder::lease`](crate::EngineBuilder::lease). A slow receiver holds only its own slots. When storage fails mid-pass, the pass stops claiming, lets the
    /// requests in flight finish and write their results, and then returns the error; a result that could not be
    /// written is retried once and otherwise comes back when its lease runs out (and may then be sent again).
    pub async fn run_due(&self) -> Result<RunReport, EngineError> {
        let mut report = RunReport::default();
        self.deliver_due(&mut report).await?;
        report.emails_sent = self.send_notifications().await?;
        Ok(report)
    }

    /// Runs passes until one finds nothing due now (retries scheduled for later stay queued), at most
    /// `max_passes` times; returns the totals.
    pub async fn run_until_idle(&self, max_passes: usize) -> Result<RunReport, EngineError> {
        let mut totals = RunReport::default();
        for _ in 0..max_passes {
            let pass = self.run_due().await?;
            totals.add(&pass);
            if pass.is_idle() {
                break;
            }
        }
        Ok(totals)
    }

    async fn deliver_due(&self, report: &mut RunReport) -> Result<(), EngineError> {
        let concurrency = self.inner.concurrency;
        let window = self.claim_window();
        let mut budget = self.inner.batch_size;
        let mut tenants = TenantCache::default();
        let mut in_flight = FuturesUnordered::new();
        // Claimed, waiting for a free slot (never more than the window allows the lease to cover).
        let mut waiting: VecDeque<(Delivery, ClaimToken, bool)> = VecDeque::new();
        let mut finished: Vec<Completion> = Vec::new();
        let mut reports: Vec<HealthReport> = Vec::new();
        let mut writing: Option<Write<'_>> = None;
        let mut retried = std::collections::HashSet::new();
        let mut exhausted = false;
        let mut error: Option<EngineError> = None;
        // The claim in flight (one at a time): it asked for at most what the window had free when it started, and
        // only sends and writes finish meanwhile, so the claimed and unfinished never pass what the lease covers.
        let mut claiming: Option<Claiming<'_>> = None;
        // Work queued while the pass waits for slow requests: claimed at once rather than after the slowest one.
        let mut queued = self.work_queued();
        loop {
            let outstanding = in_flight.len() + waiting.len();
            // Refill once half the window is free (or nothing is outstanding): claims stay batched, and every
            // claimed delivery is sent and written within its lease. The claim runs beside the requests in
            // flight and the write, so neither waits for the database's answer.
            if claiming.is_none()
                && !exhausted
                && error.is_none()
                && budget > 0
                && outstanding < window
                && (outstanding == 0 || (window - outstanding) * 2 >= window)
            {
                let want = (window - outstanding).min(budget);
                let claim = self.claim(self.now(), want);
                let mut cache = std::mem::take(&mut tenants);
                let future: Claiming<'_> = Box::pin(async move {
                    let result = self.claim_and_check_quota(&claim, &mut cache).await;
                    Claimed { want, token: claim.token, result, tenants: cache }
                });
                claiming = Some(future);
            }
            while in_flight.len() < concurrency {
                let Some((delivery, token, watched)) = waiting.pop_front() else { break };
                in_flight.push(self.traced_attempt(delivery, token, watched));
            }
            if writing.is_none() && !finished.is_empty() {
                writing = Some(Write::start(self, std::mem::take(&mut finished), std::mem::take(&mut reports)));
            }
            if in_flight.is_empty() && writing.is_none() && claiming.is_none() {
                break;
            }
            // Whichever comes first: an attempt ends, the running write does, or the claim does.
            let step = std::future::poll_fn(|cx| {
                if let Some(write) = writing.as_mut() {
                    if let Poll::Ready(result) = write.future.as_mut().poll(cx) {
                        return Poll::Ready(Step::Written(result));
                    }
                }
                if let Some(claim) = claiming.as_mut() {
                    if let Poll::Ready(claimed) = claim.as_mut().poll(cx) {
                        return Poll::Ready(Step::Claimed(claimed));
                    }
                }
                if exhausted && budget > 0 && error.is_none() && Pin::new(&mut queued).poll(cx).is_ready() {
                    return Poll::Ready(Step::MoreWork);
                }
                match in_flight.poll_next_unpin(cx) {
                    Poll::Ready(Some((completion, report))) => Poll::Ready(Step::Attempted(completion, report)),
                    // Nothing in flight: the write above is what we wait for.
                    Poll::Ready(None) | Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match step {
                Step::MoreWork => {
                    exhausted = false;
                    queued = self.work_queued();
                }
                Step::Claimed(Claimed { want, token, result, tenants: cache }) => {
                    claiming = None;
                    tenants = cache;
                    match result {
                        Ok((claimed, to_send, put_back)) => {
                            exhausted = claimed < want;
                            budget -= claimed.min(budget);
                            report.claimed += claimed;
                            report.deferred += put_back.len();
                            report.sent += to_send.len();
                            if !put_back.is_empty() {
                                metrics::deferred(put_back.len());
                            }
                            finished.extend(put_back);
                            waiting.extend(to_send.into_iter().map(|(delivery, watched)| (delivery, token, watched)));
                        }
                        Err(e) => error = Some(e),
                    }
                }
                Step::Attempted(completion, health_report) => {
                    reports.extend(health_report.map(|r| *r));
                    match completion.status {
                        DeliveryStatus::Success => report.succeeded += 1,
                        DeliveryStatus::Failed => report.failed += 1,
                        _ => report.retried += 1,
                    }
                    finished.push(completion);
                }
                Step::Written(result) => {
                    let Some(write) = writing.take() else { continue };
                    match result {
                        Ok(lost) => report.lost += lost.len(),
                        Err(e) => {
                            // Once more with the next write; a result that fails twice waits for its lease.
                            let tried = write.batch.len();
                            let before = finished.len();
                            finished.extend(write.batch.into_iter().filter(|c| retried.insert(c.id)));
                            let again: std::collections::HashSet<DeliveryId> = finished.iter().map(|c| c.id).collect();
                            let retried_report =
                                |r: &HealthReport| r.delivery.as_ref().is_some_and(|d| again.contains(&d.id));
                            reports.extend(write.reports.into_iter().filter(retried_report));
                            if finished.len() - before < tried {
                                error.get_or_insert(e.into());
                            }
                        }
                    }
                }
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A claim of up to `limit` deliveries, leased from `now`.
    pub(super) fn claim(&self, now: DateTime<Utc>, limit: usize) -> Claim {
        Claim { now, limit, lease_until: now + chrono_duration(self.inner.lease), token: ClaimToken::new() }
    }

    /// Claims, then splits what was claimed into deliveries the quota lets through and completions that put the
    /// rest back. Returns how many were claimed.
    async fn claim_and_check_quota(
        &self,
        claim: &Claim,
        tenants: &mut TenantCache,
    ) -> Result<ClaimedSplit, EngineError> {
        let claimed = self.inner.storage.claim_due(claim).await?;
        let count = claimed.len();
        let (now, token) = (claim.now, claim.token);
        let mut to_send = Vec::new();
        let mut put_back = Vec::new();
        for (tenant, deliveries) in outcome::by_tenant(claimed) {
            // Paused actions hold theirs, rate limits let through what they allow now: before the quota, so that
            // what is not sent now is not counted.
            let checked = self.check_endpoints(&tenant, deliveries, token, now).await;
            put_back.extend(checked.put_back);
            let watched: std::collections::HashSet<DeliveryId> =
                checked.to_send.iter().filter(|(_, w)| *w).map(|(d, _)| d.id).collect();
            let with_watch = |ds: Vec<Delivery>| -> Vec<(Delivery, bool)> {
                ds.into_iter()
                    .map(|d| {
                        let w = watched.contains(&d.id);
                        (d, w)
                    })
                    .collect()
            };
            let deliveries: Vec<Delivery> = checked.to_send.into_iter().map(|(d, _)| d).collect();
            if deliveries.is_empty() {
                continue;
            }
            let info = match tenants.get(self, &tenant).await {
                Ok(info) => info,
                // Without limits there is nothing to protect: send, uncounted.
                Err(_) if self.inner.quota == QuotaPolicy::Unlimited => {
                    to_send.extend(with_watch(deliveries));
                    continue;
                }
                Err(e) => {
                    let retry_at = now + chrono::Duration::minutes(1);
                    let why = format!("deferred: {e}");
                    put_back.extend(deliveries.iter().map(|d| outcome::unsent(d, token, now, retry_at, &why)));
                    continue;
                }
            };
            // Calls are counted even without a limit, so `usage` always tells.
            let allowance = self.allowance(&info).unwrap_or(u64::MAX);
            let day = quota_day(now, info.time_zone);
            let request = QuotaRequest {
                tenant: tenant.clone(),
                day,
                allowance,
                token,
                deliveries: deliveries.iter().map(|d| d.id).collect(),
            };
            let granted = self.inner.storage.grant_quota(&request).await?;
            // A figure for operators only: a failed read must not hold back what was granted.
            if metrics::ENABLED {
                if let Ok(used) = self.inner.storage.quota_used(&tenant, day).await {
                    metrics::quota_used(&tenant, used);
                }
            }
            let (granted, over) = outcome::split_granted(deliveries, &granted);
            to_send.extend(with_watch(granted));
            let next_day = next_day_start(now, info.time_zone);
            put_back.extend(over.iter().map(|d| outcome::quota_deferred(d, token, now, next_day)));
        }
        Ok((count, to_send, put_back))
    }

    async fn traced_attempt(
        &self,
        delivery: Delivery,
        token: ClaimToken,
        watched: bool,
    ) -> (Completion, Option<Box<HealthReport>>) {
        use tracing::Instrument as _;
        let span = tracing::info_span!(
            "delivery",
            id = %delivery.id,
            tenant = %delivery.tenant,
            workflow = %delivery.workflow,
            action = %delivery.action,
            attempt = delivery.attempts.saturating_add(1),
        );
        self.attempt(delivery, token, watched).instrument(span).await
    }

    /// Sends one claimed delivery and works out what follows. The clock is read when the request leaves and when
    /// its answer comes (the log shows both); everything else is decided by [`outcome::complete`].
    async fn attempt(
        &self,
        delivery: Delivery,
        token: ClaimToken,
        watched: bool,
    ) -> (Completion, Option<Box<HealthReport>>) {
        let sent_at = self.now();
        // The action is borrowed from the registered workflows (never cloned): only its credentials and signing
        // secret are read, and the request is built before anything is awaited.
        let workflows = self.workflows(&delivery.tenant);
        let action = workflows
            .as_deref()
            .and_then(|set| set.get(&delivery.workflow))
            .and_then(|workflow| workflow.action(&delivery.action));
        let secrets = action.map(redact::secret_texts).unwrap_or_default();
        let request = action
            .ok_or_else(|| {
                HttpError::new(
                    HttpErrorKind::InvalidRequest,
                    format!(
                        "workflow \"{}\" has no action \"{}\" any more; the delivery was not sent",
                        delivery.workflow, delivery.action
                    ),
                )
            })
            .and_then(|action| wire::request(&delivery, action, sent_at));
        let answer = match request {
            Err(e) => Err(e),
            Ok(request) => self.inner.http.send(request).await,
        };
        let finished_at = self.now();
        let mut location = None;
        let (outcome, response_snippet) = match answer {
            Err(e) => {
                let message = redact::scrub(e.message().to_owned(), &secrets);
                (AttemptOutcome::Error(HttpError::new(e.kind(), message)), None)
            }
            Ok(response) => {
                // A redirect's target, for the log (shown without its query by `outcome::complete`).
                location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .map(|v| redact::scrub(String::from_utf8_lossy(v.as_bytes()).into_owned(), &secrets));
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .filter(|_| status == 429 || status == 503)
                    .and_then(|v| retry::parse_retry_after(v, finished_at));
                (AttemptOutcome::Response { status, retry_after }, outcome::snippet(response.body(), &secrets))
            }
        };
        let jitter_percent = action.map_or(0, WebhookAction::retry_jitter_percent);
        let http_status = match &outcome {
            AttemptOutcome::Response { status, .. } => Some(*status),
            AttemptOutcome::Error(_) => None,
        };
        // The delivery is copied only for what the action's health counts: a failure, or a success of an action
        // with stored health (its body is shared, not copied).
        let counted =
            action.is_some_and(|a| a.endpoint_health().enabled || watched) && (watched || !outcome.is_success());
        let reported = counted.then(|| delivery.clone());
        let attempted =
            Attempted { delivery, token, sent_at, finished_at, outcome, response_snippet, location, jitter_percent };
        let mut completion = outcome::complete(&self.inner.retry, attempted);
        let report = action
            .zip(reported.as_ref())
            .and_then(|(a, delivery)| endpoints::report(a, &completion, delivery, http_status, watched));
        if report.as_ref().is_some_and(|r| r.event == HealthEvent::Gone && r.policy.pause_on_gone && r.policy.enabled) {
            health::hold_gone(&mut completion);
        }
        let seconds = (finished_at - sent_at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
        metrics::attempt(completion.status, seconds);
        (completion, report.map(Box::new))
    }
}
