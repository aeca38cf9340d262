//! `EmailEvent` and pages of them.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use banyan_sources::domain::{EmailEvent, EventKind, EventPage};
use chrono::{DateTime, Utc};

use crate::context::scope;
use crate::error::SourceResultExt;
use crate::ids::{NodeType, NumberedId};
use crate::lean::{Lean, LeanList};
use crate::types::TemplateObject;

/// What happened to an email.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "EmailEventKind")]
pub(crate) enum EventKindEnum {
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

crate::written::enum_leaves!(EventKindEnum);

impl From<EventKind> for EventKindEnum {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::Sent => Self::Sent,
            EventKind::Delivered => Self::Delivered,
            EventKind::Opened => Self::Opened,
            EventKind::Clicked => Self::Clicked,
            EventKind::Bounced => Self::Bounced,
        }
    }
}

/// Something that happened to one email rendered from a template. Shared (`Arc`): a
/// subscription's event is the one its shared upstream stream received, never a copy.
pub(crate) struct EmailEventObject(pub(crate) Arc<EmailEvent>);

impl EmailEventObject {
    /// The fields whose value is the event's alone: no caller, no backend, no argument, and no
    /// failure. A subscription whose selection holds only these (and `__typename`) shares one
    /// resolution per event with every subscriber of the same selection (`crate::event_memo`).
    /// `template` is not one: it loads through the caller's loaders, with the caller's
    /// visibility and credential. A field missing here is resolved per subscriber, so a new
    /// field is safe until it is added.
    pub(crate) const CALLER_INDEPENDENT_FIELDS: &[&str] =
        &["__typename", "sequence", "kind", "recipient", "occurredAt", "templateId"];
}

/// Something that happened to one email rendered from a template.
#[Object(name = "EmailEvent")]
impl EmailEventObject {
    /// Position in the event store's append order; later events have greater numbers.
    async fn sequence(&self) -> ID {
        ID(self.0.sequence.to_string())
    }

    /// What happened.
    async fn kind(&self) -> EventKindEnum {
        self.0.kind.into()
    }

    /// The recipient's address.
    async fn recipient(&self) -> &str {
        &self.0.recipient
    }

    /// When it happened.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }

    /// The global id of the template the email was rendered from.
    async fn template_id(&self) -> NumberedId {
        NumberedId::node(NodeType::Template, self.0.template_id.0)
    }

    /// The template the email was rendered from.
    async fn template(&self, ctx: &Context<'_>) -> Result<Option<Lean<TemplateObject>>> {
        let scope = scope(ctx)?;
        let template = scope.loaders().templates.load_one(self.0.template_id).await.graphql()?;
        Ok(template.map(|template| Lean(TemplateObject(template))))
    }
}

crate::lean::plain_fields!(EmailEventObject {
    "sequence" => sequence,
    "kind" => kind,
    "recipient" => recipient,
    "occurredAt" => occurred_at,
    "templateId" => template_id,
});

// Its fields are resolved by `SimpleObject`'s generated code only.
crate::lean::plain_fields!(EmailEventConnection {});

/// Where a page of events ends.
#[derive(SimpleObject)]
pub(crate) struct EventPageInfo {
    /// Whether older events follow.
    has_next_page: bool,
    /// Pass as `after` to get the next (older) page; null on the last page.
    end_cursor: Option<String>,
}

/// A page of events, newest first. The event store pages by opaque token, so there is one cursor
/// per page (`pageInfo.endCursor`) rather than one per event.
#[derive(SimpleObject)]
pub(crate) struct EmailEventConnection {
    /// The events of this page.
    nodes: LeanList<Vec<Lean<EmailEventObject>>>,
    /// Where the page ends.
    page_info: EventPageInfo,
}

impl From<EventPage> for EmailEventConnection {
    fn from(page: EventPage) -> Self {
        Self {
            page_info: EventPageInfo {
                has_next_page: page.next_page_token.is_some(),
                end_cursor: page.next_page_token,
            },
            nodes: LeanList(
                page.events.into_iter().map(|event| Lean(EmailEventObject(Arc::new(event)))).collect(),
            ),
        }
    }
}
