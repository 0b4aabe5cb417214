//! DynamoDB: the relay's one state table.
//!
//! Key schema: `pk` (string, partition) and `sk` (string, sort). Items:
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `SUBSCRIPTION` | subscription id | mailbox, tenantId, resource, clientStateSha256 (binary), expiresAt, createdAt, `ttl` |
//! | `LOCK` | mailbox | owner, leaseUntil (epoch seconds) |
//! | `MESSAGE#{job id}` | `LEDGER` | outcome, jobId or reason, `ttl` (epoch seconds; enable TTL on it) |
//!
//! All subscriptions share one partition so the webhook reads them with one Query.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client, error::SdkError, operation::put_item::PutItemError, primitives::Blob,
    types::AttributeValue,
};
use chrono::{DateTime, Utc};

use super::classify;
use crate::{
    error::RelayError,
    ports::{LedgerOutcome, StateStore, SubscriptionRecord},
};

const SUBSCRIPTION_PK: &str = "SUBSCRIPTION";
const LOCK_PK: &str = "LOCK";
const LEDGER_SK: &str = "LEDGER";

type Item = HashMap<String, AttributeValue>;

/// The state table.
pub struct DynamoStateStore {
    client: Client,
    table: String,
}

impl DynamoStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn what(&self, operation: &str) -> String {
        format!("DynamoDB {operation} on table {}", self.table)
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn epoch_after(keep: Duration) -> i64 {
    Utc::now().timestamp() + i64::try_from(keep.as_secs()).unwrap_or(i64::MAX / 2)
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, RelayError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| RelayError::permanent(format!("state item lacks string attribute {name}")))
}

fn get_time(item: &Item, name: &str) -> Result<DateTime<Utc>, RelayError> {
    DateTime::parse_from_rfc3339(get_s(item, name)?)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| RelayError::permanent(format!("state item attribute {name}: {e}")))
}

fn subscription_item(record: &SubscriptionRecord) -> Item {
    HashMap::from([
        ("pk".into(), s(SUBSCRIPTION_PK)),
        ("sk".into(), s(&record.subscription_id)),
        ("mailbox".into(), s(&record.mailbox)),
        ("tenantId".into(), s(&record.tenant_id)),
        ("resource".into(), s(&record.resource)),
        (
            "clientStateSha256".into(),
            AttributeValue::B(Blob::new(record.client_state_sha256)),
        ),
        ("expiresAt".into(), s(record.expires_at.to_rfc3339())),
        ("createdAt".into(), s(record.created_at.to_rfc3339())),
        // Kept a day past expiry, so late notifications for a replaced subscription still map
        // to its mailbox; then DynamoDB's time to live removes it.
        (
            "ttl".into(),
            n((record.expires_at + chrono::Duration::days(1)).timestamp()),
        ),
    ])
}

fn subscription_record(item: &Item) -> Result<SubscriptionRecord, RelayError> {
    let digest = item
        .get("clientStateSha256")
        .and_then(|v| v.as_b().ok())
        .and_then(|b| <[u8; 32]>::try_from(b.as_ref()).ok())
        .ok_or_else(|| RelayError::permanent("subscription item lacks clientStateSha256"))?;
    Ok(SubscriptionRecord {
        subscription_id: get_s(item, "sk")?.to_owned(),
        mailbox: get_s(item, "mailbox")?.to_owned(),
        tenant_id: get_s(item, "tenantId")?.to_owned(),
        resource: get_s(item, "resource")?.to_owned(),
        client_state_sha256: digest,
        expires_at: get_time(item, "expiresAt")?,
        created_at: get_time(item, "createdAt")?,
    })
}

fn is_condition_failure(error: &SdkError<PutItemError>) -> bool {
    matches!(
        error.as_service_error(),
        Some(PutItemError::ConditionalCheckFailedException(_))
    )
}

#[async_trait]
impl StateStore for DynamoStateStore {
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, RelayError> {
        let mut records = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(SUBSCRIPTION_PK))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(&self.what("Query"), e))?;
            for item in page.items() {
                // One damaged item must not stop every notification: it is skipped, loudly.
                match subscription_record(item) {
                    Ok(record) => records.push(record),
                    Err(error) => {
                        tracing::error!(reason = %error, table = %self.table, "subscription item skipped")
                    }
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(records),
            }
        }
    }

    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>, RelayError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(SUBSCRIPTION_PK))
            .key("sk", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&self.what("GetItem"), e))?;
        output.item.as_ref().map(subscription_record).transpose()
    }

    async fn put_subscription(&self, record: &SubscriptionRecord) -> Result<(), RelayError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(subscription_item(record)))
            .send()
            .await
            .map_err(|e| classify(&self.what("PutItem"), e))?;
        Ok(())
    }

    async fn delete_subscription(&self, id: &str) -> Result<(), RelayError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(SUBSCRIPTION_PK))
            .key("sk", s(id))
            .send()
            .await
            .map_err(|e| classify(&self.what("DeleteItem"), e))?;
        Ok(())
    }

    async fn lock_mailbox(
        &self,
        mailbox: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, RelayError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(LOCK_PK))
            .item("sk", s(mailbox.to_ascii_lowercase()))
            .item("owner", s(owner))
            .item("leaseUntil", n(epoch_after(lease)))
            .condition_expression(
                "attribute_not_exists(pk) OR leaseUntil < :now OR #owner = :owner",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", n(Utc::now().timestamp()))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failure(&error) => Ok(false),
            Err(error) => Err(classify(&self.what("PutItem (lock)"), error)),
        }
    }

    async fn unlock_mailbox(&self, mailbox: &str, owner: &str) -> Result<(), RelayError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(LOCK_PK))
            .key("sk", s(mailbox.to_ascii_lowercase()))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(classify(&self.what("DeleteItem (lock)"), error)),
        }
    }

    async fn ledger(&self, job_id: &str) -> Result<Option<LedgerOutcome>, RelayError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("MESSAGE#{job_id}")))
            .key("sk", s(LEDGER_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&self.what("GetItem (ledger)"), e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let outcome = match get_s(&item, "outcome")? {
            "forwarded" => LedgerOutcome::Forwarded {
                job_id: get_s(&item, "jobId")?.to_owned(),
            },
            _ => LedgerOutcome::Rejected {
                reason: get_s(&item, "reason")?.to_owned(),
            },
        };
        Ok(Some(outcome))
    }

    async fn record_ledger(
        &self,
        job_id: &str,
        outcome: &LedgerOutcome,
        keep: Duration,
    ) -> Result<(), RelayError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("MESSAGE#{job_id}")))
            .item("sk", s(LEDGER_SK))
            .item("recordedAt", s(Utc::now().to_rfc3339()))
            .item("ttl", n(epoch_after(keep)));
        request = match outcome {
            LedgerOutcome::Forwarded { job_id } => request
                .item("outcome", s("forwarded"))
                .item("jobId", s(job_id)),
            LedgerOutcome::Rejected { reason } => request
                .item("outcome", s("rejected"))
                .item("reason", s(reason)),
        };
        request
            .send()
            .await
            .map_err(|e| classify(&self.what("PutItem (ledger)"), e))?;
        Ok(())
    }
}
