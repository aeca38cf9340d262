//! Diff of two schemas and classification of every change as breaking, dangerous or safe.
//!
//! The change kinds and their levels follow graphql-js's `findBreakingChanges` /
//! `findDangerousChanges` (same machine names and levels where graphql-js has the kind), plus
//! kinds of Banyan's own where it judges differently or graphql-js is silent: the safe kinds
//! (additions, descriptions, deprecations, type changes that are compatible for clients), an
//! argument or input field that becomes required by losing its default (breaking), and
//! `@oneOf` added (breaking) or removed (safe). schema/README.md lists them.
//!
//! Type changes depend on position:
//!
//! * output fields (object and interface fields): a change is safe when every value the new
//!   type can produce is a value the old type promised; adding non-null (`T` → `T!`, `[T]` →
//!   `[T]!`, `[T]` → `[T!]`) is safe, removing it is breaking, any list wrapping change (`T` ↔
//!   `[T]`) or a different named type is breaking;
//! * input positions (arguments, input fields, directive arguments): a change is safe when
//!   every value a client could send before is still accepted; removing non-null is safe,
//!   adding it is breaking, any list wrapping change or a different named type is breaking.

use std::collections::HashSet;
use std::fmt;

use apollo_compiler::Name;
use apollo_compiler::ast::{self, DirectiveLocation, Type, Value};
use apollo_compiler::parser::SourceSpan;
use apollo_compiler::schema::{Component, ComponentName, ExtendedType, FieldDefinition};
use apollo_compiler::{Node, collections::IndexMap, collections::IndexSet};
use serde::Serialize;

use crate::sdl::{Sdl, is_one_of};
use crate::usage::{Touch, mask};

/// How a change affects clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Operations that were valid may become invalid or get values they cannot handle.
    Breaking,
    /// Operations stay valid but may observe different behaviour.
    Dangerous,
    /// No client can notice.
    Safe,
}

impl Level {
    /// `breaking`, `dangerous` or `safe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Breaking => "breaking",
            Level::Dangerous => "dangerous",
            Level::Safe => "safe",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! change_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal => $level:ident, )*) => {
        /// The kind of a change. Its [`as_str`](ChangeKind::as_str) name (also its JSON form) is
        /// stable; where graphql-js has the same kind, the name is graphql-js's.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        pub enum ChangeKind {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )*
        }

        impl ChangeKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [ChangeKind] = &[ $(ChangeKind::$variant,)* ];

            /// The stable machine name, e.g. `FIELD_REMOVED`.
            pub fn as_str(self) -> &'static str {
                match self { $(ChangeKind::$variant => $name,)* }
            }

            /// The level every change of this kind has.
            pub fn level(self) -> Level {
                match self { $(ChangeKind::$variant => Level::$level,)* }
            }
        }
    };
}

