//! Defence at the edge, before any GraphQL: how connections are accepted and served, and what
//! happens to a request the server cannot take or a handler that panics.
//!
//! - [`serve`] accepts connections itself (axum's `serve` has no header read timeout and no
//!   connection cap): at most `server.max_connections` are open at once (WebSockets included,
//!   as the cap's permit lives as long as the socket), and a connection over the cap is closed
//!   as soon as it is accepted; a client gets `server.header_read_timeout` to send a request's
//!   headers, so slow-header clients cannot hold connections open. When a shutdown drains
//!   ([`crate::lifecycle`]), it stops accepting (taking first the connections the kernel has
//!   already completed), and each connection finishes its request and closes; while the
//!   replica is not ready, HTTP/1 answers carry `Connection: close`.
//! - [`limit_in_flight`]: beyond `server.max_in_flight_requests`, a request is answered at once
//!   with 503, `SERVER_BUSY` and `Retry-After` rather than queued, so an overloaded replica
//!   sheds load early and the load balancer or client can try another.
//! - [`catch_panic`]: a panic in a handler is a 500 with `INTERNAL_SERVER_ERROR` and the request
//!   id, logged with the panic's message, never a dropped connection. (tower-http's
//!   `CatchPanicLayer` is not used because its handler sees neither the request nor its id.)

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use http::{HeaderValue, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::auth::request_id;
use crate::lifecycle::Lifecycle;

/// `extensions.code` of a request refused because too many are in flight.
pub(crate) const SERVER_BUSY: &str = "SERVER_BUSY";
/// What `Retry-After` tells a refused client, in seconds.
const BUSY_RETRY_AFTER_SECONDS: u64 = 1;
/// How long to pause after a failed `accept` (out of file descriptors, say) before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// `server.header_read_timeout`.
    pub(crate) header_read_timeout: Duration,
    /// `server.max_connections`.
    pub(crate) max_connections: usize,
}

/// How long, once drain begins, a connection that has sent no request yet is given for its
/// first one (a client that has just connected is usually sending it) before it is closed.
const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `lifecycle` drains, then stops accepting and returns;
/// each open connection then finishes the request it is serving and closes (see
/// `Server::spawn`), which [`Lifecycle::idle`] tells.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    lifecycle: Lifecycle,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    // HTTP/2 WebSockets need the CONNECT protocol, as axum's own `serve` enables.
    builder.http2().timer(TokioTimer::new()).enable_connect_protocol();
    let server = Server { builder, router, limits, lifecycle: lifecycle.clone(), permits };
    let mut draining = std::pin::pin!(lifecycle.draining());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut draining => break,
        };
        server.spawn(stream, remote);
    }
    // Connections the kernel has completed but not handed over yet would be reset by closing the
    // listener, though their clients saw them open: take them too, then close.
    while let Some(Ok((stream, remote))) = listener.accept().now_or_never() {
        server.spawn(stream, remote);
    }
    drop(listener);
    tracing::info!("stopped accepting connections; draining the requests in flight");
}

/// What every connection is served with.
struct Server {
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    limits: ConnectionLimits,
    lifecycle: Lifecycle,
    permits: Arc<Semaphore>,
}

impl Server {
    fn spawn(&self, stream: TcpStream, remote: SocketAddr) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::warn!(%remote, max = self.limits.max_connections, "closing a connection over server.max_connections");
            drop(stream);
            return;
        };
        let io = TokioIo::new(CountedStream { stream, _permit: permit });
        let activity = Arc::new(Activity::default());
        // The peer's address rides on every request, as `axum::serve`'s connect info would
        // (rate limiting keys anonymous callers by it).
        let service = {
            let (router, lifecycle, activity) =
                (self.router.clone(), self.lifecycle.clone(), activity.clone());
            hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                activity.started();
                let running = lifecycle.request();
                let lifecycle = lifecycle.clone();
                let close_after = request.version() == http::Version::HTTP_11;
                router.clone().oneshot(request).map(move |response| {
                    drop(running);
                    response.map(|mut response| {
                        // Not ready: the load balancer is moving traffic away, so this client
                        // should open its next connection there (HTTP/1 only; HTTP/2 has GOAWAY;
                        // never on a WebSocket's 101, which keeps the connection).
                        if close_after
                            && !lifecycle.is_ready()
                            && response.status() != StatusCode::SWITCHING_PROTOCOLS
                        {
                            response
                                .headers_mut()
                                .insert(header::CONNECTION, HeaderValue::from_static("close"));
                        }
                        response
                    })
                })
            })
        };
        let connection = self.builder.serve_connection_with_upgrades(io, service).into_owned();
        let open = self.lifecycle.connection();
        let lifecycle = self.lifecycle.clone();
        let first_request_wait = self.limits.header_read_timeout.min(FIRST_REQUEST_WAIT);
        // When drain begins: a connection that has begun no request yet gets `first_request_wait`
        // for one (its client may have sent it just now, and closing would reset it); then the
        // connection finishes the request it serves (HTTP/1 answers it with `Connection: close`,
        // HTTP/2 sends GOAWAY) and closes. It is dropped, with whatever it was doing, if the
        // shutdown's grace period ends first.
        tokio::spawn(async move {
            let _open = open;
            let mut connection = std::pin::pin!(connection);
            let ended = |result: Result<(), Box<dyn std::error::Error + Send + Sync>>| {
                if let Err(error) = result {
                    tracing::debug!(%remote, %error, "a connection ended with an error");
                }
            };
            tokio::select! {
                result = connection.as_mut() => return ended(result),
                () = lifecycle.draining() => {}
                () = lifecycle.aborting() => return,
            }
            if activity.none_yet() {
                tokio::select! {
                    result = connection.as_mut() => return ended(result),
                    () = activity.first.notified() => {}
                    () = tokio::time::sleep(first_request_wait) => {}
                    () = lifecycle.aborting() => return,
                }
            }
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection.as_mut() => ended(result),
                () = lifecycle.aborting() => {}
            }
        });
    }
}

