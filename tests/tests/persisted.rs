//! Persisted operations over real sockets (issue 8, items 6 and 9): Apollo's automatic persisted
//! queries (register, hit, not found, hash mismatch), trusted documents at each level over HTTP
//! and WebSocket, and `Cache-Control` on a `GET` by persisted id. Where a request must be refused
//! before it costs anything, the devstack's call counters show that no backend saw it (not even
//! the identity check).

use std::path::PathBuf;

use banyan_devstack::DevStackConfig;
use banyan_gateway::config::TrustedDocuments;
use banyan_tests::ws::WsClient;
use banyan_tests::{GraphqlResponse, OWNER, TestStack, read, template_id};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const GQL: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// The committed manifest.
fn manifest_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../frontend-contract/persisted-operations.json")
}

/// `(id, body)` of the manifest's operation `name`, read from the file as a client would.
fn manifest_operation(name: &str) -> (String, String) {
    let text = std::fs::read_to_string(manifest_path()).expect("the manifest is committed");
    let manifest: Value = serde_json::from_str(&text).expect("the manifest is JSON");
    let operation = manifest["operations"]
        .as_array()
        .and_then(|ops| ops.iter().find(|op| op["name"] == name))
        .unwrap_or_else(|| panic!("{name} is in the manifest"));
    let (id, body) = (operation["id"].as_str().expect("an id"), operation["body"].as_str().expect("a body"));
    assert_eq!(sha256(body), id, "a manifest id is the SHA-256 of its body");
    (id.to_owned(), body.to_owned())
}

/// The lower-case hex SHA-256 of `text`, computed here, apart from the gateway's own.
fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn start(level: TrustedDocuments) -> TestStack {
    TestStack::start_with(DevStackConfig::default(), |config| {
        config.persisted.manifest = manifest_path();
        config.persisted.trusted_documents = level;
        config.persisted.get_max_age = std::time::Duration::from_secs(60);
    })
    .await
}

/// POSTs `body` (a whole GraphQL request object) as `user`, accepting `accept`.
async fn post(
    stack: &TestStack,
    user: Option<u64>,
    accept: &str,
    body: Value,
) -> (GraphqlResponse, Option<String>) {
    let mut request = stack.http().post(stack.graphql_url()).header("accept", accept).json(&body);
    if let Some(user) = user {
        request = request.header("authorization", format!("Token {}", stack.token(user)));
    }
    let response = request.send().await.expect("the gateway answers");
    let cache_control = header(&response, "cache-control");
    (read(response).await, cache_control)
}