change_kinds! {
    /// A type was removed.
    TypeRemoved = "TYPE_REMOVED" => Breaking,
    /// A type changed kind (e.g. object → interface).
    TypeChangedKind = "TYPE_CHANGED_KIND" => Breaking,
    /// An object type was removed from a union.
    TypeRemovedFromUnion = "TYPE_REMOVED_FROM_UNION" => Breaking,
    /// An enum value was removed.
    ValueRemovedFromEnum = "VALUE_REMOVED_FROM_ENUM" => Breaking,
    /// A required (non-null, no default) input field was added to an input object.
    RequiredInputFieldAdded = "REQUIRED_INPUT_FIELD_ADDED" => Breaking,
    /// An object or interface type no longer implements an interface.
    ImplementedInterfaceRemoved = "IMPLEMENTED_INTERFACE_REMOVED" => Breaking,
    /// A field (output or input) was removed.
    FieldRemoved = "FIELD_REMOVED" => Breaking,
    /// A field's (output or input) type changed in a way clients can notice.
    FieldChangedKind = "FIELD_CHANGED_KIND" => Breaking,
    /// A required argument was added to a field.
    RequiredArgAdded = "REQUIRED_ARG_ADDED" => Breaking,
    /// An argument was removed from a field.
    ArgRemoved = "ARG_REMOVED" => Breaking,
    /// An argument's (field or directive) type changed in a way clients can notice.
    ArgChangedKind = "ARG_CHANGED_KIND" => Breaking,
    /// A directive was removed.
    DirectiveRemoved = "DIRECTIVE_REMOVED" => Breaking,
    /// An argument was removed from a directive.
    DirectiveArgRemoved = "DIRECTIVE_ARG_REMOVED" => Breaking,
    /// A required argument was added to a directive.
    RequiredDirectiveArgAdded = "REQUIRED_DIRECTIVE_ARG_ADDED" => Breaking,
    /// A directive is no longer repeatable.
    DirectiveRepeatableRemoved = "DIRECTIVE_REPEATABLE_REMOVED" => Breaking,
    /// A location was removed from a directive.
    DirectiveLocationRemoved = "DIRECTIVE_LOCATION_REMOVED" => Breaking,
    /// The root type of an operation kind changed or was removed. Not in graphql-js.
    RootOperationTypeChanged = "ROOT_OPERATION_TYPE_CHANGED" => Breaking,
    /// A non-null argument (field or directive) lost its default value: it is now required,
    /// and operations that omit it no longer validate. Not in graphql-js (which calls it
    /// `ARG_DEFAULT_VALUE_CHANGE`, dangerous).
    ArgBecameRequired = "ARG_BECAME_REQUIRED" => Breaking,
    /// A non-null input field lost its default value: it is now required. Not in graphql-js.
    InputFieldBecameRequired = "INPUT_FIELD_BECAME_REQUIRED" => Breaking,
    /// An existing input object type became `@oneOf`: values with no field, several fields or
    /// a null field are refused. Not in graphql-js.
    OneOfAdded = "ONE_OF_ADDED" => Breaking,
    /// A value was added to an enum.
    ValueAddedToEnum = "VALUE_ADDED_TO_ENUM" => Dangerous,
    /// An object type was added to a union.
    TypeAddedToUnion = "TYPE_ADDED_TO_UNION" => Dangerous,
    /// An optional input field was added to an input object.
    OptionalInputFieldAdded = "OPTIONAL_INPUT_FIELD_ADDED" => Dangerous,
    /// An optional argument was added to a field.
    OptionalArgAdded = "OPTIONAL_ARG_ADDED" => Dangerous,
    /// An object or interface type now implements another interface.
    ImplementedInterfaceAdded = "IMPLEMENTED_INTERFACE_ADDED" => Dangerous,
    /// An argument's (field or directive) default value changed, was added or was removed
    /// (and the argument did not become required).
    ArgDefaultValueChange = "ARG_DEFAULT_VALUE_CHANGE" => Dangerous,
    /// An input field's default value changed, was added or was removed (and the field did not
    /// become required). Not in graphql-js.
    InputFieldDefaultValueChange = "INPUT_FIELD_DEFAULT_VALUE_CHANGE" => Dangerous,
    /// A type was added.
    TypeAdded = "TYPE_ADDED" => Safe,
    /// An output field was added.
    FieldAdded = "FIELD_ADDED" => Safe,
    /// A directive was added.
    DirectiveAdded = "DIRECTIVE_ADDED" => Safe,
    /// An optional argument was added to a directive.
    DirectiveArgAdded = "DIRECTIVE_ARG_ADDED" => Safe,
    /// A location was added to a directive.
    DirectiveLocationAdded = "DIRECTIVE_LOCATION_ADDED" => Safe,
    /// A directive became repeatable.
    DirectiveRepeatableAdded = "DIRECTIVE_REPEATABLE_ADDED" => Safe,
    /// A description was added, changed or removed.
    DescriptionChanged = "DESCRIPTION_CHANGED" => Safe,
    /// A field, argument, input field or enum value was deprecated.
    DeprecationAdded = "DEPRECATION_ADDED" => Safe,
    /// A deprecation was lifted.
    DeprecationRemoved = "DEPRECATION_REMOVED" => Safe,
    /// A deprecation reason changed.
    DeprecationReasonChanged = "DEPRECATION_REASON_CHANGED" => Safe,
    /// A field's (output or input) type changed in a way no client can notice.
    FieldTypeChangedSafe = "FIELD_TYPE_CHANGED_SAFE" => Safe,
    /// An argument's type changed in a way no client can notice.
    ArgTypeChangedSafe = "ARG_TYPE_CHANGED_SAFE" => Safe,
    /// An input object type is no longer `@oneOf`: every value that had exactly one field is
    /// still accepted. Not in graphql-js.
    OneOfRemoved = "ONE_OF_REMOVED" => Safe,
    /// A field was added to a `@oneOf` input object: callers keep sending one of the old
    /// fields, and a oneOf field has no default, so nothing a caller sends changes meaning.
    /// (graphql-js reports it as `OPTIONAL_INPUT_FIELD_ADDED`, dangerous.) Not in graphql-js.
    OneOfInputFieldAdded = "ONE_OF_INPUT_FIELD_ADDED" => Safe,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the two schemas a position refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The old (base) schema.
    Old,
    /// The new (proposed) schema.
    New,
}

/// A position in one of the two SDL files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SdlPosition {
    /// The schema the position is in.
    pub side: Side,
    /// That schema's path label.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One difference between the old and the new schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// How it affects clients.
    pub level: Level,
    /// The stable kind.
    pub kind: ChangeKind,
    /// Schema coordinate of the changed element: `Type`, `Type.field`, `Type.field(arg:)`,
    /// `Enum.VALUE`, `Input.field`, `@directive`, `@directive(arg:)`.
    pub coordinate: String,
    /// One-line human description.
    pub message: String,
    /// What it means for an operation that the change touches.
    pub impact: String,
    /// Where the change is: in the NEW schema, or in the OLD schema for a removal.
    pub location: Option<SdlPosition>,
    /// For a change located in the OLD schema: the nearest surviving parent in the NEW schema
    /// (e.g. the type a field was removed from), to anchor annotations on the new file.
    pub anchor: Option<SdlPosition>,
    /// Which contract usage this change touches (internal).
    #[serde(skip)]
    pub(crate) touch: Touch,
}

/// Compares `old` with `new` and returns every change, sorted by level (breaking first), then
/// coordinate, then kind.
pub fn diff(old: &Sdl, new: &Sdl) -> Vec<Change> {
    let mut d = Differ { old, new, out: Vec::new() };
    d.schema_roots();
    d.types();
    d.directives();
    let mut out = d.out;
    out.sort_by(|a, b| {
        (a.level, &a.coordinate, a.kind, &a.message).cmp(&(b.level, &b.coordinate, b.kind, &b.message))
    });
    out
}

/// graphql-js's `isChangeSafeForObjectOrInterfaceField`.
pub(crate) fn safe_for_output(old: &Type, new: &Type) -> bool {
    match old {
        Type::Named(o) => matches!(new, Type::Named(n) | Type::NonNullNamed(n) if n == o),
        Type::NonNullNamed(o) => matches!(new, Type::NonNullNamed(n) if n == o),
        Type::List(o) => match new {
            Type::List(n) | Type::NonNullList(n) => safe_for_output(o, n),
            _ => false,
        },
        Type::NonNullList(o) => match new {
            Type::NonNullList(n) => safe_for_output(o, n),
            _ => false,
        },
    }
}

