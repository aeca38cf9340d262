//! How a running gateway stops: what is still running, and the two moments of a shutdown.
//!
//! [`crate::RunningGateway::shutdown`] (on SIGTERM or Ctrl-C) turns `/readyz` to 503 and keeps
//! serving for `server.shutdown_delay`; then **drain** begins: the listener stops (the
//! connections the kernel had already completed are still taken and served), each HTTP
//! connection finishes the request it is serving and closes, and each WebSocket ends its
//! operations with `complete` and closes with 1001. What still runs when `server.shutdown_grace`
//! ends is **aborted** (its connection dropped) and counted.
//!
//! The counts here (requests in flight, open WebSockets, aborted at shutdown) are what the
//! metrics endpoint reads.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What is running in a gateway, and where its shutdown stands. Cheap to clone.
#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

struct Inner {
    /// What `/readyz` reports; cleared when shutdown begins.
    ready: Arc<AtomicBool>,
    /// Cancelled when the listener stops and everything open should finish.
    draining: CancellationToken,
    /// Cancelled at the end of `server.shutdown_grace`: what runs is dropped.
    aborting: CancellationToken,
    /// HTTP requests being handled now.
    requests: watch::Sender<usize>,
    /// HTTP connections open now (an upgraded WebSocket leaves this count for the next).
    connections: watch::Sender<usize>,
    /// WebSocket connections open now.
    websockets: watch::Sender<usize>,
    /// Requests and WebSockets aborted at the end of a shutdown's grace period.
    aborted: AtomicU64,
}

/// One of the things a [`Lifecycle`] counts, counted until dropped.
pub(crate) struct Running {
    count: watch::Sender<usize>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.count.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// What a shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Requests still running when `server.shutdown_grace` ended, and aborted.
    pub aborted_requests: usize,
    /// WebSocket connections still open when `server.shutdown_grace` ended, and dropped.
    pub aborted_websockets: usize,
}

impl ShutdownReport {
    /// Everything finished within the grace period.
    pub fn drained(&self) -> bool {
        self.aborted_requests == 0 && self.aborted_websockets == 0
    }
}

impl Lifecycle {
    /// A gateway serving, ready, with nothing running; `ready` is the flag `/readyz` reports.
    pub(crate) fn new(ready: Arc<AtomicBool>) -> Self {
        Self {
            inner: Arc::new(Inner {
                ready,
                draining: CancellationToken::new(),
                aborting: CancellationToken::new(),
                requests: watch::Sender::new(0),
                connections: watch::Sender::new(0),
                websockets: watch::Sender::new(0),
                aborted: AtomicU64::new(0),
            }),
        }
    }

    /// HTTP requests being handled now.
    pub fn in_flight_requests(&self) -> usize {
        *self.inner.requests.borrow()
    }

    /// WebSocket connections open now.
    pub fn open_websockets(&self) -> usize {
        *self.inner.websockets.borrow()
    }

    /// Requests and WebSocket connections aborted because a shutdown's grace period ended.
    pub fn aborted_at_shutdown(&self) -> u64 {
        self.inner.aborted.load(Ordering::Relaxed)
    }

    /// False once shutdown has begun.
    pub(crate) fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed)
    }

    /// Shutdown begins: `/readyz` answers 503 from now on.
    pub(crate) fn not_ready(&self) {
        self.inner.ready.store(false, Ordering::Relaxed);
    }

    /// The listener stops; connections and WebSockets finish what they are doing and close.
    pub(crate) fn drain(&self) {
        self.inner.draining.cancel();
    }

    /// Completes once drain has begun.
    pub(crate) fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.draining.clone().cancelled_owned()
    }

    /// Counts what is running now as aborted, and drops it; returns the counts.
    pub(crate) fn abort(&self) -> ShutdownReport {
        let report = ShutdownReport {
            aborted_requests: self.in_flight_requests(),
            aborted_websockets: self.open_websockets(),
        };
        let total = report.aborted_requests + report.aborted_websockets;
        self.inner.aborted.fetch_add(u64::try_from(total).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.inner.aborting.cancel();
        report
    }

    /// Completes once [`Lifecycle::abort`] was called (or the gateway was dropped).
    pub(crate) fn aborting(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.aborting.clone().cancelled_owned()
    }

    /// Drops everything still running, without counting it (the gateway was dropped, not shut
    /// down).
    pub(crate) fn drop_everything(&self) {
        self.inner.draining.cancel();
        self.inner.aborting.cancel();
    }

    /// Completes once no HTTP connection and no WebSocket is open.
    pub(crate) async fn idle(&self) {
        let mut connections = self.inner.connections.subscribe();
        let mut websockets = self.inner.websockets.subscribe();
        // Each wait returns at once when the count is 0 already; both are checked again after,
        // as a WebSocket upgraded from the last connection may open in between.
        loop {
            let _ = connections.wait_for(|n| *n == 0).await;
            let _ = websockets.wait_for(|n| *n == 0).await;
            if *connections.borrow() == 0 && *websockets.borrow() == 0 {
                return;
            }
        }
    }

    pub(crate) fn request(&self) -> Running {
        Self::count(&self.inner.requests)
    }

    pub(crate) fn connection(&self) -> Running {
        Self::count(&self.inner.connections)
    }

    /// One WebSocket connection, counted from its upgrade request (so a drain never finds
    /// nothing open between the upgrade and the session) until dropped.
    pub(crate) fn websocket_upgrade(&self) -> Running {
        Self::count(&self.inner.websockets)
    }

    /// Runs one WebSocket connection's `session`, counted by `open` while it runs, and dropped
    /// (closing the socket) if it still runs when a shutdown's grace period ends. The session
    /// comes boxed: this future lives as long as the connection, and a session held inline would
    /// be stored in it twice (the argument, then the `select!` it moves into).
    pub(crate) async fn websocket(&self, open: Running, session: futures::future::BoxFuture<'static, ()>) {
        let _open = open;
        tokio::select! {
            () = session => {}
            () = self.aborting() => {}
        }
    }

    fn count(count: &watch::Sender<usize>) -> Running {
        count.send_modify(|n| *n += 1);
        Running { count: count.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn abort_counts_what_runs_and_idle_waits_for_the_last_one() {
        let lifecycle = Lifecycle::new(Arc::new(AtomicBool::new(true)));
        let connection = lifecycle.connection();
        let requests = [lifecycle.request(), lifecycle.request()];
        assert_eq!(lifecycle.in_flight_requests(), 2);
        let report = lifecycle.abort();
        assert_eq!(report, ShutdownReport { aborted_requests: 2, aborted_websockets: 0 });
        assert_eq!(lifecycle.aborted_at_shutdown(), 2);
        drop(requests);
        assert_eq!(lifecycle.in_flight_requests(), 0);
        let idle = tokio::spawn({
            let lifecycle = lifecycle.clone();
            async move { lifecycle.idle().await }
        });
        drop(connection);
        tokio::time::timeout(std::time::Duration::from_secs(10), idle)
            .await
            .expect("idle once the last connection closed")
            .expect("the task ran");
    }
}
