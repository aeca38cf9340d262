//! `Mutation`: renaming templates and editing drafts.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Object, Result};
use banyan_migration::Backend;
use banyan_sources::domain::{DraftEdit, TemplateId, TemplatePatch};
use banyan_sources::{SourceError, Sources};

use crate::context::scope;
use crate::error::{SourceResultExt, coded, codes, from_source};
use crate::ids::{self, NodeType};
use crate::migrated::{self, DeleteDraftBlockField, InsertDraftBlockField, UpdateDraftBlockField};
use crate::types::{
    BlockKindEnum, DraftEditResult, DraftObject, DraftUpdated, DraftVersionConflict, TemplateObject, int,
};

/// The root of every write.
pub struct Mutation;

/// The longest template name the monolith accepts.
const MAX_NAME_CHARS: usize = 200;

/// Replace the content of one block of a template's draft.
#[derive(InputObject)]
struct UpdateDraftBlockInput {
    /// The block's global id (`Block.id`); it names the draft too.
    block_id: ID,
    /// The block's new content.
    content: String,
    /// The draft version the edit was made against (`Draft.version` as the editor last saw it).
    expected_version: i32,
}

/// Insert a block into a template's draft.
#[derive(InputObject)]
struct InsertDraftBlockInput {
    /// The template's global id.
    template_id: ID,
    /// Position of the new block, 0 for first; past the end appends.
    index: i32,
    /// What the block renders as.
    kind: BlockKindEnum,
    /// The block's content.
    content: String,
    /// The draft version the edit was made against.
    expected_version: i32,
}

/// Remove a block from a template's draft.
#[derive(InputObject)]
struct DeleteDraftBlockInput {
    /// The block's global id (`Block.id`); it names the draft too.
    block_id: ID,
    /// The draft version the edit was made against.
    expected_version: i32,
}

/// The root of every write.
///
/// Every mutation field is nullable: a failed write answers `null` with its error beside the
/// results of the document's other mutations, instead of nulling all of `data` (mutations run
/// one after another, so earlier ones have already happened).
#[Object]
impl Mutation {
    /// Gives a template a new name (1 to 200 characters). Errors: `NOT_FOUND`, `FORBIDDEN` for
    /// viewers, `BAD_USER_INPUT` for an empty or too long name; null with the error.
    async fn rename_template(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The template's global id.")] id: ID,
        #[graphql(desc = "The new name.")] name: String,
    ) -> Result<Option<TemplateObject>> {
        let key = ids::decode(&id, NodeType::Template)?;
        let name = name.trim().to_owned();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(coded(codes::BAD_USER_INPUT, format!("a name has 1 to {MAX_NAME_CHARS} characters")));
        }
        let scope = scope(ctx)?;
        let sources = ctx.data::<Sources>()?;
        let patch = TemplatePatch { name: Some(name), status: None };
        let template =
            sources.monolith.update_template(&scope.caller, TemplateId(key), &patch).await.graphql()?;
        Ok(Some(TemplateObject(Arc::new(template))))
    }

    /// Replaces the content of one block. A stale `expectedVersion` is not an error: the result is
    /// a `DraftVersionConflict` with the current version and draft.
    async fn update_draft_block(
        &self,
        ctx: &Context<'_>,
        input: UpdateDraftBlockInput,
    ) -> Result<Option<DraftEditResult>> {
        let (template, block_key) = ids::decode_block(&input.block_id)?;
        let store = migrated::write_backend::<UpdateDraftBlockField>(ctx)?;
        let edit = DraftEdit::UpdateBlock { block_id: block_key, content: input.content };
        edit_draft(ctx, store, template, input.expected_version, edit).await.map(Some)
    }

    /// Inserts a block. A stale `expectedVersion` yields a `DraftVersionConflict`.
    async fn insert_draft_block(
        &self,
        ctx: &Context<'_>,
        input: InsertDraftBlockInput,
    ) -> Result<Option<DraftEditResult>> {
        let index = u32::try_from(input.index)
            .map_err(|_| coded(codes::BAD_USER_INPUT, "`index` must not be negative"))?;
        let template = TemplateId(ids::decode(&input.template_id, NodeType::Template)?);
        let store = migrated::write_backend::<InsertDraftBlockField>(ctx)?;
        let edit = DraftEdit::InsertBlock { index, kind: input.kind.into(), content: input.content };
        edit_draft(ctx, store, template, input.expected_version, edit).await.map(Some)
    }

    /// Removes a block. A stale `expectedVersion` yields a `DraftVersionConflict`.
    async fn delete_draft_block(
        &self,
        ctx: &Context<'_>,
        input: DeleteDraftBlockInput,
    ) -> Result<Option<DraftEditResult>> {
        let (template, block_key) = ids::decode_block(&input.block_id)?;
        let store = migrated::write_backend::<DeleteDraftBlockField>(ctx)?;
        let edit = DraftEdit::DeleteBlock { block_id: block_key };
        edit_draft(ctx, store, template, input.expected_version, edit).await.map(Some)
    }
}

/// Checks the caller may edit the template (through the monolith, which owns permissions), then
/// applies the edit in `store`: the draft store (`service`) or the monolith's own draft table
/// (`legacy`), as the request's routing decided for the mutation.
async fn edit_draft(
    ctx: &Context<'_>,
    store: Backend,
    key: TemplateId,
    expected_version: i32,
    edit: DraftEdit,
) -> Result<DraftEditResult> {
    let expected_version = u64::try_from(expected_version)
        .map_err(|_| coded(codes::BAD_USER_INPUT, "`expectedVersion` must not be negative"))?;
    let scope = scope(ctx)?;
    let sources = ctx.data::<Sources>()?;
    let template = scope.loaders().templates.load_one(key).await.graphql()?;
    match template {
        None => return Err(from_source(SourceError::NotFound)),
        Some(template) if !template.can_edit => {
            return Err(from_source(SourceError::Forbidden("you may not edit this template".to_owned())));
        }
        Some(_) => {}
    }
    let edited = match store {
        Backend::Service => sources.drafts.edit(&scope.caller, key, expected_version, edit).await,
        Backend::Legacy => {
            sources.monolith.legacy_edit_draft(&scope.caller, key, expected_version, edit).await
        }
    };
    match edited {
        Ok(draft) => Ok(DraftEditResult::Updated(DraftUpdated { draft: DraftObject(draft) })),
        Err(SourceError::VersionConflict { expected, current }) => {
            // A fresh read of the same store, not the loader: the loader may hold the version
            // this edit lost to.
            let current_draft = match store {
                Backend::Service => sources
                    .drafts
                    .batch_get(&scope.caller, &[key])
                    .await
                    .map(|drafts| drafts.into_iter().next()),
                Backend::Legacy => sources.monolith.legacy_draft(&scope.caller, key).await,
            }
            .map_err(|e| tracing::warn!(error = %e, "loading the current draft after a conflict"))
            .ok()
            .flatten()
            .map(DraftObject);
            Ok(DraftEditResult::Conflict(DraftVersionConflict {
                message: format!(
                    "The draft changed since version {expected}; it is at version {current}. Reload it and apply your edit again."
                ),
                expected_version: int(expected),
                current_version: int(current),
                current_draft,
            }))
        }
        Err(e) => Err(from_source(e)),
    }
}
