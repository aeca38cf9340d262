//! The `DraftService` stand-in over a real socket, and the monolith's legacy draft view of it.
#![allow(clippy::unwrap_used)]

mod common;

use banyan_devstack::dataset::{OWNER_USER, has_draft};
use banyan_devstack::proto::drafts::{
    BatchGetDraftsRequest, BlockKind, DeleteBlockRequest, Draft, InsertBlockRequest, UpdateBlockRequest,
};
use common::{Api, as_user, drafts_client, start};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

fn legacy_type(kind: i32) -> &'static str {
    match BlockKind::try_from(kind).unwrap() {
        BlockKind::Heading => "heading",
        BlockKind::Text => "text",
        BlockKind::Image => "image",
        BlockKind::Button => "button",
        BlockKind::Divider => "divider",
        BlockKind::Unspecified => "unspecified",
    }
}

/// Checks the monolith's legacy view of a template's draft against the draft store's.
async fn assert_legacy_matches(api: &Api, draft: &Draft) {
    let (status, legacy) = api.get(&format!("/api/v1/templates/{}/draft/", draft.template_id)).await;
    assert_eq!(status, 200);
    let updated = draft.updated_at.unwrap();
    let updated = chrono::DateTime::from_timestamp(updated.seconds, updated.nanos as u32).unwrap();
    let updated = if updated.timestamp_subsec_micros() == 0 {
        updated.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        updated.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    };
    let blocks: Vec<Value> = draft
        .blocks
        .iter()
        .map(|b| json!({"id": b.id, "type": legacy_type(b.kind), "content": b.content}))
        .collect();
    let expected = json!({
        "template": draft.template_id.parse::<u64>().unwrap(),
        "version": draft.version,
        "blocks": blocks,
        "updated_at": updated,
        "updated_by": draft.updated_by.parse::<u64>().unwrap(),
    });
    assert_eq!(legacy, expected);
}

#[tokio::test]
async fn batch_get_keeps_order_and_leaves_out_missing() {
    let stack = start().await;
    let mut client = drafts_client(&stack).await;
    let ids = ["3", "50", "1", "9999", "2", "600"];
    let request = BatchGetDraftsRequest { template_ids: ids.iter().map(|s| s.to_string()).collect() };
    let drafts = client.batch_get_drafts(request).await.unwrap().into_inner().drafts;
    let got: Vec<&str> = drafts.iter().map(|d| d.template_id.as_str()).collect();
    assert_eq!(got, vec!["3", "1", "2"]);
    assert!(!has_draft(50) && !has_draft(600) && has_draft(1));
    assert_eq!(stack.calls().count("DraftService/BatchGetDrafts"), 1);

    let seeded = stack.dataset().draft(3).unwrap();
    assert_eq!(drafts[0].version, seeded.version);
    assert_eq!(drafts[0].blocks.len(), seeded.blocks.len());
    assert_eq!(drafts[0].blocks[0].kind, i32::from(BlockKind::Heading));
    assert_eq!(drafts[0].blocks[0].id, "b1");
    assert_eq!(drafts[0].updated_by, seeded.updated_by);

    let api = Api::new(&stack, OWNER_USER);
    for draft in &drafts {
        assert_legacy_matches(&api, draft).await;
    }
    let (status, body) = api.get("/api/v1/templates/50/draft/").await;
    assert_eq!((status, body), (404, json!({"detail": "Not found."})));
}

#[tokio::test]
async fn writes_bump_the_version_and_record_the_author() {
    let stack = start().await;
    let mut client = drafts_client(&stack).await;
    let api = Api::new(&stack, OWNER_USER);
    let seeded = stack.dataset().draft(4).unwrap().clone();
    let v = seeded.version;

    let update = UpdateBlockRequest {
        template_id: "4".into(),
        expected_version: v,
        block_id: "b1".into(),
        content: "New heading".into(),
    };
    let draft = client.update_block(as_user(7, update)).await.unwrap().into_inner().draft.unwrap();
    assert_eq!(draft.version, v + 1);
    assert_eq!(draft.blocks[0].content, "New heading");
    assert_eq!(draft.updated_by, "7");
    assert!(draft.updated_at.unwrap().seconds >= stack.dataset().anchor.timestamp());
    assert_legacy_matches(&api, &draft).await;
    let headers = stack.calls().last_headers("DraftService/UpdateBlock").unwrap();
    assert_eq!(headers["x-banyan-user-id"], "7");

    let insert = InsertBlockRequest {
        template_id: "4".into(),
        expected_version: v + 1,
        index: 0,
        kind: BlockKind::Button.into(),
        content: "Buy".into(),
    };
    let draft = client.insert_block(as_user(8, insert)).await.unwrap().into_inner().draft.unwrap();
    let new_id = format!("b{}", seeded.blocks.len() + 1);
    assert_eq!(draft.blocks[0].id, new_id);
    assert_eq!(draft.blocks.len(), seeded.blocks.len() + 1);
    let past_end = InsertBlockRequest {
        template_id: "4".into(),
        expected_version: v + 2,
        index: 1000,
        kind: BlockKind::Divider.into(),
        content: String::new(),
    };
    let draft = client.insert_block(as_user(8, past_end)).await.unwrap().into_inner().draft.unwrap();
    assert_eq!(draft.blocks.last().unwrap().kind, i32::from(BlockKind::Divider));

    let delete =
        DeleteBlockRequest { template_id: "4".into(), expected_version: v + 3, block_id: new_id.clone() };
    let draft = client.delete_block(as_user(9, delete)).await.unwrap().into_inner().draft.unwrap();
    assert_eq!(draft.version, v + 4);
    assert!(draft.blocks.iter().all(|b| b.id != new_id));
    assert_legacy_matches(&api, &draft).await;
    // The dataset keeps the initial state.
    assert_eq!(stack.dataset().draft(4).unwrap().version, v);
}

