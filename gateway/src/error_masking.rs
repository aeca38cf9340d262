//! What a client sees of a failure, on every GraphQL path (HTTP, WebSocket queries and
//! mutations, subscription streams): a stable `extensions.code`, a safe message, and the
//! request id (`extensions.requestId`, the `x-request-id` of the HTTP request or WebSocket
//! upgrade) to quote to an operator. What went wrong inside goes to the log, under that id.
//!
//! It is one async-graphql extension, registered first so it sees every error, the other
//! extensions' refusals included:
//! - an error with a code keeps its message (the code's author made it safe; backend failures
//!   carry only [`SourceError::public_message`]); when it came from a backend, the
//!   [`SourceError`] (its detail: status, an excerpt of the body) is logged with the request id,
//!   once for all the fields that failed with the same error (a DataLoader batch gives its one
//!   error to every key), with their count and the first one's path; at most
//!   [`WARNINGS_PER_SECOND`] such warnings a second per gateway, the rest counted in one line;
//! - a field error without a code is something Banyan did not expect (a missing context value,
//!   a conversion from some library's error): its message may hold anything, so the client gets
//!   `INTERNAL_SERVER_ERROR` and "internal error", and the log gets the message;
//! - a request error without a code (no path: async-graphql's own refusal of the request, such
//!   as an unknown operation name) describes only the client's document, and gets `BAD_REQUEST`.
//!
//! [`SourceError::public_message`]: banyan_sources::SourceError::public_message

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest, NextSubscribe,
};
use async_graphql::{Request, Response, ServerError, ServerResult};
use banyan_resolvers::RequestScope;
use banyan_resolvers::error::codes;
use banyan_sources::SourceError;
use futures::StreamExt;
use futures::stream::BoxStream;

/// In a request's data: the id its errors carry and its log lines name.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// The message of an error whose detail only the log may see.
pub(crate) const INTERNAL_MESSAGE: &str = "internal error; quote the request id to an operator";

/// The extension (see the module's documentation). One per gateway: it holds the rate limit of
/// backend-failure warnings.
#[derive(Default)]
pub(crate) struct ErrorMasking {
    warnings: Arc<WarningLimit>,
}

impl ErrorMasking {
    /// Masking that shares its rate limit of warnings with the gateway's pipeline.
    pub(crate) fn sharing(warnings: Arc<WarningLimit>) -> Self {
        Self { warnings }
    }
}

/// The whole of the extension's work on one response, for the gateway's own pipeline
/// (`crate::pipeline`), which runs without the extension: every error masked and given the
/// request id, backend failures logged within `limit`.
pub(crate) fn mask_response(response: Response, request_id: Option<&str>, limit: &WarningLimit) -> Response {
    let (response, failures) = mask(response, request_id);
    log_backend_failures(failures, request_id.unwrap_or("-"), limit);
    response
}

/// The id a request's errors carry: the transport's, else its caller's (a WebSocket operation
/// of a signed-in caller).
pub(crate) fn request_id_of(request: &Request, session: Option<&async_graphql::Data>) -> Option<String> {
    let from_data = |data: &async_graphql::Data| {
        data.get(&std::any::TypeId::of::<RequestId>())
            .and_then(|value| value.downcast_ref::<RequestId>())
            .map(|id| id.0.clone())
    };
    let scope = |data: &async_graphql::Data| {
        data.get(&std::any::TypeId::of::<RequestScope>())
            .and_then(|value| value.downcast_ref::<RequestScope>())
            .and_then(|scope| scope.caller.request_id.clone())
    };
    from_data(&request.data)
        .or_else(|| session.and_then(from_data))
        .or_else(|| scope(&request.data))
        .or_else(|| session.and_then(scope))
}

impl ExtensionFactory for ErrorMasking {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Masker { request_id: Arc::default(), warnings: self.warnings.clone() })
    }
}

/// One request's masker: the request id, once the request's data is known.
struct Masker {
    request_id: Arc<Mutex<Option<String>>>,
    warnings: Arc<WarningLimit>,
}

/// Most backend-failure warnings logged per second by one gateway; the rest are counted and
/// reported in one line when the next second opens, so an outage under load stays readable.
pub(crate) const WARNINGS_PER_SECOND: u32 = 20;

/// A fixed one-second window of [`WARNINGS_PER_SECOND`] backend-failure warnings.
#[derive(Debug, Default)]
pub(crate) struct WarningLimit(Mutex<WarningWindow>);

