//! `Workspace` and its members.

use async_graphql::{Context, Enum, ID, Object, Result};
use banyan_sources::domain::{Membership, Role, UserId, Workspace, WorkspaceId};
use chrono::{DateTime, Utc};

use crate::context::scope;
use crate::error::SourceResultExt;
use crate::ids::{GlobalId, NodeType, NumberedId};
use crate::lean::{Lean, LeanList};
use crate::types::{TemplateConnection, UserObject, template_connection};

/// A team's space; it owns templates and has members.
pub(crate) struct WorkspaceObject(pub(crate) Workspace);

/// A team's space; it owns templates and has members.
#[Object(name = "Workspace")]
impl WorkspaceObject {
    /// The workspace's global id.
    pub(crate) async fn id(&self) -> NumberedId {
        NumberedId::node(NodeType::Workspace, self.0.id.0)
    }

    /// Name to display.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// URL-safe short name.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    /// When the workspace was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Everyone who belongs to the workspace, with their role.
    async fn members(&self, ctx: &Context<'_>) -> Result<LeanList<Vec<Lean<MemberObject>>>> {
        let workspace = self.0.id;
        Ok(LeanList(
            load_members(ctx, workspace)
                .await?
                .into_iter()
                .map(|membership| Lean(MemberObject { workspace, membership }))
                .collect(),
        ))
    }

    /// The workspace's templates, most recently updated first.
    async fn templates(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only templates whose name or subject contains this, case-insensitive.")]
        search: Option<String>,
        #[graphql(desc = "How many templates to return, 1 to 100.", default = 20)] first: i32,
        #[graphql(desc = "Return the templates after this cursor (a previous `endCursor`).")] after: Option<
            String,
        >,
    ) -> Result<TemplateConnection> {
        template_connection(ctx, self.0.id, search, first, after).await
    }
}

/// What a member may do in a workspace.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "WorkspaceRole")]
pub(crate) enum RoleEnum {
    /// Full control, including billing and deletion.
    Owner,
    /// Manages members and content.
    Admin,
    /// Edits content.
    Editor,
    /// Reads only.
    Viewer,
}

crate::written::enum_leaves!(RoleEnum);

impl From<Role> for RoleEnum {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => Self::Owner,
            Role::Admin => Self::Admin,
            Role::Editor => Self::Editor,
            Role::Viewer => Self::Viewer,
        }
    }
}

crate::lean::plain_fields!(WorkspaceObject {
    "id" => id,
    "name" => name,
    "slug" => slug,
    "createdAt" => created_at,
});

/// A user's membership of a workspace.
pub(crate) struct MemberObject {
    /// The workspace the membership is of.
    pub(crate) workspace: WorkspaceId,
    pub(crate) membership: Membership,
}

/// A user's membership of a workspace.
#[Object(name = "WorkspaceMember")]
impl MemberObject {
    /// The membership's global id (the workspace and the user: one membership each).
    pub(crate) async fn id(&self) -> ID {
        GlobalId::WorkspaceMember(self.workspace, self.membership.user_id).encode()
    }

    /// The member; null with an error when the user directory is unavailable.
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<Lean<UserObject>>> {
        Ok(load_user(ctx, self.membership.user_id).await?.map(Lean))
    }

    /// What the member may do.
    async fn role(&self) -> RoleEnum {
        self.membership.role.into()
    }

    /// When the user joined the workspace.
    async fn joined_at(&self) -> DateTime<Utc> {
        self.membership.joined_at
    }
}

/// One of the caller's workspaces, from the request's one list of them (the caller sees exactly
/// the workspaces they belong to); `None` for any other.
pub(crate) async fn load_workspace(ctx: &Context<'_>, id: WorkspaceId) -> Result<Option<WorkspaceObject>> {
    let scope = scope(ctx)?;
    let mine = scope.loaders().my_workspaces.load_one(()).await.graphql()?.unwrap_or_default();
    Ok(mine.into_iter().find(|workspace| workspace.id == id).map(WorkspaceObject))
}

/// A workspace's members through the batch loader (empty when the caller does not see it).
pub(crate) async fn load_members(ctx: &Context<'_>, workspace: WorkspaceId) -> Result<Vec<Membership>> {
    let scope = scope(ctx)?;
    Ok(scope.loaders().members.load_one(workspace).await.graphql()?.unwrap_or_default())
}

/// A user through the batch loader.
pub(crate) async fn load_user(ctx: &Context<'_>, id: UserId) -> Result<Option<UserObject>> {
    let scope = scope(ctx)?;
    Ok(scope.loaders().users.load_one(id).await.graphql()?.map(UserObject))
}

crate::lean::plain_fields!(MemberObject { "id" => id, "role" => role, "joinedAt" => joined_at });
