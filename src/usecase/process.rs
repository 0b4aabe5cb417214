//! The processor: where a job is built. For each authenticated notification on the internal
//! queue it finds the mailbox from the subscription record, fetches the message with its
//! attachments, routes it by the mailbox's channel, stores fax documents, and puts the job on the
//! gateway's queue. A ledger entry per message makes a repeated notification a no-op.
//!
//! Failures: a transient one sends the queue record back (a batch item failure) so SQS delivers
//! it again later; a permanent or configuration failure is logged with its reason and recorded in
//! the ledger, and the record is consumed so that it is not retried in a loop.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::future::join_all;
use tokio::sync::Semaphore;
use tracing::{Instrument, error, info, info_span, warn};

use super::Deadline;
use crate::{
    config::RelayConfig,
    domain::{
        job::{Document, job_id, message_key, plan_job, sha256_hex},
        notification::{QueuedBatch, QueuedNotification},
        recipient::E164,
    },
    error::RelayError,
    ports::{DocumentStore, Graph, JobQueue, LedgerOutcome, StateStore},
};

/// Exchange Online allows 4 concurrent requests per app and mailbox.
// LIMITATION: the limit is kept per processor instance. Several concurrent Lambda instances can
// exceed it for one busy mailbox; Graph then answers 429 and the fetch is retried after its
// Retry-After.
pub const MAX_CONCURRENT_PER_MAILBOX: usize = 4;

/// How long a message's ledger entry is kept: longer than the longest subscription (7 days), so
/// any repeat Graph can send still finds it.
pub const LEDGER_KEEP: Duration = Duration::from_secs(8 * 24 * 3600);

/// One record from the internal queue.
#[derive(Debug, Clone)]
pub struct QueueRecord {
    /// The queue's message id, returned when the record must be retried.
    pub id: String,
    pub body: String,
}

/// What became of one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Forwarded {
        job_id: String,
    },
    Duplicate {
        job_id: String,
    },
    Rejected {
        class: &'static str,
        reason: String,
    },
    /// `subscriptionRemoved`: the subscription's record was deleted.
    SubscriptionForgotten,
    /// Another lifecycle event, logged only.
    LifecycleNotHandled,
}

/// The processor use case.
pub struct Processor {
    config: Arc<RelayConfig>,
    graph: Arc<dyn Graph>,
    state: Arc<dyn StateStore>,
    jobs: Arc<dyn JobQueue>,
    documents: Arc<dyn DocumentStore>,
    mailbox_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Processor {
    /// A processor over the given adapters.
    pub fn new(
        config: Arc<RelayConfig>,
        graph: Arc<dyn Graph>,
        state: Arc<dyn StateStore>,
        jobs: Arc<dyn JobQueue>,
        documents: Arc<dyn DocumentStore>,
    ) -> Self {
        Self {
            config,
            graph,
            state,
            jobs,
            documents,
            mailbox_slots: Mutex::new(HashMap::new()),
        }
    }

    /// Processes a batch of queue records concurrently; returns the ids of the records to retry.
    pub async fn process_batch(&self, records: &[QueueRecord], deadline: Deadline) -> Vec<String> {
        let results = join_all(records.iter().map(|record| {
            let span = info_span!("record", queue_message_id = %record.id);
            self.process_record(record, deadline).instrument(span)
        }))
        .await;
        records
            .iter()
            .zip(results)
            .filter(|(_, result)| result.is_err())
            .map(|(record, _)| record.id.clone())
            .collect()
    }

    /// Processes one record; `Err` means retry it later.
    pub async fn process_record(
        &self,
        record: &QueueRecord,
        deadline: Deadline,
    ) -> Result<Vec<Outcome>, RelayError> {
        let batch: QueuedBatch = match serde_json::from_str(&record.body) {
            Ok(batch) => batch,
            Err(e) => {
                error!(
                    outcome = "rejected",
                    failure = "permanent",
                    reason = %e,
                    "internal queue record is not a notification batch"
                );
                return Ok(vec![]);
            }
        };

        let results = join_all(
            batch
                .notifications
                .iter()
                .map(|n| self.process_one(n, deadline)),
        )
        .await;
        let mut outcomes = Vec::with_capacity(results.len());
        let mut retry = None;
        for result in results {
            match result {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) => retry = Some(error),
            }
        }
        match retry {
            Some(error) => Err(error),
            None => Ok(outcomes),
        }
    }

