//! The subscribe step: every configured mailbox gets a recorded, live subscription on its Inbox.
//!
//! The step is idempotent and safe to run from several places at once (the `renewer` Lambda, the
//! serve-mode timer, the `subscribe` command): each mailbox is reconciled under a lease lock in
//! the state table, a mailbox with a live record is left alone, and one without gets a new
//! subscription. A conflict (409) means Graph holds a subscription the relay has no record of,
//! for example after a crash between Graph's reply and the record write; such an orphan is
//! deleted and replaced, because its clientState is unknown and its notifications could never
//! be authenticated.

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::Deadline;
use crate::{
    config::{MailboxConfig, RelayConfig},
    domain::authenticate::client_state_digest,
    error::RelayError,
    ports::{
        CreateRefusal, Graph, GraphSubscription, NewSubscription, StateStore, SubscriptionRecord,
    },
    secret::Secret,
};

/// A subscription expiring sooner than this is replaced. Longer than the renewer's schedule (every
/// 6 hours in infra/template.yaml) by a wide margin, so a missed run or two cannot let it lapse.
// LIMITATION: subscriptions are not renewed (PATCH) yet. One that nears expiry is deleted and
// replaced, and mail delivered in the moment between the two calls is not notified.
const REPLACE_BEFORE: Duration = Duration::from_secs(24 * 3600);

/// How long a mailbox lock lasts if its holder dies.
const LOCK_LEASE: Duration = Duration::from_secs(120);

/// What the step did for one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxOutcome {
    /// A live subscription was already recorded.
    Live {
        subscription_id: String,
        expires_at: DateTime<Utc>,
    },
    /// A subscription was created and recorded.
    Created {
        subscription_id: String,
        expires_at: DateTime<Utc>,
    },
    /// Another run holds the mailbox's lock.
    Busy,
    /// The mailbox could not be subscribed.
    Failed(RelayError),
}

/// One line of the step's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxReport {
    pub mailbox: String,
    pub outcome: MailboxOutcome,
}

/// The subscribe use case.
pub struct Subscriber {
    config: Arc<RelayConfig>,
    graph: Arc<dyn Graph>,
    state: Arc<dyn StateStore>,
    owner: String,
}

impl Subscriber {
    /// A subscriber; `owner` names this runner in mailbox locks.
    pub fn new(
        config: Arc<RelayConfig>,
        graph: Arc<dyn Graph>,
        state: Arc<dyn StateStore>,
        owner: impl Into<String>,
    ) -> Self {
        Self {
            config,
            graph,
            state,
            owner: owner.into(),
        }
    }

    /// Runs the step for every configured mailbox.
    pub async fn run(&self, now: DateTime<Utc>, deadline: Deadline) -> Vec<MailboxReport> {
        let mut reports = Vec::with_capacity(self.config.mailboxes.len());
        for mailbox in &self.config.mailboxes {
            let outcome = self.reconcile_locked(mailbox, now, deadline).await;
            log_outcome(&mailbox.address, &outcome);
            reports.push(MailboxReport {
                mailbox: mailbox.address.clone(),
                outcome,
            });
        }
        reports
    }

    async fn reconcile_locked(
        &self,
        mailbox: &MailboxConfig,
        now: DateTime<Utc>,
        deadline: Deadline,
    ) -> MailboxOutcome {
        match self
            .state
            .lock_mailbox(&mailbox.address, &self.owner, LOCK_LEASE)
            .await
        {
            Ok(true) => {}
            Ok(false) => return MailboxOutcome::Busy,
            Err(error) => return MailboxOutcome::Failed(error),
        }
        let outcome = match self.reconcile(mailbox, now, deadline).await {
            Ok(outcome) => outcome,
            Err(error) => MailboxOutcome::Failed(error),
        };
        if let Err(error) = self
            .state
            .unlock_mailbox(&mailbox.address, &self.owner)
            .await
        {
            warn!(mailbox = %mailbox.address, reason = %error, "mailbox lock not released; it lapses by itself");
        }
        outcome
    }

