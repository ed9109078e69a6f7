//! A workflow and the set of a tenant's workflows: which records fire (trigger + entry criteria) and which
//! webhooks they send.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::action::{RawAction, WebhookAction};
use super::criteria::Criteria;
use super::schedule::Schedule;
use crate::error::{ConfigError, Location, ValidationError};
use crate::limits::MAX_WEBHOOKS_PER_WORKFLOW;
use crate::record::{Change, RecordEvent};
use crate::shown::shown_message;

/// When a workflow runs, following Vtiger's execution conditions.
///
/// JSON: `"first_save"`, `"once"`, `"every_save"`, `"modify"`, `"manual"`, or
/// `{"schedule": {"every": "daily", "at": "09:00"}}` (see [`Schedule`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Only when the record is created.
    FirstSave,
    /// On a save (creation or update) until the first time the criteria hold for the record; never again after.
    Once,
    /// On every save, creation included.
    EverySave,
    /// On every save except the creation.
    Modify,
    /// On a schedule; the host feeds the selected records as events with change `scheduled`.
    Schedule(Schedule),
    /// Only when a person runs it ([`Engine::run_manual`](crate::Engine::run_manual)).
    Manual,
}

impl Trigger {
    /// Whether a change of this kind can run a workflow with this trigger (criteria aside).
    pub fn fires_on(&self, change: Change) -> bool {
        matches!(
            (self, change),
            (Trigger::FirstSave, Change::Created)
                | (Trigger::Once | Trigger::EverySave, Change::Created | Change::Updated)
                | (Trigger::Modify, Change::Updated)
                | (Trigger::Schedule(_), Change::Scheduled)
                | (Trigger::Manual, Change::Manual)
        )
    }
}

/// A validated workflow: at most three webhook actions, each valid, with unique titles.
///
/// ```
/// use crm_webhooks::workflow::Workflow;
/// let four_actions = serde_json::json!({
///     "id": "w", "name": "W", "module": "Leads", "trigger": "every_save",
///     "actions": (0..4).map(|i| serde_json::json!({
///         "title": format!("a{i}"), "url": "https://example.com", "content_type": "JSON"
///     })).collect::<Vec<_>>()
/// });
/// let err = serde_json::from_value::<Workflow>(four_actions).unwrap_err();
/// assert!(err.to_string().contains("at most 3 webhook actions"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    id: String,
    name: String,
    description: String,
    active: bool,
    module: String,
    trigger: Trigger,
    criteria: Criteria,
    actions: Vec<WebhookAction>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(default = "active_by_default", skip_serializing_if = "is_true")]
    active: bool,
    module: String,
    trigger: Trigger,
    #[serde(default)]
    criteria: Criteria,
    #[serde(default)]
    actions: Vec<RawAction>,
}

fn active_by_default() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

