//! The webhook under attack, through both entry shapes: serve mode's axum router over real HTTP
//! on a loopback port, and the Lambda shape through `lambda_http`'s own event conversion. The
//! webhook is public and unauthenticated at the HTTP layer, so every test here sends what an
//! attacker could send and pins what must come back, what must reach the internal queue, how
//! often the subscription directory is read, and what must never appear in the logs.
//!
//! Most tests keep the directory and the queue in memory so that counts are exact and
//! immediate; the tests that name moto run the real DynamoDB and SQS adapters.

mod support;

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use base64::Engine as _;
use graph_mail_relay::{
    adapters::aws::dynamodb::DynamoStateStore,
    domain::{
        authenticate::client_state_digest,
        notification::{QueuedBatch, QueuedNotification},
    },
    entry::{lambda_http_glue::respond, serve},
    error::RelayError,
    ports::{LedgerOutcome, NotificationQueue, StateStore, SubscriptionRecord},
    usecase::accept::Webhook,
};
use serde_json::{Value, json};
use support::*;
use tokio::{io::AsyncReadExt as _, io::AsyncWriteExt as _, net::TcpListener};

const MAX_BODY_BYTES: usize = 262_144;

// ---------------------------------------------------------------------------------------------
// The relay under test
// ---------------------------------------------------------------------------------------------

/// The webhook's view of the state table, counting every directory read. Backed by the two
/// fixture subscriptions in memory, or by DynamoDB on moto; can be made to fail.
struct CountingState {
    dynamo: Option<DynamoStateStore>,
    failing: AtomicBool,
    reads: AtomicUsize,
}

impl CountingState {
    fn in_memory() -> Self {
        Self {
            dynamo: None,
            failing: AtomicBool::new(false),
            reads: AtomicUsize::new(0),
        }
    }

    fn on(dynamo: DynamoStateStore) -> Self {
        Self {
            dynamo: Some(dynamo),
            ..Self::in_memory()
        }
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl StateStore for CountingState {
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, RelayError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(RelayError::transient("state table throttled (test)"));
        }
        match &self.dynamo {
            Some(dynamo) => dynamo.subscriptions().await,
            None => Ok(vec![
                subscription_record(FIXTURE_FAX_SUBSCRIPTION, FAX, FIXTURE_FAX_CLIENT_STATE),
                subscription_record(FIXTURE_SMS_SUBSCRIPTION, SMS, FIXTURE_SMS_CLIENT_STATE),
            ]),
        }
    }
    async fn subscription(&self, _: &str) -> Result<Option<SubscriptionRecord>, RelayError> {
        unreachable!("the webhook reads the whole directory, never one subscription")
    }
    async fn put_subscription(&self, _: &SubscriptionRecord) -> Result<(), RelayError> {
        unreachable!("the webhook never writes state")
    }
    async fn delete_subscription(&self, _: &str) -> Result<(), RelayError> {
        unreachable!("the webhook never writes state")
    }
    async fn lock_mailbox(&self, _: &str, _: &str, _: Duration) -> Result<bool, RelayError> {
        unreachable!("the webhook never locks a mailbox")
    }
    async fn unlock_mailbox(&self, _: &str, _: &str) -> Result<(), RelayError> {
        unreachable!("the webhook never locks a mailbox")
    }
    async fn ledger(&self, _: &str) -> Result<Option<LedgerOutcome>, RelayError> {
        unreachable!("the webhook never reads the ledger")
    }
    async fn record_ledger(
        &self,
        _: &str,
        _: &LedgerOutcome,
        _: Duration,
    ) -> Result<(), RelayError> {
        unreachable!("the webhook never writes the ledger")
    }
}

/// The internal queue in memory: every batch call, in order.
#[derive(Default)]
struct RecordingQueue {
    calls: Mutex<Vec<Vec<String>>>,
}

impl RecordingQueue {
    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Everything queued so far, unpacked, and forgotten.
    fn take(&self) -> Vec<QueuedNotification> {
        let calls = std::mem::take(&mut *self.calls.lock().unwrap());
        calls
            .iter()
            .flatten()
            .flat_map(|body| unpack(body))
            .collect()
    }
}

#[async_trait]
impl NotificationQueue for RecordingQueue {
    async fn enqueue(&self, bodies: &[String]) -> Result<(), RelayError> {
        self.calls.lock().unwrap().push(bodies.to_vec());
        Ok(())
    }
}

fn unpack(body: &str) -> Vec<QueuedNotification> {
    serde_json::from_str::<QueuedBatch>(body)
        .unwrap()
        .notifications
}

/// The two ways a request reaches the webhook.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Serve mode: `serve::router` behind a real HTTP listener.
    Serve,
    /// Lambda: a Function URL event through `lambda_http::request::from_str` and `respond`.
    Lambda,
}

const SHAPES: [Shape; 2] = [Shape::Serve, Shape::Lambda];

/// What came back, whichever the shape.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    status: u16,
    content_type: String,
    nosniff: bool,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// One webhook, served over HTTP and callable as a Lambda handler.
