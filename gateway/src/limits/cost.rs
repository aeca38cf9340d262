//! The cost of an operation before it runs, aware of list sizes: what it could make the
//! backends produce, not how many fields it spells out.
//!
//! Every field costs 1. A field returning a list multiplies the cost of what it selects by the
//! list's size, and a paginated field (one with a `first` argument) sizes the lists directly in
//! its own selection (`nodes`, `edges` of a connection) by its page size:
//!
//! ```text
//! templates(first: 100) { totalCount nodes { id recentEvents(first: 100) { nodes { kind } } } }
//!   = 1 + (1 + 100 × (1 + (1 + (1 + 100 × 1))))
//! ```
//!
//! A list's size is, in order: its own `first` argument (literal, variable, the variable's
//! default, then the schema's default for the argument, read from the registry); the page size
//! of the paginated field it sits in; its entry in [`LIST_SIZES`]; `limits.default_list_size`.
//! Fields skipped by `@skip`/`@include` cost nothing. Introspection (`__schema`, `__type`,
//! `__typename`) costs 1 per field and is not walked: the gateway answers it from memory, and
//! its depth has a bound of its own.
//!
//! The walk expands fragment spreads without memoising, which is linear in the expanded
//! document: [`super::check_document`] has already bounded that by `limits.max_selections` and
//! refused cycles. A cached document remembers its last cost ([`CostMemo`]) with the variables
//! the walk read, so a page that sends the same document with the same page size is not walked
//! again.

use std::cell::RefCell;

use async_graphql::Variables;
use async_graphql::parser::types::{
    Directive, ExecutableDocument, Field, OperationDefinition, Selection, SelectionSet, VariableDefinition,
};
use async_graphql::registry::{MetaField, MetaTypeName, Registry};
use async_graphql::{Name, Positioned, Value as ConstValue};

/// Declared sizes of list fields that take no `first` argument: `(type, field, size)`. A list
/// field missing here is sized `limits.default_list_size`.
pub(crate) const LIST_SIZES: &[(&str, &str, u64)] = &[
    // A user belongs to a handful of workspaces.
    ("Query", "workspaces", 10),
    // Members of one workspace.
    ("Workspace", "members", 50),
    // Content blocks of one draft.
    ("Draft", "blocks", 50),
];

/// The name of the argument that sizes a paginated field.
const PAGE_ARGUMENT: &str = "first";

/// The cost of `operation` in `document`, with `variables` as sent.
pub(crate) fn operation_cost(
    registry: &Registry,
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    variables: &Variables,
    default_list_size: u64,
) -> u64 {
    walk(registry, document, operation, variables, default_list_size).0
}

/// The cost of `operation` ([`operation_cost`]) and the variables the walk read, with the values
/// it read (`None`: neither sent nor defaulted), each once.
fn walk(
    registry: &Registry,
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    variables: &Variables,
    default_list_size: u64,
) -> (u64, Vec<(Name, Option<ConstValue>)>) {
    let root = match operation.ty {
        async_graphql::parser::types::OperationType::Query => registry.query_type.as_str(),
        async_graphql::parser::types::OperationType::Mutation => {
            registry.mutation_type.as_deref().unwrap_or_default()
        }
        async_graphql::parser::types::OperationType::Subscription => {
            registry.subscription_type.as_deref().unwrap_or_default()
        }
    };
    let walker = CostWalker {
        registry,
        document,
        variables,
        definitions: &operation.variable_definitions,
        default_list_size,
        read: RefCell::default(),
    };
    let cost = walker.selection_set(&operation.selection_set.node, root, None);
    (cost, walker.read.into_inner())
}

/// The last cost worked out for an operation of one document, with everything besides the
/// document it depended on: the operation's name as asked, the default list size, and each
/// variable the walk read with the value it read. The schema is fixed for the process.
pub(crate) struct CostMemo {
    operation_name: Option<Box<str>>,
    default_list_size: u64,
    read: Vec<(Name, Option<ConstValue>)>,
    cost: u64,
}

/// The cost of `operation` ([`operation_cost`]), asked for as `operation_name`: `memo`'s when
/// it was worked out for the same operation, default size and values of the variables it read;
/// else walked, and remembered in `memo` in place of what was there.
pub(crate) fn remembered_cost(
    memo: &std::sync::Mutex<Option<CostMemo>>,
    registry: &Registry,
    document: &ExecutableDocument,
    (operation, operation_name): (&OperationDefinition, Option<&str>),
    variables: &Variables,
    default_list_size: u64,
) -> u64 {
    let lock = || memo.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(memo) = lock().as_ref()
        && memo.operation_name.as_deref() == operation_name
        && memo.default_list_size == default_list_size
        && memo
            .read
            .iter()
            .all(|(name, value)| variable(variables, &operation.variable_definitions, name) == value.as_ref())
    {
        return memo.cost;
    }
    let (cost, read) = walk(registry, document, operation, variables, default_list_size);
    *lock() = Some(CostMemo { operation_name: operation_name.map(Box::from), default_list_size, read, cost });
    cost
}

