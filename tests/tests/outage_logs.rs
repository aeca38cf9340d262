//! What an operator reads in the JSON logs when a backend is down: one warning per failing batch
//! (not one per field), carrying the request id and the caller's W3C trace id. A test binary of
//! its own, since it installs the process's log subscriber (as `banyan serve --log-format json`
//! does: one object per line, the event's fields flattened, the spans listed).

use std::sync::Mutex;

use banyan_devstack::{Backend, DevStackConfig, Fault};
use banyan_tests::{OWNER, TestStack, contract_operations, workspace_id};
use serde_json::{Value, json};

/// Every captured line that is about `request_id`, parsed.
fn lines_of(logs: &Mutex<Vec<u8>>, request_id: &str) -> Vec<Value> {
    let bytes = logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .filter(|line| line.to_string().contains(request_id))
        .collect()
}

/// The `request` span of a log line (from the list of spans it was logged in).
fn request_span(line: &Value) -> Value {
    line["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|span| span["name"] == "request"))
        .cloned()
        .unwrap_or_else(|| panic!("logged within the request's span: {line}"))
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn an_outage_logs_one_warning_per_failing_batch_with_the_request_and_trace_ids() {
    let logs = banyan_tests::captured_json_logs();
    let stack = TestStack::start_with(DevStackConfig::default(), |_| {}).await;
    stack.devstack.faults().set(Backend::Events, Fault { error_rate: 1.0, ..Fault::default() });
    let (_, query) =
        contract_operations().into_iter().find(|(name, _)| name == "TemplateList").expect("in the contract");
    let response = stack
        .http()
        .post(stack.graphql_url())
        .header("authorization", format!("Token {}", stack.token(OWNER)))
        .header("x-request-id", "outage-with-trace")
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .json(&json!({ "query": query, "variables": { "workspaceId": workspace_id(1), "first": 10 } }))
        .send()
        .await
        .expect("the gateway answers");
    let body: Value = response.json().await.expect("JSON");
    let failed: Vec<&Value> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|error| error["extensions"]["code"] == "BACKEND_UNAVAILABLE")
        .collect();
    assert_eq!(failed.len(), 10, "every stats field of the page failed: {body}");

    let lines = lines_of(&logs, "outage-with-trace");
    let warnings: Vec<&Value> =
        lines.iter().filter(|line| line["message"] == "backend call failed").collect();
    assert_eq!(warnings.len(), 1, "one warning for the batch, not one per field: {warnings:#?}");
    let warning = warnings[0];
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["request_id"], "outage-with-trace", "{warning}");
    assert_eq!(warning["backend"], "events", "{warning}");
    assert_eq!(warning["code"], "BACKEND_UNAVAILABLE", "{warning}");
    assert_eq!(warning["fields"], failed.len(), "how many fields it cost: {warning}");
    let span = request_span(warning);
    assert_eq!(span["request_id"], "outage-with-trace", "{warning}");
    assert_eq!(span["trace_id"], TRACE_ID, "the caller's trace id: {warning}");

    // Without a `traceparent` (or with a malformed one) there is no trace id, but the request id.
    let response = stack
        .http()
        .post(stack.graphql_url())
        .header("authorization", format!("Token {}", stack.token(OWNER)))
        .header("x-request-id", "outage-without-trace")
        .header("traceparent", "00-not-a-trace-id-01")
        .json(&json!({ "query": query, "variables": { "workspaceId": workspace_id(1), "first": 3 } }))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;
    let lines = lines_of(&logs, "outage-without-trace");
    let warnings: Vec<&Value> =
        lines.iter().filter(|line| line["message"] == "backend call failed").collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["fields"], 3, "{}", warnings[0]);
    let span = request_span(warnings[0]);
    assert_eq!(span["request_id"], "outage-without-trace");
    assert!(span.get("trace_id").is_none(), "no trace id from a malformed traceparent: {span}");
    stack.stop().await;
}
