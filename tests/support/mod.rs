//! One harness for the black-box tests: provisions fresh AWS resources on the moto server named
//! by `AWS_ENDPOINT_URL` (`make test` starts one), starts graph-sim on a random loopback port,
//! and builds the relay from a configuration that points at both, through the same wiring the
//! Lambda functions and serve mode use.

#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use graph_mail_relay::{
    adapters::aws::dynamodb::DynamoStateStore,
    config::RelayConfig,
    domain::authenticate::client_state_digest,
    entry::{serve, wiring},
    ports::{StateStore, SubscriptionRecord},
    usecase::{
        accept::Webhook,
        process::{Processor, QueueRecord},
        subscribe::Subscriber,
    },
};
use graph_sim::{SimConfig, SimMailbox, SimServer, Stats};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

pub const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
pub const CLIENT_ID: &str = "0f5b8c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d";
pub const CLIENT_SECRET: &str = "sim-client-secret-value";
pub const FAX: &str = "fax1@contoso.example";
pub const SMS: &str = "sms1@contoso.example";

/// The subscriptions the fixtures in `events/` refer to.
pub const FIXTURE_FAX_SUBSCRIPTION: &str = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07";
pub const FIXTURE_FAX_CLIENT_STATE: &str = "fax-client-state-7Qx2mJ9vT4kL8pW1zR6nY3bC5dF0gHs2";
pub const FIXTURE_SMS_SUBSCRIPTION: &str = "9a3c1e55-0b7d-4f2e-8c61-5d2f7a9e3b10";
pub const FIXTURE_SMS_CLIENT_STATE: &str = "sms-client-state-Lk3Vb8Nq1Wz5Xc7Mp0Rt4Yh6Gd2Fs9Aj";

/// A running local stack for one test.
pub struct Stack {
    pub sim: SimServer,
    pub config: Arc<RelayConfig>,
    /// The configuration as TOML, for running the relay's binaries.
    pub config_text: String,
    pub aws: wiring::AwsClients,
    pub http: reqwest::Client,
    pub webhook_base: String,
    listener: Option<TcpListener>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn aws_endpoint_is_local() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "these tests need a local moto server: run them with `make test`, or with \
         `infra/local/with-moto.sh cargo nextest run`, which starts one and sets AWS_ENDPOINT_URL"
    );
}

