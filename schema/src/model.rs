//! A compact, owned model of one schema: exactly what the diff ([`crate::diff()`]) and the usage
//! walks ([`crate::usage`]) read, in flat vectors with interned strings and the precomputed
//! `line:col` of every definition a change can point at.
//!
//! apollo-compiler keeps about 27 MiB live for a validated 1.7 MB schema (a node per
//! definition, each with its spans, names and maps); this model keeps a few MiB, so the
//! contract commands build it from apollo-compiler's schema and drop that schema at once, and
//! at most one apollo-compiler schema is ever alive (README, "Schema diff and check at scale").
//! The base of a comparison, validated before, is read into it from cynic-parser's trees
//! instead, a chunk at a time ([`parts`]).

use std::num::NonZeroU32;

use apollo_compiler::ast::{self, DirectiveLocation, OperationType, Value};
use apollo_compiler::collections::HashMap;
use apollo_compiler::parser::{FileId, SourceMap, SourceSpan};
use apollo_compiler::schema::{ComponentName, ExtendedType};
use apollo_compiler::{Node, Schema};

mod parts;

pub(crate) use parts::PartsBuilder;

/// A string of one model's table: names, type references as printed (`[Foo!]!`),
/// descriptions (trimmed), deprecation reasons, canonical default values.
///
/// Its number is the string's index plus one, so an `Option<Sym>` takes four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Sym(NonZeroU32);

/// A 1-based line and column, as apollo-compiler reports them (an `Option<Pos>` takes eight
/// bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: NonZeroU32,
    pub(crate) column: u32,
}

/// A run of entries in one of the model's flat vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Slice {
    start: u32,
    end: u32,
}

impl Slice {
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// The kind of a named type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Scalar,
    Object,
    Interface,
    Union,
    Enum,
    InputObject,
}

impl Kind {
    /// `a scalar`, `an object type`, … (as the diff's messages say it).
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Kind::Scalar => "a scalar",
            Kind::Object => "an object type",
            Kind::Interface => "an interface type",
            Kind::Union => "a union type",
            Kind::Enum => "an enum type",
            Kind::InputObject => "an input object type",
        }
    }
}

/// A named type.
#[derive(Debug, Clone)]
pub(crate) struct TypeDef {
    pub(crate) name: Sym,
    pub(crate) kind: Kind,
    pub(crate) built_in: bool,
    /// An input object with `@oneOf`.
    pub(crate) one_of: bool,
    pub(crate) pos: Option<Pos>,
    pub(crate) description: Option<Sym>,
    /// Implemented interfaces (objects, interfaces) or members (unions), in `refs`.
    pub(crate) refs: Slice,
    /// Fields (objects, interfaces: in `fields`), input fields (input objects: in `inputs`)
    /// or values (enums: in `values`).
    pub(crate) members: Slice,
}

/// An output field.
#[derive(Debug, Clone)]
pub(crate) struct FieldDef {
    pub(crate) name: Sym,
    /// The type as printed.
    pub(crate) ty: Sym,
    /// The named type inside the list and non-null wrappers.
    pub(crate) named: Sym,
    pub(crate) pos: Option<Pos>,
    pub(crate) description: Option<Sym>,
    pub(crate) deprecation: Option<Sym>,
    /// Arguments, in `inputs`.
    pub(crate) args: Slice,
}

/// An argument (of a field or a directive) or an input field.
#[derive(Debug, Clone)]
pub(crate) struct InputDef {
    pub(crate) name: Sym,
    /// The type as printed.
    pub(crate) ty: Sym,
    /// The named type inside the list and non-null wrappers.
    pub(crate) named: Sym,
    pub(crate) pos: Option<Pos>,
    pub(crate) description: Option<Sym>,
    pub(crate) deprecation: Option<Sym>,
    /// The default value, printed canonically (object fields sorted).
    pub(crate) default: Option<Sym>,
    /// Non-null with no default.
    pub(crate) required: bool,
}

/// An enum value.
#[derive(Debug, Clone)]
pub(crate) struct ValueDef {
    pub(crate) name: Sym,
    pub(crate) pos: Option<Pos>,
    pub(crate) description: Option<Sym>,
    pub(crate) deprecation: Option<Sym>,
}

