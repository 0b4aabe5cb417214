//! Serve mode: the webhook over HTTP, a consumer of the internal queue, and the subscribe timer,
//! in one long-running process, on the same use cases as the Lambda functions. For local runs,
//! the demo, and teams who deploy a container instead of Lambda.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use axum::{
    Router,
    body::{Body, Bytes, to_bytes},
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::wiring::{self, AwsClients};
use crate::{
    config::RelayConfig,
    domain::handshake::validation_token,
    error::RelayError,
    usecase::{
        Deadline,
        accept::{Method, Webhook},
        process::{Processor, QueueRecord},
        subscribe::Subscriber,
    },
};

/// Time budget for one batch from the internal queue; keep it under the queue's visibility
/// timeout so a record is not delivered twice while still being worked on.
const BATCH_BUDGET: Duration = Duration::from_secs(25);

/// Graph gives a webhook 3 seconds for its whole reply; a body that takes longer than this to
/// arrive is not from Graph.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `serve.listen` and runs until `shutdown` turns true.
pub async fn run(
    config: Arc<RelayConfig>,
    aws: AwsClients,
    shutdown: watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let listener = tokio::net::TcpListener::bind(&config.serve.listen)
        .await
        .map_err(|e| {
            RelayError::configuration(format!("serve.listen = {}: {e}", config.serve.listen))
        })?;
    run_on(listener, config, aws, shutdown).await
}

/// Runs on a listener the caller bound, until `shutdown` turns true.
pub async fn run_on(
    listener: tokio::net::TcpListener,
    config: Arc<RelayConfig>,
    aws: AwsClients,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let graph = wiring::graph(&config, &aws)?;
    let webhook = Arc::new(wiring::webhook(&config, &aws));
    let processor = Arc::new(wiring::processor(&config, &aws, graph.clone()));
    let subscriber = Arc::new(wiring::subscriber(&config, &aws, graph));

    let address: SocketAddr = listener
        .local_addr()
        .map_err(|e| RelayError::transient(e.to_string()))?;
    info!(%address, "webhook listening");

    let router = router(webhook);
    let mut server_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = server_shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });
    let consumer = tokio::spawn(consume(
        aws.sqs.clone(),
        config.aws.internal_queue_url.clone(),
        processor,
        shutdown.clone(),
    ));
    let timer = tokio::spawn(subscribe_timer(
        subscriber,
        Duration::from_secs(config.serve.subscribe_interval_seconds),
        shutdown.clone(),
    ));

    let _ = shutdown.wait_for(|stop| *stop).await;
    info!("shutting down");
    let _ = tokio::join!(server, consumer, timer);
    Ok(())
}

/// The webhook as an HTTP service: every path and method goes to the same handler, which tells
/// a handshake from a notification by the query, as under Lambda.
pub fn router(webhook: Arc<Webhook>) -> Router {
    Router::new().fallback(webhook_route).with_state(webhook)
}

async fn webhook_route(State(webhook): State<Arc<Webhook>>, request: Request) -> Response {
    let method = if request.method() == axum::http::Method::POST {
        Method::Post
    } else {
        Method::Other
    };
    let query = request.uri().query().map(str::to_owned);
    // LIMITATION: serve mode bounds the time to read a body but not to read the headers; put it
    // behind a load balancer or proxy that does when it faces the internet.
    let body = to_bytes(request.into_body(), webhook.max_body_bytes());
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, body).await {
        Ok(Ok(body)) => body,
        // A handshake is answered whatever its body, as under Lambda.
        _ if validation_token(query.as_deref()).is_some() => Bytes::new(),
        Ok(Err(error)) if is_length_limit(&error) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "notification body too large").into_response();
        }
        Ok(Err(_)) => return (StatusCode::BAD_REQUEST, "request body unreadable").into_response(),
        Err(_) => return (StatusCode::REQUEST_TIMEOUT, "request body too slow").into_response(),
    };

    let reply = webhook.handle(method, query.as_deref(), &body).await;

    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Whether reading a body failed because it was over the limit (rather than, say, cut off).
fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Receives from the internal queue and hands each batch to the processor, as Lambda's SQS event
/// source does: records that succeed are deleted, the others reappear after the visibility
/// timeout.
async fn consume(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    processor: Arc<Processor>,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let receive = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send();
        let received = tokio::select! {
            received = receive => received,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(e) => {
                warn!(reason = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive from the internal queue failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }

        let records: Vec<QueueRecord> = messages
            .iter()
            .map(|m| QueueRecord {
                id: m.message_id.clone().unwrap_or_default(),
                body: m.body.clone().unwrap_or_default(),
            })
            .collect();
        let retry = processor
            .process_batch(&records, Deadline::after(BATCH_BUDGET))
            .await;

        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| m.message_id.as_ref().is_some_and(|id| !retry.contains(id)))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect();
        if done.is_empty() {
            continue;
        }
        let deleted = sqs
            .delete_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(done))
            .send()
            .await;
        if let Err(e) = deleted {
            // The records come back after the visibility timeout; the ledger makes that harmless.
            let reason = aws_sdk_sqs::error::DisplayErrorContext(&e);
            warn!(%reason, "delete from the internal queue failed");
        }
    }
}

async fn subscribe_timer(
    subscriber: Arc<Subscriber>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let reports = subscriber
            .run(Utc::now(), Deadline::after(Duration::from_secs(60)))
            .await;
        let failed = reports
            .iter()
            .filter(|r| {
                matches!(
                    r.outcome,
                    crate::usecase::subscribe::MailboxOutcome::Failed(_)
                )
            })
            .count();
        if failed > 0 {
            error!(
                failed,
                "subscribe step left mailboxes without a subscription"
            );
        }
    }
}
