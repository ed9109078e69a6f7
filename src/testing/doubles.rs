//! The doubles of the host's ports: a scripted HTTP client, a recording mailer, a fixed directory, a manual
//! clock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::ports::{
    Clock, Directory, DirectoryError, Email, HttpClient, HttpError, MailError, Mailer, TenantInfo, User,
};

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test double whose lock was poisoned by a panicking test still answers.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A scripted answer: status, headers and body.
type Answer = (u16, Vec<(String, String)>, Bytes);

/// One scripted answer of [`MockHttp`].
#[derive(Debug, Clone)]
pub struct MockReply {
    result: Result<Answer, HttpError>,
    delay: Duration,
}

impl MockReply {
    /// An answer with this status and an empty body.
    pub fn status(status: u16) -> Self {
        MockReply { result: Ok((status, Vec::new(), Bytes::new())), delay: Duration::ZERO }
    }
    /// An error instead of an answer.
    pub fn error(error: HttpError) -> Self {
        MockReply { result: Err(error), delay: Duration::ZERO }
    }
    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Ok((_, headers, _)) = &mut self.result {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
    /// Sets the response body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        if let Ok((_, _, b)) = &mut self.result {
            *b = body.into();
        }
        self
    }
    /// Waits this long (on the tokio timer when called inside tokio, else not at all) before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request [`MockHttp`] received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Method.
    pub method: http::Method,
    /// URI.
    pub uri: http::Uri,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
    /// The action's [`RequestOptions`](crate::ports::RequestOptions) the request carried (its own timeout or TLS
    /// setting), if any.
    pub options: Option<crate::ports::RequestOptions>,
}

/// An [`HttpClient`] that answers from a script (then with a fallback) and records every request.
///
/// ```
/// use crm_webhooks::testing::{MockHttp, MockReply};
/// let http = MockHttp::new_ok(); // 200 to everything
/// let flaky = MockHttp::new_ok().then(MockReply::status(500)).then(MockReply::status(503).header("retry-after", "60"));
/// assert_eq!(flaky.requests().len(), 0);
/// ```
#[derive(Debug, Default)]
pub struct MockHttp {
    script: Mutex<VecDeque<MockReply>>,
    fallback: Mutex<Option<MockReply>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

impl MockHttp {
    /// Answers 200 to everything not scripted.
    pub fn new_ok() -> Self {
        Self::with_fallback(MockReply::status(200))
    }
    /// Answers with this status to everything not scripted.
    pub fn new_status(status: u16) -> Self {
        Self::with_fallback(MockReply::status(status))
    }
    /// Fails every request not scripted with this error.
    pub fn new_error(error: HttpError) -> Self {
        Self::with_fallback(MockReply::error(error))
    }
    /// Answers with `reply` to everything not scripted.
    pub fn with_fallback(reply: MockReply) -> Self {
        MockHttp { fallback: Mutex::new(Some(reply)), ..Default::default() }
    }
    /// Adds an answer to the script (answers are used in order, then the fallback).
    pub fn then(self, reply: MockReply) -> Self {
        lock(&self.script).push_back(reply);
        self
    }
    /// Adds an answer to the script of a shared mock.
    pub fn push(&self, reply: MockReply) {
        lock(&self.script).push_back(reply);
    }
    /// Replaces the fallback answer.
    pub fn set_fallback(&self, reply: MockReply) {
        *lock(&self.fallback) = Some(reply);
    }
    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }
}

#[async_trait]
impl HttpClient for MockHttp {
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        lock(&self.requests).push(RecordedRequest {
            options: parts.extensions.get::<crate::ports::RequestOptions>().cloned(),
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        });
        let reply = lock(&self.script).pop_front().or_else(|| lock(&self.fallback).clone());
        let Some(reply) = reply else {
            return Err(HttpError::new(crate::ports::HttpErrorKind::Other, "MockHttp has no scripted answer left"));
        };
        #[cfg(feature = "tokio")]
        if !reply.delay.is_zero() && tokio::runtime::Handle::try_current().is_ok() {
            tokio::time::sleep(reply.delay).await;
        }
        let (status, headers, body) = reply.result?;
        let mut response = http::Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(name, value);
        }
        response.body(body).map_err(|e| {
            HttpError::new(crate::ports::HttpErrorKind::Other, format!("MockHttp reply is not valid HTTP: {e}"))
        })
    }
}

