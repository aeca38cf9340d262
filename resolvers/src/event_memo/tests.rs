//! The memo and its key over a schema of their own: a subscription yielding fixed events, no
//! backend. Expected values are written from the events' own fields, not by the resolvers.

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::{Context, EmptyMutation, Object, Request, Schema, Subscription, Variables};
use banyan_sources::BackendMetrics;
use banyan_sources::domain::{EmailEvent, EventKind, TemplateId};
use chrono::{TimeZone, Utc};
use futures::{Stream, StreamExt};
use serde_json::{Value as Json, json};

use super::{EventMemo, SelectionKey, SubscribedEvent};

/// Sequences of the events every subscription yields.
const SEQUENCES: [u64; 3] = [101, 102, 103];

fn events() -> Vec<Arc<EmailEvent>> {
    SEQUENCES
        .iter()
        .map(|&sequence| {
            Arc::new(EmailEvent {
                sequence,
                template_id: TemplateId(7),
                kind: EventKind::Opened,
                recipient: format!("r{sequence}@example.com"),
                occurred_at: Utc.timestamp_opt(1_700_000_000, 0).single().expect("a valid instant"),
            })
        })
        .collect()
}

/// The keys the subscriptions computed, in order.
#[derive(Default, Clone)]
struct Keys(Arc<Mutex<Vec<Option<SelectionKey>>>>);

impl Keys {
    /// The key of the one subscription that ran.
    fn only(&self) -> Option<SelectionKey> {
        let keys = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(keys.len(), 1, "one subscription ran");
        keys[0].clone()
    }
}

struct TestQuery;

#[Object]
impl TestQuery {
    async fn ok(&self) -> bool {
        true
    }
}

struct TestSubscription;

#[Subscription]
impl TestSubscription {
    /// `count` of the fixed events, keyed by this subscription's selection.
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 3)] count: usize,
    ) -> impl Stream<Item = SubscribedEvent> + use<> {
        let key = SelectionKey::of(ctx);
        if let Ok(keys) = ctx.data::<Keys>() {
            keys.0.lock().unwrap_or_else(PoisonError::into_inner).push(key.clone());
        }
        futures::stream::iter(
            events().into_iter().take(count).map(move |event| SubscribedEvent::new(event, key.clone())),
        )
    }

    /// The fixed events, all shared under one key whatever is selected: lets a test share a
    /// selection whose resolution fails.
    async fn forced(&self) -> impl Stream<Item = SubscribedEvent> + use<> {
        let key = SelectionKey(Arc::from("forced"));
        futures::stream::iter(
            events().into_iter().map(move |event| SubscribedEvent::new(event, Some(key.clone()))),
        )
    }
}

type TestSchema = Schema<TestQuery, EmptyMutation, TestSubscription>;

fn schema(metrics: &BackendMetrics, keys: &Keys) -> TestSchema {
    Schema::build(TestQuery, EmptyMutation, TestSubscription)
        .data(EventMemo::new(metrics.clone()))
        .data(keys.clone())
        .finish()
}

/// Every response of one subscription, as JSON (`data` and `errors`).
async fn run(schema: &TestSchema, query: &str, variables: Json) -> Vec<Json> {
    schema
        .execute_stream(Request::new(query).variables(Variables::from_json(variables)))
        .map(|response| serde_json::to_value(&response).expect("a response serializes"))
        .collect()
        .await
}

/// The key `query` computes (its stream yields nothing).
async fn key_of(query: &str, variables: Json) -> Option<SelectionKey> {
    let keys = Keys::default();
    let schema = schema(&BackendMetrics::new(), &keys);
    let responses = run(&schema, query, variables).await;
    assert!(responses.is_empty(), "no event asked for: {responses:?}");
    keys.only()
}

#[tokio::test]
async fn one_selection_is_resolved_once_per_event_whoever_subscribes() {
    let (metrics, keys) = (BackendMetrics::new(), Keys::default());
    let schema = schema(&metrics, &keys);
    let query = "subscription { events { sequence kind recipient } }";
    let expected: Vec<Json> = SEQUENCES
        .iter()
        .map(|sequence| {
            json!({ "data": { "events": {
                "sequence": sequence.to_string(),
                "kind": "OPENED",
                "recipient": format!("r{sequence}@example.com"),
            } } })
        })
        .collect();
    for subscriber in 0..3 {
        assert_eq!(run(&schema, query, json!({})).await, expected, "subscriber {subscriber}");
    }
    assert_eq!(metrics.subscription_event_resolutions(), 3, "once per event");
    assert_eq!(metrics.subscription_event_reuses(), 6, "the two later subscribers reused every event");
}

