//! Persisted operations: Apollo's automatic persisted queries (APQ) and trusted documents.
//!
//! - **APQ** (`extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}`): a client
//!   sends the hash alone; when Banyan does not know it, the answer is `PersistedQueryNotFound`
//!   (code `PERSISTED_QUERY_NOT_FOUND`, HTTP 200 and `Cache-Control: private, no-cache,
//!   must-revalidate`, as Apollo Server answers, so Apollo clients retry with the query). The
//!   retry carries the query and its hash; a hash that is not the query's SHA-256 is refused
//!   (`PERSISTED_QUERY_HASH_MISMATCH`, 400) and the query does not run; a matching one is
//!   stored, once the document has passed validation, in a bounded in-memory store
//!   ([`PersistedConfig::apq_max_bytes`], [`PersistedConfig::apq_ttl`]).
//! - **Trusted documents**: the operations of `frontend-contract/persisted-operations.json`
//!   (ids are the SHA-256 of each body). A client may send one by id (the same
//!   `extensions.persistedQuery`, or the GraphQL-over-HTTP proposal's `documentId`, bare hex or
//!   `sha256:<hex>`), or send its exact body. Under `enforce`, nothing else runs: an unknown id is
//!   `PERSISTED_QUERY_NOT_IN_LIST` (404) and any other document `QUERY_NOT_IN_SAFELIST` (403),
//!   the codes and statuses of Apollo Router's safelisting; under `log_unknown` it runs and is
//!   logged with its hash.
//!
//! One function, [`PersistedOperations::resolve`], applies these rules. HTTP calls it before the
//! caller's identity is checked (so a refused document costs no backend call, not even the
//! identity check) and marks the request as resolved; [`PersistedExtension`], an async-graphql
//! extension that runs before the limits, applies it to every other request (WebSocket
//! `subscribe` messages) and stores APQ registrations after validation, for both.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation,
};
use async_graphql::{Request, ServerError, ServerResult, ValidationResult};
use http::{HeaderValue, StatusCode};
use moka::future::Cache;

use crate::shared_store::SharedStore;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{PersistedConfig, TrustedDocuments};

/// The `extensions` key of Apollo's persisted-query protocol.
pub(crate) const EXTENSION_KEY: &str = "persistedQuery";

/// `Cache-Control` of answers a client is about to fix by registering the query: never cached,
/// or a CDN would keep answering "not found" to a `GET`.
const UNCACHEABLE: &str = "private, no-cache, must-revalidate";

/// Why a persisted operation was refused, each with its stable code and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PersistedError {
    /// An APQ hash Banyan does not know (yet): the client should retry with the query.
    #[error("PersistedQueryNotFound")]
    NotFound,
    /// A hash alone, with APQ off and the hash not in the manifest.
    #[error("PersistedQueryNotSupported")]
    NotSupported,
    /// The hash is not the SHA-256 of the query sent with it.
    #[error("provided sha does not match query")]
    HashMismatch,
    /// `persistedQuery.version` is not 1.
    #[error("only version 1 of the persistedQuery extension is supported")]
    UnsupportedVersion,
    /// `persistedQuery` is not `{"version": 1, "sha256Hash": "<hex>"}`, or both it and
    /// `documentId` came.
    #[error(
        "`extensions.persistedQuery` must be {{\"version\": 1, \"sha256Hash\": \"<hex>\"}}, sent without `documentId`"
    )]
    Malformed,
    /// Under `enforce`: an id that is not in the trusted documents.
    #[error("the persisted operation is not in the trusted documents")]
    NotInList,
    /// Under `enforce`: a document that is not one of the trusted documents.
    #[error("only trusted documents may run; send the operation's id or its exact persisted body")]
    NotInSafelist,
}