    async fn process_one(
        &self,
        notification: &QueuedNotification,
        deadline: Deadline,
    ) -> Result<Outcome, RelayError> {
        match notification {
            QueuedNotification::Message {
                subscription_id,
                message_id,
            } => {
                // Graph's message id is no secret and is what an operator searches Graph for.
                let span = info_span!(
                    "message",
                    %subscription_id,
                    %message_id,
                    mailbox = tracing::field::Empty
                );
                self.forward_message(subscription_id, message_id, deadline)
                    .instrument(span)
                    .await
            }
            QueuedNotification::Lifecycle {
                subscription_id,
                event,
            } => self.lifecycle(subscription_id, event).await,
        }
    }

    /// Acts on a lifecycle event.
    ///
    /// `subscriptionRemoved`: Graph deleted the subscription, so its record goes too, and the
    /// next subscribe step (the renewer's schedule, or serve mode's timer) creates a new one.
    // LIMITATION: the other lifecycle events are only logged: no reauthorize after
    // reauthorizationRequired, no delta catch-up after missed; mail that arrives while a
    // subscription is missing or paused is not fetched.
    async fn lifecycle(&self, subscription_id: &str, event: &str) -> Result<Outcome, RelayError> {
        if event == "subscriptionRemoved" {
            self.state.delete_subscription(subscription_id).await?;
            warn!(%subscription_id, %event, outcome = "record_deleted", "Graph removed the subscription; the subscribe step will create a new one");
            return Ok(Outcome::SubscriptionForgotten);
        }
        warn!(%subscription_id, %event, outcome = "not_handled", "lifecycle event received");
        Ok(Outcome::LifecycleNotHandled)
    }

    async fn forward_message(
        &self,
        subscription_id: &str,
        message_id: &str,
        deadline: Deadline,
    ) -> Result<Outcome, RelayError> {
        match self
            .try_forward(subscription_id, message_id, deadline)
            .await
        {
            Ok(outcome) => Ok(outcome),
            Err((error, _)) if error.is_transient() => {
                warn!(failure = "transient", reason = %error, outcome = "retry", "message will be retried");
                Err(error)
            }
            Err((error, job_id)) => {
                error!(
                    failure = error.class(),
                    reason = %error,
                    job_id = job_id.as_deref().unwrap_or(""),
                    outcome = "rejected",
                    "message rejected"
                );
                // Only a message that can never succeed is recorded as rejected. A configuration
                // failure (access scope, queue, bucket) is not the message's fault: unrecorded,
                // nothing blocks the same message once the setting is fixed.
                // LIMITATION: nothing fetches such a message again either: there is no replay
                // command or delta catch-up yet; the error log line is the operator's record.
                if let (Some(job_id), RelayError::Permanent { .. }) = (&job_id, &error) {
                    let rejected = LedgerOutcome::Rejected {
                        reason: error.to_string(),
                    };
                    self.state
                        .record_ledger(job_id, &rejected, LEDGER_KEEP)
                        .await?;
                }
                Ok(Outcome::Rejected {
                    class: error.class(),
                    reason: error.to_string(),
                })
            }
        }
    }

