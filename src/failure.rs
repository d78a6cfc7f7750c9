//! Why a reconcile could not finish, and how soon trying again can help.

use std::fmt;

use crate::aws::{AwsError, ErrorKind};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Retrying cannot help until the spec or AWS changes (kstatus `Stalled`).
    Stalled { reason: &'static str, message: String },
    /// The API or integration does not exist (yet); another tool may still create it.
    DependencyNotFound { message: String },
    /// Throttling, AWS server errors, timeouts: retry with backoff.
    Transient { reason: &'static str, message: String },
    /// spec.integrationRef names an object that does not exist or is not usable yet. Nothing
    /// is wrong: the watch on the referenced kind wakes the object when that changes.
    ReferenceNotReady { message: String },
}

impl Failure {
    pub fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
        Self::Stalled { reason, message: message.into() }
    }

    /// Classifies an AWS error where NotFound means a parent (API or integration) is missing.
    pub fn from_aws(err: AwsError) -> Self {
        let message = err.message.clone();
        match err.kind {
            ErrorKind::NotFound => Self::DependencyNotFound {
                message: format!(
                    "{}: the API or integration was not found ({message}); will retry until it exists.",
                    err.operation
                ),
            },
            // API Gateway answers ConflictException to a change that overlaps another change of
            // the same API; a create that collides with an existing key is told apart by the
            // caller, which looks the key up.
            ErrorKind::Conflict => Self::Transient {
                reason: "ConcurrentModification",
                message: format!(
                    "AWS refused {} because another change to the API was in progress; retrying with backoff.",
                    err.operation
                ),
            },
            ErrorKind::BadRequest => Self::stalled(
                "BadRequest",
                format!(
                    "AWS refused {}: {message}. Fix the spec; the operator retries when it changes.",
                    err.operation
                ),
            ),
            ErrorKind::AccessDenied => Self::stalled(
                "AccessDenied",
                format!(
                    "AWS refused {}: {message}. Grant the operator's IAM role access; it retries periodically.",
                    err.operation
                ),
            ),
            ErrorKind::Throttled => Self::Transient {
                reason: "Throttled",
                message: format!("AWS throttled {}; retrying with backoff.", err.operation),
            },
            ErrorKind::ServerError => Self::Transient {
                reason: "AwsServerError",
                // No error text: it differs between attempts (request ids, transport details),
                // and a status that changes on every retry would wake the object again. The
                // full error is in the operator's log.
                message: format!("AWS answered {} with a server error; retrying with backoff.", err.operation),
            },
            ErrorKind::Network => Self::Transient {
                reason: "AwsUnreachable",
                message: format!(
                    "{} did not complete (AWS unreachable or timed out); retrying with backoff.",
                    err.operation
                ),
            },
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::Stalled { reason, .. } | Self::Transient { reason, .. } => reason,
            Self::DependencyNotFound { .. } => "DependencyNotFound",
            Self::ReferenceNotReady { .. } => "ReferenceNotReady",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Stalled { message, .. }
            | Self::Transient { message, .. }
            | Self::DependencyNotFound { message }
            | Self::ReferenceNotReady { message } => message,
        }
    }

    /// Throttling, 5xx or no answer: AWS as a whole, not this object, is the trouble, so the
    /// object is woken as soon as AWS answers again (see [`crate::recovery`]).
    pub fn waits_on_aws(&self) -> bool {
        matches!(self, Self::Transient { reason: "Throttled" | "AwsServerError" | "AwsUnreachable", .. })
    }

    pub fn is_stalled(&self) -> bool {
        matches!(self, Self::Stalled { .. })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason(), self.message())
    }
}

impl std::error::Error for Failure {}

impl From<AwsError> for Failure {
    fn from(err: AwsError) -> Self {
        Self::from_aws(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(kind: ErrorKind, message: &str) -> AwsError {
        AwsError { kind, operation: "CreateIntegrationResponse", message: message.into(), request_id: None }
    }

    #[test]
    fn client_errors_stall_with_the_aws_message() {
        let failure = Failure::from(aws(ErrorKind::BadRequest, "BadRequestException: Invalid key"));
        assert!(failure.is_stalled());
        assert_eq!(failure.reason(), "BadRequest");
        assert!(failure.message().contains("BadRequestException: Invalid key"));

        let failure = Failure::from(aws(ErrorKind::AccessDenied, "AccessDeniedException: not allowed"));
        assert_eq!(failure.reason(), "AccessDenied");
        assert!(failure.message().contains("not allowed"));
    }

    #[test]
    fn a_conflict_is_a_concurrent_modification_retried_with_backoff() {
        let failure = Failure::from(aws(
            ErrorKind::Conflict,
            "ConflictException: Unable to complete operation due to concurrent modification. Please try again later.",
        ));
        assert!(matches!(failure, Failure::Transient { .. }), "{failure:?}");
        assert_eq!(failure.reason(), "ConcurrentModification");
    }

    #[test]
    fn retryable_errors_are_transient() {
        for (kind, reason) in [
            (ErrorKind::Throttled, "Throttled"),
            (ErrorKind::ServerError, "AwsServerError"),
            (ErrorKind::Network, "AwsUnreachable"),
        ] {
            let failure = Failure::from(aws(kind, "dispatch failure: connection reset by peer (os error 104)"));
            assert!(matches!(failure, Failure::Transient { .. }), "{kind:?}");
            assert_eq!(failure.reason(), reason);
            // Volatile error text stays out of status, so a repeated failure writes nothing.
            assert_eq!(failure, Failure::from(aws(kind, "client error (SendRequest)")), "{kind:?}");
        }
    }

    #[test]
    fn missing_parent_is_a_dependency_failure() {
        let failure = Failure::from(aws(ErrorKind::NotFound, "NotFoundException: Invalid Integration identifier"));
        assert_eq!(failure.reason(), "DependencyNotFound");
        assert!(!failure.is_stalled());
    }
}
