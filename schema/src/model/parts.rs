//! The base of a comparison read into its compact model a chunk of text at a time, from
//! cynic-parser's syntax trees ([`crate::sdl::load_base_compact`]).
//!
//! The base was validated as the new schema of the change that made it the base, so it needs no
//! validation, only its model. apollo-compiler's parser builds a lossless syntax tree, then an
//! AST, then a schema of nodes: about 90 ms of CPU for 1.7 MB of SDL, most of a `schema diff`.
//! cynic-parser builds one compact tree of a chunk in about a third of that, and the model is
//! read straight from it. What the model holds is what [`super::build`] makes of apollo-compiler's
//! schema of the same text, checked by `model_from_chunks_is_apollo_compilers` below: the same
//! string values (escapes and block strings decoded here from the source text by the
//! specification's rules, as apollo-compiler decodes them; cynic-parser's own decoding differs
//! in places: `\b`, block-string indents of any Unicode white space), positions, printed types
//! and canonical default values (through apollo-compiler's own printing).
//!
//! Anything whose meaning needs the whole schema, or that apollo-compiler would reject, is
//! [`NeedsWholeSchema`]: the caller loads the text whole and validated instead.

use apollo_compiler::ast::{DirectiveLocation, FloatValue, IntValue, Value};
use apollo_compiler::{Name, Node, Schema};
use cynic_parser::common::OperationType;
use cynic_parser::type_system::{
    Definition, Description, Directive, FieldDefinition, InputValueDefinition, Type, TypeDefinition,
};
use cynic_parser::{ConstValue, Span, TypeSystemDocument};

use super::{
    CompactSchema, DirectiveDef, FieldDef, InputDef, Kind, LineIndex, Locator, Pos, RefDef, Root, Slice, Sym,
    TypeDef, ValueDef,
};

/// Builds a [`CompactSchema`] from consecutive chunks of one text (each a whole number of
/// top-level definitions, parsed by cynic-parser): the model [`super::build`] makes of the whole
/// schema, without the whole schema ever in memory.
pub(crate) struct PartsBuilder {
    m: CompactSchema,
    scratch: String,
    /// Whether a chunk held the schema definition (else the roots are the types named `Query`,
    /// `Mutation` and `Subscription`, as apollo-compiler infers them).
    schema_definition: bool,
}

/// Why [`PartsBuilder::add`] cannot take a chunk: the schema needs building whole.
#[derive(Debug)]
pub(crate) struct NeedsWholeSchema;

impl PartsBuilder {
    /// A builder holding the built-in types and directives (as every apollo-compiler schema
    /// does), whose tables have, up front, the room `like`'s take (with a little to spare):
    /// grown a chunk at a time instead, the larger tables would be copied as they double and
    /// land past memory the caller has just freed (a whole schema of apollo-compiler's, in small
    /// pieces), raising the process's peak.
    pub(crate) fn new(path: &str, hash: &str, like: Option<&CompactSchema>) -> PartsBuilder {
        let mut m = CompactSchema::empty(path, hash);
        if let Some(like) = like {
            let room = |n: usize| n + n / 16;
            m.types.reserve_exact(room(like.types.len()));
            m.directives.reserve_exact(room(like.directives.len()));
            m.fields.reserve_exact(room(like.fields.len()));
            m.inputs.reserve_exact(room(like.inputs.len()));
            m.values.reserve_exact(room(like.values.len()));
            m.refs.reserve_exact(room(like.refs.len()));
            m.locations.reserve_exact(room(like.locations.len()));
            m.type_by_name.reserve(room(like.types.len()));
            m.strings.text.reserve_exact(room(like.strings.text.len()));
            m.strings.spans.reserve_exact(room(like.strings.spans.len()));
            m.strings.reserve_table(room(like.strings.spans.len()));
        }
        let built_in = Schema::new();
        let locator = Locator::per_file(&built_in.sources);
        let mut b = super::Builder { locator: &locator, scratch: String::new(), m: &mut m };
        for (name, ty) in &built_in.types {
            b.add_type(name, ty);
        }
        for (name, d) in &built_in.directive_definitions {
            b.add_directive(name, d);
        }
        PartsBuilder { m, scratch: String::new(), schema_definition: false }
    }

