//! Access tokens by OAuth 2.0 client credentials against the identity platform's v2 endpoint.
//!
//! One token serves every Graph call until shortly before it expires; concurrent callers wait for
//! the one request in flight rather than each asking for a token. Token lifetimes vary (60 to 90
//! minutes by default), so the cache follows `expires_in`, which may arrive as a number or a
//! string.

use std::{sync::Arc, time::Duration};

use serde::Deserialize;
use tokio::{sync::Mutex, time::Instant};
use tracing::info;

use super::errors::{TokenErrorBody, explain_aadsts, is_retryable, retry_after};
use crate::{
    error::RelayError,
    ports::{AppCredentials, CredentialSource},
    secret::Secret,
    usecase::Deadline,
};

/// The client credentials flow asks for the resource's `.default` scope: every application
/// permission the admin granted.
// LIMITATION: the scope is the global cloud's Graph; a national cloud (graph.microsoft.us,
// microsoftgraph.chinacloudapi.cn) needs its own scope, which is not configurable yet.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    expires_in: ExpiresIn,
}

/// `expires_in` as a number or as a string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Number(u64),
    Text(String),
}

impl ExpiresIn {
    fn seconds(&self) -> Option<u64> {
        match self {
            Self::Number(n) => Some(*n),
            Self::Text(text) => text.trim().parse().ok(),
        }
    }
}

/// When to fetch a new token: five minutes before expiry, or halfway for short-lived tokens.
fn refresh_after(expires_in: u64) -> Duration {
    let early = if expires_in > 600 {
        300
    } else {
        expires_in / 2
    };
    Duration::from_secs(expires_in - early)
}

/// Issues and caches access tokens.
pub struct TokenProvider {
    http: reqwest::Client,
    login_base: String,
    timeout: Duration,
    credentials: Arc<dyn CredentialSource>,
    cached: Mutex<Option<(Instant, Secret)>>,
}

impl TokenProvider {
    /// A provider asking `login_base` for tokens, each request bounded by `timeout`.
    pub fn new(
        http: reqwest::Client,
        login_base: impl Into<String>,
        timeout: Duration,
        credentials: Arc<dyn CredentialSource>,
    ) -> Self {
        let login_base = login_base.into().trim_end_matches('/').to_owned();
        Self {
            http,
            login_base,
            timeout,
            credentials,
            cached: Mutex::new(None),
        }
    }

    /// The credentials' tenant.
    pub async fn tenant_id(&self) -> Result<String, RelayError> {
        Ok(self.credentials.credentials().await?.tenant_id)
    }

    /// A valid access token, from the cache when it has one.
    pub async fn token(&self, deadline: Deadline) -> Result<Secret, RelayError> {
        let mut cached = self.cached.lock().await;
        if let Some((refresh_at, token)) = cached.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let credentials = self.credentials.credentials().await?;
        let (token, lifetime) = self.request(&credentials, deadline).await?;
        *cached = Some((Instant::now() + refresh_after(lifetime), token.clone()));
        Ok(token)
    }

    /// Drops the cached token (after Graph answered 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    // LIMITATION: only client-secret credentials; certificate credentials (a signed client
    // assertion) are not supported yet.
    async fn request(
        &self,
        credentials: &AppCredentials,
        deadline: Deadline,
    ) -> Result<(Secret, u64), RelayError> {
        // The tenant id was checked to be a GUID when the secret was read.
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_base, credentials.tenant_id
        );
        let form = [
            ("client_id", credentials.client_id.as_str()),
            ("client_secret", credentials.client_secret.expose()),
            ("scope", GRAPH_SCOPE),
            ("grant_type", "client_credentials"),
        ];
        let response = self
            .http
            .post(&url)
            .form(&form)
            .timeout(self.timeout.min(deadline.remaining()))
            .send()
            .await
            .map_err(|e| {
                RelayError::transient(format!("token request failed: {}", e.without_url()))
            })?;

        let status = response.status();
        if status.is_success() {
            let body: TokenResponse = response.json().await.map_err(|e| {
                RelayError::transient(format!("token response unreadable: {}", e.without_url()))
            })?;
            let lifetime = body.expires_in.seconds().ok_or_else(|| {
                RelayError::transient("token response has an unreadable expires_in")
            })?;
            info!(tenant_id = %credentials.tenant_id, expires_in = lifetime, "access token issued");
            return Ok((body.access_token, lifetime));
        }
        if is_retryable(status) {
            return Err(RelayError::Transient {
                reason: format!("token endpoint answered {}", status.as_u16()),
                retry_after: retry_after(&response),
            });
        }

        let body: TokenErrorBody = response.json().await.unwrap_or_default();
        let code = body.error_codes.first().copied().unwrap_or(0);
        let (meaning, retryable) = explain_aadsts(code);
        let reason = format!(
            "token request for client {} in tenant {} refused ({} AADSTS{code}): {meaning}",
            credentials.client_id, credentials.tenant_id, body.error
        );
        if retryable {
            return Err(RelayError::transient(reason));
        }
        if matches!(
            body.error.as_str(),
            "invalid_client" | "unauthorized_client"
        ) {
            // A rotated secret is read again on the next attempt.
            self.credentials.invalidate();
        }
        Err(RelayError::configuration(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_reads_as_number_or_string() {
        let number: TokenResponse =
            serde_json::from_str(r#"{"access_token":"t","expires_in":3599}"#).unwrap();
        let text: TokenResponse =
            serde_json::from_str(r#"{"access_token":"t","expires_in":"3599"}"#).unwrap();

        assert_eq!(number.expires_in.seconds(), Some(3599));
        assert_eq!(text.expires_in.seconds(), Some(3599));
    }

    #[test]
    fn token_is_refreshed_five_minutes_early() {
        assert_eq!(refresh_after(3599), Duration::from_secs(3299));
        assert_eq!(refresh_after(120), Duration::from_secs(60));
    }
}
