//! The schema's object types, one module per domain area.

pub(crate) mod draft;
pub(crate) mod event;
pub(crate) mod stats;
pub(crate) mod template;
pub(crate) mod user;
pub(crate) mod workspace;

use async_graphql::{ID, Interface};

pub(crate) use draft::*;
pub(crate) use event::*;
pub(crate) use stats::*;
pub(crate) use template::*;
pub(crate) use user::*;
pub(crate) use workspace::*;

/// Anything that can be fetched again by its global id with `Query.node`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "The object's global id, unique across types."))]
pub(crate) enum Node {
    /// A user.
    User(UserObject),
    /// A workspace.
    Workspace(WorkspaceObject),
    /// A template.
    Template(TemplateObject),
    /// A template's draft.
    Draft(DraftObject),
    /// One block of a draft.
    Block(BlockObject),
    /// A user's membership of a workspace.
    WorkspaceMember(MemberObject),
}

/// Clamps a backend count into GraphQL's 32-bit `Int` (a count past 2^31 would be a data error
/// long before it reached a screen).
pub(crate) fn int(count: u64) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}
