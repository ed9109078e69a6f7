//! Entry criteria: conditions on the record's fields, evaluated without I/O.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schedule::local_time;
use crate::error::{Location, ValidationError};
use crate::record::{Change, RecordEvent};
use crate::shown::shown;
use crate::value::{nests_deeper_than, MAX_VALUE_DEPTH};

/// Entry criteria: every condition of `all` holds, and at least one of `any` when `any` is not empty.
///
/// JSON: `{"all": [{"field": "sales_stage", "op": "is", "value": "Closed Won"}], "any": []}`. Both lists are
/// optional; empty criteria always hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    /// Conditions that must all hold.
    #[serde(default)]
    pub all: Vec<Condition>,
    /// Conditions of which at least one must hold (ignored when empty).
    #[serde(default)]
    pub any: Vec<Condition>,
}

/// One condition: `{"field": "amount", "op": "greater_than", "value": 1000}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The record field the condition reads.
    pub field: String,
    /// The comparison.
    pub op: Operator,
    /// The operand; absent for operators that take none (`is_empty`, `has_changed`, `is_today`...).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
}

/// The comparison a [`Condition`] makes.
///
/// Text comparisons ignore case. A value that reads as a number compares as a number (`"1200.50"` equals
/// `1200.5`), a boolean compares with `true`/`false`/`1`/`0`/`yes`/`no`/`on`/`off`. Dates are `YYYY-MM-DD`,
/// `YYYY-MM-DD HH:MM[:SS]` (the tenant's local time) or RFC 3339; a date-only value compares by calendar day in
/// the tenant's time zone. The day operators count whole calendar days between the field's date and today:
/// `less_than_days_ago N` holds for the last N days up to today, `more_than_days_ago N` before that,
/// `in_less_than_days N` for today and the next N days, `in_more_than_days N` after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Operator {
    Is,
    IsNot,
    Contains,
    DoesNotContain,
    StartsWith,
    EndsWith,
    IsEmpty,
    IsNotEmpty,
    LessThan,
    GreaterThan,
    LessOrEqual,
    GreaterOrEqual,
    /// The save changed the field (on creation: the field has a value).
    HasChanged,
    /// The save changed the field to `value`.
    HasChangedTo,
    /// The save changed the field away from `value` (never on creation).
    HasChangedFrom,
    Before,
    After,
    /// `value` is `[from, to]`, both ends included.
    Between,
    IsToday,
    LessThanDaysAgo,
    MoreThanDaysAgo,
    InLessThanDays,
    InMoreThanDays,
}

impl Operator {
    /// The operator's name in JSON.
    pub fn as_str(self) -> &'static str {
        use Operator::*;
        match self {
            Is => "is",
            IsNot => "is_not",
            Contains => "contains",
            DoesNotContain => "does_not_contain",
            StartsWith => "starts_with",
            EndsWith => "ends_with",
            IsEmpty => "is_empty",
            IsNotEmpty => "is_not_empty",
            LessThan => "less_than",
            GreaterThan => "greater_than",
            LessOrEqual => "less_or_equal",
            GreaterOrEqual => "greater_or_equal",
            HasChanged => "has_changed",
            HasChangedTo => "has_changed_to",
            HasChangedFrom => "has_changed_from",
            Before => "before",
            After => "after",
            Between => "between",
            IsToday => "is_today",
            LessThanDaysAgo => "less_than_days_ago",
            MoreThanDaysAgo => "more_than_days_ago",
            InLessThanDays => "in_less_than_days",
            InMoreThanDays => "in_more_than_days",
        }
    }
}

impl Criteria {
    /// Whether the criteria hold for the event. `now` is the current time in the tenant's time zone.
    pub fn matches(&self, event: &RecordEvent, now: DateTime<Tz>) -> bool {
        self.all.iter().all(|c| c.matches(event, now))
            && (self.any.is_empty() || self.any.iter().any(|c| c.matches(event, now)))
    }

    pub(crate) fn validate(&self, at: &Location) -> Vec<ValidationError> {
        self.all
            .iter()
            .chain(&self.any)
            .filter_map(|c| {
                c.check().err().map(|reason| ValidationError::InvalidCondition {
                    at: at.clone(),
                    field: shown(&c.field),
                    op: c.op.as_str().to_owned(),
                    reason,
                })
            })
            .collect()
    }
}

impl Condition {
    /// A condition.
    pub fn new(field: impl Into<String>, op: Operator, value: impl Into<Value>) -> Self {
        Condition { field: field.into(), op, value: value.into() }
    }

