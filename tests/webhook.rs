//! The webhook through the real `lambda_http` request conversion, with the events in `events/`
//! as a Function URL delivers them. Notification tests run against DynamoDB and SQS on moto.

mod support;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use graph_mail_relay::{
    domain::notification::{QueuedBatch, QueuedNotification},
    entry::lambda_http_glue::respond,
    error::RelayError,
    ports::{LedgerOutcome, NotificationQueue, StateStore, SubscriptionRecord},
    usecase::accept::Webhook,
};
use lambda_http::{Body, Response};
use support::*;

/// A state store and queue that fail the test if the webhook touches them.
struct Untouchable;

#[async_trait]
impl StateStore for Untouchable {
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, RelayError> {
        panic!("the handshake must not read state")
    }
    async fn subscription(&self, _: &str) -> Result<Option<SubscriptionRecord>, RelayError> {
        panic!("the handshake must not read state")
    }
    async fn put_subscription(&self, _: &SubscriptionRecord) -> Result<(), RelayError> {
        unreachable!()
    }
    async fn delete_subscription(&self, _: &str) -> Result<(), RelayError> {
        unreachable!()
    }
    async fn lock_mailbox(&self, _: &str, _: &str, _: Duration) -> Result<bool, RelayError> {
        unreachable!()
    }
    async fn unlock_mailbox(&self, _: &str, _: &str) -> Result<(), RelayError> {
        unreachable!()
    }
    async fn ledger(&self, _: &str) -> Result<Option<LedgerOutcome>, RelayError> {
        unreachable!()
    }
    async fn record_ledger(
        &self,
        _: &str,
        _: &LedgerOutcome,
        _: Duration,
    ) -> Result<(), RelayError> {
        unreachable!()
    }
}

#[async_trait]
impl NotificationQueue for Untouchable {
    async fn enqueue(&self, _: &[String]) -> Result<(), RelayError> {
        panic!("the handshake must not queue anything")
    }
}

fn offline_webhook() -> Webhook {
    Webhook::new(
        Arc::new(Untouchable),
        Arc::new(Untouchable),
        Duration::from_secs(60),
        262_144,
    )
}

async fn call(webhook: &Webhook, event_json: &str) -> Response<Body> {
    let request = lambda_http::request::from_str(event_json).expect("a payload v2 event");
    respond(webhook, request).await
}

fn body_text(response: &Response<Body>) -> String {
    String::from_utf8(response.body().as_ref().to_vec()).unwrap()
}

fn content_type(response: &Response<Body>) -> &str {
    response.headers()["content-type"].to_str().unwrap()
}

const DECODED_GRAPH_TOKEN: &str = "Validation: Testing client application reachability for \
                                   subscription Request-Id: 0c6a2f51-7d1e-4b3a-9f0e-2b8c4d6e8a10";

#[tokio::test]
async fn validation_on_the_notification_path_echoes_the_decoded_token() {
    let response = call(
        &offline_webhook(),
        &fixture("webhook-validation-notify.json"),
    )
    .await;

    assert_eq!(response.status(), 200);
    assert_eq!(content_type(&response), "text/plain; charset=utf-8");
    assert_eq!(body_text(&response), DECODED_GRAPH_TOKEN);
}

#[tokio::test]
async fn validation_on_the_lifecycle_path_ignores_a_body_that_is_not_json() {
    let response = call(
        &offline_webhook(),
        &fixture("webhook-validation-lifecycle.json"),
    )
    .await;

    assert_eq!(response.status(), 200);
    assert_eq!(content_type(&response), "text/plain; charset=utf-8");
    assert_eq!(body_text(&response), DECODED_GRAPH_TOKEN);
}

