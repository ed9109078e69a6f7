//! How [`MemoryStorage`](super::MemoryStorage) keeps a delivery and a log entry: compact rows. The texts that
//! repeat across deliveries (tenant, workflow, action, module, URL, owner) are kept once and shared; a delivery's
//! record id is shared with its log entries; times are whole microseconds (the precision every storage keeps);
//! what few rows have (a redelivery's origin, an ordered line, an entry's HTTP details) is boxed apart.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry};
use crate::failure::FailureReason;
use crate::payload::ContentType;
use crate::workflow::Method;

/// A time as whole microseconds since the epoch.
pub(super) type Micros = i64;

/// `None` as [`Micros`].
const NONE: Micros = Micros::MIN;

pub(super) fn micros(at: DateTime<Utc>) -> Micros {
    at.timestamp_micros()
}

fn opt_micros(at: Option<DateTime<Utc>>) -> Micros {
    at.map_or(NONE, micros)
}

pub(super) fn time(at: Micros) -> DateTime<Utc> {
    // Every stored value came from a `DateTime`, so it is in range.
    DateTime::from_timestamp_micros(at).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn opt_time(at: Micros) -> Option<DateTime<Utc>> {
    (at != NONE).then(|| time(at))
}

/// Hashes delivery ids by their bytes, folded: ids are random or SHA-256 derived, so their bytes are already
/// uniform, and SipHash (the default) cost more than the rest of a map lookup.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }

    fn write_usize(&mut self, _length: usize) {
        // Only a slice's length prefix (always 16): it adds nothing.
    }
}

/// A map keyed by delivery ids.
pub(super) type IdMap<V> = std::collections::HashMap<DeliveryId, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Values kept once, shared by every row that holds an equal one.
#[derive(Debug)]
pub(super) struct Interned<T: ?Sized + Eq + Hash>(HashSet<Arc<T>>);

impl<T: ?Sized + Eq + Hash> Default for Interned<T> {
    fn default() -> Self {
        Interned(HashSet::new())
    }
}

impl<T: Eq + Hash> Interned<T> {
    /// The shared value equal to `value` (kept, the first time).
    fn share(&mut self, value: T) -> Arc<T> {
        if let Some(shared) = self.0.get(&value) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(value);
        self.0.insert(Arc::clone(&shared));
        shared
    }
}

/// The last value shared, checked before building a key to look up: a queue's rows mostly repeat the row before.
#[derive(Debug)]
struct Last<T: ?Sized>(Option<Arc<T>>);

impl<T: ?Sized> Default for Last<T> {
    fn default() -> Self {
        Last(None)
    }
}

impl<T: ?Sized> Last<T> {
    fn get(&self, same: impl FnOnce(&T) -> bool) -> Option<Arc<T>> {
        self.0.as_ref().filter(|last| same(last)).map(Arc::clone)
    }

    fn keep(&mut self, shared: &Arc<T>) -> Arc<T> {
        self.0 = Some(Arc::clone(shared));
        Arc::clone(shared)
    }
}

impl Interned<str> {
    /// The shared text equal to `value` (kept, the first time).
    fn share_str(&mut self, value: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(value) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(value);
        self.0.insert(Arc::clone(&shared));
        shared
    }
}

impl<T: ?Sized + Eq + Hash> Interned<T> {
    /// Forgets the values no row holds any more.
    pub(super) fn forget_unused(&mut self) {
        self.0.retain(|shared| Arc::strong_count(shared) > 1);
    }
}

/// Where a delivery and its entries belong: tenant, workflow and action.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Names {
    pub(super) tenant: Box<str>,
    workflow: Box<str>,
    action: Box<str>,
}

/// Where a delivery goes and how.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Target {
    module: Box<str>,
    url: Box<str>,
    method: Method,
    content_type: ContentType,
}

