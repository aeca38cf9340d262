//! graphql-transport-ws, as its PROTOCOL.md (graphql-ws) defines it, run by Banyan: one loop per
//! connection reads the client's messages in order, and each operation runs in a task of its
//! own, cancelled by the client's `complete`. Operations go through the gateway's pipeline
//! (`crate::pipeline`, `Graphql::execute_stream`), so limits, ordering and masking apply as over
//! HTTP.
//!
//! - `connection_init` (payload absent, null or an object) identifies the caller; then, within
//!   the caller's connection cap, `connection_ack`. A second one closes 4429.
//! - `ping` is answered at any time with a `pong` echoing its payload; `pong` is accepted.
//! - `subscribe` before the acknowledgement closes 4401; with the id of an operation still running,
//!   4409. A document that does not parse, fails validation or breaks a limit gets one `error`
//!   message with the GraphQL errors and no `complete`; otherwise `next` per result, then
//!   `complete`. Over `websocket.max_subscriptions_per_connection` running operations, the
//!   `subscribe` gets an `error` (`TOO_MANY_SUBSCRIPTIONS`) and the connection stays up. A query
//!   or mutation past `websocket.operation_timeout` gets a `next` with an `OPERATION_TIMEOUT` error,
//!   then `complete`.
//! - Every other message, or a malformed one, closes 4400 (see [`Close`]).
//!
//! A subscription that turns out to be shareable (its resolver accepts the `ShareOffer` after
//! checking it) leaves its task and joins a shared execution ([`super::shared`]): from then on
//! the connection's writer sends its payloads from the connection's outbox, and this loop
//! re-checks its visibility on the credential re-check timer and ends it.
//!
//! When the server shuts down, each running operation gets `complete`, then the connection
//! closes with 1001 (`Server shutting down`).
//!
//! While open, the server sends a `ping` every `websocket.keepalive_interval` and closes (1001) a
//! connection that sent nothing since the previous one, and re-checks the credential every
//! `websocket.credential_recheck_interval`, closing with 4403 once it is refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Name, Variables};
use axum::extract::ws::{Message, WebSocket};
use banyan_resolvers::ServedLog;
use banyan_resolvers::shared_execution::visibility_refusal;
use banyan_sources::Caller;
use banyan_sources::domain::TemplateId;
use futures::stream::{BoxStream, SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::Instrument;

use super::close::Close;
use super::shared::{self, Ended, Membership, Outbox, Outgoing, Seed, ShareOffer, Subscriber};
use super::{
    CallerKey, ConnectionIdentity, ConnectionSlot, OperationScope, Upgrade, identify_connection,
    spend_rate_limit, with_routing,
};
use crate::app::AppState;
use crate::auth::AuthError;
use crate::persisted::{EXTENSION_KEY, PersistedError, PersistedQuery, Resolved};

/// Frames queued for the socket; operations wait when the client reads slower than they produce.
const OUTGOING_BUFFER: usize = 32;
/// How long the last frames (the close frame) may take to leave before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves one graphql-transport-ws connection until either side closes it, in a span of its own.
///
/// Not an `async fn`: the connection's state is built and boxed before the first poll, so the
/// future every open connection keeps holds pointers, not the application's handles, the
/// upgrade's headers and the socket (an `async fn` keeps its arguments in its state for its whole
/// life, beside whatever it moves them into; that doubled what an idle subscriber cost).
pub(super) fn serve(app: AppState, socket: WebSocket, upgrade: Upgrade) -> impl Future<Output = ()> {
    let request_id = upgrade.request_id.as_deref().unwrap_or_default();
    let span = tracing::debug_span!("websocket", protocol = "graphql-transport-ws", request_id);
    let (sink, incoming) = socket.split();
    let (out, frames) = mpsc::channel(OUTGOING_BUFFER);
    let (finished_tx, finished) = mpsc::unbounded_channel();
    let outbox = Arc::new(Outbox::default());
    let writer = tokio::spawn(write_frames(sink, frames, outbox.clone(), finished_tx.clone()));
    let connection = Box::new(Connection {
        app,
        upgrade,
        out,
        finished_tx,
        outbox,
        request_id: None,
        init_received: false,
        identity: None,
        slot: None,
        operations: HashMap::new(),
        generations: 0,
        heard_since_ping: true,
    });
    serve_connection(connection, incoming, finished, writer).instrument(span)
}

async fn serve_connection(
    mut connection: Box<Connection>,
    incoming: SplitStream<WebSocket>,
    finished: mpsc::UnboundedReceiver<Box<Finished>>,
    writer: JoinHandle<()>,
) {
    if let Some(close) = connection.run(incoming, finished).await {
        tracing::debug!(code = close.code(), reason = %close.reason(), "closing a WebSocket");
        let _ = connection.out.send(Box::new(close.frame())).await;
    }
    for running in connection.operations.values() {
        running.stop();
    }
    drop(connection);
    let abort = writer.abort_handle();
    if tokio::time::timeout(CLOSE_GRACE, writer).await.is_err() {
        abort.abort();
    }
}

/// Writes queued frames to the socket: the loop's and its operations' first, then the shared
/// executions' payloads (`outbox`), in the order each was queued; hands the end of a shared
/// subscription back to the loop once its payloads are written. Stops after a close frame, or
/// when the loop's queue ends.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<Box<Message>>,
    outbox: Arc<Outbox>,
    finished: mpsc::UnboundedSender<Box<Finished>>,
) {
    loop {
        let frame = match frames.try_recv() {
            Ok(frame) => *frame,
            Err(mpsc::error::TryRecvError::Disconnected) => return,
            Err(mpsc::error::TryRecvError::Empty) => match outbox.pop() {
                Some(Outgoing::Next(subscriber, payload)) => {
                    subscriber.dequeued();
                    if subscriber.is_cancelled() {
                        continue;
                    }
                    Message::Text(shared::next_frame(&subscriber, &payload).into())
                }
                Some(Outgoing::End(subscriber, ended)) => {
                    if !subscriber.is_cancelled() {
                        let _ = finished.send(Box::new(Finished {
                            id: subscriber.id.to_string(),
                            generation: subscriber.generation,
                            ending: Ending::Left(ended),
                        }));
                    }
                    continue;
                }
                None => {
                    tokio::select! {
                        frame = frames.recv() => match frame {
                            Some(frame) => *frame,
                            None => return,
                        },
                        () = outbox.ready() => continue,
                    }
                }
            },
        };
        let last = matches!(frame, Message::Close(_));
        if sink.send(frame).await.is_err() || last {
            return;
        }
    }
}

