//! Linking parsed `.proto` files without a descriptor pool: what turns protox-parse's output
//! into the descriptors `proto check`, usage and `proto pull --check` read.
//!
//! As protoc's descriptors have them: type names and extendees are resolved to fully-qualified
//! names by protobuf's scoping rules (a type is visible through the file's imports, `import
//! public` re-exporting), a named field's type is set to message or enum, every field gets its
//! json name, and the options of `descriptor.proto` are interpreted. Custom options (extensions)
//! are dropped, as prost's descriptor types drop them anyway.
//!
//! What it refuses, with the element's position: a name that does not resolve or is not
//! imported, a type, service, package or extension defined twice, a field name or number used
//! twice in a message, a field number out of range, in protobuf's own range or reserved, a
//! reserved field name used, two fields with one json name, an enum value name or number
//! (without `allow_alias`) used twice in an enum, an unknown option, an option value of the
//! wrong type, a custom option that names no extension. Not checked, unlike protoc: a field,
//! oneof or enum value whose name is also a nested type's or a sibling enum's value (protoc's
//! C++ scoping; keeping every member's name in the symbol table was a tenth of `proto check`),
//! an extension's number against its extendee's extension ranges, and a custom option's value.
//!
//! Why not protox's `Compiler`: it builds prost-reflect's `DescriptorPool` (a reflection index
//! plus a second copy of every descriptor) that nothing here reads; on 200 files a side that was
//! three quarters of `proto check`'s time. `tests/link.rs` compares this module's descriptors
//! with protox's on every construct the `.proto` writer covers.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use prost_types::field_descriptor_proto::Type;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, EnumOptions, EnumValueOptions, ExtensionRangeOptions,
    FieldDescriptorProto, FieldOptions, FileDescriptorProto, FileOptions, MessageOptions, MethodOptions,
    OneofOptions, ServiceOptions, UninterpretedOption, field_options, file_options, method_options,
};

use crate::load::join;
use crate::source::{
    ENUM_VALUE, ENUM_VALUE_NUMBER, FIELD_EXTENDEE, FIELD_NAME, FIELD_NUMBER, FIELD_NUMBER_END,
    FIELD_TYPE_NAME, FILE_ENUM, FILE_EXTENSION, FILE_MESSAGE, FILE_PACKAGE, FILE_SERVICE, MESSAGE_ENUM,
    MESSAGE_EXTENSION, MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ONEOF, METHOD_INPUT, METHOD_OUTPUT,
    SERVICE_METHOD, default_json_name,
};

/// A problem in one file: the file's index, the descriptor path of the element at fault (for
/// its position) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkError {
    pub file: usize,
    pub path: Vec<i32>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Package,
    Message,
    Enum,
    Service,
    /// An extension: a name that takes its place in a scope but is not a type.
    Member,
}

#[derive(Debug, Clone, Copy)]
struct Symbol {
    kind: Kind,
    file: usize,
}

/// Links `files` in place. They come so that each file follows the files it imports; those
/// marked in `linked` (protobuf's own, or shared with the other side of a check) are linked
/// already and only contribute their names.
pub(crate) fn link(files: &mut [Arc<FileDescriptorProto>], linked: &[bool]) -> Result<(), LinkError> {
    let names: Vec<String> = files.iter().map(|f| f.name().to_owned()).collect();
    let symbols = Symbols::collect(files, &names)?;
    let visible = visibility(files, &names);
    let needs_link = |i: usize| !linked.get(i).copied().unwrap_or(false);
    // Files link independently once the names are known: two threads, each a half of the files
    // to link; the error reported is the first in file order.
    let to_link = (0..files.len()).filter(|&i| needs_link(i)).count();
    let middle = (0..files.len()).filter(|&i| needs_link(i)).nth(to_link / 2).unwrap_or(files.len());
    let (first, second) = files.split_at_mut(middle);
    let link_range = |files: &mut [Arc<FileDescriptorProto>], offset: usize| -> Result<(), LinkError> {
        for (k, file) in files.iter_mut().enumerate() {
            let i = offset + k;
            if needs_link(i) {
                let linker = FileLinker { file: i, symbols: &symbols, visible: &visible[i], names: &names };
                // Unshared until linked, so this does not copy.
                linker.link_file(Arc::make_mut(file))?;
            }
        }
        Ok(())
    };
    let (first, second) = std::thread::scope(|scope| {
        let other = scope.spawn(|| link_range(second, middle));
        (link_range(first, 0), other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    first.and(second)
}

/// For each file, the files whose definitions it may use: itself, what it imports, and what
/// those re-export with `import public` (transitively).
fn visibility(files: &[Arc<FileDescriptorProto>], names: &[String]) -> Vec<HashSet<usize>> {
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    // What importing file i makes visible: i and, through its public imports, theirs.
    let mut exported: Vec<HashSet<usize>> = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let mut set = HashSet::from([i]);
        for &p in &file.public_dependency {
            let dep = usize::try_from(p).ok().and_then(|p| file.dependency.get(p));
            if let Some(&d) = dep.and_then(|d| index.get(d.as_str()))
                && d < i
            {
                set.extend(exported[d].iter().copied());
            }
        }
        exported.push(set);
    }
    files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let mut set = HashSet::from([i]);
            for dep in &file.dependency {
                if let Some(&d) = index.get(dep.as_str())
                    && d < i
                {
                    set.extend(exported[d].iter().copied());
                }
            }
            set
        })
        .collect()
}

