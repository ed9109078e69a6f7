//! The admin router a CRM host mounts in its own [axum](https://docs.rs/axum) server (feature `admin`): the
//! webhook log as pages that work without JavaScript, and the same data as a JSON API.
//!
//! The host decides who may see what: [`router`] takes an [`Authorize`] (any
//! `Fn(&http::request::Parts) -> Result<Caller, Refusal>`) that names the caller's tenant, and an [`AdminKey`]
//! for the form tokens that guard redelivery against cross-site requests.
//!
//! ```
//! use crm_webhooks::admin::{self, AdminKey, Caller, Refusal};
//! # fn mount(engine: crm_webhooks::Engine) -> Result<axum::Router, Box<dyn std::error::Error>> {
//! let key = AdminKey::new(*b"32 secret bytes from the config!")?;
//! let webhooks = admin::router(engine, |parts: &http::request::Parts| {
//!     // Your own session, put in the request's extensions by your authentication middleware.
//!     let session = parts.extensions.get::<Caller>().cloned();
//!     session.ok_or_else(|| Refusal::Unauthenticated("sign in to see the webhook log".into()))
//! }, key);
//! let app = axum::Router::new().nest("/settings/webhooks", webhooks);
//! # Ok(app) }
//! ```

mod api;
mod auth;
mod data;
mod error;
mod explain;
mod html;
mod layout;
mod pages;
mod params;
mod routes;
mod state;
mod test_send;

pub use auth::{AdminKey, Authorize, Caller, Refusal, WeakKey};
pub use routes::router;
