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
pub mod migrated;
mod mutation;
mod query;
mod subscription;
mod types;

use async_graphql::Schema;
use banyan_migration::Engine;
use banyan_sources::Sources;

pub use context::RequestScope;
pub use ids::template_and_workspace_ids;
pub use migrated::{RequestRouting, Served, ServedLog};
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::{Subscription, SubscriptionPolicy};

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
