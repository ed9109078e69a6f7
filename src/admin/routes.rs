//! The router: every route, the authorization step in front of all of them, and the fallback.

use std::sync::Arc;

use axum::extract::{NestedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::engine::Engine;

use super::api;
use super::auth::{AdminKey, Authorize};
use super::error::{AdminError, ApiError, PageError};
use super::html;
use super::state::{AdminState, Ctx};
use super::test_send;

/// The admin router for the host to [`nest`](axum::Router::nest) under a path of its own:
///
/// | route | what it is |
/// | --- | --- |
/// | `GET /` | the tenant's workflows and their webhook actions, each with a "View webhook log" link |
/// | `GET /log?workflow=&action=&record=&status=&since=&until=&page=` | the log, newest first, 50 a page |
/// | `GET /deliveries/{id}` | one delivery: attempts, why it failed, headers (secrets redacted), body, Redeliver |
/// | `POST /deliveries/{id}/redeliver` | redelivers (form token required), then 303 to the new delivery |
/// | `POST /actions/pause`, `/actions/resume` | pauses or resumes an action (form `workflow`, `action`, token), 303 to `/` |
/// | `GET /usage?day=` | a day's calls against the allowance, and calls per day for 30 days (inline SVG) |
/// | `GET /test?workflow=&action=`, `POST /test` | "Send a test": a sample record, the real request and the answer |
/// | `GET /api/session` | `{tenant, user, csrf_token}` |
/// | `GET /api/workflows`, `/api/log`, `/api/deliveries/{id}`, `/api/usage` | the pages' data as JSON |
/// | `POST /api/deliveries/{id}/redeliver` | with the token in `x-csrf-token`: 201 `{id, redelivery_of}` |
/// | `POST /api/actions/pause`, `/api/actions/resume` | `{workflow, action}` with the token: `{changed}` / `{resumed}` |
/// | `POST /api/test` | `{workflow, action, fields}` with the token in `x-csrf-token`: the request sent and the answer |
///
/// Every request first goes through `authorize`; a refusal answers 401 or 403 as the host says, and a caller
/// without a tenant gets 403. Everything after that is confined to the caller's tenant: another tenant's
/// delivery id answers 404, as an unknown one does.
///
/// State-changing requests need the caller's form token: an HMAC-SHA256 under `key` of the caller's tenant, user
/// and the engine's current UTC day (taken for that day and the next). The pages carry it in a hidden field; API
/// clients read it from `GET /api/session` and send it in `x-csrf-token`. Another site can neither read it
/// (no CORS headers are sent) nor forge it, and a browser's `Sec-Fetch-Site: cross-site` is refused even with it.
pub fn router(engine: Engine, authorize: impl Authorize, key: AdminKey) -> Router {
    let state = AdminState { engine, authorize: Arc::new(authorize), key: Arc::new(key) };
    Router::new()
        .route("/", get(html::workflows))
        .route("/log", get(html::log))
        .route("/deliveries/{id}", get(html::delivery))
        .route("/deliveries/{id}/redeliver", post(html::redeliver))
        .route("/actions/{what}", post(html::pause_or_resume))
        .route("/usage", get(html::usage))
        .route("/test", get(test_send::form).post(test_send::send))
        .route("/api/session", get(api::session))
        .route("/api/workflows", get(api::workflows))
        .route("/api/log", get(api::log))
        .route("/api/deliveries/{id}", get(api::delivery))
        .route("/api/deliveries/{id}/redeliver", post(api::redeliver))
        .route("/api/actions/{what}", post(api::pause_or_resume))
        .route("/api/usage", get(api::usage))
        .route("/api/test", post(test_send::api))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(state.clone(), authorize_request))
        .with_state(state)
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Asks the host who the caller is, and hands the request on with its [`Ctx`], or answers the refusal.
async fn authorize_request(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let caller = state.authorize.authorize(&parts).map_err(AdminError::Refused).and_then(|caller| {
        if caller.tenant.trim().is_empty() {
            Err(AdminError::NoTenant)
        } else {
            Ok(caller)
        }
    });
    match caller {
        Ok(caller) => {
            let base = parts
                .extensions
                .get::<NestedPath>()
                .map(|nested| nested.as_str().trim_end_matches('/').to_owned())
                .unwrap_or_default();
            let token = state.token(&caller);
            parts.extensions.insert(Ctx { caller, base, token });
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) if is_api(parts.uri.path()) => ApiError(error).into_response(),
        Err(error) => PageError(error).into_response(),
    }
}

async fn no_route(request: Request) -> Response {
    answer(&request, AdminError::NoRoute)
}

async fn wrong_method(request: Request) -> Response {
    answer(&request, AdminError::WrongMethod)
}

/// An error about the request's path, as JSON under `/api` and as a page elsewhere.
fn answer(request: &Request, error: fn(String) -> AdminError) -> Response {
    let path = request.uri().path().chars().take(200).collect::<String>();
    if is_api(&path) {
        ApiError(error(path)).into_response()
    } else {
        PageError(error(path)).into_response()
    }
}
