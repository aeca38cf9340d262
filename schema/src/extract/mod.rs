//! `contract extract`: the frontend contract pulled from the SPA's source.
//!
//! [`extract`] walks a source tree and finds GraphQL in
//!
//! * `.ts`, `.tsx`, `.mts`, `.cts`, `.js`, `.jsx`, `.mjs` and `.cjs` files, parsed with oxc:
//!   templates tagged `gql` or `graphql`, and `gql(…)` / `graphql(…)` calls whose one argument
//!   is a template or string literal (graphql-codegen's client preset);
//! * the `<script>` and `<script setup>` blocks of `.vue` files (any `lang`), the same way,
//!   with positions mapped back to the `.vue` file;
//! * `.graphql` and `.gql` files, whole.
//!
//! A `${X}` inside a template is followed statically: `X` must be bound to a GraphQL template
//! holding only fragments, in the same file (`const X = gql…`) or imported (`import { X } from
//! './fragments'`, through `export { … } from` and `export * from` re-exports; a module path
//! that does not resolve to a scanned file, such as an alias, is looked up by the exported
//! name across the tree). A fragment spread is resolved in the operation's own document and
//! the templates it interpolates first, then by name across every scanned file.
//!
//! Each named operation becomes `<Component>/<Operation>.graphql`, the layout
//! [`Contract::load`](crate::Contract::load) reads: the operation, then the fragments only it
//! uses. A fragment several operations use gets its own file,
//! `<Component of its source>/<Fragment>.graphql`, since fragment names are unique across the
//! contract. The component is the source file's directory or the file's name
//! ([`ComponentFrom`]). Definitions keep the `#` comment lines right above them and are
//! dedented; the order is deterministic.
//!
//! Whatever cannot be extracted statically is an error with `file:line:col`, never skipped:
//! a source that does not parse, an interpolation that is not an identifier, an identifier
//! bound to no GraphQL template, an interpolated template holding an operation, a template
//! that is not GraphQL, an anonymous operation, an unknown or ambiguous fragment, and
//! duplicate operation or fragment names.

mod js;
mod vue;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use apollo_compiler::ast::{Definition, Selection};
use apollo_compiler::parser::Parser;
use serde::Serialize;

use crate::problem::{Problem, Severity};

/// What names an operation's component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ComponentFrom {
    /// The source file's directory (`src/TemplateList/TemplateList.tsx` → `TemplateList`).
    #[default]
    Directory,
    /// The source file's name up to its first dot (`src/components/UserMenu.vue` →
    /// `UserMenu`).
    File,
}

/// Options of [`extract`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// What names an operation's component.
    pub component: ComponentFrom,
}

/// The extracted contract: file paths (relative to the contract folder, `/`-separated) and
/// their text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    /// `Component/Name.graphql` → text, sorted by path.
    pub files: BTreeMap<String, String>,
    /// Operations extracted.
    pub operations: usize,
    /// Source files scanned.
    pub sources: usize,
}

/// How a contract folder differs from an [`Extraction`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "lowercase")]
pub enum Difference {
    /// The extraction has the file; the folder does not.
    Missing(String),
    /// Both have the file, with different text.
    Changed(String),
    /// The folder has a `.graphql` file the extraction does not.
    Extra(String),
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Missing(p) => write!(f, "missing  {p}"),
            Difference::Changed(p) => write!(f, "changed  {p}"),
            Difference::Extra(p) => write!(f, "extra    {p}"),
        }
    }
}

/// Why extraction failed. The CLI maps every variant to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// A file or directory could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Operations could not be extracted statically.
    #[error("{} operation source(s) cannot be extracted statically:\n{}", problems.len(), problems.iter().map(|p| format!("  {p} [{}]", p.code)).collect::<Vec<_>>().join("\n"))]
    Unextractable {
        /// Every problem, with `file:line:col`, sorted by position.
        problems: Vec<Problem>,
    },
}

impl ExtractError {
    /// The located problems (empty for I/O errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ExtractError::Unextractable { problems } => problems,
            ExtractError::Io { .. } => &[],
        }
    }
}

