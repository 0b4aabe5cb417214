//! The processor Lambda: SQS events from the internal queue in, fax and SMS jobs out. Answers
//! with partial batch failures, so only the records that failed transiently come back.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use graph_mail_relay::{
    config::RelayConfig,
    entry::{lambda_events::process_sqs_event, telemetry, wiring},
    usecase::Deadline,
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
            let deadline = Deadline::from_epoch_millis(event.context.deadline);
            Ok::<_, Error>(process_sqs_event(&processor, event.payload, deadline).await)
        }
    }))
    .await
}
