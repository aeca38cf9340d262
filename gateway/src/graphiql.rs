//! GraphiQL, served by the gateway itself: the page on `GET /graphql` (for browsers), and
//! GraphiQL's and React's production bundles under `/graphql/assets/`, built into the binary
//! (`build.rs` fetches them from the npm registry, pinned by version and integrity), so it works
//! on a machine with no internet. Asset names carry their content hash: browsers keep them for a
//! year. The page's Content-Security-Policy names no origin but the gateway's own (unless
//! `server.graphiql_cdn` asks for a CDN, which it then adds).
//!
//! In `banyan dev` the page also opens with a seeded user's token (HTTP headers and the
//! WebSocket's `connection_init`) and one tab per contract operation, its variables filled from
//! the devstack's data where an argument's name says which value it wants.

use std::collections::BTreeMap;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::{Positioned, Value as GqlValue};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::app::AppState;

/// A file served under `/graphql/assets/`.
pub(crate) struct Asset {
    /// Its name in its npm package, or in `gateway/graphiql/` (`graphiql.min.js`).
    source: &'static str,
    /// The name it is served under, with its content hash (`graphiql.min.0123456789ab.js`).
    name: &'static str,
    body: &'static [u8],
    gzip: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/graphiql_assets.rs"));

/// Where the assets are served.
pub(crate) const ASSETS_PATH: &str = "/graphql/assets";

/// The versions of GraphiQL and React the page loads from a CDN, as built in.
fn version_of(package: &str) -> &'static str {
    PACKAGES.iter().find(|(name, _)| *name == package).map_or("latest", |(_, version)| version)
}

/// The served name of a built-in asset.
fn served(source: &str) -> &'static str {
    ASSETS.iter().find(|asset| asset.source == source).map_or("missing", |asset| asset.name)
}

/// What GraphiQL opens with (`banyan dev` fills it; `banyan serve` leaves it empty).
#[derive(Debug, Clone, Default)]
pub struct GraphiqlDefaults {
    /// An `Authorization` header value to pre-fill (a seeded user's token).
    pub authorization: Option<String>,
    /// Every response says which backend served each migrated field (`extensions.routing`),
    /// whether or not the request asks, so GraphiQL shows it.
    pub always_show_routing: bool,
    /// One tab per operation of the contract (`admin.contract`), so a developer can run what
    /// each component sends.
    pub contract_tabs: bool,
    /// Values for the contract tabs' variables, by the argument a variable is passed to
    /// (`template.id`, `templates.workspaceId`) or else by the variable's name.
    pub sample_arguments: BTreeMap<String, Value>,
}

/// A tab GraphiQL opens with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Tab {
    query: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variables: Option<String>,
}

/// The page and the header that goes with it.
#[derive(Debug, Clone)]
pub(crate) struct GraphiqlPage {
    html: std::sync::Arc<str>,
    content_security_policy: HeaderValue,
}

/// The settings the page's script reads.
#[derive(Serialize)]
struct PageSettings<'a> {
    endpoint: &'a str,
    headers: BTreeMap<&'a str, &'a str>,
    tabs: &'a [Tab],
}

impl GraphiqlPage {
    /// The page for `defaults`, its assets from the gateway or from `cdn` (an unpkg-style base
    /// URL; empty for the gateway).
    pub(crate) fn new(defaults: &GraphiqlDefaults, cdn: &str, tabs: &[Tab]) -> Self {
        let mut headers = BTreeMap::new();
        if let Some(authorization) = &defaults.authorization {
            headers.insert("Authorization", authorization.as_str());
        }
        let settings = PageSettings { endpoint: "/graphql", headers, tabs };
        let settings = script_safe_json(&settings);
        let cdn = cdn.trim_end_matches('/');
        let (origin, graphiql, react) = match cdn_origin(cdn) {
            Some(origin) => (
                Some(origin),
                format!("{cdn}/graphiql@{}", version_of("graphiql")),
                format!("{cdn}/react@{0}/umd/react.production.min.js", version_of("react")),
            ),
            None => (None, String::new(), String::new()),
        };
        let (css, react_js, react_dom_js, graphiql_js) = if origin.is_some() {
            (
                format!("{graphiql}/graphiql.min.css"),
                react,
                format!("{cdn}/react-dom@{}/umd/react-dom.production.min.js", version_of("react-dom")),
                format!("{graphiql}/graphiql.min.js"),
            )
        } else {
            let local = |source: &str| format!("{ASSETS_PATH}/{}", served(source));
            (
                local("graphiql.min.css"),
                local("react.production.min.js"),
                local("react-dom.production.min.js"),
                local("graphiql.min.js"),
            )
        };
        let own_css = format!("{ASSETS_PATH}/{}", served("banyan-graphiql.css"));
        let own_js = format!("{ASSETS_PATH}/{}", served("banyan-graphiql.js"));
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n\
             <meta charset=\"utf-8\">\n<meta name=\"robots\" content=\"noindex\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>Banyan · GraphiQL</title>\n\
             <link rel=\"stylesheet\" href=\"{css}\">\n<link rel=\"stylesheet\" href=\"{own_css}\">\n\
             </head>\n<body>\n<div id=\"graphiql\">Loading GraphiQL…</div>\n\
             <script id=\"banyan-graphiql-config\" type=\"application/json\">{settings}</script>\n\
             <script src=\"{react_js}\"></script>\n<script src=\"{react_dom_js}\"></script>\n\
             <script src=\"{graphiql_js}\"></script>\n<script src=\"{own_js}\"></script>\n\
             </body>\n</html>\n"
        );
        Self { html: html.into(), content_security_policy: content_security_policy(origin.as_deref()) }
    }
}