    /// Adds the next chunk's definitions, in its order, after those of the chunks before it.
    /// `chunk` is the chunk's text, at byte `offset` of the text `lines` indexes.
    pub(crate) fn add(
        &mut self,
        document: &TypeSystemDocument,
        chunk: &str,
        offset: usize,
        lines: &LineIndex,
    ) -> Result<(), NeedsWholeSchema> {
        let mut reader =
            Reader { chunk, offset, lines, scratch: std::mem::take(&mut self.scratch), m: &mut self.m };
        for definition in document.definitions() {
            match definition {
                Definition::Type(ty) => reader.add_type(ty)?,
                Definition::Directive(d) => reader.add_directive(d)?,
                Definition::Schema(schema) => {
                    if std::mem::replace(&mut self.schema_definition, true) {
                        return Err(NeedsWholeSchema);
                    }
                    for root in schema.root_operations() {
                        let i = match root.operation_type() {
                            OperationType::Query => 0,
                            OperationType::Mutation => 1,
                            OperationType::Subscription => 2,
                        };
                        let named = Root {
                            name: reader.m.strings.intern(root.named_type()),
                            pos: reader.pos(root.named_type_span()),
                        };
                        if reader.m.roots[i].replace(named).is_some() {
                            return Err(NeedsWholeSchema);
                        }
                    }
                }
                // An extension may extend a definition of another chunk.
                Definition::SchemaExtension(_) | Definition::TypeExtension(_) => {
                    return Err(NeedsWholeSchema);
                }
            }
        }
        self.scratch = std::mem::take(&mut reader.scratch);
        Ok(())
    }

    /// The model, as [`load_sdl`](crate::load_sdl)'s building and validation leave a schema: with
    /// no schema definition, the roots are the object types of the default names; `@oneOf` is
    /// added after the text's directives when the text does not define it; a built-in scalar no
    /// field, argument or input field refers to is left out. A type with two members of one name
    /// (which apollo-compiler rejects) needs the whole schema.
    pub(crate) fn finish(mut self) -> Result<CompactSchema, NeedsWholeSchema> {
        if !self.schema_definition {
            for (i, default) in ["Query", "Mutation", "Subscription"].into_iter().enumerate() {
                let object = self.m.type_named(default).filter(|t| t.kind == Kind::Object);
                self.m.roots[i] = object.map(|t| Root { name: t.name, pos: None });
            }
        }
        let one_of = apollo_compiler::name!("oneOf");
        if self.m.directive_named(&one_of).is_none() {
            let no_files = apollo_compiler::parser::SourceMap::default();
            let locator = Locator::per_file(&no_files);
            let mut b = super::Builder { locator: &locator, scratch: String::new(), m: &mut self.m };
            b.add_directive(&one_of, &crate::sdl::one_of_definition());
        }
        let m = &mut self.m;
        let used: std::collections::HashSet<Sym> =
            m.fields.iter().map(|f| f.named).chain(m.inputs.iter().map(|i| i.named)).collect();
        m.types.retain(|t| !(t.kind == Kind::Scalar && t.built_in) || used.contains(&t.name));
        m.type_by_name = m.types.iter().enumerate().map(|(i, t)| (t.name, i as u32)).collect();
        m.finish();
        if m.has_duplicate_members() {
            return Err(NeedsWholeSchema);
        }
        Ok(self.m)
    }
}

impl CompactSchema {
    /// Whether a type has two fields, input fields or values of one name (each run of the
    /// `*_order` tables is sorted by name).
    fn has_duplicate_members(&self) -> bool {
        self.types.iter().any(|ty| {
            let (order, name_of): (&[u32], &dyn Fn(u32) -> Sym) = match ty.kind {
                Kind::Object | Kind::Interface => (&self.field_order, &|i| self.fields[i as usize].name),
                Kind::InputObject => (&self.input_order, &|i| self.inputs[i as usize].name),
                Kind::Enum => (&self.value_order, &|i| self.values[i as usize].name),
                Kind::Scalar | Kind::Union => return false,
            };
            order[ty.members.range()].windows(2).any(|w| name_of(w[0]) == name_of(w[1]))
        })
    }
}

