//! Hostile configuration and records through the public API: every bad input is a typed error, never a panic
//! or an abort, on a 2 MiB thread (the smallest stack a host is likely to run the engine on).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use crm_webhooks::error::ValidationError;
use crm_webhooks::limits::MAX_PARAMETERS_PER_ACTION;
use crm_webhooks::limits::{DEFAULT_MAX_BODY_BYTES, MAX_TEMPLATE_PLACEHOLDERS};
use crm_webhooks::payload::{ContentType, Parameter, RenderError};
use crm_webhooks::workflow::{Condition, Criteria, Operator, Schedule, TimeOfDay};
use crm_webhooks::{Change, ConfigError, Fields, RecordEvent, WebhookAction, WorkflowSet};
use proptest::prelude::*;
use serde_json::{json, Value};

const TREES: [ContentType; 3] = [ContentType::Json, ContentType::JsonArray, ContentType::Xml];
const ALL: [ContentType; 4] = [ContentType::Json, ContentType::JsonArray, ContentType::Xml, ContentType::Form];
const ZONES: [Tz; 4] = [Tz::UTC, Tz::America__Los_Angeles, Tz::Pacific__Kiritimati, Tz::Pacific__Pago_Pago];

/// Runs `f` on a thread with a 2 MiB stack; a panic there fails the test (a stack overflow aborts the binary).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let thread = std::thread::Builder::new().stack_size(2 * 1024 * 1024).spawn(f).expect("spawn a thread");
    match thread.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn action_json(content_type: ContentType, url: &str, parameters: Value) -> Value {
    json!({"title": "T", "url": url, "content_type": content_type.as_str(), "parameters": parameters})
}

fn set_of(action: Value) -> String {
    json!({"workflows": [{"id": "w1", "module": "Leads", "trigger": "every_save", "actions": [action]}]}).to_string()
}

