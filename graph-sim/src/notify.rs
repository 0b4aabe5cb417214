//! Outbound calls to the client's webhook: the validation handshake before a subscription exists,
//! change notifications when a message arrives, and lifecycle notifications on request.
//!
//! Every outbound URL must point at a loopback host; the client has no proxy, follows no redirect
//! and pins `localhost` to 127.0.0.1, so the simulator never reaches past this machine.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::ids;
use crate::state::{Counters, SimState, StoredMessage, Subscription};

/// How long the endpoint has to answer a validation request.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the endpoint has to answer a notification before Graph counts the attempt as failed.
const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts per notification, the first included.
const NOTIFICATION_ATTEMPTS: u32 = 3;
/// Pause between attempts.
// LIMITATION: real Graph retries for up to 4 hours with exponential backoff and a 10 s timeout on
// retries; the simulator retries three times within about a second so that tests stay fast.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// The client used for every outbound call.
pub fn outbound_client() -> std::io::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        // Port 0 keeps the URL's own port; only the address is pinned.
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .map_err(std::io::Error::other)
}

/// Parses a webhook URL and checks that it is http(s) to a loopback host (127.0.0.0/8,
/// `localhost`, `[::1]`).
pub fn loopback_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("'{raw}' is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "'{raw}' must use https (or http, which the simulator accepts)"
        ));
    }
    // The URL parser has already normalised the host (e.g. `127.1` to `127.0.0.1`).
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "'{raw}' is not a loopback URL; the simulator only calls 127.0.0.0/8, localhost \
             or [::1]"
        ));
    }
    Ok(url)
}

/// Performs Graph's validation handshake against one endpoint: POST with a `validationToken`
/// query parameter, expecting 200, `text/plain` and the decoded token within 10 s. The error says
/// why the endpoint failed, for the simulator's log.
pub async fn validate_endpoint(http: &reqwest::Client, endpoint: &str) -> Result<(), String> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        ids::guid()
    );
    let mut url = loopback_url(endpoint)?;
    // Form encoding: spaces become '+', ':' becomes "%3a" (lower case, as Graph has been seen to
    // send it). The endpoint must decode both.
    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes())
        .collect::<String>()
        .replace("%3A", "%3a");
    let query = match url.query() {
        Some(existing) if !existing.is_empty() => format!("{existing}&validationToken={encoded}"),
        _ => format!("validationToken={encoded}"),
    };
    url.set_query(Some(&query));

    let response = http
        .post(url)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .timeout(VALIDATION_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("no answer from {endpoint}: {e}"))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = response
        .text()
        .await
        .map_err(|e| format!("unreadable answer: {e}"))?;

    if status != reqwest::StatusCode::OK {
        return Err(format!("{endpoint} answered {status}, not 200"));
    }
    if !content_type.starts_with("text/plain") {
        return Err(format!(
            "{endpoint} answered Content-Type '{content_type}', not text/plain"
        ));
    }
    if body != token {
        return Err(format!(
            "{endpoint} answered '{body}', not the decoded validationToken"
        ));
    }
    Ok(())
}

/// The change notification for a new message, as Graph posts it (basic, no resource data).
pub fn change_notification(
    subscription: &Subscription,
    tenant_id: &str,
    message: &StoredMessage,
) -> Value {
    let message_id = if subscription.immutable_ids {
        &message.immutable_id
    } else {
        &message.id
    };
    // Graph names the user by GUID and uses Messages/{id}, whatever resource was subscribed.
    let resource = format!("Users/{}/Messages/{message_id}", subscription.user_id);
    let mut item = json!({
        "id": ids::random_b64url(12),
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": ids::graph_datetime_7(subscription.expiration),
        "changeType": "created",
        "resource": resource,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": resource,
            "@odata.etag": format!("W/\"{}\"", message.change_key),
            "id": message_id,
        },
        "tenantId": tenant_id,
    });
    if let Some(client_state) = &subscription.client_state {
        item["clientState"] = json!(client_state);
    }
    json!({ "value": [item] })
}

/// A lifecycle notification (`reauthorizationRequired`, `subscriptionRemoved`, `missed`).
pub fn lifecycle_notification(subscription: &Subscription, tenant_id: &str, event: &str) -> Value {
    let mut item = json!({
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": ids::graph_datetime_7(subscription.expiration),
        "tenantId": tenant_id,
        "lifecycleEvent": event,
    });
    if let Some(client_state) = &subscription.client_state {
        item["clientState"] = json!(client_state);
    }
    json!({ "value": [item] })
}

/// POSTs a notification collection to a webhook, retrying a non-2xx answer or a timeout, and
/// returns the last status (0 when the endpoint never answered).
pub async fn deliver(state: &SimState, endpoint: &str, body: &Value) -> u16 {
    let url = match loopback_url(endpoint) {
        Ok(url) => url,
        Err(reason) => {
            tracing::warn!(endpoint, reason, "notification not sent");
            return 0;
        }
    };
    let payload = serde_json::to_vec(body).unwrap_or_default();

    let mut last = 0;
    for attempt in 1..=NOTIFICATION_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
        Counters::bump(&state.stats.notifications_sent);
        let sent = state
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .timeout(NOTIFICATION_TIMEOUT)
            .body(payload.clone())
            .send()
            .await;
        last = match sent {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        tracing::info!(endpoint, attempt, status = last, "notification posted");
        if (200..300).contains(&last) {
            break;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_webhooks_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080/notify",
            "https://localhost/notify?mbx=fax1",
            "http://127.9.9.9/x",
            "http://[::1]:1/x",
        ] {
            assert!(loopback_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "https://example.com/notify",
            "http://10.0.0.1/notify",
            "http://169.254.169.254/latest",
            "ftp://127.0.0.1/x",
            "/relative",
        ] {
            assert!(loopback_url(refused).is_err(), "{refused}");
        }
    }
}