struct Relay {
    webhook: Arc<Webhook>,
    state: Arc<CountingState>,
    queue: Arc<RecordingQueue>,
    base: String,
    http: reqwest::Client,
}

impl Relay {
    /// A webhook on the fixture subscriptions and an in-memory queue.
    async fn start() -> Self {
        Self::start_on(CountingState::in_memory()).await
    }

    async fn start_on(state: CountingState) -> Self {
        let state = Arc::new(state);
        let queue = Arc::new(RecordingQueue::default());
        let webhook = Arc::new(Webhook::new(
            state.clone(),
            queue.clone(),
            Duration::from_secs(60),
            MAX_BODY_BYTES,
        ));
        let base = serve_on_loopback(webhook.clone()).await;
        Self {
            webhook,
            state,
            queue,
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, shape: Shape, method: &str, query: &str, body: &[u8]) -> Reply {
        match shape {
            Shape::Serve => self.over_http(method, "/graph/notify", query, body).await,
            Shape::Lambda => match std::str::from_utf8(body) {
                Ok(text) => self.over_lambda(method, query, text, false).await,
                Err(_) => {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
                    self.over_lambda(method, query, &encoded, true).await
                }
            },
        }
    }

    async fn post(&self, shape: Shape, body: &str) -> Reply {
        self.call(shape, "POST", "", body.as_bytes()).await
    }

    async fn over_http(&self, method: &str, path: &str, query: &str, body: &[u8]) -> Reply {
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let response = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{path}{query}", self.base),
            )
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let (status, content_type) = (response.status().as_u16(), header("content-type"));
        let nosniff = header("x-content-type-options") == "nosniff";
        Reply {
            status,
            content_type,
            nosniff,
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    async fn over_lambda(&self, method: &str, raw_query: &str, body: &str, base64: bool) -> Reply {
        let request =
            lambda_http::request::from_str(&function_url_event(method, raw_query, body, base64))
                .expect("a payload v2 event");
        let response = respond(&self.webhook, request).await;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        Reply {
            status: response.status().as_u16(),
            content_type: header("content-type"),
            nosniff: header("x-content-type-options") == "nosniff",
            body: response.body().as_ref().to_vec(),
        }
    }

    /// Sends raw bytes on a fresh connection and returns the status code and body, for request
    /// lines no HTTP client would write.
    async fn raw_http(&self, request: &[u8]) -> (u16, Vec<u8>) {
        let address = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut received = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
            .await
            .expect("the relay closes the connection")
            .unwrap();
        let split = received
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response head");
        let head = String::from_utf8_lossy(&received[..split]).into_owned();
        let status = head[9..12].parse().unwrap();
        (status, received[split + 4..].to_vec())
    }
}

async fn serve_on_loopback(webhook: Arc<Webhook>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, serve::router(webhook)).await.unwrap();
    });
    base
}

/// A Function URL event (payload v2) as AWS delivers it to the webhook Lambda.
fn function_url_event(method: &str, raw_query: &str, body: &str, base64: bool) -> String {
    let mut event: Value =
        serde_json::from_str(&fixture("webhook-notification-batch.json")).unwrap();
    event["rawQueryString"] = json!(raw_query);
    event["requestContext"]["http"]["method"] = json!(method);
    event["headers"]["content-length"] = json!(body.len().to_string());
    event["isBase64Encoded"] = json!(base64);
    event["body"] = json!(body);
    event.to_string()
}

// ---------------------------------------------------------------------------------------------
// Graph-shaped inputs
// ---------------------------------------------------------------------------------------------

/// A `created` notification item as Graph sends it for a message in the fax mailbox.
fn created(subscription: &str, client_state: &str, message_id: &str) -> Value {
    let resource = format!("Users/5f0c1e2a-1111-2222-3333-444455556666/Messages/{message_id}");
    json!({
        "id": "lsgTZMr9KwAAAAAA=",
        "subscriptionId": subscription,
        "subscriptionExpirationDateTime": "2026-12-11T09:00:00.0000000Z",
        "changeType": "created",
        "resource": resource,
        "tenantId": TENANT,
        "clientState": client_state,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": resource,
            "id": message_id
        }
    })
}

fn authentic_fax(message_id: &str) -> Value {
    created(
        FIXTURE_FAX_SUBSCRIPTION,
        FIXTURE_FAX_CLIENT_STATE,
        message_id,
    )
}

fn with(mut item: Value, field: &str, value: Value) -> Value {
    item[field] = value;
    item
}

fn without(mut item: Value, field: &str) -> Value {
    item.as_object_mut().unwrap().remove(field);
    item
}

fn collection(items: Vec<Value>) -> String {
    json!({ "value": items }).to_string()
}

fn message(subscription: &str, message_id: &str) -> QueuedNotification {
    QueuedNotification::Message {
        subscription_id: subscription.into(),
        message_id: message_id.into(),
    }
}

/// The fixture fax item's JSON text with `"clientState": ...` replaced by `members`, for
/// spellings `serde_json::json!` cannot write (duplicate keys).
fn fax_item_with_members(message_id: &str, members: &str) -> String {
    let item = without(authentic_fax(message_id), "clientState").to_string();
    format!("{},{members}}}", item.trim_end_matches('}'))
}