/// The extensions scanned as JavaScript or TypeScript.
const SCRIPT_EXTENSIONS: &[&str] = &["ts", "tsx", "mts", "cts", "js", "jsx", "mjs", "cjs"];
/// Every extension scanned.
const EXTENSIONS: &[&str] = &["ts", "tsx", "mts", "cts", "js", "jsx", "mjs", "cjs", "vue", "graphql", "gql"];
/// Directories never scanned (besides hidden ones).
const SKIPPED_DIRS: &[&str] = &["node_modules", "dist", "build"];

/// A scanned source file.
#[derive(Debug)]
struct Source {
    /// Path relative to the root.
    rel: PathBuf,
    /// The label in messages: the root as given joined with `rel`.
    label: String,
    text: String,
    scan: js::ScriptScan,
    component: String,
    /// Whether it is a `.graphql`/`.gql` file (one template, the whole text).
    graphql: bool,
}

/// One GraphQL definition of a template.
#[derive(Debug, Clone)]
struct Def {
    operation: Option<crate::OperationType>,
    name: Option<String>,
    /// Dedented text with its leading comments.
    text: String,
    /// Byte offset in the file of the name (or start).
    offset: usize,
    /// Spread fragment names with their byte offsets in the file, in source order.
    spreads: Vec<(String, usize)>,
}

/// One file scanned: the source, each template's definitions, and the problems found.
type Scanned = (Source, Vec<Vec<Def>>, Vec<Problem>);

/// A template with its definitions parsed: (source index, template index) → definitions.
type TemplateId = (usize, usize);

/// Extracts the contract from the source tree at `root` (see the module docs).
pub fn extract(root: impl AsRef<Path>, options: ExtractOptions) -> Result<Extraction, ExtractError> {
    let root = root.as_ref();
    let mut paths = Vec::new();
    collect(root, root, &mut paths)?;
    let root_name = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let threads = crate::validate::default_parallelism().min(paths.len().max(1));
    let chunk = paths.len().div_ceil(threads).max(1);
    let scanned: Vec<Result<Scanned, ExtractError>> = std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                let root_name = &root_name;
                s.spawn(move || {
                    part.iter().map(|rel| scan_file(root, rel, root_name, options)).collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Err(ExtractError::Io {
                        action: "read",
                        path: label(root),
                        source: std::io::Error::other("a scanning thread panicked"),
                    })]
                })
            })
            .collect()
    });
    let mut sources = Vec::with_capacity(scanned.len());
    let mut defs: HashMap<TemplateId, Vec<Def>> = HashMap::new();
    let mut problems = Vec::new();
    for result in scanned {
        let (source, templates, found) = result?;
        let index = sources.len();
        for (t, list) in templates.into_iter().enumerate() {
            defs.insert((index, t), list);
        }
        problems.extend(found);
        sources.push(source);
    }
    let mut extraction = Resolver::new(&sources, &defs, &mut problems).run();
    if !problems.is_empty() {
        problems
            .sort_by(|a, b| (&a.file, a.line, a.column, &a.code).cmp(&(&b.file, b.line, b.column, &b.code)));
        problems.dedup();
        return Err(ExtractError::Unextractable { problems });
    }
    extraction.sources = sources.len();
    Ok(extraction)
}

fn label(path: &Path) -> String {
    path.display().to_string().replace('\\', "/")
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExtractError + '_ {
    move |source| ExtractError::Io { action: "read", path: label(path), source }
}

/// Every scannable file under `dir`, relative to `root`, sorted.
fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ExtractError> {
    let mut entries: Vec<(PathBuf, bool)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        let is_dir = entry.file_type().map_err(read_err(&entry.path()))?.is_dir();
        entries.push((entry.path(), is_dir));
    }
    entries.sort();
    for (path, is_dir) in entries {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if is_dir {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                collect(root, &path, out)?;
            }
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e))
            && !name.ends_with(".d.ts")
        {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

fn component_of(rel: &Path, root_name: &str, from: ComponentFrom) -> String {
    match from {
        ComponentFrom::Directory => rel
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| root_name.to_owned()),
        ComponentFrom::File => {
            let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.split('.').next().unwrap_or_default().to_owned()
        }
    }
}

