//! The tower layer in front of the gRPC stand-ins: counts each call and applies the backend's
//! fault, so the service implementations stay free of both.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::Shared;
use crate::calls::grpc_key;
use crate::faults::{self, Backend, Verdict};

/// The message of the error a failing backend answers with.
pub(crate) const UNAVAILABLE_MESSAGE: &str = "Service temporarily unavailable.";

/// Wraps a gRPC server's routes in a [`GrpcGuard`].
#[derive(Clone)]
pub(crate) struct GrpcGuardLayer {
    shared: Arc<Shared>,
    backend: Backend,
}

impl GrpcGuardLayer {
    pub(crate) fn new(shared: Arc<Shared>, backend: Backend) -> Self {
        Self { shared, backend }
    }
}

impl<S> Layer<S> for GrpcGuardLayer {
    type Service = GrpcGuard<S>;

    fn layer(&self, inner: S) -> GrpcGuard<S> {
        GrpcGuard { inner, shared: self.shared.clone(), backend: self.backend }
    }
}

/// Counts the call under `Service/Method`, then applies the fault: waits, hangs, answers
/// `UNAVAILABLE` or a wrong answer instead of calling the service, or breaks its answer
/// mid-stream.
#[derive(Clone)]
pub(crate) struct GrpcGuard<S> {
    inner: S,
    shared: Arc<Shared>,
    backend: Backend,
}

impl<S, B> Service<http::Request<B>> for GrpcGuard<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone is not necessarily ready: keep the one that is, as tower asks.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let backend = self.backend;
        Box::pin(async move {
            shared.calls.record(&grpc_key(request.uri().path()), request.headers());
            match faults::apply(&shared.faults, &shared.shutdown, backend).await {
                Verdict::Serve => {
                    let answer = shared.faults.get(backend).answer;
                    match answer.and_then(crate::wrong_answer::grpc) {
                        Some(wrong) => Ok(wrong),
                        None => inner.call(request).await.map(|right| {
                            crate::wrong_answer::grpc_mid_stream(answer, right, shared.shutdown.clone())
                        }),
                    }
                }
                Verdict::Fail => Ok(tonic::Status::unavailable(UNAVAILABLE_MESSAGE).into_http()),
            }
        })
    }
}