/// Every name defined in the set, fully qualified without the leading dot.
struct Symbols {
    by_name: FxHashMap<String, Symbol>,
}

impl Symbols {
    fn collect(files: &[Arc<FileDescriptorProto>], names: &[String]) -> Result<Self, LinkError> {
        let mut symbols = Self { by_name: FxHashMap::default() };
        for (i, file) in files.iter().enumerate() {
            let mut add = |name: String, kind: Kind, path: &dyn Fn() -> Vec<i32>| {
                symbols.add(name, kind, i, path, names)
            };
            let package = file.package();
            let mut prefix = String::new();
            for part in package.split('.').filter(|p| !p.is_empty()) {
                prefix = join(&prefix, part);
                add(prefix.clone(), Kind::Package, &|| vec![FILE_PACKAGE])?;
            }
            for (k, message) in file.message_type.iter().enumerate() {
                message_symbols(package, message, &[FILE_MESSAGE, idx(k)], &mut add)?;
            }
            for (k, e) in file.enum_type.iter().enumerate() {
                add(join(package, e.name()), Kind::Enum, &|| vec![FILE_ENUM, idx(k)])?;
            }
            for (k, service) in file.service.iter().enumerate() {
                let name = join(package, service.name());
                add(name, Kind::Service, &|| vec![FILE_SERVICE, idx(k)])?;
            }
            for (k, extension) in file.extension.iter().enumerate() {
                add(join(package, extension.name()), Kind::Member, &|| {
                    vec![FILE_EXTENSION, idx(k), FIELD_NAME]
                })?;
            }
        }
        Ok(symbols)
    }

    fn add(
        &mut self,
        name: String,
        kind: Kind,
        file: usize,
        path: &dyn Fn() -> Vec<i32>,
        names: &[String],
    ) -> Result<(), LinkError> {
        match self.by_name.entry(name) {
            Entry::Vacant(slot) => {
                slot.insert(Symbol { kind, file });
                Ok(())
            }
            Entry::Occupied(existing) if existing.get().kind == Kind::Package && kind == Kind::Package => {
                Ok(())
            }
            Entry::Occupied(existing) => {
                let first = names.get(existing.get().file).map_or("", String::as_str);
                Err(LinkError {
                    file,
                    path: path(),
                    message: format!("name '{}' is defined twice (first in '{first}')", existing.key()),
                })
            }
        }
    }
}

/// Adds a name; the element's path is built only for an error.
type AddSymbol<'a> = dyn FnMut(String, Kind, &dyn Fn() -> Vec<i32>) -> Result<(), LinkError> + 'a;

fn message_symbols(
    scope: &str,
    message: &DescriptorProto,
    path: &[i32],
    add: &mut AddSymbol<'_>,
) -> Result<(), LinkError> {
    let name = join(scope, message.name());
    for (k, field) in message.extension.iter().enumerate() {
        add(join(&name, field.name()), Kind::Member, &|| child(path, MESSAGE_EXTENSION, k))?;
    }
    for (k, nested) in message.nested_type.iter().enumerate() {
        message_symbols(&name, nested, &child(path, MESSAGE_NESTED, k), add)?;
    }
    for (k, e) in message.enum_type.iter().enumerate() {
        add(join(&name, e.name()), Kind::Enum, &|| child(path, MESSAGE_ENUM, k))?;
    }
    add(name, Kind::Message, &|| path.to_vec())
}

