//! Banyan's own declarations: its migrated fields and the backend calls of every other resolver.
//! Adding a migrated field is one entry in [`FIELDS`] (and its binding in `resolvers`).
//!
//! Normaliser paths are written against the JSON of the domain types as serde derives it
//! (snake_case field names).

use crate::calls::*;
use crate::declaration::{
    Access, Backend, Batching, Dependency, FieldDeclaration, FloatTolerance, Implementation, Normalisers,
    TimeUnit, TimestampRule,
};

/// `Template.stats`: event counts of a template over a window.
pub const TEMPLATE_STATS: FieldDeclaration = FieldDeclaration {
    key: "Template.stats",
    description: "event counts of a template over a window",
    access: Access::Read,
    legacy: Implementation { calls: &[MONOLITH_TEMPLATE_ANALYTICS], batching: Batching::OneAtATime },
    service: Implementation { calls: &[EVENTS_GET_TEMPLATE_STATS], batching: Batching::Batched },
    normalisers: Normalisers {
        // Counts are integers and compare exactly; a rate computed in Python may differ in the
        // last bits from one computed in Rust.
        float_tolerance: Some(FloatTolerance { absolute: 1e-9, relative: 1e-9 }),
        ..Normalisers::NONE
    },
    default_backend: Backend::Service,
};

/// `Template.draft`: the working copy of a template's content.
pub const TEMPLATE_DRAFT: FieldDeclaration = FieldDeclaration {
    key: "Template.draft",
    description: "the working copy of a template's content",
    access: Access::Read,
    legacy: Implementation { calls: &[MONOLITH_TEMPLATE_DRAFT], batching: Batching::OneAtATime },
    service: Implementation { calls: &[DRAFTS_BATCH_GET], batching: Batching::Batched },
    normalisers: Normalisers {
        // Postgres keeps microseconds, the draft store milliseconds.
        timestamps: &[TimestampRule { path: "updated_at", unit: TimeUnit::Millisecond }],
        ..Normalisers::NONE
    },
    default_backend: Backend::Service,
};

/// `Template.recentEvents`: a page of a template's email events, newest first.
pub const TEMPLATE_RECENT_EVENTS: FieldDeclaration = FieldDeclaration {
    key: "Template.recentEvents",
    description: "a page of a template's email events, newest first",
    access: Access::Read,
    legacy: Implementation { calls: &[MONOLITH_TEMPLATE_EVENTS], batching: Batching::OneAtATime },
    service: Implementation { calls: &[EVENTS_LIST_EVENTS], batching: Batching::OneAtATime },
    normalisers: Normalisers {
        // Page tokens are opaque and differ by design (page numbers against store cursors).
        ignore: &["next_page_token"],
        timestamps: &[TimestampRule { path: "events[*].occurred_at", unit: TimeUnit::Millisecond }],
        ..Normalisers::NONE
    },
    default_backend: Backend::Service,
};

/// The draft stores: Postgres behind the monolith, the draft store behind DraftService. Nothing
/// copies one into the other.
const DRAFT_STORE: Access = Access::Write { store_of: "Template.draft", synchronised: false };

/// `Mutation.updateDraftBlock`: change one block of a draft.
pub const UPDATE_DRAFT_BLOCK: FieldDeclaration = FieldDeclaration {
    key: "Mutation.updateDraftBlock",
    description: "change one block of a draft",
    access: DRAFT_STORE,
    legacy: Implementation {
        calls: &[MONOLITH_TEMPLATES, MONOLITH_DRAFT_BLOCK_UPDATE, MONOLITH_TEMPLATE_DRAFT],
        batching: Batching::OneAtATime,
    },
    service: Implementation {
        // The monolith still owns permissions: the service side asks it before writing.
        calls: &[MONOLITH_TEMPLATES, DRAFTS_UPDATE_BLOCK, DRAFTS_BATCH_GET],
        batching: Batching::OneAtATime,
    },
    normalisers: Normalisers::NONE,
    default_backend: Backend::Service,
};

