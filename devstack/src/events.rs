//! The `EventService` stand-in: an in-memory, append-only event log with a per-template index,
//! a live broadcast for subscriptions, and a background generator.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::Shared;
use crate::dataset::Dataset;
use crate::proto::events::event_service_server::EventService;
use crate::proto::events::{
    AppendEventsRequest, AppendEventsResponse, EmailEvent, EventKind, GetTemplateStatsRequest,
    GetTemplateStatsResponse, ListEventsRequest, ListEventsResponse, NewEmailEvent, StreamEventsRequest,
    StreamEventsResponse, TemplateStats,
};
use crate::rng::SplitMix64;
use crate::time;

/// Most events one `AppendEvents` call may carry.
const MAX_APPEND: usize = 10_000;
/// Most templates one `GetTemplateStats` call may name.
const MAX_STATS_TEMPLATES: usize = 1_000;
/// Most templates one `StreamEvents` call may follow.
const MAX_STREAM_TEMPLATES: usize = 100;
/// Live events buffered per subscriber before it lags (and catches up from the log).
const BROADCAST_CAPACITY: usize = 4_096;
/// Events buffered between a subscription's task and its gRPC response.
const STREAM_BUFFER: usize = 256;

/// The background event generator's settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventGeneratorConfig {
    /// Events appended per second, steadily; `0.0` (the default) turns the generator off.
    pub rate_per_second: f64,
    /// Templates to write events for; empty (the default) means every seeded template.
    pub template_ids: Vec<u64>,
}

/// One stored event.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub(crate) sequence: u64,
    pub(crate) template_id: Arc<str>,
    pub(crate) kind: EventKind,
    pub(crate) recipient: Arc<str>,
    pub(crate) occurred_at: DateTime<Utc>,
}

impl StoredEvent {
    fn to_proto(&self) -> EmailEvent {
        EmailEvent {
            sequence: self.sequence,
            template_id: self.template_id.to_string(),
            kind: self.kind.into(),
            recipient: self.recipient.to_string(),
            occurred_at: Some(time::to_timestamp(&self.occurred_at)),
        }
    }
}

/// Event counts of one template over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) sent: u64,
    pub(crate) delivered: u64,
    pub(crate) opened: u64,
    pub(crate) clicked: u64,
    pub(crate) bounced: u64,
    pub(crate) unique_opens: u64,
}

#[derive(Debug, Default)]
struct Log {
    /// Every event; the event with sequence `n` is at index `n - 1`.
    events: Vec<StoredEvent>,
    /// Each template's events.
    by_template: HashMap<Arc<str>, TemplateLog>,
}

/// One template's events.
#[derive(Debug)]
struct TemplateLog {
    /// Indexes into `events`, ascending.
    indexes: Vec<usize>,
    /// The `occurred_at` of each of `indexes`' events, beside them: a window's bounds are found
    /// by a binary search of this, not of events scattered through the log.
    times: Vec<DateTime<Utc>>,
    /// Whether `occurred_at` never decreases along `indexes`: true of the dataset and of live
    /// appends; an append stamped earlier than the template's last event clears it, and stats
    /// then scan every event instead of the window alone.
    in_time_order: bool,
}

/// `times.partition_point(|&t| t < bound)` for times in order, searched from the newest back
/// (1, 2, 4, ... from the end, then a binary search of the last step): a stats window ends near
/// now and spans the last few days of months of events, and the newest times are the ones in
/// cache, where a plain binary search starts in the cold middle of a long array.
fn partition_from_end(times: &[DateTime<Utc>], bound: DateTime<Utc>) -> usize {
    // Every time from `above` on is at or after `bound`.
    let mut above = times.len();
    let mut step = 1;
    loop {
        let probe = times.len().saturating_sub(step);
        match times.get(probe) {
            Some(&time) if time >= bound && probe > 0 => {
                above = probe;
                step *= 2;
            }
            _ => {
                let span = times.get(probe..above).unwrap_or_default();
                return probe + span.partition_point(|&t| t < bound);
            }
        }
    }
}

impl Log {
    fn push(&mut self, event: StoredEvent) {
        let index = self.events.len();
        match self.by_template.get_mut(&*event.template_id) {
            Some(log) => {
                if log.times.last().is_some_and(|&last| last > event.occurred_at) {
                    log.in_time_order = false;
                }
                log.indexes.push(index);
                log.times.push(event.occurred_at);
            }
            None => {
                let log =
                    TemplateLog { indexes: vec![index], times: vec![event.occurred_at], in_time_order: true };
                self.by_template.insert(event.template_id.clone(), log);
            }
        }
        self.events.push(event);
    }

