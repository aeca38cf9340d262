//! Reuse per event: a subscription event's selection is resolved once per distinct selection,
//! not once per subscriber, when what it selects does not depend on the caller.
//!
//! Subscribers that can share more share a whole execution instead ([`crate::shared_execution`]:
//! over graphql-transport-ws, the same templates and no `afterSequence`); that execution
//! resolves through this memo too, so groups of the same selection on other templates share it.
//!
//! **What stays per subscriber.** Each other subscription is still its own `execute_stream`: its
//! visibility check at subscribe time and its re-checks, its order, its place in the shared
//! stream, `SUBSCRIBER_TOO_SLOW`, the limits, error masking and response ordering all run for it
//! as before. Only the step inside, turning the event into the selection's `Value`, is shared:
//! the subscription yields a [`SubscribedEvent`] (the shared event and the subscription's
//! [`SelectionKey`]), whose `OutputType::resolve` asks the schema's [`EventMemo`] for the value
//! of (event sequence, selection key). The first subscriber to ask resolves it through the
//! derived `EmailEvent` resolvers and stores it; subscribers asking meanwhile wait for that one
//! resolution (moka coalesces them), the later ones clone the stored value.
//!
//! **Which selections are shared.** Those made only of the fields in
//! [`EmailEventObject::CALLER_INDEPENDENT_FIELDS`], leaves with no argument and no directive
//! left (async-graphql applies `@skip`/`@include` with the operation's variables before it
//! executes, so the key sees the selection as it runs). A selection reaching `template`, through
//! a fragment too, loads through the caller's loaders and is resolved per subscriber, as is
//! anything this module does not know to be shared (the safe direction for a new field). As
//! every shared field is a leaf computed from the event alone, the resolution that fills the
//! memo never waits for I/O, so no subscriber waits on another's backend call.
//!
//! **The key** is the selection with fragments expanded: each field's response key (alias) and
//! name, in order. So the spelling (fragments, inline fragments, operation and variable names)
//! and the root field's arguments (`templateIds`, `afterSequence`) do not split subscribers
//! apart, while an alias or another field does, as it changes the value. The event's sequence
//! identifies the event: the event store assigns each one once. A subscriber only ever looks up
//! the events its own stream delivered, so the memo never shows it an event it could not see.
//!
//! **Errors** are never shared: a resolution that failed, or that added an error to its
//! subscriber's response, is kept for that subscriber alone, and a subscriber that waited on it
//! resolves for itself.
//!
//! **Bounds.** At most [`MEMO_ENTRIES`] values, least recently used out first (not moka's
//! default admission, which would refuse each new event's entry once the memo is full of
//! entries read hundreds of times), each dropped after [`MEMO_IDLE`] unread. A subscriber far
//! behind (its buffer holds `subscriptions.subscriber_buffer` events) whose event was dropped
//! resolves it again; that costs a resolution, never a wrong value.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{Context, ContextSelectionSet, OutputType, Positioned, ServerResult, Value};
use banyan_sources::BackendMetrics;
use banyan_sources::domain::EmailEvent;
use moka::future::Cache;
use moka::policy::EvictionPolicy;

use crate::types::EmailEventObject;

/// Most values the memo holds: events in flight times distinct selections (50 events a second,
/// a few selections, and subscribers up to a buffer behind fit many times over).
const MEMO_ENTRIES: u64 = 4_096;

/// How long a value nobody reads stays in the memo.
const MEMO_IDLE: Duration = Duration::from_secs(60);

/// Most fields (fragments expanded) a shared selection may have; beyond, it is resolved per
/// subscriber, so a pathological selection costs its own subscriber and bounds the key.
const MAX_SHARED_FIELDS: usize = 64;

/// What a subscription selects of each event, as far as the value depends on it: response key
/// and name of each field, fragments expanded, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SelectionKey(Arc<str>);

