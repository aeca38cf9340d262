//! `Template`, its statuses, and the paginated list of a workspace's templates.

use async_graphql::connection::PageInfo;
use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::{Context, Enum, InputType, Object, Result, SelectionField};
use banyan_sources::domain::{Page, Template, TemplateStatus, UserId, WorkspaceId};
use banyan_sources::loaders::{EventsPageKey, StatsKey, TemplatePageKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use crate::context::scope;
use crate::error::{SourceResultExt, coded, codes};
use crate::ids::{NodeType, NumberedId, OFFSET_PREFIX, OffsetCursor};
use crate::lean::{Lean, LeanList, Whole};
use crate::migrated::{self, TemplateDraftField, TemplateRecentEventsField, TemplateStatsField};
use crate::types::{
    DraftObject, EmailEventConnection, StatsWindowEnum, TemplateStatsObject, UserObject, WorkspaceObject,
    load_user, load_workspace,
};

/// The most templates or events one page may hold.
pub(crate) const MAX_PAGE: i32 = 100;

/// An email template.
pub(crate) struct TemplateObject(pub(crate) Arc<Template>);

/// An email template.
#[Object(name = "Template")]
impl TemplateObject {
    /// The template's global id.
    pub(crate) async fn id(&self) -> NumberedId {
        NumberedId::node(NodeType::Template, self.0.id.0)
    }

    /// Name to display.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The email's subject line.
    async fn subject(&self) -> &str {
        &self.0.subject
    }

    /// Where the template is in its life.
    async fn status(&self) -> TemplateStatusEnum {
        self.0.status.into()
    }

    /// Who created it; null with an error when the user directory is unavailable.
    async fn created_by(&self, ctx: &Context<'_>) -> Result<Option<Lean<UserObject>>> {
        Ok(load_user(ctx, self.0.created_by).await?.map(Lean))
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When its name, subject or status last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// Whether the signed-in user may rename it or edit its draft.
    async fn viewer_can_edit(&self) -> bool {
        self.0.can_edit
    }

    /// The workspace that owns it.
    async fn workspace(&self, ctx: &Context<'_>) -> Result<Option<Lean<WorkspaceObject>>> {
        Ok(load_workspace(ctx, self.0.workspace_id).await?.map(Lean))
    }

    /// How its emails fared over a window. Null with an error when the stats backend fails.
    /// (Migrated field `Template.stats`.)
    async fn stats(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The window to count over.", default_with = "StatsWindowEnum::Last7Days")]
        window: StatsWindowEnum,
    ) -> Result<Option<Lean<TemplateStatsObject>>> {
        let key = StatsKey { template: self.0.id, window: window.into() };
        let stats = migrated::read::<TemplateStatsField>(ctx, key).await?;
        Ok(stats.map(|stats| Lean(TemplateStatsObject { stats, window })))
    }

    /// The working copy of its content; null when it has none, or with an error when the
    /// draft backend fails. (Migrated field `Template.draft`.)
    async fn draft(&self, ctx: &Context<'_>) -> Result<Option<Lean<DraftObject>>> {
        Ok(migrated::read::<TemplateDraftField>(ctx, self.0.id).await?.map(|draft| Lean(DraftObject(draft))))
    }

    /// Its email events, newest first. Null with an error when the event store fails.
    /// (Migrated field `Template.recentEvents`.)
    async fn recent_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many events to return, 1 to 100.", default = 20)] first: i32,
        #[graphql(desc = "Return the events after this cursor (a previous `pageInfo.endCursor`).")]
        after: Option<String>,
    ) -> Result<Option<Lean<EmailEventConnection>>> {
        let key =
            EventsPageKey { template: self.0.id, page_size: page_size(first)? as u32, page_token: after };
        // Boxed: the largest of a template's fields, and the rarest on a page. Every field of a
        // template is a future sized for the largest (1,112 bytes with this one inline, 872
        // without), written into its box as it starts.
        let page = Box::pin(migrated::read::<TemplateRecentEventsField>(ctx, key)).await?;
        Ok(page.map(|page| Lean(page.into())))
    }
}

crate::lean::plain_fields!(TemplateObject {
    "id" => id,
    "name" => name,
    "subject" => subject,
    "status" => status,
    "createdAt" => created_at,
    "updatedAt" => updated_at,
    "viewerCanEdit" => viewer_can_edit,
} at hand {
    "createdBy" => write_created_by,
    "stats" => write_stats,
});

/// A template's fields written whole when their values are at hand (`crate::lean::Whole`):
/// what its page prefetched. Each answers as its resolver above would, or not at all.
impl TemplateObject {
    fn write_created_by(&self, ctx: &Context<'_>, whole: &mut Whole) -> bool {
        let Some(loaders) = whole.at_hand().loaders(ctx) else { return false };
        match loaders.users.at_hand(&self.0.created_by) {
            Some(Ok(Some(user))) => whole.object(ctx, &UserObject(user)),
            Some(Ok(None)) => whole.null(),
            Some(Err(_)) | None => false,
        }
    }

    fn write_stats(&self, ctx: &Context<'_>, whole: &mut Whole) -> bool {
        let Ok((_, window)) = ctx.param_value("window", Some(|| StatsWindowEnum::Last7Days)) else {
            return false;
        };
        let key = StatsKey { template: self.0.id, window: window.into() };
        match migrated::read_at_hand::<TemplateStatsField>(ctx, &key, whole.at_hand()) {
            Some(Some(stats)) => whole.object(ctx, &TemplateStatsObject { stats, window }),
            Some(None) => whole.null(),
            None => false,
        }
    }
}

/// `first` checked against the page limits.
pub(crate) fn page_size(first: i32) -> Result<i32> {
    if (1..=MAX_PAGE).contains(&first) {
        Ok(first)
    } else {
        Err(coded(codes::BAD_USER_INPUT, format!("`first` must be between 1 and {MAX_PAGE}, not {first}")))
    }
}

/// Where a template is in its life.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "TemplateStatus")]
pub(crate) enum TemplateStatusEnum {
    /// Being written; not sent yet.
    Draft,
    /// In use for sending.
    Active,
    /// Retired; kept for its history.
    Archived,
}

crate::written::enum_leaves!(TemplateStatusEnum);

impl From<TemplateStatus> for TemplateStatusEnum {
    fn from(status: TemplateStatus) -> Self {
        match status {
            TemplateStatus::Draft => Self::Draft,
            TemplateStatus::Active => Self::Active,
            TemplateStatus::Archived => Self::Archived,
        }
    }
}

/// A page of templates (Relay connection). Banyan's own rather than async-graphql's generic
/// `Connection`, so that its edges resolve as [`Lean`] objects; the schema's types and
/// descriptions are the ones the generic type gave (no description on the connection itself).
pub(crate) struct TemplateConnection {
    edges: Vec<Lean<TemplateEdge>>,
    has_previous_page: bool,
    has_next_page: bool,
    total_count: i32,
}

// No doc comment: it would become the type's description, which the schema has never had.
#[Object]
impl TemplateConnection {
    /// Information to aid in pagination.
    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_previous_page: self.has_previous_page,
            has_next_page: self.has_next_page,
            start_cursor: self.edges.first().map(|edge| edge.0.cursor.encode().0),
            end_cursor: self.edges.last().map(|edge| edge.0.cursor.encode().0),
        }
    }

    /// A list of edges.
    async fn edges(&self) -> LeanList<&[Lean<TemplateEdge>]> {
        LeanList(&self.edges)
    }

    /// A list of nodes.
    async fn nodes(&self) -> LeanList<Vec<&Lean<TemplateObject>>> {
        LeanList(self.edges.iter().map(|edge| &edge.0.node).collect())
    }

    /// How many templates match, across all pages.
    async fn total_count(&self) -> i32 {
        self.total_count
    }
}

