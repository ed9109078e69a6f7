//! [`MemoryStorage`]: the whole storage contract in memory, for tests and single-process hosts that accept
//! losing the queue on restart.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry, LogQuery};
use crate::ports::{
    waits_behind_message, Claim, ClaimToken, Completion, Enqueue, Notification, NotificationUpdate, QuotaRequest,
    Storage, StorageError, StorageErrorKind,
};

/// Every [`Storage`] duty, kept in memory behind one lock (so each call is atomic). Nothing survives the
/// process: use it in tests, or where losing the queue on restart is acceptable.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    deliveries: HashMap<DeliveryId, Held<Delivery>>,
    /// Every delivery a claim may take, by when it may (a queued one's next attempt, a claimed one's lease), then
    /// age and id: the claim's order. Settled deliveries are not in it, so a claim never walks them, and neither
    /// are ordered ones waiting behind an earlier one of their line.
    due: BTreeSet<DueKey>,
    /// The unsettled deliveries of each line of ordered deliveries, by their place in it.
    lines: HashMap<[u8; 16], BTreeMap<u64, DeliveryId>>,
    /// The place the next ordered delivery takes.
    next_place: u64,
    log: Vec<LogEntry>,
    quota: HashMap<(String, NaiveDate), u64>,
    fired: HashSet<(String, String, String)>,
    schedules: HashMap<(String, String), Option<DateTime<Utc>>>,
    outbox: HashMap<DeliveryId, Held<Notification>>,
}

#[derive(Debug)]
struct Held<T> {
    value: T,
    token: Option<ClaimToken>,
    lease_until: Option<DateTime<Utc>>,
    /// The quota grant a delivery holds: the day and the attempt it was granted for.
    grant: Option<(NaiveDate, u32)>,
    /// An ordered delivery's line and place in it.
    line: Option<([u8; 16], u64)>,
    /// Whether it waits behind an earlier delivery of its line (and so is not in the due index).
    waiting: bool,
}

/// When a delivery may be claimed, its age and its id.
type DueKey = (DateTime<Utc>, DateTime<Utc>, DeliveryId);

/// The index key of a stored delivery, when a claim may take it.
fn due_key(held: &Held<Delivery>) -> Option<DueKey> {
    if held.waiting {
        return None;
    }
    let d = &held.value;
    let at = match d.status {
        DeliveryStatus::Queued => d.next_attempt_at,
        DeliveryStatus::Dispatched => held.lease_until,
        DeliveryStatus::Success | DeliveryStatus::Failed => None,
    }?;
    Some((at, d.created_at, d.id))
}

