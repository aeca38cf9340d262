//! `proto check`: every change between two [`ProtoSet`]s, classified as breaking, dangerous or
//! safe under a buf rule category ([`Rules`]), and judged by what Banyan's sources use
//! ([`Usage`]).
//!
//! Elements are matched by fully-qualified name (fields by number, as on the wire); a file whose
//! package changed is reported once (`PACKAGE_CHANGED`) and its contents are then compared under
//! the new package, so a rename is not also every message removed.
//!
//! Levels per rule set (B breaking, D dangerous, S safe; `wire` / `wire-json` / `file`), with
//! the buf rule each follows:
//!
//! | kind | wire | wire-json | file | buf rule |
//! |---|---|---|---|---|
//! | `PACKAGE_CHANGED` | B | B | B | FILE_SAME_PACKAGE |
//! | `FILE_REMOVED` | S | S | B | FILE_NO_DELETE (its contents are compared by name) |
//! | `FILE_SYNTAX_CHANGED` | D | D | B | FILE_SAME_SYNTAX |
//! | `FILE_OPTION_CHANGED` | S | S | B | FILE_SAME_GO_PACKAGE, FILE_SAME_JAVA_PACKAGE, … |
//! | `MESSAGE_REMOVED`, `ENUM_REMOVED`, `SERVICE_REMOVED` | B | B | B | MESSAGE/ENUM/SERVICE_NO_DELETE |
//! | `MESSAGE_MOVED`, `ENUM_MOVED`, `SERVICE_MOVED` (to another file) | S | S | B | …_NO_DELETE per file |
//! | `RPC_REMOVED`, `RPC_REQUEST_TYPE_CHANGED`, `RPC_RESPONSE_TYPE_CHANGED`, `RPC_STREAMING_CHANGED` | B | B | B | RPC_NO_DELETE, RPC_SAME_REQUEST_TYPE, RPC_SAME_RESPONSE_TYPE, RPC_SAME_CLIENT/SERVER_STREAMING |
//! | `RPC_IDEMPOTENCY_CHANGED` | S | S | B | RPC_SAME_IDEMPOTENCY_LEVEL |
//! | `FIELD_REMOVED` (number not reserved) | B | B | B | FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED |
//! | `FIELD_REMOVED_NAME_NOT_RESERVED` | D | B | B | FIELD_NO_DELETE_UNLESS_NAME_RESERVED |
//! | `FIELD_REMOVED_RESERVED` (number and name) | D | D | B | FIELD_NO_DELETE |
//! | `FIELD_NUMBER_REUSED` (same number, other name and type) | B | B | B | FIELD_SAME_NAME + FIELD_WIRE_COMPATIBLE_TYPE |
//! | `FIELD_RENUMBERED` | B | B | B | FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED |
//! | `FIELD_TYPE_CHANGED` (wire-incompatible) | B | B | B | FIELD_WIRE_COMPATIBLE_TYPE |
//! | `FIELD_TYPE_CHANGED` (wire-compatible, JSON-incompatible) | D | B | B | FIELD_WIRE_JSON_COMPATIBLE_TYPE |
//! | `FIELD_TYPE_CHANGED` (wire- and JSON-compatible) | D | D | B | FIELD_SAME_TYPE |
//! | `FIELD_CARDINALITY_CHANGED` (singular ↔ repeated, required) | B | B | B | FIELD_WIRE_COMPATIBLE_CARDINALITY |
//! | `FIELD_PRESENCE_CHANGED` (proto3 `optional` added/removed) | S | S | B | FIELD_SAME_CARDINALITY |
//! | `FIELD_ONEOF_CHANGED` (into, out of, between oneofs) | B | B | B | FIELD_SAME_ONEOF |
//! | `FIELD_RENAMED` | D | B | B | FIELD_SAME_NAME, FIELD_SAME_JSON_NAME |
//! | `FIELD_JSON_NAME_CHANGED` | D | B | B | FIELD_SAME_JSON_NAME |
//! | `FIELD_DEFAULT_CHANGED` | D | D | B | FIELD_SAME_DEFAULT |
//! | `FIELD_OPTION_CHANGED` (`jstype`, `ctype`) | S | S | B | FIELD_SAME_JSTYPE, FIELD_SAME_CTYPE |
//! | `RESERVED_REMOVED` (a message's or enum's reserved number or name) | B | B | B | RESERVED_MESSAGE_NO_DELETE, RESERVED_ENUM_NO_DELETE |
//! | `REQUIRED_FIELD_ADDED` | B | B | B | MESSAGE_SAME_REQUIRED_FIELDS |
//! | `ONEOF_REMOVED` | S | S | B | ONEOF_NO_DELETE |
//! | `MESSAGE_WIRE_FORMAT_CHANGED` | B | B | B | MESSAGE_SAME_MESSAGE_SET_WIRE_FORMAT |
//! | `ENUM_VALUE_REMOVED` (number not reserved) | B | B | B | ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED |
//! | `ENUM_VALUE_REMOVED_NAME_NOT_RESERVED` | D | B | B | ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED |
//! | `ENUM_VALUE_REMOVED_RESERVED` | D | D | B | ENUM_VALUE_NO_DELETE |
//! | `ENUM_VALUE_RENUMBERED` | B | B | B | ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED |
//! | `ENUM_VALUE_RENAMED` | D | B | B | ENUM_VALUE_SAME_NAME |
//! | `ENUM_VALUE_ADDED` | D | D | D | (not buf's: a client that maps every value, as Banyan's do, refuses a new one) |
//! | `ENUM_ALIAS_CHANGED` | S | S | B | ENUM_SAME_… (allow_alias) |
//! | `*_ADDED`, `*_DEPRECATED` | S | S | S | |
//!
//! Wire compatibility of scalar types follows protobuf's "Updating a message type": `int32`,
//! `uint32`, `int64`, `uint64`, `bool` and enums share the varint encoding; `sint32`/`sint64`;
//! `fixed32`/`sfixed32`; `fixed64`/`sfixed64`; `string`/`bytes`. Of those, only a change within
//! one JSON representation (`int32`/`uint32`, `int64`/`uint64`, `fixed32`/`sfixed32`,
//! `fixed64`/`sfixed64`) keeps JSON working. A change of message or enum type (even to an
//! identical one) is breaking, as in buf.

