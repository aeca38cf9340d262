//! Rate limiting: a token bucket per caller, in memory (per replica), or in Redis when `[redis]`
//! is set, so a caller's requests count across every replica (`crate::shared_store`).
//!
//! A caller is its user once the credential is checked ([`RateKey::User`]), and its IP address
//! otherwise ([`RateKey::Ip`]): the peer's address, or, when the peer is one of
//! `rate_limit.trusted_proxies`, the rightmost address of `X-Forwarded-For` that is not a trusted
//! proxy ([`RateLimiter::client_ip`]).
//!
//! Over HTTP the check runs in two steps around the identity check, so that the monolith's
//! `/me` is protected too:
//! 1. [`RateLimiter::before_identity`]: a request without a credential spends from its IP's
//!    bucket; a request with one is refused when its IP's bucket is already empty, without
//!    spending, so a client guessing tokens costs the monolith nothing once its IP is over.
//! 2. [`RateLimiter::after_identity`]: a checked caller spends from its user's bucket (a user
//!    is limited the same from every address, and users behind one NAT do not share a bucket); a
//!    refused credential spends from its IP's bucket.
//!
//! Over the limit: HTTP 429 with `Retry-After` (whole seconds, at least 1) and a GraphQL error
//! with code `RATE_LIMITED`. Over WebSocket (`crate::ws`) [`RateLimiter::check`] spends one
//! request of the connection's key ([`RateKey::for_caller`], the address from
//! [`RateLimiter::client_ip`] of the upgrade request) at `connection_init` and at every
//! `subscribe`; over the limit the connection closes with 4429 (graphql-transport-ws's "Too many
//! requests", which graphql-ws clients do not retry) and the reason [`RateLimited::MESSAGE`]; on
//! the older `graphql-ws` protocol `connection_init` gets a `connection_error` first.
//!
//! Why not `governor`: its keyed limiter keeps every key until asked to forget, reports no wait
//! without spending, and would be one more dependency; a bucket is a few lines, and moka
//! (already used) bounds the number of callers and forgets idle ones: a bucket idle for
//! `burst / requests_per_second` is full again, so forgetting it changes nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banyan_sources::Caller;
use http::HeaderMap;
use ipnet::IpNet;
use moka::future::Cache;

use crate::auth::AuthError;
use crate::config::{OnStoreError, RateLimitConfig};
use crate::shared_store::SharedStore;

/// The stable `extensions.code` of a request over the limit.
pub const RATE_LIMITED: &str = "RATE_LIMITED";

/// What a caller refused because the shared store failed (`on_store_error = "deny"`) is told to
/// wait.
const STORE_ERROR_WAIT: Duration = Duration::from_secs(1);

/// Longest a bucket is remembered while idle, whatever the rate.
const MAX_IDLE: Duration = Duration::from_secs(24 * 60 * 60);

/// Who a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// A signed-in user, by id.
    User(u64),
    /// An anonymous client (or a refused credential), by address.
    Ip(IpAddr),
}

impl RateKey {
    /// The key of a caller: its user when it has one, else `client_ip`.
    pub fn for_caller(caller: Option<&Caller>, client_ip: IpAddr) -> Self {
        match caller {
            Some(caller) => Self::User(caller.user_id.0),
            None => Self::Ip(client_ip),
        }
    }
}

impl std::fmt::Display for RateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Ip(ip) => write!(f, "ip:{ip}"),
        }
    }
}

/// A request over its caller's limit, and when the next one would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry in {} s", self.retry_after_secs())]
pub struct RateLimited {
    wait: Duration,
}

impl RateLimited {
    /// The safe message of the refusal (also the WebSocket close reason).
    pub const MESSAGE: &'static str = "too many requests; retry later";

    /// `Retry-After` in whole seconds: the wait rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// One caller's bucket: up to `burst` tokens, refilled at the configured rate.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = now;
    }

    /// The wait until one token is there, if it is not.
    fn shortfall(&self, rate: f64) -> Result<(), RateLimited> {
        if self.tokens >= 1.0 {
            return Ok(());
        }
        Err(RateLimited { wait: Duration::try_from_secs_f64((1.0 - self.tokens) / rate).unwrap_or(MAX_IDLE) })
    }
}

