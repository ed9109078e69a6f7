//! Who is asking: the host's [`Authorize`] answer ([`Caller`] or [`Refusal`]), and the form token that keeps
//! other sites from sending a signed-in admin's browser to a state-changing URL.

use std::fmt;

use base64::Engine as _;
use chrono::NaiveDate;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The caller the host vouches for: the tenant whose webhooks they may see, and who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant; every read and write of the router is confined to it. An empty tenant is refused.
    pub tenant: String,
    /// The user's id in the host (shown on the pages, and part of the form token).
    pub user: String,
}

impl Caller {
    /// A caller of `tenant`, signed in as `user`.
    pub fn new(tenant: impl Into<String>, user: impl Into<String>) -> Self {
        Caller { tenant: tenant.into(), user: user.into() }
    }
}

/// Why the host refuses a request. The message is shown to the caller: say what to do ("sign in", "ask an
/// administrator"), never why a credential was wrong in detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not signed in (401 Unauthorized).
    #[error("{0}")]
    Unauthenticated(String),
    /// Signed in, but not allowed to see webhooks (403 Forbidden).
    #[error("{0}")]
    Forbidden(String),
}

impl Refusal {
    /// The HTTP status the refusal answers with.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Refusal::Unauthenticated(_) => http::StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => http::StatusCode::FORBIDDEN,
        }
    }
}

/// The host's decision on each request, made from the request's head (its headers, cookies, URI, and the
/// extensions the host's own middleware put there, such as a session).
///
/// Any `Fn(&Parts) -> Result<Caller, Refusal>` closure is one:
///
/// ```
/// use crm_webhooks::admin::{Caller, Refusal};
/// let authorize = |parts: &http::request::Parts| match parts.headers.get("x-tenant") {
///     Some(tenant) => Ok(Caller::new(tenant.to_str().unwrap_or_default(), "admin")),
///     None => Err(Refusal::Unauthenticated("sign in to see the webhook log".into())),
/// };
/// # fn is_authorize(_: impl crm_webhooks::admin::Authorize) {}
/// is_authorize(authorize);
/// ```
pub trait Authorize: Send + Sync + 'static {
    /// Who the caller is and which tenant they may see, or why not.
    fn authorize(&self, request: &http::request::Parts) -> Result<Caller, Refusal>;
}

impl<F> Authorize for F
where
    F: Fn(&http::request::Parts) -> Result<Caller, Refusal> + Send + Sync + 'static,
{
    fn authorize(&self, request: &http::request::Parts) -> Result<Caller, Refusal> {
        self(request)
    }
}

/// The router's key for form tokens: at least 32 bytes the host keeps secret and gives every server of the
/// same deployment (a token made by one server is then taken by the others, and after a restart).
#[derive(Clone)]
pub struct AdminKey(Vec<u8>);

/// A key too short to make form tokens with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the admin key has {0} bytes; give at least 32 random bytes (for example `openssl rand -base64 32`)")]
pub struct WeakKey(usize);

impl AdminKey {
    /// The fewest bytes a key has.
    pub const MIN_BYTES: usize = 32;

    /// A key of these bytes; refuses fewer than [`AdminKey::MIN_BYTES`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, WeakKey> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_BYTES {
            return Err(WeakKey(bytes.len()));
        }
        Ok(AdminKey(bytes))
    }

    /// The form token of `caller` on `day`: HMAC-SHA256 of the tenant, the user and the day, in URL-safe base64.
    pub(crate) fn token(&self, caller: &Caller, day: NaiveDate) -> String {
        let Some(mac) = self.mac(caller, day) else { return String::new() };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `token` is the caller's token of `today` or of the day before (so a page opened just before
    /// midnight still works), compared in constant time.
    pub(crate) fn accepts(&self, caller: &Caller, today: NaiveDate, token: &str) -> bool {
        let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        [Some(today), today.pred_opt()]
            .into_iter()
            .flatten()
            .any(|day| self.mac(caller, day).is_some_and(|mac| mac.verify_slice(&given).is_ok()))
    }

    /// `None` never happens (HMAC takes keys of any length); it would only make every token fail.
    fn mac(&self, caller: &Caller, day: NaiveDate) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).ok()?;
        mac.update(b"crm-webhooks admin form token v1\0");
        for part in [caller.tenant.as_bytes(), caller.user.as_bytes(), day.to_string().as_bytes()] {
            mac.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
            mac.update(part);
        }
        Some(mac)
    }
}

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    #[test]
    fn a_token_holds_for_its_caller_today_and_tomorrow_only() {
        let key = AdminKey::new([7u8; 32]).unwrap();
        let ada = Caller::new("acme", "ada");
        let token = key.token(&ada, day(10));
        assert!(key.accepts(&ada, day(10), &token));
        assert!(key.accepts(&ada, day(11), &token));
        assert!(!key.accepts(&ada, day(12), &token));
        assert!(!key.accepts(&Caller::new("acme", "bob"), day(10), &token));
        assert!(!key.accepts(&Caller::new("other", "ada"), day(10), &token));
        assert!(!AdminKey::new([8u8; 32]).unwrap().accepts(&ada, day(10), &token));
        assert!(!key.accepts(&ada, day(10), "") && !key.accepts(&ada, day(10), "not base64!"));
        // The parts are length-prefixed: moving a character from the tenant to the user makes another token.
        assert_ne!(key.token(&Caller::new("ab", "c"), day(10)), key.token(&Caller::new("a", "bc"), day(10)));
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert_eq!(AdminKey::new(vec![1u8; 31]).unwrap_err(), WeakKey(31));
        let key = AdminKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        assert_eq!(format!("{key:?}"), "AdminKey([redacted])");
    }
}
