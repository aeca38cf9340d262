//! Loading SDL: parse and validate a schema with apollo-compiler, keeping the path label so
//! every later message can point at `file:line:col`.
//!
//! Two ways: [`load_sdl`] keeps apollo-compiler's schema (and builds the [`CompactSchema`] the
//! diff reads when first asked); [`load_compact`] and [`load_compact_with`] keep only the
//! compact model, dropping apollo-compiler's schema as soon as it is built, and parse the text
//! in chunks of whole definitions on two threads, so a large schema costs about what it keeps
//! (README, "Schema diff and check at scale"); [`load_base_compact`] reads the base of a
//! comparison, validated before, into that model with cynic-parser, a chunk at a time.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use apollo_compiler::ast::{self, DirectiveDefinition, DirectiveLocation};
use apollo_compiler::parser::FileId;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::{DiagnosticList, Valid};
use apollo_compiler::{Node, Schema, name};
use sha2::{Digest, Sha256};

use crate::model::{self, CompactSchema, LineIndex, Locator};
use crate::problem::{self, Problem, Severity};

/// A parsed and validated schema, with the path label it was loaded under.
#[derive(Debug, Clone)]
pub struct Sdl {
    path: String,
    schema: Valid<Schema>,
    hash: String,
    /// Built on first use ([`Sdl::compact`]).
    compact: OnceLock<CompactSchema>,
}

/// Why an SDL file could not be loaded. The CLI maps every variant to exit code 2
/// ([`EXIT_INPUT_ERROR`](crate::EXIT_INPUT_ERROR)).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that was read.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The text does not parse, or does not validate, as a GraphQL schema.
    #[error("{path} is not a valid GraphQL schema:\n{}", render_problems(problems))]
    Invalid {
        /// The path label.
        path: String,
        /// Every parse and validation error, each with `file:line:col`.
        problems: Vec<Problem>,
    },
}

