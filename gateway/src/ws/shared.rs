//! One execution shared by the graphql-transport-ws subscribers of one operation
//! (`subscriptions.share_execution`).
//!
//! A subscriber is checked on its own first: its `subscribe` runs its own execution, as every
//! operation does (persisted operations, limits, validation, the arguments, the visibility of
//! each template to this caller), with a [`ShareOffer`] in its data. When the payload cannot
//! depend on the caller, the resolver accepts the offer (a [`SharePlan`]: the sorted templates
//! and the executed selection, see `banyan_resolvers::shared_execution`) and that execution ends.
//! The subscriber then joins the [`Group`] of its plan: one execution of the operation over one
//! feed of the event store's shared stream, whose each response is serialized once and queued,
//! as the same `Arc`, on every member's connection.
//!
//! **What a member holds**: its [`Subscriber`] (id, count of queued payloads, cancelled), its
//! place in the group, its connection's entry (a [`Membership`]). No task, no execution, no
//! timer: its connection's writer sends its payloads (from the connection's [`Outbox`]), and its
//! connection's loop re-checks its visibility on the connection's credential re-check timer
//! (`websocket.credential_recheck_interval`, the subscription re-check's interval too).
//!
//! **Order.** A member joins under the group's lock, which is also where payloads are queued, so
//! it receives every payload produced after its join, in order, each once. It starts where the
//! group stands (the sequence of its last payload), and never before the group's feed was open.
//!
//! **A slow member** is one with `subscriptions.subscriber_buffer` payloads queued and not yet
//! written: it is detached (the group never waits), its connection writes what it has queued,
//! then it ends with `SUBSCRIBER_TOO_SLOW` and the last sequence queued for it, exactly as an
//! execution of its own would.
//!
//! **Ending.** The last member leaving (`complete`, the connection gone, overflow, a re-check)
//! aborts the group's task, which drops its execution and with it the feed (the event store's
//! stream when no other feed shares it). When the execution ends (the event store failed for
//! good), every member gets its last payload (the error) and `complete`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_graphql::Variables;
use banyan_resolvers::shared_execution::{SharePlan, SharedFeed, feed_failed};
use banyan_sources::domain::TemplateId;
use banyan_sources::loaders::BatchScheduler;
use banyan_sources::{BackendMetrics, Caller, SharedSubscriberGuard};
use futures::StreamExt;
use futures::stream::BoxStream;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::app::AppState;
use crate::error_masking::RequestId;
use crate::introspection::IntrospectionGrant;
use crate::metrics::SubscriptionUnit;
use crate::persisted::Resolved;

pub(crate) use banyan_resolvers::shared_execution::ShareOffer;

/// The groups of one gateway. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SharedSubscriptions(Arc<Registry>);

struct Registry {
    /// `subscriptions.share_execution` (and `share_upstream`, which it needs).
    enabled: bool,
    /// `subscriptions.subscriber_buffer`: payloads queued for one member at most.
    buffer: usize,
    groups: Mutex<HashMap<GroupKey, Arc<Group>>>,
    /// Numbers groups, for the request id of their execution's log lines.
    opened: AtomicU64,
    metrics: BackendMetrics,
    /// `banyan_subscriptions_active`, where each member counts (its execution does not).
    running: Gauge,
}

/// What a shared execution's payloads depend on: the sorted templates, and the root field's
/// response key with what it selects of each event.
type GroupKey = (Arc<[TemplateId]>, Arc<str>);

/// One shared execution and its members.
struct Group {
    key: GroupKey,
    /// `banyan-shared-<n>`: its execution's request id in the log.
    name: String,
    state: Mutex<GroupState>,
}

#[derive(Default)]
struct GroupState {
    members: HashMap<u64, Member>,
    next_member: u64,
    /// The sequence of the event of the last payload queued (0 before the first).
    last_sequence: u64,
    /// No longer in the registry: its task is stopping or stopped.
    closed: bool,
    task: Option<AbortHandle>,
}

/// A member as its group sees it.
struct Member {
    subscriber: Arc<Subscriber>,
    outbox: Arc<Outbox>,
    /// The sequence of the last payload queued for it (or where it joined).
    last_sequence: u64,
}

/// One subscription as its frames see it: shared by its connection's entry, its group and its
/// queued payloads.
pub(super) struct Subscriber {
    /// The operation's id on its connection.
    pub(super) id: Box<str>,
    /// Tells this run of the id from an earlier one.
    pub(super) generation: u64,
    /// The id its errors carry (`extensions.requestId`): the connection's.
    request_id: Option<Arc<str>>,
    /// Payloads queued on the connection and not yet written.
    queued: AtomicUsize,
    /// Completed, re-checked out or shut down: nothing more is written for it.
    cancelled: AtomicBool,
}

