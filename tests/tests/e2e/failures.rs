//! A backend that fails costs only the fields it serves: partial data, a coded error on each of
//! those fields, never a failed request or a leaked internal message.

use std::time::Duration;

use banyan_devstack::{Backend, DevStackConfig, Fault};
use banyan_tests::{TestStack, contract_operation, template_id, workspace_id};
use serde_json::{Value, json};

fn errors_on(body: &Value, field: &str) -> Vec<Value> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter(|e| {
                    e["path"].as_array().and_then(|p| p.last()).and_then(Value::as_str) == Some(field)
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_failing_event_store_nulls_only_the_stats() {
    let stack = TestStack::start().await;
    stack.devstack.faults().set(Backend::Events, Fault { error_rate: 1.0, ..Fault::default() });
    let response = stack
        .graphql(&contract_operation("TemplateList"), json!({ "workspaceId": workspace_id(1), "first": 10 }))
        .await;
    assert_eq!(response.status, 200);
    let edges = response.data()["templates"]["edges"].as_array().expect("templates still load");
    assert_eq!(edges.len(), 10);
    for edge in edges {
        assert!(edge["node"]["name"].is_string());
        assert!(edge["node"]["createdBy"]["fullName"].is_string());
        assert_eq!(edge["node"]["stats"], Value::Null);
    }
    let stats_errors = errors_on(&response.body, "stats");
    assert_eq!(stats_errors.len(), 10, "one error per stats field: {:?}", response.body["errors"]);
    for error in &stats_errors {
        assert_eq!(error["extensions"]["code"], "BACKEND_UNAVAILABLE");
        assert_eq!(error["extensions"]["backend"], "events");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("127.0.0.1") && !message.contains("Unavailable:"),
            "no internals leak: {message}"
        );
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_hanging_draft_store_times_out_on_the_draft_field() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.backends.drafts.timeout = Duration::from_millis(300);
    })
    .await;
    stack.devstack.faults().set(Backend::Drafts, Fault { hang: true, ..Fault::default() });
    let started = std::time::Instant::now();
    let response =
        stack.graphql(&contract_operation("TemplateEditor"), json!({ "id": template_id(1) })).await;
    assert!(started.elapsed() < Duration::from_secs(10), "the request does not hang with the backend");
    assert!(response.data()["template"]["name"].is_string());
    assert_eq!(response.data()["template"]["draft"], Value::Null);
    assert_eq!(response.error_codes(), ["BACKEND_TIMEOUT"]);
    stack.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_an_unavailable_backend() {
    let stack = TestStack::start().await;
    stack.devstack.faults().set(Backend::Drafts, Fault { refuse_connections: true, ..Fault::default() });
    let response =
        stack.graphql(&contract_operation("TemplateEditor"), json!({ "id": template_id(1) })).await;
    assert_eq!(response.data()["template"]["draft"], Value::Null);
    assert_eq!(response.error_codes(), ["BACKEND_UNAVAILABLE"]);

    // When the backend is back, so is the field.
    stack.devstack.faults().clear(Backend::Drafts);
    let response =
        stack.graphql(&contract_operation("TemplateEditor"), json!({ "id": template_id(1) })).await;
    assert!(response.data()["template"]["draft"]["version"].is_number(), "{:?}", response.body);
    stack.stop().await;
}

#[tokio::test]
async fn a_failing_monolith_fails_its_fields_with_a_code() {
    let stack = TestStack::start().await;
    // Sign in first, so the identity check is cached and the failure hits the fields.
    stack.graphql("{ __typename }", json!({})).await;
    stack.devstack.faults().set(Backend::Monolith, Fault { error_rate: 1.0, ..Fault::default() });
    let response = stack.graphql(&contract_operation("WorkspaceSwitcher"), json!({})).await;
    assert_eq!(response.status, 200);
    // Both roots are nullable: each is null beside the other, never missing.
    assert_eq!(response.body["data"], json!({ "me": null, "workspaces": null }), "{:?}", response.body);
    let codes = response.error_codes();
    assert!(!codes.is_empty() && codes.iter().all(|c| c == "BACKEND_UNAVAILABLE"), "{codes:?}");
    stack.stop().await;
}
