//! The sim lab's PDU over HTTP: the `http` driver's default URLs
//! (`{base_url}/outlets/{outlet}/on|off|cycle|status`), pdudaemon's
//! `GET /power/control/{on|off|reboot}?hostname=…&port=…[&delay=…]`, and the sim's own fault
//! and state API (`/boards`, `/boards/{id}`, `/boards/{id}/fault`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::board::Board;
use super::fault::Fault;
use super::{SimError, SimShared};

/// The actions of the `http` driver's URLs.
const OUTLET_ACTIONS: &[&str] = &["on", "off", "cycle", "status"];
/// pdudaemon's default reboot delay.
const PDUDAEMON_REBOOT_DELAY: Duration = Duration::from_secs(5);

pub(crate) fn router(lab: Arc<SimShared>) -> Router {
    Router::new()
        .route(
            "/outlets/{outlet}/{action}",
            get(outlet_action).post(outlet_action).put(outlet_action),
        )
        .route("/power/control/{action}", get(pdudaemon_control))
        .route("/boards", get(list_boards))
        .route("/boards/{id}", get(one_board))
        .route(
            "/boards/{id}/fault",
            get(one_board).post(set_fault).put(set_fault),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; see /boards, /outlets/{outlet}/{on|off|cycle|status}, \
                 /power/control/{on|off|reboot}",
            )
        })
        .with_state(lab)
}

/// The error body leased uses too: `{"error": {"code": …, "message": …}}`.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    (status, axum::Json(body)).into_response()
}

fn sim_error(e: &SimError) -> Response {
    match e {
        SimError::UnknownBoard { .. } => {
            error(StatusCode::NOT_FOUND, "unknown_board", e.to_string())
        }
        SimError::BadFault { .. } => error(StatusCode::BAD_REQUEST, "bad_fault", e.to_string()),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "power_failed",
            e.to_string(),
        ),
    }
}

fn outlet_state(board: &Board) -> Value {
    let state = if board.powered() { "on" } else { "off" };
    json!({"outlet": board.info.outlet, "state": state})
}

async fn outlet_action(
    State(lab): State<Arc<SimShared>>,
    Path((outlet, action)): Path<(String, String)>,
) -> Response {
    let Some(board) = outlet
        .parse::<u32>()
        .ok()
        .and_then(|outlet| lab.board_on_outlet(outlet))
    else {
        let outlets = lab.boards.len();
        return error(
            StatusCode::NOT_FOUND,
            "unknown_outlet",
            format!("no outlet `{outlet}` on this PDU; its outlets are 1 to {outlets}"),
        );
    };
    let result = match action.as_str() {
        "on" => board.power(true).await,
        "off" => board.power(false).await,
        "cycle" => board.cycle(lab.settings.cycle_off_time).await,
        "status" => Ok(()),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "unknown_action",
                format!(
                    "unknown outlet action `{action}`; one of: {}",
                    OUTLET_ACTIONS.join(", ")
                ),
            );
        }
    };
    match result {
        Ok(()) => axum::Json(outlet_state(board)).into_response(),
        Err(e) => sim_error(&e),
    }
}

/// pdudaemon's answers, byte for byte.
fn pdudaemon_answer(ok: bool) -> Response {
    let (status, body) = if ok {
        (StatusCode::OK, "OK - accepted request\n")
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "Invalid request\n")
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /power/control/{on|off|reboot}?hostname=H&port=N[&delay=S]`, answered when done.
async fn pdudaemon_control(
    State(lab): State<Arc<SimShared>>,
    Path(action): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    if !matches!(action.as_str(), "on" | "off" | "reboot") {
        return (StatusCode::NOT_FOUND, "404: Not Found").into_response();
    }
    let Ok(Query(query)) = query else {
        return pdudaemon_answer(false);
    };
    let board = match (query.get("hostname"), query.get("port")) {
        (Some(hostname), Some(port)) if *hostname == lab.pdudaemon_hostname => port
            .trim()
            .parse::<u32>()
            .ok()
            .and_then(|outlet| lab.board_on_outlet(outlet)),
        _ => None,
    };
    let Some(board) = board else {
        return pdudaemon_answer(false);
    };
    let delay = match query.get("delay") {
        None if action == "reboot" => PDUDAEMON_REBOOT_DELAY,
        None => Duration::ZERO,
        Some(delay) => match delay.trim().parse::<f64>() {
            Ok(secs) if (0.0..=86_400.0).contains(&secs) => Duration::from_secs_f64(secs),
            _ => return pdudaemon_answer(false),
        },
    };
    let delay = delay.min(lab.settings.max_pdudaemon_delay);
    let result = match action.as_str() {
        "reboot" => board.cycle(delay).await,
        // pdudaemon still sleeps a delay given with on/off (deprecated, but it does).
        on_off => {
            tokio::time::sleep(delay).await;
            board.power(on_off == "on").await
        }
    };
    if let Err(e) = &result {
        tracing::warn!("pdudaemon {action} of outlet {}: {e}", board.info.outlet);
    }
    pdudaemon_answer(result.is_ok())
}

async fn list_boards(State(lab): State<Arc<SimShared>>) -> Response {
    let boards: Vec<_> = lab.boards.iter().map(|b| b.status()).collect();
    axum::Json(json!({ "boards": boards })).into_response()
}

async fn one_board(State(lab): State<Arc<SimShared>>, Path(id): Path<String>) -> Response {
    match lab.board(&id) {
        Ok(board) => axum::Json(board.status()).into_response(),
        Err(e) => sim_error(&e),
    }
}

/// `POST /boards/{id}/fault` with `{"kind": "slow_link", "value": 1200}`.
async fn set_fault(
    State(lab): State<Arc<SimShared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let board = match lab.board(&id) {
        Ok(board) => board,
        Err(e) => return sim_error(&e),
    };
    let bad = |message: String| error(StatusCode::BAD_REQUEST, "bad_request", message);
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return bad(format!("the body is not JSON: {e}")),
    };
    let Some(kind) = request.get("kind").and_then(Value::as_str) else {
        return bad(r#"expected {"kind": "<fault kind>", "value": <number>}"#.to_owned());
    };
    let value = match request.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => return bad(format!("`value` must be a number, not {other}")),
    };
    match Fault::from_parts(kind, value) {
        Ok(fault) => {
            board.fault.send_replace(fault);
            tracing::info!(board = %board.info.board_id, %fault, "fault set");
            axum::Json(board.status()).into_response()
        }
        Err(source) => sim_error(&SimError::BadFault {
            board_id: board.info.board_id.clone(),
            source,
        }),
    }
}