#[tokio::test]
async fn different_selections_resolve_each_and_keep_their_shape() {
    let (metrics, keys) = (BackendMetrics::new(), Keys::default());
    let schema = schema(&metrics, &keys);
    let plain = run(&schema, "subscription { events(count: 1) { sequence kind } }", json!({})).await;
    let aliased = run(&schema, "subscription { events(count: 1) { at: sequence kind } }", json!({})).await;
    assert_eq!(plain, vec![json!({ "data": { "events": { "sequence": "101", "kind": "OPENED" } } })]);
    assert_eq!(aliased, vec![json!({ "data": { "events": { "at": "101", "kind": "OPENED" } } })]);
    assert_eq!(metrics.subscription_event_resolutions(), 2);
    assert_eq!(metrics.subscription_event_reuses(), 0);
}

#[tokio::test]
async fn the_key_is_the_selection_as_it_runs_not_its_spelling() {
    let plain = key_of("subscription { events(count: 0) { sequence kind } }", json!({})).await;
    assert!(plain.is_some(), "caller-independent leaves are shared");
    let same = [
        ("subscription Named { renamed: events(count: 0) { sequence kind } }", json!({})),
        ("fragment F on EmailEvent { sequence kind } subscription { events(count: 0) { ...F } }", json!({})),
        ("subscription { events(count: 0) { ... on EmailEvent { sequence } ... { kind } } }", json!({})),
        (
            "subscription($with: Boolean!) { events(count: 0) { sequence kind recipient @include(if: $with) } }",
            json!({ "with": false }),
        ),
        (
            "subscription($without: Boolean!) { events(count: 0) { sequence recipient @skip(if: $without) kind } }",
            json!({ "without": true }),
        ),
    ];
    for (query, variables) in same {
        assert_eq!(key_of(query, variables).await, plain, "{query}");
    }
    let different = [
        ("subscription { events(count: 0) { at: sequence kind } }", json!({})),
        ("subscription { events(count: 0) { kind sequence } }", json!({})),
        ("subscription { events(count: 0) { sequence kind __typename } }", json!({})),
        (
            "subscription($with: Boolean!) { events(count: 0) { sequence kind recipient @include(if: $with) } }",
            json!({ "with": true }),
        ),
    ];
    for (query, variables) in different {
        let key = key_of(query, variables).await;
        assert!(key.is_some(), "shared: {query}");
        assert_ne!(key, plain, "{query}");
    }
}

#[tokio::test]
async fn a_selection_reaching_the_template_is_not_shared() {
    let unshared = [
        "subscription { events(count: 0) { sequence template { name } } }",
        "fragment T on EmailEvent { template { id } } subscription { events(count: 0) { sequence ...T } }",
        "subscription { events(count: 0) { sequence ... on EmailEvent { kind template { id } } } }",
    ];
    for query in unshared {
        assert_eq!(key_of(query, json!({})).await, None, "{query}");
    }
}

/// `template` fails here (no request scope): every subscriber gets its own error, and the value
/// that came with it is never handed to another one.
#[tokio::test]
async fn a_resolution_that_reported_an_error_is_not_reused() {
    let (metrics, keys) = (BackendMetrics::new(), Keys::default());
    let schema = schema(&metrics, &keys);
    for subscriber in 0..2 {
        let responses = run(&schema, "subscription { forced { sequence template { id } } }", json!({})).await;
        assert_eq!(responses.len(), SEQUENCES.len());
        for response in responses {
            assert_eq!(
                response["errors"][0]["path"],
                json!(["forced", "template"]),
                "subscriber {subscriber}: {response}"
            );
        }
    }
    assert_eq!(metrics.subscription_event_resolutions(), 6, "each subscriber resolved each event");
    assert_eq!(metrics.subscription_event_reuses(), 0);
}
