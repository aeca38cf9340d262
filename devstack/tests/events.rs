//! The `EventService` stand-in over a real socket, and the monolith's legacy analytics next to it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use banyan_devstack::dataset::OWNER_USER;
use banyan_devstack::proto::events::{
    AppendEventsRequest, GetTemplateStatsRequest, ListEventsRequest, NewEmailEvent, StreamEventsRequest,
    TimeWindow,
};
use banyan_devstack::{DevStack, DevStackConfig, EventGeneratorConfig, EventKind};
use chrono::{DateTime, Utc};
use common::{Api, events_client, eventually, start};
use tokio_stream::StreamExt;
use tonic::Code;

fn ts(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

fn window_request(ids: &[&str], hours: i64) -> GetTemplateStatsRequest {
    let end = Utc::now();
    let start = end - chrono::Duration::hours(hours);
    GetTemplateStatsRequest {
        template_ids: ids.iter().map(|s| s.to_string()).collect(),
        window: Some(TimeWindow { start: Some(ts(start)), end: Some(ts(end)) }),
    }
}

#[tokio::test]
async fn legacy_analytics_agree_with_get_template_stats() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let mut client = events_client(&stack).await;
    for (window, hours) in [("24h", 24), ("7d", 7 * 24), ("30d", 30 * 24), ("90d", 90 * 24)] {
        for template in [1_u64, 17, 250] {
            let (status, legacy) =
                api.get(&format!("/api/v1/templates/{template}/analytics/?window={window}")).await;
            assert_eq!(status, 200);
            let id = template.to_string();
            let stats = client.get_template_stats(window_request(&[&id], hours)).await.unwrap().into_inner();
            let s = &stats.stats[0];
            assert_eq!(s.template_id, id);
            assert_eq!(legacy["template"], template);
            assert_eq!(legacy["window"], window);
            for (field, value) in [
                ("sent", s.sent),
                ("delivered", s.delivered),
                ("opened", s.opened),
                ("clicked", s.clicked),
                ("bounced", s.bounced),
                ("unique_opens", s.unique_opens),
            ] {
                assert_eq!(legacy[field], value, "{field} of {template} over {window}");
            }
            let rate = if s.delivered == 0 { 0.0 } else { s.opened as f64 / s.delivered as f64 };
            assert!((legacy["open_rate"].as_f64().unwrap() - rate).abs() < 1e-9);
            let rate = if s.delivered == 0 { 0.0 } else { s.clicked as f64 / s.delivered as f64 };
            assert!((legacy["click_rate"].as_f64().unwrap() - rate).abs() < 1e-9);

            // And both agree with the seeded events.
            let start = stack.dataset().anchor - chrono::Duration::hours(hours);
            let seeded = stack
                .dataset()
                .events
                .iter()
                .filter(|e| e.template == template && e.occurred_at >= start && e.kind == EventKind::Sent)
                .count() as u64;
            assert_eq!(s.sent, seeded);
        }
    }
    // Over 90 days every template has had sends.
    let (_, legacy) = api.get("/api/v1/templates/1/analytics/?window=90d").await;
    assert!(legacy["sent"].as_u64().unwrap() > 0);
    // The default window is 7 days.
    let (_, default) = api.get("/api/v1/templates/1/analytics/").await;
    assert_eq!(default["window"], "7d");
}