/// One template of a page and its cursor.
pub(crate) struct TemplateEdge {
    cursor: OffsetCursor,
    node: Lean<TemplateObject>,
}

/// An edge in a connection.
#[Object]
impl TemplateEdge {
    /// The item at the end of the edge
    async fn node(&self) -> &Lean<TemplateObject> {
        &self.node
    }

    /// A cursor for use in pagination
    async fn cursor(&self) -> OffsetCursor {
        self.cursor
    }
}

crate::lean::plain_fields!(TemplateEdge { "cursor" => cursor } at hand { "node" => write_node });

impl TemplateEdge {
    fn write_node(&self, ctx: &Context<'_>, whole: &mut Whole) -> bool {
        whole.object(ctx, &self.node.0)
    }
}

/// One page of a workspace's templates. The monolith pages by number, so the cursor is an opaque
/// offset and a page is read from the one or two monolith pages that cover it.
pub(crate) async fn template_connection(
    ctx: &Context<'_>,
    workspace: WorkspaceId,
    search: Option<String>,
    first: i32,
    after: Option<String>,
) -> Result<TemplateConnection> {
    let first = page_size(first)? as u64;
    let scope = scope(ctx)?;
    let start = match &after {
        Some(cursor) => decode_offset(cursor)? + 1,
        None => 0,
    };
    let first_page = start / first + 1;
    let search = search.filter(|s| !s.is_empty());
    let key = |page| TemplatePageKey { workspace, search: search.clone(), page, page_size: first };
    let pages = &scope.loaders().template_pages;
    let mut page =
        pages.load_one(key(first_page)).await.graphql()?.unwrap_or(Page { total: 0, items: Vec::new() });
    let total = page.total;
    let mut items = page.items.split_off(usize::try_from(start % first).unwrap_or(0).min(page.items.len()));
    let covered_until = first_page * first;
    if start % first != 0
        && covered_until < total
        && let Some(next) = pages.load_one(key(first_page + 1)).await.graphql()?
    {
        items.extend(next.items);
    }
    items.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    prefetch_page(ctx, &items).await;
    let has_next_page = start + (items.len() as u64) < total;
    let edges = items
        .into_iter()
        .enumerate()
        .map(|(i, template)| {
            Lean(TemplateEdge {
                cursor: OffsetCursor::offset(start + i as u64),
                node: Lean(TemplateObject(template)),
            })
        })
        .collect();
    Ok(TemplateConnection {
        edges,
        has_previous_page: start > 0,
        has_next_page,
        total_count: super::int(total),
    })
}