use std::collections::{BTreeMap, BTreeSet};

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto, ServiceDescriptorProto,
};
use serde::Serialize;

use crate::load::{Locations, ProtoSet, join};
use crate::source::{default_json_name, scalar_name};
use crate::usage::{Usage, UsageSite};
use crate::{EXIT_FAILURE, EXIT_OK, Level, Severity};

/// A buf rule category: how strict the check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rules {
    /// What breaks the binary encoding.
    Wire,
    /// What breaks the binary or the JSON encoding (the default, as buf recommends).
    #[default]
    WireJson,
    /// Also what breaks generated code per file.
    File,
}

impl Rules {
    /// `wire`, `wire-json` or `file`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rules::Wire => "wire",
            Rules::WireJson => "wire-json",
            Rules::File => "file",
        }
    }
}

/// Options of [`check()`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// The rule category.
    pub rules: Rules,
    /// Fail on every breaking change, even one Banyan does not use.
    pub strict: bool,
}

/// Which side of the comparison a position is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The base.
    Old,
    /// The new protos.
    New,
}

/// A place in a `.proto` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtoPosition {
    /// Which side.
    pub side: Side,
    /// The file, as the side's folder joined with its name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// What part of the protos a change is about, for matching it with Banyan's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Touch {
    /// Anything in this file.
    File(String),
    /// The message, or any of its fields.
    Message(String),
    /// One field: message and field name.
    Field(String, String),
    /// The enum or any value.
    Enum(String),
    /// One enum value: enum and value name.
    EnumValue(String, String),
    /// Any method of the service.
    Service(String),
    /// One method: `pkg.Service/Method`.
    Rpc(String),
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtoChange {
    /// Breaking, dangerous or safe under the rules checked.
    pub level: Level,
    /// Stable machine name (see the module docs).
    pub kind: &'static str,
    /// The buf rule it follows, when there is one.
    pub buf_rule: Option<&'static str>,
    /// The element: `pkg.Message.field`, `pkg.Service/Method`, `pkg.Enum.VALUE`, a file name.
    pub element: String,
    /// One sentence.
    pub message: String,
    /// Where it is (the new file, or the old one for a removal).
    pub location: Option<ProtoPosition>,
    #[serde(skip)]
    pub(crate) touch: Touch,
}

/// A change with its verdict and the Banyan code it touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedChange {
    /// The change.
    #[serde(flatten)]
    pub change: ProtoChange,
    /// `error` fails the check; `warning` and `notice` do not.
    pub severity: Severity,
    /// The places in Banyan's sources that use what changed.
    pub uses: Vec<UsageSite>,
}

/// The result of [`check()`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The base folder.
    pub base: String,
    /// The new folder.
    pub new: String,
    /// The rules applied.
    pub rules: Rules,
    /// Whether `strict` was on.
    pub strict: bool,
    /// Where usage was read from (e.g. `sources/src`), if anywhere.
    pub usage_source: Option<String>,
    /// Every change: breaking first, then dangerous, then safe; within a level, errors first.
    pub changes: Vec<CheckedChange>,
}

/// Counts for a summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Breaking changes.
    pub breaking: usize,
    /// Dangerous changes.
    pub dangerous: usize,
    /// Safe changes.
    pub safe: usize,
    /// Breaking changes to something Banyan uses.
    pub breaking_used: usize,
    /// Dangerous changes to something Banyan uses.
    pub dangerous_used: usize,
    /// Changes whose severity is `error`.
    pub errors: usize,
    /// Changes whose severity is `warning`.
    pub warnings: usize,
}

impl CheckReport {
    /// 1 when a change is an error (a breaking change Banyan uses, or any with `strict`), else 0.
    pub fn exit_code(&self) -> i32 {
        if self.failed() { EXIT_FAILURE } else { EXIT_OK }
    }

    /// Whether the check fails.
    pub fn failed(&self) -> bool {
        self.changes.iter().any(|c| c.severity == Severity::Error)
    }

    /// The counts.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            let used = !c.uses.is_empty();
            match c.change.level {
                Level::Breaking => {
                    s.breaking += 1;
                    s.breaking_used += usize::from(used);
                }
                Level::Dangerous => {
                    s.dangerous += 1;
                    s.dangerous_used += usize::from(used);
                }
                Level::Safe => s.safe += 1,
            }
            match c.severity {
                Severity::Error => s.errors += 1,
                Severity::Warning => s.warnings += 1,
                Severity::Notice => {}
            }
        }
        s
    }

    /// Changes of one level, in report order.
    pub fn changes_of(&self, level: Level) -> impl Iterator<Item = &CheckedChange> {
        self.changes.iter().filter(move |c| c.change.level == level)
    }
}

/// Compares `old` with `new` and judges every change by `usage` (read against `old`, the protos
/// Banyan's code was built from).
pub fn check(old: &ProtoSet, new: &ProtoSet, usage: &Usage, options: CheckOptions) -> CheckReport {
    let old_index = Index::new(old);
    let new_index = Index::new(new);
    let mut diff = Differ {
        old: &old_index,
        new: &new_index,
        rules: options.rules,
        changes: Vec::new(),
        renames: BTreeMap::new(),
    };
    diff.run();
    let mut changes: Vec<CheckedChange> = diff
        .changes
        .into_iter()
        .map(|change| {
            let uses = usage.sites(&change.touch, &old_index);
            let used = !uses.is_empty();
            let severity = match change.level {
                Level::Breaking if used || options.strict => Severity::Error,
                Level::Breaking => Severity::Warning,
                Level::Dangerous if used => Severity::Warning,
                _ => Severity::Notice,
            };
            CheckedChange { change, severity, uses }
        })
        .collect();
    changes.sort_by(|a, b| {
        (a.change.level, a.severity, &a.change.element, a.change.kind).cmp(&(
            b.change.level,
            b.severity,
            &b.change.element,
            b.change.kind,
        ))
    });
    CheckReport {
        base: old.label().to_owned(),
        new: new.label().to_owned(),
        rules: options.rules,
        strict: options.strict,
        usage_source: usage.source().map(str::to_owned),
        changes,
    }
}

