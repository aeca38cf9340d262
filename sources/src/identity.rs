//! Who a backend call is made for, and how that travels to each backend.

use crate::budget::CallBudget;
use crate::domain::UserId;

/// gRPC metadata key carrying the caller's user id to the services.
pub const USER_ID_METADATA: &str = "x-banyan-user-id";
/// Header and metadata key carrying the request id to every backend.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How the caller proved who they are. The monolith gets it back in the same form, so it can
/// apply its own rules (Django's `TokenAuthentication` or `SessionAuthentication`, with its CSRF
/// check).
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API token, sent as `Authorization: Token <key>`.
    Token(String),
    /// A Django session, sent as a `Cookie` header.
    Session(SessionCredential),
}

/// A browser's Django session, and the CSRF proof that came with the request.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCredential {
    /// The session cookie's name (Django's `SESSION_COOKIE_NAME`, usually `sessionid`).
    pub cookie_name: String,
    /// The session id.
    pub session_id: String,
    /// The CSRF cookie (`csrftoken`) as `(name, value)`, when the caller sent one; forwarded with
    /// writes only.
    pub csrf_cookie: Option<(String, String)>,
    /// Headers Django's CSRF check reads (`X-CSRFToken`, and `Origin`/`Referer`, which it checks
    /// over HTTPS), as `(name, value)`, those the caller sent; forwarded with writes only.
    pub csrf_headers: Vec<(String, String)>,
}

impl Credential {
    /// The part that says who the caller is, for caching identity checks: the CSRF proof of one
    /// request does not change who a session belongs to.
    pub fn identity_key(&self) -> String {
        match self {
            Self::Token(key) => format!("token:{key}"),
            Self::Session(session) => format!("session:{}:{}", session.cookie_name, session.session_id),
        }
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::Session(session) => f
                .debug_struct("Session")
                .field("cookie_name", &session.cookie_name)
                .field("session_id", &"<redacted>")
                .field("csrf_cookie", &session.csrf_cookie.as_ref().map(|(name, _)| name))
                .field(
                    "csrf_headers",
                    &session.csrf_headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
                )
                .finish(),
        }
    }
}

/// The authenticated caller of one GraphQL request, as the backends need it.
///
/// The monolith gets the caller's own credential (it still enforces its own permissions); the
/// services trust the gateway and get the user id as metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// The credential the caller presented (never logged).
    pub credential: Credential,
    /// The user the credential belongs to.
    pub user_id: UserId,
    /// The request id, passed on so backend logs can be joined with the gateway's.
    pub request_id: Option<String>,
    /// The request's budget of backend calls, charged before each call (see [`CallBudget`]).
    /// [`Caller::for_request`] gives each request a fresh one.
    pub budget: CallBudget,
}

impl Caller {
    /// This caller with a fresh, unlimited call budget: a checked caller is cached across
    /// requests, its budget must not be.
    pub fn for_request(mut self) -> Self {
        self.budget = CallBudget::unlimited();
        self
    }
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("credential", &self.credential)
            .field("user_id", &self.user_id)
            .field("request_id", &self.request_id)
            .finish()
    }
}
