//! Message delivery and notifications, message reads, the access policy, the mailbox concurrency
//! limit, lifecycle events and fault injection.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Answer, FAX, FAX_ID, Harness, PRIVATE, SMS, TENANT, Webhook, fax_message, subscription_body,
};

async fn graph_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    body["error"].clone()
}

/// The message path with the id percent-encoded once, as the relay builds it.
fn message_path(mailbox: &str, id: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/v1.0/users/{mailbox}/messages/{encoded}")
}

#[tokio::test]
async fn a_delivered_message_is_notified_with_client_state_and_the_immutable_id() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let subscription: Value = h
        .create_subscription(&subscription_body(FAX, &webhook.url), true)
        .await
        .json()
        .await
        .unwrap();

    let delivered = h.deliver(FAX, &fax_message()).await;

    let immutable_id = delivered["immutableId"].as_str().unwrap();
    assert_eq!(
        delivered["notifications"],
        json!([{"subscriptionId": subscription["id"], "status": 202}])
    );
    let notifications = webhook.notifications();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].path, "/graph/notify");
    assert_eq!(notifications[0].raw_query, "mbx=fax1");
    assert_eq!(notifications[0].content_type, "application/json");
    let item = &notifications[0].json()["value"][0];
    let resource = format!("Users/{FAX_ID}/Messages/{immutable_id}");
    assert_eq!(item["subscriptionId"], subscription["id"]);
    assert_eq!(
        item["subscriptionExpirationDateTime"],
        subscription["expirationDateTime"]
    );
    assert_eq!(item["changeType"], "created");
    assert_eq!(item["clientState"], "q3J9-random-128-or-fewer-chars");
    assert_eq!(item["tenantId"], TENANT);
    assert_eq!(item["resource"], resource);
    assert_eq!(
        item["resourceData"]["@odata.type"],
        "#Microsoft.Graph.Message"
    );
    assert_eq!(item["resourceData"]["@odata.id"], resource);
    assert_eq!(item["resourceData"]["id"], immutable_id);
    assert!(
        item["resourceData"]["@odata.etag"]
            .as_str()
            .unwrap()
            .starts_with("W/\"")
    );
    assert_eq!(h.sim.stats().notifications_sent, 1);
}

#[tokio::test]
async fn a_subscription_without_the_immutable_preference_is_notified_with_the_default_id() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let mut request = subscription_body(FAX_ID, &webhook.url);
    request["resource"] = json!(format!("users/{FAX_ID}/messages"));
    request.as_object_mut().unwrap().remove("clientState");
    h.create_subscription(&request, false).await;

    let delivered = h.deliver(FAX, &fax_message()).await;

    let item = &webhook.notifications()[0].json()["value"][0];
    assert_eq!(item["resourceData"]["id"], delivered["id"]);
    assert_eq!(item.get("clientState"), None);
}

#[tokio::test]
async fn a_message_for_another_mailbox_is_not_notified() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    h.create_subscription(&subscription_body(FAX, &webhook.url), false)
        .await;

    let delivered = h.deliver(SMS, &fax_message()).await;

    assert_eq!(delivered["notifications"], json!([]));
    assert!(webhook.notifications().is_empty());
}

#[tokio::test]
async fn a_failing_webhook_is_tried_three_times_and_its_status_reported() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::FailingNotifications).await;
    h.create_subscription(&subscription_body(FAX, &webhook.url), false)
        .await;

    let delivered = h.deliver(FAX, &fax_message()).await;

    assert_eq!(delivered["notifications"][0]["status"], 500);
    assert_eq!(webhook.notifications().len(), 3);
    assert_eq!(h.sim.stats().notifications_sent, 3);
}

#[tokio::test]
async fn a_message_is_read_by_either_id_and_answers_the_id_form_preferred() {
    let h = Harness::start().await;
    let delivered = h.deliver(FAX, &fax_message()).await;
    let (id, immutable_id) = (
        delivered["id"].as_str().unwrap(),
        delivered["immutableId"].as_str().unwrap(),
    );

    let by_default: Value = h
        .graph(Method::GET, &message_path(FAX, id))
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let preferred = h
        .graph(Method::GET, &message_path("FAX1@contoso.com", id))
        .await
        .header("Prefer", "outlook.body-content-type=\"text\"")
        .header("Prefer", "IdType=\"ImmutableId\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        preferred.headers()["preference-applied"],
        "IdType=\"ImmutableId\", outlook.body-content-type=\"text\""
    );
    let preferred: Value = preferred.json().await.unwrap();
    let by_immutable: Value = h
        .graph(Method::GET, &message_path(FAX_ID, immutable_id))
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(by_default["id"], id);
    assert_eq!(preferred["id"], immutable_id);
    assert_eq!(by_immutable["id"], id);
    assert_eq!(
        by_default["internetMessageId"],
        delivered["internetMessageId"]
    );
    assert_eq!(by_default["subject"], "Invoice 1234");
    assert_eq!(
        by_default["body"],
        json!({"contentType": "text", "content": "Please fax the attached invoice."})
    );
    assert_eq!(
        by_default["from"],
        json!({"emailAddress": {"name": "Alice Example", "address": "alice@example.com"}})
    );
    assert_eq!(by_default["sender"], by_default["from"]);
    assert_eq!(
        by_default["toRecipients"],
        json!([{"emailAddress": {
            "name": "+61299998888@fax.example.com",
            "address": "+61299998888@fax.example.com",
        }}])
    );
    assert_eq!(by_default["hasAttachments"], true);
    assert_eq!(by_default.get("attachments"), None);
    assert_eq!(by_default["flag"], json!({"flagStatus": "notFlagged"}));
}

