//! What each contract operation touches in a schema: the schema coordinates of the types,
//! fields, arguments, input fields, enum values and directives it uses, found by walking the
//! operation (through fragments, inline fragments, interfaces and unions, variables' input
//! types recursively, and literal input values).

use std::collections::{BTreeSet, HashSet};
use std::fmt::{self, Write as _};
use std::rc::Rc;

use apollo_compiler::collections::HashSet as FastSet;

use apollo_compiler::ast::{self, OperationType as AstOperationType, Type, Value};
use apollo_compiler::collections::HashMap;
use apollo_compiler::parser::SourceSpan;
use apollo_compiler::schema::{ExtendedType, Implementers};
use apollo_compiler::{Name, Node, Schema};
use serde::Serialize;

use crate::contract::{Contract, OperationType};
use crate::diff::deprecation_reason;
use crate::problem::{Problem, Severity};
use crate::sdl::Sdl;

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
pub fn operation_usage(schema: &Sdl, contract: &Contract) -> Vec<OperationUsage> {
    let mut c = Collector::new(schema.schema(), contract, false);
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

/// Walks contract operations against one schema.
pub(crate) struct Collector<'a> {
    schema: &'a Schema,
    contract: &'a Contract,
    implementers: HashMap<Name, Implementers>,
    fragments: HashMap<Name, Rc<Usage>>,
    in_progress: HashSet<Name>,
    input_closures: HashMap<Name, Rc<Vec<String>>>,
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
    pub(crate) fn new(schema: &'a Schema, contract: &'a Contract, deprecations: bool) -> Self {
        Collector {
            schema,
            contract,
            implementers: schema.implementers_map(),
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
        let Some(op) = self.contract.operations().get(index) else {
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
        let root = self.schema.root_operation(kind).cloned();
        match &root {
            Some(root) => u.add(&mut self.interner, root, mask::OUTPUT, span),
            None => u.unresolved = true,
        }
        for var in &def.variables {
            self.input_reach(&mut u, var.ty.inner_named_type(), var.location());
            if let Some(dv) = &var.default_value {
                self.value(&mut u, dv, &var.ty);
            }
            self.directives(&mut u, &var.directives, "VARIABLE_DEFINITION");
        }
        let loc = match kind {
            AstOperationType::Query => "QUERY",
            AstOperationType::Mutation => "MUTATION",
            AstOperationType::Subscription => "SUBSCRIPTION",
        };
        self.directives(&mut u, &def.directives, loc);
        self.selections(&mut u, root.as_ref(), &def.selection_set);
        u
    }

    fn fragment(&mut self, name: &Name) -> Option<Rc<Usage>> {
        if let Some(u) = self.fragments.get(name) {
            return Some(u.clone());
        }
        if !self.in_progress.insert(name.clone()) {
            return None; // a cycle: invalid, reported by validation
        }
        let (file_index, def) = self.contract.fragment(name)?;
        let saved = std::mem::replace(&mut self.context, (file_index, Some(name.to_string())));
        let saved_in_fragment = std::mem::replace(&mut self.in_fragment, true);
        let mut u = Usage::default();
        let tc = &def.type_condition;
        u.add(&mut self.interner, tc, mask::CONDITION, tc.location().or(def.location()));
        self.directives(&mut u, &def.directives, "FRAGMENT_DEFINITION");
        self.selections(&mut u, Some(tc), &def.selection_set);
        self.context = saved;
        self.in_fragment = saved_in_fragment;
        self.in_progress.remove(name);
        let u = Rc::new(u);
        self.fragments.insert(name.clone(), u.clone());
        Some(u)
    }

    fn selections(&mut self, u: &mut Usage, parent: Option<&Name>, sels: &[ast::Selection]) {
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
                            u.unresolved |= !self.schema.types.contains_key(tc);
                            Some(tc)
                        }
                        None => parent,
                    };
                    self.selections(u, inner, &i.selection_set);
                }
            }
        }
    }

    fn field(&mut self, u: &mut Usage, parent: Option<&Name>, f: &Node<ast::Field>) {
        self.directives(u, &f.directives, "FIELD");
        let name = &f.name;
        if name.starts_with("__") {
            return; // __typename, __schema, __type: introspection, no schema coordinate
        }
        let Some(parent) = parent else {
            u.unresolved = true;
            self.selections(u, None, &f.selection_set);
            return;
        };
        let span = name.location().or(f.location());
        let schema = self.schema;
        let (def, is_interface) = match schema.types.get(parent) {
            Some(ExtendedType::Object(o)) => (o.fields.get(name), false),
            Some(ExtendedType::Interface(i)) => (i.fields.get(name), true),
            _ => (None, false),
        };
        // Implementations of an interface field are selected too.
        let mut impls: Vec<Name> = Vec::new();
        if let Some(imp) = is_interface.then(|| self.implementers.get(parent)).flatten() {
            for t in imp.objects.iter().chain(imp.interfaces.iter()) {
                let has = match schema.types.get(t) {
                    Some(ExtendedType::Object(o)) => o.fields.contains_key(name),
                    Some(ExtendedType::Interface(i)) => i.fields.contains_key(name),
                    _ => false,
                };
                if has {
                    impls.push(t.clone());
                }
            }
        }
        for t in &impls {
            u.add_fmt(&mut self.interner, format_args!("{t}.{name}"), mask::OUTPUT, span);
        }
        if let Some(def) = def
            && let Some(reason) = deprecation_reason(&def.directives)
        {
            self.deprecated(
                "DEPRECATED_FIELD",
                format!("field `{parent}.{name}` is deprecated: {reason}"),
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
            if let Some(arg_def) = def.and_then(|d| d.argument_by_name(&arg.name)) {
                if let Some(reason) = deprecation_reason(&arg_def.directives) {
                    self.deprecated(
                        "DEPRECATED_ARGUMENT",
                        format!("argument `{parent}.{name}({}:)` is deprecated: {reason}", arg.name),
                        arg_span,
                    );
                }
                self.value(u, &arg.value, &arg_def.ty);
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
            self.unset_arguments(u, &owner, &def.arguments, &f.arguments, mask::INPUT, span);
        }
        for t in &impls {
            let impl_def = match schema.types.get(t) {
                Some(ExtendedType::Object(o)) => o.fields.get(name),
                Some(ExtendedType::Interface(i)) => i.fields.get(name),
                _ => None,
            };
            if let Some(impl_def) = impl_def {
                let owner = format!("{t}.{name}");
                self.unset_arguments(u, &owner, &impl_def.arguments, &f.arguments, mask::INPUT, span);
            }
        }
        u.add_fmt(&mut self.interner, format_args!("{parent}.{name}"), mask::OUTPUT, span);
        match def {
            Some(def) => {
                let ty = def.ty.inner_named_type();
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
        for (i, d) in list.iter().enumerate() {
            let span = d.name.location().or(d.location());
            let dn = &d.name;
            if list.iter().take(i).any(|prev| prev.name == d.name) {
                u.add_fmt(&mut self.interner, format_args!("@{dn}#repeated"), mask::DIRECTIVE, span);
            }
            u.add_fmt(&mut self.interner, format_args!("@{dn}#{location}"), mask::DIRECTIVE, span);
            let def = self.schema.directive_definitions.get(&d.name);
            for arg in &d.arguments {
                let arg_span = arg.name.location().or(arg.location());
                u.add_fmt(
                    &mut self.interner,
                    format_args!("@{dn}({}:)", arg.name),
                    mask::DIRECTIVE,
                    arg_span,
                );
                if let Some(arg_def) = def.and_then(|d| d.argument_by_name(&arg.name)) {
                    self.value(u, &arg.value, &arg_def.ty);
                }
            }
            if let Some(def) = def {
                let owner = format!("@{dn}");
                self.unset_arguments(u, &owner, &def.arguments, &d.arguments, mask::DIRECTIVE, span);
            }
            u.add_fmt(&mut self.interner, format_args!("@{dn}"), mask::DIRECTIVE, span);
        }
    }

    /// Marks a variable's input type and everything a client may send through it.
    fn input_reach(&mut self, u: &mut Usage, named: &Name, span: Option<SourceSpan>) {
        let keys = match self.input_closures.get(named) {
            Some(k) => k.clone(),
            None => {
                let k = Rc::new(self.input_closure(named));
                self.input_closures.insert(named.clone(), k.clone());
                k
            }
        };
        for k in keys.iter() {
            u.add(&mut self.interner, k, mask::INPUT, span);
        }
    }

    fn input_closure(&self, named: &Name) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen: HashSet<&Name> = HashSet::new();
        let mut stack = vec![named];
        seen.insert(named);
        while let Some(t) = stack.pop() {
            out.push(t.to_string());
            if let Some(ExtendedType::InputObject(io)) = self.schema.types.get(t) {
                for (f, fd) in &io.fields {
                    out.push(format!("{t}.{f}"));
                    let nt = fd.ty.inner_named_type();
                    if seen.insert(nt) {
                        stack.push(nt);
                    }
                }
            }
        }
        out
    }

    /// Marks what a literal value uses, given the type expected at its position.
    fn value(&mut self, u: &mut Usage, v: &Node<Value>, ty: &Type) {
        let named = ty.inner_named_type();
        let span = v.location();
        match v.as_ref() {
            Value::Variable(_) | Value::Null => {}
            Value::List(items) => {
                let item_ty = ty.item_type();
                for it in items {
                    self.value(u, it, item_ty);
                }
            }
            Value::Object(fields) => {
                u.add(&mut self.interner, named, mask::LITERAL, span);
                let schema = self.schema;
                let io = match schema.types.get(named) {
                    Some(ExtendedType::InputObject(io)) => Some(io),
                    _ => None,
                };
                if let Some(io) = io {
                    for (fname, _) in io.fields.iter() {
                        let unset = match fields.iter().find(|(n, _)| n == fname) {
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
                    if let Some(fd) = io.and_then(|io| io.fields.get(fname)) {
                        if let Some(reason) = deprecation_reason(&fd.directives) {
                            self.deprecated(
                                "DEPRECATED_INPUT_FIELD",
                                format!("input field `{named}.{fname}` is deprecated: {reason}"),
                                fspan,
                            );
                        }
                        self.value(u, fv, &fd.ty);
                    } else {
                        u.unresolved = true;
                    }
                    u.add_fmt(&mut self.interner, format_args!("{named}.{fname}"), mask::INPUT, fspan);
                }
            }
            Value::Enum(val) => {
                u.add(&mut self.interner, named, mask::LITERAL, span);
                let def = match self.schema.types.get(named) {
                    Some(ExtendedType::Enum(e)) => e.values.get(val),
                    _ => None,
                };
                match def.and_then(|vd| deprecation_reason(&vd.directives)) {
                    Some(reason) => self.deprecated(
                        "DEPRECATED_ENUM_VALUE",
                        format!("enum value `{named}.{val}` is deprecated: {reason}"),
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
        definitions: &[Node<ast::InputValueDefinition>],
        given: &[Node<ast::Argument>],
        mask: u8,
        span: Option<SourceSpan>,
    ) {
        for d in definitions {
            let unset = match given.iter().find(|a| a.name == d.name) {
                None => true,
                Some(a) => self.may_be_unset(&a.value),
            };
            if unset {
                u.add_fmt(&mut self.interner, format_args!("{owner}({}:)#unset", d.name), mask, span);
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
