//! Every operation in `frontend-contract/` runs through the real gateway against the devstack,
//! and what comes back is checked against the devstack's own data (the monolith's REST views
//! are an independent computation of the same facts).

use banyan_tests::{OWNER, TestStack, contract_operations, template_id, user_id, workspace_id};
use serde_json::{Value, json};

/// Variables for each contract operation, as the component would send them.
fn variables_for(name: &str) -> Option<Value> {
    Some(match name {
        "UserMenu" | "WorkspaceSwitcher" => json!({}),
        "TemplateList" => json!({ "workspaceId": workspace_id(1), "first": 50 }),
        "RenameTemplate" => json!({ "id": template_id(3), "name": "Spring sale, final" }),
        "TemplateEditor" => json!({ "id": template_id(1) }),
        "UpdateDraftBlock" => return None, // needs the draft's current state: see its own test
        "AnalyticsDashboard" => json!({ "id": template_id(2), "window": "LAST_30_DAYS" }),
        "TemplateEventsFeed" => return None, // a subscription: see tests/subscription.rs
        "WorkspaceMembers" => json!({ "id": workspace_id(1) }),
        _ => panic!("contract operation {name} has no test variables: add them here"),
    })
}

fn operation(name: &str) -> String {
    contract_operations()
        .into_iter()
        .find(|(op, _)| op == name)
        .map(|(_, body)| body)
        .unwrap_or_else(|| panic!("{name} is in the contract"))
}