/// Reads, scans and parses one file: the source, each template's definitions, and problems.
fn scan_file(
    root: &Path,
    rel: &Path,
    root_name: &str,
    options: ExtractOptions,
) -> Result<Scanned, ExtractError> {
    let path = root.join(rel);
    let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
    let file_label = label(&path);
    let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or_default().to_owned();
    let mut problems = Vec::new();
    let lines = LineIndex::new(&text);
    let mut problem = |offset: usize, code: &str, message: String| {
        let (line, column) = lines.line_col(&text, offset);
        problems.push(Problem {
            severity: Severity::Error,
            code: code.to_owned(),
            message,
            file: file_label.clone(),
            line: Some(line),
            column: Some(column),
            component: None,
            definition: None,
        });
    };
    let graphql = matches!(ext.as_str(), "graphql" | "gql");
    let scan = if graphql {
        js::ScriptScan {
            templates: vec![js::RawTemplate {
                text: text.clone(),
                origin: 0,
                exact: true,
                interpolations: Vec::new(),
            }],
            ..Default::default()
        }
    } else if ext == "vue" {
        match vue::script_blocks(&text) {
            Ok(blocks) => {
                let mut merged = js::ScriptScan::default();
                for block in blocks {
                    let scan = js::scan(block.text, block.offset, js::source_type(&block.lang));
                    merge(&mut merged, scan);
                }
                merged
            }
            Err((offset, message)) => {
                problem(offset, "VUE_SYNTAX_ERROR", message);
                js::ScriptScan::default()
            }
        }
    } else if SCRIPT_EXTENSIONS.contains(&ext.as_str()) {
        js::scan(&text, 0, js::source_type(&ext))
    } else {
        js::ScriptScan::default()
    };
    if let Some((offset, message)) = &scan.syntax_error {
        problem(*offset, "JS_SYNTAX_ERROR", format!("does not parse as JavaScript/TypeScript: {message}"));
    }
    let mut templates = Vec::with_capacity(scan.templates.len());
    let mut parser = Parser::new();
    for template in &scan.templates {
        for interpolation in &template.interpolations {
            if interpolation.name.is_none() {
                problem(
                    interpolation.offset,
                    "NON_STATIC_INTERPOLATION",
                    "only an identifier bound to a gql fragment template can be interpolated: this expression cannot be extracted statically".to_owned(),
                );
            }
        }
        templates.push(parse_template(&mut parser, template, &file_label, &mut problem));
    }
    let component = component_of(rel, root_name, options.component);
    Ok((
        Source { rel: rel.to_path_buf(), label: file_label, text, scan, component, graphql },
        templates,
        problems,
    ))
}

/// Appends a script block's scan to the file's (indices of the later block shifted).
fn merge(into: &mut js::ScriptScan, scan: js::ScriptScan) {
    let shift = into.templates.len();
    into.templates.extend(scan.templates);
    for (name, index) in scan.bindings {
        into.bindings.entry(name).or_insert(index + shift);
    }
    into.imports.extend(scan.imports);
    into.export_aliases.extend(scan.export_aliases);
    into.reexports.extend(scan.reexports);
    into.star_exports.extend(scan.star_exports);
    if into.syntax_error.is_none() {
        into.syntax_error = scan.syntax_error;
    }
}

