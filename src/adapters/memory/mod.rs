//! [`MemoryStorage`]: the whole storage contract in memory, for tests and single-process hosts that accept
//! losing the queue on restart.

mod rows;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry, LogQuery};
use crate::health;
use crate::ports::{
    waits_behind_message, Claim, ClaimToken, Completion, EndpointHealth, EndpointKey, Enqueue, HealthChange,
    HealthReport, Notification, NotificationUpdate, QuotaRequest, RateRequest, Storage, StorageError, StorageErrorKind,
};

use rows::{micros, time, Entry, IdMap, Micros, Row, Texts};

/// Every [`Storage`] duty, kept in memory behind one lock (so each call is atomic). Nothing survives the
/// process: use it in tests, or where losing the queue on restart is acceptable. Times are kept to the
/// microsecond, as in the SQL storages.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    deliveries: IdMap<Row>,
    /// The claim holding each dispatched delivery.
    claims: IdMap<ClaimToken>,
    /// Every delivery a claim may take, by when it may (a queued one's next attempt, a claimed one's lease), then
    /// age and id: the claim's order. Settled deliveries are not in it, so a claim never walks them, and neither
    /// are ordered ones waiting behind an earlier one of their line.
    due: BTreeSet<DueKey>,
    /// The unsettled deliveries of each line of ordered deliveries, by their place in it.
    lines: HashMap<[u8; 16], BTreeMap<u64, DeliveryId>>,
    /// The place the next ordered delivery takes.
    next_place: u64,
    log: Vec<Entry>,
    texts: Texts,
    quota: HashMap<(String, NaiveDate), u64>,
    fired: HashSet<(String, String, String)>,
    schedules: HashMap<(String, String), Option<DateTime<Utc>>>,
    outbox: IdMap<HeldNotification>,
    /// Each action's receiver with failures or a state other than healthy.
    health: BTreeMap<EndpointKey, EndpointHealth>,
    /// Requests let through per action and rate window (its start).
    rates: HashMap<(EndpointKey, Micros), u32>,
}

#[derive(Debug)]
struct HeldNotification {
    value: Notification,
    token: Option<ClaimToken>,
    lease_until: Option<DateTime<Utc>>,
}

/// When a delivery may be claimed, its age and its id.
type DueKey = (Micros, Micros, DeliveryId);

/// The index key of a stored delivery, when a claim may take it.
fn due_key(id: DeliveryId, row: &Row) -> Option<DueKey> {
    if row.waiting {
        return None;
    }
    let at = match row.status {
        DeliveryStatus::Queued => row.next_attempt_at,
        DeliveryStatus::Dispatched => row.lease_expires_at,
        DeliveryStatus::Success | DeliveryStatus::Failed => return None,
    };
    (at != Micros::MIN).then_some((at, row.created_at, id))
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, StorageError> {
        self.state
            .lock()
            .map_err(|_| StorageError::new(StorageErrorKind::Other, "a thread panicked while holding the memory store"))
    }

    /// How many deliveries are stored (any status).
    pub fn len(&self) -> usize {
        self.state().map(|s| s.deliveries.len()).unwrap_or(0)
    }

    /// Whether no delivery is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every notification still in the outbox.
    pub fn pending_notifications(&self) -> Vec<Notification> {
        self.state().map(|s| s.outbox.values().map(|h| h.value.clone()).collect()).unwrap_or_default()
    }
}

impl State {
    /// The action's queued and dispatched deliveries.
    fn waiting(&self, key: &EndpointKey) -> u64 {
        let unsettled = |row: &&Row| !row.status.is_settled() && row.is_of(key);
        self.deliveries.values().filter(unsettled).count() as u64
    }

    /// Makes the action's held deliveries (queued, no next attempt, first in their line) due at their
    /// `created_at`, each with an entry saying who resumed them; how many.
    fn resume(&mut self, key: &EndpointKey, by: &str, at: DateTime<Utc>) -> u64 {
        let held: Vec<DeliveryId> = self
            .deliveries
            .iter()
            .filter(|(_, row)| {
                row.status == DeliveryStatus::Queued
                    && row.next_attempt_at == Micros::MIN
                    && !row.waiting
                    && row.is_of(key)
            })
            .map(|(id, _)| *id)
            .collect();
        let mut entries = Vec::with_capacity(held.len());
        for id in &held {
            let Some(row) = self.deliveries.get_mut(id) else { continue };
            let delivery = row.delivery(*id);
            row.next_attempt_at = micros(health::resumed_due(delivery.created_at, at));
            if let Some(due) = due_key(*id, row) {
                self.due.insert(due);
            }
            entries.push(health::resumed_entry(&delivery, by, at));
        }
        self.append(entries);
        held.len() as u64
    }