/// Why the loop stops: a close to send, or the client is gone.
enum End {
    Close(Close),
    Gone,
}

impl From<Close> for End {
    fn from(close: Close) -> Self {
        Self::Close(close)
    }
}

/// A running operation.
enum Running {
    /// Its own execution, in a task; for a subscription offered to share, until it has joined.
    Task {
        /// Tells this run from an earlier one under the same id.
        generation: u64,
        /// Aborted when the operation is completed or the connection ends (dropping it would not).
        task: JoinHandle<()>,
        /// When it may join a shared execution: cancelled with the operation, so that nothing
        /// queued for it is written after.
        subscriber: Option<Arc<Subscriber>>,
        /// Its shared execution let it go before the loop heard that it had joined.
        left: Option<Ended>,
    },
    /// A subscriber of a shared execution; dropping it leaves.
    Shared(Box<Membership>),
}

impl Running {
    fn generation(&self) -> u64 {
        match self {
            Self::Task { generation, .. } => *generation,
            Self::Shared(membership) => membership.subscriber.generation,
        }
    }

    /// Stops what runs for it, at once: its task is aborted, or its shared payloads still queued
    /// are dropped (it leaves its group when dropped).
    fn stop(&self) {
        match self {
            Self::Task { task, subscriber, .. } => {
                task.abort();
                if let Some(subscriber) = subscriber {
                    subscriber.cancel();
                }
            }
            Self::Shared(membership) => membership.subscriber.cancel(),
        }
    }
}

/// An operation's task is done: how the main loop ends it.
struct Finished {
    id: String,
    generation: u64,
    ending: Ending,
}

