//! The identity platform's v2.0 token endpoint, client-credentials grant only:
//! `POST /{tenant}/oauth2/v2.0/token`.
//!
//! Checks run in the order the real service reports them (tenant, grant, client, secret, scope) and
//! fail with its `AADSTS` codes, so the relay's classification of token errors can be tested.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::error::IdentityError;
use crate::state::{Counters, FaultTarget, SimState};

/// The only scope the client-credentials grant accepts for Graph.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Handles a token request.
pub async fn issue(
    State(state): State<Arc<SimState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    Counters::bump(&state.stats.token_requests);

    let path = format!("/{tenant}/oauth2/v2.0/token");
    let fault = state.lock().take_fault(FaultTarget::Token, &path);
    if let Some(fault) = fault {
        return injected_fault(fault.status, fault.retry_after);
    }

    match check_request(&state, &tenant, &headers, &body) {
        Ok(()) => token_response(&state),
        Err(error) => {
            tracing::info!(tenant, code = error.code, "token request refused");
            error.into_response()
        }
    }
}

/// Validates the request; `Ok` means a token may be issued.
fn check_request(
    state: &SimState,
    tenant: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), IdentityError> {
    let bad_request = StatusCode::BAD_REQUEST;
    if !tenant.eq_ignore_ascii_case(&state.tenant_id) {
        return Err(IdentityError::new(
            bad_request,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID \
                 and are signing into the correct cloud."
            ),
        ));
    }

    let mut form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    // The secret may also come as HTTP Basic credentials instead of form fields.
    if let Some((id, secret)) = basic_credentials(headers) {
        form.entry("client_id".into()).or_insert(id);
        form.entry("client_secret".into()).or_insert(secret);
    }
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");

    let grant_type = field("grant_type");
    if grant_type != "client_credentials" {
        return Err(IdentityError::new(
            bad_request,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }

    let client_id = field("client_id");
    if !client_id.eq_ignore_ascii_case(&state.client_id) || client_id.is_empty() {
        return Err(IdentityError::new(
            bad_request,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory \
                 '{tenant}'. The application may not be installed by the tenant's administrator, \
                 or the request went to the wrong tenant."
            ),
        ));
    }

    if !form.contains_key("client_secret") {
        return Err(IdentityError::new(
            bad_request,
            "invalid_request",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or \
             'client_secret'.",
        ));
    }
    if field("client_secret") != state.client_secret {
        return Err(IdentityError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Send the client secret value, not the client \
                 secret ID, of a secret added to app '{client_id}'."
            ),
        ));
    }

    let scope = field("scope");
    if scope != GRAPH_DEFAULT_SCOPE {
        return Err(IdentityError::new(
            bad_request,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope \
                 '{scope}' is not valid; the client credentials grant needs \
                 '{GRAPH_DEFAULT_SCOPE}'."
            ),
        ));
    }
    Ok(())
}

/// `client_id:client_secret` from an `Authorization: Basic` header, each part form-decoded.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((decode(id), decode(secret)))
}

/// The success answer, with a fresh token.
fn token_response(state: &SimState) -> Response {
    let token = state.issue_token();
    let lifetime = state.token_lifetime_seconds;
    let expires_in = if state.expires_in_as_string {
        json!(lifetime.to_string())
    } else {
        json!(lifetime)
    };
    let body = json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token,
    });
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    response
}

/// The answer to an injected token fault: a transient identity platform error.
fn injected_fault(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (code, description) = if status == StatusCode::TOO_MANY_REQUESTS {
        (
            90055,
            "The tenant is throttled: there are too many incoming requests. Try again later.",
        )
    } else {
        (90024, "A transient error has occurred. Try again.")
    };
    let mut response =
        IdentityError::new(status, "temporarily_unavailable", code, description).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
