//! Subscription create (validation handshake, checks), list, get, renew and delete.

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Answer, CLIENT_ID, FAX, FAX_ID, Harness, PRIVATE, VALIDATION_PREFIX, Webhook, subscription_body,
};

async fn graph_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    body["error"].clone()
}

fn expiry(body: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(body["expirationDateTime"].as_str().unwrap())
        .unwrap()
        .into()
}

#[tokio::test]
async fn create_validates_the_webhook_with_the_decoded_token_then_answers_201() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let request = subscription_body(FAX, &webhook.url);

    let response = h.create_subscription(&request, true).await;

    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity"
    );
    assert_eq!(body["id"].as_str().unwrap().len(), 36);
    assert_eq!(
        body["resource"],
        "users/fax1@contoso.com/mailFolders('Inbox')/messages"
    );
    assert_eq!(body["applicationId"], CLIENT_ID);
    assert_eq!(body["changeType"], "created");
    assert_eq!(body["clientState"], "q3J9-random-128-or-fewer-chars");
    assert_eq!(body["notificationUrl"], request["notificationUrl"]);
    assert_eq!(body["lifecycleNotificationUrl"], Value::Null);
    assert_eq!(body["creatorId"], graph_sim::CREATOR_ID);
    assert_eq!(body["latestSupportedTlsVersion"], "v1_2");
    assert_eq!(body["includeResourceData"], false);
    assert_eq!(body["encryptionCertificate"], Value::Null);
    let expiration = body["expirationDateTime"].as_str().unwrap();
    assert_eq!(expiration.len(), "2026-05-08T10:00:00.0000000Z".len());

    let validations = webhook.validations();
    assert_eq!(validations.len(), 1);
    let validation = &validations[0];
    assert_eq!(validation.path, "/graph/notify");
    assert!(validation.raw_query.starts_with(
        "mbx=fax1&validationToken=Validation%3a+Testing+client+application+reachability+for+\
         subscription+Request-Id%3a+"
    ));
    assert_eq!(validation.content_type, "text/plain; charset=utf-8");
    assert_eq!(validation.body, "");
    let token = validation.validation_token.as_deref().unwrap();
    assert_eq!(token.len(), VALIDATION_PREFIX.len() + 36);
    assert!(token.starts_with(VALIDATION_PREFIX));
    assert_eq!(h.sim.stats().subscriptions_created, 1);
}

#[tokio::test]
async fn a_lifecycle_url_is_validated_too_even_when_it_is_the_same_url() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let mut request = subscription_body(FAX, &webhook.url);
    request["lifecycleNotificationUrl"] = request["notificationUrl"].clone();

    let response = h.create_subscription(&request, false).await;

    assert_eq!(response.status(), 201);
    let validations = webhook.validations();
    assert_eq!(validations.len(), 2);
    assert_ne!(
        validations[0].validation_token,
        validations[1].validation_token
    );
}

#[tokio::test]
async fn echoing_the_still_encoded_token_fails_validation_and_creates_nothing() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::EchoingEncodedToken).await;

    let response = h
        .create_subscription(&subscription_body(FAX, &webhook.url), false)
        .await;

    let error = graph_error(response, 400).await;
    assert_eq!(error["code"], "ValidationError");
    assert_eq!(
        error["message"],
        "Subscription validation request failed. Response must exactly match validationToken \
         query parameter."
    );
    let list: Value = h
        .graph(Method::GET, "/v1.0/subscriptions")
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["value"], json!([]));
    assert_eq!(h.sim.stats().subscriptions_created, 0);
}

#[tokio::test]
async fn a_localhost_webhook_is_reached_on_the_loopback_address() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let localhost = webhook.url.replace("127.0.0.1", "localhost");

    let response = h
        .create_subscription(&subscription_body(FAX, &localhost), false)
        .await;

    assert_eq!(response.status(), 201);
    assert_eq!(webhook.validations().len(), 1);
}

#[tokio::test]
async fn an_unreachable_webhook_fails_validation() {
    let h = Harness::start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);

    let response = h
        .create_subscription(&subscription_body(FAX, &url), false)
        .await;

    assert_eq!(graph_error(response, 400).await["code"], "ValidationError");
}

#[tokio::test]
async fn the_same_mailbox_folder_and_change_type_twice_is_409() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let first: Value = h
        .create_subscription(&subscription_body(FAX, &webhook.url), false)
        .await
        .json()
        .await
        .unwrap();
    // The same Inbox, named by user id and another spelling of the folder.
    let mut again = subscription_body(FAX_ID, &webhook.url);
    again["resource"] = json!(format!("users/{FAX_ID}/mailFolders('inbox')/messages"));

    let response = h.create_subscription(&again, false).await;

    let error = graph_error(response, 409).await;
    assert_eq!(error["code"], "ExtensionError");
    assert_eq!(
        error["message"],
        format!(
            "Subscription Id {} already exists for the requested combination",
            first["id"].as_str().unwrap()
        )
    );
    assert_eq!(webhook.validations().len(), 1);
}