/// Parses a template's text as GraphQL and cuts out each definition.
fn parse_template(
    parser: &mut Parser,
    template: &js::RawTemplate,
    file_label: &str,
    problem: &mut impl FnMut(usize, &str, String),
) -> Vec<Def> {
    let at = |offset: usize| if template.exact { template.origin + offset } else { template.origin };
    if blank(&template.text) {
        return Vec::new();
    }
    let document = match parser.parse_ast(&template.text, file_label) {
        Ok(document) => document,
        Err(with_errors) => {
            for d in with_errors.errors.iter() {
                use apollo_compiler::diagnostic::ToCliReport as _;
                let offset = d.error.location().map(|l| l.offset()).unwrap_or(0);
                let message = crate::problem::one_line(&d.error.to_string());
                problem(at(offset), "GRAPHQL_SYNTAX_ERROR", format!("not a GraphQL document: {message}"));
            }
            return Vec::new();
        }
    };
    let mut defs = Vec::new();
    for definition in &document.definitions {
        let Some(location) = definition.location() else { continue };
        let name_offset =
            definition.name().and_then(|n| n.location()).map_or(location.offset(), |l| l.offset());
        let (operation, selections) = match definition {
            Definition::OperationDefinition(op) => (Some(op.operation_type.into()), &op.selection_set),
            Definition::FragmentDefinition(fragment) => (None, &fragment.selection_set),
            other => {
                let what = other.name().map(|n| format!(" `{n}`")).unwrap_or_default();
                problem(
                    at(name_offset),
                    "NOT_EXECUTABLE",
                    format!(
                        "a type-system definition{what} in an operation template: only operations and fragments belong in the contract"
                    ),
                );
                continue;
            }
        };
        let mut spreads = Vec::new();
        spread_offsets(selections, &mut spreads);
        defs.push(Def {
            operation,
            name: definition.name().map(|n| n.to_string()),
            text: cut(&template.text, location.offset(), location.end_offset()),
            offset: at(name_offset),
            spreads: spreads.into_iter().map(|(name, offset)| (name, at(offset))).collect(),
        });
    }
    defs
}

fn spread_offsets(selections: &[Selection], out: &mut Vec<(String, usize)>) {
    for selection in selections {
        match selection {
            Selection::Field(f) => spread_offsets(&f.selection_set, out),
            Selection::FragmentSpread(s) => {
                let offset = s.location().map_or(0, |l| l.offset());
                out.push((s.fragment_name.to_string(), offset));
            }
            Selection::InlineFragment(i) => spread_offsets(&i.selection_set, out),
        }
    }
}

/// Whether a text holds nothing but whitespace, commas and `#` comments.
fn blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim_start_matches(['\u{feff}', ' ', '\t', ',', '\r']);
        l.is_empty() || l.starts_with('#')
    })
}

/// The definition at `start..end` of `text` with the `#` comment lines right above it,
/// dedented, trailing blanks removed.
fn cut(text: &str, start: usize, end: usize) -> String {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    // Only whitespace before the definition on its line: take the line from its start (for the
    // indent) and look for comments above.
    let mut from = if text[line_start..start].trim().is_empty() { line_start } else { start };
    if from == line_start {
        while from > 0 {
            let prev_start = text[..from - 1].rfind('\n').map_or(0, |i| i + 1);
            let prev = text[prev_start..from - 1].trim();
            if !prev.starts_with('#') {
                break;
            }
            from = prev_start;
        }
    }
    let lines: Vec<&str> = text[from..end].lines().map(str::trim_end).collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| if l.len() >= indent && l.is_char_boundary(indent) { &l[indent..] } else { l.trim_start() })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Byte offset → 1-based line and column (in characters).
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = text.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        (line, column)
    }
}

/// The second phase: follows interpolations, resolves fragments, lays out the files.
struct Resolver<'a> {
    sources: &'a [Source],
    defs: &'a HashMap<TemplateId, Vec<Def>>,
    problems: &'a mut Vec<Problem>,
    by_path: HashMap<&'a Path, usize>,
    /// Fragment name → every definition of it: (template, index in its definitions).
    fragments: HashMap<&'a str, Vec<(TemplateId, usize)>>,
    /// Template → the templates it interpolates, transitively (itself included).
    closures: HashMap<TemplateId, Vec<TemplateId>>,
}

