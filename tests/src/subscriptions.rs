//! What the subscription tests share: the templates OWNER sees, events appended large enough to
//! fill socket buffers, the sequence of an event message, and the gateway's metrics polled.

use std::time::Duration;

use serde_json::Value;

use crate::ws::WsClient;

use crate::{OWNER, TestStack, metric_sample};

/// Characters of each recipient [`append_large`] appends.
pub const RECIPIENT_CHARS: usize = 4_000;

/// `n` templates OWNER may see (workspaces 1 and 2), lowest ids first, from the seeded data.
pub fn visible_templates(stack: &TestStack, n: usize) -> Vec<u64> {
    let mut ids: Vec<u64> = stack
        .devstack
        .dataset()
        .templates
        .iter()
        .filter(|t| t.workspace == 1 || t.workspace == 2)
        .map(|t| t.id)
        .collect();
    ids.sort_unstable();
    assert!(ids.len() >= n, "the seed has {n} visible templates");
    ids.truncate(n);
    ids
}

/// The sequence of a `next` carrying an event; `None` for any other message.
pub fn event_sequence(message: &Value) -> Option<u64> {
    message["payload"]["data"]["templateEvents"]["sequence"].as_str()?.parse().ok()
}

/// A series of the gateway's `/metrics` (0 when absent).
pub async fn metric(stack: &TestStack, name: &str) -> f64 {
    metric_sample(&stack.metrics_text().await, name).unwrap_or(0.0)
}

/// Polls a metric until it equals `value` (at most 200 × 50 ms: a bound, not a measurement).
pub async fn metric_reaches(stack: &TestStack, name: &str, value: f64) -> bool {
    for _ in 0..200 {
        if metric(stack, name).await == value {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Appends `count` events to `template` through the event store's own `AppendEvents`, signed as
/// the gateway would, each with a recipient of about [`RECIPIENT_CHARS`] characters: frames of
/// 4 KiB, so the socket buffers between the gateway and a client that stopped reading (which
/// loopback autotunes to megabytes) fill after hundreds of events rather than tens of
/// thousands. Returns the sequences the event store assigned.
pub async fn append_large(stack: &TestStack, template: u64, count: usize) -> Vec<u64> {
    use banyan_devstack::proto::events::event_service_client::EventServiceClient;
    use banyan_devstack::proto::events::{AppendEventsRequest, EventKind, NewEmailEvent};
    let mut client = EventServiceClient::connect(stack.devstack.events_url()).await.expect("connects");
    let padding = "x".repeat(RECIPIENT_CHARS);
    let events = (0..count)
        .map(|n| NewEmailEvent {
            template_id: template.to_string(),
            kind: EventKind::Delivered.into(),
            recipient: format!("{n}-{padding}@example.com"),
            occurred_at: None,
        })
        .collect();
    let mut request = tonic::Request::new(AppendEventsRequest { events });
    stack.devstack.service_identity_keys().sign_metadata(request.metadata_mut(), OWNER, None);
    client.append_events(request).await.expect("appended").into_inner().sequences
}

/// Reads a subscription ended by the gateway (at most `bound` messages): the sequences of the
/// events it got, in order, and the error of its last `next` (`Null` when none), up to its
/// `complete`.
pub async fn read_until_complete(socket: &mut WsClient, bound: usize) -> (Vec<u64>, Value) {
    let mut received = Vec::new();
    let mut error = Value::Null;
    for _ in 0..=bound {
        let message = socket.next().await.expect("a message");
        match (message["type"].as_str(), event_sequence(&message)) {
            (Some("next"), Some(sequence)) => received.push(sequence),
            (Some("next"), None) => error = message["payload"]["errors"][0].clone(),
            (Some("complete"), _) => break,
            _ => panic!("unexpected {message}"),
        }
    }
    (received, error)
}
