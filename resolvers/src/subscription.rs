//! `Subscription`: live email events over WebSocket.
//!
//! Subscribers of the same templates share one upstream stream (`banyan_sources::fanout`); each
//! subscriber's visibility of its templates is checked when it subscribes and again every
//! [`SubscriptionPolicy::visibility_recheck_interval`] while it runs. Each event's selection is
//! resolved once per distinct selection when it does not depend on the caller
//! ([`crate::event_memo`]).

use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::Selection;
use async_graphql::{Context, ErrorExtensions, ID, Result, Subscription};
use banyan_sources::domain::TemplateId;
use banyan_sources::{Caller, FeedError, SharedEventStream, SourceError, Sources};
use futures::{Stream, StreamExt};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::context::{NextAnswer, scope};
use crate::error::{SourceResultExt, coded, codes, from_source};
use crate::event_memo::{SelectionKey, SubscribedEvent};
use crate::ids::{self, NodeType};
use crate::shared_execution::{ShareOffer, SharePlan, SharedFeed};

/// The most templates one subscription may follow (the event store's limit).
const MAX_TEMPLATES: usize = 100;

/// How running subscriptions are kept honest, in the schema's data (the gateway sets it from
/// `websocket.credential_recheck_interval`; absent, visibility is checked at subscribe time only).
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionPolicy {
    /// How often a running subscription checks again that its caller still sees every template
    /// it follows; zero turns the re-check off.
    pub visibility_recheck_interval: Duration,
}

/// The root of every subscription.
pub struct Subscription;

/// The root of every subscription.
#[Subscription]
impl Subscription {
    /// Email events of the given templates as they happen, in sequence order with no gaps. Every
    /// template must be visible to the signed-in user (checked again while the subscription
    /// runs: one that stops being visible ends it with `NOT_FOUND`). The stream ends with an
    /// error if the event store goes away for good, or with `SUBSCRIBER_TOO_SLOW` (and
    /// `extensions.lastSequence`) if the client reads slower than events come; subscribe again
    /// with `afterSequence` set to the last sequence received to continue without a gap.
    async fn template_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global ids of the templates to follow, 1 to 100.")] template_ids: Vec<ID>,
        #[graphql(
            desc = "Replay stored events after this `EmailEvent.sequence` first; omit to start from now."
        )]
        after_sequence: Option<ID>,
    ) -> Result<impl Stream<Item = Result<SubscribedEvent>> + use<>> {
        if template_ids.is_empty() || template_ids.len() > MAX_TEMPLATES {
            return Err(coded(codes::BAD_USER_INPUT, format!("follow 1 to {MAX_TEMPLATES} templates")));
        }
        let after_sequence = match after_sequence {
            Some(id) => id
                .parse::<u64>()
                .map_err(|_| coded(codes::BAD_USER_INPUT, "`afterSequence` is not an event sequence"))?,
            None => 0,
        };
        let ids = template_ids
            .iter()
            .map(|id| ids::decode(id, NodeType::Template).map(TemplateId))
            .collect::<Result<Vec<_>>>()?;
        // The shared execution of subscribers checked one by one (`crate::shared_execution`):
        // it follows the events the transport opened for them and checks nothing itself.
        if let Some(feed) = ctx.data_opt::<SharedFeed>() {
            let events =
                feed.take_events().ok_or_else(|| async_graphql::Error::new("a shared feed runs once"))?;
            let watch = Watch {
                events,
                recheck: None,
                selection: SelectionKey::of(ctx),
                shared: Some(feed.clone()),
                answers: None,
                done: false,
            };
            return Ok(watch.into_stream().left_stream());
        }
        let scope = scope(ctx)?;
        // The services trust the gateway, so visibility is checked here, against the monolith.
        // The calls made once at subscribe time are boxed: async-graphql keeps this future's state
        // for as long as the subscription runs, and awaited in place their futures (tens of KiB
        // together) would stay in it for every idle subscriber.
        let visible = Box::pin(scope.loaders().templates.load_many(ids.iter().copied())).await.graphql()?;
        if let Some(hidden) = ids.iter().find(|id| !visible.contains_key(id)) {
            return Err(not_visible(*hidden, "does not exist or is not visible to you"));
        }
        // What this subscription selects of each event, once: subscribers of the same selection
        // share each event's resolution, unless it depends on the caller.
        let selection = SelectionKey::of(ctx);
        // 0 is the event store's "from now".
        let after = (after_sequence > 0).then_some(after_sequence);
        // Checked for this caller: when the payload cannot depend on it, the transport's shared
        // execution serves it, and this execution ends here.
        if let Some(offer) = ctx.data_opt::<ShareOffer>() {
            if after.is_none()
                && let Some(selection) = &selection
                && alone_at_the_root(ctx)
            {
                let mut templates = ids;
                templates.sort_unstable();
                templates.dedup();
                let response_key: Arc<str> = ctx.item.node.response_key().node.as_str().into();
                offer.accept(SharePlan {
                    templates: templates.into(),
                    selection: format!("{response_key} {{ {} }}", selection.as_str()).into(),
                    response_key,
                    position: ctx.item.pos,
                });
                return Ok(futures::stream::empty().right_stream());
            }
            offer.decline();
        }
        let sources = ctx.data::<Sources>()?.clone();
        let events = Box::pin(sources.events.subscribe(&scope.caller, &ids, after)).await.graphql()?;
        let recheck = ctx
            .data_opt::<SubscriptionPolicy>()
            .map(|policy| policy.visibility_recheck_interval)
            .filter(|interval| !interval.is_zero())
            .map(|period| {
                let mut interval = tokio::time::interval_at(Instant::now() + period, period);
                interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
                // Re-checks act for the caller on a budget of their own: the subscription lives long.
                Box::new(Recheck {
                    interval,
                    sources,
                    caller: scope.caller.clone().for_request(),
                    templates: ids.into(),
                })
            });
        let answers = Some(scope.next_answer());
        let watch = Watch { events, recheck, selection, shared: None, answers, done: false };
        Ok(watch.into_stream().left_stream())
    }
}

