//! The parts of Graph's `message` resource the relay reads, as Graph returns them from
//! `GET /users/{mailbox}/messages/{id}?$expand=attachments`.

use serde::Deserialize;

/// A mail message.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Message {
    /// The message id in the format the request asked for (immutable with
    /// `Prefer: IdType="ImmutableId"`).
    pub id: String,
    pub internet_message_id: Option<String>,
    pub received_date_time: Option<String>,
    pub subject: Option<String>,
    pub body: Option<ItemBody>,
    pub from: Option<Recipient>,
    pub to_recipients: Vec<Recipient>,
    pub cc_recipients: Vec<Recipient>,
    pub attachments: Vec<Attachment>,
}

/// `body`: text or HTML content.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ItemBody {
    pub content_type: String,
    pub content: String,
}

/// `{"emailAddress":{"name":…,"address":…}}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Recipient {
    pub email_address: EmailAddress,
}

/// A name and an SMTP address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct EmailAddress {
    pub name: Option<String>,
    pub address: Option<String>,
}

/// One attachment. Only `#microsoft.graph.fileAttachment` carries `contentBytes`; item and
/// reference attachments are listed without content.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Attachment {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    pub id: String,
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    pub is_inline: bool,
    pub content_bytes: Option<String>,
}

impl Attachment {
    /// Whether this is a file attachment (the only kind with bytes to forward).
    pub fn is_file(&self) -> bool {
        self.odata_type
            .eq_ignore_ascii_case("#microsoft.graph.fileAttachment")
    }
}

impl ItemBody {
    /// The body as plain text. The relay asks Graph for text bodies
    /// (`Prefer: outlook.body-content-type="text"`); an HTML body that arrives anyway is reduced
    /// to its text.
    pub fn text(&self) -> String {
        if self.content_type.eq_ignore_ascii_case("html") {
            html_to_text(&self.content)
        } else {
            self.content.clone()
        }
    }
}

/// Drops tags and decodes the common entities. Enough for a fax cover note or an SMS; not a
/// renderer.
fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match (c, in_tag) {
            ('<', _) => in_tag = true,
            ('>', true) => in_tag = false,
            (_, false) => text.push(c),
            _ => {}
        }
    }
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_body_is_reduced_to_text() {
        let body = ItemBody {
            content_type: "html".into(),
            content: "<html><body><p>Fish &amp; chips&nbsp;&lt;3</p></body></html>".into(),
        };

        assert_eq!(body.text(), "Fish & chips <3");
    }

    #[test]
    fn graph_message_json_parses() {
        let json = r##"{
            "@odata.etag": "W/\"CQAAABYAAAA\"",
            "id": "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AAAA=",
            "internetMessageId": "<abc@contoso.example>",
            "receivedDateTime": "2026-05-08T10:00:00Z",
            "subject": "Invoice",
            "body": {"contentType": "text", "content": "See attached"},
            "from": {"emailAddress": {"name": "Alice", "address": "alice@contoso.example"}},
            "toRecipients": [{"emailAddress": {"name": "", "address": "+61299998888@fax.example.com"}}],
            "ccRecipients": [],
            "attachments": [{
                "@odata.type": "#microsoft.graph.fileAttachment",
                "id": "AAMkAtt=", "name": "invoice.pdf", "contentType": "application/pdf",
                "size": 4, "isInline": false, "contentBytes": "JVBERg=="
            }]
        }"##;

        let message: Message = serde_json::from_str(json).unwrap();

        assert_eq!(message.id, "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AAAA=");
        assert_eq!(
            message.to_recipients[0].email_address.address.as_deref(),
            Some("+61299998888@fax.example.com")
        );
        assert!(message.attachments[0].is_file());
        assert_eq!(
            message.attachments[0].content_bytes.as_deref(),
            Some("JVBERg==")
        );
    }
}