impl Workflow {
    /// Builds and validates a workflow.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        module: impl Into<String>,
        trigger: Trigger,
        criteria: Criteria,
        actions: Vec<WebhookAction>,
    ) -> Result<Self, ConfigError> {
        let workflow = Workflow {
            id: id.into(),
            name: name.into(),
            description: String::new(),
            active: true,
            module: module.into(),
            trigger,
            criteria,
            actions,
        };
        let at = Location::workflow(&workflow.id);
        let mut errors = workflow.check_own(&at);
        if workflow.actions.len() > MAX_WEBHOOKS_PER_WORKFLOW {
            errors.push(ValidationError::TooManyActions { at: at.clone(), count: workflow.actions.len() });
        }
        let mut titles = HashSet::new();
        for action in &workflow.actions {
            if !titles.insert(action.title()) {
                errors.push(ValidationError::DuplicateActionTitle { at: at.with_action(action.title()) });
            }
        }
        if errors.is_empty() {
            Ok(workflow)
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    fn from_raw(raw: RawWorkflow) -> Result<Self, Vec<ValidationError>> {
        let at = Location::workflow(&raw.id);
        let mut errors = Vec::new();
        let mut actions = Vec::with_capacity(raw.actions.len());
        let configured = raw.actions.len();
        if configured > MAX_WEBHOOKS_PER_WORKFLOW {
            errors.push(ValidationError::TooManyActions { at: at.clone(), count: configured });
        }
        let mut titles = HashSet::new();
        for action in raw.actions {
            if !titles.insert(action.title.clone()) {
                errors.push(ValidationError::DuplicateActionTitle { at: at.with_action(&action.title) });
            }
            match WebhookAction::from_raw(action, &at) {
                Ok(action) => actions.push(action),
                Err(errs) => errors.extend(errs),
            }
        }
        let workflow = Workflow {
            id: raw.id,
            name: raw.name,
            description: raw.description,
            active: raw.active,
            module: raw.module,
            trigger: raw.trigger,
            criteria: raw.criteria,
            actions,
        };
        let mut own = workflow.check_own(&at);
        own.extend(errors);
        if own.is_empty() {
            Ok(workflow)
        } else {
            Err(own)
        }
    }

    fn check_own(&self, at: &Location) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        if self.id.trim().is_empty() {
            errors.push(ValidationError::Empty { at: at.clone(), field: "id" });
        }
        if self.module.trim().is_empty() {
            errors.push(ValidationError::Empty { at: at.clone(), field: "module" });
        }
        if let Trigger::Schedule(schedule) = &self.trigger {
            if let Err(reason) = schedule.validate() {
                errors.push(ValidationError::InvalidSchedule { at: at.clone(), reason });
            }
        }
        errors.extend(self.criteria.validate(at));
        errors
    }

    /// The workflow's id, unique among the tenant's workflows.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The human-readable name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The free-text description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// Whether the workflow runs at all (`"active": false` in JSON switches it off; default on).
    pub fn is_active(&self) -> bool {
        self.active
    }
    /// Switches the workflow on or off.
    pub fn set_active(&mut self, active: bool) {
        self.active = active;
    }
    /// The CRM module whose records it watches.
    pub fn module(&self) -> &str {
        &self.module
    }
    /// When it runs.
    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }
    /// The entry criteria.
    pub fn criteria(&self) -> &Criteria {
        &self.criteria
    }
    /// Its webhook actions (at most three).
    pub fn actions(&self) -> &[WebhookAction] {
        &self.actions
    }
    /// The action with this title.
    pub fn action(&self, title: &str) -> Option<&WebhookAction> {
        self.actions.iter().find(|a| a.title() == title)
    }

    /// Whether the event's module and change fit this workflow and its entry criteria hold.
    ///
    /// `now` is the current time in the tenant's time zone (date conditions such as `is_today` use it). The
    /// `once` trigger's "already fired for this record" fact lives in storage; the engine checks it.
    pub fn matches(&self, event: &RecordEvent, now: DateTime<Tz>) -> bool {
        self.active
            && self.module.eq_ignore_ascii_case(&event.module)
            && self.trigger.fires_on(event.change)
            && self.criteria.matches(event, now)
    }

    /// The next time this scheduled workflow runs after `after`, in the tenant's time zone `tz`.
    /// `None` for other triggers and for schedules with no run left.
    pub fn next_run_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match &self.trigger {
            Trigger::Schedule(schedule) => schedule.next_after(after, tz),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Workflow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawWorkflow::deserialize(deserializer)?;
        Workflow::from_raw(raw).map_err(|errors| serde::de::Error::custom(crate::error::join(&errors)))
    }
}

impl Serialize for Workflow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawWorkflow {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            active: self.active,
            module: self.module.clone(),
            trigger: self.trigger.clone(),
            criteria: self.criteria.clone(),
            actions: self.actions.iter().map(WebhookAction::to_raw).collect(),
        }
        .serialize(serializer)
    }
}