/// A type named by another: an implemented interface or a union member.
#[derive(Debug, Clone)]
pub(crate) struct RefDef {
    pub(crate) name: Sym,
    pub(crate) pos: Option<Pos>,
}

/// A directive definition.
#[derive(Debug, Clone)]
pub(crate) struct DirectiveDef {
    pub(crate) name: Sym,
    pub(crate) pos: Option<Pos>,
    pub(crate) built_in: bool,
    pub(crate) description: Option<Sym>,
    pub(crate) repeatable: bool,
    /// In `locations`, in definition order.
    pub(crate) locations: Slice,
    /// Arguments, in `inputs`.
    pub(crate) args: Slice,
}

/// One root operation type of the schema definition.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    pub(crate) name: Sym,
    pub(crate) pos: Option<Pos>,
}

/// A schema reduced to what the diff and the usage walks read (see the module docs): build it
/// with [`Sdl::compact`](crate::Sdl::compact) or [`Sdl::into_compact`](crate::Sdl::into_compact),
/// or load it directly with [`load_compact`](crate::load_compact).
#[derive(Debug, Clone)]
pub struct CompactSchema {
    path: String,
    hash: String,
    strings: Strings,
    /// Query, mutation, subscription.
    pub(crate) roots: [Option<Root>; 3],
    /// In apollo-compiler's order (built-in types first, then definition order).
    pub(crate) types: Vec<TypeDef>,
    type_by_name: HashMap<Sym, u32>,
    pub(crate) directives: Vec<DirectiveDef>,
    directive_by_name: HashMap<Sym, u32>,
    pub(crate) fields: Vec<FieldDef>,
    /// Parallel to `fields`: within each type's run, the indices of its fields sorted by name.
    field_order: Vec<u32>,
    pub(crate) inputs: Vec<InputDef>,
    /// Parallel to `inputs`: within each input object's run, its fields sorted by name.
    input_order: Vec<u32>,
    pub(crate) values: Vec<ValueDef>,
    /// Parallel to `values`: within each enum's run, its values sorted by name.
    value_order: Vec<u32>,
    pub(crate) refs: Vec<RefDef>,
    pub(crate) locations: Vec<DirectiveLocation>,
    implementers: std::sync::OnceLock<Implementers>,
}

/// Interface → (objects, interfaces) implementing it.
pub(crate) type Implementers = HashMap<Sym, (Vec<Sym>, Vec<Sym>)>;

impl AsRef<CompactSchema> for CompactSchema {
    fn as_ref(&self) -> &CompactSchema {
        self
    }
}

impl CompactSchema {
    /// The path label the schema was loaded under.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// [`schema_hash`](crate::schema_hash) of the text the schema was loaded from.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Number of named types, built-in ones included.
    pub fn type_count(&self) -> usize {
        self.types.len()
    }

    /// About how many bytes of heap the model holds (vectors and tables by capacity, strings
    /// by length plus the allocator's usual 16 bytes each).
    pub fn heap_bytes(&self) -> usize {
        fn vec<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        fn map<K, V>(m: &HashMap<K, V>) -> usize {
            m.capacity() * (std::mem::size_of::<(K, V)>() + 1)
        }
        self.strings.heap_bytes()
            + vec(&self.types)
            + map(&self.type_by_name)
            + vec(&self.directives)
            + map(&self.directive_by_name)
            + vec(&self.fields)
            + vec(&self.field_order)
            + vec(&self.inputs)
            + vec(&self.input_order)
            + vec(&self.values)
            + vec(&self.value_order)
            + vec(&self.refs)
            + vec(&self.locations)
            + self.path.capacity()
            + self.hash.capacity()
    }

    /// The text of a symbol.
    pub(crate) fn str(&self, sym: Sym) -> &str {
        self.strings.get(sym)
    }

    /// The symbol of `text` in this model, if the model holds that string.
    pub(crate) fn sym(&self, text: &str) -> Option<Sym> {
        self.strings.find(text)
    }

    /// The root operation type of `kind`.
    pub(crate) fn root(&self, kind: OperationType) -> Option<&Root> {
        let i = match kind {
            OperationType::Query => 0,
            OperationType::Mutation => 1,
            OperationType::Subscription => 2,
        };
        self.roots[i].as_ref()
    }

