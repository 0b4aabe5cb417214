//! The Graph calls the relay makes: fetch a message with its attachments, and create, list and
//! delete subscriptions.
//!
//! Every call goes through [`GraphClient::execute`], which adds the token, retries throttling and
//! temporary failures (honouring `Retry-After`, bounded by attempts and by the deadline), and
//! refreshes the token once on a 401. URLs are built only from configuration, the configured
//! mailbox and Graph's ids, each path segment percent-encoded exactly once.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tracing::warn;

use super::{
    errors::{GraphFailure, is_retryable, retry_after},
    token::TokenProvider,
};
use crate::{
    domain::message::Message,
    error::RelayError,
    ports::{CreateRefusal, Graph, GraphSubscription, NewSubscription},
    secret::Secret,
    usecase::Deadline,
};

/// Everything but unreserved characters and `@` is escaped in a path segment, so an id holding
/// `/`, `?`, `#`, `=` or `+` stays one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// Attempts per call, the first included.
const MAX_ATTEMPTS: u32 = 4;

/// Ask for immutable ids (they survive moves) and text bodies. The header applies only to the
/// request it is on, so it goes on every request.
const PREFER_MESSAGE: &str = "IdType=\"ImmutableId\", outlook.body-content-type=\"text\"";
const PREFER_IMMUTABLE: &str = "IdType=\"ImmutableId\"";

/// A Graph v1.0 client.
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    tokens: Arc<TokenProvider>,
    timeout: Duration,
}

fn segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

impl GraphClient {
    /// A client for `graph_base` (e.g. `https://graph.microsoft.com`).
    pub fn new(
        http: reqwest::Client,
        graph_base: &str,
        tokens: Arc<TokenProvider>,
        timeout: Duration,
    ) -> Self {
        let base = format!("{}/v1.0", graph_base.trim_end_matches('/'));
        Self {
            http,
            base,
            tokens,
            timeout,
        }
    }

    /// Sends a request built by `build` until it succeeds, fails for good, or retrying no longer
    /// fits before the deadline.
    async fn execute(
        &self,
        deadline: Deadline,
        build: impl Fn(&reqwest::Client, &Secret) -> RequestBuilder,
    ) -> Result<Response, Result<GraphFailure, RelayError>> {
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.tokens.token(deadline).await.map_err(Err)?;
            let timeout = self.timeout.min(deadline.remaining());
            if timeout.is_zero() {
                return Err(Err(RelayError::transient(
                    "no time left before the deadline",
                )));
            }
            let sent = build(&self.http, &token).timeout(timeout).send().await;

            let (reason, wait) = match sent {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !refreshed => {
                    refreshed = true;
                    self.tokens.invalidate().await;
                    continue;
                }
                Ok(response) if is_retryable(response.status()) => {
                    let wait = retry_after(&response);
                    (GraphFailure::read(response).await.to_string(), wait)
                }
                Ok(response) => return Err(Ok(GraphFailure::read(response).await)),
                Err(error) => (format!("request failed: {}", error.without_url()), None),
            };

            let backoff = wait.unwrap_or(Duration::from_millis(200 * 2u64.pow(attempt)));
            if attempt >= MAX_ATTEMPTS
                || !deadline.allows(backoff, self.timeout.min(Duration::from_secs(2)))
            {
                return Err(Err(RelayError::Transient {
                    reason,
                    retry_after: wait,
                }));
            }
            warn!(attempt, wait_ms = backoff.as_millis() as u64, %reason, "Graph call will be retried");
            tokio::time::sleep(backoff).await;
        }
    }
}

/// A subscription as Graph returns it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionBody {
    id: String,
    #[serde(default)]
    resource: String,
    expiration_date_time: String,
}

impl SubscriptionBody {
    fn into_subscription(self) -> Result<GraphSubscription, RelayError> {
        let expires_at = DateTime::parse_from_rfc3339(&self.expiration_date_time)
            .map_err(|e| RelayError::transient(format!("subscription expiry unreadable: {e}")))?
            .with_timezone(&Utc);
        Ok(GraphSubscription {
            id: self.id,
            resource: self.resource,
            expires_at,
        })
    }
}

#[derive(Deserialize)]
struct SubscriptionList {
    value: Vec<SubscriptionBody>,
}

fn unreadable(what: &str, error: reqwest::Error) -> RelayError {
    RelayError::transient(format!("{what} unreadable: {}", error.without_url()))
}

#[async_trait]
impl Graph for GraphClient {
    async fn tenant_id(&self) -> Result<String, RelayError> {
        self.tokens.tenant_id().await
    }