/// Every interner of a store.
#[derive(Debug, Default)]
pub(super) struct Texts {
    names: Interned<Names>,
    targets: Interned<Target>,
    owners: Interned<str>,
    last_names: Last<Names>,
    last_target: Last<Target>,
    last_owner: Last<str>,
}

impl Texts {
    fn names(&mut self, tenant: &str, workflow: &str, action: &str) -> Arc<Names> {
        let same = |n: &Names| (&*n.tenant, &*n.workflow, &*n.action) == (tenant, workflow, action);
        if let Some(last) = self.last_names.get(same) {
            return last;
        }
        let shared =
            self.names.share(Names { tenant: tenant.into(), workflow: workflow.into(), action: action.into() });
        self.last_names.keep(&shared)
    }

    fn target(&mut self, module: String, url: String, method: Method, content_type: ContentType) -> Arc<Target> {
        let same = |t: &Target| {
            (&*t.module, &*t.url, t.method, t.content_type) == (module.as_str(), url.as_str(), method, content_type)
        };
        if let Some(last) = self.last_target.get(same) {
            return last;
        }
        let shared = self.targets.share(Target {
            module: module.into_boxed_str(),
            url: url.into_boxed_str(),
            method,
            content_type,
        });
        self.last_target.keep(&shared)
    }

    fn owner(&mut self, owner: &str) -> Arc<str> {
        if let Some(last) = self.last_owner.get(|o| o == owner) {
            return last;
        }
        let shared = self.owners.share_str(owner);
        self.last_owner.keep(&shared)
    }

    pub(super) fn forget_unused(&mut self) {
        (self.last_names, self.last_target, self.last_owner) = Default::default();
        self.names.forget_unused();
        self.targets.forget_unused();
        self.owners.forget_unused();
    }
}

/// A stored delivery, but its id (the map's key).
#[derive(Debug)]
pub(super) struct Row {
    pub(super) names: Arc<Names>,
    target: Arc<Target>,
    owner: Arc<str>,
    record_id: Arc<str>,
    body: Box<[u8]>,
    pub(super) status: DeliveryStatus,
    pub(super) attempts: u32,
    pub(super) next_attempt_at: Micros,
    pub(super) lease_expires_at: Micros,
    pub(super) created_at: Micros,
    pub(super) updated_at: Micros,
    /// The quota grant it holds: the day (days since the common era) and the attempt it was granted for.
    grant: (i32, u32),
    /// Whether it waits behind an earlier delivery of its line (and so is not in the due index).
    pub(super) waiting: bool,
    rare: Option<Box<Rare>>,
}

/// What few deliveries have.
#[derive(Debug, Default)]
struct Rare {
    redelivery_of: Option<DeliveryId>,
    /// An ordered delivery's line and place in it.
    line: Option<([u8; 16], u64)>,
}

const NO_GRANT: (i32, u32) = (i32::MIN, 0);

impl Row {
    pub(super) fn new(d: Delivery, texts: &mut Texts) -> Self {
        let names = texts.names(&d.tenant, &d.workflow, &d.action);
        let target = texts.target(d.module, d.url, d.method, d.content_type);
        let owner = texts.owner(&d.owner);
        let rare = d.redelivery_of.map(|of| Box::new(Rare { redelivery_of: Some(of), line: None }));
        Row {
            names,
            target,
            owner,
            record_id: Arc::from(d.record_id),
            body: Vec::from(d.body).into_boxed_slice(),
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: opt_micros(d.next_attempt_at),
            lease_expires_at: opt_micros(d.lease_expires_at),
            created_at: micros(d.created_at),
            updated_at: micros(d.updated_at),
            grant: NO_GRANT,
            waiting: false,
            rare,
        }
    }

