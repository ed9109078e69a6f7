//! "Send a test": one real request of a webhook action, with a sample record an admin gives, through the whole
//! pipeline (encoder, auth, signature, the HTTP client and its address guard), stored and logged as a test.

use chrono::{DateTime, Utc};

use super::core::Engine;
use super::error::EngineError;
use super::outcome;
use super::redact;
use super::wire;
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry};
use crate::record::Fields;

/// The record id a test send is logged under.
pub const TEST_RECORD_ID: &str = "test";

/// What a test send did: the request as it left (secrets redacted) and what came back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TestSend {
    /// The delivery the test is stored and logged as (record [`TEST_RECORD_ID`]).
    pub delivery_id: DeliveryId,
    /// `POST` or `PUT`.
    pub method: String,
    /// The URL.
    pub url: String,
    /// The request's headers, `Authorization` and `webhook-signature` redacted.
    pub headers: Vec<(String, String)>,
    /// The body, as sent.
    pub body: String,
    /// When the request left.
    pub sent_at: DateTime<Utc>,
    /// How long until the answer (or the error), in milliseconds.
    pub duration_ms: u64,
    /// The receiver's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// The start of the receiver's answer (secrets redacted).
    pub response_snippet: Option<String>,
    /// Why the request failed, when it did (no answer, or not 2xx).
    pub error: Option<String>,
    /// Whether the receiver accepted it (2xx).
    pub delivered: bool,
}

impl Engine {
    /// Sends one real request of a tenant's webhook action with `fields` as the record, as a worker would send
    /// it (the encoder, auth, signature and the HTTP client with its address guard), without retries, and
    /// stores it as a settled delivery of record [`TEST_RECORD_ID`] with its log entries ("test send by
    /// `by`"), so it shows in the webhook log. The workflow's trigger and criteria are not checked. It is not
    /// counted against the tenant's daily quota: it is an admin checking a receiver, not a workflow's call.
    pub async fn send_test(
        &self,
        tenant: &str,
        workflow: &str,
        action: &str,
        fields: &Fields,
        by: &str,
    ) -> Result<TestSend, EngineError> {
        let unknown = || EngineError::UnknownWorkflow { tenant: tenant.to_owned(), workflow: workflow.to_owned() };
        let set = self.workflows(tenant).ok_or_else(unknown)?;
        let found = set.get(workflow).ok_or_else(unknown)?;
        let webhook = found.action(action).ok_or_else(|| EngineError::UnknownAction {
            tenant: tenant.to_owned(),
            workflow: workflow.to_owned(),
            action: action.to_owned(),
        })?;
        let payload = webhook.try_render(fields, self.inner.max_body_bytes).map_err(|source| EngineError::Render {
            tenant: tenant.to_owned(),
            workflow: workflow.to_owned(),
            record_id: TEST_RECORD_ID.to_owned(),
            source,
        })?;
        let sent_at = self.now();
        let mut delivery = Delivery {
            id: DeliveryId::at(sent_at),
            tenant: tenant.to_owned(),
            workflow: workflow.to_owned(),
            action: action.to_owned(),
            module: found.module().to_owned(),
            record_id: TEST_RECORD_ID.to_owned(),
            owner: by.to_owned(),
            method: webhook.method(),
            url: webhook.url().to_owned(),
            content_type: webhook.content_type(),
            body: payload.into_body(),
            status: DeliveryStatus::Dispatched,
            attempts: 1,
            next_attempt_at: None,
            lease_expires_at: None,
            created_at: sent_at,
            updated_at: sent_at,
            redelivery_of: None,
            ordered: false,
        };
        let secrets = redact::secret_texts(webhook);
        let answer = match wire::request(&delivery, webhook, sent_at) {
            Ok(request) => self.inner.http.send(request).await,
            Err(e) => Err(e),
        };
        let finished_at = self.now();
        let (http_status, response_snippet, error) = match answer {
            Ok(response) => {
                let status = response.status();
                let snippet = outcome::snippet(response.body(), &secrets);
                let error = (!status.is_success()).then(|| format!("HTTP {status}"));
                (Some(status.as_u16()), snippet, error)
            }
            Err(e) => (None, None, Some(redact::scrub(e.message().to_owned(), &secrets))),
        };
        let delivered = error.is_none();
        delivery.status = if delivered { DeliveryStatus::Success } else { DeliveryStatus::Failed };
        delivery.updated_at = finished_at;
        let mut queued = LogEntry::about(&delivery, DeliveryStatus::Queued, sent_at, format!("test send by {by}"));
        queued.attempt = 0;
        let dispatched = LogEntry::about(&delivery, DeliveryStatus::Dispatched, sent_at, "test attempt dispatched");
        let mut result = LogEntry::about(
            &delivery,
            delivery.status,
            finished_at,
            if delivered { "test attempt delivered" } else { "test attempt failed (tests are not retried)" },
        );
        (result.http_status, result.response_snippet, result.error) =
            (http_status, response_snippet.clone(), error.clone());
        let headers = self.request_headers(&delivery, sent_at);
        let stored = TestSend {
            delivery_id: delivery.id,
            method: delivery.method.as_str().to_owned(),
            url: crate::workflow::redact_url(&delivery.url),
            headers,
            body: String::from_utf8_lossy(&delivery.body).into_owned(),
            sent_at,
            duration_ms: u64::try_from((finished_at - sent_at).num_milliseconds()).unwrap_or(0),
            http_status,
            response_snippet,
            error,
            delivered,
        };
        self.inner.storage.enqueue(vec![delivery], vec![queued, dispatched, result]).await?;
        Ok(stored)
    }
}