/// A [`Mailer`] that records every email it is asked to send, and fails when told to.
#[derive(Debug, Default)]
pub struct RecordingMailer {
    sent: Mutex<Vec<Email>>,
    failures: Mutex<VecDeque<MailError>>,
}

impl RecordingMailer {
    /// Sends (records) everything.
    pub fn new() -> Self {
        Self::default()
    }
    /// Fails the next call with this error (calls queue up).
    pub fn fail_next(&self, error: MailError) {
        lock(&self.failures).push_back(error);
    }
    /// Every email sent, in order.
    pub fn sent(&self) -> Vec<Email> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        if let Some(error) = lock(&self.failures).pop_front() {
            return Err(error);
        }
        lock(&self.sent).push(email.clone());
        Ok(())
    }
}

/// A [`Directory`] over fixed data. Tenants it was not told of get one licensed user, UTC, no edition.
///
/// ```
/// use crm_webhooks::testing::StaticDirectory;
/// use crm_webhooks::Edition;
/// use crm_webhooks::ports::User;
/// let directory = StaticDirectory::new()
///     .tenant("acme", 10, chrono_tz::Europe::Berlin, Some(Edition::SalesEnterprise))
///     .user("acme", User { id: "19x1".into(), name: "Olga Owner".into(), email: "olga@acme.test".into(), active: true, admin: false });
/// # let _ = directory;
/// ```
#[derive(Debug, Default)]
pub struct StaticDirectory {
    tenants: Mutex<HashMap<String, TenantInfo>>,
    users: Mutex<HashMap<String, Vec<User>>>,
    unavailable: Mutex<bool>,
}

impl StaticDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds (or replaces) a tenant.
    pub fn tenant(self, tenant: &str, licensed_users: u32, time_zone: Tz, edition: Option<crate::Edition>) -> Self {
        lock(&self.tenants).insert(tenant.to_owned(), TenantInfo { licensed_users, time_zone, edition });
        self
    }
    /// Adds (or replaces) a user of a tenant.
    pub fn user(self, tenant: &str, user: User) -> Self {
        self.put_user(tenant, user);
        self
    }
    /// Adds or replaces a user of a shared directory (to deactivate someone mid-test, say).
    pub fn put_user(&self, tenant: &str, user: User) {
        let mut users = lock(&self.users);
        let list = users.entry(tenant.to_owned()).or_default();
        list.retain(|u| u.id != user.id);
        list.push(user);
    }
    /// Makes every call fail with [`DirectoryError::Unavailable`] (or answer again).
    pub fn set_unavailable(&self, unavailable: bool) {
        *lock(&self.unavailable) = unavailable;
    }
    fn check(&self) -> Result<(), DirectoryError> {
        if *lock(&self.unavailable) {
            Err(DirectoryError::Unavailable("StaticDirectory was told to be unavailable".to_owned()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Directory for StaticDirectory {
    async fn user(&self, tenant: &str, id: &str) -> Result<Option<User>, DirectoryError> {
        self.check()?;
        Ok(lock(&self.users).get(tenant).and_then(|users| users.iter().find(|u| u.id == id).cloned()))
    }
    async fn active_admins(&self, tenant: &str) -> Result<Vec<User>, DirectoryError> {
        self.check()?;
        Ok(lock(&self.users)
            .get(tenant)
            .map(|users| users.iter().filter(|u| u.active && u.admin).cloned().collect())
            .unwrap_or_default())
    }
    async fn tenant(&self, tenant: &str) -> Result<TenantInfo, DirectoryError> {
        self.check()?;
        Ok(lock(&self.tenants).get(tenant).cloned().unwrap_or(TenantInfo {
            licensed_users: 1,
            time_zone: Tz::UTC,
            edition: None,
        }))
    }
}

/// A [`Clock`] that stands still until advanced. Clones share the same time.
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use crm_webhooks::{testing::ManualClock, Clock};
/// let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap());
/// clock.advance(Duration::hours(1));
/// assert_eq!(clock.now(), Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock { now: Arc::new(Mutex::new(start)) }
    }
    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = lock(&self.now);
        *now += by;
    }
    /// Sets the clock.
    pub fn set(&self, to: DateTime<Utc>) {
        *lock(&self.now) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.now)
    }
}
