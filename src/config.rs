//! The relay's configuration: which mailboxes it serves and how, where Graph, the identity
//! platform and the AWS resources are. Read once at start from a TOML file named by
//! `GRAPH_MAIL_RELAY_CONFIG`; `samplconfig/relay.toml` documents every field.
//!
//! Loading validates everything an operator can get wrong, so that a bad setting stops the relay
//! at start with a message that says what to fix, rather than failing later on a live message.

use std::{collections::HashSet, path::Path, str::FromStr};

use serde::Deserialize;

use crate::error::RelayError;

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "GRAPH_MAIL_RELAY_CONFIG";

/// The whole relay configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    pub graph: GraphSettings,
    pub webhook: WebhookSettings,
    pub aws: AwsResources,
    #[serde(default)]
    pub serve: ServeSettings,
    #[serde(rename = "mailbox", default)]
    pub mailboxes: Vec<MailboxConfig>,
}

/// Where Graph and the identity platform are, and where the app's credentials live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSettings {
    /// Identity platform host, e.g. `https://login.microsoftonline.com`.
    #[serde(default = "default_login_base")]
    pub login_base: String,
    /// Graph host, e.g. `https://graph.microsoft.com` (the relay appends `/v1.0`).
    #[serde(default = "default_graph_base")]
    pub graph_base: String,
    /// Secrets Manager secret id or ARN holding `{"tenantId","clientId","clientSecret"}`.
    pub credentials_secret: String,
    /// How long the secret is kept in memory before it is read again.
    #[serde(default = "default_secret_cache_seconds")]
    pub secret_cache_seconds: u64,
    /// Requested subscription lifetime. Graph's documented cap for basic Outlook message
    /// subscriptions is 10,080 minutes (older documentation says 4,230), so this stays
    /// configurable.
    #[serde(default = "default_subscription_minutes")]
    pub subscription_minutes: i64,
    /// Per-request timeout for Graph and token calls.
    #[serde(default = "default_http_timeout_seconds")]
    pub http_timeout_seconds: u64,
}

/// The public URLs Graph calls, and the limits of the webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where Graph posts change notifications (the Function URL plus a path).
    pub notification_url: String,
    /// Where Graph posts lifecycle notifications. May equal `notification_url`.
    pub lifecycle_url: String,
    /// Largest notification POST accepted; bigger bodies get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long the webhook trusts its cached list of subscriptions.
    #[serde(default = "default_directory_cache_seconds")]
    pub directory_cache_seconds: u64,
}

/// AWS resources, by URL or name. Endpoints come from the standard AWS settings
/// (`AWS_ENDPOINT_URL` and friends), never from here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsResources {
    /// Queue between the webhook and the processor.
    pub internal_queue_url: String,
    /// Queue the fax gateway consumes.
    pub fax_queue_url: String,
    /// Queue the SMS gateway consumes.
    pub sms_queue_url: String,
    /// DynamoDB table holding subscriptions, mailbox locks and the message ledger.
    pub state_table: String,
    /// S3 bucket for fax documents.
    pub document_bucket: String,
    /// Address the bucket by path (`endpoint/bucket/key`) instead of by virtual host. Needed for
    /// S3-compatible endpoints without wildcard DNS, such as a local moto server.
    #[serde(default)]
    pub s3_path_style: bool,
}

/// Serve mode (`graph-mail-relay serve`): the three roles in one process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    /// Address the webhook listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// How often the subscribe step runs.
    #[serde(default = "default_subscribe_interval_seconds")]
    pub subscribe_interval_seconds: u64,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            subscribe_interval_seconds: default_subscribe_interval_seconds(),
        }
    }
}

/// One gateway mailbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// The mailbox's primary SMTP address (its user principal name in Graph).
    pub address: String,
    /// Which gateway its mail goes to.
    pub channel: Channel,
    /// ISO 3166 region used for national numbers, e.g. `AU` turns `0299998888` into
    /// `+61299998888`.
    pub default_region: String,
}

/// The gateway a mailbox feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Fax,
    Sms,
}

impl Channel {
    /// The channel's name as it appears in jobs and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Fax => "fax",
            Channel::Sms => "sms",
        }
    }
}

fn default_login_base() -> String {
    "https://login.microsoftonline.com".into()
}
fn default_graph_base() -> String {
    "https://graph.microsoft.com".into()
}
fn default_secret_cache_seconds() -> u64 {
    900
}
fn default_subscription_minutes() -> i64 {
    10_070
}
fn default_http_timeout_seconds() -> u64 {
    10
}
/// The largest notification body the webhook can accept: SQS's limit for one batch call.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

