//! The webhook: where a Graph notification enters the relay.
//!
//! A request with a `validationToken` is Graph's handshake and is answered at once, with no
//! outbound call. Any other request is a notification POST: the body is parsed, each item is
//! authenticated against the cached subscription directory, and the authentic items go to the
//! internal queue in one batch call before the reply. Graph's whole budget is 3 seconds; this
//! path does at most one state read (cached) and one queue call.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::{sync::Mutex, time::Instant};
use tracing::{info, warn};

use crate::{
    domain::{
        authenticate::{Directory, Rejection, SubscriptionKey, authenticate},
        handshake::validation_token,
        notification::{NotificationCollection, QUEUE_SCHEMA, QueuedBatch, QueuedNotification},
    },
    error::RelayError,
    ports::{NotificationQueue, StateStore},
};

/// SQS takes at most 10 entries in one batch call.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// How often an unknown subscription id may force a directory reload. Bounds the state reads a
/// flood of forged ids can cause.
const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Rejected items logged one by one per POST; the rest are only counted in the POST's summary
/// line, so that one POST full of forged items cannot flood the logs.
const MAX_REJECTIONS_LOGGED: usize = 10;

/// The HTTP method, as far as the webhook cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Other,
}

/// The webhook's reply, independent of how HTTP reached it (Lambda or serve mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl WebhookResponse {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Why a notification body was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not a JSON `{"value":[...]}` document.
    Malformed(String),
}

/// The outcome of authenticating one POST's items.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Acceptance {
    pub queued: Vec<QueuedNotification>,
    /// Each dropped or ignored item: its subscription id as sent (untrusted) and the reason.
    pub rejected: Vec<(Option<String>, Rejection)>,
}

/// Parses a notification POST body.
pub fn parse_collection(body: &[u8]) -> Result<NotificationCollection, BodyError> {
    // The reason names where and what kind of error, never the body's text: a body may carry
    // message content or phone numbers.
    NotificationCollection::parse(body).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Io | serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "not a notification collection",
            serde_json::error::Category::Eof => "cut short",
        };
        BodyError::Malformed(format!("{kind} (line {}, column {})", e.line(), e.column()))
    })
}

/// Authenticates every item of a collection.
pub fn authenticate_all(collection: &NotificationCollection, directory: &Directory) -> Acceptance {
    let mut acceptance = Acceptance::default();
    for item in &collection.value {
        let Some(item) = item else {
            acceptance.rejected.push((None, Rejection::Malformed));
            continue;
        };
        match authenticate(item, directory) {
            Ok(notification) => acceptance.queued.push(notification),
            Err(reason) => acceptance
                .rejected
                .push((item.subscription_id.clone(), reason)),
        }
    }
    acceptance
}

/// Packs notifications into at most [`MAX_BATCH_ENTRIES`] queue message bodies, so that one
/// batch call carries any POST. Each body is a [`QueuedBatch`]; its size never exceeds the
/// POST's, because a queued item keeps only a subset of the item's fields.
pub fn pack_batch(notifications: Vec<QueuedNotification>) -> Vec<String> {
    if notifications.is_empty() {
        return Vec::new();
    }
    let per_entry = notifications.len().div_ceil(MAX_BATCH_ENTRIES);
    notifications
        .chunks(per_entry)
        .map(|chunk| {
            let batch = QueuedBatch {
                schema: QUEUE_SCHEMA.into(),
                notifications: chunk.to_vec(),
            };
            serde_json::to_string(&batch).expect("a queued batch always serializes")
        })
        .collect()
}

/// The webhook use case.
pub struct Webhook {
    directory: DirectoryCache,
    queue: Arc<dyn NotificationQueue>,
    max_body_bytes: usize,
}

