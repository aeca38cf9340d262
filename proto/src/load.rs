//! A [`ProtoSet`]: the linked descriptors of a folder of `.proto` files (or of in-memory
//! sources, or of what a server sent over reflection), parsed with protox-parse and linked by
//! [`crate::link`], so no system `protoc` is needed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use prost_types::{FileDescriptorProto, FileDescriptorSet, SourceCodeInfo, source_code_info::Location};
use protox::file::{FileResolver as _, GoogleFileResolver};

use crate::{ProtoError, Usage};

/// Files that come with protobuf itself: never written by `pull`, never compared by `check`.
pub const WELL_KNOWN_PREFIX: &str = "google/protobuf/";

/// Whether `name` is one of protobuf's well-known files.
pub fn is_well_known(name: &str) -> bool {
    name.starts_with(WELL_KNOWN_PREFIX)
}

/// A set of linked `.proto` files with their imports.
#[derive(Debug, Clone)]
pub struct ProtoSet {
    /// How reports name this side: the folder as given (e.g. `sources/proto`).
    label: String,
    /// Every file, imports (well-known types included) first. Shared: `proto check` gives both
    /// sides one copy of each file that is the same on both.
    files: Vec<Arc<FileDescriptorProto>>,
}

impl ProtoSet {
    /// Reads every `*.proto` file under `dir` (recursively) and what they import, with `dir` as
    /// the include path, and links them (see [`crate::link`]), so no system `protoc` is needed.
    pub fn load_dir(dir: &Path) -> Result<Self, ProtoError> {
        let label = dir.display().to_string();
        let texts = read_dir_protos(dir)?;
        Self::from_texts(&label, &texts)
    }

    /// Loads in-memory sources (`(file name, text)`), for tests and benchmarks.
    pub fn from_sources<'a>(
        label: &str,
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ProtoError> {
        let texts: BTreeMap<String, String> =
            sources.into_iter().map(|(n, t)| (n.to_owned(), t.to_owned())).collect();
        Self::from_texts(label, &texts)
    }

    fn from_texts(label: &str, texts: &BTreeMap<String, String>) -> Result<Self, ProtoError> {
        let mut provide = |name: &str| -> Result<Option<Provided>, ProtoError> {
            let Some(text) = texts.get(name) else { return Ok(None) };
            Ok(Some(Provided { descriptor: Arc::new(parse(label, name, text)?), linked: false }))
        };
        let (mut files, linked) = Loader::new(label, &mut provide).load(texts.keys())?;
        link(label, &mut files, &linked)?;
        Ok(Self { label: label.to_owned(), files })
    }

    /// The files a server sent, as they are.
    pub fn from_descriptors(label: &str, set: FileDescriptorSet) -> Self {
        Self { label: label.to_owned(), files: set.file.into_iter().map(Arc::new).collect() }
    }

    /// How reports name this side.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Every file, imports included, imports first.
    pub fn all_files(&self) -> impl ExactSizeIterator<Item = &FileDescriptorProto> {
        self.files.iter().map(|f| &**f)
    }

    /// The files that are not well-known types, by name.
    pub fn own_files(&self) -> impl Iterator<Item = &FileDescriptorProto> {
        self.all_files().filter(|f| !is_well_known(f.name()))
    }

    /// Where a file of this set is on disk (the label joined with its name), for reports.
    pub fn display_path(&self, file: &str) -> String {
        if self.label.is_empty() { file.to_owned() } else { format!("{}/{file}", self.label) }
    }
}

/// Every `*.proto` file under `dir` (recursively), by name relative to `dir`, with its text.
fn read_dir_protos(dir: &Path) -> Result<BTreeMap<String, String>, ProtoError> {
    let files = read_tree(dir, "proto")?;
    if files.is_empty() {
        return Err(ProtoError::NoProtos(dir.display().to_string()));
    }
    Ok(files)
}

