//! Every backend endpoint and method Banyan calls, spelled once, the way the devstack's call
//! counters and the spans spell them (`"{METHOD} {route pattern}"` for the monolith,
//! `"{Service}/{Method}"` without the package for gRPC).
//!
//! The devstack counts every call under exactly these names (a test in
//! `sources/tests/declared_calls.rs` calls each through the clients and reads its call log).

use crate::declaration::BackendCall;

/// `GET /api/v1/me/`: the signed-in user (also the gateway's identity check).
pub const MONOLITH_ME: BackendCall = BackendCall::monolith("GET /api/v1/me/");
/// `GET /api/v1/users/`: users, by `?id__in=`.
pub const MONOLITH_USERS: BackendCall = BackendCall::monolith("GET /api/v1/users/");
/// `GET /api/v1/workspaces/`: the caller's workspaces, page by page (also how a workspace is
/// found by id: the caller sees exactly the workspaces they belong to).
pub const MONOLITH_WORKSPACES: BackendCall = BackendCall::monolith("GET /api/v1/workspaces/");
/// `GET /api/v1/memberships/`: the members of many workspaces, by `?workspace__in=`.
pub const MONOLITH_MEMBERSHIPS: BackendCall = BackendCall::monolith("GET /api/v1/memberships/");
/// `GET /api/v1/templates/`: a page of a workspace's templates, or templates by `?id__in=`.
pub const MONOLITH_TEMPLATES: BackendCall = BackendCall::monolith("GET /api/v1/templates/");
/// `PATCH /api/v1/templates/{id}/`: rename a template.
pub const MONOLITH_TEMPLATE_PATCH: BackendCall = BackendCall::monolith("PATCH /api/v1/templates/{id}/");
/// `GET /api/v1/templates/{id}/analytics/`: the legacy analytics view, one template per call.
pub const MONOLITH_TEMPLATE_ANALYTICS: BackendCall =
    BackendCall::monolith("GET /api/v1/templates/{id}/analytics/");
/// `GET /api/v1/templates/{id}/draft/`: the legacy draft view, one template per call.
pub const MONOLITH_TEMPLATE_DRAFT: BackendCall = BackendCall::monolith("GET /api/v1/templates/{id}/draft/");
/// `GET /api/v1/templates/{id}/events/`: the legacy events view, page-number paginated, one
/// template per call.
pub const MONOLITH_TEMPLATE_EVENTS: BackendCall = BackendCall::monolith("GET /api/v1/templates/{id}/events/");
/// `POST /api/v1/templates/{id}/draft/blocks/`: insert a block, with an optimistic version.
pub const MONOLITH_DRAFT_BLOCK_INSERT: BackendCall =
    BackendCall::monolith("POST /api/v1/templates/{id}/draft/blocks/");
/// `PATCH /api/v1/templates/{id}/draft/blocks/{block_id}/`: change a block's content, with an
/// optimistic version.
pub const MONOLITH_DRAFT_BLOCK_UPDATE: BackendCall =
    BackendCall::monolith("PATCH /api/v1/templates/{id}/draft/blocks/{block_id}/");
/// `DELETE /api/v1/templates/{id}/draft/blocks/{block_id}/?version=`: remove a block, with an
/// optimistic version.
pub const MONOLITH_DRAFT_BLOCK_DELETE: BackendCall =
    BackendCall::monolith("DELETE /api/v1/templates/{id}/draft/blocks/{block_id}/");

/// `EventService/GetTemplateStats`: stats of many templates over one window.
pub const EVENTS_GET_TEMPLATE_STATS: BackendCall = BackendCall::grpc("EventService/GetTemplateStats");
/// `EventService/ListEvents`: a page of a template's events.
pub const EVENTS_LIST_EVENTS: BackendCall = BackendCall::grpc("EventService/ListEvents");
/// `EventService/StreamEvents`: the live feed.
pub const EVENTS_STREAM_EVENTS: BackendCall = BackendCall::grpc("EventService/StreamEvents");
/// `DraftService/BatchGetDrafts`: drafts of many templates.
pub const DRAFTS_BATCH_GET: BackendCall = BackendCall::grpc("DraftService/BatchGetDrafts");
/// `DraftService/UpdateBlock`: change a block's content.
pub const DRAFTS_UPDATE_BLOCK: BackendCall = BackendCall::grpc("DraftService/UpdateBlock");
/// `DraftService/InsertBlock`: insert a block.
pub const DRAFTS_INSERT_BLOCK: BackendCall = BackendCall::grpc("DraftService/InsertBlock");
/// `DraftService/DeleteBlock`: remove a block.
pub const DRAFTS_DELETE_BLOCK: BackendCall = BackendCall::grpc("DraftService/DeleteBlock");

/// Every call above.
pub const ALL: &[BackendCall] = &[
    MONOLITH_ME,
    MONOLITH_USERS,
    MONOLITH_WORKSPACES,
    MONOLITH_MEMBERSHIPS,
    MONOLITH_TEMPLATES,
    MONOLITH_TEMPLATE_PATCH,
    MONOLITH_TEMPLATE_ANALYTICS,
    MONOLITH_TEMPLATE_DRAFT,
    MONOLITH_TEMPLATE_EVENTS,
    MONOLITH_DRAFT_BLOCK_INSERT,
    MONOLITH_DRAFT_BLOCK_UPDATE,
    MONOLITH_DRAFT_BLOCK_DELETE,
    EVENTS_GET_TEMPLATE_STATS,
    EVENTS_LIST_EVENTS,
    EVENTS_STREAM_EVENTS,
    DRAFTS_BATCH_GET,
    DRAFTS_UPDATE_BLOCK,
    DRAFTS_INSERT_BLOCK,
    DRAFTS_DELETE_BLOCK,
];
