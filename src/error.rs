//! Every failure that comes from outside the relay is classified here, because the class decides
//! what happens next: a transient failure is retried (bounded), a permanent one is rejected with
//! its reason, a configuration failure raises an alarm because retrying will not help.

use std::time::Duration;

/// A classified failure. Messages name the thing (mailbox, subscription id, AADSTS code) and what
/// to do, and never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// Worth retrying later: throttling, a 5xx, a network error, a timeout.
    #[error("transient failure: {reason}")]
    Transient {
        reason: String,
        /// How long the other side asked us to wait (Graph's `Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
    /// This input can never succeed (no valid recipient, message gone): reject it with the reason.
    #[error("permanent failure: {reason}")]
    Permanent { reason: String },
    /// The relay, Entra or Exchange is set up wrongly; an operator must fix it.
    #[error("configuration error: {reason}")]
    Configuration { reason: String },
}

impl RelayError {
    /// A transient failure with no requested delay.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
        }
    }

    /// A configuration error.
    pub fn configuration(reason: impl Into<String>) -> Self {
        Self::Configuration {
            reason: reason.into(),
        }
    }

    /// The class as it appears in logs: `transient`, `permanent` or `configuration`.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Transient { .. } => "transient",
            Self::Permanent { .. } => "permanent",
            Self::Configuration { .. } => "configuration",
        }
    }

    /// Whether retrying the same work later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

impl From<RelayError> for lambda_runtime::Diagnostic {
    fn from(error: RelayError) -> Self {
        let error_type = match error {
            RelayError::Transient { .. } => "Retryable",
            RelayError::Permanent { .. } => "NonRetryable",
            RelayError::Configuration { .. } => "Configuration",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_string(),
            error_message: error.to_string(),
        }
    }
}
