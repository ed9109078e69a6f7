//! Conditions of every operator on arbitrary values (dates at the ends of chrono's range included), for records
//! whose fields and previous values are arbitrary too, in UTC, Los Angeles, Kiritimati (+14) and Pago Pago (-11),
//! at a fixed time and at instants near the ends of chrono's range: evaluating never panics, negated operators
//! answer the opposite of their positive forms, and validation (through `Workflow::new`) answers too.
#![no_main]

use arbitrary::Arbitrary;
use crm_webhooks::{Change, RecordEvent};
use crm_webhooks::workflow::{Condition, Criteria, Operator, Trigger, Workflow};
use crm_webhooks_fuzz::{dismantle, fields_of, fixed_now, instant_of, pick, very_deep, ArbKey, ArbValue, ZONES};
use libfuzzer_sys::fuzz_target;

const OPERATORS: [Operator; 23] = {
    use Operator::*;
    [
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
        HasChanged,
        HasChangedTo,
        HasChangedFrom,
        Before,
        After,
        Between,
        IsToday,
        LessThanDaysAgo,
        MoreThanDaysAgo,
        InLessThanDays,
        InMoreThanDays,
    ]
};

const CHANGES: [Change; 4] = [Change::Created, Change::Updated, Change::Scheduled, Change::Manual];

#[derive(Arbitrary, Debug)]
struct Input {
    conditions: Vec<(ArbKey, u8, ArbValue)>,
    any: u8,
    fields: Vec<(ArbKey, ArbValue)>,
    previous: Vec<(ArbKey, ArbValue)>,
    /// A field (and its previous value) nested 200 to 20,199 arrays deep.
    deep_field: Option<(ArbKey, u16, bool)>,
    change: u8,
    now_seconds: i64,
    now_form: u8,
}

fuzz_target!(|input: Input| {
    let conditions: Vec<Condition> = input
        .conditions
        .iter()
        .map(|(field, op, value)| Condition::new(field.name(), pick(&OPERATORS, *op), value.to_value()))
        .collect();
    let mut event = RecordEvent::new("t", "Leads", "1", pick(&CHANGES, input.change), "u");
    event.fields = fields_of(&input.fields);
    event.previous = fields_of(&input.previous);
    if let Some((key, depth, previous)) = &input.deep_field {
        let depth = 200 + usize::from(*depth) % 20_000;
        if let Some(old) = event.fields.insert(key.name(), very_deep(depth)) {
            dismantle(old);
        }
        if *previous {
            if let Some(old) = event.previous.insert(key.name(), very_deep(depth)) {
                dismantle(old);
            }
        }
    }

    let split = usize::from(input.any).min(conditions.len());
    let criteria = Criteria { all: conditions[..split].to_vec(), any: conditions[split..].to_vec() };
    let nows = [fixed_now(), instant_of(input.now_seconds, input.now_form)];
    for tz in ZONES {
        for now in nows {
            let now = now.with_timezone(&tz);
            for condition in &conditions {
                let holds = condition.matches(&event, now);
                let opposite = match condition.op {
                    Operator::Is => Some(Operator::IsNot),
                    Operator::Contains => Some(Operator::DoesNotContain),
                    Operator::IsEmpty => Some(Operator::IsNotEmpty),
                    _ => None,
                };
                if let Some(opposite) = opposite {
                    let negated = Condition { op: opposite, ..condition.clone() };
                    // The event is not printed: a deep field would overflow `Debug`.
                    assert_ne!(holds, negated.matches(&event, now), "{condition:?} and its negation");
                }
            }
            let all = criteria.matches(&event, now);
            let expected = criteria.all.iter().all(|c| c.matches(&event, now))
                && (criteria.any.is_empty() || criteria.any.iter().any(|c| c.matches(&event, now)));
            assert_eq!(all, expected);
        }
    }
    // Validation reads the operands as dates and numbers too.
    if let Ok(workflow) = Workflow::new("w", "W", "Leads", Trigger::EverySave, criteria, Vec::new()) {
        for tz in ZONES {
            let _ = workflow.matches(&event, nows[1].with_timezone(&tz));
        }
    }
    // Deep values are taken apart without recursion.
    let RecordEvent { fields, previous, .. } = event;
    fields.into_iter().chain(previous).for_each(|(_, v)| dismantle(v));
});