/// Every file under `dir` (recursively) whose name ends in `.{extension}`, by its path relative
/// to `dir` (with `/`), with its text.
pub(crate) fn read_tree(dir: &Path, extension: &str) -> Result<BTreeMap<String, String>, ProtoError> {
    fn walk(
        root: &Path,
        dir: &Path,
        extension: &str,
        out: &mut BTreeMap<String, String>,
    ) -> Result<(), ProtoError> {
        let io = |source| ProtoError::Io { path: dir.to_path_buf(), source };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path: PathBuf = entry.map_err(io)?.path();
            if path.is_dir() {
                walk(root, &path, extension, out)?;
            } else if path.extension().is_some_and(|e| e == extension) {
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| ProtoError::Io { path: path.clone(), source })?;
                let relative = path.strip_prefix(root).unwrap_or(&path);
                let name = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>();
                out.insert(name.join("/"), text);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, extension, &mut out)?;
    Ok(out)
}

/// Everything `proto check` reads.
#[derive(Debug)]
pub struct CheckInputs {
    /// The base protos.
    pub old: ProtoSet,
    /// The new protos.
    pub new: ProtoSet,
    /// What Banyan's sources use of the base protos.
    pub usage: Usage,
}

impl CheckInputs {
    /// Loads both folders and what Banyan's sources (`sources`) use of the base.
    ///
    /// A file whose text is the same on both sides, as are all its imports (transitively), is
    /// parsed and linked once, and both sets share it: most files of a large set do not change
    /// between two versions. The parsing is split over two threads, while a third reads and
    /// parses the Rust sources, which then wait only for the base side. (So an unchanged file is
    /// not re-checked against names the new side adds in files it does not import.)
    pub fn load(base: &Path, new: &Path, sources: &Path) -> Result<Self, ProtoError> {
        let (base_label, new_label) = (base.display().to_string(), new.display().to_string());
        let base_texts = read_dir_protos(base)?;
        let new_texts = read_dir_protos(new)?;
        let base_slot: OnceLock<ProtoSet> = OnceLock::new();
        let (sets, usage) = std::thread::scope(|scope| {
            let (loaded, base_ready) = std::sync::mpsc::channel::<()>();
            let slot = &base_slot;
            let usage = scope.spawn(move || {
                // Nothing arrives when the base failed to load: then no usage is resolved.
                Usage::scan_then(sources, || base_ready.recv().ok().and_then(|()| slot.get()))
            });
            let sets = (|| {
                let mut parsed = parse_both((&base_label, &base_texts), (&new_label, &new_texts))?;
                let old = load_base(&base_label, &base_texts, &new_texts, &mut parsed)?;
                let _ = slot.set(old.set);
                let _ = loaded.send(());
                let old_set = slot.get().ok_or_else(|| ProtoError::NoProtos(base_label.clone()))?;
                load_new(&new_label, &new_texts, old_set, &old.same, parsed.new)
            })();
            drop(loaded);
            (sets, joined(usage))
        });
        let new = sets?;
        let usage = usage?.unwrap_or_default();
        let old = base_slot.into_inner().ok_or_else(|| ProtoError::NoProtos(base_label))?;
        Ok(Self { old, new, usage })
    }
}

/// The parsed (unlinked) files of both sides: every base file, and the new files whose text
/// differs from the base's.
struct ParsedSides {
    base: HashMap<String, FileDescriptorProto>,
    new: HashMap<String, FileDescriptorProto>,
}

