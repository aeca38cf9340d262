//! Who the gateway lets in (issue 8, sections 2 and 9): missing, invalid and malformed
//! credentials get their status and code and cost no backend call beyond the one identity check;
//! another workspace's data stays invisible and is never asked of a service; and a short monolith
//! blip keeps known callers working (`auth.stale_on_error`) but never a refused credential.

use std::time::Duration;

use banyan_devstack::{Backend, DevStackConfig, Fault};
use banyan_tests::{GraphqlResponse, OWNER, TestStack, template_id, workspace_id};
use serde_json::{Value, json};

const ME_CALLS: &str = "GET /api/v1/me/";
const WORKSPACES: &str = "{ workspaces { id } }";

/// POSTs `query` with `authorization` (none when `None`).
async fn post(
    stack: &TestStack,
    authorization: Option<&str>,
    query: &str,
    variables: Value,
) -> GraphqlResponse {
    let mut request = stack
        .http()
        .post(stack.graphql_url())
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    banyan_tests::read(request.send().await.expect("the gateway answers")).await
}

async fn assert_healthy(stack: &TestStack) {
    let health = stack
        .http()
        .get(format!("http://{}/healthz", stack.gateway.addr()))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(health.status(), 200);
}

const EVERY_BACKEND: &str =
    "query($id: ID!) { workspaces { id } template(id: $id) { name stats { sent } draft { version } } }";

#[tokio::test]
async fn no_credential_gets_unauthenticated_fields_and_costs_no_backend_call() {
    let stack = TestStack::start().await;
    let response = post(&stack, None, EVERY_BACKEND, json!({ "id": template_id(1) })).await;
    assert_eq!(response.status, 200, "field errors, not a request error: {:?}", response.body);
    assert_eq!(response.error_codes(), ["UNAUTHENTICATED", "UNAUTHENTICATED"], "{:?}", response.body);
    assert_eq!(response.data(), &json!({ "workspaces": null, "template": null }));
    assert_eq!(stack.devstack.calls().snapshot(), Default::default(), "no backend was called");
    assert_healthy(&stack).await;
    stack.stop().await;
}

#[tokio::test]
async fn an_unknown_token_is_401_after_one_identity_check_and_nothing_else() {
    let stack = TestStack::start().await;
    for scheme in ["Token", "Bearer"] {
        stack.devstack.calls().reset();
        // Another unknown key per scheme, so the negative cache does not answer the second.
        let key = if scheme == "Token" { "1".repeat(40) } else { "2".repeat(40) };
        let authorization = format!("{scheme} {key}");
        let response =
            post(&stack, Some(&authorization), EVERY_BACKEND, json!({ "id": template_id(1) })).await;
        assert_eq!(response.status, 401, "{scheme}: {:?}", response.body);
        assert_eq!(response.error_codes(), ["UNAUTHENTICATED"], "{scheme}");
        assert!(response.body.get("data").is_none(), "{scheme}: a request error has no data");
        let calls = stack.devstack.calls().snapshot();
        assert_eq!(calls.into_iter().collect::<Vec<_>>(), [(ME_CALLS.to_owned(), 1)], "{scheme}");
    }
    assert_healthy(&stack).await;
    stack.stop().await;
}

#[tokio::test]
async fn a_malformed_authorization_is_401_without_asking_the_monolith() {
    let stack = TestStack::start().await;
    for authorization in ["Token", "Bearer ", "Token two words", "Basic dXNlcjpwYXNz", "Digest x", "tokenabc"]
    {
        let response = post(&stack, Some(authorization), WORKSPACES, json!({})).await;
        assert_eq!(response.status, 401, "{authorization:?}: {:?}", response.body);
        assert_eq!(response.error_codes(), ["UNAUTHENTICATED"], "{authorization:?}");
    }
    assert_eq!(stack.devstack.calls().total(), 0, "a malformed header is refused before any check");
    assert_healthy(&stack).await;
    stack.stop().await;
}