enum Ending {
    /// It ran (results were sent as `next`): `complete`.
    Complete,
    /// It never ran (parse, validation or a limit): one `error` with these GraphQL errors.
    Error(Vec<async_graphql::ServerError>),
    /// Checked, it joined a shared execution, which runs it from now on.
    Joined(Box<Membership>),
    /// Its shared execution let it go, and what was queued for it is written.
    Left(Ended),
}

/// The `subscribe` payload.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscribePayload {
    /// Absent only when the operation is sent by persisted id (`extensions.persistedQuery`),
    /// which the persisted-operations extension resolves as over HTTP.
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
    #[serde(default)]
    extensions: Option<Map<String, Value>>,
}

impl SubscribePayload {
    /// The payload carries its document's text, or a persisted id in its place.
    fn names_its_document(&self) -> bool {
        self.query.is_some()
            || self
                .extensions
                .as_ref()
                .is_some_and(|extensions| extensions.get(EXTENSION_KEY).is_some_and(Value::is_object))
    }
}

/// One connection's state, owned by its loop.
struct Connection {
    app: AppState,
    upgrade: Upgrade,
    /// Boxed, as `finished_tx`: a channel allocates its first block of 32 slots up front, for
    /// every connection (1.6 KiB of `Message`s, a quarter of that in boxes).
    out: mpsc::Sender<Box<Message>>,
    /// Boxed: a channel allocates its first block of 32 slots up front, for every connection.
    finished_tx: mpsc::UnboundedSender<Box<Finished>>,
    /// Payloads of shared executions for this connection's subscribers, which the writer sends.
    outbox: Arc<Outbox>,
    /// The id its operations' errors carry (`extensions.requestId`), set with the
    /// acknowledgement: one copy for every shared subscriber of the connection.
    request_id: Option<Arc<str>>,
    init_received: bool,
    /// Set with the acknowledgement; `None` inside for an anonymous caller.
    identity: Option<Option<Arc<ConnectionIdentity>>>,
    /// The connection counted against its caller, freed when it ends.
    slot: Option<ConnectionSlot>,
    operations: HashMap<String, Running>,
    generations: u64,
    /// The client sent something since the last keepalive ping.
    heard_since_ping: bool,
}

impl Connection {
    fn acknowledged(&self) -> bool {
        self.identity.is_some()
    }

    /// Reads and answers until the connection should end; `Some` when the server closes it.
    async fn run(
        &mut self,
        mut incoming: SplitStream<WebSocket>,
        mut finished: mpsc::UnboundedReceiver<Box<Finished>>,
    ) -> Option<Close> {
        let config = self.app.websockets.config.clone();
        let init_deadline = tokio::time::sleep(self.app.websocket_init_timeout);
        tokio::pin!(init_deadline);
        let mut keepalive = every(config.keepalive_interval);
        let mut recheck = every(config.credential_recheck_interval);
        let mut draining = std::pin::pin!(self.app.lifecycle.draining());
        // Each step is boxed: this loop's future lives as long as the connection, and a step
        // awaited in place would make it as large as the largest step (identifying the caller
        // through the monolith's client is tens of KiB) for every idle connection.
        loop {
            let step = tokio::select! {
                frame = incoming.next() => match frame {
                    // The client closed (tungstenite answers its close frame), or the socket failed.
                    None | Some(Ok(Message::Close(_)) | Err(_)) => Err(End::Gone),
                    Some(Ok(frame)) => {
                        self.heard_since_ping = true;
                        Box::pin(self.on_frame(frame)).await
                    }
                },
                () = &mut init_deadline, if !self.acknowledged() => Err(Close::InitTimeout.into()),
                Some(done) = finished.recv() => Box::pin(self.on_finished(*done)).await,
                () = tick(&mut keepalive), if self.acknowledged() => Box::pin(self.on_keepalive()).await,
                () = tick(&mut recheck), if self.acknowledged() => Box::pin(self.on_recheck()).await,
                () = &mut draining => Box::pin(self.on_shutdown()).await,
            };
            match step {
                Ok(()) => {}
                Err(End::Close(close)) => return Some(close),
                Err(End::Gone) => return None,
            }
        }
    }

