//! The record a workflow fires on, as the host CRM describes it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Field name → value. Values keep their JSON types: numbers stay numbers, booleans stay booleans.
pub type Fields = serde_json::Map<String, serde_json::Value>;

/// What happened to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The record was saved for the first time.
    Created,
    /// An existing record was saved again.
    Updated,
    /// The host selected the record for a scheduled workflow that is due
    /// (see [`Engine::due_schedules`](crate::Engine::due_schedules)).
    Scheduled,
    /// A person ran a manual workflow on the record.
    Manual,
}

/// One save of one record, as the host CRM reports it to [`Engine::on_event`](crate::Engine::on_event).
///
/// JSON form:
/// ```
/// # use crm_webhooks::{RecordEvent, Change};
/// let event: RecordEvent = serde_json::from_str(r#"{
///   "tenant": "acme", "module": "Potentials", "record_id": "13x42", "change": "updated",
///   "owner": "19x1", "actor": "19x5",
///   "fields": {"sales_stage": "Closed Won", "amount": 1200.5},
///   "previous": {"sales_stage": "Negotiation"}
/// }"#).unwrap();
/// assert_eq!(event.change, Change::Updated);
/// assert_eq!(event.fields["amount"], 1200.5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordEvent {
    /// The host's tenant (customer account) the record belongs to.
    pub tenant: String,
    /// The CRM module, such as `Leads`, `Potentials` or `Contacts`.
    pub module: String,
    /// The record's id in the host CRM.
    pub record_id: String,
    /// Whether the record was created or updated (or selected by a schedule or a person).
    pub change: Change,
    /// The user id of the record's owner (notified when a delivery finally fails).
    pub owner: String,
    /// The user id of whoever saved the record.
    #[serde(default)]
    pub actor: String,
    /// The record's field values after the save.
    #[serde(default)]
    pub fields: Fields,
    /// The values before the save of the fields the save changed. A field absent here did not change.
    #[serde(default)]
    pub previous: Fields,
    /// When the save happened; the engine's clock is used when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Restricts the event to one workflow (by id): set it when feeding the records of a due schedule
    /// ([`DueSchedule::workflow`](crate::engine::DueSchedule::workflow)). When absent, every workflow of the module whose
    /// trigger fits the change runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// The host's own id for this save (its audit-log or change id, or `"{record_id}@{modified_time}"`): the
    /// event's idempotency key. The deliveries of an event with an id get ids derived from it, so reporting the
    /// same event again (after a timeout or an error whose reply was lost) queues nothing new and returns the
    /// same delivery ids. Without it every call is a new event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl RecordEvent {
    /// An event with no field values; fill `fields` (and `previous`) afterwards.
    pub fn new(
        tenant: impl Into<String>,
        module: impl Into<String>,
        record_id: impl Into<String>,
        change: Change,
        owner: impl Into<String>,
    ) -> Self {
        RecordEvent {
            tenant: tenant.into(),
            module: module.into(),
            record_id: record_id.into(),
            change,
            owner: owner.into(),
            actor: String::new(),
            fields: Fields::new(),
            previous: Fields::new(),
            occurred_at: None,
            event_id: None,
            workflow: None,
        }
    }

    /// Sets a field value.
    pub fn field(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// Sets the host's id for this save, the event's idempotency key (see [`RecordEvent::event_id`]).
    pub fn event_id(mut self, id: impl Into<String>) -> Self {
        self.event_id = Some(id.into());
        self
    }

    /// Sets a field's value before the save (the field changed).
    pub fn previous(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.previous.insert(name.into(), value.into());
        self
    }
}
