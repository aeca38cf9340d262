//! The floor answers TemplateList exactly as Banyan does, with the same backend calls: compared
//! as JSON over real sockets, against the real gateway and the real devstack.

use std::collections::BTreeMap;

use banyan_bench::floor::{self, FloorConfig};
use banyan_bench::operations::{BENCH_USER, TEMPLATE_LIST};
use banyan_tests::TestStack;
use serde_json::Value;

async fn post(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let response = http
        .post(url)
        .header("authorization", format!("Token {token}"))
        .header("accept", "application/json")
        .json(&TEMPLATE_LIST.body())
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_answers_template_list_as_banyan_does_with_the_same_calls() {
    let stack = TestStack::start().await;
    let config = FloorConfig {
        monolith_url: stack.devstack.monolith_url(),
        events_url: stack.devstack.events_url(),
        service_identity_secrets: stack.devstack.service_identity_secrets().to_vec(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let floor_url = format!("http://{}/graphql", listener.local_addr().expect("an address"));
    tokio::spawn(async move { floor::serve(listener, &config).await });
    let token = stack.token(BENCH_USER);
    let http = stack.http().clone();

    // Both identify the caller once and cache it: warm both up, then count one request each.
    let _ = post(&http, &stack.graphql_url(), &token).await;
    let _ = post(&http, &floor_url, &token).await;

    // The 7-day stats window ends "now": an event crossing its start between the two requests
    // changes a count, so one of three attempts must agree (a real difference never does).
    let mut last = None;
    for _ in 0..3 {
        stack.devstack.calls().reset();
        let banyan = post(&http, &stack.graphql_url(), &token).await;
        let banyan_calls = stack.devstack.calls().snapshot();
        stack.devstack.calls().reset();
        let floor = post(&http, &floor_url, &token).await;
        let floor_calls = stack.devstack.calls().snapshot();

        assert!(banyan.get("errors").is_none(), "Banyan failed: {banyan}");
        let edges = banyan["data"]["templates"]["edges"].as_array().map_or(0, Vec::len);
        assert_eq!(edges, 50, "a full page of 50 templates");
        let expected: BTreeMap<String, u64> =
            TEMPLATE_LIST.expected_calls.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect();
        assert_eq!(floor_calls, expected, "the floor makes the calls Banyan's table says");
        assert_eq!(banyan_calls, floor_calls, "Banyan and the floor make the same calls");
        if banyan == floor {
            return;
        }
        last = Some((banyan, floor));
    }
    let (banyan, floor) = last.expect("three attempts ran");
    assert_eq!(floor, banyan, "the floor's answer differs from Banyan's");
}