    /// The type named `name`.
    pub(crate) fn type_named(&self, name: &str) -> Option<&TypeDef> {
        let sym = self.sym(name)?;
        self.type_by_name.get(&sym).map(|&i| &self.types[i as usize])
    }

    /// The directive definition named `name`.
    pub(crate) fn directive_named(&self, name: &str) -> Option<&DirectiveDef> {
        let sym = self.sym(name)?;
        self.directive_by_name.get(&sym).map(|&i| &self.directives[i as usize])
    }

    /// The output fields of an object or interface type (empty for other kinds).
    pub(crate) fn fields_of(&self, ty: &TypeDef) -> &[FieldDef] {
        match ty.kind {
            Kind::Object | Kind::Interface => &self.fields[ty.members.range()],
            _ => &[],
        }
    }

    /// The input fields of an input object type (empty for other kinds).
    pub(crate) fn input_fields_of(&self, ty: &TypeDef) -> &[InputDef] {
        match ty.kind {
            Kind::InputObject => &self.inputs[ty.members.range()],
            _ => &[],
        }
    }

    /// The values of an enum type (empty for other kinds).
    pub(crate) fn values_of(&self, ty: &TypeDef) -> &[ValueDef] {
        match ty.kind {
            Kind::Enum => &self.values[ty.members.range()],
            _ => &[],
        }
    }

    /// Implemented interfaces, or union members.
    pub(crate) fn refs_of(&self, ty: &TypeDef) -> &[RefDef] {
        &self.refs[ty.refs.range()]
    }

    /// Arguments of a field or a directive.
    pub(crate) fn args(&self, args: Slice) -> &[InputDef] {
        &self.inputs[args.range()]
    }

    /// The locations of a directive, in definition order.
    pub(crate) fn locations_of(&self, d: &DirectiveDef) -> &[DirectiveLocation] {
        &self.locations[d.locations.range()]
    }

    /// The output field `name` of an object or interface type.
    pub(crate) fn field(&self, ty: &TypeDef, name: &str) -> Option<&FieldDef> {
        if !matches!(ty.kind, Kind::Object | Kind::Interface) {
            return None;
        }
        let i = self.find(ty.members, &self.field_order, name, |i| self.fields[i].name)?;
        Some(&self.fields[i])
    }

    /// The input field `name` of an input object type.
    pub(crate) fn input_field(&self, ty: &TypeDef, name: &str) -> Option<&InputDef> {
        if ty.kind != Kind::InputObject {
            return None;
        }
        let i = self.find(ty.members, &self.input_order, name, |i| self.inputs[i].name)?;
        Some(&self.inputs[i])
    }

    /// The enum value `name` of an enum type.
    pub(crate) fn value(&self, ty: &TypeDef, name: &str) -> Option<&ValueDef> {
        if ty.kind != Kind::Enum {
            return None;
        }
        let i = self.find(ty.members, &self.value_order, name, |i| self.values[i].name)?;
        Some(&self.values[i])
    }

    /// Binary search of `name` in a run sorted by symbol through `order`.
    fn find(&self, run: Slice, order: &[u32], name: &str, name_of: impl Fn(usize) -> Sym) -> Option<usize> {
        let sym = self.sym(name)?;
        let sorted = &order[run.range()];
        let at = sorted.binary_search_by_key(&sym, |&i| name_of(i as usize)).ok()?;
        Some(sorted[at] as usize)
    }

    /// The object and interface types implementing each interface, in type order (as
    /// apollo-compiler's `implementers_map`: objects, then interfaces); computed once, for every
    /// walk of the model (the contract's groups walk it on several threads).
    pub(crate) fn implementers(&self) -> &Implementers {
        self.implementers.get_or_init(|| self.find_implementers())
    }

