//! The `DraftService` stand-in: drafts in memory, guarded by optimistic concurrency.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, PreconditionViolation, StatusExt};

use crate::Shared;
use crate::dataset::Dataset;
use crate::proto::drafts::draft_service_server::DraftService;
use crate::proto::drafts::{
    BatchGetDraftsRequest, BatchGetDraftsResponse, Block, BlockKind, DeleteBlockRequest, Draft,
    DraftResponse, InsertBlockRequest, UpdateBlockRequest,
};
use crate::time;

/// The metadata key carrying the id of the user a write is made for (verified with the gateway's
/// signature before the service reads it; see `service_auth`).
pub const USER_ID_METADATA: &str = banyan_sources::identity::USER_ID_METADATA;
/// Most templates one `BatchGetDrafts` call may name.
const MAX_BATCH: usize = 1_000;

#[derive(Debug, Clone)]
struct DraftRecord {
    version: u64,
    blocks: Vec<Block>,
    updated_at: DateTime<Utc>,
    updated_by: String,
    /// The number the next inserted block's id (`b{n}`) gets.
    next_block: u64,
}

impl DraftRecord {
    fn to_proto(&self, template_id: &str) -> Draft {
        Draft {
            template_id: template_id.to_string(),
            version: self.version,
            blocks: self.blocks.clone(),
            updated_at: Some(time::to_timestamp(&self.updated_at)),
            updated_by: self.updated_by.clone(),
        }
    }

    fn block_position(&self, block_id: &str) -> Result<usize, Status> {
        self.blocks
            .iter()
            .position(|b| b.id == block_id)
            .ok_or_else(|| Status::not_found(format!("block {block_id:?} not found")))
    }
}

/// The in-memory draft store, keyed by template id.
#[derive(Debug)]
pub(crate) struct DraftStore {
    drafts: RwLock<HashMap<String, DraftRecord>>,
}

