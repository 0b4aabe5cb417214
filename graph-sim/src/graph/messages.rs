//! `GET /v1.0/users/{id}/messages/{messageId}[?$expand=attachments]`: reading one message, with
//! the mailbox access policy, the per-mailbox concurrency limit, immutable ids and text bodies.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Duration;
use serde_json::{Value, json};

use crate::error::GraphError;
use crate::graph::Prefer;
use crate::ids;
use crate::state::{BodyType, EmailAddress, Mailbox, SimState, StoredMessage};

/// Exchange Online's limit of concurrent requests per app and mailbox.
pub const MAILBOX_CONCURRENCY_LIMIT: usize = 4;
/// Characters of text in `bodyPreview`.
const BODY_PREVIEW_CHARS: usize = 255;

/// `GET /v1.0/users/{id}/messages/{messageId}`
// LIMITATION: `$select` is ignored; every property is returned.
pub async fn get(
    State(state): State<Arc<SimState>>,
    Path((user, message_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let prefer = Prefer::from_headers(&headers);
    let expand = expands_attachments(query.as_deref());

    let mailbox = state.find_mailbox(&user).ok_or_else(|| {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{user}' is invalid."),
        )
    })?;
    if state.is_out_of_scope(mailbox) {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access to OData is disabled.",
        ));
    }
    let _slot = MailboxSlot::acquire(mailbox)?;
    let delay = state.lock().message_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let message = find_message(&state, mailbox, &message_id).ok_or_else(|| {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    })?;
    let body = message_json(&message, &user, prefer, expand);
    Ok(with_preference_applied(Json(body).into_response(), prefer))
}

/// Holds one of the mailbox's concurrent request slots until dropped.
struct MailboxSlot<'a>(&'a AtomicUsize);

impl<'a> MailboxSlot<'a> {
    /// Takes a slot, or answers Graph's 429 when all are in use.
    fn acquire(mailbox: &'a Mailbox) -> Result<Self, GraphError> {
        let before = mailbox.in_flight.fetch_add(1, Ordering::SeqCst);
        if before >= MAILBOX_CONCURRENCY_LIMIT {
            mailbox.in_flight.fetch_sub(1, Ordering::SeqCst);
            tracing::info!(mailbox = mailbox.address, "mailbox concurrency limit hit");
            return Err(GraphError {
                retry_after: Some(1),
                ..GraphError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                )
            });
        }
        Ok(MailboxSlot(&mailbox.in_flight))
    }
}

impl Drop for MailboxSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether the query asks for `$expand=attachments` (the `$` may arrive as `%24`).
fn expands_attachments(query: Option<&str>) -> bool {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).any(|(name, value)| {
        name == "$expand"
            && value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("attachments"))
    })
}

/// A message of the mailbox by its default or immutable id (ids are case-sensitive).
fn find_message(state: &SimState, mailbox: &Mailbox, id: &str) -> Option<StoredMessage> {
    state
        .lock()
        .messages
        .get(&mailbox.user_id)?
        .iter()
        .find(|m| m.id == id || m.immutable_id == id)
        .cloned()
}

/// Graph's `Preference-Applied` header for the preferences honoured.
fn with_preference_applied(mut response: Response, prefer: Prefer) -> Response {
    let mut applied = Vec::new();
    if prefer.immutable_id {
        applied.push("IdType=\"ImmutableId\"");
    }
    if prefer.text_body {
        applied.push("outlook.body-content-type=\"text\"");
    }
    if let Ok(value) = HeaderValue::from_str(&applied.join(", "))
        && !applied.is_empty()
    {
        response.headers_mut().insert("preference-applied", value);
    }
    response
}

