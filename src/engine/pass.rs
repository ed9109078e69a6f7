//! The worker pass: claim what can be sent at once, send it, write each result as it comes.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::*;

/// What a pass waits for next.
enum Step {
    Attempted(Completion),
    Written(Result<Vec<DeliveryId>, StorageError>),
}

/// A `complete` call in progress, with a copy of what it writes (to try once more if it fails).
struct Write<'a> {
    future: Pin<Box<dyn Future<Output = Result<Vec<DeliveryId>, StorageError>> + Send + 'a>>,
    batch: Vec<Completion>,
}

impl<'a> Write<'a> {
    fn start(engine: &'a Engine, batch: Vec<Completion>) -> Self {
        Write { future: engine.inner.storage.complete(batch.clone()), batch }
    }
}

/// Each tenant's directory entry, read once per pass.
#[derive(Default)]
struct TenantCache(HashMap<String, Result<TenantInfo, String>>);

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
    /// `batch_size` in the pass, `concurrency` in flight), checks each tenant's daily quota, sends what the quota
    /// allows, writes each result soon after its request ends (results that finish while a write is running go
    /// in the next one together), schedules retries, fails what is exhausted, and sends due failure
    /// notifications.
    ///
    /// Claimed and not yet finished are never more than every delivery can be sent and written within its lease:
    /// `concurrency` × ⌊(lease − [`LEASE_MARGIN`]) ⁄ the HTTP client's
    /// [request timeout](crate::HttpClient::request_timeout)⌋, or just `concurrency` (claim per free slot) when
    /// the client states no timeout; see [`EngineBuilder::lease`]. A slow receiver holds only its own slots. When storage fails mid-pass, the pass stops claiming, lets the
    /// requests in flight finish and write their results, and then returns the error; a result that could not be
    /// written is retried once and otherwise comes back when its lease runs out (and may then be sent again).
    pub async fn run_due(&self) -> Result<RunReport, EngineError> {
        let mut report = RunReport::default();
        self.deliver_due(&mut report).await?;
        report.emails_sent = self.send_notifications().await?;
        Ok(report)
    }

    async fn deliver_due(&self, report: &mut RunReport) -> Result<(), EngineError> {
        let concurrency = self.inner.concurrency;
        let window = self.inner.claim_window;
        let mut budget = self.inner.batch_size;
        let mut tenants = TenantCache::default();
        let mut in_flight = FuturesUnordered::new();
        // Claimed, waiting for a free slot (never more than the window allows the lease to cover).
        let mut waiting: VecDeque<(Delivery, ClaimToken)> = VecDeque::new();
        let mut finished: Vec<Completion> = Vec::new();
        let mut writing: Option<Write<'_>> = None;
        let mut retried = HashSet::new();
        let mut exhausted = false;
        let mut error: Option<EngineError> = None;
        loop {
            let outstanding = in_flight.len() + waiting.len();
            // Refill once half the window is free (or nothing is outstanding): claims stay batched, and every
            // claimed delivery is sent and written within its lease.
            if !exhausted
                && error.is_none()
                && budget > 0
                && outstanding < window
                && (outstanding == 0 || (window - outstanding) * 2 >= window)
            {
                let want = (window - outstanding).min(budget);
                let now = self.now();
                let claim = self.claim(now, want);
                match self.claim_and_check_quota(&claim, &mut tenants).await {
                    Ok((claimed, to_send, put_back)) => {
                        exhausted = claimed < want;
                        budget -= claimed.min(budget);
                        report.claimed += claimed;
                        report.deferred += put_back.len();
                        report.sent += to_send.len();
                        finished.extend(put_back);
                        waiting.extend(to_send.into_iter().map(|delivery| (delivery, claim.token)));
                    }
                    Err(e) => error = Some(e),
                }
            }
            while in_flight.len() < concurrency {
                let Some((delivery, token)) = waiting.pop_front() else { break };
                in_flight.push(self.traced_attempt(delivery, token));
            }
            if writing.is_none() && !finished.is_empty() {
                writing = Some(Write::start(self, std::mem::take(&mut finished)));
            }
            if in_flight.is_empty() && writing.is_none() {
                break;
            }
            // Whichever comes first: an attempt ends, or the running write does.
            let step = std::future::poll_fn(|cx| {
                if let Some(write) = writing.as_mut() {
                    if let Poll::Ready(result) = write.future.as_mut().poll(cx) {
                        return Poll::Ready(Step::Written(result));
                    }
                }
                match in_flight.poll_next_unpin(cx) {
                    Poll::Ready(Some(completion)) => Poll::Ready(Step::Attempted(completion)),
                    // Nothing in flight: the write above is what we wait for.
                    Poll::Ready(None) | Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match step {
                Step::Attempted(completion) => {
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
    ) -> Result<(usize, Vec<Delivery>, Vec<Completion>), EngineError> {
        let claimed = self.inner.storage.claim_due(claim).await?;
        let count = claimed.len();
        let (now, token) = (claim.now, claim.token);
        let mut by_tenant: HashMap<String, Vec<Delivery>> = HashMap::new();
        for delivery in claimed {
            by_tenant.entry(delivery.tenant.clone()).or_default().push(delivery);
        }
        let mut to_send = Vec::new();
        let mut put_back = Vec::new();
        for (tenant, deliveries) in by_tenant {
            let info = match tenants.get(self, &tenant).await {
                Ok(info) => info,
                // Without limits there is nothing to protect: send, uncounted.
                Err(_) if self.inner.quota == QuotaPolicy::Unlimited => {
                    to_send.extend(deliveries);
                    continue;
                }
                Err(e) => {
                    let retry_at = now + chrono::Duration::minutes(1);
                    let why = format!("deferred: {e}");
                    put_back.extend(deliveries.iter().map(|d| unsent(d, token, now, retry_at, &why)));
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
            let granted: HashSet<DeliveryId> = self.inner.storage.grant_quota(&request).await?.into_iter().collect();
            let (granted, over): (Vec<Delivery>, Vec<Delivery>) =
                deliveries.into_iter().partition(|d| granted.contains(&d.id));
            to_send.extend(granted);
            let next_day = next_day_start(now, info.time_zone);
            put_back.extend(over.iter().map(|d| unsent(d, token, now, next_day, "deferred: daily quota reached")));
        }
        Ok((count, to_send, put_back))
    }

    pub(super) fn allowance(&self, info: &TenantInfo) -> Option<u64> {
        self.inner.quota.edition(info.edition).map(|edition| edition.daily_allowance(info.licensed_users))
    }

    #[cfg(feature = "tokio")]
    async fn traced_attempt(&self, delivery: Delivery, token: ClaimToken) -> Completion {
        use tracing::Instrument as _;
        let span = tracing::info_span!(
            "delivery",
            id = %delivery.id,
            tenant = %delivery.tenant,
            workflow = %delivery.workflow,
            action = %delivery.action,
            attempt = delivery.attempts + 1,
        );
        self.attempt(delivery, token).instrument(span).await
    }

    #[cfg(not(feature = "tokio"))]
    async fn traced_attempt(&self, delivery: Delivery, token: ClaimToken) -> Completion {
        self.attempt(delivery, token).await
    }

    /// Sends one claimed delivery and works out what follows.
    async fn attempt(&self, delivery: Delivery, token: ClaimToken) -> Completion {
        let attempt = delivery.attempts.saturating_add(1);
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
            .and_then(|action| self.request(&delivery, action, sent_at));
        let (outcome, body) = match request {
            Err(e) => (AttemptOutcome::Error(e), None),
            Ok(request) => match self.inner.http.send(request).await {
                Err(e) => {
                    let message = redact::scrub(e.message().to_owned(), &secrets);
                    (AttemptOutcome::Error(HttpError::new(e.kind(), message)), None)
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .filter(|_| status == 429 || status == 503)
                        .and_then(|v| retry::parse_retry_after(v, self.now()));
                    let snippet = snippet(response.body(), &secrets);
                    (AttemptOutcome::Response { status, retry_after }, snippet)
                }
            },
        };
        self.complete(delivery, token, attempt, sent_at, outcome, body)
    }

    fn complete(
        &self,
        delivery: Delivery,
        token: ClaimToken,
        attempt: u32,
        sent_at: DateTime<Utc>,
        outcome: AttemptOutcome,
        response_snippet: Option<String>,
    ) -> Completion {
        let finished_at = self.now();
        let max = self.inner.retry.max_attempts();
        let transition = retry::next(&self.inner.retry, attempt, &outcome, finished_at);
        let mut dispatched = LogEntry::about(
            &delivery,
            DeliveryStatus::Dispatched,
            sent_at,
            format!("attempt {attempt} of {max} dispatched"),
        );
        dispatched.attempt = attempt;
        let (status, next_attempt_at, message) = match transition {
            Transition::Succeeded => (DeliveryStatus::Success, None, format!("attempt {attempt} delivered")),
            Transition::RetryAt(at) => (
                DeliveryStatus::Queued,
                Some(at),
                format!("attempt {attempt} failed; retry {attempt} of {} scheduled", max - 1),
            ),
            Transition::GaveUp if attempt >= max => (
                DeliveryStatus::Failed,
                None,
                format!("attempt {attempt} failed; no retries left, owner and admins notified"),
            ),
            Transition::GaveUp => (
                DeliveryStatus::Failed,
                None,
                format!("attempt {attempt} failed permanently; owner and admins notified"),
            ),
        };
        let (http_status, error) = match &outcome {
            AttemptOutcome::Response { status, .. } if (200..300).contains(status) => (Some(*status), None),
            AttemptOutcome::Response { status, .. } => (Some(*status), Some(describe_status(*status))),
            AttemptOutcome::Error(e) => (None, Some(loggable(e.to_string()))),
        };
        let mut result = LogEntry::about(&delivery, status, finished_at, message);
        result.attempt = attempt;
        result.http_status = http_status;
        result.response_snippet = response_snippet;
        result.error = error;
        result.next_attempt_at = next_attempt_at;
        let notification = (status == DeliveryStatus::Failed).then(|| Notification {
            delivery_id: delivery.id,
            tenant: delivery.tenant.clone(),
            owner: delivery.owner.clone(),
            created_at: finished_at,
            next_attempt_at: finished_at,
            attempts: 0,
            sent_to: Vec::new(),
            last_error: None,
        });
        Completion {
            id: delivery.id,
            token,
            status,
            attempts: attempt,
            next_attempt_at,
            at: finished_at,
            entries: vec![dispatched, result],
            notification,
        }
    }

    fn request(
        &self,
        delivery: &Delivery,
        action: &WebhookAction,
        now: DateTime<Utc>,
    ) -> Result<http::Request<Bytes>, HttpError> {
        let mut builder = http::Request::builder().method(delivery.method.as_http()).uri(delivery.url.as_str());
        for (name, value) in
            request_headers(action, delivery.content_type.header_value(), delivery.id, now.timestamp(), &delivery.body)
        {
            builder = builder.header(name, value);
        }
        builder.body(delivery.body.clone()).map_err(|e| {
            HttpError::new(
                HttpErrorKind::InvalidRequest,
                format!("cannot build the request to {}: {e}", redact_url(&delivery.url)),
            )
        })
    }
}

/// Text for the log: NUL cannot be stored by every database (PostgreSQL text refuses it), so it becomes U+FFFD.
fn loggable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// The start of a response body, cut at a character boundary, for the log.
fn snippet(body: &[u8], secrets: &[String]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    // A little more than is kept, so a secret that straddles the cut is still found whole and redacted.
    let longest_secret = secrets.iter().map(String::len).max().unwrap_or(0);
    let window = &body[..body.len().min(RESPONSE_SNIPPET_MAX.saturating_add(longest_secret))];
    let text = match std::str::from_utf8(window) {
        Ok(text) => text.to_owned(),
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&window[..e.valid_up_to()]).into_owned(),
        Err(_) => String::from_utf8_lossy(window).into_owned(),
    };
    let mut text = redact::scrub(text, secrets);
    if text.len() > RESPONSE_SNIPPET_MAX {
        let mut end = RESPONSE_SNIPPET_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Some(loggable(text))
}

fn unsent(delivery: &Delivery, token: ClaimToken, now: DateTime<Utc>, until: DateTime<Utc>, why: &str) -> Completion {
    let mut entry = LogEntry::about(delivery, DeliveryStatus::Queued, now, why);
    entry.next_attempt_at = Some(until);
    Completion {
        id: delivery.id,
        token,
        status: DeliveryStatus::Queued,
        attempts: delivery.attempts,
        next_attempt_at: Some(until),
        at: now,
        entries: vec![entry],
        notification: None,
    }
}

fn describe_status(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    match status {
        300..=399 => format!("HTTP {status} {reason} (redirects are not followed)"),
        _ => format!("HTTP {status} {reason}").trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_capped_at_a_character_boundary() {
        let long = "é".repeat(RESPONSE_SNIPPET_MAX);
        let cut = snippet(long.as_bytes(), &[]).unwrap();
        assert!(cut.len() <= RESPONSE_SNIPPET_MAX && cut.len() >= RESPONSE_SNIPPET_MAX - 1);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(snippet(b"", &[]), None);
        assert_eq!(snippet(b"a\0b", &[]).as_deref(), Some("a\u{FFFD}b"), "NUL is not stored");
    }

    #[test]
    fn a_secret_across_the_cut_is_redacted_whole() {
        let secrets = vec!["TOKEN123".to_owned()];
        let body = format!("{}TOKEN123", "a".repeat(RESPONSE_SNIPPET_MAX - 4));
        let cut = snippet(body.as_bytes(), &secrets).unwrap();
        assert!(!cut.contains("TOKE") && cut.len() <= RESPONSE_SNIPPET_MAX, "{}", &cut[cut.len() - 20..]);
    }

    #[test]
    fn statuses_are_described() {
        assert_eq!(describe_status(404), "HTTP 404 Not Found");
        assert!(describe_status(302).contains("redirects are not followed"));
        assert_eq!(describe_status(599), "HTTP 599");
    }
}