/// Loads what the page's templates will ask for (authors, stats per window) before their
/// fields resolve, so those calls go out with the page's level rather than the next one: the
/// loaders batch a level's keys in one call per backend method on their own (see
/// `banyan_sources::batch`); the prefetch saves the page's fields one level of latency, and the
/// loaders' per-request cache answers them. Migrated fields prefetch from the backend the
/// request's routing decides for them, the same decision their fields make. Failures are left
/// for the fields themselves to report.
async fn prefetch_page(ctx: &Context<'_>, templates: &[Arc<Template>]) {
    let Ok(scope) = scope(ctx) else { return };
    let look_ahead = ctx.look_ahead();
    let nodes = [look_ahead.field("edges").field("node"), look_ahead.field("nodes")];
    let authors = async {
        if nodes.iter().any(|node| node.field("createdBy").exists()) {
            let ids: HashSet<UserId> = templates.iter().map(|t| t.created_by).collect();
            scope.loaders().users.prefetch_many(ids).await;
        }
    };
    let windows: HashSet<StatsWindowEnum> = nodes
        .iter()
        .flat_map(|node| node.field("stats").selection_fields())
        .map(|field| stats_window(&field))
        .collect();
    let stats = futures::future::join_all(windows.into_iter().map(|window| {
        let keys = templates.iter().map(|t| StatsKey { template: t.id, window: window.into() }).collect();
        migrated::prefetch::<TemplateStatsField>(ctx, keys)
    }));
    // Drafts are not prefetched: a template without one is absent from the loader's cache, so its
    // field would ask again; the loader's own batching already makes one call per page.
    futures::join!(authors, stats);
}

/// The `window` argument of a selected `stats` field, or its default.
fn stats_window(field: &SelectionField<'_>) -> StatsWindowEnum {
    let arguments = field.arguments().unwrap_or_default();
    arguments
        .iter()
        .find(|(name, _)| name.as_str() == "window")
        .and_then(|(_, value)| StatsWindowEnum::parse(Some(value.clone())).ok())
        .unwrap_or(StatsWindowEnum::Last7Days)
}

/// Far past any real list; bounds the page arithmetic for cursors a client made up.
const MAX_OFFSET: u64 = 10_000_000;

fn decode_offset(cursor: &str) -> Result<u64> {
    STANDARD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(OFFSET_PREFIX).and_then(|n| n.parse().ok()))
        .filter(|offset| *offset <= MAX_OFFSET)
        .ok_or_else(|| coded(codes::BAD_USER_INPUT, format!("{cursor:?} is not a valid cursor")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_made_up_ones_are_refused() {
        assert_eq!(decode_offset(&OffsetCursor::offset(42).encode()).ok(), Some(42));
        for bad in
            ["", "bm9wZQ==", &STANDARD.encode("offset:-1"), &STANDARD.encode(format!("offset:{}", u64::MAX))]
        {
            assert!(decode_offset(bad).is_err(), "{bad}");
        }
    }
}