    pub(super) fn delivery(&self, id: DeliveryId) -> Delivery {
        Delivery {
            id,
            tenant: self.names.tenant.to_string(),
            workflow: self.names.workflow.to_string(),
            action: self.names.action.to_string(),
            module: self.target.module.to_string(),
            record_id: self.record_id.to_string(),
            owner: self.owner.to_string(),
            method: self.target.method,
            url: self.target.url.to_string(),
            content_type: self.target.content_type,
            body: Bytes::copy_from_slice(&self.body),
            status: self.status,
            attempts: self.attempts,
            next_attempt_at: opt_time(self.next_attempt_at),
            lease_expires_at: opt_time(self.lease_expires_at),
            created_at: time(self.created_at),
            updated_at: time(self.updated_at),
            redelivery_of: self.rare.as_ref().and_then(|r| r.redelivery_of),
            ordered: self.line().is_some(),
        }
    }

    pub(super) fn tenant(&self) -> &str {
        &self.names.tenant
    }

    /// Whether the delivery belongs to the action `key` names.
    pub(super) fn is_of(&self, key: &crate::ports::EndpointKey) -> bool {
        *self.names.tenant == *key.tenant && *self.names.workflow == *key.workflow && *self.names.action == *key.action
    }

    pub(super) fn line(&self) -> Option<([u8; 16], u64)> {
        self.rare.as_ref().and_then(|r| r.line)
    }

    pub(super) fn set_line(&mut self, line: ([u8; 16], u64)) {
        self.rare.get_or_insert_with(Box::default).line = Some(line);
    }

    pub(super) fn grant(&self) -> Option<(NaiveDate, u32)> {
        (self.grant != NO_GRANT)
            .then(|| NaiveDate::from_num_days_from_ce_opt(self.grant.0).map(|d| (d, self.grant.1)))?
    }

    pub(super) fn set_grant(&mut self, day: NaiveDate, attempt: u32) {
        self.grant = (chrono::Datelike::num_days_from_ce(&day), attempt);
    }

    /// A log entry about this delivery, sharing its texts where they are the same.
    pub(super) fn entry(&self, e: LogEntry, texts: &mut Texts) -> Entry {
        let names = if (&*self.names.tenant, &*self.names.workflow, &*self.names.action)
            == (e.tenant.as_str(), e.workflow.as_str(), e.action.as_str())
        {
            Arc::clone(&self.names)
        } else {
            texts.names(&e.tenant, &e.workflow, &e.action)
        };
        let record_id =
            if *self.record_id == *e.record_id { Arc::clone(&self.record_id) } else { Arc::from(e.record_id) };
        Entry::with(
            e.delivery_id,
            names,
            record_id,
            e.status,
            e.attempt,
            e.at,
            e.next_attempt_at,
            e.message,
            e.reason,
            detail(e.http_status, e.response_snippet, e.error),
        )
    }
}

/// A stored log entry.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) delivery_id: DeliveryId,
    names: Arc<Names>,
    record_id: Arc<str>,
    at: Micros,
    next_attempt_at: Micros,
    attempt: u32,
    status: DeliveryStatus,
    /// A byte beside the status (in what would be padding): every failed attempt has one.
    reason: Option<FailureReason>,
    message: Box<str>,
    detail: Option<Box<Detail>>,
}

/// What an entry about an attempt adds.
#[derive(Debug)]
struct Detail {
    http_status: Option<u16>,
    response_snippet: Option<String>,
    error: Option<String>,
}

fn detail(http_status: Option<u16>, response_snippet: Option<String>, error: Option<String>) -> Option<Box<Detail>> {
    (http_status.is_some() || response_snippet.is_some() || error.is_some())
        .then(|| Box::new(Detail { http_status, response_snippet, error }))
}

impl Entry {
    #[allow(clippy::too_many_arguments)]
    fn with(
        delivery_id: DeliveryId,
        names: Arc<Names>,
        record_id: Arc<str>,
        status: DeliveryStatus,
        attempt: u32,
        at: DateTime<Utc>,
        next_attempt_at: Option<DateTime<Utc>>,
        message: String,
        reason: Option<FailureReason>,
        detail: Option<Box<Detail>>,
    ) -> Self {
        Entry {
            delivery_id,
            names,
            record_id,
            at: micros(at),
            next_attempt_at: opt_micros(next_attempt_at),
            attempt,
            status,
            reason,
            message: message.into_boxed_str(),
            detail,
        }
    }

