//! The host's ports: async traits the host implements (or takes from the adapters).

mod clock;
mod directory;
mod endpoint;
mod http;
mod mail;
mod storage;

pub use clock::{Clock, SystemClock};
pub use directory::{Directory, DirectoryError, TenantInfo, User};
pub use endpoint::{
    EndpointHealth, EndpointKey, EndpointState, HealthChange, HealthEvent, HealthReport, Notice, RateRequest,
    ReportedDelivery,
};
pub use http::{HttpClient, HttpError, HttpErrorKind, RequestOptions};
pub use mail::{Email, MailError, Mailer};
pub use storage::*;
