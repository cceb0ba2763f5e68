//! `GET /api/v1/boards` and the per-board admin and health endpoints.

use crate::api::{Availability, BoardHealth, BoardView, DrainRequest, HealthReport};
use crate::server::error::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::server::{ApiError, AppState};
use crate::store::BoardState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;

/// The public view of a board: store state joined with the lab description (no credentials).
pub fn view(state: &AppState, b: &BoardState) -> BoardView {
    let board = state.boards.get(&b.id);
    BoardView {
        id: b.id.clone(),
        family: b.family.clone(),
        revision: board.and_then(|x| x.soc_revision.clone()),
        location: b.location.clone(),
        address: board.map(|x| x.address()).unwrap_or_default(),
        availability: if b.lease.is_some() {
            Availability::Leased
        } else {
            Availability::Free
        },
        health: if b.drained {
            BoardHealth::Maintenance
        } else if b.unhealthy {
            BoardHealth::Unhealthy
        } else {
            BoardHealth::Healthy
        },
        holder: b.lease.as_ref().map(|l| l.holder.clone()),
        lease_id: b.lease.as_ref().map(|l| l.id.clone()),
        lease_expires_at_ms: b.lease.as_ref().map(|l| l.expires_at),
        failures: b.failures,
        last_used_ms: b.last_used,
        drain_reason: b.drain_reason.clone(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardsQuery {
    family: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<BoardsQuery>,
) -> Result<Json<Vec<BoardView>>, ApiError> {
    state.caller(&headers)?;
    let boards = state.store.boards(state.clock.now_ms()).await?;
    let views: Vec<BoardView> = boards
        .iter()
        .filter(|b| q.family.as_ref().is_none_or(|f| &b.family == f))
        .map(|b| view(&state, b))
        .collect();
    if let (Some(f), true) = (&q.family, views.is_empty()) {
        return Err(ApiError::not_found(format!("unknown board family '{f}'")));
    }
    Ok(Json(views))
}

async fn set_drain(
    state: AppState,
    headers: HeaderMap,
    id: String,
    reason: Option<String>,
    drained: bool,
) -> Result<Json<BoardView>, ApiError> {
    let caller = state.caller(&headers)?;
    if !caller.may_administer() {
        return Err(ApiError::forbidden(format!(
            "draining and undraining boards needs an admin token ({} is a user)",
            caller.name
        )));
    }
    let b = state
        .store
        .set_drain(&id, reason.clone(), drained, state.clock.now_ms())
        .await?;
    tracing::info!(board = %id, by = %caller.name, drained, reason = ?reason, "board drain changed");
    Ok(Json(view(&state, &b)))
}

pub async fn drain(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    OptionalJson(req): OptionalJson<DrainRequest>,
) -> Result<Json<BoardView>, ApiError> {
    set_drain(state, headers, id, req.reason, true).await
}

pub async fn undrain(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    OptionalJson(_req): OptionalJson<DrainRequest>,
) -> Result<Json<BoardView>, ApiError> {
    set_drain(state, headers, id, None, false).await
}

pub async fn report_health(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(report): ApiJson<HealthReport>,
) -> Result<Json<BoardView>, ApiError> {
    let caller = state.caller(&headers)?;
    let b = state
        .store
        .report_health(
            &id,
            report.ok,
            state.config.failure_threshold,
            state.clock.now_ms(),
        )
        .await?;
    if !report.ok {
        tracing::warn!(
            board = %id, by = %caller.name, failures = b.failures, unhealthy = b.unhealthy,
            reason = report.reason.as_deref().unwrap_or(""), "infrastructure failure reported"
        );
    }
    Ok(Json(view(&state, &b)))
}
