//! `/v1.0/subscriptions`: create (with the validation handshake), list, get, renew, delete.
//!
//! A create request is checked in the order Graph reports problems: changeType, the webhook URLs,
//! the resource, the access policy, clientState, the expiry, duplicates; only then is the webhook
//! called, and nothing is stored unless both handshakes succeed.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::GraphError;
use crate::graph::{Prefer, parse_json};
use crate::ids;
use crate::notify;
use crate::state::{CREATOR_ID, Counters, FolderScope, SimState, Subscription, change_set};

const ENTITY_CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity";
const COLLECTION_CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata#subscriptions";
/// Graph raises any shorter lifetime to this.
const MIN_LIFETIME_MINUTES: i64 = 45;
/// SUBRES's limit for clientState (the notification resource page says 255).
const MAX_CLIENT_STATE_CHARS: usize = 128;
const VALIDATION_FAILED: &str = "Subscription validation request failed. Response must exactly \
                                 match validationToken query parameter.";

/// The body of a create or renew request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionRequest {
    change_type: Option<String>,
    notification_url: Option<String>,
    lifecycle_notification_url: Option<String>,
    resource: Option<String>,
    expiration_date_time: Option<String>,
    client_state: Option<String>,
    latest_supported_tls_version: Option<String>,
}

/// `POST /v1.0/subscriptions`
pub async fn create(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), GraphError> {
    let request: SubscriptionRequest = parse_json(&body)?;
    let now = Utc::now();

    let change_type = check_change_type(request.change_type.as_deref())?;
    let notification_url = request.notification_url.unwrap_or_default();
    check_webhook_url("notificationUrl", &notification_url)?;
    if let Some(url) = &request.lifecycle_notification_url {
        check_webhook_url("lifecycleNotificationUrl", url)?;
    }
    let resource = request.resource.unwrap_or_default();
    let (user_id, scope) = resolve_resource(&state, &resource)?;
    if let Some(client_state) = &request.client_state
        && client_state.chars().count() > MAX_CLIENT_STATE_CHARS
    {
        return Err(GraphError::invalid_request(format!(
            "clientState must be at most {MAX_CLIENT_STATE_CHARS} characters long."
        )));
    }
    let expiration = expiration(&state, request.expiration_date_time.as_deref(), now)?;
    if let Some(existing) = find_duplicate(&state, &user_id, scope, &change_type) {
        return Err(duplicate(&existing));
    }

    validate_webhooks(
        &state,
        &notification_url,
        request.lifecycle_notification_url.as_deref(),
    )
    .await?;

    let subscription = Subscription {
        id: ids::guid(),
        resource,
        user_id,
        scope,
        change_type,
        client_state: request.client_state,
        notification_url,
        lifecycle_notification_url: request.lifecycle_notification_url,
        expiration,
        latest_supported_tls_version: request
            .latest_supported_tls_version
            .unwrap_or_else(|| "v1_2".to_string()),
        immutable_ids: Prefer::from_headers(&headers).immutable_id,
    };
    store(&state, subscription.clone())?;
    tracing::info!(
        subscription_id = subscription.id,
        mailbox = subscription.user_id,
        immutable_ids = subscription.immutable_ids,
        "subscription created"
    );
    Ok((
        StatusCode::CREATED,
        Json(entity_json(&state, &subscription)),
    ))
}

/// `GET /v1.0/subscriptions`
pub async fn list(State(state): State<Arc<SimState>>) -> Json<Value> {
    let mut inner = state.lock();
    let value: Vec<Value> = inner
        .live_subscriptions(Utc::now())
        .iter()
        .map(|s| subscription_json(&state, s))
        .collect();
    Json(json!({ "@odata.context": COLLECTION_CONTEXT, "value": value }))
}

