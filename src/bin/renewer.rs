//! The renewer Lambda, run by EventBridge Scheduler: the subscribe step for every configured
//! mailbox. The schedule's payload is not read (Scheduler and rule-based schedules send
//! different shapes).

use std::sync::Arc;

use chrono::Utc;
use graph_mail_relay::{
    config::RelayConfig,
    entry::{telemetry, wiring},
    error::RelayError,
    usecase::{
        Deadline,
        subscribe::{MailboxOutcome, report_json},
    },
};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Arc::new(RelayConfig::from_env()?);
    let aws = wiring::AwsClients::from_env(&config).await?;
    let graph = wiring::graph(&config, &aws)?;
    let subscriber = Arc::new(wiring::subscriber(&config, &aws, graph));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let subscriber = subscriber.clone();
        async move {
            let deadline = Deadline::from_epoch_millis(event.context.deadline);
            let reports = subscriber.run(Utc::now(), deadline).await;

            // A transient failure fails the invocation so the schedule's retry policy runs it
            // again; configuration failures are logged for an alarm and retrying cannot help.
            if let Some(MailboxOutcome::Failed(error)) = reports
                .iter()
                .map(|r| &r.outcome)
                .find(|o| matches!(o, MailboxOutcome::Failed(e) if e.is_transient()))
            {
                return Err(RelayError::clone(error).into());
            }
            Ok::<_, Error>(report_json(&reports))
        }
    }))
    .await
}