/// The page's policy: scripts, styles and connections from the gateway's own origin only (and
/// the CDN's, when one is configured). `connect-src 'self'` covers the WebSocket to the same
/// host. Fonts are inlined in GraphiQL's CSS as `data:` URLs. Element styles that React and
/// CodeMirror set from script are not restricted by `style-src`.
fn content_security_policy(cdn: Option<&str>) -> HeaderValue {
    let extra = cdn.map(|origin| format!(" {origin}")).unwrap_or_default();
    let policy = format!(
        "default-src 'none'; script-src 'self'{extra}; style-src 'self'{extra}; \
         img-src 'self' data:; font-src 'self' data:{extra}; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// The `scheme://host[:port]` of an http(s) URL, or `None`.
pub(crate) fn cdn_origin(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str().filter(|scheme| matches!(*scheme, "http" | "https"))?;
    let authority = uri.authority()?;
    Some(format!("{scheme}://{authority}"))
}

/// JSON that cannot end the `<script>` element it sits in: `<`, `>` and `&` are written as
/// `\u003c`, `\u003e`, `\u0026` (JSON allows them only inside strings, where the escapes mean
/// the same).
fn script_safe_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "{}".to_owned())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The page, with its policy; not cached (in `banyan dev` it holds a token).
pub(crate) fn page_response(page: &GraphiqlPage) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CONTENT_SECURITY_POLICY, page.content_security_policy.clone()),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        page.html.to_string(),
    )
        .into_response()
}

/// `GET /graphql/assets/{name}`: a built-in asset, gzipped when the browser accepts it; 404 for
/// any other name, and when GraphiQL is off.
pub(crate) async fn asset(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = app.graphiql.as_ref().and_then(|_| ASSETS.iter().find(|asset| asset.name == name))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let content_type = match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    };
    let mut response = if accepts_gzip(&headers) {
        let mut response = asset.gzip.into_response();
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        asset.body.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// Whether `Accept-Encoding` lists gzip with a non-zero weight.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let zero = parts.any(|param| {
                param.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !zero
        })
    })
}

/// One tab per operation of the contract at `dir` (its persisted-operations bodies, fragments
/// included), variables filled from `samples`. A contract that cannot be read gives no tabs (the
/// admin page already warns about it).
pub(crate) fn contract_tabs(dir: &std::path::Path, samples: &BTreeMap<String, Value>) -> Vec<Tab> {
    let Ok(contract) = banyan_schema::Contract::load(dir) else { return Vec::new() };
    let Ok(manifest) = banyan_schema::build_manifest(&contract) else { return Vec::new() };
    manifest
        .operations
        .into_iter()
        .map(|operation| {
            let variables = sample_variables(&operation.body, samples);
            Tab { query: operation.body, variables }
        })
        .collect()
}

/// The variables of `document`'s first operation that have no default, each given the sample
/// for the argument it is first passed to (`field.argument`) or else for its own name; `None`
/// when the operation has no such variable.
fn sample_variables(document: &str, samples: &BTreeMap<String, Value>) -> Option<String> {
    let document = async_graphql::parser::parse_query(document).ok()?;
    let operation = match &document.operations {
        DocumentOperations::Single(operation) => operation,
        DocumentOperations::Multiple(operations) => operations.values().next()?,
    };
    let mut uses = BTreeMap::new();
    argument_uses(&operation.node.selection_set, &document, &mut uses, 0);
    let mut variables = serde_json::Map::new();
    for definition in &operation.node.variable_definitions {
        if definition.node.default_value.is_some() {
            continue;
        }
        let name = definition.node.name.node.as_str();
        let by_argument = uses.get(name).and_then(|argument: &String| samples.get(argument));
        if let Some(value) = by_argument.or_else(|| samples.get(name)) {
            variables.insert(name.to_owned(), value.clone());
        }
    }
    (!operation.node.variable_definitions.is_empty())
        .then(|| serde_json::to_string_pretty(&variables).unwrap_or_else(|_| "{}".to_owned()))
}

