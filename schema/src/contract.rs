//! The frontend contract: the operations each SPA component sends, one directory per component
//! (`<Component>/<Operation>.graphql`, one or more operations and fragments per file).
//!
//! Fragments live in one namespace across the whole contract: a fragment may be defined in the
//! same file as the operation spreading it, in another file of the same component, or in a
//! shared file (a top-level file or any other directory).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apollo_compiler::ast::{self, Definition};
use apollo_compiler::collections::IndexMap;
use apollo_compiler::parser::{FileId, Parser, SourceMap, SourceSpan};
use apollo_compiler::{Name, Node};
use serde::{Deserialize, Serialize};

use crate::problem::{self, Problem, Severity};

/// The kind of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationType {
    /// `query`
    Query,
    /// `mutation`
    Mutation,
    /// `subscription`
    Subscription,
}

impl OperationType {
    /// `query`, `mutation` or `subscription`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationType::Query => "query",
            OperationType::Mutation => "mutation",
            OperationType::Subscription => "subscription",
        }
    }
}

impl fmt::Display for OperationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ast::OperationType> for OperationType {
    fn from(t: ast::OperationType) -> Self {
        match t {
            ast::OperationType::Query => OperationType::Query,
            ast::OperationType::Mutation => OperationType::Mutation,
            ast::OperationType::Subscription => OperationType::Subscription,
        }
    }
}

/// One contract file given in memory (see [`Contract::from_sources`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractSource {
    /// Path label used in messages, e.g. `frontend-contract/TemplateList/ListTemplates.graphql`.
    pub path: String,
    /// The component the file belongs to (empty for shared top-level files).
    pub component: String,
    /// The GraphQL text.
    pub text: String,
}

/// One operation of the contract.
#[derive(Debug, Clone)]
pub struct ContractOperation {
    /// The component (first directory under the contract root; empty for top-level files).
    pub component: String,
    /// The operation name; `None` for an anonymous operation (which the contract rules reject).
    pub name: Option<String>,
    /// Query, mutation or subscription.
    pub operation_type: OperationType,
    /// The file's path label.
    pub file: String,
    /// 1-based line of the operation's name (or of its start, when anonymous).
    pub line: usize,
    /// 1-based column of the same.
    pub column: usize,
    pub(crate) file_index: usize,
    pub(crate) def_index: usize,
    pub(crate) node: Node<ast::OperationDefinition>,
}

impl ContractOperation {
    /// `Component/Operation` (or `Operation` for a top-level file; `<anonymous>` when unnamed).
    pub fn display_name(&self) -> String {
        let name = self.name.as_deref().unwrap_or("<anonymous>");
        if self.component.is_empty() { name.to_owned() } else { format!("{}/{name}", self.component) }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ContractFile {
    pub(crate) path: String,
    pub(crate) component: String,
    pub(crate) document: ast::Document,
    /// Per definition: whether it takes part in schema validation (the first definition of
    /// each name; not anonymous operations, duplicates or type-system definitions).
    pub(crate) included: Vec<bool>,
}

impl ContractFile {
    /// The file's text, as it was parsed.
    pub(crate) fn text(&self) -> &str {
        self.document.sources.values().next().map_or("", |source| source.source_text())
    }
}

/// The loaded contract.
#[derive(Debug, Clone)]
pub struct Contract {
    files: Vec<ContractFile>,
    operations: Vec<ContractOperation>,
    /// Fragment name → (file index, definition index, definition), first definition only.
    fragments: HashMap<Name, (usize, usize, Node<ast::FragmentDefinition>)>,
    rule_problems: Vec<Problem>,
    sources: SourceMap,
    file_ids: HashMap<FileId, usize>,
}

/// Why the contract could not be loaded. The CLI maps every variant to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The contract root is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(String),
    /// Files do not parse as GraphQL.
    #[error("the contract has syntax errors:\n{}", problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Syntax {
        /// Every syntax error, with `file:line:col`.
        problems: Vec<Problem>,
    },
}

impl ContractError {
    /// The located problems (empty for I/O errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ContractError::Syntax { problems } => problems,
            _ => &[],
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ContractError + '_ {
    move |source| ContractError::Io { path: label(path), source }
}

fn label(path: &Path) -> String {
    path.display().to_string().replace('\\', "/")
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ContractError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    entries.sort();
    for path in entries {
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("graphql" | "gql")) {
            out.push(path);
        }
    }
    Ok(())
}

