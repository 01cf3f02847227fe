//! API errors: one type, one mapping from error kinds to status codes, one
//! place where error bodies are rendered (see [`crate::gate`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_platform::{AuthError, Error};

/// An error on its way to becoming a response. The body is rendered by the
/// gate middleware, which knows the request id.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A generic error for a status that carries no body of ours (for
    /// instance axum's own 405).
    pub fn from_status(status: StatusCode, detail: Option<String>) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "invalid_request",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            s if s.is_server_error() => "internal",
            _ => "error",
        };
        let message = detail
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase());
        Self::new(status, code, message)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match err {
            Error::Invalid(m) => Self::new(StatusCode::BAD_REQUEST, "invalid", m),
            Error::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found", m),
            Error::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            Error::Sealed(m) => {
                tracing::error!(error = %m, "sealed value does not open");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "sealed_value", m)
            }
            Error::Forbidden(m) => Self::forbidden(m),
            Error::Unauthenticated(m) => Self::unauthenticated(m),
            Error::Unavailable(m) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
            Error::DeployFailed { message, .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "deploy_failed", message)
            }
            Error::Store(e) => {
                tracing::error!(error = %e, "store error");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the control-plane store failed; see the server log",
                )
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Store(e) => {
                tracing::error!(error = %e, "store error during authentication");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the control-plane store failed; see the server log",
                )
            }
            other => Self::unauthenticated(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}
