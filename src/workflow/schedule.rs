//! Schedules of scheduled workflows, computed in the tenant's time zone without reading the clock.

use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shown::shown;

/// The local time of a UTC instant in a time zone, or `None` when it is past the range chrono represents (a year
/// beyond ±262,142), where chrono's own `naive_local` and `date_naive` would panic.
pub(super) fn local_time(utc: NaiveDateTime, tz: Tz) -> Option<NaiveDateTime> {
    utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())
}

/// When a scheduled workflow runs, in the tenant's time zone.
///
/// JSON (the `every` key selects the kind; `at` is `HH:MM` local time):
/// `{"every": "hourly", "minute": 15}`, `{"every": "daily", "at": "09:00"}`,
/// `{"every": "weekly", "days": ["mon", "thu"], "at": "09:00"}`,
/// `{"every": "monthly", "days": [1, 15], "at": "06:30"}` (a month without the day is skipped),
/// `{"every": "specific_date", "date": "2026-12-24", "at": "08:00"}` (runs once).
///
/// A local time that does not exist (a DST gap) runs at the first valid instant after it; a time that occurs
/// twice runs at the first.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use crm_webhooks::workflow::Schedule;
/// let daily: Schedule = serde_json::from_str(r#"{"every": "daily", "at": "09:00"}"#).unwrap();
/// let after = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap(); // 11:00 in Berlin
/// let next = daily.next_after(after, chrono_tz::Europe::Berlin).unwrap();
/// assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "every", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Every hour at `minute` past the hour.
    Hourly {
        /// Minute past the hour, 0 to 59.
        #[serde(default)]
        minute: u32,
    },
    /// Every day at a local time.
    Daily {
        /// Local time of day.
        at: TimeOfDay,
    },
    /// On the given weekdays at a local time.
    Weekly {
        /// Weekdays (`"mon"` ... `"sun"`).
        days: Vec<Weekday>,
        /// Local time of day.
        at: TimeOfDay,
    },
    /// On the given days of the month at a local time.
    Monthly {
        /// Days of the month, 1 to 31.
        days: Vec<u32>,
        /// Local time of day.
        at: TimeOfDay,
    },
    /// Once, on a date at a local time.
    SpecificDate {
        /// The date.
        date: NaiveDate,
        /// Local time of day.
        at: TimeOfDay,
    },
}

/// A local time of day written `HH:MM` or `HH:MM:SS`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(pub NaiveTime);

impl fmt::Debug for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.second() == 0 {
            write!(f, "{}", self.0.format("%H:%M"))
        } else {
            write!(f, "{}", self.0.format("%H:%M:%S"))
        }
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        NaiveTime::parse_from_str(&text, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(&text, "%H:%M:%S"))
            .map(TimeOfDay)
            .map_err(|_| serde::de::Error::custom(format!("time \"{}\" is not HH:MM or HH:MM:SS", shown(&text))))
    }
}

/// The years a `specific_date` schedule may fall in: a date before 1970 has passed, and one after 9999 is a typing
/// mistake that would only bring chrono's limits closer.
const SPECIFIC_YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

impl Schedule {
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            Schedule::Hourly { minute } if *minute > 59 => Err(format!("minute {minute} is not 0 to 59")),
            Schedule::Weekly { days, .. } if days.is_empty() => Err("weekly needs at least one day".to_owned()),
            Schedule::Monthly { days, .. } if days.is_empty() => Err("monthly needs at least one day".to_owned()),
            Schedule::Monthly { days, .. } => match days.iter().find(|d| !(1..=31).contains(*d)) {
                Some(day) => Err(format!("day of month {day} is not 1 to 31")),
                None => Ok(()),
            },
            Schedule::SpecificDate { date, .. } if !SPECIFIC_YEARS.contains(&date.year()) => Err(format!(
                "the date {date} is not in the years {} to {}; give a date in that range",
                SPECIFIC_YEARS.start(),
                SPECIFIC_YEARS.end()
            )),
            _ => Ok(()),
        }
    }

    /// The first run strictly after `after`, in the tenant's time zone `tz`; `None` when no run is left (a
    /// specific date in the past) or none can be represented (near the end of chrono's range). Never panics, for
    /// any schedule (validated or not) and any instant.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local_after = local_time(after.naive_utc(), tz)?;
        match self {
            Schedule::Hourly { minute } => {
                let start = local_after.date().and_hms_opt(local_after.hour(), *minute % 60, 0)?;
                let mut candidate = resolve(tz, start)?;
                while candidate <= after {
                    candidate = candidate.checked_add_signed(Duration::hours(1))?;
                }
                Some(candidate)
            }
            Schedule::SpecificDate { date, at } => resolve(tz, date.and_time(at.0)).filter(|t| *t > after),
            Schedule::Daily { at } => first_day(tz, after, *at, |_| true),
            Schedule::Weekly { days, at } => first_day(tz, after, *at, |d| days.contains(&d.weekday())),
            Schedule::Monthly { days, at } => first_day(tz, after, *at, |d| days.contains(&d.day())),
        }
    }
}