    /// Decides under the mailbox's lock, on records read after the lock was taken, so that a
    /// run never acts on what another run changed meanwhile.
    async fn reconcile(
        &self,
        mailbox: &MailboxConfig,
        now: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<MailboxOutcome, RelayError> {
        let records = self.state.subscriptions().await?;
        let live_after = now + self.replace_before();
        let live = records
            .iter()
            .filter(|r| {
                r.mailbox.eq_ignore_ascii_case(&mailbox.address) && r.expires_at > live_after
            })
            .max_by_key(|r| r.expires_at);
        if let Some(record) = live {
            return Ok(MailboxOutcome::Live {
                subscription_id: record.subscription_id.clone(),
                expires_at: record.expires_at,
            });
        }

        let record = self.create(mailbox, now, deadline).await?;
        Ok(MailboxOutcome::Created {
            subscription_id: record.subscription_id,
            expires_at: record.expires_at,
        })
    }

    /// How long before expiry a subscription is replaced: a day, or a third of the configured
    /// lifetime when that is shorter, so a short lifetime is not replaced on every run.
    fn replace_before(&self) -> chrono::Duration {
        let third = chrono::Duration::minutes(self.config.graph.subscription_minutes / 3);
        third.min(chrono::Duration::from_std(REPLACE_BEFORE).expect("a day fits"))
    }

    async fn create(
        &self,
        mailbox: &MailboxConfig,
        now: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<SubscriptionRecord, RelayError> {
        let tenant_id = self.graph.tenant_id().await?;
        let resource = inbox_resource(&mailbox.address);
        let client_state = new_client_state()?;
        let request = NewSubscription {
            resource: resource.clone(),
            notification_url: self.config.webhook.notification_url.clone(),
            lifecycle_url: self.config.webhook.lifecycle_url.clone(),
            expires_at: now + chrono::Duration::minutes(self.config.graph.subscription_minutes),
            client_state: client_state.clone(),
        };

        let created = match self.graph.create_subscription(&request, deadline).await {
            Ok(created) => created,
            Err(CreateRefusal::Conflict) => {
                self.remove_orphans(&resource, deadline).await?;
                self.graph
                    .create_subscription(&request, deadline)
                    .await
                    .map_err(|refusal| match refusal {
                        CreateRefusal::Conflict => RelayError::transient(format!(
                            "Graph still reports a subscription on {resource} after the orphan \
                             was deleted"
                        )),
                        CreateRefusal::Failed(error) => error,
                    })?
            }
            Err(CreateRefusal::Failed(error)) => return Err(error),
        };

        let record = SubscriptionRecord {
            subscription_id: created.id,
            mailbox: mailbox.address.to_ascii_lowercase(),
            tenant_id,
            resource,
            client_state_sha256: client_state_digest(client_state.expose()),
            expires_at: created.expires_at,
            created_at: now,
        };
        // LIMITATION: the record is written after Graph answers, so a notification that arrives in
        // between is dropped by the webhook as coming from an unknown subscription.
        self.state.put_subscription(&record).await?;
        Ok(record)
    }

    /// Deletes every Graph subscription of the app on `resource`: orphans without a record, and
    /// the recorded one that is being replaced because it nears expiry. A replaced subscription
    /// keeps its record until the record's time to live runs out, so notifications for it that
    /// are still queued or retried by Graph are still authenticated and routed.
    async fn remove_orphans(&self, resource: &str, deadline: Deadline) -> Result<(), RelayError> {
        let orphans: Vec<GraphSubscription> = self
            .graph
            .subscriptions(deadline)
            .await?
            .into_iter()
            .filter(|s| s.resource.eq_ignore_ascii_case(resource))
            .collect();
        for orphan in orphans {
            warn!(subscription_id = %orphan.id, %resource, outcome = "replaced", "deleting the app's existing subscription on this resource");
            self.graph.delete_subscription(&orphan.id, deadline).await?;
        }
        Ok(())
    }
}

/// The step's report as JSON: one object per mailbox with its outcome.
pub fn report_json(reports: &[MailboxReport]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = reports
        .iter()
        .map(|report| {
            let (outcome, subscription_id, expires_at, reason) = match &report.outcome {
                MailboxOutcome::Live {
                    subscription_id,
                    expires_at,
                } => (
                    "live",
                    Some(subscription_id.as_str()),
                    Some(expires_at.to_rfc3339()),
                    None,
                ),
                MailboxOutcome::Created {
                    subscription_id,
                    expires_at,
                } => (
                    "created",
                    Some(subscription_id.as_str()),
                    Some(expires_at.to_rfc3339()),
                    None,
                ),
                MailboxOutcome::Busy => ("busy", None, None, None),
                MailboxOutcome::Failed(error) => ("failed", None, None, Some(error.to_string())),
            };
            serde_json::json!({
                "mailbox": report.mailbox,
                "outcome": outcome,
                "subscriptionId": subscription_id,
                "expiresAt": expires_at,
                "reason": reason,
            })
        })
        .collect();
    serde_json::Value::Array(rows)
}

/// The resource path of a mailbox's Inbox messages. The address was checked at configuration
/// load to be a plain SMTP address, so it needs no escaping inside the path.
pub fn inbox_resource(mailbox: &str) -> String {
    format!(
        "users/{}/mailFolders('Inbox')/messages",
        mailbox.to_ascii_lowercase()
    )
}

/// A fresh clientState: 256 random bits, URL-safe base64 (43 characters, within Graph's 128).
fn new_client_state() -> Result<Secret, RelayError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| RelayError::transient(format!("no randomness for a clientState: {e}")))?;
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(bytes)))
}