impl PersistedError {
    /// The stable `extensions.code`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::NotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            Self::HashMismatch => "PERSISTED_QUERY_HASH_MISMATCH",
            Self::UnsupportedVersion => "PERSISTED_QUERY_VERSION_NOT_SUPPORTED",
            Self::Malformed => "BAD_REQUEST",
            Self::NotInList => "PERSISTED_QUERY_NOT_IN_LIST",
            Self::NotInSafelist => "QUERY_NOT_IN_SAFELIST",
        }
    }

    /// The HTTP status, whatever the response's media type. "Not found" and "not supported"
    /// are 200, as Apollo Server sends them, so no client treats them as a transport failure
    /// before it retries with the query.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NotFound | Self::NotSupported => StatusCode::OK,
            Self::HashMismatch | Self::UnsupportedVersion | Self::Malformed => StatusCode::BAD_REQUEST,
            Self::NotInList => StatusCode::NOT_FOUND,
            Self::NotInSafelist => StatusCode::FORBIDDEN,
        }
    }

    /// The `Cache-Control` the refusal must carry, if any.
    pub(crate) fn cache_control(&self) -> Option<HeaderValue> {
        matches!(self, Self::NotFound | Self::NotSupported).then(|| HeaderValue::from_static(UNCACHEABLE))
    }

    pub(crate) fn into_server_error(self) -> ServerError {
        let mut error = ServerError::new(self.to_string(), None);
        error.extensions.get_or_insert_with(Default::default).set("code", self.code());
        error
    }
}

/// Why the manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestLoadError {
    /// The file could not be read.
    #[error("reading the persisted-operations manifest {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not a manifest, or an id is not the SHA-256 of its body.
    #[error("the persisted-operations manifest {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A reference to a persisted document: Apollo's `extensions.persistedQuery`, or `documentId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PersistedQuery {
    version: i64,
    /// Lower-case hex SHA-256.
    sha256_hash: String,
}

impl PersistedQuery {
    /// Reads `extensions.persistedQuery`.
    pub(crate) fn from_json(value: &Value) -> Result<Self, PersistedError> {
        let version = value.get("version").and_then(Value::as_i64).ok_or(PersistedError::Malformed)?;
        let hash = value.get("sha256Hash").and_then(Value::as_str).ok_or(PersistedError::Malformed)?;
        Ok(Self { version, sha256_hash: hash.to_ascii_lowercase() })
    }

    /// Reads a GraphQL-over-HTTP `documentId`: `sha256:<hex>` or bare hex.
    pub(crate) fn from_document_id(id: &str) -> Self {
        let hash = id.strip_prefix("sha256:").unwrap_or(id);
        Self { version: 1, sha256_hash: hash.to_ascii_lowercase() }
    }
}

/// What [`PersistedOperations::resolve`] decided. HTTP attaches it to the request's data, so
/// the extension neither resolves twice nor logs twice.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The document's text when the request sent only its id.
    pub(crate) query: Option<Arc<str>>,
    /// Whether the document came by id (a `GET` by id may be cached by a CDN).
    pub(crate) by_id: bool,
    /// A document to store in the APQ store once it has passed validation: (hash, text).
    pub(crate) register: Option<(String, Arc<str>)>,
}

/// The persisted operations: the trusted documents and the APQ store. Cheap to share.
pub(crate) struct PersistedOperations {
    trusted_documents: TrustedDocuments,
    /// The manifest's bodies by id (the SHA-256 of the body).
    manifest: HashMap<String, Arc<str>>,
    /// Registered documents by hash; `None` when APQ is off.
    apq: Option<Cache<String, Arc<str>>>,
    /// `Cache-Control: max-age` for a `GET` by id, in seconds (0: none).
    get_max_age: i32,
    /// Registered documents shared with the other replicas (`[redis]`), behind `apq`: a
    /// document registered through any replica runs by hash on every one.
    shared: Option<SharedStore>,
    /// How long a registered document is kept.
    apq_ttl: std::time::Duration,
}

