//! Finding GraphQL in JavaScript and TypeScript with oxc's parser: `gql`/`graphql` tagged
//! templates, `gql(…)`/`graphql(…)` calls on a literal, the names templates are bound to
//! (`const X = gql…`, `export default gql…`), and the imports and re-exports that let an
//! interpolated `${X}` be followed to another file.

use std::collections::HashMap;

use oxc_allocator::Allocator;
use oxc_ast::ast::{
    Argument, BindingPattern, CallExpression, ExportAllDeclaration, ExportDefaultDeclaration,
    ExportNamedDeclaration, Expression, ImportDeclaration, ImportDeclarationSpecifier, ImportOrExportKind,
    TaggedTemplateExpression, TemplateLiteral, VariableDeclarator,
};
use oxc_ast_visit::{Visit, walk};
use oxc_parser::Parser;
use oxc_span::SourceType;

/// The tags (and callees) that mark GraphQL: graphql-tag's and Apollo's `gql`, Relay's,
/// Gatsby's and graphql-codegen's client preset `graphql`.
const TAGS: &[&str] = &["gql", "graphql"];

/// One GraphQL text found in a file.
#[derive(Debug, Clone)]
pub(crate) struct RawTemplate {
    /// The GraphQL text, with every `${…}` blanked out (same byte length, newlines kept).
    pub(crate) text: String,
    /// Byte offset of `text[0]` in the file.
    pub(crate) origin: usize,
    /// Whether byte offsets in `text` are byte offsets in the file from `origin` (false when
    /// escape sequences were decoded: positions then point at the template's start).
    pub(crate) exact: bool,
    /// The `${…}` expressions, in order.
    pub(crate) interpolations: Vec<Interpolation>,
}

/// One `${…}` of a template.
#[derive(Debug, Clone)]
pub(crate) struct Interpolation {
    /// The identifier, or `None` for any other expression (which cannot be followed statically).
    pub(crate) name: Option<String>,
    /// Byte offset of the expression in the file.
    pub(crate) offset: usize,
}

/// Where a name comes from in another module.
#[derive(Debug, Clone)]
pub(crate) struct Import {
    /// The module specifier (`./fragments`, `@/graphql/fragments`).
    pub(crate) module: String,
    /// The name exported there (`default` for a default import).
    pub(crate) name: String,
}

/// What one JS/TS source (a file, or a `.vue` file's script block) holds.
#[derive(Debug, Default)]
pub(crate) struct ScriptScan {
    /// Every GraphQL template, in source order.
    pub(crate) templates: Vec<RawTemplate>,
    /// Name → index in `templates`, for templates bound to a name (`default` for
    /// `export default gql…`).
    pub(crate) bindings: HashMap<String, usize>,
    /// Local name → where it is imported from.
    pub(crate) imports: HashMap<String, Import>,
    /// Exported name → local name (`export { A as B }`, `export default A`).
    pub(crate) export_aliases: HashMap<String, String>,
    /// Exported name → where it is re-exported from (`export { A as B } from './x'`).
    pub(crate) reexports: HashMap<String, Import>,
    /// Modules re-exported wholesale (`export * from './x'`).
    pub(crate) star_exports: Vec<String>,
    /// The first syntax error: (byte offset in the file, message).
    pub(crate) syntax_error: Option<(usize, String)>,
}

/// The source type for a script of the given extension or `<script lang>` (`ts`, `tsx`, `js`,
/// `jsx`, `mjs`, `cjs`, `mts`, `cts`). Plain `.js` allows JSX, as React projects write it.
pub(crate) fn source_type(lang: &str) -> SourceType {
    match lang {
        "ts" | "mts" | "cts" => SourceType::ts(),
        "tsx" => SourceType::tsx(),
        "cjs" => SourceType::cjs(),
        _ => SourceType::jsx(),
    }
}

/// Parses `source` (which starts at byte `base` of its file) and collects its GraphQL.
pub(crate) fn scan(source: &str, base: usize, source_type: SourceType) -> ScriptScan {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, source, source_type).parse();
    let mut scanner = Scanner { source, base, scan: ScriptScan::default() };
    if let Some(error) = parsed.errors.first() {
        let offset =
            error.labels.as_ref().and_then(|labels| labels.first()).map(|label| label.offset()).unwrap_or(0);
        scanner.scan.syntax_error = Some((base + offset, error.message.to_string()));
        return scanner.scan;
    }
    scanner.visit_program(&parsed.program);
    scanner.scan
}

struct Scanner<'s> {
    source: &'s str,
    base: usize,
    scan: ScriptScan,
}

fn is_tag(expression: &Expression<'_>) -> bool {
    TAGS.iter().any(|tag| expression.get_inner_expression().is_specific_id(tag))
}