fn child(path: &[i32], tag: i32, index: usize) -> Vec<i32> {
    let mut out = Vec::with_capacity(path.len() + 2);
    out.extend_from_slice(path);
    out.extend([tag, idx(index)]);
    out
}

fn idx(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

/// Links one file against the set's symbols.
struct FileLinker<'a> {
    file: usize,
    symbols: &'a Symbols,
    visible: &'a HashSet<usize>,
    names: &'a [String],
}

impl FileLinker<'_> {
    fn error(&self, path: Vec<i32>, message: String) -> LinkError {
        LinkError { file: self.file, path, message }
    }

    fn link_file(&self, file: &mut FileDescriptorProto) -> Result<(), LinkError> {
        let package = file.package().to_owned();
        for (k, message) in file.message_type.iter_mut().enumerate() {
            self.link_message(&package, message, vec![FILE_MESSAGE, idx(k)])?;
        }
        for (k, e) in file.enum_type.iter_mut().enumerate() {
            self.link_enum(&package, e, vec![FILE_ENUM, idx(k)])?;
        }
        for (k, extension) in file.extension.iter_mut().enumerate() {
            self.link_field(&package, extension, &|| vec![FILE_EXTENSION, idx(k)], true)?;
        }
        for (k, service) in file.service.iter_mut().enumerate() {
            let path = vec![FILE_SERVICE, idx(k)];
            let scope = join(&package, service.name());
            for (m, method) in service.method.iter_mut().enumerate() {
                let method_path = child(&path, SERVICE_METHOD, m);
                for (tag, name) in
                    [(METHOD_INPUT, &mut method.input_type), (METHOD_OUTPUT, &mut method.output_type)]
                {
                    let at = [method_path.as_slice(), &[tag]].concat();
                    let written = name.as_deref().unwrap_or_default();
                    let (full, kind) =
                        self.resolve(&scope, written).map_err(|m| self.error(at.clone(), m))?;
                    if kind != Kind::Message {
                        return Err(self.error(at, format!("'{written}' is not a message type")));
                    }
                    *name = Some(full);
                }
                self.interpret(&mut method.options, &method_path, &scope)?;
            }
            self.interpret(&mut service.options, &path, &scope)?;
        }
        self.interpret(&mut file.options, &[], &package)?;
        Ok(())
    }

    fn link_message(
        &self,
        scope: &str,
        message: &mut DescriptorProto,
        path: Vec<i32>,
    ) -> Result<(), LinkError> {
        let name = join(scope, message.name());
        self.interpret(&mut message.options, &path, &name)?;
        for (k, field) in message.field.iter_mut().enumerate() {
            self.link_field(&name, field, &|| child(&path, MESSAGE_FIELD, k), false)?;
        }
        for (k, extension) in message.extension.iter_mut().enumerate() {
            self.link_field(&name, extension, &|| child(&path, MESSAGE_EXTENSION, k), true)?;
        }
        for (k, oneof) in message.oneof_decl.iter_mut().enumerate() {
            self.interpret(&mut oneof.options, &child(&path, MESSAGE_ONEOF, k), &name)?;
        }
        for range in &mut message.extension_range {
            self.interpret(&mut range.options, &path, &name)?;
        }
        self.check_fields(message, &path)?;
        for (k, nested) in message.nested_type.iter_mut().enumerate() {
            self.link_message(&name, nested, child(&path, MESSAGE_NESTED, k))?;
        }
        for (k, e) in message.enum_type.iter_mut().enumerate() {
            self.link_enum(&name, e, child(&path, MESSAGE_ENUM, k))?;
        }
        Ok(())
    }

    /// Numbers and names of a message's own fields (after their json names are set).
    fn check_fields(&self, message: &DescriptorProto, path: &[i32]) -> Result<(), LinkError> {
        let mut numbers: HashMap<i32, &str> = HashMap::new();
        let mut json_names: HashMap<&str, &str> = HashMap::new();
        let mut names: HashSet<&str> = HashSet::new();
        for (k, field) in message.field.iter().enumerate() {
            let at = |tag: i32| [child(path, MESSAGE_FIELD, k).as_slice(), &[tag]].concat();
            let number = field.number();
            if !(1..FIELD_NUMBER_END).contains(&number) {
                return Err(self.error(
                    at(FIELD_NUMBER),
                    format!("field number {number} is out of range (1 to 536870911)"),
                ));
            }
            if (19_000..20_000).contains(&number) {
                return Err(self.error(
                    at(FIELD_NUMBER),
                    format!(
                        "field number {number} is in the range protobuf keeps for itself (19000 to 19999)"
                    ),
                ));
            }
            if let Some(first) = numbers.insert(number, field.name()) {
                return Err(self.error(
                    at(FIELD_NUMBER),
                    format!("field number {number} is used by both '{first}' and '{}'", field.name()),
                ));
            }
            if !names.insert(field.name()) {
                return Err(
                    self.error(at(FIELD_NAME), format!("field name '{}' is used twice", field.name()))
                );
            }
            if message.reserved_range.iter().any(|r| (r.start()..r.end()).contains(&number)) {
                return Err(self.error(
                    at(FIELD_NUMBER),
                    format!("field '{}' uses reserved number {number}", field.name()),
                ));
            }
            if message.reserved_name.iter().any(|n| n == field.name()) {
                return Err(self.error(at(FIELD_NAME), format!("field name '{}' is reserved", field.name())));
            }
            if let Some(first) = json_names.insert(field.json_name(), field.name()) {
                return Err(self.error(
                    at(FIELD_NAME),
                    format!(
                        "fields '{first}' and '{}' have the same json name '{}'",
                        field.name(),
                        field.json_name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `path` is built only for an error.
    fn link_field(
        &self,
        scope: &str,
        field: &mut FieldDescriptorProto,
        path: &dyn Fn() -> Vec<i32>,
        extension: bool,
    ) -> Result<(), LinkError> {
        let at = |tag: i32| [path().as_slice(), &[tag]].concat();
        if let Some(written) = field.type_name.as_deref() {
            let (full, kind) =
                self.resolve(scope, written).map_err(|m| self.error(at(FIELD_TYPE_NAME), m))?;
            match (field.r#type.map(Type::try_from), kind) {
                (None, Kind::Message) => field.set_type(Type::Message),
                (None, Kind::Enum) => field.set_type(Type::Enum),
                (Some(Ok(Type::Message | Type::Group)), Kind::Message)
                | (Some(Ok(Type::Enum)), Kind::Enum) => {}
                _ => {
                    let message = format!("'{written}' is not a type a field can have here");
                    return Err(self.error(at(FIELD_TYPE_NAME), message));
                }
            }
            field.type_name = Some(full);
        }
        if extension {
            let written = field.extendee();
            let (full, kind) = self.resolve(scope, written).map_err(|m| self.error(at(FIELD_EXTENDEE), m))?;
            if kind != Kind::Message {
                let message = format!("'{written}' is not a message type");
                return Err(self.error(at(FIELD_EXTENDEE), message));
            }
            field.extendee = Some(full);
        }
        if field.json_name.is_none() {
            field.json_name = Some(default_json_name(field.name()));
        }
        if field.options.is_some() {
            self.interpret(&mut field.options, &path(), scope)?;
        }
        Ok(())
    }

    fn link_enum(&self, scope: &str, e: &mut EnumDescriptorProto, path: Vec<i32>) -> Result<(), LinkError> {
        let name = join(scope, e.name());
        self.interpret(&mut e.options, &path, &name)?;
        let allow_alias = e.options.as_ref().is_some_and(|o| o.allow_alias());
        let mut numbers: HashMap<i32, &str> = HashMap::new();
        let mut names: HashSet<&str> = HashSet::new();
        for (k, value) in e.value.iter().enumerate() {
            if !names.insert(value.name()) {
                let message = format!("enum value '{}' is defined twice", value.name());
                return Err(self.error(child(&path, ENUM_VALUE, k), message));
            }
            if let Some(first) = numbers.insert(value.number(), value.name())
                && !allow_alias
            {
                let at = [child(&path, ENUM_VALUE, k).as_slice(), &[ENUM_VALUE_NUMBER]].concat();
                return Err(self.error(
                    at,
                    format!(
                        "'{first}' and '{}' have the same number {} (set `option allow_alias = true;` to allow it)",
                        value.name(),
                        value.number()
                    ),
                ));
            }
        }
        for (k, value) in e.value.iter_mut().enumerate() {
            self.interpret(&mut value.options, &child(&path, ENUM_VALUE, k), &name)?;
        }
        Ok(())
    }

    /// What `written` refers to from `scope` (a package or message, no leading dot), as a
    /// fully-qualified name with its leading dot: a leading dot means fully qualified already;
    /// otherwise the first component is looked up from the innermost scope outwards (a single
    /// name only among types), and the rest inside what it found.
    fn resolve(&self, scope: &str, written: &str) -> Result<(String, Kind), String> {
        let found = if let Some(full) = written.strip_prefix('.') {
            self.symbols.by_name.get(full).map(|s| (written.to_owned(), *s))
        } else {
            self.lookup(scope, written, |kind| matches!(kind, Kind::Message | Kind::Enum))
                .map(|(full, s)| (format!(".{full}"), s))
        };
        let Some((full, symbol)) = found else {
            return Err(format!("'{written}' is not defined"));
        };
        if !matches!(symbol.kind, Kind::Message | Kind::Enum) {
            return Err(format!("'{written}' is not a message or enum type"));
        }
        if !self.visible.contains(&symbol.file) {
            let defined_in = self.names.get(symbol.file).map_or("", String::as_str);
            let here = self.names.get(self.file).map_or("", String::as_str);
            return Err(format!(
                "'{written}' resolves to '{}', defined in '{defined_in}', which '{here}' does not import",
                &full[1..]
            ));
        }
        Ok((full, symbol.kind))
    }

    /// protoc's lookup: `single` says which kinds a one-component name may name.
    fn lookup(&self, scope: &str, written: &str, single: fn(Kind) -> bool) -> Option<(String, Symbol)> {
        let (first, rest) = match written.split_once('.') {
            Some((first, rest)) => (first, Some(rest)),
            None => (written, None),
        };
        let mut scope = scope;
        loop {
            let candidate = join(scope, first);
            if let Some(symbol) = self.symbols.by_name.get(&candidate) {
                match rest {
                    None if single(symbol.kind) => return Some((candidate, *symbol)),
                    Some(rest) if matches!(symbol.kind, Kind::Package | Kind::Message | Kind::Enum) => {
                        // protoc stops at the first aggregate the first component names.
                        let full = format!("{candidate}.{rest}");
                        return self.symbols.by_name.get(&full).map(|s| (full, *s));
                    }
                    _ => {}
                }
            }
            if scope.is_empty() {
                return None;
            }
            scope = scope.rsplit_once('.').map_or("", |(outer, _)| outer);
        }
    }

    /// Interprets the options of `descriptor.proto` among `options`' uninterpreted ones.
    /// Custom options must name an extension that exists (seen from `scope`); their values are
    /// not checked.
    fn interpret<T: StandardOptions>(
        &self,
        options: &mut Option<T>,
        path: &[i32],
        scope: &str,
    ) -> Result<(), LinkError> {
        let Some(options) = options else { return Ok(()) };
        for option in std::mem::take(options.uninterpreted()) {
            let Some(first) = option.name.first() else { continue };
            let name = option.name.iter().map(|p| p.name_part.as_str()).collect::<Vec<_>>().join(".");
            if first.is_extension {
                let extension = first.name_part.as_str();
                let found = match extension.strip_prefix('.') {
                    Some(full) => self.symbols.by_name.get(full).copied(),
                    None => self.lookup(scope, extension, |kind| kind == Kind::Member).map(|(_, s)| s),
                };
                if found.is_none_or(|s| s.kind != Kind::Member) {
                    return Err(self
                        .error(path.to_vec(), format!("option '({extension})' is not a defined extension")));
                }
                // prost's descriptor types cannot hold a custom option's value.
                continue;
            }
            if first.name_part == "features" || T::KNOWN_UNREPRESENTED.contains(&name.as_str()) {
                // Editions features and options newer than prost's descriptor types: valid,
                // but nothing here can hold them.
                continue;
            }
            let applied = if option.name.len() == 1 { options.set(&name, &option) } else { Ok(false) };
            match applied {
                Ok(true) => {}
                Ok(false) => return Err(self.error(path.to_vec(), format!("option '{name}' is unknown"))),
                Err(expected) => {
                    return Err(self.error(path.to_vec(), format!("option '{name}' expects {expected}")));
                }
            }
        }
        Ok(())
    }
}

/// An options message of `descriptor.proto` whose standard options can be set by name.
trait StandardOptions {
    /// Options `descriptor.proto` has that prost's types do not: accepted and dropped.
    const KNOWN_UNREPRESENTED: &'static [&'static str];
    fn uninterpreted(&mut self) -> &mut Vec<UninterpretedOption>;
    /// Sets option `name`: `Ok(false)` when there is no such option, `Err(what it expects)`
    /// when the value has the wrong type.
    fn set(&mut self, name: &str, value: &UninterpretedOption) -> Result<bool, &'static str>;
}

fn flag(value: &UninterpretedOption) -> Result<Option<bool>, &'static str> {
    match value.identifier_value.as_deref() {
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        _ => Err("true or false"),
    }
}

fn text(value: &UninterpretedOption) -> Result<Option<String>, &'static str> {
    let bytes = value.string_value.as_ref().ok_or("a string")?;
    String::from_utf8(bytes.clone()).map(Some).map_err(|_| "a UTF-8 string")
}

fn named<E: Into<i32>>(
    value: &UninterpretedOption,
    parse: fn(&str) -> Option<E>,
) -> Result<Option<i32>, &'static str> {
    value
        .identifier_value
        .as_deref()
        .and_then(parse)
        .map(|v| Some(v.into()))
        .ok_or("one of its enum's values")
}

macro_rules! standard_options {
    ($ty:ty, unrepresented: [$($skip:literal),*], { $($name:literal => $field:ident: $convert:expr),* $(,)? }) => {
        impl StandardOptions for $ty {
            const KNOWN_UNREPRESENTED: &'static [&'static str] = &[$($skip),*];
            fn uninterpreted(&mut self) -> &mut Vec<UninterpretedOption> {
                &mut self.uninterpreted_option
            }
            #[allow(unused_variables, unreachable_code, deprecated)]
            fn set(&mut self, name: &str, value: &UninterpretedOption) -> Result<bool, &'static str> {
                match name {
                    $($name => self.$field = ($convert)(value)?,)*
                    _ => return Ok(false),
                }
                Ok(true)
            }
        }
    };
}

