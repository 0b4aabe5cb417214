//! The gate in front of every `/v1.0` route: bearer-token authentication, request counting,
//! injected faults, and rendering of Graph error bodies with the request's ids.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::GraphError;
use crate::ids;
use crate::state::{Counters, FaultTarget, SimState, TokenCheck};

/// Authenticates, counts, maybe injects a fault, runs the route, and renders any Graph error.
pub async fn gate(State(state): State<Arc<SimState>>, request: Request, next: Next) -> Response {
    let request_id = ids::guid();
    // Graph echoes the caller's client-request-id, or reuses its own request id.
    let client_request_id = request
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());

    let response = match authenticate(&state, request.headers()) {
        Err(error) => error.into_response(),
        Ok(()) => {
            Counters::bump(&state.stats.graph_requests);
            let path = request.uri().path().to_string();
            let fault = state.lock().take_fault(FaultTarget::Graph, &path);
            match fault {
                Some(fault) => injected_fault(fault.status, fault.retry_after).into_response(),
                None => next.run(request).await,
            }
        }
    };

    finish(&state, response, &request_id, &client_request_id)
}

/// Checks `Authorization: Bearer <token>` against the issued tokens.
fn authenticate(state: &SimState, headers: &HeaderMap) -> Result<(), GraphError> {
    let unauthorized = |message: &str| {
        GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ if value.trim().is_empty() => "",
        _ => return Err(unauthorized("Access token validation failure.")),
    };
    if token.is_empty() {
        return Err(unauthorized("Access token is empty."));
    }
    match state.check_token(token) {
        TokenCheck::Valid => Ok(()),
        TokenCheck::Expired => Err(unauthorized(
            "Lifetime validation failed, the token is expired.",
        )),
        TokenCheck::Unknown => Err(unauthorized("Access token validation failure.")),
    }
}

/// The Graph error an injected fault answers with.
fn injected_fault(status: u16, retry_after: Option<u64>) -> GraphError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (code, message) = match status.as_u16() {
        429 => (
            "activityLimitReached",
            "The application or user has been throttled.",
        ),
        503 => (
            "serviceNotAvailable",
            "The service is temporarily unavailable. Try again later.",
        ),
        504 => (
            "gatewayTimeout",
            "The upstream service did not answer in time.",
        ),
        _ => ("generalException", "An unspecified error has occurred."),
    };
    GraphError {
        retry_after,
        ..GraphError::new(status, code, message)
    }
}

/// Renders a pending Graph error, counts 429s and adds the id headers Graph sends.
fn finish(
    state: &SimState,
    mut response: Response,
    request_id: &str,
    client_request_id: &str,
) -> Response {
    // The router's own 405 has no body; Graph answers it in its error shape.
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && response.extensions().get::<GraphError>().is_none()
    {
        response = GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest",
            "Specified HTTP method is not allowed for the request uri.",
        )
        .into_response();
    }
    if let Some(error) = response.extensions_mut().remove::<GraphError>() {
        response = error.render(request_id, client_request_id);
        if error.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/\
                     common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                ),
            );
        }
    }
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        Counters::bump(&state.stats.throttled);
    }
    for (name, value) in [
        ("request-id", request_id),
        ("client-request-id", client_request_id),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