/// What a connection has done: how many requests it began, and a wake-up for the first.
#[derive(Default)]
struct Activity {
    requests: std::sync::atomic::AtomicU64,
    first: tokio::sync::Notify,
}

impl Activity {
    fn started(&self) {
        self.requests.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        // Stores a permit when nobody waits yet, so a waiter that checks next is not missed.
        self.first.notify_one();
    }

    fn none_yet(&self) -> bool {
        self.requests.load(std::sync::atomic::Ordering::Acquire) == 0
    }
}

/// A connection holding one of `server.max_connections` permits until it is dropped, which for
/// an upgraded WebSocket is when the socket closes.
struct CountedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The requests in flight, bounded.
#[derive(Clone)]
pub(crate) struct InFlight(Arc<Semaphore>);

impl InFlight {
    /// At most `max` at once.
    pub(crate) fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)))
    }
}

/// Runs the request if fewer than the cap are in flight; else 503 `SERVER_BUSY` at once.
pub(crate) async fn limit_in_flight(
    State(in_flight): State<InFlight>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = in_flight.0.clone().try_acquire_owned() else {
        return busy(request_id(request.headers()).as_deref(), "server.max_in_flight_requests");
    };
    next.run(request).await
}

/// 503 `SERVER_BUSY` with `Retry-After`, logged with the limit that refused the request.
pub(crate) fn busy(request_id: Option<&str>, limit: &'static str) -> Response {
    tracing::warn!(request_id = request_id.unwrap_or("-"), limit, "refusing a request: the server is busy");
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        SERVER_BUSY,
        "the server is busy; retry shortly",
        request_id,
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(BUSY_RETRY_AFTER_SECONDS));
    response
}

/// Turns a panic below into a 500 with a code and the request id, and a log line.
pub(crate) async fn catch_panic(request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|message| (*message).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            tracing::error!(request_id = id.as_deref().unwrap_or("-"), panic = %message, "a handler panicked");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                banyan_resolvers::error::codes::INTERNAL_SERVER_ERROR,
                crate::error_masking::INTERNAL_MESSAGE,
                id.as_deref(),
            )
        }
    }
}

/// A GraphQL-shaped error body (`{"errors": [{message, extensions: {code, requestId}}]}`), so
/// GraphQL clients read it like any other refusal.
fn error_response(status: StatusCode, code: &str, message: &str, request_id: Option<&str>) -> Response {
    let mut extensions = serde_json::json!({ "code": code });
    if let Some(id) = request_id {
        extensions["requestId"] = id.into();
    }
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": extensions }] });
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(crate::graphql_http::JSON))],
        Body::from(body.to_string()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use axum::routing::get;

    use super::*;
    use crate::config::Config;

    #[allow(clippy::unused_async)] // a handler
    async fn panics() -> &'static str {
        panic!("a test panic with a secret: postgres://db:5432")
    }

    /// The real stack (`app::with_layers`) over a real socket, with a route that panics: the one
    /// way to reach the panic path, and only in this test build.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_handler_is_a_coded_500_with_the_request_id_and_the_server_lives() {
        let routes = Router::new().route("/panic", get(panics)).route("/healthz", get(|| async { "ok" }));
        let router = crate::app::with_layers(routes, &Config::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("an address");
        let limits = ConnectionLimits { header_read_timeout: Duration::from_secs(10), max_connections: 10 };
        let lifecycle = Lifecycle::new(Arc::default());
        let server = tokio::spawn(serve(listener, router, limits, lifecycle));
        let exchange = move |path: &'static str| {
            tokio::task::spawn_blocking(move || {
                let mut socket = std::net::TcpStream::connect(addr).expect("connects");
                socket.set_read_timeout(Some(Duration::from_secs(30))).expect("a read timeout");
                write!(
                    socket,
                    "GET {path} HTTP/1.1\r\nHost: x\r\nx-request-id: panic-1\r\nConnection: close\r\n\r\n"
                )
                .expect("sent");
                let mut response = String::new();
                socket.read_to_string(&mut response).expect("an answer, not a dropped connection");
                response
            })
        };
        let response = exchange("/panic").await.expect("the client ran");
        assert!(response.starts_with("HTTP/1.1 500"), "{response}");
        assert!(response.to_ascii_lowercase().contains("x-request-id: panic-1"), "{response}");
        let body: serde_json::Value =
            serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap_or_default()).expect("a JSON body");
        assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL_SERVER_ERROR", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["requestId"], "panic-1", "{body}");
        assert!(!response.contains("postgres"), "the panic's message stays in the log: {response}");
        let health = exchange("/healthz").await.expect("the client ran");
        assert!(health.starts_with("HTTP/1.1 200"), "still serving: {health}");
        server.abort();
    }
}
