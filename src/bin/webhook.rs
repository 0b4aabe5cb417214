//! The webhook Lambda (Function URL or API Gateway HTTP API, payload v2): Graph's validation
//! handshake and change notifications in, authenticated notifications onto the internal queue.

use std::sync::Arc;

use graph_mail_relay::{
    config::RelayConfig,
    entry::{lambda_http_glue::respond, telemetry, wiring},
};
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = RelayConfig::from_env()?;
    let aws = wiring::AwsClients::from_env(&config).await?;
    let webhook = Arc::new(wiring::webhook(&config, &aws));

    lambda_http::run(service_fn(move |request: Request| {
        let webhook = webhook.clone();
        async move { Ok::<_, Error>(respond(&webhook, request).await) }
    }))
    .await
}