/// graphql-js's `isChangeSafeForInputObjectFieldOrFieldArg`.
pub(crate) fn safe_for_input(old: &Type, new: &Type) -> bool {
    match old {
        Type::Named(o) => matches!(new, Type::Named(n) if n == o),
        Type::NonNullNamed(o) => matches!(new, Type::Named(n) | Type::NonNullNamed(n) if n == o),
        Type::List(o) => match new {
            Type::List(n) => safe_for_input(o, n),
            _ => false,
        },
        Type::NonNullList(o) => match new {
            Type::List(n) | Type::NonNullList(n) => safe_for_input(o, n),
            _ => false,
        },
    }
}

/// The reason of an `@deprecated` directive, if the element is deprecated.
pub(crate) fn deprecation_reason(directives: &ast::DirectiveList) -> Option<String> {
    let d = directives.get("deprecated")?;
    Some(
        d.specified_argument_by_name("reason")
            .and_then(|v| v.as_str())
            .unwrap_or("No longer supported")
            .to_owned(),
    )
}

/// A canonical print of a value (object fields sorted), for default-value comparison.
fn canonical_value(v: &Value) -> String {
    match v {
        Value::Object(fields) => {
            let mut parts: Vec<String> =
                fields.iter().map(|(k, v)| format!("{k}: {}", canonical_value(v))).collect();
            parts.sort();
            format!("{{{}}}", parts.join(", "))
        }
        Value::List(items) => {
            format!("[{}]", items.iter().map(|v| canonical_value(v)).collect::<Vec<_>>().join(", "))
        }
        other => other.to_string(),
    }
}

fn kind_name(ty: &ExtendedType) -> &'static str {
    match ty {
        ExtendedType::Scalar(_) => "a scalar",
        ExtendedType::Object(_) => "an object type",
        ExtendedType::Interface(_) => "an interface type",
        ExtendedType::Union(_) => "a union type",
        ExtendedType::Enum(_) => "an enum type",
        ExtendedType::InputObject(_) => "an input object type",
    }
}

fn is_executable_location(loc: DirectiveLocation) -> bool {
    matches!(
        loc,
        DirectiveLocation::Query
            | DirectiveLocation::Mutation
            | DirectiveLocation::Subscription
            | DirectiveLocation::Field
            | DirectiveLocation::FragmentDefinition
            | DirectiveLocation::FragmentSpread
            | DirectiveLocation::InlineFragment
            | DirectiveLocation::VariableDefinition
    )
}

fn show_default(v: Option<&Node<Value>>) -> String {
    match v {
        Some(v) => format!("`{}`", canonical_value(v)),
        None => "none".to_owned(),
    }
}

/// Where an argument list belongs: a field (`Type.field`) or a directive (`@name`).
#[derive(Clone, Copy)]
enum ArgOwner<'a> {
    Field(&'a str),
    Directive(&'a str),
}

impl ArgOwner<'_> {
    fn coordinate(&self) -> &str {
        match self {
            ArgOwner::Field(c) | ArgOwner::Directive(c) => c,
        }
    }
}

struct Differ<'a> {
    old: &'a Sdl,
    new: &'a Sdl,
    out: Vec<Change>,
}

struct Draft {
    kind: ChangeKind,
    coordinate: String,
    message: String,
    impact: String,
    location: Option<SdlPosition>,
    anchor: Option<SdlPosition>,
    touch: Touch,
}

impl<'a> Differ<'a> {
    fn pos(&self, side: Side, span: Option<SourceSpan>) -> Option<SdlPosition> {
        let sdl = match side {
            Side::Old => self.old,
            Side::New => self.new,
        };
        let (line, column) = sdl.line_col(span)?;
        Some(SdlPosition { side, file: sdl.path().to_owned(), line, column })
    }

    fn old_pos(&self, span: Option<SourceSpan>) -> Option<SdlPosition> {
        self.pos(Side::Old, span)
    }

    fn new_pos(&self, span: Option<SourceSpan>) -> Option<SdlPosition> {
        self.pos(Side::New, span)
    }

    fn push(&mut self, d: Draft) {
        self.out.push(Change {
            level: d.kind.level(),
            kind: d.kind,
            coordinate: d.coordinate,
            message: d.message,
            impact: d.impact,
            location: d.location,
            anchor: d.anchor,
            touch: d.touch,
        });
    }

    /// A change located in the new schema.
    #[allow(clippy::too_many_arguments)]
    fn at_new(
        &mut self,
        kind: ChangeKind,
        coordinate: String,
        message: String,
        impact: String,
        span: Option<SourceSpan>,
        touch: Touch,
    ) {
        let location = self.new_pos(span);
        self.push(Draft { kind, coordinate, message, impact, location, anchor: None, touch });
    }

    /// A removal: located in the old schema, anchored at the parent in the new one.
    #[allow(clippy::too_many_arguments)]
    fn at_old(
        &mut self,
        kind: ChangeKind,
        coordinate: String,
        message: String,
        impact: String,
        span: Option<SourceSpan>,
        anchor: Option<SourceSpan>,
        touch: Touch,
    ) {
        let location = self.old_pos(span);
        let anchor = self.new_pos(anchor);
        self.push(Draft { kind, coordinate, message, impact, location, anchor, touch });
    }

    // ----- schema definition -------------------------------------------------------------