fn default_max_body_bytes() -> usize {
    MAX_BODY_BYTES
}
fn default_directory_cache_seconds() -> u64 {
    60
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_subscribe_interval_seconds() -> u64 {
    300
}

impl RelayConfig {
    /// Reads the file named by `GRAPH_MAIL_RELAY_CONFIG`.
    pub fn from_env() -> Result<Self, RelayError> {
        let path = std::env::var(CONFIG_ENV).map_err(|_| {
            RelayError::configuration(format!(
                "{CONFIG_ENV} is not set: point it at the relay's TOML configuration \
                 (see samplconfig/relay.toml)"
            ))
        })?;
        Self::from_file(Path::new(&path))
    }

    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, RelayError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RelayError::configuration(format!("cannot read {}: {e}", path.display()))
        })?;
        Self::from_toml(&text)
            .map_err(|e| RelayError::configuration(format!("{}: {e}", path.display())))
    }

    /// Parses and validates configuration text; the error says which setting is wrong.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let config: RelayConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        check_endpoint("graph.login_base", &self.graph.login_base)?;
        check_endpoint("graph.graph_base", &self.graph.graph_base)?;
        check_endpoint("webhook.notification_url", &self.webhook.notification_url)?;
        check_endpoint("webhook.lifecycle_url", &self.webhook.lifecycle_url)?;
        for (name, value) in [
            ("aws.internal_queue_url", &self.aws.internal_queue_url),
            ("aws.fax_queue_url", &self.aws.fax_queue_url),
            ("aws.sms_queue_url", &self.aws.sms_queue_url),
        ] {
            check_endpoint(name, value)?;
        }
        for (name, value) in [
            ("graph.credentials_secret", &self.graph.credentials_secret),
            ("aws.state_table", &self.aws.state_table),
            ("aws.document_bucket", &self.aws.document_bucket),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{name} is empty"));
            }
        }
        for (name, value, least) in [
            (
                "graph.http_timeout_seconds",
                self.graph.http_timeout_seconds,
                1,
            ),
            (
                "webhook.max_body_bytes",
                self.webhook.max_body_bytes as u64,
                1024,
            ),
            (
                "serve.subscribe_interval_seconds",
                self.serve.subscribe_interval_seconds,
                1,
            ),
        ] {
            if value < least {
                return Err(format!("{name} is {value}: it must be at least {least}"));
            }
        }
        // Queued items are smaller than the POST's, so a body within SQS's batch limit always
        // fits in the one batch call.
        if self.webhook.max_body_bytes > MAX_BODY_BYTES {
            return Err(format!(
                "webhook.max_body_bytes is {}: at most {MAX_BODY_BYTES} (SQS's batch size limit)",
                self.webhook.max_body_bytes
            ));
        }
        self.serve
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                format!(
                    "serve.listen = '{}' must be an IP address and port, e.g. 127.0.0.1:8080",
                    self.serve.listen
                )
            })?;
        if !(45..=10_080).contains(&self.graph.subscription_minutes) {
            return Err(format!(
                "graph.subscription_minutes is {}: Graph accepts 45 to 10080 minutes for mail",
                self.graph.subscription_minutes
            ));
        }
        if self.mailboxes.is_empty() {
            return Err("no [[mailbox]] is configured: add one per gateway mailbox".into());
        }

        let mut seen = HashSet::new();
        for mailbox in &self.mailboxes {
            check_mailbox_address(&mailbox.address)?;
            if !seen.insert(mailbox.address.to_ascii_lowercase()) {
                return Err(format!("mailbox {} is configured twice", mailbox.address));
            }
            region(&mailbox.default_region)
                .map_err(|e| format!("mailbox {}: default_region {e}", mailbox.address))?;
        }
        Ok(())
    }

    /// The configuration of a mailbox, matched case-insensitively as Exchange does.
    pub fn mailbox(&self, address: &str) -> Option<&MailboxConfig> {
        self.mailboxes
            .iter()
            .find(|m| m.address.eq_ignore_ascii_case(address))
    }
}

/// Parses an ISO 3166 region code such as `AU`.
pub fn region(code: &str) -> Result<phonenumber::country::Id, String> {
    phonenumber::country::Id::from_str(&code.trim().to_ascii_uppercase())
        .map_err(|_| format!("'{code}' is not an ISO 3166 region code (for example AU, GB, US)"))
}

