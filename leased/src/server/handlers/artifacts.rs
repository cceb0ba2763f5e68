//! `PUT` and `GET /api/v1/artifacts/{sha256}`: the binaries of remote runs, uploaded once and
//! fetched by the worker that runs them (see `crate::artifacts`).

use crate::api::{ArtifactInfo, codes};
use crate::artifacts::{ArtifactError, Stored};
use crate::server::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

impl From<ArtifactError> for ApiError {
    fn from(e: ArtifactError) -> ApiError {
        let status = match &e {
            ArtifactError::BadName(_) | ArtifactError::Mismatch { .. } | ArtifactError::Cut(_) => {
                StatusCode::BAD_REQUEST
            }
            ArtifactError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ArtifactError::Missing(_) => StatusCode::NOT_FOUND,
            ArtifactError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let code = match status {
            StatusCode::BAD_REQUEST => codes::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE => codes::PAYLOAD_TOO_LARGE,
            StatusCode::NOT_FOUND => codes::NOT_FOUND,
            _ => codes::INTERNAL,
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "artifact store");
        }
        ApiError::new(status, code, e.to_string())
    }
}

/// Stores the request's body as the artifact `sha256`: 201 new, 200 already there.
pub async fn put(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = state.caller(&headers)?;
    let limit = state.artifacts.config().max_bytes;
    // Said before a byte is read when the client says how much it sends.
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > limit
    {
        return Err(ArtifactError::TooLarge { limit }.into());
    }
    let stored = state
        .artifacts
        .put(&sha256, body.into_data_stream())
        .await?;
    let (status, size) = match stored {
        Stored::Created { size } => (StatusCode::CREATED, size),
        Stored::Existing { size } => (StatusCode::OK, size),
    };
    tracing::info!(artifact = %sha256, size, holder = %caller.name, new = status == StatusCode::CREATED, "artifact stored");
    let artifacts = state.artifacts.clone();
    tokio::spawn(async move {
        let removed = artifacts.prune(std::time::SystemTime::now()).await;
        if removed > 0 {
            tracing::info!(removed, "artifacts past their retention removed");
        }
    });
    Ok((status, Json(ArtifactInfo { sha256, size })).into_response())
}

/// The artifact's bytes.
pub async fn get(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.caller(&headers)?;
    let (file, size) = state.artifacts.get(&sha256).await?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        body,
    )
        .into_response())
}
