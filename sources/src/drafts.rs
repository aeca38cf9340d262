//! The draft store's client (`banyan.drafts.v1.DraftService`).

use std::time::Duration;

use tonic::transport::Channel;
use tonic_types::StatusExt;
use tracing::Instrument;

use crate::domain::{Block, BlockKind, Draft, DraftEdit, TemplateId, UserId};
use crate::error::{Backend, SourceError, from_status};
use crate::grpc::{self, GrpcOptions};
use crate::identity::Caller;
use crate::metrics::BackendMetrics;
use crate::proto::drafts as pb;
use crate::resilience::Attempt;
use crate::service_identity::ServiceIdentityKeys;

const BACKEND: Backend = Backend::Drafts;

/// A client for the draft store over one shared channel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DraftsClient {
    client: pb::draft_service_client::DraftServiceClient<Channel>,
    timeout: Duration,
    /// Signs the caller's identity on every call; `None` sends it unsigned.
    identity: Option<ServiceIdentityKeys>,
    /// Where each call's duration and outcome go.
    metrics: BackendMetrics,
    resilience: crate::resilience::Resilience,
}

impl DraftsClient {
    /// Builds the client; the channel connects on first use.
    pub fn new(options: &GrpcOptions) -> Result<Self, SourceError> {
        let channel = grpc::channel(BACKEND, options)?;
        Ok(Self {
            client: pb::draft_service_client::DraftServiceClient::new(channel),
            timeout: options.timeout,
            identity: None,
            metrics: BackendMetrics::default(),
            resilience: crate::resilience::Resilience::new(BACKEND, options.resilience.clone()),
        })
    }

    /// The draft store's breaker, retry budget and counters.
    pub fn resilience(&self) -> &crate::resilience::Resilience {
        &self.resilience
    }

    /// The same client, signing the caller's identity on every call with `keys`.
    #[must_use]
    pub fn with_identity(mut self, keys: ServiceIdentityKeys) -> Self {
        self.identity = Some(keys);
        self
    }

    /// The same client, recording its calls into `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: BackendMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The drafts of many templates in one call; templates with no draft are left out.
    pub async fn batch_get(&self, caller: &Caller, ids: &[TemplateId]) -> Result<Vec<Draft>, SourceError> {
        let message =
            pb::BatchGetDraftsRequest { template_ids: ids.iter().map(|id| id.to_string()).collect() };
        const RPC: &str = "DraftService/BatchGetDrafts";
        let kind = grpc::read_call(&self.resilience, RPC, &message, caller);
        let response =
            grpc::call(&self.metrics, &self.resilience, caller, RPC, self.timeout, kind, |timeout| {
                let mut client = self.client.clone();
                let request = grpc::request(message.clone(), caller, self.identity.as_ref(), timeout);
                async move { client.batch_get_drafts(request).await }
            })
            .await?;
        response.drafts.into_iter().map(draft_from_wire).collect()
    }

    /// Applies one edit made against `expected_version`; a stale version is
    /// [`SourceError::VersionConflict`] with the current version (decoded from the status's
    /// rich error details, see [`failed_precondition`]).
    pub async fn edit(
        &self,
        caller: &Caller,
        template: TemplateId,
        expected_version: u64,
        edit: DraftEdit,
    ) -> Result<Draft, SourceError> {
        let template_id = template.to_string();
        let mut client = self.client.clone();
        // The request is built when the write is attempted, with its span current (tracing on).
        let result = match edit {
            DraftEdit::UpdateBlock { block_id, content } => {
                let message = pb::UpdateBlockRequest { template_id, expected_version, block_id, content };
                self.write(caller, "DraftService/UpdateBlock", || {
                    let request = grpc::request(message, caller, self.identity.as_ref(), self.timeout);
                    async move { client.update_block(request).await }
                })
                .await
            }
            DraftEdit::InsertBlock { index, kind, content } => {
                let message = pb::InsertBlockRequest {
                    template_id,
                    expected_version,
                    index,
                    kind: kind_to_wire(kind) as i32,
                    content,
                };
                self.write(caller, "DraftService/InsertBlock", || {
                    let request = grpc::request(message, caller, self.identity.as_ref(), self.timeout);
                    async move { client.insert_block(request).await }
                })
                .await
            }
            DraftEdit::DeleteBlock { block_id } => {
                let message = pb::DeleteBlockRequest { template_id, expected_version, block_id };
                self.write(caller, "DraftService/DeleteBlock", || {
                    let request = grpc::request(message, caller, self.identity.as_ref(), self.timeout);
                    async move { client.delete_block(request).await }
                })
                .await
            }
        };
        let response = result?;
        let draft = response.draft.ok_or_else(|| SourceError::BadResponse {
            backend: BACKEND,
            detail: "a write answered no draft".to_owned(),
        })?;
        draft_from_wire(draft)
    }