    /// Everything the model holds, one definition a line, with names resolved and positions:
    /// for comparing two models of one text built different ways (symbols and the tables'
    /// layout may differ; what the diff and the walks read may not).
    #[doc(hidden)]
    pub fn listing(&self) -> String {
        use std::fmt::Write as _;
        let s = |sym: Option<Sym>| sym.map_or("-", |sym| self.str(sym));
        let at = |pos: Option<Pos>| pos.map_or("-".to_owned(), |p| format!("{}:{}", p.line, p.column));
        let mut out = String::new();
        let inputs = |out: &mut String, indent: &str, args: &[InputDef]| {
            for a in args {
                let _ = writeln!(
                    out,
                    "{indent}{}: {} ({}) at {} default {} required {} description {:?} deprecated {:?}",
                    s(Some(a.name)),
                    s(Some(a.ty)),
                    s(Some(a.named)),
                    at(a.pos),
                    s(a.default),
                    a.required,
                    s(a.description),
                    s(a.deprecation)
                );
            }
        };
        for (kind, root) in ["query", "mutation", "subscription"].iter().zip(&self.roots) {
            let _ = writeln!(
                out,
                "root {kind}: {}",
                root.as_ref().map_or("-".into(), |r| format!("{} at {}", s(Some(r.name)), at(r.pos)))
            );
        }
        for ty in &self.types {
            let _ = writeln!(
                out,
                "{:?} {} at {} built-in {} one-of {} description {:?}",
                ty.kind,
                s(Some(ty.name)),
                at(ty.pos),
                ty.built_in,
                ty.one_of,
                s(ty.description)
            );
            for r in self.refs_of(ty) {
                let _ = writeln!(out, "  ref {} at {}", s(Some(r.name)), at(r.pos));
            }
            match ty.kind {
                Kind::Object | Kind::Interface => {
                    for f in self.fields_of(ty) {
                        let _ = writeln!(
                            out,
                            "  field {}: {} ({}) at {} description {:?} deprecated {:?}",
                            s(Some(f.name)),
                            s(Some(f.ty)),
                            s(Some(f.named)),
                            at(f.pos),
                            s(f.description),
                            s(f.deprecation)
                        );
                        inputs(&mut out, "    arg ", self.args(f.args));
                    }
                }
                Kind::InputObject => inputs(&mut out, "  input ", self.input_fields_of(ty)),
                Kind::Enum => {
                    for v in self.values_of(ty) {
                        let _ = writeln!(
                            out,
                            "  value {} at {} description {:?} deprecated {:?}",
                            s(Some(v.name)),
                            at(v.pos),
                            s(v.description),
                            s(v.deprecation)
                        );
                    }
                }
                Kind::Scalar | Kind::Union => {}
            }
        }
        for d in &self.directives {
            let _ = writeln!(
                out,
                "directive @{} at {} built-in {} repeatable {} on {:?} description {:?}",
                s(Some(d.name)),
                at(d.pos),
                d.built_in,
                d.repeatable,
                self.locations_of(d),
                s(d.description)
            );
            inputs(&mut out, "  arg ", self.args(d.args));
        }
        // Lookups by name, through the tables the diff uses.
        for ty in &self.types {
            let found = self.type_named(self.str(ty.name)).map(|t| t.name);
            let members_found = match ty.kind {
                Kind::Object | Kind::Interface => self
                    .fields_of(ty)
                    .iter()
                    .all(|f| self.field(ty, self.str(f.name)).is_some_and(|g| g.name == f.name)),
                Kind::InputObject => self
                    .input_fields_of(ty)
                    .iter()
                    .all(|f| self.input_field(ty, self.str(f.name)).is_some_and(|g| g.name == f.name)),
                Kind::Enum => self
                    .values_of(ty)
                    .iter()
                    .all(|v| self.value(ty, self.str(v.name)).is_some_and(|w| w.name == v.name)),
                Kind::Scalar | Kind::Union => true,
            };
            if found != Some(ty.name) || !members_found {
                let _ = writeln!(out, "lookup of {} or its members fails", s(Some(ty.name)));
            }
        }
        out
    }

    fn find_implementers(&self) -> Implementers {
        let mut map: HashMap<Sym, (Vec<Sym>, Vec<Sym>)> = HashMap::default();
        for ty in &self.types {
            let objects = match ty.kind {
                Kind::Object => true,
                Kind::Interface => false,
                _ => continue,
            };
            for r in self.refs_of(ty) {
                let entry = map.entry(r.name).or_default();
                let list = if objects { &mut entry.0 } else { &mut entry.1 };
                // An `IndexSet` there: a type listed twice counts once.
                if !list.contains(&ty.name) {
                    list.push(ty.name);
                }
            }
        }
        map
    }
}

/// Interned strings, all in one buffer (no allocation per string): a symbol is an index into
/// `spans` plus one; `table` is an open-addressing hash table of symbols (0: an empty slot).
#[derive(Debug, Clone, Default)]
struct Strings {
    text: String,
    spans: Vec<(u32, u32)>,
    table: Vec<u32>,
}

