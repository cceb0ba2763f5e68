//! `GET /api/v1/workers`: the workers of the lab's Prefect work pool as Prefect sees them, with
//! the runs each holds.

use crate::api::{PoolWorkers, WorkerRun, WorkerView, codes};
use crate::server::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<PoolWorkers>, ApiError> {
    state.caller(&headers)?;
    let Some(prefect) = state.outbox.prefect() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NO_PREFECT,
            "leased has no Prefect (start it with PREFECT_API_URL): workers serve a Prefect work pool",
        ));
    };
    let pool = &state.config.work_pool;
    let failed = |e: crate::prefect::PrefectError| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::PREFECT_FAILED,
            format!("asking Prefect for work pool {pool}'s workers: {e}"),
        )
    };
    let seen = prefect.workers(pool).await.map_err(failed)?;
    let held = prefect.held_runs(pool).await.map_err(failed)?;
    let mut workers: Vec<WorkerView> = seen
        .into_iter()
        .map(|w| {
            let mine: Vec<_> = held
                .iter()
                .filter(|r| r.worker.as_deref() == Some(w.name.as_str()))
                .collect();
            WorkerView {
                location: mine.iter().find_map(|r| r.location.clone()),
                runs: mine
                    .iter()
                    .map(|r| WorkerRun {
                        flow_run_id: r.id.clone(),
                        name: r.name.clone(),
                        state: r.state.clone(),
                        board: r.board.clone(),
                    })
                    .collect(),
                name: w.name,
                status: w.status,
                last_heartbeat: w.last_heartbeat,
            }
        })
        .collect();
    workers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(PoolWorkers {
        pool: pool.clone(),
        workers,
    }))
}