#[tokio::test]
async fn every_query_and_mutation_in_the_contract_succeeds() {
    let stack = TestStack::start().await;
    let operations = contract_operations();
    assert!(operations.len() >= 8, "the contract has the components' operations");
    for (name, body) in operations {
        let Some(variables) = variables_for(&name) else { continue };
        let response = stack.graphql(&body, variables).await;
        assert_eq!(response.status, 200, "{name}: {:?}", response.body);
        assert!(response.body.get("errors").is_none(), "{name}: {:?}", response.body["errors"]);
        let data = response.data().as_object().unwrap_or_else(|| panic!("{name} has data"));
        assert!(data.values().all(|v| !v.is_null()), "{name}: {data:?}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn user_menu_and_workspace_switcher_show_the_signed_in_user() {
    let stack = TestStack::start().await;
    let dataset = stack.devstack.dataset();
    let user = dataset.users.iter().find(|u| u.id == OWNER).expect("seeded");

    let menu = stack.graphql(&operation("UserMenu"), json!({})).await;
    assert_eq!(menu.data()["me"]["username"], user.username.as_str());
    assert_eq!(menu.data()["me"]["fullName"], user.full_name.as_str());

    let switcher = stack.graphql(&operation("WorkspaceSwitcher"), json!({})).await;
    let names: Vec<&str> = switcher.data()["workspaces"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    let expected: Vec<&str> = dataset
        .workspaces
        .iter()
        .filter(|w| dataset.memberships.iter().any(|m| m.workspace == w.id && m.user == OWNER))
        .map(|w| w.name.as_str())
        .collect();
    assert_eq!(names, expected);
    assert_eq!(names.len(), 2, "user 1 belongs to workspaces 1 and 2");
    stack.stop().await;
}

#[tokio::test]
async fn template_list_pages_through_a_workspace_with_authors_and_stats() {
    let stack = TestStack::start().await;
    let query = operation("TemplateList");
    let first = stack.graphql(&query, json!({ "workspaceId": workspace_id(1), "first": 50 })).await;
    let templates = &first.data()["templates"];
    assert_eq!(templates["totalCount"], 200);
    assert_eq!(templates["pageInfo"]["hasNextPage"], true);
    let edges = templates["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 50);

    // Authors are the dataset's, and stats agree with the monolith's own analytics view.
    let dataset = stack.devstack.dataset();
    for edge in edges.iter().take(5) {
        let node = &edge["node"];
        let id = decode_id(node["id"].as_str().expect("an id"));
        let template = dataset.templates.iter().find(|t| t.id == id).expect("a seeded template");
        let author = dataset.users.iter().find(|u| u.id == template.created_by).expect("a seeded author");
        assert_eq!(node["createdBy"]["fullName"], author.full_name.as_str());
        let legacy = stack.monolith_get(OWNER, &format!("/api/v1/templates/{id}/analytics/?window=7d")).await;
        assert_eq!(node["stats"]["sent"], legacy["sent"], "template {id}");
        assert_eq!(node["stats"]["delivered"], legacy["delivered"], "template {id}");
    }

    // The next page continues where the first ended, in the same order.
    let cursor = templates["pageInfo"]["endCursor"].as_str().expect("a cursor");
    let second =
        stack.graphql(&query, json!({ "workspaceId": workspace_id(1), "first": 50, "after": cursor })).await;
    let second_edges = second.data()["templates"]["edges"].as_array().expect("edges");
    assert_eq!(second_edges.len(), 50);
    let mut seen: Vec<&str> = edges.iter().map(|e| e["node"]["id"].as_str().unwrap_or_default()).collect();
    seen.extend(second_edges.iter().map(|e| e["node"]["id"].as_str().unwrap_or_default()));
    let unique: std::collections::HashSet<&&str> = seen.iter().collect();
    assert_eq!(unique.len(), 100, "no template appears on both pages");
    let updated: Vec<&str> = edges
        .iter()
        .chain(second_edges)
        .map(|e| e["node"]["updatedAt"].as_str().unwrap_or_default())
        .collect();
    assert!(updated.windows(2).all(|w| w[0] >= w[1]), "most recently updated first");

    // A cursor that does not line up with the monolith's pages still continues exactly.
    let odd_cursor = edges[6]["cursor"].as_str().expect("a cursor");
    let odd = stack
        .graphql(&query, json!({ "workspaceId": workspace_id(1), "first": 10, "after": odd_cursor }))
        .await;
    let odd_ids: Vec<&str> = odd.data()["templates"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap_or_default())
        .collect();
    let expected: Vec<&str> =
        edges[7..17].iter().map(|e| e["node"]["id"].as_str().unwrap_or_default()).collect();
    assert_eq!(odd_ids, expected);
    stack.stop().await;
}

#[tokio::test]
async fn rename_template_changes_the_name_everyone_sees() {
    let stack = TestStack::start().await;
    let renamed = stack
        .graphql(
            &operation("RenameTemplate"),
            json!({ "id": template_id(3), "name": "  Spring sale, final " }),
        )
        .await;
    assert_eq!(renamed.data()["renameTemplate"]["name"], "Spring sale, final");
    let read = stack
        .graphql("query($id: ID!) { template(id: $id) { name } }", json!({ "id": template_id(3) }))
        .await;
    assert_eq!(read.data()["template"]["name"], "Spring sale, final");

    let empty =
        stack.graphql(&operation("RenameTemplate"), json!({ "id": template_id(3), "name": "   " })).await;
    assert_eq!(empty.error_codes(), ["BAD_USER_INPUT"]);
    stack.stop().await;
}

#[tokio::test]
async fn template_editor_shows_the_draft_the_draft_store_holds() {
    let stack = TestStack::start().await;
    let editor = stack.graphql(&operation("TemplateEditor"), json!({ "id": template_id(1) })).await;
    let draft = &editor.data()["template"]["draft"];
    let legacy = stack.monolith_get(OWNER, "/api/v1/templates/1/draft/").await;
    assert_eq!(draft["version"], legacy["version"]);
    let blocks = draft["blocks"].as_array().expect("blocks");
    let legacy_blocks = legacy["blocks"].as_array().expect("blocks");
    assert_eq!(blocks.len(), legacy_blocks.len());
    for (block, legacy_block) in blocks.iter().zip(legacy_blocks) {
        assert_eq!(block["id"], legacy_block["id"]);
        assert_eq!(block["content"], legacy_block["content"]);
        assert_eq!(
            block["kind"].as_str().map(str::to_lowercase),
            legacy_block["type"].as_str().map(str::to_owned)
        );
    }

    // A template without a draft (ids that are multiples of 50) has a null draft and no error.
    let none = stack.graphql(&operation("TemplateEditor"), json!({ "id": template_id(50) })).await;
    assert!(none.body.get("errors").is_none(), "{:?}", none.body);
    assert_eq!(none.data()["template"]["draft"], Value::Null);
    stack.stop().await;
}

#[tokio::test]
async fn update_draft_block_applies_and_a_stale_version_is_a_typed_conflict() {
    let stack = TestStack::start().await;
    let editor = stack.graphql(&operation("TemplateEditor"), json!({ "id": template_id(1) })).await;
    let draft = &editor.data()["template"]["draft"];
    let version = draft["version"].as_i64().expect("a version");
    let block = draft["blocks"][0]["id"].as_str().expect("a block").to_owned();
    let update = operation("UpdateDraftBlock");
    let input = |content: &str, expected: i64| json!({ "input": { "templateId": template_id(1), "blockId": block, "content": content, "expectedVersion": expected } });

    let applied = stack.graphql(&update, input("Hello again", version)).await;
    let result = &applied.data()["updateDraftBlock"];
    assert_eq!(result["__typename"], "DraftUpdated");
    assert_eq!(result["draft"]["version"], version + 1);
    assert_eq!(result["draft"]["blocks"][0]["content"], "Hello again");
    assert_eq!(result["draft"]["updatedBy"]["id"], user_id(OWNER));

    // Another editor saved first: the same expected version is now stale.
    let stale = stack.graphql(&update, input("My older edit", version)).await;
    assert!(stale.body.get("errors").is_none(), "a conflict is data, not an error: {:?}", stale.body);
    let conflict = &stale.data()["updateDraftBlock"];
    assert_eq!(conflict["__typename"], "DraftVersionConflict");
    assert_eq!(conflict["expectedVersion"], version);
    assert_eq!(conflict["currentVersion"], version + 1);
    assert_eq!(conflict["currentDraft"]["blocks"][0]["content"], "Hello again");
    assert!(conflict["message"].as_str().is_some_and(|m| m.contains("version")));
    stack.stop().await;
}

#[tokio::test]
async fn analytics_dashboard_agrees_with_the_legacy_view_and_pages_events() {
    let stack = TestStack::start().await;
    let query = operation("AnalyticsDashboard");
    let dashboard = stack.graphql(&query, json!({ "id": template_id(2), "window": "LAST_30_DAYS" })).await;
    let template = &dashboard.data()["template"];
    let legacy = stack.monolith_get(OWNER, "/api/v1/templates/2/analytics/?window=30d").await;
    for (field, legacy_field) in [
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("opened", "opened"),
        ("clicked", "clicked"),
        ("bounced", "bounced"),
        ("uniqueOpens", "unique_opens"),
    ] {
        assert_eq!(template["stats"][field], legacy[legacy_field], "{field}");
    }
    assert_eq!(template["stats"]["window"], "LAST_30_DAYS");
    let rate = template["stats"]["openRate"].as_f64().expect("a rate");
    let legacy_rate = legacy["open_rate"].as_f64().expect("a rate");
    assert!((rate - legacy_rate).abs() < 1e-9);

    let events = template["recentEvents"]["nodes"].as_array().expect("events");
    assert_eq!(events.len(), 20);
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_str().and_then(|s| s.parse().ok()).expect("a sequence"))
        .collect();
    assert!(sequences.windows(2).all(|w| w[0] > w[1]), "newest first: {sequences:?}");
    let cursor = template["recentEvents"]["pageInfo"]["endCursor"].as_str().expect("a cursor");
    let older = stack
        .graphql(&query, json!({ "id": template_id(2), "window": "LAST_7_DAYS", "eventsAfter": cursor }))
        .await;
    let older_first: u64 = older.data()["template"]["recentEvents"]["nodes"][0]["sequence"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a sequence");
    assert!(older_first < *sequences.last().expect("events"), "the next page is older");
    stack.stop().await;
}

#[tokio::test]
async fn workspace_members_are_the_datasets() {
    let stack = TestStack::start().await;
    let response = stack.graphql(&operation("WorkspaceMembers"), json!({ "id": workspace_id(1) })).await;
    let members = response.data()["workspace"]["members"].as_array().expect("members");
    let expected = stack.devstack.dataset().memberships.iter().filter(|m| m.workspace == 1).count();
    assert_eq!(members.len(), expected);
    assert!(members.iter().all(|m| m["user"]["fullName"].is_string()));
    stack.stop().await;
}

fn decode_id(id: &str) -> u64 {
    use base64::Engine;
    let text = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(id).expect("base64"))
        .expect("utf-8");
    text.split_once(':').and_then(|(_, n)| n.parse().ok()).expect("Type:number")
}