fn log_outcome(mailbox: &str, outcome: &MailboxOutcome) {
    match outcome {
        MailboxOutcome::Live {
            subscription_id,
            expires_at,
        } => {
            info!(%mailbox, %subscription_id, %expires_at, outcome = "live", "subscription live")
        }
        MailboxOutcome::Created {
            subscription_id,
            expires_at,
        } => {
            info!(%mailbox, %subscription_id, %expires_at, outcome = "created", "subscription created")
        }
        MailboxOutcome::Busy => {
            info!(%mailbox, outcome = "busy", "another run is reconciling this mailbox")
        }
        MailboxOutcome::Failed(error) => {
            error!(%mailbox, failure = error.class(), reason = %error, outcome = "failed", "mailbox not subscribed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MemoryGraph, MemoryState, sample_config};

    fn subscriber(graph: &Arc<MemoryGraph>, state: &Arc<MemoryState>) -> Subscriber {
        Subscriber::new(
            Arc::new(sample_config()),
            graph.clone(),
            state.clone(),
            "test",
        )
    }

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(30))
    }

    #[tokio::test]
    async fn running_twice_creates_nothing_new() {
        let graph = Arc::new(MemoryGraph::default());
        let state = Arc::new(MemoryState::default());
        let subscriber = subscriber(&graph, &state);
        let now = Utc::now();

        let first = subscriber.run(now, deadline()).await;
        let second = subscriber.run(now, deadline()).await;

        assert!(
            first
                .iter()
                .all(|r| matches!(r.outcome, MailboxOutcome::Created { .. }))
        );
        assert!(
            second
                .iter()
                .all(|r| matches!(r.outcome, MailboxOutcome::Live { .. }))
        );
        assert_eq!(graph.created().len(), 2);
        assert_eq!(
            graph.created()[0].resource,
            "users/fax1@contoso.example/mailFolders('Inbox')/messages"
        );
    }

    #[tokio::test]
    async fn record_keeps_only_the_client_state_digest() {
        let graph = Arc::new(MemoryGraph::default());
        let state = Arc::new(MemoryState::default());

        subscriber(&graph, &state).run(Utc::now(), deadline()).await;

        let sent = &graph.created()[0];
        let recorded = state.subscriptions_sync();
        let record = recorded
            .iter()
            .find(|r| r.mailbox == "fax1@contoso.example")
            .unwrap();
        assert_eq!(sent.client_state.expose().len(), 43);
        assert_eq!(
            record.client_state_sha256,
            client_state_digest(sent.client_state.expose())
        );
        assert_ne!(
            graph.created()[0].client_state,
            graph.created()[1].client_state
        );
    }

    #[tokio::test]
    async fn conflict_deletes_the_orphan_and_creates_again() {
        let graph = Arc::new(MemoryGraph::default());
        let state = Arc::new(MemoryState::default());
        graph.add_orphan(
            "orphan-1",
            "users/fax1@contoso.example/mailFolders('Inbox')/messages",
        );

        let reports = subscriber(&graph, &state).run(Utc::now(), deadline()).await;

        assert!(matches!(reports[0].outcome, MailboxOutcome::Created { .. }));
        assert_eq!(graph.deleted(), vec!["orphan-1".to_string()]);
    }

    #[tokio::test]
    async fn locked_mailbox_is_reported_busy() {
        let graph = Arc::new(MemoryGraph::default());
        let state = Arc::new(MemoryState::default());
        state
            .lock_mailbox("fax1@contoso.example", "other", LOCK_LEASE)
            .await
            .unwrap();

        let reports = subscriber(&graph, &state).run(Utc::now(), deadline()).await;

        assert_eq!(reports[0].outcome, MailboxOutcome::Busy);
        assert!(matches!(reports[1].outcome, MailboxOutcome::Created { .. }));
    }

    #[tokio::test]
    async fn short_lifetime_is_not_replaced_on_every_run() {
        let graph = Arc::new(MemoryGraph::default());
        let state = Arc::new(MemoryState::default());
        let mut config = sample_config();
        config.graph.subscription_minutes = 1440;
        let subscriber = Subscriber::new(Arc::new(config), graph.clone(), state.clone(), "test");

        subscriber.run(Utc::now(), deadline()).await;
        let second = subscriber.run(Utc::now(), deadline()).await;

        assert!(
            second
                .iter()
                .all(|r| matches!(r.outcome, MailboxOutcome::Live { .. }))
        );
        assert_eq!(graph.created().len(), 2);
    }

    /// Subscribes both mailboxes, then runs the step again 23 hours before they expire.
    async fn run_now_and_near_expiry() -> (Arc<MemoryGraph>, Arc<MemoryState>, Vec<MailboxReport>) {
        let graph = Arc::new(MemoryGraph::default());
        let state = Arc::new(MemoryState::default());
        let subscriber = subscriber(&graph, &state);
        let now = Utc::now();
        subscriber.run(now, deadline()).await;

        let later = now + chrono::Duration::minutes(10_070) - chrono::Duration::hours(23);
        let reports = subscriber.run(later, deadline()).await;
        (graph, state, reports)
    }

    #[tokio::test]
    async fn expiring_subscription_is_replaced() {
        let (graph, _, reports) = run_now_and_near_expiry().await;

        assert!(
            reports
                .iter()
                .all(|r| matches!(r.outcome, MailboxOutcome::Created { .. }))
        );
        assert_eq!(graph.created().len(), 4);
        assert_eq!(
            graph.deleted(),
            vec!["sub-1".to_string(), "sub-2".to_string()]
        );
    }

    #[tokio::test]
    async fn replaced_subscription_keeps_its_record_for_late_notifications() {
        let (_, state, _) = run_now_and_near_expiry().await;

        let mut recorded: Vec<String> = state
            .subscriptions_sync()
            .into_iter()
            .map(|r| r.subscription_id)
            .collect();
        recorded.sort();
        assert_eq!(recorded, ["sub-1", "sub-2", "sub-3", "sub-4"]);
    }
}