    async fn on_frame(&mut self, frame: Message) -> Result<(), End> {
        let max = self.app.max_message_bytes;
        match frame {
            Message::Text(text) if text.len() > max => Err(Close::MessageTooBig.into()),
            Message::Text(text) => self.on_message(text.as_str()).await,
            Message::Binary(bytes) if bytes.len() > max => Err(Close::MessageTooBig.into()),
            Message::Binary(_) => Err(Close::Binary.into()),
            // WebSocket-level pings are answered by the socket itself.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Ok(()),
        }
    }

    async fn on_message(&mut self, text: &str) -> Result<(), End> {
        let message: Value = serde_json::from_str(text).map_err(|_| Close::NotJson)?;
        let Some(kind) = message.get("type").and_then(Value::as_str) else {
            return Err(Close::NoType.into());
        };
        match kind {
            "connection_init" => {
                let payload = optional_object(&message)?;
                self.on_init(payload).await
            }
            "ping" => {
                let payload = optional_object(&message)?;
                let pong = match payload {
                    Some(payload) => json!({ "type": "pong", "payload": payload }),
                    None => json!({ "type": "pong" }),
                };
                self.send(&pong).await
            }
            "pong" => optional_object(&message).map(drop).map_err(End::from),
            "subscribe" => {
                let id = operation_id(&message)?;
                let payload = message
                    .get("payload")
                    .cloned()
                    .and_then(|payload| serde_json::from_value::<SubscribePayload>(payload).ok())
                    .filter(SubscribePayload::names_its_document)
                    .ok_or(Close::BadSubscribePayload)?;
                if !self.acknowledged() {
                    return Err(Close::Unauthorized.into());
                }
                self.on_subscribe(id, payload).await
            }
            "complete" => {
                let id = operation_id(&message)?;
                if let Some(running) = self.operations.remove(&id) {
                    running.stop();
                }
                Ok(())
            }
            _ => Err(Close::UnexpectedType.into()),
        }
    }

    async fn on_init(&mut self, payload: Option<Value>) -> Result<(), End> {
        if self.init_received {
            return Err(Close::TooManyInitRequests.into());
        }
        self.init_received = true;
        let identity = identify_connection(&self.app, payload.unwrap_or(Value::Null), &self.upgrade)
            .await
            .map_err(Close::Refused)?;
        let caller = match &identity {
            Some(identity) => CallerKey::User(identity.caller.user_id),
            None => self.upgrade.peer.map_or(CallerKey::Unknown, CallerKey::Address),
        };
        spend_rate_limit(&self.app, identity.as_ref().map(|identity| &identity.caller), &self.upgrade)
            .await
            .map_err(|_| Close::RateLimited)?;
        self.slot = Some(self.app.websockets.admit(caller).ok_or(Close::TooManyConnections)?);
        self.request_id =
            identity.as_ref().and_then(|identity| identity.caller.request_id.as_deref()).map(Arc::from);
        self.identity = Some(identity.map(Arc::new));
        self.send(&json!({ "type": "connection_ack" })).await
    }

