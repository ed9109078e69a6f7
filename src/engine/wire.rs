//! What goes on the wire: the headers of an attempt, and the requests an event would send ([`preview`]).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use crate::delivery::{Delivery, DeliveryId};
use crate::limits::DEFAULT_MAX_BODY_BYTES;
use crate::payload::RenderError;
use crate::ports::{HttpError, HttpErrorKind, RequestOptions};
use crate::record::RecordEvent;
use crate::signature::{self, SigningKey};
use crate::workflow::{redact_url, Auth, WebhookAction, WorkflowSet};

/// A request the engine would send, as [`preview`] shows it: the `Authorization` value and the API key redacted.
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
    /// The headers: `Authorization` shown as its scheme and `[redacted]` (`Basic [redacted]`), the API-key header
    /// as `[redacted]`.
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
            let now = now.with_timezone(&Utc);
            let headers = shown_headers(action, payload.content_type_header(), id, now, payload.body(), false)
                .into_iter()
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

/// The headers of one attempt leaving at `now`: content type, Standard Webhooks id, timestamp and one signature
/// per signing key current at `now`, the authorization (sensitive), then the action's custom headers.
/// The headers of an attempt as a person may see them: `Authorization` as its scheme and `[redacted]`, any other
/// secret header (an API key) as `[redacted]`, and, when `hide_signatures`, each signature as its version and
/// `[redacted]`.
pub(super) fn shown_headers(
    action: &WebhookAction,
    content_type: &'static str,
    id: DeliveryId,
    now: DateTime<Utc>,
    body: &[u8],
    hide_signatures: bool,
) -> Vec<(String, String)> {
    request_headers(action, content_type, id, now, body)
        .into_iter()
        .map(|(name, value)| {
            let text = value.to_str().unwrap_or_default();
            let shown = match text.split_once(' ') {
                _ if name.as_str() == "webhook-signature" && hide_signatures => text
                    .split(' ')
                    .map(|entry| format!("{},[redacted]", entry.split(',').next().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ if !value.is_sensitive() => text.to_owned(),
                Some((scheme, _)) if name == AUTHORIZATION => format!("{scheme} [redacted]"),
                _ => "[redacted]".to_owned(),
            };
            (name.as_str().to_owned(), shown)
        })
        .collect()
}

pub(super) fn request_headers(
    action: &WebhookAction,
    content_type: &'static str,
    id: DeliveryId,
    now: DateTime<Utc>,
    body: &[u8],
) -> Vec<(HeaderName, HeaderValue)> {
    let (id_text, timestamp) = (id.to_string(), now.timestamp());
    let mut headers = vec![
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (HeaderName::from_static("webhook-id"), header_value(&id_text)),
        (HeaderName::from_static("webhook-timestamp"), header_value(&timestamp.to_string())),
    ];
    let current = action.signing_keys().iter().filter(|key| key.is_current(now)).map(SigningKey::secret);
    // Every key was decoded when the action was validated, so none is left out here.
    let signatures: Vec<String> = action
        .signing_secret()
        .into_iter()
        .chain(current)
        .filter_map(|secret| signature::signer(secret).ok())
        .map(|signer| signer.sign(&id_text, timestamp, body))
        .collect();
    if !signatures.is_empty() {
        headers.push((HeaderName::from_static("webhook-signature"), header_value(&signatures.join(" "))));
    }
    let authorization = match action.auth() {
        Auth::None => None,
        Auth::Basic { username, password } => {
            let token = BASE64.encode(format!("{username}:{}", password.expose()));
            Some((AUTHORIZATION, format!("Basic {token}")))
        }
        Auth::Bearer { token } => Some((AUTHORIZATION, format!("Bearer {}", token.expose()))),
        Auth::ApiKey { header, value } => {
            HeaderName::from_bytes(header.as_bytes()).ok().map(|name| (name, value.expose().to_owned()))
        }
    };
    if let Some((name, text)) = authorization {
        if let Ok(mut value) = HeaderValue::from_str(&text) {
            value.set_sensitive(true);
            headers.push((name, value));
        }
    }
    // Validated with the action: every name and value parses.
    headers.extend(action.headers().iter().filter_map(|(name, value)| {
        Some((HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_str(value).ok()?))
    }));
    headers
}

/// The request of one attempt of a delivery, as it leaves at `now`, with the action's [`RequestOptions`] in its
/// extensions when it sets any.
pub(super) fn request(
    delivery: &Delivery,
    action: &WebhookAction,
    now: DateTime<Utc>,
) -> Result<http::Request<Bytes>, HttpError> {
    let mut builder = http::Request::builder().method(delivery.method.as_http()).uri(delivery.url.as_str());
    for (name, value) in request_headers(action, delivery.content_type.header_value(), delivery.id, now, &delivery.body)
    {
        builder = builder.header(name, value);
    }
    let options = RequestOptions { timeout: action.timeout(), tls: action.tls().cloned() };
    if !options.is_empty() {
        builder = builder.extension(options);
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
    fn bearer_and_api_key_auth_are_sensitive_headers_and_custom_headers_follow() {
        let d = sample_delivery("acme", "w1", t0());
        let bearer = action(
            r#"{"title": "T", "url": "https://r.example/hook", "content_type": "JSON",
            "auth": {"type": "bearer", "token": "tok-123"}, "headers": {"X-Tenant": "acme", "X-Region": "eu"}}"#,
        );
        let sent = request(&d, &bearer, t0()).unwrap();
        let h = sent.headers();
        assert_eq!(h["authorization"], "Bearer tok-123");
        assert!(h["authorization"].is_sensitive());
        assert_eq!((h["x-tenant"].to_str().unwrap(), h["x-region"].to_str().unwrap()), ("acme", "eu"));
        assert!(!h["x-tenant"].is_sensitive());
        let names: Vec<&str> = h.keys().map(|name| name.as_str()).collect();
        assert_eq!(names, ["content-type", "webhook-id", "webhook-timestamp", "authorization", "x-region", "x-tenant"]);

        let api_key = action(
            r#"{"title": "T", "url": "https://r.example/hook", "content_type": "JSON",
            "auth": {"type": "api_key", "header": "X-Api-Key", "value": "key-456"}, "headers": [["X-Tenant", "acme"]]}"#,
        );
        let sent = request(&d, &api_key, t0()).unwrap();
        let h = sent.headers();
        assert_eq!(h["x-api-key"], "key-456");
        assert!(h["x-api-key"].is_sensitive());
        assert!(h.get("authorization").is_none());
        assert_eq!(h["x-tenant"], "acme");
    }

    /// Rotation: the signing secret and every key current at the attempt's time sign, in order; a key stops at
    /// its `expires_at` exactly.
    #[cfg(feature = "ed25519")]
    #[test]
    fn every_current_key_signs_and_an_expired_one_stops() {
        use crate::signature::{verify_signature, PublicKey};
        use crate::Secret;
        let d = sample_delivery("acme", "w1", t0());
        let expiry = t0() + chrono::Duration::hours(1);
        let (hmac, old, ed) = (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_c2Vjb25kIGtleSBvZiB0aGUgcm90YXRpb24=",
            "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbc=",
        );
        let rotating = action(&format!(
            r#"{{"title": "T", "url": "https://r.example/hook", "content_type": "JSON", "signing_secret": "{hmac}",
            "signing_keys": [{{"secret": "{ed}"}}, {{"secret": "{old}", "expires_at": "{}"}}]}}"#,
            expiry.to_rfc3339()
        ));
        let public = PublicKey::from_secret(&Secret::new(ed)).unwrap();
        let id = d.id.to_string();
        for (now, versions) in [
            (t0(), vec!["v1", "v1a", "v1"]),
            (expiry - chrono::Duration::seconds(1), vec!["v1", "v1a", "v1"]),
            (expiry, vec!["v1", "v1a"]),
            (expiry + chrono::Duration::days(30), vec!["v1", "v1a"]),
        ] {
            let sent = request(&d, &rotating, now).unwrap();
            let header = sent.headers()["webhook-signature"].to_str().unwrap().to_owned();
            let found: Vec<&str> = header.split(' ').map(|entry| entry.split(',').next().unwrap()).collect();
            assert_eq!(found, versions, "at {now}: {header}");
            let entries: Vec<&str> = header.split(' ').collect();
            let ts = now.timestamp();
            assert!(verify_signature(&Secret::new(hmac), &id, ts, &d.body, entries[0]));
            assert!(verify_signature(&public, &id, ts, &d.body, entries[1]));
            assert!(verify_signature(&public, &id, ts, &d.body, &header));
            assert_eq!(verify_signature(&Secret::new(old), &id, ts, &d.body, &header), now < expiry);
        }
    }

    #[test]
    fn preview_redacts_every_credential_but_shows_custom_headers() {
        let event = crate::RecordEvent::new("acme", "Leads", "10x1", crate::Change::Created, "19x1").field("id", 1);
        let now = t0().with_timezone(&chrono_tz::UTC);
        for (auth, header, shown) in [
            (r#"{"type": "basic", "username": "api", "password": "pw"}"#, "authorization", "Basic [redacted]"),
            (r#"{"type": "bearer", "token": "tok-123"}"#, "authorization", "Bearer [redacted]"),
            (r#"{"type": "api_key", "header": "X-Api-Key", "value": "key-456"}"#, "x-api-key", "[redacted]"),
        ] {
            let set = WorkflowSet::from_json(&format!(
                r#"{{"workflows": [{{"id": "w", "module": "Leads", "trigger": "every_save",
                "actions": [{{"title": "T", "url": "https://r.example/hook", "content_type": "JSON",
                  "auth": {auth}, "headers": {{"X-Tenant": "acme"}}, "parameters": [{{"name": "id", "field": "id"}}]}}]}}]}}"#
            ))
            .unwrap();
            let requests = preview(&set, &event, now).unwrap();
            let headers = &requests[0].headers;
            assert_eq!(headers[header], shown);
            assert_eq!(headers["x-tenant"], "acme");
            let text = format!("{requests:?}");
            for secret in ["pw", "YXBpOnB3", "tok-123", "key-456"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }

    #[test]
    fn an_action_timeout_rides_in_the_request_options_and_a_plain_action_adds_none() {
        let d = sample_delivery("acme", "w1", t0());
        let plain = action(r#"{"title": "T", "url": "https://r.example/hook", "content_type": "JSON"}"#);
        assert!(RequestOptions::of(&request(&d, &plain, t0()).unwrap()).is_none());
        let timed =
            action(r#"{"title": "T", "url": "https://r.example/hook", "content_type": "JSON", "timeout_seconds": 7}"#);
        let sent = request(&d, &timed, t0()).unwrap();
        let options = RequestOptions::of(&sent).unwrap();
        assert_eq!((options.timeout, options.tls.is_none()), (Some(std::time::Duration::from_secs(7)), true));
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