impl DraftStore {
    /// A store holding the dataset's drafts.
    pub(crate) fn new(dataset: &Dataset) -> Self {
        let drafts = dataset
            .drafts
            .iter()
            .map(|d| {
                let record = DraftRecord {
                    version: d.version,
                    blocks: d
                        .blocks
                        .iter()
                        .map(|b| Block { id: b.id.clone(), kind: b.kind.into(), content: b.content.clone() })
                        .collect(),
                    updated_at: d.updated_at,
                    updated_by: d.updated_by.clone(),
                    next_block: d.blocks.len() as u64 + 1,
                };
                (d.template.to_string(), record)
            })
            .collect();
        Self { drafts: RwLock::new(drafts) }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, DraftRecord>> {
        // Writes change a record only after every check passed: a poisoned lock is still sound.
        self.drafts.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, HashMap<String, DraftRecord>> {
        self.drafts.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The drafts of these templates that have one, in the given order.
    fn get_many(&self, template_ids: &[String]) -> Vec<Draft> {
        let drafts = self.read();
        template_ids.iter().filter_map(|id| drafts.get(id).map(|d| d.to_proto(id))).collect()
    }

    /// Runs one write: finds the draft (NOT_FOUND), checks the version (FAILED_PRECONDITION with
    /// an `ErrorInfo` with reason `VERSION_CONFLICT`), applies `change` (which may refuse), then bumps the version and
    /// stamps the author.
    fn write(
        &self,
        template_id: &str,
        expected_version: u64,
        user: String,
        change: impl FnOnce(&mut DraftRecord) -> Result<(), Status>,
    ) -> Result<Draft, Status> {
        let mut drafts = self.write_lock();
        let record = drafts
            .get_mut(template_id)
            .ok_or_else(|| Status::not_found(format!("no draft for template {template_id:?}")))?;
        if record.version != expected_version {
            return Err(version_conflict(template_id, expected_version, record.version));
        }
        let mut next = record.clone();
        change(&mut next)?;
        next.version += 1;
        next.updated_at = time::now();
        next.updated_by = user;
        *record = next;
        Ok(record.to_proto(template_id))
    }
}

/// `google.rpc.ErrorInfo.reason` of a stale `expected_version` (see `drafts.proto`).
pub const VERSION_CONFLICT_REASON: &str = "VERSION_CONFLICT";
/// `google.rpc.ErrorInfo.domain` of the draft store's errors.
pub const DRAFTS_ERROR_DOMAIN: &str = "drafts.banyan.v1";

/// `FAILED_PRECONDITION` in gRPC's rich error model: an `ErrorInfo` a client can act on
/// (reason, domain, both versions in its metadata), and a `PreconditionFailure` for people.
fn version_conflict(template_id: &str, expected_version: u64, current_version: u64) -> Status {
    let message = format!("draft is at version {current_version}, not {expected_version}");
    let mut details = ErrorDetails::with_error_info(
        VERSION_CONFLICT_REASON,
        DRAFTS_ERROR_DOMAIN,
        HashMap::from([
            ("expectedVersion".to_string(), expected_version.to_string()),
            ("currentVersion".to_string(), current_version.to_string()),
        ]),
    );
    details.set_precondition_failure(vec![PreconditionViolation::new(
        "VERSION",
        format!("templates/{template_id}/draft"),
        message.clone(),
    )]);
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// The user a write is made for: the identity the gateway signed, as the interceptor verified it.
fn author<T>(request: &Request<T>) -> Result<String, Status> {
    crate::service_auth::verified_caller(request).map(|caller| caller.user_id.to_string())
}

/// The gRPC `DraftService` over the shared draft store.
pub(crate) struct DraftsApi {
    shared: Arc<Shared>,
}

impl DraftsApi {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tonic::async_trait]
impl DraftService for DraftsApi {
    async fn batch_get_drafts(
        &self,
        request: Request<BatchGetDraftsRequest>,
    ) -> Result<Response<BatchGetDraftsResponse>, Status> {
        let ids = request.into_inner().template_ids;
        if ids.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_BATCH} template_ids, got {}",
                ids.len()
            )));
        }
        let drafts = self.shared.drafts.get_many(&ids);
        Ok(Response::new(BatchGetDraftsResponse { drafts }))
    }

    async fn update_block(
        &self,
        request: Request<UpdateBlockRequest>,
    ) -> Result<Response<DraftResponse>, Status> {
        let user = author(&request)?;
        let r = request.into_inner();
        let draft = self.shared.drafts.write(&r.template_id, r.expected_version, user, |d| {
            let at = d.block_position(&r.block_id)?;
            if let Some(block) = d.blocks.get_mut(at) {
                block.content = r.content;
            }
            Ok(())
        })?;
        self.shared.replicate_draft(&draft);
        Ok(Response::new(DraftResponse { draft: Some(draft) }))
    }

    async fn insert_block(
        &self,
        request: Request<InsertBlockRequest>,
    ) -> Result<Response<DraftResponse>, Status> {
        let user = author(&request)?;
        let r = request.into_inner();
        let kind = match BlockKind::try_from(r.kind) {
            Ok(BlockKind::Unspecified) => {
                return Err(Status::invalid_argument("kind is BLOCK_KIND_UNSPECIFIED"));
            }
            Ok(kind) => kind,
            Err(_) => return Err(Status::invalid_argument("kind is not a known BlockKind")),
        };
        let draft = self.shared.drafts.write(&r.template_id, r.expected_version, user, |d| {
            let id = format!("b{}", d.next_block);
            d.next_block += 1;
            let at = (r.index as usize).min(d.blocks.len());
            d.blocks.insert(at, Block { id, kind: kind.into(), content: r.content });
            Ok(())
        })?;
        self.shared.replicate_draft(&draft);
        Ok(Response::new(DraftResponse { draft: Some(draft) }))
    }

    async fn delete_block(
        &self,
        request: Request<DeleteBlockRequest>,
    ) -> Result<Response<DraftResponse>, Status> {
        let user = author(&request)?;
        let r = request.into_inner();
        let draft = self.shared.drafts.write(&r.template_id, r.expected_version, user, |d| {
            let at = d.block_position(&r.block_id)?;
            d.blocks.remove(at);
            Ok(())
        })?;
        self.shared.replicate_draft(&draft);
        Ok(Response::new(DraftResponse { draft: Some(draft) }))
    }
}
