//! `.proto` source text from a `FileDescriptorProto`: what `proto pull` writes.
//!
//! Covered: `syntax` (proto2, proto3), `package`, imports (`public`, `weak`), file options of
//! `descriptor.proto` (`java_package`, `go_package`, … as set), messages with nested messages
//! and enums, fields with labels (`optional` in proto2 and proto3's explicit presence,
//! `required`, `repeated`), `map<K, V>`, oneofs, reserved ranges and names, extension ranges,
//! `extend` blocks, the field options `json_name` (only when it differs from the default),
//! `deprecated`, `packed`, `default`, `jstype`, `ctype`, `lazy`; enums with `allow_alias`,
//! reserved ranges and names and deprecated values; services with client/server streaming and
//! the method options `deprecated` and `idempotency_level`; and comments (leading, trailing,
//! detached) from `source_code_info` when the descriptor carries it.
//!
//! Not covered: custom options (prost's descriptor types drop unknown fields, so they never
//! reach here), proto2 groups and editions (an [`RenderError`]).
//!
//! Deterministic: declarations come in source order when the descriptor has source info, in
//! descriptor order otherwise; type names are written as the shortest name that resolves to the
//! same type from where it is used.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto, MethodDescriptorProto,
    ServiceDescriptorProto, source_code_info::Location,
};

use crate::load::{Locations, join};

/// Why a descriptor could not be written as `.proto` text.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A construct this writer does not reproduce.
    #[error("{file}: {what} cannot be written as .proto text by `banyan proto pull`")]
    Unsupported {
        /// The file.
        file: String,
        /// What.
        what: String,
    },
}

// Field numbers of descriptor.proto, for source-code-info paths.
pub(crate) const FILE_PACKAGE: i32 = 2;
pub(crate) const FILE_MESSAGE: i32 = 4;
pub(crate) const FILE_ENUM: i32 = 5;
pub(crate) const FILE_SERVICE: i32 = 6;
pub(crate) const FILE_EXTENSION: i32 = 7;
pub(crate) const FILE_SYNTAX: i32 = 12;
pub(crate) const MESSAGE_FIELD: i32 = 2;
pub(crate) const MESSAGE_NESTED: i32 = 3;
pub(crate) const MESSAGE_ENUM: i32 = 4;
pub(crate) const MESSAGE_EXTENSION_RANGE: i32 = 5;
pub(crate) const MESSAGE_EXTENSION: i32 = 6;
pub(crate) const MESSAGE_ONEOF: i32 = 8;
pub(crate) const MESSAGE_RESERVED_RANGE: i32 = 9;
pub(crate) const MESSAGE_RESERVED_NAME: i32 = 10;
pub(crate) const ENUM_VALUE: i32 = 2;
pub(crate) const ENUM_RESERVED_RANGE: i32 = 4;
pub(crate) const SERVICE_METHOD: i32 = 2;
pub(crate) const FILE_DEPENDENCY: i32 = 3;
pub(crate) const FIELD_NAME: i32 = 1;
pub(crate) const FIELD_NUMBER: i32 = 3;
pub(crate) const FIELD_TYPE_NAME: i32 = 6;
pub(crate) const FIELD_EXTENDEE: i32 = 2;
pub(crate) const METHOD_INPUT: i32 = 2;
pub(crate) const METHOD_OUTPUT: i32 = 3;
pub(crate) const ENUM_VALUE_NUMBER: i32 = 2;

/// The largest field number, plus one: how `max` is stored in an exclusive range end.
pub(crate) const FIELD_NUMBER_END: i32 = 536_870_912;