/// A fast non-cryptographic hash of a string: FxHash's word step, then MurmurHash3's finaliser,
/// since the table indexes by the low bits.
fn hash(text: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = text.len() as u64;
    let mut words = text.as_bytes().chunks_exact(8);
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl Strings {
    fn get(&self, sym: Sym) -> &str {
        let Some(&(start, len)) = self.spans.get(sym.0.get() as usize - 1) else { return "" };
        self.text.get(start as usize..(start + len) as usize).unwrap_or("")
    }

    /// The slot of `text` in `table`: where its symbol is, or the empty slot to put it in.
    fn slot(&self, text: &str) -> usize {
        let mask = self.table.len() - 1;
        let mut i = hash(text) as usize & mask;
        loop {
            match NonZeroU32::new(self.table[i]) {
                None => return i,
                Some(s) if self.get(Sym(s)) == text => return i,
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    fn find(&self, text: &str) -> Option<Sym> {
        if self.table.is_empty() {
            return None;
        }
        NonZeroU32::new(self.table[self.slot(text)]).map(Sym)
    }

    fn intern(&mut self, text: &str) -> Sym {
        // At most half full, so probes stay short.
        if self.spans.len() * 2 >= self.table.len() {
            self.grow();
        }
        let slot = self.slot(text);
        if let Some(sym) = NonZeroU32::new(self.table[slot]) {
            return Sym(sym);
        }
        self.spans.push((self.text.len() as u32, text.len() as u32));
        self.text.push_str(text);
        let sym = NonZeroU32::MIN.saturating_add(self.spans.len() as u32 - 1);
        self.table[slot] = sym.get();
        Sym(sym)
    }

    /// The symbol of `value` as printed (printed into `scratch`, kept for its capacity).
    fn intern_printed(&mut self, scratch: &mut String, value: impl std::fmt::Display) -> Sym {
        use std::fmt::Write as _;
        scratch.clear();
        let _ = write!(scratch, "{value}");
        self.intern(scratch)
    }

    /// A table with room for `more` strings without growing.
    fn reserve_table(&mut self, more: usize) {
        let wanted = ((self.spans.len() + more) * 2).next_power_of_two();
        if wanted > self.table.len() {
            self.rehash(wanted);
        }
    }

    fn grow(&mut self) {
        self.rehash((self.table.len() * 2).max(1024));
    }

    fn rehash(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.table, vec![0; size]);
        for s in old.into_iter().filter_map(NonZeroU32::new) {
            let slot = self.slot(self.get(Sym(s)));
            self.table[slot] = s.get();
        }
    }

    fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.spans.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.spans.capacity() * 8 + self.table.capacity() * 4
    }
}

/// Line starts of a text, computed as apollo-compiler's positions are (through ariadne): a
/// line ends after `\n`, `\r` (a `\r\n` pair ends one line), vertical tab, form feed, U+0085,
/// U+2028 or U+2029; the column is the byte offset in the line, plus one.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    starts: Vec<u32>,
    len: usize,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        let bytes = text.as_bytes();
        let mut starts = vec![0u32];
        let mut i = 0;
        while i < bytes.len() {
            let end_of_separator = match bytes[i] {
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => Some(i + 2),
                b'\r' | b'\n' | 0x0b | 0x0c => Some(i + 1),
                0xc2 if bytes.get(i + 1) == Some(&0x85) => Some(i + 2),
                0xe2 if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) => {
                    Some(i + 3)
                }
                _ => None,
            };
            match end_of_separator {
                Some(end) => {
                    if end < bytes.len() {
                        starts.push(end as u32);
                    }
                    i = end;
                }
                None => i += 1,
            }
        }
        LineIndex { starts, len: bytes.len() }
    }

    /// 1-based line and column of a byte offset (`None` past the end).
    pub(crate) fn pos(&self, offset: usize) -> Option<Pos> {
        if offset > self.len {
            return None;
        }
        let offset = u32::try_from(offset).ok()?;
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = *self.starts.get(line)?;
        Some(Pos { line: NonZeroU32::new(line as u32 + 1)?, column: offset - start + 1 })
    }
}

