//! `Subscription`: live email events over WebSocket.

use async_graphql::{Context, ID, Result, Subscription};
use banyan_sources::Sources;
use banyan_sources::domain::TemplateId;
use futures::{Stream, StreamExt};

use crate::context::scope;
use crate::error::{SourceResultExt, coded, codes, from_source};
use crate::ids::{self, NodeType};
use crate::types::EmailEventObject;

/// The most templates one subscription may follow (the event store's limit).
const MAX_TEMPLATES: usize = 100;

/// The root of every subscription.
pub struct Subscription;

/// The root of every subscription.
#[Subscription]
impl Subscription {
    /// Email events of the given templates as they happen. Every template must be visible to
    /// the signed-in user. The stream ends with an error if the event store goes away.
    async fn template_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global ids of the templates to follow, 1 to 100.")] template_ids: Vec<ID>,
        #[graphql(
            desc = "Replay stored events after this `EmailEvent.sequence` first; omit to start from now."
        )]
        after_sequence: Option<ID>,
    ) -> Result<impl Stream<Item = Result<EmailEventObject>> + use<>> {
        if template_ids.is_empty() || template_ids.len() > MAX_TEMPLATES {
            return Err(coded(codes::BAD_USER_INPUT, format!("follow 1 to {MAX_TEMPLATES} templates")));
        }
        let after_sequence = match after_sequence {
            Some(id) => id
                .parse::<u64>()
                .map_err(|_| coded(codes::BAD_USER_INPUT, "`afterSequence` is not an event sequence"))?,
            None => 0,
        };
        let ids = template_ids
            .iter()
            .map(|id| ids::decode(id, NodeType::Template).map(TemplateId))
            .collect::<Result<Vec<_>>>()?;
        let scope = scope(ctx)?;
        // The services trust the gateway, so visibility is checked here, against the monolith.
        let visible = scope.loaders.templates.load_many(ids.iter().copied()).await.graphql()?;
        if let Some(hidden) = ids.iter().find(|id| !visible.contains_key(id)) {
            return Err(coded(
                codes::NOT_FOUND,
                format!(
                    "template {} does not exist or is not visible to you",
                    ids::encode(NodeType::Template, hidden.0).as_str()
                ),
            ));
        }
        let sources = ctx.data::<Sources>()?;
        let stream = sources.events.stream_events(&scope.caller, &ids, after_sequence).await.graphql()?;
        Ok(stream.map(|item| item.map(EmailEventObject).map_err(from_source)))
    }
}
