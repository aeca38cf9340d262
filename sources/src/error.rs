//! What can go wrong when calling a backend, in terms a resolver can act on.

use std::fmt;
use std::time::Duration;

/// The backends Banyan calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// The legacy monolith's REST API.
    Monolith,
    /// The event store (gRPC `banyan.events.v1.EventService`).
    Events,
    /// The draft store (gRPC `banyan.drafts.v1.DraftService`).
    Drafts,
}

impl Backend {
    /// The backend's short name, as used in metrics, logs and error extensions.
    pub fn name(self) -> &'static str {
        match self {
            Self::Monolith => "monolith",
            Self::Events => "events",
            Self::Drafts => "drafts",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed backend call. `Clone` because a loader batch hands one error to every waiting key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The backend did not answer before the deadline.
    #[error("{backend} did not answer within {timeout:?}")]
    Timeout {
        /// Which backend.
        backend: Backend,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The backend could not be reached or said it is unavailable.
    #[error("{backend} is unavailable: {detail}")]
    Unavailable {
        /// Which backend.
        backend: Backend,
        /// What happened, for the log only.
        detail: String,
    },
    /// The caller's credential was missing or not accepted.
    #[error("authentication required")]
    Unauthenticated,
    /// The caller may see the resource but not do this to it.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist or the caller may not see it.
    #[error("not found")]
    NotFound,
    /// The backend rejected the input; the message is safe to show.
    #[error("{0}")]
    InvalidInput(String),
    /// A write named a version that is no longer current.
    #[error("the draft changed since version {expected}; it is at version {current}")]
    VersionConflict {
        /// The version the writer expected.
        expected: u64,
        /// The version now.
        current: u64,
    },
    /// The request has made as many backend calls as its budget allows; this one was not made.
    #[error("this request reached its budget of {limit} backend calls")]
    CallBudgetExceeded {
        /// The budget.
        limit: usize,
    },
    /// The request's own deadline passed before this call could be made.
    #[error("the request's deadline passed before this backend call")]
    RequestTimeout,
    /// The backend's concurrency limit was reached and no slot freed in time; no call was made.
    #[error("{backend} has too many calls in flight")]
    Overloaded {
        /// Which backend.
        backend: Backend,
    },
    /// The backend answered something we could not understand or did not expect.
    #[error("{backend} answered unexpectedly: {detail}")]
    BadResponse {
        /// Which backend.
        backend: Backend,
        /// What was wrong, for the log only.
        detail: String,
    },
}

impl SourceError {
    /// A stable code for clients (GraphQL `extensions.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "BACKEND_TIMEOUT",
            Self::Unavailable { .. } => "BACKEND_UNAVAILABLE",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::InvalidInput(_) => "BAD_USER_INPUT",
            Self::VersionConflict { .. } => "VERSION_CONFLICT",
            Self::BadResponse { .. } => "BACKEND_ERROR",
            Self::CallBudgetExceeded { .. } => "BACKEND_CALL_BUDGET_EXCEEDED",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::Overloaded { .. } => "BACKEND_OVERLOADED",
        }
    }

    /// The backend at fault, when the failure is the backend's rather than the caller's.
    pub fn failed_backend(&self) -> Option<Backend> {
        match self {
            Self::Timeout { backend, .. }
            | Self::Unavailable { backend, .. }
            | Self::Overloaded { backend }
            | Self::BadResponse { backend, .. } => Some(*backend),
            _ => None,
        }
    }

    /// A message safe to show a client: backend failures say which backend and nothing internal.
    pub fn public_message(&self) -> String {
        match self {
            Self::Timeout { backend, .. } => format!("the {backend} backend did not answer in time"),
            Self::Unavailable { backend, .. } => format!("the {backend} backend is unavailable"),
            Self::BadResponse { backend, .. } => {
                format!("the {backend} backend answered unexpectedly")
            }
            Self::Overloaded { backend } => format!("the {backend} backend is overloaded"),
            other => other.to_string(),
        }
    }
}

/// What a tonic server says (with `CANCELLED`) when a call outlives its `grpc-timeout`.
const SERVER_TIMEOUT_MESSAGE: &str = "Timeout expired";

/// Maps a gRPC status from `backend`, called with deadline `timeout`, into a [`SourceError`].
pub(crate) fn from_status(backend: Backend, timeout: Duration, status: &tonic::Status) -> SourceError {
    use std::error::Error;
    use tonic::Code;
    // Whichever side noticed the deadline first (the server honouring `grpc-timeout`, or the
    // client), it is a timeout. A tonic server cut by `grpc-timeout` answers `CANCELLED` with
    // its `TimeoutExpired` message rather than `DEADLINE_EXCEEDED`; under load that answer can
    // beat the client's own timer, so it is a timeout too, not an unavailable backend.
    if status.code() == Code::DeadlineExceeded
        || caused_by::<tonic::TimeoutExpired>(status)
        || (status.code() == Code::Cancelled && status.message() == SERVER_TIMEOUT_MESSAGE)
    {
        return SourceError::Timeout { backend, timeout };
    }
    // A status with a source was made on this side of the wire from a transport failure (a
    // connection refused, reset or dropped), whatever code tonic gave it: the backend is
    // unreachable, not misbehaving.
    if let Some(source) = status.source() {
        return SourceError::Unavailable { backend, detail: format!("{:?}: {source}", status.code()) };
    }
    match status.code() {
        Code::NotFound => SourceError::NotFound,
        Code::InvalidArgument | Code::OutOfRange => SourceError::InvalidInput(status.message().to_owned()),
        // The services authenticate the gateway, not the caller (whom the gateway checked): a
        // refused signed identity is a misconfigured secret or clock, the backend side's error.
        Code::Unauthenticated => SourceError::BadResponse {
            backend,
            detail: format!(
                "the service refused the gateway's signed identity (check auth.service_identity_secrets and the clocks): {}",
                status.message()
            ),
        },
        Code::PermissionDenied => SourceError::Forbidden(status.message().to_owned()),
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted | Code::Cancelled => {
            SourceError::Unavailable { backend, detail: format!("{:?}: {}", status.code(), status.message()) }
        }
        _ => {
            SourceError::BadResponse { backend, detail: format!("{:?}: {}", status.code(), status.message()) }
        }
    }
}

/// Whether `E` is anywhere in the status's chain of sources.
fn caused_by<E: std::error::Error + 'static>(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<E>() {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a tonic server sends when a call outlives its `grpc-timeout` (its timeout layer's
    /// error, turned into a status as tonic's server does; the client receives code and message,
    /// no source) is a timeout. The fault matrix once saw `BACKEND_UNAVAILABLE` for a slow event
    /// store: under load the server's answer came before the client's own timer fired. Over the
    /// wire the client's channel would race the server with the same deadline, so this is built
    /// as the server builds it.
    #[test]
    fn a_server_that_cuts_a_call_at_its_grpc_timeout_is_a_timeout() {
        let sent = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        let received = tonic::Status::new(sent.code(), sent.message());
        assert_eq!(received.code(), tonic::Code::Cancelled, "tonic's server says it with CANCELLED");
        let error = from_status(Backend::Events, Duration::from_millis(200), &received);
        assert_eq!(error.code(), "BACKEND_TIMEOUT", "{error:?}");
        // A cancellation for any other reason is still an unavailable backend.
        let other =
            from_status(Backend::Events, Duration::from_millis(200), &tonic::Status::cancelled("shutdown"));
        assert_eq!(other.code(), "BACKEND_UNAVAILABLE", "{other:?}");
    }
}