/// One side's elements by fully-qualified name (no leading dot), with the file and the
/// source-code-info path of each.
pub(crate) struct Index<'a> {
    set: &'a ProtoSet,
    pub(crate) files: BTreeMap<&'a str, &'a FileDescriptorProto>,
    pub(crate) messages: BTreeMap<String, Element<'a, DescriptorProto>>,
    pub(crate) enums: BTreeMap<String, Element<'a, EnumDescriptorProto>>,
    pub(crate) services: BTreeMap<String, Element<'a, ServiceDescriptorProto>>,
}

/// A message, enum or service with where it is.
pub(crate) struct Element<'a, T> {
    pub(crate) item: &'a T,
    pub(crate) file: &'a str,
    path: Vec<i32>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(set: &'a ProtoSet) -> Self {
        let mut index = Index {
            set,
            files: BTreeMap::new(),
            messages: BTreeMap::new(),
            enums: BTreeMap::new(),
            services: BTreeMap::new(),
        };
        for file in set.own_files() {
            index.files.insert(file.name(), file);
            for (i, m) in file.message_type.iter().enumerate() {
                index.message(file.name(), file.package(), m, vec![4, idx(i)]);
            }
            for (i, e) in file.enum_type.iter().enumerate() {
                index.enums.insert(
                    join(file.package(), e.name()),
                    Element { item: e, file: file.name(), path: vec![5, idx(i)] },
                );
            }
            for (i, s) in file.service.iter().enumerate() {
                index.services.insert(
                    join(file.package(), s.name()),
                    Element { item: s, file: file.name(), path: vec![6, idx(i)] },
                );
            }
        }
        index
    }

    fn message(&mut self, file: &'a str, scope: &str, m: &'a DescriptorProto, path: Vec<i32>) {
        let name = join(scope, m.name());
        for (i, nested) in m.nested_type.iter().enumerate() {
            if nested.options.as_ref().is_some_and(|o| o.map_entry()) {
                continue;
            }
            self.message(file, &name, nested, [path.as_slice(), &[3, idx(i)]].concat());
        }
        for (i, e) in m.enum_type.iter().enumerate() {
            self.enums.insert(
                join(&name, e.name()),
                Element { item: e, file, path: [path.as_slice(), &[4, idx(i)]].concat() },
            );
        }
        self.messages.insert(name, Element { item: m, file, path });
    }

    fn position(&self, side: Side, file: &str, path: &[i32]) -> Option<ProtoPosition> {
        // A scan per change: indexing every location of a file costs more than the few
        // changes a file has.
        let info = self.files.get(file)?.source_code_info.as_ref();
        let (line, column) = Locations::find(info, path).unwrap_or((1, 1));
        Some(ProtoPosition { side, file: self.set.display_path(file), line, column })
    }

    /// The file an element (`pkg.Message`, `pkg.Message.field`, `pkg.Service/Method`) is in.
    pub(crate) fn file_of(&self, key: &str) -> Option<&'a str> {
        let head = key.split('/').next().unwrap_or(key);
        let mut name = head;
        loop {
            if let Some(e) = self.messages.get(name) {
                return Some(e.file);
            }
            if let Some(e) = self.enums.get(name) {
                return Some(e.file);
            }
            if let Some(e) = self.services.get(name) {
                return Some(e.file);
            }
            name = name.rsplit_once('.')?.0;
        }
    }
}

fn idx(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

struct Differ<'a> {
    old: &'a Index<'a>,
    new: &'a Index<'a>,
    rules: Rules,
    changes: Vec<ProtoChange>,
    /// Old package → new package, for files whose package changed.
    renames: BTreeMap<String, String>,
}

/// Levels under wire / wire-json / file.
#[derive(Clone, Copy)]
struct Levels(Level, Level, Level);

const B: Level = Level::Breaking;
const D: Level = Level::Dangerous;
const S: Level = Level::Safe;