/// Maps apollo-compiler spans to positions in the files a schema was loaded from: files of our
/// own through a [`LineIndex`] each, any other (the built-in definitions) through
/// apollo-compiler.
pub(crate) struct Locator<'a> {
    indexes: Vec<LineIndex>,
    /// File → index in `indexes`.
    files: HashMap<FileId, usize>,
    sources: &'a SourceMap,
}

impl<'a> Locator<'a> {
    /// Every file of `sources` but the built-in one, each indexed on its own.
    pub(crate) fn per_file(sources: &'a SourceMap) -> Locator<'a> {
        let mut indexes = Vec::new();
        let mut files = HashMap::default();
        for (id, file) in sources.iter() {
            if *id == FileId::BUILT_IN {
                continue;
            }
            files.insert(*id, indexes.len());
            indexes.push(LineIndex::new(file.source_text()));
        }
        Locator { indexes, files, sources }
    }

    fn pos(&self, span: Option<SourceSpan>) -> Option<Pos> {
        let span = span?;
        match self.files.get(&span.file_id()) {
            Some(&index) => self.indexes[index].pos(span.offset()),
            None => {
                let lc = span.line_column(self.sources)?;
                let line = NonZeroU32::new(u32::try_from(lc.line).ok()?)?;
                Some(Pos { line, column: u32::try_from(lc.column).ok()? })
            }
        }
    }
}

/// Builds a [`CompactSchema`] from a parsed (and validated) apollo-compiler schema.
pub(crate) fn build(schema: &Schema, locator: &Locator<'_>, path: &str, hash: &str) -> CompactSchema {
    let mut m = CompactSchema::empty(path, hash);
    let mut b = Builder { locator, scratch: String::new(), m: &mut m };
    b.reserve_for(schema);
    b.add_roots(schema);
    for (name, ty) in &schema.types {
        b.add_type(name, ty);
    }
    for (name, d) in &schema.directive_definitions {
        b.add_directive(name, d);
    }
    m.finish();
    m
}

impl CompactSchema {
    fn empty(path: &str, hash: &str) -> CompactSchema {
        CompactSchema {
            path: path.to_owned(),
            hash: hash.to_owned(),
            strings: Strings::default(),
            roots: [None, None, None],
            types: Vec::new(),
            type_by_name: HashMap::default(),
            directives: Vec::new(),
            directive_by_name: HashMap::default(),
            fields: Vec::new(),
            field_order: Vec::new(),
            inputs: Vec::new(),
            input_order: Vec::new(),
            values: Vec::new(),
            value_order: Vec::new(),
            refs: Vec::new(),
            locations: Vec::new(),
            implementers: std::sync::OnceLock::new(),
        }
    }

    /// Tables to their size, and each type's members indexed by name.
    fn finish(&mut self) {
        let m = self;
        m.strings.shrink_to_fit();
        m.types.shrink_to_fit();
        m.directives.shrink_to_fit();
        m.fields.shrink_to_fit();
        m.inputs.shrink_to_fit();
        m.values.shrink_to_fit();
        m.refs.shrink_to_fit();
        m.field_order = sorted_runs(&m.types, m.fields.len(), Kind::Object, |i| m.fields[i].name);
        m.input_order = sorted_runs(&m.types, m.inputs.len(), Kind::InputObject, |i| m.inputs[i].name);
        m.value_order = sorted_runs(&m.types, m.values.len(), Kind::Enum, |i| m.values[i].name);
    }
}

/// `0..len`, with each member run of the types of `kind` (objects also mean interfaces) sorted
/// by name symbol.
fn sorted_runs(types: &[TypeDef], len: usize, kind: Kind, name_of: impl Fn(usize) -> Sym) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    for ty in types {
        let same = ty.kind == kind || (kind == Kind::Object && ty.kind == Kind::Interface);
        if same {
            order[ty.members.range()].sort_unstable_by_key(|&i| name_of(i as usize));
        }
    }
    order
}

struct Builder<'l, 'a, 'm> {
    locator: &'l Locator<'a>,
    scratch: String,
    m: &'m mut CompactSchema,
}