    fn schema_roots(&mut self) {
        let old = &self.old.schema().schema_definition;
        let new = &self.new.schema().schema_definition;
        let pairs = [
            ("query", &old.query, &new.query),
            ("mutation", &old.mutation, &new.mutation),
            ("subscription", &old.subscription, &new.subscription),
        ];
        for (op, o, n) in pairs {
            let Some(o) = o else { continue };
            let n_name = n.as_ref().map(|n| n.name.as_str());
            if n_name == Some(o.name.as_str()) {
                continue;
            }
            let message = match n {
                Some(n) => format!("The {op} root type changed from `{}` to `{}`.", o.name, n.name),
                None => format!("The schema no longer has a {op} root type (was `{}`).", o.name),
            };
            let touch = Touch::key(format!("schema:{op}"), mask::OUTPUT);
            let impact = format!("every {op} operation is affected");
            match n {
                Some(n) => self.at_new(
                    ChangeKind::RootOperationTypeChanged,
                    o.name.to_string(),
                    message,
                    impact,
                    n.name.location(),
                    touch,
                ),
                None => self.at_old(
                    ChangeKind::RootOperationTypeChanged,
                    o.name.to_string(),
                    message,
                    impact,
                    o.name.location(),
                    None,
                    touch,
                ),
            }
        }
    }

    // ----- types ---------------------------------------------------------------------------

    fn types(&mut self) {
        let old_types = &self.old.schema().types;
        let new_types = &self.new.schema().types;
        for (name, old_ty) in old_types {
            if old_ty.is_built_in() {
                continue;
            }
            match new_types.get(name) {
                None => self.at_old(
                    ChangeKind::TypeRemoved,
                    name.to_string(),
                    format!("Type `{name}` ({}) was removed.", kind_name(old_ty)),
                    format!("operations that use `{name}` no longer validate"),
                    old_ty.name().location().or(old_ty.location()),
                    None,
                    Touch::key(name.to_string(), mask::ANY),
                ),
                Some(new_ty) => self.same_type(name, old_ty, new_ty),
            }
        }
        for (name, new_ty) in new_types {
            if new_ty.is_built_in() || old_types.contains_key(name) {
                continue;
            }
            self.at_new(
                ChangeKind::TypeAdded,
                name.to_string(),
                format!("Type `{name}` ({}) was added.", kind_name(new_ty)),
                String::new(),
                new_ty.name().location().or(new_ty.location()),
                Touch::Never,
            );
        }
    }

    fn same_type(&mut self, name: &Name, old_ty: &'a ExtendedType, new_ty: &'a ExtendedType) {
        if old_ty == new_ty {
            return; // equality ignores source locations
        }
        let new_span = new_ty.name().location().or(new_ty.location());
        if std::mem::discriminant(old_ty) != std::mem::discriminant(new_ty) {
            self.at_new(
                ChangeKind::TypeChangedKind,
                name.to_string(),
                format!("`{name}` changed from {} to {}.", kind_name(old_ty), kind_name(new_ty)),
                format!("operations that use `{name}` may no longer validate"),
                new_span,
                Touch::key(name.to_string(), mask::ANY),
            );
            return;
        }
        self.description(name.to_string(), old_ty.description(), new_ty.description(), new_span);
        match (old_ty, new_ty) {
            (ExtendedType::Object(o), ExtendedType::Object(n)) => {
                self.interfaces(name, &o.implements_interfaces, &n.implements_interfaces, new_span);
                self.output_fields(name, &o.fields, &n.fields, new_span);
            }
            (ExtendedType::Interface(o), ExtendedType::Interface(n)) => {
                self.interfaces(name, &o.implements_interfaces, &n.implements_interfaces, new_span);
                self.output_fields(name, &o.fields, &n.fields, new_span);
            }
            (ExtendedType::Union(o), ExtendedType::Union(n)) => {
                self.union_members(name, &o.members, &n.members, new_span)
            }
            (ExtendedType::Enum(o), ExtendedType::Enum(n)) => {
                self.enum_values(name, &o.values, &n.values, new_span)
            }
            (ExtendedType::InputObject(o), ExtendedType::InputObject(n)) => {
                self.one_of(name, is_one_of(old_ty), is_one_of(new_ty), new_span);
                self.input_fields(name, &o.fields, &n.fields, is_one_of(new_ty), new_span)
            }
            _ => {}
        }
    }

    fn one_of(&mut self, name: &Name, old: bool, new: bool, new_span: Option<SourceSpan>) {
        match (old, new) {
            (false, true) => self.at_new(
                ChangeKind::OneOfAdded,
                name.to_string(),
                format!("Input object type `{name}` is now @oneOf."),
                format!(
                    "the operation sends `{name}` (a literal without exactly one non-null field, or a variable whose value may have several); it is now refused"
                ),
                new_span,
                Touch::Any(vec![
                    Touch::key(name.to_string(), mask::INPUT),
                    Touch::key(format!("{name}#not-one-of"), mask::LITERAL),
                ]),
            ),
            (true, false) => self.at_new(
                ChangeKind::OneOfRemoved,
                name.to_string(),
                format!("Input object type `{name}` is no longer @oneOf."),
                String::new(),
                new_span,
                Touch::Never,
            ),
            _ => {}
        }
    }

    fn description(
        &mut self,
        coordinate: String,
        old: Option<&Node<str>>,
        new: Option<&Node<str>>,
        new_span: Option<SourceSpan>,
    ) {
        let (o, n) = (old.map(|s| s.trim()), new.map(|s| s.trim()));
        if o == n {
            return;
        }
        let message = match (o, n) {
            (None, Some(_)) => format!("A description was added to `{coordinate}`."),
            (Some(_), None) => format!("The description of `{coordinate}` was removed."),
            _ => format!("The description of `{coordinate}` changed."),
        };
        self.at_new(
            ChangeKind::DescriptionChanged,
            coordinate,
            message,
            String::new(),
            new_span,
            Touch::Never,
        );
    }