    /// The template's events that may fall in `start..end`: only those when they are in time
    /// order (found by binary search), else all of them.
    fn window(&self, template_id: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> &[usize] {
        let Some(log) = self.by_template.get(template_id) else { return &[] };
        if !log.in_time_order {
            return &log.indexes;
        }
        let (from, to) = (partition_from_end(&log.times, start), partition_from_end(&log.times, end));
        log.indexes.get(from..to.max(from)).unwrap_or(&[])
    }

    fn head(&self) -> u64 {
        self.events.len() as u64
    }

    fn indexes(&self, template_id: &str) -> &[usize] {
        self.by_template.get(template_id).map_or(&[], |log| log.indexes.as_slice())
    }

    /// The events of these templates with a sequence above `after`, in sequence order.
    fn after<'a>(&self, templates: impl IntoIterator<Item = &'a str>, after: u64) -> Vec<StoredEvent> {
        let mut indexes: Vec<usize> = Vec::new();
        for template in templates {
            let list = self.indexes(template);
            // Index i holds sequence i + 1.
            let start = list.partition_point(|&i| (i as u64) < after);
            indexes.extend_from_slice(&list[start..]);
        }
        indexes.sort_unstable();
        indexes.dedup();
        indexes.into_iter().filter_map(|i| self.events.get(i).cloned()).collect()
    }
}

/// An event to append, validated.
#[derive(Debug)]
struct NewEvent {
    template_id: String,
    kind: EventKind,
    recipient: String,
    occurred_at: Option<DateTime<Utc>>,
}

/// The in-memory event store. Reads take a shared lock and never block one another; an append
/// takes the exclusive lock for as long as it takes to push its batch.
#[derive(Debug)]
pub(crate) struct EventStore {
    log: RwLock<Log>,
    live: broadcast::Sender<StoredEvent>,
    active_streams: AtomicUsize,
}