/// Accepts `https://` anywhere and plain `http://` only to a loopback address, so that nothing
/// secret ever crosses a network in clear text. The URL is parsed as the HTTP client parses it,
/// so tricks such as `http://remote\@127.0.0.1/` are judged by the host the client would reach.
pub fn check_endpoint(setting: &str, value: &str) -> Result<(), String> {
    let url =
        url::Url::parse(value).map_err(|e| format!("{setting} = '{value}' is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{setting} = '{value}' must not carry a user name or password"
        ));
    }
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(host)) if is_loopback(&host) => Ok(()),
        ("http", Some(_)) => Err(format!(
            "{setting} = '{value}': plain http is allowed only to a loopback address; use https"
        )),
        ("https" | "http", None) => Err(format!("{setting} = '{value}' has no host")),
        _ => Err(format!("{setting} = '{value}' must start with https://")),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Mailbox addresses end up in Graph URLs and resource paths, so only plain SMTP addresses are
/// accepted: letters, digits and `.`, `_`, `-`, `+` in the local part; a dotted domain.
fn check_mailbox_address(address: &str) -> Result<(), String> {
    let (local, domain) = address
        .split_once('@')
        .ok_or_else(|| format!("mailbox '{address}' is not an e-mail address"))?;
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(format!(
            "mailbox '{address}' must be a plain SMTP address (letters, digits, . _ - + and a domain)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = include_str!("../samplconfig/relay.toml");

    #[test]
    fn sample_configuration_loads() {
        let config = RelayConfig::from_toml(SAMPLE).unwrap();

        assert_eq!(config.mailboxes.len(), 2);
        assert_eq!(
            config.mailbox("FAX1@contoso.example").unwrap().channel,
            Channel::Fax
        );
        assert_eq!(config.graph.subscription_minutes, 10_070);
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        assert!(check_endpoint("x", "http://127.0.0.1:9000/v1.0").is_ok());
        assert!(check_endpoint("x", "http://localhost:9000").is_ok());
        assert!(check_endpoint("x", "http://[::1]:9000").is_ok());
        assert!(check_endpoint("x", "https://graph.microsoft.com").is_ok());
        assert_eq!(
            check_endpoint("graph.graph_base", "http://graph.example.com").unwrap_err(),
            "graph.graph_base = 'http://graph.example.com': plain http is allowed only to a \
             loopback address; use https"
        );
        assert!(check_endpoint("x", "http://127.0.0.1.evil.example/").is_err());
        assert!(check_endpoint("x", "http://user@169.254.169.254/").is_err());
        assert!(check_endpoint("x", "http://127.0.0.1@graph.evil.example/").is_err());
        assert!(check_endpoint("x", "http://graph.evil.example\\@127.0.0.1/").is_err());
        assert!(check_endpoint("x", "http://graph.evil.example%2F@127.0.0.1/").is_err());
        assert!(check_endpoint("x", "ftp://127.0.0.1/").is_err());
    }

    #[test]
    fn settings_that_cannot_work_are_refused_with_their_name() {
        let cases = [
            (
                "subscribe_interval_seconds = 300",
                "subscribe_interval_seconds = 0",
                "serve.subscribe_interval_seconds is 0: it must be at least 1",
            ),
            (
                "state_table = \"graph-mail-relay-state\"",
                "state_table = \"\"",
                "aws.state_table is empty",
            ),
            (
                "listen = \"127.0.0.1:8080\"",
                "listen = \"localhost\"",
                "serve.listen = 'localhost' must be an IP address and port, e.g. 127.0.0.1:8080",
            ),
        ];
        for (from, to, error) in cases {
            let text = SAMPLE.replacen(from, to, 1);

            assert_eq!(RelayConfig::from_toml(&text).unwrap_err(), error);
        }
    }

    #[test]
    fn configuration_without_mailboxes_says_what_to_add() {
        let text = &SAMPLE[..SAMPLE.find("[[mailbox]]").unwrap()];

        assert_eq!(
            RelayConfig::from_toml(text).unwrap_err(),
            "no [[mailbox]] is configured: add one per gateway mailbox"
        );
    }

    #[test]
    fn region_code_case_does_not_matter() {
        assert_eq!(region("au").unwrap(), phonenumber::country::Id::AU);
    }

    #[test]
    fn mailbox_address_with_path_characters_is_refused() {
        assert!(check_mailbox_address("fax+1@contoso.example").is_ok());
        assert!(check_mailbox_address("fax/../x@contoso.example").is_err());
        assert!(check_mailbox_address("fax?x@contoso.example").is_err());
        assert!(check_mailbox_address("fax@localhost").is_err());
    }

    #[test]
    fn unknown_region_names_the_mailbox() {
        let text = SAMPLE.replacen("default_region = \"AU\"", "default_region = \"XX\"", 1);

        let error = RelayConfig::from_toml(&text).unwrap_err();

        assert_eq!(
            error,
            "mailbox fax1@contoso.example: default_region 'XX' is not an ISO 3166 region code \
             (for example AU, GB, US)"
        );
    }
}