// ---------------------------------------------------------------------------------------------
// Forgery
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_near_miss_client_state_is_dropped() {
    let relay = Relay::start().await;
    let right = FIXTURE_FAX_CLIENT_STATE;
    let near_misses = [
        json!("forged"),
        json!(""),
        json!(null),
        json!("x".repeat(200_000)),
        json!(format!("{right}\u{0}")),
        json!(format!("\u{0}{right}")),
        json!(format!("{right} ")),
        json!(format!(" {right}")),
        json!(right.to_uppercase()),
        json!(&right[..right.len() - 1]),
        // Cyrillic "а" in place of the Latin "a" of "fax".
        json!(right.replacen('a', "\u{430}", 1)),
        json!(format!("{right}\u{200b}")),
        json!(
            client_state_digest(right)
                .map(|b| format!("{b:02x}"))
                .concat()
        ),
    ];
    let mut items: Vec<Value> = near_misses
        .iter()
        .enumerate()
        .map(|(i, state)| {
            with(
                authentic_fax(&format!("m{i}")),
                "clientState",
                state.clone(),
            )
        })
        .collect();
    items.push(without(authentic_fax("no-client-state"), "clientState"));

    for shape in SHAPES {
        let reply = relay.post(shape, &collection(items.clone())).await;

        assert_eq!(reply.status, 202, "{shape:?}");
        assert_eq!(relay.queue.take(), vec![], "{shape:?}");
    }
    assert_eq!(relay.queue.calls(), 0);
}

#[tokio::test]
async fn right_client_state_under_another_subscription_is_dropped() {
    let relay = Relay::start().await;
    let crossed = [
        created(FIXTURE_SMS_SUBSCRIPTION, FIXTURE_FAX_CLIENT_STATE, "m1"),
        created(FIXTURE_FAX_SUBSCRIPTION, FIXTURE_SMS_CLIENT_STATE, "m2"),
        created(
            &FIXTURE_FAX_SUBSCRIPTION.to_uppercase(),
            FIXTURE_FAX_CLIENT_STATE,
            "m3",
        ),
        created(
            &format!(" {FIXTURE_FAX_SUBSCRIPTION}"),
            FIXTURE_FAX_CLIENT_STATE,
            "m4",
        ),
        created(FIXTURE_FAX_CLIENT_STATE, FIXTURE_FAX_CLIENT_STATE, "m5"),
    ];

    for shape in SHAPES {
        let reply = relay.post(shape, &collection(crossed.to_vec())).await;

        assert_eq!(reply.status, 202, "{shape:?}");
        assert_eq!(relay.queue.take(), vec![], "{shape:?}");
    }
}

#[tokio::test]
async fn tenant_must_match_exactly_apart_from_ascii_case() {
    let relay = Relay::start().await;
    let tenant = |value: Value, id: &str| with(authentic_fax(id), "tenantId", value);
    let items = vec![
        tenant(json!(TENANT.to_uppercase()), "upper-case-guid"),
        tenant(json!(format!(" {TENANT}")), "leading-space"),
        tenant(json!(format!("{TENANT} ")), "trailing-space"),
        tenant(json!(format!("{{{TENANT}}}")), "braces"),
        tenant(json!(TENANT.replace('-', "")), "no-dashes"),
        // Full-width "８" (U+FF18) for the first "8".
        tenant(
            json!(TENANT.replacen('8', "\u{ff18}", 1)),
            "full-width-digit",
        ),
        tenant(json!(""), "empty"),
        tenant(json!(null), "null"),
        without(authentic_fax("missing"), "tenantId"),
    ];

    for shape in SHAPES {
        let reply = relay.post(shape, &collection(items.clone())).await;

        assert_eq!(reply.status, 202, "{shape:?}");
        assert_eq!(
            relay.queue.take(),
            vec![message(FIXTURE_FAX_SUBSCRIPTION, "upper-case-guid")],
            "{shape:?}"
        );
    }
}