/// Reads one chunk's definitions into the model.
struct Reader<'r> {
    chunk: &'r str,
    offset: usize,
    lines: &'r LineIndex,
    scratch: String,
    m: &'r mut CompactSchema,
}

impl Reader<'_> {
    fn intern(&mut self, text: &str) -> Sym {
        self.m.strings.intern(text)
    }

    fn pos(&self, span: Span) -> Option<Pos> {
        self.lines.pos(self.offset + span.start)
    }

    /// The source text of `span`.
    fn source(&self, span: Span) -> Result<&str, NeedsWholeSchema> {
        self.chunk.get(span.start..span.end).ok_or(NeedsWholeSchema)
    }

    fn description(&mut self, description: Option<Description<'_>>) -> Result<Option<Sym>, NeedsWholeSchema> {
        let Some(description) = description else { return Ok(None) };
        let value = string_value(self.source(description.span())?).ok_or(NeedsWholeSchema)?;
        Ok(Some(self.intern(value.trim())))
    }

    /// The reason of the first `@deprecated`, as [`crate::diff::deprecation_reason`] reads it.
    fn deprecation<'d>(
        &mut self,
        mut directives: impl Iterator<Item = Directive<'d>>,
    ) -> Result<Option<Sym>, NeedsWholeSchema> {
        let Some(deprecated) = directives.find(|d| d.name() == "deprecated") else { return Ok(None) };
        let reason = match deprecated.arguments().find(|a| a.name() == "reason").map(|a| a.value()) {
            Some(value @ ConstValue::String(_)) => {
                string_value(self.source(value.span())?).ok_or(NeedsWholeSchema)?
            }
            _ => "No longer supported".to_owned(),
        };
        Ok(Some(self.intern(&reason)))
    }

    /// The printed type and the named type inside it.
    fn ty(&mut self, ty: Type<'_>) -> (Sym, Sym) {
        let printed = self.m.strings.intern_printed(&mut self.scratch, ty);
        (printed, self.intern(ty.name()))
    }

    fn add_type(&mut self, ty: TypeDefinition<'_>) -> Result<(), NeedsWholeSchema> {
        // A second definition of a name, or one of a built-in type's: apollo-compiler rejects
        // both.
        if self.m.type_named(ty.name()).is_some() {
            return Err(NeedsWholeSchema);
        }
        let (kind, refs, members, name_span) = match ty {
            TypeDefinition::Scalar(s) => (Kind::Scalar, Slice::default(), Slice::default(), s.name_span()),
            TypeDefinition::Object(o) => {
                let refs = self.add_interfaces(o.name_span(), o.implements_interfaces())?;
                (Kind::Object, refs, self.add_fields(o.fields())?, o.name_span())
            }
            TypeDefinition::Interface(i) => {
                let refs = self.add_interfaces(i.name_span(), i.implements_interfaces())?;
                (Kind::Interface, refs, self.add_fields(i.fields())?, i.name_span())
            }
            TypeDefinition::Union(u) => {
                let start = self.m.refs.len() as u32;
                for member in u.members() {
                    let r = RefDef { name: self.intern(member.name()), pos: self.pos(member.span()) };
                    self.m.refs.push(r);
                }
                (Kind::Union, Slice { start, end: self.m.refs.len() as u32 }, Slice::default(), u.name_span())
            }
            TypeDefinition::Enum(e) => {
                let start = self.m.values.len() as u32;
                for v in e.values() {
                    let def = ValueDef {
                        name: self.intern(v.value()),
                        pos: self.pos(v.value_span()),
                        description: self.description(v.description())?,
                        deprecation: self.deprecation(v.directives())?,
                    };
                    self.m.values.push(def);
                }
                (
                    Kind::Enum,
                    Slice::default(),
                    Slice { start, end: self.m.values.len() as u32 },
                    e.name_span(),
                )
            }
            TypeDefinition::InputObject(io) => {
                (Kind::InputObject, Slice::default(), self.add_inputs(io.fields())?, io.name_span())
            }
        };
        let def = TypeDef {
            name: self.intern(ty.name()),
            kind,
            built_in: false,
            one_of: kind == Kind::InputObject && ty.directives().any(|d| d.name() == "oneOf"),
            pos: self.pos(name_span),
            description: self.description(ty.description())?,
            refs,
            members,
        };
        let index = self.m.types.len() as u32;
        self.m.type_by_name.insert(def.name, index);
        self.m.types.push(def);
        Ok(())
    }

    /// A directive definition; one of a built-in directive's name takes the built-in one's
    /// place, once, as in apollo-compiler.
    fn add_directive(
        &mut self,
        d: cynic_parser::type_system::DirectiveDefinition<'_>,
    ) -> Result<(), NeedsWholeSchema> {
        let replaces = self.m.sym(d.name()).and_then(|sym| self.m.directive_by_name.get(&sym).copied());
        if replaces.is_some_and(|i| !self.m.directives[i as usize].built_in) {
            return Err(NeedsWholeSchema);
        }
        let args = self.add_inputs(d.arguments())?;
        let start = self.m.locations.len() as u32;
        for location in d.locations() {
            self.m.locations.push(location_of(location));
        }
        let locations = Slice { start, end: self.m.locations.len() as u32 };
        let def = DirectiveDef {
            name: self.intern(d.name()),
            // cynic-parser's span of the name takes in the `@`; apollo-compiler's does not.
            pos: self.pos(Span::new(d.name_span().end - d.name().len(), d.name_span().end)),
            built_in: false,
            description: self.description(d.description())?,
            repeatable: d.is_repeatable(),
            locations,
            args,
        };
        match replaces {
            Some(index) => self.m.directives[index as usize] = def,
            None => {
                let index = self.m.directives.len() as u32;
                self.m.directive_by_name.insert(def.name, index);
                self.m.directives.push(def);
            }
        }
        Ok(())
    }

    fn add_fields<'d>(
        &mut self,
        defs: impl Iterator<Item = FieldDefinition<'d>>,
    ) -> Result<Slice, NeedsWholeSchema> {
        // Arguments go to `inputs` first, so a field's arguments are one run.
        let start = self.m.fields.len() as u32;
        for f in defs {
            let args = self.add_inputs(f.arguments())?;
            let (ty, named) = self.ty(f.ty());
            let def = FieldDef {
                name: self.intern(f.name()),
                ty,
                named,
                pos: self.pos(f.name_span()),
                description: self.description(f.description())?,
                deprecation: self.deprecation(f.directives())?,
                args,
            };
            self.m.fields.push(def);
        }
        Ok(Slice { start, end: self.m.fields.len() as u32 })
    }

    fn add_inputs<'d>(
        &mut self,
        defs: impl Iterator<Item = InputValueDefinition<'d>>,
    ) -> Result<Slice, NeedsWholeSchema> {
        let start = self.m.inputs.len() as u32;
        for d in defs {
            let (ty, named) = self.ty(d.ty());
            let default = match d.default_value() {
                Some(value) => {
                    let printed = super::canonical_value(&self.apollo_value(value)?);
                    Some(self.intern(&printed))
                }
                None => None,
            };
            let def = InputDef {
                name: self.intern(d.name()),
                ty,
                named,
                pos: self.pos(d.name_span()),
                description: self.description(d.description())?,
                deprecation: self.deprecation(d.directives())?,
                default,
                required: d.ty().is_non_null() && default.is_none(),
            };
            self.m.inputs.push(def);
        }
        Ok(Slice { start, end: self.m.inputs.len() as u32 })
    }

    /// The interfaces a type implements, at the positions of their names: cynic-parser keeps
    /// their names only, so they are found in the text after the type's name.
    fn add_interfaces<'d>(
        &mut self,
        type_name: Span,
        names: impl ExactSizeIterator<Item = &'d str>,
    ) -> Result<Slice, NeedsWholeSchema> {
        let start = self.m.refs.len() as u32;
        if names.len() > 0 {
            let mut found = NameTokens { text: self.chunk, at: type_name.end };
            match found.next() {
                Some(("implements", _)) => {}
                _ => return Err(NeedsWholeSchema),
            }
            for name in names {
                let at = match found.next() {
                    Some((token, at)) if token == name => at,
                    _ => return Err(NeedsWholeSchema),
                };
                let r = RefDef { name: self.intern(name), pos: self.lines.pos(self.offset + at) };
                self.m.refs.push(r);
            }
        }
        Ok(Slice { start, end: self.m.refs.len() as u32 })
    }

    /// `value` as apollo-compiler's AST holds it, for [`super::canonical_value`].
    fn apollo_value(&self, value: ConstValue<'_>) -> Result<Value, NeedsWholeSchema> {
        Ok(match value {
            ConstValue::Int(_) => Value::Int(IntValue::new_parsed(self.source(value.span())?)),
            ConstValue::Float(_) => Value::Float(FloatValue::new_parsed(self.source(value.span())?)),
            ConstValue::String(_) => {
                Value::String(string_value(self.source(value.span())?).ok_or(NeedsWholeSchema)?)
            }
            ConstValue::Boolean(b) => Value::Boolean(b.value()),
            ConstValue::Null(_) => Value::Null,
            ConstValue::Enum(e) => Value::Enum(Name::new(e.name()).map_err(|_| NeedsWholeSchema)?),
            ConstValue::List(items) => Value::List(
                items.items().map(|item| self.apollo_value(item).map(Node::new)).collect::<Result<_, _>>()?,
            ),
            ConstValue::Object(fields) => Value::Object(
                fields
                    .fields()
                    .map(|f| {
                        let name = Name::new(f.name()).map_err(|_| NeedsWholeSchema)?;
                        Ok((name, Node::new(self.apollo_value(f.value())?)))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// The names of a text from a byte offset on, each with where it starts, stopping at the first
/// token that is not a name, `&`, or ignored (white space, a comma, a comment): what follows a
/// type's name up to its directives or fields.
struct NameTokens<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Iterator for NameTokens<'t> {
    type Item = (&'t str, usize);

    fn next(&mut self) -> Option<(&'t str, usize)> {
        let bytes = self.text.as_bytes();
        loop {
            match bytes.get(self.at)? {
                b' ' | b'\t' | b'\n' | b'\r' | b',' | b'&' => self.at += 1,
                b'#' => {
                    while bytes.get(self.at).is_some_and(|&b| b != b'\n' && b != b'\r') {
                        self.at += 1;
                    }
                }
                b if b.is_ascii_alphabetic() || *b == b'_' => {
                    let start = self.at;
                    while bytes.get(self.at).is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_') {
                        self.at += 1;
                    }
                    return Some((&self.text[start..self.at], start));
                }
                _ => return None,
            }
        }
    }
}

fn location_of(location: cynic_parser::type_system::DirectiveLocation) -> DirectiveLocation {
    use cynic_parser::type_system::DirectiveLocation as L;
    match location {
        L::Query => DirectiveLocation::Query,
        L::Mutation => DirectiveLocation::Mutation,
        L::Subscription => DirectiveLocation::Subscription,
        L::Field => DirectiveLocation::Field,
        L::FragmentDefinition => DirectiveLocation::FragmentDefinition,
        L::FragmentSpread => DirectiveLocation::FragmentSpread,
        L::InlineFragment => DirectiveLocation::InlineFragment,
        L::Schema => DirectiveLocation::Schema,
        L::Scalar => DirectiveLocation::Scalar,
        L::Object => DirectiveLocation::Object,
        L::FieldDefinition => DirectiveLocation::FieldDefinition,
        L::ArgumentDefinition => DirectiveLocation::ArgumentDefinition,
        L::Interface => DirectiveLocation::Interface,
        L::Union => DirectiveLocation::Union,
        L::Enum => DirectiveLocation::Enum,
        L::EnumValue => DirectiveLocation::EnumValue,
        L::InputObject => DirectiveLocation::InputObject,
        L::InputFieldDefinition => DirectiveLocation::InputFieldDefinition,
        L::VariableDefinition => DirectiveLocation::VariableDefinition,
    }
}

/// The value of a string literal as written (quotes included), per the specification's
/// `StringValue` and `BlockStringValue`; `None` for an escape the specification does not have.
pub(crate) fn string_value(literal: &str) -> Option<String> {
    if let Some(raw) = literal.strip_prefix("\"\"\"").and_then(|l| l.strip_suffix("\"\"\"")) {
        return Some(block_string_value(raw));
    }
    let raw = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next()? {
            c @ ('"' | '\\' | '/') => c,
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => unicode_escape(&mut chars)?,
            _ => return None,
        };
        out.push(decoded);
    }
    Some(out)
}

/// The character of a `\u` escape, after its `u`: `{hex digits}`, four hex digits, or a pair of
/// surrogates written as two escapes.
fn unicode_escape(chars: &mut std::str::Chars<'_>) -> Option<char> {
    fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
        (0..4).try_fold(0u32, |acc, _| Some(acc * 16 + chars.next()?.to_digit(16)?))
    }
    if chars.as_str().starts_with('{') {
        chars.next();
        let mut code = 0u32;
        loop {
            match chars.next()? {
                '}' => return char::from_u32(code),
                c => code = code.checked_mul(16)?.checked_add(c.to_digit(16)?)?,
            }
        }
    }
    let code = hex4(chars)?;
    if !(0xD800..0xDC00).contains(&code) {
        return char::from_u32(code);
    }
    let trail = chars.as_str().strip_prefix("\\u").map(|_| {
        chars.nth(1);
        hex4(chars)
    })??;
    if !(0xDC00..0xE000).contains(&trail) {
        return None;
    }
    char::from_u32(0x10000 + (code - 0xD800) * 0x400 + (trail - 0xDC00))
}

/// The specification's `BlockStringValue` of the text between the triple quotes, with `\"""`
/// read as `"""`.
fn block_string_value(raw: &str) -> String {
    let is_blank = |line: &str| line.bytes().all(|b| b == b' ' || b == b'\t');
    let indent = |line: &str| line.bytes().take_while(|&b| b == b' ' || b == b'\t').count();
    let common = graphql_lines(raw).skip(1).filter(|l| !is_blank(l)).map(indent).min().unwrap_or(0);
    let lines: Vec<&str> = graphql_lines(raw)
        .enumerate()
        .map(|(i, line)| if i == 0 { line } else { line.get(common..).unwrap_or("") })
        .collect();
    let first = lines.iter().position(|l| !is_blank(l)).unwrap_or(lines.len());
    let last = lines.iter().rposition(|l| !is_blank(l)).map_or(first, |i| i + 1);
    let mut out = String::with_capacity(raw.len());
    for (i, line) in lines[first..last.max(first)].iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&line.replace("\\\"\"\"", "\"\"\""));
    }
    out
}

/// The lines of a text split at `\r\n`, `\n` or `\r` (the specification's line terminators).
fn graphql_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(i) => {
                let skip = if text[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[i + skip..]);
                Some(&text[..i])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap on purpose

    use crate::sdl::{load_compact, model_in_parts};

    /// Strings with every escape, block strings with indents, tabs and each line end, default
    /// values of every kind, deprecations with and without reasons, a built-in directive
    /// redefined, interfaces named across a comment, a leading `|` and `&`, `@oneOf`, and the
    /// schema definition last (as async-graphql prints it). `<TAB>` and `<CR>` stand for
    /// themselves.
    const EVERYTHING: &str = r#"
"""
  Indented block
    more indented
<TAB>tab line<CR>
  after CR LF<CR>  after a lone CR
  \""" escaped triple

"""
type Query {
  "escapes \" \\ \/ \b \f \n \r \t \u00e9"
  a(
    "arg desc"
    x: Int = -12
    y: Float = -1.5e3
    z: [String!] = ["a\"b", """block
       default"""]
    w: In = {b: 2, a: {c: [1, 2], d: null}, e: RED}
    v: Boolean = false
  ): String @deprecated(reason: """
     Use b.
  """)
  b: [[Int!]]! @deprecated
  c: Int @deprecated(reason: null)
  d(e: Int! = 1, f: Int!): Node
  u: U
  one(by: One): Thing
  date: Date
}
input In { b: Int a: Inner e: Color }
input Inner { c: [Int] d: String }
enum Color { RED "green" GREEN @deprecated(reason: "no") }
interface Node { id: ID }
interface Named implements Node { id: ID name: String }
type Thing implements
  # implements Fake & Other
  & Node &
  Named @key { id: ID name: String }
directive @key repeatable on OBJECT | INTERFACE
"Replaces the built-in one."
directive @deprecated(reason: String = "No longer supported") on FIELD_DEFINITION | ENUM_VALUE | ARGUMENT_DEFINITION | INPUT_FIELD_DEFINITION
union U = | Thing | Query
input One @oneOf { a: Int b: String }
scalar Date @specifiedBy(url: "https://example.com/date")
type Mutation { m: Int }
schema { query: Query mutation: Mutation }
"#;

    fn everything() -> String {
        EVERYTHING.replace("<TAB>", "\t").replace("<CR>", "\r")
    }

    /// Read a chunk per definition and in one chunk, the model is the one apollo-compiler's
    /// validated schema gives.
    fn assert_read_as_apollo_compiler_builds(label: &str, text: &str) {
        let whole = load_compact(label, text).unwrap().listing();
        for chunk_bytes in [1, 64 * 1024] {
            let read = model_in_parts(label, text, chunk_bytes, None).unwrap_or_else(|| {
                panic!("{label} in chunks of {chunk_bytes} bytes needed the whole schema")
            });
            let read = read.listing();
            if read != whole {
                let first = read.lines().zip(whole.lines()).find(|(a, b)| a != b);
                panic!("{label}, chunks of {chunk_bytes} bytes: first difference (read, whole) {first:#?}");
            }
        }
    }

    #[test]
    fn model_from_chunks_is_apollo_compilers() {
        let text = everything();
        assert_read_as_apollo_compiler_builds("everything.graphql", &text);
        // Every kind of thing the test means to cover is there: the listing shows it.
        let listing = load_compact("e.graphql", &text).unwrap().listing();
        for expected in [
            "escapes \\\" \\\\ / \\u{8} \\u{c} \\n \\r \\t é",
            "Indented block\\n   more indented\\ntab line\\n after CR LF\\n after a lone CR\\n \\\"\\\"\\\" escaped",
            "default {a: {c: [1, 2], d: null}, b: 2, e: RED}",
            "default [\"a\\\"b\", \"\"\"\nblock\ndefault\n\"\"\"]",
            "default -1.5e3",
            "deprecated \"Use b.\"",
            "deprecated \"No longer supported\"",
            "ref Node at 38:5",
            "ref Named at 39:3",
            "root query: Query at 47:17",
            "directive @deprecated at 42:12 built-in false",
            "InputObject One at 44:7 built-in false one-of true",
        ] {
            assert!(listing.contains(expected), "{expected}\n{listing}");
        }
        // The roots the text does not name: inferred from the default names.
        let implicit = text.replace("schema { query: Query mutation: Mutation }\n", "");
        assert_read_as_apollo_compiler_builds("implicit.graphql", &implicit);
        assert!(
            load_compact("i.graphql", &implicit).unwrap().listing().contains("root mutation: Mutation at -")
        );
    }

    #[test]
    fn banyans_own_schema_is_read_as_apollo_compiler_builds_it() {
        assert_read_as_apollo_compiler_builds("schema.graphql", include_str!("../../schema.graphql"));
    }

    #[test]
    fn escapes_decode_as_the_specification_says() {
        use super::string_value;
        assert_eq!(string_value(r#""\u{1F600} \u0041 \uD83D\uDE00 \b""#).unwrap(), "😀 A 😀 \u{8}");
        assert_eq!(string_value("\"\"\"\n    a\n      b\n\n\"\"\"").unwrap(), "a\n  b");
        for bad in [r#""\q""#, r#""\uD83D""#, r#""\uD83D\u0041""#, r#""\u{110000}""#, r#""\u12""#] {
            assert_eq!(string_value(bad), None, "{bad}");
        }
    }
}