#[tokio::test]
async fn stale_versions_conflict_with_details() {
    let stack = start().await;
    let mut client = drafts_client(&stack).await;
    let current = stack.dataset().draft(5).unwrap().version;
    let stale = UpdateBlockRequest {
        template_id: "5".into(),
        expected_version: current + 10,
        block_id: "b1".into(),
        content: "x".into(),
    };
    let status = client.update_block(as_user(1, stale)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    // gRPC's rich error model: a google.rpc.Status whose ErrorInfo names the conflict.
    let details = status.check_error_details().unwrap();
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, banyan_devstack::VERSION_CONFLICT_REASON);
    assert_eq!(info.domain, banyan_devstack::DRAFTS_ERROR_DOMAIN);
    assert_eq!(info.metadata["expectedVersion"], (current + 10).to_string());
    assert_eq!(info.metadata["currentVersion"], current.to_string());
    let violations = &details.precondition_failure().expect("a PreconditionFailure").violations;
    assert_eq!(violations[0].subject, "templates/5/draft");

    // The version is checked before the block: a stale write to a deleted block still conflicts.
    let stale_delete =
        DeleteBlockRequest { template_id: "5".into(), expected_version: 0, block_id: "b999".into() };
    assert_eq!(
        client.delete_block(as_user(1, stale_delete)).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
}

#[tokio::test]
async fn bad_writes_are_refused() {
    let stack = start().await;
    let mut client = drafts_client(&stack).await;
    let v = stack.dataset().draft(6).unwrap().version;
    let update = |template: &str, block: &str| UpdateBlockRequest {
        template_id: template.into(),
        expected_version: v,
        block_id: block.into(),
        content: "x".into(),
    };
    assert_eq!(client.update_block(as_user(1, update("50", "b1"))).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        client.update_block(as_user(1, update("nope", "b1"))).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(client.update_block(as_user(1, update("6", "b99"))).await.unwrap_err().code(), Code::NotFound);
    let unspecified = InsertBlockRequest {
        template_id: "6".into(),
        expected_version: v,
        index: 0,
        kind: BlockKind::Unspecified.into(),
        content: String::new(),
    };
    assert_eq!(client.insert_block(as_user(1, unspecified)).await.unwrap_err().code(), Code::InvalidArgument);
    // Unsigned: refused before the service sees it.
    let mut unsigned =
        banyan_devstack::proto::drafts::draft_service_client::DraftServiceClient::connect(stack.drafts_url())
            .await
            .unwrap();
    let anonymous = tonic::Request::new(update("6", "b1"));
    assert_eq!(unsigned.update_block(anonymous).await.unwrap_err().code(), Code::Unauthenticated);
    // Nothing changed.
    let request = BatchGetDraftsRequest { template_ids: vec!["6".into()] };
    let drafts = client.batch_get_drafts(request).await.unwrap().into_inner().drafts;
    assert_eq!(drafts[0].version, v);
    assert_eq!(stack.calls().count("DraftService/UpdateBlock"), 4);
    assert_eq!(stack.calls().count("DraftService/InsertBlock"), 1);
}

#[tokio::test]
async fn with_the_legacy_sync_off_the_legacy_draft_falls_behind() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let mut client = drafts_client(&stack).await;
    let v = stack.dataset().draft(6).unwrap().version;
    stack.set_legacy_sync(false);
    let update = UpdateBlockRequest {
        template_id: "6".into(),
        expected_version: v,
        block_id: "b1".into(),
        content: "Only the service knows".into(),
    };
    let draft = client.update_block(as_user(1, update)).await.unwrap().into_inner().draft.unwrap();
    assert_eq!(draft.version, v + 1);
    let (status, legacy) = api.get("/api/v1/templates/6/draft/").await;
    assert_eq!(status, 200);
    assert_eq!(legacy["version"], v, "the monolith's own row was not written");
    assert_ne!(legacy["blocks"][0]["content"], "Only the service knows");
}