#[tokio::test]
async fn expand_attachments_returns_file_attachments_with_content_bytes() {
    let h = Harness::start().await;
    let delivered = h.deliver(FAX, &fax_message()).await;
    let path = format!(
        "{}?%24expand=attachments",
        message_path(FAX, delivered["id"].as_str().unwrap())
    );

    let message: Value = h
        .graph(Method::GET, &path)
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let attachment = &message["attachments"][0];
    assert_eq!(message["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(attachment["@odata.type"], "#microsoft.graph.fileAttachment");
    assert_eq!(attachment["@odata.mediaContentType"], "application/pdf");
    assert_eq!(attachment["name"], "invoice.pdf");
    assert_eq!(attachment["contentType"], "application/pdf");
    assert_eq!(attachment["size"], 9);
    assert_eq!(attachment["isInline"], false);
    assert_eq!(attachment["contentId"], Value::Null);
    assert_eq!(attachment["contentBytes"], "JVBERi0xLjQK");
}

#[tokio::test]
async fn an_html_body_is_turned_into_text_when_preferred() {
    let h = Harness::start().await;
    let mut message = fax_message();
    message["bodyType"] = json!("html");
    message["body"] = json!("<html><body><p>Call&nbsp;me &amp; fax <b>now</b></p></body></html>");
    let delivered = h.deliver(FAX, &message).await;
    let path = message_path(FAX, delivered["id"].as_str().unwrap());

    let html: Value = h
        .graph(Method::GET, &path)
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text: Value = h
        .graph(Method::GET, &path)
        .await
        .header("Prefer", "outlook.body-content-type=\"text\"")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(html["body"]["contentType"], "html");
    assert_eq!(html["body"]["content"], message["body"]);
    assert_eq!(
        text["body"],
        json!({"contentType": "text", "content": "Call me & fax now"})
    );
    assert_eq!(html["bodyPreview"], "Call me & fax now");
}

#[tokio::test]
async fn a_mailbox_outside_the_access_policy_is_403_error_access_denied() {
    let h = Harness::start().await;
    let delivered = h.deliver(PRIVATE, &fax_message()).await;

    let response = h
        .graph(
            Method::GET,
            &message_path(PRIVATE, delivered["id"].as_str().unwrap()),
        )
        .await
        .send()
        .await
        .unwrap();

    let error = graph_error(response, 403).await;
    assert_eq!(error["code"], "ErrorAccessDenied");
    assert_eq!(error["message"], "Access to OData is disabled.");
}

#[tokio::test]
async fn changing_the_access_scope_takes_effect_on_the_next_read() {
    let h = Harness::start().await;
    let delivered = h.deliver(FAX, &fax_message()).await;
    let path = message_path(FAX, delivered["id"].as_str().unwrap());

    let scope = json!({"outOfScope": [FAX]});
    assert_eq!(
        h.control(Method::PUT, "/_sim/access-scope", &scope)
            .await
            .status(),
        204
    );
    let response = h.graph(Method::GET, &path).await.send().await.unwrap();

    assert_eq!(
        graph_error(response, 403).await["code"],
        "ErrorAccessDenied"
    );
}

#[tokio::test]
async fn unknown_users_and_messages_are_404_with_exchange_codes() {
    let h = Harness::start().await;

    let user = h
        .graph(Method::GET, &message_path("nobody@contoso.com", "AAMkADx="))
        .await
        .send()
        .await
        .unwrap();
    let message = h
        .graph(Method::GET, &message_path(FAX, "AAMkADx="))
        .await
        .send()
        .await
        .unwrap();

    let user = graph_error(user, 404).await;
    assert_eq!(user["code"], "ErrorInvalidUser");
    assert_eq!(
        user["message"],
        "The requested user 'nobody@contoso.com' is invalid."
    );
    let message = graph_error(message, 404).await;
    assert_eq!(message["code"], "ErrorItemNotFound");
    assert_eq!(
        message["message"],
        "The specified object was not found in the store."
    );
}

#[tokio::test]
async fn a_fifth_concurrent_request_for_one_mailbox_is_429_with_retry_after() {
    let h = Harness::start().await;
    let delivered = h.deliver(FAX, &fax_message()).await;
    let path = message_path(FAX, delivered["id"].as_str().unwrap());
    let latency = json!({"messageDelayMs": 300});
    assert_eq!(
        h.control(Method::PUT, "/_sim/latency", &latency)
            .await
            .status(),
        204
    );
    let token = h.token().await;

    let requests = (0..6).map(|_| h.http.get(h.url(&path)).bearer_auth(&token).send());
    let responses: Vec<reqwest::Response> = spawn_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let ok = responses.iter().filter(|r| r.status() == 200).count();
    let throttled: Vec<&reqwest::Response> =
        responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!((ok, throttled.len()), (4, 2));
    assert_eq!(throttled[0].headers()["retry-after"], "1");
    let error: Value = responses
        .into_iter()
        .find(|r| r.status() == 429)
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(error["error"]["code"], "ApplicationThrottled");
    assert_eq!(
        error["error"]["message"],
        "Application is over its MailboxConcurrency limit."
    );
    assert_eq!(h.sim.stats().throttled, 2);
    assert_eq!(h.sim.stats().graph_requests, 6);
}

/// Runs the futures concurrently, each on its own task, and collects their outputs in order.
async fn spawn_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn injected_faults_answer_the_next_matching_requests_then_stop() {
    let h = Harness::start().await;
    let delivered = h.deliver(FAX, &fax_message()).await;
    let path = message_path(FAX, delivered["id"].as_str().unwrap());
    let fault = json!({"status": 503, "count": 2, "retryAfter": 1, "pathContains": "/messages/"});
    assert_eq!(
        h.control(Method::POST, "/_sim/faults", &fault)
            .await
            .status(),
        204
    );

    let unaffected = h
        .graph(Method::GET, "/v1.0/subscriptions")
        .await
        .send()
        .await
        .unwrap();
    let first = h.graph(Method::GET, &path).await.send().await.unwrap();
    let second = h.graph(Method::GET, &path).await.send().await.unwrap();
    let third = h.graph(Method::GET, &path).await.send().await.unwrap();

    assert_eq!(unaffected.status(), 200);
    assert_eq!(first.headers()["retry-after"], "1");
    assert_eq!(graph_error(first, 503).await["code"], "serviceNotAvailable");
    assert_eq!(
        graph_error(second, 503).await["code"],
        "serviceNotAvailable"
    );
    assert_eq!(third.status(), 200);
}

#[tokio::test]
async fn injected_429_is_activity_limit_reached_and_counted_as_throttled() {
    let h = Harness::start().await;
    let fault = json!({"status": 429, "retryAfter": 3});
    h.control(Method::POST, "/_sim/faults", &fault).await;

    let response = h
        .graph(Method::GET, "/v1.0/subscriptions")
        .await
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(
        graph_error(response, 429).await["code"],
        "activityLimitReached"
    );
    assert_eq!(h.sim.stats().throttled, 1);
}

#[tokio::test]
async fn subscription_removed_is_posted_to_the_lifecycle_url_and_deletes_the_subscription() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let mut request = subscription_body(FAX, &webhook.url);
    request["lifecycleNotificationUrl"] = json!(format!("{}/graph/lifecycle", webhook.url));
    let subscription: Value = h
        .create_subscription(&request, true)
        .await
        .json()
        .await
        .unwrap();
    let event =
        json!({"subscriptionId": subscription["id"], "lifecycleEvent": "subscriptionRemoved"});

    let response = h.control(Method::POST, "/_sim/lifecycle", &event).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": 202})
    );
    let posted = webhook.notifications();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].path, "/graph/lifecycle");
    assert_eq!(
        posted[0].json(),
        json!({"value": [{
            "subscriptionId": subscription["id"],
            "subscriptionExpirationDateTime": subscription["expirationDateTime"],
            "tenantId": TENANT,
            "clientState": "q3J9-random-128-or-fewer-chars",
            "lifecycleEvent": "subscriptionRemoved",
        }]})
    );
    let path = format!(
        "/v1.0/subscriptions/{}",
        subscription["id"].as_str().unwrap()
    );
    let gone = h.graph(Method::GET, &path).await.send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn stats_are_served_and_reset_by_the_control_plane() {
    let h = Harness::start().await;
    h.token().await;

    let stats: Value = h
        .http
        .get(h.url("/_sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reset = h
        .http
        .post(h.url("/_sim/stats/reset"))
        .send()
        .await
        .unwrap();
    let health = h.http.get(h.url("/_sim/health")).send().await.unwrap();

    assert_eq!(
        stats,
        json!({
            "tokenRequests": 1,
            "graphRequests": 0,
            "throttled": 0,
            "notificationsSent": 0,
            "subscriptionsCreated": 0,
        })
    );
    assert_eq!(reset.status(), 204);
    assert_eq!(h.sim.stats(), graph_sim::Stats::default());
    assert_eq!(health.text().await.unwrap(), "ok");
}
