//! The processor and renewer under Lambda: converts their events into use-case calls and the
//! outcomes into what Lambda expects back.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::Utc;
use serde_json::Value;

use crate::{
    error::RelayError,
    usecase::{
        Deadline,
        process::{Processor, QueueRecord},
        subscribe::{MailboxOutcome, Subscriber, report_json},
    },
};

/// Processes an SQS event from the internal queue. The response lists the records to deliver
/// again (partial batch failure; the event source mapping needs `ReportBatchItemFailures`).
pub async fn process_sqs_event(
    processor: &Processor,
    event: SqsEvent,
    deadline: Deadline,
) -> SqsBatchResponse {
    let records: Vec<QueueRecord> = event
        .records
        .into_iter()
        .map(|r| QueueRecord {
            id: r.message_id.unwrap_or_default(),
            body: r.body.unwrap_or_default(),
        })
        .collect();

    let retry = processor.process_batch(&records, deadline).await;

    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = retry
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// Runs the subscribe step for a schedule. A transient failure fails the invocation, so the
/// schedule's retry policy runs it again; configuration failures are logged for an alarm, and
/// retrying cannot help them.
pub async fn run_schedule(
    subscriber: &Subscriber,
    deadline: Deadline,
) -> Result<Value, RelayError> {
    let reports = subscriber.run(Utc::now(), deadline).await;

    let transient = reports.iter().find_map(|r| match &r.outcome {
        MailboxOutcome::Failed(error) if error.is_transient() => Some(error.clone()),
        _ => None,
    });
    match transient {
        Some(error) => Err(error),
        None => Ok(report_json(&reports)),
    }
}
