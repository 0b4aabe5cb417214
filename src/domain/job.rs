//! Jobs: the contract with the gateway. One JSON document per message on the fax or SMS queue,
//! versioned by its `schema` field and described by the JSON Schema files in `docs/schemas/`.
//!
//! The job id is derived from the mailbox and the message's identity, so the same message always
//! yields the same job id and a consumer can drop repeats.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    message::{EmailAddress, Message},
    recipient::{E164, numbers_from_addresses},
};
use crate::{
    config::{Channel, MailboxConfig, region},
    error::RelayError,
};

/// Schema tag of a fax job.
pub const FAX_SCHEMA: &str = "graph-mail-relay/fax-job/v1";
/// Schema tag of an SMS job.
pub const SMS_SCHEMA: &str = "graph-mail-relay/sms-job/v1";

/// A job as it goes on the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub schema: &'static str,
    pub job_id: String,
    pub channel: Channel,
    pub mailbox: String,
    pub message: MessageIdentity,
    pub sender: EmailAddress,
    pub recipients: Vec<E164>,
    pub subject: String,
    pub text: String,
    /// Fax only: the documents to send, stored in S3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<Document>>,
}

/// Which message a job came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageIdentity {
    /// Graph's immutable id of the message in the mailbox.
    pub id: String,
    pub internet_message_id: Option<String>,
    pub received_date_time: Option<String>,
}

/// A fax document stored in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub bucket: String,
    pub key: String,
}

/// A document's bytes, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDocument {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// Where it goes in the bucket: `documents/{job id}/{index}-{safe name}`.
    pub key: String,
}

/// Everything needed to send a job, before its documents are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPlan {
    pub job: Job,
    pub documents: Vec<PendingDocument>,
    /// Recipient addresses that were not phone numbers.
    pub ignored_recipients: usize,
    /// Attachments that are not files (item and reference attachments) or are inline images.
    pub ignored_attachments: usize,
}

/// The job id for a message of a mailbox: `job-` and 32 hex digits of a SHA-256 over the mailbox
/// and the message's key (its internetMessageId, which survives moves and copies, else its
/// immutable id).
pub fn job_id(mailbox: &str, message_key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(mailbox.to_ascii_lowercase().as_bytes())
        .chain_update(b"\n")
        .chain_update(message_key.as_bytes())
        .finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("job-{hex}")
}

/// The key that identifies a message across notifications: its internetMessageId, else its id.
pub fn message_key(message: &Message) -> &str {
    message
        .internet_message_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .unwrap_or(&message.id)
}

/// Hex SHA-256 of some bytes, as recorded for each document.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Turns a fetched message into a job plan for the mailbox's channel.
///
/// Fails permanently when no recipient is a valid phone number, or when a file attachment's
/// content is not valid base64.
pub fn plan_job(mailbox: &MailboxConfig, message: &Message) -> Result<JobPlan, RelayError> {
    let default_region = region(&mailbox.default_region).map_err(RelayError::configuration)?;
    let addresses = message
        .to_recipients
        .iter()
        .chain(&message.cc_recipients)
        .filter_map(|r| r.email_address.address.as_deref());
    let (recipients, ignored_recipients) = numbers_from_addresses(addresses, default_region);
    if recipients.is_empty() {
        return Err(RelayError::permanent(
            "no recipient address has a valid phone number as its local part",
        ));
    }

    let job_id = job_id(&mailbox.address, message_key(message));
    let (documents, ignored_attachments) = match mailbox.channel {
        Channel::Fax => fax_documents(&job_id, message)?,
        Channel::Sms => (Vec::new(), message.attachments.len()),
    };
    let job = Job {
        schema: match mailbox.channel {
            Channel::Fax => FAX_SCHEMA,
            Channel::Sms => SMS_SCHEMA,
        },
        job_id,
        channel: mailbox.channel,
        mailbox: mailbox.address.to_ascii_lowercase(),
        message: MessageIdentity {
            id: message.id.clone(),
            internet_message_id: message.internet_message_id.clone(),
            received_date_time: message.received_date_time.clone(),
        },
        sender: message
            .from
            .as_ref()
            .map(|f| f.email_address.clone())
            .unwrap_or_default(),
        recipients,
        subject: message.subject.clone().unwrap_or_default(),
        text: message
            .body
            .as_ref()
            .map(|b| b.text().trim().to_owned())
            .unwrap_or_default(),
        documents: None,
    };
    Ok(JobPlan {
        job,
        documents,
        ignored_recipients,
        ignored_attachments,
    })
}

fn fax_documents(
    job_id: &str,
    message: &Message,
) -> Result<(Vec<PendingDocument>, usize), RelayError> {
    let mut documents = Vec::new();
    let mut ignored = 0;
    // LIMITATION: only file attachments that arrive with their content become fax documents;
    // item attachments (an attached e-mail) and reference attachments (cloud links) are counted
    // and skipped.
    for attachment in &message.attachments {
        let Some(content) = attachment.content_bytes.as_deref() else {
            ignored += 1;
            continue;
        };
        if !attachment.is_file() || attachment.is_inline {
            ignored += 1;
            continue;
        }
        let bytes = STANDARD.decode(content).map_err(|_| {
            RelayError::permanent(format!(
                "attachment {} has contentBytes that are not base64",
                documents.len() + ignored
            ))
        })?;
        let name = attachment
            .name
            .clone()
            .unwrap_or_else(|| "attachment".into());
        let key = format!(
            "documents/{job_id}/{}-{}",
            documents.len(),
            safe_file_name(&name)
        );
        documents.push(PendingDocument {
            content_type: attachment
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            name,
            bytes,
            key,
        });
    }
    Ok((documents, ignored))
}

