//! The per-request decision: which backend serves a field for this request, and whether the
//! other one is called beside it.
//!
//! Decisions use only the table snapshot and the request's own attributes, hashed with the
//! fixed [`crate::hash`], so every replica decides the same way with no shared state.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::declaration::{Backend, FieldKey};
use crate::hash::{bucket, share_to_buckets};
use crate::table::{Mode, Route, RoutingTable, StickyKey};

/// What a decision may know about the request.
pub trait Subject {
    /// The signed-in user's id, if any.
    fn user_id(&self) -> Option<&str>;
    /// A unique id of the request (or WebSocket operation): shadow sampling draws from it.
    fn request_id(&self) -> &str;
    /// A request header's value, by lowercase name (for `sticky = "header:<name>"`).
    fn header(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// A plain [`Subject`].
#[derive(Debug, Clone, Default)]
pub struct RequestSubject {
    /// The signed-in user's id.
    pub user_id: Option<String>,
    /// The request's id.
    pub request_id: String,
    /// Headers a sticky key may name, lowercase name first.
    pub headers: Vec<(String, String)>,
}

impl Subject for RequestSubject {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn request_id(&self) -> &str {
        &self.request_id
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why the serving backend was chosen (shown in responses' `extensions` and in metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// Mode `legacy` or `service`.
    Fixed,
    /// Mode `canary`: the user's bucket.
    Canary,
    /// Mode `shadow`: the primary.
    Shadow,
    /// A per-request override (developer header).
    Forced,
}

/// Why a second call is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowPurpose {
    /// Call the other backend and compare (A/B).
    Compare,
    /// Call the primary again and learn which paths differ by themselves (A/A).
    Calibrate,
}

/// A second call to make beside the serving one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShadowPlan {
    /// The backend to call.
    pub call: Backend,
    /// Compare or calibrate.
    pub purpose: ShadowPurpose,
    /// How long it may take.
    pub deadline: Duration,
    /// Most such calls of this field at once.
    pub max_in_flight: usize,
}

/// What one request does for one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The field.
    pub key: FieldKey,
    /// The backend whose answer the client gets.
    pub serve: Backend,
    /// Why.
    pub decided_by: DecidedBy,
    /// A second call to make beside it, if any.
    pub shadow: Option<ShadowPlan>,
}

impl RoutingTable {
    /// Decides `key` for the request `subject`.
    pub fn decide(&self, key: FieldKey, subject: &dyn Subject) -> Decision {
        match self.route(key) {
            Some(route) => decide_route(route, subject),
            // A key of another catalog: the table cannot say; the monolith is the safe answer.
            None => Decision { key, serve: Backend::Legacy, decided_by: DecidedBy::Fixed, shadow: None },
        }
    }

    /// Decides `key`, honouring a per-request override first.
    pub fn decide_with(&self, key: FieldKey, subject: &dyn Subject, overrides: &Overrides) -> Decision {
        match overrides.0.get(&key) {
            Some(backend) => Decision { key, serve: *backend, decided_by: DecidedBy::Forced, shadow: None },
            None => self.decide(key, subject),
        }
    }
}

fn decide_route(route: &Route, subject: &dyn Subject) -> Decision {
    let key = route.key;
    let fixed = |serve| Decision { key, serve, decided_by: DecidedBy::Fixed, shadow: None };
    match &route.mode {
        Mode::Legacy => fixed(Backend::Legacy),
        Mode::Service => fixed(Backend::Service),
        Mode::Canary { percent, sticky } => {
            let value = match sticky {
                StickyKey::User => subject.user_id(),
                StickyKey::Header(name) => subject.header(name),
            };
            // No sticky value (an anonymous caller): the monolith, which every caller had before.
            let serve = match value {
                Some(value) if canary_bucket(key, value) < Route::canary_buckets(*percent) => {
                    Backend::Service
                }
                _ => Backend::Legacy,
            };
            Decision { key, serve, decided_by: DecidedBy::Canary, shadow: None }
        }
        Mode::Shadow(settings) => {
            let request = subject.request_id();
            let plan = |call, purpose| ShadowPlan {
                call,
                purpose,
                deadline: settings.secondary_deadline,
                max_in_flight: settings.max_in_flight,
            };
            let shadow = if draw("calibrate", key, request) < share_to_buckets(settings.calibration_rate) {
                Some(plan(settings.primary, ShadowPurpose::Calibrate))
            } else if draw("shadow", key, request) < share_to_buckets(settings.sample_rate) {
                Some(plan(settings.primary.other(), ShadowPurpose::Compare))
            } else {
                None
            };
            Decision { key, serve: settings.primary, decided_by: DecidedBy::Shadow, shadow }
        }
    }
}

/// The canary bucket (`0..10_000`) of a sticky value for `key`. Salting with the key gives each
/// field its own cohort, so the same users are not first on every migration.
pub fn canary_bucket(key: FieldKey, sticky_value: &str) -> u32 {
    bucket(&format!("canary:{key}"), sticky_value)
}

fn draw(purpose: &str, key: FieldKey, request_id: &str) -> u32 {
    bucket(&format!("{purpose}:{key}"), request_id)
}

/// Per-request routes forced by a developer header: `Template.stats=legacy, Template.draft=service`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides(BTreeMap<FieldKey, Backend>);

/// An override header that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// An item is not `key=backend`.
    #[error("{0:?} is not `Type.field=legacy|service`")]
    Malformed(String),
    /// The key is not declared.
    #[error("`{0}` is not a migrated field")]
    UnknownKey(String),
    /// The backend is neither `legacy` nor `service`.
    #[error("{0:?} is not \"legacy\" or \"service\"")]
    UnknownBackend(String),
}

impl Overrides {
    /// No override.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma-separated list of `key=backend`.
    pub fn parse(text: &str, catalog: &Catalog) -> Result<Self, OverrideError> {
        let mut map = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (key, backend) =
                item.split_once('=').ok_or_else(|| OverrideError::Malformed(item.to_owned()))?;
            let (key, backend) = (key.trim(), backend.trim());
            let key = catalog.key(key).ok_or_else(|| OverrideError::UnknownKey(key.to_owned()))?;
            let backend =
                Backend::parse(backend).ok_or_else(|| OverrideError::UnknownBackend(backend.to_owned()))?;
            map.insert(key, backend);
        }
        Ok(Self(map))
    }

    /// The forced backend of `key`, if any.
    pub fn get(&self, key: FieldKey) -> Option<Backend> {
        self.0.get(&key).copied()
    }

    /// Whether nothing is forced.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
