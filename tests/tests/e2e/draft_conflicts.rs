//! Version conflicts from the draft store travel in gRPC's rich error model: a
//! `FAILED_PRECONDITION` is a `DraftVersionConflict` only when it carries the draft store's
//! `VERSION_CONFLICT` `ErrorInfo`; any other precondition failure is the backend's error
//! (`BACKEND_ERROR` on the field), never a conflict made up from missing details.
//!
//! A stub `DraftService` on its own ephemeral port answers every write with one chosen status;
//! the monolith is the real devstack (it checks the caller may edit).

use std::collections::HashMap;
use std::net::SocketAddr;

use banyan_devstack::proto::drafts::draft_service_server::{DraftService, DraftServiceServer};
use banyan_devstack::proto::drafts::{
    BatchGetDraftsRequest, BatchGetDraftsResponse, DeleteBlockRequest, DraftResponse, InsertBlockRequest,
    UpdateBlockRequest,
};
use banyan_devstack::{DRAFTS_ERROR_DOMAIN, DevStackConfig, VERSION_CONFLICT_REASON};
use banyan_tests::{TestStack, block_id};
use serde_json::{Value, json};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Answers every write with a clone of `answer`, and has no drafts.
struct StubDrafts {
    answer: Status,
}

#[tonic::async_trait]
impl DraftService for StubDrafts {
    async fn batch_get_drafts(
        &self,
        _: Request<BatchGetDraftsRequest>,
    ) -> Result<Response<BatchGetDraftsResponse>, Status> {
        Ok(Response::new(BatchGetDraftsResponse { drafts: Vec::new() }))
    }

    async fn update_block(&self, _: Request<UpdateBlockRequest>) -> Result<Response<DraftResponse>, Status> {
        Err(self.answer.clone())
    }

    async fn insert_block(&self, _: Request<InsertBlockRequest>) -> Result<Response<DraftResponse>, Status> {
        Err(self.answer.clone())
    }

    async fn delete_block(&self, _: Request<DeleteBlockRequest>) -> Result<Response<DraftResponse>, Status> {
        Err(self.answer.clone())
    }
}

/// Serves the stub on an ephemeral port of 127.0.0.1 until the test ends.
async fn serve_stub(answer: Status) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    let server = tonic::transport::Server::builder()
        .add_service(DraftServiceServer::new(StubDrafts { answer }))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    addr
}

/// Sends `updateDraftBlock` as the owner through a gateway whose draft store is the stub.
async fn update_through_stub(answer: Status) -> banyan_tests::GraphqlResponse {
    let stub = serve_stub(answer).await;
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.backends.drafts.url = format!("http://{stub}");
    })
    .await;
    let response = stack
        .graphql(
            "mutation($input: UpdateDraftBlockInput!) { updateDraftBlock(input: $input) {
                __typename
                ... on DraftVersionConflict { expectedVersion currentVersion }
            } }",
            json!({ "input": { "blockId": block_id(1, "b1"), "content": "x", "expectedVersion": 5 } }),
        )
        .await;
    stack.stop().await;
    response
}

fn conflict_info(metadata: &[(&str, &str)]) -> ErrorDetails {
    let metadata: HashMap<String, String> =
        metadata.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    ErrorDetails::with_error_info(VERSION_CONFLICT_REASON, DRAFTS_ERROR_DOMAIN, metadata)
}

#[tokio::test]
async fn a_rich_conflict_decodes_with_the_services_current_version() {
    let answer = Status::with_error_details(
        Code::FailedPrecondition,
        "draft is at version 41, not 5",
        conflict_info(&[("expectedVersion", "5"), ("currentVersion", "41")]),
    );
    let response = update_through_stub(answer).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    let result = &response.data()["updateDraftBlock"];
    assert_eq!(result["__typename"], "DraftVersionConflict");
    assert_eq!(result["expectedVersion"], 5);
    assert_eq!(result["currentVersion"], 41);
}

#[tokio::test]
async fn a_precondition_failure_without_a_conflict_detail_is_a_backend_error() {
    let cases = [
        ("no details", Status::new(Code::FailedPrecondition, "draft is locked")),
        (
            // The draft store's old format: a bare VersionConflict message, not a google.rpc.Status.
            "bare prost details",
            Status::with_details(Code::FailedPrecondition, "stale", vec![0x08, 0x05, 0x10, 0x29].into()),
        ),
        (
            "another reason",
            Status::with_error_details(
                Code::FailedPrecondition,
                "locked",
                ErrorDetails::with_error_info("DRAFT_LOCKED", DRAFTS_ERROR_DOMAIN, HashMap::new()),
            ),
        ),
        (
            "a conflict without its versions",
            Status::with_error_details(Code::FailedPrecondition, "stale", conflict_info(&[])),
        ),
    ];
    for (case, answer) in cases {
        let response = update_through_stub(answer).await;
        assert_eq!(response.status, 200, "{case}");
        assert_eq!(response.data()["updateDraftBlock"], Value::Null, "{case}: {:?}", response.body);
        assert_eq!(response.error_codes(), ["BACKEND_ERROR"], "{case}: {:?}", response.body);
        let error = &response.body["errors"][0];
        assert_eq!(error["path"], json!(["updateDraftBlock"]), "{case}");
        assert_eq!(error["extensions"]["backend"], "drafts", "{case}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("FAILED_PRECONDITION") && !message.contains("FailedPrecondition"),
            "{case}: {message}"
        );
    }
}