/// `Mutation.insertDraftBlock`: insert a block into a draft.
pub const INSERT_DRAFT_BLOCK: FieldDeclaration = FieldDeclaration {
    key: "Mutation.insertDraftBlock",
    description: "insert a block into a draft",
    access: DRAFT_STORE,
    legacy: Implementation {
        calls: &[MONOLITH_TEMPLATES, MONOLITH_DRAFT_BLOCK_INSERT, MONOLITH_TEMPLATE_DRAFT],
        batching: Batching::OneAtATime,
    },
    service: Implementation {
        calls: &[MONOLITH_TEMPLATES, DRAFTS_INSERT_BLOCK, DRAFTS_BATCH_GET],
        batching: Batching::OneAtATime,
    },
    normalisers: Normalisers::NONE,
    default_backend: Backend::Service,
};

/// `Mutation.deleteDraftBlock`: remove a block from a draft.
pub const DELETE_DRAFT_BLOCK: FieldDeclaration = FieldDeclaration {
    key: "Mutation.deleteDraftBlock",
    description: "remove a block from a draft",
    access: DRAFT_STORE,
    legacy: Implementation {
        calls: &[MONOLITH_TEMPLATES, MONOLITH_DRAFT_BLOCK_DELETE, MONOLITH_TEMPLATE_DRAFT],
        batching: Batching::OneAtATime,
    },
    service: Implementation {
        calls: &[MONOLITH_TEMPLATES, DRAFTS_DELETE_BLOCK, DRAFTS_BATCH_GET],
        batching: Batching::OneAtATime,
    },
    normalisers: Normalisers::NONE,
    default_backend: Backend::Service,
};

/// Every migrated field.
pub const FIELDS: &[FieldDeclaration] = &[
    TEMPLATE_STATS,
    TEMPLATE_DRAFT,
    TEMPLATE_RECENT_EVENTS,
    UPDATE_DRAFT_BLOCK,
    INSERT_DRAFT_BLOCK,
    DELETE_DRAFT_BLOCK,
];

/// The backend calls of every resolver that is not migrated, and of the gateway itself.
pub const DEPENDENCIES: &[Dependency] = &[
    Dependency { coordinate: "gateway:identity", calls: &[MONOLITH_ME] },
    Dependency { coordinate: "Query.me", calls: &[MONOLITH_ME] },
    Dependency { coordinate: "Query.workspaces", calls: &[MONOLITH_WORKSPACES] },
    Dependency { coordinate: "Query.workspace", calls: &[MONOLITH_WORKSPACES] },
    Dependency { coordinate: "Query.template", calls: &[MONOLITH_TEMPLATES] },
    Dependency { coordinate: "Query.templates", calls: &[MONOLITH_TEMPLATES] },
    Dependency {
        coordinate: "Query.node",
        calls: &[MONOLITH_USERS, MONOLITH_WORKSPACES, MONOLITH_MEMBERSHIPS, MONOLITH_TEMPLATES],
    },
    Dependency { coordinate: "Template.createdBy", calls: &[MONOLITH_USERS] },
    Dependency { coordinate: "Template.workspace", calls: &[MONOLITH_WORKSPACES] },
    Dependency { coordinate: "Workspace.members", calls: &[MONOLITH_MEMBERSHIPS] },
    Dependency { coordinate: "Workspace.templates", calls: &[MONOLITH_TEMPLATES] },
    Dependency { coordinate: "WorkspaceMember.user", calls: &[MONOLITH_USERS] },
    Dependency { coordinate: "Draft.updatedBy", calls: &[MONOLITH_USERS] },
    Dependency { coordinate: "EmailEvent.template", calls: &[MONOLITH_TEMPLATES] },
    Dependency { coordinate: "Mutation.renameTemplate", calls: &[MONOLITH_TEMPLATE_PATCH] },
    Dependency {
        coordinate: "Subscription.templateEvents",
        calls: &[MONOLITH_TEMPLATES, EVENTS_STREAM_EVENTS],
    },
];