/// The lower-case hex SHA-256 of `text`.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Reads the manifest at `config.manifest` (bodies by id), checking every id.
pub(crate) fn load_manifest(
    config: &PersistedConfig,
) -> Result<HashMap<String, Arc<str>>, ManifestLoadError> {
    let path = config.manifest.display().to_string();
    let text = std::fs::read_to_string(&config.manifest)
        .map_err(|source| ManifestLoadError::Read { path: path.clone(), source })?;
    let manifest: banyan_schema::Manifest = serde_json::from_str(&text)
        .map_err(|e| ManifestLoadError::Invalid { path: path.clone(), message: e.to_string() })?;
    manifest
        .operations
        .into_iter()
        .map(|operation| {
            if sha256_hex(&operation.body) != operation.id.to_ascii_lowercase() {
                return Err(ManifestLoadError::Invalid {
                    path: path.clone(),
                    message: format!("the id of `{}` is not the SHA-256 of its body", operation.name),
                });
            }
            Ok((operation.id.to_ascii_lowercase(), Arc::from(operation.body)))
        })
        .collect()
}

/// Start-up's check of the manifest: under `enforce` it must load (or every operation would be
/// refused); under `log_unknown` a missing or bad one is a warning; under `off` it is optional.
pub fn check_manifest(config: &PersistedConfig) -> Result<(), ManifestLoadError> {
    match (load_manifest(config), config.trusted_documents) {
        (Ok(_), _) | (Err(_), TrustedDocuments::Off) => Ok(()),
        (Err(error), TrustedDocuments::LogUnknown) => {
            tracing::warn!(%error, "no trusted documents: operations outside them are not logged");
            Ok(())
        }
        (Err(error), TrustedDocuments::Enforce) => Err(error),
    }
}

impl PersistedOperations {
    /// The rules of `config`, with the manifest read from its file. Start-up checks the file
    /// first ([`check_manifest`]); without one, `enforce` fails closed (no operation is trusted)
    /// and `log_unknown` logs nothing, as every operation would be "unknown".
    pub(crate) fn new(config: &PersistedConfig) -> Self {
        let mut trusted_documents = config.trusted_documents;
        let manifest = match load_manifest(config) {
            Ok(manifest) => manifest,
            Err(error) if trusted_documents == TrustedDocuments::Enforce => {
                tracing::error!(%error, "no persisted-operations manifest: every operation is refused");
                HashMap::new()
            }
            // Start-up has said so already, for `log_unknown` with a warning.
            Err(error) => {
                tracing::debug!(%error, "no persisted-operations manifest; trusted documents are off");
                trusted_documents = TrustedDocuments::Off;
                HashMap::new()
            }
        };
        let apq = config.apq.then(|| {
            Cache::builder()
                .max_capacity(config.apq_max_bytes)
                .weigher(|hash: &String, text: &Arc<str>| {
                    u32::try_from(hash.len().saturating_add(text.len())).unwrap_or(u32::MAX)
                })
                .time_to_live(config.apq_ttl)
                .build()
        });
        Self {
            trusted_documents,
            manifest,
            apq,
            get_max_age: i32::try_from(config.get_max_age.as_secs()).unwrap_or(i32::MAX),
            shared: None,
            apq_ttl: config.apq_ttl,
        }
    }

    /// The same, with registered documents shared through `shared` (when APQ is on).
    pub(crate) fn sharing(mut self, shared: Option<SharedStore>) -> Self {
        self.shared = shared;
        self
    }

    /// A registered document: from this replica's memory, else from the shared store (kept in
    /// memory from then on). A shared store that fails answers "not found": the client sends
    /// the full query again, as the protocol expects.
    async fn registered(&self, store: &Cache<String, Arc<str>>, hash: &str) -> Option<Arc<str>> {
        if let Some(body) = store.get(hash).await {
            return Some(body);
        }
        let text = self.shared.as_ref()?.apq_get(hash).await.ok()??;
        // Only what is the document of its hash is served: a key written by anything else is
        // ignored.
        if sha256_hex(&text) != hash {
            return None;
        }
        let body: Arc<str> = Arc::from(text);
        store.insert(hash.to_owned(), body.clone()).await;
        Some(body)
    }

