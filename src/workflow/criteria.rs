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
mod tests {
    use super::*;
    use serde_json::json;

    fn event(change: Change, fields: Value, previous: Value) -> RecordEvent {
        RecordEvent {
            tenant: "t".into(),
            module: "Leads".into(),
            record_id: "1".into(),
            change,
            owner: "u".into(),
            actor: "u".into(),
            fields: fields.as_object().cloned().unwrap_or_default(),
            previous: previous.as_object().cloned().unwrap_or_default(),
            occurred_at: None,
            event_id: None,
            workflow: None,
        }
    }

    fn now() -> DateTime<Tz> {
        // 2026-11-29 10:00 in Berlin.
        chrono_tz::Europe::Berlin.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
    }

    fn holds(field: &str, op: Operator, value: Value, fields: Value) -> bool {
        Condition::new(field, op, value).matches(&event(Change::Updated, fields, json!({})), now())
    }

    #[test]
    fn text_operators_ignore_case() {
        use Operator::*;
        let f = json!({"stage": "Closed Won", "tags": ["A", "b"]});
        assert!(holds("stage", Is, json!("closed won"), f.clone()));
        assert!(!holds("stage", IsNot, json!("CLOSED WON"), f.clone()));
        assert!(holds("stage", Contains, json!("sed w"), f.clone()));
        assert!(holds("stage", DoesNotContain, json!("lost"), f.clone()));
        assert!(holds("stage", StartsWith, json!("closed"), f.clone()));
        assert!(holds("stage", EndsWith, json!("WON"), f.clone()));
        assert!(!holds("stage", EndsWith, json!("Closed"), f.clone()));
        assert!(holds("tags", Contains, json!("B"), f.clone()));
        assert!(!holds("tags", Contains, json!("c"), f));
    }

    #[test]
    fn numbers_compare_as_numbers() {
        use Operator::*;
        let f = json!({"amount": "1200.50", "n": 9, "flag": "1"});
        assert!(holds("amount", Is, json!(1200.5), f.clone()));
        assert!(holds("n", LessThan, json!(10), f.clone()), "9 < 10 as numbers, not as text");
        assert!(holds("n", GreaterThan, json!("10.0e-1"), f.clone()));
        assert!(holds("n", LessOrEqual, json!(9), f.clone()));
        assert!(holds("n", GreaterOrEqual, json!(9), f.clone()));
        assert!(!holds("n", GreaterThan, json!(9), f.clone()));
        assert!(holds("n", Between, json!([9, 9.5]), f.clone()));
        assert!(holds("flag", Is, json!(true), f.clone()));
        assert!(!holds("missing", LessThan, json!(1), f));
    }

    #[test]
    fn lists_equal_a_value_one_of_their_items_equals() {
        use Operator::*;
        let f = json!({"tags": ["A", 2, [3]], "flags": [true]});
        assert!(holds("tags", Is, json!("a"), f.clone()));
        assert!(holds("tags", Is, json!("2.0"), f.clone()));
        assert!(!holds("tags", Is, json!(3), f.clone()), "an inner list is not searched");
        assert!(holds("tags", Is, json!("[3]"), f.clone()), "an inner list compares as its text");
        assert!(!holds("flags", Is, json!(true), f.clone()), "a list is no boolean");
        assert!(holds("tags", Contains, json!("A"), f));
    }

    /// A list in a list... 100,000 deep: deeper than any stack, if each level were a call.
    fn deep() -> Value {
        let mut value = json!("x");
        for _ in 0..100_000 {
            value = Value::Array(vec![value]);
        }
        value
    }

    /// Takes a value apart without recursion (dropping it is a recursion of serde_json's).
    fn dismantle(value: Value) {
        let mut pending = vec![value];
        while let Some(value) = pending.pop() {
            if let Value::Array(items) = value {
                pending.extend(items);
            }
        }
    }