    fn deprecation(
        &mut self,
        coordinate: &str,
        old: &ast::DirectiveList,
        new: &ast::DirectiveList,
        new_span: Option<SourceSpan>,
        touch: Touch,
    ) {
        let (o, n) = (deprecation_reason(old), deprecation_reason(new));
        let (kind, message) = match (&o, &n) {
            (None, None) => return,
            (Some(a), Some(b)) if a == b => return,
            (None, Some(r)) => (ChangeKind::DeprecationAdded, format!("`{coordinate}` was deprecated: {r}")),
            (Some(_), None) => {
                (ChangeKind::DeprecationRemoved, format!("`{coordinate}` is no longer deprecated."))
            }
            (Some(a), Some(b)) => (
                ChangeKind::DeprecationReasonChanged,
                format!("The deprecation reason of `{coordinate}` changed from \"{a}\" to \"{b}\"."),
            ),
        };
        let impact = if kind == ChangeKind::DeprecationAdded {
            format!("the operation uses `{coordinate}`, which is now deprecated")
        } else {
            String::new()
        };
        self.at_new(kind, coordinate.to_owned(), message, impact, new_span, touch);
    }

    fn interfaces(
        &mut self,
        name: &Name,
        old: &IndexSet<ComponentName>,
        new: &IndexSet<ComponentName>,
        new_span: Option<SourceSpan>,
    ) {
        for o in old {
            if !new.contains(o) {
                let i = &o.name;
                self.at_old(
                    ChangeKind::ImplementedInterfaceRemoved,
                    name.to_string(),
                    format!("`{name}` no longer implements interface `{i}`."),
                    format!(
                        "the operation uses interface `{i}`; `{name}` objects no longer match fragments on it and can no longer be returned where it is expected"
                    ),
                    o.name.location(),
                    new_span,
                    Touch::key(i.to_string(), mask::ANY),
                );
            }
        }
        for n in new {
            if !old.contains(n) {
                let i = &n.name;
                self.at_new(
                    ChangeKind::ImplementedInterfaceAdded,
                    name.to_string(),
                    format!("`{name}` now implements interface `{i}`."),
                    format!(
                        "fragments on `{i}` now also match `{name}` objects, so the component may receive fields it did not get before"
                    ),
                    n.name.location(),
                    Touch::key(i.to_string(), mask::CONDITION),
                );
            }
        }
    }

    fn union_members(
        &mut self,
        name: &Name,
        old: &IndexSet<ComponentName>,
        new: &IndexSet<ComponentName>,
        new_span: Option<SourceSpan>,
    ) {
        for o in old {
            if !new.contains(o) {
                let m = &o.name;
                self.at_old(
                    ChangeKind::TypeRemovedFromUnion,
                    name.to_string(),
                    format!("`{m}` was removed from union type `{name}`."),
                    format!(
                        "the operation selects `... on {m}` where `{name}` is returned; it no longer validates"
                    ),
                    o.name.location(),
                    new_span,
                    Touch::All(vec![
                        Touch::key(name.to_string(), mask::ANY),
                        Touch::key(m.to_string(), mask::CONDITION),
                    ]),
                );
            }
        }
        for n in new {
            if !old.contains(n) {
                let m = &n.name;
                self.at_new(
                    ChangeKind::TypeAddedToUnion,
                    name.to_string(),
                    format!("`{m}` was added to union type `{name}`."),
                    format!("a `{m}` object may now reach a component that handles `{name}` by __typename"),
                    n.name.location(),
                    Touch::key(name.to_string(), mask::OUTPUT),
                );
            }
        }
    }

    fn enum_values(
        &mut self,
        name: &Name,
        old: &IndexMap<Name, Component<ast::EnumValueDefinition>>,
        new: &IndexMap<Name, Component<ast::EnumValueDefinition>>,
        new_span: Option<SourceSpan>,
    ) {
        for (v, o) in old {
            let n = new.get(v);
            if n == Some(o) {
                continue;
            }
            let coordinate = format!("{name}.{v}");
            match n {
                None => self.at_old(
                    ChangeKind::ValueRemovedFromEnum,
                    coordinate.clone(),
                    format!("Enum value `{coordinate}` was removed."),
                    format!(
                        "the operation sends `{name}` values (a literal or a variable), and `{v}` is no longer accepted"
                    ),
                    o.value.location(),
                    new_span,
                    Touch::Any(vec![
                        Touch::key(coordinate, mask::ANY),
                        Touch::key(name.to_string(), mask::INPUT),
                    ]),
                ),
                Some(n) => {
                    let span = n.value.location();
                    self.description(
                        coordinate.clone(),
                        o.description.as_ref(),
                        n.description.as_ref(),
                        span,
                    );
                    let touch = Touch::Any(vec![
                        Touch::key(coordinate.clone(), mask::ANY),
                        Touch::key(name.to_string(), mask::OUTPUT | mask::INPUT),
                    ]);
                    self.deprecation(&coordinate, &o.directives, &n.directives, span, touch);
                }
            }
        }
        for (v, n) in new {
            if !old.contains_key(v) {
                let coordinate = format!("{name}.{v}");
                self.at_new(
                    ChangeKind::ValueAddedToEnum,
                    coordinate.clone(),
                    format!("Enum value `{coordinate}` was added."),
                    format!("a new enum value {coordinate} may reach a component's switch over {name}"),
                    n.value.location(),
                    Touch::key(name.to_string(), mask::OUTPUT),
                );
            }
        }
    }

