//! What a client sees of a failure, on every GraphQL path (HTTP, WebSocket queries and
//! mutations, subscription streams): a stable `extensions.code`, a safe message, and the
//! request id (`extensions.requestId`, the `x-request-id` of the HTTP request or WebSocket
//! upgrade) to quote to an operator. What went wrong inside goes to the log, under that id.
//!
//! It is one async-graphql extension, registered first so it sees every error, the other
//! extensions' refusals included:
//! - an error with a code keeps its message (the code's author made it safe; backend failures
//!   carry only [`SourceError::public_message`]); when it came from a backend, the full
//!   [`SourceError`] (URL, status, body) is logged with the request id;
//! - a field error without a code is something Banyan did not expect (a missing context value,
//!   a conversion from some library's error): its message may hold anything, so the client gets
//!   `INTERNAL_SERVER_ERROR` and "internal error", and the log gets the message;
//! - a request error without a code (no path: async-graphql's own refusal of the request, such
//!   as an unknown operation name) describes only the client's document, and gets `BAD_REQUEST`.
//!
//! [`SourceError::public_message`]: banyan_sources::SourceError::public_message

use std::sync::{Arc, Mutex, PoisonError};

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

/// The extension (see the module's documentation).
pub(crate) struct ErrorMasking;

impl ExtensionFactory for ErrorMasking {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Masker { request_id: Arc::default() })
    }
}

/// One request's masker: the request id, once the request's data is known.
struct Masker {
    request_id: Arc<Mutex<Option<String>>>,
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
        mask(response, id.as_deref())
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        // The stream is built before the request is prepared: read the id as each item passes.
        let request_id = self.request_id.clone();
        next.run(ctx, stream)
            .map(move |response| {
                let id = request_id.lock().unwrap_or_else(PoisonError::into_inner).clone();
                mask(response, id.as_deref())
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

/// Applies the module's rules to every error of `response`.
pub(crate) fn mask(mut response: Response, request_id: Option<&str>) -> Response {
    for error in &mut response.errors {
        mask_error(error, request_id);
    }
    response
}

fn mask_error(error: &mut ServerError, request_id: Option<&str>) {
    let log_id = request_id.unwrap_or("-");
    let has_code = error.extensions.as_ref().is_some_and(|extensions| extensions.get("code").is_some());
    let path = || {
        let segments = error.path.iter().map(|segment| match segment {
            async_graphql::PathSegment::Field(name) => name.clone(),
            async_graphql::PathSegment::Index(index) => index.to_string(),
        });
        segments.collect::<Vec<_>>().join(".")
    };
    if let Some(source) = error.source::<SourceError>() {
        if let Some(backend) = source.failed_backend() {
            tracing::warn!(
                request_id = log_id,
                backend = backend.name(),
                path = path(),
                error = %source,
                "backend call failed"
            );
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
        let response = mask(Response::from_errors(vec![leaky, coded, request_error]), Some("rid-1"));
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
}