/// GETs `/graphql` with `params` as `user`.
async fn get(
    stack: &TestStack,
    user: Option<u64>,
    params: &[(&str, String)],
) -> (GraphqlResponse, Option<String>) {
    let mut request = stack.http().get(stack.graphql_url()).header("accept", GQL).query(params);
    if let Some(user) = user {
        request = request.header("authorization", format!("Token {}", stack.token(user)));
    }
    let response = request.send().await.expect("the gateway answers");
    let cache_control = header(&response, "cache-control");
    (read(response).await, cache_control)
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn username(stack: &TestStack, user: u64) -> String {
    stack.devstack.dataset().users.iter().find(|u| u.id == user).map(|u| u.username.clone()).expect("seeded")
}

#[tokio::test]
async fn apq_asks_for_an_unknown_hash_then_registers_and_serves_it_by_hash() {
    let stack = start(TrustedDocuments::Off).await;
    let query = "query Who { me { username } }";
    let hash = sha256(query);
    let expected = json!({ "me": { "username": username(&stack, OWNER) } });

    // Unknown: Apollo's answer, 200 for either media type, never cached, and nothing ran.
    stack.devstack.calls().reset();
    for accept in [GQL, JSON] {
        let (response, cache_control) =
            post(&stack, Some(OWNER), accept, json!({ "extensions": persisted(&hash) })).await;
        assert_eq!(response.status, 200, "{accept}: {:?}", response.body);
        assert_eq!(response.error_codes(), ["PERSISTED_QUERY_NOT_FOUND"]);
        assert_eq!(response.body["errors"][0]["message"], "PersistedQueryNotFound");
        assert_eq!(cache_control.as_deref(), Some("private, no-cache, must-revalidate"));
    }
    assert_eq!(stack.devstack.calls().total(), 0, "{:?}", stack.devstack.calls().snapshot());

    // The retry with the query registers it and runs it.
    let (response, _) =
        post(&stack, Some(OWNER), GQL, json!({ "query": query, "extensions": persisted(&hash) })).await;
    assert_eq!((response.status.as_u16(), response.data()), (200, &expected), "{:?}", response.body);

    // Then the hash alone runs it, over POST and GET, and WebSocket.
    let (response, _) = post(&stack, Some(OWNER), GQL, json!({ "extensions": persisted(&hash) })).await;
    assert_eq!((response.status.as_u16(), response.data()), (200, &expected), "{:?}", response.body);
    let (response, _) = get(&stack, Some(OWNER), &[("extensions", persisted(&hash).to_string())]).await;
    assert_eq!((response.status.as_u16(), response.data()), (200, &expected), "{:?}", response.body);
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket
        .send(json!({ "id": "1", "type": "subscribe", "payload": { "extensions": persisted(&hash) } }))
        .await;
    let answer = socket.next().await.expect("an answer");
    assert_eq!((&answer["type"], &answer["payload"]["data"]), (&json!("next"), &expected), "{answer}");
    socket.close().await;
    stack.stop().await;
}

#[tokio::test]
async fn apq_refuses_a_hash_that_is_not_the_querys_and_nothing_runs() {
    let stack = start(TrustedDocuments::Off).await;
    let rename = "mutation ($id: ID!, $name: String!) { renameTemplate(id: $id, name: $name) { id name } }";
    let variables = json!({ "id": template_id(1), "name": "hijacked" });
    let wrong = sha256("{ __typename }");
    stack.devstack.calls().reset();
    for accept in [GQL, JSON] {
        let body = json!({ "query": rename, "variables": variables, "extensions": persisted(&wrong) });
        let (response, _) = post(&stack, Some(OWNER), accept, body).await;
        assert_eq!(response.status, 400, "{accept}: {:?}", response.body);
        assert_eq!(response.error_codes(), ["PERSISTED_QUERY_HASH_MISMATCH"]);
        assert_eq!(response.body["errors"][0]["message"], "provided sha does not match query");
        assert!(response.body.get("data").is_none());
    }
    // Neither the identity check nor the mutation reached a backend.
    assert_eq!(stack.devstack.calls().total(), 0, "{:?}", stack.devstack.calls().snapshot());
    let seeded = stack.devstack.dataset().templates.iter().find(|t| t.id == 1).map(|t| t.name.clone());
    let now = stack
        .graphql("query ($id: ID!) { template(id: $id) { name } }", json!({ "id": template_id(1) }))
        .await;
    assert_eq!(now.data()["template"]["name"].as_str(), seeded.as_deref(), "the template kept its name");
    // Nor was the mismatched pair registered under either hash.
    for hash in [wrong, sha256(rename)] {
        let (response, _) = post(&stack, Some(OWNER), GQL, json!({ "extensions": persisted(&hash) })).await;
        assert_eq!(response.error_codes(), ["PERSISTED_QUERY_NOT_FOUND"]);
    }
    // Only version 1 exists; a malformed extension is a bad request.
    let version_2 = json!({ "persistedQuery": { "version": 2, "sha256Hash": sha256("{ __typename }") } });
    let (response, _) =
        post(&stack, None, GQL, json!({ "query": "{ __typename }", "extensions": version_2 })).await;
    assert_eq!(
        (response.status.as_u16(), response.error_codes()),
        (400, vec!["PERSISTED_QUERY_VERSION_NOT_SUPPORTED".to_owned()])
    );
    let malformed = json!({ "persistedQuery": { "version": 1 } });
    let (response, _) = post(&stack, None, GQL, json!({ "extensions": malformed })).await;
    assert_eq!((response.status.as_u16(), response.error_codes()), (400, vec!["BAD_REQUEST".to_owned()]));
    stack.stop().await;
}

#[tokio::test]
async fn enforced_trusted_documents_refuse_anything_else_before_any_backend_call() {
    let stack = start(TrustedDocuments::Enforce).await;
    let (id, body) = manifest_operation("UserMenu");
    let me = |response: &GraphqlResponse| response.data()["me"]["username"].as_str().map(str::to_owned);

    // A contract operation by id (both spellings) and by its exact body.
    for request in [
        json!({ "extensions": persisted(&id) }),
        json!({ "documentId": format!("sha256:{id}") }),
        json!({ "query": body }),
        json!({ "query": body, "extensions": persisted(&id) }),
    ] {
        let (response, _) = post(&stack, Some(OWNER), GQL, request.clone()).await;
        assert_eq!(response.status, 200, "{request}: {:?}", response.body);
        assert_eq!(me(&response), Some(username(&stack, OWNER)), "{request}");
    }

    // Anything else: refused with its code, and no backend saw it, not even the identity check.
    stack.devstack.calls().reset();
    let unknown_id = sha256("query Other { me { id } }");
    let refusals = [
        (json!({ "query": "{ me { username } }" }), 403, "QUERY_NOT_IN_SAFELIST"),
        (json!({ "query": format!("{body} ") }), 403, "QUERY_NOT_IN_SAFELIST"),
        (json!({ "query": "{ __schema { types { name } } }" }), 403, "QUERY_NOT_IN_SAFELIST"),
        (json!({ "extensions": persisted(&unknown_id) }), 404, "PERSISTED_QUERY_NOT_IN_LIST"),
        (json!({ "documentId": unknown_id }), 404, "PERSISTED_QUERY_NOT_IN_LIST"),
    ];
    for (request, status, code) in &refusals {
        for accept in [GQL, JSON] {
            let (response, _) = post(&stack, Some(OWNER), accept, request.clone()).await;
            assert_eq!(response.status.as_u16(), *status, "{request} {accept}: {:?}", response.body);
            assert_eq!(response.error_codes(), [*code], "{request}");
        }
    }
    let (response, _) = get(&stack, Some(OWNER), &[("query", "{ me { username } }".to_owned())]).await;
    assert_eq!(
        (response.status.as_u16(), response.error_codes()),
        (403, vec!["QUERY_NOT_IN_SAFELIST".to_owned()])
    );
    assert_eq!(stack.devstack.calls().total(), 0, "{:?}", stack.devstack.calls().snapshot());

    // Over WebSocket too: an unknown subscription is refused, the contract's runs.
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("1", "subscription { templateEvents(templateIds: []) { sequence } }", json!({})).await;
    let answer = socket.next().await.expect("an answer");
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["payload"][0]["extensions"]["code"], "QUERY_NOT_IN_SAFELIST", "{answer}");
    let (feed_id, _) = manifest_operation("TemplateEventsFeed");
    let payload =
        json!({ "extensions": persisted(&feed_id), "variables": { "templateIds": [template_id(1)] } });
    socket.send(json!({ "id": "2", "type": "subscribe", "payload": payload })).await;
    for _ in 0..200 {
        if stack.devstack.active_event_streams() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stack.devstack.active_event_streams(), 1, "the trusted subscription opened its stream");
    socket.close().await;
    stack.stop().await;
}

