//! How a WebSocket connection ends: one table from each protocol violation, identity outcome
//! and limit to its close code and a short reason that is safe to show. The codes are
//! graphql-transport-ws's (graphql-ws's `CloseCode`) where the protocol defines one, and RFC
//! 6455's otherwise, so clients (graphql-ws, Apollo's `GraphQLWsLink`, urql) decide rightly
//! whether to reconnect: graphql-ws treats 4400, 4401, 4409 and 4429 as fatal, and retries 4403,
//! 4408, 1001, 1009, 1011 and 1013 with back-off.
//!
//! A close frame carries at most 125 bytes (RFC 6455 §5.5): two for the code, so every reason
//! here is at most [`MAX_REASON_BYTES`] (123); the one reason that quotes the client
//! (`Subscriber for <id> already exists`) is cut to fit.

use std::borrow::Cow;

use axum::extract::ws::{CloseFrame, Message};

use crate::auth::AuthRefusal;

/// The longest close reason a frame can carry: 125 bytes of payload less the 2-byte code.
pub(crate) const MAX_REASON_BYTES: usize = 123;

/// The reason of [`Close::TooManyConnections`] (also the older protocol's `connection_error`).
pub(crate) const TOO_MANY_CONNECTIONS: &str = "Too many connections for this caller";

/// Why the server closes a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Close {
    /// 4400: a text frame that is not JSON.
    NotJson,
    /// 4400: a binary frame (the protocol is JSON text).
    Binary,
    /// 4400: JSON that is not an object with a string `type`.
    NoType,
    /// 4400: a `type` the protocol does not define, or one only a server sends
    /// (`connection_ack`, `next`, `error`).
    UnexpectedType,
    /// 4400: a `connection_init`, `ping` or `pong` whose `payload` is neither absent, null nor an
    /// object.
    PayloadNotObject,
    /// 4400: a `subscribe` or `complete` without a non-empty string `id`.
    NoId,
    /// 4400: a `subscribe` whose payload is not an object with a string `query` (and, when
    /// present, a string `operationName` and object `variables` and `extensions`).
    BadSubscribePayload,
    /// 4401: a `subscribe` before the connection was acknowledged.
    Unauthorized,
    /// 4403, 1013 or 1011: `connection_init`'s identity check failed, or a re-check refused the
    /// credential (the identity table of [`crate::auth::AuthError::refusal`]).
    Refused(AuthRefusal),
    /// 4408: no `connection_init` acknowledged within `server.websocket_init_timeout`.
    InitTimeout,
    /// 4409: a `subscribe` with the id of an operation still running.
    SubscriberExists(String),
    /// 4429: a second `connection_init`.
    TooManyInitRequests,
    /// 4429: the caller already holds `websocket.max_connections_per_caller` connections.
    TooManyConnections,
    /// 4429: the caller is over its rate limit (`rate_limit`), at `connection_init` or `subscribe`.
    RateLimited,
    /// 1009: a message larger than `server.max_body_bytes`.
    MessageTooBig,
    /// 1001: no message from the client since the previous keepalive ping.
    KeepaliveTimeout,
    /// 1001: the server is shutting down (after `complete` for every running operation); the
    /// client reconnects, to another replica.
    ShuttingDown,
}

impl Close {
    /// The close code.
    pub(crate) fn code(&self) -> u16 {
        match self {
            Self::NotJson
            | Self::Binary
            | Self::NoType
            | Self::UnexpectedType
            | Self::PayloadNotObject
            | Self::NoId
            | Self::BadSubscribePayload => 4400,
            Self::Unauthorized => 4401,
            Self::Refused(refusal) => refusal.close_code,
            Self::InitTimeout => 4408,
            Self::SubscriberExists(_) => 4409,
            Self::TooManyInitRequests | Self::TooManyConnections | Self::RateLimited => 4429,
            Self::MessageTooBig => 1009,
            Self::KeepaliveTimeout | Self::ShuttingDown => 1001,
        }
    }

