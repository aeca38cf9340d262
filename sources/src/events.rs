//! The event store's client (`banyan.events.v1.EventService`).

use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use tonic::transport::Channel;

use crate::domain::{EmailEvent, EventKind, EventPage, StatsWindow, TemplateId, TemplateStats};
use crate::error::{Backend, SourceError, from_status};
use crate::fanout::{EventHub, FanoutOptions, SharedEventStream};
use crate::grpc::{self, GrpcOptions};
use crate::identity::Caller;
use crate::metrics::BackendMetrics;
use crate::proto::events as pb;
use crate::service_identity::ServiceIdentityKeys;
use crate::stream_pool::StreamPool;

const BACKEND: Backend = Backend::Events;

/// Live events, as the event store streams them; ends when dropped (the gRPC call is cancelled).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<EmailEvent, SourceError>> + Send>>;

/// A client for the event store over one shared channel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventsClient {
    client: pb::event_service_client::EventServiceClient<Channel>,
    /// Connections for `StreamEvents`, apart from `client`'s, so subscriptions never starve
    /// unary calls.
    streams: StreamPool,
    timeout: Duration,
    /// Signs the caller's identity on every call; `None` sends it unsigned.
    identity: Option<ServiceIdentityKeys>,
    /// Where each call's duration and outcome go.
    metrics: BackendMetrics,
    resilience: crate::resilience::Resilience,
    /// The shared upstream streams of subscriptions ([`crate::fanout`]); shared by every clone.
    hub: EventHub,
}

impl EventsClient {
    /// Builds the client; the channel connects on first use.
    pub fn new(options: &GrpcOptions) -> Result<Self, SourceError> {
        let channel = grpc::channel(BACKEND, options)?;
        Ok(Self {
            client: pb::event_service_client::EventServiceClient::new(channel),
            streams: grpc::stream_pool(BACKEND, options)?,
            timeout: options.timeout,
            identity: None,
            metrics: BackendMetrics::default(),
            resilience: crate::resilience::Resilience::new(BACKEND, options.resilience.clone()),
            hub: EventHub::new(FanoutOptions::default()),
        })
    }

    /// The event store's breaker, retry budget and counters.
    pub fn resilience(&self) -> &crate::resilience::Resilience {
        &self.resilience
    }

    /// The same client, signing the caller's identity on every call with `keys`.
    #[must_use]
    pub fn with_identity(mut self, keys: ServiceIdentityKeys) -> Self {
        self.identity = Some(keys);
        self
    }

    /// The same client, sharing subscriptions' upstream streams as `options` say (a fresh hub:
    /// call it before the first subscription).
    #[must_use]
    pub fn with_fanout(mut self, options: FanoutOptions) -> Self {
        self.hub = EventHub::new(options);
        self
    }

    /// The metrics this client records into.
    pub(crate) fn metrics(&self) -> &BackendMetrics {
        &self.metrics
    }

    /// Follows the events of `templates` for one subscriber, in sequence order: after
    /// `after_sequence` when given (replaying stored events first), else from now on. With
    /// `share_upstream` on (the default), subscribers of the same set of templates share one
    /// upstream stream ([`crate::fanout`]); otherwise each gets its own, opened with `caller`'s
    /// identity. Charges one call to the caller's budget.
    pub async fn subscribe(
        &self,
        caller: &Caller,
        templates: &[TemplateId],
        after_sequence: Option<u64>,
    ) -> Result<SharedEventStream, SourceError> {
        caller.budget.charge()?;
        self.hub.clone().subscribe(self, caller, templates, after_sequence, true).await
    }

    /// The events of `templates` from now on for an execution shared by many subscribers (the
    /// gateway's transport counts each of them as a shared subscriber; this stream is not one).
    /// Always through the fan-out's shared stream: only offered with `share_upstream` on.
    pub async fn subscribe_for_shared_execution(
        &self,
        caller: &Caller,
        templates: &[TemplateId],
    ) -> Result<SharedEventStream, SourceError> {
        self.hub.clone().subscribe(self, caller, templates, None, false).await
    }

    /// Whether subscribers of the same templates share one upstream stream (`share_upstream`).
    pub fn shares_upstream(&self) -> bool {
        self.hub.shares_upstream()
    }

    /// The same client, recording its calls into `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: BackendMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Stats for many templates over a window ending `now`, in one call, in request order.
    pub async fn template_stats(
        &self,
        caller: &Caller,
        ids: &[TemplateId],
        window: StatsWindow,
        now: DateTime<Utc>,
    ) -> Result<Vec<TemplateStats>, SourceError> {
        let message = pb::GetTemplateStatsRequest {
            template_ids: ids.iter().map(|id| id.to_string()).collect(),
            window: Some(pb::TimeWindow {
                start: Some(grpc::to_timestamp(now - window.duration())),
                end: Some(grpc::to_timestamp(now)),
            }),
        };
        const RPC: &str = "EventService/GetTemplateStats";
        let kind = grpc::read_call(&self.resilience, RPC, &message, caller);
        let response =
            grpc::call(&self.metrics, &self.resilience, caller, RPC, self.timeout, kind, |timeout| {
                let mut client = self.client.clone();
                let request = grpc::request(message.clone(), caller, self.identity.as_ref(), timeout);
                async move { client.get_template_stats(request).await }
            })
            .await?;
        response
            .stats
            .into_iter()
            .map(|s| {
                Ok(TemplateStats {
                    template_id: grpc::parse_template_id(BACKEND, &s.template_id)?,
                    sent: s.sent,
                    delivered: s.delivered,
                    opened: s.opened,
                    clicked: s.clicked,
                    bounced: s.bounced,
                    unique_opens: s.unique_opens,
                    computed_at: None,
                })
            })
            .collect()
    }