#[tokio::test]
async fn log_unknown_serves_an_unknown_operation_and_logs_its_hash_off_only_serves() {
    let logs = banyan_tests::captured_json_logs();
    let logged = |hash: &str| String::from_utf8_lossy(&logs.lock().expect("the log buffer")).contains(hash);
    for level in [TrustedDocuments::LogUnknown, TrustedDocuments::Off] {
        let stack = start(level).await;
        // Unique per level, so the other level's line cannot satisfy this one.
        let query = format!("query Unknown{level:?} {{ me {{ username }} }}");
        let response = stack.graphql(&query, json!({})).await;
        assert_eq!(
            response.data()["me"]["username"].as_str(),
            Some(username(&stack, OWNER).as_str()),
            "{level:?}"
        );
        let (id, _) = manifest_operation("UserMenu");
        let (trusted, _) = post(&stack, Some(OWNER), GQL, json!({ "extensions": persisted(&id) })).await;
        assert!(trusted.body.get("errors").is_none(), "{level:?}: {:?}", trusted.body);
        match level {
            TrustedDocuments::LogUnknown => {
                assert!(logged(&sha256(&query)), "the unknown operation's hash is logged");
                assert!(!logged(&id), "a trusted document is not");
            }
            _ => assert!(!logged(&sha256(&query)), "off logs nothing"),
        }
        stack.stop().await;
    }
}