/// The limiter; disabled (admits everything) unless `rate_limit.enabled`. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    buckets: Option<Cache<RateKey, Arc<Mutex<Bucket>>>>,
    rate: f64,
    burst: f64,
    trusted_proxies: Arc<[IpNet]>,
    /// Buckets shared by every replica (`[redis]`), used instead of `buckets` when set.
    shared: Option<SharedStore>,
    on_store_error: OnStoreError,
}

impl RateLimiter {
    /// The limiter `config` asks for (validated with the configuration).
    pub fn new(config: &RateLimitConfig) -> Self {
        let rate = config.requests_per_second;
        let burst = f64::from(config.burst);
        let idle = Duration::try_from_secs_f64(burst / rate)
            .unwrap_or(MAX_IDLE)
            .clamp(Duration::from_secs(1), MAX_IDLE);
        let buckets = config
            .enabled
            .then(|| Cache::builder().max_capacity(config.max_callers).time_to_idle(idle).build());
        let trusted_proxies = config.trusted_networks().unwrap_or_default().into();
        Self { buckets, rate, burst, trusted_proxies, shared: None, on_store_error: config.on_store_error }
    }

    /// The same limiter, counting in `shared` (every replica's buckets are the same), when
    /// limiting is on.
    pub(crate) fn sharing(mut self, shared: Option<SharedStore>) -> Self {
        if self.buckets.is_some() {
            self.shared = shared;
        }
        self
    }

    /// Whether requests are limited at all.
    pub fn is_enabled(&self) -> bool {
        self.buckets.is_some()
    }

    /// Spends one request from `key`'s bucket, or says how long to wait. The WebSocket path
    /// calls this once per `subscribe` message (close 4429 on `Err`).
    pub async fn check(&self, key: &RateKey) -> Result<(), RateLimited> {
        self.with_bucket(key, true).await
    }

    /// Whether `key`'s bucket has a token, without spending it.
    async fn peek(&self, key: &RateKey) -> Result<(), RateLimited> {
        self.with_bucket(key, false).await
    }

    async fn with_bucket(&self, key: &RateKey, spend: bool) -> Result<(), RateLimited> {
        let Some(buckets) = &self.buckets else { return Ok(()) };
        if let Some(shared) = &self.shared {
            let verdict = match shared.token_bucket(&key.to_string(), self.rate, self.burst, spend).await {
                Ok(wait) if wait.is_zero() => Ok(()),
                Ok(wait) => Err(RateLimited { wait }),
                // Counted and logged by the store.
                Err(_) => match self.on_store_error {
                    OnStoreError::Allow => Ok(()),
                    OnStoreError::Deny => Err(RateLimited { wait: STORE_ERROR_WAIT }),
                },
            };
            if let Err(limited) = &verdict {
                tracing::debug!(caller = %key, retry_after = limited.retry_after_secs(), "rate limited");
            }
            return verdict;
        }
        let now = Instant::now();
        let burst = self.burst;
        let bucket = buckets
            .get_with(
                key.clone(),
                async move { Arc::new(Mutex::new(Bucket { tokens: burst, updated: now })) },
            )
            .await;
        // A poisoned lock only means another request panicked mid-update; the numbers are
        // still numbers.
        let mut bucket = bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        bucket.refill(now, self.rate, self.burst);
        let verdict = bucket.shortfall(self.rate);
        if spend && verdict.is_ok() {
            bucket.tokens -= 1.0;
        }
        if let Err(limited) = &verdict {
            tracing::debug!(caller = %key, retry_after = limited.retry_after_secs(), "rate limited");
        }
        verdict
    }

    /// Step 1 over HTTP (module docs): before the credential is checked.
    pub(crate) async fn before_identity(
        &self,
        client_ip: IpAddr,
        has_credential: bool,
    ) -> Result<(), RateLimited> {
        let key = RateKey::Ip(client_ip);
        if has_credential { self.peek(&key).await } else { self.check(&key).await }
    }