impl EventStore {
    /// A store holding the dataset's events.
    pub(crate) fn new(dataset: &Dataset) -> Self {
        let ids: HashMap<u64, Arc<str>> =
            dataset.templates.iter().map(|t| (t.id, Arc::from(t.id.to_string()))).collect();
        let mut log = Log {
            events: Vec::with_capacity(dataset.events.len() + 1024),
            by_template: HashMap::with_capacity(ids.len()),
        };
        for event in &dataset.events {
            let template_id =
                ids.get(&event.template).cloned().unwrap_or_else(|| Arc::from(event.template.to_string()));
            log.push(StoredEvent {
                sequence: log.head() + 1,
                template_id,
                kind: event.kind,
                recipient: event.recipient.clone(),
                occurred_at: event.occurred_at,
            });
        }
        let (live, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self { log: RwLock::new(log), live, active_streams: AtomicUsize::new(0) }
    }

    fn read(&self) -> RwLockReadGuard<'_, Log> {
        // Appends cannot leave the log half-written (they validate first), so a poisoned lock
        // still guards consistent data.
        self.log.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Log> {
        self.log.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The number of `StreamEvents` subscriptions open now.
    pub(crate) fn active_streams(&self) -> usize {
        self.active_streams.load(Ordering::SeqCst)
    }

    /// Validates and appends a batch atomically (all or nothing) and returns the stored events, in
    /// request order. Only the ingestion pipeline ([`Shared::ingest`]) calls it.
    pub(crate) fn append(&self, batch: Vec<NewEmailEvent>) -> Result<Vec<StoredEvent>, Status> {
        if batch.len() > MAX_APPEND {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_APPEND} events per batch, got {}",
                batch.len()
            )));
        }
        let batch = batch
            .into_iter()
            .enumerate()
            .map(|(i, e)| validate(e).map_err(|m| Status::invalid_argument(format!("events[{i}]: {m}"))))
            .collect::<Result<Vec<NewEvent>, Status>>()?;
        let now = time::now();
        let mut log = self.write();
        let mut stored = Vec::with_capacity(batch.len());
        for new in batch {
            let template_id = log
                .by_template
                .get_key_value(new.template_id.as_str())
                .map_or_else(|| Arc::from(new.template_id), |(k, _)| k.clone());
            let event = StoredEvent {
                sequence: log.head() + 1,
                template_id,
                kind: new.kind,
                recipient: Arc::from(new.recipient),
                occurred_at: new.occurred_at.unwrap_or(now),
            };
            // Sent under the write lock, so subscribers see events in sequence order. No
            // receiver is not an error.
            let _ = self.live.send(event.clone());
            log.push(event.clone());
            stored.push(event);
        }
        Ok(stored)
    }

    /// Counts of each template's events with `start <= occurred_at < end`, in the given order.
    pub(crate) fn stats<'a>(
        &self,
        template_ids: impl IntoIterator<Item = &'a str>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<Counts> {
        let log = self.read();
        template_ids
            .into_iter()
            .map(|template| {
                let mut counts = Counts::default();
                let mut openers: HashSet<&str> = HashSet::new();
                for event in log.window(template, start, end).iter().filter_map(|&i| log.events.get(i)) {
                    if event.occurred_at < start || event.occurred_at >= end {
                        continue;
                    }
                    match event.kind {
                        EventKind::Sent => counts.sent += 1,
                        EventKind::Delivered => counts.delivered += 1,
                        EventKind::Opened => {
                            counts.opened += 1;
                            openers.insert(&*event.recipient);
                        }
                        EventKind::Clicked => counts.clicked += 1,
                        EventKind::Bounced => counts.bounced += 1,
                        EventKind::Unspecified => {}
                    }
                }
                counts.unique_opens = openers.len() as u64;
                counts
            })
            .collect()
    }

    /// Up to `size` of the template's events with a sequence below `before` (all when `None`),
    /// newest first, and the `before` of the next page when there are older events.
    fn page(&self, template_id: &str, before: Option<u64>, size: usize) -> (Vec<EmailEvent>, Option<u64>) {
        let log = self.read();
        let list = log.indexes(template_id);
        // Index i holds sequence i + 1, so "sequence < before" is "i + 1 < before".
        let end = before.map_or(list.len(), |b| list.partition_point(|&i| (i as u64) + 1 < b));
        let start = end.saturating_sub(size);
        let events = list[start..end]
            .iter()
            .rev()
            .filter_map(|&i| log.events.get(i))
            .map(StoredEvent::to_proto)
            .collect();
        let next = (start > 0).then(|| list[start] as u64 + 1);
        (events, next)
    }

    /// Subscribes to live events and returns, taken atomically with the subscription, the
    /// stored events to replay (those of the templates after `after`, when `after > 0`) and the
    /// sequence the live part starts after.
    fn subscribe(
        &self,
        templates: &HashSet<String>,
        after: u64,
    ) -> (broadcast::Receiver<StoredEvent>, Vec<StoredEvent>, u64) {
        let log = self.read();
        // Appends broadcast under the write lock, so nothing falls between the replay read and
        // the subscription.
        let receiver = self.live.subscribe();
        if after == 0 {
            (receiver, Vec::new(), log.head())
        } else {
            let replay = log.after(templates.iter().map(String::as_str), after);
            (receiver, replay, after)
        }
    }

    fn read_after(&self, templates: &HashSet<String>, after: u64) -> Vec<StoredEvent> {
        self.read().after(templates.iter().map(String::as_str), after)
    }
}

fn validate(event: NewEmailEvent) -> Result<NewEvent, &'static str> {
    if event.template_id.is_empty() {
        return Err("template_id is empty");
    }
    let kind = match EventKind::try_from(event.kind) {
        Ok(EventKind::Unspecified) => return Err("kind is EVENT_KIND_UNSPECIFIED"),
        Ok(kind) => kind,
        Err(_) => return Err("kind is not a known EventKind"),
    };
    if event.recipient.is_empty() {
        return Err("recipient is empty");
    }
    let occurred_at = match &event.occurred_at {
        None => None,
        Some(ts) => {
            Some(time::from_timestamp(ts).ok_or("occurred_at is not a valid timestamp")?.trunc_subsecs(6))
        }
    };
    Ok(NewEvent { template_id: event.template_id, kind, recipient: event.recipient, occurred_at })
}

/// Opaque `ListEvents` cursor: `before` sequence and template, base64url.
fn encode_token(template_id: &str, before: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{before}:{template_id}"))
}

