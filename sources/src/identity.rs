//! Who a backend call is made for, and how that travels to each backend.

use crate::budget::CallBudget;
use crate::domain::UserId;
use crate::trace::TraceContext;

/// gRPC metadata key carrying the caller's user id to the services.
pub const USER_ID_METADATA: &str = "x-banyan-user-id";
/// Header and metadata key carrying the request id to every backend.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Inbound headers that say, or could be taken to say, who is calling: none of them is ever
/// passed on from a client to a backend, whatever `backends.propagate_headers` lists. The
/// caller's identity reaches the monolith only as its own credential (which the gateway checked)
/// and the services only as the gateway's signed identity ([`crate::service_identity`]).
pub const IDENTITY_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    USER_ID_METADATA,
    crate::service_identity::EXPIRES_METADATA,
    crate::service_identity::SIGNATURE_METADATA,
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-remote-user",
    "remote-user",
    "x-user",
    "x-user-id",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-csrftoken",
];

/// Whether `name` (any case) may carry an identity, so it must never be forwarded: one of
/// [`IDENTITY_HEADERS`], or any `x-banyan-` header (the gateway's own vocabulary with the services).
pub fn is_identity_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    IDENTITY_HEADERS.contains(&name.as_str()) || name.starts_with("x-banyan-")
}

/// Whether `name` (lowercase) may be forwarded at all: not an identity header, not the request
/// id (always sent on its own), and not one the transport owns (HTTP/1 framing and hop-by-hop
/// headers, HTTP/2 and gRPC's own).
pub fn is_forwardable_header(name: &str) -> bool {
    const TRANSPORT: &[&str] = &[
        "host",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "content-type",
        "content-encoding",
        "accept",
        "accept-encoding",
        "user-agent",
        "expect",
    ];
    let name = name.to_ascii_lowercase();
    !is_identity_header(&name)
        && name != REQUEST_ID_HEADER
        && !TRANSPORT.contains(&name.as_str())
        && !name.starts_with("grpc-")
        && !name.starts_with(':')
        && !name.ends_with("-bin")
}

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
/// services get the user id signed by the gateway ([`crate::service_identity`]).
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
    /// Inbound headers passed on to every backend, as `(lowercase name, value)`: those
    /// `backends.propagate_headers` allows (trace context, `accept-language`). Never an identity
    /// header: the clients skip any name [`is_forwardable_header`] refuses.
    pub forwarded_headers: Vec<(String, String)>,
    /// Where this request's spans hang (the operation's span, or a batch's within a loader);
    /// [`TraceContext::off`] when tracing is off (see [`crate::trace`]).
    pub trace: TraceContext,
}

impl Caller {
    /// This caller with a fresh, unlimited call budget: a checked caller is cached across
    /// requests, its budget must not be.
    pub fn for_request(mut self) -> Self {
        self.budget = CallBudget::unlimited();
        self
    }

    /// This caller, with its backend calls' spans children of `trace` (a batch's span).
    #[must_use]
    pub fn traced_by(&self, trace: TraceContext) -> Self {
        Self { trace, ..self.clone() }
    }
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("credential", &self.credential)
            .field("user_id", &self.user_id)
            .field("request_id", &self.request_id)
            .field("forwarded_headers", &self.forwarded_headers.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .finish()
    }
}

/// The forwardable headers among `forwarded`, in order: what a client passes on.
pub(crate) fn forwardable(forwarded: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    forwarded
        .iter()
        .filter(|(name, _)| is_forwardable_header(name))
        .map(|(name, value)| (name.as_str(), value.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_transport_headers_are_never_forwardable() {
        for name in [
            "Authorization",
            "cookie",
            "X-Banyan-User-Id",
            "x-banyan-identity-signature",
            "x-forwarded-user",
            "X-Remote-User",
            "x-request-id",
            "grpc-timeout",
            "te",
            "content-type",
            "x-trace-bin",
        ] {
            assert!(!is_forwardable_header(name), "{name}");
        }
        for name in ["traceparent", "tracestate", "accept-language", "x-tenant"] {
            assert!(is_forwardable_header(name), "{name}");
        }
    }
}
