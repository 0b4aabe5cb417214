//! The processor Lambda: SQS events from the internal queue in, fax and SMS jobs out. Answers
//! with partial batch failures, so only the records that failed transiently come back.

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use graph_mail_relay::{
    config::RelayConfig,
    entry::{telemetry, wiring},
    usecase::{Deadline, process::QueueRecord},
};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Arc::new(RelayConfig::from_env()?);
    let aws = wiring::AwsClients::from_env(&config).await?;
    let graph = wiring::graph(&config, &aws)?;
    let processor = Arc::new(wiring::processor(&config, &aws, graph));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let processor = processor.clone();
        async move {
            let records: Vec<QueueRecord> = event
                .payload
                .records
                .into_iter()
                .map(|r| QueueRecord {
                    id: r.message_id.unwrap_or_default(),
                    body: r.body.unwrap_or_default(),
                })
                .collect();
            let deadline = Deadline::from_epoch_millis(event.context.deadline);

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
            Ok::<_, Error>(response)
        }
    }))
    .await
}