impl SchemaError {
    /// The located problems (empty for an I/O error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            SchemaError::Io { .. } => &[],
            SchemaError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

/// Parses and validates `text` as SDL. `path_label` names the file in every message (use the
/// path relative to the repository root so GitHub annotations resolve).
///
/// `@oneOf` (built in since the September 2025 GraphQL specification) is known even when the
/// text does not define it, and its rules are checked: every field of a oneOf input object is
/// nullable and has no default.
pub fn load_sdl(path_label: &str, text: &str) -> Result<Sdl, SchemaError> {
    let invalid = |errors: &DiagnosticList| {
        let mut problems = problem::from_diagnostics(errors, "INVALID_SCHEMA", path_label);
        for p in &mut problems {
            if p.message.starts_with("syntax error") {
                p.code = "SYNTAX_ERROR".to_owned();
            }
        }
        SchemaError::Invalid { path: path_label.to_owned(), problems }
    };
    let schema = Schema::parse(text, path_label).map_err(|with_errors| invalid(&with_errors.errors))?;
    let schema = validate(schema).map_err(|with_errors| invalid(&with_errors.errors))?;
    let one_of_problems = one_of_rules(&schema, path_label);
    if !one_of_problems.is_empty() {
        return Err(SchemaError::Invalid { path: path_label.to_owned(), problems: one_of_problems });
    }
    Ok(Sdl { path: path_label.to_owned(), schema, hash: schema_hash(text), compact: OnceLock::new() })
}

/// Adds `@oneOf` when the schema does not define it, then validates.
#[allow(clippy::result_large_err)] // apollo-compiler's own error type
fn validate(mut schema: Schema) -> Result<Valid<Schema>, apollo_compiler::validation::WithErrors<Schema>> {
    if !schema.directive_definitions.contains_key("oneOf") {
        schema.directive_definitions.insert(name!("oneOf"), one_of_definition());
    }
    schema.validate()
}

/// Parses and validates `text` as [`load_sdl`] does (the same errors, positions and codes) and
/// returns only the [`CompactSchema`]: apollo-compiler's schema is dropped as soon as the model
/// is built.
pub fn load_compact(path_label: &str, text: &str) -> Result<CompactSchema, SchemaError> {
    load_compact_with(path_label, text, |_| ()).map(|(compact, ())| compact)
}

/// [`load_compact`], running `with_schema` on apollo-compiler's validated schema before it is
/// dropped (`check` validates the contract's operations there).
///
/// The text is parsed in chunks of whole top-level definitions (about 64 KiB each, on two
/// threads), which keeps the parser's peak memory near what the schema keeps. The schema
/// `with_schema` sees has its spans relative to each chunk and no source text but the
/// built-in definitions' (diagnostics about operations, located in their own files, are as
/// usual). When a chunk, the schema or its validation fails, the text is loaded whole by
/// [`load_sdl`], so errors are exactly its own.
///
/// Once the schema is valid and `with_schema` has run, apollo-compiler's schema is dropped and
/// the model read from the text as the base of a comparison is ([`load_base_compact`]): the
/// same model, which then never sits beside the 27 MiB apollo-compiler keeps for a 1.7 MB
/// schema (1.4 MiB less at `schema check`'s peak and 2.3 MiB at `schema diff`'s, for 12–15
/// ms). A text that reading cannot take (an extension, say) has its model built from
/// apollo-compiler's schema of it, loaded again.
pub fn load_compact_with<T>(
    path_label: &str,
    text: &str,
    with_schema: impl FnOnce(&Valid<Schema>) -> T,
) -> Result<(CompactSchema, T), SchemaError> {
    load_in_chunks(path_label, text, CHUNK_BYTES, with_schema)
}

/// [`load_compact_with`] with chunks of at least `chunk_bytes`.
fn load_in_chunks<T>(
    path_label: &str,
    text: &str,
    chunk_bytes: usize,
    with_schema: impl FnOnce(&Valid<Schema>) -> T,
) -> Result<(CompactSchema, T), SchemaError> {
    let Some(schema) = parse_in_chunks(path_label, text, chunk_bytes) else {
        // Whole, as `load_sdl` loads it: the same errors (or, should chunking have been wrong
        // about a valid text, the same schema).
        let sdl = load_sdl(path_label, text)?;
        let out = with_schema(sdl.schema());
        return Ok((sdl.into_compact(), out));
    };
    let out = with_schema(&schema);
    drop(schema);
    let compact = match model_in_parts(path_label, text, chunk_bytes, None) {
        Some(compact) => compact,
        None => load_sdl(path_label, text)?.into_compact(),
    };
    Ok((compact, out))
}

/// Reads `path` and calls [`load_base_compact`] with the path as its label.
pub fn load_base_compact_file(
    path: impl AsRef<Path>,
    like: Option<&CompactSchema>,
) -> Result<CompactSchema, SchemaError> {
    let (label, text) = read_schema(path.as_ref())?;
    load_base_compact(&label, &text, like)
}

/// The compact model of the base of a comparison (the old schema of `schema diff` and
/// `schema check`), which was validated as the new schema of the change that made it the base:
/// read a chunk at a time with cynic-parser straight into the model apollo-compiler's schema of
/// the same text would give (`model::PartsBuilder`), so apollo-compiler never parses it; not
/// validated again.
///
/// A text cynic-parser does not take (a syntax error, or an escape it does not decode, such as
/// a surrogate pair), or whose meaning needs the whole schema (an extension, a second `schema`
/// definition, a name defined twice, a built-in type redefined), is loaded and validated whole,
/// as [`load_compact`] loads it, so its errors are [`load_sdl`]'s.
///
/// `like` is a model of about the same size, if there is one (the new schema's, loaded
/// first): the model is given its room up front.
pub fn load_base_compact(
    path_label: &str,
    text: &str,
    like: Option<&CompactSchema>,
) -> Result<CompactSchema, SchemaError> {
    match model_in_parts(path_label, text, CHUNK_BYTES, like) {
        Some(compact) => Ok(compact),
        None => load_compact(path_label, text),
    }
}

/// The model of `text` built a chunk at a time (this thread and a helper parse alternate
/// chunks with cynic-parser, the helper one chunk ahead); `None` when a chunk does not parse, a
/// definition needs the whole schema, or the text defines nothing.
pub(crate) fn model_in_parts(
    path_label: &str,
    text: &str,
    chunk_bytes: usize,
    like: Option<&CompactSchema>,
) -> Option<CompactSchema> {
    let chunks = definition_chunks(text, chunk_bytes);
    if chunks.is_empty() {
        return None;
    }
    let lines = LineIndex::new(text);
    let mut builder = model::PartsBuilder::new(path_label, &schema_hash(text), like);
    std::thread::scope(|scope| {
        let (ahead, parsed) = std::sync::mpsc::sync_channel(1);
        scope.spawn(|| {
            for &(_, chunk) in chunks.iter().skip(1).step_by(2) {
                let document = cynic_parser::parse_type_system_document(chunk).ok();
                let failed = document.is_none();
                // The receiver is gone when this thread's caller gave up.
                if ahead.send(document).is_err() || failed {
                    break;
                }
            }
            drop(ahead);
        });
        for (i, &(offset, chunk)) in chunks.iter().enumerate() {
            let document = if i % 2 == 0 {
                cynic_parser::parse_type_system_document(chunk).ok()?
            } else {
                parsed.recv().ok()??
            };
            builder.add(&document, chunk, offset, &lines).ok()?;
        }
        Some(())
    })?;
    builder.finish().ok()
}

/// Bytes of text per chunk: small enough that the parser's transient trees stay small, large
/// enough that per-chunk costs do not count.
const CHUNK_BYTES: usize = 64 * 1024;

/// The schema parsed from chunks of `text` and validated; `None` when anything fails (the caller
/// then loads the text whole) or the text is one chunk.
fn parse_in_chunks(path_label: &str, text: &str, chunk_bytes: usize) -> Option<Valid<Schema>> {
    let chunks = definition_chunks(text, chunk_bytes);
    if chunks.len() < 2 {
        return None;
    }
    // Chunks alternate between this thread and a helper: a fixed split, so that the halves of
    // the next schema parsed land where the halves of the last one were freed (each thread
    // allocates from its own heap).
    let parse = |first: usize| {
        let mine = chunks.iter().enumerate().skip(first).step_by(2);
        mine.map(|(i, &(_, chunk))| (i, ast::Document::parse(chunk, path_label))).collect::<Vec<_>>()
    };
    let mut documents = std::thread::scope(|scope| {
        let helper = scope.spawn(|| parse(1));
        let mut mine = parse(0);
        // A panic in the helper is a bug: let it go on unwinding here.
        mine.extend(helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        mine
    });
    documents.sort_unstable_by_key(|(i, _)| *i);
    let mut builder = Schema::builder();
    for (_, document) in documents {
        builder = builder.add_ast(&document.ok()?);
    }
    let schema = validate(builder.build().ok()?).ok()?;
    if !one_of_rules(&schema, path_label).is_empty() {
        return None;
    }
    // Valid: the chunks' texts were kept for diagnostics and are not needed any more (the
    // model is read from the whole text). The built-in definitions' file stays.
    let mut schema = schema.into_inner();
    schema.sources = Arc::new(
        schema
            .sources
            .iter()
            .filter(|(id, _)| **id == FileId::BUILT_IN)
            .map(|(id, f)| (*id, f.clone()))
            .collect(),
    );
    Some(Valid::assume_valid(schema))
}

/// `text` cut into chunks of at least `target` bytes, each ending after a line whose last
/// token closes a top-level definition's braces (outside strings, block strings and
/// comments), with each chunk's byte offset. A tail of blanks and commas joins the last chunk.
pub fn definition_chunks(text: &str, target: usize) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    let (mut i, mut depth, mut start, mut closed) = (0usize, 0i64, 0usize, false);
    let mut cuts = Vec::new();
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped triple quote inside a block string.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 3;
                closed = false;
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                closed = false;
                continue;
            }
            b'{' | b'(' | b'[' => {
                depth += 1;
                closed = false;
            }
            c @ (b'}' | b')' | b']') => {
                depth -= 1;
                closed = c == b'}' && depth == 0;
            }
            b'\n' if depth == 0 && closed && i + 1 - start >= target => {
                cuts.push(i + 1);
                start = i + 1;
                // Blank lines and comments after a cut go with the next definition (a chunk
                // with no definition does not parse).
                closed = false;
            }
            b' ' | b'\t' | b'\r' | b',' | b'\n' => {}
            _ => closed = false,
        }
        i += 1;
    }
    // A tail of blanks is no definition: leave it to the last chunk.
    if cuts
        .last()
        .is_some_and(|&cut| text[cut..].bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',')))
    {
        cuts.pop();
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for cut in cuts.into_iter().chain(std::iter::once(text.len())) {
        if cut > from || out.is_empty() {
            out.push((from, &text[from..cut]));
        }
        from = cut;
    }
    out
}