/// `GET /v1.0/subscriptions/{id}`
pub async fn get(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, GraphError> {
    let subscription = find(&state, &id)?;
    Ok(Json(entity_json(&state, &subscription)))
}

/// `PATCH /v1.0/subscriptions/{id}`: renews (`expirationDateTime`) and may move the webhook
/// (`notificationUrl`, validated again).
pub async fn update(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, GraphError> {
    let request: SubscriptionRequest = parse_json(&body)?;
    let current = find(&state, &id)?;

    let expiration = match request.expiration_date_time.as_deref() {
        Some(raw) => expiration(&state, Some(raw), Utc::now())?,
        None => current.expiration,
    };
    let notification_url = match request.notification_url {
        Some(url) if url != current.notification_url => {
            check_webhook_url("notificationUrl", &url)?;
            validate_webhooks(&state, &url, None).await?;
            url
        }
        _ => current.notification_url,
    };

    let mut inner = state.lock();
    let subscription = inner
        .live_subscriptions(Utc::now())
        .iter_mut()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| not_found(&id))?;
    subscription.expiration = expiration;
    subscription.notification_url = notification_url;
    Ok(Json(entity_json(&state, subscription)))
}

/// `DELETE /v1.0/subscriptions/{id}`
pub async fn delete(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, GraphError> {
    let mut inner = state.lock();
    let live = inner.live_subscriptions(Utc::now());
    let index = live
        .iter()
        .position(|s| s.id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| not_found(&id))?;
    live.remove(index);
    Ok(StatusCode::NO_CONTENT)
}

/// A live subscription by id.
pub fn find(state: &SimState, id: &str) -> Result<Subscription, GraphError> {
    state
        .lock()
        .live_subscriptions(Utc::now())
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(id))
        .cloned()
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> GraphError {
    GraphError::resource_not_found(format!(
        "Resource '{id}' does not exist or one of its queried reference-property objects are not \
         present."
    ))
}

/// Checks `changeType`: a comma list of `created`, `updated`, `deleted`.
fn check_change_type(change_type: Option<&str>) -> Result<String, GraphError> {
    let Some(change_type) = change_type.filter(|c| !c.trim().is_empty()) else {
        return Err(GraphError::invalid_request("changeType must be provided."));
    };
    for item in change_type.split(',').map(str::trim) {
        if !matches!(item, "created" | "updated" | "deleted") {
            return Err(GraphError::invalid_request(format!(
                "Invalid 'changeType' attribute: '{item}'. Use created, updated or deleted, \
                 comma-separated."
            )));
        }
    }
    Ok(change_type.to_string())
}

/// Checks a webhook URL: required, and (in the simulator) to a loopback host.
fn check_webhook_url(field: &str, url: &str) -> Result<(), GraphError> {
    if url.is_empty() {
        return Err(GraphError::invalid_request(format!(
            "{field} must be provided."
        )));
    }
    notify::loopback_url(url)
        .map(|_| ())
        .map_err(|reason| GraphError::invalid_request(format!("Invalid {field}: {reason}.")))
}

/// Parses a message resource path into its mailbox id and folder scope:
/// `users/{id}/mailFolders('Inbox')/messages` or `users/{id}/messages`.
pub fn parse_resource(resource: &str) -> Option<(&str, FolderScope)> {
    let path = resource.strip_prefix('/').unwrap_or(resource);
    let (users, rest) = path.split_once('/')?;
    let (id, rest) = rest.split_once('/')?;
    if !users.eq_ignore_ascii_case("users") || id.is_empty() {
        return None;
    }
    match rest.to_ascii_lowercase().as_str() {
        "messages" => Some((id, FolderScope::AllMessages)),
        "mailfolders('inbox')/messages" => Some((id, FolderScope::Inbox)),
        _ => None,
    }
}

/// Resolves the subscription's mailbox, enforcing the access policy.
fn resolve_resource(state: &SimState, resource: &str) -> Result<(String, FolderScope), GraphError> {
    if resource.is_empty() {
        return Err(GraphError::invalid_request("resource must be provided."));
    }
    // LIMITATION: only the Inbox and the whole mailbox can be watched; other folders are 404.
    let (id, scope) = parse_resource(resource).ok_or_else(|| {
        GraphError::resource_not_found(format!(
            "The resource '{resource}' is not supported: use users/{{id}}/mailFolders('Inbox')/\
             messages or users/{{id}}/messages."
        ))
    })?;
    let mailbox = state.find_mailbox(id).ok_or_else(|| {
        GraphError::resource_not_found(format!(
            "The user '{id}' in resource '{resource}' does not exist."
        ))
    })?;
    if state.is_out_of_scope(mailbox) {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access to OData is \
             disabled.]",
        ));
    }
    Ok((mailbox.user_id.clone(), scope))
}

