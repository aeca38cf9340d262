//! Connections for long-lived gRPC streams, kept apart from the unary calls' connection.
//!
//! An HTTP/2 connection carries at most `SETTINGS_MAX_CONCURRENT_STREAMS` streams at once (the
//! server's or a proxy's cap: nginx's default is 128). A subscription holds its stream for as long
//! as the client listens, so on one shared connection enough subscriptions would fill the cap, and
//! every unary call behind them would queue until its deadline. So streams never use the unary
//! channel: they lease a place on a pool of stream connections, each carrying at most
//! `max_streams_per_connection` streams, and a stream that finds every connection full opens
//! another. Set the bound at or below the server's (or proxy's) cap; a stream beyond the cap of
//! its connection waits for a free stream, and fails with `BACKEND_TIMEOUT` when none frees up
//! within the call deadline, rather than hanging.
//!
//! A connection that no stream uses any more is closed, except the first, which stays (lazily
//! connected) for the next subscription.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tonic::transport::{Channel, Endpoint};

/// `max_streams_per_connection` unless configured: under nginx's default HTTP/2 cap (128), with
/// room to spare.
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: usize = 100;

/// Stream connections to one service. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub(crate) struct StreamPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoint: Endpoint,
    per_connection: usize,
    connections: Mutex<Vec<Arc<StreamConnection>>>,
}

/// One HTTP/2 connection of the pool and the streams it carries now.
#[derive(Debug)]
struct StreamConnection {
    channel: Channel,
    streams: AtomicUsize,
}

/// A place for one stream on one connection, held as long as the stream lives; dropping it frees
/// the place.
#[derive(Debug)]
pub(crate) struct StreamLease {
    connection: Arc<StreamConnection>,
}

impl Drop for StreamLease {
    fn drop(&mut self) {
        self.connection.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StreamPool {
    /// A pool opening its connections from `endpoint`, `per_connection` streams on each (at
    /// least 1).
    pub(crate) fn new(endpoint: Endpoint, per_connection: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                endpoint,
                per_connection: per_connection.max(1),
                connections: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A channel with room for one more stream, and the lease that holds that room: the first
    /// connection below the bound, or a new one when all are full.
    pub(crate) fn lease(&self) -> (Channel, StreamLease) {
        let mut connections = self.inner.connections.lock().unwrap_or_else(PoisonError::into_inner);
        // Close connections no stream uses (keeping the first); a lease in another thread holds
        // its own `Arc`, so a connection it still uses is never lost.
        let mut index = 0;
        connections.retain(|connection| {
            index += 1;
            index == 1 || connection.streams.load(Ordering::Acquire) > 0
        });
        let free = connections
            .iter()
            .find(|connection| connection.streams.load(Ordering::Acquire) < self.inner.per_connection)
            .cloned();
        let connection = free.unwrap_or_else(|| {
            let connection = Arc::new(StreamConnection {
                channel: self.inner.endpoint.connect_lazy(),
                streams: AtomicUsize::new(0),
            });
            connections.push(connection.clone());
            if connections.len() > 1 {
                tracing::debug!(
                    connections = connections.len(),
                    per_connection = self.inner.per_connection,
                    "every stream connection is full; opened another"
                );
            }
            connection
        });
        connection.streams.fetch_add(1, Ordering::AcqRel);
        (connection.channel.clone(), StreamLease { connection })
    }

    /// How many stream connections the pool holds now (connected or not).
    #[cfg(test)]
    fn connections(&self) -> usize {
        self.inner.connections.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(per_connection: usize) -> StreamPool {
        StreamPool::new(Endpoint::from_static("http://127.0.0.1:1"), per_connection)
    }

    #[tokio::test]
    async fn a_full_connection_opens_another_and_idle_extra_ones_close() {
        let pool = pool(2);
        let first: Vec<StreamLease> = (0..2).map(|_| pool.lease().1).collect();
        assert_eq!(pool.connections(), 1, "two streams fit one connection");
        let (_, third) = pool.lease();
        assert_eq!(pool.connections(), 2, "the third opens a second connection");
        assert!(!Arc::ptr_eq(&first[0].connection, &third.connection));
        assert!(Arc::ptr_eq(&first[0].connection, &first[1].connection));
        drop(third);
        drop(first);
        // The next lease finds the first connection free and drops the idle second one.
        let (_, again) = pool.lease();
        assert_eq!(pool.connections(), 1);
        assert_eq!(again.connection.streams.load(Ordering::Acquire), 1);
    }

    #[tokio::test]
    async fn a_freed_place_is_reused_before_a_new_connection_opens() {
        let pool = pool(1);
        let (_, one) = pool.lease();
        let (_, two) = pool.lease();
        assert_eq!(pool.connections(), 2);
        drop(one);
        let (_, three) = pool.lease();
        assert_eq!(pool.connections(), 2, "the first connection's place was free again");
        drop((two, three));
    }
}
