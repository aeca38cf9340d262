//! Property: whatever the query's shape, every backend method that batches is called at most
//! once per level of the query at which some field needs it (issue 10: one call per backend
//! method per level).
//!
//! Queries are generated from the committed SDL (`schema/schema.graphql`): object fields, their
//! arguments (enum values from the schema, ids from the seeded rows by the type the argument
//! names), lists nested up to three deep, aliases, named fragments, inline fragments (typed,
//! untyped, and on the implementers of an interface). A generated query is a sequence of choices
//! (proptest shrinks it towards fewer and simpler choices), turned into text by [`Builder`].
//!
//! The oracle does not read the builder's tree: it parses the text the gateway received with
//! apollo-compiler, validated against the same SDL, expands its fragments, and for every field
//! that declares backend calls (`banyan_migration::banyan`: the resolvers' dependencies, and the
//! default side of migrated fields) notes its *call depth*: how many fields on its path,
//! itself included, call a backend. A method needed at `n` distinct call depths may be called at
//! most `n` times. (List-nesting depth alone cannot be the bound: `template { draft { updatedBy
//! } }` has no list, yet `updatedBy` cannot be asked before the draft has answered. With lists,
//! each list of a path that fetches is one more call depth.)
//!
//! Methods left out, because one call per key is what they are: the event store's `ListEvents`
//! and the monolith's legacy views (one template per call, `Batching::OneAtATime`), and
//! `GET /api/v1/templates/`, whose counter also counts the page of each workspace's templates
//! (the monolith lists one workspace per call).
//!
//! 48 cases by default (`PROPTEST_CASES` to change); `PROPTEST_RNG_SEED` replays a seed.

use std::collections::{BTreeMap, BTreeSet};

use apollo_compiler::executable::{Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use banyan_devstack::DevStackConfig;
use banyan_migration::banyan::{DEPENDENCIES, FIELDS};
use banyan_migration::declaration::{BackendCall, Batching};
use banyan_tests::{OWNER, TestStack, template_id, user_id, workspace_id};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::json;

/// Lists nested at most this deep on any path.
const MAX_LIST_DEPTH: usize = 3;
/// Selection sets nested at most this deep (the gateway's `limits.max_depth` is 12).
const MAX_DEPTH: usize = 9;

fn schema() -> Valid<Schema> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/schema.graphql");
    let sdl = std::fs::read_to_string(path).expect("the committed SDL");
    Schema::parse_and_validate(sdl, "schema.graphql").expect("the committed SDL is valid")
}

/// Global ids of seeded rows the owner can see (and one workspace they cannot), by the type an
/// argument names.
struct Ids {
    workspaces: Vec<String>,
    templates: Vec<String>,
    users: Vec<String>,
}

impl Ids {
    fn from_dataset(stack: &TestStack) -> Self {
        let dataset = stack.devstack.dataset();
        let mine: BTreeSet<u64> =
            dataset.memberships.iter().filter(|m| m.user == OWNER).map(|m| m.workspace).collect();
        let mut workspaces: Vec<String> = mine.iter().map(|&w| workspace_id(w)).collect();
        if let Some(other) = dataset.workspaces.iter().find(|w| !mine.contains(&w.id)) {
            workspaces.push(workspace_id(other.id));
        }
        let templates = dataset
            .templates
            .iter()
            .filter(|t| mine.contains(&t.workspace))
            .take(4)
            .map(|t| template_id(t.id))
            .collect();
        let users = dataset.users.iter().take(3).map(|u| user_id(u.id)).collect();
        Self { workspaces, templates, users }
    }

    /// The ids an argument of type `ID` takes, by the object type it names: the field's own
    /// type for `id`, else the argument's name without `Id` (`workspaceId`: `Workspace`).
    /// `Node` takes the node types whose id is one lookup (users, workspaces, templates).
    fn for_type(&self, type_name: &str) -> Vec<&str> {
        let pool: Vec<&String> = match type_name {
            "Workspace" => self.workspaces.iter().collect(),
            "Template" => self.templates.iter().collect(),
            "User" => self.users.iter().collect(),
            "Node" => self.users.iter().chain(&self.workspaces).chain(&self.templates).collect(),
            _ => Vec::new(),
        };
        pool.into_iter().map(String::as_str).collect()
    }
}

/// Turns a sequence of choices into a query: each choice picks among the options of one
/// decision, the first option being the simplest (so shrinking simplifies), and a spent
/// sequence keeps choosing the first.
struct Builder<'a> {
    schema: &'a Schema,
    ids: &'a Ids,
    choices: &'a [u32],
    next: usize,
    names: usize,
    fragments: Vec<String>,
}