    /// The steps of forwarding one message. The error carries the job id when it is known, so a
    /// rejection can be recorded against it.
    async fn try_forward(
        &self,
        subscription_id: &str,
        message_id: &str,
        deadline: Deadline,
    ) -> Result<Outcome, (RelayError, Option<String>)> {
        let record = self
            .state
            .subscription(subscription_id)
            .await
            .map_err(|e| (e, None))?
            .ok_or_else(|| {
                let reason = "the subscription is not recorded (deleted, or never the relay's)";
                (RelayError::permanent(reason), None)
            })?;
        tracing::Span::current().record("mailbox", record.mailbox.as_str());
        let mailbox = self.config.mailbox(&record.mailbox).ok_or_else(|| {
            let reason = format!(
                "mailbox {} has a subscription but is no longer configured; its mail is not read",
                record.mailbox
            );
            (RelayError::configuration(reason), None)
        })?;

        let message = {
            let _slot = self.mailbox_slot(&mailbox.address).await;
            self.graph
                .message(&mailbox.address, message_id, deadline)
                .await
                .map_err(|e| (e, None))?
        };

        let job_id = job_id(&mailbox.address, message_key(&message));
        // LIMITATION: the ledger is checked, not claimed: two processors handling the same
        // message at the same moment can both send its job, with the same job id.
        let known = self
            .state
            .ledger(&job_id)
            .await
            .map_err(|e| (e, Some(job_id.clone())))?;
        if known.is_some() {
            info!(%job_id, outcome = "duplicate", "message already handled");
            return Ok(Outcome::Duplicate { job_id });
        }
        let plan = plan_job(mailbox, &message).map_err(|e| (e, Some(job_id.clone())))?;

        let mut stored = Vec::with_capacity(plan.documents.len());
        for document in &plan.documents {
            let size = document.bytes.len() as u64;
            let sha256 = sha256_hex(&document.bytes);
            let bucket = self
                .documents
                .put(
                    &document.key,
                    &document.content_type,
                    document.bytes.clone(),
                )
                .await
                .map_err(|e| (e, Some(job_id.clone())))?;
            stored.push(Document {
                name: document.name.clone(),
                content_type: document.content_type.clone(),
                size,
                sha256,
                bucket,
                key: document.key.clone(),
            });
        }
        let (ignored_recipients, ignored_attachments) =
            (plan.ignored_recipients, plan.ignored_attachments);
        let job = plan.into_job(stored);
        let job_json = serde_json::to_string(&job).expect("a job always serializes");

        self.jobs
            .send(job.channel, &job.job_id, &job_json)
            .await
            .map_err(|e| (e, Some(job_id.clone())))?;
        let forwarded = LedgerOutcome::Forwarded {
            job_id: job_id.clone(),
        };
        self.state
            .record_ledger(&job_id, &forwarded, LEDGER_KEEP)
            .await
            .map_err(|e| (e, Some(job_id.clone())))?;

        let recipients: Vec<String> = job.recipients.iter().map(E164::masked).collect();
        info!(
            %job_id,
            channel = job.channel.as_str(),
            recipients = ?recipients,
            documents = job.documents.as_ref().map_or(0, Vec::len),
            ignored_recipients,
            ignored_attachments,
            outcome = "forwarded",
            "job sent"
        );
        Ok(Outcome::Forwarded { job_id })
    }