    /// One write through the breaker, the concurrency limit and the request's deadline; never
    /// retried or shared. `call` builds the request and makes the call.
    async fn write<Fut>(
        &self,
        caller: &Caller,
        rpc: &'static str,
        call: impl FnOnce() -> Fut,
    ) -> Result<pb::DraftResponse, SourceError>
    where
        Fut: Future<Output = Result<tonic::Response<pb::DraftResponse>, tonic::Status>>,
    {
        let mut call = Some(call);
        let kind = grpc::write_call();
        let metrics = &self.metrics;
        let span = caller.trace.is_on().then(|| grpc::call_span(caller, BACKEND, rpc));
        self.resilience
            .call(&caller.budget, self.timeout, kind, span, |timeout| {
                let call = call.take().map(|call| call());
                async move {
                    let Some(call) = call else {
                        // A write is attempted once; a second attempt is never asked for.
                        return Attempt::judged(Err(SourceError::Unavailable {
                            backend: BACKEND,
                            detail: "a write was attempted twice".to_owned(),
                        }));
                    };
                    let span = tracing::debug_span!("grpc", backend = BACKEND.name(), rpc);
                    let timer = metrics.start_call(BACKEND, rpc);
                    let (result, code) = match tokio::time::timeout(timeout, call.instrument(span)).await {
                        Ok(Ok(response)) => (Ok(response.into_inner()), Some(tonic::Code::Ok)),
                        Ok(Err(status)) if status.code() == tonic::Code::FailedPrecondition => {
                            (Err(failed_precondition(rpc, &status)), Some(status.code()))
                        }
                        Ok(Err(status)) => (Err(from_status(BACKEND, timeout, &status)), Some(status.code())),
                        Err(_) => (Err(SourceError::Timeout { backend: BACKEND, timeout }), None),
                    };
                    timer.finish(&result);
                    Attempt::judged(result).with_status(code.map(grpc::grpc_status))
                }
            })
            .await
    }
}

/// `google.rpc.ErrorInfo.reason` of a stale `expected_version` (see `drafts.proto`).
const VERSION_CONFLICT_REASON: &str = "VERSION_CONFLICT";
/// `google.rpc.ErrorInfo.domain` of the draft store's errors.
const ERROR_DOMAIN: &str = "drafts.banyan.v1";

/// A `FAILED_PRECONDITION` from a write: a [`SourceError::VersionConflict`] only when the rich
/// error details hold the draft store's `VERSION_CONFLICT` `ErrorInfo` with both versions; any
/// other precondition failure (no details, details in another format, another reason) is the
/// backend's error, not the caller's conflict.
fn failed_precondition(rpc: &str, status: &tonic::Status) -> SourceError {
    let unexpected = |why: String| SourceError::BadResponse {
        backend: BACKEND,
        detail: format!("{rpc}: FAILED_PRECONDITION ({}) {why}", status.message()),
    };
    let details = match status.check_error_details() {
        Ok(details) => details,
        Err(e) => return unexpected(format!("with details that are not a google.rpc.Status: {e}")),
    };
    let Some(info) = details.error_info() else {
        return unexpected("without an ErrorInfo".to_owned());
    };
    if info.reason != VERSION_CONFLICT_REASON || info.domain != ERROR_DOMAIN {
        return unexpected(format!("with ErrorInfo {}/{}", info.domain, info.reason));
    }
    let version = |key: &str| info.metadata.get(key).and_then(|v| v.parse::<u64>().ok());
    match (version("expectedVersion"), version("currentVersion")) {
        (Some(expected), Some(current)) => SourceError::VersionConflict { expected, current },
        _ => unexpected(format!("with a VERSION_CONFLICT missing its versions: {:?}", info.metadata)),
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic::Code;
    use tonic_types::{ErrorDetails, PreconditionViolation};

    use super::*;

    fn conflict_info(metadata: &[(&str, &str)]) -> ErrorDetails {
        let metadata: HashMap<String, String> =
            metadata.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ErrorDetails::with_error_info(VERSION_CONFLICT_REASON, ERROR_DOMAIN, metadata)
    }

    fn decode(status: &tonic::Status) -> SourceError {
        failed_precondition("DraftService/UpdateBlock", status)
    }

    #[test]
    fn a_conflict_carries_both_versions() {
        let status = tonic::Status::with_error_details(
            Code::FailedPrecondition,
            "draft is at version 7, not 5",
            conflict_info(&[("expectedVersion", "5"), ("currentVersion", "7")]),
        );
        assert!(matches!(decode(&status), SourceError::VersionConflict { expected: 5, current: 7 }));
    }

    #[test]
    fn a_precondition_failure_without_a_conflict_is_a_backend_error() {
        let no_details = tonic::Status::new(Code::FailedPrecondition, "no");
        // What the draft store used to send: a bare prost message as the details, which is not a
        // google.rpc.Status.
        let foreign_format = tonic::Status::with_details(
            Code::FailedPrecondition,
            "legacy",
            vec![0x08, 0x05, 0x10, 0x07].into(),
        );
        let other_detail = tonic::Status::with_error_details(
            Code::FailedPrecondition,
            "precondition only",
            ErrorDetails::with_precondition_failure(vec![PreconditionViolation::new("VERSION", "x", "y")]),
        );
        let other_reason = tonic::Status::with_error_details(
            Code::FailedPrecondition,
            "locked",
            ErrorDetails::with_error_info("DRAFT_LOCKED", ERROR_DOMAIN, HashMap::new()),
        );
        let other_domain = tonic::Status::with_error_details(
            Code::FailedPrecondition,
            "elsewhere",
            ErrorDetails::with_error_info(VERSION_CONFLICT_REASON, "example.com", HashMap::new()),
        );
        let missing_version = tonic::Status::with_error_details(
            Code::FailedPrecondition,
            "half",
            conflict_info(&[("expectedVersion", "5"), ("currentVersion", "seven")]),
        );
        for status in [no_details, foreign_format, other_detail, other_reason, other_domain, missing_version]
        {
            let error = decode(&status);
            assert_eq!(error.code(), "BACKEND_ERROR", "{}: {error:?}", status.message());
            assert_eq!(error.failed_backend(), Some(Backend::Drafts));
        }
    }
}