impl Subscriber {
    pub(super) fn new(id: &str, generation: u64, request_id: Option<Arc<str>>) -> Arc<Self> {
        Arc::new(Self {
            id: id.into(),
            generation,
            request_id,
            queued: AtomicUsize::new(0),
            cancelled: AtomicBool::new(false),
        })
    }

    /// Nothing more is written for it (what is queued is dropped by the writer).
    pub(super) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// One of its payloads left the queue (written, or dropped as it was cancelled).
    pub(super) fn dequeued(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a connection's writer sends besides the loop's own frames: shared payloads for its
/// members, in the order the groups queued them. Nothing is allocated until the first one.
#[derive(Default)]
pub(super) struct Outbox {
    queue: Mutex<VecDeque<Outgoing>>,
    ready: Notify,
}

impl Outbox {
    fn push(&self, outgoing: Outgoing) {
        lock(&self.queue).push_back(outgoing);
        self.ready.notify_one();
    }

    /// The next thing to send, if any.
    pub(super) fn pop(&self) -> Option<Outgoing> {
        lock(&self.queue).pop_front()
    }

    /// Resolves once something was pushed since the last call (or is waiting).
    pub(super) async fn ready(&self) {
        self.ready.notified().await;
    }
}

/// One item of an [`Outbox`].
pub(super) enum Outgoing {
    /// A `next` with a shared payload.
    Next(Arc<Subscriber>, Payload),
    /// The group let go of this subscriber: after the payloads before, its connection ends it.
    End(Arc<Subscriber>, Ended),
}

/// Why a group let go of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// The execution ended (its last payload said why, if it failed): `complete`.
    Complete,
    /// Its buffer filled: `SUBSCRIBER_TOO_SLOW` with this last sequence, then `complete`.
    TooSlow { last_sequence: u64 },
}

/// One response of a shared execution, serialized once.
#[derive(Clone)]
pub(super) struct Payload(Arc<PayloadText>);

struct PayloadText {
    /// The response as JSON, its objects in the order of the selection set.
    json: Box<str>,
    /// A response with errors, kept: its errors carry the group's request id, replaced by each
    /// subscriber's when written.
    with_errors: Option<async_graphql::Response>,
}

impl Payload {
    /// `response`, serialized once for every member.
    pub(super) fn new(response: async_graphql::Response) -> Self {
        let json = serde_json::to_string(&response).unwrap_or_else(|_| "null".to_owned()).into();
        let with_errors = (!response.errors.is_empty()).then_some(response);
        Self(Arc::new(PayloadText { json, with_errors }))
    }
}

/// The `next` frame of `payload` for `subscriber` ([`super::transport::next_frame`]): the shared
/// text is copied, unless the response carries errors, which get the subscriber's own request id.
pub(super) fn next_frame(subscriber: &Subscriber, payload: &Payload) -> String {
    let Some(response) = &payload.0.with_errors else {
        return super::transport::next_frame(&subscriber.id, &payload.0.json);
    };
    // `Response` is not `Clone`: a copy of what it serializes.
    let mut copy = async_graphql::Response::new(response.data.clone());
    copy.extensions = response.extensions.clone();
    copy.errors = response.errors.clone();
    for error in &mut copy.errors {
        let Some(extensions) = error.extensions.as_mut() else { continue };
        match &subscriber.request_id {
            Some(id) => extensions.set("requestId", &**id),
            None => extensions.unset("requestId"),
        }
    }
    let json = serde_json::to_string(&copy).unwrap_or_else(|_| "null".to_owned());
    super::transport::next_frame(&subscriber.id, &json)
}

/// What a member's connection keeps of it; dropping it leaves the group.
pub(super) struct Membership {
    registry: SharedSubscriptions,
    group: Arc<Group>,
    member: u64,
    pub(super) subscriber: Arc<Subscriber>,
    /// Its plan, its templates and selection shared with the group's key.
    pub(super) plan: SharePlan,
    _shared: SharedSubscriberGuard,
    _running: SubscriptionUnit,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.registry.leave(&self.group, self.member);
    }
}

