//! The domain types every source returns: plain data, no GraphQL, no wire formats.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A user's primary key in the monolith.
    UserId
);
id_type!(
    /// A workspace's primary key in the monolith.
    WorkspaceId
);
id_type!(
    /// A template's primary key in the monolith; the services use its decimal string.
    TemplateId
);

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Primary key.
    pub id: UserId,
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub full_name: String,
    /// When the account was created.
    pub date_joined: DateTime<Utc>,
}

/// A team's space, owning templates.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    /// Primary key.
    pub id: WorkspaceId,
    /// Display name.
    pub name: String,
    /// URL-safe short name.
    pub slug: String,
    /// When the workspace was created.
    pub created_at: DateTime<Utc>,
}

/// What a member may do in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Full control, including billing and deletion.
    Owner,
    /// Manages members and content.
    Admin,
    /// Edits content.
    Editor,
    /// Reads only.
    Viewer,
}

/// A user's membership of a workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// The member.
    pub user_id: UserId,
    /// What the member may do.
    pub role: Role,
    /// When the user joined.
    pub joined_at: DateTime<Utc>,
}

/// Where a template is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateStatus {
    /// Being written; not sent yet.
    Draft,
    /// In use for sending.
    Active,
    /// Retired; kept for its history.
    Archived,
}

/// An email template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Primary key.
    pub id: TemplateId,
    /// The workspace that owns it.
    pub workspace_id: WorkspaceId,
    /// Display name.
    pub name: String,
    /// The email's subject line.
    pub subject: String,
    /// Where it is in its life.
    pub status: TemplateStatus,
    /// Who created it.
    pub created_by: UserId,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Whether the caller may change it.
    pub can_edit: bool,
}

/// A changes to a template's metadata; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplatePatch {
    /// A new name.
    pub name: Option<String>,
    /// A new status.
    pub status: Option<TemplateStatus>,
}

/// A page of a page-numbered list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Total number of items across all pages.
    pub total: u64,
    /// The items of this page.
    pub items: Vec<T>,
}

/// A time window that ends now, over which stats are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatsWindow {
    /// The last 24 hours.
    Last24Hours,
    /// The last 7 days.
    Last7Days,
    /// The last 30 days.
    Last30Days,
    /// The last 90 days.
    Last90Days,
}

impl StatsWindow {
    /// The window's length.
    pub fn duration(self) -> chrono::Duration {
        match self {
            Self::Last24Hours => chrono::Duration::hours(24),
            Self::Last7Days => chrono::Duration::days(7),
            Self::Last30Days => chrono::Duration::days(30),
            Self::Last90Days => chrono::Duration::days(90),
        }
    }

    /// The monolith's name for the window (`?window=`).
    pub fn legacy_name(self) -> &'static str {
        match self {
            Self::Last24Hours => "24h",
            Self::Last7Days => "7d",
            Self::Last30Days => "30d",
            Self::Last90Days => "90d",
        }
    }
}

/// Counts of one template's email events in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateStats {
    /// The template counted.
    pub template_id: TemplateId,
    /// Emails handed to the provider.
    pub sent: u64,
    /// Emails accepted by the recipient's server.
    pub delivered: u64,
    /// Open events.
    pub opened: u64,
    /// Click events.
    pub clicked: u64,
    /// Emails rejected by the recipient's server.
    pub bounced: u64,
    /// Distinct recipients who opened.
    pub unique_opens: u64,
    /// When the backend computed these numbers, when it says so: the monolith's analytics view
    /// may (the devstack's A/A noise knob makes it), the event store never does. Left out of the
    /// JSON when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub computed_at: Option<DateTime<Utc>>,
}

/// What happened to an email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Handed to the provider.
    Sent,
    /// Accepted by the recipient's server.
    Delivered,
    /// Opened by the recipient.
    Opened,
    /// A link in it was clicked.
    Clicked,
    /// Rejected by the recipient's server.
    Bounced,
}

/// One email event from the event store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmailEvent {
    /// Position in the store's append order.
    pub sequence: u64,
    /// The template the email was rendered from.
    pub template_id: TemplateId,
    /// What happened.
    pub kind: EventKind,
    /// The recipient's address.
    pub recipient: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

/// A page of events, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventPage {
    /// The events of this page.
    pub events: Vec<EmailEvent>,
    /// Opaque cursor for the next (older) page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// What a draft block renders as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// A heading line.
    Heading,
    /// A paragraph of text.
    Text,
    /// An image; the content is its URL.
    Image,
    /// A call-to-action button; the content is its label.
    Button,
    /// A horizontal rule.
    Divider,
}

/// One content block of a draft.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block {
    /// Stable id within the draft.
    pub id: String,
    /// What it renders as.
    pub kind: BlockKind,
    /// Text, URL or label, per kind.
    pub content: String,
}

/// The working copy of a template's content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Draft {
    /// The template it belongs to.
    pub template_id: TemplateId,
    /// Increases with every write; writes name the version they expect.
    pub version: u64,
    /// The blocks, in display order.
    pub blocks: Vec<Block>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Who changed it last.
    pub updated_by: UserId,
}

/// One edit to a draft, made against an expected version.
#[derive(Debug, Clone, PartialEq)]
pub enum DraftEdit {
    /// Replace a block's content.
    UpdateBlock {
        /// The block to change.
        block_id: String,
        /// Its new content.
        content: String,
    },
    /// Insert a new block at `index` (past the end appends).
    InsertBlock {
        /// Where to insert.
        index: u32,
        /// What it renders as.
        kind: BlockKind,
        /// Its content.
        content: String,
    },
    /// Remove a block.
    DeleteBlock {
        /// The block to remove.
        block_id: String,
    },
}
