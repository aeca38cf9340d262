//! A page of templates costs one call per backend method, not one per template: counted at the
//! backends themselves.

use banyan_tests::{TestStack, contract_operations, workspace_id};
use serde_json::json;

#[tokio::test]
async fn template_list_of_fifty_costs_one_call_per_backend_method() {
    let stack = TestStack::start().await;
    let (_, query) =
        contract_operations().into_iter().find(|(name, _)| name == "TemplateList").expect("in the contract");
    // Warm the identity cache so the count below is the operation's own.
    stack.graphql("{ __typename }", json!({})).await;
    stack.devstack.calls().reset();

    let response = stack.graphql(&query, json!({ "workspaceId": workspace_id(1), "first": 50 })).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    assert_eq!(response.data()["templates"]["edges"].as_array().map(Vec::len), Some(50));

    let calls = stack.devstack.calls().snapshot();
    assert_eq!(calls.get("GET /api/v1/templates/").copied(), Some(1), "one page of templates: {calls:?}");
    assert_eq!(calls.get("GET /api/v1/users/").copied(), Some(1), "authors in one batch: {calls:?}");
    assert_eq!(calls.get("EventService/GetTemplateStats").copied(), Some(1), "stats in one batch: {calls:?}");
    assert!(calls.values().all(|&n| n <= 1), "no endpoint or method called twice: {calls:?}");
    assert!(!calls.keys().any(|k| k.contains("{id}")), "no per-template calls: {calls:?}");
    stack.stop().await;
}

#[tokio::test]
async fn the_identity_check_is_cached_across_requests() {
    let stack = TestStack::start().await;
    stack.devstack.calls().reset();
    for _ in 0..5 {
        let response = stack.graphql("{ me { id } }", json!({})).await;
        assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    }
    // One identity check for five requests, plus `me` itself each time.
    assert_eq!(stack.devstack.calls().count("GET /api/v1/me/"), 1 + 5);
    stack.stop().await;
}
