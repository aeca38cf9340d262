//! `Draft`, its blocks, and the outcome of an edit.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject, Union};
use banyan_sources::domain::{Block, BlockKind, Draft, TemplateId};
use chrono::{DateTime, Utc};

use crate::context::scope;
use crate::error::SourceResultExt;
use crate::ids::{GlobalId, NodeType, NumberedId};
use crate::lean::{Lean, LeanList};
use crate::types::{TemplateObject, UserObject, int, load_user};

/// The working copy of a template's content.
pub(crate) struct DraftObject(pub(crate) Draft);

/// The working copy of a template's content (one per template).
#[Object(name = "Draft")]
impl DraftObject {
    /// The draft's global id, stable for its template's life (a template has one draft).
    pub(crate) async fn id(&self) -> NumberedId {
        NumberedId::node(NodeType::Draft, self.0.template_id.0)
    }

    /// The template the draft belongs to; null when it is no longer visible.
    async fn template(&self, ctx: &Context<'_>) -> Result<Option<Lean<TemplateObject>>> {
        let scope = scope(ctx)?;
        let template = scope.loaders().templates.load_one(self.0.template_id).await.graphql()?;
        Ok(template.map(|template| Lean(TemplateObject(template))))
    }

    /// Increases with every edit; an edit names the version it was made against.
    async fn version(&self) -> i32 {
        int(self.0.version)
    }

    /// The content blocks, in display order.
    async fn blocks(&self) -> LeanList<Vec<Lean<BlockObject>>> {
        let template = self.0.template_id;
        LeanList(self.0.blocks.iter().cloned().map(|block| Lean(BlockObject { template, block })).collect())
    }

    /// When the draft last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// Who changed it last; null with an error when the user directory is unavailable.
    async fn updated_by(&self, ctx: &Context<'_>) -> Result<Option<Lean<UserObject>>> {
        Ok(load_user(ctx, self.0.updated_by).await?.map(Lean))
    }
}

/// What a block renders as.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "BlockKind")]
pub(crate) enum BlockKindEnum {
    /// A heading line.
    Heading,
    /// A paragraph of text.
    Text,
    /// An image; the content is its URL.
    Image,
    /// A call-to-action button; the content is its label.
    Button,
    /// A horizontal rule; the content is empty.
    Divider,
}

crate::written::enum_leaves!(BlockKindEnum);

impl From<BlockKind> for BlockKindEnum {
    fn from(kind: BlockKind) -> Self {
        match kind {
            BlockKind::Heading => Self::Heading,
            BlockKind::Text => Self::Text,
            BlockKind::Image => Self::Image,
            BlockKind::Button => Self::Button,
            BlockKind::Divider => Self::Divider,
        }
    }
}

impl From<BlockKindEnum> for BlockKind {
    fn from(kind: BlockKindEnum) -> Self {
        match kind {
            BlockKindEnum::Heading => Self::Heading,
            BlockKindEnum::Text => Self::Text,
            BlockKindEnum::Image => Self::Image,
            BlockKindEnum::Button => Self::Button,
            BlockKindEnum::Divider => Self::Divider,
        }
    }
}

/// One content block of a draft.
pub(crate) struct BlockObject {
    /// The template whose draft holds it: block keys are unique only within one draft.
    pub(crate) template: TemplateId,
    pub(crate) block: Block,
}

/// One content block of a draft.
#[Object(name = "Block")]
impl BlockObject {
    /// The block's global id: unique across drafts, stable while the block exists. Mutations
    /// that edit a block take this id.
    pub(crate) async fn id(&self) -> ID {
        GlobalId::Block(self.template, self.block.id.clone()).encode()
    }

    /// The block's key within its draft (`b1`, `b2`, …): the same key appears in other drafts,
    /// so it identifies nothing on its own. (Until 2026-11 this was `Block.id`.)
    async fn key(&self) -> &str {
        &self.block.id
    }

    /// What it renders as.
    async fn kind(&self) -> BlockKindEnum {
        self.block.kind.into()
    }

    /// Text, image URL or button label, per kind.
    async fn content(&self) -> &str {
        &self.block.content
    }
}

crate::lean::plain_fields!(DraftObject { "id" => id, "version" => version, "updatedAt" => updated_at });

crate::lean::plain_fields!(BlockObject { "id" => id, "key" => key, "kind" => kind, "content" => content });

/// The outcome of a draft edit: the new draft, or a conflict the editor can resolve.
#[derive(Union)]
pub(crate) enum DraftEditResult {
    /// The edit was applied.
    Updated(DraftUpdated),
    /// Someone else changed the draft first; nothing was applied.
    Conflict(DraftVersionConflict),
}

/// The edit was applied.
#[derive(SimpleObject)]
pub(crate) struct DraftUpdated {
    /// The draft with the edit: its `id`, new `version` and blocks, so a normalised cache merges
    /// it into the draft it holds without a refetch.
    pub(crate) draft: DraftObject,
}

/// The draft changed since the version the edit was made against; nothing was applied. Reload
/// (or use `currentDraft`), reapply the edit, and send it with the current version.
#[derive(SimpleObject)]
pub(crate) struct DraftVersionConflict {
    /// A sentence for the editor's UI.
    pub(crate) message: String,
    /// The version the edit was made against.
    pub(crate) expected_version: i32,
    /// The draft's version now.
    pub(crate) current_version: i32,
    /// The draft as it is now (same `id` as the one edited, so a normalised cache replaces its
    /// stale copy and the UI can show what changed); null if it could not be loaded.
    pub(crate) current_draft: Option<DraftObject>,
}
