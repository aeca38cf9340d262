//! What each contract operation touches in a schema: the schema coordinates of the types,
//! fields, arguments, input fields, enum values and directives it uses, found by walking the
//! operation (through fragments, inline fragments, interfaces and unions, variables' input
//! types recursively, and literal input values).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use apollo_compiler::ast::{self, OperationType as AstOperationType, Type, Value};
use apollo_compiler::collections::HashMap as ApolloHashMap;
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
#[derive(Debug, Default, Clone)]
pub(crate) struct Usage {
    map: HashMap<String, Use>,
}

impl Usage {
    fn add(&mut self, key: &str, mask: u8, span: Option<SourceSpan>) {
        if let Some(u) = self.map.get_mut(key) {
            u.add(mask, span);
        } else {
            self.map.insert(key.to_owned(), Use::new(mask, span));
        }
    }

    fn add_owned(&mut self, key: String, mask: u8, span: Option<SourceSpan>) {
        match self.map.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().add(mask, span),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Use::new(mask, span));
            }
        }
    }

    pub(crate) fn merge(&mut self, other: &Usage) {
        for (k, u) in &other.map {
            if let Some(mine) = self.map.get_mut(k.as_str()) {
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
        self.map.keys().map(|k| k.as_str())
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
    /// Not this one.
    Not(Box<Touch>),
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
            Touch::Not(t) => !t.matches(usage),
        }
    }

    /// Where the first positive key that matches is used.
    pub(crate) fn site(&self, usage: &Usage) -> Option<SourceSpan> {
        match self {
            Touch::Never | Touch::Not(_) => None,
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
            Touch::Not(_) => None,
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
                .map(|(k, _)| k.clone())
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
    implementers: ApolloHashMap<Name, Implementers>,
    fragments: HashMap<Name, Rc<Usage>>,
    in_progress: HashSet<Name>,
    input_closures: HashMap<Name, Rc<Vec<String>>>,
    /// Deprecated usages, when collecting them.
    deprecations: Option<Vec<Problem>>,
    /// (file index, definition name) being walked, for deprecation messages.
    context: (usize, Option<String>),
}

impl<'a> Collector<'a> {
    pub(crate) fn new(schema: &'a Schema, contract: &'a Contract, deprecations: bool) -> Self {
        Collector {
            schema,
            contract,
            implementers: schema.implementers_map(),
            fragments: HashMap::new(),
            in_progress: HashSet::new(),
            input_closures: HashMap::new(),
            deprecations: deprecations.then(Vec::new),
            context: (0, None),
        }
    }

    pub(crate) fn take_deprecations(&mut self) -> Vec<Problem> {
        self.deprecations.take().unwrap_or_default()
    }

    /// Usage of the contract's operation number `index`.
    pub(crate) fn operation(&mut self, index: usize) -> Usage {
        let mut u = Usage::default();
        let Some(op) = self.contract.operations().get(index) else {
            return u;
        };
        let def = &op.node;
        self.context = (op.file_index, op.name.clone());
        let span = def.name.as_ref().and_then(|n| n.location()).or(def.location());
        let kind = def.operation_type;
        u.add_owned(format!("schema:{}", kind.name()), mask::OUTPUT, span);
        let root = self.schema.root_operation(kind).cloned();
        if let Some(root) = &root {
            u.add(root, mask::OUTPUT, span);
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
        let mut u = Usage::default();
        let tc = &def.type_condition;
        u.add(tc, mask::CONDITION, tc.location().or(def.location()));
        self.directives(&mut u, &def.directives, "FRAGMENT_DEFINITION");
        self.selections(&mut u, Some(tc), &def.selection_set);
        self.context = saved;
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
                    if let Some(fu) = self.fragment(&s.fragment_name) {
                        u.merge(&fu);
                    }
                }
                ast::Selection::InlineFragment(i) => {
                    self.directives(u, &i.directives, "INLINE_FRAGMENT");
                    let inner = match &i.type_condition {
                        Some(tc) => {
                            u.add(tc, mask::CONDITION, tc.location().or(i.location()));
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
            self.selections(u, None, &f.selection_set);
            return;
        };
        let span = name.location().or(f.location());
        let coordinate = format!("{parent}.{name}");
        let schema = self.schema;
        let def = match schema.types.get(parent) {
            Some(ExtendedType::Object(o)) => o.fields.get(name),
            Some(ExtendedType::Interface(i)) => i.fields.get(name),
            _ => None,
        };
        // Implementations of an interface field are selected too.
        let mut impls: Vec<Name> = Vec::new();
        if let Some(imp) = self.implementers.get(parent) {
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
            u.add_owned(format!("{t}.{name}"), mask::OUTPUT, span);
        }
        if let Some(def) = def
            && let Some(reason) = deprecation_reason(&def.directives)
        {
            self.deprecated(
                "DEPRECATED_FIELD",
                format!("field `{coordinate}` is deprecated: {reason}"),
                span,
            );
        }
        for arg in &f.arguments {
            let arg_span = arg.name.location().or(arg.location());
            for t in &impls {
                u.add_owned(format!("{t}.{name}({}:)", arg.name), mask::INPUT, arg_span);
            }
            let arg_coord = format!("{coordinate}({}:)", arg.name);
            if let Some(arg_def) = def.and_then(|d| d.argument_by_name(&arg.name)) {
                if let Some(reason) = deprecation_reason(&arg_def.directives) {
                    self.deprecated(
                        "DEPRECATED_ARGUMENT",
                        format!("argument `{arg_coord}` is deprecated: {reason}"),
                        arg_span,
                    );
                }
                self.value(u, &arg.value, &arg_def.ty);
            }
            u.add_owned(arg_coord, mask::INPUT, arg_span);
        }
        u.add_owned(coordinate, mask::OUTPUT, span);
        match def {
            Some(def) => {
                let ty = def.ty.inner_named_type();
                u.add(ty, mask::OUTPUT, span);
                self.selections(u, Some(ty), &f.selection_set);
            }
            None => self.selections(u, None, &f.selection_set),
        }
    }

    fn directives(&mut self, u: &mut Usage, list: &ast::DirectiveList, location: &str) {
        for (i, d) in list.iter().enumerate() {
            let span = d.name.location().or(d.location());
            let coordinate = format!("@{}", d.name);
            if list.iter().take(i).any(|prev| prev.name == d.name) {
                u.add_owned(format!("{coordinate}#repeated"), mask::DIRECTIVE, span);
            }
            u.add_owned(format!("{coordinate}#{location}"), mask::DIRECTIVE, span);
            let def = self.schema.directive_definitions.get(&d.name);
            for arg in &d.arguments {
                let arg_span = arg.name.location().or(arg.location());
                u.add_owned(format!("{coordinate}({}:)", arg.name), mask::DIRECTIVE, arg_span);
                if let Some(arg_def) = def.and_then(|d| d.argument_by_name(&arg.name)) {
                    self.value(u, &arg.value, &arg_def.ty);
                }
            }
            u.add_owned(coordinate, mask::DIRECTIVE, span);
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
            u.add(k, mask::INPUT, span);
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
                u.add(named, mask::LITERAL, span);
                let schema = self.schema;
                let io = match schema.types.get(named) {
                    Some(ExtendedType::InputObject(io)) => Some(io),
                    _ => None,
                };
                for (fname, fv) in fields {
                    let fspan = fname.location().or(span);
                    let coordinate = format!("{named}.{fname}");
                    if let Some(fd) = io.and_then(|io| io.fields.get(fname)) {
                        if let Some(reason) = deprecation_reason(&fd.directives) {
                            self.deprecated(
                                "DEPRECATED_INPUT_FIELD",
                                format!("input field `{coordinate}` is deprecated: {reason}"),
                                fspan,
                            );
                        }
                        self.value(u, fv, &fd.ty);
                    }
                    u.add_owned(coordinate, mask::INPUT, fspan);
                }
            }
            Value::Enum(val) => {
                u.add(named, mask::LITERAL, span);
                let coordinate = format!("{named}.{val}");
                if let Some(ExtendedType::Enum(e)) = self.schema.types.get(named)
                    && let Some(vd) = e.values.get(val)
                    && let Some(reason) = deprecation_reason(&vd.directives)
                {
                    self.deprecated(
                        "DEPRECATED_ENUM_VALUE",
                        format!("enum value `{coordinate}` is deprecated: {reason}"),
                        span,
                    );
                }
                u.add_owned(coordinate, mask::INPUT, span);
            }
            _ => u.add(named, mask::LITERAL, span),
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
