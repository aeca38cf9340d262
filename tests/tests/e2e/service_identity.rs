//! Identity to the services and to the monolith (issue 8, section 2): the gRPC services accept
//! only the identity the gateway signed, secrets rotate without a flag day, and no inbound header
//! that could speak for someone else reaches any backend, while the allowlisted ones do.

use banyan_devstack::proto::drafts::BatchGetDraftsRequest;
use banyan_devstack::proto::drafts::draft_service_client::DraftServiceClient;
use banyan_devstack::proto::events::ListEventsRequest;
use banyan_devstack::proto::events::event_service_client::EventServiceClient;
use banyan_devstack::{DevStackConfig, proto};
use banyan_sources::ServiceIdentityKeys;
use banyan_sources::service_identity::{EXPIRES_METADATA, IdentityClaims, SIGNATURE_METADATA, unix_now};
use banyan_tests::{OWNER, TestStack, template_id};
use serde_json::json;
use tonic::Code;
use tonic::metadata::MetadataMap;

const OLD_SECRET: &str = "old-secret-0123456789abcdef0123456789";
const NEW_SECRET: &str = "new-secret-0123456789abcdef0123456789";
const UNKNOWN_SECRET: &str = "unknown-secret-0123456789abcdef012345";

/// How a direct call presents itself.
#[derive(Debug, Clone, Copy)]
enum Presented {
    /// No identity metadata at all.
    Nothing,
    /// Only the bare user id header, as the services trusted before.
    BareUserId,
    /// Signed by the stack's own secret, as the gateway does.
    Signed,
    /// The stack's signature for user 1, presented for user 2.
    ForgedUser,
    /// A signature that is not the HMAC of anything.
    ForgedMac,
    /// Signed with the right secret, but expired a minute ago.
    Expired,
    /// Signed with a secret the services do not know.
    UnknownSecret,
}

fn present(metadata: &mut MetadataMap, keys: &ServiceIdentityKeys, presented: Presented) {
    let insert = |metadata: &mut MetadataMap, key: &'static str, value: String| {
        metadata.insert(key, value.parse().expect("ASCII metadata"));
    };
    match presented {
        Presented::Nothing => {}
        Presented::BareUserId => insert(metadata, "x-banyan-user-id", "1".to_owned()),
        Presented::Signed => keys.sign_metadata(metadata, 1, Some("direct")),
        Presented::ForgedUser => {
            keys.sign_metadata(metadata, 1, Some("direct"));
            insert(metadata, "x-banyan-user-id", "2".to_owned());
        }
        Presented::ForgedMac => {
            keys.sign_metadata(metadata, 1, Some("direct"));
            insert(metadata, SIGNATURE_METADATA, format!("v1={}", "ab".repeat(32)));
        }
        Presented::Expired => {
            let claims =
                IdentityClaims { user_id: 1, expires_at: unix_now() - 60, request_id: "direct".to_owned() };
            insert(metadata, "x-banyan-user-id", "1".to_owned());
            insert(metadata, "x-request-id", "direct".to_owned());
            insert(metadata, EXPIRES_METADATA, claims.expires_at.to_string());
            insert(metadata, SIGNATURE_METADATA, keys.sign(&claims));
        }
        Presented::UnknownSecret => {
            let unknown = ServiceIdentityKeys::new(&[UNKNOWN_SECRET]).expect("a long secret");
            unknown.sign_metadata(metadata, 1, Some("direct"));
        }
    }
}

