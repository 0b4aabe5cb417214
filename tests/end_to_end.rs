//! The whole path on the local stack: graph-sim delivers mail and calls the webhook, the
//! processor fetches from graph-sim and writes jobs to SQS on moto, documents to S3 on moto.

mod support;

use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use chrono::Utc;
use graph_mail_relay::{
    domain::job::{job_id, sha256_hex},
    entry::lambda_events::{process_sqs_event, run_schedule},
    error::RelayError,
    ports::StateStore,
    usecase::{
        Deadline,
        process::{Outcome, QueueRecord},
        subscribe::MailboxOutcome,
    },
};
use serde_json::{Value, json};
use support::*;

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

/// Waits until the serve-mode timer has recorded both subscriptions.
async fn wait_for_subscriptions(stack: &Stack, count: usize) {
    for _ in 0..100 {
        if stack.state().subscriptions().await.unwrap().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the subscribe step did not record {count} subscriptions");
}

#[tokio::test]
async fn fax_and_sms_mail_become_jobs_on_their_queues() {
    let mut stack = Stack::start().await;
    stack.serve_all();
    wait_for_subscriptions(&stack, 2).await;

    let fax = stack
        .deliver(FAX, fax_message("+61299998888@fax.example.com"))
        .await;
    let sms = stack
        .deliver(
            SMS,
            sms_message("0412345678@sms.example.com", "Gate code 4711"),
        )
        .await;
    assert_eq!(fax["notifications"][0]["status"], 202);
    assert_eq!(sms["notifications"][0]["status"], 202);

    let fax_jobs = stack.jobs(&stack.config.aws.fax_queue_url, 1).await;
    let sms_jobs = stack.jobs(&stack.config.aws.sms_queue_url, 1).await;
    let fax_job_id = job_id(FAX, fax["internetMessageId"].as_str().unwrap());
    let key = format!("documents/{fax_job_id}/0-invoice-42.pdf");
    let pdf = pdf_bytes();
    assert_eq!(
        fax_jobs,
        vec![json!({
            "schema": "graph-mail-relay/fax-job/v1",
            "jobId": fax_job_id,
            "channel": "fax",
            "mailbox": FAX,
            "message": {
                "id": fax["immutableId"],
                "internetMessageId": fax["internetMessageId"],
                "receivedDateTime": fax_jobs[0]["message"]["receivedDateTime"],
            },
            "sender": {"name": "Alice Example", "address": "alice@contoso.example"},
            "recipients": ["+61299998888"],
            "subject": "Invoice 42",
            "text": "Please fax the attached invoice.",
            "documents": [{
                "name": "invoice-42.pdf",
                "contentType": "application/pdf",
                "size": pdf.len(),
                "sha256": sha256_hex(&pdf),
                "bucket": stack.config.aws.document_bucket,
                "key": key,
            }],
        })]
    );
    // graph-sim stamps the message when it is delivered, a moment before the job was read.
    let received = fax_jobs[0]["message"]["receivedDateTime"].as_str().unwrap();
    let age = Utc::now()
        - chrono::DateTime::parse_from_rfc3339(received)
            .unwrap()
            .to_utc();
    assert!(
        age >= chrono::Duration::zero() && age < chrono::Duration::minutes(1),
        "{received}"
    );
    let stored = stack
        .aws
        .s3
        .get_object()
        .bucket(&stack.config.aws.document_bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored.body.collect().await.unwrap().into_bytes().to_vec(),
        pdf
    );

    assert_eq!(sms_jobs.len(), 1);
    let sms_job = &sms_jobs[0];
    assert_eq!(sms_job["schema"], "graph-mail-relay/sms-job/v1");
    assert_eq!(
        sms_job["jobId"],
        job_id(SMS, sms["internetMessageId"].as_str().unwrap())
    );
    assert_eq!(sms_job["recipients"], json!(["+61412345678"]));
    assert_eq!(sms_job["text"], "Gate code 4711");
    assert_eq!(sms_job["message"]["id"], sms["immutableId"]);
    assert_eq!(sms_job.get("documents"), None);
    stack.shutdown().await;
}

#[tokio::test]
async fn subscribing_twice_creates_nothing_new() {
    let mut stack = Stack::start().await;
    stack.serve_webhook();
    let subscriber = stack.subscriber();

    let first = subscriber.run(Utc::now(), deadline()).await;
    let second = subscriber.run(Utc::now(), deadline()).await;

    assert!(
        first
            .iter()
            .all(|r| matches!(r.outcome, MailboxOutcome::Created { .. })),
        "{first:?}"
    );
    assert!(
        second
            .iter()
            .all(|r| matches!(r.outcome, MailboxOutcome::Live { .. })),
        "{second:?}"
    );
    assert_eq!(stack.stats().subscriptions_created, 2);
    let mut recorded: Vec<String> = stack
        .state()
        .subscriptions()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.resource)
        .collect();
    recorded.sort();
    assert_eq!(
        recorded,
        vec![
            format!("users/{FAX}/mailFolders('Inbox')/messages"),
            format!("users/{SMS}/mailFolders('Inbox')/messages"),
        ]
    );
    stack.shutdown().await;
}

