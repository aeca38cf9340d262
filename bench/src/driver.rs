//! The load driver: `concurrency` HTTP/1.1 keep-alive connections for a fixed time; every latency
//! is kept, so percentiles are exact.
//!
//! Two ways to pace them ([`Pace`]):
//! - a closed loop: each connection sends its next request as soon as the previous answer is
//!   read. It finds the most a server can take, and there every request queues behind the
//!   others: latency is then mostly waiting for the CPU.
//! - an open loop at a fixed rate: request `i` is due at `i / rate` seconds from the start,
//!   whether or not earlier answers are in, and the next free connection sends it. Its latency
//!   counts from when it was due if it went out late (every connection busy: the wait is the
//!   server's doing), else from when it was sent (a timer waking a little late is not). This is
//!   latency at a given load, below what saturates the server; a closed loop alone would hide the
//!   waits of requests that could not be sent (coordinated omission).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The path to `POST` to (`/graphql`).
    pub path: String,
    /// The `Authorization` header.
    pub authorization: String,
    /// The JSON body.
    pub body: Bytes,
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Connecting failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The server.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed (the server closed the connection?).
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// A request could not be built.
    #[error("building a request: {0}")]
    Request(#[from] http::Error),
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Every request's latency, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// Answers that were not 200 or held `"errors"`.
    pub failures: u64,
    /// The first failed answer, for the report.
    pub first_failure: Option<String>,
}

impl Outcome {
    /// Requests answered.
    pub fn requests(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    /// Requests per second.
    pub fn throughput(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `q` quantile (0..=1) of the latencies, nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies_us.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * self.latencies_us.len() as f64).ceil() as usize).clamp(1, self.latencies_us.len());
        Duration::from_micros(u64::from(self.latencies_us[rank - 1]))
    }
}

/// How requests are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Each connection sends again as soon as it has its answer.
    ClosedLoop,
    /// This many requests per second, due at fixed intervals from the start.
    Rate(f64),
}

/// When the requests of an open loop are due: shared by the connections, which claim them in
/// order.
struct Schedule {
    started: Instant,
    rate: f64,
    next: AtomicU64,
}

impl Schedule {
    /// Claims the next request: when it is due.
    fn claim(&self) -> Instant {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        self.started + Duration::from_secs_f64(index as f64 / self.rate)
    }
}

/// Waits for the next request's turn; `None` when the run is over. Returns the instant its
/// latency counts from.
async fn next_turn(schedule: Option<&Schedule>, deadline: Instant, give_up: Instant) -> Option<Instant> {
    let Some(schedule) = schedule else {
        let now = Instant::now();
        return (now < deadline).then_some(now);
    };
    let due = schedule.claim();
    let claimed = Instant::now();
    // A rate the server cannot take leaves requests due long past the deadline: stop at
    // `give_up`, and the throughput shows the rate was not met.
    if due >= deadline || claimed >= give_up {
        return None;
    }
    if claimed > due {
        return Some(due);
    }
    tokio::time::sleep_until(due.into()).await;
    Some(Instant::now())
}

/// One connection's loop: sends until `deadline`, returns its latencies and failures.
async fn connection(
    target: Arc<Target>,
    schedule: Option<Arc<Schedule>>,
    deadline: Instant,
    give_up: Instant,
) -> Result<Outcome, DriverError> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(|source| DriverError::Connect { addr: target.addr, source })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driving = tokio::spawn(conn);
    let host = target.addr.to_string();
    let mut outcome = Outcome::default();
    while let Some(origin) = next_turn(schedule.as_deref(), deadline, give_up).await {
        let request = Request::builder()
            .method(Method::POST)
            .uri(target.path.as_str())
            .header(header::HOST, host.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, target.authorization.as_str())
            .body(Full::new(target.body.clone()))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let took = origin.elapsed();
        outcome.latencies_us.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        if status != StatusCode::OK || contains(&body, b"\"errors\"") {
            outcome.failures += 1;
            if outcome.first_failure.is_none() {
                outcome.first_failure = Some(format!("{status}: {}", String::from_utf8_lossy(&body)));
            }
        }
    }
    drop(sender);
    driving.abort();
    Ok(outcome)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs `concurrency` connections for `duration`, paced by `pace`, then waits for every answer
/// in flight. An open loop that falls behind stops sending after twice `duration`.
pub async fn run(
    target: Target,
    concurrency: usize,
    duration: Duration,
    pace: Pace,
) -> Result<Outcome, DriverError> {
    let target = Arc::new(target);
    let started = Instant::now();
    let (deadline, give_up) = (started + duration, started + duration * 2);
    let schedule = match pace {
        Pace::ClosedLoop => None,
        Pace::Rate(rate) => {
            Some(Arc::new(Schedule { started, rate: rate.max(f64::MIN_POSITIVE), next: AtomicU64::new(0) }))
        }
    };
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(connection(target.clone(), schedule.clone(), deadline, give_up)))
        .collect();
    let mut total = Outcome::default();
    for task in tasks {
        let outcome = match task.await {
            Ok(outcome) => outcome?,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        total.latencies_us.extend(outcome.latencies_us);
        total.failures += outcome.failures;
        if total.first_failure.is_none() {
            total.first_failure = outcome.first_failure;
        }
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let outcome = Outcome { latencies_us: (1..=100).collect(), ..Outcome::default() };
        assert_eq!(outcome.quantile(0.5), Duration::from_micros(50));
        assert_eq!(outcome.quantile(0.99), Duration::from_micros(99));
        assert_eq!(outcome.quantile(1.0), Duration::from_micros(100));
        assert_eq!(Outcome::default().quantile(0.5), Duration::ZERO);
    }

    /// A server on 127.0.0.1 that answers every request after `delay`.
    async fn slow_server(delay: Duration) -> Target {
        let app = axum::Router::new().route(
            "/graphql",
            axum::routing::post(move || async move {
                tokio::time::sleep(delay).await;
                r#"{"data":{}}"#
            }),
        );
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Target {
            addr,
            path: "/graphql".into(),
            authorization: "Bearer t".into(),
            body: Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test]
    async fn an_open_loop_sends_what_its_rate_makes_due() {
        let target = slow_server(Duration::from_millis(20)).await;
        let outcome = run(target, 4, Duration::from_millis(500), Pace::Rate(100.0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Due at 0, 10, ..., 490 ms: 50 requests, however fast the connections could go.
        assert_eq!(outcome.requests(), 50);
        assert_eq!(outcome.failures, 0);
        assert!(outcome.latencies_us[0] >= 20_000, "{:?}", &outcome.latencies_us[..3]);
    }

    /// One connection, 30 ms per answer, a request due every 10 ms: the k-th answered request
    /// went out at 30k ms at the earliest, was due at 10k ms, and waited at least 30 + 20k ms.
    #[tokio::test]
    async fn an_open_loop_counts_a_late_request_from_when_it_was_due() {
        let target = slow_server(Duration::from_millis(30)).await;
        let outcome = run(target, 1, Duration::from_millis(300), Pace::Rate(100.0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!((10..=30).contains(&outcome.requests()), "{} requests", outcome.requests());
        for (k, &latency) in outcome.latencies_us.iter().enumerate() {
            assert!(u64::from(latency) >= 30_000 + 20_000 * k as u64, "request {k}: {latency} µs");
        }
    }

    #[test]
    fn finds_errors_in_a_body() {
        assert!(contains(br#"{"data":null,"errors":[]}"#, b"\"errors\""));
        assert!(!contains(br#"{"data":{"errorsCount":1}}"#, b"\"errors\""));
    }
}