fn parse_both(
    (base_label, base): (&str, &BTreeMap<String, String>),
    (new_label, new): (&str, &BTreeMap<String, String>),
) -> Result<ParsedSides, ProtoError> {
    let mut jobs: Vec<(bool, &str, &str)> =
        base.iter().map(|(n, t)| (false, n.as_str(), t.as_str())).collect();
    jobs.extend(
        new.iter().filter(|(n, t)| base.get(*n) != Some(*t)).map(|(n, t)| (true, n.as_str(), t.as_str())),
    );
    let run = |jobs: &[(bool, &str, &str)]| -> Vec<Result<FileDescriptorProto, ProtoError>> {
        jobs.iter()
            .map(|&(is_new, name, text)| parse(if is_new { new_label } else { base_label }, name, text))
            .collect()
    };
    let (first, second) = jobs.split_at(jobs.len() / 2);
    let results = std::thread::scope(|scope| {
        let other = scope.spawn(|| run(second));
        let mut results = run(first);
        results.extend(joined(other));
        results
    });
    let mut sides = ParsedSides { base: HashMap::new(), new: HashMap::new() };
    for ((is_new, name, _), result) in jobs.iter().zip(results) {
        let side = if *is_new { &mut sides.new } else { &mut sides.base };
        side.insert((*name).to_owned(), result?);
    }
    Ok(sides)
}

/// The base side, linked, and which of its files are the same on the new side.
struct Base {
    set: ProtoSet,
    same: HashSet<String>,
}

fn load_base(
    label: &str,
    texts: &BTreeMap<String, String>,
    new_texts: &BTreeMap<String, String>,
    parsed: &mut ParsedSides,
) -> Result<Base, ProtoError> {
    let base_parsed = &mut parsed.base;
    let mut provide = |name: &str| -> Result<Option<Provided>, ProtoError> {
        Ok(base_parsed.remove(name).map(|d| Provided { descriptor: Arc::new(d), linked: false }))
    };
    let (mut files, linked) = Loader::new(label, &mut provide).load(texts.keys())?;
    // In import order, so a file's imports are decided before it.
    let mut same: HashSet<String> = HashSet::new();
    for file in &files {
        let name = file.name();
        let text_same = texts.get(name) == new_texts.get(name);
        let imports_same = file.dependency.iter().all(|d| same.contains(d));
        if text_same && imports_same {
            same.insert(name.to_owned());
        } else if let Some(text) = new_texts.get(name)
            && texts.get(name) == Some(text)
        {
            // Same text, changed imports: the new side links its own copy.
            parsed.new.insert(name.to_owned(), (**file).clone());
        }
    }
    link(label, &mut files, &linked)?;
    Ok(Base { set: ProtoSet { label: label.to_owned(), files }, same })
}

fn load_new(
    label: &str,
    texts: &BTreeMap<String, String>,
    old: &ProtoSet,
    same: &HashSet<String>,
    mut parsed: HashMap<String, FileDescriptorProto>,
) -> Result<ProtoSet, ProtoError> {
    let shared: HashMap<&str, &Arc<FileDescriptorProto>> =
        old.files.iter().filter(|f| same.contains(f.name())).map(|f| (f.name(), f)).collect();
    let mut provide = |name: &str| -> Result<Option<Provided>, ProtoError> {
        if let Some(file) = shared.get(name) {
            return Ok(Some(Provided { descriptor: Arc::clone(file), linked: true }));
        }
        Ok(parsed.remove(name).map(|d| Provided { descriptor: Arc::new(d), linked: false }))
    };
    let (mut files, linked) = Loader::new(label, &mut provide).load(texts.keys())?;
    link(label, &mut files, &linked)?;
    Ok(ProtoSet { label: label.to_owned(), files })
}

/// A scoped thread's result; its panic goes on in the caller.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Parses one file's text with protox-parse; an error names `label/name:line:col`.
fn parse(label: &str, name: &str, text: &str) -> Result<FileDescriptorProto, ProtoError> {
    protox_parse::parse(name, text).map_err(|e| {
        use miette::Diagnostic as _;
        let offset = e.labels().and_then(|mut labels| labels.next()).map(|label| label.offset());
        let at = offset.map(|offset| {
            let before = text.get(..offset).unwrap_or_default();
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, column)
        });
        located(label, name, at, &e.to_string())
    })
}

