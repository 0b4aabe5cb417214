//! The simulator's memory: the tenant's mailboxes and their messages, issued tokens, live
//! subscriptions, the access-policy scope, pending faults and the counters behind `/_sim/stats`.
//!
//! One [`SimState`] is shared by every handler. Mutable parts sit behind one mutex that is never
//! held across an `.await`; counters are atomics, so [`crate::SimServer::stats`] is synchronous.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::SimConfig;
use crate::ids;

/// The service principal id Graph reports as `creatorId` of app-only subscriptions.
pub const CREATOR_ID: &str = "9b3c1a2e-5d47-4f68-8a91-2c3d4e5f6a7b";

/// Counters of what the simulator has done since start or the last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Requests to the token endpoint, successful or not.
    pub token_requests: u64,
    /// Authenticated requests to `/v1.0` routes, whatever their answer.
    pub graph_requests: u64,
    /// 429 answers on `/v1.0` routes: the mailbox concurrency limit and injected 429 faults.
    pub throttled: u64,
    /// POSTs of change and lifecycle notifications to webhooks, retries included; validation
    /// requests are not counted.
    pub notifications_sent: u64,
    /// Subscriptions created (after a successful validation handshake).
    pub subscriptions_created: u64,
}

/// The atomics behind [`Stats`].
#[derive(Default)]
pub struct Counters {
    pub token_requests: AtomicU64,
    pub graph_requests: AtomicU64,
    pub throttled: AtomicU64,
    pub notifications_sent: AtomicU64,
    pub subscriptions_created: AtomicU64,
}

impl Counters {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the current values.
    pub fn snapshot(&self) -> Stats {
        Stats {
            token_requests: self.token_requests.load(Ordering::Relaxed),
            graph_requests: self.graph_requests.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            notifications_sent: self.notifications_sent.load(Ordering::Relaxed),
            subscriptions_created: self.subscriptions_created.load(Ordering::Relaxed),
        }
    }

    /// Zeroes every counter.
    pub fn reset(&self) {
        for counter in [
            &self.token_requests,
            &self.graph_requests,
            &self.throttled,
            &self.notifications_sent,
            &self.subscriptions_created,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// A mailbox of the tenant, with its in-flight request counter for the concurrency limit.
pub struct Mailbox {
    /// UPN as configured.
    pub address: String,
    /// User object GUID.
    pub user_id: String,
    /// The id of the mailbox's Inbox folder (`parentFolderId` of its messages).
    pub inbox_folder_id: String,
    /// Graph requests for this mailbox being served right now.
    pub in_flight: AtomicUsize,
}

/// Which messages of a mailbox a subscription watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderScope {
    /// `users/{id}/mailFolders('Inbox')/messages`
    Inbox,
    /// `users/{id}/messages`
    AllMessages,
}

/// A live change-notification subscription.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub id: String,
    /// The resource exactly as the client gave it.
    pub resource: String,
    /// The watched mailbox's user GUID.
    pub user_id: String,
    pub scope: FolderScope,
    /// `changeType` exactly as given, e.g. `created,updated`.
    pub change_type: String,
    pub client_state: Option<String>,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    pub expiration: DateTime<Utc>,
    pub latest_supported_tls_version: String,
    /// Whether the create request carried `Prefer: IdType="ImmutableId"`; decides the message id
    /// form in this subscription's notifications.
    pub immutable_ids: bool,
}

impl Subscription {
    /// The change types, normalised for comparison (sorted, deduplicated).
    pub fn change_set(&self) -> Vec<&str> {
        change_set(&self.change_type)
    }

    /// Whether this subscription wants notifications about a new message in the Inbox.
    pub fn wants_created_in_inbox(&self) -> bool {
        self.change_set().contains(&"created")
    }
}

/// Sorted, deduplicated, trimmed items of a comma-separated `changeType`.
pub fn change_set(change_type: &str) -> Vec<&str> {
    let mut set: Vec<&str> = change_type.split(',').map(str::trim).collect();
    set.sort_unstable();
    set.dedup();
    set
}

/// A recipient or sender.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct EmailAddress {
    #[serde(default)]
    pub name: String,
    pub address: String,
}

/// A file attachment of a stored message.
#[derive(Clone, Debug)]
pub struct StoredAttachment {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub last_modified: DateTime<Utc>,
}

/// Whether a body is plain text or HTML.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyType {
    Text,
    Html,
}

/// A message in a mailbox's Inbox.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub id: String,
    pub immutable_id: String,
    pub internet_message_id: String,
    pub change_key: String,
    pub conversation_id: String,
    pub parent_folder_id: String,
    pub received: DateTime<Utc>,
    pub subject: String,
    pub body: String,
    pub body_type: BodyType,
    pub from: EmailAddress,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub attachments: Vec<StoredAttachment>,
}

/// Where an injected fault applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultTarget {
    /// Authenticated `/v1.0` requests.
    Graph,
    /// The token endpoint.
    Token,
}

/// A pending injected fault.
#[derive(Clone, Debug)]
pub struct Fault {
    pub target: FaultTarget,
    pub status: u16,
    pub remaining: u32,
    pub retry_after: Option<u64>,
    pub path_contains: Option<String>,
}

/// The outcome of looking up a bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    Expired,
    Unknown,
}