impl Builder<'_> {
    fn pick(&mut self, options: usize) -> usize {
        let choice = self.choices.get(self.next).copied().unwrap_or(0) as usize;
        self.next += 1;
        if options == 0 { 0 } else { choice % options }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.names += 1;
        format!("{prefix}{}", self.names)
    }

    fn query(mut self) -> String {
        let body = self.selection("Query", 0, 0, false);
        let mut text = format!("query Generated {{ {body} }}");
        for fragment in &self.fragments {
            text.push('\n');
            text.push_str(fragment);
        }
        text
    }

    /// A selection set on `type_name` (an object or an interface): one to three items, each a
    /// field, or (below the root) an inline fragment or a named fragment of more fields.
    fn selection(&mut self, type_name: &str, depth: usize, lists: usize, in_fragment: bool) -> String {
        let count = 1 + self.pick(3);
        let mut items = Vec::with_capacity(count);
        let mut used = BTreeSet::new();
        for _ in 0..count {
            let wrap = if depth == 0 { 0 } else { self.pick(6) };
            let item = match wrap {
                // A named fragment on this type.
                4 => {
                    let name = self.fresh("F");
                    let body = self.selection(type_name, depth, lists, true);
                    self.fragments.push(format!("fragment {name} on {type_name} {{ {body} }}"));
                    format!("...{name}")
                }
                // An inline fragment: untyped, or on the type itself, or on an implementer.
                5 => {
                    let implementers: Vec<String> = self
                        .schema
                        .implementers_map()
                        .get(type_name)
                        .map(|i| i.objects.iter().map(ToString::to_string).collect())
                        .unwrap_or_default();
                    let on = match self.pick(2 + implementers.len()) {
                        0 => String::new(),
                        1 => type_name.to_owned(),
                        n => implementers[n - 2].clone(),
                    };
                    let target = if on.is_empty() { type_name.to_owned() } else { on.clone() };
                    let body = self.selection(&target, depth, lists, true);
                    let condition = if on.is_empty() { String::new() } else { format!(" on {on}") };
                    format!("...{condition} {{ {body} }}")
                }
                _ => self.field(type_name, depth, lists, in_fragment, &mut used),
            };
            items.push(item);
        }
        items.join(" ")
    }

    /// One field of `type_name`, with its arguments and, for an object, its selection.
    fn field(
        &mut self,
        type_name: &str,
        depth: usize,
        lists: usize,
        in_fragment: bool,
        used: &mut BTreeSet<String>,
    ) -> String {
        let fields = match self.schema.types.get(type_name) {
            Some(ExtendedType::Object(object)) => object.fields.values().map(|f| f.node.clone()).collect(),
            Some(ExtendedType::Interface(interface)) => {
                interface.fields.values().map(|f| f.node.clone()).collect()
            }
            _ => Vec::new(),
        };
        let usable: Vec<_> = fields
            .into_iter()
            .filter(|f| {
                let composite = self.is_composite(f.ty.inner_named_type());
                let list_ok = !f.ty.is_list() || lists < MAX_LIST_DEPTH;
                let depth_ok = !composite || depth + 1 < MAX_DEPTH;
                list_ok && depth_ok && self.arguments(&f.arguments, f.ty.inner_named_type(), true).is_some()
            })
            .collect();
        if usable.is_empty() {
            return "__typename".to_owned();
        }
        let field = usable[self.pick(usable.len())].clone();
        let returns = field.ty.inner_named_type().to_string();
        let composite = self.is_composite(&returns);
        let arguments = self.arguments(&field.arguments, &returns, false).unwrap_or_default();
        // A field with arguments or a selection gets a name of its own wherever it could meet
        // another of the same name (a second one in its set, or one in a fragment, merged into
        // its parent's set); elsewhere sometimes.
        let repeated = !used.insert(field.name.to_string());
        let must_alias = (in_fragment || repeated) && (composite || !arguments.is_empty());
        let alias =
            if must_alias || self.pick(4) == 3 { format!("{}: ", self.fresh("a")) } else { String::new() };
        let arguments =
            if arguments.is_empty() { String::new() } else { format!("({})", arguments.join(", ")) };
        let selection = if composite {
            let lists = lists + usize::from(field.ty.is_list());
            format!(" {{ {} }}", self.selection(&returns, depth + 1, lists, false))
        } else {
            String::new()
        };
        format!("{alias}{}{arguments}{selection}", field.name)
    }

    fn is_composite(&self, type_name: &str) -> bool {
        matches!(
            self.schema.types.get(type_name),
            Some(ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_))
        )
    }

    /// Values for `arguments` (`None` when a required one cannot be given). Required ones are
    /// always given; optional `Int`s and enums sometimes; other optional ones never (a cursor or
    /// a search cannot be made up). `dry` decides without consuming choices.
    fn arguments(
        &mut self,
        arguments: &[apollo_compiler::Node<apollo_compiler::ast::InputValueDefinition>],
        returns: &str,
        dry: bool,
    ) -> Option<Vec<String>> {
        let mut given = Vec::new();
        for argument in arguments {
            let required = argument.ty.is_non_null() && argument.default_value.is_none();
            let named = argument.ty.inner_named_type().as_str();
            if argument.ty.is_list() {
                if required {
                    return None;
                }
                continue;
            }
            let value = match (named, self.schema.types.get(named)) {
                ("ID", _) => {
                    let target = match argument.name.as_str() {
                        "id" => returns.to_owned(),
                        name => capitalized(name.strip_suffix("Id").unwrap_or(name)),
                    };
                    let pool = self.ids.for_type(&target);
                    if pool.is_empty() {
                        if required {
                            return None;
                        }
                        continue;
                    }
                    if dry {
                        Some(String::new())
                    } else {
                        let id = pool[self.pick(pool.len())];
                        Some(format!("{id:?}"))
                    }
                }
                // Small lists: the bound is about levels, not sizes.
                ("Int", _) if dry => Some(String::new()),
                ("Int", _) if required || self.pick(2) == 1 => Some((1 + self.pick(3)).to_string()),
                (_, Some(ExtendedType::Enum(enumeration))) if dry => {
                    (!enumeration.values.is_empty()).then(String::new)
                }
                (_, Some(ExtendedType::Enum(enumeration))) if required || self.pick(2) == 1 => {
                    let values: Vec<String> = enumeration.values.keys().map(ToString::to_string).collect();
                    Some(values[self.pick(values.len())].clone())
                }
                _ if required => return None,
                _ => None,
            };
            if let Some(value) = value {
                given.push(format!("{}: {value}", argument.name));
            }
        }
        Some(given)
    }
}

fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// What the declarations say a field calls, by schema coordinate: the resolvers' dependencies
/// and the default side of every migrated read.
fn declared_calls() -> BTreeMap<String, (Vec<BackendCall>, Batching)> {
    let mut calls: BTreeMap<String, (Vec<BackendCall>, Batching)> = DEPENDENCIES
        .iter()
        .map(|d| (d.coordinate.to_owned(), (d.calls.to_vec(), Batching::Batched)))
        .collect();
    for field in FIELDS {
        let side = field.implementation(field.default_backend);
        calls.insert(field.key.to_owned(), (side.calls.to_vec(), side.batching));
    }
    calls
}

/// Arguments a method takes one value of per call: `GetTemplateStats` counts over one window,
/// so each window asked for at a level is a call of its own.
const ONE_CALL_PER_VALUE: &[(&str, &str)] = &[("Template.stats", "window")];

/// For each batching method, the call depths at which the query's fields need it (with the value
/// of an argument the method takes one of per call).
struct Levels {
    by_method: BTreeMap<&'static str, BTreeSet<(usize, String)>>,
    per_key: BTreeSet<&'static str>,
    list_depth: usize,
}

fn levels(schema: &Valid<Schema>, query: &str) -> Result<Levels, String> {
    let document = ExecutableDocument::parse_and_validate(schema, query, "generated.graphql")
        .map_err(|errors| format!("the generated query is invalid: {errors}"))?;
    let operation = document.operations.get(None).map_err(|_| "one operation".to_owned())?;
    let declared = declared_calls();
    let mut levels = Levels { by_method: BTreeMap::new(), per_key: BTreeSet::new(), list_depth: 0 };
    walk(&document, &declared, &operation.selection_set, 0, 0, &mut levels);
    Ok(levels)
}

fn walk(
    document: &ExecutableDocument,
    declared: &BTreeMap<String, (Vec<BackendCall>, Batching)>,
    set: &SelectionSet,
    call_depth: usize,
    list_depth: usize,
    levels: &mut Levels,
) {
    for selection in &set.selections {
        match selection {
            Selection::Field(field) => {
                let coordinate = format!("{}.{}", set.ty, field.name);
                let list_depth = list_depth + usize::from(field.definition.ty.is_list());
                levels.list_depth = levels.list_depth.max(list_depth);
                let mut depth = call_depth;
                if let Some((calls, batching)) = declared.get(&coordinate) {
                    depth += 1;
                    let per_value = ONE_CALL_PER_VALUE
                        .iter()
                        .find(|(c, _)| *c == coordinate)
                        .map(|(_, argument)| argument_value(field, argument))
                        .unwrap_or_default();
                    for call in calls {
                        match batching {
                            Batching::Batched => {
                                levels
                                    .by_method
                                    .entry(call.name)
                                    .or_default()
                                    .insert((depth, per_value.clone()));
                            }
                            Batching::OneAtATime => {
                                levels.per_key.insert(call.name);
                            }
                        }
                    }
                }
                walk(document, declared, &field.selection_set, depth, list_depth, levels);
            }
            Selection::InlineFragment(inline) => {
                walk(document, declared, &inline.selection_set, call_depth, list_depth, levels);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.fragment_name) {
                    walk(document, declared, &fragment.selection_set, call_depth, list_depth, levels);
                }
            }
        }
    }
}