/// One `ListEvents` and one `BatchGetDrafts` straight to the stand-ins, presented as asked: the
/// two status codes (`Ok` as `Code::Ok`).
async fn call_services_directly(stack: &TestStack, presented: Presented) -> (Code, Code) {
    let keys = stack.devstack.service_identity_keys();
    let mut events = EventServiceClient::connect(stack.devstack.events_url()).await.expect("connects");
    let mut request = tonic::Request::new(ListEventsRequest {
        template_id: "1".to_owned(),
        page_size: 5,
        page_token: String::new(),
    });
    present(request.metadata_mut(), keys, presented);
    let events_code = events.list_events(request).await.map_or_else(|status| status.code(), |_| Code::Ok);

    let mut drafts = DraftServiceClient::connect(stack.devstack.drafts_url()).await.expect("connects");
    let mut request = tonic::Request::new(BatchGetDraftsRequest { template_ids: vec!["1".to_owned()] });
    present(request.metadata_mut(), keys, presented);
    let drafts_code =
        drafts.batch_get_drafts(request).await.map_or_else(|status| status.code(), |_| Code::Ok);
    (events_code, drafts_code)
}

#[tokio::test]
async fn the_services_refuse_any_identity_the_gateway_did_not_sign() {
    let stack = TestStack::start().await;
    for presented in [
        Presented::Nothing,
        Presented::BareUserId,
        Presented::ForgedUser,
        Presented::ForgedMac,
        Presented::Expired,
        Presented::UnknownSecret,
    ] {
        let codes = call_services_directly(&stack, presented).await;
        assert_eq!(codes, (Code::Unauthenticated, Code::Unauthenticated), "{presented:?}");
    }
    // The control: the same calls signed as the gateway signs them are served.
    assert_eq!(call_services_directly(&stack, Presented::Signed).await, (Code::Ok, Code::Ok));
    stack.stop().await;
}

