//! One harness for the black-box tests: a simulator on 127.0.0.1:0 with a small tenant, a client,
//! and a tiny webhook that records what Graph sends it.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use graph_sim::{SimConfig, SimMailbox, SimServer};
use serde_json::{Value, json};

pub const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
pub const CLIENT_ID: &str = "0c6f3a1e-8b0d-4a57-9f0e-2d6c1b7e4a10";
pub const SECRET: &str = "Kx8Q~s3cr3t.value-not-the-id";
pub const FAX: &str = "fax1@contoso.com";
pub const FAX_ID: &str = "5f0c1e2a-1111-2222-3333-444455556666";
pub const SMS: &str = "sms@contoso.com";
pub const SMS_ID: &str = "6a1d2f3b-2222-3333-4444-555566667777";
/// A mailbox outside the app's access policy.
pub const PRIVATE: &str = "ceo@contoso.com";
pub const PRIVATE_ID: &str = "7b2e3a4c-3333-4444-5555-666677778888";
pub const VALIDATION_PREFIX: &str =
    "Validation: Testing client application reachability for subscription Request-Id: ";

pub fn config() -> SimConfig {
    let mailbox = |address: &str, user_id: &str| SimMailbox {
        address: address.to_string(),
        user_id: user_id.to_string(),
    };
    SimConfig {
        tenant_id: TENANT.to_string(),
        client_id: CLIENT_ID.to_string(),
        client_secret: SECRET.to_string(),
        mailboxes: vec![
            mailbox(FAX, FAX_ID),
            mailbox(SMS, SMS_ID),
            mailbox(PRIVATE, PRIVATE_ID),
        ],
        out_of_scope: vec![PRIVATE.to_string()],
        token_lifetime_seconds: 3599,
        expires_in_as_string: false,
        max_subscription_minutes: 10_080,
    }
}

/// A running simulator and a client for it.
pub struct Harness {
    pub sim: SimServer,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(config()).await
    }

    pub async fn start_with(config: SimConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = graph_sim::start(config, listener).await.unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Harness { sim, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// A token request with these form fields.
    pub async fn token_request(&self, tenant: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.http
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// A valid access token.
    pub async fn token(&self) -> String {
        let response = self
            .token_request(
                TENANT,
                &[
                    ("client_id", CLIENT_ID),
                    ("client_secret", SECRET),
                    ("scope", "https://graph.microsoft.com/.default"),
                    ("grant_type", "client_credentials"),
                ],
            )
            .await;
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    /// An authenticated Graph request.
    pub async fn graph(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let token = self.token().await;
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// `POST /v1.0/subscriptions`, with `Prefer: IdType="ImmutableId"` when `immutable`.
    pub async fn create_subscription(&self, body: &Value, immutable: bool) -> reqwest::Response {
        let mut request = self
            .graph(reqwest::Method::POST, "/v1.0/subscriptions")
            .await
            .json(body);
        if immutable {
            request = request.header("Prefer", "IdType=\"ImmutableId\"");
        }
        request.send().await.unwrap()
    }

    /// Delivers a plain-text message to a mailbox and returns the control plane's answer.
    pub async fn deliver(&self, mailbox: &str, message: &Value) -> Value {
        let response = self
            .http
            .post(self.url(&format!("/_sim/mailboxes/{mailbox}/messages")))
            .json(message)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// A small fax message as the gateway receives it.
pub fn fax_message() -> Value {
    json!({
        "from": {"name": "Alice Example", "address": "alice@example.com"},
        "to": ["+61299998888@fax.example.com"],
        "subject": "Invoice 1234",
        "body": "Please fax the attached invoice.",
        "bodyType": "text",
        "attachments": [{
            "name": "invoice.pdf",
            "contentType": "application/pdf",
            "contentBase64": "JVBERi0xLjQK",
        }]
    })
}

/// A subscription body for the Inbox of `mailbox`, notifying and validating at `webhook`.
pub fn subscription_body(mailbox: &str, webhook: &str) -> Value {
    json!({
        "changeType": "created",
        "notificationUrl": format!("{webhook}/graph/notify?mbx=fax1"),
        "resource": format!("users/{mailbox}/mailFolders('Inbox')/messages"),
        "expirationDateTime": (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339(),
        "clientState": "q3J9-random-128-or-fewer-chars",
    })
}

/// How the webhook answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Validation with the decoded token; notifications with 202.
    Correctly,
    /// Validation with the token as it appeared, still URL-encoded.
    EchoingEncodedToken,
    /// Validation correctly; notifications with 500.
    FailingNotifications,
}

/// One request the webhook received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub raw_query: String,
    pub content_type: String,
    /// The `validationToken` after form decoding, for validation requests.
    pub validation_token: Option<String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Clone)]
struct WebhookState {
    answer: Answer,
    received: Arc<Mutex<Vec<Received>>>,
}

/// A webhook on 127.0.0.1:0.
pub struct Webhook {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    pub async fn start(answer: Answer) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = WebhookState {
            answer,
            received: received.clone(),
        };
        let app = Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Webhook {
            url,
            received,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn validations(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.validation_token.is_some())
            .collect()
    }

    pub fn notifications(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.validation_token.is_none())
            .collect()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(state): State<WebhookState>,
    uri: axum::http::Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: String,
) -> Response {
    let raw_query = query.unwrap_or_default();
    let validation_token = form_urlencoded::parse(raw_query.as_bytes())
        .find(|(name, _)| name == "validationToken")
        .map(|(_, value)| value.into_owned());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    state.received.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        raw_query: raw_query.clone(),
        content_type,
        validation_token: validation_token.clone(),
        body,
    });

    match (validation_token, state.answer) {
        (Some(_), Answer::EchoingEncodedToken) => {
            let encoded = raw_query
                .split("validationToken=")
                .nth(1)
                .unwrap_or("")
                .to_string();
            ([(header::CONTENT_TYPE, "text/plain")], encoded).into_response()
        }
        (Some(token), _) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], token).into_response()
        }
        (None, Answer::FailingNotifications) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        (None, _) => StatusCode::ACCEPTED.into_response(),
    }
}