    fn output_fields(
        &mut self,
        type_name: &Name,
        old: &IndexMap<Name, Component<FieldDefinition>>,
        new: &IndexMap<Name, Component<FieldDefinition>>,
        type_span: Option<SourceSpan>,
    ) {
        for (f, o) in old {
            let n = new.get(f);
            if n == Some(o) {
                continue;
            }
            let coordinate = format!("{type_name}.{f}");
            let Some(n) = n else {
                let was =
                    if deprecation_reason(&o.directives).is_some() { " (it was deprecated)" } else { "" };
                self.at_old(
                    ChangeKind::FieldRemoved,
                    coordinate.clone(),
                    format!("Field `{coordinate}` was removed{was}."),
                    format!("the operation selects `{coordinate}`; it no longer validates"),
                    o.name.location(),
                    type_span,
                    Touch::key(coordinate, mask::OUTPUT),
                );
                continue;
            };
            let span = n.name.location();
            let field_touch = || Touch::key(coordinate.clone(), mask::OUTPUT);
            if o.ty != n.ty {
                if safe_for_output(&o.ty, &n.ty) {
                    self.at_new(
                        ChangeKind::FieldTypeChangedSafe,
                        coordinate.clone(),
                        format!(
                            "Field `{coordinate}` changed type from `{}` to `{}` (compatible for clients).",
                            o.ty, n.ty
                        ),
                        String::new(),
                        span,
                        field_touch(),
                    );
                } else {
                    self.at_new(
                        ChangeKind::FieldChangedKind,
                        coordinate.clone(),
                        format!(
                            "Field `{coordinate}` changed type from `{}` to `{}`.",
                            o.ty, n.ty
                        ),
                        format!(
                            "the operation selects `{coordinate}` and may get a value of a shape it does not expect (`{}` → `{}`)",
                            o.ty, n.ty
                        ),
                        span,
                        field_touch(),
                    );
                }
            }
            self.description(coordinate.clone(), o.description.as_ref(), n.description.as_ref(), span);
            self.deprecation(&coordinate, &o.directives, &n.directives, span, field_touch());
            self.arguments(ArgOwner::Field(&coordinate), &o.arguments, &n.arguments, span);
        }
        for (f, n) in new {
            if !old.contains_key(f) {
                let coordinate = format!("{type_name}.{f}");
                self.at_new(
                    ChangeKind::FieldAdded,
                    coordinate.clone(),
                    format!("Field `{coordinate}` of type `{}` was added.", n.ty),
                    String::new(),
                    n.name.location(),
                    Touch::Never,
                );
            }
        }
    }

    fn arguments(
        &mut self,
        owner: ArgOwner<'_>,
        old: &[Node<ast::InputValueDefinition>],
        new: &[Node<ast::InputValueDefinition>],
        owner_span: Option<SourceSpan>,
    ) {
        let owner_coord = owner.coordinate();
        let (what, owner_mask) = match owner {
            ArgOwner::Field(_) => ("field", mask::OUTPUT),
            ArgOwner::Directive(_) => ("directive", mask::DIRECTIVE),
        };
        let owner_touch = || Touch::key(owner_coord.to_owned(), owner_mask);
        for o in old {
            let a = &o.name;
            let n = new.iter().find(|n| n.name == *a);
            if n == Some(o) {
                continue;
            }
            let coordinate = format!("{owner_coord}({a}:)");
            let arg_touch = Touch::key(coordinate.clone(), mask::INPUT | mask::DIRECTIVE);
            let Some(n) = n else {
                let kind = match owner {
                    ArgOwner::Field(_) => ChangeKind::ArgRemoved,
                    ArgOwner::Directive(_) => ChangeKind::DirectiveArgRemoved,
                };
                self.at_old(
                    kind,
                    coordinate.clone(),
                    format!("Argument `{coordinate}` was removed."),
                    format!("the operation passes `{a}` to `{owner_coord}`; it no longer validates"),
                    o.name.location(),
                    owner_span,
                    arg_touch,
                );
                continue;
            };
            let span = n.name.location();
            if o.ty != n.ty {
                if safe_for_input(&o.ty, &n.ty) {
                    self.at_new(
                        ChangeKind::ArgTypeChangedSafe,
                        coordinate.clone(),
                        format!(
                            "Argument `{coordinate}` changed type from `{}` to `{}` (compatible for clients).",
                            o.ty, n.ty
                        ),
                        String::new(),
                        span,
                        arg_touch.clone(),
                    );
                } else {
                    self.at_new(
                        ChangeKind::ArgChangedKind,
                        coordinate.clone(),
                        format!(
                            "Argument `{coordinate}` changed type from `{}` to `{}`.",
                            o.ty, n.ty
                        ),
                        format!(
                            "the operation passes `{a}`; a value of type `{}` may no longer be accepted as `{}`",
                            o.ty, n.ty
                        ),
                        span,
                        arg_touch.clone(),
                    );
                }
            }
            let (od, nd) = (
                o.default_value.as_ref().map(|v| canonical_value(v)),
                n.default_value.as_ref().map(|v| canonical_value(v)),
            );
            // Where an operation leaves the argument unset: omitted, or a nullable variable
            // with no default that the client may leave out.
            let unset_touch = Touch::key(format!("{coordinate}#unset"), mask::INPUT | mask::DIRECTIVE);
            if !o.is_required() && n.is_required() && safe_for_input(&o.ty, &n.ty) {
                self.at_new(
                    ChangeKind::ArgBecameRequired,
                    coordinate.clone(),
                    format!(
                        "Argument `{coordinate}` of type `{}` lost its default value {} and is now required.",
                        n.ty,
                        show_default(o.default_value.as_ref())
                    ),
                    format!(
                        "the operation uses `{owner_coord}` without `{a}` (or with a variable that may be unset); it no longer validates"
                    ),
                    span,
                    unset_touch,
                );
            } else if od != nd {
                let (from, to) =
                    (show_default(o.default_value.as_ref()), show_default(n.default_value.as_ref()));
                self.at_new(
                    ChangeKind::ArgDefaultValueChange,
                    coordinate.clone(),
                    format!("The default value of argument `{coordinate}` changed from {from} to {to}."),
                    format!(
                        "the operation uses `{owner_coord}` without `{a}` (or with a variable that may be unset), so it now gets the default {to} instead of {from}"
                    ),
                    span,
                    unset_touch,
                );
            }
            self.description(coordinate.clone(), o.description.as_ref(), n.description.as_ref(), span);
            self.deprecation(&coordinate, &o.directives, &n.directives, span, arg_touch);
        }
        for n in new {
            if old.iter().any(|o| o.name == n.name) {
                continue;
            }
            let a = &n.name;
            let coordinate = format!("{owner_coord}({a}:)");
            let required = n.is_required();
            let (kind, impact) = match (owner, required) {
                (ArgOwner::Field(_), true) => (
                    ChangeKind::RequiredArgAdded,
                    format!(
                        "the operation uses `{owner_coord}` without the new required argument `{a}`; it no longer validates"
                    ),
                ),
                (ArgOwner::Field(_), false) => (
                    ChangeKind::OptionalArgAdded,
                    format!(
                        "the operation uses `{owner_coord}`; the new optional argument `{a}` takes its default when omitted"
                    ),
                ),
                (ArgOwner::Directive(_), true) => (
                    ChangeKind::RequiredDirectiveArgAdded,
                    format!(
                        "the operation uses `{owner_coord}` without the new required argument `{a}`; it no longer validates"
                    ),
                ),
                (ArgOwner::Directive(_), false) => (ChangeKind::DirectiveArgAdded, String::new()),
            };
            let req = if required { "Required" } else { "Optional" };
            let default = n
                .default_value
                .as_ref()
                .map(|v| format!(" (default `{}`)", canonical_value(v)))
                .unwrap_or_default();
            let touch = if kind == ChangeKind::DirectiveArgAdded { Touch::Never } else { owner_touch() };
            self.at_new(
                kind,
                coordinate.clone(),
                format!(
                    "{req} argument `{coordinate}` of type `{}`{default} was added to {what} `{owner_coord}`.",
                    n.ty
                ),
                impact,
                n.name.location(),
                touch,
            );
        }
    }