#[tokio::test]
async fn a_forged_identity_cannot_write_as_someone_else() {
    let stack = TestStack::start().await;
    let keys = stack.devstack.service_identity_keys();
    let template = stack.devstack.dataset().draft(4).expect("template 4 has a draft").clone();
    let mut drafts = DraftServiceClient::connect(stack.devstack.drafts_url()).await.expect("connects");
    let mut request = tonic::Request::new(proto::drafts::UpdateBlockRequest {
        template_id: "4".to_owned(),
        expected_version: template.version,
        block_id: "b1".to_owned(),
        content: "forged".to_owned(),
    });
    present(request.metadata_mut(), keys, Presented::ForgedUser);
    let refused = drafts.update_block(request).await.expect_err("refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
    // Nothing was written: the draft is still at its seeded version.
    let mut request = tonic::Request::new(BatchGetDraftsRequest { template_ids: vec!["4".to_owned()] });
    present(request.metadata_mut(), keys, Presented::Signed);
    let stored = drafts.batch_get_drafts(request).await.expect("served").into_inner().drafts;
    assert_eq!(stored[0].version, template.version);
    stack.stop().await;
}

const STATS_AND_DRAFT: &str = "query($id: ID!) { template(id: $id) { name stats { sent } draft { version } recentEvents(first: 2) { nodes { sequence } } } }";

#[tokio::test]
async fn through_the_gateway_every_service_call_is_signed_and_served() {
    let stack = TestStack::start().await;
    let response = stack.graphql(STATS_AND_DRAFT, json!({ "id": template_id(1) })).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    assert!(response.data()["template"]["draft"]["version"].is_number(), "{:?}", response.body);
    let calls = stack.devstack.calls();
    for method in ["EventService/GetTemplateStats", "DraftService/BatchGetDrafts"] {
        let metadata = calls.last_headers(method).unwrap_or_else(|| panic!("{method} was called"));
        assert_eq!(metadata.get("x-banyan-user-id").map(String::as_str), Some("1"), "{method}");
        let expires: u64 = metadata[EXPIRES_METADATA].parse().expect("a number");
        assert!(expires > unix_now(), "{method}: the signature is still valid");
        assert!(metadata[SIGNATURE_METADATA].starts_with("v1="), "{method}");
        assert!(metadata.contains_key("x-request-id"), "{method}");
    }
    stack.stop().await;
}

/// A stack whose services verify with `services` and whose gateway signs with `gateway`.
async fn rotated(services: &[&str], gateway: &[&str]) -> TestStack {
    let devstack = DevStackConfig {
        service_identity_secrets: services.iter().map(|s| (*s).to_owned()).collect(),
        ..DevStackConfig::default()
    };
    let gateway: Vec<String> = gateway.iter().map(|s| (*s).to_owned()).collect();
    TestStack::start_with(devstack, |config| {
        config.auth.service_identity_secrets = banyan_gateway::config::ServiceIdentitySecrets(gateway);
    })
    .await
}

#[tokio::test]
async fn secrets_rotate_with_two_active() {
    // (services verify with, gateway signs with, served?)
    let cases: [(&[&str], &[&str], bool); 5] = [
        // Step 1: the services learn the new secret first; the gateway still signs with the old.
        (&[NEW_SECRET, OLD_SECRET], &[OLD_SECRET], true),
        // Step 2: the gateway signs with the new secret, still accepting the old for its peers.
        (&[NEW_SECRET, OLD_SECRET], &[NEW_SECRET, OLD_SECRET], true),
        // ... and the other way round: services listing the old first accept the new too.
        (&[OLD_SECRET, NEW_SECRET], &[NEW_SECRET], true),
        // Step 3: the old secret is gone from the services: a gateway left behind is refused.
        (&[NEW_SECRET], &[OLD_SECRET, NEW_SECRET], false),
        (&[NEW_SECRET], &[NEW_SECRET], true),
    ];
    for (services, gateway, served) in cases {
        let stack = rotated(services, gateway).await;
        let response = stack.graphql(STATS_AND_DRAFT, json!({ "id": template_id(1) })).await;
        let template = &response.data()["template"];
        if served {
            assert!(response.body.get("errors").is_none(), "{services:?} / {gateway:?}: {:?}", response.body);
            assert!(template["stats"]["sent"].is_number() && template["draft"]["version"].is_number());
        } else {
            // The monolith's field is served; the services refuse the identity, so their fields
            // are null with an error each, and nothing of the refusal's detail leaks.
            assert!(template["name"].is_string(), "{:?}", response.body);
            assert!(template["stats"].is_null() && template["draft"].is_null(), "{:?}", response.body);
            // Not the caller's fault (the gateway checked them): the backend side's error.
            let mut codes = response.error_codes();
            codes.dedup();
            assert_eq!(codes, ["BACKEND_ERROR"], "{:?}", response.body);
            assert!(!response.body.to_string().contains("signature"), "{:?}", response.body);
        }
        stack.stop().await;
    }
}

/// Headers a client could send to pass as someone else, with the value it would hope for.
const SPOOFED: &[(&str, &str)] = &[
    ("x-banyan-user-id", "2"),
    ("x-banyan-identity-expires", "99999999999"),
    ("x-banyan-identity-signature", "v1=00"),
    ("x-forwarded-user", "admin"),
    ("x-remote-user", "admin"),
    ("remote-user", "admin"),
    ("x-user-id", "2"),
    ("proxy-authorization", "Basic YWRtaW46YWRtaW4="),
];

/// Allowlisted by default, with the values the backends must receive.
const PROPAGATED: &[(&str, &str)] = &[
    ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("tracestate", "rojo=00f067aa0ba902b7"),
    ("accept-language", "fr-CH, fr;q=0.9"),
];

const MONOLITH_AND_SERVICES: &str =
    "query($id: ID!) { workspaces { id } template(id: $id) { name stats { sent } draft { version } } }";

async fn send_with_extra_headers(stack: &TestStack, extra: &[(&str, &str)]) -> banyan_tests::GraphqlResponse {
    let mut request = stack
        .http()
        .post(stack.graphql_url())
        .header("authorization", format!("Token {}", stack.token(OWNER)))
        .header("x-request-id", "spoof-test-request")
        .json(&json!({ "query": MONOLITH_AND_SERVICES, "variables": { "id": template_id(1) } }));
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    banyan_tests::read(request.send().await.expect("the gateway answers")).await
}

/// What each backend recorded for the last call of the query: the monolith's REST calls and
/// the two services' gRPC calls.
const RECORDED_CALLS: &[&str] = &[
    "GET /api/v1/workspaces/",
    "GET /api/v1/templates/",
    "EventService/GetTemplateStats",
    "DraftService/BatchGetDrafts",
];

#[tokio::test]
async fn spoofed_identity_headers_never_reach_a_backend_and_allowlisted_ones_do() {
    let stack = TestStack::start().await;
    let mut extra: Vec<(&str, &str)> = SPOOFED.to_vec();
    extra.extend_from_slice(PROPAGATED);
    extra.push(("x-tenant", "not-allowlisted"));
    let response = send_with_extra_headers(&stack, &extra).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    let calls = stack.devstack.calls();
    for key in RECORDED_CALLS {
        let headers = calls.last_headers(key).unwrap_or_else(|| panic!("{key} was called"));
        for (name, spoofed) in SPOOFED {
            assert_ne!(
                headers.get(*name).map(String::as_str),
                Some(*spoofed),
                "{key}: {name} passed through"
            );
        }
        for name in [
            "x-forwarded-user",
            "x-remote-user",
            "remote-user",
            "x-user-id",
            "proxy-authorization",
            "x-tenant",
        ] {
            assert!(!headers.contains_key(name), "{key}: {name} reached the backend");
        }
        for (name, value) in PROPAGATED {
            assert_eq!(headers.get(*name).map(String::as_str), Some(*value), "{key}: {name} is allowlisted");
        }
        assert_eq!(headers.get("x-request-id").map(String::as_str), Some("spoof-test-request"), "{key}");
    }
    // The monolith sees the caller's own credential and no identity header of ours; the
    // services see the caller's user id, signed.
    for key in &RECORDED_CALLS[..2] {
        let headers = calls.last_headers(key).expect("called");
        assert_eq!(headers.get("authorization"), Some(&format!("Token {}", stack.token(OWNER))), "{key}");
        assert!(!headers.keys().any(|name| name.starts_with("x-banyan-")), "{key}: {headers:?}");
    }
    for key in &RECORDED_CALLS[2..] {
        let headers = calls.last_headers(key).expect("called");
        assert_eq!(headers.get("x-banyan-user-id").map(String::as_str), Some("1"), "{key}");
        assert!(!headers.contains_key("authorization"), "{key}: the credential stays with the monolith");
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_allowlist_is_configurable_and_never_lets_an_identity_header_through() {
    // Set in code, past the configuration's validation (which refuses the identity headers): the
    // clients still never send them.
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.backends.propagate_headers =
            ["X-Tenant", "x-forwarded-user", "x-banyan-user-id", "cookie"].map(str::to_owned).to_vec();
    })
    .await;
    let mut extra: Vec<(&str, &str)> = PROPAGATED.to_vec();
    extra.extend_from_slice(SPOOFED);
    extra.push(("x-tenant", "acme"));
    extra.push(("cookie", "sessionid=someone-elses"));
    let response = send_with_extra_headers(&stack, &extra).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    for key in RECORDED_CALLS {
        let headers = stack.devstack.calls().last_headers(key).unwrap_or_else(|| panic!("{key} was called"));
        assert_eq!(headers.get("x-tenant").map(String::as_str), Some("acme"), "{key}");
        assert!(
            !headers.contains_key("x-forwarded-user") && !headers.contains_key("cookie"),
            "{key}: {headers:?}"
        );
        assert_ne!(headers.get("x-banyan-user-id").map(String::as_str), Some("2"), "{key}");
        for (name, _) in PROPAGATED {
            assert!(!headers.contains_key(*name), "{key}: {name} is no longer listed");
        }
    }
    stack.stop().await;
}

#[test]
fn the_allowlist_refuses_identity_and_transport_headers() {
    for name in [
        "x-banyan-user-id",
        "Authorization",
        "cookie",
        "x-forwarded-user",
        "x-remote-user",
        "grpc-timeout",
        "te",
    ] {
        let toml = format!("[backends]\npropagate_headers = [\"{name}\"]\n");
        let error = banyan_gateway::Config::from_toml(&toml).expect_err(name).to_string();
        assert!(error.contains("backends.propagate_headers"), "{name}: {error}");
    }
}

/// The `StreamEvents` call behind a subscription, over a connection whose upgrade carried a
/// credential, an allowlisted header and two spoofed identity headers: its metadata as the event
/// store received it, after the first event arrived through it.
async fn subscription_stream_metadata(share_upstream: bool) -> std::collections::BTreeMap<String, String> {
    use banyan_tests::ws::{TRANSPORT_WS, WsClient};
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.subscriptions.share_upstream = share_upstream;
    })
    .await;
    let token = format!("Token {}", stack.token(OWNER));
    let mut headers: Vec<(&'static str, &str)> = vec![("authorization", token.as_str())];
    headers.extend([
        ("traceparent", PROPAGATED[0].1),
        ("x-banyan-user-id", "2"),
        ("x-forwarded-user", "admin"),
    ]);
    let mut socket = WsClient::connect(&stack, TRANSPORT_WS, &headers).await;
    socket.init(json!({})).await;
    let ack = socket.next().await.expect("an answer to connection_init");
    assert_eq!(ack["type"], "connection_ack", "the upgrade's credential: {ack}");
    socket
        .subscribe(
            "1",
            "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence } }",
            json!({ "ids": [template_id(1)] }),
        )
        .await;
    let mut opened = false;
    for _ in 0..100 {
        if stack.devstack.active_event_streams() == 1 {
            opened = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(opened, "the service accepted the signed StreamEvents call");
    let sequences = stack.devstack.append_events(vec![(1, banyan_devstack::EventKind::Opened)]).await;
    let message = socket.next().await.expect("an event");
    assert_eq!(
        message["payload"]["data"]["templateEvents"]["sequence"],
        sequences[0].to_string(),
        "{message}"
    );
    let metadata = stack.devstack.calls().last_headers("EventService/StreamEvents").expect("called");
    socket.close().await;
    stack.stop().await;
    metadata
}

/// A stream shared by every subscriber of its templates is opened with the gateway's own signed
/// identity (user 0, `banyan_sources::fanout::GATEWAY_USER_ID`) and none of any caller's
/// headers: no subscriber's identity or trace context stands for the others. (The event store
/// only checks that the gateway signed; visibility is the gateway's check, per subscriber.)
#[tokio::test]
async fn a_shared_event_stream_carries_the_gateways_own_signed_identity_and_no_callers_headers() {
    let metadata = subscription_stream_metadata(true).await;
    assert_eq!(
        metadata.get("x-banyan-user-id").map(String::as_str),
        Some(banyan_sources::fanout::GATEWAY_USER_ID.to_string().as_str())
    );
    assert!(metadata[SIGNATURE_METADATA].starts_with("v1="));
    assert!(!metadata.contains_key("traceparent"), "no caller's trace context on a shared stream");
    assert!(!metadata.contains_key("x-forwarded-user"));
}

/// With `subscriptions.share_upstream = false`, each subscription's stream carries its caller's
/// signed identity and the upgrade's allowlisted headers, as unary calls do.
#[tokio::test]
async fn an_unshared_event_stream_carries_the_callers_signed_identity_and_allowlisted_headers() {
    let metadata = subscription_stream_metadata(false).await;
    assert_eq!(metadata.get("x-banyan-user-id").map(String::as_str), Some("1"));
    assert!(metadata[SIGNATURE_METADATA].starts_with("v1="));
    assert_eq!(metadata.get("traceparent").map(String::as_str), Some(PROPAGATED[0].1));
    assert!(!metadata.contains_key("x-forwarded-user"));
}