impl Scanner<'_> {
    /// Records `expression` when it is GraphQL, returning its index.
    fn graphql(&mut self, expression: &Expression<'_>) -> Option<usize> {
        match expression.get_inner_expression() {
            Expression::TaggedTemplateExpression(tagged) if is_tag(&tagged.tag) => {
                Some(self.template(&tagged.quasi))
            }
            Expression::CallExpression(call) => self.call(call),
            _ => None,
        }
    }

    fn call(&mut self, call: &CallExpression<'_>) -> Option<usize> {
        if !is_tag(&call.callee) || call.arguments.len() != 1 {
            return None;
        }
        match &call.arguments[0] {
            Argument::TemplateLiteral(template) => Some(self.template(template)),
            Argument::StringLiteral(literal) => {
                let origin = literal.span.start as usize + 1;
                let text = literal.value.to_string();
                let exact = self.source.get(origin..literal.span.end as usize - 1) == Some(text.as_str());
                Some(self.push(RawTemplate {
                    text,
                    origin: self.base + origin,
                    exact,
                    interpolations: Vec::new(),
                }))
            }
            _ => None,
        }
    }

    fn template(&mut self, template: &TemplateLiteral<'_>) -> usize {
        let start = template.span.start as usize + 1;
        let end = (template.span.end as usize).saturating_sub(1).max(start);
        let interpolations: Vec<Interpolation> = template
            .expressions
            .iter()
            .map(|expression| Interpolation {
                name: match expression.get_inner_expression() {
                    Expression::Identifier(id) => Some(id.name.to_string()),
                    _ => None,
                },
                offset: self.base + expression.span().start as usize,
            })
            .collect();
        let escaped = template.quasis.iter().any(|q| q.value.raw.contains('\\'));
        let raw = self.source.get(start..end);
        let template = match raw {
            Some(raw) if !escaped => {
                // Blank each `${…}` (between one quasi's end and the next one's start) byte for
                // byte, so offsets in the text are offsets in the file.
                let mut bytes = raw.as_bytes().to_vec();
                for pair in template.quasis.windows(2) {
                    let (from, to) = (pair[0].span.end as usize, pair[1].span.start as usize);
                    for b in bytes.iter_mut().take(to.saturating_sub(start)).skip(from.saturating_sub(start))
                    {
                        if *b != b'\n' {
                            *b = b' ';
                        }
                    }
                }
                // Only whole characters were blanked (every byte of each), so this is UTF-8.
                let text = String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                RawTemplate { text, origin: self.base + start, exact: true, interpolations }
            }
            _ => {
                let text = template
                    .quasis
                    .iter()
                    .map(|q| q.value.cooked.as_ref().map_or(q.value.raw.as_str(), |c| c.as_str()))
                    .collect::<Vec<_>>()
                    .join(" ");
                RawTemplate { text, origin: self.base + start, exact: false, interpolations }
            }
        };
        self.push(template)
    }

    fn push(&mut self, template: RawTemplate) -> usize {
        self.scan.templates.push(template);
        self.scan.templates.len() - 1
    }

    fn bind(&mut self, name: &str, index: usize) {
        self.scan.bindings.entry(name.to_owned()).or_insert(index);
    }
}

use oxc_span::GetSpan as _;

impl<'a> Visit<'a> for Scanner<'_> {
    fn visit_variable_declarator(&mut self, it: &VariableDeclarator<'a>) {
        if let (Some(init), BindingPattern::BindingIdentifier(id)) = (&it.init, &it.id)
            && let Some(index) = self.graphql(init)
        {
            self.bind(&id.name, index);
            return;
        }
        walk::walk_variable_declarator(self, it);
    }

    fn visit_tagged_template_expression(&mut self, it: &TaggedTemplateExpression<'a>) {
        if is_tag(&it.tag) {
            self.template(&it.quasi);
            return;
        }
        walk::walk_tagged_template_expression(self, it);
    }

    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        if self.call(it).is_none() {
            walk::walk_call_expression(self, it);
        }
    }

    fn visit_import_declaration(&mut self, it: &ImportDeclaration<'a>) {
        if it.import_kind == ImportOrExportKind::Type {
            return;
        }
        let module = it.source.value.to_string();
        for specifier in it.specifiers.iter().flatten() {
            let (local, name) = match specifier {
                ImportDeclarationSpecifier::ImportSpecifier(s) => {
                    if s.import_kind == ImportOrExportKind::Type {
                        continue;
                    }
                    (s.local.name.to_string(), s.imported.name().to_string())
                }
                ImportDeclarationSpecifier::ImportDefaultSpecifier(s) => {
                    (s.local.name.to_string(), "default".to_owned())
                }
                // `NS.X` is a member expression: not followed (reported where interpolated).
                ImportDeclarationSpecifier::ImportNamespaceSpecifier(_) => continue,
            };
            self.scan.imports.insert(local, Import { module: module.clone(), name });
        }
    }

    fn visit_export_named_declaration(&mut self, it: &ExportNamedDeclaration<'a>) {
        for specifier in &it.specifiers {
            let exported = specifier.exported.name().to_string();
            let local = specifier.local.name().to_string();
            match &it.source {
                Some(source) => {
                    self.scan
                        .reexports
                        .insert(exported, Import { module: source.value.to_string(), name: local });
                }
                None => {
                    self.scan.export_aliases.insert(exported, local);
                }
            }
        }
        walk::walk_export_named_declaration(self, it);
    }

    fn visit_export_default_declaration(&mut self, it: &ExportDefaultDeclaration<'a>) {
        if let Some(expression) = it.declaration.as_expression() {
            if let Some(index) = self.graphql(expression) {
                self.bind("default", index);
                return;
            }
            if let Expression::Identifier(id) = expression.get_inner_expression() {
                self.scan.export_aliases.insert("default".to_owned(), id.name.to_string());
            }
        }
        walk::walk_export_default_declaration(self, it);
    }

    fn visit_export_all_declaration(&mut self, it: &ExportAllDeclaration<'a>) {
        if it.exported.is_none() {
            self.scan.star_exports.push(it.source.value.to_string());
        }
    }
}
