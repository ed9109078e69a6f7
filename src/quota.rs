//! Usage limits per edition: calls per user and calls per day, counted per tenant calendar day.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A product edition and its webhook limits (the product's table), or custom limits.
///
/// | edition | calls per user | calls per day |
/// | --- | --- | --- |
/// | Sales/Help Desk Professional | 250 | 25,000 |
/// | Sales Enterprise | 500 | 50,000 |
/// | Help Desk Enterprise | 500 | 25,000 |
/// | One Professional | 500 | 50,000 |
/// | One Enterprise | 500 | 50,000 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edition {
    /// Sales Professional and Help Desk Professional.
    SalesHelpDeskProfessional,
    /// Sales Enterprise.
    SalesEnterprise,
    /// Help Desk Enterprise.
    HelpDeskEnterprise,
    /// One Professional.
    OneProfessional,
    /// One Enterprise.
    OneEnterprise,
    /// Limits of your own.
    Custom {
        /// Calls per licensed user per day.
        per_user: u64,
        /// Calls per day for the whole tenant.
        per_day: u64,
    },
}

impl Edition {
    /// Calls per licensed user per day.
    pub fn per_user(self) -> u64 {
        match self {
            Edition::SalesHelpDeskProfessional => 250,
            Edition::SalesEnterprise
            | Edition::HelpDeskEnterprise
            | Edition::OneProfessional
            | Edition::OneEnterprise => 500,
            Edition::Custom { per_user, .. } => per_user,
        }
    }

    /// Calls per day for the whole tenant.
    pub fn per_day(self) -> u64 {
        match self {
            Edition::SalesHelpDeskProfessional | Edition::HelpDeskEnterprise => 25_000,
            Edition::SalesEnterprise | Edition::OneProfessional | Edition::OneEnterprise => 50_000,
            Edition::Custom { per_day, .. } => per_day,
        }
    }

    /// The daily allowance of a tenant with this many licensed users: `min(per_user × users, per_day)`.
    ///
    /// ```
    /// use crm_webhooks::Edition;
    /// assert_eq!(Edition::SalesHelpDeskProfessional.daily_allowance(10), 2_500);
    /// assert_eq!(Edition::SalesHelpDeskProfessional.daily_allowance(1_000), 25_000);
    /// ```
    pub fn daily_allowance(self, licensed_users: u32) -> u64 {
        self.per_user().saturating_mul(u64::from(licensed_users)).min(self.per_day())
    }
}

/// How the engine finds a tenant's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuotaPolicy {
    /// No limits.
    Unlimited,
    /// The edition the directory reports for the tenant ([`TenantInfo::edition`](crate::ports::TenantInfo::edition));
    /// a tenant without one has no limit.
    #[default]
    FromDirectory,
    /// The directory's edition, or this one when the directory reports none.
    FromDirectoryOr(Edition),
    /// The same edition for every tenant.
    Fixed(Edition),
}

impl QuotaPolicy {
    /// The edition that applies, given the one the directory reports; `None` means unlimited.
    pub fn edition(self, from_directory: Option<Edition>) -> Option<Edition> {
        match self {
            QuotaPolicy::Unlimited => None,
            QuotaPolicy::FromDirectory => from_directory,
            QuotaPolicy::FromDirectoryOr(fallback) => Some(from_directory.unwrap_or(fallback)),
            QuotaPolicy::Fixed(edition) => Some(edition),
        }
    }
}

/// The tenant's calendar day that `now` falls on: quota counters are kept per such day.
pub fn quota_day(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// When the tenant's next calendar day starts (local midnight, or the first instant of the day when a DST
/// change skips midnight).
pub fn next_day_start(now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let tomorrow = quota_day(now, tz).succ_opt().unwrap_or(NaiveDate::MAX);
    (0..24 * 60)
        .filter_map(|minutes| tomorrow.and_hms_opt(0, 0, 0).map(|t| t + Duration::minutes(minutes)))
        .find_map(|local| tz.from_local_datetime(&local).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now + Duration::days(1))
}

/// A tenant's usage for one quota day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// The tenant's calendar day.
    pub day: NaiveDate,
    /// HTTP requests sent (or reserved) that day, retries included.
    pub used: u64,
    /// The daily allowance; `None` when unlimited.
    pub allowed: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let rows = [
            (Edition::SalesHelpDeskProfessional, 250, 25_000),
            (Edition::SalesEnterprise, 500, 50_000),
            (Edition::HelpDeskEnterprise, 500, 25_000),
            (Edition::OneProfessional, 500, 50_000),
            (Edition::OneEnterprise, 500, 50_000),
        ];
        for (edition, per_user, per_day) in rows {
            assert_eq!((edition.per_user(), edition.per_day()), (per_user, per_day), "{edition:?}");
            assert_eq!(edition.daily_allowance(3), per_user * 3);
            assert_eq!(edition.daily_allowance(u32::MAX), per_day);
        }
        assert_eq!(Edition::Custom { per_user: 2, per_day: 5 }.daily_allowance(2), 4);
        assert_eq!(Edition::Custom { per_user: 2, per_day: 5 }.daily_allowance(0), 0);
    }

    #[test]
    fn days_follow_the_tenant_time_zone() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let late = Utc.with_ymd_and_hms(2026, 11, 30, 3, 0, 0).unwrap(); // 22:00 on the 29th in New York
        assert_eq!(quota_day(late, tz), NaiveDate::from_ymd_opt(2026, 11, 29).unwrap());
        assert_eq!(next_day_start(late, tz), Utc.with_ymd_and_hms(2026, 11, 30, 5, 0, 0).unwrap());
        // Sao Paulo once skipped midnight at DST start (2018-11-04 00:00 -> 01:00).
        let sp: Tz = "America/Sao_Paulo".parse().unwrap();
        let before = Utc.with_ymd_and_hms(2018, 11, 3, 12, 0, 0).unwrap();
        assert_eq!(next_day_start(before, sp), Utc.with_ymd_and_hms(2018, 11, 4, 3, 0, 0).unwrap());
    }

    #[test]
    fn policies() {
        let e = Edition::OneEnterprise;
        assert_eq!(QuotaPolicy::Unlimited.edition(Some(e)), None);
        assert_eq!(QuotaPolicy::FromDirectory.edition(None), None);
        assert_eq!(QuotaPolicy::FromDirectory.edition(Some(e)), Some(e));
        assert_eq!(QuotaPolicy::FromDirectoryOr(e).edition(None), Some(e));
        assert_eq!(QuotaPolicy::Fixed(e).edition(Some(Edition::SalesEnterprise)), Some(e));
    }
}