/// `directive @oneOf on INPUT_OBJECT`, as the specification defines it.
pub(crate) fn one_of_definition() -> Node<DirectiveDefinition> {
    Node::new(DirectiveDefinition {
        description: Some(
            "Indicates exactly one field must be supplied and this field must not be `null`.".into(),
        ),
        name: name!("oneOf"),
        arguments: Vec::new(),
        repeatable: false,
        locations: vec![DirectiveLocation::InputObject],
    })
}

/// Whether an input object type is a oneOf input object.
pub(crate) fn is_one_of(ty: &ExtendedType) -> bool {
    matches!(ty, ExtendedType::InputObject(io) if io.directives.has("oneOf"))
}

/// The specification's rules for oneOf input objects: each field nullable, none with a default.
fn one_of_rules(schema: &Schema, path_label: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (type_name, ty) in &schema.types {
        let ExtendedType::InputObject(io) = ty else { continue };
        if !is_one_of(ty) {
            continue;
        }
        for (field_name, field) in &io.fields {
            let why = if field.ty.is_non_null() {
                "must be nullable"
            } else if field.default_value.is_some() {
                "must not have a default value"
            } else {
                continue;
            };
            let pos = problem::line_col(&schema.sources, field.name.location());
            problems.push(Problem {
                severity: Severity::Error,
                code: "INVALID_SCHEMA".to_owned(),
                message: format!("`{type_name}.{field_name}` is a field of a @oneOf input object: it {why}"),
                file: path_label.to_owned(),
                line: pos.map(|p| p.0),
                column: pos.map(|p| p.1),
                component: None,
                definition: Some(type_name.to_string()),
            });
        }
    }
    problems
}