impl Contract {
    /// Loads every `*.graphql` / `*.gql` file under `dir` (recursively, skipping hidden
    /// entries). The component of a file is the first directory below `dir`. Path labels are
    /// `dir` joined with the file's relative path, so pass `dir` relative to the repository
    /// root (e.g. `frontend-contract`) for annotations that resolve.
    pub fn load(dir: impl AsRef<Path>) -> Result<Contract, ContractError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            if !dir.exists() {
                return Err(ContractError::Io {
                    path: label(dir),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            return Err(ContractError::NotADirectory(label(dir)));
        }
        let mut paths = Vec::new();
        collect_files(dir, &mut paths)?;
        let mut sources = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
            let rel = path.strip_prefix(dir).unwrap_or(&path);
            let mut comps = rel.components();
            let first = comps.next();
            let component = match (first, comps.next()) {
                (Some(c), Some(_)) => c.as_os_str().to_string_lossy().into_owned(),
                _ => String::new(),
            };
            sources.push(ContractSource { path: label(&path), component, text });
        }
        Contract::from_sources(sources)
    }

    /// Builds a contract from files in memory (sorted by path, so the result does not depend
    /// on the order given).
    pub fn from_sources(
        sources: impl IntoIterator<Item = ContractSource>,
    ) -> Result<Contract, ContractError> {
        let mut sources: Vec<ContractSource> = sources.into_iter().collect();
        sources.sort_by(|a, b| a.path.cmp(&b.path));
        let mut files = Vec::with_capacity(sources.len());
        let mut syntax = Vec::new();
        // Nothing but whitespace and comments: no file.
        sources.retain(|src| !is_blank(&src.text));
        for (src, parsed) in parse_each(sources) {
            match parsed {
                Ok(document) => files.push(ContractFile {
                    path: src.path,
                    component: src.component,
                    included: vec![false; document.definitions.len()],
                    document,
                }),
                Err(e) => {
                    let mut problems = problem::from_diagnostics(&e.errors, "SYNTAX_ERROR", &src.path);
                    for p in &mut problems {
                        p.component = Some(src.component.clone());
                    }
                    syntax.extend(problems);
                }
            }
        }
        if !syntax.is_empty() {
            return Err(ContractError::Syntax { problems: syntax });
        }

        let (sources, file_ids) = source_map(&files);
        let mut fragment_spans: HashMap<Name, Option<SourceSpan>> = HashMap::new();
        let mut op_names: HashMap<Name, Option<SourceSpan>> = HashMap::new();
        let mut rule_problems = Vec::new();
        let at = |span: Option<SourceSpan>| problem::line_col(&sources, span);
        for file in files.iter_mut() {
            let rule = |code: &str, message: String, span: Option<SourceSpan>, def: Option<String>| {
                let pos = at(span);
                Problem {
                    severity: Severity::Error,
                    code: code.to_owned(),
                    message,
                    file: file.path.clone(),
                    line: pos.map(|p| p.0),
                    column: pos.map(|p| p.1),
                    component: Some(file.component.clone()),
                    definition: def,
                }
            };
            let mut included = vec![false; file.document.definitions.len()];
            for (di, def) in file.document.definitions.iter().enumerate() {
                match def {
                    Definition::OperationDefinition(op) => {
                        let span = operation_span(op);
                        match &op.name {
                            None => rule_problems.push(rule(
                                "ANONYMOUS_OPERATION",
                                "contract operations must be named".to_owned(),
                                span,
                                None,
                            )),
                            Some(name) => match op_names.get(name) {
                                Some(prev) => {
                                    let prev = describe(&sources, *prev);
                                    rule_problems.push(rule(
                                        "DUPLICATE_OPERATION_NAME",
                                        format!("operation name `{name}` is already used at {prev}; operation names must be unique across the contract"),
                                        span,
                                        Some(name.to_string()),
                                    ));
                                }
                                None => {
                                    op_names.insert(name.clone(), span);
                                    included[di] = true;
                                }
                            },
                        }
                    }
                    Definition::FragmentDefinition(frag) => {
                        let span = frag.name.location().or(frag.location());
                        match fragment_spans.get(&frag.name) {
                            Some(prev) => {
                                let prev = describe(&sources, *prev);
                                rule_problems.push(rule(
                                    "DUPLICATE_FRAGMENT_NAME",
                                    format!("fragment name `{}` is already used at {prev}; fragment names must be unique across the contract", frag.name),
                                    span,
                                    Some(frag.name.to_string()),
                                ));
                            }
                            None => {
                                fragment_spans.insert(frag.name.clone(), span);
                                included[di] = true;
                            }
                        }
                    }
                    other => rule_problems.push(rule(
                        "NOT_EXECUTABLE",
                        format!(
                            "{} does not belong in the contract: only operations and fragments do",
                            describe_definition(other)
                        ),
                        other.location(),
                        other.name().map(|n| n.to_string()),
                    )),
                }
            }
            file.included = included;
        }
        Ok(Contract::index(files, sources, file_ids, rule_problems))
    }