    #[test]
    fn a_deeply_nested_value_is_not_recursed_into() {
        let answers = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| {
                let mut e = event(Change::Updated, json!({}), json!({}));
                e.fields.insert("deep".to_owned(), deep());
                e.previous.insert("deep".to_owned(), deep());
                let answers: Vec<bool> = [
                    Condition::new("deep", Operator::Is, "y"),
                    Condition::new("deep", Operator::Contains, "x"),
                    Condition::new("deep", Operator::StartsWith, "["),
                    Condition::new("deep", Operator::HasChanged, Value::Null),
                    Condition::new("deep", Operator::IsNotEmpty, Value::Null),
                ]
                .iter()
                .map(|c| c.matches(&e, now()))
                .collect();
                e.fields.remove("deep").into_iter().chain(e.previous.remove("deep")).for_each(dismantle);
                answers
            })
            .unwrap()
            .join()
            .unwrap();
        // Too deep to write as text, the value reads as empty text, and as changed.
        assert_eq!(answers, [false, false, false, true, true]);
    }

    #[test]
    fn emptiness() {
        use Operator::*;
        let f = json!({"blank": "  ", "zero": 0, "none": null, "list": []});
        for field in ["blank", "none", "list", "missing"] {
            assert!(holds(field, IsEmpty, Value::Null, f.clone()), "{field}");
        }
        assert!(holds("zero", IsNotEmpty, Value::Null, f.clone()));
        assert!(holds("missing", Is, json!(""), f));
    }

    #[test]
    fn dates_compare_as_dates() {
        use Operator::*;
        let f = json!({"close": "2026-11-29", "at": "2026-11-20T08:00:00Z", "local": "2026-11-29 00:30:00"});
        assert!(holds("close", IsToday, Value::Null, f.clone()));
        assert!(holds("local", IsToday, Value::Null, f.clone()));
        assert!(holds("at", Before, json!("2026-11-21"), f.clone()));
        assert!(holds("at", After, json!("2026-11-19T23:59:59+01:00"), f.clone()));
        assert!(holds("close", Between, json!(["2026-11-01", "2026-11-29"]), f.clone()));
        assert!(holds("at", LessThanDaysAgo, json!(9), f.clone()));
        assert!(!holds("at", LessThanDaysAgo, json!(8), f.clone()));
        assert!(holds("at", MoreThanDaysAgo, json!(8), f.clone()));
        assert!(!holds("at", MoreThanDaysAgo, json!(9), f.clone()));
        let future = json!({"d": "2026-12-04"});
        assert!(holds("d", InLessThanDays, json!(5), future.clone()));
        assert!(!holds("d", InLessThanDays, json!(4), future.clone()));
        assert!(holds("d", InMoreThanDays, json!(4), future.clone()));
        assert!(!holds("d", LessThanDaysAgo, json!(30), future));
    }

    #[test]
    fn is_today_uses_the_tenant_time_zone() {
        // 23:30 UTC on the 28th is already the 29th in Berlin.
        let c = Condition::new("d", Operator::IsToday, Value::Null);
        let e = event(Change::Updated, json!({"d": "2026-11-28T23:30:00Z"}), json!({}));
        assert!(c.matches(&e, now()));
        assert!(!c.matches(&e, now().with_timezone(&Tz::UTC)));
    }

    #[test]
    fn change_operators_read_previous() {
        use Operator::*;
        let upd =
            event(Change::Updated, json!({"stage": "Won", "amount": 5}), json!({"stage": "Open", "amount": "5.0"}));
        let c = |op, v: Value, field: &str| Condition::new(field, op, v).matches(&upd, now());
        assert!(c(HasChanged, Value::Null, "stage"));
        assert!(!c(HasChanged, Value::Null, "amount"), "5 and \"5.0\" are the same number");
        assert!(!c(HasChanged, Value::Null, "untouched"));
        assert!(c(HasChangedTo, json!("won"), "stage"));
        assert!(!c(HasChangedTo, json!("Open"), "stage"));
        assert!(c(HasChangedFrom, json!("Open"), "stage"));
        let created = event(Change::Created, json!({"stage": "Won"}), json!({}));
        assert!(Condition::new("stage", HasChanged, Value::Null).matches(&created, now()));
        assert!(!Condition::new("stage", HasChangedFrom, json!("")).matches(&created, now()));
        assert!(!Condition::new("other", HasChanged, Value::Null).matches(&created, now()));
    }

    #[test]
    fn any_needs_one_when_not_empty() {
        let criteria: Criteria = serde_json::from_value(json!({
            "all": [{"field": "a", "op": "is", "value": 1}],
            "any": [{"field": "b", "op": "is", "value": 1}, {"field": "c", "op": "is", "value": 1}]
        }))
        .unwrap();
        let e = |b, c| event(Change::Updated, json!({"a": 1, "b": b, "c": c}), json!({}));
        assert!(criteria.matches(&e(1, 0), now()));
        assert!(criteria.matches(&e(0, 1), now()));
        assert!(!criteria.matches(&e(0, 0), now()));
        assert!(Criteria::default().matches(&e(0, 0), now()));
    }

    #[test]
    fn operands_are_checked() {
        use Operator::*;
        let bad = [
            Condition::new("a", IsEmpty, "x"),
            Condition::new("a", Between, json!([1])),
            Condition::new("a", Before, "tomorrow"),
            Condition::new("a", LessThanDaysAgo, -1),
            Condition::new("a", LessThan, "abc"),
            Condition::new("", Is, 1),
            Condition::new("a", Contains, json!({"x": 1})),
        ];
        for c in bad {
            assert!(c.check().is_err(), "{c:?} passed");
        }
        assert!(Condition::new("a", Between, json!(["2026-01-01", "2026-02-01"])).check().is_ok());
    }
}