/// A load error at `label/file[:line:col]`.
fn located(label: &str, file: &str, at: Option<(usize, usize)>, message: &str) -> ProtoError {
    let path = if label.is_empty() { file.to_owned() } else { format!("{label}/{file}") };
    let at = match at {
        Some((line, column)) => format!("{path}:{line}:{column}"),
        None => path,
    };
    ProtoError::Compile { dir: label.to_owned(), message: format!("{at}: {message}") }
}

/// Links `files` (see [`crate::link`]); an error names the element's position.
fn link(label: &str, files: &mut [Arc<FileDescriptorProto>], linked: &[bool]) -> Result<(), ProtoError> {
    crate::link::link(files, linked).map_err(|e| {
        let file = &files[e.file];
        let at = Locations::find(file.source_code_info.as_ref(), &e.path);
        located(label, file.name(), at, &e.message)
    })
}

/// A file as a [`Loader`] is given it: parsed, or (`linked`) linked already.
struct Provided {
    descriptor: Arc<FileDescriptorProto>,
    linked: bool,
}

/// Gives the loader a file of the set by name: `None` when there is no such file.
type Provide<'a> = dyn FnMut(&str) -> Result<Option<Provided>, ProtoError> + 'a;

/// Walks files and, depth first, what they import, so each file follows its imports (the
/// order protoc and protox give).
struct Loader<'a, 'p> {
    label: &'a str,
    provide: &'a mut Provide<'p>,
    files: Vec<Arc<FileDescriptorProto>>,
    /// Whether each file is linked already (protobuf's own, or shared).
    linked: Vec<bool>,
    loaded: HashSet<String>,
    /// The import chain being walked, for cycles.
    walking: Vec<String>,
}

/// Why a file could not be loaded for the file that imports it.
enum ImportFailure {
    NotFound,
    Cycle(String),
    Failed(ProtoError),
}

impl<'a, 'p> Loader<'a, 'p> {
    fn new(label: &'a str, provide: &'a mut Provide<'p>) -> Self {
        Self {
            label,
            provide,
            files: Vec::new(),
            linked: Vec::new(),
            loaded: HashSet::new(),
            walking: Vec::new(),
        }
    }

    fn load<'n>(
        mut self,
        names: impl IntoIterator<Item = &'n String>,
    ) -> Result<(Vec<Arc<FileDescriptorProto>>, Vec<bool>), ProtoError> {
        for name in names {
            match self.visit(name) {
                Ok(()) => {}
                Err(ImportFailure::Failed(error)) => return Err(error),
                Err(ImportFailure::NotFound | ImportFailure::Cycle(_)) => {
                    return Err(located(self.label, name, None, "file not found"));
                }
            }
        }
        Ok((self.files, self.linked))
    }

    fn visit(&mut self, name: &str) -> Result<(), ImportFailure> {
        if self.loaded.contains(name) {
            return Ok(());
        }
        if self.walking.iter().any(|n| n == name) {
            let mut cycle = self.walking.join(" -> ");
            cycle.push_str(" -> ");
            cycle.push_str(name);
            return Err(ImportFailure::Cycle(cycle));
        }
        let provided = match (self.provide)(name).map_err(ImportFailure::Failed)? {
            Some(provided) => provided,
            None if is_well_known(name) => match well_known(name) {
                Some(descriptor) => Provided { descriptor: Arc::new(descriptor), linked: true },
                None => return Err(ImportFailure::NotFound),
            },
            None => return Err(ImportFailure::NotFound),
        };
        self.walking.push(name.to_owned());
        for (i, import) in provided.descriptor.dependency.iter().enumerate() {
            let why = match self.visit(import) {
                Ok(()) => continue,
                Err(ImportFailure::Failed(error)) => return Err(ImportFailure::Failed(error)),
                Err(ImportFailure::NotFound) => format!("import '{import}' not found"),
                Err(ImportFailure::Cycle(cycle)) => format!("import cycle: {cycle}"),
            };
            let at = Locations::find(
                provided.descriptor.source_code_info.as_ref(),
                &[crate::source::FILE_DEPENDENCY, i32::try_from(i).unwrap_or(i32::MAX)],
            );
            return Err(ImportFailure::Failed(located(self.label, name, at, &why)));
        }
        self.walking.pop();
        self.loaded.insert(name.to_owned());
        self.files.push(provided.descriptor);
        self.linked.push(provided.linked);
        Ok(())
    }
}