impl<'a> Resolver<'a> {
    fn new(
        sources: &'a [Source],
        defs: &'a HashMap<TemplateId, Vec<Def>>,
        problems: &'a mut Vec<Problem>,
    ) -> Self {
        let by_path = sources.iter().enumerate().map(|(i, s)| (s.rel.as_path(), i)).collect();
        let mut ids: Vec<&TemplateId> = defs.keys().collect();
        ids.sort();
        let mut fragments: HashMap<&str, Vec<(TemplateId, usize)>> = HashMap::new();
        for id in ids {
            for (i, def) in defs[id].iter().enumerate() {
                if let (None, Some(name)) = (def.operation, &def.name) {
                    fragments.entry(name.as_str()).or_default().push((*id, i));
                }
            }
        }
        Resolver { sources, defs, problems, by_path, fragments, closures: HashMap::new() }
    }

    fn problem(
        &mut self,
        source: usize,
        offset: usize,
        code: &str,
        message: String,
        definition: Option<&str>,
    ) {
        let s = &self.sources[source];
        let (line, column) = LineIndex::new(&s.text).line_col(&s.text, offset);
        self.problems.push(Problem {
            severity: Severity::Error,
            code: code.to_owned(),
            message,
            file: s.label.clone(),
            line: Some(line),
            column: Some(column),
            component: Some(s.component.clone()),
            definition: definition.map(str::to_owned),
        });
    }