    /// Whether the operand fits the operator.
    fn check(&self) -> Result<(), String> {
        use Operator::*;
        if self.field.trim().is_empty() {
            return Err("the field name is empty".to_owned());
        }
        let v = &self.value;
        match self.op {
            IsEmpty | IsNotEmpty | HasChanged | IsToday => {
                if !v.is_null() {
                    return Err("this operator takes no value; remove \"value\"".to_owned());
                }
            }
            Is | IsNot | HasChangedTo | HasChangedFrom => {
                if v.is_array() || v.is_object() {
                    return Err("the value must be text, a number, a boolean or null".to_owned());
                }
            }
            Contains | DoesNotContain | StartsWith | EndsWith => {
                if !(v.is_string() || v.is_number()) {
                    return Err("the value must be text or a number".to_owned());
                }
            }
            LessThan | GreaterThan | LessOrEqual | GreaterOrEqual => {
                if as_number(v).is_none() && parse_moment(v, Tz::UTC).is_none() {
                    return Err("the value must be a number or a date".to_owned());
                }
            }
            Before | After => {
                if parse_moment(v, Tz::UTC).is_none() {
                    return Err("the value must be a date (YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339)".to_owned());
                }
            }
            Between => {
                let ok = match v.as_array().map(Vec::as_slice) {
                    Some([from, to]) => {
                        (as_number(from).is_some() && as_number(to).is_some())
                            || (parse_moment(from, Tz::UTC).is_some() && parse_moment(to, Tz::UTC).is_some())
                    }
                    _ => false,
                };
                if !ok {
                    return Err("the value must be [from, to]: two dates or two numbers".to_owned());
                }
            }
            LessThanDaysAgo | MoreThanDaysAgo | InLessThanDays | InMoreThanDays => {
                if day_count(v).is_none() {
                    return Err("the value must be a whole number of days, 0 or more".to_owned());
                }
            }
        }
        Ok(())
    }

    /// Whether the condition holds for the event. `now` is the current time in the tenant's time zone.
    pub fn matches(&self, event: &RecordEvent, now: DateTime<Tz>) -> bool {
        use Operator::*;
        let tz = now.timezone();
        let current = event.fields.get(&self.field).unwrap_or(&Value::Null);
        let operand = &self.value;
        match self.op {
            Is => loosely_equal(current, operand),
            IsNot => !loosely_equal(current, operand),
            Contains => contains(current, operand),
            DoesNotContain => !contains(current, operand),
            StartsWith => lower_text(current).starts_with(&lower_text(operand)),
            EndsWith => lower_text(current).ends_with(&lower_text(operand)),
            IsEmpty => is_empty(current),
            IsNotEmpty => !is_empty(current),
            LessThan => compare(current, operand, tz) == Some(Ordering::Less),
            GreaterThan => compare(current, operand, tz) == Some(Ordering::Greater),
            LessOrEqual => matches!(compare(current, operand, tz), Some(Ordering::Less | Ordering::Equal)),
            GreaterOrEqual => matches!(compare(current, operand, tz), Some(Ordering::Greater | Ordering::Equal)),
            HasChanged => changed(event, &self.field),
            HasChangedTo => changed(event, &self.field) && loosely_equal(current, operand),
            HasChangedFrom => {
                event.change == Change::Updated
                    && changed(event, &self.field)
                    && event.previous.get(&self.field).is_some_and(|before| loosely_equal(before, operand))
            }
            Before => compare_moments(current, operand, tz) == Some(Ordering::Less),
            After => compare_moments(current, operand, tz) == Some(Ordering::Greater),
            Between => match operand.as_array().map(Vec::as_slice) {
                Some([from, to]) => {
                    matches!(compare(current, from, tz), Some(Ordering::Greater | Ordering::Equal))
                        && matches!(compare(current, to, tz), Some(Ordering::Less | Ordering::Equal))
                }
                _ => false,
            },
            IsToday => days_from_today(current, now) == Some(0),
            LessThanDaysAgo => within(days_from_today(current, now).map(|d| -d), operand, true),
            MoreThanDaysAgo => within(days_from_today(current, now).map(|d| -d), operand, false),
            InLessThanDays => within(days_from_today(current, now), operand, true),
            InMoreThanDays => within(days_from_today(current, now), operand, false),
        }
    }
}

/// `days` ahead of today (negative: in the past). `inside`: 0 ≤ days ≤ n; otherwise days > n.
fn within(days: Option<i64>, operand: &Value, inside: bool) -> bool {
    match (days, day_count(operand)) {
        (Some(days), Some(n)) if inside => (0..=n).contains(&days),
        (Some(days), Some(n)) => days > n,
        _ => false,
    }
}

