//! The catalog: the checked list of declarations every other part works from.

use std::collections::BTreeMap;

use crate::compare::Comparator;
use crate::declaration::{Access, Backend, BackendCall, Dependency, FieldDeclaration, FieldKey, System};
use crate::path::PatternError;

/// A declaration list that contradicts itself. These are programming errors, caught by the
/// catalog's own tests, never by an operator.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    /// Two declarations share a key.
    #[error("`{0}` is declared twice")]
    DuplicateKey(&'static str),
    /// A key is not `Type.field`.
    #[error("`{0}` is not a `Type.field` key")]
    MalformedKey(&'static str),
    /// A write names a store that is not a declared read.
    #[error("`{write}` writes the store of `{store_of}`, which is not a declared read field")]
    UnknownStore {
        /// The write.
        write: &'static str,
        /// What it names.
        store_of: &'static str,
    },
    /// A call is spelled neither `"{METHOD} /path"` nor `"{Service}/{Method}"`.
    #[error("`{owner}` declares the call {call:?}, which is not spelled as the devstack counts calls")]
    MalformedCall {
        /// The declaration.
        owner: &'static str,
        /// The call.
        call: &'static str,
    },
    /// A side of a migrated field declares no call.
    #[error("the {backend} side of `{key}` declares no backend call")]
    NoCalls {
        /// The field.
        key: &'static str,
        /// The side.
        backend: Backend,
    },
    /// A normaliser's path pattern does not parse.
    #[error("normaliser of `{key}`: {source}")]
    Pattern {
        /// The field.
        key: &'static str,
        /// Why.
        source: PatternError,
    },
}

/// The checked declarations, with each field's comparator ready.
#[derive(Debug, Clone)]
pub struct Catalog {
    fields: BTreeMap<&'static str, (&'static FieldDeclaration, Comparator)>,
    order: Vec<&'static str>,
    dependencies: &'static [Dependency],
}

impl Catalog {
    /// Banyan's catalog: [`crate::banyan::FIELDS`] and [`crate::banyan::DEPENDENCIES`].
    pub fn banyan() -> Result<Self, CatalogError> {
        Self::new(crate::banyan::FIELDS, crate::banyan::DEPENDENCIES)
    }

    /// Checks `fields` and `dependencies` against each other.
    pub fn new(
        fields: &'static [FieldDeclaration],
        dependencies: &'static [Dependency],
    ) -> Result<Self, CatalogError> {
        let mut map = BTreeMap::new();
        for field in fields {
            if !is_field_key(field.key) {
                return Err(CatalogError::MalformedKey(field.key));
            }
            for backend in [Backend::Legacy, Backend::Service] {
                let calls = field.implementation(backend).calls;
                if calls.is_empty() {
                    return Err(CatalogError::NoCalls { key: field.key, backend });
                }
                check_calls(field.key, calls)?;
            }
            let comparator = Comparator::new(&field.normalisers)
                .map_err(|source| CatalogError::Pattern { key: field.key, source })?;
            if map.insert(field.key, (field, comparator)).is_some() {
                return Err(CatalogError::DuplicateKey(field.key));
            }
        }
        for field in fields {
            if let Access::Write { store_of, .. } = field.access {
                let is_read = map.get(store_of).is_some_and(|(read, _)| !read.is_write());
                if !is_read {
                    return Err(CatalogError::UnknownStore { write: field.key, store_of });
                }
            }
        }
        for dependency in dependencies {
            check_calls(dependency.coordinate, dependency.calls)?;
        }
        Ok(Self { fields: map, order: fields.iter().map(|f| f.key).collect(), dependencies })
    }

    /// The declared key `key`, if any.
    pub fn key(&self, key: &str) -> Option<FieldKey> {
        self.fields.get_key_value(key).map(|(key, _)| FieldKey(key))
    }

    /// The declaration of `key` (`None` only for a key of another catalog).
    pub fn declaration(&self, key: FieldKey) -> Option<&'static FieldDeclaration> {
        self.fields.get(key.0).map(|(declaration, _)| *declaration)
    }

    /// The comparator of `key`.
    pub fn comparator(&self, key: FieldKey) -> Option<&Comparator> {
        self.fields.get(key.0).map(|(_, comparator)| comparator)
    }

    /// Every declared field, in declaration order.
    pub fn fields(&self) -> impl Iterator<Item = &'static FieldDeclaration> + '_ {
        self.order.iter().filter_map(|key| self.fields.get(key).map(|(declaration, _)| *declaration))
    }

    /// Every declared key, in declaration order.
    pub fn keys(&self) -> impl Iterator<Item = FieldKey> + '_ {
        self.order.iter().map(|key| FieldKey(key))
    }

    /// The backend calls of the resolvers that are not migrated.
    pub fn dependencies(&self) -> &'static [Dependency] {
        self.dependencies
    }

    /// The writes whose store is `read`'s.
    pub fn writes_of(&self, read: FieldKey) -> impl Iterator<Item = &'static FieldDeclaration> + '_ {
        self.fields()
            .filter(move |f| matches!(f.access, Access::Write { store_of, .. } if store_of == read.0))
    }
}

fn is_field_key(key: &str) -> bool {
    let is_name = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    key.split_once('.').is_some_and(|(ty, field)| is_name(ty) && is_name(field))
}