#[tokio::test]
async fn a_mailbox_outside_the_access_policy_is_403_extension_error() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;

    let response = h
        .create_subscription(&subscription_body(PRIVATE, &webhook.url), false)
        .await;

    let error = graph_error(response, 403).await;
    assert_eq!(error["code"], "ExtensionError");
    assert_eq!(
        error["message"],
        "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access to OData is \
         disabled.]"
    );
    assert!(webhook.received().is_empty());
}

#[tokio::test]
async fn an_unknown_mailbox_is_404_resource_not_found() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;

    let response = h
        .create_subscription(
            &subscription_body("nobody@contoso.com", &webhook.url),
            false,
        )
        .await;

    assert_eq!(graph_error(response, 404).await["code"], "ResourceNotFound");
}

#[tokio::test]
async fn an_unknown_change_type_is_400_invalid_request() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let mut request = subscription_body(FAX, &webhook.url);
    request["changeType"] = json!("created,moved");

    let response = h.create_subscription(&request, false).await;

    let error = graph_error(response, 400).await;
    assert_eq!(error["code"], "InvalidRequest");
    assert!(error["message"].as_str().unwrap().contains("'moved'"));
}

#[tokio::test]
async fn a_webhook_beyond_loopback_is_400_invalid_request() {
    let h = Harness::start().await;
    let request = subscription_body(FAX, "https://relay.example.com");

    let response = h.create_subscription(&request, false).await;

    assert_eq!(graph_error(response, 400).await["code"], "InvalidRequest");
}

#[tokio::test]
async fn client_state_over_128_characters_is_400() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let mut request = subscription_body(FAX, &webhook.url);
    request["clientState"] = json!("x".repeat(129));

    let response = h.create_subscription(&request, false).await;

    assert_eq!(graph_error(response, 400).await["code"], "InvalidRequest");
}

#[tokio::test]
async fn expiry_beyond_the_maximum_is_400_and_names_the_limit() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let mut request = subscription_body(FAX, &webhook.url);
    request["expirationDateTime"] = json!((Utc::now() + Duration::minutes(10_081)).to_rfc3339());

    let response = h.create_subscription(&request, false).await;

    let error = graph_error(response, 400).await;
    assert_eq!(error["code"], "InvalidRequest");
    assert_eq!(
        error["message"],
        "Subscription expiration can only be 10080 minutes in the future."
    );
}

#[tokio::test]
async fn expiry_under_45_minutes_is_raised_to_45_minutes() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let mut request = subscription_body(FAX, &webhook.url);
    request["expirationDateTime"] = json!((Utc::now() + Duration::minutes(5)).to_rfc3339());
    let before = Utc::now();

    let body: Value = h
        .create_subscription(&request, false)
        .await
        .json()
        .await
        .unwrap();

    let lifetime = expiry(&body) - before;
    assert!(
        lifetime >= Duration::minutes(45) && lifetime < Duration::minutes(46),
        "{lifetime}"
    );
}

#[tokio::test]
async fn list_get_renew_and_delete_a_subscription() {
    let h = Harness::start().await;
    let webhook = Webhook::start(Answer::Correctly).await;
    let created: Value = h
        .create_subscription(&subscription_body(FAX, &webhook.url), false)
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/v1.0/subscriptions/{}", created["id"].as_str().unwrap());

    let list: Value = h
        .graph(Method::GET, "/v1.0/subscriptions")
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#subscriptions"
    );
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert_eq!(list["value"][0]["id"], created["id"]);
    let got: Value = h
        .graph(Method::GET, &path)
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, created);

    let renewal = (Utc::now() + Duration::days(6)).to_rfc3339();
    let renewed = h
        .graph(Method::PATCH, &path)
        .await
        .json(&json!({"expirationDateTime": renewal}))
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), 200);
    let renewed: Value = renewed.json().await.unwrap();
    assert_eq!(
        expiry(&renewed).timestamp(),
        DateTime::parse_from_rfc3339(&renewal).unwrap().timestamp()
    );
    let too_far = json!({"expirationDateTime": (Utc::now() + Duration::days(8)).to_rfc3339()});
    let refused = h
        .graph(Method::PATCH, &path)
        .await
        .json(&too_far)
        .send()
        .await
        .unwrap();
    assert_eq!(graph_error(refused, 400).await["code"], "InvalidRequest");

    let deleted = h.graph(Method::DELETE, &path).await.send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = h.graph(Method::GET, &path).await.send().await.unwrap();
    assert_eq!(graph_error(gone, 404).await["code"], "ResourceNotFound");
    let deleted_again = h.graph(Method::DELETE, &path).await.send().await.unwrap();
    assert_eq!(deleted_again.status(), 404);
}