#[tokio::test]
async fn duplicate_keys_drop_the_item_whichever_value_comes_first() {
    let relay = Relay::start().await;
    let forged_first =
        format!(r#""clientState":"forged","clientState":"{FIXTURE_FAX_CLIENT_STATE}""#);
    let right_first =
        format!(r#""clientState":"{FIXTURE_FAX_CLIENT_STATE}","clientState":"forged""#);
    let crossed_subscription = format!(
        r#""clientState":"{FIXTURE_FAX_CLIENT_STATE}","subscriptionId":"{}""#,
        FIXTURE_SMS_SUBSCRIPTION
    );
    // A duplicate key inside an item makes that item malformed (dropped alone); a duplicate
    // `value` makes the whole body malformed.
    let bodies = [
        (
            format!(
                r#"{{"value":[{}]}}"#,
                fax_item_with_members("m1", &forged_first)
            ),
            202,
        ),
        (
            format!(
                r#"{{"value":[{}]}}"#,
                fax_item_with_members("m2", &right_first)
            ),
            202,
        ),
        (
            format!(
                r#"{{"value":[{}]}}"#,
                fax_item_with_members("m3", &crossed_subscription)
            ),
            202,
        ),
        (
            format!(r#"{{"value":[],"value":[{}]}}"#, authentic_fax("m4")),
            400,
        ),
    ];

    for shape in SHAPES {
        for (body, status) in &bodies {
            let reply = relay.post(shape, body).await;

            assert_eq!(reply.status, *status, "{shape:?} {body}");
        }
    }
    assert_eq!(relay.queue.calls(), 0);
}

#[tokio::test]
async fn value_that_is_not_an_array_of_items_gets_400() {
    let relay = Relay::start().await;
    let bodies = [
        json!({ "value": authentic_fax("m1") }).to_string(),
        json!({ "value": FIXTURE_FAX_CLIENT_STATE }).to_string(),
        json!({ "value": null }).to_string(),
        json!({ "value": 1 }).to_string(),
        json!({ "Value": [authentic_fax("m1")] }).to_string(),
        json!({}).to_string(),
        json!(null).to_string(),
        json!("value").to_string(),
        format!("{} trailing", collection(vec![authentic_fax("m1")])),
    ];

    for shape in SHAPES {
        for body in &bodies {
            let reply = relay.post(shape, body).await;

            assert_eq!(reply.status, 400, "{shape:?} {body}");
        }
    }
    assert_eq!(relay.queue.calls(), 0);
}

#[tokio::test]
async fn wrongly_typed_items_never_queue_anything() {
    let relay = Relay::start().await;
    let items = [
        json!(1),
        json!("item"),
        json!(null),
        json!([FIXTURE_FAX_SUBSCRIPTION, "forged", TENANT, "created", null, {"id": "m"}]),
        with(authentic_fax("m1"), "subscriptionId", json!(7)),
        with(
            authentic_fax("m2"),
            "subscriptionId",
            json!([FIXTURE_FAX_SUBSCRIPTION]),
        ),
        with(
            authentic_fax("m3"),
            "subscriptionId",
            json!({"id": FIXTURE_FAX_SUBSCRIPTION}),
        ),
        with(
            authentic_fax("m4"),
            "clientState",
            json!([FIXTURE_FAX_CLIENT_STATE]),
        ),
        with(authentic_fax("m5"), "tenantId", json!(8)),
        with(authentic_fax("m6"), "resourceData", json!("m6")),
    ];

    for shape in SHAPES {
        for item in &items {
            let reply = relay.post(shape, &collection(vec![item.clone()])).await;

            // Refusing the body (400) and dropping the item (202) are both safe; see
            // `wrongly_typed_item_is_dropped_alone` for which one the code promises.
            assert!(
                matches!(reply.status, 202 | 400),
                "{shape:?} {item} {reply:?}"
            );
        }
    }
    assert_eq!(relay.queue.calls(), 0);
}

#[tokio::test]
async fn wrongly_typed_item_is_dropped_alone() {
    let relay = Relay::start().await;
    let body = collection(vec![
        with(authentic_fax("forged"), "subscriptionId", json!(7)),
        authentic_fax("authentic"),
    ]);

    for shape in SHAPES {
        let reply = relay.post(shape, &body).await;

        assert_eq!(reply.status, 202, "{shape:?}");
        assert_eq!(
            relay.queue.take(),
            vec![message(FIXTURE_FAX_SUBSCRIPTION, "authentic")],
            "{shape:?}"
        );
    }
}

#[tokio::test]
async fn mixed_batch_queues_exactly_the_authentic_items_in_order() {
    let relay = Relay::start().await;
    let body = collection(vec![
        created("00000000-0000-0000-0000-000000000000", "forged", "f1"),
        authentic_fax("a1"),
        with(authentic_fax("f2"), "clientState", json!("forged")),
        created(FIXTURE_SMS_SUBSCRIPTION, FIXTURE_SMS_CLIENT_STATE, "a2"),
        with(
            authentic_fax("f3"),
            "tenantId",
            json!("00000000-0000-0000-0000-000000000000"),
        ),
        without(authentic_fax("f4"), "clientState"),
        with(authentic_fax("ignored"), "changeType", json!("updated")),
        authentic_fax("a3"),
        without(authentic_fax("f5"), "subscriptionId"),
    ]);

    for shape in SHAPES {
        let reply = relay.post(shape, &body).await;

        assert_eq!(reply.status, 202, "{shape:?}");
        assert_eq!(
            relay.queue.take(),
            vec![
                message(FIXTURE_FAX_SUBSCRIPTION, "a1"),
                message(FIXTURE_SMS_SUBSCRIPTION, "a2"),
                message(FIXTURE_FAX_SUBSCRIPTION, "a3"),
            ],
            "{shape:?}"
        );
    }
}

#[tokio::test]
async fn mixed_batch_over_http_reaches_sqs_on_moto_with_only_the_authentic_items() {
    let stack = Stack::start().await;
    stack.record_fixture_subscriptions().await;
    let webhook = Arc::new(stack.webhook());
    let base = serve_on_loopback(webhook).await;
    let body = collection(vec![
        with(
            authentic_fax("f1"),
            "clientState",
            json!(FIXTURE_SMS_CLIENT_STATE),
        ),
        authentic_fax("a1"),
        created("00000000-0000-0000-0000-000000000000", "forged", "f2"),
        created(FIXTURE_SMS_SUBSCRIPTION, FIXTURE_SMS_CLIENT_STATE, "a2"),
    ]);

    let response = stack
        .http
        .post(format!("{base}/graph/notify"))
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 202);
    let records = stack
        .drain(
            &stack.config.aws.internal_queue_url,
            2,
            Duration::from_secs(3),
        )
        .await;
    let queued: BTreeSet<String> = records
        .iter()
        .flat_map(|r| unpack(&r.body))
        .map(|n| format!("{} {n:?}", n.subscription_id()))
        .collect();
    let expected: BTreeSet<String> = [
        message(FIXTURE_FAX_SUBSCRIPTION, "a1"),
        message(FIXTURE_SMS_SUBSCRIPTION, "a2"),
    ]
    .iter()
    .map(|n| format!("{} {n:?}", n.subscription_id()))
    .collect();
    assert_eq!(queued, expected);
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------------

/// Sends a handshake in both shapes, by GET and by POST with a notification body that must be
/// ignored, and checks the echo, the headers, and that nothing outside was touched.
async fn assert_handshake_echoes(relay: &Relay, raw_query: &str, expected: &str) {
    let ignored_body = collection(vec![authentic_fax("must-not-be-queued")]);
    for shape in SHAPES {
        for (method, body) in [("GET", ""), ("POST", ignored_body.as_str())] {
            let reply = relay.call(shape, method, raw_query, body.as_bytes()).await;

            assert_eq!(reply.status, 200, "{shape:?} {method} {raw_query}");
            assert_eq!(reply.content_type, "text/plain; charset=utf-8");
            assert!(reply.nosniff, "{shape:?} {method} {raw_query}");
            assert_eq!(reply.text(), expected, "{shape:?} {method} {raw_query}");
        }
    }
    assert_eq!(relay.state.reads(), 0);
    assert_eq!(relay.queue.calls(), 0);
}

#[tokio::test]
async fn markup_in_the_token_is_echoed_as_plain_text_that_browsers_will_not_sniff() {
    let relay = Relay::start().await;

    assert_handshake_echoes(
        &relay,
        "validationToken=%3Cscript%3Ealert(document.domain)%3C%2Fscript%3E",
        "<script>alert(document.domain)</script>",
    )
    .await;
    assert_handshake_echoes(
        &relay,
        "validationToken=%3Chtml%3E%3Cbody+onload%3Dalert(1)%3E",
        "<html><body onload=alert(1)>",
    )
    .await;
}

#[tokio::test]
async fn invalid_percent_escapes_in_the_token_are_echoed_literally() {
    let relay = Relay::start().await;

    assert_handshake_echoes(&relay, "validationToken=%zz", "%zz").await;
    assert_handshake_echoes(&relay, "validationToken=%", "%").await;
    assert_handshake_echoes(&relay, "validationToken=a%4", "a%4").await;
    assert_handshake_echoes(&relay, "validationToken=%%41", "%A").await;
}

#[tokio::test]
async fn token_that_decodes_to_invalid_utf8_is_echoed_with_replacement_characters() {
    let relay = Relay::start().await;

    assert_handshake_echoes(&relay, "validationToken=%ff%fe", "\u{fffd}\u{fffd}").await;
    assert_handshake_echoes(&relay, "validationToken=a%C3", "a\u{fffd}").await;
    assert_handshake_echoes(&relay, "validationToken=%00", "\u{0}").await;
}

#[tokio::test]
async fn first_of_several_tokens_wins_and_an_empty_token_is_echoed_empty() {
    let relay = Relay::start().await;

    assert_handshake_echoes(
        &relay,
        "validationToken=first&validationToken=second",
        "first",
    )
    .await;
    assert_handshake_echoes(&relay, "validationToken=&validationToken=second", "").await;
    assert_handshake_echoes(&relay, "validationToken", "").await;
    assert_handshake_echoes(&relay, "mbx=fax1&validationToken=x+y", "x y").await;
}

#[tokio::test]
async fn very_long_token_is_echoed_whole() {
    let relay = Relay::start().await;
    let token = "Validation: ".to_owned() + &"A".repeat(60_000);

    assert_handshake_echoes(
        &relay,
        &format!("validationToken=Validation%3A+{}", "A".repeat(60_000)),
        &token,
    )
    .await;
}

#[tokio::test]
async fn raw_bytes_no_client_would_send_in_the_query_get_a_4xx_or_an_echo() {
    let relay = Relay::start().await;
    let tokens: [&[u8]; 4] = [b"<b>\"x\"</b>", b"\xff\xfe", b"a\x00b", b"a\tb"];

    for token in tokens {
        let request = [
            b"GET /graph/notify?validationToken=".as_slice(),
            token,
            b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ]
        .concat();
        let (status, _) = relay.raw_http(&request).await;

        assert!(
            status == 200 || (400..500).contains(&status),
            "{} -> {status}",
            String::from_utf8_lossy(token)
        );
    }
    assert_eq!(relay.queue.calls(), 0);
}

#[tokio::test]
async fn token_outside_the_query_or_with_another_name_is_not_a_handshake() {
    let relay = Relay::start().await;

    for shape in SHAPES {
        let in_body = relay.call(shape, "POST", "", b"validationToken=abc").await;
        let other_case = relay.call(shape, "GET", "ValidationToken=abc", b"").await;
        let as_fragment_like = relay
            .call(shape, "GET", "x=validationToken%3Dabc", b"")
            .await;

        assert_eq!(in_body.status, 400, "{shape:?}");
        assert_eq!(other_case.status, 405, "{shape:?}");
        assert_eq!(as_fragment_like.status, 405, "{shape:?}");
    }
    let in_path = relay
        .over_http("GET", "/graph/notify/validationToken=abc", "", b"")
        .await;
    assert_eq!(in_path.status, 405);
    assert_eq!(relay.queue.calls(), 0);
}

// ---------------------------------------------------------------------------------------------
// Body
// ---------------------------------------------------------------------------------------------

/// A notification collection with no items, padded with an ignored member to exactly `len`
/// bytes.
fn padded_collection(len: usize) -> String {
    let frame = r#"{"value":[],"pad":""}"#;
    let body = format!(
        r#"{{"value":[],"pad":"{}"}}"#,
        "x".repeat(len - frame.len())
    );
    assert_eq!(body.len(), len);
    body
}

#[tokio::test]
async fn body_exactly_at_the_cap_is_read_and_one_byte_over_gets_413() {
    let relay = Relay::start().await;

    for shape in SHAPES {
        let at_cap = relay.post(shape, &padded_collection(MAX_BODY_BYTES)).await;
        let over_cap = relay
            .post(shape, &padded_collection(MAX_BODY_BYTES + 1))
            .await;

        assert_eq!(at_cap.status, 202, "{shape:?}");
        assert_eq!(over_cap.status, 413, "{shape:?}");
        assert_eq!(over_cap.text(), "notification body too large");
    }
    assert_eq!(relay.queue.calls(), 0);
}

#[tokio::test]
async fn deeply_nested_json_is_skipped_where_ignored_and_refused_where_read() {
    let relay = Relay::start().await;
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // serde_json skips an ignored member without recursing, and refuses nesting it must read
    // past its recursion limit; neither overflows the stack.
    let bodies = [
        (format!(r#"{{"value":[],"pad":{nested}}}"#), 202),
        (
            format!(r#"{{"value":[{{"resourceData":{{"x":{nested}}}}}]}}"#),
            202,
        ),
        // The one item is not an object: dropped alone.
        (format!(r#"{{"value":{nested}}}"#), 202),
        ("[".repeat(MAX_BODY_BYTES), 400),
        ("{\"value\":".repeat(MAX_BODY_BYTES / 9), 400),
    ];

    for shape in SHAPES {
        for (body, status) in &bodies {
            let reply = relay.post(shape, body).await;

            assert_eq!(reply.status, *status, "{shape:?} {}", &body[..40]);
        }
    }
    assert_eq!(relay.queue.calls(), 0);
}

#[tokio::test]
async fn huge_array_of_tiny_forged_items_is_answered_quickly_and_queues_nothing() {
    let relay = Relay::start().await;
    let items = (MAX_BODY_BYTES - r#"{"value":[]}"#.len()) / 3;
    let body = format!(r#"{{"value":[{}{{}}]}}"#, "{},".repeat(items - 1));
    assert!(body.len() <= MAX_BODY_BYTES);

    for shape in SHAPES {
        let started = Instant::now();
        let reply = relay.post(shape, &body).await;

        assert_eq!(reply.status, 202, "{shape:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{shape:?} took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(relay.queue.calls(), 0);
}

#[tokio::test]
async fn body_that_is_not_utf8_gets_400() {
    let relay = Relay::start().await;
    let bodies: [&[u8]; 3] = [
        b"\xff\xfe\x00{",
        b"{\"value\":[{\"clientState\":\"\xff\"}]}",
        b"\xef\xbb\xbf{\"value\":[]}",
    ];

    for shape in SHAPES {
        for body in bodies {
            let reply = relay.call(shape, "POST", "", body).await;

            assert_eq!(reply.status, 400, "{shape:?} {body:?}");
        }
    }
    assert_eq!(relay.queue.calls(), 0);
}

#[tokio::test]
async fn base64_lambda_body_is_decoded_before_the_cap_and_the_parse() {
    let relay = Relay::start().await;
    let encode = |body: &str| base64::engine::general_purpose::STANDARD.encode(body);

    let authentic = relay
        .over_lambda(
            "POST",
            "",
            &encode(&collection(vec![authentic_fax("m1")])),
            true,
        )
        .await;
    let over_cap = relay
        .over_lambda(
            "POST",
            "",
            &encode(&padded_collection(MAX_BODY_BYTES + 1)),
            true,
        )
        .await;
    let not_json = relay.over_lambda("POST", "", &encode("AAAA"), true).await;

    assert_eq!(authentic.status, 202);
    assert_eq!(
        relay.queue.take(),
        vec![message(FIXTURE_FAX_SUBSCRIPTION, "m1")]
    );
    assert_eq!(over_cap.status, 413);
    assert_eq!(not_json.status, 400);
}

#[tokio::test]
async fn empty_post_gets_400_and_other_methods_without_a_token_get_405() {
    let relay = Relay::start().await;

    for shape in SHAPES {
        let empty = relay.post(shape, "").await;
        assert_eq!(empty.status, 400, "{shape:?}");
        assert_eq!(empty.text(), "body is not a notification collection");

        for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let body = collection(vec![authentic_fax("m1")]);
            let reply = relay.call(shape, method, "", body.as_bytes()).await;

            assert_eq!(reply.status, 405, "{shape:?} {method}");
            assert_eq!(reply.text(), "notifications must be POSTed");
        }
    }
    assert_eq!(relay.queue.calls(), 0);
}

// ---------------------------------------------------------------------------------------------
// What leaks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn error_replies_name_no_internal_detail() {
    let relay = Relay::start().await;
    let body = collection(vec![authentic_fax("m1")]);

    for shape in SHAPES {
        relay.state.fail(true);
        let unavailable = relay.post(shape, &body).await;
        relay.state.fail(false);
        let malformed = relay.post(shape, r#"{"value":{"subscriptionId":7}}"#).await;

        assert_eq!(unavailable.status, 503, "{shape:?}");
        assert_eq!(
            unavailable.text(),
            "temporarily unable to accept notifications"
        );
        assert_eq!(unavailable.content_type, "text/plain; charset=utf-8");
        assert_eq!(malformed.status, 400, "{shape:?}");
        assert_eq!(malformed.text(), "body is not a notification collection");
    }
}

/// Log lines written while the guard lives, as the relay's own subscriber would write them.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn install(json: bool) -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let builder = tracing_subscriber::fmt()
            .with_env_filter("graph_mail_relay=trace,graph_sim=info,info")
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let guard = if json {
            tracing::subscriber::set_default(builder.json().flatten_event(true).finish())
        } else {
            tracing::subscriber::set_default(builder.compact().finish())
        };
        (logs, guard)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn lines(&self) -> usize {
        self.text().lines().count()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_carry_no_client_state_whatever_the_outcome() {
    let (logs, _guard) = CapturedLogs::install(true);
    let relay = Relay::start().await;
    let right = FIXTURE_FAX_CLIENT_STATE;
    let bodies = [
        collection(vec![authentic_fax("authentic")]),
        collection(vec![
            with(authentic_fax("wrong-tenant"), "tenantId", json!("x")),
            with(authentic_fax("unusable"), "changeType", json!("updated")),
            created(FIXTURE_SMS_SUBSCRIPTION, right, "other-subscription"),
            created("unknown", right, "unknown-subscription"),
            with(
                authentic_fax("lifecycle"),
                "lifecycleEvent",
                json!("missed"),
            ),
        ]),
        collection(vec![with(
            authentic_fax("bad-tenant-type"),
            "tenantId",
            json!(8),
        )]),
        format!("{} trailing", collection(vec![authentic_fax("trailing")])),
        format!(
            r#"{{"value":[{}]}}"#,
            fax_item_with_members(
                "dup",
                &format!(r#""clientState":"{right}","clientState":"x""#)
            )
        ),
    ];

    for shape in SHAPES {
        for body in &bodies {
            relay.post(shape, body).await;
        }
        relay.state.fail(true);
        relay.post(shape, &bodies[1]).await;
        relay.state.fail(false);
    }

    let logged = logs.text();
    assert!(logged.contains("notification POST accepted"), "{logged}");
    assert!(!logged.contains(right), "{logged}");
    assert!(!logged.contains(&right[right.len() - 16..]), "{logged}");
}

#[tokio::test]
async fn rejections_of_one_post_are_logged_in_a_bounded_number_of_lines() {
    let (logs, _guard) = CapturedLogs::install(true);
    let relay = Relay::start().await;
    let forged = |n: usize| {
        collection(
            (0..n)
                .map(|i| json!({ "subscriptionId": format!("forged-{i}") }))
                .collect(),
        )
    };

    relay.post(Shape::Lambda, &forged(10)).await;
    let after_ten = logs.lines();
    relay.post(Shape::Lambda, &forged(1_000)).await;
    let after_thousand = logs.lines() - after_ten;

    assert!(after_ten <= 20, "{after_ten} lines for 10 forged items");
    assert_eq!(after_thousand, after_ten);
}

#[tokio::test]
async fn subscription_id_cannot_start_a_log_line() {
    let (logs, _guard) = CapturedLogs::install(false);
    let relay = Relay::start().await;
    let injected = "x\nFORGED INFO outcome=\"accepted\" queued=9";

    relay
        .post(
            Shape::Serve,
            &collection(vec![created(injected, "forged", "m1")]),
        )
        .await;

    let logged = logs.text();
    assert!(
        logged.contains("inauthentic notification dropped"),
        "{logged}"
    );
    assert!(
        !logged.lines().any(|line| line.starts_with("FORGED")),
        "{logged}"
    );
}

/// Reads the clientStates graph-sim holds for the relay's live subscriptions, as Graph's own
/// subscription listing shows them to the app.
async fn client_states_known_to_graph_sim(stack: &Stack) -> Vec<String> {
    let sim = stack.sim.base_url();
    let token: Value = stack
        .http
        .post(format!("{sim}/{TENANT}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listing: Value = stack
        .http
        .get(format!("{sim}/v1.0/subscriptions"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listing["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["clientState"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn serve_mode_logs_carry_no_client_state_message_body_or_full_phone_number() {
    let (logs, _guard) = CapturedLogs::install(false);
    let mut stack = Stack::start().await;
    stack.serve_all();
    for _ in 0..100 {
        if stack.state().subscriptions().await.unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    stack
        .deliver(FAX, fax_message("+61299998888@fax.example.com"))
        .await;
    stack
        .deliver(
            SMS,
            sms_message("0412345678@sms.example.com", "Gate code 4711 for Ms Smith"),
        )
        .await;
    assert_eq!(
        stack.jobs(&stack.config.aws.fax_queue_url, 1).await.len(),
        1
    );
    assert_eq!(
        stack.jobs(&stack.config.aws.sms_queue_url, 1).await.len(),
        1
    );

    let client_states = client_states_known_to_graph_sim(&stack).await;
    assert_eq!(client_states.len(), 2);
    let logged = logs.text();
    assert!(logged.contains("notification POST accepted"), "{logged}");
    for secret in client_states.iter().map(String::as_str).chain([
        CLIENT_SECRET,
        "Gate code 4711",
        "Please fax the attached invoice",
        "61299998888",
        "0412345678",
        "61412345678",
    ]) {
        assert!(!logged.contains(secret), "{secret} in {logged}");
    }
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Availability
// ---------------------------------------------------------------------------------------------

/// Posts forged items with fresh subscription ids for up to `budget` or `limit` requests,
/// whichever ends first; returns how long it ran and the statuses it got.
async fn forged_flood(relay: &Relay, budget: Duration, limit: usize) -> (Duration, Vec<u16>) {
    let started = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..limit {
        if started.elapsed() >= budget {
            break;
        }
        let body = collection(vec![created(&format!("forged-{i}"), "forged", "m")]);
        statuses.push(relay.post(Shape::Serve, &body).await.status);
    }
    (started.elapsed(), statuses)
}

#[tokio::test]
async fn flood_of_forged_subscription_ids_reloads_the_directory_at_most_once_a_second() {
    let stack = Stack::start().await;
    stack.record_fixture_subscriptions().await;
    let relay = Relay::start_on(CountingState::on(stack.state())).await;

    let (ran_for, statuses) = forged_flood(&relay, Duration::from_millis(2_500), 2_000).await;

    // One read fills the cache; after that, at most one reload per whole second of flood.
    let allowed = 1 + ran_for.as_secs() as usize + 1;
    assert!(
        relay.state.reads() <= allowed,
        "{} DynamoDB reads in {ran_for:?} and {} POSTs",
        relay.state.reads(),
        statuses.len()
    );
    assert!(statuses.iter().all(|s| *s == 202));
    assert_eq!(relay.queue.calls(), 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn failed_reload_still_counts_toward_the_once_a_second_limit() {
    let relay = Relay::start().await;
    relay.post(Shape::Serve, &collection(vec![])).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    relay.state.fail(true);
    let (ran_for, _) = forged_flood(&relay, Duration::from_millis(500), 50).await;

    assert!(ran_for < Duration::from_secs(1));
    assert_eq!(relay.state.reads(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_neither_deadlock_nor_lose_an_authentic_item() {
    let relay = Arc::new(Relay::start().await);
    let posts = 200;

    let all = (0..posts).map(|i| {
        let relay = relay.clone();
        tokio::spawn(async move {
            let body = collection(vec![
                created(&format!("forged-{}", i % 20), "forged", "f"),
                authentic_fax(&format!("a{i}")),
            ]);
            relay.post(Shape::Serve, &body).await.status
        })
    });
    let statuses =
        tokio::time::timeout(Duration::from_secs(30), futures_util::future::join_all(all))
            .await
            .expect("concurrent POSTs finish");

    assert!(statuses.iter().all(|s| *s.as_ref().unwrap() == 202));
    let queued: BTreeSet<String> = relay
        .queue
        .take()
        .into_iter()
        .map(|n| match n {
            QueuedNotification::Message { message_id, .. } => message_id,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(queued, (0..posts).map(|i| format!("a{i}")).collect());
    assert!(relay.state.reads() <= 1 + 30 + 1);
}
