#![doc = include_str!("../README.md")]
//!
//! # The crate's map
//!
//! | Module | What it holds |
//! |---|---|
//! | `admin` | the admin router a host mounts in its axum server: log, deliveries, redelivery, usage (feature `admin`) |
//! | [`engine`] | [`Engine`]: event intake, worker passes, failure emails, the admin reads and writes; [`engine::preview`] |
//! | [`workflow`] | [`WorkflowSet`], workflows, triggers, criteria, schedules, and the [`WebhookAction`] |
//! | [`payload`] | what a webhook sends: content types, parameters, templates, the rendered [`payload::Payload`] |
//! | [`record`] | the [`RecordEvent`] a host feeds in, with its [`Fields`] |
//! | [`delivery`] | a [`Delivery`], its four statuses, and the delivery log ([`LogEntry`], [`LogQuery`]) |
//! | [`retry`] | the pure retry machine: 1 h, 2 h and 4 h by default, `Retry-After` honoured |
//! | [`quota`] | editions and daily allowances per tenant calendar day |
//! | [`ports`] | the traits a host provides or picks an adapter for: [`Storage`], [`HttpClient`], [`Mailer`], [`Directory`], [`Clock`] |
//! | [`adapters`] | the adapters: memory, SQLite, PostgreSQL, reqwest, SMTP |
//! | [`worker`] | the tokio worker loop (feature `tokio`) |
//! | [`signature`] | Standard Webhooks signatures, for receivers |
//! | [`secret`] | [`Secret`]: passwords and signing keys, redacted in `Debug` |
//! | [`error`] | configuration errors ([`ConfigError`]) |
//! | [`limits`] | every limit a configuration and a body keep to |
//! | [`testing`] | test doubles and the storage conformance suite |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, rust_2018_idioms)]

pub mod adapters;
#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
pub mod delivery;
pub mod engine;
pub mod error;
pub mod failure;
mod health;
mod id;
pub mod limits;
pub mod payload;
pub mod ports;
pub mod quota;
pub mod record;
pub mod retry;
pub mod secret;
mod shown;
mod signal;
pub mod signature;
pub mod testing;
mod value;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod worker;
pub mod workflow;

pub use adapters::memory::MemoryStorage;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use adapters::postgres::PostgresStorage;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use adapters::reqwest::ReqwestClient;
#[cfg(feature = "smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub use adapters::smtp::SmtpMailer;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use adapters::sqlite::SqliteStorage;
/// The attribute for implementing the host ports (`#[async_trait]` on your `impl Storage for ...`).
pub use async_trait::async_trait;
pub use delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry, LogQuery};
pub use engine::{Engine, EngineBuilder, EngineError};
pub use error::ConfigError;
pub use ports::{Clock, Directory, HttpClient, Mailer, Storage};
pub use quota::{Edition, QuotaPolicy};
pub use record::{Change, Fields, RecordEvent};
pub use secret::Secret;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use worker::Worker;
pub use workflow::{WebhookAction, WorkflowSet};
