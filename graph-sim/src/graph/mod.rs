//! Microsoft Graph v1.0, the part the relay calls: subscriptions and message reads.
//!
//! Every route sits behind the gate (`gate.rs`), which authenticates and renders errors.

pub mod messages;
pub mod subscriptions;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware;
use axum::routing::get;
use serde::de::DeserializeOwned;

use crate::error::GraphError;
use crate::gate::gate;
use crate::state::SimState;

/// The `/v1.0` routes, to be nested under `/v1.0`.
pub fn routes(state: Arc<SimState>) -> Router<Arc<SimState>> {
    Router::new()
        .route(
            "/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route(
            "/subscriptions/{id}",
            get(subscriptions::get)
                .patch(subscriptions::update)
                .delete(subscriptions::delete),
        )
        .route("/users/{user}/messages/{message}", get(messages::get))
        .fallback(unknown_segment)
        .layer(middleware::from_fn_with_state(state, gate))
}

/// Graph's answer to a path it has no resource for.
async fn unknown_segment(uri: Uri) -> GraphError {
    let segment = uri
        .path()
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("")
        .to_string();
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("Resource not found for the segment '{segment}'."),
    )
}

/// The `Prefer` preferences the simulator understands. Graph applies them to the one request
/// that carries them; they may come comma-separated in one header or in several headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prefer {
    /// `IdType="ImmutableId"`
    pub immutable_id: bool,
    /// `outlook.body-content-type="text"`
    pub text_body: bool,
}

impl Prefer {
    /// Reads every `Prefer` header of a request.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut prefer = Prefer::default();
        let preferences = headers
            .get_all(header::HeaderName::from_static("prefer"))
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        for preference in preferences {
            let Some((name, value)) = preference.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "idtype" => prefer.immutable_id = value.eq_ignore_ascii_case("ImmutableId"),
                "outlook.body-content-type" => {
                    prefer.text_body = value.eq_ignore_ascii_case("text")
                }
                _ => {}
            }
        }
        prefer
    }
}

/// Parses a JSON request body, answering Graph's 400 when it is not valid.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, GraphError> {
    serde_json::from_slice(body).map_err(|e| {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "Unable to read JSON request payload. Please ensure Content-Type header is set \
                 and payload is of valid JSON format. ({e})"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn prefer_is_read_from_several_headers_and_comma_lists() {
        let mut headers = HeaderMap::new();
        headers.append(
            "prefer",
            HeaderValue::from_static("odata.maxpagesize=10, IdType=\"ImmutableId\""),
        );
        headers.append(
            "prefer",
            HeaderValue::from_static("outlook.body-content-type=\"text\""),
        );

        assert_eq!(
            Prefer::from_headers(&headers),
            Prefer {
                immutable_id: true,
                text_body: true
            }
        );
    }

    #[test]
    fn without_prefer_ids_are_default_and_bodies_as_stored() {
        let mut headers = HeaderMap::new();
        headers.append("prefer", HeaderValue::from_static("IdType=\"RestId\""));

        assert_eq!(Prefer::from_headers(&headers), Prefer::default());
    }
}
