//! Any text as a workflow document: `WorkflowSet::from_json` answers with a set or a typed error, never a panic.
//! A set it accepts serializes, loads back equal, and renders every action on an empty record (within any limit);
//! schedules answer for the next run in every zone.
#![no_main]

use crm_webhooks::{ConfigError, Fields, RecordEvent, WorkflowSet};
use crm_webhooks::limits::DEFAULT_MAX_BODY_BYTES;
use crm_webhooks_fuzz::{fixed_now, ZONES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let set = match WorkflowSet::from_json(text) {
        Ok(set) => set,
        Err(error) => {
            // Messages are built without panicking, whatever the document held.
            let _ = error.to_string();
            if let ConfigError::Invalid(problems) = &error {
                assert!(!problems.is_empty(), "an Invalid error with no problem");
            }
            for problem in error.problems() {
                let _ = problem.to_string();
            }
            return;
        }
    };
    let json = serde_json::to_string(&set).expect("an accepted set serializes");
    let again =
        WorkflowSet::from_json(&json).unwrap_or_else(|e| panic!("the serialized set does not load: {e}\n{json}"));
    assert_eq!(again, set, "the set does not load back equal from {json}");
    let _ = format!("{set:?}");

    let empty = Fields::new();
    for workflow in set.workflows() {
        for action in workflow.actions() {
            let payload = action.render(&empty);
            assert_eq!(payload.content_type(), action.content_type());
            let limited = action.try_render(&empty, DEFAULT_MAX_BODY_BYTES).expect("an empty record fits 1 MiB");
            assert_eq!(limited, payload);
        }
        for tz in ZONES {
            let now = fixed_now();
            if let Some(next) = workflow.next_run_after(now, tz) {
                assert!(next > now, "next run {next} is not after {now}");
            }
            let event = RecordEvent::new("t", workflow.module(), "1", crm_webhooks::Change::Updated, "u");
            let _ = workflow.matches(&event, now.with_timezone(&tz));
        }
    }
});
