//! What every handler shares (the engine, the host's authorization, the form key) and what the authorization
//! step hands each request (its [`Ctx`]: the caller, where the router is mounted, the caller's form token).

use std::sync::Arc;

use crate::engine::Engine;

use super::auth::{AdminKey, Authorize, Caller};

/// The router's state.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) engine: Engine,
    pub(crate) authorize: Arc<dyn Authorize>,
    pub(crate) key: Arc<AdminKey>,
}

/// One authorized request's context, put in its extensions by the authorization step.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) caller: Caller,
    /// The path the router is mounted at, without a trailing `/` (empty at the root): links start with it.
    pub(crate) base: String,
    /// The caller's form token for today.
    pub(crate) token: String,
}

impl Ctx {
    /// A path of the router as a link: `path` starts with `/`. The router's own root is the mount path itself
    /// (axum's `nest("/settings/webhooks", ..)` serves `/settings/webhooks`, not `/settings/webhooks/`).
    pub(crate) fn link(&self, path: &str) -> String {
        if path == "/" && !self.base.is_empty() {
            return self.base.clone();
        }
        format!("{}{path}", self.base)
    }
}

impl AdminState {
    /// The caller's token of today (the engine's clock, UTC day).
    pub(crate) fn token(&self, caller: &Caller) -> String {
        self.key.token(caller, self.engine.now().date_naive())
    }

    /// Whether a token sent back is the caller's.
    pub(crate) fn accepts(&self, caller: &Caller, token: &str) -> bool {
        self.key.accepts(caller, self.engine.now().date_naive(), token)
    }
}

/// The header API clients send the caller's form token in.
pub(crate) const TOKEN_HEADER: &str = "x-csrf-token";

impl AdminState {
    /// Whether a state-changing request may proceed: not sent by another site (when the browser says so with
    /// `Sec-Fetch-Site`), and carrying the caller's token in the form field or the [`TOKEN_HEADER`].
    pub(crate) fn same_site_post(&self, ctx: &Ctx, headers: &http::HeaderMap, form_token: Option<&str>) -> bool {
        let cross_site = headers.get("sec-fetch-site").is_some_and(|site| site.as_bytes() == b"cross-site");
        let header_token = headers.get(TOKEN_HEADER).and_then(|value| value.to_str().ok());
        !cross_site && form_token.or(header_token).is_some_and(|token| self.accepts(&ctx.caller, token))
    }
}
