//! Error answers in the three shapes the simulator speaks:
//! - Graph's: `{"error":{"code","message","innerError"}}`;
//! - the identity platform's: `{"error","error_description":"AADSTSnnnn: …","error_codes",…}`;
//! - the control plane's own plain `{"error":"…"}`.
//!
//! Graph errors need the request's ids in their `innerError`, so a handler only returns a
//! [`GraphError`]; the gate in front of every `/v1.0` route renders the body (see `gate.rs`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use crate::ids;

/// A Graph error waiting to be rendered by the gate.
#[derive(Clone, Debug)]
pub struct GraphError {
    /// HTTP status.
    pub status: StatusCode,
    /// Graph's error `code`, e.g. `ErrorItemNotFound`.
    pub code: &'static str,
    /// Graph's error `message`.
    pub message: String,
    /// Seconds for a `Retry-After` header, when the error carries one.
    pub retry_after: Option<u64>,
}

impl GraphError {
    /// An error without `Retry-After`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `InvalidRequest`, Graph's answer to a subscription body it cannot accept.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    /// 404 `ResourceNotFound`.
    pub fn resource_not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFound", message)
    }

    /// The full response, with `innerError` ids.
    pub fn render(&self, request_id: &str, client_request_id: &str) -> Response {
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": ids::inner_error_date(Utc::now()),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                }
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl IntoResponse for GraphError {
    /// An empty response carrying the error as an extension; the gate renders the body.
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// An error of the identity platform's token endpoint.
#[derive(Clone, Debug)]
pub struct IdentityError {
    /// HTTP status (400 for most, 401 for a wrong secret).
    pub status: StatusCode,
    /// OAuth 2.0 `error`, e.g. `invalid_client`.
    pub error: &'static str,
    /// The AADSTS number, e.g. 7000215.
    pub code: u32,
    /// The description after `AADSTSnnnn: `.
    pub description: String,
}

impl IdentityError {
    /// Builds an error; `description` excludes the `AADSTSnnnn: ` prefix.
    pub fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> Self {
        IdentityError {
            status,
            error,
            code,
            description: description.into(),
        }
    }
}

impl IntoResponse for IdentityError {
    fn into_response(self) -> Response {
        let trace_id = ids::guid();
        let correlation_id = ids::guid();
        let timestamp = ids::identity_timestamp(Utc::now());
        // The real service repeats the ids in the description; clients sometimes log only that.
        let description = format!(
            "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} \
             Timestamp: {timestamp}",
            self.code, self.description
        );
        let body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        (self.status, Json(body)).into_response()
    }
}

/// An error of the `/_sim` control plane: `{"error":"…"}`.
#[derive(Clone, Debug)]
pub struct ControlError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl ControlError {
    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ControlError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        ControlError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}
