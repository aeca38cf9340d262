//! What the migration engine knows of the frontend contract: which operations of which
//! components select which schema fields ([`ContractUsage`]), and from that which contract
//! operations select each migrated field ([`ContractIndex`], the evidence a flip needs).
//!
//! `banyan_migration` is GraphQL-free, so the reading happens here, with `banyan_schema`'s usage
//! walk (through fragments, inline fragments, interfaces and unions). The CLI's `banyan migration
//! report` and the server (the admin page, the engine's evidence) both call [`load`].

use std::path::Path;

use banyan_migration::{ContractIndex, ContractUsage};
use banyan_schema::{Contract, ContractError, SchemaError, Sdl, load_sdl, load_sdl_file, operation_usage};

use crate::contract_cli::SCHEMA_SNAPSHOT;

/// Why the contract's usage could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ContractUsageError {
    /// The schema does not parse or validate.
    #[error("{0}")]
    Schema(#[from] SchemaError),
    /// The contract folder cannot be read, or breaks its own rules.
    #[error("{0}")]
    Contract(#[from] ContractError),
}

/// The contract's usage and the index built from it, computed once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContractView {
    /// Which fields each operation of each component selects.
    pub usage: ContractUsage,
    /// Which operations select each field: what evidence is joined with.
    pub index: ContractIndex,
}

impl ContractView {
    /// The view of `usage`.
    pub fn new(usage: ContractUsage) -> Self {
        let index = usage.contract_index();
        Self { usage, index }
    }
}

/// Which fields (`Type.field`) each named operation of `contract` selects in `schema`, per
/// component. Anonymous operations (which the contract's rules reject) are left out: evidence is
/// kept per operation name.
pub fn contract_usage(schema: &Sdl, contract: &Contract) -> ContractUsage {
    let mut usage = ContractUsage::new();
    for operation in operation_usage(schema, contract) {
        let Some(name) = operation.operation.as_deref() else { continue };
        for field in &operation.fields {
            usage.add(&operation.component, name, field);
        }
    }
    usage
}

/// Reads the contract folder `contract_dir` against the schema at `schema` (default: the schema
/// the code builds, which is the committed `schema/schema.graphql`).
pub fn load(schema: Option<&Path>, contract_dir: &Path) -> Result<ContractView, ContractUsageError> {
    let schema = match schema {
        Some(path) => load_sdl_file(path)?,
        None => load_sdl(SCHEMA_SNAPSHOT, &banyan_resolvers::sdl())?,
    };
    let contract = Contract::load(contract_dir)?;
    Ok(ContractView::new(contract_usage(&schema, &contract)))
}

#[cfg(test)]
mod tests {
    use banyan_schema::ContractSource;

    use super::*;

    #[test]
    fn fields_are_found_through_fragments_and_type_conditions() {
        let schema = load_sdl(
            "s.graphql",
            "type Query { template: Template, me: User }\n\
             type Template { id: ID!, stats: Stats, draft: Draft }\n\
             type Stats { sent: Int }\n type Draft { version: Int }\n type User { id: ID! }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let contract = Contract::from_sources([
            ContractSource {
                path: "c/List/List.graphql".into(),
                component: "List".into(),
                text: "query List { template { ...Row } }\nfragment Row on Template { id stats { sent } }"
                    .into(),
            },
            ContractSource {
                path: "c/Editor/Editor.graphql".into(),
                component: "Editor".into(),
                text: "query Editor { template { ... on Template { draft { version } } } me { id } }".into(),
            },
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let view = ContractView::new(contract_usage(&schema, &contract));
        let stats: Vec<&str> = view.index.operations("Template.stats").collect();
        assert_eq!(stats, ["List"]);
        let draft: Vec<&str> = view.index.operations("Template.draft").collect();
        assert_eq!(draft, ["Editor"]);
        let me: Vec<&str> = view.index.operations("Query.me").collect();
        assert_eq!(me, ["Editor"]);
        assert_eq!(view.index.operations("Stats.sent").collect::<Vec<_>>(), ["List"]);
    }
}