fn decode_token(token: &str, template_id: &str) -> Option<u64> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (before, template) = text.strip_prefix("v1:")?.split_once(':')?;
    (template == template_id).then_some(())?;
    before.parse().ok()
}

/// Keeps the active-stream gauge honest: counted up when a subscription starts, down when its
/// task ends for any reason.
struct StreamGuard(Arc<Shared>);

impl StreamGuard {
    fn new(shared: Arc<Shared>) -> Self {
        shared.events.active_streams.fetch_add(1, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.events.active_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The gRPC `EventService` over the shared event store.
pub(crate) struct EventsApi {
    shared: Arc<Shared>,
}

impl EventsApi {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tonic::async_trait]
impl EventService for EventsApi {
    async fn append_events(
        &self,
        request: Request<AppendEventsRequest>,
    ) -> Result<Response<AppendEventsResponse>, Status> {
        let sequences = self.shared.ingest(request.into_inner().events)?;
        Ok(Response::new(AppendEventsResponse { sequences }))
    }

    async fn get_template_stats(
        &self,
        request: Request<GetTemplateStatsRequest>,
    ) -> Result<Response<GetTemplateStatsResponse>, Status> {
        let request = request.into_inner();
        if request.template_ids.len() > MAX_STATS_TEMPLATES {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_STATS_TEMPLATES} template_ids, got {}",
                request.template_ids.len()
            )));
        }
        let window = request.window.ok_or_else(|| Status::invalid_argument("window is required"))?;
        let bound = |ts: Option<prost_types::Timestamp>, name: &str| {
            ts.as_ref()
                .and_then(time::from_timestamp)
                .ok_or_else(|| Status::invalid_argument(format!("window.{name} is missing or invalid")))
        };
        let start = bound(window.start, "start")?;
        let end = bound(window.end, "end")?;
        if start > end {
            return Err(Status::invalid_argument("window.start is after window.end"));
        }
        let counts = self.shared.events.stats(request.template_ids.iter().map(String::as_str), start, end);
        let stats = request
            .template_ids
            .into_iter()
            .zip(counts)
            .map(|(template_id, c)| TemplateStats {
                template_id,
                sent: c.sent,
                delivered: c.delivered,
                opened: c.opened,
                clicked: c.clicked,
                bounced: c.bounced,
                unique_opens: c.unique_opens,
            })
            .collect();
        Ok(Response::new(GetTemplateStatsResponse { stats }))
    }

    async fn list_events(
        &self,
        request: Request<ListEventsRequest>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        let request = request.into_inner();
        if !(1..=100).contains(&request.page_size) {
            return Err(Status::invalid_argument(format!(
                "page_size must be between 1 and 100, got {}",
                request.page_size
            )));
        }
        let before = if request.page_token.is_empty() {
            None
        } else {
            Some(
                decode_token(&request.page_token, &request.template_id)
                    .ok_or_else(|| Status::invalid_argument("page_token is not valid for this request"))?,
            )
        };
        let (events, next) =
            self.shared.events.page(&request.template_id, before, request.page_size as usize);
        let next_page_token = next.map_or_else(String::new, |b| encode_token(&request.template_id, b));
        Ok(Response::new(ListEventsResponse { events, next_page_token }))
    }

    type StreamEventsStream = ReceiverStream<Result<StreamEventsResponse, Status>>;

    async fn stream_events(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let request = request.into_inner();
        if request.template_ids.is_empty() || request.template_ids.len() > MAX_STREAM_TEMPLATES {
            return Err(Status::invalid_argument(format!(
                "template_ids must name 1 to {MAX_STREAM_TEMPLATES} templates, got {}",
                request.template_ids.len()
            )));
        }
        let templates: HashSet<String> = request.template_ids.into_iter().collect();
        // Counted once it listens: a test that waits for the count may then append.
        let (receiver, replay, last) = self.shared.events.subscribe(&templates, request.after_sequence);
        let guard = StreamGuard::new(self.shared.clone());
        let (sender, stream) = mpsc::channel(STREAM_BUFFER);
        tracing::debug!(
            templates = templates.len(),
            after = request.after_sequence,
            replay = replay.len(),
            "event stream opened"
        );
        tokio::spawn(run_stream(
            Subscription { shared: self.shared.clone(), templates, last, receiver, sender, _guard: guard },
            replay,
        ));
        Ok(Response::new(ReceiverStream::new(stream)))
    }
}