standard_options!(FileOptions, unrepresented: ["php_generic_services"], {
    "java_package" => java_package: text,
    "java_outer_classname" => java_outer_classname: text,
    "java_multiple_files" => java_multiple_files: flag,
    "java_generate_equals_and_hash" => java_generate_equals_and_hash: flag,
    "java_string_check_utf8" => java_string_check_utf8: flag,
    "optimize_for" => optimize_for: |v| named(v, file_options::OptimizeMode::from_str_name),
    "go_package" => go_package: text,
    "cc_generic_services" => cc_generic_services: flag,
    "java_generic_services" => java_generic_services: flag,
    "py_generic_services" => py_generic_services: flag,
    "deprecated" => deprecated: flag,
    "cc_enable_arenas" => cc_enable_arenas: flag,
    "objc_class_prefix" => objc_class_prefix: text,
    "csharp_namespace" => csharp_namespace: text,
    "swift_prefix" => swift_prefix: text,
    "php_class_prefix" => php_class_prefix: text,
    "php_namespace" => php_namespace: text,
    "php_metadata_namespace" => php_metadata_namespace: text,
    "ruby_package" => ruby_package: text,
});

standard_options!(MessageOptions, unrepresented: ["deprecated_legacy_json_field_conflicts"], {
    "message_set_wire_format" => message_set_wire_format: flag,
    "no_standard_descriptor_accessor" => no_standard_descriptor_accessor: flag,
    "deprecated" => deprecated: flag,
    "map_entry" => map_entry: flag,
});

