//! The directory port: the host CRM's users and tenants.

use async_trait::async_trait;
use chrono_tz::Tz;

use crate::quota::Edition;

/// A CRM user, as the failure notification needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's id in the host CRM (a record's `owner`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Whether the user is active; inactive users are never emailed.
    pub active: bool,
    /// Whether the user is an administrator of the tenant.
    pub admin: bool,
}

/// What the engine needs to know of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInfo {
    /// Licensed users: the daily allowance is `min(per_user × licensed_users, per_day)`.
    pub licensed_users: u32,
    /// The tenant's time zone: its quota day and date conditions follow it.
    pub time_zone: Tz,
    /// The tenant's edition; `None` defers to the engine's [`QuotaPolicy`](crate::QuotaPolicy).
    pub edition: Option<Edition>,
}

/// The host's users and tenants.
#[async_trait]
pub trait Directory: Send + Sync {
    /// A user by id; `None` when there is no such user.
    async fn user(&self, tenant: &str, id: &str) -> Result<Option<User>, DirectoryError>;
    /// Every active administrator of the tenant.
    async fn active_admins(&self, tenant: &str) -> Result<Vec<User>, DirectoryError>;
    /// The tenant's licensed user count, time zone and edition.
    async fn tenant(&self, tenant: &str) -> Result<TenantInfo, DirectoryError>;
}

/// The directory could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The tenant is not known to the host.
    #[error("tenant \"{0}\" is not known to the directory")]
    UnknownTenant(String),
    /// The directory is unavailable; try again later.
    #[error("the user directory is unavailable: {0}")]
    Unavailable(String),
}