/// The state of one `StreamEvents` call's task.
struct Subscription {
    shared: Arc<Shared>,
    templates: HashSet<String>,
    /// The highest sequence sent so far (or the starting point).
    last: u64,
    receiver: broadcast::Receiver<StoredEvent>,
    sender: mpsc::Sender<Result<StreamEventsResponse, Status>>,
    _guard: StreamGuard,
}

impl Subscription {
    /// Sends one event unless it was sent already; false when the stream is over (client gone or
    /// shutdown).
    async fn send(&mut self, event: &StoredEvent) -> bool {
        if event.sequence <= self.last {
            return true;
        }
        let message = Ok(StreamEventsResponse { event: Some(event.to_proto()) });
        let shutdown: &CancellationToken = &self.shared.shutdown;
        let delivered = tokio::select! {
            sent = self.sender.send(message) => sent.is_ok(),
            () = shutdown.cancelled() => false,
        };
        if delivered {
            self.last = event.sequence;
        }
        delivered
    }
}

/// Replays, then forwards live events until the client goes away or the devstack shuts down.
async fn run_stream(mut sub: Subscription, replay: Vec<StoredEvent>) {
    for event in &replay {
        if !sub.send(event).await {
            return;
        }
    }
    drop(replay);
    loop {
        let received = tokio::select! {
            () = sub.sender.closed() => break,
            () = sub.shared.shutdown.cancelled() => break,
            received = sub.receiver.recv() => received,
        };
        match received {
            Ok(event) => {
                if sub.templates.contains(&*event.template_id) && !sub.send(&event).await {
                    break;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "event stream lagged; catching up from the log");
                let missed = sub.shared.events.read_after(&sub.templates, sub.last);
                for event in &missed {
                    if !sub.send(event).await {
                        return;
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    tracing::debug!("event stream closed");
}

/// Appends events at the configured steady rate until shutdown.
pub(crate) async fn run_generator(shared: Arc<Shared>, config: EventGeneratorConfig) {
    let rate = config.rate_per_second;
    if !(rate.is_finite() && rate > 0.0) {
        return;
    }
    let templates: Vec<String> = if config.template_ids.is_empty() {
        shared.dataset.templates.iter().map(|t| t.id.to_string()).collect()
    } else {
        config.template_ids.iter().map(u64::to_string).collect()
    };
    let recipients: Vec<Arc<str>> = {
        let mut seen = HashSet::new();
        shared
            .dataset
            .events
            .iter()
            .filter(|e| seen.insert(e.recipient.clone()))
            .map(|e| e.recipient.clone())
            .take(500)
            .collect()
    };
    if templates.is_empty() || recipients.is_empty() {
        return;
    }
    let mut rng = SplitMix64::new(shared.dataset.seed ^ 0x6765_6E65_7261_746F);
    // Ticks of at least 10 ms (at most 100 per second), each carrying the events that are due.
    let period = Duration::from_secs_f64((1.0 / rate).clamp(0.01, 3600.0));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due = 0.0_f64;
    tracing::info!(rate, templates = templates.len(), "devstack event generator running");
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        due += rate * period.as_secs_f64();
        let count = due.floor();
        due -= count;
        let batch: Vec<NewEmailEvent> = (0..count as usize)
            .map(|_| {
                let kind = match rng.below(100) {
                    0..=39 => EventKind::Sent,
                    40..=77 => EventKind::Delivered,
                    78..=91 => EventKind::Opened,
                    92..=96 => EventKind::Clicked,
                    _ => EventKind::Bounced,
                };
                NewEmailEvent {
                    template_id: rng.pick(&templates).clone(),
                    kind: kind.into(),
                    recipient: rng.pick(&recipients).to_string(),
                    occurred_at: None,
                }
            })
            .collect();
        if batch.is_empty() {
            continue;
        }
        if let Err(status) = shared.ingest(batch) {
            tracing::warn!(%status, "event generator append failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_bound_to_the_template() {
        let token = encode_token("17", 1234);
        assert_eq!(decode_token(&token, "17"), Some(1234));
        assert_eq!(decode_token(&token, "18"), None);
        assert_eq!(decode_token("garbage!", "17"), None);
    }

    /// Counts of `template`'s events in `start..end`, counted over every event there is.
    fn counted_by_hand(
        events: &[(String, EventKind, String, DateTime<Utc>)],
        template: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Counts {
        let mut counts = Counts::default();
        let mut openers = std::collections::BTreeSet::new();
        for (t, kind, recipient, at) in events {
            if t != template || *at < start || *at >= end {
                continue;
            }
            match kind {
                EventKind::Sent => counts.sent += 1,
                EventKind::Delivered => counts.delivered += 1,
                EventKind::Opened => {
                    counts.opened += 1;
                    openers.insert(recipient.clone());
                }
                EventKind::Clicked => counts.clicked += 1,
                EventKind::Bounced => counts.bounced += 1,
                EventKind::Unspecified => {}
            }
        }
        counts.unique_opens = openers.len() as u64;
        counts
    }

    /// Stats read only the window of a template whose events are in time order, and every
    /// event once an append is stamped before the template's last: the same counts either
    /// way, including events exactly on a window's bounds.
    /// The search from the end finds what counting the times before the bound finds, for every
    /// bound around every time of arrays of every length up to 70, with runs of equal times.
    #[test]
    fn searching_from_the_end_finds_the_count_of_earlier_times() {
        let at = |seconds: i64| DateTime::<Utc>::from_timestamp(seconds, 0).unwrap_or_default();
        for len in 0..70i64 {
            // Pairs of equal times: 0, 0, 2, 2, 4, 4, ...
            let times: Vec<DateTime<Utc>> = (0..len).map(|i| at(i / 2 * 2)).collect();
            for bound in -1..=len + 1 {
                let expected = times.iter().filter(|&&t| t < at(bound)).count();
                assert_eq!(partition_from_end(&times, at(bound)), expected, "{len} times, bound {bound}");
            }
        }
    }

    #[test]
    fn stats_over_a_window_count_what_a_scan_of_every_event_counts() {
        let anchor = time::now();
        let dataset = Dataset::generate(7, anchor);
        let store = EventStore::new(&dataset);
        let mut all: Vec<(String, EventKind, String, DateTime<Utc>)> = dataset
            .events
            .iter()
            .map(|e| (e.template.to_string(), e.kind, e.recipient.to_string(), e.occurred_at))
            .collect();
        let mut per_template: HashMap<&str, usize> = HashMap::new();
        for e in &all {
            *per_template.entry(e.0.as_str()).or_default() += 1;
        }
        let busiest =
            per_template.into_iter().max_by_key(|&(t, n)| (n, t.to_owned())).map(|(t, _)| t.to_owned());
        let template = busiest.unwrap_or_else(|| panic!("the dataset has events"));
        let times: Vec<DateTime<Utc>> = all.iter().filter(|e| e.0 == template).map(|e| e.3).collect();
        // Windows bounded by the template's own event times (so events sit on both bounds),
        // by times between them, the last seven days, and an empty window.
        let windows = [
            (times[times.len() / 4], times[times.len() / 2]),
            (times[0], times[times.len() - 1]),
            (times[3] + chrono::Duration::milliseconds(1), times[times.len() - 3]),
            (anchor - chrono::Duration::days(7), anchor),
            (times[5], times[5]),
        ];
        let check = |all: &[(String, EventKind, String, DateTime<Utc>)], label: &str| {
            for (start, end) in windows {
                let stats = store.stats([template.as_str()], start, end);
                assert_eq!(stats, [counted_by_hand(all, &template, start, end)], "{label}: {start}..{end}");
            }
            let first = store.stats([template.as_str()], windows[0].0, windows[0].1);
            assert!(first[0].sent + first[0].opened > 0, "{label}: the first window holds events");
        };
        assert!(store.read().by_template[template.as_str()].in_time_order);
        check(&all, "in time order");

        // A late event, stamped inside the first window: the template is no longer in time order.
        let late_at = windows[0].0 + chrono::Duration::seconds(1);
        let late = NewEmailEvent {
            template_id: template.clone(),
            kind: EventKind::Opened.into(),
            recipient: "late@example.com".to_owned(),
            occurred_at: Some(time::to_timestamp(&late_at)),
        };
        if let Err(status) = store.append(vec![late]) {
            panic!("{status}");
        }
        all.push((template.clone(), EventKind::Opened, "late@example.com".to_owned(), late_at));
        assert!(!store.read().by_template[template.as_str()].in_time_order);
        check(&all, "after a late append");
    }
}
