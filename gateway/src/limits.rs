//! The alias limit, as an async-graphql extension so it applies to HTTP and WebSocket alike and
//! reuses the parse async-graphql does anyway. (Depth and complexity limits are async-graphql's
//! own, set in `banyan_resolvers::build_schema`.)

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

/// Refuses documents with more than `max` aliases: aliases let one request multiply an expensive
/// field past what the complexity limit sees in a single selection.
pub(crate) struct AliasLimit {
    pub(crate) max: usize,
}

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension { max: self.max })
    }
}

struct AliasLimitExtension {
    max: usize,
}

#[async_graphql::async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&document);
        if aliases > self.max {
            let mut error = ServerError::new(
                format!("the document has {aliases} aliases; at most {} are allowed", self.max),
                None,
            );
            error.extensions.get_or_insert_with(Default::default).set("code", "TOO_MANY_ALIASES");
            return Err(error);
        }
        Ok(document)
    }
}

fn count_aliases(document: &ExecutableDocument) -> usize {
    let operations: Vec<&SelectionSet> = match &document.operations {
        DocumentOperations::Single(op) => vec![&op.node.selection_set.node],
        DocumentOperations::Multiple(ops) => ops.values().map(|op| &op.node.selection_set.node).collect(),
    };
    let fragments = document.fragments.values().map(|f| &f.node.selection_set.node);
    operations.into_iter().chain(fragments).map(count_in).sum()
}

fn count_in(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_in(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_in(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_aliases_in_operations_fragments_and_inline_fragments() {
        let document = async_graphql::parser::parse_query(
            "query A { a: me { b: id } ...F ... on Query { c: me { id } } } fragment F on Query { d: me { id } }",
        )
        .expect("parses");
        assert_eq!(count_aliases(&document), 4);
    }
}
