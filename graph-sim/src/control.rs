//! The `/_sim` control plane, used by tests and the demo to drive the simulator: deliver a message
//! (which triggers change notifications), send a lifecycle event, change the access policy, inject
//! faults and latency, and read the counters.
//!
//! No authentication: the simulator only listens on loopback.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ControlError;
use crate::ids;
use crate::notify;
use crate::state::{
    BodyType, EmailAddress, Fault, FaultTarget, SimState, StoredAttachment, StoredMessage,
};

/// Fax documents can be large; the control plane accepts bodies up to this size.
const MAX_CONTROL_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The `/_sim` routes, to be nested under `/_sim`.
pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/mailboxes/{address}/messages", post(deliver_message))
        .route("/lifecycle", post(lifecycle))
        .route("/access-scope", put(access_scope))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/latency", put(latency))
        .route("/stats", get(stats))
        .route("/stats/reset", post(reset_stats))
        .layer(DefaultBodyLimit::max(MAX_CONTROL_BODY_BYTES))
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(body)
        .map_err(|e| ControlError::bad_request(format!("invalid JSON request body: {e}")))
}

/// A message to put into a mailbox's Inbox.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewMessage {
    from: EmailAddress,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
    #[serde(default = "text_body")]
    body_type: BodyType,
    #[serde(default)]
    attachments: Vec<NewAttachment>,
}

