//! `GET /api/v1/health`: daemon, store and lab status.

use crate::api::{API_VERSION, DaemonHealth, StoreStatus};
use crate::server::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<DaemonHealth>, ApiError> {
    let caller = state.caller(&headers)?;
    let (ok, error, counts) = match state.store.counts(state.clock.now_ms()).await {
        Ok(c) => (true, None, c),
        Err(e) => (false, Some(e.to_string()), Default::default()),
    };
    Ok(Json(DaemonHealth {
        status: if ok { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
        store: StoreStatus {
            backend: state.store.backend().into(),
            location: state.store.location(),
            ok,
            error,
        },
        boards: if ok {
            counts.boards
        } else {
            state.lab.boards.len() as u32
        },
        leases: counts.leases,
        waiting: counts.waiting,
        caller: caller.name,
        caller_role: caller.role.as_str().into(),
        prefect: state.outbox.status().await,
        notifications: state.notifier.status(),
    }))
}
