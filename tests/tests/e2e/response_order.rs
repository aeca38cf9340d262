//! Response objects keep the order of the selection set (issue 6, item 12), read from the raw
//! body: a parsed `serde_json::Value` would sort its keys and hide the order under test.

use std::fmt;

use banyan_devstack::{Backend, EventKind, Fault};
use banyan_tests::subscriptions::metric_reaches;
use banyan_tests::ws::WsClient;
use banyan_tests::{OWNER, TestStack, eventually, template_id};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::json;

/// JSON with objects as ordered lists of entries.
#[derive(Debug)]
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Scalar,
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Ordered>()? {
            entries.push((key, value));
        }
        Ok(Ordered::Object(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Ordered>()? {
            items.push(item);
        }
        Ok(Ordered::Array(items))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
        Ok(Ordered::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
        Ok(Ordered::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Scalar)
    }
}

impl Ordered {
    fn keys(&self) -> Vec<&str> {
        match self {
            Self::Object(entries) => entries.iter().map(|(key, _)| key.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    fn get(&self, key: &str) -> &Ordered {
        match self {
            Self::Object(entries) => {
                entries.iter().find(|(k, _)| k == key).map(|(_, v)| v).unwrap_or(&Ordered::Scalar)
            }
            _ => &Ordered::Scalar,
        }
    }

    fn items(&self) -> &[Ordered] {
        match self {
            Self::Array(items) => items,
            _ => &[],
        }
    }
}

/// The raw body of a 200 answer to `query` as the owner: key order is read from the bytes.
async fn raw_body(stack: &TestStack, query: &str) -> Vec<u8> {
    let response = stack
        .http()
        .post(stack.graphql_url())
        .header("authorization", format!("Token {}", stack.token(OWNER)))
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("a body").to_vec()
}

#[tokio::test]
async fn objects_keep_the_order_of_the_selection_set() {
    let stack = TestStack::start().await;
    // Not alphabetical anywhere; aliases, a fragment, an inline fragment, lists within lists.
    let query = r#"
        query Order {
          me { username fullName id }
          ws: workspaces {
            name
            id
            ...Contents
          }
          __typename
        }
        fragment Contents on Workspace {
          tpl: templates(first: 3) {
            totalCount
            nodes { status name ... on Template { id } createdBy { username id } }
          }
          members { role user { username id } }
        }
    "#;
    let body = raw_body(&stack, query).await;
    let body: Ordered = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body.keys(), ["data"], "no errors");
    let data = body.get("data");
    assert_eq!(data.keys(), ["me", "ws", "__typename"]);
    assert_eq!(data.get("me").keys(), ["username", "fullName", "id"]);

    let workspaces = data.get("ws").items();
    assert!(workspaces.len() >= 2, "the owner has two workspaces");
    let mut templates_seen = 0;
    let mut members_seen = 0;
    for workspace in workspaces {
        assert_eq!(workspace.keys(), ["name", "id", "tpl", "members"]);
        assert_eq!(workspace.get("tpl").keys(), ["totalCount", "nodes"]);
        for template in workspace.get("tpl").get("nodes").items() {
            templates_seen += 1;
            assert_eq!(template.keys(), ["status", "name", "id", "createdBy"]);
            assert_eq!(template.get("createdBy").keys(), ["username", "id"]);
        }
        for member in workspace.get("members").items() {
            members_seen += 1;
            assert_eq!(member.keys(), ["role", "user"]);
            assert_eq!(member.get("user").keys(), ["username", "id"]);
        }
    }
    assert!(templates_seen >= 2 && members_seen >= 2, "lists in lists were checked");
    stack.stop().await;
}

/// A field that failed is put back as `null` after execution; it must stand at its place in the
/// selection set, not after its siblings.
#[tokio::test]
async fn a_failed_field_put_back_as_null_keeps_its_place() {
    let stack = TestStack::start().await;
    stack.devstack.faults().set(Backend::Events, Fault { error_rate: 1.0, ..Fault::default() });
    let query = format!(
        r#"{{ template(id: "{}") {{ stats {{ sent }} name recent: recentEvents(first: 1) {{ nodes {{ kind }} }} id }} __typename }}"#,
        template_id(1)
    );
    let body = raw_body(&stack, &query).await;
    let raw: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert!(raw["data"]["template"]["stats"].is_null() && raw["data"]["template"]["recent"].is_null());
    let body: Ordered = serde_json::from_slice(&body).expect("JSON");
    let data = body.get("data");
    assert_eq!(data.keys(), ["template", "__typename"]);
    assert_eq!(data.get("template").keys(), ["stats", "name", "recent", "id"]);
    stack.stop().await;
}

/// Over graphql-transport-ws too, read from the raw frames: the `next` of a query (its own
/// execution) and an event of a shared subscription (`ws::shared`, one serialization for every
/// subscriber) keep the order of the selection set, where a payload passed through
/// `serde_json::Value` would come out sorted.
#[tokio::test]
async fn websocket_payloads_keep_the_order_of_the_selection_set() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("q", "{ me { id fullName } __typename }", json!({})).await;
    let text = socket.next_text().await.expect("next");
    let frame: Ordered = serde_json::from_str(&text).expect("JSON");
    assert_eq!(frame.keys(), ["id", "type", "payload"], "{text}");
    let data = frame.get("payload").get("data");
    assert_eq!(data.keys(), ["me", "__typename"], "{text}");
    assert_eq!(data.get("me").keys(), ["id", "fullName"], "{text}");
    assert_eq!(socket.next().await.expect("complete")["type"], "complete");

    let template = stack
        .devstack
        .dataset()
        .templates
        .iter()
        .filter(|t| t.workspace == 1)
        .map(|t| t.id)
        .min()
        .expect("a template OWNER sees");
    let live =
        "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { templateId sequence kind } }";
    socket.subscribe("s", live, json!({ "ids": [template_id(template)] })).await;
    let shared = metric_reaches(&stack, "banyan_subscription_shared_executions", 1.0).await;
    assert!(shared, "the subscription joined a shared execution");
    // Events "from now" are those appended once the event store listens.
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await, "the upstream stream listens");
    stack.devstack.append_events(vec![(template, EventKind::Opened)]).await;
    let text = socket.next_text().await.expect("an event");
    let frame: Ordered = serde_json::from_str(&text).expect("JSON");
    let event = frame.get("payload").get("data").get("templateEvents");
    assert_eq!(event.keys(), ["templateId", "sequence", "kind"], "{text}");
    stack.stop().await;
}
