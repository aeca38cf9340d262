//! The load driver: `concurrency` HTTP/1.1 keep-alive connections, each sending the next request
//! as soon as the previous answer is read (a closed loop), for a fixed time; every latency is
//! kept, so percentiles are exact.

use std::net::SocketAddr;
use std::sync::Arc;
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

/// One connection's loop: sends until `deadline`, returns its latencies and failures.
async fn connection(target: Arc<Target>, deadline: Instant) -> Result<Outcome, DriverError> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(|source| DriverError::Connect { addr: target.addr, source })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driving = tokio::spawn(conn);
    let host = target.addr.to_string();
    let mut outcome = Outcome::default();
    while Instant::now() < deadline {
        let request = Request::builder()
            .method(Method::POST)
            .uri(target.path.as_str())
            .header(header::HOST, host.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, target.authorization.as_str())
            .body(Full::new(target.body.clone()))?;
        sender.ready().await?;
        let started = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let took = started.elapsed();
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

/// Runs `concurrency` connections for `duration`, then waits for every answer in flight.
pub async fn run(target: Target, concurrency: usize, duration: Duration) -> Result<Outcome, DriverError> {
    let target = Arc::new(target);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> =
        (0..concurrency).map(|_| tokio::spawn(connection(target.clone(), deadline))).collect();
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

    #[test]
    fn finds_errors_in_a_body() {
        assert!(contains(br#"{"data":null,"errors":[]}"#, b"\"errors\""));
        assert!(!contains(br#"{"data":{"errorsCount":1}}"#, b"\"errors\""));
    }
}
