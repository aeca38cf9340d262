//! The draft store's client (`banyan.drafts.v1.DraftService`).

use std::time::Duration;

use prost::Message;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::domain::{Block, BlockKind, Draft, DraftEdit, TemplateId, UserId};
use crate::error::{Backend, SourceError, from_status};
use crate::grpc::{self, GrpcOptions};
use crate::identity::Caller;
use crate::proto::drafts as pb;

const BACKEND: Backend = Backend::Drafts;

/// A client for the draft store over one shared channel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DraftsClient {
    client: pb::draft_service_client::DraftServiceClient<Channel>,
    timeout: Duration,
}

impl DraftsClient {
    /// Builds the client; the channel connects on first use.
    pub fn new(options: &GrpcOptions) -> Result<Self, SourceError> {
        let channel = grpc::channel(BACKEND, options)?;
        Ok(Self {
            client: pb::draft_service_client::DraftServiceClient::new(channel),
            timeout: options.timeout,
        })
    }

    /// The drafts of many templates in one call; templates with no draft are left out.
    pub async fn batch_get(&self, caller: &Caller, ids: &[TemplateId]) -> Result<Vec<Draft>, SourceError> {
        let message =
            pb::BatchGetDraftsRequest { template_ids: ids.iter().map(|id| id.to_string()).collect() };
        let mut client = self.client.clone();
        let request = grpc::request(message, caller, self.timeout);
        let response = grpc::call(
            BACKEND,
            "DraftService/BatchGetDrafts",
            self.timeout,
            client.batch_get_drafts(request),
        )
        .await?;
        response.drafts.into_iter().map(draft_from_wire).collect()
    }

    /// Applies one edit made against `expected_version`; a stale version is
    /// [`SourceError::VersionConflict`] with the current version.
    pub async fn edit(
        &self,
        caller: &Caller,
        template: TemplateId,
        expected_version: u64,
        edit: DraftEdit,
    ) -> Result<Draft, SourceError> {
        let template_id = template.to_string();
        let mut client = self.client.clone();
        let result = match edit {
            DraftEdit::UpdateBlock { block_id, content } => {
                let message = pb::UpdateBlockRequest { template_id, expected_version, block_id, content };
                let request = grpc::request(message, caller, self.timeout);
                self.write("DraftService/UpdateBlock", client.update_block(request)).await
            }
            DraftEdit::InsertBlock { index, kind, content } => {
                let message = pb::InsertBlockRequest {
                    template_id,
                    expected_version,
                    index,
                    kind: kind_to_wire(kind) as i32,
                    content,
                };
                let request = grpc::request(message, caller, self.timeout);
                self.write("DraftService/InsertBlock", client.insert_block(request)).await
            }
            DraftEdit::DeleteBlock { block_id } => {
                let message = pb::DeleteBlockRequest { template_id, expected_version, block_id };
                let request = grpc::request(message, caller, self.timeout);
                self.write("DraftService/DeleteBlock", client.delete_block(request)).await
            }
        };
        let response = result?;
        let draft = response.draft.ok_or_else(|| SourceError::BadResponse {
            backend: BACKEND,
            detail: "a write answered no draft".to_owned(),
        })?;
        draft_from_wire(draft)
    }

    async fn write(
        &self,
        rpc: &'static str,
        call: impl Future<Output = Result<tonic::Response<pb::DraftResponse>, tonic::Status>>,
    ) -> Result<pb::DraftResponse, SourceError> {
        let span = tracing::debug_span!("grpc", backend = BACKEND.name(), rpc);
        let outcome = tokio::time::timeout(self.timeout, call.instrument(span)).await;
        match outcome {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) if status.code() == tonic::Code::FailedPrecondition => {
                match pb::VersionConflict::decode(status.details()) {
                    Ok(conflict) => Err(SourceError::VersionConflict {
                        expected: conflict.expected_version,
                        current: conflict.current_version,
                    }),
                    Err(e) => Err(SourceError::BadResponse {
                        backend: BACKEND,
                        detail: format!("{rpc}: FAILED_PRECONDITION without a VersionConflict: {e}"),
                    }),
                }
            }
            Ok(Err(status)) => Err(from_status(BACKEND, self.timeout, &status)),
            Err(_) => Err(SourceError::Timeout { backend: BACKEND, timeout: self.timeout }),
        }
    }
}

fn kind_to_wire(kind: BlockKind) -> pb::BlockKind {
    match kind {
        BlockKind::Heading => pb::BlockKind::Heading,
        BlockKind::Text => pb::BlockKind::Text,
        BlockKind::Image => pb::BlockKind::Image,
        BlockKind::Button => pb::BlockKind::Button,
        BlockKind::Divider => pb::BlockKind::Divider,
    }
}

fn draft_from_wire(draft: pb::Draft) -> Result<Draft, SourceError> {
    let blocks = draft
        .blocks
        .into_iter()
        .map(|block| {
            let kind = match pb::BlockKind::try_from(block.kind) {
                Ok(pb::BlockKind::Heading) => BlockKind::Heading,
                Ok(pb::BlockKind::Text) => BlockKind::Text,
                Ok(pb::BlockKind::Image) => BlockKind::Image,
                Ok(pb::BlockKind::Button) => BlockKind::Button,
                Ok(pb::BlockKind::Divider) => BlockKind::Divider,
                Ok(pb::BlockKind::Unspecified) | Err(_) => {
                    return Err(SourceError::BadResponse {
                        backend: BACKEND,
                        detail: format!("unknown block kind {}", block.kind),
                    });
                }
            };
            Ok(Block { id: block.id, kind, content: block.content })
        })
        .collect::<Result<_, _>>()?;
    Ok(Draft {
        template_id: grpc::parse_template_id(BACKEND, &draft.template_id)?,
        version: draft.version,
        blocks,
        updated_at: grpc::from_timestamp(BACKEND, draft.updated_at)?,
        updated_by: draft.updated_by.parse().map(UserId).map_err(|_| SourceError::BadResponse {
            backend: BACKEND,
            detail: format!("updated_by {:?} is not a user id", draft.updated_by),
        })?,
    })
}