#[tokio::test]
async fn a_get_by_persisted_id_carries_cache_control_only_for_successful_queries() {
    let stack = start(TrustedDocuments::LogUnknown).await;
    let (id, body) = manifest_operation("UserMenu");
    let by_id = [("extensions", persisted(&id).to_string())];

    // Signed in: private, so no shared cache keeps one user's data.
    let (response, cache_control) = get(&stack, Some(OWNER), &by_id).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(cache_control.as_deref(), Some("private, max-age=60"));
    let (response, cache_control) = get(&stack, Some(OWNER), &[("documentId", format!("sha256:{id}"))]).await;
    assert_eq!((response.status.as_u16(), cache_control.as_deref()), (200, Some("private, max-age=60")));

    // Anonymous and public: a registered `{ __typename }`, by hash.
    let typename = "{ __typename }";
    let hash = sha256(typename);
    let (registered, _) =
        post(&stack, None, GQL, json!({ "query": typename, "extensions": persisted(&hash) })).await;
    assert_eq!(registered.data(), &json!({ "__typename": "Query" }));
    let (response, cache_control) = get(&stack, None, &[("extensions", persisted(&hash).to_string())]).await;
    assert_eq!(
        (response.data(), cache_control.as_deref()),
        (&json!({ "__typename": "Query" }), Some("public, max-age=60"))
    );

    // Not for a response with errors (anonymous: every data field is UNAUTHENTICATED), nor for
    // the same query sent as text, nor over POST.
    let (response, cache_control) = get(&stack, None, &by_id).await;
    assert!(!response.error_codes().is_empty(), "{:?}", response.body);
    assert_eq!(cache_control, None);
    let (_, cache_control) = get(&stack, Some(OWNER), &[("query", body)]).await;
    assert_eq!(cache_control, None);
    let (_, cache_control) = post(&stack, Some(OWNER), GQL, json!({ "extensions": persisted(&id) })).await;
    assert_eq!(cache_control, None);

    // A mutation by id over GET is refused as any mutation over GET is, and runs nothing.
    let (rename, _) = manifest_operation("RenameTemplate");
    stack.devstack.calls().reset();
    let variables = json!({ "id": template_id(1), "name": "via GET" }).to_string();
    let (response, _) =
        get(&stack, Some(OWNER), &[("extensions", persisted(&rename).to_string()), ("variables", variables)])
            .await;
    assert_eq!(
        (response.status.as_u16(), response.error_codes()),
        (405, vec!["METHOD_NOT_ALLOWED".to_owned()]),
        "{:?}",
        response.body
    );
    // The same named mutation sent as text, without `operationName` (regression: a named
    // operation alone in its document used to pass the GET check and run).
    let (_, rename_body) = manifest_operation("RenameTemplate");
    let variables = json!({ "id": template_id(1), "name": "via GET" }).to_string();
    let (response, _) = get(&stack, Some(OWNER), &[("query", rename_body), ("variables", variables)]).await;
    assert_eq!(
        (response.status.as_u16(), response.error_codes()),
        (405, vec!["METHOD_NOT_ALLOWED".to_owned()]),
        "{:?}",
        response.body
    );
    assert_eq!(stack.devstack.calls().total(), 0, "{:?}", stack.devstack.calls().snapshot());
    stack.stop().await;
}
