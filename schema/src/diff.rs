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

use std::fmt;

use apollo_compiler::ast::{self, DirectiveLocation};
use serde::Serialize;

use crate::model::{CompactSchema, FieldDef, InputDef, Kind, Pos, Sym, TypeDef};
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
///
/// Either side may be an [`Sdl`](crate::Sdl) or a [`CompactSchema`]; the diff reads the compact
/// model of each.
pub fn diff<O, N>(old: &O, new: &N) -> Vec<Change>
where
    O: AsRef<CompactSchema> + ?Sized,
    N: AsRef<CompactSchema> + ?Sized,
{
    let mut d = Differ { old: old.as_ref(), new: new.as_ref(), out: Vec::new() };
    d.schema_roots();
    d.types();
    d.directives();
    let mut out = d.out;
    out.sort_by(|a, b| {
        (a.level, &a.coordinate, a.kind, &a.message).cmp(&(b.level, &b.coordinate, b.kind, &b.message))
    });
    out
}

/// A printed type reference taken apart one level: `Named`, `Named!`, `[…]`, `[…]!`.
enum Shape<'a> {
    Named(&'a str),
    NonNullNamed(&'a str),
    List(&'a str),
    NonNullList(&'a str),
}

fn shape(ty: &str) -> Shape<'_> {
    let (non_null, t) = match ty.strip_suffix('!') {
        Some(t) => (true, t),
        None => (false, ty),
    };
    match (t.strip_prefix('[').and_then(|t| t.strip_suffix(']')), non_null) {
        (Some(item), false) => Shape::List(item),
        (Some(item), true) => Shape::NonNullList(item),
        (None, false) => Shape::Named(t),
        (None, true) => Shape::NonNullNamed(t),
    }
}

/// graphql-js's `isChangeSafeForObjectOrInterfaceField`, on printed types.
pub(crate) fn safe_for_output(old: &str, new: &str) -> bool {
    match shape(old) {
        Shape::Named(o) => matches!(shape(new), Shape::Named(n) | Shape::NonNullNamed(n) if n == o),
        Shape::NonNullNamed(o) => matches!(shape(new), Shape::NonNullNamed(n) if n == o),
        Shape::List(o) => match shape(new) {
            Shape::List(n) | Shape::NonNullList(n) => safe_for_output(o, n),
            _ => false,
        },
        Shape::NonNullList(o) => match shape(new) {
            Shape::NonNullList(n) => safe_for_output(o, n),
            _ => false,
        },
    }
}

/// graphql-js's `isChangeSafeForInputObjectFieldOrFieldArg`, on printed types.
pub(crate) fn safe_for_input(old: &str, new: &str) -> bool {
    match shape(old) {
        Shape::Named(o) => matches!(shape(new), Shape::Named(n) if n == o),
        Shape::NonNullNamed(o) => matches!(shape(new), Shape::Named(n) | Shape::NonNullNamed(n) if n == o),
        Shape::List(o) => match shape(new) {
            Shape::List(n) => safe_for_input(o, n),
            _ => false,
        },
        Shape::NonNullList(o) => match shape(new) {
            Shape::List(n) | Shape::NonNullList(n) => safe_for_input(o, n),
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
    old: &'a CompactSchema,
    new: &'a CompactSchema,
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
    fn pos(&self, side: Side, pos: Option<Pos>) -> Option<SdlPosition> {
        let schema = match side {
            Side::Old => self.old,
            Side::New => self.new,
        };
        let pos = pos?;
        Some(SdlPosition {
            side,
            file: schema.path().to_owned(),
            line: pos.line.get() as usize,
            column: pos.column as usize,
        })
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
    fn at_new(
        &mut self,
        kind: ChangeKind,
        coordinate: String,
        message: String,
        impact: String,
        pos: Option<Pos>,
        touch: Touch,
    ) {
        let location = self.pos(Side::New, pos);
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
        pos: Option<Pos>,
        anchor: Option<Pos>,
        touch: Touch,
    ) {
        let location = self.pos(Side::Old, pos);
        let anchor = self.pos(Side::New, anchor);
        self.push(Draft { kind, coordinate, message, impact, location, anchor, touch });
    }

    /// The text of an optional symbol of the old schema.
    fn old_str(&self, sym: Option<Sym>) -> Option<&'a str> {
        let old = self.old;
        sym.map(|s| old.str(s))
    }

    /// The text of an optional symbol of the new schema.
    fn new_str(&self, sym: Option<Sym>) -> Option<&'a str> {
        let new = self.new;
        sym.map(|s| new.str(s))
    }

    /// Whether two arguments or input fields are the same in every respect the diff reads.
    fn same_input(&self, o: &InputDef, n: &InputDef) -> bool {
        let (old, new) = (self.old, self.new);
        old.str(o.name) == new.str(n.name)
            && old.str(o.ty) == new.str(n.ty)
            && self.old_str(o.default) == self.new_str(n.default)
            && self.old_str(o.description) == self.new_str(n.description)
            && self.old_str(o.deprecation) == self.new_str(n.deprecation)
    }

    /// Whether two output fields are the same in every respect the diff reads (arguments in
    /// the same order), so that comparing them in detail would find nothing.
    fn same_field(&self, o: &FieldDef, n: &FieldDef) -> bool {
        let (old, new) = (self.old, self.new);
        let (oa, na) = (old.args(o.args), new.args(n.args));
        old.str(o.ty) == new.str(n.ty)
            && self.old_str(o.description) == self.new_str(n.description)
            && self.old_str(o.deprecation) == self.new_str(n.deprecation)
            && oa.len() == na.len()
            && oa.iter().zip(na).all(|(o, n)| self.same_input(o, n))
    }

    // ----- schema definition -------------------------------------------------------------

    fn schema_roots(&mut self) {
        let (old, new) = (self.old, self.new);
        for (i, op) in ["query", "mutation", "subscription"].into_iter().enumerate() {
            let Some(o) = &old.roots[i] else { continue };
            let n = new.roots[i].as_ref();
            let o_name = old.str(o.name);
            let n_name = n.map(|n| new.str(n.name));
            if n_name == Some(o_name) {
                continue;
            }
            let message = match n_name {
                Some(n_name) => format!("The {op} root type changed from `{o_name}` to `{n_name}`."),
                None => format!("The schema no longer has a {op} root type (was `{o_name}`)."),
            };
            let touch = Touch::key(format!("schema:{op}"), mask::OUTPUT);
            let impact = format!("every {op} operation is affected");
            match n {
                Some(n) => self.at_new(
                    ChangeKind::RootOperationTypeChanged,
                    o_name.to_owned(),
                    message,
                    impact,
                    n.pos,
                    touch,
                ),
                None => self.at_old(
                    ChangeKind::RootOperationTypeChanged,
                    o_name.to_owned(),
                    message,
                    impact,
                    o.pos,
                    None,
                    touch,
                ),
            }
        }
    }

    // ----- types ---------------------------------------------------------------------------

    fn types(&mut self) {
        let (old, new) = (self.old, self.new);
        for old_ty in &old.types {
            if old_ty.built_in {
                continue;
            }
            let name = old.str(old_ty.name);
            match new.type_named(name) {
                None => self.at_old(
                    ChangeKind::TypeRemoved,
                    name.to_owned(),
                    format!("Type `{name}` ({}) was removed.", old_ty.kind.describe()),
                    format!("operations that use `{name}` no longer validate"),
                    old_ty.pos,
                    None,
                    Touch::key(name, mask::ANY),
                ),
                Some(new_ty) => self.same_type(name, old_ty, new_ty),
            }
        }
        for new_ty in &new.types {
            let name = new.str(new_ty.name);
            if new_ty.built_in || old.type_named(name).is_some() {
                continue;
            }
            self.at_new(
                ChangeKind::TypeAdded,
                name.to_owned(),
                format!("Type `{name}` ({}) was added.", new_ty.kind.describe()),
                String::new(),
                new_ty.pos,
                Touch::Never,
            );
        }
    }

    fn same_type(&mut self, name: &str, old_ty: &'a TypeDef, new_ty: &'a TypeDef) {
        let new_span = new_ty.pos;
        if old_ty.kind != new_ty.kind {
            self.at_new(
                ChangeKind::TypeChangedKind,
                name.to_owned(),
                format!("`{name}` changed from {} to {}.", old_ty.kind.describe(), new_ty.kind.describe()),
                format!("operations that use `{name}` may no longer validate"),
                new_span,
                Touch::key(name, mask::ANY),
            );
            return;
        }
        self.description(
            name.to_owned(),
            self.old_str(old_ty.description),
            self.new_str(new_ty.description),
            new_span,
        );
        match old_ty.kind {
            Kind::Object | Kind::Interface => {
                self.interfaces(name, old_ty, new_ty, new_span);
                self.output_fields(name, old_ty, new_ty, new_span);
            }
            Kind::Union => self.union_members(name, old_ty, new_ty, new_span),
            Kind::Enum => self.enum_values(name, old_ty, new_ty, new_span),
            Kind::InputObject => {
                self.one_of(name, old_ty.one_of, new_ty.one_of, new_span);
                self.input_fields(name, old_ty, new_ty, new_span)
            }
            Kind::Scalar => {}
        }
    }

    fn one_of(&mut self, name: &str, old: bool, new: bool, new_span: Option<Pos>) {
        match (old, new) {
            (false, true) => self.at_new(
                ChangeKind::OneOfAdded,
                name.to_owned(),
                format!("Input object type `{name}` is now @oneOf."),
                format!(
                    "the operation sends `{name}` (a literal without exactly one non-null field, or a variable whose value may have several); it is now refused"
                ),
                new_span,
                Touch::Any(vec![
                    Touch::key(name, mask::INPUT),
                    Touch::key(format!("{name}#not-one-of"), mask::LITERAL),
                ]),
            ),
            (true, false) => self.at_new(
                ChangeKind::OneOfRemoved,
                name.to_owned(),
                format!("Input object type `{name}` is no longer @oneOf."),
                String::new(),
                new_span,
                Touch::Never,
            ),
            _ => {}
        }
    }

    /// Compares two (trimmed) descriptions.
    fn description(
        &mut self,
        coordinate: String,
        old: Option<&str>,
        new: Option<&str>,
        new_span: Option<Pos>,
    ) {
        if old == new {
            return;
        }
        let message = match (old, new) {
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

    /// Compares two deprecation reasons (`None`: not deprecated).
    fn deprecation(
        &mut self,
        coordinate: &str,
        old: Option<&str>,
        new: Option<&str>,
        new_span: Option<Pos>,
        touch: Touch,
    ) {
        let (kind, message) = match (old, new) {
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

    fn interfaces(&mut self, name: &str, old_ty: &TypeDef, new_ty: &TypeDef, new_span: Option<Pos>) {
        let (old, new) = (self.old, self.new);
        let (old_refs, new_refs) = (old.refs_of(old_ty), new.refs_of(new_ty));
        for o in old_refs {
            let i = old.str(o.name);
            if !new_refs.iter().any(|n| new.str(n.name) == i) {
                self.at_old(
                    ChangeKind::ImplementedInterfaceRemoved,
                    name.to_owned(),
                    format!("`{name}` no longer implements interface `{i}`."),
                    format!(
                        "the operation uses interface `{i}`; `{name}` objects no longer match fragments on it and can no longer be returned where it is expected"
                    ),
                    o.pos,
                    new_span,
                    Touch::key(i, mask::ANY),
                );
            }
        }
        for n in new_refs {
            let i = new.str(n.name);
            if !old_refs.iter().any(|o| old.str(o.name) == i) {
                self.at_new(
                    ChangeKind::ImplementedInterfaceAdded,
                    name.to_owned(),
                    format!("`{name}` now implements interface `{i}`."),
                    format!(
                        "fragments on `{i}` now also match `{name}` objects, so the component may receive fields it did not get before"
                    ),
                    n.pos,
                    Touch::key(i, mask::CONDITION),
                );
            }
        }
    }

    fn union_members(&mut self, name: &str, old_ty: &TypeDef, new_ty: &TypeDef, new_span: Option<Pos>) {
        let (old, new) = (self.old, self.new);
        let (old_refs, new_refs) = (old.refs_of(old_ty), new.refs_of(new_ty));
        for o in old_refs {
            let m = old.str(o.name);
            if !new_refs.iter().any(|n| new.str(n.name) == m) {
                self.at_old(
                    ChangeKind::TypeRemovedFromUnion,
                    name.to_owned(),
                    format!("`{m}` was removed from union type `{name}`."),
                    format!(
                        "the operation selects `... on {m}` where `{name}` is returned; it no longer validates"
                    ),
                    o.pos,
                    new_span,
                    Touch::All(vec![Touch::key(name, mask::ANY), Touch::key(m, mask::CONDITION)]),
                );
            }
        }
        for n in new_refs {
            let m = new.str(n.name);
            if !old_refs.iter().any(|o| old.str(o.name) == m) {
                self.at_new(
                    ChangeKind::TypeAddedToUnion,
                    name.to_owned(),
                    format!("`{m}` was added to union type `{name}`."),
                    format!("a `{m}` object may now reach a component that handles `{name}` by __typename"),
                    n.pos,
                    Touch::key(name, mask::OUTPUT),
                );
            }
        }
    }

    fn enum_values(&mut self, name: &str, old_ty: &TypeDef, new_ty: &TypeDef, new_span: Option<Pos>) {
        let (old, new) = (self.old, self.new);
        for o in old.values_of(old_ty) {
            let v = old.str(o.name);
            let n = new.value(new_ty, v);
            if n.is_some_and(|n| {
                self.old_str(o.description) == self.new_str(n.description)
                    && self.old_str(o.deprecation) == self.new_str(n.deprecation)
            }) {
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
                    o.pos,
                    new_span,
                    Touch::Any(vec![Touch::key(coordinate, mask::ANY), Touch::key(name, mask::INPUT)]),
                ),
                Some(n) => {
                    self.description(
                        coordinate.clone(),
                        self.old_str(o.description),
                        self.new_str(n.description),
                        n.pos,
                    );
                    let (od, nd) = (self.old_str(o.deprecation), self.new_str(n.deprecation));
                    if od != nd {
                        let touch = Touch::Any(vec![
                            Touch::key(coordinate.clone(), mask::ANY),
                            Touch::key(name, mask::OUTPUT | mask::INPUT),
                        ]);
                        self.deprecation(&coordinate, od, nd, n.pos, touch);
                    }
                }
            }
        }
        for n in new.values_of(new_ty) {
            let v = new.str(n.name);
            if old.value(old_ty, v).is_none() {
                let coordinate = format!("{name}.{v}");
                self.at_new(
                    ChangeKind::ValueAddedToEnum,
                    coordinate.clone(),
                    format!("Enum value `{coordinate}` was added."),
                    format!("a new enum value {coordinate} may reach a component's switch over {name}"),
                    n.pos,
                    Touch::key(name, mask::OUTPUT),
                );
            }
        }
    }

    fn output_fields(&mut self, type_name: &str, old_ty: &TypeDef, new_ty: &TypeDef, type_span: Option<Pos>) {
        let (old, new) = (self.old, self.new);
        for o in old.fields_of(old_ty) {
            let f = old.str(o.name);
            let n = new.field(new_ty, f);
            if n.is_some_and(|n| self.same_field(o, n)) {
                continue;
            }
            let coordinate = format!("{type_name}.{f}");
            let Some(n) = n else {
                let was = if o.deprecation.is_some() { " (it was deprecated)" } else { "" };
                self.at_old(
                    ChangeKind::FieldRemoved,
                    coordinate.clone(),
                    format!("Field `{coordinate}` was removed{was}."),
                    format!("the operation selects `{coordinate}`; it no longer validates"),
                    o.pos,
                    type_span,
                    Touch::key(coordinate, mask::OUTPUT),
                );
                continue;
            };
            let span = n.pos;
            let field_touch = || Touch::key(coordinate.clone(), mask::OUTPUT);
            let (ot, nt) = (old.str(o.ty), new.str(n.ty));
            if ot != nt {
                if safe_for_output(ot, nt) {
                    self.at_new(
                        ChangeKind::FieldTypeChangedSafe,
                        coordinate.clone(),
                        format!(
                            "Field `{coordinate}` changed type from `{ot}` to `{nt}` (compatible for clients)."
                        ),
                        String::new(),
                        span,
                        field_touch(),
                    );
                } else {
                    self.at_new(
                        ChangeKind::FieldChangedKind,
                        coordinate.clone(),
                        format!("Field `{coordinate}` changed type from `{ot}` to `{nt}`."),
                        format!(
                            "the operation selects `{coordinate}` and may get a value of a shape it does not expect (`{ot}` → `{nt}`)"
                        ),
                        span,
                        field_touch(),
                    );
                }
            }
            self.description(
                coordinate.clone(),
                self.old_str(o.description),
                self.new_str(n.description),
                span,
            );
            let (od, nd) = (self.old_str(o.deprecation), self.new_str(n.deprecation));
            if od != nd {
                self.deprecation(&coordinate, od, nd, span, field_touch());
            }
            self.arguments(ArgOwner::Field(&coordinate), old.args(o.args), new.args(n.args), span);
        }
        for n in new.fields_of(new_ty) {
            let f = new.str(n.name);
            if old.field(old_ty, f).is_none() {
                let coordinate = format!("{type_name}.{f}");
                self.at_new(
                    ChangeKind::FieldAdded,
                    coordinate.clone(),
                    format!("Field `{coordinate}` of type `{}` was added.", new.str(n.ty)),
                    String::new(),
                    n.pos,
                    Touch::Never,
                );
            }
        }
    }

    /// Compares the argument lists of a field or a directive (`old_args` in the old schema,
    /// `new_args` in the new one).
    fn arguments(
        &mut self,
        owner: ArgOwner<'_>,
        old_args: &[InputDef],
        new_args: &[InputDef],
        owner_span: Option<Pos>,
    ) {
        let (old, new) = (self.old, self.new);
        let owner_coord = owner.coordinate();
        let (what, owner_mask) = match owner {
            ArgOwner::Field(_) => ("field", mask::OUTPUT),
            ArgOwner::Directive(_) => ("directive", mask::DIRECTIVE),
        };
        let owner_touch = || Touch::key(owner_coord, owner_mask);
        for o in old_args {
            let a = old.str(o.name);
            let n = new_args.iter().find(|n| new.str(n.name) == a);
            if n.is_some_and(|n| self.same_input(o, n)) {
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
                    o.pos,
                    owner_span,
                    arg_touch,
                );
                continue;
            };
            let span = n.pos;
            let (ot, nt) = (old.str(o.ty), new.str(n.ty));
            if ot != nt {
                if safe_for_input(ot, nt) {
                    self.at_new(
                        ChangeKind::ArgTypeChangedSafe,
                        coordinate.clone(),
                        format!(
                            "Argument `{coordinate}` changed type from `{ot}` to `{nt}` (compatible for clients)."
                        ),
                        String::new(),
                        span,
                        arg_touch.clone(),
                    );
                } else {
                    self.at_new(
                        ChangeKind::ArgChangedKind,
                        coordinate.clone(),
                        format!("Argument `{coordinate}` changed type from `{ot}` to `{nt}`."),
                        format!(
                            "the operation passes `{a}`; a value of type `{ot}` may no longer be accepted as `{nt}`"
                        ),
                        span,
                        arg_touch.clone(),
                    );
                }
            }
            let (od, nd) = (self.old_str(o.default), self.new_str(n.default));
            // Where an operation leaves the argument unset: omitted, or a nullable variable
            // with no default that the client may leave out.
            let unset_touch = || Touch::key(format!("{coordinate}#unset"), mask::INPUT | mask::DIRECTIVE);
            if !o.required && n.required && safe_for_input(ot, nt) {
                self.at_new(
                    ChangeKind::ArgBecameRequired,
                    coordinate.clone(),
                    format!(
                        "Argument `{coordinate}` of type `{nt}` lost its default value {} and is now required.",
                        show_default(od)
                    ),
                    format!(
                        "the operation uses `{owner_coord}` without `{a}` (or with a variable that may be unset); it no longer validates"
                    ),
                    span,
                    unset_touch(),
                );
            } else if od != nd {
                let (from, to) = (show_default(od), show_default(nd));
                self.at_new(
                    ChangeKind::ArgDefaultValueChange,
                    coordinate.clone(),
                    format!("The default value of argument `{coordinate}` changed from {from} to {to}."),
                    format!(
                        "the operation uses `{owner_coord}` without `{a}` (or with a variable that may be unset), so it now gets the default {to} instead of {from}"
                    ),
                    span,
                    unset_touch(),
                );
            }
            self.description(
                coordinate.clone(),
                self.old_str(o.description),
                self.new_str(n.description),
                span,
            );
            let (o_dep, n_dep) = (self.old_str(o.deprecation), self.new_str(n.deprecation));
            if o_dep != n_dep {
                self.deprecation(&coordinate, o_dep, n_dep, span, arg_touch);
            }
        }
        for n in new_args {
            let a = new.str(n.name);
            if old_args.iter().any(|o| old.str(o.name) == a) {
                continue;
            }
            let coordinate = format!("{owner_coord}({a}:)");
            let (kind, impact) = match (owner, n.required) {
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
            let req = if n.required { "Required" } else { "Optional" };
            let default = self.new_str(n.default).map(|v| format!(" (default `{v}`)")).unwrap_or_default();
            let touch = if kind == ChangeKind::DirectiveArgAdded { Touch::Never } else { owner_touch() };
            self.at_new(
                kind,
                coordinate.clone(),
                format!(
                    "{req} argument `{coordinate}` of type `{}`{default} was added to {what} `{owner_coord}`.",
                    new.str(n.ty)
                ),
                impact,
                n.pos,
                touch,
            );
        }
    }

    fn input_fields(&mut self, type_name: &str, old_ty: &TypeDef, new_ty: &TypeDef, type_span: Option<Pos>) {
        let (old, new) = (self.old, self.new);
        let type_touch = || Touch::key(type_name, mask::INPUT | mask::LITERAL);
        for o in old.input_fields_of(old_ty) {
            let f = old.str(o.name);
            let n = new.input_field(new_ty, f);
            if n.is_some_and(|n| self.same_input(o, n)) {
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
                    o.pos,
                    type_span,
                    field_touch,
                );
                continue;
            };
            let span = n.pos;
            let (ot, nt) = (old.str(o.ty), new.str(n.ty));
            if ot != nt {
                if safe_for_input(ot, nt) {
                    self.at_new(
                        ChangeKind::FieldTypeChangedSafe,
                        coordinate.clone(),
                        format!(
                            "Input field `{coordinate}` changed type from `{ot}` to `{nt}` (compatible for clients)."
                        ),
                        String::new(),
                        span,
                        field_touch.clone(),
                    );
                } else {
                    self.at_new(
                        ChangeKind::FieldChangedKind,
                        coordinate.clone(),
                        format!("Input field `{coordinate}` changed type from `{ot}` to `{nt}`."),
                        format!(
                            "the operation sends `{type_name}`; a `{f}` of type `{ot}` may no longer be accepted as `{nt}`"
                        ),
                        span,
                        field_touch.clone(),
                    );
                }
            }
            let (od, nd) = (self.old_str(o.default), self.new_str(n.default));
            // Where an operation may leave the field unset: a literal without it (or with a
            // variable that may be unset), or any variable that carries the type (its value is
            // not in the operation).
            let unset_touch = || {
                Touch::Any(vec![
                    Touch::key(type_name, mask::INPUT),
                    Touch::key(format!("{coordinate}#unset"), mask::LITERAL),
                ])
            };
            if !o.required && n.required && safe_for_input(ot, nt) {
                self.at_new(
                    ChangeKind::InputFieldBecameRequired,
                    coordinate.clone(),
                    format!(
                        "Input field `{coordinate}` of type `{nt}` lost its default value {} and is now required.",
                        show_default(od)
                    ),
                    format!(
                        "the operation sends `{type_name}` and may omit `{f}`; such a value is now refused"
                    ),
                    span,
                    unset_touch(),
                );
            } else if od != nd {
                let (from, to) = (show_default(od), show_default(nd));
                self.at_new(
                    ChangeKind::InputFieldDefaultValueChange,
                    coordinate.clone(),
                    format!("The default value of input field `{coordinate}` changed from {from} to {to}."),
                    format!(
                        "the operation sends `{type_name}` and may omit `{f}`, which now defaults to {to} instead of {from}"
                    ),
                    span,
                    unset_touch(),
                );
            }
            self.description(
                coordinate.clone(),
                self.old_str(o.description),
                self.new_str(n.description),
                span,
            );
            let (o_dep, n_dep) = (self.old_str(o.deprecation), self.new_str(n.deprecation));
            if o_dep != n_dep {
                self.deprecation(&coordinate, o_dep, n_dep, span, field_touch);
            }
        }
        for n in new.input_fields_of(new_ty) {
            let f = new.str(n.name);
            if old.input_field(old_ty, f).is_some() {
                continue;
            }
            let coordinate = format!("{type_name}.{f}");
            let nt = new.str(n.ty);
            let (kind, message, impact) = if new_ty.one_of {
                // A oneOf field is nullable with no default (checked when loading): callers
                // keep sending exactly one of the other fields, which mean what they meant.
                (
                    ChangeKind::OneOfInputFieldAdded,
                    format!("Field `{coordinate}` of type `{nt}` was added to @oneOf input `{type_name}`."),
                    String::new(),
                )
            } else if n.required {
                (
                    ChangeKind::RequiredInputFieldAdded,
                    format!("Required input field `{coordinate}` of type `{nt}` was added."),
                    format!(
                        "the operation sends `{type_name}` without the new required field `{f}`; the request will be rejected"
                    ),
                )
            } else {
                (
                    ChangeKind::OptionalInputFieldAdded,
                    format!("Optional input field `{coordinate}` of type `{nt}` was added."),
                    format!(
                        "the operation sends `{type_name}`; the new optional field `{f}` takes its default when omitted"
                    ),
                )
            };
            let touch = if kind == ChangeKind::OneOfInputFieldAdded { Touch::Never } else { type_touch() };
            self.at_new(kind, coordinate, message, impact, n.pos, touch);
        }
    }

    // ----- directives ----------------------------------------------------------------------

    fn directives(&mut self /* all directive definitions */) {
        let (old, new) = (self.old, self.new);
        for o in &old.directives {
            let name = old.str(o.name);
            let coordinate = format!("@{name}");
            let touch = || Touch::key(coordinate.clone(), mask::DIRECTIVE);
            let Some(n) = new.directive_named(name) else {
                self.at_old(
                    ChangeKind::DirectiveRemoved,
                    coordinate.clone(),
                    format!("Directive `{coordinate}` was removed."),
                    format!("the operation uses `{coordinate}`; it no longer validates"),
                    o.pos,
                    None,
                    touch(),
                );
                continue;
            };
            // `@oneOf` is built in (added on load when a schema does not define it).
            if (o.built_in && n.built_in) || name == "oneOf" {
                continue;
            }
            let span = n.pos;
            self.description(
                coordinate.clone(),
                self.old_str(o.description),
                self.new_str(n.description),
                span,
            );
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
            let (old_locs, new_locs) = (old.locations_of(o), new.locations_of(n));
            for loc in old_locs {
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
            for loc in new_locs {
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
            self.arguments(ArgOwner::Directive(&coordinate), old.args(o.args), new.args(n.args), span);
        }
        for n in &new.directives {
            let name = new.str(n.name);
            if old.directive_named(name).is_none() {
                let coordinate = format!("@{name}");
                self.at_new(
                    ChangeKind::DirectiveAdded,
                    coordinate.clone(),
                    format!("Directive `{coordinate}` was added."),
                    String::new(),
                    n.pos,
                    Touch::Never,
                );
            }
        }
    }
}

/// A default value as the messages show it: `` `value` `` or `none`.
fn show_default(v: Option<&str>) -> String {
    match v {
        Some(v) => format!("`{v}`"),
        None => "none".to_owned(),
    }
}