impl SelectionKey {
    /// The key of what the subscription field of `ctx` selects of each event; `None` when the
    /// selection reaches a field that is not caller-independent (or is not a plain leaf), so
    /// that its subscriber resolves every event itself.
    pub(crate) fn of(ctx: &Context<'_>) -> Option<Self> {
        let root = ctx.field();
        let mut key = String::new();
        for (n, field) in root.selection_set().enumerate() {
            if n == MAX_SHARED_FIELDS
                || !EmailEventObject::CALLER_INDEPENDENT_FIELDS.contains(&field.name())
                || field.selection_set().next().is_some()
                || !field.arguments().ok()?.is_empty()
                || !field.directives().ok()?.is_empty()
            {
                return None;
            }
            // GraphQL names are `[_A-Za-z][_0-9A-Za-z]*`: ':' and ' ' cannot be part of one.
            key.push_str(field.alias().unwrap_or(field.name()));
            key.push(':');
            key.push_str(field.name());
            key.push(' ');
        }
        Some(Self(key.into()))
    }

    /// The key as text (field by field, `alias:name`, space-separated).
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The values of subscription events already resolved, by event and selection; one per schema
/// (in its data).
pub(crate) struct EventMemo {
    values: Cache<(u64, SelectionKey), Value>,
    metrics: BackendMetrics,
}

/// A resolution that is not shared: it failed or reported an error.
#[derive(Debug)]
struct NotShared;

impl EventMemo {
    /// An empty memo counting into `metrics`.
    pub(crate) fn new(metrics: BackendMetrics) -> Self {
        let values = Cache::builder()
            .max_capacity(MEMO_ENTRIES)
            .time_to_idle(MEMO_IDLE)
            .eviction_policy(EvictionPolicy::lru())
            .build();
        Self { values, metrics }
    }

    /// The value of `event` for `selection`: the one stored, or resolved now (and stored when it
    /// resolved cleanly).
    async fn value(
        &self,
        event: &EmailEventObject,
        selection: &SelectionKey,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        // Set only by this subscriber's own resolution when it is not to be shared.
        let mut own = None;
        let stored = self
            .values
            .entry((event.0.sequence, selection.clone()))
            .or_try_insert_with(async {
                self.metrics.subscription_event_resolved();
                let errors_before = reported_errors(ctx);
                match OutputType::resolve(event, ctx, field).await {
                    Ok(value) if reported_errors(ctx) == errors_before => Ok(value),
                    unshared => {
                        own = Some(unshared);
                        Err(NotShared)
                    }
                }
            })
            .await;
        match (stored, own) {
            (_, Some(own)) => own,
            (Ok(entry), None) => {
                if !entry.is_fresh() {
                    self.metrics.subscription_event_reused();
                }
                Ok(entry.into_value())
            }
            // Another subscriber's resolution of this event was not shared: resolve for this one.
            (Err(_), None) => {
                self.metrics.subscription_event_resolved();
                OutputType::resolve(event, ctx, field).await
            }
        }
    }
}

/// Errors reported so far into the response `ctx` belongs to (async-graphql's per-operation list,
/// where a field's error goes when its parent's resolution carries on without it).
fn reported_errors(ctx: &ContextSelectionSet<'_>) -> usize {
    ctx.query_env.errors.lock().unwrap_or_else(PoisonError::into_inner).len()
}

/// One event as a subscription delivers it: the shared event and what the subscription selects
/// of it. To the schema it is `EmailEvent` (same name, same type information: the SDL does not
/// change); resolving it goes through the schema's [`EventMemo`] when the selection is shared.
pub(crate) struct SubscribedEvent {
    event: EmailEventObject,
    selection: Option<SelectionKey>,
}

impl SubscribedEvent {
    /// `event` as a subscription selecting `selection` delivers it (`None`: not shared).
    pub(crate) fn new(event: Arc<EmailEvent>, selection: Option<SelectionKey>) -> Self {
        Self { event: EmailEventObject(event), selection }
    }
}

impl OutputType for SubscribedEvent {
    fn type_name() -> Cow<'static, str> {
        <EmailEventObject as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <EmailEventObject as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <EmailEventObject as OutputType>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        let memo = ctx.data_opt::<EventMemo>();
        match (memo, &self.selection) {
            (Some(memo), Some(selection)) => memo.value(&self.event, selection, ctx, field).await,
            (memo, _) => {
                if let Some(memo) = memo {
                    memo.metrics.subscription_event_resolved();
                }
                OutputType::resolve(&self.event, ctx, field).await
            }
        }
    }
}

#[cfg(test)]
mod tests;