/// Writes `file` as `.proto` text. `symbols` are every fully-qualified name resolvable from it
/// (see [`crate::load::symbols`]), used to write the shortest correct type names.
pub fn render_file(file: &FileDescriptorProto, symbols: &BTreeSet<String>) -> Result<String, RenderError> {
    let syntax = match file.syntax() {
        "" | "proto2" => Syntax::Proto2,
        "proto3" => Syntax::Proto3,
        other => {
            return Err(RenderError::Unsupported {
                file: file.name().to_owned(),
                what: format!("syntax {other:?}"),
            });
        }
    };
    let mut w = Writer {
        out: String::new(),
        locations: Locations::new(file.source_code_info.as_ref()),
        symbols,
        syntax,
        file: file.name(),
        package: file.package(),
    };
    w.comments(&[FILE_SYNTAX], 0);
    let _ = writeln!(w.out, "syntax = \"{}\";", if syntax == Syntax::Proto3 { "proto3" } else { "proto2" });
    if !file.package().is_empty() {
        w.out.push('\n');
        w.comments(&[FILE_PACKAGE], 0);
        let _ = writeln!(w.out, "package {};", file.package());
    }
    if !file.dependency.is_empty() {
        w.out.push('\n');
        for (i, dep) in file.dependency.iter().enumerate() {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            let modifier = if file.public_dependency.contains(&index) {
                "public "
            } else if file.weak_dependency.contains(&index) {
                "weak "
            } else {
                ""
            };
            let _ = writeln!(w.out, "import {modifier}{};", quote(dep));
        }
    }
    let options = file_options(file);
    if !options.is_empty() {
        w.out.push('\n');
        for (name, value) in options {
            let _ = writeln!(w.out, "option {name} = {value};");
        }
    }

    let mut items: Vec<Placed<Item>> = Vec::new();
    for (i, _) in file.service.iter().enumerate() {
        items.push((w.locations.start(&[FILE_SERVICE, idx(i)]), items.len(), Item::Service(i)));
    }
    for (i, _) in file.enum_type.iter().enumerate() {
        items.push((w.locations.start(&[FILE_ENUM, idx(i)]), items.len(), Item::Enum(i)));
    }
    for (i, _) in file.message_type.iter().enumerate() {
        items.push((w.locations.start(&[FILE_MESSAGE, idx(i)]), items.len(), Item::Message(i)));
    }
    for extendee in extendees(&file.extension) {
        let first = file.extension.iter().position(|e| e.extendee() == extendee).unwrap_or(0);
        items.push((w.locations.start(&[FILE_EXTENSION, idx(first)]), items.len(), Item::Extend(extendee)));
    }
    sort_items(&mut items);
    for (_, _, item) in items {
        w.out.push('\n');
        match item {
            Item::Service(i) => w.service(&file.service[i], &[FILE_SERVICE, idx(i)])?,
            Item::Enum(i) => w.enumeration(&file.enum_type[i], &[FILE_ENUM, idx(i)], 0),
            Item::Message(i) => {
                w.message(&file.message_type[i], &[FILE_MESSAGE, idx(i)], file.package(), 0)?
            }
            Item::Extend(extendee) => {
                w.extend(&extendee, &file.extension, FILE_EXTENSION, &[], file.package(), 0)?;
            }
        }
    }
    Ok(w.out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Proto2,
    Proto3,
}

enum Item {
    Service(usize),
    Enum(usize),
    Message(usize),
    Extend(String),
}

/// A declaration with where it starts (line, column; when known) and its declaration order.
type Placed<T> = (Option<(i32, i32)>, usize, T);

/// Source order when every item has a location, declaration order otherwise.
fn sort_items<T>(items: &mut [Placed<T>]) {
    if items.iter().all(|(at, _, _)| at.is_some()) {
        items.sort_by_key(|(at, order, _)| (*at, *order));
    } else {
        items.sort_by_key(|(_, order, _)| *order);
    }
}

fn idx(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

fn extendees(extensions: &[FieldDescriptorProto]) -> Vec<String> {
    let mut seen = Vec::<String>::new();
    for e in extensions {
        if !seen.iter().any(|s| s == e.extendee()) {
            seen.push(e.extendee().to_owned());
        }
    }
    seen
}

struct Writer<'a> {
    out: String,
    locations: Locations<'a>,
    symbols: &'a BTreeSet<String>,
    syntax: Syntax,
    file: &'a str,
    package: &'a str,
}

impl Writer<'_> {
    fn comments(&mut self, path: &[i32], depth: usize) {
        let Some(location) = self.locations.get(path) else { return };
        let indent = "  ".repeat(depth);
        for detached in &location.leading_detached_comments {
            write_comment(&mut self.out, &indent, detached);
            self.out.push('\n');
        }
        if let Some(leading) = &location.leading_comments {
            write_comment(&mut self.out, &indent, leading);
        }
    }

    fn trailing(&self, path: &[i32]) -> String {
        let Some(Location { trailing_comments: Some(text), .. }) = self.locations.get(path) else {
            return String::new();
        };
        let text = text.strip_suffix('\n').unwrap_or(text);
        if text.contains('\n') {
            // A trailing comment of several lines goes on lines of its own after the statement.
            text.lines().map(|l| format!("\n//{l}")).collect()
        } else {
            format!(" //{text}")
        }
    }

    fn type_name(&self, scope: &str, full: &str) -> String {
        relative_name(self.symbols, scope, full)
    }

    fn service(&mut self, service: &ServiceDescriptorProto, path: &[i32]) -> Result<(), RenderError> {
        self.comments(path, 0);
        let _ = writeln!(self.out, "service {} {{", service.name());
        if service.options.as_ref().is_some_and(|o| o.deprecated()) {
            let _ = writeln!(self.out, "  option deprecated = true;");
        }
        for (i, method) in service.method.iter().enumerate() {
            let mpath = [path, &[SERVICE_METHOD, idx(i)]].concat();
            self.method(method, &mpath);
        }
        let _ = writeln!(self.out, "}}");
        Ok(())
    }

    fn method(&mut self, method: &MethodDescriptorProto, path: &[i32]) {
        self.comments(path, 1);
        let stream = |yes: bool| if yes { "stream " } else { "" };
        let input = self.type_name(self.package, method.input_type());
        let output = self.type_name(self.package, method.output_type());
        let mut options = Vec::new();
        if let Some(o) = &method.options {
            if o.deprecated() {
                options.push("option deprecated = true;".to_owned());
            }
            if o.idempotency_level.is_some() {
                options.push(format!("option idempotency_level = {};", o.idempotency_level().as_str_name()));
            }
        }
        let head = format!(
            "  rpc {}({}{input}) returns ({}{output})",
            method.name(),
            stream(method.client_streaming()),
            stream(method.server_streaming())
        );
        if options.is_empty() {
            let _ = writeln!(self.out, "{head};{}", self.trailing(path));
        } else {
            let _ = writeln!(self.out, "{head} {{{}", self.trailing(path));
            for o in options {
                let _ = writeln!(self.out, "    {o}");
            }
            let _ = writeln!(self.out, "  }}");
        }
    }

    fn enumeration(&mut self, e: &EnumDescriptorProto, path: &[i32], depth: usize) {
        let indent = "  ".repeat(depth);
        self.comments(path, depth);
        let _ = writeln!(self.out, "{indent}enum {} {{", e.name());
        if let Some(o) = &e.options {
            if o.allow_alias.is_some() {
                let _ = writeln!(self.out, "{indent}  option allow_alias = {};", o.allow_alias());
            }
            if o.deprecated() {
                let _ = writeln!(self.out, "{indent}  option deprecated = true;");
            }
        }
        for (i, value) in e.value.iter().enumerate() {
            let vpath = [path, &[ENUM_VALUE, idx(i)]].concat();
            self.comments(&vpath, depth + 1);
            let options = if value.options.as_ref().is_some_and(|o| o.deprecated()) {
                " [deprecated = true]"
            } else {
                ""
            };
            let _ = writeln!(
                self.out,
                "{indent}  {} = {}{options};{}",
                value.name(),
                value.number(),
                self.trailing(&vpath)
            );
        }
        let ranges: Vec<String> =
            e.reserved_range.iter().map(|r| range_text(r.start(), r.end(), i32::MAX, false)).collect();
        self.reserved(&ranges, &e.reserved_name, &[path, &[ENUM_RESERVED_RANGE]].concat(), depth + 1);
        let _ = writeln!(self.out, "{indent}}}");
    }

    fn reserved(&mut self, ranges: &[String], names: &[String], path: &[i32], depth: usize) {
        let indent = "  ".repeat(depth);
        if !ranges.is_empty() {
            self.comments(path, depth);
            let _ = writeln!(self.out, "{indent}reserved {};", ranges.join(", "));
        }
        if !names.is_empty() {
            let quoted: Vec<String> = names.iter().map(|n| quote(n)).collect();
            let _ = writeln!(self.out, "{indent}reserved {};", quoted.join(", "));
        }
    }

    fn message(
        &mut self,
        message: &DescriptorProto,
        path: &[i32],
        scope: &str,
        depth: usize,
    ) -> Result<(), RenderError> {
        let indent = "  ".repeat(depth);
        let name = join(scope, message.name());
        self.comments(path, depth);
        let _ = writeln!(self.out, "{indent}message {} {{", message.name());
        if let Some(o) = &message.options {
            if o.deprecated() {
                let _ = writeln!(self.out, "{indent}  option deprecated = true;");
            }
            if o.message_set_wire_format() {
                let _ = writeln!(self.out, "{indent}  option message_set_wire_format = true;");
            }
            if o.no_standard_descriptor_accessor() {
                let _ = writeln!(self.out, "{indent}  option no_standard_descriptor_accessor = true;");
            }
        }

        enum Member {
            Field(usize),
            Oneof(usize),
            Nested(usize),
            Enum(usize),
            Reserved,
            ExtensionRanges,
            Extend(String),
        }
        let map_entries: BTreeSet<String> = message
            .nested_type
            .iter()
            .filter(|n| n.options.as_ref().is_some_and(|o| o.map_entry()))
            .map(|n| format!(".{}", join(&name, n.name())))
            .collect();
        let mut members: Vec<Placed<Member>> = Vec::new();
        let mut oneofs_seen = BTreeSet::new();
        for (i, field) in message.field.iter().enumerate() {
            if field.r#type() == Type::Group {
                return Err(RenderError::Unsupported {
                    file: self.file.to_owned(),
                    what: format!("the group field {name}.{}", field.name()),
                });
            }
            match field.oneof_index {
                Some(o) if !field.proto3_optional() => {
                    if oneofs_seen.insert(o) {
                        let at = self
                            .locations
                            .start(&[path, &[MESSAGE_ONEOF, o]].concat())
                            .or_else(|| self.locations.start(&[path, &[MESSAGE_FIELD, idx(i)]].concat()));
                        let order = usize::try_from(o).unwrap_or(0);
                        members.push((at, members.len(), Member::Oneof(order)));
                    }
                }
                _ => members.push((
                    self.locations.start(&[path, &[MESSAGE_FIELD, idx(i)]].concat()),
                    members.len(),
                    Member::Field(i),
                )),
            }
        }
        for (i, nested) in message.nested_type.iter().enumerate() {
            if map_entries.contains(&format!(".{}", join(&name, nested.name()))) {
                continue;
            }
            members.push((
                self.locations.start(&[path, &[MESSAGE_NESTED, idx(i)]].concat()),
                members.len(),
                Member::Nested(i),
            ));
        }
        for (i, _) in message.enum_type.iter().enumerate() {
            members.push((
                self.locations.start(&[path, &[MESSAGE_ENUM, idx(i)]].concat()),
                members.len(),
                Member::Enum(i),
            ));
        }
        if !message.extension_range.is_empty() {
            members.push((
                self.locations.start(&[path, &[MESSAGE_EXTENSION_RANGE]].concat()),
                members.len(),
                Member::ExtensionRanges,
            ));
        }
        if !message.reserved_range.is_empty() || !message.reserved_name.is_empty() {
            let at = self
                .locations
                .start(&[path, &[MESSAGE_RESERVED_RANGE]].concat())
                .or_else(|| self.locations.start(&[path, &[MESSAGE_RESERVED_NAME]].concat()));
            members.push((at, members.len(), Member::Reserved));
        }
        for extendee in extendees(&message.extension) {
            let first = message.extension.iter().position(|e| e.extendee() == extendee).unwrap_or(0);
            members.push((
                self.locations.start(&[path, &[MESSAGE_EXTENSION, idx(first)]].concat()),
                members.len(),
                Member::Extend(extendee),
            ));
        }
        sort_items(&mut members);

        let mut previous_block = false;
        for (n, (_, _, member)) in members.into_iter().enumerate() {
            let block = matches!(member, Member::Nested(_) | Member::Enum(_) | Member::Extend(_));
            if n > 0 && (block || previous_block) {
                self.out.push('\n');
            }
            previous_block = block;
            match member {
                Member::Field(i) => {
                    let fpath = [path, &[MESSAGE_FIELD, idx(i)]].concat();
                    self.field(message, &message.field[i], &fpath, &name, depth + 1, true);
                }
                Member::Oneof(o) => {
                    let opath = [path, &[MESSAGE_ONEOF, idx(o)]].concat();
                    self.comments(&opath, depth + 1);
                    let decl = &message.oneof_decl[o];
                    let _ = writeln!(self.out, "{indent}  oneof {} {{", decl.name());
                    for (i, field) in message.field.iter().enumerate() {
                        if field.oneof_index == Some(idx(o)) && !field.proto3_optional() {
                            let fpath = [path, &[MESSAGE_FIELD, idx(i)]].concat();
                            self.field(message, field, &fpath, &name, depth + 2, false);
                        }
                    }
                    let _ = writeln!(self.out, "{indent}  }}");
                }
                Member::Nested(i) => {
                    let npath = [path, &[MESSAGE_NESTED, idx(i)]].concat();
                    self.message(&message.nested_type[i], &npath, &name, depth + 1)?;
                }
                Member::Enum(i) => {
                    let epath = [path, &[MESSAGE_ENUM, idx(i)]].concat();
                    self.enumeration(&message.enum_type[i], &epath, depth + 1);
                }
                Member::ExtensionRanges => {
                    let ranges: Vec<String> = message
                        .extension_range
                        .iter()
                        .map(|r| range_text(r.start(), r.end(), FIELD_NUMBER_END, true))
                        .collect();
                    let _ = writeln!(self.out, "{indent}  extensions {};", ranges.join(", "));
                }
                Member::Reserved => {
                    let ranges: Vec<String> = message
                        .reserved_range
                        .iter()
                        .map(|r| range_text(r.start(), r.end(), FIELD_NUMBER_END, true))
                        .collect();
                    self.reserved(
                        &ranges,
                        &message.reserved_name,
                        &[path, &[MESSAGE_RESERVED_RANGE]].concat(),
                        depth + 1,
                    );
                }
                Member::Extend(extendee) => {
                    self.extend(&extendee, &message.extension, MESSAGE_EXTENSION, path, &name, depth + 1)?;
                }
            }
        }
        let _ = writeln!(self.out, "{indent}}}");
        Ok(())
    }

    fn extend(
        &mut self,
        extendee: &str,
        fields: &[FieldDescriptorProto],
        field_number: i32,
        parent: &[i32],
        scope: &str,
        depth: usize,
    ) -> Result<(), RenderError> {
        let indent = "  ".repeat(depth);
        let _ = writeln!(self.out, "{indent}extend {} {{", self.type_name(scope, extendee));
        let empty = DescriptorProto::default();
        for (i, field) in fields.iter().enumerate().filter(|(_, f)| f.extendee() == extendee) {
            let fpath = [parent, &[field_number, idx(i)]].concat();
            self.field(&empty, field, &fpath, scope, depth + 1, true);
        }
        let _ = writeln!(self.out, "{indent}}}");
        Ok(())
    }

    fn field(
        &mut self,
        message: &DescriptorProto,
        field: &FieldDescriptorProto,
        path: &[i32],
        scope: &str,
        depth: usize,
        with_label: bool,
    ) {
        let indent = "  ".repeat(depth);
        self.comments(path, depth);
        let map = map_entry(message, field);
        let label = match (field.label(), self.syntax) {
            _ if map.is_some() || !with_label => "",
            (Label::Repeated, _) => "repeated ",
            (Label::Required, _) => "required ",
            (Label::Optional, Syntax::Proto2) => "optional ",
            (Label::Optional, Syntax::Proto3) if field.proto3_optional() => "optional ",
            (Label::Optional, Syntax::Proto3) => "",
        };
        let ty = match map {
            Some(entry) => {
                let key = entry.field.iter().find(|f| f.number() == 1);
                let value = entry.field.iter().find(|f| f.number() == 2);
                let name = |f: Option<&FieldDescriptorProto>| {
                    f.map(|f| self.field_type(scope, f)).unwrap_or_default()
                };
                format!("map<{}, {}>", name(key), name(value))
            }
            None => self.field_type(scope, field),
        };
        let options = self.field_options(field);
        let options = if options.is_empty() { String::new() } else { format!(" [{}]", options.join(", ")) };
        let _ = writeln!(
            self.out,
            "{indent}{label}{ty} {} = {}{options};{}",
            field.name(),
            field.number(),
            self.trailing(path)
        );
    }

    fn field_type(&self, scope: &str, field: &FieldDescriptorProto) -> String {
        match field.r#type() {
            Type::Message | Type::Enum | Type::Group => self.type_name(scope, field.type_name()),
            scalar => scalar_name(scalar).to_owned(),
        }
    }

    fn field_options(&self, field: &FieldDescriptorProto) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(default) = &field.default_value {
            let value = match field.r#type() {
                Type::String => quote(default),
                // Already escaped in the descriptor.
                Type::Bytes => format!("\"{default}\""),
                _ => default.clone(),
            };
            out.push(format!("default = {value}"));
        }
        if let Some(json) = &field.json_name
            && *json != default_json_name(field.name())
            && field.extendee.is_none()
        {
            out.push(format!("json_name = {}", quote(json)));
        }
        if let Some(o) = &field.options {
            if o.ctype.is_some() {
                out.push(format!("ctype = {}", o.ctype().as_str_name()));
            }
            if o.packed.is_some() {
                out.push(format!("packed = {}", o.packed()));
            }
            if o.jstype.is_some() {
                out.push(format!("jstype = {}", o.jstype().as_str_name()));
            }
            if o.lazy() {
                out.push("lazy = true".to_owned());
            }
            if o.deprecated() {
                out.push("deprecated = true".to_owned());
            }
        }
        out
    }
}

