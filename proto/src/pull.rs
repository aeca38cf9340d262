//! `proto pull`: what the services serve over reflection, as `.proto` files in the usual package
//! layout (`banyan/events/v1/events.proto`), written to a folder or compared with it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost_types::FileDescriptorProto;

use crate::ProtoError;
use crate::load::{is_well_known, symbols};
use crate::reflection::{ReflectionVersion, Served, fetch};
use crate::source::render_file;

/// Everything pulled from a set of servers: each file's `.proto` text by name (well-known types
/// left out), and which services each server listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pulled {
    /// `.proto` text by file name.
    pub files: BTreeMap<String, String>,
    /// `(address, protocol, services)` per server, in the order asked.
    pub servers: Vec<(String, String, Vec<String>)>,
}

/// Pulls from every address and renders the files.
pub async fn pull(
    addresses: &[String],
    version: ReflectionVersion,
    timeout: Duration,
) -> Result<Pulled, ProtoError> {
    let mut descriptors: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    let mut servers = Vec::new();
    for address in addresses {
        let Served { services, files, version } = fetch(address, version, timeout).await?;
        tracing::debug!(address, version, services = services.len(), files = files.len(), "pulled");
        for (name, file) in files {
            match descriptors.get(&name) {
                Some(existing) if !is_well_known(&name) && *existing != file => {
                    return Err(ProtoError::Conflict { file: name, address: address.clone() });
                }
                Some(_) => {}
                None => {
                    descriptors.insert(name, file);
                }
            }
        }
        servers.push((address.clone(), version.to_owned(), services));
    }
    Ok(Pulled { files: render_set(descriptors.values().cloned().collect::<Vec<_>>().as_slice())?, servers })
}

/// Renders every file of `files` that is not a well-known type, by name.
pub fn render_set(files: &[FileDescriptorProto]) -> Result<BTreeMap<String, String>, ProtoError> {
    let symbols = symbols(files);
    let mut out = BTreeMap::new();
    for file in files.iter().filter(|f| !is_well_known(f.name())) {
        out.insert(file.name().to_owned(), render_file(file, &symbols)?);
    }
    Ok(out)
}

/// How the files on disk compare with the pulled ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Files identical on disk.
    pub unchanged: Vec<String>,
    /// Files that differ: name and a unified diff (disk → served).
    pub changed: Vec<(String, String)>,
    /// Files served but not on disk.
    pub missing: Vec<String>,
    /// `.proto` files on disk that no pulled server serves.
    pub not_served: Vec<String>,
}

impl Comparison {
    /// Whether disk and services agree.
    pub fn is_clean(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.not_served.is_empty()
    }

    /// A summary for people: one line per differing file, then the diffs.
    pub fn describe(&self, dir: &Path) -> String {
        let mut out = String::new();
        let path = |name: &str| dir.join(name).display().to_string();
        for (name, diff) in &self.changed {
            let added = diff.lines().filter(|l| l.starts_with('+') && !l.starts_with("+++")).count();
            let removed = diff.lines().filter(|l| l.starts_with('-') && !l.starts_with("---")).count();
            let _ = writeln!(out, "changed     {} (+{added} -{removed} lines)", path(name));
        }
        for name in &self.missing {
            let _ = writeln!(out, "missing     {} (served, not committed)", path(name));
        }
        for name in &self.not_served {
            let _ = writeln!(out, "not served  {} (committed, no service pulled serves it)", path(name));
        }
        for (_, diff) in &self.changed {
            let _ = write!(out, "\n{diff}");
        }
        out
    }
}

/// Compares the pulled files with the `.proto` files under `dir`.
pub fn compare(pulled: &Pulled, dir: &Path) -> Result<Comparison, ProtoError> {
    let on_disk = proto_files(dir)?;
    let mut comparison = Comparison::default();
    for (name, text) in &pulled.files {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == *text => comparison.unchanged.push(name.clone()),
            Ok(committed) => {
                let diff = similar::TextDiff::from_lines(committed.as_str(), text.as_str())
                    .unified_diff()
                    .context_radius(2)
                    .header(&format!("{} (committed)", path.display()), &format!("{name} (served)"))
                    .to_string();
                comparison.changed.push((name.clone(), diff));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => comparison.missing.push(name.clone()),
            Err(source) => return Err(ProtoError::Io { path, source }),
        }
    }
    comparison.not_served = on_disk.into_iter().filter(|n| !pulled.files.contains_key(n)).collect();
    Ok(comparison)
}

/// What [`write`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Files written (new or changed).
    pub written: Vec<PathBuf>,
    /// Files already up to date.
    pub unchanged: Vec<PathBuf>,
    /// `.proto` files no service serves, deleted (with `prune`) or left in place.
    pub not_served: Vec<PathBuf>,
}

/// Writes the pulled files under `dir`, touching only files whose text changes; with `prune`,
/// deletes `.proto` files under `dir` that no pulled server serves.
pub fn write(pulled: &Pulled, dir: &Path, prune: bool) -> Result<Written, ProtoError> {
    let mut done = Written::default();
    for (name, text) in &pulled.files {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == *text) {
            done.unchanged.push(path);
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| ProtoError::Io { path: parent.to_path_buf(), source })?;
        }
        std::fs::write(&path, text).map_err(|source| ProtoError::Io { path: path.clone(), source })?;
        done.written.push(path);
    }
    if dir.is_dir() {
        for name in proto_files(dir)? {
            if pulled.files.contains_key(&name) {
                continue;
            }
            let path = dir.join(&name);
            if prune {
                std::fs::remove_file(&path)
                    .map_err(|source| ProtoError::Io { path: path.clone(), source })?;
            }
            done.not_served.push(path);
        }
    }
    Ok(done)
}

/// Names (relative, `/`-separated) of the `.proto` files under `dir`; none when it does not exist.
fn proto_files(dir: &Path) -> Result<BTreeSet<String>, ProtoError> {
    let mut out = BTreeSet::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let entries = std::fs::read_dir(&at).map_err(|source| ProtoError::Io { path: at.clone(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| ProtoError::Io { path: at.clone(), source })?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let relative = path.strip_prefix(dir).unwrap_or(&path);
                let parts: Vec<String> =
                    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                out.insert(parts.join("/"));
            }
        }
    }
    Ok(out)
}