    /// A log entry, sharing its delivery's texts.
    fn entry(&mut self, e: LogEntry) -> Entry {
        match self.deliveries.get(&e.delivery_id) {
            Some(row) => row.entry(e, &mut self.texts),
            None => Entry::alone(e, &mut self.texts),
        }
    }

    fn append(&mut self, entries: impl IntoIterator<Item = LogEntry>) {
        for e in entries {
            let entry = self.entry(e);
            self.log.push(entry);
        }
    }
}

/// A settled ordered delivery leaves its line; the one now first, if it waited, becomes due.
fn leave_line(state: &mut State, line_key: [u8; 16], place: u64) {
    let Some(line) = state.lines.get_mut(&line_key) else { return };
    line.remove(&place);
    let Some((_, first)) = line.first_key_value() else {
        state.lines.remove(&line_key);
        return;
    };
    let first = *first;
    if let Some(next) = state.deliveries.get_mut(&first) {
        if next.waiting {
            next.waiting = false;
            if let Some(key) = due_key(first, next) {
                state.due.insert(key);
            }
        }
    }
}

fn due(
    next: Option<DateTime<Utc>>,
    lease: Option<DateTime<Utc>>,
    claimed: bool,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if claimed {
        lease.filter(|l| *l <= now)
    } else {
        next.filter(|n| *n <= now)
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn enqueue_batch(&self, mut batch: Enqueue) -> Result<Vec<DeliveryId>, StorageError> {
        let mut state = self.state()?;
        let state = &mut *state;
        crate::ports::distinct_ids(&batch.deliveries)?;
        let marks = std::mem::take(&mut batch.once);
        let key = |m: &crate::ports::OnceMark| (m.tenant.clone(), m.workflow.clone(), m.record_id.clone());
        let taken: Vec<_> = marks.iter().filter(|m| state.fired.contains(&key(m))).collect();
        let ids = crate::ports::drop_fired(&mut batch, &taken);
        state.fired.extend(marks.iter().map(key));
        let skipped: HashSet<DeliveryId> =
            batch.deliveries.iter().filter(|d| state.deliveries.contains_key(&d.id)).map(|d| d.id).collect();
        let mut waits = Vec::new();
        for delivery in batch.deliveries.into_iter().filter(|d| !skipped.contains(&d.id)) {
            let id = delivery.id;
            let (mut line_place, mut waiting) = (None, false);
            if let Some(line_key) = delivery.order_key() {
                let place = state.next_place;
                state.next_place = place.saturating_add(1);
                let line = state.lines.entry(line_key).or_default();
                if let Some((_, earlier)) = line.last_key_value() {
                    waiting = true;
                    let message = waits_behind_message(*earlier);
                    waits.push(LogEntry::about(&delivery, DeliveryStatus::Queued, delivery.created_at, message));
                }
                line.insert(place, id);
                line_place = Some((line_key, place));
            }
            let mut row = Row::new(delivery, &mut state.texts);
            if let Some(line) = line_place {
                row.set_line(line);
            }
            row.waiting = waiting;
            if let Some(key) = due_key(id, &row) {
                state.due.insert(key);
            }
            state.deliveries.insert(id, row);
        }
        state.append(batch.entries.into_iter().filter(|e| !skipped.contains(&e.delivery_id)));
        state.append(waits);
        Ok(ids)
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Vec<Delivery>, StorageError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let now = micros(claim.now);
        let taken: Vec<DueKey> =
            state.due.iter().take_while(|(at, _, _)| *at <= now).take(claim.limit).copied().collect();
        let mut claimed = Vec::with_capacity(taken.len());
        for key in taken {
            state.due.remove(&key);
            let id = key.2;
            let Some(row) = state.deliveries.get_mut(&id) else { continue };
            state.claims.insert(id, claim.token);
            row.status = DeliveryStatus::Dispatched;
            row.lease_expires_at = micros(claim.lease_until);
            row.updated_at = now;
            if let Some(key) = due_key(id, row) {
                state.due.insert(key);
            }
            claimed.push(row.delivery(id));
        }
        Ok(claimed)
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<DeliveryId>, StorageError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let mut lost = Vec::new();
        for completion in completions {
            let id = completion.id;
            let held = state.claims.get(&id) == Some(&completion.token);
            let Some(row) = state.deliveries.get_mut(&id).filter(|r| held && r.status == DeliveryStatus::Dispatched)
            else {
                lost.push(id);
                continue;
            };
            if let Some(key) = due_key(id, row) {
                state.due.remove(&key);
            }
            state.claims.remove(&id);
            row.status = completion.status;
            row.attempts = completion.attempts;
            row.next_attempt_at = completion.next_attempt_at.map_or(Micros::MIN, micros);
            row.lease_expires_at = Micros::MIN;
            row.updated_at = micros(completion.at);
            if let Some(key) = due_key(id, row) {
                state.due.insert(key);
            }
            let line = row.line().filter(|_| completion.status.is_settled());
            if let Some((line_key, place)) = line {
                leave_line(state, line_key, place);
            }
            state.append(completion.entries);
            if let Some(notification) = completion.notification {
                state.outbox.entry(notification.delivery_id).or_insert(HeldNotification {
                    value: notification,
                    token: None,
                    lease_until: None,
                });
            }
        }
        Ok(lost)
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        Ok(self.state()?.due.first().map(|(at, _, _)| time(*at)))
    }

    async fn queue_depth(&self) -> Result<crate::ports::QueueDepth, StorageError> {
        let state = self.state()?;
        let mut depth = crate::ports::QueueDepth::default();
        let mut oldest: Option<Micros> = None;
        for row in state.deliveries.values() {
            match row.status {
                DeliveryStatus::Queued => {
                    depth.queued += 1;
                    oldest = Some(oldest.map_or(row.created_at, |o| o.min(row.created_at)));
                }
                DeliveryStatus::Dispatched => depth.dispatched += 1,
                DeliveryStatus::Success | DeliveryStatus::Failed => {}
            }
        }
        depth.oldest_queued_at = oldest.map(time);
        Ok(depth)
    }

    async fn delivery(&self, tenant: &str, id: DeliveryId) -> Result<Option<Delivery>, StorageError> {
        let state = self.state()?;
        Ok(state.deliveries.get(&id).filter(|row| row.tenant() == tenant).map(|row| row.delivery(id)))
    }

    async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StorageError> {
        let state = self.state()?;
        let mut matching: Vec<(usize, &Entry)> =
            state.log.iter().enumerate().filter(|(_, e)| e.accepted_by(query)).collect();
        matching.sort_by(|(ia, a), (ib, b)| b.at().cmp(&a.at()).then(ib.cmp(ia)));
        Ok(matching.into_iter().skip(query.offset).take(query.limit).map(|(_, e)| e.log_entry()).collect())
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let mut state = self.state()?;
        let before = micros(before);
        let doomed: HashSet<DeliveryId> = state
            .deliveries
            .iter()
            .filter(|(_, row)| row.status.is_settled() && row.updated_at < before)
            .map(|(id, _)| *id)
            .filter(|id| !state.outbox.contains_key(id))
            .collect();
        state.deliveries.retain(|id, _| !doomed.contains(id));
        state.log.retain(|e| !doomed.contains(&e.delivery_id));
        state.texts.forget_unused();
        Ok(doomed.len() as u64)
    }

    async fn grant_quota(&self, request: &QuotaRequest) -> Result<Vec<DeliveryId>, StorageError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let used = state.quota.entry((request.tenant.clone(), request.day)).or_insert(0);
        let mut granted = Vec::with_capacity(request.deliveries.len());
        for id in &request.deliveries {
            let Some(row) = state.deliveries.get_mut(id) else { continue };
            if state.claims.get(id) != Some(&request.token) || row.status != DeliveryStatus::Dispatched {
                continue;
            }
            let this = (request.day, row.attempts.saturating_add(1));
            if row.grant() == Some(this) {
                granted.push(*id);
            } else if *used < request.allowance {
                *used += 1;
                row.set_grant(this.0, this.1);
                granted.push(*id);
            }
        }
        Ok(granted)
    }

    async fn quota_used(&self, tenant: &str, day: NaiveDate) -> Result<u64, StorageError> {
        let state = self.state()?;
        Ok(state.quota.get(&(tenant.to_owned(), day)).copied().unwrap_or(0))
    }

    async fn next_run(&self, tenant: &str, workflow: &str) -> Result<Option<DateTime<Utc>>, StorageError> {
        let state = self.state()?;
        Ok(state.schedules.get(&(tenant.to_owned(), workflow.to_owned())).copied().flatten())
    }

    async fn set_next_run(
        &self,
        tenant: &str,
        workflow: &str,
        expected: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, StorageError> {
        let mut state = self.state()?;
        let slot = state.schedules.entry((tenant.to_owned(), workflow.to_owned())).or_insert(None);
        if *slot != expected {
            return Ok(false);
        }
        *slot = next;
        Ok(true)
    }

    async fn endpoint_health(&self, tenant: &str) -> Result<Vec<EndpointHealth>, StorageError> {
        let state = self.state()?;
        Ok(state.health.values().filter(|h| h.key.tenant == tenant).cloned().collect())
    }

    async fn record_health(&self, reports: Vec<HealthReport>) -> Result<Vec<HealthChange>, StorageError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let mut changes = Vec::new();
        for report in reports {
            let applied = health::apply(state.health.get(&report.key), &report);
            match &applied.health {
                Some(h) => state.health.insert(report.key.clone(), h.clone()),
                None => state.health.remove(&report.key),
            };
            let Some(change) = applied.change else { continue };
            let deliveries = match &change.resumed_by {
                Some(by) => state.resume(&report.key, by, report.at),
                None => state.waiting(&report.key),
            };
            state.append(change.entry.clone());
            let notification =
                applied.health.as_ref().and_then(|h| health::notification(&change, h, &report, deliveries));
            if let Some(n) = notification {
                let held = HeldNotification { value: n, token: None, lease_until: None };
                state.outbox.entry(held.value.delivery_id).or_insert(held);
            }
            changes.push(HealthChange { key: report.key, from: change.from, to: change.to, deliveries });
        }
        Ok(changes)
    }

    async fn take_rate(&self, request: &RateRequest) -> Result<u32, StorageError> {
        let mut state = self.state()?;
        let start = micros(request.window_start);
        let day_before = start.saturating_sub(86_400_000_000);
        state.rates.retain(|(_, window), _| *window >= day_before);
        let used = state.rates.entry((request.key.clone(), start)).or_insert(0);
        let granted = request.limit.saturating_sub(*used).min(request.wanted);
        *used += granted;
        Ok(granted)
    }

    async fn claim_notifications(&self, claim: &Claim) -> Result<Vec<Notification>, StorageError> {
        let mut state = self.state()?;
        let mut candidates: Vec<(DateTime<Utc>, DeliveryId)> = state
            .outbox
            .values()
            .filter_map(|held| {
                let at = due(Some(held.value.next_attempt_at), held.lease_until, held.token.is_some(), claim.now)?;
                Some((at, held.value.delivery_id))
            })
            .collect();
        candidates.sort();
        candidates.truncate(claim.limit);
        let mut claimed = Vec::with_capacity(candidates.len());
        for (_, id) in candidates {
            if let Some(held) = state.outbox.get_mut(&id) {
                held.token = Some(claim.token);
                held.lease_until = Some(claim.lease_until);
                claimed.push(held.value.clone());
            }
        }
        Ok(claimed)
    }

    async fn update_notification(&self, update: NotificationUpdate) -> Result<bool, StorageError> {
        let mut state = self.state()?;
        let Some(held) = state.outbox.get_mut(&update.delivery_id) else { return Ok(false) };
        if held.token != Some(update.token) {
            return Ok(false);
        }
        if update.done {
            state.outbox.remove(&update.delivery_id);
            return Ok(true);
        }
        if !update.keep_claim {
            held.token = None;
            held.lease_until = None;
        }
        held.value.sent_to = update.sent_to;
        held.value.attempts = update.attempts;
        held.value.next_attempt_at = update.next_attempt_at;
        held.value.last_error = update.last_error;
        Ok(true)
    }
}
