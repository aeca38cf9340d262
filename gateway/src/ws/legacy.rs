//! The older `graphql-ws` subprotocol (subscriptions-transport-ws), served by async-graphql's
//! protocol handling as before; Banyan adds the identity check, the refusal's close code and
//! reason (with a coded `connection_error` first), the init timeout, per-operation scopes, and
//! the two `[websocket]` limits an old client must not bypass: connections per caller and the
//! credential re-check. The per-connection operation cap, keepalive and operation timeout are
//! graphql-transport-ws's ([`super::transport`]). At shutdown, each running operation gets
//! `complete`, then the connection closes with 1001, as over graphql-transport-ws.

use std::any::TypeId;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::{Data, Executor};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{Message, WebSocket};
use futures::stream::{BoxStream, SplitSink};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

use super::close::Close;
use super::{
    CallerKey, ConnectionIdentity, OperationScope, Upgrade, identify_connection, spend_rate_limit,
    with_routing,
};
use crate::app::AppState;
use crate::auth::{AuthError, AuthRefusal};
use banyan_sources::Caller;

/// A caller over `websocket.max_connections_per_caller`, as `connection_error` and close.
const TOO_MANY_CONNECTIONS: AuthRefusal = AuthRefusal {
    status: http::StatusCode::TOO_MANY_REQUESTS,
    close_code: 4429,
    code: "TOO_MANY_CONNECTIONS",
    message: super::close::TOO_MANY_CONNECTIONS,
};

/// A caller over its rate limit at `connection_init`, as `connection_error` and close.
const RATE_LIMITED: AuthRefusal = AuthRefusal {
    status: http::StatusCode::TOO_MANY_REQUESTS,
    close_code: 4429,
    code: crate::rate_limit::RATE_LIMITED,
    message: crate::rate_limit::RateLimited::MESSAGE,
};

/// Frames buffered between async-graphql and the socket.
const OUTGOING_BUFFER: usize = 16;

/// What the connection's two halves (async-graphql's protocol, and the frame writer) share.
#[derive(Default)]
struct ConnectionState {
    /// `connection_init` arrived.
    initialized: AtomicBool,
    /// The init timeout ended the connection.
    timed_out: AtomicBool,
    /// A re-check refused the connection's credential.
    revoked: Mutex<Option<AuthRefusal>>,
    /// The caller `connection_init` identified, for the re-check.
    caller: Mutex<Option<Caller>>,
    /// Why `connection_init` was refused, for the writer to say so.
    refusal: Mutex<Option<AuthRefusal>>,
    /// The server is shutting down: the writer completes what runs and closes with 1001.
    shutting_down: AtomicBool,
    /// Operations started and not yet ended (by the client's `stop`, or the server's `complete`
    /// or `error`), for the `complete` each gets at shutdown.
    running: Mutex<BTreeSet<String>>,
}

impl ConnectionState {
    fn refuse(&self, refusal: AuthRefusal) {
        *self.refusal.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(refusal);
    }

