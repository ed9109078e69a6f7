//! Every limit a configuration and a body must keep to. [`WorkflowSet`](crate::WorkflowSet) and
//! [`WebhookAction`](crate::WebhookAction) refuse configurations past them with a typed
//! [`ValidationError`](crate::error::ValidationError); [`DEFAULT_MAX_BODY_BYTES`] is the default of
//! [`EngineBuilder::max_body_bytes`](crate::EngineBuilder::max_body_bytes).

/// The most webhook actions one workflow may hold (the product's limit).
pub const MAX_WEBHOOKS_PER_WORKFLOW: usize = 3;

/// The longest URL an action may notify, in bytes: browsers and servers commonly refuse longer ones, and the URL
/// is stored with every delivery and shown in the log.
pub const MAX_URL_BYTES: usize = 2048;

/// The most parameters an action may have (and the most names its `required` list may hold).
pub const MAX_PARAMETERS_PER_ACTION: usize = 100;

/// The longest parameter name, in bytes (for every content type).
pub const MAX_PARAMETER_NAME_BYTES: usize = 256;

/// The most dotted segments of a JSON, JSONARRAY or XML parameter name (`a.b.c` has 3): the deepest a body nests.
/// Encoding walks the nesting by recursion, and this is what bounds it. FORM names do not nest and are not counted.
pub const MAX_PARAMETER_NAME_SEGMENTS: usize = 32;

/// The longest template, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024;

/// The most placeholders (`${field}` or `$field`) one template may hold. With the other limits this bounds what a
/// configuration can multiply a record's text by; [`WebhookAction::try_render`](crate::workflow::WebhookAction::try_render) bounds the body itself.
pub const MAX_TEMPLATE_PLACEHOLDERS: usize = 64;

/// The body limit an engine uses unless told otherwise: 1 MiB (see [`WebhookAction::try_render`](crate::WebhookAction::try_render)).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The most custom static headers one action may add (`"headers"`): with the limits below, an action's own
/// headers stay under about 22 KiB, well inside what common servers accept for a whole request head.
pub const MAX_HEADERS_PER_ACTION: usize = 20;

/// The longest name of a custom header or of the API-key header, in bytes.
pub const MAX_HEADER_NAME_BYTES: usize = 64;

/// The longest value of a custom header, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 1024;

/// The longest bearer token or API key, in bytes (long enough for signed JWTs).
pub const MAX_AUTH_VALUE_BYTES: usize = 4096;

/// The most keys of an action's `signing_keys`: every current key adds a signature to every request, so a
/// rotation holds a few, not a history.
pub const MAX_SIGNING_KEYS: usize = 10;

/// The longest `"timeout_seconds"` an action may set: 5 minutes. An engine's lease must still cover it (see
/// [`EngineBuilder::lease`](crate::EngineBuilder::lease)).
pub const MAX_ACTION_TIMEOUT_SECS: u64 = 300;

/// The most entries of an action's `"tls"` `"ca_certificates"` (an entry may itself be a bundle).
pub const MAX_TLS_CA_CERTIFICATES: usize = 16;

/// The longest PEM text or file of an action's `"tls"` setting, in bytes: room for a large CA bundle.
pub const MAX_TLS_PEM_BYTES: usize = 1024 * 1024;