/// The map-entry message a `map<K, V>` field stands for, if `field` is one.
fn map_entry<'m>(message: &'m DescriptorProto, field: &FieldDescriptorProto) -> Option<&'m DescriptorProto> {
    if field.label() != Label::Repeated || field.r#type() != Type::Message {
        return None;
    }
    let entry_name = field.type_name().rsplit('.').next()?;
    message
        .nested_type
        .iter()
        .find(|n| n.name() == entry_name && n.options.as_ref().is_some_and(|o| o.map_entry()))
}

fn write_comment(out: &mut String, indent: &str, text: &str) {
    let text = text.strip_suffix('\n').unwrap_or(text);
    for line in text.split('\n') {
        let _ = writeln!(out, "{indent}//{}", line.trim_end());
    }
}

/// A range as `reserved`/`extensions` write it: `5`, `5 to 9`, `5 to max`. `exclusive` says
/// whether `end` is one past the last number (messages) or the last number (enums).
fn range_text(start: i32, end: i32, max: i32, exclusive: bool) -> String {
    let last = if exclusive { end - 1 } else { end };
    if last == start {
        start.to_string()
    } else if end == max {
        format!("{start} to max")
    } else {
        format!("{start} to {last}")
    }
}

/// protoc's default JSON name: lowerCamelCase of the field name.
pub fn default_json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A `.proto` string literal.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `.proto` keyword of a scalar type.
pub fn scalar_name(ty: Type) -> &'static str {
    match ty {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group => "group",
        Type::Message => "message",
        Type::Enum => "enum",
    }
}

