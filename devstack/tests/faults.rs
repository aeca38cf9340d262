//! Every fault kind on every backend, set through the handle, the configuration or the admin
//! endpoint.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use banyan_devstack::dataset::OWNER_USER;
use banyan_devstack::proto::drafts::BatchGetDraftsRequest;
use banyan_devstack::proto::events::GetTemplateStatsRequest;
use banyan_devstack::proto::events::event_service_client::EventServiceClient;
use banyan_devstack::{Backend, DevStack, DevStackConfig, Fault};
use common::{Api, drafts_client, events_client, read, start};
use serde_json::json;
use tonic::Code;

fn stats_request() -> GetTemplateStatsRequest {
    GetTemplateStatsRequest { template_ids: vec!["1".into()], window: None }
}

fn drafts_request() -> BatchGetDraftsRequest {
    BatchGetDraftsRequest { template_ids: vec!["1".into()] }
}

#[tokio::test]
async fn latency_delays_every_backend() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let mut drafts = drafts_client(&stack).await;
    for backend in Backend::ALL {
        stack.faults().set(backend, Fault::latency(Duration::from_millis(300)));
    }
    let started = Instant::now();
    let (status, _) = api.get("/api/v1/me/").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let started = Instant::now();
    drafts.batch_get_drafts(drafts_request()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));

    stack.faults().clear(Backend::Drafts);
    assert!(stack.faults().get(Backend::Drafts).is_none());
    let started = Instant::now();
    drafts.batch_get_drafts(drafts_request()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn errors_answer_503_and_unavailable_and_are_still_counted() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let mut events = events_client(&stack).await;
    let mut drafts = drafts_client(&stack).await;
    for backend in Backend::ALL {
        stack.faults().set(backend, Fault::error_rate(1.0));
    }
    let (status, body) = api.get("/api/v1/templates/1/").await;
    assert_eq!((status, body), (503, json!({"detail": "Service temporarily unavailable."})));
    let status = events.get_template_stats(stats_request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(drafts.batch_get_drafts(drafts_request()).await.unwrap_err().code(), Code::Unavailable);
    assert_eq!(stack.calls().count("GET /api/v1/templates/{id}/"), 1);
    assert_eq!(stack.calls().count("EventService/GetTemplateStats"), 1);
    assert_eq!(stack.calls().count("DraftService/BatchGetDrafts"), 1);

    // A partial rate fails some requests and serves the others.
    stack.faults().set(Backend::Drafts, Fault::error_rate(0.5));
    let mut failed = 0;
    for _ in 0..100 {
        if drafts.batch_get_drafts(drafts_request()).await.is_err() {
            failed += 1;
        }
    }
    assert!((25..=75).contains(&failed), "{failed} of 100 failed");
}

#[tokio::test]
async fn hang_never_answers_until_the_client_gives_up() {
    let stack = start().await;
    stack.faults().set(Backend::Monolith, Fault::hang());
    stack.faults().set(Backend::Events, Fault::hang());
    let api = Api::new(&stack, OWNER_USER);
    let response = api
        .client
        .get(api.url("/api/v1/me/"))
        .header("authorization", format!("Token {}", api.token))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(response.unwrap_err().is_timeout());

    let mut events = events_client(&stack).await;
    let call = events.get_template_stats(stats_request());
    assert!(tokio::time::timeout(Duration::from_millis(300), call).await.is_err());
    assert_eq!(stack.calls().count("GET /api/v1/me/"), 1);
    assert_eq!(stack.calls().count("EventService/GetTemplateStats"), 1);

    // The admin surface is not subject to faults, so a human can undo them.
    let admin = reqwest::Client::new();
    let url = format!("{}/__devstack/faults/monolith", stack.monolith_url());
    assert_eq!(admin.delete(&url).send().await.unwrap().status().as_u16(), 204);
    let (status, _) = api.get("/api/v1/me/").await;
    assert_eq!(status, 200);
    // Shutdown does not wait for the hung request's hour.
    let started = Instant::now();
    stack.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn refused_connections_spare_open_ones() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let (status, _) = api.get("/api/v1/me/").await;
    assert_eq!(status, 200, "opens a pooled connection");
    let mut events = events_client(&stack).await;
    events.get_template_stats(stats_request()).await.unwrap_err(); // no window: INVALID_ARGUMENT
    stack.faults().set(Backend::Monolith, Fault::refuse_connections());
    stack.faults().set(Backend::Events, Fault::refuse_connections());

    // The open connections keep working.
    let (status, _) = api.get("/api/v1/me/").await;
    assert_eq!(status, 200);
    let status = events.get_template_stats(stats_request()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // New ones are dropped.
    let fresh = reqwest::Client::new().get(format!("{}/api/v1/me/", stack.monolith_url())).send().await;
    assert!(fresh.is_err());
    match EventServiceClient::connect(stack.events_url()).await {
        Err(_) => {}
        Ok(mut client) => {
            // The connection closes under the call: how the client names that varies.
            let status = client.get_template_stats(stats_request()).await.unwrap_err();
            assert!(
                matches!(status.code(), Code::Unavailable | Code::Cancelled | Code::Unknown),
                "{status:?}"
            );
        }
    }

    stack.faults().clear(Backend::Monolith);
    let fresh = reqwest::Client::new().get(format!("{}/api/v1/me/", stack.monolith_url())).send().await;
    assert_eq!(fresh.unwrap().status().as_u16(), 401);
}

#[tokio::test]
async fn faults_come_from_config_and_the_admin_endpoint() {
    let config: DevStackConfig =
        serde_json::from_value(json!({"seed": 42, "faults": {"drafts": {"error_rate": 1.0}}})).unwrap();
    let stack = DevStack::start(config).await.unwrap();
    let mut drafts = drafts_client(&stack).await;
    assert_eq!(drafts.batch_get_drafts(drafts_request()).await.unwrap_err().code(), Code::Unavailable);

    let admin = reqwest::Client::new();
    let base = format!("{}/__devstack/faults", stack.monolith_url());
    let (status, body) = read(
        admin
            .put(format!("{base}/events"))
            .json(&json!({"latency": "150ms", "error_rate": 0.25}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"latency": "150ms", "error_rate": 0.25, "hang": false, "refuse_connections": false})
    );
    let fault = stack.faults().get(Backend::Events);
    assert_eq!(fault.latency, Duration::from_millis(150));

    let (status, all) = read(admin.get(&base).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(all["drafts"]["error_rate"], 1.0);
    assert_eq!(all["monolith"]["hang"], false);

    let (status, _) =
        read(admin.put(format!("{base}/database")).json(&json!({})).send().await.unwrap()).await;
    assert_eq!(status, 404);
    let (status, _) =
        read(admin.put(format!("{base}/events")).json(&json!({"error_rate": 2.0})).send().await.unwrap())
            .await;
    assert_eq!(status, 400);
    let (status, _) =
        read(admin.put(format!("{base}/events")).json(&json!({"latency": "soon"})).send().await.unwrap())
            .await;
    assert_eq!(status, 400);
    assert_eq!(admin.delete(format!("{base}/drafts")).send().await.unwrap().status().as_u16(), 204);
    drafts.batch_get_drafts(drafts_request()).await.unwrap();
    assert!(stack.calls().snapshot().keys().all(|k| !k.contains("__devstack")));

    let invalid = DevStackConfig {
        faults: BTreeMap::from([(Backend::Events, Fault { error_rate: -1.0, ..Fault::none() })]),
        ..DevStackConfig::default()
    };
    assert!(DevStack::start(invalid).await.is_err());
}