    fn input_fields(
        &mut self,
        type_name: &Name,
        old: &IndexMap<Name, Component<ast::InputValueDefinition>>,
        new: &IndexMap<Name, Component<ast::InputValueDefinition>>,
        new_is_one_of: bool,
        type_span: Option<SourceSpan>,
    ) {
        let type_touch = || Touch::key(type_name.to_string(), mask::INPUT | mask::LITERAL);
        for (f, o) in old {
            let n = new.get(f);
            if n == Some(o) {
                continue;
            }
            let coordinate = format!("{type_name}.{f}");
            let field_touch = Touch::key(coordinate.clone(), mask::INPUT);
            let Some(n) = n else {
                self.at_old(
                    ChangeKind::FieldRemoved,
                    coordinate.clone(),
                    format!("Input field `{coordinate}` was removed."),
                    format!(
                        "the operation sends `{type_name}` (with `{f}`, or through a variable that may carry it); `{f}` is no longer accepted"
                    ),
                    o.name.location(),
                    type_span,
                    field_touch,
                );
                continue;
            };
            let span = n.name.location();
            if o.ty != n.ty {
                if safe_for_input(&o.ty, &n.ty) {
                    self.at_new(
                        ChangeKind::FieldTypeChangedSafe,
                        coordinate.clone(),
                        format!(
                            "Input field `{coordinate}` changed type from `{}` to `{}` (compatible for clients).",
                            o.ty, n.ty
                        ),
                        String::new(),
                        span,
                        field_touch.clone(),
                    );
                } else {
                    self.at_new(
                        ChangeKind::FieldChangedKind,
                        coordinate.clone(),
                        format!(
                            "Input field `{coordinate}` changed type from `{}` to `{}`.",
                            o.ty, n.ty
                        ),
                        format!(
                            "the operation sends `{type_name}`; a `{f}` of type `{}` may no longer be accepted as `{}`",
                            o.ty, n.ty
                        ),
                        span,
                        field_touch.clone(),
                    );
                }
            }
            let (od, nd) = (
                o.default_value.as_ref().map(|v| canonical_value(v)),
                n.default_value.as_ref().map(|v| canonical_value(v)),
            );
            // Where an operation may leave the field unset: a literal without it (or with a
            // variable that may be unset), or any variable that carries the type (its value is
            // not in the operation).
            let unset_touch = Touch::Any(vec![
                Touch::key(type_name.to_string(), mask::INPUT),
                Touch::key(format!("{coordinate}#unset"), mask::LITERAL),
            ]);
            if !o.is_required() && n.is_required() && safe_for_input(&o.ty, &n.ty) {
                self.at_new(
                    ChangeKind::InputFieldBecameRequired,
                    coordinate.clone(),
                    format!(
                        "Input field `{coordinate}` of type `{}` lost its default value {} and is now required.",
                        n.ty,
                        show_default(o.default_value.as_ref())
                    ),
                    format!(
                        "the operation sends `{type_name}` and may omit `{f}`; such a value is now refused"
                    ),
                    span,
                    unset_touch,
                );
            } else if od != nd {
                let (from, to) =
                    (show_default(o.default_value.as_ref()), show_default(n.default_value.as_ref()));
                self.at_new(
                    ChangeKind::InputFieldDefaultValueChange,
                    coordinate.clone(),
                    format!("The default value of input field `{coordinate}` changed from {from} to {to}."),
                    format!(
                        "the operation sends `{type_name}` and may omit `{f}`, which now defaults to {to} instead of {from}"
                    ),
                    span,
                    unset_touch,
                );
            }
            self.description(coordinate.clone(), o.description.as_ref(), n.description.as_ref(), span);
            self.deprecation(&coordinate, &o.directives, &n.directives, span, field_touch);
        }
        for (f, n) in new {
            if old.contains_key(f) {
                continue;
            }
            let coordinate = format!("{type_name}.{f}");
            let required = n.is_required();
            let (kind, message, impact) = if new_is_one_of {
                // A oneOf field is nullable with no default (checked when loading): callers
                // keep sending exactly one of the other fields, which mean what they meant.
                (
                    ChangeKind::OneOfInputFieldAdded,
                    format!(
                        "Field `{coordinate}` of type `{}` was added to @oneOf input `{type_name}`.",
                        n.ty
                    ),
                    String::new(),
                )
            } else if required {
                (
                    ChangeKind::RequiredInputFieldAdded,
                    format!("Required input field `{coordinate}` of type `{}` was added.", n.ty),
                    format!(
                        "the operation sends `{type_name}` without the new required field `{f}`; the request will be rejected"
                    ),
                )
            } else {
                (
                    ChangeKind::OptionalInputFieldAdded,
                    format!("Optional input field `{coordinate}` of type `{}` was added.", n.ty),
                    format!(
                        "the operation sends `{type_name}`; the new optional field `{f}` takes its default when omitted"
                    ),
                )
            };
            let touch = if kind == ChangeKind::OneOfInputFieldAdded { Touch::Never } else { type_touch() };
            self.at_new(kind, coordinate, message, impact, n.name.location(), touch);
        }
    }