/// The hash that keys accepted changes to a base schema: `sha256:` and the lowercase hex
/// SHA-256 of the SDL text normalised so that only meaningful bytes count: a leading UTF-8
/// byte-order mark is dropped, `\r\n` and `\r` become `\n`, trailing spaces and tabs are
/// removed from every line, trailing empty lines are removed, and the text ends with exactly
/// one `\n`. (So `git show`, which drops the final newline, and a checkout agree.)
pub fn schema_hash(text: &str) -> String {
    // Streamed into the hasher line by line (no copies of the text): empty lines are held back
    // until a non-empty one follows, so trailing ones drop out.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut hasher = Sha256::new();
    let mut newlines_due = 0usize;
    for line in text_lines(text) {
        let line = line.trim_end_matches([' ', '\t']);
        if line.is_empty() {
            newlines_due += 1;
            continue;
        }
        for _ in 0..newlines_due {
            hasher.update(b"\n");
        }
        hasher.update(line.as_bytes());
        newlines_due = 1;
    }
    hasher.update(b"\n");
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The lines of `text`, ended by `\r\n`, `\r` or `\n` (the last one may be unterminated, and
/// is yielded even when empty, as `split` does).
fn text_lines(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let rest = &bytes[start..];
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) => {
                let line = &text[start..start + i];
                let crlf = rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n');
                start += i + if crlf { 2 } else { 1 };
                Some(line)
            }
            None => {
                done = true;
                Some(&text[start..])
            }
        }
    })
}

/// Reads `path` and calls [`load_sdl`] with the path as its label.
pub fn load_sdl_file(path: impl AsRef<Path>) -> Result<Sdl, SchemaError> {
    let (label, text) = read_schema(path.as_ref())?;
    load_sdl(&label, &text)
}

/// Reads `path` and calls [`load_compact`] with the path as its label.
pub fn load_compact_file(path: impl AsRef<Path>) -> Result<CompactSchema, SchemaError> {
    load_compact_file_with(path, |_| ()).map(|(compact, ())| compact)
}

/// Reads `path` and calls [`load_compact_with`] with the path as its label.
pub fn load_compact_file_with<T>(
    path: impl AsRef<Path>,
    with_schema: impl FnOnce(&Valid<Schema>) -> T,
) -> Result<(CompactSchema, T), SchemaError> {
    let (label, text) = read_schema(path.as_ref())?;
    load_in_chunks(&label, &text, CHUNK_BYTES, with_schema)
}

/// The path label (`/` separators) and the text of a schema file.
fn read_schema(path: &Path) -> Result<(String, String), SchemaError> {
    let label = path.display().to_string().replace('\\', "/");
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((label, text)),
        Err(source) => Err(SchemaError::Io { path: label, source }),
    }
}

impl Sdl {
    /// The path label the schema was loaded under.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// [`schema_hash`] of the text the schema was loaded from.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The validated apollo-compiler schema.
    pub fn schema(&self) -> &Valid<Schema> {
        &self.schema
    }

    /// The compact model the diff and the usage walks read (built on first use).
    pub fn compact(&self) -> &CompactSchema {
        self.compact.get_or_init(|| self.build_compact())
    }

