//! The token endpoint and bearer authentication of `/v1.0`.

use reqwest::Method;
use serde_json::Value;

use crate::harness::{CLIENT_ID, Harness, SECRET, TENANT, config};

const SCOPE: &str = "https://graph.microsoft.com/.default";

fn fields<'a>(overrides: &[(&'a str, Option<&'a str>)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("scope", SCOPE),
        ("grant_type", "client_credentials"),
    ];
    for (name, value) in overrides {
        fields.retain(|(n, _)| n != name);
        if let Some(value) = value {
            fields.push((name, value));
        }
    }
    fields
}

/// Asserts an identity platform error and returns its body.
async fn assert_identity_error(
    response: reqwest::Response,
    status: u16,
    error: &str,
    code: u64,
) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error);
    assert_eq!(body["error_codes"], serde_json::json!([code]));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with(&format!("AADSTS{code}: "))
    );
    assert_eq!(
        body["error_uri"],
        format!("https://login.microsoftonline.com/error?code={code}")
    );
    for id in ["trace_id", "correlation_id"] {
        assert_eq!(body[id].as_str().unwrap().len(), 36);
    }
    body
}

#[tokio::test]
async fn client_credentials_grant_issues_a_bearer_token() {
    let h = Harness::start().await;

    let response = h.token_request(TENANT, &fields(&[])).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert!(body["access_token"].as_str().unwrap().len() > 40);
    assert_eq!(h.sim.stats().token_requests, 1);
}

#[tokio::test]
async fn expires_in_can_be_a_string() {
    let h = Harness::start_with(graph_sim::SimConfig {
        expires_in_as_string: true,
        ..config()
    })
    .await;

    let body: Value = h
        .token_request(TENANT, &fields(&[]))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(body["expires_in"], "3599");
}

#[tokio::test]
async fn unknown_tenant_is_aadsts90002() {
    let h = Harness::start().await;

    let response = h
        .token_request("11111111-2222-3333-4444-555555555555", &fields(&[]))
        .await;

    assert_identity_error(response, 400, "invalid_request", 90002).await;
}

#[tokio::test]
async fn other_grant_types_are_aadsts70003() {
    let h = Harness::start().await;

    let response = h
        .token_request(TENANT, &fields(&[("grant_type", Some("password"))]))
        .await;

    assert_identity_error(response, 400, "unsupported_grant_type", 70003).await;
}

#[tokio::test]
async fn unknown_client_is_aadsts700016() {
    let h = Harness::start().await;

    let response = h
        .token_request(
            TENANT,
            &fields(&[("client_id", Some("99999999-0000-0000-0000-000000000000"))]),
        )
        .await;

    assert_identity_error(response, 400, "unauthorized_client", 700016).await;
}

#[tokio::test]
async fn missing_secret_is_aadsts7000218() {
    let h = Harness::start().await;

    let response = h
        .token_request(TENANT, &fields(&[("client_secret", None)]))
        .await;

    assert_identity_error(response, 400, "invalid_request", 7000218).await;
}

#[tokio::test]
async fn wrong_secret_is_401_aadsts7000215() {
    let h = Harness::start().await;

    let response = h
        .token_request(
            TENANT,
            &fields(&[("client_secret", Some("secret-id-not-value"))]),
        )
        .await;

    let body = assert_identity_error(response, 401, "invalid_client", 7000215).await;
    assert!(
        !body["error_description"]
            .as_str()
            .unwrap()
            .contains("secret-id-not-value")
    );
}

#[tokio::test]
async fn scope_other_than_graph_default_is_aadsts70011() {
    let h = Harness::start().await;

    let response = h
        .token_request(
            TENANT,
            &fields(&[("scope", Some("https://graph.microsoft.com/Mail.Read"))]),
        )
        .await;

    assert_identity_error(response, 400, "invalid_scope", 70011).await;
    assert_eq!(h.sim.stats().token_requests, 1);
}

#[tokio::test]
async fn injected_token_fault_is_temporarily_unavailable_once() {
    let h = Harness::start().await;
    let fault = serde_json::json!({"target": "token", "status": 503, "count": 1, "retryAfter": 2});
    assert_eq!(
        h.control(Method::POST, "/_sim/faults", &fault)
            .await
            .status(),
        204
    );

    let failed = h.token_request(TENANT, &fields(&[])).await;
    assert_eq!(failed.headers()["retry-after"], "2");
    assert_identity_error(failed, 503, "temporarily_unavailable", 90024).await;
    let retried = h.token_request(TENANT, &fields(&[])).await;

    assert_eq!(retried.status(), 200);
    assert_eq!(h.sim.stats().token_requests, 2);
}

/// Asserts a Graph 401 with the given message.
async fn assert_unauthenticated(response: reqwest::Response, message: &str) {
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(body["error"]["message"], message);
    assert_eq!(
        body["error"]["innerError"]["request-id"]
            .as_str()
            .unwrap()
            .len(),
        36
    );
}

#[tokio::test]
async fn graph_without_a_token_is_401_access_token_is_empty() {
    let h = Harness::start().await;

    let response = h
        .http
        .get(h.url("/v1.0/subscriptions"))
        .send()
        .await
        .unwrap();

    assert_unauthenticated(response, "Access token is empty.").await;
    assert_eq!(h.sim.stats().graph_requests, 0);
}

#[tokio::test]
async fn graph_with_a_token_it_did_not_issue_is_401_validation_failure() {
    let h = Harness::start().await;

    let response = h
        .http
        .get(h.url("/v1.0/subscriptions"))
        .bearer_auth("eyJforged")
        .send()
        .await
        .unwrap();

    assert_unauthenticated(response, "Access token validation failure.").await;
}

#[tokio::test]
async fn graph_with_an_expired_token_is_401_lifetime_validation_failed() {
    let h = Harness::start_with(graph_sim::SimConfig {
        token_lifetime_seconds: 0,
        ..config()
    })
    .await;
    let token = h.token().await;

    let response = h
        .http
        .get(h.url("/v1.0/subscriptions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();

    assert_unauthenticated(
        response,
        "Lifetime validation failed, the token is expired.",
    )
    .await;
}

#[tokio::test]
async fn graph_echoes_the_client_request_id_in_errors() {
    let h = Harness::start().await;
    let client_request_id = "0d1c2b3a-4f5e-4d6c-8b7a-9f8e7d6c5b4a";

    let response = h
        .graph(
            Method::GET,
            "/v1.0/subscriptions/00000000-0000-0000-0000-000000000000",
        )
        .await
        .header("client-request-id", client_request_id)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["client-request-id"], client_request_id);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ResourceNotFound");
    assert_eq!(
        body["error"]["innerError"]["client-request-id"],
        client_request_id
    );
    assert_eq!(h.sim.stats().graph_requests, 1);
}