/// Subscribes both mailboxes with the webhook serving, then clears graph-sim's counters.
async fn subscribed_stack() -> Stack {
    let mut stack = Stack::start().await;
    stack.serve_webhook();
    let reports = stack.subscriber().run(Utc::now(), deadline()).await;
    assert!(
        reports
            .iter()
            .all(|r| matches!(r.outcome, MailboxOutcome::Created { .. }))
    );
    stack.sim.reset_stats();
    stack
}

#[tokio::test]
async fn many_messages_need_one_token_request() {
    let stack = subscribed_stack().await;
    for i in 0..6 {
        stack
            .deliver(
                SMS,
                sms_message("+61412345678@sms.example.com", &format!("text {i}")),
            )
            .await;
    }
    let records = stack.take_notifications(6).await;
    assert_eq!(records.len(), 6);

    let retry = stack.processor().process_batch(&records, deadline()).await;

    assert_eq!(retry, Vec::<String>::new());
    assert_eq!(stack.stats().token_requests, 1);
    assert_eq!(stack.stats().graph_requests, 6);
    assert_eq!(stack.stats().throttled, 0);
    assert_eq!(
        stack.jobs(&stack.config.aws.sms_queue_url, 6).await.len(),
        6
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn mailbox_outside_the_access_scope_is_a_configuration_error_and_not_retried() {
    let stack = subscribed_stack().await;
    stack.set_out_of_scope(&[FAX]).await;
    stack
        .deliver(FAX, fax_message("+61299998888@fax.example.com"))
        .await;
    let records = stack.take_notifications(1).await;
    let processor = stack.processor();

    let outcomes = processor.process_record(&records[0], deadline()).await;
    let retry = processor.process_batch(&records, deadline()).await;

    let reason = format!(
        "configuration error: mailbox {FAX} is outside the app's access scope (403 \
         ErrorAccessDenied: Access to OData is disabled.); the Exchange administrator must add it \
         to the app's RBAC for Applications scope or Application Access Policy (changes take up \
         to a few hours to apply), and the app needs the Mail.Read application permission"
    );
    assert_eq!(
        outcomes,
        Ok(vec![Outcome::Rejected {
            class: "configuration",
            reason
        }])
    );
    assert_eq!(retry, Vec::<String>::new());
    assert_eq!(stack.stats().graph_requests, 2);
    stack.assert_empty(&stack.config.aws.fax_queue_url).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn subscribing_a_mailbox_outside_the_access_scope_reports_a_configuration_error() {
    let mut stack = Stack::start().await;
    stack.serve_webhook();
    stack.set_out_of_scope(&[SMS]).await;

    let reports = stack.subscriber().run(Utc::now(), deadline()).await;

    assert!(matches!(reports[0].outcome, MailboxOutcome::Created { .. }));
    let MailboxOutcome::Failed(RelayError::Configuration { reason }) = &reports[1].outcome else {
        panic!(
            "expected a configuration error, got {:?}",
            reports[1].outcome
        );
    };
    assert!(reason.starts_with(&format!(
        "Graph refused to subscribe to users/{SMS}/mailFolders('Inbox')/messages (403 ExtensionError:"
    )), "{reason}");
    stack.shutdown().await;
}

#[tokio::test]
async fn throttled_fetch_is_retried_after_retry_after_and_succeeds() {
    let stack = subscribed_stack().await;
    let records = queued_sms(&stack, "hello").await;
    inject_fault(
        &stack,
        json!({"status": 429, "count": 1, "retryAfter": 1, "pathContains": "/messages/"}),
    )
    .await;

    let started = tokio::time::Instant::now();
    let retry = stack.processor().process_batch(&records, deadline()).await;

    assert_eq!(retry, Vec::<String>::new());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(stack.stats().graph_requests, 2);
    assert_eq!(
        stack.jobs(&stack.config.aws.sms_queue_url, 1).await.len(),
        1
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn graph_outage_past_the_deadline_returns_the_record_for_retry() {
    let stack = subscribed_stack().await;
    let records = queued_sms(&stack, "hello").await;
    inject_fault(
        &stack,
        json!({"status": 503, "count": 50, "retryAfter": 5, "pathContains": "/messages/"}),
    )
    .await;

    let retry = stack
        .processor()
        .process_batch(&records, Deadline::after(Duration::from_secs(3)))
        .await;

    assert_eq!(retry, vec![records[0].id.clone()]);
    assert_eq!(stack.stats().graph_requests, 1);
    stack.assert_empty(&stack.config.aws.sms_queue_url).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn busy_mailbox_stays_within_four_concurrent_requests() {
    let stack = subscribed_stack().await;
    for i in 0..10 {
        stack
            .deliver(FAX, fax_message(&format!("+6129999888{i}@fax.example.com")))
            .await;
    }
    let records = stack.take_notifications(10).await;
    let url = format!("{}/_sim/latency", stack.sim.base_url());
    stack
        .http
        .put(url)
        .json(&json!({"messageDelayMs": 150}))
        .send()
        .await
        .unwrap();

    let retry = stack.processor().process_batch(&records, deadline()).await;

    assert_eq!(retry, Vec::<String>::new());
    assert_eq!(stack.stats().throttled, 0);
    assert_eq!(stack.stats().graph_requests, 10);
    assert_eq!(
        stack.jobs(&stack.config.aws.fax_queue_url, 10).await.len(),
        10
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn repeated_notification_sends_the_job_once() {
    let stack = subscribed_stack().await;
    let records = queued_sms(&stack, "once").await;
    let processor = stack.processor();

    processor.process_batch(&records, deadline()).await;
    processor.process_batch(&records, deadline()).await;

    assert_eq!(
        stack.jobs(&stack.config.aws.sms_queue_url, 1).await.len(),
        1
    );
    let queue = &stack.config.aws.sms_queue_url;
    stack.assert_empty(queue).await;
    stack.shutdown().await;
}

fn processor_event() -> SqsEvent {
    serde_json::from_str(&fixture("processor-sqs-batch.json")).unwrap()
}

#[tokio::test]
async fn sqs_event_for_vanished_messages_is_consumed_not_retried() {
    let stack = Stack::start().await;
    stack.record_fixture_subscriptions().await;

    let response = process_sqs_event(&stack.processor(), processor_event(), deadline()).await;

    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": []})
    );
    assert_eq!(stack.stats().graph_requests, 2);
    stack.shutdown().await;
}

#[tokio::test]
async fn sqs_event_during_a_graph_outage_reports_both_records_for_retry() {
    let stack = Stack::start().await;
    stack.record_fixture_subscriptions().await;
    inject_fault(&stack, json!({"status": 503, "count": 50, "retryAfter": 5})).await;

    let short = Deadline::after(Duration::from_secs(3));
    let response = process_sqs_event(&stack.processor(), processor_event(), short).await;

    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [
            {"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6d0"},
            {"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6d1"},
        ]})
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn schedule_run_subscribes_every_mailbox() {
    let mut stack = Stack::start().await;
    stack.serve_webhook();

    let report = run_schedule(&stack.subscriber(), deadline()).await.unwrap();

    let outcomes: Vec<(&str, &str)> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["mailbox"].as_str().unwrap(),
                row["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes, vec![(FAX, "created"), (SMS, "created")]);
    stack.shutdown().await;
}

/// Delivers one SMS e-mail and takes the notification the webhook queued for it.
async fn queued_sms(stack: &Stack, text: &str) -> Vec<QueueRecord> {
    let message = sms_message("+61412345678@sms.example.com", text);
    stack.deliver(SMS, message).await;
    stack.take_notifications(1).await
}

async fn inject_fault(stack: &Stack, fault: Value) {
    let url = format!("{}/_sim/faults", stack.sim.base_url());
    let response = stack.http.post(url).json(&fault).send().await.unwrap();
    assert!(response.status().is_success());
}

#[tokio::test]
async fn job_too_large_for_its_queue_is_rejected_not_retried() {
    let stack = subscribed_stack().await;
    let text = "x".repeat(1_100_000);
    let records = queued_sms(&stack, &text).await;

    let outcomes = stack
        .processor()
        .process_record(&records[0], deadline())
        .await
        .unwrap();

    let [Outcome::Rejected { class, reason }] = &outcomes[..] else {
        panic!("expected one rejection, got {outcomes:?}");
    };
    assert_eq!(*class, "permanent");
    assert!(
        reason.starts_with(
            "permanent failure: SQS SendMessage to the sms queue: InvalidParameterValue:"
        ),
        "{reason}"
    );
    stack.assert_empty(&stack.config.aws.sms_queue_url).await;
    stack.shutdown().await;
}
