//! Why an admin request failed, and how that answers: a page for the HTML routes, `{"error": "..."}` for the API,
//! each with the status code that fits.

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::StatusCode;

use crate::delivery::{DeliveryId, DeliveryStatus};
use crate::engine::EngineError;

use super::auth::Refusal;
use super::layout;
use super::params::BadParam;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    /// The host's authorization refused the request.
    #[error(transparent)]
    Refused(Refusal),
    /// The host's authorization named no tenant.
    #[error("the signed-in user has no tenant: ask the CRM's administrator to give them one")]
    NoTenant,
    /// A parameter did not read.
    #[error(transparent)]
    BadParam(#[from] BadParam),
    /// No such delivery in the caller's tenant (another tenant's ids answer the same).
    #[error("there is no delivery {0} here; it may have been pruned, or the link is wrong")]
    UnknownDelivery(DeliveryId),
    /// No such webhook action (or workflow) in the caller's tenant.
    #[error("there is no webhook action \"{0}\" in that workflow here")]
    UnknownAction(String),
    /// A test's sample record (or what names it) does not read.
    #[error("{0}")]
    BadSample(String),
    /// A request body that does not read as the route's documented form.
    #[error("{0}")]
    BadRequest(String),
    /// No such route.
    #[error("there is no page at {0}")]
    NoRoute(String),
    /// A route asked with a method it does not take (a GET of a POST-only route, say).
    #[error("{0} does not take this method: pages are read with GET, and Redeliver is a POST from its form")]
    WrongMethod(String),
    /// A redelivery of a delivery still under way.
    #[error("delivery {id} is still {status}: it can be redelivered once it has succeeded or failed")]
    NotSettled { id: DeliveryId, status: DeliveryStatus },
    /// A state-changing request without the caller's token, or from another site.
    #[error(
        "this request carries no valid form token (or came from another site): reload the page and try again; API \
         clients send the token of GET api/session in an x-csrf-token header"
    )]
    CrossSite,
    /// The engine (its storage or directory) failed.
    #[error("the webhook engine failed: {0}; try again shortly")]
    Engine(EngineError),
}

impl From<EngineError> for AdminError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::UnknownDelivery { id, .. } => AdminError::UnknownDelivery(id),
            EngineError::NotSettled { id, status } => AdminError::NotSettled { id, status },
            EngineError::UnknownAction { action, .. } => AdminError::UnknownAction(action),
            EngineError::UnknownWorkflow { workflow, .. } => {
                AdminError::UnknownAction(format!("(workflow {workflow})"))
            }
            EngineError::Render { source, .. } => AdminError::BadSample(format!("the sample record: {source}")),
            other => AdminError::Engine(other),
        }
    }
}

impl AdminError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            AdminError::Refused(refusal) => refusal.status(),
            AdminError::NoTenant | AdminError::CrossSite => StatusCode::FORBIDDEN,
            AdminError::BadParam(_) | AdminError::BadSample(_) | AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::UnknownDelivery(_) | AdminError::NoRoute(_) | AdminError::UnknownAction(_) => {
                StatusCode::NOT_FOUND
            }
            AdminError::WrongMethod(_) => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::NotSettled { .. } => StatusCode::CONFLICT,
            AdminError::Engine(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Engine(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn log(&self) {
        if let AdminError::Engine(error) = self {
            tracing::warn!(%error, "admin request failed");
        }
    }
}

/// An error answered as a page.
#[derive(Debug)]
pub(crate) struct PageError(pub(crate) AdminError);

/// An error answered as JSON.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) AdminError);

impl<E: Into<AdminError>> From<E> for PageError {
    fn from(error: E) -> Self {
        PageError(error.into())
    }
}

impl<E: Into<AdminError>> From<E> for ApiError {
    fn from(error: E) -> Self {
        ApiError(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        (status, layout::html(layout::error(status, &self.0.to_string()))).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.log();
        let body = serde_json::json!({ "error": self.0.to_string() }).to_string();
        (self.0.status(), [(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-store")], body).into_response()
    }
}
