//! In-memory implementations of the ports, for the use cases' unit tests.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;
use chrono::Utc;

use crate::{
    config::{Channel, RelayConfig},
    domain::{
        authenticate::client_state_digest,
        message::{EmailAddress, ItemBody, Message, Recipient},
        notification::QueuedBatch,
    },
    error::RelayError,
    ports::{
        CreateRefusal, DocumentStore, Graph, GraphSubscription, JobQueue, LedgerOutcome,
        NewSubscription, NotificationQueue, StateStore, SubscriptionRecord,
    },
    usecase::Deadline,
};

pub const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";

pub fn sample_config() -> RelayConfig {
    RelayConfig::from_toml(include_str!("../samplconfig/relay.toml")).unwrap()
}

pub fn record(id: &str, mailbox: &str, client_state: &str) -> SubscriptionRecord {
    SubscriptionRecord {
        subscription_id: id.into(),
        mailbox: mailbox.into(),
        tenant_id: TENANT.into(),
        resource: format!("users/{mailbox}/mailFolders('Inbox')/messages"),
        client_state_sha256: client_state_digest(client_state),
        expires_at: Utc::now() + chrono::Duration::days(6),
        created_at: Utc::now(),
    }
}

pub fn fax_message(id: &str) -> Message {
    let to = |address: &str| Recipient {
        email_address: EmailAddress {
            name: None,
            address: Some(address.into()),
        },
    };
    Message {
        id: id.into(),
        internet_message_id: Some(format!("<{id}@contoso.example>")),
        subject: Some("Fax".into()),
        body: Some(ItemBody {
            content_type: "text".into(),
            content: "Hello".into(),
        }),
        from: Some(to("alice@contoso.example")),
        to_recipients: vec![to("+61299998888@fax.example.com")],
        ..Default::default()
    }
}

#[derive(Default)]
pub struct MemoryState {
    fail: bool,
    subscriptions: Mutex<HashMap<String, SubscriptionRecord>>,
    locks: Mutex<HashMap<String, String>>,
    ledger: Mutex<Vec<(String, LedgerOutcome)>>,
}

impl MemoryState {
    pub fn failing() -> Self {
        Self {
            fail: true,
            ..Default::default()
        }
    }

    pub fn insert(&self, record: SubscriptionRecord) {
        self.subscriptions
            .lock()
            .unwrap()
            .insert(record.subscription_id.clone(), record);
    }

    pub fn subscriptions_sync(&self) -> Vec<SubscriptionRecord> {
        self.subscriptions
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect()
    }

    pub fn ledger_entries(&self) -> Vec<LedgerOutcome> {
        self.ledger
            .lock()
            .unwrap()
            .iter()
            .map(|(_, o)| o.clone())
            .collect()
    }

