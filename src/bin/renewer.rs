//! The renewer Lambda, run by EventBridge Scheduler: the subscribe step for every configured
//! mailbox. The schedule's payload is not read (Scheduler and rule-based schedules send
//! different shapes).

use std::sync::Arc;

use graph_mail_relay::{
    config::RelayConfig,
    entry::{lambda_events::run_schedule, telemetry, wiring},
    usecase::Deadline,
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
            run_schedule(&subscriber, deadline)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