impl Differ<'_> {
    // One call per rule, read like a row of the table in the module docs.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        levels: Levels,
        kind: &'static str,
        buf_rule: Option<&'static str>,
        element: String,
        message: String,
        location: Option<ProtoPosition>,
        touch: Touch,
    ) {
        let level = match self.rules {
            Rules::Wire => levels.0,
            Rules::WireJson => levels.1,
            Rules::File => levels.2,
        };
        self.changes.push(ProtoChange { level, kind, buf_rule, element, message, location, touch });
    }

    /// The new name of an old fully-qualified name (packages renamed applied).
    fn renamed(&self, old: &str) -> String {
        for (from, to) in &self.renames {
            if let Some(rest) = old.strip_prefix(from.as_str())
                && (rest.is_empty() || rest.starts_with('.'))
            {
                return format!("{to}{rest}");
            }
        }
        old.to_owned()
    }

    /// Whether an element is the same on both sides, so its body holds no change: most of a
    /// large set is. Not when a package was renamed, as its names then differ in meaning.
    fn unchanged<T: PartialEq>(&self, old: &T, new: &T) -> bool {
        self.renames.is_empty() && old == new
    }

    fn old_at(&self, file: &str, path: &[i32]) -> Option<ProtoPosition> {
        self.old.position(Side::Old, file, path)
    }

    fn new_at(&self, file: &str, path: &[i32]) -> Option<ProtoPosition> {
        self.new.position(Side::New, file, path)
    }

    fn run(&mut self) {
        self.files();
        self.messages();
        self.enums();
        self.services();
    }

    fn files(&mut self) {
        for (name, old) in &self.old.files {
            let Some(new) = self.new.files.get(name) else {
                self.push(
                    Levels(S, S, B),
                    "FILE_REMOVED",
                    Some("FILE_NO_DELETE"),
                    (*name).to_owned(),
                    format!("File `{name}` was removed."),
                    self.old_at(name, &[]),
                    Touch::File((*name).to_owned()),
                );
                continue;
            };
            if old.package() != new.package() {
                self.renames.insert(old.package().to_owned(), new.package().to_owned());
                self.push(
                    Levels(B, B, B),
                    "PACKAGE_CHANGED",
                    Some("FILE_SAME_PACKAGE"),
                    (*name).to_owned(),
                    format!("The package of `{name}` changed from `{}` to `{}`: every type and RPC path in it changes.", old.package(), new.package()),
                    self.new_at(name, &[2]),
                    Touch::File((*name).to_owned()),
                );
            }
            let syntax = |f: &FileDescriptorProto| {
                if f.syntax().is_empty() { "proto2".to_owned() } else { f.syntax().to_owned() }
            };
            if syntax(old) != syntax(new) {
                self.push(Levels(D, D, B), "FILE_SYNTAX_CHANGED", Some("FILE_SAME_SYNTAX"), (*name).to_owned(), format!("The syntax of `{name}` changed from {} to {}: field presence and enum semantics change.", syntax(old), syntax(new)), self.new_at(name, &[12]), Touch::File((*name).to_owned()));
            }
            let (old_options, new_options) = (file_options(old), file_options(new));
            for (option, old_value) in &old_options {
                let new_value = new_options.get(option).cloned().unwrap_or_else(|| "(unset)".to_owned());
                if *old_value != new_value {
                    self.push(
                        Levels(S, S, B),
                        "FILE_OPTION_CHANGED",
                        Some("FILE_SAME_*"),
                        format!("{name}:{option}"),
                        format!(
                            "File option `{option}` of `{name}` changed from {old_value} to {new_value}."
                        ),
                        self.new_at(name, &[8]),
                        Touch::File((*name).to_owned()),
                    );
                }
            }
            for (option, new_value) in &new_options {
                if !old_options.contains_key(option) {
                    self.push(
                        Levels(S, S, B),
                        "FILE_OPTION_CHANGED",
                        Some("FILE_SAME_*"),
                        format!("{name}:{option}"),
                        format!("File option `{option}` of `{name}` changed from (unset) to {new_value}."),
                        self.new_at(name, &[8]),
                        Touch::File((*name).to_owned()),
                    );
                }
            }
        }
        for name in self.new.files.keys() {
            if !self.old.files.contains_key(name) {
                self.push(
                    Levels(S, S, S),
                    "FILE_ADDED",
                    None,
                    (*name).to_owned(),
                    format!("File `{name}` was added."),
                    self.new_at(name, &[]),
                    Touch::File((*name).to_owned()),
                );
            }
        }
    }

    fn messages(&mut self) {
        let old = self.old;
        let new = self.new;
        let mut seen = BTreeSet::new();
        for (name, o) in &old.messages {
            let new_name = self.renamed(name);
            seen.insert(new_name.clone());
            let Some(n) = new.messages.get(&new_name) else {
                self.push(
                    Levels(B, B, B),
                    "MESSAGE_REMOVED",
                    Some("MESSAGE_NO_DELETE"),
                    name.clone(),
                    format!("Message `{name}` was removed."),
                    self.old_at(o.file, &o.path),
                    Touch::Message(name.clone()),
                );
                continue;
            };
            if o.file != n.file && o.path.len() == 2 {
                self.push(
                    Levels(S, S, B),
                    "MESSAGE_MOVED",
                    Some("MESSAGE_NO_DELETE"),
                    name.clone(),
                    format!("Message `{name}` moved from `{}` to `{}`.", o.file, n.file),
                    self.new_at(n.file, &n.path),
                    Touch::Message(name.clone()),
                );
            }
            if !self.unchanged(o.item, n.item) {
                self.message_body(name, o, n);
            }
        }
        for (name, n) in &new.messages {
            if !seen.contains(name) {
                self.push(
                    Levels(S, S, S),
                    "MESSAGE_ADDED",
                    None,
                    name.clone(),
                    format!("Message `{name}` was added."),
                    self.new_at(n.file, &n.path),
                    Touch::Message(name.clone()),
                );
            }
        }
    }

    fn message_body(
        &mut self,
        name: &str,
        o: &Element<'_, DescriptorProto>,
        n: &Element<'_, DescriptorProto>,
    ) {
        let (om, nm) = (o.item, n.item);
        let field_path = |e: &Element<'_, DescriptorProto>, f: &FieldDescriptorProto| {
            let i = e.item.field.iter().position(|x| x.number == f.number).unwrap_or(0);
            [e.path.as_slice(), &[2, idx(i)]].concat()
        };
        let set_format =
            |m: &DescriptorProto| m.options.as_ref().is_some_and(|o| o.message_set_wire_format());
        if set_format(om) != set_format(nm) {
            self.push(
                Levels(B, B, B),
                "MESSAGE_WIRE_FORMAT_CHANGED",
                Some("MESSAGE_SAME_MESSAGE_SET_WIRE_FORMAT"),
                name.to_owned(),
                format!("`message_set_wire_format` of `{name}` changed."),
                self.new_at(n.file, &n.path),
                Touch::Message(name.to_owned()),
            );
        }
        if !is_deprecated_message(om) && is_deprecated_message(nm) {
            self.push(
                Levels(S, S, S),
                "MESSAGE_DEPRECATED",
                None,
                name.to_owned(),
                format!("Message `{name}` was deprecated."),
                self.new_at(n.file, &n.path),
                Touch::Message(name.to_owned()),
            );
        }
        let new_by_number: BTreeMap<i32, &FieldDescriptorProto> =
            nm.field.iter().map(|f| (f.number(), f)).collect();
        let new_by_name: BTreeMap<&str, &FieldDescriptorProto> =
            nm.field.iter().map(|f| (f.name(), f)).collect();
        let old_by_number: BTreeMap<i32, &FieldDescriptorProto> =
            om.field.iter().map(|f| (f.number(), f)).collect();
        let old_names: BTreeSet<&str> = om.field.iter().map(|f| f.name()).collect();
        for of in &om.field {
            let element = format!("{name}.{}", of.name());
            let touch = Touch::Field(name.to_owned(), of.name().to_owned());
            let Some(nf) = new_by_number.get(&of.number()).copied() else {
                if let Some(moved) = new_by_name.get(of.name()) {
                    self.push(Levels(B, B, B), "FIELD_RENUMBERED", Some("FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED"), element.clone(), format!("Field `{element}` changed its number from {} to {}: readers of either side drop the other's value.", of.number(), moved.number()), self.new_at(n.file, &field_path(n, moved)), touch);
                    continue;
                }
                let number_reserved =
                    nm.reserved_range.iter().any(|r| r.start() <= of.number() && of.number() < r.end());
                let name_reserved = nm.reserved_name.iter().any(|r| r == of.name());
                let (levels, kind, rule, why) = match (number_reserved, name_reserved) {
                    (false, _) => (
                        Levels(B, B, B),
                        "FIELD_REMOVED",
                        "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
                        format!("without reserving its number {}: a later field may reuse it", of.number()),
                    ),
                    (true, false) => (
                        Levels(D, B, B),
                        "FIELD_REMOVED_NAME_NOT_RESERVED",
                        "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
                        format!(
                            "with its number {} reserved but not its name: a later field may reuse the name, and its JSON",
                            of.number()
                        ),
                    ),
                    (true, true) => (
                        Levels(D, D, B),
                        "FIELD_REMOVED_RESERVED",
                        "FIELD_NO_DELETE",
                        "with its number and name reserved: readers get the default value".to_owned(),
                    ),
                };
                self.push(
                    levels,
                    kind,
                    Some(rule),
                    element.clone(),
                    format!("Field `{element}` ({}) was removed {why}.", of.number()),
                    self.old_at(o.file, &field_path(o, of)),
                    touch,
                );
                continue;
            };
            let type_change = self.type_change(of, nf);
            if of.name() != nf.name() {
                if type_change.is_some() {
                    self.push(Levels(B, B, B), "FIELD_NUMBER_REUSED", Some("FIELD_SAME_NAME"), element.clone(), format!("Field number {} of `{name}` was `{} {}` and is now `{} {}`: old readers misread the new field.", of.number(), self.type_text(of), of.name(), self.type_text(nf), nf.name()), self.new_at(n.file, &field_path(n, nf)), touch);
                    continue;
                }
                let (oj, nj) = (json_name(of), json_name(nf));
                let json = if oj == nj {
                    format!("its JSON name stays `{oj}`")
                } else {
                    format!("its JSON name changes from `{oj}` to `{nj}`")
                };
                let levels = if oj == nj { Levels(S, B, B) } else { Levels(D, B, B) };
                self.push(
                    levels,
                    "FIELD_RENAMED",
                    Some("FIELD_SAME_NAME"),
                    element.clone(),
                    format!("Field `{element}` ({}) was renamed to `{}`; {json}.", of.number(), nf.name()),
                    self.new_at(n.file, &field_path(n, nf)),
                    touch.clone(),
                );
            } else if json_name(of) != json_name(nf) {
                self.push(
                    Levels(D, B, B),
                    "FIELD_JSON_NAME_CHANGED",
                    Some("FIELD_SAME_JSON_NAME"),
                    element.clone(),
                    format!(
                        "The JSON name of `{element}` changed from `{}` to `{}`.",
                        json_name(of),
                        json_name(nf)
                    ),
                    self.new_at(n.file, &field_path(n, nf)),
                    touch.clone(),
                );
            }
            if let Some((levels, rule)) = type_change {
                self.push(
                    levels,
                    "FIELD_TYPE_CHANGED",
                    Some(rule),
                    element.clone(),
                    format!(
                        "The type of `{element}` changed from `{}` to `{}`.",
                        self.type_text(of),
                        self.type_text(nf)
                    ),
                    self.new_at(n.file, &field_path(n, nf)),
                    touch.clone(),
                );
            }
            let (oc, nc) = (cardinality(of), cardinality(nf));
            if (oc == "repeated") != (nc == "repeated") || (oc == "required") != (nc == "required") {
                self.push(
                    Levels(B, B, B),
                    "FIELD_CARDINALITY_CHANGED",
                    Some("FIELD_WIRE_COMPATIBLE_CARDINALITY"),
                    element.clone(),
                    format!("Field `{element}` changed from {oc} to {nc}."),
                    self.new_at(n.file, &field_path(n, nf)),
                    touch.clone(),
                );
            } else if oc != nc {
                self.push(
                    Levels(S, S, B),
                    "FIELD_PRESENCE_CHANGED",
                    Some("FIELD_SAME_CARDINALITY"),
                    element.clone(),
                    format!("Field `{element}` changed from {oc} to {nc} presence."),
                    self.new_at(n.file, &field_path(n, nf)),
                    touch.clone(),
                );
            }
            let (oo, no) = (oneof_of(om, of), oneof_of(nm, nf));
            if oo != no {
                let what = match (&oo, &no) {
                    (None, Some(to)) => format!("moved into oneof `{to}`"),
                    (Some(from), None) => format!("moved out of oneof `{from}`"),
                    (Some(from), Some(to)) => format!("moved from oneof `{from}` to oneof `{to}`"),
                    (None, None) => String::new(),
                };
                self.push(
                    Levels(B, B, B),
                    "FIELD_ONEOF_CHANGED",
                    Some("FIELD_SAME_ONEOF"),
                    element.clone(),
                    format!(
                        "Field `{element}` {what}: setting it now clears (or no longer clears) its siblings."
                    ),
                    self.new_at(n.file, &field_path(n, nf)),
                    touch.clone(),
                );
            }
            if of.default_value != nf.default_value {
                self.push(
                    Levels(D, D, B),
                    "FIELD_DEFAULT_CHANGED",
                    Some("FIELD_SAME_DEFAULT"),
                    element.clone(),
                    format!(
                        "The default of `{element}` changed from {} to {}.",
                        of.default_value.as_deref().unwrap_or("(none)"),
                        nf.default_value.as_deref().unwrap_or("(none)")
                    ),
                    self.new_at(n.file, &field_path(n, nf)),
                    touch.clone(),
                );
            }
            let opt = |f: &FieldDescriptorProto| {
                f.options.as_ref().map(|o| (o.jstype, o.ctype)).unwrap_or_default()
            };
            if opt(of) != opt(nf) {
                self.push(
                    Levels(S, S, B),
                    "FIELD_OPTION_CHANGED",
                    Some("FIELD_SAME_JSTYPE"),
                    element.clone(),
                    format!("The `jstype`/`ctype` option of `{element}` changed."),
                    self.new_at(n.file, &field_path(n, nf)),
                    touch.clone(),
                );
            }
            let deprecated = |f: &FieldDescriptorProto| f.options.as_ref().is_some_and(|o| o.deprecated());
            if !deprecated(of) && deprecated(nf) {
                self.push(
                    Levels(S, S, S),
                    "FIELD_DEPRECATED",
                    None,
                    element.clone(),
                    format!("Field `{element}` was deprecated."),
                    self.new_at(n.file, &field_path(n, nf)),
                    touch,
                );
            }
        }
        for nf in &nm.field {
            if old_by_number.contains_key(&nf.number()) || old_names.contains(nf.name()) {
                continue;
            }
            let element = format!("{name}.{}", nf.name());
            let pos = self.new_at(n.file, &field_path(n, nf));
            if nf.label() == Label::Required {
                self.push(
                    Levels(B, B, B),
                    "REQUIRED_FIELD_ADDED",
                    Some("MESSAGE_SAME_REQUIRED_FIELDS"),
                    element.clone(),
                    format!(
                        "Required field `{element}` ({}) was added: old writers never send it.",
                        nf.number()
                    ),
                    pos,
                    Touch::Message(name.to_owned()),
                );
            } else {
                self.push(
                    Levels(S, S, S),
                    "FIELD_ADDED",
                    None,
                    element.clone(),
                    format!("Field `{element}` ({}) was added.", nf.number()),
                    pos,
                    Touch::Message(name.to_owned()),
                );
            }
        }
        // Reserved numbers and names.
        let kept: Vec<(i64, i64)> =
            nm.reserved_range.iter().map(|x| (i64::from(x.start()), i64::from(x.end()))).collect();
        for r in &om.reserved_range {
            if let Some(number) = first_uncovered(i64::from(r.start()), i64::from(r.end()), &kept) {
                let text = if r.end() - r.start() == 1 {
                    r.start().to_string()
                } else {
                    format!("{} to {}", r.start(), r.end() - 1)
                };
                self.push(
                    Levels(B, B, B),
                    "RESERVED_REMOVED",
                    Some("RESERVED_MESSAGE_NO_DELETE"),
                    name.to_owned(),
                    format!("Reserved numbers {text} of `{name}` are no longer all reserved (first: {number}): an old number may be reused."),
                    self.new_at(n.file, &n.path),
                    Touch::Message(name.to_owned()),
                );
            }
        }
        for r in &om.reserved_name {
            if !nm.reserved_name.contains(r) {
                self.push(
                    Levels(B, B, B),
                    "RESERVED_REMOVED",
                    Some("RESERVED_MESSAGE_NO_DELETE"),
                    name.to_owned(),
                    format!("Reserved name `{r}` of `{name}` is no longer reserved."),
                    self.new_at(n.file, &n.path),
                    Touch::Message(name.to_owned()),
                );
            }
        }
        for (i, decl) in om.oneof_decl.iter().enumerate() {
            let real = om.field.iter().any(|f| f.oneof_index == Some(idx(i)) && !f.proto3_optional());
            if real && !nm.oneof_decl.iter().any(|d| d.name() == decl.name()) {
                self.push(
                    Levels(S, S, B),
                    "ONEOF_REMOVED",
                    Some("ONEOF_NO_DELETE"),
                    format!("{name}.{}", decl.name()),
                    format!("Oneof `{}` of `{name}` was removed.", decl.name()),
                    self.new_at(n.file, &n.path),
                    Touch::Message(name.to_owned()),
                );
            }
        }
    }

    /// How a field's type changed: `None` when it did not, else the levels and buf rule.
    fn type_change(
        &self,
        of: &FieldDescriptorProto,
        nf: &FieldDescriptorProto,
    ) -> Option<(Levels, &'static str)> {
        let (ot, nt) = (of.r#type(), nf.r#type());
        let named = |t: Type| matches!(t, Type::Message | Type::Enum | Type::Group);
        if ot == nt {
            if named(ot)
                && self.renamed(of.type_name().trim_start_matches('.'))
                    != nf.type_name().trim_start_matches('.')
            {
                return Some((Levels(B, B, B), "FIELD_WIRE_COMPATIBLE_TYPE"));
            }
            return None;
        }
        let group = |t: Type| match t {
            Type::Int32 | Type::Uint32 | Type::Int64 | Type::Uint64 | Type::Bool | Type::Enum => 1,
            Type::Sint32 | Type::Sint64 => 2,
            Type::Fixed32 | Type::Sfixed32 => 3,
            Type::Fixed64 | Type::Sfixed64 => 4,
            Type::String | Type::Bytes => 5,
            _ => 0,
        };
        let json = |t: Type| match t {
            Type::Int32 | Type::Uint32 => 1,
            Type::Int64 | Type::Uint64 => 2,
            Type::Fixed32 | Type::Sfixed32 => 3,
            Type::Fixed64 | Type::Sfixed64 => 4,
            _ => 0,
        };
        if group(ot) == 0 || group(ot) != group(nt) {
            Some((Levels(B, B, B), "FIELD_WIRE_COMPATIBLE_TYPE"))
        } else if json(ot) == 0 || json(ot) != json(nt) {
            Some((Levels(D, B, B), "FIELD_WIRE_JSON_COMPATIBLE_TYPE"))
        } else {
            Some((Levels(D, D, B), "FIELD_SAME_TYPE"))
        }
    }

    fn type_text(&self, f: &FieldDescriptorProto) -> String {
        match f.r#type() {
            Type::Message | Type::Enum | Type::Group => f.type_name().trim_start_matches('.').to_owned(),
            t => scalar_name(t).to_owned(),
        }
    }

    fn enums(&mut self) {
        let old = self.old;
        let new = self.new;
        let mut seen = BTreeSet::new();
        for (name, o) in &old.enums {
            let new_name = self.renamed(name);
            seen.insert(new_name.clone());
            let Some(n) = new.enums.get(&new_name) else {
                self.push(
                    Levels(B, B, B),
                    "ENUM_REMOVED",
                    Some("ENUM_NO_DELETE"),
                    name.clone(),
                    format!("Enum `{name}` was removed."),
                    self.old_at(o.file, &o.path),
                    Touch::Enum(name.clone()),
                );
                continue;
            };
            if o.file != n.file && o.path.len() == 2 {
                self.push(
                    Levels(S, S, B),
                    "ENUM_MOVED",
                    Some("ENUM_NO_DELETE"),
                    name.clone(),
                    format!("Enum `{name}` moved from `{}` to `{}`.", o.file, n.file),
                    self.new_at(n.file, &n.path),
                    Touch::Enum(name.clone()),
                );
            }
            if !self.unchanged(o.item, n.item) {
                self.enum_body(name, o, n);
            }
        }
        for (name, n) in &new.enums {
            if !seen.contains(name) {
                self.push(
                    Levels(S, S, S),
                    "ENUM_ADDED",
                    None,
                    name.clone(),
                    format!("Enum `{name}` was added."),
                    self.new_at(n.file, &n.path),
                    Touch::Enum(name.clone()),
                );
            }
        }
    }

    fn enum_body(
        &mut self,
        name: &str,
        o: &Element<'_, EnumDescriptorProto>,
        n: &Element<'_, EnumDescriptorProto>,
    ) {
        let (oe, ne) = (o.item, n.item);
        let value_path = |e: &Element<'_, EnumDescriptorProto>, number: i32| {
            let i = e.item.value.iter().position(|v| v.number() == number).unwrap_or(0);
            [e.path.as_slice(), &[2, idx(i)]].concat()
        };
        let alias = |e: &EnumDescriptorProto| e.options.as_ref().and_then(|o| o.allow_alias).unwrap_or(false);
        if alias(oe) != alias(ne) {
            self.push(
                Levels(S, S, B),
                "ENUM_ALIAS_CHANGED",
                Some("ENUM_SAME_JSON_FORMAT"),
                name.to_owned(),
                format!("`allow_alias` of `{name}` changed."),
                self.new_at(n.file, &n.path),
                Touch::Enum(name.to_owned()),
            );
        }
        let new_by_name: BTreeMap<&str, i32> = ne.value.iter().map(|v| (v.name(), v.number())).collect();
        let old_names: BTreeSet<&str> = oe.value.iter().map(|v| v.name()).collect();
        let old_numbers: BTreeSet<i32> = oe.value.iter().map(|v| v.number()).collect();
        for ov in &oe.value {
            let element = format!("{name}.{}", ov.name());
            let touch = Touch::EnumValue(name.to_owned(), ov.name().to_owned());
            if let Some(&number) = new_by_name.get(ov.name()) {
                if number != ov.number() {
                    self.push(
                        Levels(B, B, B),
                        "ENUM_VALUE_RENUMBERED",
                        Some("ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED"),
                        element.clone(),
                        format!(
                            "Enum value `{element}` changed its number from {} to {number}.",
                            ov.number()
                        ),
                        self.new_at(n.file, &value_path(n, number)),
                        touch,
                    );
                }
                continue;
            }
            match ne.value.iter().find(|v| v.number() == ov.number()) {
                Some(nv) => {
                    self.push(
                        Levels(D, B, B),
                        "ENUM_VALUE_RENAMED",
                        Some("ENUM_VALUE_SAME_NAME"),
                        element.clone(),
                        format!("Enum value `{element}` ({}) was renamed to `{}`.", ov.number(), nv.name()),
                        self.new_at(n.file, &value_path(n, ov.number())),
                        touch,
                    );
                }
                None => {
                    let number_reserved =
                        ne.reserved_range.iter().any(|r| r.start() <= ov.number() && ov.number() <= r.end());
                    let name_reserved = ne.reserved_name.iter().any(|r| r == ov.name());
                    let (levels, kind, rule, why) = match (number_reserved, name_reserved) {
                        (false, _) => (
                            Levels(B, B, B),
                            "ENUM_VALUE_REMOVED",
                            "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED",
                            "without reserving its number",
                        ),
                        (true, false) => (
                            Levels(D, B, B),
                            "ENUM_VALUE_REMOVED_NAME_NOT_RESERVED",
                            "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
                            "with its number reserved but not its name",
                        ),
                        (true, true) => (
                            Levels(D, D, B),
                            "ENUM_VALUE_REMOVED_RESERVED",
                            "ENUM_VALUE_NO_DELETE",
                            "with its number and name reserved",
                        ),
                    };
                    self.push(
                        levels,
                        kind,
                        Some(rule),
                        element.clone(),
                        format!("Enum value `{element}` ({}) was removed {why}.", ov.number()),
                        self.old_at(o.file, &value_path(o, ov.number())),
                        touch,
                    );
                }
            }
        }
        for nv in &ne.value {
            if old_names.contains(nv.name()) || old_numbers.contains(&nv.number()) {
                continue;
            }
            let element = format!("{name}.{}", nv.name());
            self.push(
                Levels(D, D, D),
                "ENUM_VALUE_ADDED",
                None,
                element.clone(),
                format!(
                    "Enum value `{element}` ({}) was added: a reader that maps every value refuses it.",
                    nv.number()
                ),
                self.new_at(n.file, &value_path(n, nv.number())),
                Touch::Enum(name.to_owned()),
            );
        }
        // Enum ranges are inclusive.
        let kept: Vec<(i64, i64)> =
            ne.reserved_range.iter().map(|x| (i64::from(x.start()), i64::from(x.end()) + 1)).collect();
        for r in &oe.reserved_range {
            if let Some(number) = first_uncovered(i64::from(r.start()), i64::from(r.end()) + 1, &kept) {
                self.push(
                    Levels(B, B, B),
                    "RESERVED_REMOVED",
                    Some("RESERVED_ENUM_NO_DELETE"),
                    name.to_owned(),
                    format!(
                        "Reserved numbers {} to {} of `{name}` are no longer all reserved (first: {number}).",
                        r.start(),
                        r.end()
                    ),
                    self.new_at(n.file, &n.path),
                    Touch::Enum(name.to_owned()),
                );
            }
        }
        for r in &oe.reserved_name {
            if !ne.reserved_name.contains(r) {
                self.push(
                    Levels(B, B, B),
                    "RESERVED_REMOVED",
                    Some("RESERVED_ENUM_NO_DELETE"),
                    name.to_owned(),
                    format!("Reserved name `{r}` of `{name}` is no longer reserved."),
                    self.new_at(n.file, &n.path),
                    Touch::Enum(name.to_owned()),
                );
            }
        }
    }

    fn services(&mut self) {
        let old = self.old;
        let new = self.new;
        let mut seen = BTreeSet::new();
        for (name, o) in &old.services {
            let new_name = self.renamed(name);
            seen.insert(new_name.clone());
            let Some(n) = new.services.get(&new_name) else {
                self.push(
                    Levels(B, B, B),
                    "SERVICE_REMOVED",
                    Some("SERVICE_NO_DELETE"),
                    name.clone(),
                    format!("Service `{name}` was removed."),
                    self.old_at(o.file, &o.path),
                    Touch::Service(name.clone()),
                );
                continue;
            };
            if o.file != n.file {
                self.push(
                    Levels(S, S, B),
                    "SERVICE_MOVED",
                    Some("SERVICE_NO_DELETE"),
                    name.clone(),
                    format!("Service `{name}` moved from `{}` to `{}`.", o.file, n.file),
                    self.new_at(n.file, &n.path),
                    Touch::Service(name.clone()),
                );
            }
            if self.unchanged(o.item, n.item) {
                continue;
            }
            for (i, om) in o.item.method.iter().enumerate() {
                let element = format!("{name}/{}", om.name());
                let touch = Touch::Rpc(element.clone());
                let Some((j, nm)) = n.item.method.iter().enumerate().find(|(_, m)| m.name() == om.name())
                else {
                    self.push(
                        Levels(B, B, B),
                        "RPC_REMOVED",
                        Some("RPC_NO_DELETE"),
                        element.clone(),
                        format!("RPC `{element}` was removed."),
                        self.old_at(o.file, &[o.path.as_slice(), &[2, idx(i)]].concat()),
                        touch,
                    );
                    continue;
                };
                let at = self.new_at(n.file, &[n.path.as_slice(), &[2, idx(j)]].concat());
                let same_type =
                    |a: &str, b: &str| self.renamed(a.trim_start_matches('.')) == b.trim_start_matches('.');
                let (same_input, same_output) = (
                    same_type(om.input_type(), nm.input_type()),
                    same_type(om.output_type(), nm.output_type()),
                );
                if !same_input {
                    self.push(
                        Levels(B, B, B),
                        "RPC_REQUEST_TYPE_CHANGED",
                        Some("RPC_SAME_REQUEST_TYPE"),
                        element.clone(),
                        format!(
                            "The request type of `{element}` changed from `{}` to `{}`.",
                            om.input_type().trim_start_matches('.'),
                            nm.input_type().trim_start_matches('.')
                        ),
                        at.clone(),
                        touch.clone(),
                    );
                }
                if !same_output {
                    self.push(
                        Levels(B, B, B),
                        "RPC_RESPONSE_TYPE_CHANGED",
                        Some("RPC_SAME_RESPONSE_TYPE"),
                        element.clone(),
                        format!(
                            "The response type of `{element}` changed from `{}` to `{}`.",
                            om.output_type().trim_start_matches('.'),
                            nm.output_type().trim_start_matches('.')
                        ),
                        at.clone(),
                        touch.clone(),
                    );
                }
                let shape = |m: &prost_types::MethodDescriptorProto| match (
                    m.client_streaming(),
                    m.server_streaming(),
                ) {
                    (false, false) => "unary",
                    (true, false) => "client streaming",
                    (false, true) => "server streaming",
                    (true, true) => "bidirectional streaming",
                };
                if shape(om) != shape(nm) {
                    let rule = if om.client_streaming() != nm.client_streaming() {
                        "RPC_SAME_CLIENT_STREAMING"
                    } else {
                        "RPC_SAME_SERVER_STREAMING"
                    };
                    self.push(
                        Levels(B, B, B),
                        "RPC_STREAMING_CHANGED",
                        Some(rule),
                        element.clone(),
                        format!("RPC `{element}` changed from {} to {}.", shape(om), shape(nm)),
                        at.clone(),
                        touch.clone(),
                    );
                }
                let idempotency = |m: &prost_types::MethodDescriptorProto| {
                    m.options.as_ref().map(|o| o.idempotency_level()).unwrap_or_default()
                };
                if idempotency(om) != idempotency(nm) {
                    self.push(
                        Levels(S, S, B),
                        "RPC_IDEMPOTENCY_CHANGED",
                        Some("RPC_SAME_IDEMPOTENCY_LEVEL"),
                        element.clone(),
                        format!(
                            "The idempotency level of `{element}` changed from {} to {}.",
                            idempotency(om).as_str_name(),
                            idempotency(nm).as_str_name()
                        ),
                        at,
                        touch,
                    );
                }
            }
            for (j, nm) in n.item.method.iter().enumerate() {
                if !o.item.method.iter().any(|m| m.name() == nm.name()) {
                    let element = format!("{name}/{}", nm.name());
                    self.push(
                        Levels(S, S, S),
                        "RPC_ADDED",
                        None,
                        element.clone(),
                        format!("RPC `{element}` was added."),
                        self.new_at(n.file, &[n.path.as_slice(), &[2, idx(j)]].concat()),
                        Touch::Service(name.clone()),
                    );
                }
            }
        }
        for (name, n) in &new.services {
            if !seen.contains(name) {
                self.push(
                    Levels(S, S, S),
                    "SERVICE_ADDED",
                    None,
                    name.clone(),
                    format!("Service `{name}` was added."),
                    self.new_at(n.file, &n.path),
                    Touch::Service(name.clone()),
                );
            }
        }
    }
}