/// Protobuf's own file `name` (`google/protobuf/…`), linked, from the copies protox carries.
fn well_known(name: &str) -> Option<FileDescriptorProto> {
    static GOOGLE: OnceLock<GoogleFileResolver> = OnceLock::new();
    let file = GOOGLE.get_or_init(GoogleFileResolver::new).open_file(name).ok()?;
    Some(file.file_descriptor_proto().clone())
}

/// A file's source locations by path (see `descriptor.proto`'s `SourceCodeInfo`), for comments
/// and positions.
#[derive(Debug, Default)]
pub struct Locations<'a> {
    by_path: HashMap<&'a [i32], &'a Location>,
}

impl<'a> Locations<'a> {
    /// The locations of `info` (none when the descriptor has no source info).
    pub fn new(info: Option<&'a SourceCodeInfo>) -> Self {
        let mut by_path = HashMap::new();
        for location in info.map(|i| i.location.as_slice()).unwrap_or_default() {
            // The first location of a path is the declaration's (a repeated statement such as
            // `reserved` has one per statement).
            by_path.entry(location.path.as_slice()).or_insert(location);
        }
        Self { by_path }
    }

    /// The location of `path`.
    pub fn get(&self, path: &[i32]) -> Option<&'a Location> {
        self.by_path.get(path).copied()
    }

    /// 1-based line and column of the start of `path`'s span.
    pub fn line_col(&self, path: &[i32]) -> Option<(usize, usize)> {
        start_line_col(self.get(path)?)
    }

    /// [`Locations::line_col`] of one path, found by a scan of `info` without an index.
    pub fn find(info: Option<&SourceCodeInfo>, path: &[i32]) -> Option<(usize, usize)> {
        start_line_col(info?.location.iter().find(|l| l.path == path)?)
    }

    /// Sort key: where `path` starts, or `None` without source info.
    pub fn start(&self, path: &[i32]) -> Option<(i32, i32)> {
        let span = &self.get(path)?.span;
        Some((*span.first()?, *span.get(1)?))
    }
}

fn start_line_col(location: &Location) -> Option<(usize, usize)> {
    let line = usize::try_from(*location.span.first()?).ok()? + 1;
    let column = usize::try_from(*location.span.get(1)?).ok()? + 1;
    Some((line, column))
}

/// Every fully-qualified symbol (messages, enums, services, and every package prefix) of a set
/// of files, without the leading dot: what name resolution in `.proto` text can find.
pub fn symbols(files: &[FileDescriptorProto]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in files {
        let package = file.package();
        let mut prefix = String::new();
        for part in package.split('.').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(part);
            out.insert(prefix.clone());
        }
        let scope = package.to_owned();
        for m in &file.message_type {
            message_symbols(&scope, m, &mut out);
        }
        for e in &file.enum_type {
            out.insert(join(&scope, e.name()));
        }
        for s in &file.service {
            out.insert(join(&scope, s.name()));
        }
    }
    out
}

fn message_symbols(scope: &str, message: &prost_types::DescriptorProto, out: &mut BTreeSet<String>) {
    let name = join(scope, message.name());
    for nested in &message.nested_type {
        message_symbols(&name, nested, out);
    }
    for e in &message.enum_type {
        out.insert(join(&name, e.name()));
    }
    out.insert(name);
}

/// `scope.name`, or `name` at the root.
pub fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        return name.to_owned();
    }
    let mut out = String::with_capacity(scope.len() + 1 + name.len());
    out.push_str(scope);
    out.push('.');
    out.push_str(name);
    out
}