    /// The reason, at most [`MAX_REASON_BYTES`].
    pub(crate) fn reason(&self) -> Cow<'static, str> {
        let fixed = match self {
            Self::NotJson => "Invalid message received: not JSON",
            Self::Binary => "Invalid message received: binary frames are not part of the protocol",
            Self::NoType => "Invalid message received: not an object with a string type",
            Self::UnexpectedType => "Invalid message received: unknown type, or one only a server sends",
            Self::PayloadNotObject => "Invalid message received: payload must be an object",
            Self::NoId => "Invalid message received: id must be a non-empty string",
            Self::BadSubscribePayload => {
                "Invalid message received: subscribe needs a payload with a string query"
            }
            Self::Unauthorized => "Unauthorized",
            Self::Refused(refusal) => refusal.message,
            Self::InitTimeout => "Connection initialisation timeout",
            Self::SubscriberExists(id) => return subscriber_exists(id).into(),
            Self::TooManyInitRequests => "Too many initialisation requests",
            Self::TooManyConnections => TOO_MANY_CONNECTIONS,
            Self::RateLimited => "Too many requests",
            Self::MessageTooBig => "Message too big",
            Self::KeepaliveTimeout => "Keepalive timeout: no message since the last ping",
            Self::ShuttingDown => "Server shutting down",
        };
        fixed.into()
    }

    /// The close frame.
    pub(crate) fn frame(&self) -> Message {
        Message::Close(Some(CloseFrame { code: self.code(), reason: self.reason().as_ref().into() }))
    }
}

/// `Subscriber for <id> already exists`, with the id cut (on a character boundary, marked `…`)
/// so the whole fits a close frame.
fn subscriber_exists(id: &str) -> String {
    const BEFORE: &str = "Subscriber for ";
    const AFTER: &str = " already exists";
    const ELLIPSIS: char = '…';
    let room = MAX_REASON_BYTES - BEFORE.len() - AFTER.len();
    if id.len() <= room {
        return format!("{BEFORE}{id}{AFTER}");
    }
    let mut end = room - ELLIPSIS.len_utf8();
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    format!("{BEFORE}{}{ELLIPSIS}{AFTER}", &id[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthError;

    /// Every entry of the table, the identity outcomes included.
    fn every_close() -> Vec<Close> {
        let backend = banyan_sources::Backend::Monolith;
        let identity = [
            AuthError::InvalidCredential,
            AuthError::MalformedHeader,
            AuthError::Backend(banyan_sources::SourceError::Timeout {
                backend,
                timeout: std::time::Duration::from_secs(5),
            }),
            AuthError::Backend(banyan_sources::SourceError::BadResponse { backend, detail: "x".repeat(500) }),
            AuthError::Backend(banyan_sources::SourceError::Unavailable { backend, detail: "x".repeat(500) }),
        ];
        let mut all = vec![
            Close::NotJson,
            Close::Binary,
            Close::NoType,
            Close::UnexpectedType,
            Close::PayloadNotObject,
            Close::NoId,
            Close::BadSubscribePayload,
            Close::Unauthorized,
            Close::InitTimeout,
            Close::SubscriberExists("1".to_owned()),
            Close::SubscriberExists("x".repeat(500)),
            Close::SubscriberExists("é".repeat(100)),
            Close::TooManyInitRequests,
            Close::TooManyConnections,
            Close::RateLimited,
            Close::MessageTooBig,
            Close::KeepaliveTimeout,
            Close::ShuttingDown,
        ];
        all.extend(identity.iter().map(|error| Close::Refused(error.refusal())));
        all
    }

    #[test]
    fn every_reason_fits_a_close_frame() {
        for close in every_close() {
            let reason = close.reason();
            assert!(reason.len() <= MAX_REASON_BYTES, "{close:?}: {} bytes", reason.len());
            assert!(!reason.is_empty(), "{close:?}");
            // RFC 6455: 1000-2999 are the protocol's, 3000-4999 applications'; 1004-1006 and 1015
            // must never be sent.
            assert!(matches!(close.code(), 1000..=1003 | 1007..=1014 | 4000..=4999), "{close:?}");
        }
    }

    #[test]
    fn the_protocols_codes() {
        // graphql-ws's CloseCode, written out independently of the table.
        let expected = [
            (Close::NotJson, 4400),
            (Close::NoType, 4400),
            (Close::UnexpectedType, 4400),
            (Close::PayloadNotObject, 4400),
            (Close::NoId, 4400),
            (Close::BadSubscribePayload, 4400),
            (Close::Unauthorized, 4401),
            (Close::Refused(AuthError::InvalidCredential.refusal()), 4403),
            (Close::InitTimeout, 4408),
            (Close::SubscriberExists("a".to_owned()), 4409),
            (Close::TooManyInitRequests, 4429),
        ];
        for (close, code) in expected {
            assert_eq!(close.code(), code, "{close:?}");
        }
        assert_eq!(Close::SubscriberExists("abc".to_owned()).reason(), "Subscriber for abc already exists");
        assert_eq!(Close::Unauthorized.reason(), "Unauthorized");
    }

    #[test]
    fn a_long_id_is_cut_on_a_character_boundary() {
        let reason = subscriber_exists(&"é".repeat(100));
        assert!(reason.starts_with("Subscriber for éé") && reason.ends_with("… already exists"), "{reason}");
        assert!(reason.len() <= MAX_REASON_BYTES);
    }
}