    /// The compact model alone: apollo-compiler's schema is dropped.
    pub fn into_compact(self) -> CompactSchema {
        match self.compact.into_inner() {
            Some(compact) => compact,
            None => {
                model::build(&self.schema, &Locator::per_file(&self.schema.sources), &self.path, &self.hash)
            }
        }
    }

    fn build_compact(&self) -> CompactSchema {
        model::build(&self.schema, &Locator::per_file(&self.schema.sources), &self.path, &self.hash)
    }
}

impl AsRef<CompactSchema> for Sdl {
    fn as_ref(&self) -> &CompactSchema {
        self.compact()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap on purpose

    use super::*;

    /// Definitions whose strings, block strings and comments hold braces, quotes and line ends
    /// that must not cut a chunk, with `\r\n` and U+2028 line ends along the way.
    const TRICKY: &str = "\"\"\"\nBlock } with \\\"\"\" inside\n}\n\"\"\"\ntype Query {\r\n  a(x: In = {s: \"}\\\" {\"}): T # } \"\n  b: E @deprecated(reason: \"}\\n\")\n}\n\n# \" a comment } with a quote\n\"one } line\"\nscalar S\n\ntype T implements I { # \u{2028} ariadne counts a line here\n  id: ID!\n  e: E\n}\ninterface I { id: ID! }\n\nenum E { A B\n}\ninput In @oneOf { s: String n: Int }\nunion U = T\n\n";

    #[test]
    fn chunks_are_cut_between_definitions_only() {
        let chunks = definition_chunks(TRICKY, 1);
        let texts: Vec<&str> = chunks.iter().map(|(_, t)| *t).collect();
        assert_eq!(texts.concat(), TRICKY);
        for (offset, chunk) in &chunks {
            assert_eq!(&TRICKY[*offset..*offset + chunk.len()], *chunk);
            // Every chunk parses on its own: no cut inside a definition, string or comment.
            assert!(ast::Document::parse(*chunk, "x.graphql").is_ok(), "{chunk:?} in {texts:#?}");
        }
        assert!(chunks.len() >= 4, "{texts:#?}");
    }

    /// `TRICKY` with four changes, and the two loaded whole.
    fn tricky_pair() -> (String, Sdl, Sdl) {
        let edited = TRICKY
            .replace("b: E", "b: E!")
            .replace("enum E { A B", "enum E { A C")
            .replace("\n  e: E\n}", "\n}");
        let (old, new) =
            (load_sdl("old.graphql", TRICKY).unwrap(), load_sdl("new.graphql", &edited).unwrap());
        (edited, old, new)
    }

    #[test]
    fn a_schema_loaded_in_chunks_diffs_as_one_loaded_whole() {
        let (edited, old, new) = tricky_pair();
        let whole = crate::diff(&old, &new);
        let (old_c, ()) = load_in_chunks("old.graphql", TRICKY, 1, |_| ()).unwrap();
        let (new_c, ()) = load_in_chunks("new.graphql", &edited, 1, |_| ()).unwrap();
        assert!(definition_chunks(TRICKY, 1).len() > 1 && definition_chunks(&edited, 1).len() > 1);
        let chunked = crate::diff(&old_c, &new_c);
        assert_eq!(chunked, whole);
        assert!(whole.len() >= 4, "{whole:#?}");
        assert!(whole.iter().all(|c| c.location.is_some()), "{whole:#?}");
        assert_eq!(old_c.hash(), old.hash());
        assert_eq!(old_c.listing(), old.compact().listing());
        assert_eq!(new_c.listing(), new.compact().listing());
    }

    /// A valid text the reading of the model cannot take (an extension, a surrogate pair, which
    /// cynic-parser rejects) is modelled from apollo-compiler's schema of it: the same model,
    /// and `with_schema` still sees the schema once.
    #[test]
    fn a_new_schema_reading_cannot_take_is_modelled_by_apollo_compiler() {
        for text in [
            format!("{TRICKY}extend type T {{ more: Int }}\n"),
            format!("{TRICKY}\"\\uD83D\\uDE00 in a description\"\nscalar Smile\n"),
        ] {
            assert!(model_in_parts("n.graphql", &text, 1, None).is_none(), "{text}");
            let mut calls = 0;
            let (compact, types) = load_in_chunks("n.graphql", &text, 1, |schema| {
                calls += 1;
                schema.types.len()
            })
            .unwrap();
            let whole = load_sdl("n.graphql", &text).unwrap();
            assert_eq!(compact.listing(), whole.compact().listing());
            assert_eq!((calls, types), (1, whole.schema().types.len()));
        }
    }

    /// The base of a comparison, modelled a part at a time, diffs as the same schema loaded
    /// whole, on either side of the diff (the old side's positions are those of removed members).
    #[test]
    fn a_base_modelled_in_parts_diffs_as_one_loaded_whole() {
        let (edited, old, new) = tricky_pair();
        let whole = crate::diff(&old, &new);
        assert!(whole.len() >= 4 && whole.iter().all(|c| c.location.is_some()), "{whole:#?}");
        let parts_old = model_in_parts("old.graphql", TRICKY, 1, None).expect("every part stands alone");
        let parts_new = model_in_parts("new.graphql", &edited, 1, Some(old.compact())).expect("stands alone");
        assert_eq!(crate::diff(&parts_old, new.compact()), whole);
        assert_eq!(crate::diff(old.compact(), &parts_new), whole);
        assert_eq!(crate::diff(&parts_old, &parts_new), whole);
        assert_eq!(crate::diff(&parts_old, old.compact()), Vec::new());
        assert_eq!(parts_old.listing(), old.compact().listing());
        assert_eq!(parts_new.listing(), new.compact().listing());
        let names = |m: &CompactSchema| {
            m.types
                .iter()
                .map(|t| format!("{}{}", m.str(t.name), if t.built_in { "*" } else { "" }))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&parts_old), names(old.compact()));
        assert_eq!(parts_old.type_count(), old.compact().type_count());
        assert_eq!(parts_old.hash(), old.hash());
        // `@oneOf`, which the text uses and does not define, is known as it is to the whole.
        assert!(parts_old.directive_named("oneOf").is_some());
        assert!(old.compact().directive_named("oneOf").is_some());
    }