    /// One page of a template's events, newest first.
    pub async fn list_events(
        &self,
        caller: &Caller,
        template: TemplateId,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<EventPage, SourceError> {
        let message = pb::ListEventsRequest {
            template_id: template.to_string(),
            page_size,
            page_token: page_token.unwrap_or_default().to_owned(),
        };
        const RPC: &str = "EventService/ListEvents";
        let kind = grpc::read_call(&self.resilience, RPC, &message, caller);
        let response =
            grpc::call(&self.metrics, &self.resilience, caller, RPC, self.timeout, kind, |timeout| {
                let mut client = self.client.clone();
                let request = grpc::request(message.clone(), caller, self.identity.as_ref(), timeout);
                async move { client.list_events(request).await }
            })
            .await?;
        Ok(EventPage {
            events: response.events.into_iter().map(event_from_wire).collect::<Result<_, _>>()?,
            next_page_token: Some(response.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    /// Follows new events of `templates` (after `after_sequence`, or from now on when 0), with
    /// `caller`'s identity, on a stream of its own. Charges one call to the caller's budget.
    ///
    /// The deadline covers opening the stream only; the stream then lives until dropped, which
    /// cancels the gRPC call.
    pub async fn stream_events(
        &self,
        caller: &Caller,
        templates: &[TemplateId],
        after_sequence: u64,
    ) -> Result<EventStream, SourceError> {
        // A stream is not a unary call through the resilience layer: charged here.
        caller.budget.charge()?;
        self.open_stream(caller, templates, after_sequence).await
    }

    /// Opens one `StreamEvents` call signed for `caller`, counted in the upstream-streams gauge
    /// while it lives.
    pub(crate) async fn open_stream(
        &self,
        caller: &Caller,
        templates: &[TemplateId],
        after_sequence: u64,
    ) -> Result<EventStream, SourceError> {
        let message = pb::StreamEventsRequest {
            template_ids: templates.iter().map(|id| id.to_string()).collect(),
            after_sequence,
        };
        // The lease holds the stream's place on its connection until the stream is dropped.
        let (channel, lease) = self.streams.lease();
        let mut client = pb::event_service_client::EventServiceClient::new(channel);
        let request = grpc::streaming_request(message, caller, self.identity.as_ref());
        let streaming = grpc::call_once(
            &self.metrics,
            BACKEND,
            "EventService/StreamEvents",
            self.timeout,
            client.stream_events(request),
        )
        .await?;
        let open = self.metrics.upstream_stream();
        let timeout = self.timeout;
        Ok(streaming
            .map(move |item| {
                let _held = (&lease, &open);
                item
            })
            .map(move |item| match item {
                Ok(response) => response
                    .event
                    .ok_or_else(|| SourceError::BadResponse {
                        backend: BACKEND,
                        detail: "a streamed message has no event".to_owned(),
                    })
                    .and_then(event_from_wire),
                Err(status) => Err(from_status(BACKEND, timeout, &status)),
            })
            // A failed stream is over: its error is the last item (tonic may keep yielding the
            // transport's error after a reset).
            .scan(false, |failed, item| {
                let end = std::mem::replace(failed, item.is_err());
                futures::future::ready((!end).then_some(item))
            })
            .boxed())
    }
}

fn event_from_wire(event: pb::EmailEvent) -> Result<EmailEvent, SourceError> {
    let kind = match pb::EventKind::try_from(event.kind) {
        Ok(pb::EventKind::Sent) => EventKind::Sent,
        Ok(pb::EventKind::Delivered) => EventKind::Delivered,
        Ok(pb::EventKind::Opened) => EventKind::Opened,
        Ok(pb::EventKind::Clicked) => EventKind::Clicked,
        Ok(pb::EventKind::Bounced) => EventKind::Bounced,
        Ok(pb::EventKind::Unspecified) | Err(_) => {
            return Err(SourceError::BadResponse {
                backend: BACKEND,
                detail: format!("unknown event kind {}", event.kind),
            });
        }
    };
    Ok(EmailEvent {
        sequence: event.sequence,
        template_id: grpc::parse_template_id(BACKEND, &event.template_id)?,
        kind,
        recipient: event.recipient,
        occurred_at: grpc::from_timestamp(BACKEND, event.occurred_at)?,
    })
}