/// The mutable part of the state.
#[derive(Default)]
pub struct Inner {
    /// Issued access tokens and when each expires.
    pub tokens: HashMap<String, DateTime<Utc>>,
    /// Subscriptions, possibly including expired ones not yet swept.
    pub subscriptions: Vec<Subscription>,
    /// Messages per mailbox user id.
    pub messages: HashMap<String, Vec<StoredMessage>>,
    /// Lower-cased addresses outside the app's access policy.
    pub out_of_scope: HashSet<String>,
    /// Faults waiting to fire, oldest first.
    pub faults: Vec<Fault>,
    /// Extra time each message GET holds its mailbox's concurrency slot.
    pub message_delay: Duration,
}

impl Inner {
    /// Drops expired subscriptions (Graph deletes them silently) and returns the live ones.
    pub fn live_subscriptions(&mut self, now: DateTime<Utc>) -> &mut Vec<Subscription> {
        self.subscriptions.retain(|s| s.expiration > now);
        &mut self.subscriptions
    }

    /// Takes one firing of the oldest pending fault matching `target` and `path`.
    pub fn take_fault(&mut self, target: FaultTarget, path: &str) -> Option<Fault> {
        let index = self.faults.iter().position(|f| {
            f.target == target
                && f.path_contains
                    .as_deref()
                    .is_none_or(|needle| path.contains(needle))
        })?;
        let fault = &mut self.faults[index];
        fault.remaining -= 1;
        let fired = fault.clone();
        if fault.remaining == 0 {
            self.faults.remove(index);
        }
        Some(fired)
    }
}

/// Everything the handlers share.
pub struct SimState {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub token_lifetime_seconds: u64,
    pub expires_in_as_string: bool,
    pub max_subscription_minutes: i64,
    pub mailboxes: Vec<Mailbox>,
    pub stats: Counters,
    /// Client for outbound webhook calls: plain HTTP, no proxy, no redirects.
    pub http: reqwest::Client,
    inner: Mutex<Inner>,
}

impl SimState {
    /// Builds the state from a configuration.
    pub fn new(config: SimConfig) -> std::io::Result<Self> {
        let mailboxes = config
            .mailboxes
            .into_iter()
            .map(|m| Mailbox {
                address: m.address,
                user_id: m.user_id,
                inbox_folder_id: ids::default_item_id(),
                in_flight: AtomicUsize::new(0),
            })
            .collect();
        let inner = Inner {
            out_of_scope: config
                .out_of_scope
                .iter()
                .map(|a| a.to_lowercase())
                .collect(),
            ..Inner::default()
        };
        Ok(SimState {
            tenant_id: config.tenant_id,
            client_id: config.client_id,
            client_secret: config.client_secret,
            token_lifetime_seconds: config.token_lifetime_seconds,
            expires_in_as_string: config.expires_in_as_string,
            max_subscription_minutes: config.max_subscription_minutes,
            mailboxes,
            stats: Counters::default(),
            http: crate::notify::outbound_client()?,
            inner: Mutex::new(inner),
        })
    }

    /// The mutable state. A panic in another handler does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The mailbox named by a UPN (case-insensitive) or a user GUID.
    pub fn find_mailbox(&self, id: &str) -> Option<&Mailbox> {
        self.mailboxes
            .iter()
            .find(|m| m.address.eq_ignore_ascii_case(id) || m.user_id.eq_ignore_ascii_case(id))
    }

    /// Whether the app's access policy excludes the mailbox.
    pub fn is_out_of_scope(&self, mailbox: &Mailbox) -> bool {
        self.lock()
            .out_of_scope
            .contains(&mailbox.address.to_lowercase())
    }

    /// Issues a new access token valid for the configured lifetime.
    pub fn issue_token(&self) -> String {
        let token = ids::access_token();
        let now = Utc::now();
        let lifetime = chrono::Duration::seconds(self.token_lifetime_seconds as i64);
        let mut inner = self.lock();
        // Expired tokens are kept for an hour so that they are reported as expired, not unknown.
        inner
            .tokens
            .retain(|_, expiry| *expiry + chrono::Duration::hours(1) > now);
        inner.tokens.insert(token.clone(), now + lifetime);
        token
    }

    /// Whether a bearer token was issued here and is still valid.
    pub fn check_token(&self, token: &str) -> TokenCheck {
        match self.lock().tokens.get(token) {
            Some(expiry) if *expiry > Utc::now() => TokenCheck::Valid,
            Some(_) => TokenCheck::Expired,
            None => TokenCheck::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(status: u16, remaining: u32, path_contains: Option<&str>) -> Fault {
        Fault {
            target: FaultTarget::Graph,
            status,
            remaining,
            retry_after: None,
            path_contains: path_contains.map(str::to_string),
        }
    }

    #[test]
    fn a_fault_fires_count_times_on_matching_paths_only() {
        let mut inner = Inner {
            faults: vec![fault(503, 2, Some("/messages/"))],
            ..Inner::default()
        };

        assert!(
            inner
                .take_fault(FaultTarget::Graph, "/v1.0/subscriptions")
                .is_none()
        );
        assert!(
            inner
                .take_fault(FaultTarget::Token, "/v1.0/users/a/messages/b")
                .is_none()
        );
        assert_eq!(
            inner
                .take_fault(FaultTarget::Graph, "/v1.0/users/a/messages/b")
                .unwrap()
                .status,
            503
        );
        assert_eq!(
            inner
                .take_fault(FaultTarget::Graph, "/v1.0/users/a/messages/c")
                .unwrap()
                .status,
            503
        );
        assert!(
            inner
                .take_fault(FaultTarget::Graph, "/v1.0/users/a/messages/d")
                .is_none()
        );
        assert!(inner.faults.is_empty());
    }

    #[test]
    fn change_types_compare_as_a_set() {
        assert_eq!(
            change_set("updated, created,created"),
            ["created", "updated"]
        );
    }
}
