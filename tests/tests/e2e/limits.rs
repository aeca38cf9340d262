//! Limits over real sockets: the small hostile documents that used to abort or stall the
//! gateway (issue 6, item 0), each refused with its code while the gateway keeps serving; the
//! standard introspection query (item 1); which limit fired, by its code (item 10). Most hostile
//! shapes are exercised at the library level (gateway/src/limits/tests.rs); these are the ones
//! worth the sockets.

use std::time::Duration;

use banyan_tests::ws::{TRANSPORT_WS, WsClient};
use banyan_tests::{GraphqlResponse, OWNER, TestStack, read, template_id};
use serde_json::{Value, json};

const GQL: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// graphql-js's `getIntrospectionQuery({ descriptions: true, specifiedByUrl: true,
/// directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true })`, as
/// GraphiQL and codegen send it.
const INTROSPECTION_QUERY: &str = include_str!("../../fixtures/introspection-query.graphql");

fn nest(open: &str, middle: &str, close: &str, n: usize) -> String {
    format!("{}{middle}{}", open.repeat(n), close.repeat(n))
}

/// POSTs `query` anonymously, accepting `accept`.
async fn post(stack: &TestStack, query: &str, accept: &str) -> GraphqlResponse {
    let response = stack
        .http()
        .post(stack.graphql_url())
        .header("content-type", JSON)
        .header("accept", accept)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("the gateway answers");
    read(response).await
}

/// A request error: 400 without `data` for graphql-response+json, 200 with `errors` for JSON,
/// with exactly `code`.
async fn assert_refused(stack: &TestStack, query: &str, code: &str) {
    let strict = post(stack, query, GQL).await;
    assert_eq!(strict.status, 400, "{code}: {:?}", strict.body);
    assert!(strict.body.get("data").is_none(), "{code}");
    assert_eq!(strict.error_codes(), [code]);
    let legacy = post(stack, query, JSON).await;
    assert_eq!(legacy.status, 200, "{code}");
    assert_eq!(legacy.error_codes(), [code]);
}

/// The three documents of the issue.
fn list_literal_2000_deep() -> String {
    format!(
        "{{ templates(workspaceId: \"x\", search: {}) {{ totalCount }} }}",
        nest("[", "\"x\"", "]", 2_000)
    )
}

fn input_object_3000_deep() -> String {
    format!("{{ __type(name: {}) {{ name }} }}", nest("{a:", "1", "}", 3_000))
}

fn fragment_fan_out_30() -> String {
    let mut query = String::from("{ ...F29 } fragment F0 on Query { __typename }");
    for i in 1..30 {
        query.push_str(&format!(" fragment F{i} on Query {{ ...F{p} ...F{p} }}", p = i - 1));
    }
    query
}

#[tokio::test]
async fn small_hostile_documents_are_refused_and_the_gateway_lives() {
    let stack = TestStack::start().await;
    assert_refused(&stack, &list_literal_2000_deep(), "NESTING_TOO_DEEP").await;
    assert_refused(&stack, &input_object_3000_deep(), "NESTING_TOO_DEEP").await;
    assert_refused(&stack, &fragment_fan_out_30(), "TOO_MANY_FRAGMENT_SPREADS").await;
    // 600 deep in a directive argument aborted a debug build's process (stack overflow after
    // parsing); 2,000 and 3,000 deep did the same to a release build.
    assert_refused(
        &stack,
        &format!("{{ __typename @include(if: {}) }}", nest("[", "true", "]", 600)),
        "NESTING_TOO_DEEP",
    )
    .await;
    // The probe of the project's hooks: a list in a directive argument.
    assert_refused(
        &stack,
        &format!("{{ me {{ id }} __typename @include(if: {}) }}", nest("[", "true", "]", 3_000)),
        "NESTING_TOO_DEEP",
    )
    .await;
    // Deep selections and inline fragments, a fragment chain, a cycle, a very long name.
    assert_refused(&stack, &format!("{{ {} }}", nest("a { ", "b", " }", 100_000)), "NESTING_TOO_DEEP").await;
    assert_refused(
        &stack,
        &format!("{{ {} }}", nest("... on Query { ", "__typename", " }", 50_000)),
        "NESTING_TOO_DEEP",
    )
    .await;
    // 1,000 fragments (7,000 tokens, within `limits.max_tokens`), each spreading the next.
    let mut chain = String::from("{ ...F0 }");
    for i in 0..1_000 {
        chain.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
    }
    chain.push_str(" fragment F1000 on Query { __typename }");
    assert_refused(&stack, &chain, "NESTING_TOO_DEEP").await;
    assert_refused(
        &stack,
        "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        "FRAGMENT_CYCLE",
    )
    .await;
    assert_refused(&stack, &format!("{{ {} }}", "n".repeat(900_000)), "GRAPHQL_VALIDATION_FAILED").await;
    // More selections than allowed, in fewer tokens than allowed.
    assert_refused(&stack, &format!("{{ {} }}", "__typename ".repeat(10_001)), "TOO_MANY_SELECTIONS").await;
    // Many operations: more tokens than allowed, refused before parsing.
    let many: String = (0..20_000).map(|i| format!("query Q{i} {{ __typename }} ")).collect();
    assert_refused(&stack, &many, "TOO_MANY_TOKENS").await;
    stack.assert_serving().await;
    stack.stop().await;
}

