//! Leases: acquire (`POST /api/v1/lease`), list, read, renew and release.

use crate::api::{Console, Lease, LeaseRequest, RenewRequest};
use crate::auth::Caller;
use crate::server::error::{ApiJson, ApiPath, OptionalJson};
use crate::server::{ApiError, AppState, LONG_POLL_MAX};
use crate::store::{Acquire, AcquireOutcome, LeaseRecord, QueueTerms, StoreError, Target};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Longest wait a request may ask for (a wait "without limit" is sent as a year).
const MAX_WAIT: Duration = Duration::from_secs(366 * 24 * 3600);

/// The wire form of a lease; the console and its credentials only for the holder or an admin.
pub fn to_api(state: &AppState, caller: &Caller, lease: &LeaseRecord) -> Lease {
    let mut out = lease.to_api();
    if caller.may_act_for(&lease.holder) && lease.ended.is_none() {
        out.console = state.boards.get(&lease.board_id).map(|b| Console {
            host: b.board_ip.clone(),
            port: b.telnet_port,
            username: b.telnet_username.clone(),
            password: b.telnet_password.as_ref().map(|p| p.expose().to_string()),
            login_prompt: Some(b.login_prompt.clone())
                .filter(|p| p != crate::api::DEFAULT_LOGIN_PROMPT),
            password_prompt: Some(b.password_prompt.clone())
                .filter(|p| p != crate::api::DEFAULT_PASSWORD_PROMPT),
        });
    }
    out
}

fn ttl_ms(state: &AppState, ttl_s: Option<u64>) -> Result<u64, ApiError> {
    let max = state.config.max_ttl;
    let ttl = match ttl_s {
        None => state.config.default_ttl,
        Some(0) => return Err(ApiError::bad_request("ttl_s: must be at least 1 second")),
        Some(s) => Duration::from_secs(s).min(max),
    };
    Ok(ttl.as_millis() as u64)
}

pub async fn acquire(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LeaseRequest>,
) -> Result<Response, ApiError> {
    let caller = state.caller(&headers)?;
    let target = match (req.board_family, req.board_id) {
        (Some(f), None) if !f.is_empty() => Target::Family(f),
        (None, Some(b)) if !b.is_empty() => Target::Board(b),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "board_family and board_id: give one of them, not both",
            ));
        }
        _ => {
            return Err(ApiError::bad_request(
                "board_family or board_id: one of them is required",
            ));
        }
    };
    let now = state.clock.now_ms();
    let queue = match req.wait_s {
        None | Some(0) => None,
        Some(s) => Some(QueueTerms {
            lapse_ms: (LONG_POLL_MAX + state.config.ticket_grace).as_millis() as u64,
            give_up_at: Some(now + Duration::from_secs(s).min(MAX_WAIT).as_millis() as u64),
        }),
    };
    let acquire = Acquire {
        target,
        location: req.location.filter(|l| !l.is_empty()),
        priority: req.priority.unwrap_or_default(),
        holder: caller.name.clone(),
        ttl_ms: ttl_ms(&state, req.ttl_s)?,
        queue,
    };
    match state.store.acquire(&acquire, now).await {
        Ok(AcquireOutcome::Granted(lease)) => {
            state.metrics.granted();
            tracing::info!(lease = %lease.id, board = %lease.board_id, holder = %lease.holder, "lease granted");
            Ok((StatusCode::CREATED, Json(to_api(&state, &caller, &lease))).into_response())
        }
        Ok(AcquireOutcome::Queued { ticket, position }) => {
            state.metrics.queued();
            state.note_waiting(&ticket, position);
            Ok((StatusCode::ACCEPTED, Json(ticket.to_api(position))).into_response())
        }
        Err(e @ (StoreError::NoneFree(_) | StoreError::NoHealthyBoard { .. })) => {
            state.metrics.refused();
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<Lease>>, ApiError> {
    let caller = state.caller(&headers)?;
    let leases = state.store.leases(state.clock.now_ms()).await?;
    Ok(Json(
        leases.iter().map(|l| to_api(&state, &caller, l)).collect(),
    ))
}

/// Reads a lease the caller may act on.
async fn owned_lease(state: &AppState, caller: &Caller, id: &str) -> Result<LeaseRecord, ApiError> {
    let lease = state
        .store
        .lease(id, state.clock.now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown lease '{id}'")))?;
    if !caller.may_act_for(&lease.holder) {
        return Err(ApiError::forbidden(format!(
            "lease '{id}' is held by {}, not by {}",
            lease.holder, caller.name
        )));
    }
    Ok(lease)
}

pub async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Lease>, ApiError> {
    let caller = state.caller(&headers)?;
    let lease = state
        .store
        .lease(&id, state.clock.now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown lease '{id}'")))?;
    if let Some(how) = lease.ended {
        return Err(StoreError::LeaseEnded { id, how }.into());
    }
    Ok(Json(to_api(&state, &caller, &lease)))
}

pub async fn renew(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    OptionalJson(req): OptionalJson<RenewRequest>,
) -> Result<Json<Lease>, ApiError> {
    let caller = state.caller(&headers)?;
    let lease = owned_lease(&state, &caller, &id).await?;
    let ttl = match req.ttl_s {
        Some(_) => ttl_ms(&state, req.ttl_s)?,
        None => lease.ttl_ms,
    };
    let renewed = state.store.renew(&id, ttl, state.clock.now_ms()).await?;
    state.metrics.renewed();
    Ok(Json(to_api(&state, &caller, &renewed)))
}

pub async fn release(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Lease>, ApiError> {
    let caller = state.caller(&headers)?;
    let holder = (caller.role != crate::auth::Role::Admin).then_some(caller.name.as_str());
    let lease = state
        .store
        .release_held(&id, holder, state.clock.now_ms())
        .await?;
    state.metrics.released();
    tracing::info!(lease = %id, board = %lease.board_id, by = %caller.name, "lease released");
    Ok(Json(to_api(&state, &caller, &lease)))
}
