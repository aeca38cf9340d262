//! Who a backend call is made for, and how that travels to each backend.

use crate::domain::UserId;

/// gRPC metadata key carrying the caller's user id to the services.
pub const USER_ID_METADATA: &str = "x-banyan-user-id";
/// Header and metadata key carrying the request id to every backend.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The authenticated caller of one GraphQL request, as the backends need it.
///
/// The monolith gets the caller's own credential (it still enforces its own permissions); the
/// services trust the gateway and get the user id as metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// The monolith token the caller presented (never logged).
    pub token: String,
    /// The user the token belongs to.
    pub user_id: UserId,
    /// The request id, passed on so backend logs can be joined with the gateway's.
    pub request_id: Option<String>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("token", &"<redacted>")
            .field("user_id", &self.user_id)
            .field("request_id", &self.request_id)
            .finish()
    }
}
