//! `Query`: the entry points for reading.

use async_graphql::{Context, ID, Object, Result};
use banyan_sources::domain::{TemplateId, WorkspaceId};

use crate::context::scope;
use crate::error::SourceResultExt;
use crate::ids::{self, GlobalId, NodeType};
use crate::lean::{Lean, LeanList};
use crate::migrated::{self, TemplateDraftField};
use crate::types::{
    BlockObject, DraftObject, MemberObject, Node, TemplateConnection, TemplateObject, UserObject,
    WorkspaceObject, load_members, load_workspace, template_connection,
};

/// The root of every read.
pub struct Query;

/// The root of every read.
#[Object]
impl Query {
    /// The signed-in user; null (with an error) when the monolith cannot say.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<Lean<UserObject>>> {
        let scope = scope(ctx)?;
        Ok(scope.loaders().me.load_one(()).await.graphql()?.map(|user| Lean(UserObject(user))))
    }

    /// The workspaces the signed-in user belongs to; null (with an error) when the monolith
    /// cannot say.
    async fn workspaces(&self, ctx: &Context<'_>) -> Result<Option<LeanList<Vec<Lean<WorkspaceObject>>>>> {
        let scope = scope(ctx)?;
        let workspaces = scope.loaders().my_workspaces.load_one(()).await.graphql()?.unwrap_or_default();
        Ok(Some(LeanList(workspaces.into_iter().map(|workspace| Lean(WorkspaceObject(workspace))).collect())))
    }

    /// One workspace; null when it does not exist or the signed-in user is not a member.
    async fn workspace(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The workspace's global id.")] id: ID,
    ) -> Result<Option<Lean<WorkspaceObject>>> {
        let key = ids::decode(&id, NodeType::Workspace)?;
        Ok(workspace(ctx, WorkspaceId(key)).await?.map(Lean))
    }

    /// One template; null when it does not exist or is not visible to the signed-in user.
    async fn template(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The template's global id.")] id: ID,
    ) -> Result<Option<Lean<TemplateObject>>> {
        let key = ids::decode(&id, NodeType::Template)?;
        Ok(template(ctx, TemplateId(key)).await?.map(Lean))
    }

    /// A workspace's templates, most recently updated first; null (with an error) when the
    /// monolith cannot say.
    async fn templates(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The workspace's global id.")] workspace_id: ID,
        #[graphql(desc = "Only templates whose name or subject contains this, case-insensitive.")]
        search: Option<String>,
        #[graphql(desc = "How many templates to return, 1 to 100.", default = 20)] first: i32,
        #[graphql(desc = "Return the templates after this cursor (a previous `endCursor`).")] after: Option<
            String,
        >,
    ) -> Result<Option<TemplateConnection>> {
        let key = ids::decode(&workspace_id, NodeType::Workspace)?;
        template_connection(ctx, WorkspaceId(key), search, first, after).await.map(Some)
    }

    /// Any object by its global id; null when it does not exist or is not visible.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id from any `id` field.")] id: ID,
    ) -> Result<Option<Node>> {
        // Each type is looked up through the same checks as its own root or parent field: a
        // draft, block or membership is visible only when its template or workspace is.
        Ok(match ids::decode_any(&id)? {
            GlobalId::User(key) => {
                let scope = scope(ctx)?;
                scope.loaders().users.load_one(key).await.graphql()?.map(|u| Node::User(UserObject(u)))
            }
            GlobalId::Workspace(key) => workspace(ctx, key).await?.map(Node::Workspace),
            GlobalId::Template(key) => template(ctx, key).await?.map(Node::Template),
            GlobalId::Draft(template) => draft(ctx, template).await?.map(Node::Draft),
            GlobalId::Block(template, key) => draft(ctx, template)
                .await?
                .and_then(|draft| draft.0.blocks.into_iter().find(|block| block.id == key))
                .map(|block| Node::Block(BlockObject { template, block })),
            GlobalId::WorkspaceMember(workspace_id, user) => match workspace(ctx, workspace_id).await? {
                None => None,
                Some(_) => load_members(ctx, workspace_id)
                    .await?
                    .into_iter()
                    .find(|membership| membership.user_id == user)
                    .map(|membership| {
                        Node::WorkspaceMember(MemberObject { workspace: workspace_id, membership })
                    }),
            },
        })
    }
}

/// A template's draft, when the template is visible to the caller: the services trust the
/// gateway, so the template's visibility (the monolith's answer) is checked first. Read through
/// the migrated field `Template.draft`, so it is routed like every other read of a draft.
async fn draft(ctx: &Context<'_>, template_id: TemplateId) -> Result<Option<DraftObject>> {
    if template(ctx, template_id).await?.is_none() {
        return Ok(None);
    }
    Ok(migrated::read::<TemplateDraftField>(ctx, template_id).await?.map(DraftObject))
}

async fn workspace(ctx: &Context<'_>, id: WorkspaceId) -> Result<Option<WorkspaceObject>> {
    load_workspace(ctx, id).await
}

async fn template(ctx: &Context<'_>, id: TemplateId) -> Result<Option<TemplateObject>> {
    let scope = scope(ctx)?;
    Ok(scope.loaders().templates.load_one(id).await.graphql()?.map(TemplateObject))
}
