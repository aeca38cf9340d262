//! The wrong answers of the [`Answer`] fault, as the monolith and the gRPC services give them:
//! each one an answer a real backend (or the proxy in front of it) has been seen to give.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::future::Future;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::faults::{Answer, HANG_LIMIT};

/// Django's default 500 page with `DEBUG = False`.
const DJANGO_500: &str = "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n";

/// What a proxy in front of a slow upstream answers.
const PROXY_504: &str = "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n";

/// JSON cut off mid-object.
const MALFORMED_JSON: &str = "{\"count\": 3, \"next\": null, \"results\": [{\"id\": 1, \"name\": ";

/// The monolith's `answer` instead of (or made from) `right`, the answer it would have given.
pub(crate) async fn monolith(
    answer: Answer,
    path: &str,
    right: Response,
    shutdown: CancellationToken,
) -> Response {
    match answer {
        Answer::DeadlineExceeded => html(StatusCode::GATEWAY_TIMEOUT, PROXY_504),
        Answer::ResourceExhausted => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"detail\": \"Request was throttled.\"}",
        )
            .into_response(),
        Answer::Malformed => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], MALFORMED_JSON).into_response()
        }
        Answer::Html500 => html(StatusCode::INTERNAL_SERVER_ERROR, DJANGO_500),
        Answer::AppendSlashRedirect => {
            // Where Django sends a path without its slash (with one, which the devstack's routes
            // would then serve: a client that follows redirects loops, the gateway does not).
            let location = format!("{}/", path.trim_end_matches('/'));
            let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(location) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Answer::PartialBody => cut(right, Ending::Reset, shutdown).await,
        Answer::SlowBody => cut(right, Ending::Stall, shutdown).await,
        Answer::Reset => cut_at(right, 0, Ending::Reset, shutdown),
        // Streams are the services' alone.
        Answer::MidStreamUnavailable | Answer::MidStreamReset | Answer::MidStreamStall => right,
    }
}

/// The gRPC services' `answer`, or `None` for a fault they do not give (answered normally).
pub(crate) fn grpc(answer: Answer) -> Option<http::Response<tonic::body::Body>> {
    match answer {
        Answer::DeadlineExceeded => Some(tonic::Status::deadline_exceeded("Deadline Exceeded").into_http()),
        Answer::ResourceExhausted => Some(tonic::Status::resource_exhausted("too many requests").into_http()),
        Answer::Malformed => {
            // One length-prefixed message (not compressed, 5 bytes) that is not protobuf: field
            // 15 with the reserved wire type 7.
            let frame = Bytes::from_static(&[0, 0, 0, 0, 5, 0x7f, 0xff, 0xff, 0xff, 0xff]);
            let mut response = http::Response::new(tonic::body::Body::new(Body::from(frame)));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            Some(response)
        }
        Answer::Html500 => {
            let mut response = http::Response::new(tonic::body::Body::new(Body::from(DJANGO_500)));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            Some(response)
        }
        Answer::PartialBody | Answer::Reset => {
            // Headers, then a stream reset before any message.
            let body = Body::from_stream(futures::stream::once(async {
                Err::<Bytes, _>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "devstack fault: reset",
                ))
            }));
            let mut response = http::Response::new(tonic::body::Body::new(body));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            Some(response)
        }
        Answer::AppendSlashRedirect
        | Answer::SlowBody
        | Answer::MidStreamUnavailable
        | Answer::MidStreamReset
        | Answer::MidStreamStall => None,
    }
}

/// The right gRPC answer `right`, broken after its first message as a mid-stream `answer` asks;
/// other answers leave it alone.
pub(crate) fn grpc_mid_stream(
    answer: Option<Answer>,
    right: http::Response<tonic::body::Body>,
    shutdown: CancellationToken,
) -> http::Response<tonic::body::Body> {
    let ending = match answer {
        Some(Answer::MidStreamUnavailable) => MidStreamEnding::Unavailable,
        Some(Answer::MidStreamReset) => MidStreamEnding::Reset,
        Some(Answer::MidStreamStall) => MidStreamEnding::Stall,
        _ => return right,
    };
    right.map(|body| {
        tonic::body::Body::new(MidStream {
            inner: body,
            ending,
            passed_first: false,
            done: false,
            shutdown: Box::pin(shutdown.cancelled_owned()),
        })
    })
}

#[derive(Clone, Copy)]
enum MidStreamEnding {
    Unavailable,
    Reset,
    Stall,
}

/// A gRPC response body that lets its first data frame through, then ends as told (a reset
/// comes with the next message).
struct MidStream {
    inner: tonic::body::Body,
    ending: MidStreamEnding,
    passed_first: bool,
    done: bool,
    /// A stall ends with the devstack (or when the client drops the call).
    shutdown: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl http_body::Body for MidStream {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        use std::task::Poll;
        if self.done {
            return Poll::Ready(None);
        }
        if self.passed_first {
            return match self.ending {
                MidStreamEnding::Unavailable => {
                    self.done = true;
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", HeaderValue::from_static("14"));
                    trailers.insert("grpc-message", HeaderValue::from_static("devstack fault: going away"));
                    Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
                }
                // Reset when the next message is ready: a reset right after the first would let
                // h2 drop that first message still queued to send.
                MidStreamEnding::Reset => match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                        self.done = true;
                        Poll::Ready(Some(Err(tonic::Status::internal("devstack fault: stream reset"))))
                    }
                    other => other,
                },
                MidStreamEnding::Stall => match self.shutdown.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.done = true;
                        Poll::Ready(None)
                    }
                    Poll::Pending => Poll::Pending,
                },
            };
        }
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && frame.is_data()
        {
            self.passed_first = true;
        }
        polled
    }
}

fn html(status: StatusCode, page: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// How a cut body ends.
#[derive(Clone, Copy)]
enum Ending {
    /// The connection is cut.
    Reset,
    /// Nothing more is sent until the client gives up.
    Stall,
}

/// `right` with half its body, then `ending`.
async fn cut(right: Response, ending: Ending, shutdown: CancellationToken) -> Response {
    let (parts, body) = right.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let half = bytes.len() / 2;
    cut_at(Response::from_parts(parts, Body::from(bytes)), half, ending, shutdown)
}

/// `right`'s status and headers, its first `keep` bytes, then `ending` (the chunked body never
/// ends properly, so the client learns it was cut).
fn cut_at(right: Response, keep: usize, ending: Ending, shutdown: CancellationToken) -> Response {
    let (parts, body) = right.into_parts();
    let head = async move {
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        bytes.slice(..keep.min(bytes.len()))
    };
    let stream = futures::stream::once(head)
        .map(Ok::<_, std::io::Error>)
        .chain(futures::stream::once(async move {
            match ending {
                Ending::Reset => {}
                Ending::Stall => {
                    tokio::select! {
                        () = tokio::time::sleep(HANG_LIMIT) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
            }
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "devstack fault: body cut"))
        }))
        .filter(|item| futures::future::ready(!matches!(item, Ok(bytes) if bytes.is_empty())));
    Response::from_parts(parts, Body::from_stream(stream))
}