    fn refusal(&self) -> Option<AuthRefusal> {
        *self.refusal.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn revoked(&self) -> Option<AuthRefusal> {
        *self.revoked.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn caller(&self) -> Option<Caller> {
        self.caller.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows a message's effect on the running operations: `start` adds its id; the client's
    /// `stop` and the server's `complete` and `error` remove it.
    fn track(&self, frame: &Message) {
        let Message::Text(text) = frame else { return };
        let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else { return };
        let Some(id) = message["id"].as_str() else { return };
        match message["type"].as_str() {
            Some("start") => {
                self.running().insert(id.to_owned());
            }
            Some("stop" | "complete" | "error") => {
                self.running().remove(id);
            }
            _ => {}
        }
    }
}

/// Serves `graphql-ws` until either side closes. A client that has not sent `connection_init`
/// within `server.websocket_init_timeout` is disconnected, so idle sockets cannot pile up.
pub(super) async fn serve(app: AppState, socket: WebSocket, protocol: GraphQLProtocol, upgrade: Upgrade) {
    let state = Arc::new(ConnectionState::default());
    let (sink, stream) = socket.split();
    let give_up = {
        let state = state.clone();
        let init_timeout = app.websocket_init_timeout;
        async move {
            tokio::time::sleep(init_timeout).await;
            if state.initialized.load(Ordering::Acquire) {
                std::future::pending::<()>().await;
            }
            state.timed_out.store(true, Ordering::Release);
            tracing::debug!("closing a WebSocket that sent no connection_init");
        }
    };
    let recheck = recheck_credential(app.clone(), state.clone());
    let shutdown = {
        let state = state.clone();
        let draining = app.lifecycle.draining();
        async move {
            draining.await;
            state.shutting_down.store(true, Ordering::Release);
        }
    };
    // Ending the incoming stream ends the connection.
    let tracked = state.clone();
    let stream = stream.inspect(move |frame| {
        if let Ok(frame) = frame {
            tracked.track(frame);
        }
    });
    let ending = futures::future::select(
        Box::pin(shutdown),
        futures::future::select(Box::pin(give_up), Box::pin(recheck)),
    );
    let stream = stream.take_until(ending);
    // async-graphql writes into a channel, so its frames can be adjusted on the way out.
    let (outgoing, frames) = futures::channel::mpsc::channel(OUTGOING_BUFFER);
    let executor = OperationScopes { app: app.clone() };
    let init_state = state.clone();
    let graphql = GraphQLWebSocket::new_with_pair(outgoing, stream, executor, protocol)
        .on_connection_init(move |payload| {
            init_state.initialized.store(true, Ordering::Release);
            connection_data(app, payload, upgrade, init_state)
        })
        .serve();
    futures::join!(graphql, write_frames(sink, frames, &state));
}

/// Copies async-graphql's frames to the socket, except that a refused `connection_init` sends a
/// coded `connection_error` and closes with the refusal's close code and message (async-graphql
/// would close with 1002 and the error's message), and a socket ended by the init timeout gets a
/// close frame saying so.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: futures::channel::mpsc::Receiver<Message>,
    state: &ConnectionState,
) {
    while let Some(frame) = frames.next().await {
        if let Some(refusal) = state.refusal()
            && is_init_failure(&frame)
        {
            let error = json!({
                "type": "connection_error",
                "payload": { "message": refusal.message, "extensions": { "code": refusal.code } },
            });
            let _ = sink.send(Message::Text(error.to_string().into())).await;
            let _ = sink.send(Close::Refused(refusal).frame()).await;
            return;
        }
        state.track(&frame);
        if sink.send(frame).await.is_err() {
            return;
        }
    }
    if state.shutting_down.load(Ordering::Acquire) {
        // Taken out first, so the lock is not held across a send.
        let running = std::mem::take(&mut *state.running());
        for id in running {
            let complete = json!({ "type": "complete", "id": id });
            if sink.send(Message::Text(complete.to_string().into())).await.is_err() {
                return;
            }
        }
        let _ = sink.send(Close::ShuttingDown.frame()).await;
    } else if state.timed_out.load(Ordering::Acquire) {
        let _ = sink.send(Close::InitTimeout.frame()).await;
    } else if let Some(refusal) = state.revoked() {
        let _ = sink.send(Close::Refused(refusal).frame()).await;
    }
}

/// Every `websocket.credential_recheck_interval`, asks again who the caller is (through the
/// identity cache); returns once the credential is refused, so the connection ends with 4403. A
/// backend failure keeps the connection, as over graphql-transport-ws.
async fn recheck_credential(app: AppState, state: Arc<ConnectionState>) {
    let period = app.websockets.config.credential_recheck_interval;
    if period.is_zero() {
        return std::future::pending().await;
    }
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(caller) = state.caller() else { continue };
        let refusal =
            match app.auth.identify(Ok(Some(caller.credential.clone())), caller.request_id.clone()).await {
                Ok(Some(now)) if now.user_id == caller.user_id => continue,
                Err(AuthError::Backend(_)) => continue,
                Ok(_) => AuthError::InvalidCredential.refusal(),
                Err(refused) => refused.refusal(),
            };
        *state.revoked.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(refusal);
        return;
    }
}

/// The frame async-graphql sends when `connection_init` fails: a `connection_error` message.
fn is_init_failure(frame: &Message) -> bool {
    match frame {
        Message::Close(_) => true,
        Message::Text(text) => serde_json::from_str::<Value>(text.as_str())
            .is_ok_and(|message| message["type"] == "connection_error"),
        _ => false,
    }
}

async fn connection_data(
    app: AppState,
    payload: Value,
    upgrade: Upgrade,
    state: Arc<ConnectionState>,
) -> async_graphql::Result<Data> {
    let refuse = |refusal: AuthRefusal| {
        state.refuse(refusal);
        Err(async_graphql::Error::new(refusal.message))
    };
    let identity = match identify_connection(&app, payload, &upgrade).await {
        Ok(identity) => identity,
        Err(refusal) => return refuse(refusal),
    };
    let caller = match &identity {
        Some(identity) => CallerKey::User(identity.caller.user_id),
        None => upgrade.peer.map_or(CallerKey::Unknown, CallerKey::Address),
    };
    if spend_rate_limit(&app, identity.as_ref().map(|identity| &identity.caller), &upgrade).await.is_err() {
        return refuse(RATE_LIMITED);
    }
    let Some(slot) = app.websockets.admit(caller) else { return refuse(TOO_MANY_CONNECTIONS) };
    let mut data = Data::default();
    // Session data lives as long as the connection, and frees its place when it ends.
    data.insert(slot);
    if let Some(identity) = identity {
        *state.caller.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(identity.caller.clone());
        data.insert(identity);
    }
    Ok(data)
}

/// The schema, giving each WebSocket operation its own [`banyan_resolvers::RequestScope`].
#[derive(Clone)]
struct OperationScopes {
    app: AppState,
}

impl Executor for OperationScopes {
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        self.app.graphql.execute(request).await
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let session_data = session_data.unwrap_or_default();
        let identity = session_data
            .get(&TypeId::of::<ConnectionIdentity>())
            .and_then(|data| data.downcast_ref::<ConnectionIdentity>());
        let operation = match identity {
            Some(identity) => identity.scope(&self.app, request),
            None => OperationScope::bare(request),
        };
        let (stream, served) = operation.execute(&self.app.graphql, Some(session_data));
        match served {
            None => stream,
            Some(log) => stream.map(move |response| with_routing(response, Some(&log))).boxed(),
        }
    }
}
