//! What Banyan's sources use of the protos, read from the code itself (`sources/src/*.rs`,
//! parsed with `syn`), so the list cannot drift from what the code does.
//!
//! How uses are found:
//!
//! * the generated modules: an inline `mod` holding `include_proto!("pkg")` (e.g.
//!   `crate::proto::events` is `banyan.events.v1`), reached in a file through `use … as pb`;
//! * **RPCs**: a method call named like a generated client method (`client.get_template_stats(…)`
//!   is `EventService/GetTemplateStats`) in a file that imports that package;
//! * **fields written**: struct literals of generated messages (`pb::ListEventsRequest { … }`),
//!   exact, since prost's structs are built whole;
//! * **fields read**: a field access `.name` in such a file, counted for every message of the
//!   package reachable from the responses of the RPCs that file calls and having a field of that
//!   name: name-based, so it can count a read too many (a same-named field of another type),
//!   never one too few for a direct access;
//! * **messages and enum values** named by path (`pb::EventKind::Sent`, `pb::Draft`).
//!
//! Code under `#[cfg(test)]` is left out. Each use keeps its file, line, column and the function
//! it is in (`EventsClient::template_stats`), which is what a report prints.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use prost_types::field_descriptor_proto::Type;
use serde::Serialize;
use syn::visit::Visit;

use crate::ProtoError;
use crate::check::{Index, Touch};
use crate::load::{ProtoSet, join};

/// One place in Banyan's sources that uses part of the protos.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct UsageSite {
    /// The source file (as the scanned folder joined with its path).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The function the use is in: `Type::method` or `function`.
    pub function: String,
    /// What it does: `calls`, `reads`, `writes`, `names`, with the element.
    pub what: String,
}

impl UsageSite {
    /// `file:line:col`.
    pub fn position(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Every use, by element key (`rpc:pkg.Service/Method`, `message:pkg.M`, `field:pkg.M.f`,
/// `enum:pkg.E`, `value:pkg.E.V`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    source: Option<String>,
    by_key: BTreeMap<String, Vec<UsageSite>>,
}

impl Usage {
    /// Where the usage was read from, if anywhere (`Usage::default()` knows no use).
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// Every element key used, with its sites.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[UsageSite])> {
        self.by_key.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The sites of one key.
    pub fn sites_of(&self, key: &str) -> &[UsageSite] {
        self.by_key.get(key).map(Vec::as_slice).unwrap_or_default()
    }

    /// Reads every `.rs` file under `dir` (recursively) against the protos of `base`.
    pub fn scan(dir: &Path, base: &ProtoSet) -> Result<Usage, ProtoError> {
        Self::scan_then(dir, || Some(base)).map(|usage| usage.unwrap_or_default())
    }

    /// [`Usage::scan`], with the base set given only once the sources are read and parsed, so
    /// reading them can overlap loading it. `None` from `base` (it failed to load) gives `None`.
    pub fn scan_then<'b>(
        dir: &Path,
        base: impl FnOnce() -> Option<&'b ProtoSet>,
    ) -> Result<Option<Usage>, ProtoError> {
        let label = dir.display().to_string();
        let sources: Vec<(String, String)> = crate::load::read_tree(dir, "rs")?.into_iter().collect();
        // The files that declare generated modules first; then only the files that can name one.
        let (declaring, rest): (Vec<_>, Vec<_>) =
            sources.into_iter().partition(|(_, text)| text.contains(INCLUDE_PROTO));
        let mut parsed = parse_sources(&label, &declaring)?;
        let modules = generated_modules(&parsed);
        let rest: Vec<(String, String)> =
            rest.into_iter().filter(|(path, text)| can_name(&modules, path, text)).collect();
        parsed.extend(parse_sources(&label, &rest)?);
        Ok(base().map(|base| resolve(&label, &parsed, &modules, base)))
    }

    /// Reads in-memory Rust sources (`(path relative to src/, text)`; `lib.rs` is the crate root).
    pub fn from_sources(
        label: &str,
        sources: &[(String, String)],
        base: &ProtoSet,
    ) -> Result<Usage, ProtoError> {
        let parsed = parse_sources(label, sources)?;
        Ok(resolve(label, &parsed, &generated_modules(&parsed), base))
    }
}

/// The macro a generated module is declared with.
const INCLUDE_PROTO: &str = "include_proto";

/// Whether a file can name a generated module the way [`FileScan`] resolves paths: through
/// `crate::<head>::…`, `use` declarations or `super::` from inside `<head>`, each of which writes
/// the module's first segment under `crate` (`<head>`) or lives under it. Reading only those
/// files is most of what `proto check` saves on reading Banyan's sources (it parses them with
/// `syn`, whose cost grows with the text).
fn can_name(modules: &BTreeMap<String, String>, path: &str, text: &str) -> bool {
    let own_head = module_path(path).split("::").nth(1).map(str::to_owned);
    modules
        .keys()
        .filter_map(|m| m.split("::").nth(1))
        .any(|head| text.contains(head) || own_head.as_deref() == Some(head))
}

fn parse_sources<'s>(
    label: &str,
    sources: &'s [(String, String)],
) -> Result<Vec<(&'s str, syn::File)>, ProtoError> {
    let mut parsed = Vec::new();
    for (path, text) in sources {
        let file = syn::parse_file(text).map_err(|e| ProtoError::Usage {
            path: format!("{label}/{path}"),
            message: format!("{}:{}: {e}", e.span().start().line, e.span().start().column + 1),
        })?;
        parsed.push((path.as_str(), file));
    }
    Ok(parsed)
}