    /// Applies the rules to one request: `query` as sent (empty when only an id came), and the
    /// persisted-query reference, if any. Refusals carry their code and status; under
    /// `log_unknown` an untrusted document is logged here.
    pub(crate) async fn resolve(
        &self,
        query: &str,
        operation_name: Option<&str>,
        persisted: Option<PersistedQuery>,
    ) -> Result<Resolved, PersistedError> {
        let Some(persisted) = persisted else {
            // Hashing the text costs on every request: only where the rule needs it.
            if self.trusted_documents != TrustedDocuments::Off {
                self.check_trusted(&sha256_hex(query), operation_name)?;
            }
            return Ok(Resolved { query: None, by_id: false, register: None });
        };
        if persisted.version != 1 {
            return Err(PersistedError::UnsupportedVersion);
        }
        let hash = persisted.sha256_hash;
        if !query.is_empty() {
            // A registration (or a client that always sends both): the query runs only if the
            // hash is its own.
            if sha256_hex(query) != hash {
                return Err(PersistedError::HashMismatch);
            }
            self.check_trusted(&hash, operation_name)?;
            let register =
                (self.apq.is_some() && !self.manifest.contains_key(&hash)).then(|| (hash, Arc::from(query)));
            return Ok(Resolved { query: None, by_id: false, register });
        }
        if let Some(body) = self.manifest.get(&hash) {
            return Ok(Resolved { query: Some(body.clone()), by_id: true, register: None });
        }
        if self.trusted_documents == TrustedDocuments::Enforce {
            return Err(PersistedError::NotInList);
        }
        let Some(store) = &self.apq else { return Err(PersistedError::NotSupported) };
        match self.registered(store, &hash).await {
            Some(body) => {
                // Registered documents are not trusted ones: logged like any other.
                self.check_trusted(&hash, operation_name)?;
                Ok(Resolved { query: Some(body), by_id: true, register: None })
            }
            None => Err(PersistedError::NotFound),
        }
    }

    /// The trusted-documents rule for a document whose SHA-256 is `hash`.
    fn check_trusted(&self, hash: &str, operation_name: Option<&str>) -> Result<(), PersistedError> {
        if self.trusted_documents == TrustedDocuments::Off || self.manifest.contains_key(hash) {
            return Ok(());
        }
        if self.trusted_documents == TrustedDocuments::Enforce {
            tracing::info!(
                operation_hash = hash,
                operation_name,
                "refused an operation outside the trusted documents"
            );
            return Err(PersistedError::NotInSafelist);
        }
        tracing::warn!(
            operation_hash = hash,
            operation_name,
            "served an operation outside the trusted documents"
        );
        Ok(())
    }

    pub(crate) async fn register(&self, (hash, text): (String, Arc<str>)) {
        if let Some(store) = &self.apq {
            if let Some(shared) = &self.shared {
                // A failure is counted and logged by the store; this replica still remembers.
                let _ = shared.apq_set(&hash, &text, self.apq_ttl).await;
            }
            store.insert(hash, text).await;
        }
    }

    /// The `Cache-Control` of a successful query sent with `GET` by persisted id: the
    /// configured max-age, lowered by the schema's hint; `private` when the caller is signed in
    /// or the hint says so; none for a response with errors, or when both are 0.
    pub(crate) fn get_cache_control(
        &self,
        response: &async_graphql::Response,
        signed_in: bool,
    ) -> Option<HeaderValue> {
        if !response.errors.is_empty() {
            return None;
        }
        let hint = response.cache_control;
        if hint.max_age < 0 {
            return Some(HeaderValue::from_static("no-cache"));
        }
        let max_age = match (self.get_max_age, hint.max_age) {
            (0, hinted) => hinted,
            (configured, 0) => configured,
            (configured, hinted) => configured.min(hinted),
        };
        if max_age == 0 {
            return None;
        }
        let scope = if signed_in || !hint.public { "private" } else { "public" };
        HeaderValue::from_str(&format!("{scope}, max-age={max_age}")).ok()
    }
}