/// The message in Graph's JSON shape. `user` is the mailbox as named in the request path.
pub fn message_json(message: &StoredMessage, user: &str, prefer: Prefer, expand: bool) -> Value {
    let id = if prefer.immutable_id {
        &message.immutable_id
    } else {
        &message.id
    };
    let text = match message.body_type {
        BodyType::Text => message.body.clone(),
        BodyType::Html => html_to_text(&message.body),
    };
    let (content_type, content) = match message.body_type {
        BodyType::Html if !prefer.text_body => ("html", message.body.clone()),
        _ => ("text", text.clone()),
    };
    let received = ids::graph_datetime(message.received);
    let sent = ids::graph_datetime(message.received - Duration::seconds(1));
    let web_link_id: String = form_urlencoded::byte_serialize(message.id.as_bytes()).collect();
    let expansion = if expand { "(attachments())" } else { "" };

    let mut value = json!({
        "@odata.context": format!(
            "https://graph.microsoft.com/v1.0/$metadata#users('{}')/messages{expansion}/$entity",
            user.replace('@', "%40")
        ),
        "@odata.etag": format!("W/\"{}\"", message.change_key),
        "id": id,
        "createdDateTime": received,
        "lastModifiedDateTime": received,
        "changeKey": message.change_key,
        "categories": [],
        "receivedDateTime": received,
        "sentDateTime": sent,
        "hasAttachments": !message.attachments.is_empty(),
        "internetMessageId": message.internet_message_id,
        "subject": message.subject,
        "bodyPreview": text.chars().take(BODY_PREVIEW_CHARS).collect::<String>(),
        "importance": "normal",
        "parentFolderId": message.parent_folder_id,
        "conversationId": message.conversation_id,
        "isDeliveryReceiptRequested": false,
        "isReadReceiptRequested": false,
        "isRead": false,
        "isDraft": false,
        "webLink": format!(
            "https://outlook.office365.com/owa/?ItemID={web_link_id}\
             &exvsurl=1&viewmodel=ReadMessageItem"
        ),
        "inferenceClassification": "focused",
        "body": { "contentType": content_type, "content": content },
        "sender": recipient(&message.from),
        "from": recipient(&message.from),
        "toRecipients": message.to.iter().map(recipient).collect::<Vec<_>>(),
        "ccRecipients": message.cc.iter().map(recipient).collect::<Vec<_>>(),
        "bccRecipients": [],
        "replyTo": [],
        "flag": { "flagStatus": "notFlagged" },
    });
    if expand {
        value["attachments"] = message
            .attachments
            .iter()
            .map(|a| {
                json!({
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "@odata.mediaContentType": a.content_type,
                    "id": a.id,
                    "lastModifiedDateTime": ids::graph_datetime(a.last_modified),
                    "name": a.name,
                    "contentType": a.content_type,
                    "size": a.bytes.len(),
                    "isInline": false,
                    "contentId": null,
                    "contentLocation": null,
                    "contentBytes": STANDARD.encode(&a.bytes),
                })
            })
            .collect();
    }
    value
}

fn recipient(address: &EmailAddress) -> Value {
    json!({ "emailAddress": { "name": address.name, "address": address.address } })
}

/// The text of an HTML body, as Graph gives it for `outlook.body-content-type="text"`: tags
/// removed (`<br>` becomes a line break), the common entities decoded, surrounding blank space
/// trimmed.
// LIMITATION: no block layout (paragraphs, lists, tables are not laid out as Outlook would), and
// the content of <style> and <script> elements is kept as text.
pub fn html_to_text(html: &str) -> String {
    let mut stripped = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        stripped.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
        let name = tag
            .trim_end_matches('/')
            .split_whitespace()
            .next()
            .unwrap_or("");
        if name == "br" {
            stripped.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    stripped.push_str(rest);
    decode_entities(&stripped).trim().to_string()
}

/// Decodes `&amp; &lt; &gt; &quot; &#39; &nbsp;` and numeric character references; anything else
/// is left as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let decoded = rest.find(';').filter(|end| *end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => numeric_reference(entity),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `#39` or `#x27` as a character.
fn numeric_reference(entity: &str) -> Option<char> {
    let number = entity.strip_prefix('#')?;
    let code = match number.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => number.parse().ok()?,
    };
    char::from_u32(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_bodies_become_text_without_tags_and_with_entities_decoded() {
        let html = "<html><body><p>Fax&nbsp;to <b>+61&#39;2</b> &amp; &lt;you&gt; &quot;now&quot;\
                    <br/>page 2</p></body></html>";

        assert_eq!(html_to_text(html), "Fax to +61'2 & <you> \"now\"\npage 2");
    }

    #[test]
    fn a_lone_ampersand_is_kept() {
        assert_eq!(html_to_text("A & B &unknown; &#x41;"), "A & B &unknown; A");
    }

    #[test]
    fn expand_attachments_is_read_with_or_without_encoded_dollar() {
        assert!(expands_attachments(Some("$expand=attachments")));
        assert!(expands_attachments(Some(
            "%24expand=Attachments&$select=subject"
        )));
        assert!(!expands_attachments(Some("$select=attachments")));
        assert!(!expands_attachments(None));
    }
}