    /// Parts that cannot stand alone, or that apollo-compiler would not build, send the base the
    /// whole way, validated: the same model, or the same errors, as loading it whole.
    #[test]
    fn a_base_whose_parts_cannot_stand_alone_is_loaded_whole() {
        let cases = [
            format!("{TRICKY}extend type T {{ more: Int }}\n"),
            format!("{TRICKY}extend schema @oneOf\n"),
            format!("schema {{ query: T }}\n{TRICKY}schema {{ query: T }}\n"),
            format!("{TRICKY}type T {{ again: Int }}\n"),
            format!("{TRICKY}scalar String\n"),
            format!("{TRICKY}type Dup {{ a: Int a: Int }}\n"),
            format!("{TRICKY}directive @d on FIELD\ndirective @d on FIELD\n"),
            format!("{TRICKY}type Broken {{ a: }}\n"),
            format!("{TRICKY}query NotSdl {{ a }}\n"),
        ];
        for text in &cases {
            assert!(model_in_parts("b.graphql", text, 1, None).is_none(), "{text}");
            match (load_base_compact("b.graphql", text, None), load_compact("b.graphql", text)) {
                (Ok(base), Ok(whole)) => {
                    assert_eq!(crate::diff(&base, &whole), Vec::new());
                    assert_eq!(base.type_count(), whole.type_count());
                }
                (Err(base), Err(whole)) => {
                    assert_eq!(base.problems(), whole.problems());
                    assert!(!base.problems().is_empty());
                }
                (base, whole) => panic!("{text}: the base gave {base:?}, the whole {whole:?}"),
            }
        }
        // What it does not do: validate the base again. An unknown type is modelled as written.
        let unknown = format!("{TRICKY}type Late {{ x: Missing }}\n");
        assert!(load_sdl("b.graphql", &unknown).is_err());
        let base = model_in_parts("b.graphql", &unknown, 1, None).expect("parses");
        assert_eq!(base.type_count(), load_sdl("b.graphql", TRICKY).unwrap().compact().type_count() + 1);
    }

    #[test]
    fn a_schema_that_fails_in_chunks_reports_what_loading_it_whole_reports() {
        let broken =
            format!("{TRICKY}type Late {{ x: Missing }}\ntype Dup {{ a: Int }}\ntype Dup {{ b: Int }}\n");
        let whole = load_sdl("s.graphql", &broken).unwrap_err();
        let chunked = load_in_chunks("s.graphql", &broken, 1, |_| ()).unwrap_err();
        assert_eq!(chunked.to_string(), whole.to_string());
        assert_eq!(chunked.problems(), whole.problems());
        assert!(!whole.problems().is_empty() && whole.problems().iter().all(|p| p.line.is_some()));
    }
}
