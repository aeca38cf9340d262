//! What each contract operation touches in a schema: the schema coordinates of the types,
//! fields, arguments, input fields, enum values and directives it uses, found by walking the
//! operation (through fragments, inline fragments, interfaces and unions, variables' input
//! types recursively, and literal input values).

use std::collections::{BTreeSet, HashSet};
use std::fmt::{self, Write as _};
use std::rc::Rc;

use apollo_compiler::collections::HashSet as FastSet;

use apollo_compiler::ast::{self, OperationType as AstOperationType, Value};
use apollo_compiler::collections::HashMap;
use apollo_compiler::parser::SourceSpan;
use apollo_compiler::{Name, Node};
use serde::Serialize;

use crate::contract::{Contract, OperationType};
use crate::model::{CompactSchema, Implementers, InputDef, Kind, item_type};
use crate::problem::{Problem, Severity};

/// Bit flags saying how a coordinate is used.
pub(crate) mod mask {
    /// Reached as the output type of a selected field, or a field selected on its type.
    pub(crate) const OUTPUT: u8 = 1;
    /// Sent by the client: a variable's input type (recursively), an argument, an input field,
    /// an enum value.
    pub(crate) const INPUT: u8 = 2;
    /// Named in a type condition (`... on T`, `fragment F on T`).
    pub(crate) const CONDITION: u8 = 4;
    /// The type of a literal value written in the operation.
    pub(crate) const LITERAL: u8 = 8;
    /// A directive (or its argument, or its location) used in the operation.
    pub(crate) const DIRECTIVE: u8 = 16;
    /// Any use.
    pub(crate) const ANY: u8 = 0xff;
}

/// One use of a coordinate: how, and where first (per way of use).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Use {
    pub(crate) mask: u8,
    /// First span for each mask bit (bit `i` → `spans[i]`).
    spans: [Option<SourceSpan>; 5],
}

impl Use {
    fn new(mask: u8, span: Option<SourceSpan>) -> Use {
        let mut u = Use { mask: 0, spans: [None; 5] };
        u.add(mask, span);
        u
    }

    fn add(&mut self, mask: u8, span: Option<SourceSpan>) {
        self.mask |= mask;
        if span.is_some() {
            for (i, slot) in self.spans.iter_mut().enumerate() {
                if mask & (1 << i) != 0 && slot.is_none() {
                    *slot = span;
                }
            }
        }
    }

    fn merge(&mut self, other: &Use) {
        self.mask |= other.mask;
        for (slot, o) in self.spans.iter_mut().zip(other.spans) {
            if slot.is_none() {
                *slot = o;
            }
        }
    }

    /// The first span of a use matching `mask`.
    pub(crate) fn span(&self, mask: u8) -> Option<SourceSpan> {
        (0..5).filter(|i| mask & (1 << i) != 0).find_map(|i| self.spans[i])
    }
}

/// Coordinates an operation uses.
/// Interned coordinate strings, shared by the usages one collector builds.
#[derive(Debug, Default)]
pub(crate) struct Interner(FastSet<Rc<str>>);