/// A file's options as `option name = value;` writes them, in the order written.
pub(crate) fn file_options(file: &FileDescriptorProto) -> Vec<(&'static str, String)> {
    let Some(o) = &file.options else { return Vec::new() };
    let mut out = Vec::new();
    let mut text = |name: &'static str, value: &Option<String>| {
        if let Some(v) = value {
            out.push((name, quote(v)));
        }
    };
    text("java_package", &o.java_package);
    text("java_outer_classname", &o.java_outer_classname);
    text("go_package", &o.go_package);
    text("objc_class_prefix", &o.objc_class_prefix);
    text("csharp_namespace", &o.csharp_namespace);
    text("swift_prefix", &o.swift_prefix);
    text("php_class_prefix", &o.php_class_prefix);
    text("php_namespace", &o.php_namespace);
    text("php_metadata_namespace", &o.php_metadata_namespace);
    text("ruby_package", &o.ruby_package);
    let mut flag = |name: &'static str, value: Option<bool>| {
        if let Some(v) = value {
            out.push((name, v.to_string()));
        }
    };
    flag("java_multiple_files", o.java_multiple_files);
    flag("java_generic_services", o.java_generic_services);
    flag("java_string_check_utf8", o.java_string_check_utf8);
    flag("cc_generic_services", o.cc_generic_services);
    flag("py_generic_services", o.py_generic_services);
    flag("deprecated", o.deprecated);
    flag("cc_enable_arenas", o.cc_enable_arenas);
    if o.optimize_for.is_some() {
        out.push(("optimize_for", o.optimize_for().as_str_name().to_owned()));
    }
    out
}

