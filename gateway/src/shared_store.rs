//! The store replicas share, in Redis (`[redis]`): the automatic persisted queries registered
//! through any replica, and each caller's rate-limit bucket, so N replicas behind a load balancer
//! act as one gateway. Without `[redis] url`, each store stays in the process.
//!
//! Redis is a help, never a dependency: the gateway starts without it (connections open lazily
//! and reopen by themselves), every command has a deadline (`redis.command_timeout`), and a
//! failed command degrades its store as that store's callers decide (APQ: "not found", so the
//! client sends the full query; rate limits: `rate_limit.on_store_error`). Failures are counted
//! (`banyan_redis_errors_total{store}`) and logged at most once a second per store.
//!
//! Connections: `redis.connections` multiplexed connections (redis-rs's `ConnectionManager`),
//! taken in turn. A multiplexed connection pipelines every caller's commands, so a handful
//! serves thousands of requests a second; more only help when one connection's socket is the
//! bottleneck.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::RedisConfig;

/// Which store a command served (the metric's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Store {
    /// Automatic persisted queries.
    Apq,
    /// Rate-limit buckets.
    RateLimit,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Self::Apq => "apq",
            Self::RateLimit => "rate_limit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
}

/// Why a command did not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refused the command or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within `redis.command_timeout`.
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
    /// The answer was not what the command returns.
    #[error("redis: unexpected answer {0:?}")]
    Unexpected(String),
}

/// One caller's bucket, refilled from Redis's own clock (every replica then agrees on time), in
/// one atomic step: refill by the time since the last update, spend one token when asked and
/// there is one, store, and return the wait (seconds) until a token is there (0 when admitted).
/// Numbers go through strings: Lua's numbers are doubles, Redis's integer replies would
/// truncate them. The key expires once the bucket would be full again.
const TOKEN_BUCKET: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local spend = ARGV[3] == '1'
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then
  if spend then tokens = tokens - 1 end
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'updated', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait)
";

/// The shared store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SharedStore(Arc<Inner>);

struct Inner {
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    prefix: String,
    command_timeout: Duration,
    token_bucket: redis::Script,
    errors: Family<StoreLabels, Counter>,
    /// When the gateway started, and the second (since then) each store last logged a failure.
    started: Instant,
    last_logged: [AtomicU64; 2],
}

impl SharedStore {
    /// The store `config` names, or `None` without `redis.url`. Connects lazily: Redis need not
    /// be up when the gateway starts.
    pub(crate) fn new(config: &RedisConfig) -> Result<Option<Self>, StoreError> {
        if !config.is_enabled() {
            return Ok(None);
        }
        let client = redis::Client::open(config.url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            // One quick retry per reconnection: a request waits for Redis at most about a
            // command deadline, whatever Redis's state.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let connections = (0..config.connections)
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Self(Arc::new(Inner {
            connections,
            next: AtomicUsize::new(0),
            prefix: config.key_prefix.clone(),
            command_timeout: config.command_timeout,
            token_bucket: redis::Script::new(TOKEN_BUCKET),
            errors: Family::default(),
            started: Instant::now(),
            last_logged: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
        }))))
    }

    /// Adds `banyan_redis_errors_total` to a gateway's registry.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "banyan_redis_errors",
            "Redis commands that failed or timed out, by the store they served (apq, rate_limit); each degraded that store for one request",
            self.0.errors.clone(),
        );
    }

    fn connection(&self) -> ConnectionManager {
        let index = self.0.next.fetch_add(1, Ordering::Relaxed) % self.0.connections.len();
        self.0.connections[index].clone()
    }

    fn key(&self, store: Store, key: &str) -> String {
        format!("{}{}:{key}", self.0.prefix, store.name())
    }

    /// Runs `command` under the command deadline; a failure is counted and logged (rate-limited).
    async fn run<T>(
        &self,
        store: Store,
        command: impl Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(self.0.command_timeout, command).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => StoreError::Redis(error),
            Err(_) => StoreError::Timeout(self.0.command_timeout),
        };
        self.0.errors.get_or_create(&StoreLabels { store: store.name() }).inc();
        let second = self.0.started.elapsed().as_secs();
        let slot = &self.0.last_logged[store as usize];
        if slot.swap(second, Ordering::Relaxed) != second {
            tracing::warn!(store = store.name(), error = %result, "shared store unavailable; degrading");
        }
        Err(result)
    }

    /// The APQ document registered under `hash`, if any.
    pub(crate) async fn apq_get(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let key = self.key(Store::Apq, hash);
        let mut connection = self.connection();
        self.run(Store::Apq, async move { redis::cmd("GET").arg(key).query_async(&mut connection).await })
            .await
    }

    /// Registers an APQ document for `ttl`.
    pub(crate) async fn apq_set(&self, hash: &str, text: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = self.key(Store::Apq, hash);
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut connection = self.connection();
        let text = text.to_owned();
        self.run(Store::Apq, async move {
            redis::cmd("SET")
                .arg(key)
                .arg(text)
                .arg("PX")
                .arg(millis)
                .query_async::<()>(&mut connection)
                .await
        })
        .await
    }

    /// Refills `caller`'s bucket (`rate` tokens a second, at most `burst`), spends a token when
    /// `spend` and one is there, and returns the wait until one is there (zero when admitted).
    pub(crate) async fn token_bucket(
        &self,
        caller: &str,
        rate: f64,
        burst: f64,
        spend: bool,
    ) -> Result<Duration, StoreError> {
        let key = self.key(Store::RateLimit, caller);
        let mut connection = self.connection();
        let script = self.0.token_bucket.clone();
        let wait: String = self
            .run(Store::RateLimit, async move {
                script
                    .key(key)
                    .arg(rate.to_string())
                    .arg(burst.to_string())
                    .arg(if spend { "1" } else { "0" })
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        let seconds: f64 = wait.parse().map_err(|_| StoreError::Unexpected(wait.clone()))?;
        Duration::try_from_secs_f64(seconds).map_err(|_| StoreError::Unexpected(wait))
    }
}