/// A variable's value: as sent, else its default in the operation.
fn variable<'a>(
    variables: &'a Variables,
    definitions: &'a [Positioned<VariableDefinition>],
    name: &Name,
) -> Option<&'a ConstValue> {
    variables.get(name).or_else(|| {
        definitions
            .iter()
            .find(|definition| &definition.node.name.node == name)
            .and_then(|definition| definition.node.default_value())
    })
}

struct CostWalker<'a> {
    registry: &'a Registry,
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    definitions: &'a [Positioned<VariableDefinition>],
    default_list_size: u64,
    /// The variables read so far, each once, with the value read.
    read: RefCell<Vec<(Name, Option<ConstValue>)>>,
}

impl CostWalker<'_> {
    /// The cost of `set`, selected on `parent`; `page` is the page size of the paginated field
    /// whose selection this is, if any.
    fn selection_set(&self, set: &SelectionSet, parent: &str, page: Option<u64>) -> u64 {
        let mut total = 0u64;
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(field) if self.included(&field.node.directives) => {
                    self.field(&field.node, parent, page)
                }
                Selection::InlineFragment(fragment) if self.included(&fragment.node.directives) => {
                    let on =
                        fragment.node.type_condition.as_ref().map_or(parent, |c| c.node.on.node.as_str());
                    self.selection_set(&fragment.node.selection_set.node, on, page)
                }
                Selection::FragmentSpread(spread) if self.included(&spread.node.directives) => {
                    // An unknown fragment is validation's to report.
                    self.document.fragments.get(&spread.node.fragment_name.node).map_or(0, |fragment| {
                        let on = fragment.node.type_condition.node.on.node.as_str();
                        self.selection_set(&fragment.node.selection_set.node, on, page)
                    })
                }
                _ => 0,
            };
            total = total.saturating_add(cost);
        }
        total
    }

    fn field(&self, field: &Field, parent: &str, page: Option<u64>) -> u64 {
        let name = field.name.node.as_str();
        if name.starts_with("__") {
            return 1;
        }
        let Some(meta) = self.registry.types.get(parent).and_then(|ty| ty.field_by_name(name)) else {
            // Not in the schema: validation refuses the document.
            return 1;
        };
        let own_page = self.page_size(field, meta);
        let is_list = meta.ty.contains('[');
        let size = if is_list {
            own_page.or(page).or_else(|| declared_list_size(parent, name)).unwrap_or(self.default_list_size)
        } else {
            1
        };
        if field.selection_set.node.items.is_empty() {
            return 1;
        }
        let child_type = MetaTypeName::concrete_typename(&meta.ty);
        // A paginated field that returns an object (a connection) sizes the lists inside it.
        let child_page = if is_list { None } else { own_page };
        let children = self.selection_set(&field.selection_set.node, child_type, child_page);
        size.saturating_mul(children).saturating_add(1)
    }

    /// The page size a paginated field asks for; `None` for a field without `first`.
    fn page_size(&self, field: &Field, meta: &MetaField) -> Option<u64> {
        let argument = meta.args.get(PAGE_ARGUMENT)?;
        let written = field.get_argument(PAGE_ARGUMENT).and_then(|value| {
            value
                .node
                .clone()
                .into_const_with(|name| self.variable(&name).ok_or(()))
                .ok()
                .as_ref()
                .and_then(size_of)
        });
        Some(
            written
                .or_else(|| argument.default_value.as_deref().and_then(|d| d.trim().parse().ok()))
                .unwrap_or(self.default_list_size),
        )
    }

    /// A variable's value ([`variable`]), recorded as read.
    fn variable(&self, name: &Name) -> Option<ConstValue> {
        let value = variable(self.variables, self.definitions, name).cloned();
        let mut read = self.read.borrow_mut();
        if !read.iter().any(|(known, _)| known == name) {
            read.push((name.clone(), value.clone()));
        }
        value
    }

    /// Whether `@skip`/`@include` keep a selection (unknown or unresolved conditions keep it).
    fn included(&self, directives: &[Positioned<Directive>]) -> bool {
        directives.iter().all(|directive| {
            let condition = directive.node.get_argument("if").and_then(|value| {
                match value.node.clone().into_const_with(|name| self.variable(&name).ok_or(())) {
                    Ok(ConstValue::Boolean(condition)) => Some(condition),
                    _ => None,
                }
            });
            !matches!(
                (directive.node.name.node.as_str(), condition),
                ("skip", Some(true)) | ("include", Some(false))
            )
        })
    }
}

/// A size from an argument's value: a negative number is 0; anything not a number is unknown.
fn size_of(value: &ConstValue) -> Option<u64> {
    match value {
        ConstValue::Number(number) => number
            .as_u64()
            .or_else(|| number.as_i64().map(|_| 0))
            .or_else(|| number.as_f64().map(|f| f.max(0.0) as u64)),
        _ => None,
    }
}

fn declared_list_size(parent: &str, field: &str) -> Option<u64> {
    LIST_SIZES.iter().find(|(ty, name, _)| *ty == parent && *name == field).map(|(_, _, size)| *size)
}