    /// Step 2 over HTTP (module docs): once the credential is checked. A backend failure of the
    /// check is not the caller's doing and costs nothing.
    pub(crate) async fn after_identity(
        &self,
        client_ip: IpAddr,
        identity: &Result<Option<Caller>, AuthError>,
    ) -> Result<(), RateLimited> {
        match identity {
            Ok(Some(caller)) => self.check(&RateKey::User(caller.user_id.0)).await,
            // Spent before the check.
            Ok(None) | Err(AuthError::Backend(_)) => Ok(()),
            // The refusal stands either way; what matters is that the IP pays for it.
            Err(AuthError::InvalidCredential | AuthError::MalformedHeader) => {
                let _ = self.check(&RateKey::Ip(client_ip)).await;
                Ok(())
            }
        }
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the rightmost
    /// address of `X-Forwarded-For` that is not a trusted proxy (each proxy appends the address
    /// it received from, so addresses left of an untrusted hop may be forged). When every hop
    /// is trusted, the leftmost; when a hop does not parse, the last trusted one before it.
    /// Without a peer address (a router served without connect info), `0.0.0.0`.
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        let Some(peer) = peer.map(|peer| peer.ip().to_canonical()) else {
            return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        };
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) else { return client };
            client = ip;
            if !trusted(&ip) {
                return ip;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(trusted: &[&str]) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            enabled: true,
            requests_per_second: 0.001,
            burst: 2,
            trusted_proxies: trusted.iter().map(|s| (*s).to_owned()).collect(),
            max_callers: 100,
            on_store_error: crate::config::OnStoreError::Allow,
        })
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().expect("a header value"));
        headers
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().expect("an address"), 5555))
    }

    #[tokio::test]
    async fn a_bucket_admits_its_burst_then_says_how_long_to_wait() {
        let limiter = limiter(&[]);
        let key = RateKey::User(7);
        assert!(limiter.check(&key).await.is_ok());
        assert!(limiter.peek(&key).await.is_ok(), "peeking spends nothing");
        assert!(limiter.check(&key).await.is_ok());
        let limited = limiter.check(&key).await.expect_err("the third request is over");
        // One token at 0.001/s: 1000 s, less the few microseconds since the bucket was made.
        assert!((999..=1000).contains(&limited.retry_after_secs()), "{}", limited.retry_after_secs());
        assert!(limiter.check(&RateKey::User(8)).await.is_ok(), "another caller has its own bucket");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_at_least_one() {
        assert_eq!(RateLimited { wait: Duration::from_millis(1) }.retry_after_secs(), 1);
        assert_eq!(RateLimited { wait: Duration::from_millis(1500) }.retry_after_secs(), 2);
        assert_eq!(RateLimited { wait: Duration::from_secs(3) }.retry_after_secs(), 3);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let limiter = limiter(&["10.0.0.0/8", "192.168.1.1"]);
        let headers = forwarded("203.0.113.9, 198.51.100.4, 10.1.2.3");
        // From an untrusted peer the header is ignored.
        assert_eq!(
            limiter.client_ip(peer("198.51.100.77"), &headers),
            "198.51.100.77".parse::<IpAddr>().unwrap()
        );
        // From a trusted proxy: the rightmost untrusted hop, not the (forgeable) leftmost.
        assert_eq!(limiter.client_ip(peer("10.9.9.9"), &headers), "198.51.100.4".parse::<IpAddr>().unwrap());
        assert_eq!(
            limiter.client_ip(peer("192.168.1.1"), &headers),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
        // Every hop trusted: the leftmost. A hop that does not parse: the last trusted one.
        assert_eq!(
            limiter.client_ip(peer("10.0.0.1"), &forwarded("10.0.0.3, 10.0.0.2")),
            "10.0.0.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            limiter.client_ip(peer("10.0.0.1"), &forwarded("junk, 10.0.0.2")),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
        // No header: the proxy itself.
        assert_eq!(
            limiter.client_ip(peer("10.0.0.1"), &HeaderMap::new()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        // An IPv4 peer seen as IPv4-mapped IPv6 is the same address.
        assert_eq!(
            limiter.client_ip(peer("::ffff:10.0.0.1"), &headers),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
    }
}