    async fn on_subscribe(&mut self, id: String, mut payload: SubscribePayload) -> Result<(), End> {
        if self.operations.contains_key(&id) {
            return Err(Close::SubscriberExists(id).into());
        }
        let caller = self.identity.as_ref().and_then(Option::as_ref).map(|identity| &identity.caller);
        spend_rate_limit(&self.app, caller, &self.upgrade).await.map_err(|_| Close::RateLimited)?;
        if self.operations.len() >= self.app.websockets.config.max_subscriptions_per_connection {
            let errors = json!([{
                "message": "too many operations on this connection; complete one first",
                "extensions": { "code": "TOO_MANY_SUBSCRIPTIONS" },
            }]);
            return self.send(&json!({ "id": id, "type": "error", "payload": errors })).await;
        }
        // A document sent by persisted id is filled in first, as over HTTP, so its type (hence
        // its deadline) is known; a refusal is the operation's `error`.
        let resolved = match resolve_persisted(&self.app, &mut payload).await {
            Ok(resolved) => resolved,
            Err(refusal) => {
                let errors =
                    json!([{ "message": refusal.to_string(), "extensions": { "code": refusal.code() } }]);
                return self.send(&json!({ "id": id, "type": "error", "payload": errors })).await;
            }
        };
        let deadline = match operation_type(&self.app, &payload) {
            Some(OperationType::Subscription) => None,
            _ => Some(self.app.websockets.config.operation_timeout),
        };
        let query = payload.query.unwrap_or_default();
        let variables = Variables::from_json(Value::Object(payload.variables.unwrap_or_default()));
        self.generations += 1;
        // A subscription of a signed-in caller may turn out to be shareable (its resolver says,
        // once it has checked it): what the shared execution would run is kept until then.
        let share = match (&deadline, self.identity.as_ref().and_then(Option::as_ref)) {
            (None, Some(identity)) if self.app.shared_subscriptions.enabled() => Some(Box::new(Share {
                app: self.app.clone(),
                offer: ShareOffer::new(),
                seed: Seed {
                    query: query.clone(),
                    operation_name: payload.operation_name.clone(),
                    variables: variables.clone(),
                    resolved: resolved.clone(),
                },
                subscriber: Subscriber::new(&id, self.generations, self.request_id.clone()),
                outbox: self.outbox.clone(),
                caller: identity.caller.clone().for_request(),
            })),
            _ => None,
        };
        let mut request = async_graphql::Request::new(query).variables(variables);
        if let Some(name) = payload.operation_name {
            request = request.operation_name(name);
        }
        request = request.data(resolved);
        if let Some(share) = &share {
            request = request.data(share.offer.clone());
        }
        // `x-banyan-admin-token` on the upgrade request grants introspection, as on HTTP.
        if let Some(grant) = crate::introspection::admin_grant(&self.upgrade.headers, &self.app.admin_access)
        {
            request = request.data(grant);
        }
        request.extensions = async_graphql::Extensions(
            payload
                .extensions
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(key, value)| Some((key, async_graphql::Value::from_json(value).ok()?)))
                .collect(),
        );
        let operation = match self.identity.as_ref().and_then(Option::as_ref) {
            Some(identity) => identity.scope(&self.app, request),
            None => OperationScope::bare(request),
        };
        let (stream, served) = operation.execute(&self.app.graphql, None);
        let subscriber = share.as_ref().map(|share| share.subscriber.clone());
        let operation = Operation {
            id: id.clone(),
            generation: self.generations,
            served,
            deadline,
            out: self.out.clone(),
            finished: self.finished_tx.clone(),
            share,
        };
        let task = tokio::spawn(operation.run(stream).in_current_span());
        self.operations
            .insert(id, Running::Task { generation: self.generations, task, subscriber, left: None });
        Ok(())
    }

    /// Ends a finished operation with `complete` or `error`, unless the client completed it
    /// already (and perhaps reused its id).
    async fn on_finished(&mut self, done: Finished) -> Result<(), End> {
        if self.operations.get(&done.id).is_none_or(|running| running.generation() != done.generation) {
            // A membership that arrives too late is dropped here, which leaves its group.
            return Ok(());
        }
        let Some(running) = self.operations.remove(&done.id) else { return Ok(()) };
        let message = match (done.ending, running) {
            (Ending::Complete, _) => json!({ "id": done.id, "type": "complete" }),
            (Ending::Error(errors), _) => json!({ "id": done.id, "type": "error", "payload": errors }),
            (Ending::Joined(membership), Running::Task { left: Some(ended), .. })
            | (Ending::Left(ended), Running::Shared(membership)) => {
                return self.left(*membership, ended).await;
            }
            (Ending::Joined(membership), _) => {
                self.operations.insert(done.id, Running::Shared(membership));
                return Ok(());
            }
            // Its group let it go before its task's word that it joined came: kept until then.
            (Ending::Left(ended), Running::Task { generation, task, subscriber, .. }) => {
                let task = Running::Task { generation, task, subscriber, left: Some(ended) };
                self.operations.insert(done.id, task);
                return Ok(());
            }
        };
        self.send(&message).await
    }

    /// A shared subscriber its group let go, once what was queued for it is written.
    async fn left(&mut self, membership: Membership, ended: Ended) -> Result<(), End> {
        match ended {
            Ended::Complete => {
                let id = membership.subscriber.id.to_string();
                drop(membership);
                self.send(&json!({ "id": id, "type": "complete" })).await
            }
            Ended::TooSlow { last_sequence } => {
                self.end_shared(membership, banyan_resolvers::shared_execution::too_slow(last_sequence)).await
            }
        }
    }

    /// Ends a shared subscriber with `error` (a `next` carrying it, as its own execution would
    /// have sent it), then `complete`; nothing queued for it is written after.
    async fn end_shared(&mut self, membership: Membership, error: async_graphql::Error) -> Result<(), End> {
        membership.subscriber.cancel();
        let response =
            self.app.graphql.mask(membership.plan.error_response(error), self.request_id.as_deref());
        let id = membership.subscriber.id.to_string();
        drop(membership);
        let payload = serde_json::to_string(&response).unwrap_or_else(|_| "null".to_owned());
        self.send_text(next_frame(&id, &payload)).await?;
        self.send(&json!({ "id": id, "type": "complete" })).await
    }

    /// The server is shutting down: every running operation stops and gets `complete` (so the
    /// client knows it ended, rather than seeing it cut), then the connection closes with 1001.
    async fn on_shutdown(&mut self) -> Result<(), End> {
        let mut ids: Vec<String> = self.operations.keys().cloned().collect();
        ids.sort();
        for id in ids {
            if let Some(running) = self.operations.remove(&id) {
                running.stop();
                // Once it has stopped it can send no `next` after the `complete`.
                if let Running::Task { task, .. } = running {
                    let _ = task.await;
                }
            }
            self.send(&json!({ "id": id, "type": "complete" })).await?;
        }
        Err(Close::ShuttingDown.into())
    }

    async fn on_keepalive(&mut self) -> Result<(), End> {
        if !self.heard_since_ping {
            return Err(Close::KeepaliveTimeout.into());
        }
        self.heard_since_ping = false;
        self.send(&json!({ "type": "ping" })).await
    }

    /// Asks again who the credential belongs to (the identity cache answers within its TTL). A
    /// refusal closes; a backend failure keeps the connection, as a blip should not end every
    /// socket, and the next re-check asks again.
    async fn on_recheck(&mut self) -> Result<(), End> {
        let Some(Some(identity)) = &self.identity else { return Ok(()) };
        let caller = &identity.caller;
        let request_id = Some(identity.request_id.clone());
        match self.app.auth.identify(Ok(Some(caller.credential.clone())), request_id).await {
            Ok(Some(now)) if now.user_id == caller.user_id => {}
            Ok(_) => return Err(Close::Refused(AuthError::InvalidCredential.refusal()).into()),
            Err(AuthError::Backend(_)) => {}
            Err(refused) => return Err(Close::Refused(refused.refusal()).into()),
        }
        self.recheck_shared().await
    }

    /// Re-checks, against the monolith, that the caller still sees every template of each of its
    /// shared subscriptions (which have no execution of their own to do it), as a subscription's
    /// own re-check does: one refused ends with its `NOT_FOUND` (or the credential's code).
    async fn recheck_shared(&mut self) -> Result<(), End> {
        let Some(Some(identity)) = &self.identity else { return Ok(()) };
        let shared: Vec<(String, u64, Arc<[TemplateId]>)> = self
            .operations
            .iter()
            .filter_map(|(id, running)| match running {
                Running::Shared(membership) => {
                    Some((id.clone(), membership.subscriber.generation, membership.plan.templates.clone()))
                }
                Running::Task { .. } => None,
            })
            .collect();
        if shared.is_empty() {
            return Ok(());
        }
        // On a budget of its own, as a subscription's re-check.
        let caller = identity.caller.clone().for_request();
        let sources = &self.app.sources;
        let refusals = futures::future::join_all(
            shared.iter().map(|(_, _, templates)| visibility_refusal(sources, &caller, templates)),
        )
        .await;
        for ((id, generation, _), refusal) in shared.into_iter().zip(refusals) {
            let Some(error) = refusal else { continue };
            if self.operations.get(&id).is_none_or(|running| running.generation() != generation) {
                continue;
            }
            if let Some(Running::Shared(membership)) = self.operations.remove(&id) {
                self.end_shared(*membership, error).await?;
            }
        }
        Ok(())
    }

    async fn send(&self, message: &Value) -> Result<(), End> {
        self.out.send(Box::new(Message::Text(message.to_string().into()))).await.map_err(|_| End::Gone)
    }

    /// Sends one frame of JSON text.
    async fn send_text(&self, frame: String) -> Result<(), End> {
        self.out.send(Box::new(Message::Text(frame.into()))).await.map_err(|_| End::Gone)
    }
}

