//! S3: where fax documents are kept, so that a job stays small whatever its attachments.

use async_trait::async_trait;
use aws_sdk_s3::{Client, primitives::ByteStream};

use super::classify;
use crate::{error::RelayError, ports::DocumentStore};

/// The document bucket. Objects take the bucket's default encryption (SSE-S3 or SSE-KMS, as the
/// administrator set it).
pub struct S3DocumentStore {
    client: Client,
    bucket: String,
}

impl S3DocumentStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl DocumentStore for S3DocumentStore {
    async fn put(
        &self,
        key: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, RelayError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| classify(&format!("S3 PutObject to bucket {}", self.bucket), e))?;
        Ok(self.bucket.clone())
    }
}