    /// Parses files of a contract again, each with the definitions' `included` flags the whole
    /// contract gave them, so that a part of a contract names the same fragments and
    /// operations as the whole (the first definition of each name) and reports no rule
    /// problem of its own (those are the whole contract's).
    pub(crate) fn reparse<'f>(
        files: impl IntoIterator<Item = (&'f str, &'f str, &'f str, &'f [bool])>,
    ) -> Result<Contract, ContractError> {
        let mut parser = Parser::new();
        let mut parsed = Vec::new();
        let mut syntax = Vec::new();
        for (path, component, text, included) in files {
            match parser.parse_ast(text, path) {
                Ok(document) if document.definitions.len() == included.len() => parsed.push(ContractFile {
                    path: path.to_owned(),
                    component: component.to_owned(),
                    included: included.to_vec(),
                    document,
                }),
                Ok(document) => syntax.push(Problem {
                    severity: Severity::Error,
                    code: "SYNTAX_ERROR".to_owned(),
                    message: format!(
                        "parsed again, the file has {} definitions instead of {}",
                        document.definitions.len(),
                        included.len()
                    ),
                    file: path.to_owned(),
                    line: None,
                    column: None,
                    component: Some(component.to_owned()),
                    definition: None,
                }),
                Err(e) => syntax.extend(problem::from_diagnostics(&e.errors, "SYNTAX_ERROR", path)),
            }
        }
        if !syntax.is_empty() {
            return Err(ContractError::Syntax { problems: syntax });
        }
        let (sources, file_ids) = source_map(&parsed);
        Ok(Contract::index(parsed, sources, file_ids, Vec::new()))
    }

    /// Every operation (with its position) and the included fragments of `files`.
    fn index(
        files: Vec<ContractFile>,
        sources: SourceMap,
        file_ids: HashMap<FileId, usize>,
        rule_problems: Vec<Problem>,
    ) -> Contract {
        let mut operations = Vec::new();
        let mut fragments = HashMap::new();
        for (fi, file) in files.iter().enumerate() {
            for (di, def) in file.document.definitions.iter().enumerate() {
                match def {
                    Definition::OperationDefinition(op) => {
                        let span = operation_span(op);
                        let (line, column) = problem::line_col(&sources, span).unwrap_or((1, 1));
                        operations.push(ContractOperation {
                            component: file.component.clone(),
                            name: op.name.as_ref().map(|n| n.to_string()),
                            operation_type: op.operation_type.into(),
                            file: file.path.clone(),
                            line,
                            column,
                            file_index: fi,
                            def_index: di,
                            node: op.clone(),
                        });
                    }
                    Definition::FragmentDefinition(frag) if file.included.get(di) == Some(&true) => {
                        fragments.insert(frag.name.clone(), (fi, di, frag.clone()));
                    }
                    _ => {}
                }
            }
        }
        Contract { files, operations, fragments, rule_problems, sources, file_ids }
    }

    /// Every operation, in file order then source order.
    pub fn operations(&self) -> &[ContractOperation] {
        &self.operations
    }

    /// Number of files.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Whether the contract has no operation.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Names of every fragment defined in the contract, sorted.
    pub fn fragment_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.fragments.keys().map(|n| n.to_string()).collect();
        v.sort();
        v
    }

    /// Contract rule violations found at load (anonymous operations, duplicate operation or
    /// fragment names, type-system definitions in a contract file).
    pub fn rule_problems(&self) -> &[Problem] {
        &self.rule_problems
    }

    pub(crate) fn files(&self) -> &[ContractFile] {
        &self.files
    }

    pub(crate) fn file(&self, index: usize) -> Option<&ContractFile> {
        self.files.get(index)
    }

    pub(crate) fn fragment(&self, name: &str) -> Option<(usize, &Node<ast::FragmentDefinition>)> {
        self.fragments.get(name).map(|(i, _, f)| (*i, f))
    }

    /// (file index, definition index) of a fragment's first definition.
    pub(crate) fn fragment_position(&self, name: &str) -> Option<(usize, usize)> {
        self.fragments.get(name).map(|(f, d, _)| (*f, *d))
    }

    /// Names of the fragments a selection set uses, directly or through other fragments
    /// (fragments the contract does not define are left out).
    pub(crate) fn fragment_closure(&self, selections: &[ast::Selection]) -> Vec<Name> {
        let mut seen: std::collections::HashSet<Name> = std::collections::HashSet::new();
        let mut stack = Vec::new();
        spreads(selections, &mut stack);
        let mut out = Vec::new();
        while let Some(name) = stack.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some((_, _, def)) = self.fragments.get(&name) {
                spreads(&def.selection_set, &mut stack);
                out.push(name);
            }
        }
        out
    }

    pub(crate) fn file_index_of(&self, span: Option<SourceSpan>) -> Option<usize> {
        self.file_ids.get(&span?.file_id()).copied()
    }

    pub(crate) fn line_col(&self, span: Option<SourceSpan>) -> Option<(usize, usize)> {
        problem::line_col(&self.sources, span)
    }

    /// The operation or fragment of file `file_index` whose text contains byte `offset`.
    pub(crate) fn definition_at(&self, file_index: usize, offset: usize) -> Option<String> {
        let file = self.files.get(file_index)?;
        file.document.definitions.iter().find_map(|d| {
            let loc = d.location()?;
            if (loc.offset()..=loc.end_offset()).contains(&offset) {
                d.name().map(|n| n.to_string())
            } else {
                None
            }
        })
    }
}

