//! How failures become GraphQL errors: a stable `extensions.code` for clients, a safe message, and
//! full detail in the log only.

use async_graphql::{Error, ErrorExtensions};
use banyan_sources::SourceError;

/// Codes the resolvers themselves raise (backend failures carry [`SourceError::code`]).
pub mod codes {
    /// No valid credential came with the request.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// An argument is malformed (e.g. an id of the wrong type).
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    /// The thing asked for does not exist or is not visible to the caller.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// Something Banyan itself got wrong; the detail is in the log.
    pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
    /// A subscription read its events slower than they came and its buffer
    /// (`subscriptions.subscriber_buffer`) filled: it ends, with `extensions.lastSequence` the
    /// last sequence it delivered; subscribe again with `afterSequence` set to it to lose nothing.
    pub const SUBSCRIBER_TOO_SLOW: &str = "SUBSCRIBER_TOO_SLOW";
}

/// A GraphQL error with a code.
pub(crate) fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// The caller is not signed in.
pub(crate) fn unauthenticated() -> Error {
    coded(codes::UNAUTHENTICATED, "sign in to see this: send `Authorization: Token <key>`")
}

/// Turns a backend failure into a GraphQL error on the field that needed it: the client sees the
/// code and [`SourceError::public_message`]; the error itself rides along as the GraphQL error's
/// `source` (never serialized), so the gateway can log its detail with the request id.
pub(crate) fn from_source(error: SourceError) -> Error {
    let code = error.code();
    let backend = error.failed_backend();
    let mut graphql = Error::new(error.public_message()).extend_with(|_, e| {
        e.set("code", code);
        if let Some(backend) = backend {
            e.set("backend", backend.name());
        }
    });
    graphql.source = Some(std::sync::Arc::new(error));
    graphql
}

/// `?`-friendly conversion for resolver bodies.
pub(crate) trait SourceResultExt<T> {
    /// Maps the error with [`from_source`].
    fn graphql(self) -> Result<T, Error>;
}

impl<T> SourceResultExt<T> for Result<T, SourceError> {
    fn graphql(self) -> Result<T, Error> {
        self.map_err(from_source)
    }
}