#[tokio::test]
async fn another_workspaces_data_never_leaks_and_is_never_asked_of_a_service() {
    let stack = TestStack::start().await;
    let dataset = stack.devstack.dataset();
    // Recounted from the seed: the owner's memberships, and a template of a workspace they are
    // not in.
    let member_of: Vec<u64> =
        dataset.memberships.iter().filter(|m| m.user == OWNER).map(|m| m.workspace).collect();
    let foreign =
        dataset.templates.iter().find(|t| !member_of.contains(&t.workspace)).expect("a foreign template");
    let (foreign_id, foreign_workspace, foreign_name) = (foreign.id, foreign.workspace, foreign.name.clone());

    let response = stack
        .graphql(
            "query($id: ID!) { template(id: $id) { name stats { sent } draft { version } recentEvents(first: 5) { nodes { sequence } } } }",
            json!({ "id": template_id(foreign_id) }),
        )
        .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.data(), &json!({ "template": null }), "{:?}", response.body);
    assert!(!response.body.to_string().contains(&foreign_name), "the name does not leak");
    let calls = stack.devstack.calls().snapshot();
    let service_calls: Vec<_> = calls.keys().filter(|key| !key.starts_with("GET ")).collect();
    assert!(
        service_calls.is_empty(),
        "no service was asked about a template the caller cannot see: {calls:?}"
    );

    let workspace = stack
        .graphql(
            "query($id: ID!) { workspace(id: $id) { name members { user { id } } } }",
            json!({ "id": workspace_id(foreign_workspace) }),
        )
        .await;
    assert_eq!(workspace.data(), &json!({ "workspace": null }), "{:?}", workspace.body);

    let listed = stack.graphql(WORKSPACES, json!({})).await;
    let mut listed_ids: Vec<String> = listed.data()["workspaces"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|w| w["id"].as_str().expect("an id").to_owned())
        .collect();
    listed_ids.sort();
    let mut expected: Vec<String> = member_of.iter().map(|id| workspace_id(*id)).collect();
    expected.sort();
    assert_eq!(listed_ids, expected, "exactly the owner's workspaces");

    let rename = stack
        .graphql(
            "mutation($id: ID!) { renameTemplate(id: $id, name: \"taken over\") { name } }",
            json!({ "id": template_id(foreign_id) }),
        )
        .await;
    assert_eq!(rename.error_codes(), ["NOT_FOUND"], "{:?}", rename.body);
    // Unchanged, as a member of that workspace sees it.
    let insider = dataset
        .memberships
        .iter()
        .find(|m| m.workspace == foreign_workspace)
        .expect("the workspace has members")
        .user;
    let seen = stack.monolith_get(insider, &format!("/api/v1/templates/?id__in={foreign_id}")).await;
    assert_eq!(seen["results"][0]["name"], foreign_name.as_str());
    stack.stop().await;
}

/// A stack whose identity answers expire almost at once, so a test sees a re-check soon, with
/// `stale_on_error` as given.
async fn short_lived_identities(stale_on_error: Duration) -> TestStack {
    TestStack::start_with(DevStackConfig::default(), |config| {
        config.auth.identity_cache_ttl = Duration::from_millis(50);
        config.auth.negative_cache_ttl = Duration::from_millis(50);
        config.auth.stale_on_error = stale_on_error;
    })
    .await
}

