//! The HTML routes: each reads what the request asks for, gathers the view, and renders its page.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use http::HeaderMap;

use super::data;
use super::error::{AdminError, PageError};
use super::layout::html;
use super::pages;
use super::params::{self, LogFilters};
use super::state::{AdminState, Ctx};

/// `GET /`: the tenant's workflows and their webhook actions.
pub(crate) async fn workflows(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, PageError> {
    Ok(html(pages::workflows(&ctx, &data::workflows(&state.engine, &ctx.caller.tenant).await?)))
}

/// `POST /actions/pause` and `/actions/resume` (form fields `workflow`, `action`, `csrf_token`): pauses or resumes
/// a webhook action, then sends the browser back to the workflows (303).
pub(crate) async fn pause_or_resume(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    Path(what): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if !state.same_site_post(&ctx, &headers, field("csrf_token")) {
        return Err(AdminError::CrossSite.into());
    }
    let (workflow, action) = (field("workflow").unwrap_or_default(), field("action").unwrap_or_default());
    super::api::change_action(&state, &ctx, &what, workflow, action).await?;
    Ok(Redirect::to(&ctx.link("/")).into_response())
}

/// `GET /log`: a page of the log.
pub(crate) async fn log(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let filters = LogFilters::parse(query.as_deref())?;
    let page = data::log_page(&state.engine, &ctx.caller.tenant, &filters).await?;
    Ok(html(pages::log(&ctx, &filters, &page)))
}

/// `GET /deliveries/{id}`: one delivery.
pub(crate) async fn delivery(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = params::delivery_id(&id)?;
    let view = data::delivery(&state.engine, &ctx.caller.tenant, id).await?;
    Ok(html(pages::delivery(&ctx, &view)))
}

/// `POST /deliveries/{id}/redeliver`: redelivers, then sends the browser to the new delivery (303).
pub(crate) async fn redeliver(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let token = form.iter().find(|(name, _)| name == "csrf_token").map(|(_, value)| value.as_str());
    if !state.same_site_post(&ctx, &headers, token) {
        return Err(AdminError::CrossSite.into());
    }
    let id = params::delivery_id(&id)?;
    let new_id = state.engine.redeliver(&ctx.caller.tenant, id).await?;
    Ok(Redirect::to(&ctx.link(&format!("/deliveries/{new_id}"))).into_response())
}

/// `GET /usage?day=`: usage of a day (today by default) and the last 30 days.
pub(crate) async fn usage(
    State(state): State<AdminState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let day = params::day(query.as_deref())?;
    let view = data::usage(&state.engine, &ctx.caller.tenant, day).await?;
    Ok(html(pages::usage(&ctx, &view)))
}