#[tokio::test]
async fn get_requests_are_scanned_before_the_method_check_parses_them() {
    let stack = TestStack::start().await;
    // The GET handler parses to refuse mutations; a deep document must not reach that parse.
    let deep = format!("query {{ __type(name: {}) {{ name }} }}", nest("[", "\"x\"", "]", 2_000));
    let response = stack
        .http()
        .get(stack.graphql_url())
        .query(&[("query", deep.as_str())])
        .header("accept", GQL)
        .send()
        .await
        .expect("answers");
    let response = read(response).await;
    assert_eq!(response.status, 400, "{:?}", response.body);
    assert_eq!(response.error_codes(), ["NESTING_TOO_DEEP"]);
    stack.assert_serving().await;
    stack.stop().await;
}

#[tokio::test]
async fn websocket_subscriptions_go_through_the_same_limits() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    let hostile = [
        (
            format!(
                "subscription {{ templateEvents(templateIds: {}) {{ sequence }} }}",
                nest("[", "\"x\"", "]", 2_000)
            ),
            "NESTING_TOO_DEEP",
        ),
        (
            fragment_fan_out_30()
                .replacen("{ ...F29 }", "subscription { ...F29 }", 1)
                .replace("on Query", "on Subscription"),
            "TOO_MANY_FRAGMENT_SPREADS",
        ),
    ];
    for (id, (query, code)) in hostile.iter().enumerate() {
        socket.subscribe(&id.to_string(), query, json!({})).await;
        // graphql-transport-ws: a request error is one `error` with the GraphQL errors, and no
        // `complete` (the next answer is the next operation's).
        let answer = socket.next().await.expect("an answer");
        assert_eq!(answer["type"], "error", "{answer}");
        assert_eq!(answer["id"], id.to_string());
        assert_eq!(answer["payload"][0]["extensions"]["code"], *code, "{answer}");
    }
    // The same connection still subscribes.
    let query = "subscription ($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence } }";
    socket.subscribe("ok", query, json!({ "ids": [template_id(1)] })).await;
    for _ in 0..200 {
        if stack.devstack.active_event_streams() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stack.devstack.active_event_streams(), 1, "the subscription opened its stream");
    let sequences = stack.devstack.append_events(vec![(1, banyan_devstack::EventKind::Opened)]).await;
    let answer = socket.next().await.expect("an event");
    assert_eq!(answer["type"], "next", "{answer}");
    assert_eq!(answer["payload"]["data"]["templateEvents"]["sequence"], sequences[0].to_string());
    stack.assert_serving().await;
    stack.stop().await;
}

#[tokio::test]
async fn the_standard_introspection_query_passes_with_and_without_a_token() {
    let stack = TestStack::start().await;
    for user in [None, Some(OWNER)] {
        let response = stack.graphql_as(user, INTROSPECTION_QUERY, json!({})).await;
        assert_eq!(response.status, 200, "{user:?}: {:?}", response.body.get("errors"));
        assert!(response.body.get("errors").is_none(), "{user:?}: {:?}", response.body["errors"]);
        let schema = &response.data()["__schema"];
        assert_eq!(schema["queryType"]["name"], "Query");
        let types = schema["types"].as_array().expect("types");
        let query = types.iter().find(|t| t["name"] == "Query").expect("Query is listed");
        let fields: Vec<&str> =
            query["fields"].as_array().expect("fields").iter().filter_map(|f| f["name"].as_str()).collect();
        // The roots the schema snapshot declares, read independently of the gateway.
        let sdl = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/schema.graphql"))
            .expect("the snapshot");
        for root in ["me", "workspaces", "templates", "node"] {
            assert!(sdl.contains(&format!("\n\t{root}")), "the snapshot declares `{root}`");
            assert!(fields.contains(&root), "{user:?}: `{root}` in {fields:?}");
        }
        assert!(schema["directives"].as_array().is_some_and(|d| d.iter().any(|d| d["name"] == "include")));
    }
    stack.stop().await;
}

