//! Unit tests of `criteria`.

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
    let upd = event(Change::Updated, json!({"stage": "Won", "amount": 5}), json!({"stage": "Open", "amount": "5.0"}));
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