fn check_calls(owner: &'static str, calls: &[BackendCall]) -> Result<(), CatalogError> {
    for call in calls {
        let ok = match call.system {
            System::Monolith => call.name.split_once(' ').is_some_and(|(method, path)| {
                ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method)
                    && path.starts_with('/')
                    && !path.contains(' ')
            }),
            System::Grpc => call.name.split_once('/').is_some_and(|(service, method)| {
                !service.is_empty() && !service.contains('.') && !method.is_empty() && !method.contains('/')
            }),
        };
        if !ok {
            return Err(CatalogError::MalformedCall { owner, call: call.name });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::declaration::{Batching, Implementation, Normalisers};

    #[test]
    fn banyans_catalog_is_consistent() {
        let catalog = Catalog::banyan().unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<&str> = catalog.keys().map(FieldKey::as_str).collect();
        assert_eq!(
            keys,
            [
                "Template.stats",
                "Template.draft",
                "Template.recentEvents",
                "Mutation.updateDraftBlock",
                "Mutation.insertDraftBlock",
                "Mutation.deleteDraftBlock"
            ]
        );
        let draft = catalog.key("Template.draft").unwrap_or_else(|| panic!("declared"));
        let writes: Vec<&str> = catalog.writes_of(draft).map(|f| f.key).collect();
        assert_eq!(
            writes,
            ["Mutation.updateDraftBlock", "Mutation.insertDraftBlock", "Mutation.deleteDraftBlock"]
        );
    }

    /// Every call a declaration uses is one of the shared constants, and every constant is used:
    /// a name spelled a second way, or a constant nothing needs, fails here.
    #[test]
    fn declarations_use_exactly_the_shared_call_constants() {
        let shared: BTreeSet<BackendCall> = crate::calls::ALL.iter().copied().collect();
        assert_eq!(shared.len(), crate::calls::ALL.len(), "a constant is listed twice");
        let mut used = BTreeSet::new();
        for field in crate::banyan::FIELDS {
            used.extend(field.legacy.calls.iter().copied());
            used.extend(field.service.calls.iter().copied());
        }
        for dependency in crate::banyan::DEPENDENCIES {
            used.extend(dependency.calls.iter().copied());
        }
        assert_eq!(used, shared);
    }

    /// The spelling the issue calls out: the devstack counts `EventService/GetTemplateStats`, not
    /// the packaged `banyan.events.v1.EventService/GetTemplateStats`.
    #[test]
    fn grpc_names_carry_no_package() {
        assert_eq!(crate::calls::EVENTS_GET_TEMPLATE_STATS.name, "EventService/GetTemplateStats");
        assert_eq!(crate::calls::MONOLITH_TEMPLATE_ANALYTICS.name, "GET /api/v1/templates/{id}/analytics/");
        static PACKAGED: &[FieldDeclaration] = &[FieldDeclaration {
            service: Implementation {
                calls: &[BackendCall::grpc("banyan.events.v1.EventService/GetTemplateStats")],
                batching: Batching::Batched,
            },
            ..READ
        }];
        assert_eq!(
            Catalog::new(PACKAGED, &[]).err(),
            Some(CatalogError::MalformedCall {
                owner: "T.read",
                call: "banyan.events.v1.EventService/GetTemplateStats"
            })
        );
    }

    const READ: FieldDeclaration = FieldDeclaration {
        key: "T.read",
        description: "a read",
        access: Access::Read,
        legacy: Implementation { calls: &[BackendCall::monolith("GET /r/")], batching: Batching::OneAtATime },
        service: Implementation { calls: &[BackendCall::grpc("S/Read")], batching: Batching::Batched },
        normalisers: Normalisers::NONE,
        default_backend: Backend::Legacy,
    };

    #[test]
    fn contradictions_are_refused() {
        static TWICE: &[FieldDeclaration] = &[READ, READ];
        assert_eq!(Catalog::new(TWICE, &[]).err(), Some(CatalogError::DuplicateKey("T.read")));

        static BAD_KEY: &[FieldDeclaration] = &[FieldDeclaration { key: "stats", ..READ }];
        assert_eq!(Catalog::new(BAD_KEY, &[]).err(), Some(CatalogError::MalformedKey("stats")));

        static WRITE_TO_NOTHING: &[FieldDeclaration] = &[
            READ,
            FieldDeclaration {
                key: "Mutation.w",
                access: Access::Write { store_of: "T.other", synchronised: false },
                ..READ
            },
        ];
        assert_eq!(
            Catalog::new(WRITE_TO_NOTHING, &[]).err(),
            Some(CatalogError::UnknownStore { write: "Mutation.w", store_of: "T.other" })
        );

        static NO_CALLS: &[FieldDeclaration] = &[FieldDeclaration {
            legacy: Implementation { calls: &[], batching: Batching::OneAtATime },
            ..READ
        }];
        assert_eq!(
            Catalog::new(NO_CALLS, &[]).err(),
            Some(CatalogError::NoCalls { key: "T.read", backend: Backend::Legacy })
        );

        static BAD_PATTERN: &[FieldDeclaration] = &[FieldDeclaration {
            normalisers: Normalisers { ignore: &["a..b"], ..Normalisers::NONE },
            ..READ
        }];
        assert!(matches!(Catalog::new(BAD_PATTERN, &[]), Err(CatalogError::Pattern { key: "T.read", .. })));

        static BAD_DEPENDENCY: &[Dependency] =
            &[Dependency { coordinate: "Query.me", calls: &[BackendCall::monolith("/api/v1/me/")] }];
        assert_eq!(
            Catalog::new(&[], BAD_DEPENDENCY).err(),
            Some(CatalogError::MalformedCall { owner: "Query.me", call: "/api/v1/me/" })
        );
    }
}