/// Records, per variable, the first `field.argument` it is passed to (fragments followed, to a
/// bounded depth: the contract is validated, but this must not recurse forever on a cycle).
fn argument_uses(
    selection_set: &Positioned<SelectionSet>,
    document: &ExecutableDocument,
    uses: &mut BTreeMap<String, String>,
    depth: usize,
) {
    if depth > 32 {
        return;
    }
    for selection in &selection_set.node.items {
        match &selection.node {
            Selection::Field(field) => {
                for (argument, value) in &field.node.arguments {
                    let key = format!("{}.{}", field.node.name.node, argument.node);
                    // Visits every variable in the value, inside lists and input objects too.
                    let _ = value.node.clone().into_const_with(|variable| {
                        uses.entry(variable.to_string()).or_insert_with(|| key.clone());
                        Ok::<_, std::convert::Infallible>(GqlValue::Null)
                    });
                }
                argument_uses(&field.node.selection_set, document, uses, depth + 1);
            }
            Selection::InlineFragment(fragment) => {
                argument_uses(&fragment.node.selection_set, document, uses, depth + 1);
            }
            Selection::FragmentSpread(spread) => {
                let fragment: Option<&Positioned<FragmentDefinition>> =
                    document.fragments.get(&spread.node.fragment_name.node);
                if let Some(fragment) = fragment {
                    argument_uses(&fragment.node.selection_set, document, uses, depth + 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_element_cannot_be_closed_from_the_settings() {
        let json = script_safe_json(&serde_json::json!({ "a": "</script><script>alert(1)</script>&" }));
        assert!(!json.contains('<') && !json.contains('>') && !json.contains('&'), "{json}");
        let back: Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back["a"], "</script><script>alert(1)</script>&");
    }

    #[test]
    fn variables_take_the_sample_of_the_argument_they_are_passed_to() {
        let samples = BTreeMap::from([
            ("template.id".to_owned(), Value::from("VGVtcGxhdGU6MQ==")),
            ("workspace.id".to_owned(), Value::from("V29ya3NwYWNlOjE=")),
            ("window".to_owned(), Value::from("LAST_7_DAYS")),
        ]);
        let document = "query Q($id: ID!, $w: ID!, $window: StatsWindow!, $first: Int = 5) {
            template(id: $id) { ...F }
            workspace(id: $w) { id }
        }
        fragment F on Template { stats(window: $window) { sent } }";
        let variables: Value =
            serde_json::from_str(&sample_variables(document, &samples).expect("variables")).expect("JSON");
        assert_eq!(
            variables,
            serde_json::json!({ "id": "VGVtcGxhdGU6MQ==", "w": "V29ya3NwYWNlOjE=", "window": "LAST_7_DAYS" })
        );
        assert_eq!(sample_variables("query { me { id } }", &samples), None);
    }

    #[test]
    fn the_contract_gives_one_tab_per_operation_with_its_fragments() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend-contract");
        // Counted from the files' text: each operation is a line opening with its keyword.
        let mut names = Vec::new();
        for component in std::fs::read_dir(&dir).expect("the contract").flatten() {
            for file in std::fs::read_dir(component.path()).into_iter().flatten().flatten() {
                let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                for line in text.lines() {
                    let mut words = line.split([' ', '(', '{']);
                    if let (Some("query" | "mutation" | "subscription"), Some(name)) =
                        (words.next(), words.next())
                    {
                        names.push(name.to_owned());
                    }
                }
            }
        }
        names.sort();
        let tabs = contract_tabs(&dir, &BTreeMap::new());
        let mut titles: Vec<String> = tabs
            .iter()
            .filter_map(|tab| tab.query.split([' ', '(', '{']).nth(1).map(str::to_owned))
            .collect();
        titles.sort();
        assert!(!names.is_empty());
        assert_eq!(titles, names);
        let editor =
            tabs.iter().find(|tab| tab.query.contains("query TemplateEditor")).expect("TemplateEditor");
        assert!(editor.query.contains("fragment DraftContent on Draft"), "{}", editor.query);
        assert_eq!(contract_tabs(std::path::Path::new("/nonexistent"), &BTreeMap::new()), Vec::new());
    }

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).expect("a header"));
            accepts_gzip(&headers)
        };
        assert!(accepts("gzip, deflate, br"));
        assert!(accepts("br;q=1.0, gzip;q=0.8"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn only_http_urls_are_cdns() {
        assert_eq!(cdn_origin("https://unpkg.com").as_deref(), Some("https://unpkg.com"));
        assert_eq!(
            cdn_origin("http://mirror.internal:8080/npm/").as_deref(),
            Some("http://mirror.internal:8080")
        );
        assert_eq!(cdn_origin("unpkg.com"), None);
        assert_eq!(cdn_origin("javascript:alert(1)"), None);
        assert_eq!(cdn_origin(""), None);
    }
}
