//! The JSON API under `/api`: the same views as the pages, and redelivery. Errors are `{"error": "..."}`.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::data;
use super::error::{AdminError, ApiError};
use super::params::{self, LogFilters};
use super::state::{AdminState, Ctx};

/// `GET /api/session`: who the caller is, and the token their redeliveries carry in `x-csrf-token`.
pub(crate) async fn session(Extension(ctx): Extension<Ctx>) -> Response {
    json(
        StatusCode::OK,
        &serde_json::json!({ "tenant": ctx.caller.tenant, "user": ctx.caller.user, "csrf_token": ctx.token }),
    )
}

/// `GET /api/workflows`.
pub(crate) async fn workflows(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, ApiError> {
    let workflows = data::workflows(&state.engine, &ctx.caller.tenant).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "workflows": workflows })))
}

/// What `POST /api/actions/{pause|resume}` takes.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ActionRef {
    workflow: String,
    action: String,
}

/// `POST /api/actions/pause` or `/api/actions/resume` with `{workflow, action}` and the caller's token in
/// `x-csrf-token`: `{changed}` for a pause (whether it was not paused yet), `{resumed}` (deliveries made due) for a
/// resume.
pub(crate) async fn pause_or_resume(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    Path(what): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if !state.same_site_post(&ctx, &headers, None) {
        return Err(AdminError::CrossSite.into());
    }
    let target: ActionRef = serde_json::from_slice(&body)
        .map_err(|e| AdminError::BadRequest(format!("the body is not {{\"workflow\": ..., \"action\": ...}}: {e}")))?;
    let answer = change_action(&state, &ctx, &what, &target.workflow, &target.action).await?;
    Ok(json(StatusCode::OK, &answer))
}

/// Pauses or resumes an action of the caller's tenant in the caller's name; what happened, as JSON.
pub(crate) async fn change_action(
    state: &AdminState,
    ctx: &Ctx,
    what: &str,
    workflow: &str,
    action: &str,
) -> Result<serde_json::Value, AdminError> {
    let (engine, tenant, by) = (&state.engine, &ctx.caller.tenant, &ctx.caller.user);
    match what {
        "pause" => Ok(serde_json::json!({ "changed": engine.pause_action(tenant, workflow, action, by).await? })),
        "resume" => Ok(serde_json::json!({ "resumed": engine.resume_action(tenant, workflow, action, by).await? })),
        other => Err(AdminError::NoRoute(format!("/actions/{}", other.chars().take(40).collect::<String>()))),
    }
}

/// `GET /api/log?workflow=&action=&record=&status=&since=&until=&page=`.
pub(crate) async fn log(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let filters = LogFilters::parse(query.as_deref())?;
    Ok(json(StatusCode::OK, &data::log_page(&state.engine, &ctx.caller.tenant, &filters).await?))
}

/// `GET /api/deliveries/{id}`.
pub(crate) async fn delivery(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = params::delivery_id(&id)?;
    Ok(json(StatusCode::OK, &data::delivery(&state.engine, &ctx.caller.tenant, id).await?))
}

/// `POST /api/deliveries/{id}/redeliver` with the caller's token in `x-csrf-token`: 201 and the new id.
pub(crate) async fn redeliver(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.same_site_post(&ctx, &headers, None) {
        return Err(AdminError::CrossSite.into());
    }
    let id = params::delivery_id(&id)?;
    let new_id = state.engine.redeliver(&ctx.caller.tenant, id).await?;
    let location = ctx.link(&format!("/api/deliveries/{new_id}"));
    let mut response = json(StatusCode::CREATED, &serde_json::json!({ "id": new_id, "redelivery_of": id }));
    if let Ok(value) = http::HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    Ok(response)
}

/// `GET /api/usage?day=`: the day asked for (today by default), today's date, and the last 30 days.
pub(crate) async fn usage(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let day = params::day(query.as_deref())?;
    Ok(json(StatusCode::OK, &data::usage(&state.engine, &ctx.caller.tenant, day).await?))
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-store")], body).into_response(),
        Err(e) => {
            let body = serde_json::json!({ "error": format!("the answer could not be written as JSON: {e}") });
            (StatusCode::INTERNAL_SERVER_ERROR, [(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
    }
}