impl Webhook {
    /// A webhook that authenticates against `state` (cached for `cache_for`) and queues to
    /// `queue`.
    pub fn new(
        state: Arc<dyn StateStore>,
        queue: Arc<dyn NotificationQueue>,
        cache_for: Duration,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            directory: DirectoryCache::new(state, cache_for),
            queue,
            max_body_bytes,
        }
    }

    /// The largest body accepted; bigger ones get 413.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Answers one HTTP request. `raw_query` is the query string as received (still
    /// percent-encoded).
    pub async fn handle(
        &self,
        method: Method,
        raw_query: Option<&str>,
        body: &[u8],
    ) -> WebhookResponse {
        if let Some(token) = validation_token(raw_query) {
            info!(outcome = "validated", "answered Graph's validation request");
            return WebhookResponse::text(200, token);
        }
        if method != Method::Post {
            return WebhookResponse::text(405, "notifications must be POSTed");
        }
        if body.len() > self.max_body_bytes {
            warn!(
                bytes = body.len(),
                limit = self.max_body_bytes,
                "notification body too large"
            );
            return WebhookResponse::text(413, "notification body too large");
        }
        let collection = match parse_collection(body) {
            Ok(collection) => collection,
            Err(BodyError::Malformed(reason)) => {
                warn!(%reason, "notification body is not a Graph notification collection");
                return WebhookResponse::text(400, "body is not a notification collection");
            }
        };

        let acceptance = match self.authenticate(&collection).await {
            Ok(acceptance) => acceptance,
            Err(error) => {
                warn!(reason = %error, "cannot read the subscription directory; Graph will retry");
                return WebhookResponse::text(503, "temporarily unable to accept notifications");
            }
        };
        log_rejections(&acceptance.rejected);

        let queued = acceptance.queued.len();
        if queued > 0
            && let Err(error) = self.queue.enqueue(&pack_batch(acceptance.queued)).await
        {
            warn!(reason = %error, items = queued, "queue write failed; Graph will retry");
            return WebhookResponse::text(503, "temporarily unable to accept notifications");
        }
        info!(
            queued,
            rejected = acceptance.rejected.len(),
            rejected_by_reason = ?rejection_counts(&acceptance.rejected),
            outcome = "accepted",
            "notification POST accepted"
        );
        WebhookResponse::text(202, "")
    }

    /// Authenticates the items; if one names a subscription the cached directory does not know,
    /// the directory is reloaded (at most once a second) and the items are checked again, so a
    /// subscription created a moment ago is recognised.
    async fn authenticate(
        &self,
        collection: &NotificationCollection,
    ) -> Result<Acceptance, RelayError> {
        let directory = self.directory.current().await?;
        let acceptance = authenticate_all(collection, &directory);
        let has_unknown = acceptance
            .rejected
            .iter()
            .any(|(_, r)| *r == Rejection::UnknownSubscription);
        if !has_unknown {
            return Ok(acceptance);
        }
        match self.directory.reload_if_due().await? {
            Some(fresh) => Ok(authenticate_all(collection, &fresh)),
            None => Ok(acceptance),
        }
    }
}

/// One line for each of the first few rejected items; the POST's summary line counts them all.
fn log_rejections(rejected: &[(Option<String>, Rejection)]) {
    for (subscription_id, reason) in rejected.iter().take(MAX_REJECTIONS_LOGGED) {
        let subscription_id = for_log(subscription_id.as_deref().unwrap_or(""));
        if reason.is_inauthentic() {
            warn!(%subscription_id, reason = reason.as_str(), outcome = "dropped", "inauthentic notification dropped");
        } else {
            info!(%subscription_id, reason = reason.as_str(), outcome = "ignored", "notification ignored");
        }
    }
}

/// How many items were rejected for each reason, for the POST's one summary line.
fn rejection_counts(rejected: &[(Option<String>, Rejection)]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for (_, reason) in rejected {
        *counts.entry(reason.as_str()).or_default() += 1;
    }
    counts
}