fn text_body() -> BodyType {
    BodyType::Text
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewAttachment {
    name: String,
    #[serde(default = "octet_stream")]
    content_type: String,
    content_base64: String,
}

fn octet_stream() -> String {
    "application/octet-stream".to_string()
}

/// `POST /_sim/mailboxes/{address}/messages`: stores the message, then notifies every live
/// subscription on the mailbox that watches new messages, waiting for each webhook's answer.
async fn deliver_message(
    State(state): State<Arc<SimState>>,
    Path(address): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    let new: NewMessage = parse_body(&body)?;
    let mailbox = state
        .find_mailbox(&address)
        .ok_or_else(|| ControlError::not_found(format!("no mailbox '{address}' is configured")))?;
    let message = build_message(new, &mailbox.inbox_folder_id)?;

    let subscriptions = {
        let mut inner = state.lock();
        inner
            .messages
            .entry(mailbox.user_id.clone())
            .or_default()
            .push(message.clone());
        inner
            .live_subscriptions(Utc::now())
            .iter()
            .filter(|s| s.user_id == mailbox.user_id && s.wants_created_in_inbox())
            .cloned()
            .collect::<Vec<_>>()
    };
    tracing::info!(
        mailbox = mailbox.address,
        subscriptions = subscriptions.len(),
        "message delivered"
    );

    let mut notifications = Vec::new();
    for subscription in &subscriptions {
        let payload = notify::change_notification(subscription, &state.tenant_id, &message);
        let status = notify::deliver(&state, &subscription.notification_url, &payload).await;
        notifications.push(json!({ "subscriptionId": subscription.id, "status": status }));
    }

    let answer = json!({
        "id": message.id,
        "immutableId": message.immutable_id,
        "internetMessageId": message.internet_message_id,
        "notifications": notifications,
    });
    Ok((StatusCode::CREATED, Json(answer)))
}

fn build_message(new: NewMessage, inbox_folder_id: &str) -> Result<StoredMessage, ControlError> {
    let now = Utc::now();
    let attachments = new
        .attachments
        .into_iter()
        .map(|a| {
            let bytes = STANDARD.decode(a.content_base64.trim()).map_err(|e| {
                ControlError::bad_request(format!(
                    "attachment '{}': contentBase64 is not base64: {e}",
                    a.name
                ))
            })?;
            Ok(StoredAttachment {
                id: ids::default_item_id(),
                name: a.name,
                content_type: a.content_type,
                bytes,
                last_modified: now,
            })
        })
        .collect::<Result<Vec<_>, ControlError>>()?;
    let as_recipient = |address: String| EmailAddress {
        name: address.clone(),
        address,
    };
    let sender_domain = new
        .from
        .address
        .rsplit_once('@')
        .map_or("graph-sim.local", |(_, d)| d);
    let internet_message_id = format!(
        "<{}@{sender_domain}>",
        ids::guid().replace('-', "").to_uppercase()
    );

    Ok(StoredMessage {
        id: ids::default_item_id(),
        immutable_id: ids::immutable_item_id(),
        internet_message_id,
        change_key: ids::change_key(),
        conversation_id: ids::conversation_id(),
        parent_folder_id: inbox_folder_id.to_string(),
        received: now,
        subject: new.subject,
        body: new.body,
        body_type: new.body_type,
        from: new.from,
        to: new.to.into_iter().map(as_recipient).collect(),
        cc: new.cc.into_iter().map(as_recipient).collect(),
        attachments,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LifecycleRequest {
    subscription_id: String,
    lifecycle_event: String,
}

/// `POST /_sim/lifecycle`: posts a lifecycle notification to the subscription's
/// lifecycleNotificationUrl; `subscriptionRemoved` also deletes the subscription. Any event name
/// is sent as given, so that clients can be tested with events Graph may add later.
async fn lifecycle(
    State(state): State<Arc<SimState>>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let request: LifecycleRequest = parse_body(&body)?;
    let subscription = {
        let mut inner = state.lock();
        let live = inner.live_subscriptions(Utc::now());
        let index = live
            .iter()
            .position(|s| s.id.eq_ignore_ascii_case(&request.subscription_id))
            .ok_or_else(|| {
                ControlError::not_found(format!(
                    "no live subscription '{}'",
                    request.subscription_id
                ))
            })?;
        if request.lifecycle_event == "subscriptionRemoved" {
            live.remove(index)
        } else {
            live[index].clone()
        }
    };
    let Some(url) = &subscription.lifecycle_notification_url else {
        return Err(ControlError {
            status: StatusCode::CONFLICT,
            message: format!(
                "subscription '{}' has no lifecycleNotificationUrl; it can only be set at creation",
                subscription.id
            ),
        });
    };

    let payload =
        notify::lifecycle_notification(&subscription, &state.tenant_id, &request.lifecycle_event);
    let status = notify::deliver(&state, url, &payload).await;
    Ok(Json(json!({ "status": status })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessScope {
    out_of_scope: Vec<String>,
}

/// `PUT /_sim/access-scope`: replaces the set of mailboxes outside the app's access policy.
async fn access_scope(
    State(state): State<Arc<SimState>>,
    body: Bytes,
) -> Result<StatusCode, ControlError> {
    let scope: AccessScope = parse_body(&body)?;
    state.lock().out_of_scope = scope
        .out_of_scope
        .iter()
        .map(|a| a.to_lowercase())
        .collect();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FaultRequest {
    #[serde(default = "graph_target")]
    target: FaultTarget,
    status: u16,
    #[serde(default = "one")]
    count: u32,
    retry_after: Option<u64>,
    path_contains: Option<String>,
}

fn graph_target() -> FaultTarget {
    FaultTarget::Graph
}

fn one() -> u32 {
    1
}

/// `POST /_sim/faults`: the next `count` matching requests answer `status`.
async fn add_fault(
    State(state): State<Arc<SimState>>,
    body: Bytes,
) -> Result<StatusCode, ControlError> {
    let request: FaultRequest = parse_body(&body)?;
    if !(400..=599).contains(&request.status) {
        return Err(ControlError::bad_request(format!(
            "status {} is not an error status; use 400 to 599",
            request.status
        )));
    }
    if request.count == 0 {
        return Err(ControlError::bad_request("count must be at least 1"));
    }
    state.lock().faults.push(Fault {
        target: request.target,
        status: request.status,
        remaining: request.count,
        retry_after: request.retry_after,
        path_contains: request.path_contains,
    });
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /_sim/faults`: drops every pending fault.
async fn clear_faults(State(state): State<Arc<SimState>>) -> StatusCode {
    state.lock().faults.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LatencyRequest {
    message_delay_ms: u64,
}

/// `PUT /_sim/latency` `{"messageDelayMs":n}`: each message GET holds its mailbox concurrency slot
/// this much longer, so that concurrency limits can be observed.
async fn latency(
    State(state): State<Arc<SimState>>,
    body: Bytes,
) -> Result<StatusCode, ControlError> {
    let request: LatencyRequest = parse_body(&body)?;
    state.lock().message_delay = Duration::from_millis(request.message_delay_ms);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /_sim/stats`
async fn stats(State(state): State<Arc<SimState>>) -> Json<crate::Stats> {
    Json(state.stats.snapshot())
}

/// `POST /_sim/stats/reset`
async fn reset_stats(State(state): State<Arc<SimState>>) -> StatusCode {
    state.stats.reset();
    StatusCode::NO_CONTENT
}