#[tokio::test]
async fn validation_by_get_decodes_plus_and_escapes_with_form_rules() {
    let response = call(&offline_webhook(), &fixture("webhook-validation-get.json")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(body_text(&response), "a+b c:d");
}

fn notification_event(body: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(&fixture("webhook-notification-batch.json")).unwrap();
    event["body"] = serde_json::Value::String(body.into());
    event.to_string()
}

#[tokio::test]
async fn malformed_json_gets_400() {
    let response = call(&offline_webhook(), &notification_event("{\"value\": [")).await;

    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn body_over_the_cap_gets_413() {
    let oversized = format!("{{\"value\":[],\"pad\":\"{}\"}}", "x".repeat(262_144));

    let response = call(&offline_webhook(), &notification_event(&oversized)).await;

    assert_eq!(response.status(), 413);
}

async fn queued(stack: &Stack, expected: usize) -> Vec<QueuedNotification> {
    let records = stack
        .drain(
            &stack.config.aws.internal_queue_url,
            expected,
            Duration::from_secs(3),
        )
        .await;
    records
        .iter()
        .flat_map(|r| {
            serde_json::from_str::<QueuedBatch>(&r.body)
                .unwrap()
                .notifications
        })
        .collect()
}

#[tokio::test]
async fn three_authentic_items_for_two_mailboxes_are_all_queued() {
    let stack = Stack::start().await;
    stack.record_fixture_subscriptions().await;

    let response = call(
        &stack.webhook(),
        &fixture("webhook-notification-batch.json"),
    )
    .await;

    assert_eq!(response.status(), 202);
    let mut notifications = queued(&stack, 3).await;
    notifications.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let message = |subscription: &str, id: &str| QueuedNotification::Message {
        subscription_id: subscription.into(),
        message_id: id.into(),
    };
    assert_eq!(
        notifications,
        vec![
            message(
                FIXTURE_FAX_SUBSCRIPTION,
                "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AwNQ1x2Z8dEy5fwEbyJvP3AAAAgEMAAA="
            ),
            message(
                FIXTURE_FAX_SUBSCRIPTION,
                "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AwNQ1x2Z8dEy5fwEbyJvP3AAAAgENAAA="
            ),
            message(
                FIXTURE_SMS_SUBSCRIPTION,
                "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AmS4g1B7lQ0m8r2pJcT9kXwAAAgEOAAA="
            ),
        ]
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn mixed_batch_queues_exactly_the_authentic_lifecycle_item() {
    let stack = Stack::start().await;
    stack.record_fixture_subscriptions().await;

    let response = call(&stack.webhook(), &fixture("webhook-mixed-batch.json")).await;

    assert_eq!(response.status(), 202);
    assert_eq!(
        queued(&stack, 1).await,
        vec![QueuedNotification::Lifecycle {
            subscription_id: FIXTURE_FAX_SUBSCRIPTION.into(),
            event: "reauthorizationRequired".into()
        }]
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn forged_state_unknown_subscription_and_wrong_tenant_queue_nothing() {
    let stack = Stack::start().await;
    stack.record_fixture_subscriptions().await;

    let response = call(&stack.webhook(), &fixture("webhook-forged-batch.json")).await;

    assert_eq!(response.status(), 202);
    assert_eq!(queued(&stack, 1).await, vec![]);
    stack.shutdown().await;
}

#[tokio::test]
async fn lifecycle_batch_queues_both_events() {
    let stack = Stack::start().await;
    stack.record_fixture_subscriptions().await;

    let response = call(&stack.webhook(), &fixture("webhook-lifecycle-batch.json")).await;

    assert_eq!(response.status(), 202);
    let mut events: Vec<String> = queued(&stack, 2)
        .await
        .into_iter()
        .map(|n| match n {
            QueuedNotification::Lifecycle {
                subscription_id,
                event,
            } => format!("{subscription_id} {event}"),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        vec![
            format!("{FIXTURE_FAX_SUBSCRIPTION} missed"),
            format!("{FIXTURE_SMS_SUBSCRIPTION} subscriptionRemoved")
        ]
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn queue_failure_gets_503_so_graph_retries() {
    let mut stack = Stack::start().await;
    stack.record_fixture_subscriptions().await;
    let mut config = (*stack.config).clone();
    config.aws.internal_queue_url = format!("{}-missing", config.aws.internal_queue_url);
    stack.config = Arc::new(config);

    let response = call(
        &stack.webhook(),
        &fixture("webhook-notification-batch.json"),
    )
    .await;

    assert_eq!(response.status(), 503);
    stack.shutdown().await;
}
