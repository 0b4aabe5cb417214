//! Graph's change notification payload, and the compact form the webhook puts on the internal
//! queue.
//!
//! Only the fields the relay uses are read. The `resource` string is deliberately not kept: a
//! URL is never built from it; the mailbox comes from the subscription record and the message id
//! from `resourceData.id`.

use serde::{Deserialize, Serialize};

/// A `changeNotificationCollection` as Graph posts it.
#[derive(Debug, Deserialize)]
pub struct NotificationCollection {
    pub value: Vec<ChangeNotification>,
}

/// One item of a collection: a change notification (with `changeType`) or a lifecycle
/// notification (with `lifecycleEvent`, and no `resource`). Every field is optional here so that
/// a malformed item is rejected by authentication with a reason rather than failing the batch.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeNotification {
    pub subscription_id: Option<String>,
    pub client_state: Option<String>,
    pub tenant_id: Option<String>,
    pub change_type: Option<String>,
    pub lifecycle_event: Option<String>,
    pub resource_data: Option<ResourceData>,
}

/// `resourceData` of a basic notification: the changed message's id.
#[derive(Debug, Default, Deserialize)]
pub struct ResourceData {
    pub id: Option<String>,
}

/// Schema tag of the internal queue's message body.
pub const QUEUE_SCHEMA: &str = "graph-mail-relay/notification/v1";

/// The body of one message on the internal queue: one or more authenticated notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedBatch {
    pub schema: String,
    pub notifications: Vec<QueuedNotification>,
}

/// An authenticated notification, reduced to what the processor needs. It carries no
/// clientState, so the queue never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum QueuedNotification {
    /// A message was created in a watched folder.
    #[serde(rename_all = "camelCase")]
    Message {
        subscription_id: String,
        message_id: String,
    },
    /// Graph's lifecycle event for a subscription (`reauthorizationRequired`,
    /// `subscriptionRemoved`, `missed`, or a future value).
    #[serde(rename_all = "camelCase")]
    Lifecycle {
        subscription_id: String,
        event: String,
    },
}

impl QueuedNotification {
    /// The subscription the notification belongs to.
    pub fn subscription_id(&self) -> &str {
        match self {
            Self::Message {
                subscription_id, ..
            }
            | Self::Lifecycle {
                subscription_id, ..
            } => subscription_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_batch_has_a_stable_wire_form() {
        let batch = QueuedBatch {
            schema: QUEUE_SCHEMA.into(),
            notifications: vec![
                QueuedNotification::Message {
                    subscription_id: "s1".into(),
                    message_id: "AAkALg=".into(),
                },
                QueuedNotification::Lifecycle {
                    subscription_id: "s2".into(),
                    event: "missed".into(),
                },
            ],
        };

        assert_eq!(
            serde_json::to_string(&batch).unwrap(),
            r#"{"schema":"graph-mail-relay/notification/v1","notifications":[{"kind":"message","subscriptionId":"s1","messageId":"AAkALg="},{"kind":"lifecycle","subscriptionId":"s2","event":"missed"}]}"#
        );
    }
}