    /// Waits for one of the mailbox's request slots.
    async fn mailbox_slot(&self, mailbox: &str) -> tokio::sync::OwnedSemaphorePermit {
        let semaphore = {
            let mut slots = self
                .mailbox_slots
                .lock()
                .expect("mailbox slots lock poisoned");
            slots
                .entry(mailbox.to_ascii_lowercase())
                .or_insert_with(|| Arc::new(Semaphore::new(MAX_CONCURRENT_PER_MAILBOX)))
                .clone()
        };
        semaphore
            .acquire_owned()
            .await
            .expect("mailbox semaphores are never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        MemoryDocuments, MemoryGraph, MemoryJobs, MemoryState, fax_message, record, sample_config,
    };

    struct Fixture {
        graph: Arc<MemoryGraph>,
        state: Arc<MemoryState>,
        jobs: Arc<MemoryJobs>,
        processor: Processor,
    }

    fn fixture() -> Fixture {
        let graph = Arc::new(MemoryGraph::default());
        let state = Arc::new(MemoryState::default());
        let jobs = Arc::new(MemoryJobs::default());
        let processor = Processor::new(
            Arc::new(sample_config()),
            graph.clone(),
            state.clone(),
            jobs.clone(),
            Arc::new(MemoryDocuments::default()),
        );
        state.insert(record("sub-fax", "fax1@contoso.example", "s"));
        Fixture {
            graph,
            state,
            jobs,
            processor,
        }
    }

    fn queue_record(message_id: &str) -> QueueRecord {
        QueueRecord {
            id: "q1".into(),
            body: format!(
                r#"{{"schema":"graph-mail-relay/notification/v1","notifications":[{{"kind":"message","subscriptionId":"sub-fax","messageId":"{message_id}"}}]}}"#
            ),
        }
    }

    #[tokio::test]
    async fn repeated_notification_sends_one_job() {
        let f = fixture();
        f.graph
            .add_message("fax1@contoso.example", fax_message("m1"));
        let deadline = Deadline::after(Duration::from_secs(30));

        let first = f
            .processor
            .process_record(&queue_record("m1"), deadline)
            .await
            .unwrap();
        let second = f
            .processor
            .process_record(&queue_record("m1"), deadline)
            .await
            .unwrap();

        let job_id = f.jobs.sent()[0].1.clone();
        assert_eq!(
            first,
            vec![Outcome::Forwarded {
                job_id: job_id.clone()
            }]
        );
        assert_eq!(second, vec![Outcome::Duplicate { job_id }]);
        assert_eq!(f.jobs.sent().len(), 1);
    }

    #[tokio::test]
    async fn transient_failure_returns_the_record_for_retry() {
        let f = fixture();
        f.graph
            .fail_next(RelayError::transient("503 serviceNotAvailable"));

        let retry = f
            .processor
            .process_batch(
                &[queue_record("m1")],
                Deadline::after(Duration::from_secs(30)),
            )
            .await;

        assert_eq!(retry, vec!["q1".to_string()]);
        assert!(f.jobs.sent().is_empty());
    }

    #[tokio::test]
    async fn vanished_message_is_rejected_not_retried() {
        let f = fixture();
        f.graph
            .fail_next(RelayError::permanent("message not found"));

        let retry = f
            .processor
            .process_batch(
                &[queue_record("m1")],
                Deadline::after(Duration::from_secs(30)),
            )
            .await;

        assert!(retry.is_empty());
        assert!(f.jobs.sent().is_empty());
    }

    #[tokio::test]
    async fn message_without_number_is_recorded_as_rejected() {
        let f = fixture();
        let mut message = fax_message("m2");
        message.to_recipients.truncate(0);
        f.graph.add_message("fax1@contoso.example", message);

        let outcomes = f
            .processor
            .process_record(
                &queue_record("m2"),
                Deadline::after(Duration::from_secs(30)),
            )
            .await
            .unwrap();

        let reason = "permanent failure: no recipient address has a valid phone number as its \
                      local part";
        assert_eq!(
            outcomes,
            vec![Outcome::Rejected {
                class: "permanent",
                reason: reason.into()
            }]
        );
        assert_eq!(
            f.state.ledger_entries(),
            vec![LedgerOutcome::Rejected {
                reason: reason.into()
            }]
        );
    }

    #[tokio::test]
    async fn subscription_removed_deletes_the_record_so_the_next_step_recreates_it() {
        let f = fixture();
        let record = QueueRecord {
            id: "q2".into(),
            body: r#"{"schema":"graph-mail-relay/notification/v1","notifications":[{"kind":"lifecycle","subscriptionId":"sub-fax","event":"subscriptionRemoved"}]}"#.into(),
        };

        let outcomes = f
            .processor
            .process_record(&record, Deadline::after(Duration::from_secs(30)))
            .await
            .unwrap();

        assert_eq!(outcomes, vec![Outcome::SubscriptionForgotten]);
        assert!(f.state.subscriptions_sync().is_empty());
    }

    #[tokio::test]
    async fn unknown_subscription_is_rejected() {
        let f = fixture();
        let mut record = queue_record("m1");
        record.body = record.body.replace("sub-fax", "sub-gone");

        let outcomes = f
            .processor
            .process_record(&record, Deadline::after(Duration::from_secs(30)))
            .await
            .unwrap();

        assert!(matches!(
            &outcomes[..],
            [Outcome::Rejected {
                class: "permanent",
                ..
            }]
        ));
    }
}
