//! What each request brings to the resolvers: the caller and their loaders.

use async_graphql::{Context, Error};
use banyan_sources::loaders::Loaders;
use banyan_sources::{Caller, Sources};

use crate::error::unauthenticated;

/// The signed-in caller of one request and the batch loaders acting for them. The gateway puts
/// one into the request's data once the caller's identity is checked; without it, every field
/// that reads data answers `UNAUTHENTICATED`.
pub struct RequestScope {
    /// Who is asking.
    pub caller: Caller,
    /// Loaders acting for `caller`, alive for this request only.
    pub loaders: Loaders,
}

impl RequestScope {
    /// The scope of a request (or WebSocket connection) by `caller` starting now: stats windows
    /// end at this moment for every field of it.
    pub fn new(sources: &Sources, caller: Caller) -> Self {
        let loaders = Loaders::new(sources, &caller, chrono::Utc::now());
        Self { caller, loaders }
    }
}

/// The request's scope, or `UNAUTHENTICATED`.
pub(crate) fn scope<'a>(ctx: &Context<'a>) -> Result<&'a RequestScope, Error> {
    ctx.data_opt::<RequestScope>().ok_or_else(unauthenticated)
}
