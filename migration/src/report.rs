//! The retirement report: what is left before each monolith endpoint, and in the end the
//! monolith, can go. It joins the declarations, the table in force, shadow evidence and the
//! contract (which operations of which components select which schema coordinates).
//!
//! The contract is given as coordinates (`Template.stats`, `Query.me`) per operation; reading
//! `.graphql` files into that is the schema crate's job, so this crate stays GraphQL-free.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::declaration::{Backend, Batching, FieldDeclaration};
use crate::evidence::{ContractIndex, KeyEvidence};
use crate::recorder::RecorderSnapshot;
use crate::table::{DEFAULT_MAX_MISMATCH_RATE, DEFAULT_MIN_COMPARED, EvidenceRequirement, RoutingTable};

/// The coordinate the gateway's own calls are declared under; every component needs them.
pub const GATEWAY_PREFIX: &str = "gateway:";

/// Which schema coordinates each operation of each component selects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContractUsage {
    components: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl ContractUsage {
    /// No component.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `operation` of `component` selects `coordinate` (`Type.field`).
    pub fn add(&mut self, component: &str, operation: &str, coordinate: &str) {
        self.components
            .entry(component.to_owned())
            .or_default()
            .entry(operation.to_owned())
            .or_default()
            .insert(coordinate.to_owned());
    }

    /// Which operations select each declared field, for evidence.
    pub fn contract_index(&self) -> ContractIndex {
        let mut index = ContractIndex::empty();
        for operations in self.components.values() {
            for (operation, coordinates) in operations {
                for coordinate in coordinates {
                    index.add(coordinate, operation);
                }
            }
        }
        index
    }

    fn components_selecting(&self, coordinate: &str) -> BTreeSet<String> {
        if coordinate.starts_with(GATEWAY_PREFIX) {
            return self.components.keys().cloned().collect();
        }
        self.components
            .iter()
            .filter(|(_, operations)| operations.values().any(|coordinates| coordinates.contains(coordinate)))
            .map(|(component, _)| component.clone())
            .collect()
    }
}

/// A migrated field as one component sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldShare {
    /// The field.
    pub key: String,
    /// Its mode.
    pub mode: &'static str,
    /// Share of users the service answers, 0 to 1.
    pub service_share: f64,
}

/// One component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentReport {
    /// Its name (`TemplateList`).
    pub component: String,
    /// Its operations.
    pub operations: Vec<String>,
    /// The migrated fields its operations select.
    pub migrated_fields: Vec<FieldShare>,
    /// The mean service share of those fields; `None` when it selects none.
    pub service_share: Option<f64>,
    /// The monolith endpoints it still needs, through any field.
    pub monolith_endpoints: Vec<String>,
}

/// Something that needs a monolith endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Need {
    /// The migrated field's key or the resolver's coordinate.
    pub by: String,
    /// The migrated field's mode; `None` for a resolver that is not migrated.
    pub mode: Option<&'static str>,
    /// The components that reach the endpoint through it.
    pub components: Vec<String>,
}

/// One monolith endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointReport {
    /// `GET /api/v1/templates/{id}/analytics/`.
    pub endpoint: String,
    /// What still needs it; empty when it is retirable.
    pub needed_by: Vec<Need>,
}

/// How far a field is from being served by its service alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Readiness {
    /// The service already serves every user.
    OnService,
    /// The evidence meets the requirement: it can flip.
    Ready,
    /// The evidence falls short.
    NotReady {
        /// Why.
        shortfalls: Vec<String>,
    },
}

/// One migrated field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldReport {
    /// The field.
    pub key: String,
    /// Whether it writes.
    pub write: bool,
    /// Its mode.
    pub mode: &'static str,
    /// Share of users the service answers.
    pub service_share: f64,
    /// Whether the monolith side batches (the report says when it cannot).
    pub legacy_batching: Batching,
    /// Whether the service side batches.
    pub service_batching: Batching,
    /// The requirement readiness is judged by: the table's, or the defaults.
    pub requirement: EvidenceRequirement,
    /// The evidence.
    pub evidence: KeyEvidence,
    /// The verdict.
    pub readiness: Readiness,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Per component.
    pub components: Vec<ComponentReport>,
    /// Per monolith endpoint, every one declared anywhere.
    pub endpoints: Vec<EndpointReport>,
    /// Endpoints nothing needs any more.
    pub retirable: Vec<String>,
    /// Per migrated field.
    pub fields: Vec<FieldReport>,
}