impl Interner {
    fn get(&mut self, key: &str) -> Rc<str> {
        if let Some(k) = self.0.get(key) {
            return k.clone();
        }
        let k: Rc<str> = Rc::from(key);
        self.0.insert(k.clone());
        k
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Usage {
    map: HashMap<Rc<str>, Use>,
    /// Scratch buffer for keys built with [`Usage::add_fmt`].
    scratch: String,
    /// Whether something in the operation did not resolve in the schema (an unknown type,
    /// field, argument, fragment, enum value...).
    pub(crate) unresolved: bool,
}

impl Usage {
    fn with_capacity(n: usize) -> Usage {
        Usage { map: HashMap::with_capacity_and_hasher(n, Default::default()), ..Usage::default() }
    }

    fn add(&mut self, interner: &mut Interner, key: &str, mask: u8, span: Option<SourceSpan>) {
        if let Some(u) = self.map.get_mut(key) {
            u.add(mask, span);
        } else {
            self.map.insert(interner.get(key), Use::new(mask, span));
        }
    }

    /// Adds a key built from `args` (allocating only when the key is new).
    fn add_fmt(
        &mut self,
        interner: &mut Interner,
        args: fmt::Arguments<'_>,
        mask: u8,
        span: Option<SourceSpan>,
    ) {
        let mut key = std::mem::take(&mut self.scratch);
        key.clear();
        let _ = key.write_fmt(args);
        self.add(interner, &key, mask, span);
        self.scratch = key;
    }

    pub(crate) fn merge(&mut self, other: &Usage) {
        self.unresolved |= other.unresolved;
        for (k, u) in &other.map {
            if let Some(mine) = self.map.get_mut(&**k) {
                mine.merge(u);
            } else {
                self.map.insert(k.clone(), *u);
            }
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Use> {
        self.map.get(key)
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(|k| &**k)
    }
}

/// Which usage a change touches: a small boolean formula over usage keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Touch {
    /// Touches nothing.
    Never,
    /// The key is used with any of the mask bits.
    Key(String, u8),
    /// All of them.
    All(Vec<Touch>),
    /// Any of them.
    Any(Vec<Touch>),
}

impl Touch {
    pub(crate) fn key(key: impl Into<String>, mask: u8) -> Touch {
        Touch::Key(key.into(), mask)
    }

    /// Whether `usage` satisfies the formula.
    pub(crate) fn matches(&self, usage: &Usage) -> bool {
        match self {
            Touch::Never => false,
            Touch::Key(k, m) => usage.get(k).is_some_and(|u| u.mask & m != 0),
            Touch::All(v) => v.iter().all(|t| t.matches(usage)),
            Touch::Any(v) => v.iter().any(|t| t.matches(usage)),
        }
    }

    /// Where the first positive key that matches is used.
    pub(crate) fn site(&self, usage: &Usage) -> Option<SourceSpan> {
        match self {
            Touch::Never => None,
            Touch::Key(k, m) => usage.get(k).and_then(|u| u.span(*m)),
            Touch::All(v) | Touch::Any(v) => v.iter().find_map(|t| t.site(usage)),
        }
    }

    /// Keys at least one of which must be used for the formula to match (used to pre-filter
    /// operations with an index). `None` when the formula can match without any key.
    pub(crate) fn required_keys(&self) -> Option<Vec<&str>> {
        match self {
            Touch::Never => Some(Vec::new()),
            Touch::Key(k, _) => Some(vec![k.as_str()]),
            // Any positive conjunct is necessary; pick the first that is indexable.
            Touch::All(v) => v.iter().find_map(|t| t.required_keys()),
            Touch::Any(v) => {
                let mut out = Vec::new();
                for t in v {
                    out.extend(t.required_keys()?);
                }
                Some(out)
            }
        }
    }
}

/// The schema coordinates one contract operation uses in one schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationUsage {
    /// The component (first directory under the contract root; empty for top-level files).
    pub component: String,
    /// The operation name (`None` for an anonymous operation).
    pub operation: Option<String>,
    /// The operation kind.
    pub operation_type: OperationType,
    /// The contract file.
    pub file: String,
    /// Fields selected, as `Type.field` (for a field selected on an interface, also
    /// `Implementation.field` for every implementation).
    pub fields: BTreeSet<String>,
    /// Every coordinate used: types, fields, arguments (`Type.field(arg:)`), input fields,
    /// enum values, directives (`@name`, `@name(arg:)`).
    pub coordinates: BTreeSet<String>,
}

/// The coordinates each contract operation uses in `schema`, in contract order.
///
/// The gateway uses this for per-component reports (which fields a component reads).
pub fn operation_usage<S>(schema: &S, contract: &Contract) -> Vec<OperationUsage>
where
    S: AsRef<CompactSchema> + ?Sized,
{
    let mut c = Collector::new(schema.as_ref(), contract, false);
    contract
        .operations()
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let u = c.operation(i);
            let coordinates: BTreeSet<String> = u
                .keys()
                .filter(|k| !k.contains('#') && !k.starts_with("schema:"))
                .map(str::to_owned)
                .collect();
            let fields = u
                .map
                .iter()
                .filter(|(k, v)| v.mask & mask::OUTPUT != 0 && k.contains('.'))
                .map(|(k, _)| k.to_string())
                .collect();
            OperationUsage {
                component: op.component.clone(),
                operation: op.name.clone(),
                operation_type: op.operation_type,
                file: op.file.clone(),
                fields,
                coordinates,
            }
        })
        .collect()
}