    /// An entry about no stored delivery (it is kept as given).
    pub(super) fn alone(e: LogEntry, texts: &mut Texts) -> Self {
        let names = texts.names(&e.tenant, &e.workflow, &e.action);
        let detail = detail(e.http_status, e.response_snippet, e.error);
        Entry::with(
            e.delivery_id,
            names,
            Arc::from(e.record_id),
            e.status,
            e.attempt,
            e.at,
            e.next_attempt_at,
            e.message,
            e.reason,
            detail,
        )
    }

    pub(super) fn at(&self) -> Micros {
        self.at
    }

    /// Whether the log query's filters hold for it.
    pub(super) fn accepted_by(&self, q: &crate::delivery::LogQuery) -> bool {
        *self.names.tenant == *q.tenant
            && q.workflow.as_deref().is_none_or(|w| *self.names.workflow == *w)
            && q.action.as_deref().is_none_or(|a| *self.names.action == *a)
            && q.status.is_none_or(|s| self.status == s)
            && q.record_id.as_deref().is_none_or(|r| *self.record_id == *r)
            && q.delivery_id.is_none_or(|d| self.delivery_id == d)
            && q.since.is_none_or(|t| self.at >= micros(t))
            && q.until.is_none_or(|t| self.at < micros(t))
    }

    pub(super) fn log_entry(&self) -> LogEntry {
        let detail = self.detail.as_deref();
        LogEntry {
            delivery_id: self.delivery_id,
            tenant: self.names.tenant.to_string(),
            workflow: self.names.workflow.to_string(),
            action: self.names.action.to_string(),
            record_id: self.record_id.to_string(),
            status: self.status,
            attempt: self.attempt,
            at: time(self.at),
            http_status: detail.and_then(|d| d.http_status),
            response_snippet: detail.and_then(|d| d.response_snippet.clone()),
            error: detail.and_then(|d| d.error.clone()),
            reason: self.reason,
            next_attempt_at: opt_time(self.next_attempt_at),
            message: self.message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::storage_contract::{sample_delivery, t0};

    #[test]
    fn a_row_and_an_entry_read_back_as_given() {
        let mut texts = Texts::default();
        let mut d = sample_delivery("acme", "w1", t0());
        d.redelivery_of = Some(DeliveryId::new());
        let row = Row::new(d.clone(), &mut texts);
        assert_eq!(row.delivery(d.id), d);
        let mut e = LogEntry::about(&d, DeliveryStatus::Failed, t0(), "attempt 1 failed");
        (e.http_status, e.error, e.next_attempt_at) = (Some(503), Some("busy".into()), Some(t0()));
        e.reason = Some(FailureReason::HttpStatus);
        assert_eq!(row.entry(e.clone(), &mut texts).log_entry(), e);
        let other = LogEntry { tenant: "globex".into(), record_id: "9x9".into(), ..e.clone() };
        assert_eq!(row.entry(other.clone(), &mut texts).log_entry(), other, "an entry naming others keeps them");
    }

    #[test]
    fn shared_texts_are_kept_once_and_forgotten_when_unused() {
        let mut texts = Texts::default();
        let rows: Vec<Row> = (0..100).map(|_| Row::new(sample_delivery("acme", "w1", t0()), &mut texts)).collect();
        assert_eq!((texts.names.0.len(), texts.targets.0.len(), texts.owners.0.len()), (1, 1, 1));
        assert!(Arc::ptr_eq(&rows[0].names, &rows[99].names));
        drop(rows);
        texts.forget_unused();
        assert_eq!((texts.names.0.len(), texts.targets.0.len(), texts.owners.0.len()), (0, 0, 0));
    }
}