    fn def(&self, (template, index): (TemplateId, usize)) -> &'a Def {
        &self.defs[&template][index]
    }

    fn run(mut self) -> Extraction {
        let mut ids: Vec<TemplateId> = self.defs.keys().copied().collect();
        ids.sort();
        // Interpolations: each must name a template holding fragments only.
        let mut direct: HashMap<TemplateId, Vec<TemplateId>> = HashMap::new();
        for &id in &ids {
            let (source, template) = id;
            let Some(raw) = self.sources[source].scan.templates.get(template) else { continue };
            for interpolation in &raw.interpolations {
                let Some(name) = &interpolation.name else { continue }; // reported at scan
                match self.identifier(source, name) {
                    Ok(target) => {
                        let target_defs = &self.defs[&target];
                        if let Some(op) = target_defs.iter().find(|d| d.operation.is_some()) {
                            let what = op.name.clone().unwrap_or_else(|| "an anonymous operation".to_owned());
                            self.problem(
                                source,
                                interpolation.offset,
                                "NOT_A_FRAGMENT",
                                format!("`{name}` holds an operation ({what}), not fragments: only fragments can be interpolated"),
                                None,
                            );
                        } else {
                            direct.entry(id).or_default().push(target);
                        }
                    }
                    Err(why) => {
                        self.problem(source, interpolation.offset, "UNKNOWN_IDENTIFIER", why, Some(name))
                    }
                }
            }
        }
        for &id in &ids {
            let mut seen = vec![id];
            let mut stack = direct.get(&id).cloned().unwrap_or_default();
            while let Some(next) = stack.pop() {
                if !seen.contains(&next) {
                    seen.push(next);
                    stack.extend(direct.get(&next).cloned().unwrap_or_default());
                }
            }
            self.closures.insert(id, seen);
        }

        // Operations, their fragment closures, and names.
        struct Op<'d> {
            id: (TemplateId, usize),
            fragments: Vec<(TemplateId, usize)>,
            def: &'d Def,
        }
        let mut ops: Vec<Op<'a>> = Vec::new();
        let mut op_names: HashMap<&str, (TemplateId, usize)> = HashMap::new();
        for &id in &ids {
            for (i, def) in self.defs[&id].iter().enumerate() {
                if def.operation.is_none() {
                    continue;
                }
                let Some(name) = &def.name else {
                    self.problem(
                        id.0,
                        def.offset,
                        "ANONYMOUS_OPERATION",
                        "contract operations must be named".to_owned(),
                        None,
                    );
                    continue;
                };
                if let Some(prev) = op_names.get(name.as_str()).copied() {
                    let at = self.position(prev.0.0, self.def(prev).offset);
                    self.problem(
                        id.0,
                        def.offset,
                        "DUPLICATE_OPERATION_NAME",
                        format!("operation name `{name}` is already used at {at}; operation names must be unique across the contract"),
                        Some(name),
                    );
                    continue;
                }
                op_names.insert(name, (id, i));
                let fragments = self.fragment_closure(id, def);
                ops.push(Op { id: (id, i), fragments, def });
            }
        }

        // Fragment names must be unique in the output: one text per name.
        let mut chosen: BTreeMap<&str, (TemplateId, usize)> = BTreeMap::new();
        let mut users: HashMap<&str, usize> = HashMap::new();
        for op in &ops {
            for &frag in &op.fragments {
                let def = self.def(frag);
                let name = def.name.as_deref().unwrap_or_default();
                *users.entry(name).or_default() += 1;
                match chosen.get(name).copied() {
                    None => {
                        chosen.insert(name, frag);
                    }
                    Some(prev) if prev != frag && self.def(prev).text != def.text => {
                        let at = self.position(prev.0.0, self.def(prev).offset);
                        self.problem(
                            frag.0.0,
                            def.offset,
                            "DUPLICATE_FRAGMENT_NAME",
                            format!("fragment `{name}` is also defined, differently, at {at}; fragment names must be unique across the contract"),
                            Some(name),
                        );
                    }
                    Some(_) => {}
                }
            }
        }

        let mut extraction = Extraction::default();
        let mut origins: HashMap<String, (usize, usize)> = HashMap::new();
        for op in &ops {
            let (source, _) = op.id.0;
            let name = op.def.name.as_deref().unwrap_or_default();
            let mut parts = vec![op.def.text.as_str()];
            for &frag in &op.fragments {
                let fname = self.def(frag).name.as_deref().unwrap_or_default();
                if users.get(fname) == Some(&1) {
                    parts.push(&self.def(frag).text);
                }
            }
            let path = format!("{}/{name}.graphql", self.sources[source].component);
            let text = format!("{}\n", parts.join("\n\n"));
            self.place(&mut extraction, &mut origins, path, text, (source, op.def.offset));
            extraction.operations += 1;
        }
        for (name, frag) in &chosen {
            if users.get(name).copied().unwrap_or(0) > 1 {
                let def = self.def(*frag);
                let source = frag.0.0;
                let path = format!("{}/{name}.graphql", self.sources[source].component);
                self.place(
                    &mut extraction,
                    &mut origins,
                    path,
                    format!("{}\n", def.text),
                    (source, def.offset),
                );
            }
        }
        extraction
    }

    /// Adds an output file, unless another definition already claimed its path.
    fn place(
        &mut self,
        extraction: &mut Extraction,
        origins: &mut HashMap<String, (usize, usize)>,
        path: String,
        text: String,
        at: (usize, usize),
    ) {
        if let Some(prev) = origins.get(&path).copied() {
            let other = self.position(prev.0, prev.1);
            self.problem(
                at.0,
                at.1,
                "OUTPUT_PATH_CLASH",
                format!("{path} would also be written for {other}"),
                None,
            );
            return;
        }
        origins.insert(path.clone(), at);
        extraction.files.insert(path, text);
    }

    fn position(&self, source: usize, offset: usize) -> String {
        let s = &self.sources[source];
        let (line, column) = LineIndex::new(&s.text).line_col(&s.text, offset);
        format!("{}:{line}:{column}", s.label)
    }

    /// The fragments an operation uses, depth first in spread order, each once.
    fn fragment_closure(&mut self, id: TemplateId, def: &'a Def) -> Vec<(TemplateId, usize)> {
        let mut out: Vec<(TemplateId, usize)> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        // (spreads still to visit, the template whose scope resolves them)
        let mut stack: Vec<(std::slice::Iter<'a, (String, usize)>, TemplateId)> =
            vec![(def.spreads.iter(), id)];
        while let Some((iter, scope)) = stack.last_mut() {
            let scope = *scope;
            let Some((name, offset)) = iter.next() else {
                stack.pop();
                continue;
            };
            if !seen.insert(name.as_str()) {
                continue;
            }
            match self.fragment(scope, name, *offset) {
                Some(frag) => {
                    out.push(frag);
                    stack.push((self.def(frag).spreads.iter(), frag.0));
                }
                None => continue,
            }
        }
        out
    }

    /// Resolves a spread: in the template's own document and what it interpolates, else by
    /// name across the tree.
    fn fragment(&mut self, scope: TemplateId, name: &str, offset: usize) -> Option<(TemplateId, usize)> {
        let candidates = self.fragments.get(name).cloned().unwrap_or_default();
        let closure = self.closures.get(&scope).cloned().unwrap_or_else(|| vec![scope]);
        let local: Vec<_> = candidates.iter().copied().filter(|(t, _)| closure.contains(t)).collect();
        let pool = if local.is_empty() { candidates } else { local };
        let Some(&first) = pool.first() else {
            self.problem(
                scope.0,
                offset,
                "UNKNOWN_FRAGMENT",
                format!("fragment `{name}` is defined in no scanned file"),
                Some(name),
            );
            return None;
        };
        let texts: BTreeSet<&str> = pool.iter().map(|&f| self.def(f).text.as_str()).collect();
        if texts.len() > 1 {
            let places: Vec<String> =
                pool.iter().map(|&f| self.position(f.0.0, self.def(f).offset)).collect();
            self.problem(
                scope.0,
                offset,
                "AMBIGUOUS_FRAGMENT",
                format!(
                    "fragment `{name}` has different definitions ({}); interpolate the one meant",
                    places.join(", ")
                ),
                Some(name),
            );
            return None;
        }
        Some(first)
    }

    /// The template an identifier in `source` is bound to, following imports.
    fn identifier(&self, source: usize, name: &str) -> Result<TemplateId, String> {
        let scan = &self.sources[source].scan;
        if let Some(&t) = scan.bindings.get(name) {
            return Ok((source, t));
        }
        if let Some(import) = scan.imports.get(name) {
            return self.export(source, &import.module, &import.name, 0).ok_or_else(|| {
                format!(
                    "`{name}` is imported from `{}`, where no GraphQL template is exported as `{}`",
                    import.module, import.name
                )
            });
        }
        Err(format!("`{name}` is bound to no GraphQL template in this file and is not imported"))
    }

    /// The template `module` (imported from `from`) exports as `name`.
    fn export(&self, from: usize, module: &str, name: &str, depth: usize) -> Option<TemplateId> {
        if depth > 16 {
            return None;
        }
        let Some(target) = self.resolve_module(from, module) else {
            // An alias or a package: by the exported name, when exactly one file binds it.
            let bound: Vec<TemplateId> = self
                .sources
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.scan.bindings.get(name).map(|&t| (i, t)))
                .collect();
            return if bound.len() == 1 { bound.first().copied() } else { None };
        };
        let source = &self.sources[target];
        if source.graphql {
            return Some((target, 0));
        }
        let scan = &source.scan;
        let local = scan.export_aliases.get(name).map_or(name, String::as_str);
        if let Some(&t) = scan.bindings.get(local) {
            return Some((target, t));
        }
        if let Some(import) = scan.imports.get(local) {
            return self.export(target, &import.module, &import.name, depth + 1);
        }
        if let Some(re) = scan.reexports.get(name) {
            return self.export(target, &re.module, &re.name, depth + 1);
        }
        scan.star_exports.iter().find_map(|m| {
            self.resolve_module(target, m).and_then(|_| self.export(target, m, name, depth + 1))
        })
    }

    /// The scanned file a relative module specifier names (extension and `index` probing).
    fn resolve_module(&self, from: usize, module: &str) -> Option<usize> {
        if !(module.starts_with("./") || module.starts_with("../")) {
            return None;
        }
        let base = self.sources[from].rel.parent().unwrap_or(Path::new("")).join(module);
        let mut normal = PathBuf::new();
        for c in base.components() {
            match c {
                Component::ParentDir => {
                    normal.pop();
                }
                Component::CurDir => {}
                other => normal.push(other),
            }
        }
        let stem = normal.with_extension("");
        let mut candidates = vec![normal.clone()];
        for ext in EXTENSIONS {
            candidates.push(PathBuf::from(format!("{}.{ext}", normal.display())));
            // `./x.js` naming `x.ts` (TypeScript's ESM convention).
            candidates.push(stem.with_extension(ext));
        }
        for ext in EXTENSIONS {
            candidates.push(normal.join(format!("index.{ext}")));
        }
        candidates.iter().find_map(|c| self.by_path.get(c.as_path()).copied())
    }
}