/// What a subscription offered to share needs to join its shared execution.
struct Share {
    app: AppState,
    offer: ShareOffer,
    seed: Seed,
    subscriber: Arc<Subscriber>,
    outbox: Arc<Outbox>,
    caller: Caller,
}

/// An operation's task: sends its results as `next`, then tells the loop how it ended.
struct Operation {
    id: String,
    generation: u64,
    served: Option<ServedLog>,
    /// For queries and mutations: how long the result may take.
    deadline: Option<Duration>,
    out: mpsc::Sender<Box<Message>>,
    finished: mpsc::UnboundedSender<Box<Finished>>,
    /// Set for a subscription that may join a shared execution.
    share: Option<Box<Share>>,
}

impl Operation {
    async fn run(mut self, mut stream: BoxStream<'static, async_graphql::Response>) {
        let first = match self.deadline {
            Some(deadline) => tokio::time::timeout(deadline, stream.next()).await,
            None => Ok(self.first_of_subscription(&mut stream).await),
        };
        let ending = match first {
            Err(_elapsed) => {
                tracing::debug!(id = %self.id, "a WebSocket operation timed out");
                let timed_out = json!({ "data": null, "errors": [{
                    "message": "the operation did not finish in time",
                    "extensions": { "code": "OPERATION_TIMEOUT" },
                }] });
                if !self.next_text(&timed_out.to_string()).await {
                    return;
                }
                Ending::Complete
            }
            Ok(None) => {
                // Its execution ended with no result: it was checked and accepted the offer
                // to share (or it had no event to send, when it did not).
                let Some(share) = self.share.take() else { return self.finish(Ending::Complete) };
                let Some(plan) = share.offer.take() else { return self.finish(Ending::Complete) };
                drop(stream);
                let Share { app, seed, subscriber, outbox, caller, .. } = *share;
                match app.shared_subscriptions.join(&app, plan, seed, subscriber, outbox, &caller).await {
                    Ok(membership) => Ending::Joined(Box::new(membership)),
                    Err(failed) => {
                        let request_id = caller.request_id.as_deref();
                        let failed = app.graphql.mask(failed, request_id);
                        if !self.next(&failed).await {
                            return;
                        }
                        Ending::Complete
                    }
                }
            }
            Ok(Some(response)) if is_request_error(&response) => Ending::Error(response.errors),
            Ok(Some(response)) => {
                let mut response = Some(response);
                while let Some(result) = response {
                    let result = with_routing(result, self.served.as_ref());
                    if !self.next(&result).await {
                        return;
                    }
                    response = stream.next().await;
                }
                Ending::Complete
            }
        };
        self.finish(ending);
    }