impl Report {
    /// Builds the report.
    pub fn build(
        catalog: &Catalog,
        table: &RoutingTable,
        results: &RecorderSnapshot,
        usage: &ContractUsage,
    ) -> Self {
        let contract = usage.contract_index();
        let mut needs: BTreeMap<&'static str, Vec<Need>> = BTreeMap::new();
        let mut declared: BTreeSet<&'static str> = BTreeSet::new();
        for field in catalog.fields() {
            let Some(route) = catalog.key(field.key).and_then(|key| table.route(key)) else { continue };
            let called = route.backends_called();
            for backend in [Backend::Legacy, Backend::Service] {
                for call in field.implementation(backend).calls.iter().filter(|c| c.is_monolith()) {
                    declared.insert(call.name);
                    if called.contains(&backend) {
                        push_need(&mut needs, call.name, field.key, Some(route.mode_name()), usage);
                    }
                }
            }
        }
        for dependency in catalog.dependencies() {
            for call in dependency.calls.iter().filter(|c| c.is_monolith()) {
                declared.insert(call.name);
                push_need(&mut needs, call.name, dependency.coordinate, None, usage);
            }
        }
        let endpoints: Vec<EndpointReport> = declared
            .iter()
            .map(|endpoint| EndpointReport {
                endpoint: (*endpoint).to_owned(),
                needed_by: needs.remove(endpoint).unwrap_or_default(),
            })
            .collect();
        let retirable =
            endpoints.iter().filter(|e| e.needed_by.is_empty()).map(|e| e.endpoint.clone()).collect();

        let components = usage
            .components
            .iter()
            .map(|(component, operations)| {
                let coordinates: BTreeSet<&str> = operations.values().flatten().map(String::as_str).collect();
                let migrated_fields: Vec<FieldShare> = catalog
                    .fields()
                    .filter(|field| coordinates.contains(field.key))
                    .filter_map(|field| {
                        let route = catalog.key(field.key).and_then(|key| table.route(key))?;
                        Some(FieldShare {
                            key: field.key.to_owned(),
                            mode: route.mode_name(),
                            service_share: route.service_share(),
                        })
                    })
                    .collect();
                let service_share = (!migrated_fields.is_empty()).then(|| {
                    migrated_fields.iter().map(|f| f.service_share).sum::<f64>()
                        / migrated_fields.len() as f64
                });
                let monolith_endpoints = endpoints
                    .iter()
                    .filter(|e| e.needed_by.iter().any(|need| need.components.contains(component)))
                    .map(|e| e.endpoint.clone())
                    .collect();
                ComponentReport {
                    component: component.clone(),
                    operations: operations.keys().cloned().collect(),
                    migrated_fields,
                    service_share,
                    monolith_endpoints,
                }
            })
            .collect();

        let fields = catalog
            .fields()
            .filter_map(|field| field_report(catalog, table, results, &contract, field))
            .collect();
        Self { components, endpoints, retirable, fields }
    }

