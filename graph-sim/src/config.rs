//! The simulator's configuration: the one tenant, the one application registered in it, and the
//! mailboxes that application may (or, through an access policy, may not) read.
//!
//! The binary reads it from a JSON file (`graph-sim --config sim.json`); tests build it in code.

use serde::{Deserialize, Serialize};

/// Everything the simulator needs to know about its tenant.
///
/// JSON field names are camelCase, e.g. `{"tenantId":"…","clientId":"…","clientSecret":"…",
/// "mailboxes":[{"address":"fax1@contoso.com","userId":"…"}]}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimConfig {
    /// The directory (tenant) GUID; the token endpoint answers only under this tenant.
    pub tenant_id: String,
    /// The application (client) id of the one app registered in the tenant.
    pub client_id: String,
    /// The app's client secret value.
    pub client_secret: String,
    /// The mailboxes that exist in the tenant.
    pub mailboxes: Vec<SimMailbox>,
    /// Addresses of mailboxes outside the app's access policy (Application Access Policy or RBAC
    /// for Applications): Graph answers 403 for them. Can be replaced at run time through
    /// `PUT /_sim/access-scope`.
    #[serde(default)]
    pub out_of_scope: Vec<String>,
    /// `expires_in` of issued access tokens, in seconds; tokens stop working after it.
    #[serde(default = "default_token_lifetime_seconds")]
    pub token_lifetime_seconds: u64,
    /// Send `expires_in` as a JSON string (`"3599"`), as some identity platform responses do.
    #[serde(default)]
    pub expires_in_as_string: bool,
    /// The longest lifetime a message subscription may be given, in minutes (10,080 today; older
    /// documentation says 4,230).
    #[serde(default = "default_max_subscription_minutes")]
    pub max_subscription_minutes: i64,
}

/// One mailbox of the tenant.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimMailbox {
    /// The mailbox's user principal name; matched case-insensitively.
    pub address: String,
    /// The user object's GUID, which Graph uses in notification resources.
    pub user_id: String,
}

fn default_token_lifetime_seconds() -> u64 {
    3599
}

fn default_max_subscription_minutes() -> i64 {
    10_080
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_take_graphs_defaults() {
        let json = r#"{"tenantId":"t","clientId":"c","clientSecret":"s",
            "mailboxes":[{"address":"fax1@contoso.com","userId":"u1"}]}"#;

        let config: SimConfig = serde_json::from_str(json).unwrap();

        assert_eq!(config.token_lifetime_seconds, 3599);
        assert_eq!(config.max_subscription_minutes, 10_080);
        assert!(!config.expires_in_as_string);
        assert!(config.out_of_scope.is_empty());
        assert_eq!(config.mailboxes[0].user_id, "u1");
    }
}
