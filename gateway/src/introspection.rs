//! Who may introspect the schema (`server.introspection`), as an async-graphql extension so HTTP
//! and WebSocket share one decision.
//!
//! With introspection off, a document that selects `__schema` or `__type` anywhere (in an
//! operation or a fragment) is refused with `INTROSPECTION_DISABLED` before validation, unless
//! the request's data (or the WebSocket connection's) holds an [`IntrospectionGrant`]: the HTTP
//! path grants it to a caller sending `x-banyan-admin-token: <admin.token>`. A dedicated header,
//! not `Authorization`, because on `/graphql` that header names the user, and an operator may
//! introspect while signed in as one. `__typename` is not introspection of the schema and always
//! works.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, ServerError, ServerResult};
use http::HeaderMap;

use crate::config::AdminAccess;

/// The header that carries the admin token on `/graphql`.
pub(crate) const ADMIN_TOKEN_HEADER: &str = "x-banyan-admin-token";

/// The stable `extensions.code` of a refused introspection.
pub(crate) const INTROSPECTION_DISABLED: &str = "INTROSPECTION_DISABLED";

/// In a request's (or a connection's) data: this caller may introspect even with
/// `server.introspection` off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntrospectionGrant;

/// Whether `headers` present the admin token (compared in constant time). Never with the admin
/// routes disabled; always with them open (`banyan dev`).
pub(crate) fn admin_grant(headers: &HeaderMap, access: &AdminAccess) -> Option<IntrospectionGrant> {
    let token = match access {
        AdminAccess::Disabled => return None,
        AdminAccess::Open => return Some(IntrospectionGrant),
        AdminAccess::Token(token) => token,
    };
    let presented = headers.get(ADMIN_TOKEN_HEADER)?.to_str().ok()?.trim();
    crate::admin::constant_time_eq(presented.as_bytes(), token.as_bytes()).then_some(IntrospectionGrant)
}

/// The extension: refuses introspection unless it is on or granted.
pub(crate) struct IntrospectionPolicy {
    /// `server.introspection`.
    pub(crate) enabled: bool,
}

impl ExtensionFactory for IntrospectionPolicy {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(IntrospectionCheck { enabled: self.enabled })
    }
}

struct IntrospectionCheck {
    enabled: bool,
}

#[async_graphql::async_trait::async_trait]
impl Extension for IntrospectionCheck {
    /// Runs the rest of the chain first, so the document is the one the limits extension parsed
    /// and bounded (it is never parsed twice, nor unbounded).
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let mut request = next.run(ctx, request).await?;
        if self.enabled
            || ctx.data_opt::<IntrospectionGrant>().is_some()
            || request.data.contains_key(&std::any::TypeId::of::<IntrospectionGrant>())
        {
            return Ok(request);
        }
        if selects_introspection(request.parsed_query()?) {
            return Err(disabled());
        }
        // Should a selection escape the walk above, async-graphql still answers nothing.
        Ok(request.disable_introspection())
    }
}

/// The refusal of a document that selects introspection.
pub(crate) fn disabled() -> ServerError {
    let mut error = ServerError::new("introspection is disabled on this server", None);
    error.extensions.get_or_insert_with(Default::default).set("code", INTROSPECTION_DISABLED);
    error
}

/// Whether any operation or fragment selects `__schema` or `__type`, at any depth.
pub(crate) fn selects_introspection(document: &ExecutableDocument) -> bool {
    fn in_set(set: &SelectionSet) -> bool {
        set.items.iter().any(|selection| match &selection.node {
            Selection::Field(field) => {
                matches!(field.node.name.node.as_str(), "__schema" | "__type")
                    || in_set(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => in_set(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => false,
        })
    }
    document.operations.iter().any(|(_, operation)| in_set(&operation.node.selection_set.node))
        || document.fragments.values().any(|fragment| in_set(&fragment.node.selection_set.node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selects(query: &str) -> bool {
        selects_introspection(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    #[test]
    fn introspection_is_found_wherever_it_hides() {
        assert!(selects("{ __schema { queryType { name } } }"));
        assert!(selects("{ __type(name: \"Query\") { name } }"));
        assert!(selects("query A { __typename } query B { ... on Query { __schema { types { name } } } }"));
        assert!(selects("{ ...F } fragment F on Query { t: __type(name: \"User\") { name } }"));
        assert!(!selects("{ __typename }"));
        assert!(!selects("{ me { __typename id } }"));
    }

    #[test]
    fn only_the_admin_token_grants() {
        let token = AdminAccess::Token("0123456789abcdef".to_owned());
        let mut headers = HeaderMap::new();
        assert!(admin_grant(&headers, &token).is_none());
        headers.insert(ADMIN_TOKEN_HEADER, http::HeaderValue::from_static("0123456789abcdeX"));
        assert!(admin_grant(&headers, &token).is_none());
        headers.insert(ADMIN_TOKEN_HEADER, http::HeaderValue::from_static("0123456789abcdef"));
        assert!(admin_grant(&headers, &token).is_some());
        assert!(admin_grant(&headers, &AdminAccess::Disabled).is_none());
        assert!(admin_grant(&HeaderMap::new(), &AdminAccess::Open).is_some());
    }
}
