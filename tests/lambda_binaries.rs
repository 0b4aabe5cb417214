//! The three Lambda binaries as Lambda runs them: each is started with the events in `events/`
//! under a small Lambda Runtime API on 127.0.0.1, with its configuration from
//! `GRAPH_MAIL_RELAY_CONFIG` and AWS on moto, and its reply is read back from that API.

mod support;

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use serde_json::{Value, json};
use support::*;
use tokio::{net::TcpListener, sync::Mutex};

/// One invocation's event, and what the function answered.
#[derive(Default)]
struct Invocation {
    event: Option<String>,
    answer: Option<(&'static str, String)>,
}

type Shared = Arc<Mutex<Invocation>>;

const REQUEST_ID: &str = "8f507cfc-3d2a-4d8f-9e1b-6c0a6f1e2d3c";

async fn next(State(shared): State<Shared>) -> impl IntoResponse {
    let event = shared.lock().await.event.take();
    // After its one event the function waits for the next, as it would between invocations.
    let Some(event) = event else {
        return std::future::pending().await;
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_static(REQUEST_ID),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        deadline.to_string().parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:relay"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-00000000-0"),
    );
    (headers, event)
}

async fn answer(
    State(shared): State<Shared>,
    Path((_, kind)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    let kind = if kind == "response" {
        "response"
    } else {
        "error"
    };
    shared.lock().await.answer = Some((kind, String::from_utf8_lossy(&body).into_owned()));
    StatusCode::ACCEPTED
}

/// How one run of a function ended.
#[derive(Debug)]
enum Ending {
    /// The function answered through the Runtime API: `response` or `error`, and the body.
    Answered(&'static str, String),
    /// The process exited without answering: its exit code and what it wrote to stderr.
    Exited(Option<i32>, String),
}

/// Runs `binary` for one invocation with `event`; returns the answer it gave.
async fn invoke(stack: &Stack, binary: &str, event: String) -> (&'static str, String) {
    match run(stack, binary, event).await {
        Ending::Answered(kind, body) => (kind, body),
        ending => panic!("{binary} did not answer: {ending:?}"),
    }
}

/// Runs `binary` for one invocation with `event`.
async fn run(stack: &Stack, binary: &str, event: String) -> Ending {
    let shared: Shared = Arc::new(Mutex::new(Invocation {
        event: Some(event),
        answer: None,
    }));
    let api = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
        .with_state(shared.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, api).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("gmr-lambda-{}-{binary}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("relay.toml");
    std::fs::write(&config, &stack.config_text).unwrap();
    let log = dir.join("stderr.log");
    let mut function = start(binary, &config, &api_address.to_string(), &log);

    let mut answer = None;
    let mut exit = None;
    for _ in 0..300 {
        answer = shared.lock().await.answer.take();
        exit = function.try_wait().unwrap();
        if answer.is_some() || exit.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    function.kill().ok();
    function.wait().unwrap();
    server.abort();
    let stderr = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    match (answer, exit) {
        (Some((kind, body)), _) => Ending::Answered(kind, body),
        (None, Some(status)) => Ending::Exited(status.code(), stderr),
        (None, None) => panic!("{binary} neither answered nor exited within 30 s"),
    }
}

fn start(binary: &str, config: &std::path::Path, api: &str, log: &std::path::Path) -> Child {
    let path = match binary {
        "webhook" => env!("CARGO_BIN_EXE_webhook"),
        "processor" => env!("CARGO_BIN_EXE_processor"),
        "renewer" => env!("CARGO_BIN_EXE_renewer"),
        other => panic!("no binary {other}"),
    };
    Command::new(path)
        .env("GRAPH_MAIL_RELAY_CONFIG", config)
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", binary)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{binary}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn webhook_binary_answers_the_validation_request() {
    let stack = Stack::start().await;

    let (kind, body) = invoke(&stack, "webhook", fixture("webhook-validation-notify.json")).await;

    assert_eq!(kind, "response");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["statusCode"], 200);
    assert_eq!(
        reply["headers"]["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        reply["body"],
        "Validation: Testing client application reachability for subscription Request-Id: \
         0c6a2f51-7d1e-4b3a-9f0e-2b8c4d6e8a10"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn webhook_binary_queues_an_authentic_batch() {
    let stack = Stack::start().await;
    stack.record_fixture_subscriptions().await;

    let (kind, body) = invoke(
        &stack,
        "webhook",
        fixture("webhook-notification-batch.json"),
    )
    .await;

    assert_eq!(kind, "response");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["statusCode"], 202);
    assert_eq!(stack.take_notifications(3).await.len(), 3);
    stack.shutdown().await;
}

#[tokio::test]
async fn processor_binary_answers_with_a_partial_batch_response() {
    let stack = Stack::start().await;
    stack.record_fixture_subscriptions().await;

    let (kind, body) = invoke(&stack, "processor", fixture("processor-sqs-batch.json")).await;

    assert_eq!(kind, "response");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"batchItemFailures": []})
    );
    assert_eq!(stack.stats().graph_requests, 2);
    stack.shutdown().await;
}

#[tokio::test]
async fn renewer_binary_subscribes_every_mailbox_on_its_schedule() {
    let mut stack = Stack::start().await;
    stack.serve_webhook();

    let (kind, body) = invoke(&stack, "renewer", fixture("renewer-schedule.json")).await;

    assert_eq!(kind, "response");
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
    let outcomes: Vec<(&str, &str)> = rows
        .iter()
        .map(|row| {
            (
                row["mailbox"].as_str().unwrap(),
                row["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes, vec![(FAX, "created"), (SMS, "created")]);
    assert_eq!(stack.stats().subscriptions_created, 2);
    stack.shutdown().await;
}

#[tokio::test]
async fn broken_configuration_stops_the_function_at_init_with_the_reason() {
    let mut stack = Stack::start().await;
    stack.config_text = stack
        .config_text
        .replace("channel = \"sms\"", "channel = \"pager\"");

    let ending = run(&stack, "processor", fixture("processor-sqs-batch.json")).await;

    // Lambda reports a function that exits during init as an init failure, with its output.
    let Ending::Exited(code, stderr) = ending else {
        panic!("expected an exit, got {ending:?}")
    };
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("unknown variant `pager`, expected `fax` or `sms`"),
        "{stderr}"
    );
    stack.shutdown().await;
}