    /// A subscription's first result. One offered to share lets go of what it kept for that as
    /// soon as its resolver declines (it may wait long for its first event).
    async fn first_of_subscription(
        &mut self,
        stream: &mut BoxStream<'static, async_graphql::Response>,
    ) -> Option<async_graphql::Response> {
        let Some(offer) = self.share.as_ref().map(|share| share.offer.clone()) else {
            return stream.next().await;
        };
        tokio::select! {
            first = stream.next() => first,
            () = offer.decided() => {
                if !offer.is_accepted() {
                    self.share = None;
                }
                stream.next().await
            }
        }
    }

    /// Tells the loop how it ended.
    fn finish(self, ending: Ending) {
        let _ = self.finished.send(Box::new(Finished { id: self.id, generation: self.generation, ending }));
    }

    /// Sends `response` in a `next`; false once the connection is gone.
    async fn next(&self, response: &async_graphql::Response) -> bool {
        let payload = serde_json::to_string(response).unwrap_or_else(|_| "null".to_owned());
        self.next_text(&payload).await
    }

    /// Sends a `next` carrying `payload`, JSON text; false once the connection is gone.
    async fn next_text(&self, payload: &str) -> bool {
        let frame = next_frame(&self.id, payload);
        self.out.send(Box::new(Message::Text(frame.into()))).await.is_ok()
    }
}