    fn check(&self) -> Result<(), RelayError> {
        if self.fail {
            Err(RelayError::transient("state store down"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl StateStore for MemoryState {
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, RelayError> {
        self.check()?;
        Ok(self.subscriptions_sync())
    }

    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>, RelayError> {
        self.check()?;
        Ok(self.subscriptions.lock().unwrap().get(id).cloned())
    }

    async fn put_subscription(&self, record: &SubscriptionRecord) -> Result<(), RelayError> {
        self.check()?;
        self.insert(record.clone());
        Ok(())
    }

    async fn delete_subscription(&self, id: &str) -> Result<(), RelayError> {
        self.check()?;
        self.subscriptions.lock().unwrap().remove(id);
        Ok(())
    }

    async fn lock_mailbox(
        &self,
        mailbox: &str,
        owner: &str,
        _: Duration,
    ) -> Result<bool, RelayError> {
        self.check()?;
        let mut locks = self.locks.lock().unwrap();
        match locks.get(mailbox) {
            Some(holder) if holder != owner => Ok(false),
            _ => {
                locks.insert(mailbox.into(), owner.into());
                Ok(true)
            }
        }
    }

    async fn unlock_mailbox(&self, mailbox: &str, owner: &str) -> Result<(), RelayError> {
        let mut locks = self.locks.lock().unwrap();
        if locks.get(mailbox).is_some_and(|holder| holder == owner) {
            locks.remove(mailbox);
        }
        Ok(())
    }

    async fn ledger(&self, job_id: &str) -> Result<Option<LedgerOutcome>, RelayError> {
        self.check()?;
        let ledger = self.ledger.lock().unwrap();
        Ok(ledger
            .iter()
            .find(|(id, _)| id == job_id)
            .map(|(_, o)| o.clone()))
    }

    async fn record_ledger(
        &self,
        job_id: &str,
        outcome: &LedgerOutcome,
        _: Duration,
    ) -> Result<(), RelayError> {
        self.check()?;
        self.ledger
            .lock()
            .unwrap()
            .push((job_id.into(), outcome.clone()));
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryQueue {
    fail: bool,
    bodies: Mutex<Vec<Vec<String>>>,
}

impl MemoryQueue {
    pub fn failing() -> Self {
        Self {
            fail: true,
            ..Default::default()
        }
    }

    pub fn calls(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    pub fn notifications(&self) -> Vec<crate::domain::notification::QueuedNotification> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .flat_map(|b| {
                serde_json::from_str::<QueuedBatch>(b)
                    .unwrap()
                    .notifications
            })
            .collect()
    }
}

#[async_trait]
impl NotificationQueue for MemoryQueue {
    async fn enqueue(&self, bodies: &[String]) -> Result<(), RelayError> {
        if self.fail {
            return Err(RelayError::transient("queue down"));
        }
        self.bodies.lock().unwrap().push(bodies.to_vec());
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryJobs {
    sent: Mutex<Vec<(Channel, String, String)>>,
}

impl MemoryJobs {
    pub fn sent(&self) -> Vec<(Channel, String, String)> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl JobQueue for MemoryJobs {
    async fn send(&self, channel: Channel, job_id: &str, job_json: &str) -> Result<(), RelayError> {
        self.sent
            .lock()
            .unwrap()
            .push((channel, job_id.into(), job_json.into()));
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryDocuments {
    stored: Mutex<HashMap<String, Vec<u8>>>,
}

#[async_trait]
impl DocumentStore for MemoryDocuments {
    async fn put(&self, key: &str, _: &str, bytes: Vec<u8>) -> Result<String, RelayError> {
        self.stored.lock().unwrap().insert(key.into(), bytes);
        Ok("memory-bucket".into())
    }
}

#[derive(Default)]
pub struct MemoryGraph {
    messages: Mutex<HashMap<(String, String), Message>>,
    next_failure: Mutex<Option<RelayError>>,
    subscriptions: Mutex<HashMap<String, String>>,
    created: Mutex<Vec<NewSubscription>>,
    deleted: Mutex<Vec<String>>,
}

impl MemoryGraph {
    pub fn add_message(&self, mailbox: &str, message: Message) {
        self.messages
            .lock()
            .unwrap()
            .insert((mailbox.into(), message.id.clone()), message);
    }

    pub fn fail_next(&self, error: RelayError) {
        *self.next_failure.lock().unwrap() = Some(error);
    }

    pub fn add_orphan(&self, id: &str, resource: &str) {
        self.subscriptions
            .lock()
            .unwrap()
            .insert(id.into(), resource.into());
    }

    pub fn created(&self) -> Vec<NewSubscription> {
        self.created.lock().unwrap().clone()
    }

    pub fn deleted(&self) -> Vec<String> {
        self.deleted.lock().unwrap().clone()
    }
}

#[async_trait]
impl Graph for MemoryGraph {
    async fn tenant_id(&self) -> Result<String, RelayError> {
        Ok(TENANT.into())
    }

    async fn message(&self, mailbox: &str, id: &str, _: Deadline) -> Result<Message, RelayError> {
        if let Some(error) = self.next_failure.lock().unwrap().take() {
            return Err(error);
        }
        self.messages
            .lock()
            .unwrap()
            .get(&(mailbox.into(), id.into()))
            .cloned()
            .ok_or_else(|| RelayError::permanent("message not found"))
    }

    async fn create_subscription(
        &self,
        request: &NewSubscription,
        _: Deadline,
    ) -> Result<GraphSubscription, CreateRefusal> {
        let mut subscriptions = self.subscriptions.lock().unwrap();
        if subscriptions.values().any(|r| *r == request.resource) {
            return Err(CreateRefusal::Conflict);
        }
        let mut created = self.created.lock().unwrap();
        let id = format!("sub-{}", created.len() + 1);
        subscriptions.insert(id.clone(), request.resource.clone());
        created.push(request.clone());
        Ok(GraphSubscription {
            id,
            resource: request.resource.clone(),
            expires_at: request.expires_at,
        })
    }

    async fn subscriptions(&self, _: Deadline) -> Result<Vec<GraphSubscription>, RelayError> {
        Ok(self
            .subscriptions
            .lock()
            .unwrap()
            .iter()
            .map(|(id, resource)| GraphSubscription {
                id: id.clone(),
                resource: resource.clone(),
                expires_at: Utc::now(),
            })
            .collect())
    }

    async fn delete_subscription(&self, id: &str, _: Deadline) -> Result<(), RelayError> {
        self.subscriptions.lock().unwrap().remove(id);
        self.deleted.lock().unwrap().push(id.into());
        Ok(())
    }
}