/// An untrusted value made safe for a log line: control characters (a newline could start a
/// fake line in text logs) become `?`, and the length is bounded.
fn for_log(untrusted: &str) -> String {
    untrusted
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The webhook's cached copy of the subscription directory.
struct DirectoryCache {
    state: Arc<dyn StateStore>,
    cache_for: Duration,
    cached: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    directory: Option<(Instant, Arc<Directory>)>,
    /// The last reload forced by an unknown id, successful or not.
    last_forced_reload: Option<Instant>,
}

impl DirectoryCache {
    fn new(state: Arc<dyn StateStore>, cache_for: Duration) -> Self {
        Self {
            state,
            cache_for,
            cached: Mutex::new(Cached::default()),
        }
    }

    async fn current(&self) -> Result<Arc<Directory>, RelayError> {
        let mut cached = self.cached.lock().await;
        if let Some((loaded_at, directory)) = cached.directory.as_ref()
            && loaded_at.elapsed() < self.cache_for
        {
            return Ok(directory.clone());
        }
        let directory = self.load().await?;
        cached.directory = Some((Instant::now(), directory.clone()));
        Ok(directory)
    }

    /// Reloads unless a load happened, or a forced reload was tried, within the last second. A
    /// failed attempt counts too, so a failing state table is not hammered by forged ids.
    async fn reload_if_due(&self) -> Result<Option<Arc<Directory>>, RelayError> {
        let mut cached = self.cached.lock().await;
        let recent = |at: Option<Instant>| at.is_some_and(|at| at.elapsed() < MIN_RELOAD_INTERVAL);
        if recent(cached.directory.as_ref().map(|(at, _)| *at)) || recent(cached.last_forced_reload)
        {
            return Ok(None);
        }
        cached.last_forced_reload = Some(Instant::now());
        let directory = self.load().await?;
        cached.directory = Some((Instant::now(), directory.clone()));
        Ok(Some(directory))
    }

    async fn load(&self) -> Result<Arc<Directory>, RelayError> {
        let records = self.state.subscriptions().await?;
        Ok(Arc::new(Directory::new(records.into_iter().map(|r| {
            let key = SubscriptionKey {
                mailbox: r.mailbox,
                tenant_id: r.tenant_id,
                client_state_sha256: r.client_state_sha256,
            };
            (r.subscription_id, key)
        }))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MemoryQueue, MemoryState, TENANT, record};

    fn webhook(state: &Arc<MemoryState>, queue: &Arc<MemoryQueue>) -> Webhook {
        Webhook::new(state.clone(), queue.clone(), Duration::from_secs(60), 1024)
    }

    fn item(subscription: &str, state: &str) -> String {
        format!(
            r#"{{"subscriptionId":"{subscription}","clientState":"{state}","tenantId":"{TENANT}",
               "changeType":"created","resource":"Users/x/Messages/m",
               "resourceData":{{"id":"m-{subscription}"}}}}"#
        )
    }

    #[tokio::test]
    async fn handshake_needs_no_state_and_no_queue() {
        let state = Arc::new(MemoryState::failing());
        let queue = Arc::new(MemoryQueue::default());

        let response = webhook(&state, &queue)
            .handle(Method::Other, Some("validationToken=a%2Bb+c"), b"")
            .await;

        assert_eq!(response, WebhookResponse::text(200, "a+b c"));
        assert_eq!(queue.calls(), 0);
    }

    #[tokio::test]
    async fn oversized_body_gets_413() {
        let state = Arc::new(MemoryState::default());
        let queue = Arc::new(MemoryQueue::default());

        let response = webhook(&state, &queue)
            .handle(Method::Post, None, &[b' '; 1025])
            .await;

        assert_eq!(response.status, 413);
    }

    #[tokio::test]
    async fn malformed_json_gets_400() {
        let state = Arc::new(MemoryState::default());
        let queue = Arc::new(MemoryQueue::default());

        let response = webhook(&state, &queue)
            .handle(Method::Post, None, b"{\"value\":")
            .await;

        assert_eq!(response.status, 400);
    }

    #[tokio::test]
    async fn queue_failure_gets_503_so_graph_retries() {
        let state = Arc::new(MemoryState::default());
        state.insert(record("sub-1", "fax1@contoso.example", "right"));
        let queue = Arc::new(MemoryQueue::failing());
        let body = format!(r#"{{"value":[{}]}}"#, item("sub-1", "right"));

        let response = webhook(&state, &queue)
            .handle(Method::Post, None, body.as_bytes())
            .await;

        assert_eq!(response.status, 503);
    }

    #[tokio::test]
    async fn subscription_created_after_the_cache_was_filled_is_recognised() {
        let state = Arc::new(MemoryState::default());
        state.insert(record("sub-1", "fax1@contoso.example", "right"));
        let queue = Arc::new(MemoryQueue::default());
        let webhook = webhook(&state, &queue);
        let first = format!(r#"{{"value":[{}]}}"#, item("sub-1", "right"));
        webhook.handle(Method::Post, None, first.as_bytes()).await;

        tokio::time::sleep(MIN_RELOAD_INTERVAL).await;
        state.insert(record("sub-2", "sms1@contoso.example", "other"));
        let second = format!(r#"{{"value":[{}]}}"#, item("sub-2", "other"));
        let response = webhook.handle(Method::Post, None, second.as_bytes()).await;

        assert_eq!(response.status, 202);
        assert_eq!(queue.notifications().len(), 2);
    }

    #[test]
    fn hundred_items_pack_into_ten_entries_in_order() {
        let notifications: Vec<_> = (0..100)
            .map(|i| QueuedNotification::Message {
                subscription_id: "s".into(),
                message_id: format!("m{i}"),
            })
            .collect();

        let bodies = pack_batch(notifications.clone());

        assert_eq!(bodies.len(), MAX_BATCH_ENTRIES);
        let unpacked: Vec<QueuedNotification> = bodies
            .iter()
            .flat_map(|b| {
                serde_json::from_str::<QueuedBatch>(b)
                    .unwrap()
                    .notifications
            })
            .collect();
        assert_eq!(unpacked, notifications);
    }

    #[test]
    fn three_items_make_three_entries() {
        let notifications: Vec<_> = (0..3)
            .map(|i| QueuedNotification::Lifecycle {
                subscription_id: format!("s{i}"),
                event: "missed".into(),
            })
            .collect();

        assert_eq!(pack_batch(notifications).len(), 3);
    }
}