    // LIMITATION: attachments arrive inline, base64 in the one JSON response, and are held in
    // memory; a mailbox that receives attachments near Graph's 150 MB limit needs a processor
    // with memory to match (streaming `$value` is not used yet).
    async fn message(
        &self,
        mailbox: &str,
        message_id: &str,
        deadline: Deadline,
    ) -> Result<Message, RelayError> {
        let url = format!(
            "{}/users/{}/messages/{}?$expand=attachments",
            self.base,
            segment(mailbox),
            segment(message_id)
        );
        let response = self
            .execute(deadline, |http, token| {
                http.get(&url)
                    .bearer_auth(token.expose())
                    .header("Prefer", PREFER_MESSAGE)
            })
            .await
            .map_err(|failure| match failure {
                Err(error) => error,
                Ok(f) if f.is_access_denied() => RelayError::configuration(format!(
                    "mailbox {mailbox} is outside the app's access scope ({f}); the Exchange \
                     administrator must add it to the app's RBAC for Applications scope or \
                     Application Access Policy (changes take up to a few hours to apply), and the \
                     app needs the Mail.Read application permission"
                )),
                Ok(f) if f.status == StatusCode::FORBIDDEN => RelayError::configuration(format!(
                    "Graph refused access to mailbox {mailbox} ({f})"
                )),
                Ok(f) if f.status == StatusCode::UNAUTHORIZED => RelayError::configuration(format!(
                    "Graph rejected a fresh access token for mailbox {mailbox} ({f}): check that \
                     the app registration has the Mail.Read application permission"
                )),
                Ok(f) if f.code == "ErrorItemNotFound" => RelayError::permanent(format!(
                    "message not found in mailbox {mailbox} (deleted or moved out of reach \
                     before it was fetched): {f}"
                )),
                Ok(f) if f.status == StatusCode::NOT_FOUND => RelayError::configuration(format!(
                    "mailbox {mailbox} was not found in the tenant: {f}"
                )),
                Ok(f) => RelayError::permanent(format!("Graph refused the message fetch: {f}")),
            })?;
        response.json().await.map_err(|e| unreadable("message", e))
    }

    async fn create_subscription(
        &self,
        request: &NewSubscription,
        deadline: Deadline,
    ) -> Result<GraphSubscription, CreateRefusal> {
        let url = format!("{}/subscriptions", self.base);
        let body = json!({
            "changeType": "created",
            "notificationUrl": request.notification_url,
            "lifecycleNotificationUrl": request.lifecycle_url,
            "resource": request.resource,
            "expirationDateTime": request.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "clientState": request.client_state.expose(),
            "latestSupportedTlsVersion": "v1_2",
        });
        let resource = &request.resource;
        let response = self
            .execute(deadline, |http, token| {
                http.post(&url)
                    .bearer_auth(token.expose())
                    .header("Prefer", PREFER_IMMUTABLE)
                    .json(&body)
            })
            .await
            .map_err(|failure| match failure {
                Err(error) => CreateRefusal::Failed(error),
                Ok(f) if f.status == StatusCode::CONFLICT => CreateRefusal::Conflict,
                Ok(f) => CreateRefusal::Failed(refused_subscription(resource, request, &f)),
            })?;
        let created: SubscriptionBody = response
            .json()
            .await
            .map_err(|e| CreateRefusal::Failed(unreadable("subscription", e)))?;
        created.into_subscription().map_err(CreateRefusal::Failed)
    }

    // LIMITATION: reads the first page only (no `@odata.nextLink`); an app with more
    // subscriptions than one page may miss an orphan and then fail to replace it.
    async fn subscriptions(
        &self,
        deadline: Deadline,
    ) -> Result<Vec<GraphSubscription>, RelayError> {
        let url = format!("{}/subscriptions", self.base);
        let response = self
            .execute(deadline, |http, token| {
                http.get(&url).bearer_auth(token.expose())
            })
            .await
            .map_err(|failure| match failure {
                Err(error) => error,
                Ok(f) => RelayError::permanent(format!("Graph refused to list subscriptions: {f}")),
            })?;
        let list: SubscriptionList = response
            .json()
            .await
            .map_err(|e| unreadable("subscription list", e))?;
        list.value
            .into_iter()
            .map(SubscriptionBody::into_subscription)
            .collect()
    }

    async fn delete_subscription(&self, id: &str, deadline: Deadline) -> Result<(), RelayError> {
        let url = format!("{}/subscriptions/{}", self.base, segment(id));
        let result = self
            .execute(deadline, |http, token| {
                http.delete(&url).bearer_auth(token.expose())
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(Ok(f)) if f.status == StatusCode::NOT_FOUND => Ok(()),
            Err(Ok(f)) => Err(RelayError::permanent(format!(
                "Graph refused to delete subscription {id}: {f}"
            ))),
            Err(Err(error)) => Err(error),
        }
    }
}

/// Explains a refused subscription create: all of these need an operator.
fn refused_subscription(resource: &str, request: &NewSubscription, f: &GraphFailure) -> RelayError {
    let reason = if f.is_access_denied() {
        format!(
            "Graph refused to subscribe to {resource} ({f}): the mailbox is outside the app's \
             access scope, or the app lacks the Mail.Read application permission"
        )
    } else if f.code == "ValidationError" {
        format!(
            "Graph could not validate the webhook ({f}): {} and {} must be reachable from Graph \
             and answer the validation request",
            request.notification_url, request.lifecycle_url
        )
    } else if f.status == StatusCode::NOT_FOUND {
        format!("Graph does not know the mailbox of {resource} ({f})")
    } else {
        format!("Graph refused to subscribe to {resource} ({f})")
    };
    RelayError::configuration(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_once_as_one_segment() {
        assert_eq!(
            segment("AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AAAA="),
            "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AAAA%3D"
        );
        assert_eq!(segment("a/b?c#d+e"), "a%2Fb%3Fc%23d%2Be");
        assert_eq!(segment("fax1@contoso.example"), "fax1@contoso.example");
        assert_eq!(segment("%41"), "%2541");
    }
}