#[tokio::test]
async fn stats_keep_request_order_and_zero_unknown_ids() {
    let stack = start().await;
    let mut client = events_client(&stack).await;
    let ids = ["5", "nope", "3", "5"];
    let stats = client.get_template_stats(window_request(&ids, 90 * 24)).await.unwrap().into_inner().stats;
    let got: Vec<&str> = stats.iter().map(|s| s.template_id.as_str()).collect();
    assert_eq!(got, ids);
    assert_eq!(stats[1].sent + stats[1].delivered + stats[1].opened, 0);
    assert!(stats[0].sent > 0);
    assert_eq!(stats[0], stats[3]);
    assert!(stats[0].unique_opens <= stats[0].opened);
    assert_eq!(stack.calls().count("EventService/GetTemplateStats"), 1);

    let no_window = GetTemplateStatsRequest { template_ids: vec!["1".into()], window: None };
    assert_eq!(client.get_template_stats(no_window).await.unwrap_err().code(), Code::InvalidArgument);
    let ids: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let too_many = window_request(&refs, 1);
    assert_eq!(client.get_template_stats(too_many).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn append_is_atomic_and_numbers_in_order() {
    let stack = start().await;
    let mut client = events_client(&stack).await;
    let head = stack.dataset().events.len() as u64;
    let event = |kind: EventKind| NewEmailEvent {
        template_id: "12".into(),
        kind: kind.into(),
        recipient: "ana@example.com".into(),
        occurred_at: None,
    };
    let bad = AppendEventsRequest { events: vec![event(EventKind::Sent), event(EventKind::Unspecified)] };
    let status = client.append_events(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("events[1]"), "{}", status.message());

    let good = AppendEventsRequest { events: vec![event(EventKind::Sent), event(EventKind::Delivered)] };
    let sequences = client.append_events(good).await.unwrap().into_inner().sequences;
    assert_eq!(sequences, vec![head + 1, head + 2], "the rejected batch left no trace");
    assert_eq!(stack.append_events(vec![(12, EventKind::Opened)]).await, vec![head + 3]);

    let stats = client.get_template_stats(window_request(&["12"], 1)).await.unwrap().into_inner().stats;
    assert_eq!((stats[0].sent, stats[0].delivered, stats[0].opened), (1, 1, 1));
    assert_eq!(stack.calls().count("EventService/AppendEvents"), 2, "append_events is not a call");
}

#[tokio::test]
async fn list_events_pages_newest_first() {
    let stack = start().await;
    let mut client = events_client(&stack).await;
    let mut expected: Vec<u64> =
        stack.dataset().events.iter().filter(|e| e.template == 9).map(|e| e.sequence).collect();
    expected.reverse();
    assert!(expected.len() > 40, "several pages");

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let request = ListEventsRequest { template_id: "9".into(), page_size: 40, page_token: token.clone() };
        let page = client.list_events(request).await.unwrap().into_inner();
        assert!(page.events.len() <= 40);
        assert!(page.events.iter().all(|e| e.template_id == "9"));
        seen.extend(page.events.iter().map(|e| e.sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, expected);

    let first = client
        .list_events(ListEventsRequest { template_id: "9".into(), page_size: 1, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    let event = &first.events[0];
    let seeded = stack.dataset().events.iter().find(|e| e.sequence == event.sequence).unwrap();
    assert_eq!(event.recipient, &*seeded.recipient);
    assert_eq!(event.kind, i32::from(seeded.kind));
    assert_eq!(event.occurred_at.as_ref().unwrap().seconds, seeded.occurred_at.timestamp());

    for (page_size, page_token) in [
        (0, String::new()),
        (101, String::new()),
        (10, "not-a-token".to_string()),
        (10, first.next_page_token.clone()),
    ] {
        // The last case is a valid token of template 9 used for template 10.
        let template_id = if page_token == first.next_page_token { "10" } else { "9" };
        let request = ListEventsRequest { template_id: template_id.into(), page_size, page_token };
        assert_eq!(client.list_events(request).await.unwrap_err().code(), Code::InvalidArgument);
    }
    let empty = ListEventsRequest { template_id: "unknown".into(), page_size: 10, page_token: String::new() };
    let page = client.list_events(empty).await.unwrap().into_inner();
    assert!(page.events.is_empty() && page.next_page_token.is_empty());
}

#[tokio::test]
async fn stream_replays_then_goes_live_and_ends_when_the_client_leaves() {
    let stack = start().await;
    let mut client = events_client(&stack).await;
    let before = stack
        .append_events(vec![(7, EventKind::Sent), (8, EventKind::Sent), (7, EventKind::Delivered)])
        .await;

    let request = StreamEventsRequest { template_ids: vec!["7".into()], after_sequence: before[0] - 1 };
    let mut stream = client.stream_events(request).await.unwrap().into_inner();
    eventually("the stream to be counted", || stack.active_event_streams() == 1).await;

    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .event
            .unwrap()
    };
    // Replay: only template 7's events after the given sequence.
    assert_eq!(next().await.sequence, before[0]);
    assert_eq!(next().await.sequence, before[2]);
    // Live: template 8 is filtered out.
    let live = stack.append_events(vec![(8, EventKind::Opened), (7, EventKind::Opened)]).await;
    let event = next().await;
    assert_eq!((event.sequence, event.template_id.as_str()), (live[1], "7"));
    assert_eq!(event.kind, i32::from(EventKind::Opened));
    let live = stack.append_events(vec![(7, EventKind::Clicked)]).await;
    assert_eq!(next().await.sequence, live[0]);

    drop(stream);
    eventually("the server-side stream to end", || stack.active_event_streams() == 0).await;

    // after_sequence = 0: only what comes next.
    let request = StreamEventsRequest { template_ids: vec!["7".into(), "8".into()], after_sequence: 0 };
    let mut stream = client.stream_events(request).await.unwrap().into_inner();
    eventually("the stream to be counted", || stack.active_event_streams() == 1).await;
    let live = stack.append_events(vec![(8, EventKind::Sent)]).await;
    let event = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(event.event.unwrap().sequence, live[0]);
    // The whole client going away ends it too.
    drop(stream);
    drop(client);
    eventually("the server-side stream to end", || stack.active_event_streams() == 0).await;

    let mut client = events_client(&stack).await;
    let none = StreamEventsRequest { template_ids: vec![], after_sequence: 0 };
    assert_eq!(client.stream_events(none).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(stack.active_event_streams(), 0);
}

#[tokio::test]
async fn stream_replays_seeded_history_and_survives_a_burst() {
    let stack = start().await;
    let mut client = events_client(&stack).await;
    let seeded: Vec<u64> =
        stack.dataset().events.iter().filter(|e| e.template == 3).map(|e| e.sequence).collect();

    let request = StreamEventsRequest { template_ids: vec!["3".into()], after_sequence: 1 };
    let mut stream = client.stream_events(request).await.unwrap().into_inner();
    // A burst far larger than the live buffer while the client is not reading: the stream lags and
    // catches up from the log, with no gap and no duplicate.
    let mut burst = Vec::new();
    for _ in 0..3 {
        burst.extend(stack.append_events(vec![(3, EventKind::Sent); 5_000]).await);
    }
    let expected: Vec<u64> = seeded.iter().copied().filter(|s| *s > 1).chain(burst.iter().copied()).collect();
    let mut got = Vec::with_capacity(expected.len());
    while got.len() < expected.len() {
        let item =
            tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
        got.push(item.event.unwrap().sequence);
    }
    assert_eq!(got, expected);
    drop(stream);
    eventually("the server-side stream to end", || stack.active_event_streams() == 0).await;
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let stack = start().await;
    let mut client = events_client(&stack).await;
    let request = StreamEventsRequest { template_ids: vec!["1".into()], after_sequence: 0 };
    let mut stream = client.stream_events(request).await.unwrap().into_inner();
    eventually("the stream to be counted", || stack.active_event_streams() == 1).await;
    let started = std::time::Instant::now();
    stack.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap();
    assert!(end.is_none() || end.unwrap().is_err());
}

#[tokio::test]
async fn generator_appends_at_the_configured_rate() {
    let config = DevStackConfig {
        event_generator: EventGeneratorConfig { rate_per_second: 200.0, template_ids: vec![42] },
        ..DevStackConfig::default()
    };
    let stack = DevStack::start(config).await.unwrap();
    let mut client = events_client(&stack).await;
    let request = StreamEventsRequest { template_ids: vec!["42".into()], after_sequence: 0 };
    let mut stream = client.stream_events(request).await.unwrap().into_inner();
    for _ in 0..20 {
        let item =
            tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
        let event = item.event.unwrap();
        assert_eq!(event.template_id, "42");
        assert!(event.sequence > stack.dataset().events.len() as u64);
    }
    stack.shutdown().await;
}

/// The legacy analytics of one template over 90 days, as the six counts.
async fn legacy_counts(api: &Api, template: u64) -> [u64; 6] {
    let (status, legacy) = api.get(&format!("/api/v1/templates/{template}/analytics/?window=90d")).await;
    assert_eq!(status, 200);
    ["sent", "delivered", "opened", "clicked", "bounced", "unique_opens"].map(|f| legacy[f].as_u64().unwrap())
}

/// The event store's counts of one template over 90 days.
async fn service_counts(
    client: &mut banyan_devstack::proto::events::event_service_client::EventServiceClient<common::Signed>,
    template: u64,
) -> [u64; 6] {
    let id = template.to_string();
    let stats = client.get_template_stats(window_request(&[&id], 90 * 24)).await.unwrap().into_inner();
    let s = &stats.stats[0];
    [s.sent, s.delivered, s.opened, s.clicked, s.bounced, s.unique_opens]
}

#[tokio::test]
async fn ingested_events_reach_the_monoliths_own_table_unless_the_sync_is_off() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let mut client = events_client(&stack).await;
    let seeded = legacy_counts(&api, 9).await;
    assert_eq!(service_counts(&mut client, 9).await, seeded);

    // gRPC AppendEvents is ingestion: both sides see it.
    let new = |kind: EventKind| NewEmailEvent {
        template_id: "9".into(),
        kind: kind.into(),
        recipient: "first-time-opener@example.com".into(),
        occurred_at: None,
    };
    client
        .append_events(AppendEventsRequest { events: vec![new(EventKind::Sent), new(EventKind::Opened)] })
        .await
        .unwrap();
    let expected = [seeded[0] + 1, seeded[1], seeded[2] + 1, seeded[3], seeded[4], seeded[5] + 1];
    assert_eq!(service_counts(&mut client, 9).await, expected);
    assert_eq!(legacy_counts(&api, 9).await, expected);

    // With the dual write off, the monolith's table falls behind: the sides disagree.
    stack.set_legacy_sync(false);
    stack.append_events(vec![(9, EventKind::Sent), (9, EventKind::Bounced)]).await;
    let service = service_counts(&mut client, 9).await;
    assert_eq!(service[0], expected[0] + 1);
    assert_eq!(service[4], expected[4] + 1);
    assert_eq!(legacy_counts(&api, 9).await, expected, "the legacy view missed them");

    // The admin knob turns it back on; what was missed stays missed.
    let admin = format!("{}/__devstack/legacy-sync", stack.monolith_url());
    let response = api.client.put(&admin).body(r#"{"enabled": true}"#).send().await.unwrap();
    assert_eq!(common::read(response).await, (200, serde_json::json!({"enabled": true})));
    stack.append_events(vec![(9, EventKind::Clicked)]).await;
    assert_eq!(service_counts(&mut client, 9).await[3], expected[3] + 1);
    let legacy = legacy_counts(&api, 9).await;
    assert_eq!((legacy[0], legacy[3]), (expected[0], expected[3] + 1));
}

#[tokio::test]
async fn generated_events_reach_both_sides() {
    let config = DevStackConfig {
        event_generator: EventGeneratorConfig { rate_per_second: 50.0, template_ids: vec![11] },
        ..DevStackConfig::default()
    };
    let stack = DevStack::start(config).await.unwrap();
    let api = Api::new(&stack, OWNER_USER);
    let mut client = events_client(&stack).await;
    let seeded_sent =
        stack.dataset().events.iter().filter(|e| e.template == 11 && e.kind == EventKind::Sent).count()
            as u64;
    // Generation goes on while we read, so look for a moment when both sides read the same
    // counts after new sends arrived (bounded).
    let mut agreed = None;
    for _ in 0..200 {
        let legacy = legacy_counts(&api, 11).await;
        let service = service_counts(&mut client, 11).await;
        if legacy == service && service[0] > seeded_sent {
            agreed = Some(service);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(agreed.is_some(), "generated events reached the event store and the monolith's table");
    stack.shutdown().await;
}
