//! Builds the use cases from configuration: the one place that knows which adapter serves which
//! port. Building does no network I/O, so Lambda init stays fast.

use std::{sync::Arc, time::Duration};

use crate::{
    adapters::{
        aws::{
            dynamodb::DynamoStateStore,
            s3::S3DocumentStore,
            sdk_config,
            secrets::SecretsManagerCredentials,
            sqs::{SqsJobQueue, SqsNotificationQueue},
        },
        graph::{GraphClient, TokenProvider},
    },
    config::RelayConfig,
    error::RelayError,
    ports::Graph,
    usecase::{accept::Webhook, process::Processor, subscribe::Subscriber},
};

/// The AWS SDK clients, built once per process.
#[derive(Clone)]
pub struct AwsClients {
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    /// Clients from the standard AWS settings.
    pub async fn from_env(config: &RelayConfig) -> Result<Self, RelayError> {
        let sdk = sdk_config().await?;
        let s3_config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(config.aws.s3_path_style)
            .build();
        Ok(Self {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
        })
    }
}

fn state(config: &RelayConfig, aws: &AwsClients) -> Arc<DynamoStateStore> {
    Arc::new(DynamoStateStore::new(
        aws.dynamodb.clone(),
        &config.aws.state_table,
    ))
}

/// The webhook: state table and internal queue only.
pub fn webhook(config: &RelayConfig, aws: &AwsClients) -> Webhook {
    Webhook::new(
        state(config, aws),
        Arc::new(SqsNotificationQueue::new(
            aws.sqs.clone(),
            &config.aws.internal_queue_url,
        )),
        Duration::from_secs(config.webhook.directory_cache_seconds),
        config.webhook.max_body_bytes,
    )
}

/// The Graph client with its token cache and credentials.
pub fn graph(config: &RelayConfig, aws: &AwsClients) -> Result<Arc<GraphClient>, RelayError> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("graph-mail-relay/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| RelayError::configuration(format!("HTTP client: {e}")))?;
    let credentials = Arc::new(SecretsManagerCredentials::new(
        aws.secrets.clone(),
        &config.graph.credentials_secret,
        Duration::from_secs(config.graph.secret_cache_seconds),
    ));
    let timeout = Duration::from_secs(config.graph.http_timeout_seconds);
    let tokens = Arc::new(TokenProvider::new(
        http.clone(),
        &config.graph.login_base,
        timeout,
        credentials,
    ));
    Ok(Arc::new(GraphClient::new(
        http,
        &config.graph.graph_base,
        tokens,
        timeout,
    )))
}

/// The processor.
pub fn processor(config: &Arc<RelayConfig>, aws: &AwsClients, graph: Arc<dyn Graph>) -> Processor {
    Processor::new(
        config.clone(),
        graph,
        state(config, aws),
        Arc::new(SqsJobQueue::new(
            aws.sqs.clone(),
            &config.aws.fax_queue_url,
            &config.aws.sms_queue_url,
        )),
        Arc::new(S3DocumentStore::new(
            aws.s3.clone(),
            &config.aws.document_bucket,
        )),
    )
}

/// The subscribe step.
pub fn subscriber(
    config: &Arc<RelayConfig>,
    aws: &AwsClients,
    graph: Arc<dyn Graph>,
) -> Subscriber {
    Subscriber::new(config.clone(), graph, state(config, aws), runner_name())
}

/// A name for this process in mailbox locks: unique per process.
fn runner_name() -> String {
    let mut bytes = [0u8; 6];
    // Without randomness the name is still unique per host and process id.
    let _ = getrandom::fill(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("pid{}-{suffix}", std::process::id())
}