impl Builder<'_, '_, '_> {
    /// Room for what `schema` will add, counted first, so the tables are not grown (their
    /// contents copied, or rehashed) as they fill: fields, enum values and input values (input
    /// fields and arguments) exactly, and the string table for one name per type and member (it
    /// still grows should descriptions and printed types need more).
    fn reserve_for(&mut self, schema: &Schema) {
        let (mut fields, mut values, mut inputs) = (0, 0, 0);
        for ty in schema.types.values() {
            match ty {
                ExtendedType::Object(o) => {
                    fields += o.fields.len();
                    inputs += o.fields.values().map(|f| f.arguments.len()).sum::<usize>();
                }
                ExtendedType::Interface(i) => {
                    fields += i.fields.len();
                    inputs += i.fields.values().map(|f| f.arguments.len()).sum::<usize>();
                }
                ExtendedType::Enum(e) => values += e.values.len(),
                ExtendedType::InputObject(io) => inputs += io.fields.len(),
                ExtendedType::Scalar(_) | ExtendedType::Union(_) => {}
            }
        }
        inputs += schema.directive_definitions.values().map(|d| d.arguments.len()).sum::<usize>();
        self.m.types.reserve_exact(schema.types.len());
        self.m.directives.reserve_exact(schema.directive_definitions.len());
        self.m.fields.reserve_exact(fields);
        self.m.values.reserve_exact(values);
        self.m.inputs.reserve_exact(inputs);
        self.m.strings.reserve_table(schema.types.len() + fields + values + inputs);
    }

    fn add_roots(&mut self, schema: &Schema) {
        let def = &schema.schema_definition;
        for (i, root) in [&def.query, &def.mutation, &def.subscription].into_iter().enumerate() {
            self.m.roots[i] =
                root.as_ref().map(|r| Root { name: self.intern(&r.name), pos: self.pos(r.name.location()) });
        }
    }

    fn add_directive(&mut self, name: &apollo_compiler::Name, d: &Node<ast::DirectiveDefinition>) {
        let args = self.add_inputs(d.arguments.iter().map(|a| &**a));
        let start = self.m.locations.len() as u32;
        self.m.locations.extend(d.locations.iter().copied());
        let locations = Slice { start, end: self.m.locations.len() as u32 };
        let def = DirectiveDef {
            name: self.intern(name),
            pos: self.pos(d.name.location()),
            built_in: d.is_built_in(),
            description: self.description(d.description.as_ref()),
            repeatable: d.repeatable,
            locations,
            args,
        };
        let index = self.m.directives.len() as u32;
        self.m.directive_by_name.entry(def.name).or_insert(index);
        self.m.directives.push(def);
    }

    fn intern(&mut self, text: &str) -> Sym {
        self.m.strings.intern(text)
    }

    fn pos(&self, span: Option<SourceSpan>) -> Option<Pos> {
        self.locator.pos(span)
    }

    fn description(&mut self, description: Option<&Node<str>>) -> Option<Sym> {
        description.map(|d| self.intern(d.trim()))
    }

    fn deprecation(&mut self, directives: &ast::DirectiveList) -> Option<Sym> {
        crate::diff::deprecation_reason(directives).map(|r| self.intern(&r))
    }

    /// The printed type and the named type inside it.
    fn ty(&mut self, ty: &ast::Type) -> (Sym, Sym) {
        let printed = self.m.strings.intern_printed(&mut self.scratch, ty);
        (printed, self.intern(ty.inner_named_type()))
    }

    fn add_refs<'n>(&mut self, names: impl Iterator<Item = &'n ComponentName>) -> Slice {
        let start = self.m.refs.len() as u32;
        for n in names {
            let r = RefDef { name: self.intern(&n.name), pos: self.pos(n.name.location()) };
            self.m.refs.push(r);
        }
        Slice { start, end: self.m.refs.len() as u32 }
    }

    fn add_inputs<'n>(&mut self, defs: impl Iterator<Item = &'n ast::InputValueDefinition>) -> Slice {
        let start = self.m.inputs.len() as u32;
        for d in defs {
            let (ty, named) = self.ty(&d.ty);
            let def = InputDef {
                name: self.intern(&d.name),
                ty,
                named,
                pos: self.pos(d.name.location()),
                description: self.description(d.description.as_ref()),
                deprecation: self.deprecation(&d.directives),
                default: d.default_value.as_ref().map(|v| {
                    let printed = canonical_value(v);
                    self.intern(&printed)
                }),
                required: d.is_required(),
            };
            self.m.inputs.push(def);
        }
        Slice { start, end: self.m.inputs.len() as u32 }
    }

    fn add_type(&mut self, name: &apollo_compiler::Name, ty: &ExtendedType) {
        let (kind, refs, members) = match ty {
            ExtendedType::Scalar(_) => (Kind::Scalar, Slice::default(), Slice::default()),
            ExtendedType::Object(o) => {
                let refs = self.add_refs(o.implements_interfaces.iter());
                (Kind::Object, refs, self.add_fields(o.fields.values().map(|f| &***f)))
            }
            ExtendedType::Interface(i) => {
                let refs = self.add_refs(i.implements_interfaces.iter());
                (Kind::Interface, refs, self.add_fields(i.fields.values().map(|f| &***f)))
            }
            ExtendedType::Union(u) => (Kind::Union, self.add_refs(u.members.iter()), Slice::default()),
            ExtendedType::Enum(e) => {
                let start = self.m.values.len() as u32;
                for v in e.values.values() {
                    let def = ValueDef {
                        name: self.intern(&v.value),
                        pos: self.pos(v.value.location()),
                        description: self.description(v.description.as_ref()),
                        deprecation: self.deprecation(&v.directives),
                    };
                    self.m.values.push(def);
                }
                (Kind::Enum, Slice::default(), Slice { start, end: self.m.values.len() as u32 })
            }
            ExtendedType::InputObject(io) => {
                (Kind::InputObject, Slice::default(), self.add_inputs(io.fields.values().map(|f| &***f)))
            }
        };
        let def = TypeDef {
            name: self.intern(name),
            kind,
            built_in: ty.is_built_in(),
            one_of: crate::sdl::is_one_of(ty),
            pos: self.pos(ty.name().location().or(ty.location())),
            description: self.description(ty.description()),
            refs,
            members,
        };
        let index = self.m.types.len() as u32;
        self.m.type_by_name.insert(def.name, index);
        self.m.types.push(def);
    }

    fn add_fields<'n>(&mut self, defs: impl Iterator<Item = &'n ast::FieldDefinition>) -> Slice {
        // Arguments go to `inputs` first, so a field's arguments are one run.
        let start = self.m.fields.len() as u32;
        for f in defs {
            let args = self.add_inputs(f.arguments.iter().map(|a| &**a));
            let (ty, named) = self.ty(&f.ty);
            let def = FieldDef {
                name: self.intern(&f.name),
                ty,
                named,
                pos: self.pos(f.name.location()),
                description: self.description(f.description.as_ref()),
                deprecation: self.deprecation(&f.directives),
                args,
            };
            self.m.fields.push(def);
        }
        Slice { start, end: self.m.fields.len() as u32 }
    }
}