/// Each file parsed on its own, in order; a large contract's files on up to
/// [`default_parallelism`](crate::validate::default_parallelism) threads.
#[allow(clippy::type_complexity)] // apollo-compiler's own result type
fn parse_each(
    sources: Vec<ContractSource>,
) -> Vec<(ContractSource, Result<ast::Document, apollo_compiler::validation::WithErrors<ast::Document>>)> {
    let parse = |sources: Vec<ContractSource>| {
        let mut parser = Parser::new();
        let parsed: Vec<_> = sources
            .into_iter()
            .map(|mut src| {
                let text = std::mem::take(&mut src.text);
                let document = parser.parse_ast(text, &src.path);
                (src, document)
            })
            .collect();
        parsed
    };
    let threads = crate::validate::default_parallelism();
    if threads <= 1 || sources.len() < 64 {
        return parse(sources);
    }
    let per = sources.len().div_ceil(threads);
    let mut shares = Vec::with_capacity(threads);
    let mut rest = sources;
    while rest.len() > per {
        let tail = rest.split_off(per);
        shares.push(std::mem::replace(&mut rest, tail));
    }
    shares.push(rest);
    std::thread::scope(|scope| {
        let mut shares = shares.into_iter();
        let mine = shares.next().unwrap_or_default();
        let helpers: Vec<_> = shares.map(|share| scope.spawn(move || parse(share))).collect();
        let mut parsed = parse(mine);
        for h in helpers {
            parsed.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        parsed
    })
}

/// Where an operation is pointed at: its name, or its start when anonymous.
fn operation_span(op: &Node<ast::OperationDefinition>) -> Option<SourceSpan> {
    op.name.as_ref().and_then(|n| n.location()).or(op.location())
}

/// One source map over every file, and which file each file id belongs to.
fn source_map(files: &[ContractFile]) -> (SourceMap, HashMap<FileId, usize>) {
    let mut all_sources: IndexMap<FileId, Arc<apollo_compiler::parser::SourceFile>> = IndexMap::default();
    let mut file_ids = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        for (id, sf) in f.document.sources.iter() {
            all_sources.insert(*id, sf.clone());
            file_ids.insert(*id, i);
        }
    }
    (Arc::new(all_sources), file_ids)
}

fn describe(sources: &SourceMap, span: Option<SourceSpan>) -> String {
    let file = problem::file_label(sources, span).unwrap_or_default();
    match problem::line_col(sources, span) {
        Some((l, c)) => format!("{file}:{l}:{c}"),
        None => file,
    }
}

fn describe_definition(d: &Definition) -> String {
    let what = match d {
        Definition::DirectiveDefinition(_) => "a directive definition",
        Definition::SchemaDefinition(_) => "a schema definition",
        Definition::ScalarTypeDefinition(_) => "a scalar type definition",
        Definition::ObjectTypeDefinition(_) => "an object type definition",
        Definition::InterfaceTypeDefinition(_) => "an interface type definition",
        Definition::UnionTypeDefinition(_) => "a union type definition",
        Definition::EnumTypeDefinition(_) => "an enum type definition",
        Definition::InputObjectTypeDefinition(_) => "an input object type definition",
        Definition::OperationDefinition(_) => "an operation",
        Definition::FragmentDefinition(_) => "a fragment",
        _ => "a type system extension",
    };
    match d.name() {
        Some(n) => format!("{what} (`{n}`)"),
        None => what.to_owned(),
    }
}

/// Fragment spreads of a selection set (not through fragments).
pub(crate) fn spreads(selections: &[ast::Selection], out: &mut Vec<Name>) {
    for s in selections {
        match s {
            ast::Selection::Field(f) => spreads(&f.selection_set, out),
            ast::Selection::FragmentSpread(s) => out.push(s.fragment_name.clone()),
            ast::Selection::InlineFragment(i) => spreads(&i.selection_set, out),
        }
    }
}

/// Whether a file holds nothing but whitespace and `#` comments.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim_start_matches(['\u{feff}', ' ', '\t', ',', '\r']);
        l.is_empty() || l.starts_with('#')
    })
}