standard_options!(FieldOptions, unrepresented: ["unverified_lazy", "debug_redact", "retention", "targets", "edition_defaults", "feature_support"], {
    "ctype" => ctype: |v| named(v, field_options::CType::from_str_name),
    "packed" => packed: flag,
    "jstype" => jstype: |v| named(v, field_options::JsType::from_str_name),
    "lazy" => lazy: flag,
    "deprecated" => deprecated: flag,
    "weak" => weak: flag,
});

standard_options!(OneofOptions, unrepresented: [], {});
standard_options!(ExtensionRangeOptions, unrepresented: ["declaration", "verification"], {});

standard_options!(EnumOptions, unrepresented: ["deprecated_legacy_json_field_conflicts"], {
    "allow_alias" => allow_alias: flag,
    "deprecated" => deprecated: flag,
});

standard_options!(EnumValueOptions, unrepresented: ["debug_redact", "feature_support"], {
    "deprecated" => deprecated: flag,
});

standard_options!(ServiceOptions, unrepresented: [], {
    "deprecated" => deprecated: flag,
});

standard_options!(MethodOptions, unrepresented: [], {
    "deprecated" => deprecated: flag,
    "idempotency_level" => idempotency_level: |v| named(v, method_options::IdempotencyLevel::from_str_name),
});
