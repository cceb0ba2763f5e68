//! Queue tickets: long poll (`GET /api/v1/queue/{ticket}?wait_s=N`) and leaving the queue.

use super::lease::to_api;
use crate::api::TicketStatus;
use crate::server::error::{ApiPath, ApiQuery};
use crate::server::{ApiError, AppState, LONG_POLL_MAX};
use crate::store::TicketPoll;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// Between grant notifications, how often a long poll looks at the store anyway (a grant made
/// by a daemon whose notification was lost is still seen).
const RECHECK: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollQuery {
    wait_s: Option<u64>,
}

async fn check_owner(
    state: &AppState,
    headers: &HeaderMap,
    ticket: &str,
) -> Result<crate::auth::Caller, ApiError> {
    let caller = state.caller(headers)?;
    let t = state
        .store
        .ticket(ticket, state.clock.now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown or lapsed queue ticket '{ticket}'")))?;
    if !caller.may_act_for(&t.holder) {
        return Err(ApiError::forbidden(format!(
            "queue ticket '{ticket}' belongs to {}, not to {}",
            t.holder, caller.name
        )));
    }
    Ok(caller)
}

pub async fn poll(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(ticket): ApiPath<String>,
    ApiQuery(q): ApiQuery<PollQuery>,
) -> Result<Json<TicketStatus>, ApiError> {
    let caller = check_owner(&state, &headers, &ticket).await?;
    let wait = Duration::from_secs(q.wait_s.unwrap_or(0)).min(LONG_POLL_MAX);
    let deadline = Instant::now() + wait;
    // Subscribe before looking, so a grant between the look and the wait is not missed.
    let mut grants = state.store.subscribe_grants();
    loop {
        let polled = state
            .store
            .poll_ticket(&ticket, state.clock.now_ms())
            .await?;
        match &polled {
            TicketPoll::Waiting { ticket, position } => state.note_waiting(ticket, *position),
            TicketPoll::Granted(_) => state.done_waiting(&ticket),
        }
        if matches!(polled, TicketPoll::Granted(_)) || Instant::now() >= deadline {
            return Ok(Json(polled.into_status(|l| to_api(&state, &caller, &l))));
        }
        let until = deadline.min(Instant::now() + RECHECK);
        loop {
            tokio::select! {
                msg = grants.recv() => match msg {
                    Ok(t) if t == ticket => break,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => {
                        tokio::time::sleep_until(until).await;
                        break;
                    }
                },
                _ = tokio::time::sleep_until(until) => break,
            }
        }
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(ticket): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    check_owner(&state, &headers, &ticket).await?;
    state
        .store
        .cancel_ticket(&ticket, state.clock.now_ms())
        .await?;
    state.done_waiting(&ticket);
    Ok(StatusCode::NO_CONTENT)
}
