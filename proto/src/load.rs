//! A [`ProtoSet`]: the compiled descriptors of a folder of `.proto` files (or of in-memory
//! sources, or of what a server sent over reflection), parsed with protox, so no system `protoc`
//! is needed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use prost_types::{FileDescriptorProto, FileDescriptorSet, SourceCodeInfo, source_code_info::Location};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use crate::ProtoError;

/// Files that come with protobuf itself: never written by `pull`, never compared by `check`.
pub const WELL_KNOWN_PREFIX: &str = "google/protobuf/";

/// Whether `name` is one of protobuf's well-known files.
pub fn is_well_known(name: &str) -> bool {
    name.starts_with(WELL_KNOWN_PREFIX)
}

/// A set of compiled `.proto` files with their imports.
#[derive(Debug, Clone)]
pub struct ProtoSet {
    /// How reports name this side: the folder as given (e.g. `sources/proto`).
    label: String,
    /// Every file, imports (well-known types included) first.
    files: Vec<FileDescriptorProto>,
}

impl ProtoSet {
    /// Compiles every `*.proto` file under `dir` (recursively), with `dir` as the include path.
    pub fn load_dir(dir: &Path) -> Result<Self, ProtoError> {
        let mut names = Vec::new();
        collect_protos(dir, dir, &mut names)?;
        names.sort();
        if names.is_empty() {
            return Err(ProtoError::NoProtos(dir.display().to_string()));
        }
        let mut compiler = protox::Compiler::new([dir]).map_err(|e| compile_error(dir, &e))?;
        compiler.include_imports(true).include_source_info(true);
        for name in &names {
            compiler.open_file(dir.join(name)).map_err(|e| compile_error(dir, &e))?;
        }
        Ok(Self { label: dir.display().to_string(), files: compiler.file_descriptor_set().file })
    }

    /// Compiles two folders at once, each on its own thread (what `proto check` loads).
    pub fn load_dirs(base: &Path, new: &Path) -> Result<(Self, Self), ProtoError> {
        let (base, new) = std::thread::scope(|scope| {
            let other = scope.spawn(|| Self::load_dir(new));
            let base = Self::load_dir(base);
            (base, other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        });
        Ok((base?, new?))
    }

    /// Compiles in-memory sources (`(file name, text)`), for tests and benchmarks.
    pub fn from_sources<'a>(
        label: &str,
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ProtoError> {
        let map: BTreeMap<String, String> =
            sources.into_iter().map(|(n, t)| (n.to_owned(), t.to_owned())).collect();
        let mut resolver = ChainFileResolver::new();
        resolver.add(MemoryResolver(map.clone()));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true).include_source_info(true);
        for name in map.keys() {
            compiler.open_file(name).map_err(|e| compile_error(Path::new(label), &e))?;
        }
        Ok(Self { label: label.to_owned(), files: compiler.file_descriptor_set().file })
    }

    /// The files a server sent, as they are.
    pub fn from_descriptors(label: &str, set: FileDescriptorSet) -> Self {
        Self { label: label.to_owned(), files: set.file }
    }

    /// How reports name this side.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Every file, imports included.
    pub fn all_files(&self) -> &[FileDescriptorProto] {
        &self.files
    }

    /// The files that are not well-known types, by name.
    pub fn own_files(&self) -> impl Iterator<Item = &FileDescriptorProto> {
        self.files.iter().filter(|f| !is_well_known(f.name()))
    }

    /// Where a file of this set is on disk (the label joined with its name), for reports.
    pub fn display_path(&self, file: &str) -> String {
        if self.label.is_empty() { file.to_owned() } else { format!("{}/{file}", self.label) }
    }
}

fn collect_protos(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), ProtoError> {
    let entries =
        std::fs::read_dir(dir).map_err(|source| ProtoError::Io { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| ProtoError::Io { path: dir.to_path_buf(), source })?;
        let path: PathBuf = entry.path();
        if path.is_dir() {
            collect_protos(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let name = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>();
            out.push(name.join("/"));
        }
    }
    Ok(())
}

fn compile_error(dir: &Path, error: &protox::Error) -> ProtoError {
    // protox's `Display` is its one-line message; the file and the span (a byte offset in the
    // diagnostic's label) come apart.
    use miette::Diagnostic as _;
    let offset = error.labels().and_then(|mut labels| labels.next()).map(|label| label.offset());
    let at = match (error.file(), offset) {
        (Some(file), Some(offset)) => {
            let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            let before = text.get(..offset).unwrap_or_default();
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{}/{file}:{line}:{column}", dir.display())
        }
        (Some(file), None) => format!("{}/{file}", dir.display()),
        _ => dir.display().to_string(),
    };
    ProtoError::Compile { dir: dir.display().to_string(), message: format!("{at}: {error}") }
}

/// In-memory files by name.
struct MemoryResolver(BTreeMap<String, String>);

impl FileResolver for MemoryResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(text) => File::from_source(name, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
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
        let span = &self.get(path)?.span;
        let line = usize::try_from(*span.first()?).ok()? + 1;
        let column = usize::try_from(*span.get(1)?).ok()? + 1;
        Some((line, column))
    }

    /// Sort key: where `path` starts, or `None` without source info.
    pub fn start(&self, path: &[i32]) -> Option<(i32, i32)> {
        let span = &self.get(path)?.span;
        Some((*span.first()?, *span.get(1)?))
    }
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
    if scope.is_empty() { name.to_owned() } else { format!("{scope}.{name}") }
}
