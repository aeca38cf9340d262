//! A page of templates costs one call per backend method, not one per template: counted at the
//! backends themselves.

use banyan_tests::{OWNER, TestStack, contract_operations, workspace_id};
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

/// The query of issue 10: lists nested three levels deep, with fields on every level that each
/// need a backend.
const WIDE_QUERY: &str = "{ workspaces { members { user { fullName } } templates(first: 100) { edges { node { \
    createdBy { fullName } workspace { name } draft { version } } } } } }";

/// Every backend method is called once per level of the query that needs it, whatever the
/// list sizes: counted at the backends, compared with what the seeded rows say the query reads.
#[tokio::test]
async fn a_query_nesting_lists_three_deep_costs_one_call_per_backend_method_per_level() {
    let stack = TestStack::start().await;
    stack.graphql("{ __typename }", json!({})).await;
    stack.devstack.calls().reset();

    let response = stack.graphql(WIDE_QUERY, json!({})).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);

    // What the query reads, recounted from the seeded rows: the owner's workspaces, each one's
    // members and first 100 templates, and the drafts of those templates.
    let dataset = stack.devstack.dataset();
    let workspaces: Vec<u64> =
        dataset.memberships.iter().filter(|m| m.user == OWNER).map(|m| m.workspace).collect();
    let templates: Vec<u64> = workspaces
        .iter()
        .flat_map(|w| {
            // A page is newest `updated_at` first, then id descending.
            let mut own: Vec<_> = dataset.templates.iter().filter(|t| t.workspace == *w).collect();
            own.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
            own.into_iter().take(100).map(|t| t.id)
        })
        .collect();
    let drafts = templates.iter().filter(|id| banyan_devstack::dataset::has_draft(**id)).count();
    let users: std::collections::BTreeSet<u64> = dataset
        .memberships
        .iter()
        .filter(|m| workspaces.contains(&m.workspace))
        .map(|m| m.user)
        .chain(dataset.templates.iter().filter(|t| templates.contains(&t.id)).map(|t| t.created_by))
        .collect();
    assert!(workspaces.len() >= 2 && templates.len() > 100, "the shape needs several of each");
    let got = response.data()["workspaces"].as_array().map(Vec::len);
    assert_eq!(got, Some(workspaces.len()));
    let answered_drafts = response.data()["workspaces"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|w| w["templates"]["edges"].as_array().cloned().unwrap_or_default())
        .filter(|edge| edge["node"]["draft"]["version"].is_number())
        .count();
    assert_eq!(answered_drafts, drafts);

    let calls = stack.devstack.calls().snapshot();
    let count = |key: &str| calls.get(key).copied().unwrap_or(0);
    // Level 1 lists the caller's workspaces (one page of 100); the templates' workspaces at
    // level 3 are among them, answered by the same list: no call at all.
    assert_eq!(count("GET /api/v1/workspaces/"), workspaces.len().div_ceil(100) as u64, "{calls:?}");
    assert_eq!(count("GET /api/v1/workspaces/{id}/"), 0, "no call per template: {calls:?}");
    // Members of every workspace in one call; a workspace's templates page is one call per
    // workspace (the monolith pages by workspace; 100 fits one page).
    assert_eq!(count("GET /api/v1/memberships/"), 1, "members in one call: {calls:?}");
    assert_eq!(count("GET /api/v1/workspaces/{id}/members/"), 0, "no call per workspace: {calls:?}");
    assert_eq!(count("GET /api/v1/templates/"), workspaces.len() as u64, "{calls:?}");
    // Members' users and templates' authors become ready at the same level: one batch (at most
    // 100 ids per call, the monolith's page size).
    assert_eq!(count("GET /api/v1/users/"), users.len().div_ceil(100) as u64, "{calls:?}");
    assert_eq!(count("DraftService/BatchGetDrafts"), 1, "drafts of every template at once: {calls:?}");
    stack.stop().await;
}