fn messages(error: &ConfigError) -> Vec<String> {
    error.problems().iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Parameter names of many dotted segments.

fn dotted(segments: usize) -> String {
    vec!["a"; segments].join(".")
}

#[test]
fn a_name_of_a_thousand_segments_is_refused_on_a_small_stack() {
    on_small_stack(|| {
        let name = dotted(1000);
        for content_type in ALL {
            let parameters = json!([{"name": name, "value": 1}]);
            let document = set_of(action_json(content_type, "https://x.example", parameters.clone()));
            let error = WorkflowSet::from_json(&document).unwrap_err();
            assert!(
                matches!(error.problems(), [ValidationError::ParameterNameTooLong { bytes: 1999, .. }]),
                "{content_type}: {error:?}"
            );
            let message = error.to_string();
            assert!(message.starts_with("workflow \"w1\", action \"T\": parameter name \"a.a.a"), "{message}");
            assert!(message.contains("… (1999 bytes)\" is 1999 bytes long, but at most 256"), "{message}");
            assert!(message.len() < 400, "the name is truncated: {message}");

            let direct =
                serde_json::from_value::<WebhookAction>(action_json(content_type, "https://x.example", parameters));
            let message = direct.unwrap_err().to_string();
            assert!(message.contains("is 1999 bytes long"), "{content_type}: {message}");

            let built = WebhookAction::builder("T", "https://x.example", content_type)
                .parameter(Parameter::value(name.clone(), 1))
                .build()
                .unwrap_err();
            assert!(matches!(built.problems(), [ValidationError::ParameterNameTooLong { .. }]), "{built:?}");
        }
    });
}

#[test]
fn names_nest_at_most_thirty_two_deep() {
    on_small_stack(|| {
        // 128 segments in 255 bytes: short enough, too deep.
        let deep = dotted(128);
        for content_type in TREES {
            let error = WebhookAction::builder("T", "https://x.example", content_type)
                .parameter(Parameter::value(deep.clone(), 1))
                .build()
                .unwrap_err();
            assert!(
                matches!(
                    error.problems(),
                    [ValidationError::ParameterNameTooDeep { segments: 128, content_type: ct, .. }] if *ct == content_type
                ),
                "{error:?}"
            );
            assert!(
                error
                    .to_string()
                    .contains(&format!("has 128 dotted parts, but {content_type} bodies nest at most 32 deep")),
                "{error}"
            );
        }
        // FORM sends names verbatim: the dots do not nest.
        assert!(WebhookAction::builder("T", "https://x.example", ContentType::Form)
            .parameter(Parameter::value(deep, 1))
            .build()
            .is_ok());
    });
}

#[test]
fn the_deepest_names_render_on_a_small_stack() {
    on_small_stack(|| {
        // 32 segments of 7 bytes and 31 dots: 255 bytes, both limits nearly reached, a hundred times over.
        let names: Vec<String> =
            (0..100).map(|i| (0..32).map(|s| format!("k{i:03}s{s:02}")).collect::<Vec<_>>().join(".")).collect();
        assert!(names.iter().all(|n| n.len() == 255));
        for content_type in ALL {
            let action = names
                .iter()
                .fold(WebhookAction::builder("T", "https://x.example", content_type), |b, n| {
                    b.parameter(Parameter::value(n.as_str(), "v"))
                })
                .build()
                .unwrap();
            let body = action.render(&Fields::new());
            let text = body.body_text();
            match content_type {
                ContentType::Json | ContentType::JsonArray => {
                    let parsed: Value = serde_json::from_str(text).unwrap();
                    let mut node = if content_type == ContentType::Json { &parsed } else { &parsed[0] };
                    for s in 0..32 {
                        node = &node[format!("k042s{s:02}")];
                    }
                    assert_eq!(node, "v");
                }
                ContentType::Xml => {
                    let close = (0..32).rev().map(|s| format!("</k099s{s:02}>")).collect::<String>();
                    assert!(text.ends_with(&format!("v{close}</record>")), "{}", &text[text.len() - 400..]);
                }
                ContentType::Form => assert_eq!(text.matches("=v").count(), 100),
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Extreme dates in records.

fn event(fields: Value) -> RecordEvent {
    let mut event = RecordEvent::new("t", "Leads", "1", Change::Updated, "u");
    event.fields = fields.as_object().cloned().unwrap_or_default();
    event
}

fn extreme_dates() -> Vec<String> {
    let max = NaiveDate::MAX;
    let min = NaiveDate::MIN;
    vec![
        max.to_string(),
        min.to_string(),
        format!("{max} 23:59:59"),
        format!("{max}T23:30"),
        format!("{min} 00:00:00"),
        format!("{min}T00:30"),
        "+262000-01-01 12:00:00".to_owned(),
        "-262000-01-01 12:00:00".to_owned(),
        "9999-12-31T23:59:59Z".to_owned(),
        "9999-12-31T23:59:59-23:59".to_owned(),
        "0000-01-01T00:00:00+23:59".to_owned(),
    ]
}

const ALL_OPERATORS: [Operator; 23] = [
    Operator::Is,
    Operator::IsNot,
    Operator::Contains,
    Operator::DoesNotContain,
    Operator::StartsWith,
    Operator::EndsWith,
    Operator::IsEmpty,
    Operator::IsNotEmpty,
    Operator::LessThan,
    Operator::GreaterThan,
    Operator::LessOrEqual,
    Operator::GreaterOrEqual,
    Operator::HasChanged,
    Operator::HasChangedTo,
    Operator::HasChangedFrom,
    Operator::Before,
    Operator::After,
    Operator::Between,
    Operator::IsToday,
    Operator::LessThanDaysAgo,
    Operator::MoreThanDaysAgo,
    Operator::InLessThanDays,
    Operator::InMoreThanDays,
];

#[test]
fn extreme_record_dates_never_panic_criteria() {
    on_small_stack(|| {
        let dates = extreme_dates();
        for tz in ZONES {
            let now = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap().with_timezone(&tz);
            for date in &dates {
                let record = event(json!({"d": date}));
                for op in ALL_OPERATORS {
                    for operand in [json!("2026-11-29"), json!(date), json!([date, date]), json!(3), Value::Null] {
                        // Whatever the answer, there is one.
                        let _ = Condition::new("d", op, operand).matches(&record, now);
                    }
                }
            }
            // The last day is a day like any other, in every time zone.
            let last_day = event(json!({"d": NaiveDate::MAX.to_string()}));
            assert!(Condition::new("d", Operator::After, "2026-11-29").matches(&last_day, now), "{tz}");
            assert!(Condition::new("d", Operator::InMoreThanDays, 1_000_000).matches(&last_day, now), "{tz}");
            assert!(!Condition::new("d", Operator::IsToday, Value::Null).matches(&last_day, now), "{tz}");
            let first_day = event(json!({"d": NaiveDate::MIN.to_string()}));
            assert!(Condition::new("d", Operator::MoreThanDaysAgo, 1_000_000).matches(&first_day, now), "{tz}");
            // A local time the time zone cannot place (its UTC reading is past the last instant chrono represents)
            // is no date: west of UTC for the last evening, east of it for the first morning.
            let last_evening = event(json!({"d": format!("{} 23:59:59", NaiveDate::MAX)}));
            let placed = Condition::new("d", Operator::After, "2026-01-01 00:00").matches(&last_evening, now);
            assert_eq!(placed, tz != Tz::America__Los_Angeles && tz != Tz::Pacific__Pago_Pago, "{tz}");
        }
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Any value, any date, any operator, any time zone: criteria always answer.

/// A year as chrono writes one (`0042`, `-0001`, `+10000`), from the whole range chrono parses and beyond it.
fn year_text(year: i32) -> String {
    match year {
        0..=9999 => format!("{year:04}"),
        10000.. => format!("+{year}"),
        _ => format!("-{:04}", year.unsigned_abs()),
    }
}

fn date_text() -> impl Strategy<Value = String> {
    let year = prop_oneof![
        4 => 1900i32..2100,
        2 => -262_144i32..=262_143,
        1 => prop::sample::select(vec![-262_144, -262_143, -1, 0, 9999, 10000, 262_142, 262_143, 300_000, i32::MAX]),
    ];
    let clock = (0u32..24, 0u32..60, 0u32..61);
    let offset = prop::sample::select(vec!["Z", "+00:00", "+14:00", "-12:00", "+23:59", "-23:59", "+05:30"]);
    (year, 1u32..=12, 1u32..=31, clock, offset, 0usize..6).prop_map(|(year, month, day, (h, m, s), offset, form)| {
        let date = format!("{}-{month:02}-{day:02}", year_text(year));
        match form {
            0 => date,
            1 => format!("{date} {h:02}:{m:02}:{s:02}"),
            2 => format!("{date}T{h:02}:{m:02}"),
            3 => format!("{date} {h:02}:{m:02}"),
            4 => format!("{date}T{h:02}:{m:02}:{s:02}{offset}"),
            _ => format!("  {date}T{h:02}:{m:02}:{s:02}  "),
        }
    })
}

/// Dates chrono itself writes, anywhere in its range, and its first and last day and instant.
fn chrono_date_text() -> impl Strategy<Value = String> {
    let (first, last) = (NaiveDate::MIN.num_days_from_ce(), NaiveDate::MAX.num_days_from_ce());
    let day = move |days: i32| NaiveDate::from_num_days_from_ce_opt(days).unwrap_or_default();
    let at = |day: NaiveDate, seconds: u32| day.and_hms_opt(seconds / 3600, seconds / 60 % 60, seconds % 60);
    prop_oneof![
        1 => (first..=last).prop_map(move |days| day(days).to_string()),
        1 => (first..=last, 0u32..86_400).prop_map(move |(days, seconds)| {
            at(day(days), seconds).map(|t| t.to_string()).unwrap_or_default()
        }),
        // Any time of the first and the last day (their first and last hours most often), in the forms a record
        // may write it: the local times a time zone may not be able to place.
        3 => (
            prop::sample::select(vec![NaiveDate::MIN, NaiveDate::MAX]),
            prop_oneof![0u32..86_400, 0u32..3600, 82_800u32..86_400],
            prop::bool::ANY,
        )
            .prop_map(move |(day, seconds, t)| {
                let format = if t { "%Y-%m-%dT%H:%M" } else { "%Y-%m-%d %H:%M:%S" };
                at(day, seconds).map(|time| time.format(format).to_string()).unwrap_or_default()
            }),
        1 => prop::sample::select(vec![
            NaiveDate::MAX.to_string(),
            NaiveDate::MIN.to_string(),
            DateTime::<Utc>::MAX_UTC.naive_utc().to_string(),
            DateTime::<Utc>::MIN_UTC.naive_utc().to_string(),
            DateTime::<Utc>::MAX_UTC.to_rfc3339(),
            DateTime::<Utc>::MIN_UTC.to_rfc3339(),
        ]),
    ]
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => date_text().prop_map(Value::from),
        3 => chrono_date_text().prop_map(Value::from),
        2 => any::<String>().prop_map(Value::from),
        1 => prop::sample::select(vec!["", " ", "1e400", "-0", "NaN", "inf", "yes", "OFF", "1200.50", "1"])
            .prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => prop::sample::select(vec![0.0, -0.0, 1.0e9, 999_999_999.0, 1.0e300, f64::MAX, f64::MIN_POSITIVE])
            .prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_scalar().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-c]{1,2}", inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly a scalar (what a field holds), sometimes lists and objects of anything.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![3 => json_scalar(), 1 => json_value()]
}

fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(vec![
        Tz::UTC,
        Tz::America__Los_Angeles,
        Tz::Pacific__Kiritimati,
        Tz::Pacific__Pago_Pago,
        Tz::Asia__Kolkata,
        Tz::Europe__Berlin,
    ])
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (first, last) = (DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
    prop_oneof![
        4 => (0i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default()),
        1 => (first..=last).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default()),
        1 => prop::sample::select(vec![DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn criteria_always_answer(
        op in prop::sample::select(ALL_OPERATORS.to_vec()),
        current in field_value(),
        before in prop::option::of(field_value()),
        operand in field_value(),
        change in prop::sample::select(vec![Change::Created, Change::Updated, Change::Scheduled, Change::Manual]),
        tz in zone(),
        now in instant(),
    ) {
        let mut record = RecordEvent::new("t", "Leads", "1", change, "u");
        record.fields.insert("f".to_owned(), current);
        if let Some(before) = before {
            record.previous.insert("f".to_owned(), before);
        }
        let now = now.with_timezone(&tz);
        let condition = Condition::new("f", op, operand);
        // An answer, whatever it is; and the same one twice (evaluation reads no clock and keeps no state).
        let answer = condition.matches(&record, now);
        prop_assert_eq!(condition.matches(&record, now), answer);
        let criteria = Criteria { all: vec![condition.clone()], any: vec![condition] };
        prop_assert_eq!(criteria.matches(&record, now), answer);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Extreme schedule dates.

fn schedule_doc(date: &str) -> String {
    json!({"workflows": [{"id": "s", "module": "Leads",
        "trigger": {"schedule": {"every": "specific_date", "date": date, "at": "23:59"}}}]})
    .to_string()
}

#[test]
fn schedule_dates_are_bounded_at_validation() {
    for date in
        [NaiveDate::MAX.to_string(), NaiveDate::MIN.to_string(), "1969-12-31".to_owned(), "+10000-01-01".to_owned()]
    {
        let error = WorkflowSet::from_json(&schedule_doc(&date)).unwrap_err();
        let found = messages(&error);
        assert_eq!(found.len(), 1, "{date}: {found:?}");
        assert!(
            found[0].contains("schedule is invalid") && found[0].contains("1970") && found[0].contains("9999"),
            "{}",
            found[0]
        );
    }
    for date in ["1970-01-01", "9999-12-31", "2026-12-24"] {
        assert!(WorkflowSet::from_json(&schedule_doc(date)).is_ok(), "{date} was refused");
    }
}

#[test]
fn schedules_never_panic_for_any_instant() {
    on_small_stack(|| {
        let schedules: Vec<Schedule> = [
            json!({"every": "specific_date", "date": NaiveDate::MAX.to_string(), "at": "23:59"}),
            json!({"every": "specific_date", "date": NaiveDate::MIN.to_string(), "at": "00:00"}),
            json!({"every": "hourly", "minute": 59}),
            json!({"every": "daily", "at": "23:59"}),
            json!({"every": "weekly", "days": ["mon"], "at": "00:00"}),
            json!({"every": "monthly", "days": [31], "at": "12:00"}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        let instants = [
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MIN_UTC,
            NaiveDate::MAX.and_hms_opt(0, 0, 0).unwrap().and_utc(),
            Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap(),
        ];
        for schedule in &schedules {
            for tz in ZONES {
                for after in instants {
                    if let Some(next) = schedule.next_after(after, tz) {
                        assert!(next > after, "{schedule:?} after {after} in {tz}: {next}");
                    }
                }
            }
        }
        let last: Schedule = serde_json::from_value(
            json!({"every": "specific_date", "date": NaiveDate::MAX.to_string(), "at": "23:59"}),
        )
        .unwrap();
        let new_year = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        // West of UTC the last evening has no UTC reading; east of it, it has one.
        assert_eq!(last.next_after(new_year, Tz::America__Los_Angeles), None);
        let east = last.next_after(new_year, Tz::Pacific__Kiritimati).unwrap();
        assert_eq!(east.naive_utc(), NaiveDate::MAX.and_hms_opt(9, 59, 0).unwrap());
        // Nothing runs after the last instant there is.
        for schedule in &schedules {
            assert_eq!(schedule.next_after(DateTime::<Utc>::MAX_UTC, Tz::UTC), None, "{schedule:?}");
        }
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Limits on what an action may hold.

fn action_problems(content_type: ContentType, parameters: Value) -> Vec<String> {
    match WorkflowSet::from_json(&set_of(action_json(content_type, "https://x.example", parameters))) {
        Ok(_) => Vec::new(),
        Err(error) => messages(&error),
    }
}

#[test]
fn an_action_holds_at_most_a_hundred_parameters() {
    let parameters =
        |n: usize| Value::from((0..n).map(|i| json!({"name": format!("p{i}"), "value": i})).collect::<Vec<_>>());
    assert!(action_problems(ContentType::Json, parameters(100)).is_empty());
    let found = action_problems(ContentType::Json, parameters(101));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("\"parameters\" lists 101 parameters, but an action has at most 100"), "{}", found[0]);
    // A hundred thousand bad parameters are one problem, not a hundred thousand.
    let bad = Value::from(vec![json!({"name": "", "value": 1}); 100_000]);
    let error = WorkflowSet::from_json(&set_of(action_json(ContentType::Xml, "https://x.example", bad))).unwrap_err();
    assert!(
        matches!(error.problems(), [ValidationError::TooManyParameters { list: "parameters", count: 100_000, .. }]),
        "{error}"
    );
    let required: Vec<String> = (0..101).map(|i| format!("p{i}")).collect();
    let error = required
        .iter()
        .fold(WebhookAction::builder("T", "https://x.example", ContentType::Json), |b, name| b.require(name))
        .parameter(Parameter::value("p0", 1))
        .build()
        .unwrap_err();
    assert!(
        matches!(error.problems(), [ValidationError::TooManyParameters { list: "required", count: 101, .. }]),
        "{error}"
    );
}

#[test]
fn templates_are_bounded_in_length_and_placeholders() {
    let long = "x".repeat(16 * 1024 + 1);
    let error = WebhookAction::builder("T", "https://x.example", ContentType::Form)
        .parameter(Parameter::template("t", &long).unwrap())
        .build()
        .unwrap_err();
    assert!(matches!(error.problems(), [ValidationError::TemplateTooLong { bytes: 16385, .. }]), "{error}");
    let found = action_problems(ContentType::Json, json!([{"name": "t", "template": long}]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("16385 bytes") && found[0].contains("16384"), "{}", found[0]);
    assert!(found[0].len() < 400, "{}", found[0]);
    assert!(action_problems(ContentType::Json, json!([{"name": "t", "template": "x".repeat(16 * 1024)}])).is_empty());

    // `$$` is a literal dollar, not a placeholder.
    let placeholders = |n: usize| (0..n).map(|i| format!("${{f{i}}}$$")).collect::<String>();
    assert!(action_problems(ContentType::Json, json!([{"name": "t", "template": placeholders(64)}])).is_empty());
    let found = action_problems(ContentType::Json, json!([{"name": "t", "template": placeholders(65)}]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("65 placeholders") && found[0].contains("at most 64"), "{}", found[0]);
    let error = WebhookAction::builder("T", "https://x.example", ContentType::Xml)
        .parameter(Parameter::template("t", &"$f ".repeat(65)).unwrap())
        .build()
        .unwrap_err();
    assert!(matches!(error.problems(), [ValidationError::TooManyPlaceholders { count: 65, .. }]), "{error}");
}

// ---------------------------------------------------------------------------------------------------------------
// The size of a body.

/// Counts the bytes each thread holds and the most it has held, so that a test can tell how much memory a call
/// needed. Frees of another thread's memory only lower the count, so the peak is never overstated.
struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    // `try_with`: the allocator also runs while a thread's locals are being torn down.
    let _ = HELD.try_with(|held| {
        let now = held.get().saturating_add(delta);
        held.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn size(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

// SAFETY: every call is passed on to the system allocator unchanged; the counting only reads sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            note(size(layout.size()));
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(pointer, layout) };
        note(-size(layout.size()));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is passed on.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            note(size(new_size).saturating_sub(size(layout.size())));
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most memory `f` held at once on this thread, beyond what the thread held before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = HELD.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let value = f();
    let peak = PEAK.with(Cell::get).saturating_sub(start);
    (value, usize::try_from(peak).unwrap_or(0))
}

/// A hundred parameters, each a template of 64 placeholders of a 32 KiB field: a 200 MiB body, within every
/// limit on the configuration.
fn huge(content_type: ContentType) -> (WebhookAction, Fields) {
    let template = "${notes}".repeat(MAX_TEMPLATE_PLACEHOLDERS);
    let action = (0..MAX_PARAMETERS_PER_ACTION)
        .fold(WebhookAction::builder("Big notes", "https://x.example", content_type), |b, i| {
            b.parameter(Parameter::template(format!("p{i}"), &template).unwrap())
        })
        .build()
        .unwrap();
    let mut fields = Fields::new();
    fields.insert("notes".to_owned(), json!("n".repeat(32 * 1024)));
    (action, fields)
}

#[test]
fn a_two_hundred_megabyte_body_is_never_built() {
    for content_type in ALL {
        let (action, fields) = huge(content_type);
        let (rendered, peak) = peak_of(|| action.try_render(&fields, DEFAULT_MAX_BODY_BYTES));
        let error = rendered.unwrap_err();
        assert_eq!(error, RenderError::BodyTooLarge { limit: DEFAULT_MAX_BODY_BYTES, action: "Big notes".to_owned() });
        assert_eq!(
            error.to_string(),
            "the body of \"Big notes\" would exceed 1048576 bytes; shorten the template or raise \
             EngineBuilder::max_body_bytes"
        );
        // The body and one template's text, each at most the limit.
        assert!(peak <= 3 * DEFAULT_MAX_BODY_BYTES, "{content_type}: {peak} bytes held");
    }
    // The counting sees a body that is built: the same action with a 1 KiB field makes a 6.4 MiB body.
    let (action, mut fields) = huge(ContentType::Json);
    fields.insert("notes".to_owned(), json!("n".repeat(1024)));
    let (payload, peak) = peak_of(|| action.render(&fields));
    assert!(payload.body().len() > 100 * 64 * 1024);
    assert!(peak > payload.body().len(), "{peak} bytes held for a body of {}", payload.body().len());
}

#[test]
fn a_body_at_its_limit_is_rendered_and_one_byte_more_is_not() {
    let parameters = [
        Parameter::value("lines.0.sku", "A&B <c>"),
        Parameter::field("lines.0.qty", "qty"),
        Parameter::field("customer.name", "name"),
        Parameter::field("customer.tags", "tags"),
        Parameter::template("summary", "Deal ${name} for $qty").unwrap(),
    ];
    let mut fields = Fields::new();
    fields.insert("qty".to_owned(), json!(2.0));
    fields.insert("name".to_owned(), json!("Globex \"é\" \r\n"));
    fields.insert("tags".to_owned(), json!(["a", {"b": null}]));
    for content_type in ALL {
        let action = parameters
            .iter()
            .fold(WebhookAction::builder("T", "https://x.example", content_type), |b, p| b.parameter(p.clone()))
            .build()
            .unwrap();
        let full = action.render(&fields);
        let length = full.body().len();
        assert_eq!(action.try_render(&fields, length).unwrap(), full, "{content_type}");
        assert_eq!(action.try_render(&fields, usize::MAX).unwrap(), full, "{content_type}");
        for limit in [0, 1, length / 2, length - 1] {
            assert!(
                matches!(action.try_render(&fields, limit), Err(RenderError::BodyTooLarge { .. })),
                "{content_type} {limit}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Credentials in URLs.

#[test]
fn credentials_in_urls_are_refused_without_echoing_them() {
    for url in ["https://user:hunter2@x.example/hook", "https://user@x.example/", "http://:hunter2@x.example"] {
        let error = WorkflowSet::from_json(&set_of(action_json(ContentType::Json, url, json!([])))).unwrap_err();
        let found = messages(&error);
        assert!(matches!(error.problems(), [ValidationError::UrlWithCredentials { .. }]), "{url}: {found:?}");
        assert!(!found[0].contains("hunter2"), "the password is echoed: {}", found[0]);
        assert!(found[0].contains(r#""auth": {"type": "basic""#), "{}", found[0]);
        let built = WebhookAction::builder("T", url, ContentType::Json).build();
        assert!(built.is_err(), "{url} was accepted by the builder");
    }
    // An `@` in the path or the query is not userinfo.
    assert!(WebhookAction::builder("T", "https://x.example/a@b?c=d@e", ContentType::Json).build().is_ok());
}

fn any_day() -> impl Strategy<Value = NaiveDate> {
    let (first, last) = (NaiveDate::MIN.num_days_from_ce(), NaiveDate::MAX.num_days_from_ce());
    prop_oneof![
        2 => (first..=last).prop_map(|days| NaiveDate::from_num_days_from_ce_opt(days).unwrap_or_default()),
        1 => prop::sample::select(vec![NaiveDate::MIN, NaiveDate::MAX]),
    ]
}

fn any_schedule() -> impl Strategy<Value = Schedule> {
    let at =
        (0u32..86_400).prop_map(|s| TimeOfDay(NaiveTime::from_num_seconds_from_midnight_opt(s, 0).unwrap_or_default()));
    let weekday = prop::sample::select(vec![Weekday::Mon, Weekday::Wed, Weekday::Sun]);
    prop_oneof![
        any::<u32>().prop_map(|minute| Schedule::Hourly { minute }),
        at.clone().prop_map(|at| Schedule::Daily { at }),
        (prop::collection::vec(weekday, 0..3), at.clone()).prop_map(|(days, at)| Schedule::Weekly { days, at }),
        (prop::collection::vec(0u32..40, 0..3), at.clone()).prop_map(|(days, at)| Schedule::Monthly { days, at }),
        (any_day(), at).prop_map(|(date, at)| Schedule::SpecificDate { date, at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Validated or not, a schedule's next run is after `after`, or there is none; never a panic.
    #[test]
    fn schedules_always_answer(schedule in any_schedule(), tz in zone(), after in instant()) {
        if let Some(next) = schedule.next_after(after, tz) {
            prop_assert!(next > after, "{:?} after {} in {}: {}", schedule, after, tz, next);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// User text in messages: truncated, control characters escaped.

fn assert_safe(message: &str) {
    // The location, up to three texts of the configuration (100 characters each, escaped) and the sentence.
    assert!(message.len() < 1024, "{} bytes: {}...", message.len(), message.get(..300).unwrap_or(message));
    assert!(!message.contains(['\r', '\n', '\u{1b}']), "raw control characters: {message:?}");
}

#[test]
fn a_fifty_megabyte_url_gives_a_short_message() {
    let url = format!("https://x.example/{}", "a".repeat(50 * 1024 * 1024));
    let error = WebhookAction::builder("T", url, ContentType::Json).build().unwrap_err();
    let message = error.to_string();
    assert!(message.len() < 300, "{} bytes", message.len());
    assert!(message.contains("https://x.example/aaa"), "{message}");
    assert!(!message.contains(['\r', '\n']));
}

#[test]
fn user_text_in_messages_is_escaped_and_truncated() {
    let huge = "z".repeat(1024 * 1024);
    let evil = "a\r\nFAKE LOG LINE\u{1b}[31m";
    let doc = json!({"workflows": [
        {"id": format!("{evil}{huge}"), "module": "", "trigger": "every_save",
         "criteria": {"all": [{"field": format!("{evil}{huge}"), "op": "between", "value": 1}]},
         "actions": [
            {"title": format!("{evil}{huge}"), "url": format!("https://x.example/{evil}{huge}"), "content_type": "XML",
             "kind": format!("{evil}{huge}"),
             "parameters": [{"name": format!("{evil}{huge}"), "value": 1}, {"name": format!("{evil}{huge}"), "value": 2},
                            {"name": format!("k.{evil}"), "value": 1}],
             "required": [format!("{evil}{huge}")]}]},
        {"id": "m", "module": "Leads", "trigger": format!("{evil}{huge}")},
        {"id": "n", "module": "Leads", "trigger": "every_save",
         "actions": [{"title": "T", "url": "https://x.example", "content_type": "JSON",
                      "parameters": [{"name": format!("{evil}{huge}"), "value": 1, "field": "x"}]}]},
        {"id": "o", "module": "Leads", "trigger": {"schedule": {"every": "daily", "at": format!("{evil}{huge}")}}}
    ]})
    .to_string();
    let error = WorkflowSet::from_json(&doc).unwrap_err();
    let found = messages(&error);
    assert!(found.len() >= 10, "{found:#?}");
    for message in &found {
        assert_safe(message);
    }
    let all = error.to_string();
    assert!(all.len() < 20 * 1024, "{} bytes", all.len());
    assert!(!all.contains(['\r', '\n']));
    assert!(all.contains(r"a\r\nFAKE LOG LINE"), "{all}");
}
