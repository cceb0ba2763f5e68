//! The JSON error answer and the extractors that turn bad input into it (never a 500).

use crate::api::{ErrorBody, ErrorDetail, codes};
use crate::auth::AuthError;
use crate::store::StoreError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// An error answer: status, a stable code, and a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let message = e.to_string();
        let (status, code) = match &e {
            StoreError::UnknownFamily(_)
            | StoreError::UnknownBoard(_)
            | StoreError::UnknownLease(_)
            | StoreError::UnknownTicket(_)
            | StoreError::UnknownRun(_) => (StatusCode::NOT_FOUND, codes::NOT_FOUND),
            StoreError::RunTransition { .. } => (StatusCode::CONFLICT, codes::RUN_ENDED),
            StoreError::LeaseEnded { .. } => (StatusCode::GONE, codes::LEASE_ENDED),
            StoreError::NotHolder { .. } => (StatusCode::FORBIDDEN, codes::FORBIDDEN),
            StoreError::NoneFree(_) => (StatusCode::SERVICE_UNAVAILABLE, codes::NO_BOARD_AVAILABLE),
            StoreError::NoHealthyBoard { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, codes::NO_HEALTHY_BOARD)
            }
            StoreError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, codes::STORE_UNAVAILABLE)
            }
            StoreError::Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL),
        };
        if status.is_server_error() && code != codes::NO_BOARD_AVAILABLE {
            tracing::warn!(error = %message, "store error");
        }
        ApiError::new(status, code, message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, e.to_string())
    }
}

/// `axum::Json` whose rejections are our JSON errors (400 naming the field, 413 when too large).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Every unreadable body is a 400 (axum says 422 for a wrong field and 415 for a missing
/// content type), except one that is too large.
fn json_rejection(r: JsonRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(r.status(), codes::PAYLOAD_TOO_LARGE, r.body_text())
    } else {
        ApiError::bad_request(r.body_text())
    }
}

/// A JSON body that may be absent (empty body means the default).
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                let status = r.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    codes::PAYLOAD_TOO_LARGE
                } else {
                    codes::BAD_REQUEST
                };
                ApiError::new(status, code, r.body_text())
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut de)
            .map(OptionalJson)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "Failed to deserialize the JSON body into the target type: {}: {}",
                    e.path(),
                    e.inner()
                ))
            })
    }
}

/// `axum::extract::Query` with JSON errors.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r: QueryRejection| ApiError::bad_request(r.body_text()))
    }
}

/// `axum::extract::Path` with JSON errors.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r: PathRejection| ApiError::bad_request(r.body_text()))
    }
}