/// The named type inside a printed type's list and non-null wrappers.
fn inner_named(ty: &str) -> &str {
    ty.trim_start_matches('[').trim_end_matches([']', '!'])
}

/// Walks contract operations against one schema (its compact model).
pub(crate) struct Collector<'a> {
    schema: &'a CompactSchema,
    contract: &'a Contract,
    /// Interface → (objects, interfaces) implementing it.
    implementers: &'a Implementers,
    fragments: HashMap<Name, Rc<Usage>>,
    in_progress: HashSet<Name>,
    input_closures: HashMap<&'a str, Rc<Vec<String>>>,
    interner: Interner,
    /// Deprecated usages, when collecting them.
    deprecations: Option<Vec<Problem>>,
    /// (file index, definition name) being walked, for deprecation messages.
    context: (usize, Option<String>),
    /// The variables of the operation being walked: name → (type is nullable, has a default).
    variables: HashMap<Name, (bool, bool)>,
    /// Whether a fragment is being walked: its usage is shared by every operation that spreads
    /// it, so its variables are judged without an operation (as possibly unset and nullable).
    in_fragment: bool,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(schema: &'a CompactSchema, contract: &'a Contract, deprecations: bool) -> Self {
        Collector {
            schema,
            contract,
            implementers: schema.implementers(),
            fragments: HashMap::default(),
            in_progress: HashSet::new(),
            input_closures: HashMap::default(),
            interner: Interner::default(),
            deprecations: deprecations.then(Vec::new),
            context: (0, None),
            variables: HashMap::default(),
            in_fragment: false,
        }
    }

    pub(crate) fn take_deprecations(&mut self) -> Vec<Problem> {
        self.deprecations.take().unwrap_or_default()
    }

    /// Usage of the contract's operation number `index`.
    pub(crate) fn operation(&mut self, index: usize) -> Usage {
        let mut u = Usage::with_capacity(128);
        let contract = self.contract;
        let Some(op) = contract.operations().get(index) else {
            return u;
        };
        let def = &op.node;
        self.context = (op.file_index, op.name.clone());
        self.variables = def
            .variables
            .iter()
            .map(|v| (v.name.clone(), (!v.ty.is_non_null(), v.default_value.is_some())))
            .collect();
        let span = def.name.as_ref().and_then(|n| n.location()).or(def.location());
        let kind = def.operation_type;
        u.add_fmt(&mut self.interner, format_args!("schema:{}", kind.name()), mask::OUTPUT, span);
        let schema = self.schema;
        let root = schema.root(kind).map(|r| schema.str(r.name));
        match root {
            Some(root) => u.add(&mut self.interner, root, mask::OUTPUT, span),
            None => u.unresolved = true,
        }
        for var in &def.variables {
            self.input_reach(&mut u, var.ty.inner_named_type(), var.location());
            if let Some(dv) = &var.default_value {
                self.value(&mut u, dv, &var.ty.to_string());
            }
            self.directives(&mut u, &var.directives, "VARIABLE_DEFINITION");
        }
        let loc = match kind {
            AstOperationType::Query => "QUERY",
            AstOperationType::Mutation => "MUTATION",
            AstOperationType::Subscription => "SUBSCRIPTION",
        };
        self.directives(&mut u, &def.directives, loc);
        self.selections(&mut u, root, &def.selection_set);
        // Kept for the whole check, one per operation: no spare capacity.
        u.map.shrink_to_fit();
        u.scratch = String::new();
        u
    }

    fn fragment(&mut self, name: &Name) -> Option<Rc<Usage>> {
        if let Some(u) = self.fragments.get(name) {
            return Some(u.clone());
        }
        if !self.in_progress.insert(name.clone()) {
            return None; // a cycle: invalid, reported by validation
        }
        let contract = self.contract;
        let (file_index, def) = contract.fragment(name)?;
        let saved = std::mem::replace(&mut self.context, (file_index, Some(name.to_string())));
        let saved_in_fragment = std::mem::replace(&mut self.in_fragment, true);
        let mut u = Usage::default();
        let tc = &def.type_condition;
        u.add(&mut self.interner, tc, mask::CONDITION, tc.location().or(def.location()));
        self.directives(&mut u, &def.directives, "FRAGMENT_DEFINITION");
        self.selections(&mut u, Some(tc.as_str()), &def.selection_set);
        self.context = saved;
        self.in_fragment = saved_in_fragment;
        self.in_progress.remove(name);
        let u = Rc::new(u);
        self.fragments.insert(name.clone(), u.clone());
        Some(u)
    }

    fn selections(&mut self, u: &mut Usage, parent: Option<&'a str>, sels: &'a [ast::Selection]) {
        for sel in sels {
            match sel {
                ast::Selection::Field(f) => self.field(u, parent, f),
                ast::Selection::FragmentSpread(s) => {
                    self.directives(u, &s.directives, "FRAGMENT_SPREAD");
                    match self.fragment(&s.fragment_name) {
                        Some(fu) => u.merge(&fu),
                        None => u.unresolved = true,
                    }
                }
                ast::Selection::InlineFragment(i) => {
                    self.directives(u, &i.directives, "INLINE_FRAGMENT");
                    let inner = match &i.type_condition {
                        Some(tc) => {
                            u.add(&mut self.interner, tc, mask::CONDITION, tc.location().or(i.location()));
                            u.unresolved |= self.schema.type_named(tc).is_none();
                            Some(tc.as_str())
                        }
                        None => parent,
                    };
                    self.selections(u, inner, &i.selection_set);
                }
            }
        }
    }

    fn field(&mut self, u: &mut Usage, parent: Option<&'a str>, f: &'a Node<ast::Field>) {
        self.directives(u, &f.directives, "FIELD");
        let name = f.name.as_str();
        if name.starts_with("__") {
            return; // __typename, __schema, __type: introspection, no schema coordinate
        }
        let Some(parent) = parent else {
            u.unresolved = true;
            self.selections(u, None, &f.selection_set);
            return;
        };
        let span = f.name.location().or(f.location());
        let schema = self.schema;
        let parent_ty = schema.type_named(parent);
        let def = parent_ty.and_then(|t| schema.field(t, name));
        // Implementations of an interface field are selected too.
        let mut impls: Vec<&'a str> = Vec::new();
        if let Some(pt) = parent_ty.filter(|t| t.kind == Kind::Interface)
            && let Some((objects, interfaces)) = self.implementers.get(&pt.name)
        {
            for &t in objects.iter().chain(interfaces) {
                let t = schema.str(t);
                if schema.type_named(t).and_then(|ty| schema.field(ty, name)).is_some() {
                    impls.push(t);
                }
            }
        }
        for t in &impls {
            u.add_fmt(&mut self.interner, format_args!("{t}.{name}"), mask::OUTPUT, span);
        }
        if let Some(reason) = def.and_then(|d| d.deprecation) {
            self.deprecated(
                "DEPRECATED_FIELD",
                format!("field `{parent}.{name}` is deprecated: {}", schema.str(reason)),
                span,
            );
        }
        for arg in &f.arguments {
            let arg_span = arg.name.location().or(arg.location());
            for t in &impls {
                u.add_fmt(
                    &mut self.interner,
                    format_args!("{t}.{name}({}:)", arg.name),
                    mask::INPUT,
                    arg_span,
                );
            }
            if let Some(arg_def) = def.and_then(|d| argument(schema, schema.args(d.args), &arg.name)) {
                if let Some(reason) = arg_def.deprecation {
                    self.deprecated(
                        "DEPRECATED_ARGUMENT",
                        format!(
                            "argument `{parent}.{name}({}:)` is deprecated: {}",
                            arg.name,
                            schema.str(reason)
                        ),
                        arg_span,
                    );
                }
                self.value(u, &arg.value, schema.str(arg_def.ty));
            } else {
                u.unresolved = true;
            }
            u.add_fmt(
                &mut self.interner,
                format_args!("{parent}.{name}({}:)", arg.name),
                mask::INPUT,
                arg_span,
            );
        }
        if let Some(def) = def {
            let owner = format!("{parent}.{name}");
            self.unset_arguments(u, &owner, schema.args(def.args), &f.arguments, mask::INPUT, span);
        }
        for t in &impls {
            let impl_def = schema.type_named(t).and_then(|ty| schema.field(ty, name));
            if let Some(impl_def) = impl_def {
                let owner = format!("{t}.{name}");
                self.unset_arguments(u, &owner, schema.args(impl_def.args), &f.arguments, mask::INPUT, span);
            }
        }
        u.add_fmt(&mut self.interner, format_args!("{parent}.{name}"), mask::OUTPUT, span);
        match def {
            Some(def) => {
                let ty = schema.str(def.named);
                u.add(&mut self.interner, ty, mask::OUTPUT, span);
                self.selections(u, Some(ty), &f.selection_set);
            }
            None => {
                u.unresolved = true;
                self.selections(u, None, &f.selection_set)
            }
        }
    }

    fn directives(&mut self, u: &mut Usage, list: &ast::DirectiveList, location: &str) {
        let schema = self.schema;
        for (i, d) in list.iter().enumerate() {
            let span = d.name.location().or(d.location());
            let dn = &d.name;
            if list.iter().take(i).any(|prev| prev.name == d.name) {
                u.add_fmt(&mut self.interner, format_args!("@{dn}#repeated"), mask::DIRECTIVE, span);
            }
            u.add_fmt(&mut self.interner, format_args!("@{dn}#{location}"), mask::DIRECTIVE, span);
            let def = schema.directive_named(dn);
            for arg in &d.arguments {
                let arg_span = arg.name.location().or(arg.location());
                u.add_fmt(
                    &mut self.interner,
                    format_args!("@{dn}({}:)", arg.name),
                    mask::DIRECTIVE,
                    arg_span,
                );
                if let Some(arg_def) = def.and_then(|d| argument(schema, schema.args(d.args), &arg.name)) {
                    self.value(u, &arg.value, schema.str(arg_def.ty));
                }
            }
            if let Some(def) = def {
                let owner = format!("@{dn}");
                self.unset_arguments(u, &owner, schema.args(def.args), &d.arguments, mask::DIRECTIVE, span);
            }
            u.add_fmt(&mut self.interner, format_args!("@{dn}"), mask::DIRECTIVE, span);
        }
    }

    /// Marks a variable's input type and everything a client may send through it.
    fn input_reach(&mut self, u: &mut Usage, named: &'a str, span: Option<SourceSpan>) {
        let keys = match self.input_closures.get(named) {
            Some(k) => k.clone(),
            None => {
                let k = Rc::new(self.input_closure(named));
                self.input_closures.insert(named, k.clone());
                k
            }
        };
        for k in keys.iter() {
            u.add(&mut self.interner, k, mask::INPUT, span);
        }
    }

    fn input_closure(&self, named: &'a str) -> Vec<String> {
        let schema = self.schema;
        let mut out = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack = vec![named];
        seen.insert(named);
        while let Some(t) = stack.pop() {
            out.push(t.to_string());
            if let Some(io) = schema.type_named(t) {
                for fd in schema.input_fields_of(io) {
                    out.push(format!("{t}.{}", schema.str(fd.name)));
                    let nt = schema.str(fd.named);
                    if seen.insert(nt) {
                        stack.push(nt);
                    }
                }
            }
        }
        out
    }

    /// Marks what a literal value uses, given the type expected at its position (as printed).
    fn value(&mut self, u: &mut Usage, v: &Node<Value>, ty: &str) {
        let schema = self.schema;
        let named = inner_named(ty);
        let span = v.location();
        match v.as_ref() {
            Value::Variable(_) | Value::Null => {}
            Value::List(items) => {
                let item_ty = item_type(ty);
                for it in items {
                    self.value(u, it, item_ty);
                }
            }
            Value::Object(fields) => {
                u.add(&mut self.interner, named, mask::LITERAL, span);
                let io = schema.type_named(named).filter(|t| t.kind == Kind::InputObject);
                if let Some(io) = io {
                    for fd in schema.input_fields_of(io) {
                        let fname = schema.str(fd.name);
                        let unset = match fields.iter().find(|(n, _)| n.as_str() == fname) {
                            None => true,
                            Some((_, fv)) => self.may_be_unset(fv),
                        };
                        if unset {
                            u.add_fmt(
                                &mut self.interner,
                                format_args!("{named}.{fname}#unset"),
                                mask::LITERAL,
                                span,
                            );
                        }
                    }
                }
                // What `@oneOf` would refuse: not exactly one field, or a null or nullable value.
                if fields.len() != 1 || fields.iter().any(|(_, fv)| self.not_one_of_value(fv)) {
                    u.add_fmt(&mut self.interner, format_args!("{named}#not-one-of"), mask::LITERAL, span);
                }
                for (fname, fv) in fields {
                    let fspan = fname.location().or(span);
                    if let Some(fd) = io.and_then(|io| schema.input_field(io, fname)) {
                        if let Some(reason) = fd.deprecation {
                            self.deprecated(
                                "DEPRECATED_INPUT_FIELD",
                                format!(
                                    "input field `{named}.{fname}` is deprecated: {}",
                                    schema.str(reason)
                                ),
                                fspan,
                            );
                        }
                        self.value(u, fv, schema.str(fd.ty));
                    } else {
                        u.unresolved = true;
                    }
                    u.add_fmt(&mut self.interner, format_args!("{named}.{fname}"), mask::INPUT, fspan);
                }
            }
            Value::Enum(val) => {
                u.add(&mut self.interner, named, mask::LITERAL, span);
                let def = schema.type_named(named).and_then(|e| schema.value(e, val));
                match def.and_then(|vd| vd.deprecation) {
                    Some(reason) => self.deprecated(
                        "DEPRECATED_ENUM_VALUE",
                        format!("enum value `{named}.{val}` is deprecated: {}", schema.str(reason)),
                        span,
                    ),
                    None => u.unresolved |= def.is_none(),
                }
                u.add_fmt(&mut self.interner, format_args!("{named}.{val}"), mask::INPUT, span);
            }
            _ => u.add(&mut self.interner, named, mask::LITERAL, span),
        }
    }
    /// Whether the value at an argument or input-field position may leave it unset at run
    /// time: a variable of a nullable type with no default may be omitted by the client (then
    /// the position takes its default, or is missing). Inside a fragment the operation is not
    /// known: a variable counts as possibly unset.
    fn may_be_unset(&self, v: &Value) -> bool {
        match v {
            Value::Variable(name) => {
                self.in_fragment
                    || self.variables.get(name).is_none_or(|(nullable, default)| *nullable && !default)
            }
            _ => false,
        }
    }

    /// Whether a value breaks the rules of a `@oneOf` input field value: null, or a variable
    /// of a nullable type (inside a fragment, any variable).
    fn not_one_of_value(&self, v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Variable(name) => {
                self.in_fragment || self.variables.get(name).is_none_or(|(nullable, _)| *nullable)
            }
            _ => false,
        }
    }

    /// Marks the arguments of `definitions` that `given` leaves unset (omitted, or given a
    /// possibly unset variable) as `{owner}({arg}:)#unset`.
    fn unset_arguments(
        &mut self,
        u: &mut Usage,
        owner: &str,
        definitions: &[InputDef],
        given: &[Node<ast::Argument>],
        mask: u8,
        span: Option<SourceSpan>,
    ) {
        let schema = self.schema;
        for d in definitions {
            let d_name = schema.str(d.name);
            let unset = match given.iter().find(|a| a.name == d_name) {
                None => true,
                Some(a) => self.may_be_unset(&a.value),
            };
            if unset {
                u.add_fmt(&mut self.interner, format_args!("{owner}({d_name}:)#unset"), mask, span);
            }
        }
    }

    fn deprecated(&mut self, code: &str, message: String, span: Option<SourceSpan>) {
        let Some(sink) = self.deprecations.as_mut() else {
            return;
        };
        let (file_index, definition) = &self.context;
        let file = self.contract.file(*file_index);
        let pos = self.contract.line_col(span);
        sink.push(Problem {
            severity: Severity::Warning,
            code: code.to_owned(),
            message,
            file: file.map(|f| f.path.clone()).unwrap_or_default(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            component: file.map(|f| f.component.clone()),
            definition: definition.clone(),
        });
    }
}

/// The first argument named `name` of a field or directive (as apollo-compiler's
/// `argument_by_name`).
fn argument<'s>(schema: &CompactSchema, args: &'s [InputDef], name: &str) -> Option<&'s InputDef> {
    args.iter().find(|a| schema.str(a.name) == name)
}
