//! The seams between the use cases and the outside world. Each trait is small and names the
//! domain operation, not the AWS or Graph call; `adapters` implements them for real, and unit
//! tests implement them in memory.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    config::Channel, domain::message::Message, error::RelayError, secret::Secret, usecase::Deadline,
};

/// A subscription the relay created, as recorded in the state table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub subscription_id: String,
    pub mailbox: String,
    pub tenant_id: String,
    pub resource: String,
    pub client_state_sha256: [u8; 32],
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// The outcome recorded for a message, so that a repeated notification does nothing twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerOutcome {
    /// The job is on the gateway's queue.
    Forwarded { job_id: String },
    /// The message was rejected; the reason says why.
    Rejected { reason: String },
}

/// The state table: subscriptions, per-mailbox locks, and the message ledger.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Every recorded subscription.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, RelayError>;
    /// One subscription by id.
    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>, RelayError>;
    /// Records a new subscription.
    async fn put_subscription(&self, record: &SubscriptionRecord) -> Result<(), RelayError>;
    /// Removes a subscription record.
    async fn delete_subscription(&self, id: &str) -> Result<(), RelayError>;
    /// Takes the mailbox's lock for `lease` unless someone else holds it; `false` if held.
    async fn lock_mailbox(
        &self,
        mailbox: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, RelayError>;
    /// Releases a lock this owner holds.
    async fn unlock_mailbox(&self, mailbox: &str, owner: &str) -> Result<(), RelayError>;
    /// The recorded outcome of a message, by its job id.
    async fn ledger(&self, job_id: &str) -> Result<Option<LedgerOutcome>, RelayError>;
    /// Records a message's outcome, kept for `keep`.
    async fn record_ledger(
        &self,
        job_id: &str,
        outcome: &LedgerOutcome,
        keep: Duration,
    ) -> Result<(), RelayError>;
}

/// The internal queue between the webhook and the processor.
#[async_trait]
pub trait NotificationQueue: Send + Sync {
    /// Puts message bodies on the queue in one batch call; fails unless every body is queued.
    async fn enqueue(&self, bodies: &[String]) -> Result<(), RelayError>;
}

/// The gateways' queues.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Puts one job on the channel's queue.
    async fn send(&self, channel: Channel, job_id: &str, job_json: &str) -> Result<(), RelayError>;
}

/// Where fax documents are kept.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Stores a document under `key`; returns the bucket name.
    async fn put(
        &self,
        key: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, RelayError>;
}

/// The app's credentials for the identity platform, as kept in Secrets Manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredentials {
    /// Directory (tenant) GUID.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    pub client_secret: Secret,
}

/// Reads the app's credentials.
#[async_trait]
pub trait CredentialSource: Send + Sync {
    /// The credentials, from a cache where fresh.
    async fn credentials(&self) -> Result<AppCredentials, RelayError>;
    /// Forgets the cached credentials (after the identity platform rejected them, so that a
    /// rotated secret is picked up).
    fn invalidate(&self);
}

/// A subscription create request.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub resource: String,
    pub notification_url: String,
    pub lifecycle_url: String,
    pub expires_at: DateTime<Utc>,
    pub client_state: Secret,
}

/// A subscription as Graph reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphSubscription {
    pub id: String,
    pub resource: String,
    pub expires_at: DateTime<Utc>,
}

/// Why Graph refused to create a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRefusal {
    /// A subscription for the same resource and change type already exists (409).
    Conflict,
    /// Any other failure, classified.
    Failed(RelayError),
}

/// The Graph calls the relay makes.
#[async_trait]
pub trait Graph: Send + Sync {
    /// The tenant the app's credentials belong to.
    async fn tenant_id(&self) -> Result<String, RelayError>;
    /// A message of a mailbox with its attachments, ids in immutable form.
    async fn message(
        &self,
        mailbox: &str,
        message_id: &str,
        deadline: Deadline,
    ) -> Result<Message, RelayError>;
    /// Creates a subscription (Graph validates the webhook before it answers).
    async fn create_subscription(
        &self,
        request: &NewSubscription,
        deadline: Deadline,
    ) -> Result<GraphSubscription, CreateRefusal>;
    /// The app's subscriptions.
    async fn subscriptions(&self, deadline: Deadline)
    -> Result<Vec<GraphSubscription>, RelayError>;
    /// Deletes a subscription.
    async fn delete_subscription(&self, id: &str, deadline: Deadline) -> Result<(), RelayError>;
}
