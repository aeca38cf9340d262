//! A TCP listener that obeys the `refuse_connections` fault.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::Stream;
use tokio::net::{TcpListener, TcpStream};

use crate::Shared;
use crate::faults::Backend;

/// Accepts connections like a [`TcpListener`], but while the backend's fault says
/// `refuse_connections`, closes each new connection as soon as it is accepted. Connections
/// accepted earlier are not affected.
pub(crate) struct FaultyListener {
    inner: TcpListener,
    shared: Arc<Shared>,
    backend: Backend,
}

impl FaultyListener {
    pub(crate) fn new(inner: TcpListener, shared: Arc<Shared>, backend: Backend) -> Self {
        Self { inner, shared, backend }
    }

    /// The listener as the stream of connections tonic's server takes.
    pub(crate) fn into_incoming(self) -> impl Stream<Item = io::Result<TcpStream>> + Send {
        futures::stream::unfold(self, |mut listener| async move {
            let (stream, _) = axum::serve::Listener::accept(&mut listener).await;
            Some((Ok(stream), listener))
        })
    }
}

impl axum::serve::Listener for FaultyListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            // The `Listener` impl of `TcpListener` retries (with a pause) on accept errors.
            let (stream, peer) = axum::serve::Listener::accept(&mut self.inner).await;
            if self.shared.faults.get(self.backend).refuse_connections {
                tracing::debug!(backend = %self.backend, %peer, "devstack refused a connection");
                drop(stream);
                continue;
            }
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            return (stream, peer);
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
