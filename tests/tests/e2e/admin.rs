//! `/admin/migration` over real sockets: who may read it, what its JSON holds, and that a shadow
//! comparison recorded through the gateway's own engine shows up in it.

use std::path::Path;
use std::time::Duration;

use banyan_devstack::DevStackConfig;
use banyan_migration::{Backend, CallContext, DecidedBy, Decision, ShadowPlan, ShadowPurpose};
use banyan_tests::TestStack;
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "admin-token-for-the-tests-0123456789";

async fn stack(token: &str) -> TestStack {
    TestStack::start_with(DevStackConfig::default(), |config| {
        config.admin.token = token.to_owned();
        config.admin.contract = Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend-contract");
    })
    .await
}

fn url(stack: &TestStack, path: &str) -> String {
    format!("http://{}{path}", stack.gateway.addr())
}

async fn admin_json(stack: &TestStack) -> Value {
    let response = stack
        .http()
        .get(url(stack, "/admin/migration"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"].to_str().unwrap_or_default().starts_with("application/json"),
        "{:?}",
        response.headers()
    );
    response.json().await.expect("JSON")
}

#[tokio::test]
async fn with_a_token_configured_the_admin_routes_need_it() {
    let stack = stack(TOKEN).await;
    for path in ["/admin/migration", "/admin/migration.json"] {
        let anonymous = stack.http().get(url(&stack, path)).send().await.expect("answers");
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(anonymous.headers()["www-authenticate"], "Bearer realm=\"banyan-admin\"");
        let body: Value = anonymous.json().await.expect("JSON");
        assert_eq!(body["error"], "missing_token");

        for wrong in
            [format!("Bearer {TOKEN}x"), "Bearer ".to_owned(), format!("Token {TOKEN}"), TOKEN.to_owned()]
        {
            let response = stack
                .http()
                .get(url(&stack, path))
                .header("authorization", &wrong)
                .send()
                .await
                .expect("answers");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path} with {wrong:?}");
            let body: Value = response.json().await.expect("JSON");
            // (`Bearer ` arrives as `Bearer`: HTTP trims a header value's trailing blanks.)
            let bearer = wrong.strip_prefix("Bearer ").is_some_and(|token| !token.is_empty());
            let expected = if bearer { "invalid_token" } else { "missing_token" };
            assert_eq!(body["error"], expected, "{path} with {wrong:?}");
        }
        let lowercase = stack
            .http()
            .get(url(&stack, path))
            .header("authorization", format!("bearer {TOKEN}"))
            .send()
            .await
            .expect("answers");
        assert_eq!(lowercase.status(), StatusCode::OK, "the scheme is case-insensitive");

        let ok = stack
            .http()
            .get(url(&stack, path))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
            .await
            .expect("answers");
        assert_eq!(ok.status(), StatusCode::OK, "{path}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn without_a_token_the_admin_routes_do_not_exist() {
    let stack = stack("").await;
    for path in ["/admin/migration", "/admin/migration.json"] {
        for authorization in [None, Some("Bearer anything-at-all-0123456789")] {
            let mut request = stack.http().get(url(&stack, path));
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.expect("answers");
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path} {authorization:?}");
        }
    }
    // The rest of the gateway is unaffected.
    let health = stack.http().get(url(&stack, "/healthz")).send().await.expect("answers");
    assert_eq!(health.status(), StatusCode::OK);
    stack.stop().await;
}

#[tokio::test]
async fn the_json_holds_the_table_declarations_counters_evidence_exemplars_and_report() {
    let stack = stack(TOKEN).await;
    let body = admin_json(&stack).await;
    let mut keys: Vec<&str> = body.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["counters", "declarations", "evidence", "exemplars", "reload", "report", "table"]);

    let declared = [
        "Template.stats",
        "Template.draft",
        "Template.recentEvents",
        "Mutation.updateDraftBlock",
        "Mutation.insertDraftBlock",
        "Mutation.deleteDraftBlock",
    ];
    let declarations: Vec<&str> = body["declarations"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["key"].as_str().expect("a key"))
        .collect();
    assert_eq!(declarations, declared);
    assert_eq!(
        body["declarations"]["fields"][0]["legacy"]["calls"][0]["name"],
        "GET /api/v1/templates/{id}/analytics/"
    );
    let dependency = body["declarations"]["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .find(|d| d["coordinate"] == "Query.me")
        .expect("Query.me is declared");
    assert_eq!(dependency["calls"][0]["name"], "GET /api/v1/me/");

    // No routing table configured: every field on its declared default, the service.
    assert_eq!(body["table"]["origin"], "(defaults)");
    for key in declared {
        assert_eq!(body["table"]["routes"][key]["mode"], "service", "{key}");
        assert_eq!(body["counters"][key]["counters"]["matched"], 0, "{key}");
        assert_eq!(body["counters"][key]["match_rate"], Value::Null, "{key}");
        assert_eq!(body["evidence"][key]["compared"], 0, "{key}");
        assert_eq!(body["exemplars"][key], json!([]), "{key}");
    }
    assert_eq!(body["reload"], json!({ "reloads": 0, "rejections": 0, "last_rejection": null }));
    // The report reads the contract folder: six components, and with every field on its
    // service the legacy views and draft writes are retirable.
    assert_eq!(body["report"]["components"].as_array().map(Vec::len), Some(6));
    assert_eq!(
        body["report"]["retirable"],
        json!([
            "DELETE /api/v1/templates/{id}/draft/blocks/{block_id}/",
            "GET /api/v1/templates/{id}/analytics/",
            "GET /api/v1/templates/{id}/draft/",
            "GET /api/v1/templates/{id}/events/",
            "PATCH /api/v1/templates/{id}/draft/blocks/{block_id}/",
            "POST /api/v1/templates/{id}/draft/blocks/",
        ])
    );
    stack.stop().await;
}

/// Runs one shadowed call of `Template.stats` through the gateway's executor: the monolith
/// serves `primary`, the service answers `secondary` beside it.
async fn shadow_stats(stack: &TestStack, operation: &str, primary: Value, secondary: Value) {
    let engine = stack.gateway.engine();
    let key = engine.catalog().key("Template.stats").expect("declared");
    let decision = Decision {
        key,
        serve: Backend::Legacy,
        decided_by: DecidedBy::Shadow,
        shadow: Some(ShadowPlan {
            call: Backend::Service,
            purpose: ShadowPurpose::Compare,
            deadline: Duration::from_secs(5),
            max_in_flight: 8,
        }),
    };
    let context = CallContext {
        operation: Some(operation.into()),
        field_path: "templates.edges.0.node.stats".to_owned(),
        variables: Some(std::sync::Arc::new(json!({ "workspaceId": "V29ya3NwYWNlOjE=" }))),
        user_id: Some("1".into()),
    };
    let served: Result<Value, String> = engine
        .executor
        .execute(&decision, context, move |backend| {
            let answer = if backend == Backend::Legacy { primary.clone() } else { secondary.clone() };
            async move { Ok::<_, String>(answer) }
        })
        .await;
    assert!(served.is_ok());
}

/// Polls the JSON until `Template.stats` has `compared` comparisons (they finish in the
/// background, after the primary answered), a bounded number of times.
async fn json_after(stack: &TestStack, compared: u64) -> Value {
    for _ in 0..200 {
        let body = admin_json(stack).await;
        if body["evidence"]["Template.stats"]["compared"] == compared {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("Template.stats never reached {compared} comparisons");
}

#[tokio::test]
async fn a_shadow_recorded_through_the_engine_shows_up_in_the_json() {
    let stack = stack(TOKEN).await;
    shadow_stats(
        &stack,
        "TemplateList",
        json!({ "sent": 5, "open_rate": 0.5 }),
        json!({ "sent": 6, "open_rate": 0.5 }),
    )
    .await;
    let body = json_after(&stack, 1).await;
    let counters = &body["counters"]["Template.stats"];
    assert_eq!(counters["counters"]["mismatched"], 1);
    assert_eq!(counters["counters"]["matched"], 0);
    assert_eq!(counters["match_rate"], 0.0);
    assert_eq!(counters["served"]["legacy"], 1);
    assert_eq!(counters["operations"]["TemplateList"]["mismatched"], 1);

    let exemplars = body["exemplars"]["Template.stats"].as_array().expect("exemplars");
    assert_eq!(exemplars.len(), 1);
    let exemplar = &exemplars[0];
    assert_eq!(exemplar["operation"], "TemplateList");
    assert_eq!(exemplar["field_path"], "templates.edges.0.node.stats");
    assert_eq!(exemplar["primary"], "legacy");
    assert_eq!(exemplar["secondary"], "service");
    assert_eq!(exemplar["variables"], json!({ "workspaceId": "<redacted>" }));
    assert!(exemplar["user_hash"].is_string() && exemplar["user_hash"] != "1", "{exemplar}");
    let differences = exemplar["differences"].as_array().expect("differences");
    assert_eq!(differences.len(), 1, "only `sent` differs: {exemplar}");
    assert!(differences[0]["path"].as_str().unwrap_or_default().ends_with("sent"), "{exemplar}");
    assert_eq!((&differences[0]["primary"], &differences[0]["secondary"]), (&json!(5), &json!(6)));

    // A matching call from the other contract operation: evidence per operation.
    shadow_stats(&stack, "AnalyticsDashboard", json!({ "sent": 7 }), json!({ "sent": 7 })).await;
    let body = json_after(&stack, 2).await;
    let evidence = &body["evidence"]["Template.stats"];
    assert_eq!(evidence["mismatched"], 1);
    assert_eq!(evidence["mismatch_rate"], 0.5);
    assert_eq!(body["counters"]["Template.stats"]["match_rate"], 0.5);
    let operations: Vec<(String, bool, u64, u64)> = evidence["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .map(|o| {
            (
                o["operation"].as_str().expect("a name").to_owned(),
                o["in_contract"].as_bool().expect("a flag"),
                o["compared"].as_u64().expect("a count"),
                o["mismatched"].as_u64().expect("a count"),
            )
        })
        .collect();
    // The contract's operations that select `Template.stats`, read off frontend-contract/.
    assert_eq!(
        operations,
        [("AnalyticsDashboard".to_owned(), true, 1, 0), ("TemplateList".to_owned(), true, 1, 1)]
    );
    // The report's evidence is the same; the field is on its service, so it needs none.
    let field = body["report"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["key"] == "Template.stats")
        .expect("listed");
    assert_eq!(field["evidence"]["compared"], 2);
    assert_eq!(field["readiness"]["status"], "on_service");
    stack.stop().await;
}

#[tokio::test]
async fn the_page_is_self_contained_html() {
    let stack = stack(TOKEN).await;
    let response = stack
        .http()
        .get(url(&stack, "/admin/migration"))
        .header("accept", "text/html,application/xhtml+xml")
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    let csp = response.headers()["content-security-policy"].to_str().expect("ASCII").to_owned();
    assert!(csp.starts_with("default-src 'none';") && csp.contains("connect-src 'self'"), "{csp}");
    let page = response.text().await.expect("text");
    assert!(page.contains("fetch(\"/admin/migration.json\""), "it polls the JSON");
    assert!(!page.contains("src=") && !page.contains("href="), "nothing is loaded from elsewhere");
    assert!(!page.contains("innerHTML"), "data goes in as text");
    stack.stop().await;
}