#[derive(Debug, Default)]
struct WarningWindow {
    started: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl WarningLimit {
    /// Whether a warning may be logged at `now`; and how many were suppressed in the window
    /// that `now` closes (to be reported once).
    pub(crate) fn admit(&self, now: Instant) -> (bool, u64) {
        let mut window = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut closed = 0;
        let expired =
            window.started.is_none_or(|started| now.duration_since(started) >= Duration::from_secs(1));
        if expired {
            closed = std::mem::take(&mut window.suppressed);
            window.started = Some(now);
            window.logged = 0;
        }
        if window.logged < WARNINGS_PER_SECOND {
            window.logged += 1;
            (true, closed)
        } else {
            window.suppressed += 1;
            (false, closed)
        }
    }
}

/// The fields of one response that failed with the same backend error (a DataLoader batch
/// hands its one error to every key): one warning for them all.
struct BackendFailure {
    backend: &'static str,
    code: &'static str,
    error: String,
    first_path: String,
    fields: usize,
}

/// Logs one warning per distinct backend failure of a response, within the rate limit.
fn log_backend_failures(failures: Vec<BackendFailure>, request_id: &str, limit: &WarningLimit) {
    for failure in failures {
        let (admitted, suppressed) = limit.admit(Instant::now());
        if suppressed > 0 {
            tracing::warn!(suppressed, "backend-failure warnings suppressed in the last second (rate limit)");
        }
        if admitted {
            tracing::warn!(
                request_id,
                backend = failure.backend,
                code = failure.code,
                fields = failure.fields,
                path = failure.first_path,
                error = failure.error,
                "backend call failed"
            );
        }
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Masker {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // The transport's id, else the caller's (a WebSocket operation of a signed-in caller).
        let id = data::<RequestId>(&request, ctx).map(|id| id.0.clone()).or_else(|| {
            data::<RequestScope>(&request, ctx).and_then(|scope| scope.caller.request_id.clone())
        });
        *self.request_id.lock().unwrap_or_else(PoisonError::into_inner) = id;
        next.run(ctx, request).await
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let response = next.run(ctx).await;
        let id = self.request_id.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let (response, failures) = mask(response, id.as_deref());
        log_backend_failures(failures, id.as_deref().unwrap_or("-"), &self.warnings);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        // The stream is built before the request is prepared: read the id as each item passes.
        let request_id = self.request_id.clone();
        let warnings = self.warnings.clone();
        next.run(ctx, stream)
            .map(move |response| {
                let id = request_id.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let (response, failures) = mask(response, id.as_deref());
                log_backend_failures(failures, id.as_deref().unwrap_or("-"), &warnings);
                response
            })
            .boxed()
    }
}

/// A value of the request's data, or of the WebSocket connection's.
fn data<'a, T: Send + Sync + 'static>(request: &'a Request, ctx: &ExtensionContext<'a>) -> Option<&'a T> {
    request
        .data
        .get(&std::any::TypeId::of::<T>())
        .and_then(|value| value.downcast_ref::<T>())
        .or_else(|| ctx.data_opt::<T>())
}

/// Applies the module's rules to every error of `response`; returns it with its backend
/// failures, the fields sharing one error grouped (for [`log_backend_failures`]).
fn mask(mut response: Response, request_id: Option<&str>) -> (Response, Vec<BackendFailure>) {
    let mut failures: Vec<BackendFailure> = Vec::new();
    for error in &mut response.errors {
        let Some(failure) = mask_error(error, request_id) else { continue };
        let same = failures.iter_mut().find(|seen| {
            (seen.backend, seen.code, seen.error.as_str())
                == (failure.backend, failure.code, failure.error.as_str())
        });
        match same {
            Some(seen) => seen.fields += 1,
            None => failures.push(failure),
        }
    }
    (response, failures)
}

/// Masks one error; returns the backend failure behind it, if one is.
fn mask_error(error: &mut ServerError, request_id: Option<&str>) -> Option<BackendFailure> {
    let log_id = request_id.unwrap_or("-");
    let has_code = error.extensions.as_ref().is_some_and(|extensions| extensions.get("code").is_some());
    let path = || {
        let segments = error.path.iter().map(|segment| match segment {
            async_graphql::PathSegment::Field(name) => name.clone(),
            async_graphql::PathSegment::Index(index) => index.to_string(),
        });
        segments.collect::<Vec<_>>().join(".")
    };
    let mut failure = None;
    if let Some(source) = error.source::<SourceError>() {
        if let Some(backend) = source.failed_backend() {
            failure = Some(BackendFailure {
                backend: backend.name(),
                code: source.code(),
                error: source.to_string(),
                first_path: path(),
                fields: 1,
            });
        }
    } else if !has_code && !error.path.is_empty() {
        tracing::error!(request_id = log_id, path = path(), error = %error.message, "unexpected field error");
        error.message = INTERNAL_MESSAGE.to_owned();
        error.source = None;
        set(error, "code", codes::INTERNAL_SERVER_ERROR);
    }
    if !has_code && error.path.is_empty() {
        set(error, "code", "BAD_REQUEST");
    }
    if let Some(id) = request_id {
        set(error, "requestId", id);
    }
    failure
}

fn set(error: &mut ServerError, name: &str, value: &str) {
    error.extensions.get_or_insert_with(Default::default).set(name, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{PathSegment, Pos};

    fn code(error: &ServerError) -> Option<String> {
        match error.extensions.as_ref()?.get("code")? {
            async_graphql::Value::String(code) => Some(code.clone()),
            _ => None,
        }
    }

    #[test]
    fn uncoded_field_errors_are_masked_and_every_error_carries_the_id() {
        let mut leaky =
            ServerError::new("error sending request for url (http://10.1.2.3:8000/x)", Some(Pos::default()));
        leaky.path = vec![PathSegment::Field("me".to_owned())];
        let mut coded = ServerError::new("follow 1 to 100 templates", None);
        coded.path = vec![PathSegment::Field("t".to_owned())];
        set(&mut coded, "code", "BAD_USER_INPUT");
        let request_error = ServerError::new("Unknown operation named \"X\"", None);
        let (response, failures) =
            mask(Response::from_errors(vec![leaky, coded, request_error]), Some("rid-1"));
        assert!(failures.is_empty(), "no backend failed");
        let [leaky, coded, request_error] = &response.errors[..] else { panic!("three errors") };
        assert_eq!(leaky.message, INTERNAL_MESSAGE);
        assert_eq!(code(leaky).as_deref(), Some("INTERNAL_SERVER_ERROR"));
        assert_eq!(coded.message, "follow 1 to 100 templates");
        assert_eq!(code(coded).as_deref(), Some("BAD_USER_INPUT"));
        assert_eq!(code(request_error).as_deref(), Some("BAD_REQUEST"));
        for error in &response.errors {
            let id = error.extensions.as_ref().and_then(|e| e.get("requestId")).cloned();
            assert_eq!(id, Some(async_graphql::Value::from("rid-1")));
        }
    }

    fn backend_error(path: &str, source: SourceError) -> ServerError {
        let mut error = ServerError::new(source.public_message(), None);
        error.path = vec![PathSegment::Field(path.to_owned())];
        error.source = Some(Arc::new(source));
        set(&mut error, "code", "BACKEND_UNAVAILABLE");
        error
    }

    #[test]
    fn fields_failing_with_one_backend_error_are_one_failure() {
        use banyan_sources::Backend;
        let down =
            SourceError::Unavailable { backend: Backend::Events, detail: "connection refused".to_owned() };
        let other =
            SourceError::Unavailable { backend: Backend::Drafts, detail: "connection refused".to_owned() };
        let errors = vec![
            backend_error("a", down.clone()),
            backend_error("b", down.clone()),
            backend_error("c", down),
            backend_error("d", other),
        ];
        let (_, failures) = mask(Response::from_errors(errors), Some("rid"));
        let summary: Vec<_> = failures.iter().map(|f| (f.backend, f.fields, f.first_path.as_str())).collect();
        assert_eq!(summary, [("events", 3, "a"), ("drafts", 1, "d")]);
    }

    #[test]
    fn warnings_are_rate_limited_per_second_and_the_suppressed_are_reported_once() {
        let limit = WarningLimit::default();
        let start = Instant::now();
        let admitted = (0..WARNINGS_PER_SECOND + 5).filter(|_| limit.admit(start).0).count();
        assert_eq!(admitted, WARNINGS_PER_SECOND as usize);
        let later = start + Duration::from_millis(999);
        assert_eq!(limit.admit(later), (false, 0), "still the same window");
        let next = start + Duration::from_secs(1);
        assert_eq!(limit.admit(next), (true, 6), "the next window opens and reports the 6 suppressed");
        assert_eq!(limit.admit(next), (true, 0), "reported once");
    }
}