/// The value `field` gives `argument`, or the argument's default.
fn argument_value(field: &apollo_compiler::executable::Field, argument: &str) -> String {
    field
        .arguments
        .iter()
        .find(|a| a.name == argument)
        .map(|a| a.value.to_string())
        .or_else(|| {
            let definition = field.definition.arguments.iter().find(|a| a.name == argument)?;
            definition.default_value.as_ref().map(ToString::to_string)
        })
        .unwrap_or_default()
}

/// Counted under one name with the pages of each workspace's templates (one call per workspace).
const PER_PARENT: &[&str] = &["GET /api/v1/templates/"];

#[test]
fn every_batching_method_is_called_at_most_once_per_level_of_any_query() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .expect("a runtime");
    // The limits are not under test here: a generated query may select wide.
    let stack = runtime.block_on(TestStack::start_with(DevStackConfig::default(), |config| {
        config.limits.max_cost = 10_000_000;
        config.limits.max_complexity = 100_000;
        config.limits.max_backend_calls = 10_000;
    }));
    runtime.block_on(stack.graphql("{ __typename }", json!({})));
    let schema = schema();
    let ids = Ids::from_dataset(&stack);
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 2048, ..Config::default() };
    // CI runs one fixed sequence of queries, so a failure is reproducible and a pass means the
    // same thing every time; `BATCHING_PROPTEST_RANDOM=1` explores new ones (it found the shape
    // of `a_page_shared_with_an_earlier_level_does_not_split_the_next_level`).
    let mut runner = if std::env::var_os("BATCHING_PROPTEST_RANDOM").is_some() {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    };
    let choices = proptest::collection::vec(0u32..64, 0..160);

    let outcome = runner.run(&choices, |choices| {
        let builder = Builder {
            schema: &schema,
            ids: &ids,
            choices: &choices,
            next: 0,
            names: 0,
            fragments: Vec::new(),
        };
        let query = builder.query();
        let levels = levels(&schema, &query).map_err(TestCaseError::fail)?;
        stack.devstack.calls().reset();
        let response = runtime.block_on(stack.graphql(&query, json!({})));
        if response.body.get("errors").is_some() || response.status != 200 {
            return Err(TestCaseError::fail(format!("{query}\nanswered with errors: {:?}", response.body)));
        }
        let calls = stack.devstack.calls().snapshot();
        for (method, count) in &calls {
            if PER_PARENT.contains(&method.as_str()) || levels.per_key.contains(method.as_str()) {
                continue;
            }
            let bound = levels.by_method.get(method.as_str()).map_or(0, BTreeSet::len) as u64;
            if *count > bound {
                return Err(TestCaseError::fail(format!(
                    "{query}\n`{method}` was called {count} times; its fields need it at {bound} \
                     levels ({:?}); lists nest {} deep. All calls: {calls:?}",
                    levels.by_method.get(method.as_str()),
                    levels.list_depth
                )));
            }
        }
        Ok(())
    });
    runtime.block_on(stack.stop());
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// Found by the property test with a random seed: the root `templates(workspaceId: W1)` asks for
/// W1's first page at the first level; `workspaces { templates }` asks for the same page (shared,
/// one call) and W2's at the second. W1's page was known a level early, so its templates' stats
/// went out in one round and W2's in the next: two `GetTemplateStats` calls where the query needs
/// one level. A load that asks nothing new at its level now waits for the level's dispatch
/// (`BatchScheduler`'s deferred loads), so both pages' stats go out together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_shared_with_an_earlier_level_does_not_split_the_next_level() {
    let stack = TestStack::start().await;
    let dataset = stack.devstack.dataset();
    let first_workspace = dataset.workspaces_of(banyan_tests::OWNER)[0];
    let query = format!(
        "{{ workspaces {{ templates(first: 2) {{ nodes {{ stats(window: LAST_24_HOURS) {{ sent }} }} }} }}
           templates(workspaceId: \"{}\", first: 2) {{ pageInfo {{ hasNextPage }} }} }}",
        banyan_tests::workspace_id(first_workspace)
    );
    stack.devstack.calls().reset();
    let response = stack.graphql(&query, json!({})).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    let calls = stack.devstack.calls().snapshot();
    let stats = calls.iter().find(|(method, _)| method.as_str() == "EventService/GetTemplateStats");
    assert_eq!(stats.map(|(_, n)| *n), Some(1), "all calls: {calls:?}");
    stack.stop().await;
}
