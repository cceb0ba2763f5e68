//! `POST /api/v1/power/{board_id}/{on|off|cycle|status}`: only the holder of the board's
//! lease or an admin; answers once the PDU has done it.

use crate::api::{PowerAction, PowerResult, codes};
use crate::auth::Role;
use crate::power::PowerError;
use crate::server::error::ApiPath;
use crate::server::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

pub async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath((board_id, action)): ApiPath<(String, String)>,
) -> Result<Json<PowerResult>, ApiError> {
    let caller = state.caller(&headers)?;
    let action: PowerAction = action.parse().map_err(ApiError::bad_request)?;
    let board = state
        .boards
        .get(&board_id)
        .ok_or_else(|| ApiError::not_found(format!("unknown board '{board_id}'")))?;
    // Power cuts the holder's work: a user (also on a daemon without tokens) must hold it.
    if caller.role != Role::Admin {
        let boards = state.store.boards(state.clock.now_ms()).await?;
        let holder = boards
            .iter()
            .find(|b| b.id == board_id)
            .and_then(|b| b.lease.as_ref())
            .map(|l| l.holder.clone());
        match holder {
            Some(holder) if caller.may_act_for(&holder) => {}
            Some(holder) => {
                return Err(ApiError::forbidden(format!(
                    "board {board_id} is held by {holder}, not by {}; only the lease holder \
                     or an admin may power it",
                    caller.name
                )));
            }
            None => {
                return Err(ApiError::forbidden(format!(
                    "board {board_id} is not leased; lease it first (only the lease holder or \
                     an admin may power it)"
                )));
            }
        }
    }
    match state.power.act(board, action).await {
        Ok(result) => {
            tracing::info!(
                board = %board_id,
                %action,
                by = %caller.name,
                pdu = %result.pdu,
                outlet = result.outlet,
                state = ?result.state,
                attempts = result.attempts,
                elapsed_ms = result.elapsed_ms,
                "power action done"
            );
            Ok(Json(result))
        }
        Err(e) => {
            tracing::warn!(board = %board_id, %action, by = %caller.name, error = %e, "power action failed");
            let (status, code) = match e {
                PowerError::NoPdu { .. } => (StatusCode::BAD_REQUEST, codes::NO_PDU),
                PowerError::Failed { .. } => (StatusCode::BAD_GATEWAY, codes::PDU_FAILED),
            };
            Err(ApiError::new(status, code, e.to_string()))
        }
    }
}
