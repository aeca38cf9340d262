//! Documents validated once: a cached document that has passed async-graphql's strict validation
//! runs, over HTTP, on a schema that validates in its fast mode, with the request's variables
//! checked here.
//!
//! Why: async-graphql validates the document it is handed on every request, with every rule
//! (about 3.4% of the gateway's CPU per TemplateList request), though all but one of its checks
//! depend on the document's text alone, which a cached document shares with every request that
//! sends it. The one that depends on the request is `ArgumentsOfCorrectType`'s: it substitutes
//! the request's variables into each argument and checks the value against the argument's type.
//! [`VariableSites`] lists, once per document, the arguments whose values hold variables, with
//! their types; [`VariableSites::accept`] checks a request's variables against them.
//!
//! It is conservative: what it is not sure of (an input object, a type or field it does not
//! find, introspection's fields) it refuses, and a refused request is validated in full by the
//! strict schema. So a request whose variables are wrong gets async-graphql's own errors, and
//! the fast mode only ever sees requests the strict mode would have passed.

use async_graphql::parser::types::{Directive, ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql::{Name, Positioned, Variables};
use async_graphql_value::{ConstValue, Value};

/// An argument whose value holds a variable, and the argument's type.
struct Site {
    ty: String,
    value: Value,
}

/// Every argument of a document whose value holds a variable (see the module's documentation).
pub(crate) struct VariableSites(Vec<Site>);

impl VariableSites {
    /// The sites of every operation and fragment of `document`, which has passed validation;
    /// `None` when an argument cannot be typed from `registry` (the document is then validated
    /// in full on every request).
    pub(crate) fn of(document: &ExecutableDocument, registry: &Registry) -> Option<Self> {
        let mut sites = Vec::new();
        for (_, operation) in document.operations.iter() {
            let root = match operation.node.ty {
                OperationType::Query => Some(registry.query_type.as_str()),
                OperationType::Mutation => registry.mutation_type.as_deref(),
                OperationType::Subscription => registry.subscription_type.as_deref(),
            }?;
            directives(&operation.node.directives, registry, &mut sites)?;
            selection_set(&operation.node.selection_set, root, registry, &mut sites)?;
        }
        for fragment in document.fragments.values() {
            directives(&fragment.node.directives, registry, &mut sites)?;
            let on = fragment.node.type_condition.node.on.node.as_str();
            selection_set(&fragment.node.selection_set, on, registry, &mut sites)?;
        }
        Some(Self(sites))
    }

    /// Whether every site's value, with `variables` substituted, is valid for its type, as
    /// async-graphql's strict validation would find; `false` when not sure. A site with a
    /// variable that is not given is passed over, as that validation does (execution reports it).
    pub(crate) fn accept(&self, variables: &Variables, registry: &Registry) -> bool {
        self.0.iter().all(|site| {
            let given = |name: Name| variables.get(&name).cloned().ok_or(());
            match site.value.clone().into_const_with(given) {
                Ok(value) => valid(registry, &site.ty, &value) == Some(true),
                Err(()) => true,
            }
        })
    }
}

/// Collects the sites of `set`, selected on the type named `parent`.
fn selection_set(
    set: &Positioned<SelectionSet>,
    parent: &str,
    registry: &Registry,
    sites: &mut Vec<Site>,
) -> Option<()> {
    for item in &set.node.items {
        match &item.node {
            Selection::Field(field) => {
                directives(&field.node.directives, registry, sites)?;
                let name = field.node.name.node.as_str();
                if name == "__typename" {
                    continue;
                }
                let meta = registry.types.get(parent)?.field_by_name(name)?;
                for (argument, value) in &field.node.arguments {
                    if holds_variable(&value.node) {
                        let ty = meta.args.get(argument.node.as_str())?.ty.clone();
                        sites.push(Site { ty, value: value.node.clone() });
                    }
                }
                if !field.node.selection_set.node.items.is_empty() {
                    let inner = MetaTypeName::concrete_typename(&meta.ty);
                    selection_set(&field.node.selection_set, inner, registry, sites)?;
                }
            }
            Selection::FragmentSpread(spread) => directives(&spread.node.directives, registry, sites)?,
            Selection::InlineFragment(fragment) => {
                directives(&fragment.node.directives, registry, sites)?;
                let on = fragment
                    .node
                    .type_condition
                    .as_ref()
                    .map_or(parent, |condition| condition.node.on.node.as_str());
                selection_set(&fragment.node.selection_set, on, registry, sites)?;
            }
        }
    }
    Some(())
}

/// Collects the sites of `directives`' arguments.
fn directives(
    directives: &[Positioned<Directive>],
    registry: &Registry,
    sites: &mut Vec<Site>,
) -> Option<()> {
    for directive in directives {
        let name = directive.node.name.node.as_str();
        for (argument, value) in &directive.node.arguments {
            if !holds_variable(&value.node) {
                continue;
            }
            let ty = match registry.directives.get(name) {
                Some(meta) => meta.args.get(argument.node.as_str())?.ty.clone(),
                // Built in: a schema's registry has them, not the one of its types alone.
                None if matches!(name, "skip" | "include") && argument.node == "if" => "Boolean!".to_owned(),
                None => return None,
            };
            sites.push(Site { ty, value: value.node.clone() });
        }
    }
    Some(())
}

fn holds_variable(value: &Value) -> bool {
    match value {
        Value::Variable(_) => true,
        Value::List(items) => items.iter().any(holds_variable),
        Value::Object(fields) => fields.values().any(holds_variable),
        _ => false,
    }
}

/// Whether `value` is valid for the type `ty`: `Some(true)` or `Some(false)` where it decides as
/// async-graphql's validation does (non-null, lists, scalars, enums), `None` elsewhere (input
/// objects, a type it does not find).
fn valid(registry: &Registry, ty: &str, value: &ConstValue) -> Option<bool> {
    match MetaTypeName::create(ty) {
        MetaTypeName::NonNull(inner) => match value {
            ConstValue::Null => Some(false),
            value => valid(registry, inner, value),
        },
        MetaTypeName::List(inner) => match value {
            ConstValue::List(items) => {
                for item in items {
                    if !valid(registry, inner, item)? {
                        return Some(false);
                    }
                }
                Some(true)
            }
            ConstValue::Null => Some(true),
            // A single value where a list is expected is a list of one.
            value => valid(registry, inner, value),
        },
        MetaTypeName::Named(name) => {
            if *value == ConstValue::Null {
                return Some(true);
            }
            match registry.types.get(name)? {
                MetaType::Scalar { is_valid: Some(is_valid), .. } => Some(is_valid(value)),
                MetaType::Scalar { is_valid: None, .. } => Some(true),
                MetaType::Enum { enum_values, .. } => Some(match value {
                    ConstValue::Enum(name) => enum_values.contains_key(name.as_str()),
                    ConstValue::String(name) => enum_values.contains_key(name.as_str()),
                    _ => false,
                }),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::Variables;
    use serde_json::{Value, json};

    use super::VariableSites;
    use crate::app::AppState;

    /// Whether async-graphql's strict validation refuses `variables` in `query`'s arguments
    /// (the schema with the extensions, which validates every request in full).
    async fn strict_refuses(state: &AppState, query: &str, variables: &Value) -> bool {
        let request = async_graphql::Request::new(query).variables(Variables::from_json(variables.clone()));
        let response = state.graphql.full_schema().execute(request).await;
        response.errors.iter().any(|error| error.message.starts_with("Invalid value for argument"))
    }

    /// Whether [`VariableSites::accept`]s `variables` for `query`.
    fn accepts(query: &str, variables: &Value) -> bool {
        let registry = banyan_resolvers::type_registry();
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let sites = VariableSites::of(&document, &registry).expect("every argument typed");
        sites.accept(&Variables::from_json(variables.clone()), &registry)
    }

    #[tokio::test]
    async fn it_accepts_the_variables_async_graphqls_strict_validation_accepts_and_no_others() {
        let state = AppState::for_tests(|_| {});
        let query = "query Q($ws: ID!, $first: Int, $after: String, $w: StatsWindow!, $b: Boolean!) { \
                     templates(workspaceId: $ws, first: $first, after: $after) @include(if: $b) { \
                     edges { node { id ...S } } } } fragment S on Template { stats(window: $w) { sent } }";
        let good =
            json!({ "ws": "V29ya3NwYWNlOjE=", "first": 10, "after": null, "w": "LAST_7_DAYS", "b": true });
        let with = |key: &str, value: Value| {
            let mut variables = good.clone();
            variables[key] = value;
            variables
        };
        let without = |key: &str| {
            let mut variables = good.clone();
            variables.as_object_mut().map(|map| map.remove(key));
            variables
        };
        let subscription = "subscription E($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence } }";
        let cases = [
            (query, good.clone()),
            (query, with("ws", Value::Null)),
            (query, with("ws", json!(7))),
            (query, with("ws", json!(7.5))),
            (query, with("ws", json!(["a"]))),
            (query, with("first", json!("ten"))),
            (query, with("first", json!(4_000_000_000_u64))),
            (query, with("first", Value::Null)),
            (query, with("after", json!(3))),
            (query, with("w", json!("LAST_90_DAYS"))),
            (query, with("w", json!("NEVER"))),
            (query, with("w", json!(7))),
            (query, with("b", json!("yes"))),
            (query, with("b", Value::Null)),
            (query, without("ws")),
            (query, without("w")),
            (subscription, json!({ "ids": ["VGVtcGxhdGU6MQ=="] })),
            (subscription, json!({ "ids": "VGVtcGxhdGU6MQ==" })),
            (subscription, json!({ "ids": ["a", null] })),
            (subscription, json!({ "ids": [["a"]] })),
            (subscription, json!({ "ids": null })),
        ];
        let mut outcomes = [0, 0];
        for (query, variables) in &cases {
            let refused = strict_refuses(&state, query, variables).await;
            assert_eq!(accepts(query, variables), !refused, "{query} with {variables}");
            outcomes[usize::from(refused)] += 1;
        }
        // Both answers were met, several times each.
        assert!(outcomes[0] >= 5 && outcomes[1] >= 5, "{outcomes:?}");
    }

    #[tokio::test]
    async fn an_input_object_is_left_to_the_strict_validation() {
        let state = AppState::for_tests(|_| {});
        let mutation =
            "mutation M($input: UpdateDraftBlockInput!) { updateDraftBlock(input: $input) { __typename } }";
        let document = async_graphql::parser::parse_query(mutation).expect("parses");
        let registry = banyan_resolvers::type_registry();
        let sites = VariableSites::of(&document, &registry).expect("every argument typed");
        let input =
            json!({ "input": { "blockId": "QmxvY2s6MTpiMQ==", "content": "Hi", "expectedVersion": 1 } });
        assert!(!strict_refuses(&state, mutation, &input).await, "a valid input");
        assert!(!sites.accept(&Variables::from_json(input), &registry));
    }

    #[test]
    fn a_document_with_an_argument_it_cannot_type_is_never_accepted() {
        let registry = banyan_resolvers::type_registry();
        // Introspection's fields are not among the schema's own types.
        let document =
            async_graphql::parser::parse_query("query T($n: String!) { __type(name: $n) { name } }")
                .expect("parses");
        assert!(VariableSites::of(&document, &registry).is_none());
    }
}