/// The `next` message of operation `id` carrying `payload` (JSON text), written as text so the
/// payload's objects keep the order of the selection set: through `serde_json::Value`, whose
/// maps sort their keys, they would not (`response_order` puts them in that order).
pub(super) fn next_frame(id: &str, payload: &str) -> String {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".to_owned());
    format!("{{\"id\":{id},\"type\":\"next\",\"payload\":{payload}}}")
}

/// Applies the persisted-operation rules (`crate::persisted`) to a `subscribe` payload: a
/// document sent by id gets its text; a refused one (unknown id, wrong hash, untrusted under
/// `enforce`) is the refusal.
async fn resolve_persisted(
    app: &AppState,
    payload: &mut SubscribePayload,
) -> Result<Resolved, PersistedError> {
    let reference = match payload.extensions.as_mut().and_then(|extensions| extensions.remove(EXTENSION_KEY))
    {
        None | Some(Value::Null) => None,
        Some(value) => Some(PersistedQuery::from_json(&value)?),
    };
    let query = payload.query.take().unwrap_or_default();
    let resolved = app.persisted.resolve(&query, payload.operation_name.as_deref(), reference).await?;
    payload.query = Some(resolved.query.as_deref().map_or(query, str::to_owned));
    Ok(resolved)
}

/// A response that is a request error in GraphQL-over-HTTP's sense: no data, and no error with a
/// path (parse, validation and limit errors have none; a resolver's error always has one).
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// The operation's type, when the document parses within the limits (what does not is left for
/// execution to report, with its code).
fn operation_type(app: &AppState, payload: &SubscribePayload) -> Option<OperationType> {
    let document = crate::limits::parse_bounded(payload.query.as_deref()?, &app.limits).ok()?;
    match (&document.operations, &payload.operation_name) {
        (DocumentOperations::Single(operation), _) => Some(operation.node.ty),
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(&Name::new(name)).map(|operation| operation.node.ty)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// A message's `payload`: absent or null is `None`; anything but an object is invalid.
fn optional_object(message: &Value) -> Result<Option<Value>, Close> {
    match message.get("payload") {
        None | Some(Value::Null) => Ok(None),
        Some(payload @ Value::Object(_)) => Ok(Some(payload.clone())),
        Some(_) => Err(Close::PayloadNotObject),
    }
}

/// A `subscribe` or `complete` message's `id`: a non-empty string.
fn operation_id(message: &Value) -> Result<String, Close> {
    match message.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(Close::NoId),
    }
}

/// A timer ticking every `period` from one period from now; none for a zero period.
fn every(period: Duration) -> Option<Interval> {
    (!period.is_zero()).then(|| {
        let mut interval = tokio::time::interval_at(Instant::now() + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        interval
    })
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_and_ids() {
        assert_eq!(optional_object(&json!({ "type": "ping" })), Ok(None));
        assert_eq!(optional_object(&json!({ "type": "ping", "payload": null })), Ok(None));
        assert_eq!(optional_object(&json!({ "payload": { "a": 1 } })), Ok(Some(json!({ "a": 1 }))));
        assert_eq!(optional_object(&json!({ "payload": "token" })), Err(Close::PayloadNotObject));
        assert_eq!(operation_id(&json!({ "id": "1" })), Ok("1".to_owned()));
        assert_eq!(operation_id(&json!({ "id": "" })), Err(Close::NoId));
        assert_eq!(operation_id(&json!({ "id": 1 })), Err(Close::NoId));
    }

    #[test]
    fn request_errors_have_no_data_and_no_path() {
        let error = || async_graphql::ServerError::new("Unknown field", None);
        let validation = async_graphql::Response::from_errors(vec![error()]);
        assert!(is_request_error(&validation));
        let mut field = async_graphql::Response::from_errors(vec![error()]);
        field.errors[0].path = vec![async_graphql::PathSegment::Field("me".to_owned())];
        assert!(!is_request_error(&field), "a resolver's error is a result, sent as next");
        assert!(!is_request_error(&async_graphql::Response::new(async_graphql::Value::Null)));
    }
}