/// The extension that applies [`PersistedOperations::resolve`] to requests HTTP has not
/// resolved (WebSocket operations), and stores APQ registrations once validated. Registered
/// before the limits, which then bound the document it resolved.
pub(crate) struct PersistedExtension {
    pub(crate) operations: Arc<PersistedOperations>,
}

impl ExtensionFactory for PersistedExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PersistedChecker { operations: self.operations.clone(), pending: Mutex::new(None) })
    }
}

struct PersistedChecker {
    operations: Arc<PersistedOperations>,
    /// A registration waiting for the document to pass validation.
    pending: Mutex<Option<(String, Arc<str>)>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for PersistedChecker {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let already =
            request.data.get(&TypeId::of::<Resolved>()).and_then(|data| data.downcast_ref::<Resolved>());
        let resolved = match already {
            Some(resolved) => resolved.clone(),
            None => {
                let persisted = match request.extensions.remove(EXTENSION_KEY) {
                    None => None,
                    Some(value) => {
                        let json =
                            value.into_json().map_err(|_| PersistedError::Malformed.into_server_error())?;
                        Some(PersistedQuery::from_json(&json).map_err(PersistedError::into_server_error)?)
                    }
                };
                let resolved = self
                    .operations
                    .resolve(&request.query, request.operation_name.as_deref(), persisted)
                    .await
                    .map_err(PersistedError::into_server_error)?;
                if let Some(text) = &resolved.query {
                    request.query = text.to_string();
                }
                resolved
            }
        };
        if let Ok(mut pending) = self.pending.lock() {
            *pending = resolved.register;
        }
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let registration = self.pending.lock().ok().and_then(|mut pending| pending.take());
        if let Some(registration) = registration {
            self.operations.register(registration).await;
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operations(level: TrustedDocuments, manifest: &[&str]) -> PersistedOperations {
        let mut config = PersistedConfig { trusted_documents: level, ..PersistedConfig::default() };
        config.manifest = std::path::PathBuf::from("/nonexistent");
        let mut operations = PersistedOperations::new(&config);
        operations.manifest = manifest.iter().map(|body| (sha256_hex(body), Arc::from(*body))).collect();
        // `new` turns `log_unknown` off without a manifest file; these tests give it one.
        operations.trusted_documents = level;
        operations
    }

    #[tokio::test]
    async fn without_a_manifest_enforce_refuses_everything_and_log_unknown_is_off() {
        let config = |level| PersistedConfig {
            trusted_documents: level,
            manifest: std::path::PathBuf::from("/nonexistent/persisted-operations.json"),
            ..PersistedConfig::default()
        };
        let enforce = PersistedOperations::new(&config(TrustedDocuments::Enforce));
        assert_eq!(
            enforce.resolve("{ __typename }", None, None).await.err(),
            Some(PersistedError::NotInSafelist)
        );
        assert!(check_manifest(&config(TrustedDocuments::Enforce)).is_err(), "start-up refuses");
        let log_unknown = PersistedOperations::new(&config(TrustedDocuments::LogUnknown));
        assert_eq!(log_unknown.trusted_documents, TrustedDocuments::Off);
        assert!(check_manifest(&config(TrustedDocuments::LogUnknown)).is_ok(), "a warning only");
    }

    fn by_hash(hash: &str) -> Option<PersistedQuery> {
        Some(PersistedQuery { version: 1, sha256_hash: hash.to_owned() })
    }

    #[test]
    fn sha256_is_lower_case_hex() {
        // `printf '{ __typename }' | sha256sum`
        assert_eq!(
            sha256_hex("{ __typename }"),
            "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b"
        );
    }

    #[tokio::test]
    async fn apq_registers_after_validation_only_and_refuses_a_wrong_hash() {
        let ops = operations(TrustedDocuments::Off, &[]);
        let query = "{ __typename }";
        let hash = sha256_hex(query);
        assert_eq!(ops.resolve("", None, by_hash(&hash)).await.err(), Some(PersistedError::NotFound));
        let wrong = sha256_hex("{ other }");
        assert_eq!(ops.resolve(query, None, by_hash(&wrong)).await.err(), Some(PersistedError::HashMismatch));
        let resolved = ops.resolve(query, None, by_hash(&hash)).await.expect("a matching hash");
        // Not stored until the extension sees the document validate.
        assert_eq!(ops.resolve("", None, by_hash(&hash)).await.err(), Some(PersistedError::NotFound));
        ops.register(resolved.register.expect("a registration")).await;
        let hit = ops.resolve("", None, by_hash(&hash)).await.expect("registered");
        assert_eq!(hit.query.as_deref(), Some(query));
        assert!(hit.by_id);
        let version_2 = Some(PersistedQuery { version: 2, sha256_hash: hash });
        assert_eq!(ops.resolve("", None, version_2).await.err(), Some(PersistedError::UnsupportedVersion));
    }

    #[tokio::test]
    async fn trusted_documents_levels() {
        let trusted = "query A { __typename }";
        for level in [TrustedDocuments::Off, TrustedDocuments::LogUnknown, TrustedDocuments::Enforce] {
            let ops = operations(level, &[trusted]);
            let by_id = ops.resolve("", None, by_hash(&sha256_hex(trusted))).await.expect("a trusted id");
            assert_eq!(by_id.query.as_deref(), Some(trusted));
            assert!(ops.resolve(trusted, None, None).await.is_ok(), "the identical body");
            let unknown = ops.resolve("{ __typename }", None, None).await;
            let unknown_id = ops.resolve("", None, by_hash(&sha256_hex("{ x }"))).await;
            if level == TrustedDocuments::Enforce {
                assert_eq!(unknown.err(), Some(PersistedError::NotInSafelist));
                assert_eq!(unknown_id.err(), Some(PersistedError::NotInList));
            } else {
                assert!(unknown.is_ok());
                assert_eq!(unknown_id.err(), Some(PersistedError::NotFound));
            }
        }
    }

    #[test]
    fn document_ids_take_both_spellings() {
        let hash = "ABCDEF";
        assert_eq!(PersistedQuery::from_document_id(&format!("sha256:{hash}")).sha256_hash, "abcdef");
        assert_eq!(PersistedQuery::from_document_id(hash).sha256_hash, "abcdef");
        assert_eq!(
            PersistedQuery::from_json(&serde_json::json!({"version": 1})),
            Err(PersistedError::Malformed)
        );
    }

    #[test]
    fn get_cache_control_follows_config_hint_and_caller() {
        let mut ops = operations(TrustedDocuments::Off, &[]);
        let ok = async_graphql::Response::new(async_graphql::Value::Null);
        assert_eq!(ops.get_cache_control(&ok, false), None, "0s: no header");
        ops.get_max_age = 60;
        assert_eq!(
            ops.get_cache_control(&ok, false).as_ref().and_then(|v| v.to_str().ok()),
            Some("public, max-age=60")
        );
        assert_eq!(
            ops.get_cache_control(&ok, true).as_ref().and_then(|v| v.to_str().ok()),
            Some("private, max-age=60")
        );
        let hinted = async_graphql::Response::new(async_graphql::Value::Null)
            .cache_control(async_graphql::CacheControl { public: true, max_age: 10 });
        assert_eq!(
            ops.get_cache_control(&hinted, false).as_ref().and_then(|v| v.to_str().ok()),
            Some("public, max-age=10")
        );
        let failed = async_graphql::Response::from_errors(vec![ServerError::new("x", None)]);
        assert_eq!(ops.get_cache_control(&failed, false), None);
    }
}