/// A file name reduced to characters that are safe in an S3 key and a shell: letters, digits,
/// `.`, `-`, `_`; everything else becomes `_`. Never empty, at most 100 characters.
fn safe_file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = safe.trim_start_matches('.');
    if trimmed.is_empty() {
        "attachment".into()
    } else {
        trimmed.into()
    }
}

impl JobPlan {
    /// The finished job, with the stored documents for a fax.
    pub fn into_job(self, stored: Vec<Document>) -> Job {
        let mut job = self.job;
        if job.channel == Channel::Fax {
            job.documents = Some(stored);
        }
        job
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::{Attachment, ItemBody, Recipient};

    fn mailbox(channel: Channel) -> MailboxConfig {
        MailboxConfig {
            address: "Fax1@contoso.example".into(),
            channel,
            default_region: "AU".into(),
        }
    }

    fn to(address: &str) -> Recipient {
        Recipient {
            email_address: EmailAddress {
                name: None,
                address: Some(address.into()),
            },
        }
    }

    fn message() -> Message {
        Message {
            id: "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AAAA=".into(),
            internet_message_id: Some("<m1@contoso.example>".into()),
            received_date_time: Some("2026-05-08T10:00:00Z".into()),
            subject: Some("Invoice 42".into()),
            body: Some(ItemBody {
                content_type: "text".into(),
                content: " Please fax.\n".into(),
            }),
            from: Some(to("alice@contoso.example")),
            to_recipients: vec![
                to("+61299998888@fax.example.com"),
                to("alice@contoso.example"),
            ],
            cc_recipients: vec![],
            attachments: vec![
                Attachment {
                    odata_type: "#microsoft.graph.fileAttachment".into(),
                    id: "att1".into(),
                    name: Some("in voice/../42.pdf".into()),
                    content_type: Some("application/pdf".into()),
                    size: Some(4),
                    is_inline: false,
                    content_bytes: Some("JVBERg==".into()),
                },
                Attachment {
                    odata_type: "#microsoft.graph.itemAttachment".into(),
                    id: "att2".into(),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn same_message_always_gets_the_same_job_id() {
        assert_eq!(
            job_id("FAX1@contoso.example", "<m1@x>"),
            job_id("fax1@contoso.example", "<m1@x>")
        );
        assert_ne!(
            job_id("fax1@contoso.example", "<m1@x>"),
            job_id("fax1@contoso.example", "<m2@x>")
        );
        assert_eq!(job_id("fax1@contoso.example", "<m1@x>").len(), 36);
    }

    #[test]
    fn fax_plan_carries_recipients_text_and_file_attachments() {
        let plan = plan_job(&mailbox(Channel::Fax), &message()).unwrap();

        assert_eq!(plan.job.schema, FAX_SCHEMA);
        assert_eq!(plan.job.mailbox, "fax1@contoso.example");
        assert_eq!(
            plan.job
                .recipients
                .iter()
                .map(E164::as_str)
                .collect::<Vec<_>>(),
            ["+61299998888"]
        );
        assert_eq!(plan.job.text, "Please fax.");
        assert_eq!(plan.ignored_recipients, 1);
        assert_eq!(plan.ignored_attachments, 1);
        assert_eq!(plan.documents.len(), 1);
        assert_eq!(plan.documents[0].bytes, b"%PDF");
        assert_eq!(
            plan.documents[0].key,
            format!("documents/{}/0-in_voice_.._42.pdf", plan.job.job_id)
        );
    }

    #[test]
    fn sms_plan_has_no_documents() {
        let plan = plan_job(&mailbox(Channel::Sms), &message()).unwrap();
        let job = plan.into_job(vec![]);

        assert_eq!(job.schema, SMS_SCHEMA);
        assert_eq!(job.documents, None);
        assert!(!serde_json::to_string(&job).unwrap().contains("documents"));
    }

    #[test]
    fn message_without_a_number_is_rejected_permanently() {
        let mut message = message();
        message.to_recipients = vec![to("bob@contoso.example")];

        let error = plan_job(&mailbox(Channel::Sms), &message).unwrap_err();

        assert_eq!(
            error,
            RelayError::permanent(
                "no recipient address has a valid phone number as its local part"
            )
        );
    }

    #[test]
    fn job_key_falls_back_to_the_immutable_id() {
        let mut message = message();
        message.internet_message_id = None;

        assert_eq!(
            message_key(&message),
            "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AAAA="
        );
    }

    #[test]
    fn hidden_and_empty_file_names_are_made_safe() {
        assert_eq!(safe_file_name("../.."), "_..");
        assert_eq!(safe_file_name("..."), "attachment");
        assert_eq!(safe_file_name("fax cover.pdf"), "fax_cover.pdf");
    }
}