    // ----- directives ----------------------------------------------------------------------

    fn directives(&mut self /* all directive definitions */) {
        let old_defs = &self.old.schema().directive_definitions;
        let new_defs = &self.new.schema().directive_definitions;
        for (name, o) in old_defs {
            let coordinate = format!("@{name}");
            let touch = || Touch::key(coordinate.clone(), mask::DIRECTIVE);
            let Some(n) = new_defs.get(name) else {
                self.at_old(
                    ChangeKind::DirectiveRemoved,
                    coordinate.clone(),
                    format!("Directive `{coordinate}` was removed."),
                    format!("the operation uses `{coordinate}`; it no longer validates"),
                    o.name.location(),
                    None,
                    touch(),
                );
                continue;
            };
            // `@oneOf` is built in (added on load when a schema does not define it).
            if (o.is_built_in() && n.is_built_in()) || name == "oneOf" {
                continue;
            }
            let span = n.name.location();
            self.description(coordinate.clone(), o.description.as_ref(), n.description.as_ref(), span);
            if o.repeatable && !n.repeatable {
                self.at_new(
                    ChangeKind::DirectiveRepeatableRemoved,
                    coordinate.clone(),
                    format!("Directive `{coordinate}` is no longer repeatable."),
                    format!("the operation repeats `{coordinate}` at one location; it no longer validates"),
                    span,
                    Touch::key(format!("{coordinate}#repeated"), mask::DIRECTIVE),
                );
            } else if !o.repeatable && n.repeatable {
                self.at_new(
                    ChangeKind::DirectiveRepeatableAdded,
                    coordinate.clone(),
                    format!("Directive `{coordinate}` is now repeatable."),
                    String::new(),
                    span,
                    Touch::Never,
                );
            }
            let old_locs: HashSet<DirectiveLocation> = o.locations.iter().copied().collect();
            let new_locs: HashSet<DirectiveLocation> = n.locations.iter().copied().collect();
            for loc in &o.locations {
                if !new_locs.contains(loc) {
                    let touch = if is_executable_location(*loc) {
                        Touch::key(format!("{coordinate}#{}", loc.name()), mask::DIRECTIVE)
                    } else {
                        Touch::Never
                    };
                    self.at_new(
                        ChangeKind::DirectiveLocationRemoved,
                        coordinate.clone(),
                        format!("Location `{}` was removed from directive `{coordinate}`.", loc.name()),
                        format!(
                            "the operation uses `{coordinate}` on a {}; it no longer validates",
                            loc.name()
                        ),
                        span,
                        touch,
                    );
                }
            }
            for loc in &n.locations {
                if !old_locs.contains(loc) {
                    self.at_new(
                        ChangeKind::DirectiveLocationAdded,
                        coordinate.clone(),
                        format!("Location `{}` was added to directive `{coordinate}`.", loc.name()),
                        String::new(),
                        span,
                        Touch::Never,
                    );
                }
            }
            self.arguments(ArgOwner::Directive(&coordinate), &o.arguments, &n.arguments, span);
        }
        for (name, n) in new_defs {
            if !old_defs.contains_key(name) {
                let coordinate = format!("@{name}");
                self.at_new(
                    ChangeKind::DirectiveAdded,
                    coordinate.clone(),
                    format!("Directive `{coordinate}` was added."),
                    String::new(),
                    n.name.location(),
                    Touch::Never,
                );
            }
        }
    }
}
