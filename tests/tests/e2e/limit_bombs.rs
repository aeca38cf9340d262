//! Limit bombs (issue 8, sections 1 and 9) over real sockets: each hostile document is refused
//! with its status and code, before any backend call (counted at the devstack), and the gateway
//! keeps serving; the amplification document of section 1 over HTTP and WebSocket; the budget
//! of backend calls enforced while a request runs; warn-only limits served and counted.

use banyan_gateway::config::WarnableLimit;
use banyan_tests::ws::WsClient;
use banyan_tests::{GraphqlResponse, OWNER, TestStack, read, workspace_id};
use serde_json::{Value, json};

const GQL: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// POSTs `body` (any JSON) as [`OWNER`], accepting `accept`.
async fn post_as_owner(stack: &TestStack, body: &Value, accept: &str) -> GraphqlResponse {
    let response = stack
        .http()
        .post(stack.graphql_url())
        .header("content-type", JSON)
        .header("accept", accept)
        .header("authorization", format!("Token {}", stack.token(OWNER)))
        .json(body)
        .send()
        .await
        .expect("the gateway answers");
    read(response).await
}

/// Sends `body` as the owner with both response types and checks the refusal: 400 without
/// `data` for graphql-response+json, 200 for JSON (or `json_status` for a malformed request),
/// exactly `code`, and no backend call.
async fn assert_refused_without_calls(
    stack: &TestStack,
    what: &str,
    body: &Value,
    code: &str,
    json_status: u16,
) {
    // The identity check is cached after the first request: what is counted below is the
    // document's own.
    stack.graphql("{ __typename }", json!({})).await;
    stack.devstack.calls().reset();
    let strict = post_as_owner(stack, body, GQL).await;
    assert_eq!(strict.status, 400, "{what}: {:?}", strict.body);
    assert!(strict.body.get("data").is_none(), "{what}: {:?}", strict.body);
    assert_eq!(strict.error_codes(), [code], "{what}");
    let legacy = post_as_owner(stack, body, JSON).await;
    assert_eq!(legacy.status.as_u16(), json_status, "{what}");
    assert_eq!(legacy.error_codes(), [code], "{what}");
    let calls = stack.devstack.calls().snapshot();
    assert!(calls.is_empty(), "{what}: no backend call, saw {calls:?}");
}

/// The document of issue 8, section 1: under a workspace, 30 aliases of templates(first: 100)
/// → recentEvents(first: 100) → template → recentEvents(first: 100). Nine fields deep, 30
/// aliases, complexity under 400: within every limit but the cost.
fn amplification_document() -> String {
    let one = "templates(first: 100) { nodes { recentEvents(first: 100) \
               { nodes { template { recentEvents(first: 100) { nodes { kind } } } } } } }";
    let aliases: String = (0..30).map(|i| format!("a{i}: {one} ")).collect();
    format!("{{ workspace(id: \"{}\") {{ {aliases} }} }}", workspace_id(1))
}

#[tokio::test]
async fn limit_bombs_are_refused_before_any_backend_call() {
    let stack = TestStack::start().await;
    let query = |q: String| json!({ "query": q });
    let me_aliases = |n: usize| (0..n).map(|i| format!("m{i}: me {{ id }} ")).collect::<String>();
    let bombs = [
        ("amplification", query(amplification_document()), "QUERY_TOO_COSTLY"),
        (
            "depth",
            query(format!(
                "{{ me {{ id }} workspaces {{ {}id{} }} }}",
                "templates { nodes { workspace { ".repeat(4),
                " } } }".repeat(4)
            )),
            "QUERY_TOO_DEEP",
        ),
        (
            "aliases",
            query(format!(
                "{{ workspaces {{ {} }} }}",
                (0..31).map(|i| format!("w{i}: id ")).collect::<String>()
            )),
            "TOO_MANY_ALIASES",
        ),
        ("root fields", query(format!("{{ {} }}", me_aliases(21))), "TOO_MANY_ROOT_FIELDS"),
        // Half a megabyte of fields, beside a field that would call the monolith.
        ("token flood", query(format!("{{ me {{ id }} {} }}", "id ".repeat(170_000))), "TOO_MANY_TOKENS"),
        (
            "directive flood",
            query(format!("{{ me {{ id {} }} }}", "@skip(if: false) ".repeat(1_000))),
            "TOO_MANY_DIRECTIVES",
        ),
        (
            "fragment cycle",
            query("{ me { id } ...A } fragment A on Query { ...B } fragment B on Query { ...A }".to_owned()),
            "FRAGMENT_CYCLE",
        ),
        (
            "unknown operation",
            json!({ "query": "query A { me { id } }", "operationName": "B" }),
            "UNKNOWN_OPERATION",
        ),
        (
            "no operation name",
            query("query A { me { id } } query B { me { id } }".to_owned()),
            "OPERATION_NAME_REQUIRED",
        ),
    ];
    for (what, body, code) in &bombs {
        assert_refused_without_calls(&stack, what, body, code, 200).await;
    }
    // A batch (a JSON array) is a malformed request for either response type.
    let batch = json!([{ "query": "{ me { id } }" }, { "query": "{ me { id } }" }]);
    assert_refused_without_calls(&stack, "batch", &batch, "BATCH_NOT_SUPPORTED", 400).await;
    stack.assert_serving().await;
    stack.stop().await;
}