/// The generated modules the parsed sources declare: `crate::a::b` → package.
fn generated_modules(parsed: &[(&str, syn::File)]) -> BTreeMap<String, String> {
    let mut modules = BTreeMap::new();
    for (path, file) in parsed {
        find_modules(&module_path(path), &file.items, &mut modules);
    }
    modules
}

/// What the parsed sources use of `base`, through `modules` (see [`generated_modules`]).
fn resolve(
    label: &str,
    parsed: &[(&str, syn::File)],
    modules: &BTreeMap<String, String>,
    base: &ProtoSet,
) -> Usage {
    let protos = Protos::new(base, modules);
    let mut usage = Usage { source: Some(label.to_owned()), by_key: BTreeMap::new() };
    for (path, file) in parsed {
        let mut scan = FileScan {
            protos: &protos,
            modules,
            file_label: format!("{label}/{path}"),
            module: module_path(path),
            aliases: BTreeMap::new(),
            self_type: None,
            function: String::new(),
            found: Vec::new(),
            accesses: Vec::new(),
        };
        scan.visit_file(file);
        scan.finish(&mut usage);
    }
    for sites in usage.by_key.values_mut() {
        sites.sort();
        sites.dedup();
    }
    usage
}

impl Usage {
    /// The sites a change touches.
    pub(crate) fn sites(&self, touch: &Touch, index: &Index<'_>) -> Vec<UsageSite> {
        let mut out: Vec<UsageSite> = Vec::new();
        let mut take = |key: &str| out.extend(self.sites_of(key).iter().cloned());
        match touch {
            Touch::Rpc(rpc) => take(&format!("rpc:{rpc}")),
            Touch::Field(message, field) => take(&format!("field:{message}.{field}")),
            Touch::EnumValue(e, value) => take(&format!("value:{e}.{value}")),
            Touch::Service(service) => {
                let prefix = format!("rpc:{service}/");
                for (k, v) in self.by_key.range(prefix.clone()..) {
                    if !k.starts_with(&prefix) {
                        break;
                    }
                    out.extend(v.iter().cloned());
                }
            }
            Touch::Message(message) => {
                take(&format!("message:{message}"));
                let prefix = format!("field:{message}.");
                for (k, v) in &self.by_key {
                    if k.strip_prefix(&prefix).is_some_and(|rest| !rest.contains('.')) {
                        out.extend(v.iter().cloned());
                    }
                }
            }
            Touch::Enum(e) => {
                take(&format!("enum:{e}"));
                let prefix = format!("value:{e}.");
                for (k, v) in &self.by_key {
                    if k.strip_prefix(&prefix).is_some_and(|rest| !rest.contains('.')) {
                        out.extend(v.iter().cloned());
                    }
                }
            }
            Touch::File(file) => {
                for (k, v) in &self.by_key {
                    let element = k.split_once(':').map(|(_, e)| e).unwrap_or(k);
                    if index.file_of(element) == Some(file.as_str()) {
                        out.extend(v.iter().cloned());
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// `lib.rs` → `crate`, `a.rs` / `a/mod.rs` → `crate::a`, `a/b.rs` → `crate::a::b`.
fn module_path(file: &str) -> String {
    let trimmed = file.trim_end_matches(".rs");
    let mut parts: Vec<&str> = trimmed.split('/').collect();
    if matches!(parts.last(), Some(&"mod" | &"lib" | &"main")) {
        parts.pop();
    }
    std::iter::once("crate").chain(parts).collect::<Vec<_>>().join("::")
}

fn find_modules(at: &str, items: &[syn::Item], out: &mut BTreeMap<String, String>) {
    for item in items {
        if let syn::Item::Mod(m) = item
            && let Some((_, content)) = &m.content
        {
            let path = format!("{at}::{}", m.ident);
            for inner in content {
                if let syn::Item::Macro(mac) = inner
                    && mac.mac.path.segments.last().is_some_and(|s| s.ident == INCLUDE_PROTO)
                    && let Ok(lit) = syn::parse2::<syn::LitStr>(mac.mac.tokens.clone())
                {
                    out.insert(path.clone(), lit.value());
                }
            }
            find_modules(&path, content, out);
        }
    }
}

/// Lower case without underscores: how prost's generated names compare with proto names
/// (`GetTemplateStats` ↔ `get_template_stats`, `EVENT_KIND_SENT` ↔ `Sent` after the prefix).
fn folded(name: &str) -> String {
    name.trim_start_matches("r#").chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

/// A method: its folded name (the generated client method's, folded), its name, and its
/// response type's full name.
type Method = (String, String, String);

/// The base protos, indexed for the scan.
struct Protos {
    /// Package → messages (folded name → full name).
    messages: BTreeMap<String, BTreeMap<String, String>>,
    /// Package → enums (folded name → (full name, value names)).
    enums: BTreeMap<String, BTreeMap<String, (String, Vec<String>)>>,
    /// Package → services: full name and methods.
    services: BTreeMap<String, Vec<(String, Vec<Method>)>>,
    /// Full message name → fields (folded → (name, message type if any)).
    fields: BTreeMap<String, Vec<(String, String, Option<String>)>>,
}

impl Protos {
    /// The protos of the packages the sources generate code for (`modules`' values), and of
    /// every file those import: nothing else can be reached from Banyan's code.
    fn new(set: &ProtoSet, modules: &BTreeMap<String, String>) -> Self {
        let mut p = Protos {
            messages: BTreeMap::new(),
            enums: BTreeMap::new(),
            services: BTreeMap::new(),
            fields: BTreeMap::new(),
        };
        let by_name: HashMap<&str, &prost_types::FileDescriptorProto> =
            set.own_files().map(|f| (f.name(), f)).collect();
        let packages: HashSet<&str> = modules.values().map(String::as_str).collect();
        let mut reachable: Vec<&prost_types::FileDescriptorProto> =
            set.own_files().filter(|f| packages.contains(f.package())).collect();
        let mut seen: HashSet<&str> = reachable.iter().map(|f| f.name()).collect();
        let mut next = 0;
        while let Some(file) = reachable.get(next).copied() {
            next += 1;
            for import in &file.dependency {
                if let Some(&dep) = by_name.get(import.as_str())
                    && seen.insert(dep.name())
                {
                    reachable.push(dep);
                }
            }
        }
        for file in reachable {
            let package = file.package().to_owned();
            for m in &file.message_type {
                p.message(&package, &package, m, true);
            }
            for e in &file.enum_type {
                let values = e.value.iter().map(|v| v.name().to_owned()).collect();
                p.enums
                    .entry(package.clone())
                    .or_default()
                    .insert(folded(e.name()), (join(&package, e.name()), values));
            }
            for s in &file.service {
                let methods = s
                    .method
                    .iter()
                    .map(|m| {
                        (
                            folded(m.name()),
                            m.name().to_owned(),
                            m.output_type().trim_start_matches('.').to_owned(),
                        )
                    })
                    .collect();
                p.services.entry(package.clone()).or_default().push((join(&package, s.name()), methods));
            }
        }
        p
    }

    fn message(&mut self, package: &str, scope: &str, m: &prost_types::DescriptorProto, top: bool) {
        let name = join(scope, m.name());
        if top {
            self.messages.entry(package.to_owned()).or_default().insert(folded(m.name()), name.clone());
        }
        let fields = m
            .field
            .iter()
            .map(|f| {
                let ty =
                    (f.r#type() == Type::Message).then(|| f.type_name().trim_start_matches('.').to_owned());
                (folded(f.name()), f.name().to_owned(), ty)
            })
            .collect();
        self.fields.insert(name.clone(), fields);
        for nested in &m.nested_type {
            self.message(package, &name, nested, false);
        }
    }

    /// Messages reachable from `roots` through message-typed fields.
    fn reachable(&self, roots: impl IntoIterator<Item = String>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = roots.into_iter().collect();
        while let Some(m) = stack.pop() {
            if !self.fields.contains_key(&m) || !seen.insert(m.clone()) {
                continue;
            }
            for (_, _, ty) in &self.fields[&m] {
                if let Some(ty) = ty {
                    stack.push(ty.clone());
                }
            }
        }
        seen
    }
}

/// What an alias in a file stands for.
#[derive(Debug, Clone)]
enum Alias {
    /// A generated module: its package.
    Package(String),
    /// An item of one: package and Rust name.
    Item(String, String),
}

struct FileScan<'a> {
    protos: &'a Protos,
    modules: &'a BTreeMap<String, String>,
    file_label: String,
    module: String,
    aliases: BTreeMap<String, Alias>,
    self_type: Option<String>,
    function: String,
    /// Uses found: key and site.
    found: Vec<(String, UsageSite)>,
    /// Field accesses (`.name`), resolved at the end: folded name, raw name, site.
    accesses: Vec<(String, String, UsageSite)>,
}

impl FileScan<'_> {
    fn site(&self, span: proc_macro2::Span, what: String) -> UsageSite {
        let start = span.start();
        let function = match (&self.self_type, self.function.as_str()) {
            (_, "") => "(item)".to_owned(),
            (Some(t), f) => format!("{t}::{f}"),
            (None, f) => f.to_owned(),
        };
        UsageSite {
            file: self.file_label.clone(),
            line: start.line,
            column: start.column + 1,
            function,
            what,
        }
    }

    /// The package of a generated module path (`crate::proto::events`, or relative to this file).
    fn package_of_module(&self, path: &str) -> Option<String> {
        if let Some(p) = self.modules.get(path) {
            return Some(p.clone());
        }
        self.modules.get(&format!("{}::{path}", self.module)).cloned()
    }

    fn use_tree(&mut self, prefix: &str, tree: &syn::UseTree) {
        let join_path = |p: &str, s: &str| if p.is_empty() { s.to_owned() } else { format!("{p}::{s}") };
        match tree {
            syn::UseTree::Path(p) => self.use_tree(&join_path(prefix, &p.ident.to_string()), &p.tree),
            syn::UseTree::Name(n) => self.bind(prefix, &n.ident.to_string(), &n.ident.to_string()),
            syn::UseTree::Rename(r) => self.bind(prefix, &r.ident.to_string(), &r.rename.to_string()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
            syn::UseTree::Glob(_) => {}
        }
    }

    fn bind(&mut self, prefix: &str, name: &str, alias: &str) {
        let full = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}::{name}") };
        if let Some(package) = self.package_of_module(&full) {
            self.aliases.insert(alias.to_owned(), Alias::Package(package));
        } else if let Some(package) = self.package_of_module(prefix) {
            self.aliases.insert(alias.to_owned(), Alias::Item(package, name.to_owned()));
        }
    }

    /// A path's package and the Rust names after the module (`pb::EventKind::Sent` →
    /// (`banyan.events.v1`, [`EventKind`, `Sent`])).
    fn resolve(&self, path: &syn::Path) -> Option<(String, Vec<String>)> {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let first = segments.first()?;
        match self.aliases.get(first) {
            Some(Alias::Package(p)) => Some((p.clone(), segments[1..].to_vec())),
            Some(Alias::Item(p, name)) => Some((
                p.clone(),
                std::iter::once(name.clone()).chain(segments[1..].iter().cloned()).collect(),
            )),
            None => {
                // A full path: the longest prefix that is a generated module.
                (1..segments.len()).rev().find_map(|n| {
                    let module = segments[..n].join("::");
                    self.package_of_module(&module).map(|p| (p, segments[n..].to_vec()))
                })
            }
        }
    }

    /// Records what a resolved path names: a message, an enum (value) or a client.
    fn named(&mut self, package: &str, rest: &[String], span: proc_macro2::Span) -> Option<String> {
        let first = folded(rest.first()?);
        if let Some(full) = self.protos.messages.get(package).and_then(|m| m.get(&first)).cloned() {
            let site = self.site(span, format!("names `{}`", rest.join("::")));
            self.found.push((format!("message:{full}"), site));
            return Some(full);
        }
        if let Some((full, values)) = self.protos.enums.get(package).and_then(|e| e.get(&first)).cloned() {
            let site = self.site(span, format!("names `{}`", rest.join("::")));
            self.found.push((format!("enum:{full}"), site.clone()));
            if let Some(variant) = rest.get(1) {
                let enum_prefix = folded(full.rsplit('.').next().unwrap_or(&full));
                let variant = folded(variant);
                for value in values {
                    let v = folded(&value);
                    if v == variant || v.strip_prefix(&enum_prefix) == Some(variant.as_str()) {
                        self.found.push((format!("value:{full}.{value}"), site.clone()));
                    }
                }
            }
            return None;
        }
        None
    }
}

/// Where a path is: its last segment (what names the item).
fn path_span(path: &syn::Path) -> proc_macro2::Span {
    path.segments.last().map(|s| s.ident.span()).unwrap_or_else(proc_macro2::Span::call_site)
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<syn::Meta>().is_ok_and(|m| m.path().is_ident("test"))
    })
}

fn type_name(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

impl<'ast> Visit<'ast> for FileScan<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_cfg_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree("", &item.tree);
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        let previous = self.self_type.replace(type_name(&item.self_ty).unwrap_or_default());
        syn::visit::visit_item_impl(self, item);
        self.self_type = previous;
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        let previous_type = self.self_type.take();
        let previous = std::mem::replace(&mut self.function, item.sig.ident.to_string());
        syn::visit::visit_item_fn(self, item);
        self.function = previous;
        self.self_type = previous_type;
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if is_cfg_test(&item.attrs) {
            return;
        }
        let previous = std::mem::replace(&mut self.function, item.sig.ident.to_string());
        syn::visit::visit_impl_item_fn(self, item);
        self.function = previous;
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if let Some((package, rest)) = self.resolve(path) {
            self.named(&package, &rest, path_span(path));
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_expr_struct(&mut self, expr: &'ast syn::ExprStruct) {
        if let Some((package, rest)) = self.resolve(&expr.path)
            && let Some(message) = self.named(&package, &rest, path_span(&expr.path))
        {
            for field in &expr.fields {
                if let syn::Member::Named(ident) = &field.member {
                    let name = folded(&ident.to_string());
                    let known =
                        self.protos.fields.get(&message).and_then(|f| f.iter().find(|(n, _, _)| *n == name));
                    if let Some((_, proto_name, _)) = known {
                        let key = format!("field:{message}.{proto_name}");
                        let site = self.site(ident.span(), format!("writes `{proto_name}`"));
                        self.found.push((key, site));
                    }
                }
            }
        }
        // The path itself was handled above; visit the values only.
        for field in &expr.fields {
            self.visit_expr(&field.expr);
        }
        if let Some(rest) = &expr.rest {
            self.visit_expr(rest);
        }
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let method = folded(&call.method.to_string());
        let packages: BTreeSet<String> = self
            .aliases
            .values()
            .map(|a| match a {
                Alias::Package(p) | Alias::Item(p, _) => p.clone(),
            })
            .collect();
        for package in packages {
            for (service, methods) in self.protos.services.get(&package).into_iter().flatten() {
                for (folded_name, name, _) in methods {
                    if *folded_name == method {
                        let site = self.site(call.method.span(), format!("calls `{}`", call.method));
                        self.found.push((format!("rpc:{service}/{name}"), site));
                    }
                }
            }
        }
        syn::visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_field(&mut self, expr: &'ast syn::ExprField) {
        if let syn::Member::Named(ident) = &expr.member {
            let raw = ident.to_string().trim_start_matches("r#").to_owned();
            let site = self.site(ident.span(), format!("reads `{raw}`"));
            self.accesses.push((folded(&raw), raw, site));
        }
        syn::visit::visit_expr_field(self, expr);
    }
}

impl FileScan<'_> {
    /// Resolves field reads against the messages this file's RPC responses reach, and files
    /// every use.
    fn finish(self, usage: &mut Usage) {
        let rpcs: BTreeSet<&str> = self.found.iter().filter_map(|(k, _)| k.strip_prefix("rpc:")).collect();
        let mut roots = Vec::new();
        for services in self.protos.services.values() {
            for (service, methods) in services {
                for (_, name, output) in methods {
                    if rpcs.contains(format!("{service}/{name}").as_str()) {
                        roots.push(output.clone());
                    }
                }
            }
        }
        let reachable = self.protos.reachable(roots);
        for (name, _raw, site) in &self.accesses {
            for message in &reachable {
                for (folded_name, proto_name, _) in &self.protos.fields[message] {
                    if folded_name == name {
                        usage
                            .by_key
                            .entry(format!("field:{message}.{proto_name}"))
                            .or_default()
                            .push(site.clone());
                    }
                }
            }
        }
        for (key, site) in self.found {
            usage.by_key.entry(key).or_default().push(site);
        }
    }
}
