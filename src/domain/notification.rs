//! Graph's change notification payload, and the compact form the webhook puts on the internal
//! queue.
//!
//! Only the fields the relay uses are read. The `resource` string is deliberately not kept: a
//! URL is never built from it; the mailbox comes from the subscription record and the message id
//! from `resourceData.id`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A `changeNotificationCollection` as Graph posts it. Each item is parsed on its own, so one
/// malformed item is rejected alone instead of failing the whole POST.
#[derive(Debug)]
pub struct NotificationCollection {
    /// The items, each parsed, or `None` where an item is not a well-formed notification.
    pub value: Vec<Option<ChangeNotification>>,
}

impl NotificationCollection {
    /// Parses a POST body. Fails only when the body is not a JSON object with a `value` array.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow)]
            value: Vec<&'a RawValue>,
        }

        // serde would also read a struct from a JSON array; Graph only ever sends objects.
        let body = std::str::from_utf8(body)
            .map_err(|_| <serde_json::Error as serde::de::Error>::custom("not UTF-8"))?;
        if !body.trim_start().starts_with('{') {
            return Err(serde::de::Error::custom("the body is not a JSON object"));
        }
        let envelope: Envelope = serde_json::from_str(body)?;
        let value = envelope
            .value
            .into_iter()
            .map(|raw| parse_item(raw.get()))
            .collect();
        Ok(Self { value })
    }
}

fn parse_item(json: &str) -> Option<ChangeNotification> {
    if !json.starts_with('{') {
        return None;
    }
    serde_json::from_str(json).ok()
}

/// One item of a collection: a change notification (with `changeType`) or a lifecycle
/// notification (with `lifecycleEvent`, and no `resource`). Every field is optional here so that
/// a missing field is rejected by authentication with a reason.
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
    fn malformed_item_is_set_aside_and_the_others_are_read() {
        let body = br#"{"value":[{"subscriptionId":7},["s","c"],{"subscriptionId":"s1"}]}"#;

        let collection = NotificationCollection::parse(body).unwrap();

        assert!(collection.value[0].is_none());
        assert!(collection.value[1].is_none());
        assert_eq!(
            collection.value[2]
                .as_ref()
                .unwrap()
                .subscription_id
                .as_deref(),
            Some("s1")
        );
    }

    #[test]
    fn body_that_is_not_an_object_with_a_value_array_is_refused() {
        assert!(NotificationCollection::parse(b"[[]]").is_err());
        assert!(NotificationCollection::parse(br#"{"value":{}}"#).is_err());
        assert!(NotificationCollection::parse(b"\xff").is_err());
        assert!(NotificationCollection::parse(br#"{"value":[],"value":[]}"#).is_err());
    }

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