/// The normalised expiry: required, RFC 3339, at most the configured maximum ahead, at least 45
/// minutes ahead.
fn expiration(
    state: &SimState,
    raw: Option<&str>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, GraphError> {
    let raw =
        raw.ok_or_else(|| GraphError::invalid_request("expirationDateTime must be provided."))?;
    let requested = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| {
            GraphError::invalid_request(format!(
                "expirationDateTime '{raw}' is not a valid date-time; use RFC 3339, e.g. \
                 2026-05-08T10:00:00.0000000Z."
            ))
        })?
        .with_timezone(&Utc);
    let max = state.max_subscription_minutes;
    if requested > now + Duration::minutes(max) {
        return Err(GraphError::invalid_request(format!(
            "Subscription expiration can only be {max} minutes in the future."
        )));
    }
    Ok(requested.max(now + Duration::minutes(MIN_LIFETIME_MINUTES)))
}

/// A live subscription of this app for the same mailbox, folder and change types.
fn find_duplicate(
    state: &SimState,
    user_id: &str,
    scope: FolderScope,
    change_type: &str,
) -> Option<Subscription> {
    state
        .lock()
        .live_subscriptions(Utc::now())
        .iter()
        .find(|s| {
            s.user_id == user_id && s.scope == scope && s.change_set() == change_set(change_type)
        })
        .cloned()
}

fn duplicate(existing: &Subscription) -> GraphError {
    GraphError::new(
        StatusCode::CONFLICT,
        "ExtensionError",
        format!(
            "Subscription Id {} already exists for the requested combination",
            existing.id
        ),
    )
}

/// Runs the validation handshake on the notification URL, then on the lifecycle URL (two
/// requests even when the URLs are equal).
async fn validate_webhooks(
    state: &SimState,
    notification_url: &str,
    lifecycle_notification_url: Option<&str>,
) -> Result<(), GraphError> {
    for url in std::iter::once(notification_url).chain(lifecycle_notification_url) {
        if let Err(reason) = notify::validate_endpoint(&state.http, url).await {
            tracing::warn!(endpoint = url, reason, "validation handshake failed");
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                VALIDATION_FAILED,
            ));
        }
    }
    Ok(())
}

/// Stores a new subscription, unless a duplicate was created during the handshake.
fn store(state: &SimState, subscription: Subscription) -> Result<(), GraphError> {
    let mut inner = state.lock();
    let live = inner.live_subscriptions(Utc::now());
    let wanted = subscription.change_set();
    if let Some(existing) = live.iter().find(|s| {
        s.user_id == subscription.user_id
            && s.scope == subscription.scope
            && s.change_set() == wanted
    }) {
        return Err(duplicate(existing));
    }
    live.push(subscription);
    Counters::bump(&state.stats.subscriptions_created);
    Ok(())
}

/// A subscription as Graph lists it.
fn subscription_json(state: &SimState, s: &Subscription) -> Value {
    json!({
        "id": s.id,
        "resource": s.resource,
        "applicationId": state.client_id,
        "changeType": s.change_type,
        "clientState": s.client_state,
        "notificationUrl": s.notification_url,
        "lifecycleNotificationUrl": s.lifecycle_notification_url,
        "expirationDateTime": ids::graph_datetime_7(s.expiration),
        "creatorId": CREATOR_ID,
        "latestSupportedTlsVersion": s.latest_supported_tls_version,
        "includeResourceData": false,
        "encryptionCertificate": null,
        "encryptionCertificateId": null,
        "notificationUrlAppId": null,
    })
}

/// A single subscription, with its `@odata.context`.
fn entity_json(state: &SimState, s: &Subscription) -> Value {
    let mut value = json!({ "@odata.context": ENTITY_CONTEXT });
    if let (Value::Object(target), Value::Object(fields)) =
        (&mut value, subscription_json(state, s))
    {
        target.extend(fields);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_and_whole_mailbox_resources_are_understood() {
        assert_eq!(
            parse_resource("users/fax1@contoso.com/mailFolders('Inbox')/messages"),
            Some(("fax1@contoso.com", FolderScope::Inbox))
        );
        assert_eq!(
            parse_resource("/Users/5f0c1e2a/mailfolders('inbox')/Messages"),
            Some(("5f0c1e2a", FolderScope::Inbox))
        );
        assert_eq!(
            parse_resource("users/u1/messages"),
            Some(("u1", FolderScope::AllMessages))
        );
    }

    #[test]
    fn other_folders_and_shapes_are_not_supported() {
        for resource in [
            "users/u1/mailFolders('SentItems')/messages",
            "users/u1/mailFolders(\"Inbox\")/messages",
            "me/messages",
            "users//messages",
            "users/u1/events",
        ] {
            assert_eq!(parse_resource(resource), None, "{resource}");
        }
    }
}