#[tokio::test]
async fn the_amplification_document_is_refused_over_websocket_before_any_backend_call() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    // The connection's identity check is done; what is counted below is the document's own.
    stack.devstack.calls().reset();
    socket.subscribe("amp", &amplification_document(), json!({})).await;
    let answer = socket.next().await.expect("an answer");
    assert_eq!(answer["id"], "amp", "{answer}");
    // A request error: `error` with the errors, or (as async-graphql answers it) one `next`
    // carrying only errors.
    let errors = match answer["type"].as_str() {
        Some("error") => answer["payload"].clone(),
        Some("next") => {
            assert!(answer["payload"]["data"].is_null(), "{answer}");
            answer["payload"]["errors"].clone()
        }
        _ => panic!("unexpected answer {answer}"),
    };
    assert_eq!(errors[0]["extensions"]["code"], "QUERY_TOO_COSTLY", "{answer}");
    let calls = stack.devstack.calls().snapshot();
    assert!(calls.is_empty(), "no backend call, saw {calls:?}");
    // The same connection still runs a query that reads the monolith.
    socket.subscribe("ok", "{ me { username } }", json!({})).await;
    let mut answer = socket.next().await.expect("an answer");
    while answer["type"] == "complete" {
        answer = socket.next().await.expect("an answer");
    }
    assert_eq!(answer["id"], "ok", "{answer}");
    assert_eq!(
        answer["payload"]["data"]["me"]["username"].as_str().map(str::is_empty),
        Some(false),
        "{answer}"
    );
    stack.assert_serving().await;
    stack.stop().await;
}

/// Ten templates, each with its events: one call for the page, then calls per template.
const TEN_TEMPLATES_WITH_EVENTS: &str = "query ($ws: ID!) { templates(workspaceId: $ws, first: 10) \
     { nodes { id recentEvents(first: 1) { nodes { kind } } } } }";

/// Runs [`TEN_TEMPLATES_WITH_EVENTS`] as the owner and returns the response and the backend
/// calls it made, counted at the devstack.
async fn run_counted(stack: &TestStack) -> (GraphqlResponse, u64) {
    stack.graphql("{ __typename }", json!({})).await;
    stack.devstack.calls().reset();
    let response = stack.graphql(TEN_TEMPLATES_WITH_EVENTS, json!({ "ws": workspace_id(1) })).await;
    (response, stack.devstack.calls().total())
}

#[tokio::test]
async fn a_request_makes_at_most_its_budget_of_backend_calls() {
    // Unlimited (the default budget of 250 is far above it): how many calls the document makes.
    let unlimited = TestStack::start().await;
    let (response, needed) = run_counted(&unlimited).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    assert_eq!(response.data()["templates"]["nodes"].as_array().map(Vec::len), Some(10));
    assert!(needed > 3, "the document needs more than the small budget: {needed}");
    unlimited.stop().await;

    // A budget of 3: its cost is small, so it runs; it stops calling at 3, and the fields that
    // needed more calls fail with the budget's code while the rest of the data stands.
    let stack = TestStack::start_with(Default::default(), |config| config.limits.max_backend_calls = 3).await;
    let (response, calls) = run_counted(&stack).await;
    assert_eq!(calls, 3, "exactly the budget reached the backends");
    assert_eq!(response.status, 200, "{:?}", response.body);
    let nodes = response.data()["templates"]["nodes"].as_array().expect("the page is served");
    assert_eq!(nodes.len(), 10);
    let codes = response.error_codes();
    assert!(!codes.is_empty(), "some events were over budget");
    assert!(codes.iter().all(|code| code == "BACKEND_CALL_BUDGET_EXCEEDED"), "{codes:?}");
    let failed = response.body["errors"].as_array().expect("errors");
    assert!(
        failed.iter().all(|e| e["path"].as_array().and_then(|p| p.last()) == Some(&json!("recentEvents"))),
        "only the fields that needed a call failed: {failed:?}"
    );
    assert!(nodes.iter().all(|node| node["id"].is_string()));
    // The budget is per request: the next one gets its own.
    let (_, calls) = run_counted(&stack).await;
    assert_eq!(calls, 3);
    stack.assert_serving().await;

    // Warn-only: served whole, every call made, the excess counted once per request.
    let warned = TestStack::start_with(Default::default(), |config| {
        config.limits.max_backend_calls = 3;
        config.limits.warn_only = vec![WarnableLimit::BackendCalls].into();
    })
    .await;
    let (response, calls) = run_counted(&warned).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    assert_eq!(calls, needed);
    assert_eq!(warned.gateway.limit_warnings().count(WarnableLimit::BackendCalls), 1);
    stack.stop().await;
    warned.stop().await;
}

#[tokio::test]
async fn warn_only_limits_serve_the_request_and_count_it() {
    let stack = TestStack::start_with(Default::default(), |config| {
        config.limits.max_cost = 10;
        config.limits.max_aliases = 1;
        config.limits.warn_only = vec![WarnableLimit::Cost, WarnableLimit::Aliases].into();
    })
    .await;
    // Cost 1 + 10 × (1 + 1): over 10; two aliases: over 1. Served.
    let response = stack.graphql("{ workspaces { a: id b: name } }", json!({})).await;
    assert_eq!(response.status, 200);
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    assert!(response.data()["workspaces"].as_array().is_some_and(|w| !w.is_empty()));
    let warnings = stack.gateway.limit_warnings();
    assert_eq!(warnings.count(WarnableLimit::Cost), 1);
    assert_eq!(warnings.count(WarnableLimit::Aliases), 1);
    assert_eq!(warnings.count(WarnableLimit::Depth), 0);
    // A limit not named in warn_only still refuses.
    let deep = format!(
        "{{ me {{ id }} workspaces {{ {}id{} }} }}",
        "templates { nodes { workspace { ".repeat(4),
        " } } }".repeat(4)
    );
    let response = stack.graphql(&deep, json!({})).await;
    assert_eq!(response.error_codes(), ["QUERY_TOO_DEEP"]);
    stack.stop().await;
}