impl Extraction {
    /// How the `.graphql` files under `dir` differ from this extraction (other files, such as
    /// the README and the manifest, are not compared). A missing `dir` is all `Missing`.
    pub fn compare(&self, dir: impl AsRef<Path>) -> Result<Vec<Difference>, ExtractError> {
        let dir = dir.as_ref();
        let existing = existing_files(dir)?;
        let mut differences = Vec::new();
        for (path, text) in &self.files {
            match existing.get(path) {
                None => differences.push(Difference::Missing(path.clone())),
                Some(file) => {
                    let current = std::fs::read_to_string(file).map_err(read_err(file))?;
                    if &current != text {
                        differences.push(Difference::Changed(path.clone()));
                    }
                }
            }
        }
        for path in existing.keys() {
            if !self.files.contains_key(path) {
                differences.push(Difference::Extra(path.clone()));
            }
        }
        differences.sort();
        Ok(differences)
    }

    /// Makes the `.graphql` files under `dir` those of this extraction: writes missing and
    /// changed files, removes extra ones (and directories they leave empty). Returns what it
    /// changed.
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<Vec<Difference>, ExtractError> {
        let dir = dir.as_ref();
        let differences = self.compare(dir)?;
        let write_err = |path: &Path| {
            let path = label(path);
            move |source| ExtractError::Io { action: "write", path, source }
        };
        for difference in &differences {
            match difference {
                Difference::Missing(rel) | Difference::Changed(rel) => {
                    let path = dir.join(rel);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(write_err(parent))?;
                    }
                    std::fs::write(&path, &self.files[rel]).map_err(write_err(&path))?;
                }
                Difference::Extra(rel) => {
                    let path = dir.join(rel);
                    std::fs::remove_file(&path).map_err(write_err(&path))?;
                    if let Some(parent) = path.parent()
                        && parent != dir
                        && std::fs::read_dir(parent).is_ok_and(|mut d| d.next().is_none())
                    {
                        std::fs::remove_dir(parent).map_err(write_err(parent))?;
                    }
                }
            }
        }
        Ok(differences)
    }
}