/// Sends `authorization` with `{ workspaces { id } }` until the gateway has asked `/me/` more than
/// `checks_before` times (its cached answer expired and it checked again), at most 200 times;
/// returns every response's status and error codes.
async fn until_rechecked(
    stack: &TestStack,
    authorization: &str,
    checks_before: u64,
) -> Vec<(u16, Vec<String>)> {
    let mut seen = Vec::new();
    for _ in 0..200 {
        let response = post(stack, Some(authorization), WORKSPACES, json!({})).await;
        seen.push((response.status.as_u16(), response.error_codes()));
        if stack.devstack.calls().count(ME_CALLS) > checks_before {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the identity was never checked again: {seen:?}");
}

#[tokio::test]
async fn stale_on_error_serves_known_callers_through_a_monolith_blip_but_not_unknown_or_refused_ones() {
    let stack = short_lived_identities(Duration::from_secs(3600)).await;
    let known = format!("Token {}", stack.token(OWNER));
    let refused = format!("Token {}", "3".repeat(40));
    let first = post(&stack, Some(&known), WORKSPACES, json!({})).await;
    assert!(first.body.get("errors").is_none(), "{:?}", first.body);
    let turned_away = post(&stack, Some(&refused), WORKSPACES, json!({})).await;
    assert_eq!(turned_away.status, 401);

    // (A refused connection would not do: the gateway's pooled connections keep working.)
    for fault in [Fault::error_rate(1.0)] {
        stack.devstack.faults().set(Backend::Monolith, fault);
        // The known caller: its cached identity expires, the re-check fails, and it is served
        // from its last known identity: a 200 whose monolith fields fail, never a 503.
        let checks = stack.devstack.calls().count(ME_CALLS);
        let seen = until_rechecked(&stack, &known, checks).await;
        let last = seen.last().expect("at least one");
        assert_eq!(last.0, 200, "{fault:?}: {seen:?}");
        assert_eq!(last.1, ["BACKEND_UNAVAILABLE"], "{fault:?}: the monolith's field fails on its own");
        assert!(seen.iter().all(|(status, _)| *status == 200), "{fault:?}: {seen:?}");

        // A caller the gateway never checked: nothing to fall back on.
        let unknown = format!("Token {}", stack.token(2));
        let response = post(&stack, Some(&unknown), WORKSPACES, json!({})).await;
        assert_eq!(response.status, 503, "{fault:?}: {:?}", response.body);
        assert_eq!(response.error_codes(), ["BACKEND_UNAVAILABLE"]);

        // A refused credential: never served, stale or not. Once its refusal expired it is
        // just another credential the monolith cannot check.
        let checks = stack.devstack.calls().count(ME_CALLS);
        let seen = until_rechecked(&stack, &refused, checks).await;
        assert!(seen.iter().all(|(status, _)| *status == 401 || *status == 503), "{fault:?}: {seen:?}");
        assert_eq!(seen.last().map(|s| s.0), Some(503), "{fault:?}: {seen:?}");
        stack.devstack.faults().clear(Backend::Monolith);
    }
    assert_healthy(&stack).await;
    stack.stop().await;
}

#[tokio::test]
async fn without_stale_on_error_a_monolith_blip_refuses_known_callers_too() {
    let stack = short_lived_identities(Duration::ZERO).await;
    let known = format!("Token {}", stack.token(OWNER));
    let first = post(&stack, Some(&known), WORKSPACES, json!({})).await;
    assert!(first.body.get("errors").is_none(), "{:?}", first.body);
    stack.devstack.faults().set(Backend::Monolith, Fault::error_rate(1.0));
    let checks = stack.devstack.calls().count(ME_CALLS);
    let seen = until_rechecked(&stack, &known, checks).await;
    let last = seen.last().expect("at least one");
    assert_eq!((last.0, last.1.as_slice()), (503, ["BACKEND_UNAVAILABLE".to_owned()].as_slice()), "{seen:?}");
    stack.stop().await;
}

#[tokio::test]
async fn the_stale_window_ends() {
    let stack = short_lived_identities(Duration::from_millis(200)).await;
    let known = format!("Token {}", stack.token(OWNER));
    let first = post(&stack, Some(&known), WORKSPACES, json!({})).await;
    assert!(first.body.get("errors").is_none(), "{:?}", first.body);
    stack.devstack.faults().set(Backend::Monolith, Fault::error_rate(1.0));
    // Bounded: the window is 200 ms past a 50 ms cache; 500 tries of 20 ms are a hang guard.
    let mut seen = Vec::new();
    for _ in 0..500 {
        let response = post(&stack, Some(&known), WORKSPACES, json!({})).await;
        seen.push(response.status.as_u16());
        if response.status == 503 {
            assert_eq!(response.error_codes(), ["BACKEND_UNAVAILABLE"]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.last(), Some(&503), "the known caller is refused once the window is over: {seen:?}");
    assert!(seen.iter().all(|status| *status == 200 || *status == 503), "{seen:?}");
    stack.stop().await;
}
