//! `POST /api/v1/remote-runs`: a test to run through the lab's Prefect work pool. leased checks
//! what it can before Prefect is asked (the family and board are the lab's, the binary was
//! uploaded, the numbers are in range), then makes a flow run of the pool's deployment in the
//! queue of its priority, keyed by the submission so that a retried request makes no second one.

use crate::api::{RemoteRun, RemoteRunRequest, check_run_id, codes};
use crate::artifacts::check_name;
use crate::prefect::{PrefectError, setup};
use crate::server::error::ApiJson;
use crate::server::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RemoteRunRequest>,
) -> Result<Response, ApiError> {
    let caller = state.caller(&headers)?;
    let (Some(prefect), Some(config)) = (state.outbox.prefect(), state.config.prefect.as_ref())
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NO_PREFECT,
            "leased has no Prefect (start it with PREFECT_API_URL): remote runs go through a \
             Prefect work pool",
        ));
    };
    check_run_id(&req.submission)
        .map_err(|e| ApiError::bad_request(format!("submission: {}", e.replace("run id", "id"))))?;
    if !state.lab.families().contains(req.board_family.as_str()) {
        return Err(ApiError::not_found(format!(
            "board_family: the lab has no {} boards (it has {})",
            req.board_family,
            state
                .lab
                .families()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(board) = &req.board {
        match state.boards.get(board) {
            None => {
                return Err(ApiError::not_found(format!(
                    "board: no board {board} in the lab"
                )));
            }
            Some(b) if b.soc_family != req.board_family => {
                return Err(ApiError::bad_request(format!(
                    "board: {board} is a {} board, not {}",
                    b.soc_family, req.board_family
                )));
            }
            Some(_) => {}
        }
    }
    let url = req.test_binary.starts_with("https://") || req.test_binary.starts_with("http://");
    if !url {
        check_name(&req.test_binary).map_err(|e| {
            ApiError::bad_request(format!(
                "test_binary: {e}; give the sha256 of a binary uploaded to PUT \
                 /api/v1/artifacts/{{sha256}}, or an http(s):// URL"
            ))
        })?;
        if state.artifacts.get(&req.test_binary).await.is_err() {
            return Err(ApiError::not_found(format!(
                "test_binary: no artifact {} (upload it first: PUT /api/v1/artifacts/{})",
                req.test_binary, req.test_binary
            )));
        }
    }
    if let Some(sha) = &req.sha256 {
        check_name(sha).map_err(|e| ApiError::bad_request(format!("sha256: {e}")))?;
    }
    let timeout = req.timeout_s.unwrap_or(1800);
    if !(1..=86_400).contains(&timeout) {
        return Err(ApiError::bad_request(format!(
            "timeout_s: {timeout} is not 1 to 86400 seconds"
        )));
    }
    let retries = req.retries.unwrap_or(2);
    if retries > 10 {
        return Err(ApiError::bad_request(format!(
            "retries: {retries} is not 0 to 10"
        )));
    }

    let pool = state.config.work_pool.clone();
    let priority = req.priority as u8;
    let queue = setup::queue_of(priority).unwrap_or("p2");
    let failed = |doing: &str, e: PrefectError| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::PREFECT_FAILED,
            format!("{doing}: {e}"),
        )
    };
    let name = setup::deployment_name(&pool);
    let deployment = prefect
        .get_json(&format!(
            "/deployments/name/{}/{name}",
            crate::prefect::FLOW_NAME
        ))
        .await
        .map_err(|e| {
            failed(
                &format!("finding the deployment {name} of work pool {pool}"),
                e,
            )
        })?;
    let deployment_id = deployment["id"].as_str().unwrap_or_default().to_owned();

    let mut parameters = json!({
        "test_binary": req.test_binary,
        "board_family": req.board_family,
        "priority": priority,
        "args": req.args,
        "timeout": timeout,
        "retries": retries,
    });
    for (key, value) in [
        ("board", &req.board),
        ("location", &req.location),
        ("sha256", &req.sha256),
    ] {
        if let Some(v) = value {
            parameters[key] = json!(v);
        }
    }
    let shown = req.name.clone().unwrap_or_else(|| {
        let binary = if url {
            req.test_binary
                .rsplit('/')
                .next()
                .unwrap_or("binary")
                .to_owned()
        } else {
            req.test_binary[..12].to_owned()
        };
        format!("{} {binary}", req.board_family)
    });
    let body = json!({
        "name": shown,
        "idempotency_key": format!("socv-remote:{}", req.submission),
        "work_queue_name": queue,
        "parameters": parameters,
        "tags": ["socv", format!("family:{}", req.board_family), format!("holder:{}", caller.name),
                 format!("priority:{priority}")],
    });
    let (made, created) = prefect
        .post_json_created(
            &format!("/deployments/{deployment_id}/create_flow_run"),
            &body,
        )
        .await
        .map_err(|e| match e {
            // The deployment's schema refused the parameters: the request's fault.
            PrefectError::Status {
                status: 409,
                message,
                ..
            } => ApiError::bad_request(format!("Prefect refused the run's parameters: {message}")),
            e => failed("creating the flow run", e),
        })?;
    let flow_run_id = made["id"].as_str().unwrap_or_default().to_owned();
    tracing::info!(flow_run = %flow_run_id, pool = %pool, queue, holder = %caller.name, created, "remote run submitted");
    let answer = RemoteRun {
        url: config.flow_run_url(&flow_run_id),
        flow_run_id,
        name: made["name"].as_str().unwrap_or(&shown).to_owned(),
        pool,
        queue: queue.to_owned(),
        created,
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}
