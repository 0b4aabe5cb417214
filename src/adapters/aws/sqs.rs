//! SQS: the internal notification queue and the gateways' job queues.

use async_trait::async_trait;
use aws_sdk_sqs::{Client, types::SendMessageBatchRequestEntry};

use super::classify;
use crate::{
    config::Channel,
    error::RelayError,
    ports::{JobQueue, NotificationQueue},
};

/// The internal queue between the webhook and the processor.
pub struct SqsNotificationQueue {
    client: Client,
    queue_url: String,
}

impl SqsNotificationQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl NotificationQueue for SqsNotificationQueue {
    async fn enqueue(&self, bodies: &[String]) -> Result<(), RelayError> {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| RelayError::configuration(format!("queue entry: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify("SQS SendMessageBatch to the internal queue", e))?;

        // A batch call can succeed while some entries fail; then the whole POST must be retried
        // by Graph, since the reply cannot say which items were kept.
        if let Some(failed) = output.failed.first() {
            return Err(RelayError::transient(format!(
                "SQS refused {} of {} entries (first: {} {})",
                output.failed.len(),
                bodies.len(),
                failed.code,
                failed.message.as_deref().unwrap_or("")
            )));
        }
        Ok(())
    }
}

/// The fax and SMS job queues. A FIFO queue (its URL ends in `.fifo`) gets the job id as the
/// deduplication id, so SQS itself drops a repeat within its five-minute window.
pub struct SqsJobQueue {
    client: Client,
    fax_queue_url: String,
    sms_queue_url: String,
}

impl SqsJobQueue {
    pub fn new(
        client: Client,
        fax_queue_url: impl Into<String>,
        sms_queue_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            fax_queue_url: fax_queue_url.into(),
            sms_queue_url: sms_queue_url.into(),
        }
    }
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn send(&self, channel: Channel, job_id: &str, job_json: &str) -> Result<(), RelayError> {
        let queue_url = match channel {
            Channel::Fax => &self.fax_queue_url,
            Channel::Sms => &self.sms_queue_url,
        };
        let mut request = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(job_json);
        if queue_url.ends_with(".fifo") {
            request = request
                .message_group_id(job_id)
                .message_deduplication_id(job_id);
        }
        request.send().await.map_err(|e| {
            classify(
                &format!("SQS SendMessage to the {} queue", channel.as_str()),
                e,
            )
        })?;
        Ok(())
    }
}