/// A canonical print of a value (object fields sorted), for default-value comparison.
pub(crate) fn canonical_value(v: &Value) -> String {
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

/// The item type of a printed list type (`[Foo!]!` → `Foo!`); a named type is its own.
pub(crate) fn item_type(ty: &str) -> &str {
    let t = ty.strip_suffix('!').unwrap_or(ty);
    match t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(item) => item,
        None => ty,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap on purpose

    use super::*;

    /// Every offset of a text with each kind of line end lands where apollo-compiler (through
    /// ariadne) puts it.
    #[test]
    fn line_index_agrees_with_apollo_compiler() {
        let text =
            "type Query {\r\n  a: Int\r  b: Int\n\n  c: Int # \u{2028} é \u{2029}\u{85}\x0b\x0c\r\r\n}\n";
        let document = match ast::Document::parse(text, "t.graphql") {
            Ok(document) => document,
            Err(with_errors) => with_errors.partial,
        };
        let file = document.sources.values().next().unwrap();
        let index = LineIndex::new(text);
        let mut checked = 0;
        for offset in (0..=text.len()).filter(|&o| text.is_char_boundary(o)) {
            let expected = file.get_line_column(offset).unwrap();
            let pos = index.pos(offset).unwrap();
            assert_eq!(
                (pos.line.get() as usize, pos.column as usize),
                (expected.line, expected.column),
                "offset {offset}"
            );
            checked += 1;
        }
        assert!(checked > 50, "{checked}");
        assert_eq!(index.pos(text.len() + 1), None);
        assert_eq!(file.get_line_column(text.len() + 1), None);
    }
}