/// `.graphql`/`.gql` files under `dir` (hidden entries skipped), by `/`-separated relative path.
fn existing_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>, ExtractError> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).map_err(read_err(&current))? {
            let path = entry.map_err(read_err(&current))?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("graphql" | "gql")) {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                out.insert(label(rel), path.clone());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_comments_right_above_and_dedents() {
        let text = "\n  const x = 1\n\n    # about\n    # it\n    query A {\n      a\n    }\n";
        let start = text.find("query").unwrap_or(0);
        let end = text.find('}').map_or(0, |i| i + 1);
        assert_eq!(cut(text, start, end), "# about\n# it\nquery A {\n  a\n}");
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "ab\nçd€x\n";
        let index = LineIndex::new(text);
        assert_eq!(index.line_col(text, 0), (1, 1));
        assert_eq!(index.line_col(text, text.find('x').unwrap_or(0)), (2, 4));
    }

    #[test]
    fn components_come_from_the_directory_or_the_file_name() {
        let rel = Path::new("src/TemplateList/RenameButton.test.tsx");
        assert_eq!(component_of(rel, "spa", ComponentFrom::Directory), "TemplateList");
        assert_eq!(component_of(rel, "spa", ComponentFrom::File), "RenameButton");
        assert_eq!(component_of(Path::new("App.vue"), "spa", ComponentFrom::Directory), "spa");
    }
}