/// The first day from `after`'s local date on which `wanted` holds and `at` is later than `after`.
fn first_day(tz: Tz, after: DateTime<Utc>, at: TimeOfDay, wanted: impl Fn(NaiveDate) -> bool) -> Option<DateTime<Utc>> {
    let mut date = local_time(after.naive_utc(), tz)?.date();
    // Four years and a day covers every day-of-month and weekday combination (29 February included).
    for _ in 0..(4 * 366 + 1) {
        if wanted(date) {
            if let Some(candidate) = resolve(tz, date.and_time(at.0)).filter(|t| *t > after) {
                return Some(candidate);
            }
        }
        date = date.succ_opt()?;
    }
    None
}

/// A local time as an instant: the earliest reading when it occurs twice, the first valid minute after the gap
/// when it does not occur.
fn resolve(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    if let Some(t) = tz.from_local_datetime(&local).earliest() {
        return Some(t.with_timezone(&Utc));
    }
    // A minute past the end of chrono's range does not exist: the search ends there.
    (1..=24 * 60)
        .map_while(|minutes| local.checked_add_signed(Duration::minutes(minutes)))
        .find_map(|shifted| tz.from_local_datetime(&shifted).earliest())
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn parse(json: &str) -> Schedule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn hourly_runs_at_the_minute() {
        let s = parse(r#"{"every": "hourly", "minute": 15}"#);
        assert_eq!(s.next_after(utc(2026, 11, 29, 10, 0), Tz::UTC), Some(utc(2026, 11, 29, 10, 15)));
        assert_eq!(s.next_after(utc(2026, 11, 29, 10, 15), Tz::UTC), Some(utc(2026, 11, 29, 11, 15)));
        let india = parse(r#"{"every": "hourly", "minute": 0}"#);
        // Kolkata is UTC+5:30: local :00 is UTC :30.
        assert_eq!(
            india.next_after(utc(2026, 11, 29, 10, 0), chrono_tz::Asia::Kolkata),
            Some(utc(2026, 11, 29, 10, 30))
        );
    }

    #[test]
    fn weekly_and_monthly() {
        let weekly = parse(r#"{"every": "weekly", "days": ["mon", "thu"], "at": "09:00"}"#);
        // 2026-11-29 is a Sunday.
        assert_eq!(weekly.next_after(utc(2026, 11, 29, 12, 0), Berlin), Some(utc(2026, 11, 30, 8, 0)));
        assert_eq!(weekly.next_after(utc(2026, 11, 30, 8, 0), Berlin), Some(utc(2026, 12, 3, 8, 0)));
        let monthly = parse(r#"{"every": "monthly", "days": [31], "at": "06:30"}"#);
        // November has 30 days: the next 31st is in December.
        assert_eq!(monthly.next_after(utc(2026, 11, 1, 0, 0), Berlin), Some(utc(2026, 12, 31, 5, 30)));
        let leap = parse(r#"{"every": "monthly", "days": [29], "at": "00:00"}"#);
        assert_eq!(leap.next_after(utc(2027, 1, 30, 0, 0), Tz::UTC), Some(utc(2027, 3, 29, 0, 0)));
    }

    #[test]
    fn specific_date_runs_once() {
        let once = parse(r#"{"every": "specific_date", "date": "2026-12-24", "at": "08:00"}"#);
        let first = once.next_after(utc(2026, 11, 29, 0, 0), Berlin).unwrap();
        assert_eq!(first, utc(2026, 12, 24, 7, 0));
        assert_eq!(once.next_after(first, Berlin), None);
    }

    #[test]
    fn dst_gap_and_overlap() {
        // Berlin skips 02:00-03:00 on 2027-03-28 and repeats 02:00-03:00 on 2026-10-25.
        let gap = parse(r#"{"every": "daily", "at": "02:30"}"#);
        let next = gap.next_after(utc(2027, 3, 27, 12, 0), Berlin).unwrap();
        assert_eq!(next, utc(2027, 3, 28, 1, 0), "03:00 CEST, the first instant after the gap");
        let overlap = gap.next_after(utc(2026, 10, 24, 12, 0), Berlin).unwrap();
        assert_eq!(overlap, utc(2026, 10, 25, 0, 30), "the first of the two 02:30s (CEST)");
    }

    #[test]
    fn invalid_schedules_are_refused() {
        assert!(parse(r#"{"every": "hourly", "minute": 60}"#).validate().is_err());
        assert!(parse(r#"{"every": "weekly", "days": [], "at": "09:00"}"#).validate().is_err());
        assert!(parse(r#"{"every": "monthly", "days": [0], "at": "09:00"}"#).validate().is_err());
        for date in ["1969-12-31", "+10000-01-01", "+262142-12-31", "-0001-01-01"] {
            let s = parse(&format!(r#"{{"every": "specific_date", "date": "{date}", "at": "09:00"}}"#));
            assert!(s.validate().unwrap_err().contains("years 1970 to 9999"), "{date}");
        }
        for date in ["1970-01-01", "9999-12-31"] {
            assert!(parse(&format!(r#"{{"every": "specific_date", "date": "{date}", "at": "09:00"}}"#))
                .validate()
                .is_ok());
        }
        assert!(serde_json::from_str::<Schedule>(r#"{"every": "daily", "at": "25:00"}"#).is_err());
        assert!(serde_json::from_str::<Schedule>(r#"{"every": "yearly"}"#).is_err());
    }
}
