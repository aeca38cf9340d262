//! Migrated fields: fields whose data can come from the monolith (legacy) or from a service, and
//! the table that says which one serves each field.
//!
//! Each migrated field has a stable key (`Template.stats`), a legacy implementation and a service
//! implementation returning the same domain type, and a declaration of the monolith endpoint and
//! the gRPC method each uses. Resolvers ask [`RoutingTable::route`] which one to call.

use std::collections::BTreeMap;

/// Which implementation serves a migrated field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// The monolith's endpoint.
    Legacy,
    /// The gRPC service's method.
    Service,
}

/// A field that can be served by the monolith or by a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MigratedField {
    /// `Template.stats`: event counts of a template.
    TemplateStats,
    /// `Template.draft`: the working copy of a template's content.
    TemplateDraft,
}

/// Where each implementation of a migrated field gets its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDeclaration {
    /// The field.
    pub field: MigratedField,
    /// The monolith endpoint the legacy implementation calls.
    pub legacy_endpoint: &'static str,
    /// The gRPC method the service implementation calls.
    pub service_method: &'static str,
}

impl MigratedField {
    /// Every migrated field.
    pub const ALL: [MigratedField; 2] = [Self::TemplateStats, Self::TemplateDraft];

    /// The field's stable key, `Type.field`.
    pub fn key(self) -> &'static str {
        match self {
            Self::TemplateStats => "Template.stats",
            Self::TemplateDraft => "Template.draft",
        }
    }

    /// The field whose key is `key`.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.key() == key)
    }

    /// Which endpoint and method each implementation uses.
    pub fn declaration(self) -> FieldDeclaration {
        match self {
            Self::TemplateStats => FieldDeclaration {
                field: self,
                legacy_endpoint: "GET /api/v1/templates/{id}/analytics/",
                service_method: "banyan.events.v1.EventService/GetTemplateStats",
            },
            Self::TemplateDraft => FieldDeclaration {
                field: self,
                legacy_endpoint: "GET /api/v1/templates/{id}/draft/",
                service_method: "banyan.drafts.v1.DraftService/BatchGetDrafts",
            },
        }
    }
}

/// The route of every migrated field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTable {
    routes: BTreeMap<MigratedField, Route>,
}

impl Default for RoutingTable {
    /// Every migrated field served by its service.
    fn default() -> Self {
        Self { routes: MigratedField::ALL.into_iter().map(|f| (f, Route::Service)).collect() }
    }
}

impl RoutingTable {
    /// A table with `route` for `field`, the rest unchanged.
    pub fn with(mut self, field: MigratedField, route: Route) -> Self {
        self.routes.insert(field, route);
        self
    }

    /// Which implementation serves `field`.
    pub fn route(&self, field: MigratedField) -> Route {
        self.routes.get(&field).copied().unwrap_or(Route::Service)
    }
}