#[tokio::test]
async fn depth_introspection_and_complexity_limits_each_fire_with_their_code() {
    let stack = TestStack::start().await;
    // template (workspace templates nodes) x4 id: fourteen fields deep.
    let deep_by = |repeats: usize, innermost: &str| {
        format!(
            "{{ template(id: \"{}\") {{ {} }} }}",
            template_id(1),
            nest("workspace { templates(first: 1) { nodes { ", innermost, " } } }", repeats)
        )
    };
    let response = stack.graphql(&deep_by(4, "id"), json!({})).await;
    assert_eq!(response.status, 400, "{:?}", response.body);
    assert_eq!(response.error_codes(), ["QUERY_TOO_DEEP"]);
    assert_eq!(
        response.body["errors"][0]["message"],
        "the query nests 14 fields deep; at most 12 are allowed"
    );
    // Twelve deep (template, 3 x 3, workspace, id) runs.
    let response = stack.graphql(&deep_by(3, "workspace { id }"), json!({})).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);

    // Introspection deeper than its own bound, and type lists nested three deep.
    let of_types = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} }} }} }} }} }}",
        nest("ofType { ", "name", " } ", 17)
    );
    let response = stack.graphql(&of_types, json!({})).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_codes(), ["INTROSPECTION_TOO_DEEP"]);
    let lists = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
    let response = stack.graphql(lists, json!({})).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_codes(), ["INTROSPECTION_TOO_DEEP"]);

    // Complexity: one fragment of 100 fields spread 60 times is 6,000 fields, within the
    // spread, selection, alias and depth limits but above the complexity limit of 5,000.
    let fields = "name ".repeat(100);
    let spreads = "...T ".repeat(60);
    let complex = format!("{{ __schema {{ types {{ {spreads} }} }} }} fragment T on __Type {{ {fields} }}");
    let response = stack.graphql(&complex, json!({})).await;
    assert_eq!(response.status, 400, "{:?}", response.body);
    assert_eq!(response.error_codes(), ["QUERY_TOO_COMPLEX"]);
    // 40 spreads (4,000 fields) run.
    let fine = complex.replace(&spreads, &"...T ".repeat(40));
    let response = stack.graphql(&fine, json!({})).await;
    assert_eq!(response.status, 200, "{:?}", response.body.get("errors"));
    stack.stop().await;
}

#[tokio::test]
async fn json_parameters_nest_only_as_deep_as_serde_json_allows() {
    let stack = TestStack::start().await;
    // serde_json refuses nesting beyond 128 before anything converts the value recursively.
    let deep = nest("[", "1", "]", 10_000);
    for parameter in ["variables", "extensions"] {
        let body = format!("{{\"query\":\"{{ __typename }}\",\"{parameter}\":{{\"v\":{deep}}}}}");
        let response = stack
            .http()
            .post(stack.graphql_url())
            .header("content-type", JSON)
            .header("accept", GQL)
            .body(body)
            .send()
            .await
            .expect("answers");
        let response = read(response).await;
        assert_eq!(response.status, 400, "{parameter}");
        assert_eq!(response.error_codes(), ["BAD_REQUEST"], "{parameter}");
        let value = format!("{{\"v\":{deep}}}");
        let response = stack
            .http()
            .get(stack.graphql_url())
            .query(&[("query", "{ __typename }"), (parameter, value.as_str())])
            .header("accept", GQL)
            .send()
            .await
            .expect("answers");
        let response = read(response).await;
        assert_eq!(response.status, 400, "GET {parameter}");
        assert_eq!(response.error_codes(), ["BAD_REQUEST"], "GET {parameter}");
    }
    stack.assert_serving().await;
    stack.stop().await;
}

/// How the gateway ended the connection after `message`: the close code, or `None` when the
/// socket ended without a close frame.
async fn close_code_after(stack: &TestStack, message: String) -> Option<u16> {
    let mut socket = WsClient::connect(stack, TRANSPORT_WS, &[]).await;
    socket.init(json!({})).await;
    assert_eq!(socket.next().await.expect("an answer")["type"], "connection_ack");
    // The gateway may close before the whole message is written.
    socket.send_text(message).await;
    let ending = socket.read_until_close(Duration::from_secs(10)).await;
    let answers: Vec<&Value> = ending.messages.iter().filter(|m| m["type"] != "ping").collect();
    assert!(answers.is_empty(), "no answer expected: {answers:?}");
    ending.close.map(|(code, _)| code)
}

#[tokio::test]
async fn websocket_messages_are_bounded_like_bodies() {
    let stack = TestStack::start().await;
    // Variables nested past serde_json's limit: the message is not JSON to the protocol (4400).
    let deep = nest("[", "1", "]", 10_000);
    let message = format!(
        "{{\"id\":\"1\",\"type\":\"subscribe\",\"payload\":{{\"query\":\"subscription {{ __typename }}\",\"variables\":{{\"v\":{deep}}}}}}}"
    );
    assert_eq!(close_code_after(&stack, message).await, Some(4400));
    // A message larger than `server.max_body_bytes` (1 MiB) closes with 1009 "Message too big"
    // before it is parsed; with axum's default of 64 MiB it was parsed and answered.
    let query = format!("subscription {{ __typename }} # {}", "x".repeat(1_100_000));
    let message = json!({ "id": "1", "type": "subscribe", "payload": { "query": query } }).to_string();
    assert_eq!(close_code_after(&stack, message).await, Some(1009));
    stack.assert_serving().await;
    stack.stop().await;
}