    /// The report as plain text, for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Components");
        for c in &self.components {
            let share = c
                .service_share
                .map_or("no migrated field".to_owned(), |s| format!("{} served by services", percent(s)));
            let _ = writeln!(out, "  {}: {share}", c.component);
            for f in &c.migrated_fields {
                let _ = writeln!(out, "    {} ({}, {} service)", f.key, f.mode, percent(f.service_share));
            }
            let _ = writeln!(out, "    monolith endpoints still needed: {}", c.monolith_endpoints.len());
        }
        let _ = writeln!(out, "\nMonolith endpoints");
        for e in &self.endpoints {
            if e.needed_by.is_empty() {
                let _ = writeln!(out, "  {}: retirable", e.endpoint);
                continue;
            }
            let _ = writeln!(out, "  {}", e.endpoint);
            for need in &e.needed_by {
                let mode = need.mode.map_or(String::new(), |m| format!(" [{m}]"));
                let _ = writeln!(out, "    needed by {}{mode}, for {}", need.by, list(&need.components));
            }
        }
        let _ = writeln!(out, "\nRetirable endpoints: {}", list(&self.retirable));
        let _ = writeln!(out, "\nFields");
        for f in &self.fields {
            let _ = writeln!(
                out,
                "  {} ({}, {} service): {}",
                f.key,
                f.mode,
                percent(f.service_share),
                verdict(&f.readiness)
            );
            let _ = writeln!(
                out,
                "    {} compared, mismatch rate {}; legacy {}, service {}",
                f.evidence.compared,
                f.evidence.mismatch_rate.map_or("n/a".to_owned(), |r| format!("{r:.4}")),
                batching(f.legacy_batching),
                batching(f.service_batching)
            );
        }
        out
    }

    /// The report as Markdown, for a pull request or a wiki.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "## Components\n\n| component | migrated fields | served by services | monolith endpoints still needed |\n| --- | --- | --- | --- |\n",
        );
        for c in &self.components {
            let fields: Vec<String> =
                c.migrated_fields.iter().map(|f| format!("`{}` ({})", f.key, f.mode)).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                c.component,
                if fields.is_empty() { "–".to_owned() } else { fields.join(", ") },
                c.service_share.map_or("–".to_owned(), percent),
                c.monolith_endpoints.len()
            );
        }
        out.push_str(
            "\n## Monolith endpoints\n\n| endpoint | needed by | components |\n| --- | --- | --- |\n",
        );
        for e in &self.endpoints {
            if e.needed_by.is_empty() {
                let _ = writeln!(out, "| `{}` | **retirable** | |", e.endpoint);
            }
            for need in &e.needed_by {
                let mode = need.mode.map_or(String::new(), |m| format!(" ({m})"));
                let _ = writeln!(
                    out,
                    "| `{}` | `{}`{mode} | {} |",
                    e.endpoint,
                    need.by,
                    need.components.join(", ")
                );
            }
        }
        out.push_str("\n## Fields\n\n| field | mode | service share | compared | mismatch rate | legacy | service | readiness |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
        for f in &self.fields {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
                f.key,
                f.mode,
                percent(f.service_share),
                f.evidence.compared,
                f.evidence.mismatch_rate.map_or("–".to_owned(), |r| format!("{r:.4}")),
                batching(f.legacy_batching),
                batching(f.service_batching),
                verdict(&f.readiness)
            );
        }
        out
    }
}

fn push_need(
    needs: &mut BTreeMap<&'static str, Vec<Need>>,
    endpoint: &'static str,
    by: &str,
    mode: Option<&'static str>,
    usage: &ContractUsage,
) {
    let list = needs.entry(endpoint).or_default();
    if !list.iter().any(|need| need.by == by) {
        list.push(Need {
            by: by.to_owned(),
            mode,
            components: usage.components_selecting(by).into_iter().collect(),
        });
    }
}

fn field_report(
    catalog: &Catalog,
    table: &RoutingTable,
    results: &RecorderSnapshot,
    contract: &ContractIndex,
    field: &'static FieldDeclaration,
) -> Option<FieldReport> {
    let key = catalog.key(field.key)?;
    let route = table.route(key)?;
    let requirement = route.require_evidence.unwrap_or(EvidenceRequirement {
        min_compared: DEFAULT_MIN_COMPARED,
        max_mismatch_rate: DEFAULT_MAX_MISMATCH_RATE,
        all_contract_operations: true,
    });
    let evidence = KeyEvidence::gather(key, results, contract);
    let readiness = if route.service_share() >= 1.0 {
        Readiness::OnService
    } else {
        let shortfalls = evidence.shortfalls(&requirement);
        if shortfalls.is_empty() { Readiness::Ready } else { Readiness::NotReady { shortfalls } }
    };
    Some(FieldReport {
        key: field.key.to_owned(),
        write: field.is_write(),
        mode: route.mode_name(),
        service_share: route.service_share(),
        legacy_batching: field.legacy.batching,
        service_batching: field.service.batching,
        requirement,
        evidence,
        readiness,
    })
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}

