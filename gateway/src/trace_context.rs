//! The span every HTTP request runs in, named `request`, with the fields a log line needs to be
//! found again: the method, the URI, the request id (`x-request-id`, set or kept by the layer
//! before) and, when the client sent a valid W3C `traceparent`, its trace id. JSON logs carry
//! the span's fields on every line logged within the request (`span.request_id`,
//! `span.trace_id`), so an operator can join them with the client's and the backends' traces:
//! the `traceparent` itself travels on to the backends with the forwarded headers.

use axum::http::Request;

/// The W3C Trace Context header.
pub(crate) const TRACEPARENT: &str = "traceparent";

/// The trace id of a `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`, lower case), or
/// `None` when it is not one: a malformed header is ignored, as the spec asks, never an error.
pub(crate) fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace_id, parent_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |text: &str, len: usize| {
        text.len() == len && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    // Version 00 has exactly four fields; a later version may append more. `ff` is invalid.
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex(parent_id, 16)
        && parent_id.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    valid.then_some(trace_id)
}

/// The `request` span of `request` (see the module's documentation). At INFO, so the default
/// filter keeps it and every line within carries its fields.
pub(crate) fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok());
    let request_id = header(banyan_sources::identity::REQUEST_ID_HEADER).unwrap_or("-");
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        version = ?request.version(),
        request_id,
        trace_id = tracing::field::Empty,
    );
    if let Some(trace_id) = header(TRACEPARENT).and_then(trace_id) {
        span.record("trace_id", trace_id);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_only_from_valid_traceparents() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(trace_id(&format!("00-{id}-00f067aa0ba902b7-01")), Some(id));
        assert_eq!(trace_id(&format!("01-{id}-00f067aa0ba902b7-01-extra")), Some(id), "a later version");
        for bad in [
            format!("00-{id}-00f067aa0ba902b7-01-extra"),
            format!("ff-{id}-00f067aa0ba902b7-01"),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_owned(),
            format!("00-{id}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase()),
            format!("00-{id}-00f067aa0ba902b7"),
            "not a traceparent".to_owned(),
        ] {
            assert_eq!(trace_id(&bad), None, "{bad}");
        }
    }
}
