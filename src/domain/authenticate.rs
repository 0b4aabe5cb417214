//! Which notification items are really from Graph, for one of our subscriptions.
//!
//! Graph cannot sign basic notifications, so an item is authentic only when all three hold:
//! its `subscriptionId` is one the relay created, its `clientState` matches the one the relay sent
//! when it created that subscription, and its `tenantId` is the tenant the subscription lives in.
//!
//! The relay never stores a clientState, only its SHA-256. Someone who can read the state table or
//! the logs therefore still cannot forge a notification: they would need a preimage of a hash of
//! 256 random bits. The comparison runs in constant time all the same.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::notification::{ChangeNotification, QueuedNotification};

/// SHA-256 of a clientState, as stored in the subscription record.
pub fn client_state_digest(client_state: &str) -> [u8; 32] {
    Sha256::digest(client_state.as_bytes()).into()
}

/// What the webhook must know about one subscription to authenticate its notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionKey {
    pub mailbox: String,
    pub tenant_id: String,
    pub client_state_sha256: [u8; 32],
}

/// The relay's subscriptions by id: the webhook's whole view of the state table.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    subscriptions: HashMap<String, SubscriptionKey>,
}

impl Directory {
    /// Builds a directory from `(subscription id, key)` pairs.
    pub fn new(entries: impl IntoIterator<Item = (String, SubscriptionKey)>) -> Self {
        Self {
            subscriptions: entries.into_iter().collect(),
        }
    }

    /// Whether the subscription id is one of ours.
    pub fn knows(&self, subscription_id: &str) -> bool {
        self.subscriptions.contains_key(subscription_id)
    }

    /// The number of subscriptions known.
    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    /// Whether no subscription is known.
    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }
}

/// Why an item was not accepted. Inauthentic items are dropped and counted; authentic items the
/// relay has no use for are ignored and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Not a well-formed notification object (a field of the wrong type, not an object).
    Malformed,
    /// No `subscriptionId`, or one the relay did not create.
    UnknownSubscription,
    /// No `clientState`.
    MissingClientState,
    /// A `clientState` that does not match.
    ForgedClientState,
    /// A `tenantId` other than the subscription's tenant.
    WrongTenant,
    /// Authentic, but neither a `created` message with an id nor a lifecycle event.
    Unusable,
}

impl Rejection {
    /// The reason as it appears in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownSubscription => "unknown_subscription",
            Self::MissingClientState => "missing_client_state",
            Self::ForgedClientState => "forged_client_state",
            Self::WrongTenant => "wrong_tenant",
            Self::Unusable => "unusable",
        }
    }

    /// Whether the item failed authentication (as opposed to being authentic but unusable).
    pub fn is_inauthentic(self) -> bool {
        !matches!(self, Self::Unusable)
    }
}

/// Authenticates one item against the directory.
pub fn authenticate(
    item: &ChangeNotification,
    directory: &Directory,
) -> Result<QueuedNotification, Rejection> {
    let subscription_id = item
        .subscription_id
        .as_deref()
        .ok_or(Rejection::UnknownSubscription)?;
    let key = directory
        .subscriptions
        .get(subscription_id)
        .ok_or(Rejection::UnknownSubscription)?;

    let client_state = item
        .client_state
        .as_deref()
        .ok_or(Rejection::MissingClientState)?;
    let presented = client_state_digest(client_state);
    if !bool::from(presented.ct_eq(&key.client_state_sha256)) {
        return Err(Rejection::ForgedClientState);
    }

    // Tenant ids are GUIDs; Graph writes them in lower case, but case carries no meaning.
    let tenant_matches = item
        .tenant_id
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(&key.tenant_id));
    if !tenant_matches {
        return Err(Rejection::WrongTenant);
    }

    classify(item, subscription_id)
}