fn day_count(value: &Value) -> Option<i64> {
    let n = as_number(value)?;
    (n >= 0.0 && n.fract() == 0.0 && n < 1.0e9).then_some(n as i64)
}

fn days_from_today(value: &Value, now: DateTime<Tz>) -> Option<i64> {
    let tz = now.timezone();
    let date = parse_moment(value, tz)?.local_date(tz)?;
    let today = local_time(now.naive_utc(), tz)?.date();
    // Two dates in chrono's range are at most 191 million days apart: this subtraction cannot overflow.
    Some((date - today).num_days())
}

fn changed(event: &RecordEvent, field: &str) -> bool {
    let current = event.fields.get(field).unwrap_or(&Value::Null);
    match event.change {
        Change::Created => !is_empty(current),
        _ => event.previous.get(field).is_some_and(|before| !strictly_equal(before, current)),
    }
}

fn text(value: &Value) -> String {
    crate::value::text_of(value)
}

fn lower_text(value: &Value) -> String {
    text(value).to_lowercase()
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Equality as a CRM user means it: numbers by value, booleans by truth, text without regard to case, null as
/// the empty text; a list (a multi-select field) equals a value when one of its items does.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    match a {
        // One level only: a list inside the list compares as its text, so that the depth of a record's value
        // never becomes the depth of a recursion.
        // A list is no boolean.
        Value::Array(items) if !b.is_boolean() => items.iter().any(|item| scalar_equal(item, b)),
        _ => scalar_equal(a, b),
    }
}

fn scalar_equal(a: &Value, b: &Value) -> bool {
    if a.is_boolean() || b.is_boolean() {
        return matches!((as_bool(a), as_bool(b)), (Some(x), Some(y)) if x == y);
    }
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return x == y;
    }
    lower_text(a) == lower_text(b)
}

/// Whether a save changed a value: any difference counts, except a number written differently. Values too deep to
/// compare (see [`MAX_VALUE_DEPTH`]) count as different.
fn strictly_equal(a: &Value, b: &Value) -> bool {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => x == y,
        _ if nests_deeper_than(a, MAX_VALUE_DEPTH) || nests_deeper_than(b, MAX_VALUE_DEPTH) => false,
        _ => (a.is_null() && text(b).is_empty()) || (b.is_null() && text(a).is_empty()) || a == b,
    }
}

fn contains(haystack: &Value, needle: &Value) -> bool {
    match haystack {
        Value::Array(items) => items.iter().any(|item| loosely_equal(item, needle)),
        _ => lower_text(haystack).contains(&lower_text(needle)),
    }
}

fn compare(a: &Value, b: &Value, tz: Tz) -> Option<Ordering> {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => compare_moments(a, b, tz),
    }
}

fn compare_moments(a: &Value, b: &Value, tz: Tz) -> Option<Ordering> {
    let (a, b) = (parse_moment(a, tz)?, parse_moment(b, tz)?);
    Some(match (a, b) {
        (Moment::Instant(x), Moment::Instant(y)) => x.cmp(&y),
        (a, b) => a.local_date(tz)?.cmp(&b.local_date(tz)?),
    })
}

/// A date as a CRM writes one: a calendar day, or an instant.
#[derive(Debug, Clone, Copy)]
enum Moment {
    Day(NaiveDate),
    Instant(DateTime<Utc>),
}

impl Moment {
    /// The calendar day in the tenant's time zone (`None` past the range chrono represents).
    fn local_date(self, tz: Tz) -> Option<NaiveDate> {
        match self {
            Moment::Day(date) => Some(date),
            Moment::Instant(instant) => local_time(instant.naive_utc(), tz).map(|local| local.date()),
        }
    }
}

fn parse_moment(value: &Value, tz: Tz) -> Option<Moment> {
    let s = value.as_str()?.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(s) {
        return Some(Moment::Instant(instant.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(local) = NaiveDateTime::parse_from_str(s, format) {
            // A local time in a DST gap or overlap takes the earliest valid reading. A local time near the end of
            // chrono's range has no hour after it (and no UTC reading west of UTC): it is no date.
            let instant = tz.from_local_datetime(&local).earliest().or_else(|| {
                let later = local.checked_add_signed(chrono::TimeDelta::hours(1))?;
                tz.from_local_datetime(&later).earliest()
            })?;
            return Some(Moment::Instant(instant.with_timezone(&Utc)));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(Moment::Day)
}

#[cfg(test)]
mod tests;