/// What the shared execution of a new group runs: the first subscriber's operation.
pub(super) struct Seed {
    pub(super) query: String,
    pub(super) operation_name: Option<String>,
    pub(super) variables: Variables,
    pub(super) resolved: Resolved,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held; a poisoned one still holds consistent state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SharedSubscriptions {
    pub(crate) fn new(enabled: bool, buffer: usize, metrics: BackendMetrics, running: Gauge) -> Self {
        Self(Arc::new(Registry {
            enabled,
            buffer: buffer.max(1),
            groups: Mutex::default(),
            opened: AtomicU64::new(0),
            metrics,
            running,
        }))
    }

    /// Whether subscriptions are offered to share an execution.
    pub(super) fn enabled(&self) -> bool {
        self.0.enabled
    }

    /// Makes `subscriber` a member of the group of `plan`, opening the group (its feed, then its
    /// execution of `seed`) when there is none. A feed that cannot be opened is the
    /// subscriber's error, at its root field, not yet masked.
    pub(super) async fn join(
        &self,
        app: &AppState,
        mut plan: SharePlan,
        seed: Seed,
        subscriber: Arc<Subscriber>,
        outbox: Arc<Outbox>,
        caller: &Caller,
    ) -> Result<Membership, async_graphql::Response> {
        let key: GroupKey = (plan.templates.clone(), plan.selection.clone());
        let existing = lock(&self.0.groups).get(&key).cloned();
        if let Some(group) = existing
            && let Some(membership) = self.add(&group, &mut plan, &subscriber, &outbox)
        {
            return Ok(membership);
        }
        // Opened before the group exists, so that its members never wait for it.
        let events = Box::pin(app.sources.events.subscribe_for_shared_execution(caller, &key.0))
            .await
            .map_err(|error| plan.error_response(feed_failed(error)))?;
        let mut groups = lock(&self.0.groups);
        // Another subscriber of the same plan may have opened it meanwhile: join that one (this
        // feed is dropped, after the lock).
        let existing = groups.get(&key).cloned();
        if let Some(group) = existing
            && let Some(membership) = self.add(&group, &mut plan, &subscriber, &outbox)
        {
            drop(groups);
            drop(events);
            return Ok(membership);
        }
        let n = self.0.opened.fetch_add(1, Ordering::Relaxed);
        let group =
            Arc::new(Group { key: key.clone(), name: format!("banyan-shared-{n}"), state: Mutex::default() });
        groups.insert(key, group.clone());
        let feed = SharedFeed::new(events, 0);
        let mut request = async_graphql::Request::new(seed.query).variables(seed.variables);
        if let Some(name) = seed.operation_name {
            request = request.operation_name(name);
        }
        // Registered (APQ) by the subscriber's own execution already.
        let resolved = Resolved { register: None, ..seed.resolved };
        request = request.data(resolved).data(feed.clone()).data(RequestId(group.name.clone()));
        // Its document passed the introspection policy for the subscriber that brought it (its
        // other operations may select `__schema`, allowed to that caller), and what it executes
        // is events' fields: the same document must not be refused here.
        request = request.data(IntrospectionGrant);
        let responses = BatchScheduler::new().drive_stream(app.graphql.execute_stream(request, None)).boxed();
        let span =
            tracing::debug_span!("shared_subscription", group = %group.name, templates = group.key.0.len());
        let task = tokio::spawn(self.clone().run(group.clone(), responses, feed).instrument(span));
        let membership = {
            let mut state = lock(&group.state);
            state.task = Some(task.abort_handle());
            drop(state);
            self.add(&group, &mut plan, &subscriber, &outbox)
        };
        drop(groups);
        tracing::debug!(group = %group.name, "a shared subscription execution started");
        // A group just made is open: `add` fails only on a closed one.
        membership.ok_or_else(|| plan.error_response(async_graphql::Error::new("the shared execution ended")))
    }

    /// Adds a member to `group` unless it is closed.
    fn add(
        &self,
        group: &Arc<Group>,
        plan: &mut SharePlan,
        subscriber: &Arc<Subscriber>,
        outbox: &Arc<Outbox>,
    ) -> Option<Membership> {
        let mut state = lock(&group.state);
        if state.closed {
            return None;
        }
        let member = state.next_member;
        state.next_member += 1;
        let last_sequence = state.last_sequence;
        state
            .members
            .insert(member, Member { subscriber: subscriber.clone(), outbox: outbox.clone(), last_sequence });
        drop(state);
        // One copy of the key for the group and all its members.
        plan.templates = group.key.0.clone();
        plan.selection = group.key.1.clone();
        Some(Membership {
            registry: self.clone(),
            group: group.clone(),
            member,
            subscriber: subscriber.clone(),
            plan: plan.clone(),
            _shared: self.0.metrics.shared_subscriber(),
            _running: SubscriptionUnit::enter(&self.0.running),
        })
    }

    /// The group's task: its execution's responses, each serialized once and queued for every
    /// member, until it ends or loses its last member.
    async fn run(
        self,
        group: Arc<Group>,
        mut responses: BoxStream<'static, async_graphql::Response>,
        feed: SharedFeed,
    ) {
        let _counted = self.0.metrics.shared_execution();
        while let Some(response) = responses.next().await {
            let payload = Payload::new(response);
            if !self.deliver(&group, &payload, feed.last_sequence()) {
                return;
            }
        }
        self.end(&group);
    }

    /// Queues `payload` for every member; detaches those whose buffer is full. False once the
    /// group has no member left (it is then closed).
    fn deliver(&self, group: &Arc<Group>, payload: &Payload, sequence: u64) -> bool {
        let buffer = self.0.buffer;
        let mut state = lock(&group.state);
        if state.closed {
            return false;
        }
        state.last_sequence = state.last_sequence.max(sequence);
        let (mut delivered, mut overflowed) = (0_u64, 0_u64);
        state.members.retain(|_, member| {
            if member.subscriber.is_cancelled() {
                return false;
            }
            if member.subscriber.queued.load(Ordering::Acquire) >= buffer {
                let ended = Ended::TooSlow { last_sequence: member.last_sequence };
                member.outbox.push(Outgoing::End(member.subscriber.clone(), ended));
                overflowed += 1;
                return false;
            }
            member.subscriber.queued.fetch_add(1, Ordering::AcqRel);
            member.last_sequence = sequence;
            member.outbox.push(Outgoing::Next(member.subscriber.clone(), payload.clone()));
            delivered += 1;
            true
        });
        let empty = state.members.is_empty();
        drop(state);
        if overflowed > 0 {
            tracing::debug!(group = %group.name, overflowed, "shared subscribers ended as too slow");
            (0..overflowed).for_each(|_| self.0.metrics.subscriber_overflowed());
        }
        if payload.0.with_errors.is_none() && delivered > 1 {
            // Resolved once by the shared execution, for every member.
            self.0.metrics.subscription_events_reused(delivered - 1);
        }
        !(empty && self.retire(group))
    }

    /// The execution ended: every member gets `complete` after what is queued for it.
    fn end(&self, group: &Arc<Group>) {
        let mut groups = lock(&self.0.groups);
        let mut state = lock(&group.state);
        state.closed = true;
        for (_, member) in state.members.drain() {
            member.outbox.push(Outgoing::End(member.subscriber, Ended::Complete));
        }
        if groups.get(&group.key).is_some_and(|current| Arc::ptr_eq(current, group)) {
            groups.remove(&group.key);
        }
        tracing::debug!(group = %group.name, "a shared subscription execution ended");
    }

    /// Closes `group` if it has no member; whether it did (or it was closed already).
    fn retire(&self, group: &Arc<Group>) -> bool {
        let mut groups = lock(&self.0.groups);
        let mut state = lock(&group.state);
        if state.closed {
            return true;
        }
        if !state.members.is_empty() {
            return false;
        }
        state.closed = true;
        if let Some(task) = state.task.take() {
            task.abort();
        }
        if groups.get(&group.key).is_some_and(|current| Arc::ptr_eq(current, group)) {
            groups.remove(&group.key);
        }
        true
    }

    fn leave(&self, group: &Arc<Group>, member: u64) {
        let empty = {
            let mut state = lock(&group.state);
            state.members.remove(&member);
            state.members.is_empty()
        };
        if empty {
            self.retire(group);
        }
    }

    /// Groups running now (tests).
    #[cfg(test)]
    fn running(&self) -> usize {
        lock(&self.0.groups).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn subscriber(id: &str, request_id: Option<&str>) -> Arc<Subscriber> {
        Subscriber::new(id, 1, request_id.map(Arc::from))
    }

    fn payload(data: async_graphql::Value) -> Payload {
        Payload::new(async_graphql::Response::new(data))
    }

    /// `{ "templateEvents": { "sequence": …, "kind": … } }`, in that order (not alphabetical).
    fn event(sequence: &str) -> async_graphql::Value {
        let object = |pairs: Vec<(&str, async_graphql::Value)>| {
            async_graphql::Value::Object(
                pairs.into_iter().map(|(k, v)| (async_graphql::Name::new(k), v)).collect(),
            )
        };
        let kind = async_graphql::Value::Enum(async_graphql::Name::new("OPENED"));
        object(vec![("templateEvents", object(vec![("sequence", sequence.into()), ("kind", kind)]))])
    }

    /// The frame copies the shared text: the id escaped, the payload's objects in the order of
    /// the selection set (not sorted, as through `serde_json::Value`).
    #[test]
    fn a_next_frame_keeps_the_order_of_the_payload() {
        let frame = next_frame(&subscriber("sub \"1\"", None), &payload(event("7")));
        assert_eq!(
            frame,
            r#"{"id":"sub \"1\"","type":"next","payload":{"data":{"templateEvents":{"sequence":"7","kind":"OPENED"}}}}"#
        );
    }

    /// A shared error carries each subscriber's own request id, or none.
    #[test]
    fn errors_carry_the_subscribers_request_id() {
        let mut error = async_graphql::ServerError::new("m", None);
        error.path = vec![async_graphql::PathSegment::Field("templateEvents".to_owned())];
        let mut extensions = async_graphql::ErrorExtensionValues::default();
        extensions.set("code", "BACKEND_UNAVAILABLE");
        extensions.set("requestId", "banyan-shared-0");
        error.extensions = Some(extensions);
        let failed = Payload::new(async_graphql::Response::from_errors(vec![error]));
        let frame: Value =
            serde_json::from_str(&next_frame(&subscriber("a", Some("req-1")), &failed)).expect("JSON");
        assert_eq!(frame["payload"]["errors"][0]["extensions"]["requestId"], "req-1");
        assert_eq!(frame["payload"]["errors"][0]["extensions"]["code"], "BACKEND_UNAVAILABLE");
        assert_eq!(frame["payload"]["errors"][0]["path"], json!(["templateEvents"]));
        let frame: Value = serde_json::from_str(&next_frame(&subscriber("a", None), &failed)).expect("JSON");
        assert!(frame["payload"]["errors"][0]["extensions"].get("requestId").is_none(), "{frame}");
    }

    fn group(registry: &SharedSubscriptions) -> Arc<Group> {
        let key: GroupKey =
            (Arc::from(vec![TemplateId(1)]), Arc::from("templateEvents { sequence:sequence }"));
        let group = Arc::new(Group {
            key: key.clone(),
            name: "banyan-shared-test".to_owned(),
            state: Mutex::default(),
        });
        lock(&registry.0.groups).insert(key, group.clone());
        group
    }

    fn plan() -> SharePlan {
        SharePlan {
            templates: Arc::from(vec![TemplateId(1)]),
            selection: Arc::from("templateEvents { sequence:sequence }"),
            response_key: Arc::from("templateEvents"),
            position: async_graphql::Pos { line: 1, column: 1 },
        }
    }

    /// A member whose writer does not keep up is detached once `buffer` payloads wait, with the
    /// last sequence queued for it; the others keep receiving; the last one leaving closes the
    /// group.
    #[test]
    fn a_full_buffer_detaches_one_member_and_the_last_leaving_closes_the_group() {
        let registry = SharedSubscriptions::new(true, 2, BackendMetrics::default(), Gauge::default());
        let group = group(&registry);
        let (slow_outbox, fast_outbox) = (Arc::new(Outbox::default()), Arc::new(Outbox::default()));
        let slow = registry.add(&group, &mut plan(), &subscriber("slow", None), &slow_outbox).expect("open");
        let fast = registry.add(&group, &mut plan(), &subscriber("fast", None), &fast_outbox).expect("open");
        for sequence in [10, 11, 12] {
            assert!(registry.deliver(&group, &payload(async_graphql::Value::from(sequence)), sequence));
            // The fast writer takes each at once.
            let Some(Outgoing::Next(taken, _)) = fast_outbox.pop() else { panic!("a payload queued") };
            taken.dequeued();
        }
        let slow_queue: Vec<Outgoing> = std::iter::from_fn(|| slow_outbox.pop()).collect();
        assert_eq!(slow_queue.len(), 3, "two payloads, then the end");
        assert!(matches!(slow_queue[2], Outgoing::End(_, Ended::TooSlow { last_sequence: 11 })));
        drop(slow);
        assert_eq!(registry.running(), 1, "the fast one still holds it");
        drop(fast);
        assert_eq!(registry.running(), 0, "the last member leaving closed it");
        assert!(lock(&group.state).closed);
    }
}