fn batching(batching: Batching) -> &'static str {
    match batching {
        Batching::Batched => "batches",
        Batching::OneAtATime => "one call per key",
    }
}

fn verdict(readiness: &Readiness) -> String {
    match readiness {
        Readiness::OnService => "on service".to_owned(),
        Readiness::Ready => "ready to flip".to_owned(),
        Readiness::NotReady { shortfalls } => format!("not ready: {}", shortfalls.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> ContractUsage {
        let mut usage = ContractUsage::new();
        for (component, operation, coordinates) in [
            (
                "TemplateList",
                "TemplateList",
                &["Query.templates", "Template.createdBy", "Template.stats"][..],
            ),
            (
                "AnalyticsDashboard",
                "AnalyticsDashboard",
                &["Query.template", "Template.stats", "Template.recentEvents"],
            ),
            ("TemplateEditor", "TemplateEditor", &["Query.template", "Template.draft", "Draft.updatedBy"]),
            ("TemplateEditor", "UpdateDraftBlock", &["Mutation.updateDraftBlock", "Draft.updatedBy"]),
            ("UserMenu", "UserMenu", &["Query.me"]),
        ] {
            for coordinate in coordinates {
                usage.add(component, operation, coordinate);
            }
        }
        usage
    }

    fn build(table: &str) -> Report {
        let catalog = Catalog::banyan().unwrap_or_else(|e| panic!("{e}"));
        let table = RoutingTable::parse(table, "t", &catalog).unwrap_or_else(|e| panic!("{e}"));
        Report::build(&catalog, &table, &RecorderSnapshot::default(), &usage())
    }

    const MIXED: &str = "[fields.\"Template.stats\"]\nmode = \"canary\"\npercent = 20\n\
        [fields.\"Template.draft\"]\nmode = \"legacy\"\n\
        [fields.\"Mutation.updateDraftBlock\"]\nmode = \"legacy\"\n\
        [fields.\"Mutation.insertDraftBlock\"]\nmode = \"legacy\"\n\
        [fields.\"Mutation.deleteDraftBlock\"]\nmode = \"legacy\"\n";

    #[test]
    fn endpoints_are_needed_by_the_fields_routed_to_them_and_the_rest_are_retirable() {
        let report = build(MIXED);
        assert_eq!(report.retirable, ["GET /api/v1/templates/{id}/events/"]);
        let needs = |endpoint: &str| -> Vec<(String, Option<&'static str>, Vec<String>)> {
            report
                .endpoints
                .iter()
                .find(|e| e.endpoint == endpoint)
                .map(|e| e.needed_by.iter().map(|n| (n.by.clone(), n.mode, n.components.clone())).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            needs("GET /api/v1/templates/{id}/analytics/"),
            [(
                "Template.stats".to_owned(),
                Some("canary"),
                vec!["AnalyticsDashboard".to_owned(), "TemplateList".to_owned()]
            )]
        );
        assert_eq!(
            needs("GET /api/v1/templates/{id}/draft/"),
            [
                ("Template.draft".to_owned(), Some("legacy"), vec!["TemplateEditor".to_owned()]),
                ("Mutation.updateDraftBlock".to_owned(), Some("legacy"), vec!["TemplateEditor".to_owned()]),
                ("Mutation.insertDraftBlock".to_owned(), Some("legacy"), vec![]),
                ("Mutation.deleteDraftBlock".to_owned(), Some("legacy"), vec![]),
            ]
        );
        // The identity check needs `me` for every component.
        let me = needs("GET /api/v1/me/");
        assert_eq!(me[0].0, "gateway:identity");
        assert_eq!(me[0].2.len(), 4);
        // Every declared monolith endpoint is listed once: 12 of them.
        assert_eq!(report.endpoints.len(), 12);
    }

    #[test]
    fn with_every_field_on_its_service_the_legacy_views_are_retirable_but_permissions_are_not() {
        let report = build("");
        assert_eq!(
            report.retirable,
            [
                "DELETE /api/v1/templates/{id}/draft/blocks/{block_id}/",
                "GET /api/v1/templates/{id}/analytics/",
                "GET /api/v1/templates/{id}/draft/",
                "GET /api/v1/templates/{id}/events/",
                "PATCH /api/v1/templates/{id}/draft/blocks/{block_id}/",
                "POST /api/v1/templates/{id}/draft/blocks/",
            ]
        );
        let templates = report.endpoints.iter().find(|e| e.endpoint == "GET /api/v1/templates/");
        let by: Vec<&str> =
            templates.map(|e| e.needed_by.iter().map(|n| n.by.as_str()).collect()).unwrap_or_default();
        assert!(
            by.contains(&"Mutation.updateDraftBlock"),
            "the service side still asks the monolith: {by:?}"
        );
    }

    #[test]
    fn components_show_their_share_and_fields_their_readiness() {
        let report = build(MIXED);
        let list = report
            .components
            .iter()
            .find(|c| c.component == "TemplateList")
            .unwrap_or_else(|| panic!("listed"));
        assert_eq!(
            list.migrated_fields,
            [FieldShare { key: "Template.stats".into(), mode: "canary", service_share: 0.2 }]
        );
        assert_eq!(list.service_share, Some(0.2));
        assert_eq!(
            list.monolith_endpoints,
            [
                "GET /api/v1/me/",
                "GET /api/v1/templates/",
                "GET /api/v1/templates/{id}/analytics/",
                "GET /api/v1/users/"
            ]
        );
        let editor = report
            .components
            .iter()
            .find(|c| c.component == "TemplateEditor")
            .unwrap_or_else(|| panic!("listed"));
        assert_eq!(editor.service_share, Some(0.0));
        let dashboard = report
            .components
            .iter()
            .find(|c| c.component == "AnalyticsDashboard")
            .unwrap_or_else(|| panic!("listed"));
        // (20% + 100%) / 2
        assert_eq!(dashboard.service_share, Some(0.6));
        let menu =
            report.components.iter().find(|c| c.component == "UserMenu").unwrap_or_else(|| panic!("listed"));
        assert_eq!(menu.service_share, None);

        let stats =
            report.fields.iter().find(|f| f.key == "Template.stats").unwrap_or_else(|| panic!("listed"));
        assert_eq!(
            stats.readiness,
            Readiness::NotReady {
                shortfalls: vec![
                    "0 calls compared, 1000 required".into(),
                    "contract operation AnalyticsDashboard not yet compared".into(),
                    "contract operation TemplateList not yet compared".into(),
                ]
            }
        );
        assert_eq!(stats.legacy_batching, Batching::OneAtATime);
        let events = report
            .fields
            .iter()
            .find(|f| f.key == "Template.recentEvents")
            .unwrap_or_else(|| panic!("listed"));
        assert_eq!(events.readiness, Readiness::OnService);

        let text = report.to_text();
        assert!(
            text.contains(
                "  TemplateList: 20% served by services\n    Template.stats (canary, 20% service)\n"
            ),
            "{text}"
        );
        assert!(text.contains("Retirable endpoints: GET /api/v1/templates/{id}/events/\n"), "{text}");
        assert!(text.contains("legacy one call per key, service batches"), "{text}");
        let markdown = report.to_markdown();
        assert!(
            markdown.contains("| `GET /api/v1/templates/{id}/events/` | **retirable** | |"),
            "{markdown}"
        );
        assert!(markdown.contains("| TemplateList | `Template.stats` (canary) | 20% | 4 |"), "{markdown}");
        assert!(serde_json::to_value(&report).is_ok());
    }
}
