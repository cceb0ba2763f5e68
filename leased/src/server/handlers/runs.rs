//! Run history: socv records a run's start, state changes, console lines and result
//! (`/api/v1/runs…`); the store keeps them and its outbox carries them to Prefect.
//!
//! Writing a run is for its holder (or an admin); reading history is for every caller.

use crate::api::{
    DEFAULT_RUN_QUERY_LIMIT, MAX_LOG_BATCH_LINES, MAX_LOG_LINE_BYTES, MAX_RUN_QUERY_LIMIT, Run,
    RunLogs, RunQuery, RunStart, RunState, RunUpdate, check_run_id,
};
use crate::auth::Caller;
use crate::server::error::{ApiJson, ApiPath, ApiQuery};
use crate::server::{ApiError, AppState};
use crate::store::{StoreError, new_id};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// Longest free text (binary path, argument, message) a run record takes.
const MAX_TEXT_BYTES: usize = 4096;
/// Most arguments a run record takes.
const MAX_ARGS: usize = 256;

fn check_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(ApiError::bad_request(format!(
            "{field}: longer than {MAX_TEXT_BYTES} bytes ({})",
            value.len()
        )));
    }
    Ok(())
}

/// The wire form: the stored run with its Prefect UI link.
pub fn to_api(state: &AppState, mut run: Run) -> Run {
    if let (Some(p), Some(prefect)) = (run.prefect.as_mut(), state.config.prefect.as_ref()) {
        p.url = Some(prefect.flow_run_url(&p.flow_run_id));
    }
    run
}

pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RunStart>,
) -> Result<Response, ApiError> {
    let caller = state.caller(&headers)?;
    let id = match req.id {
        Some(id) => {
            check_run_id(&id).map_err(|e| ApiError::bad_request(format!("id: {e}")))?;
            id
        }
        None => new_id("r"),
    };
    let board = state.boards.get(&req.board_id).ok_or_else(|| {
        ApiError::not_found(format!("board_id: unknown board '{}'", req.board_id))
    })?;
    if req.binary.trim().is_empty() {
        return Err(ApiError::bad_request("binary: must not be empty"));
    }
    check_text("binary", &req.binary)?;
    if req.args.len() > MAX_ARGS {
        return Err(ApiError::bad_request(format!(
            "args: more than {MAX_ARGS} arguments ({})",
            req.args.len()
        )));
    }
    for (i, a) in req.args.iter().enumerate() {
        check_text(&format!("args[{i}]"), a)?;
    }
    if let Some(m) = &req.message {
        check_text("message", m)?;
    }
    if let Some(lease_id) = &req.lease_id {
        let lease = state
            .store
            .lease(lease_id, state.clock.now_ms())
            .await?
            .ok_or_else(|| ApiError::not_found(format!("lease_id: unknown lease '{lease_id}'")))?;
        if !caller.may_act_for(&lease.holder) {
            return Err(ApiError::forbidden(format!(
                "lease_id: lease '{lease_id}' is held by {}, not by {}",
                lease.holder, caller.name
            )));
        }
        if lease.board_id != req.board_id {
            return Err(ApiError::bad_request(format!(
                "lease_id: lease '{lease_id}' is of board '{}', not '{}'",
                lease.board_id, req.board_id
            )));
        }
    }
    let run = Run {
        id,
        lease_id: req.lease_id,
        board_id: board.board_id.clone(),
        family: req.family.unwrap_or_else(|| board.soc_family.clone()),
        location: req.location.unwrap_or_else(|| board.lab_location.clone()),
        holder: caller.name.clone(),
        binary: req.binary,
        args: req.args,
        priority: req.priority,
        message: req.message,
        ..Run::default()
    };
    let (run, created) = state
        .runs
        .run_start(run, state.config.run_retention, state.clock.now_ms())
        .await?;
    if created {
        state.outbox.wake();
        tracing::info!(run = %run.id, board = %run.board_id, holder = %run.holder, "run started");
        Ok((StatusCode::CREATED, Json(to_api(&state, run))).into_response())
    } else if run.holder != caller.name || run.board_id != board.board_id {
        // Another run of that id: a retried POST repeats the same holder and board.
        Err(ApiError::new(
            StatusCode::CONFLICT,
            crate::api::codes::BAD_REQUEST,
            format!(
                "id: run '{}' was recorded before by {} on {}; choose another id",
                run.id, run.holder, run.board_id
            ),
        ))
    } else {
        Ok((StatusCode::OK, Json(to_api(&state, run))).into_response())
    }
}

/// Reads a run the caller may write.
async fn owned_run(state: &AppState, caller: &Caller, id: &str) -> Result<Run, ApiError> {
    let run = state
        .runs
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown run '{id}'")))?;
    if !caller.may_act_for(&run.holder) {
        return Err(ApiError::forbidden(format!(
            "run '{id}' belongs to {}, not to {}",
            run.holder, caller.name
        )));
    }
    Ok(run)
}

pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RunUpdate>,
) -> Result<Json<Run>, ApiError> {
    let caller = state.caller(&headers)?;
    let before = owned_run(&state, &caller, &id).await?;
    if let Some(m) = &req.message {
        check_text("message", m)?;
    }
    if let Some(b) = &req.board_id
        && !state.boards.contains_key(b)
    {
        return Err(ApiError::not_found(format!(
            "board_id: unknown board '{b}'"
        )));
    }
    for (i, c) in req.cases.iter().enumerate() {
        check_text(&format!("cases[{i}].name"), &c.name)?;
    }
    let run = state
        .runs
        .run_update(&id, req, state.clock.now_ms())
        .await?;
    if run.state != before.state {
        state.outbox.wake();
        tracing::info!(run = %id, state = %run.state, "run state");
        if run.state.is_terminal() {
            let run = to_api(&state, run.clone());
            let url = run.prefect.as_ref().and_then(|p| p.url.clone());
            state.notifier.run_ended(&run, url);
        }
    }
    Ok(Json(to_api(&state, run)))
}

pub async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RunLogs>,
) -> Result<StatusCode, ApiError> {
    let caller = state.caller(&headers)?;
    owned_run(&state, &caller, &id).await?;
    if req.lines.len() > MAX_LOG_BATCH_LINES {
        return Err(ApiError::bad_request(format!(
            "lines: {} lines in one batch; at most {MAX_LOG_BATCH_LINES} (split the batch)",
            req.lines.len()
        )));
    }
    if let Some((i, l)) = req
        .lines
        .iter()
        .enumerate()
        .find(|(_, l)| l.message.len() > MAX_LOG_LINE_BYTES)
    {
        return Err(ApiError::bad_request(format!(
            "lines[{i}].message: {} bytes; at most {MAX_LOG_LINE_BYTES} (split the line)",
            l.message.len()
        )));
    }
    if !req.lines.is_empty() {
        state
            .runs
            .run_logs(&id, req.lines, state.clock.now_ms())
            .await?;
        state.outbox.wake();
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(mut query): ApiQuery<RunQuery>,
) -> Result<Json<Vec<Run>>, ApiError> {
    state.caller(&headers)?;
    let limit = query.limit.unwrap_or(DEFAULT_RUN_QUERY_LIMIT);
    if limit == 0 || limit > MAX_RUN_QUERY_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit: {limit} is out of range 1..={MAX_RUN_QUERY_LIMIT}"
        )));
    }
    query.limit = Some(limit);
    let runs = state.runs.runs(&query).await?;
    Ok(Json(runs.into_iter().map(|r| to_api(&state, r)).collect()))
}

pub async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Run>, ApiError> {
    state.caller(&headers)?;
    let run = state
        .runs
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown run '{id}'")))?;
    Ok(Json(to_api(&state, run)))
}

/// Marks Crashed the runs left Pending or Running whose client is gone: their lease has ended
/// (released, expired) or, for a run without a lease, nothing was heard of it for `max_ttl`.
/// Runs at start (a daemon killed mid-run) and then periodically.
pub async fn crash_abandoned(state: &AppState) {
    let Ok(runs) = state.runs.unfinished_runs().await else {
        return;
    };
    let now = state.clock.now_ms();
    for run in runs {
        let gone = match &run.lease_id {
            Some(lease) => match state.store.lease(lease, now).await {
                Ok(Some(l)) => l.ended.is_some(),
                Ok(None) => true,
                Err(_) => return,
            },
            None => {
                let last = run.started_at_ms.unwrap_or(run.created_at_ms);
                now.saturating_sub(last) > state.config.max_ttl.as_millis() as u64
            }
        };
        if !gone {
            continue;
        }
        let update = RunUpdate {
            state: RunState::Crashed,
            message: Some(
                "socv stopped reporting: the run's lease ended before the run did \
                 (socv killed, or its machine lost the daemon)"
                    .into(),
            ),
            ..RunUpdate::default()
        };
        match state.runs.run_update(&run.id, update, now).await {
            Ok(run) => {
                tracing::warn!(run = %run.id, board = %run.board_id, "run abandoned; marked crashed");
                state.outbox.wake();
                let run = to_api(state, run);
                let url = run.prefect.as_ref().and_then(|p| p.url.clone());
                state.notifier.run_ended(&run, url);
            }
            // It ended meanwhile (its socv was only late, or another daemon marked it).
            Err(StoreError::RunTransition { .. }) => {}
            Err(e) => tracing::warn!(run = %run.id, error = %e, "marking an abandoned run crashed"),
        }
    }
}
