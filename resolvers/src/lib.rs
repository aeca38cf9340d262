//! Banyan's GraphQL schema, code first with async-graphql: the object types (`types`), the
//! roots ([`Query`], [`Mutation`], [`Subscription`]), migrated fields served through the
//! migration engine ([`migrated`]), and [`build_schema`], which puts them together.
//!
//! Resolvers never call a backend directly for a list: they go through the per-request loaders
//! in `banyan_sources::loaders`, so a page of templates costs one call per backend method.

mod completion;
mod context;
pub mod error;
mod event_memo;
mod ids;
mod lean;
pub mod migrated;
mod mutation;
mod query;
pub mod shared_execution;
mod subscription;
mod types;
mod written;

use async_graphql::Schema;
use banyan_migration::Engine;
use banyan_sources::Sources;

pub use completion::complete_response;
pub use context::RequestScope;
pub use ids::template_and_workspace_ids;
pub use migrated::{RequestRouting, Served, ServedLog};
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::{Subscription, SubscriptionPolicy};
pub use written::{WrittenObjects, write_data};

/// Banyan's executable schema.
pub type BanyanSchema = Schema<Query, Mutation, Subscription>;

/// The limits async-graphql itself applies to every operation.
///
/// Depth (apart for introspection), complexity, aliases, nesting and fragment expansion are the
/// gateway's, checked by its limits extension before async-graphql parses a document.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Deepest nesting of selection sets (through fragment spreads) async-graphql accepts after
    /// parsing; a backstop behind the gateway's own, stricter, check.
    pub max_recursive_depth: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self { max_recursive_depth: 32 }
    }
}

/// Builds the schema over `sources`, serving migrated fields through `engine` (each request
/// decides from the table snapshot in its [`RequestScope`]).
pub fn build_schema(sources: Sources, engine: Engine, limits: QueryLimits) -> BanyanSchema {
    build_schema_with(sources, engine, limits, |builder| builder)
}

/// [`build_schema`], letting the caller add to the builder (the gateway's extensions).
pub fn build_schema_with(
    sources: Sources,
    engine: Engine,
    limits: QueryLimits,
    customize: impl FnOnce(SchemaBuilder) -> SchemaBuilder,
) -> BanyanSchema {
    customize(schema_builder())
        // Registered last, so it runs innermost: async-graphql drops failed fields from their
        // parent instead of nulling them; this puts them back and propagates nulls as the
        // specification asks (see `completion`) before any outer extension (the gateway's
        // response ordering) sees the response.
        .extension(completion::NullCompletion)
        .data(event_memo::EventMemo::new(sources.metrics.clone()))
        .data(sources)
        .data(engine)
        .limit_recursive_depth(limits.max_recursive_depth)
        .finish()
}

/// [`build_schema`] with no extension at all, not even the completion of failed fields:
/// async-graphql resolves a field on its fast path (no `ResolveInfo`, no registry lookups, no
/// chain of boxed hooks per field and list item) only when no extension is registered. The
/// caller applies [`complete_response`] to every response instead. Nothing can add an
/// extension here: there is no builder to customise. `validation` is async-graphql's mode: the
/// gateway runs a document that has passed the strict one once on a schema in the fast one.
pub fn build_schema_without_extensions(
    sources: Sources,
    engine: Engine,
    limits: QueryLimits,
    suggestions: bool,
    policy: SubscriptionPolicy,
    validation: async_graphql::ValidationMode,
) -> BanyanSchema {
    let builder = schema_builder()
        // Each schema resolves a subscription event once per selection in its own memo: a
        // subscription runs on one of them from start to end.
        .data(event_memo::EventMemo::new(sources.metrics.clone()))
        .data(sources)
        .data(engine)
        .data(policy)
        .data(lean::ExtensionFree)
        .validation_mode(validation)
        .limit_recursive_depth(limits.max_recursive_depth);
    if suggestions { builder.finish() } else { builder.disable_suggestions().finish() }
}

/// The schema's types, as async-graphql registers them (without its introspection types), for
/// reading field types and argument defaults outside an extension.
pub fn type_registry() -> async_graphql::registry::Registry {
    use async_graphql::{OutputType, SubscriptionType};
    let mut registry = async_graphql::registry::Registry {
        query_type: Query::type_name().into_owned(),
        mutation_type: Some(Mutation::type_name().into_owned()),
        subscription_type: Some(Subscription::type_name().into_owned()),
        ..Default::default()
    };
    Query::create_type_info(&mut registry);
    Mutation::create_type_info(&mut registry);
    Subscription::create_type_info(&mut registry);
    types::Node::create_type_info(&mut registry);
    registry
}

/// The schema's SDL, as committed in `schema/schema.graphql`. Needs no backends.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

/// The builder of Banyan's schema.
pub type SchemaBuilder = async_graphql::SchemaBuilder<Query, Mutation, Subscription>;

fn schema_builder() -> SchemaBuilder {
    // async-graphql's `Tracing` extension (a span per field) is the gateway's to add, when
    // `server.field_spans` asks for it: it costs CPU on every field.
    Schema::build(Query, Mutation, Subscription).register_output_type::<types::Node>()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_type_registry_holds_every_object_and_field_of_the_schema() {
        let registry = super::type_registry();
        let sdl = super::sdl();
        let mut current = None;
        let mut checked = 0;
        let mut in_description = false;
        for line in sdl.lines() {
            let trimmed = line.trim();
            if trimmed == "\"\"\"" {
                in_description = !in_description;
                continue;
            }
            if in_description || trimmed.starts_with('"') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("type ").or_else(|| line.strip_prefix("interface ")) {
                let name = rest.split([' ', '{']).next().unwrap_or_default();
                assert!(registry.types.contains_key(name), "{name}");
                current = registry.types.get(name);
            } else if line.starts_with('}') {
                current = None;
            } else if let Some(ty) = current
                && let Some(field) = line.strip_prefix('\t').filter(|l| !l.starts_with(['\t', '"', ')']))
            {
                let name = field.split(['(', ':']).next().unwrap_or_default().trim();
                assert!(ty.field_by_name(name).is_some(), "{} has {name}", ty.name());
                checked += 1;
            }
        }
        assert!(checked > 50, "{checked} fields checked");
    }
}