/// A tenant's workflows, validated together: ids are unique, and loading reports every problem at once.
///
/// ```
/// use crm_webhooks::WorkflowSet;
/// let err = WorkflowSet::from_json(r#"{"workflows": [
///   {"id": "a", "module": "Leads", "trigger": "every_save",
///    "actions": [{"title": "x", "url": "ftp://nope", "content_type": "JSON"}]},
///   {"id": "b", "module": "", "trigger": "every_save"},
///   {"id": "c", "module": "Leads", "trigger": "sometimes"}
/// ]}"#).unwrap_err();
/// // The bad URL in "a", the empty module of "b" and the unknown trigger of "c", all at once:
/// assert_eq!(err.problems().len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowSet {
    workflows: Vec<Workflow>,
}

impl WorkflowSet {
    /// A set of already validated workflows; fails on duplicate ids.
    pub fn new(workflows: Vec<Workflow>) -> Result<Self, ConfigError> {
        let mut ids = HashSet::new();
        let errors: Vec<_> = workflows
            .iter()
            .filter(|w| !ids.insert(w.id()))
            .map(|w| ValidationError::DuplicateWorkflowId { at: Location::workflow(w.id()) })
            .collect();
        if errors.is_empty() {
            Ok(WorkflowSet { workflows })
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    /// Loads `{"workflows": [...]}` (or a bare array of workflows), reporting every problem in every workflow.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let document: serde_json::Value = serde_json::from_str(json)?;
        Self::from_value(document)
    }

    /// Like [`WorkflowSet::from_json`], from an already parsed document.
    pub fn from_value(document: serde_json::Value) -> Result<Self, ConfigError> {
        let items = match document {
            serde_json::Value::Array(items) => items,
            serde_json::Value::Object(mut map) => match map.remove("workflows") {
                Some(serde_json::Value::Array(items)) if map.is_empty() => items,
                _ => {
                    return Err(ConfigError::Json(serde::de::Error::custom(
                        "expected {\"workflows\": [...]} (one key holding an array of workflows)",
                    )))
                }
            },
            _ => {
                return Err(ConfigError::Json(serde::de::Error::custom(
                    "expected {\"workflows\": [...]} or an array of workflows",
                )))
            }
        };
        let mut errors = Vec::new();
        let mut workflows = Vec::with_capacity(items.len());
        let mut ids = HashSet::new();
        for (index, item) in items.into_iter().enumerate() {
            let id = item.get("id").and_then(|v| v.as_str()).map(str::to_owned);
            let at = Location::workflow(id.as_deref().unwrap_or(&format!("#{}", index + 1)));
            if let Some(id) = id {
                if !ids.insert(id) {
                    errors.push(ValidationError::DuplicateWorkflowId { at: at.clone() });
                }
            }
            match serde_json::from_value::<RawWorkflow>(item) {
                Ok(raw) => match Workflow::from_raw(raw) {
                    Ok(workflow) => workflows.push(workflow),
                    Err(errs) => errors.extend(errs),
                },
                Err(e) => errors.push(ValidationError::Malformed { at, message: shown_message(&e.to_string()) }),
            }
        }
        if errors.is_empty() {
            Ok(WorkflowSet { workflows })
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    /// The workflows, in document order.
    pub fn workflows(&self) -> &[Workflow] {
        &self.workflows
    }

    /// The workflow with this id.
    pub fn get(&self, id: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|w| w.id() == id)
    }

    /// The workflows whose module, trigger and criteria fit the event, in document order. The `once` trigger's
    /// stored fact is not consulted here (the engine does that).
    pub fn matching<'a>(&'a self, event: &'a RecordEvent, now: DateTime<Tz>) -> impl Iterator<Item = &'a Workflow> {
        self.workflows.iter().filter(move |w| w.matches(event, now))
    }
}

impl Serialize for WorkflowSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("workflows", &self.workflows)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for WorkflowSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        WorkflowSet::from_value(value).map_err(serde::de::Error::custom)
    }
}