fn classify(
    item: &ChangeNotification,
    subscription_id: &str,
) -> Result<QueuedNotification, Rejection> {
    if let Some(event) = &item.lifecycle_event {
        return Ok(QueuedNotification::Lifecycle {
            subscription_id: subscription_id.to_owned(),
            event: event.clone(),
        });
    }
    let message_id = item
        .resource_data
        .as_ref()
        .and_then(|data| data.id.as_deref());
    match (item.change_type.as_deref(), message_id) {
        (Some("created"), Some(id)) if !id.is_empty() => Ok(QueuedNotification::Message {
            subscription_id: subscription_id.to_owned(),
            message_id: id.to_owned(),
        }),
        _ => Err(Rejection::Unusable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notification::ResourceData;

    const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";

    fn directory() -> Directory {
        Directory::new([(
            "sub-1".to_string(),
            SubscriptionKey {
                mailbox: "fax1@contoso.example".into(),
                tenant_id: TENANT.into(),
                client_state_sha256: client_state_digest("right-state"),
            },
        )])
    }

    fn created(subscription: &str, state: Option<&str>, tenant: &str) -> ChangeNotification {
        ChangeNotification {
            subscription_id: Some(subscription.into()),
            client_state: state.map(String::from),
            tenant_id: Some(tenant.into()),
            change_type: Some("created".into()),
            lifecycle_event: None,
            resource_data: Some(ResourceData {
                id: Some("AAkALg=".into()),
            }),
        }
    }

    #[test]
    fn authentic_created_item_becomes_a_message_notification() {
        let item = created("sub-1", Some("right-state"), TENANT);

        assert_eq!(
            authenticate(&item, &directory()),
            Ok(QueuedNotification::Message {
                subscription_id: "sub-1".into(),
                message_id: "AAkALg=".into()
            })
        );
    }

    #[test]
    fn forged_client_state_is_dropped() {
        let item = created("sub-1", Some("wrong-state"), TENANT);

        assert_eq!(
            authenticate(&item, &directory()),
            Err(Rejection::ForgedClientState)
        );
    }

    #[test]
    fn missing_client_state_is_dropped() {
        let item = created("sub-1", None, TENANT);

        assert_eq!(
            authenticate(&item, &directory()),
            Err(Rejection::MissingClientState)
        );
    }

    #[test]
    fn unknown_subscription_is_dropped() {
        let item = created("sub-9", Some("right-state"), TENANT);

        assert_eq!(
            authenticate(&item, &directory()),
            Err(Rejection::UnknownSubscription)
        );
    }

    #[test]
    fn wrong_tenant_is_dropped() {
        let item = created(
            "sub-1",
            Some("right-state"),
            "00000000-0000-0000-0000-000000000000",
        );

        assert_eq!(
            authenticate(&item, &directory()),
            Err(Rejection::WrongTenant)
        );
    }

    #[test]
    fn tenant_comparison_ignores_guid_case() {
        let item = created("sub-1", Some("right-state"), &TENANT.to_uppercase());

        assert!(authenticate(&item, &directory()).is_ok());
    }

    #[test]
    fn lifecycle_item_without_resource_is_authentic() {
        let item = ChangeNotification {
            subscription_id: Some("sub-1".into()),
            client_state: Some("right-state".into()),
            tenant_id: Some(TENANT.into()),
            lifecycle_event: Some("reauthorizationRequired".into()),
            ..Default::default()
        };

        assert_eq!(
            authenticate(&item, &directory()),
            Ok(QueuedNotification::Lifecycle {
                subscription_id: "sub-1".into(),
                event: "reauthorizationRequired".into()
            })
        );
    }

    #[test]
    fn authentic_update_is_unusable_not_inauthentic() {
        let mut item = created("sub-1", Some("right-state"), TENANT);
        item.change_type = Some("updated".into());

        assert_eq!(authenticate(&item, &directory()), Err(Rejection::Unusable));
        assert!(!Rejection::Unusable.is_inauthentic());
    }
}
