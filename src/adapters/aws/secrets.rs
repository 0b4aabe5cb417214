//! Secrets Manager: the app's client credentials, read once per cache period.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use serde::Deserialize;
use tokio::{sync::Mutex, time::Instant};

use super::classify;
use crate::{
    error::RelayError,
    ports::{AppCredentials, CredentialSource},
    secret::Secret,
};

/// The secret's JSON shape (see `samplconfig/graph-credentials.secret.json`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecretDocument {
    tenant_id: String,
    client_id: String,
    client_secret: Secret,
}

/// Credentials from one Secrets Manager secret, cached in memory only.
pub struct SecretsManagerCredentials {
    client: Client,
    secret_id: String,
    cache_for: Duration,
    cached: Mutex<Option<(Instant, AppCredentials)>>,
}

impl SecretsManagerCredentials {
    pub fn new(client: Client, secret_id: impl Into<String>, cache_for: Duration) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            cache_for,
            cached: Mutex::new(None),
        }
    }

    async fn read(&self) -> Result<AppCredentials, RelayError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| classify(&format!("Secrets Manager secret {}", self.secret_id), e))?;
        let text = output.secret_string().ok_or_else(|| {
            RelayError::configuration(format!(
                "secret {} has no SecretString: store the credentials as JSON text",
                self.secret_id
            ))
        })?;
        parse_secret(&self.secret_id, text)
    }
}

/// Parses and checks the secret. The error never quotes the secret's text.
fn parse_secret(secret_id: &str, text: &str) -> Result<AppCredentials, RelayError> {
    let document: SecretDocument = serde_json::from_str(text).map_err(|e| {
        RelayError::configuration(format!(
            "secret {secret_id} must be JSON with tenantId, clientId and clientSecret \
             (line {}, column {}: {})",
            e.line(),
            e.column(),
            match e.classify() {
                serde_json::error::Category::Data => "missing or unexpected field",
                _ => "not valid JSON",
            }
        ))
    })?;
    for (field, value) in [
        ("tenantId", &document.tenant_id),
        ("clientId", &document.client_id),
    ] {
        if !is_guid(value) {
            return Err(RelayError::configuration(format!(
                "secret {secret_id}: {field} must be a GUID (the directory (tenant) id and the \
                 application (client) id from the app registration's overview)"
            )));
        }
    }
    if document.client_secret.expose().is_empty() {
        return Err(RelayError::configuration(format!(
            "secret {secret_id}: clientSecret is empty"
        )));
    }
    Ok(AppCredentials {
        tenant_id: document.tenant_id.to_ascii_lowercase(),
        client_id: document.client_id,
        client_secret: document.client_secret,
    })
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` with hex digits.
pub fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[async_trait]
impl CredentialSource for SecretsManagerCredentials {
    async fn credentials(&self) -> Result<AppCredentials, RelayError> {
        let mut cached = self.cached.lock().await;
        if let Some((read_at, credentials)) = cached.as_ref()
            && read_at.elapsed() < self.cache_for
        {
            return Ok(credentials.clone());
        }
        let credentials = self.read().await?;
        *cached = Some((Instant::now(), credentials.clone()));
        Ok(credentials)
    }

    fn invalidate(&self) {
        if let Ok(mut cached) = self.cached.try_lock() {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_secret_parses() {
        let text = include_str!("../../../samplconfig/graph-credentials.secret.json");

        let credentials = parse_secret("s", text).unwrap();

        assert_eq!(
            credentials.tenant_id,
            "84bd8158-6d4d-4958-8b9f-9d6445542f95"
        );
        assert_eq!(
            credentials.client_id,
            "0f5b8c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d"
        );
    }

    #[test]
    fn tenant_domain_is_refused_with_what_to_use() {
        let text = r#"{"tenantId":"contoso.onmicrosoft.com",
                       "clientId":"0f5b8c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d","clientSecret":"x"}"#;

        let error = parse_secret("graph-creds", text).unwrap_err();

        assert_eq!(
            error,
            RelayError::configuration(
                "secret graph-creds: tenantId must be a GUID (the directory (tenant) id and the \
                 application (client) id from the app registration's overview)"
            )
        );
    }

    #[test]
    fn parse_error_never_quotes_the_secret() {
        let text = r#"{"tenantId":"84bd8158-6d4d-4958-8b9f-9d6445542f95",
                       "clientId":"0f5b8c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d","clientSecret":"TOPSECRET","x":1}"#;

        let error = parse_secret("s", text).unwrap_err().to_string();

        assert!(!error.contains("TOPSECRET"), "{error}");
        assert!(error.contains("missing or unexpected field"), "{error}");
    }
}
