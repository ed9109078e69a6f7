//! What goes on the wire: the headers of an attempt, and the requests an event would send ([`preview`]).

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use crate::delivery::{Delivery, DeliveryId};
use crate::limits::DEFAULT_MAX_BODY_BYTES;
use crate::payload::RenderError;
use crate::ports::{HttpError, HttpErrorKind};
use crate::record::RecordEvent;
use crate::workflow::{redact_url, Auth, WebhookAction, WorkflowSet};

/// A request the engine would send, as [`preview`] shows it: the `Authorization` value redacted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreviewRequest {
    /// The workflow's id.
    pub workflow: String,
    /// The action's title.
    pub action: String,
    /// `POST` or `PUT`.
    pub method: String,
    /// The URL.
    pub url: String,
    /// The headers, `Authorization` redacted.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The encoded body.
    pub body: String,
}

/// The requests an event would send under these workflows, without storing or sending anything (a dry run).
/// `once` workflows are shown as if they had not fired yet. `now` is the tenant's local time. Fails when a body
/// would pass [`DEFAULT_MAX_BODY_BYTES`], as [`Engine::on_event`](crate::engine::Engine::on_event) would with the
/// default limit.
pub fn preview(
    workflows: &WorkflowSet,
    event: &RecordEvent,
    now: DateTime<chrono_tz::Tz>,
) -> Result<Vec<PreviewRequest>, RenderError> {
    let mut requests = Vec::new();
    for workflow in
        workflows.matching(event, now).filter(|w| event.workflow.as_deref().is_none_or(|only| only == w.id()))
    {
        for action in workflow.actions() {
            let payload = action.try_render(&event.fields, DEFAULT_MAX_BODY_BYTES)?;
            let id = DeliveryId::new();
            let headers = request_headers(action, payload.content_type_header(), id, now.timestamp(), payload.body())
                .into_iter()
                .map(|(name, value)| {
                    let value = if name == AUTHORIZATION {
                        "Basic [redacted]".to_owned()
                    } else {
                        value.to_str().unwrap_or_default().to_owned()
                    };
                    (name.as_str().to_owned(), value)
                })
                .collect();
            requests.push(PreviewRequest {
                workflow: workflow.id().to_owned(),
                action: action.title().to_owned(),
                method: action.method().as_str().to_owned(),
                url: redact_url(action.url()),
                headers,
                body: payload.body_text().to_owned(),
            });
        }
    }
    Ok(requests)
}

/// The headers of one attempt: content type, Standard Webhooks id/timestamp/signature, and Basic authorization.
pub(super) fn request_headers(
    action: &WebhookAction,
    content_type: &'static str,
    id: DeliveryId,
    timestamp: i64,
    body: &[u8],
) -> Vec<(HeaderName, HeaderValue)> {
    let id_text = id.to_string();
    let mut headers = vec![
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (HeaderName::from_static("webhook-id"), header_value(&id_text)),
        (HeaderName::from_static("webhook-timestamp"), header_value(&timestamp.to_string())),
    ];
    if let Some(secret) = action.signing_secret() {
        if let Ok(key) = crate::signature::decode_secret(secret) {
            let signature = crate::signature::sign(&key, &id_text, timestamp, body);
            headers.push((HeaderName::from_static("webhook-signature"), header_value(&signature)));
        }
    }
    if let Auth::Basic { username, password } = action.auth() {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
        if let Ok(mut value) = HeaderValue::from_str(&format!("Basic {token}")) {
            value.set_sensitive(true);
            headers.push((AUTHORIZATION, value));
        }
    }
    headers
}

/// The request of one attempt of a delivery, as it leaves at `now`.
pub(super) fn request(
    delivery: &Delivery,
    action: &WebhookAction,
    now: DateTime<Utc>,
) -> Result<http::Request<Bytes>, HttpError> {
    let mut builder = http::Request::builder().method(delivery.method.as_http()).uri(delivery.url.as_str());
    for (name, value) in
        request_headers(action, delivery.content_type.header_value(), delivery.id, now.timestamp(), &delivery.body)
    {
        builder = builder.header(name, value);
    }
    builder.body(delivery.body.clone()).map_err(|e| {
        HttpError::new(
            HttpErrorKind::InvalidRequest,
            format!("cannot build the request to {}: {e}", redact_url(&delivery.url)),
        )
    })
}

fn header_value(text: &str) -> HeaderValue {
    // Ids, timestamps and base64 signatures are ASCII; an empty value is the harmless fallback.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::storage_contract::{sample_delivery, t0};

    fn action(json: &str) -> WebhookAction {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_attempt_carries_the_standard_webhooks_headers_and_basic_auth() {
        let d = sample_delivery("acme", "w1", t0());
        let plain = action(r#"{"title": "T", "url": "https://r.example/hook", "content_type": "JSON"}"#);
        let sent = request(&d, &plain, t0()).unwrap();
        assert_eq!((sent.method().as_str(), sent.uri().to_string()), ("POST", d.url.clone()));
        let h = sent.headers();
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["webhook-id"], d.id.to_string());
        assert_eq!(h["webhook-timestamp"], t0().timestamp().to_string());
        assert!(h.get("webhook-signature").is_none() && h.get("authorization").is_none());
        assert_eq!(sent.body(), &d.body);

        let signed = action(
            r#"{"title": "T", "url": "https://r.example/hook", "content_type": "JSON",
            "auth": {"type": "basic", "username": "api", "password": "pw"},
            "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#,
        );
        let sent = request(&d, &signed, t0()).unwrap();
        let h = sent.headers();
        assert_eq!(h["authorization"], "Basic YXBpOnB3");
        assert!(h["authorization"].is_sensitive());
        let signature = h["webhook-signature"].to_str().unwrap();
        let secret = crate::Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let id = d.id.to_string();
        assert!(crate::signature::verify_signature(&secret, &id, t0().timestamp(), &d.body, signature));
    }

    #[test]
    fn a_url_that_does_not_build_is_an_invalid_request_without_its_credentials() {
        let mut d = sample_delivery("acme", "w1", t0());
        d.url = "https://u:secret@bad host/".into();
        let plain = action(r#"{"title": "T", "url": "https://r.example/hook", "content_type": "JSON"}"#);
        let error = request(&d, &plain, t0()).unwrap_err();
        assert_eq!(error.kind(), HttpErrorKind::InvalidRequest);
        assert!(!error.message().contains("secret"), "{}", error.message());
    }
}
