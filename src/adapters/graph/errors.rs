//! The error bodies of Graph and of the identity platform, and what each means for the relay.
//! Branch on codes, never on message text: Microsoft changes the text.

use std::time::Duration;

use reqwest::{Response, StatusCode, header::RETRY_AFTER};
use serde::Deserialize;

/// Graph's error body: `{"error":{"code":…,"message":…}}`.
#[derive(Debug, Default, Deserialize)]
struct GraphErrorBody {
    #[serde(default)]
    error: GraphErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
struct GraphErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// A Graph reply that was not a success, reduced to what decisions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphFailure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl GraphFailure {
    /// Reads a failed response's body.
    pub async fn read(response: Response) -> Self {
        let status = response.status();
        let body: GraphErrorBody = response.json().await.unwrap_or_default();
        Self {
            status,
            code: body.error.code,
            message: shorten(&body.error.message),
        }
    }

    /// `403 ErrorAccessDenied` ("Access to OData is disabled.") or `403 ExtensionError`: the
    /// Exchange administrator's access scope does not include the mailbox. Other 403s (a quota,
    /// a missing permission) are not this.
    pub fn is_access_denied(&self) -> bool {
        self.status == StatusCode::FORBIDDEN
            && ["ErrorAccessDenied", "ExtensionError", "AccessDenied"]
                .iter()
                .any(|code| self.code.eq_ignore_ascii_case(code))
    }
}

impl std::fmt::Display for GraphFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

/// The identity platform's error body.
#[derive(Debug, Default, Deserialize)]
pub struct TokenErrorBody {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_codes: Vec<u64>,
}

/// What to tell an operator about an AADSTS code, and whether it is worth retrying.
pub fn explain_aadsts(code: u64) -> (&'static str, bool) {
    match code {
        7000215 => (
            "the client secret is wrong: store the secret's Value, not its ID",
            false,
        ),
        7000222 => (
            "the client secret has expired: create a new one and update the secret",
            false,
        ),
        7000218 => ("the request carried no client secret", false),
        700016 => (
            "the application (clientId) is not in this tenant: check clientId and tenantId, and \
             that admin consent was granted",
            false,
        ),
        7000112 => ("the application is disabled in Entra", false),
        90002 | 900023 => (
            "the tenant was not found: tenantId must be the directory GUID",
            false,
        ),
        90038 => (
            "the tenant belongs to another national cloud: set graph.login_base",
            false,
        ),
        70011 | 700022 => ("the token scope was refused", false),
        500011 => (
            "Microsoft Graph's service principal is missing in the tenant",
            false,
        ),
        53003 => ("Conditional Access blocked the app's sign-in", false),
        90055 | 90024 => (
            "the identity platform is throttling or briefly unavailable",
            true,
        ),
        _ => ("the identity platform refused the token request", false),
    }
}

/// The delay a throttled or unavailable service asked for: `Retry-After` in seconds.
pub fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Whether a status is worth retrying: throttling and the 5xx that Graph documents as temporary.
pub fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Error messages from the other side go into our errors and logs: keep them one short line.
fn shorten(message: &str) -> String {
    message
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect()
}