impl<T> Held<T> {
    fn new(value: T) -> Self {
        Held { value, token: None, lease_until: None, grant: None, line: None, waiting: false }
    }
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

/// A settled ordered delivery leaves its line; the one now first, if it waited, becomes due.
fn leave_line(state: &mut State, line_key: [u8; 16], place: u64) {
    let Some(line) = state.lines.get_mut(&line_key) else { return };
    line.remove(&place);
    let Some((_, first)) = line.first_key_value() else {
        state.lines.remove(&line_key);
        return;
    };
    if let Some(next) = state.deliveries.get_mut(first) {
        if next.waiting {
            next.waiting = false;
            if let Some(key) = due_key(next) {
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
            let mut held = Held::new(delivery);
            if let Some(line_key) = held.value.order_key() {
                let place = state.next_place;
                state.next_place = place.saturating_add(1);
                let line = state.lines.entry(line_key).or_default();
                if let Some((_, earlier)) = line.last_key_value() {
                    held.waiting = true;
                    waits.push(LogEntry::about(
                        &held.value,
                        DeliveryStatus::Queued,
                        held.value.created_at,
                        waits_behind_message(*earlier),
                    ));
                }
                line.insert(place, held.value.id);
                held.line = Some((line_key, place));
            }
            if let Some(key) = due_key(&held) {
                state.due.insert(key);
            }
            state.deliveries.insert(held.value.id, held);
        }
        state.log.extend(batch.entries.into_iter().filter(|e| !skipped.contains(&e.delivery_id)));
        state.log.extend(waits);
        Ok(ids)
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Vec<Delivery>, StorageError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let taken: Vec<DueKey> =
            state.due.iter().take_while(|(at, _, _)| *at <= claim.now).take(claim.limit).copied().collect();
        let mut claimed = Vec::with_capacity(taken.len());
        for key in taken {
            state.due.remove(&key);
            let Some(held) = state.deliveries.get_mut(&key.2) else { continue };
            held.token = Some(claim.token);
            held.lease_until = Some(claim.lease_until);
            held.value.status = DeliveryStatus::Dispatched;
            held.value.lease_expires_at = Some(claim.lease_until);
            held.value.updated_at = claim.now;
            if let Some(key) = due_key(held) {
                state.due.insert(key);
            }
            claimed.push(held.value.clone());
        }
        Ok(claimed)
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<DeliveryId>, StorageError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let mut lost = Vec::new();
        for completion in completions {
            let Some(held) = state.deliveries.get_mut(&completion.id) else {
                lost.push(completion.id);
                continue;
            };
            if held.token != Some(completion.token) || held.value.status != DeliveryStatus::Dispatched {
                lost.push(completion.id);
                continue;
            }
            if let Some(key) = due_key(held) {
                state.due.remove(&key);
            }
            held.token = None;
            held.lease_until = None;
            held.value.status = completion.status;
            held.value.attempts = completion.attempts;
            held.value.next_attempt_at = completion.next_attempt_at;
            held.value.lease_expires_at = None;
            held.value.updated_at = completion.at;
            if let Some(key) = due_key(held) {
                state.due.insert(key);
            }
            if completion.status.is_settled() {
                if let Some((line_key, place)) = held.line {
                    leave_line(state, line_key, place);
                }
            }
            state.log.extend(completion.entries);
            if let Some(notification) = completion.notification {
                state.outbox.entry(notification.delivery_id).or_insert(Held::new(notification));
            }
        }
        Ok(lost)
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        Ok(self.state()?.due.first().map(|(at, _, _)| *at))
    }

    async fn delivery(&self, tenant: &str, id: DeliveryId) -> Result<Option<Delivery>, StorageError> {
        let state = self.state()?;
        Ok(state.deliveries.get(&id).map(|h| h.value.clone()).filter(|d| d.tenant == tenant))
    }

    async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StorageError> {
        let state = self.state()?;
        let mut matching: Vec<(usize, &LogEntry)> =
            state.log.iter().enumerate().filter(|(_, e)| query.accepts(e)).collect();
        matching.sort_by(|(ia, a), (ib, b)| b.at.cmp(&a.at).then(ib.cmp(ia)));
        Ok(matching.into_iter().skip(query.offset).take(query.limit).map(|(_, e)| e.clone()).collect())
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let mut state = self.state()?;
        let doomed: HashSet<DeliveryId> = state
            .deliveries
            .values()
            .map(|h| &h.value)
            .filter(|d| d.status.is_settled() && d.updated_at < before)
            .map(|d| d.id)
            .filter(|id| !state.outbox.contains_key(id))
            .collect();
        state.deliveries.retain(|id, _| !doomed.contains(id));
        state.log.retain(|e| !doomed.contains(&e.delivery_id));
        Ok(doomed.len() as u64)
    }

    async fn grant_quota(&self, request: &QuotaRequest) -> Result<Vec<DeliveryId>, StorageError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let used = state.quota.entry((request.tenant.clone(), request.day)).or_insert(0);
        let mut granted = Vec::with_capacity(request.deliveries.len());
        for id in &request.deliveries {
            let Some(held) = state.deliveries.get_mut(id) else { continue };
            if held.token != Some(request.token) || held.value.status != DeliveryStatus::Dispatched {
                continue;
            }
            let this = (request.day, held.value.attempts.saturating_add(1));
            if held.grant == Some(this) {
                granted.push(*id);
            } else if *used < request.allowance {
                *used += 1;
                held.grant = Some(this);
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