/// The first number of `[start, end)` that none of `ranges` (each `[start, end)`) covers.
fn first_uncovered(start: i64, end: i64, ranges: &[(i64, i64)]) -> Option<i64> {
    let mut at = start;
    while at < end {
        // The furthest a range holding `at` reaches; none holds it: uncovered.
        let Some(reach) = ranges.iter().filter(|(s, e)| *s <= at && at < *e).map(|(_, e)| *e).max() else {
            return Some(at);
        };
        at = reach;
    }
    None
}

fn is_deprecated_message(m: &DescriptorProto) -> bool {
    m.options.as_ref().is_some_and(|o| o.deprecated())
}

fn json_name(f: &FieldDescriptorProto) -> String {
    f.json_name.clone().unwrap_or_else(|| default_json_name(f.name()))
}

fn cardinality(f: &FieldDescriptorProto) -> &'static str {
    match f.label() {
        Label::Repeated => "repeated",
        Label::Required => "required",
        Label::Optional if f.proto3_optional() => "explicit (optional)",
        Label::Optional => "singular",
    }
}

/// The real oneof a field is in (not proto3 `optional`'s synthetic one).
fn oneof_of(m: &DescriptorProto, f: &FieldDescriptorProto) -> Option<String> {
    if f.proto3_optional() {
        return None;
    }
    let i = usize::try_from(f.oneof_index?).ok()?;
    m.oneof_decl.get(i).map(|d| d.name().to_owned())
}

/// The file options the `file` rules compare, by name, as the written `.proto` spells them
/// (`deprecated` is not among them: no rule compares it).
fn file_options(f: &FileDescriptorProto) -> BTreeMap<&'static str, String> {
    crate::source::file_options(f).into_iter().filter(|(name, _)| *name != "deprecated").collect()
}