/// The shortest name for the type `full` (`.pkg.Msg`) that protobuf's scoping rules resolve to
/// that type from `scope` (a package or message, no leading dot); the fully-qualified name with
/// its leading dot when none does.
pub fn relative_name(symbols: &BTreeSet<String>, scope: &str, full: &str) -> String {
    let target = full.trim_start_matches('.');
    let parts: Vec<&str> = target.split('.').collect();
    for n in 1..=parts.len() {
        let candidate = parts[parts.len() - n..].join(".");
        if resolve(symbols, scope, &candidate).as_deref() == Some(target) {
            return candidate;
        }
    }
    format!(".{target}")
}

/// What protobuf resolves `name` to from `scope`: the first component is looked up from the
/// innermost scope outwards, the rest inside what it found.
fn resolve(symbols: &BTreeSet<String>, scope: &str, name: &str) -> Option<String> {
    let (first, rest) = match name.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    let mut scope = scope.to_owned();
    loop {
        let candidate = join(&scope, first);
        if symbols.contains(&candidate) {
            return Some(match rest {
                Some(rest) => format!("{candidate}.{rest}"),
                None => candidate,
            });
        }
        if scope.is_empty() {
            return None;
        }
        scope = scope.rsplit_once('.').map(|(s, _)| s.to_owned()).unwrap_or_default();
    }
}
