//! AWS adapters: SQS for the queues, DynamoDB for state, S3 for documents, Secrets Manager for
//! the app's credentials.

pub mod dynamodb;
pub mod s3;
pub mod secrets;
pub mod sqs;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::{config::check_endpoint, error::RelayError};

/// Loads the SDK configuration from the standard AWS settings (region, credentials,
/// `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_*`). No network I/O happens here;
/// credentials are resolved on first use.
pub async fn sdk_config() -> Result<aws_config::SdkConfig, RelayError> {
    check_endpoint_overrides()?;
    Ok(aws_config::load_from_env().await)
}

/// The endpoint overrides must be https, or plain http to loopback (a local moto server).
fn check_endpoint_overrides() -> Result<(), RelayError> {
    for (name, value) in std::env::vars() {
        if name == "AWS_ENDPOINT_URL" || name.starts_with("AWS_ENDPOINT_URL_") {
            check_endpoint(&name, &value).map_err(RelayError::configuration)?;
        }
    }
    Ok(())
}

/// Classifies an AWS SDK error. Errors that name a missing resource or a refused permission are
/// configuration errors; throttling, timeouts, network and 5xx errors are transient.
pub(crate) fn classify<E>(what: &str, error: SdkError<E>) -> RelayError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error.code().unwrap_or("").to_string();
    let message = error.message().unwrap_or("").to_string();
    match &error {
        SdkError::ServiceError(_) if is_configuration_code(&code) => RelayError::configuration(
            format!("{what}: {code}: {message} (check the resource name and the IAM policy)"),
        ),
        // The request itself is refused (a job over the queue's maximum message size, an object
        // over S3's limit): sending it again cannot succeed.
        SdkError::ServiceError(_) if is_refused_request_code(&code) => {
            RelayError::permanent(format!("{what}: {code}: {message}"))
        }
        SdkError::ServiceError(_) if is_throttling_code(&code) => {
            RelayError::transient(format!("{what}: {code}"))
        }
        SdkError::ServiceError(_) => RelayError::transient(format!("{what}: {code}: {message}")),
        SdkError::ConstructionFailure(_) => {
            let detail = DisplayErrorContext(&error);
            RelayError::configuration(format!("{what}: request could not be built: {detail}"))
        }
        _ => RelayError::transient(format!("{what}: {}", DisplayErrorContext(&error))),
    }
}

fn is_refused_request_code(code: &str) -> bool {
    matches!(
        code,
        "InvalidParameterValue" | "MessageTooLong" | "InvalidMessageContents" | "EntityTooLarge"
    )
}

fn is_configuration_code(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied"
            | "AccessDeniedException"
            | "AWS.SimpleQueueService.NonExistentQueue"
            | "QueueDoesNotExist"
            | "ResourceNotFoundException"
            | "NoSuchBucket"
            | "InvalidAccessKeyId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "KMSAccessDeniedException"
            | "DecryptionFailure"
            | "ValidationException"
    )
}

fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "SlowDown"
    )
}