fn unique_suffix() -> String {
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Stack {
    /// Provisions queues, table, bucket and secret, starts graph-sim, and binds the webhook's
    /// port (not yet serving).
    pub async fn start() -> Self {
        aws_endpoint_is_local();
        let suffix = unique_suffix();

        let sim_config = SimConfig {
            tenant_id: TENANT.into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            mailboxes: vec![
                SimMailbox {
                    address: FAX.into(),
                    user_id: "5f0c1e2a-1111-2222-3333-444455556666".into(),
                },
                SimMailbox {
                    address: SMS.into(),
                    user_id: "6a1d2f3b-7777-8888-9999-aaaabbbbcccc".into(),
                },
            ],
            out_of_scope: vec![],
            token_lifetime_seconds: 3599,
            expires_in_as_string: true,
            max_subscription_minutes: 10_080,
        };
        let sim_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = graph_sim::start(sim_config, sim_listener).await.unwrap();

        let sdk = aws_config::load_from_env().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let mut queue_urls = Vec::new();
        for name in ["notifications", "fax-jobs", "sms-jobs"] {
            let created = sqs
                .create_queue()
                .queue_name(format!("gmr-{suffix}-{name}"))
                .send()
                .await
                .expect("create queue on moto");
            queue_urls.push(created.queue_url.unwrap());
        }
        let table = format!("gmr-{suffix}-state");
        create_state_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await;
        let bucket = format!("gmr-{suffix}-documents");
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket on moto");
        let secret = format!("gmr-{suffix}/graph-credentials");
        aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name(&secret)
            .secret_string(
                json!({"tenantId": TENANT, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET})
                    .to_string(),
            )
            .send()
            .await
            .expect("create secret on moto");

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let webhook_base = format!("http://{}", listener.local_addr().unwrap());
        let config_text = format!(
            r#"
            [graph]
            login_base = "{sim}"
            graph_base = "{sim}"
            credentials_secret = "{secret}"
            http_timeout_seconds = 5

            [webhook]
            notification_url = "{webhook_base}/graph/notify"
            lifecycle_url = "{webhook_base}/graph/lifecycle"
            max_body_bytes = 262144
            directory_cache_seconds = 60

            [aws]
            internal_queue_url = "{internal}"
            fax_queue_url = "{fax}"
            sms_queue_url = "{sms}"
            state_table = "{table}"
            document_bucket = "{bucket}"
            s3_path_style = true

            [serve]
            subscribe_interval_seconds = 3600

            [[mailbox]]
            address = "{FAX}"
            channel = "fax"
            default_region = "AU"

            [[mailbox]]
            address = "{SMS}"
            channel = "sms"
            default_region = "AU"
            "#,
            sim = sim.base_url(),
            internal = queue_urls[0],
            fax = queue_urls[1],
            sms = queue_urls[2],
        );
        let config = Arc::new(RelayConfig::from_toml(&config_text).expect("test configuration"));
        let aws = wiring::AwsClients::from_env(&config).await.unwrap();
        let (stop, _) = watch::channel(false);

        Self {
            sim,
            config,
            config_text,
            aws,
            http: reqwest::Client::new(),
            webhook_base,
            listener: Some(listener),
            stop,
            tasks: Vec::new(),
        }
    }

    /// Serves only the webhook on the bound port; queue consumption stays in the test's hands.
    pub fn serve_webhook(&mut self) {
        let listener = self
            .listener
            .take()
            .expect("the webhook port is already serving");
        let router = serve::router(Arc::new(self.webhook()));
        let mut stopped = self.stop.subscribe();
        self.tasks.push(tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
                .unwrap();
        }));
    }

    /// Runs the whole relay in serve mode on the bound port.
    pub fn serve_all(&mut self) {
        let listener = self
            .listener
            .take()
            .expect("the webhook port is already serving");
        let (config, aws, stopped) = (self.config.clone(), self.aws.clone(), self.stop.subscribe());
        self.tasks.push(tokio::spawn(async move {
            serve::run_on(listener, config, aws, stopped).await.unwrap();
        }));
    }

    pub fn webhook(&self) -> Webhook {
        wiring::webhook(&self.config, &self.aws)
    }

    pub fn processor(&self) -> Processor {
        wiring::processor(
            &self.config,
            &self.aws,
            wiring::graph(&self.config, &self.aws).unwrap(),
        )
    }

    pub fn subscriber(&self) -> Subscriber {
        wiring::subscriber(
            &self.config,
            &self.aws,
            wiring::graph(&self.config, &self.aws).unwrap(),
        )
    }

    pub fn state(&self) -> DynamoStateStore {
        DynamoStateStore::new(self.aws.dynamodb.clone(), &self.config.aws.state_table)
    }

    /// Records a subscription with a known clientState, as the subscribe step would.
    pub async fn record_subscription(&self, id: &str, mailbox: &str, client_state: &str) {
        let record = subscription_record(id, mailbox, client_state);
        self.state().put_subscription(&record).await.unwrap();
    }

    /// Records the two subscriptions the fixtures in `events/` refer to.
    pub async fn record_fixture_subscriptions(&self) {
        self.record_subscription(FIXTURE_FAX_SUBSCRIPTION, FAX, FIXTURE_FAX_CLIENT_STATE)
            .await;
        self.record_subscription(FIXTURE_SMS_SUBSCRIPTION, SMS, FIXTURE_SMS_CLIENT_STATE)
            .await;
    }

    /// Delivers a message into a simulated mailbox; graph-sim notifies the webhook before it
    /// answers.
    pub async fn deliver(&self, mailbox: &str, message: Value) -> Value {
        let url = format!("{}/_sim/mailboxes/{mailbox}/messages", self.sim.base_url());
        let response = self.http.post(url).json(&message).send().await.unwrap();
        assert_eq!(response.status(), 201, "graph-sim refused the delivery");
        response.json().await.unwrap()
    }

    /// Puts mailboxes outside (or, with an empty list, all back inside) the app's access scope.
    pub async fn set_out_of_scope(&self, mailboxes: &[&str]) {
        let url = format!("{}/_sim/access-scope", self.sim.base_url());
        let response = self
            .http
            .put(url)
            .json(&json!({ "outOfScope": mailboxes }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    pub fn stats(&self) -> Stats {
        self.sim.stats()
    }

    /// Everything on a queue, waiting up to `wait` for at least `expected` messages, then deleted.
    pub async fn drain(
        &self,
        queue_url: &str,
        expected: usize,
        wait: Duration,
    ) -> Vec<QueueRecord> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut records = Vec::new();
        loop {
            let output = self
                .aws
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .unwrap();
            for message in output.messages.unwrap_or_default() {
                self.aws
                    .sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(message.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
                records.push(QueueRecord {
                    id: message.message_id.unwrap(),
                    body: message.body.unwrap(),
                });
            }
            if records.len() >= expected || tokio::time::Instant::now() >= deadline {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The records the webhook put on the internal queue, waiting up to 5 s for `expected`.
    pub async fn take_notifications(&self, expected: usize) -> Vec<QueueRecord> {
        let queue = &self.config.aws.internal_queue_url;
        self.drain(queue, expected, Duration::from_secs(5)).await
    }

    /// Fails the test if anything arrives on the queue within half a second.
    pub async fn assert_empty(&self, queue_url: &str) {
        let arrived = self.drain(queue_url, 1, Duration::from_millis(500)).await;
        assert_eq!(arrived.len(), 0, "unexpected messages on {queue_url}");
    }

    /// The jobs on a queue, parsed.
    pub async fn jobs(&self, queue_url: &str, expected: usize) -> Vec<Value> {
        self.drain(queue_url, expected, Duration::from_secs(10))
            .await
            .iter()
            .map(|r| serde_json::from_str(&r.body).unwrap())
            .collect()
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.sim.shutdown().await;
    }
}

async fn create_state_table(client: &aws_sdk_dynamodb::Client, table: &str) {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(table)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table on moto");
}

/// A live subscription record of the test tenant, with a known clientState.
pub fn subscription_record(id: &str, mailbox: &str, client_state: &str) -> SubscriptionRecord {
    let now = chrono::Utc::now();
    SubscriptionRecord {
        subscription_id: id.into(),
        mailbox: mailbox.into(),
        tenant_id: TENANT.into(),
        resource: format!("users/{mailbox}/mailFolders('Inbox')/messages"),
        client_state_sha256: client_state_digest(client_state),
        expires_at: now + chrono::Duration::days(6),
        created_at: now,
    }
}

/// Reads a fixture from `events/`.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A small fax message for graph-sim's control endpoint, with a one-page PDF.
pub fn fax_message(to: &str) -> Value {
    json!({
        "from": {"name": "Alice Example", "address": "alice@contoso.example"},
        "to": [to],
        "subject": "Invoice 42",
        "body": "Please fax the attached invoice.",
        "bodyType": "text",
        "attachments": [{"name": "invoice-42.pdf", "contentType": "application/pdf",
                         "contentBase64": base64_pdf()}]
    })
}

/// A small SMS message.
pub fn sms_message(to: &str, text: &str) -> Value {
    json!({
        "from": {"name": "Bob Example", "address": "bob@contoso.example"},
        "to": [to],
        "subject": "",
        "body": text,
        "bodyType": "text",
        "attachments": []
    })
}

/// The bytes of `samplconfig/sample-fax.pdf`, base64.
pub fn base64_pdf() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(pdf_bytes())
}

pub fn pdf_bytes() -> Vec<u8> {
    std::fs::read(format!(
        "{}/samplconfig/sample-fax.pdf",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}
