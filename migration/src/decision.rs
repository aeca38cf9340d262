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
use crate::hash::{bucket_of, share_to_buckets};
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

/// The canary bucket (`0..10_000`) of a sticky value for `key`: the stable hash of
/// `["canary", key, value]`. Salting with the key gives each field its own cohort, so the same
/// users are not first on every migration.
pub fn canary_bucket(key: FieldKey, sticky_value: &str) -> u32 {
    bucket_of(&["canary", key.as_str(), sticky_value])
}

fn draw(purpose: &str, key: FieldKey, request_id: &str) -> u32 {
    bucket_of(&[purpose, key.as_str(), request_id])
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

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::banyan().unwrap_or_else(|e| panic!("{e}"))
    }

    fn table(catalog: &Catalog, text: &str) -> RoutingTable {
        RoutingTable::parse(text, "t", catalog).unwrap_or_else(|e| panic!("{e}"))
    }

    fn user(id: u32) -> RequestSubject {
        RequestSubject {
            user_id: Some(format!("user-{id}")),
            request_id: format!("req-{id}"),
            headers: Vec::new(),
        }
    }

    fn canary(percent: u32) -> String {
        format!("[fields.\"Template.stats\"]\nmode = \"canary\"\npercent = {percent}\n")
    }

    fn on_service(table: &RoutingTable, key: FieldKey) -> Vec<u32> {
        (0..10_000).filter(|id| table.decide(key, &user(*id)).serve == Backend::Service).collect()
    }

    #[test]
    fn canary_share_is_the_percent_over_10_000_users_and_sticky() {
        let catalog = catalog();
        let stats = catalog.key("Template.stats").unwrap_or_else(|| panic!("declared"));
        let at_20 = table(&catalog, &canary(20));
        let chosen = on_service(&at_20, stats);
        // 20% ± 2% of 10,000 users; exactly 1,962 by a separate Python transcription of the
        // hash, whose first five are users 7, 14, 16, 19 and 21.
        assert!((1_800..=2_200).contains(&chosen.len()), "{} users on the service", chosen.len());
        assert_eq!(chosen.len(), 1_962);
        assert_eq!(chosen[..5], [7, 14, 16, 19, 21]);
        for id in 0..10_000 {
            let decision = at_20.decide(stats, &user(id));
            assert_eq!(decision.decided_by, DecidedBy::Canary);
            assert_eq!(decision.shadow, None);
        }
        // Sticky: the same users again, and from a table parsed separately (another replica).
        assert_eq!(on_service(&at_20, stats), chosen);
        assert_eq!(on_service(&table(&catalog, &canary(20)), stats), chosen);
        // A request id does not move a user.
        let mut other_request = user(chosen[0]);
        other_request.request_id = "another".into();
        assert_eq!(at_20.decide(stats, &other_request).serve, Backend::Service);

        // Raising the percent keeps everyone already on the service there.
        let at_50 = on_service(&table(&catalog, &canary(50)), stats);
        assert!((4_800..=5_200).contains(&at_50.len()), "{}", at_50.len());
        assert_eq!(at_50.len(), 5_071, "the Python transcription's count");
        assert!(chosen.iter().all(|id| at_50.contains(id)));
        assert!(on_service(&table(&catalog, &canary(0)), stats).is_empty());
        assert_eq!(on_service(&table(&catalog, &canary(100)), stats).len(), 10_000);
    }

    #[test]
    fn each_field_draws_its_own_cohort() {
        let catalog = catalog();
        let text = format!("{}[fields.\"Template.draft\"]\nmode = \"canary\"\npercent = 20\n", canary(20));
        let both = table(&catalog, &text);
        let stats = on_service(&both, catalog.key("Template.stats").unwrap_or_else(|| panic!("declared")));
        let draft = on_service(&both, catalog.key("Template.draft").unwrap_or_else(|| panic!("declared")));
        let overlap = stats.iter().filter(|id| draft.contains(id)).count();
        // Independent cohorts overlap on about 20% × 20% = 4% of users; the same cohort on 20%.
        assert!((300..=500).contains(&overlap), "{overlap}");
        assert_eq!(overlap, 399, "the Python transcription's count");
    }

    #[test]
    fn a_canary_without_a_sticky_value_serves_legacy() {
        let catalog = catalog();
        let stats = catalog.key("Template.stats").unwrap_or_else(|| panic!("declared"));
        let full = table(&catalog, &canary(100));
        let anonymous = RequestSubject { user_id: None, request_id: "r".into(), headers: Vec::new() };
        assert_eq!(full.decide(stats, &anonymous).serve, Backend::Legacy);

        let by_tenant = table(
            &catalog,
            "[fields.\"Template.stats\"]\nmode = \"canary\"\npercent = 30\nsticky = \"header:x-tenant\"\n",
        );
        let tenant = |t: u32, u: u32| RequestSubject {
            user_id: Some(format!("u{u}")),
            request_id: format!("r{u}"),
            headers: vec![("x-tenant".into(), format!("tenant-{t}"))],
        };
        let mut on = 0;
        for t in 0..2_000 {
            let first = by_tenant.decide(stats, &tenant(t, 1)).serve;
            // Every user of a tenant gets the tenant's backend.
            assert!((2..6).all(|u| by_tenant.decide(stats, &tenant(t, u)).serve == first));
            on += u32::from(first == Backend::Service);
        }
        assert!((500..=700).contains(&on), "{on}");
        assert_eq!(by_tenant.decide(stats, &user(1)).serve, Backend::Legacy, "no header: legacy");
    }

    #[test]
    fn shadow_samples_and_calibrates_by_request() {
        let catalog = catalog();
        let draft = catalog.key("Template.draft").unwrap_or_else(|| panic!("declared"));
        let shadow = table(
            &catalog,
            "[fields.\"Template.draft\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 0.1\n\
             calibration_rate = 0.05\nsecondary_deadline = \"300ms\"\nmax_in_flight = 3\n",
        );
        let (mut compared, mut calibrated) = (0, 0);
        for id in 0..10_000 {
            let decision = shadow.decide(draft, &user(id));
            assert_eq!((decision.serve, decision.decided_by), (Backend::Legacy, DecidedBy::Shadow));
            match decision.shadow {
                Some(ShadowPlan {
                    call: Backend::Service,
                    purpose: ShadowPurpose::Compare,
                    deadline,
                    max_in_flight: 3,
                }) => {
                    assert_eq!(deadline, Duration::from_millis(300));
                    compared += 1;
                }
                Some(ShadowPlan { call: Backend::Legacy, purpose: ShadowPurpose::Calibrate, .. }) => {
                    calibrated += 1
                }
                None => {}
                Some(other) => panic!("unexpected plan {other:?}"),
            }
            // The same request decides the same way.
            assert_eq!(shadow.decide(draft, &user(id)), decision);
        }
        // Calibration takes 5%; comparison 10% of the remaining 95%.
        assert!((400..=600).contains(&calibrated), "{calibrated}");
        assert!((800..=1_100).contains(&compared), "{compared}");

        let never = table(
            &catalog,
            "[fields.\"Template.draft\"]\nmode = \"shadow\"\nprimary = \"service\"\nsample_rate = 0\n",
        );
        assert!((0..1_000).all(|id| never.decide(draft, &user(id))
            == Decision {
                key: draft,
                serve: Backend::Service,
                decided_by: DecidedBy::Shadow,
                shadow: None
            }));
    }

    #[test]
    fn fixed_modes_and_overrides() {
        let catalog = catalog();
        let stats = catalog.key("Template.stats").unwrap_or_else(|| panic!("declared"));
        let draft = catalog.key("Template.draft").unwrap_or_else(|| panic!("declared"));
        let fixed = table(&catalog, "[fields.\"Template.stats\"]\nmode = \"legacy\"\n");
        let decision = fixed.decide(stats, &user(1));
        assert_eq!(
            (decision.serve, decision.decided_by, decision.shadow),
            (Backend::Legacy, DecidedBy::Fixed, None)
        );
        assert_eq!(fixed.decide(draft, &user(1)).serve, Backend::Service, "the declared default");

        let overrides = Overrides::parse(" Template.stats=service , Template.draft = legacy,", &catalog)
            .unwrap_or_else(|e| panic!("{e}"));
        let forced = fixed.decide_with(stats, &user(1), &overrides);
        assert_eq!((forced.serve, forced.decided_by), (Backend::Service, DecidedBy::Forced));
        assert_eq!(fixed.decide_with(draft, &user(1), &overrides).serve, Backend::Legacy);
        assert_eq!(fixed.decide_with(stats, &user(1), &Overrides::none()), decision);

        assert_eq!(
            Overrides::parse("Template.stats", &catalog),
            Err(OverrideError::Malformed("Template.stats".into()))
        );
        assert_eq!(
            Overrides::parse("Template.nope=legacy", &catalog),
            Err(OverrideError::UnknownKey("Template.nope".into()))
        );
        assert_eq!(
            Overrides::parse("Template.stats=both", &catalog),
            Err(OverrideError::UnknownBackend("both".into()))
        );
        assert!(Overrides::parse("", &catalog).map(|o| o.is_empty()).unwrap_or(false));
    }
}