/// The subscription field is the operation's only root selection, with no directive: its
/// payload is that field's alone.
fn alone_at_the_root(ctx: &Context<'_>) -> bool {
    let root = &ctx.query_env.operation.node.selection_set.node.items;
    root.len() == 1 && matches!(root[0].node, Selection::Field(_)) && ctx.item.node.directives.is_empty()
}

/// How a running subscription re-checks that its caller still sees its templates.
struct Recheck {
    interval: Interval,
    sources: Sources,
    caller: Caller,
    templates: Arc<[TemplateId]>,
}

/// A subscription's events, with its visibility re-checked on a timer.
struct Watch {
    events: SharedEventStream,
    /// `None` in a shared execution, whose subscribers the transport re-checks.
    recheck: Option<Box<Recheck>>,
    selection: Option<SelectionKey>,
    /// A shared execution's feed, told each event's sequence.
    shared: Option<SharedFeed>,
    /// Moves the subscriber's scope on to a new answer as each event arrives, so the event's
    /// fields read the data as it stands then (fresh loaders, stats windows ending now), not as
    /// it stood when the subscription began. `None` in a shared execution, whose fields read
    /// nothing but the event.
    answers: Option<NextAnswer>,
    done: bool,
}

impl Watch {
    fn into_stream(self) -> impl Stream<Item = Result<SubscribedEvent>> {
        futures::stream::unfold(self, |mut watch| async move {
            let item = watch.next().await?;
            Some((item, watch))
        })
    }

    async fn next(&mut self) -> Option<Result<SubscribedEvent>> {
        if self.done {
            return None;
        }
        loop {
            let recheck = async {
                match self.recheck.as_deref_mut() {
                    Some(recheck) => {
                        recheck.interval.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = self.events.next() => {
                    let item = item?;
                    match (&item, &self.shared) {
                        (Err(_), _) => self.done = true,
                        (Ok(event), Some(shared)) => shared.took(event.sequence),
                        (Ok(_), None) => {}
                    }
                    if let (Ok(_), Some(answers)) = (&item, &self.answers) {
                        answers.next();
                    }
                    let selection = self.selection.clone();
                    return Some(item.map(|event| SubscribedEvent::new(event, selection)).map_err(feed_error));
                }
                () = recheck => {
                    let Some(recheck) = self.recheck.as_deref() else { continue };
                    // Boxed for the same reason: the stream keeps this future between events.
                    if let Some(refused) = Box::pin(refusal(&recheck.sources, &recheck.caller, &recheck.templates)).await {
                        self.done = true;
                        return Some(Err(refused));
                    }
                }
            }
        }
    }
}

/// Why `caller` may no longer follow `templates`, asked of the monolith itself (not a loader's
/// cache): a template it no longer sees (`NOT_FOUND`), or its credential refused
/// (`UNAUTHENTICATED`, `FORBIDDEN`). Any other failure keeps the subscription: a backend blip
/// should not end every feed.
pub(crate) async fn refusal(
    sources: &Sources,
    caller: &Caller,
    templates: &[TemplateId],
) -> Option<async_graphql::Error> {
    match sources.monolith.templates_by_ids(caller, templates).await {
        Ok(visible) => templates
            .iter()
            .copied()
            .find(|id| !visible.iter().any(|t| t.id == *id))
            .map(|hidden| not_visible(hidden, "is no longer visible to you")),
        Err(error @ (SourceError::Unauthenticated | SourceError::Forbidden(_))) => Some(from_source(error)),
        Err(error) => {
            tracing::debug!(%error, "a subscription's visibility re-check failed; kept");
            None
        }
    }
}

fn not_visible(template: TemplateId, why: &str) -> async_graphql::Error {
    coded(
        codes::NOT_FOUND,
        format!("template {} {why}", ids::encode(NodeType::Template, template.0).as_str()),
    )
}

pub(crate) fn feed_error(error: FeedError) -> async_graphql::Error {
    match error {
        FeedError::Source(error) => from_source(error),
        FeedError::TooSlow { last_sequence } => coded(
            codes::SUBSCRIBER_TOO_SLOW,
            format!(
                "this subscription read its events too slowly and was ended; subscribe again with \
                 afterSequence: \"{last_sequence}\" to continue without a gap"
            ),
        )
        .extend_with(|_, extensions| extensions.set("lastSequence", last_sequence.to_string())),
    }
}
