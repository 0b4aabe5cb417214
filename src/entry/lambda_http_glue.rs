//! The webhook under Lambda: converts the HTTP request that `lambda_http` built from the Function
//! URL or API Gateway (payload v2) event, and the webhook's reply back.

use lambda_http::{Body, Request, Response};

use crate::usecase::accept::{Method, Webhook};

// LIMITATION: lambda_http converts the event before this code runs, and panics on a
// `rawQueryString` with characters a URI cannot hold (a space, `<`, `"`) or on a body flagged
// base64 that is not. The runtime turns that into a failed invocation (a 5xx to the caller);
// Graph's own requests never carry such input.
/// Answers one webhook request. The query is read from the URI, which `lambda_http` builds from
/// the event's `rawQueryString` exactly as received, so the handshake token is decoded once,
/// here, with form rules.
pub async fn respond(webhook: &Webhook, request: Request) -> Response<Body> {
    let method = if request.method() == http::Method::POST {
        Method::Post
    } else {
        Method::Other
    };
    let query = request.uri().query().map(str::to_owned);
    let body: &[u8] = request.body().as_ref();

    let reply = webhook.handle(method, query.as_deref(), body).await;

    Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type)
        .header("x-content-type-options", "nosniff")
        .body(Body::Text(reply.body))
        .expect("status and headers are always valid")
}
