//! Who is calling: the credential from the request (`Authorization: Token`/`Bearer`, or the
//! session cookie), checked against the monolith once and then cached briefly, so a page of
//! GraphQL requests costs one identity check, not one per request.
//!
//! HTTP and WebSocket share [`Authenticator::identify`] and one table from a failed check to what
//! the client sees ([`AuthError::refusal`]): an HTTP status or a WebSocket close code, an
//! `extensions.code`, and a message with nothing internal in it. The internal detail (a backend's
//! URL or body) goes to the log, with the request id.
//!
//! With `auth.stale_on_error`, a caller the monolith accepted is remembered for that long past its
//! cache entry and served from that memory when a fresh check finds the monolith unreachable, slow
//! or failing (5xx); a refusal wipes the memory, so a refused credential is never served stale.
//! The inbound headers `backends.propagate_headers` allows ride along with the caller
//! ([`Authenticator::with_forwarded_headers`]) to every backend.

use banyan_sources::domain::UserId;
use banyan_sources::identity::REQUEST_ID_HEADER;
use banyan_sources::monolith::MonolithClient;
use banyan_sources::{Caller, Credential, SessionCredential, SourceError};
use http::{HeaderMap, HeaderName, StatusCode};
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::config::AuthConfig;

/// graphql-transport-ws's close code for a connection refused for its credential ("Forbidden").
pub const CLOSE_FORBIDDEN: u16 = 4403;
/// RFC 6455's "Try Again Later" (1013): the identity backend is down or slow for now. Clients
/// such as graphql-ws retry it, as they should; they do not retry 4500 or 1011.
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// RFC 6455's "Internal Error" (1011): the identity backend answered something unexpected, which
/// retrying is not expected to fix.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// Why a request has no caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// A credential came but the monolith does not know it.
    #[error("the credential is not valid")]
    InvalidCredential,
    /// The `Authorization` header is not `Token <key>` or `Bearer <key>`.
    #[error("the Authorization header must be `Token <key>` or `Bearer <key>`")]
    MalformedHeader,
    /// The monolith could not be asked.
    #[error(transparent)]
    Backend(SourceError),
}

/// What a client is told when its identity check fails, the same for HTTP and WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRefusal {
    /// The HTTP status of a refused request.
    pub status: StatusCode,
    /// The close code of a refused WebSocket connection.
    pub close_code: u16,
    /// The stable `extensions.code`.
    pub code: &'static str,
    /// A message safe to show (also the WebSocket close reason).
    pub message: &'static str,
}

impl AuthError {
    /// How this failure is shown to a client.
    pub fn refusal(&self) -> AuthRefusal {
        let refusal = |status, close_code, code, message| AuthRefusal { status, close_code, code, message };
        match self {
            Self::InvalidCredential => refusal(
                StatusCode::UNAUTHORIZED,
                CLOSE_FORBIDDEN,
                "UNAUTHENTICATED",
                "the credential is not valid",
            ),
            Self::MalformedHeader => refusal(
                StatusCode::UNAUTHORIZED,
                CLOSE_FORBIDDEN,
                "UNAUTHENTICATED",
                "the Authorization value must be `Token <key>` or `Bearer <key>`",
            ),
            Self::Backend(SourceError::Timeout { .. }) => refusal(
                StatusCode::GATEWAY_TIMEOUT,
                CLOSE_TRY_AGAIN_LATER,
                "BACKEND_TIMEOUT",
                "the identity backend did not answer in time; try again",
            ),
            Self::Backend(SourceError::BadResponse { .. }) => refusal(
                StatusCode::BAD_GATEWAY,
                CLOSE_INTERNAL_ERROR,
                "BACKEND_ERROR",
                "the identity backend answered unexpectedly",
            ),
            // `me` maps every caller-side answer to `Unauthenticated` or `BadResponse`, so what is
            // left is the backend being unreachable.
            Self::Backend(_) => refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                CLOSE_TRY_AGAIN_LATER,
                "BACKEND_UNAVAILABLE",
                "the identity backend is unavailable; try again",
            ),
        }
    }
}

/// The names under which a browser's Django session arrives (and is sent on).
#[derive(Debug, Clone)]
struct SessionNames {
    session_cookie: String,
    csrf_cookie: String,
    csrf_header: Option<HeaderName>,
}

/// A cached credential: the SHA-256 of its kind and secret, so the cache never holds a raw token
/// or session id.
type CacheKey = [u8; 32];

/// What the monolith said about a credential. Only its answers are cached, never its failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identity {
    /// The credential is this user's.
    Known(UserId),
    /// The monolith refused the credential (401/403 on `/me/`).
    Refused,
}

/// How long each answer is kept: a refusal for less time, so a credential created just after
/// being refused works soon, while a client retrying a bad token still costs one check.
struct IdentityExpiry {
    known: std::time::Duration,
    refused: std::time::Duration,
}

impl moka::Expiry<CacheKey, Identity> for IdentityExpiry {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        identity: &Identity,
        _created_at: std::time::Instant,
    ) -> Option<std::time::Duration> {
        Some(match identity {
            Identity::Known(_) => self.known,
            Identity::Refused => self.refused,
        })
    }
}

fn cache_key(credential: &Credential) -> CacheKey {
    // `identity_key` starts with the kind (`token:`, `session:<cookie>:`), so a token and a session
    // id with the same text are different keys.
    Sha256::digest(credential.identity_key().as_bytes()).into()
}

/// Checks credentials, with a short-lived cache of the answers.
#[derive(Clone)]
pub struct Authenticator {
    monolith: MonolithClient,
    cache: Cache<CacheKey, Identity>,
    /// Callers the monolith accepted, kept for `identity_cache_ttl + stale_on_error` after the
    /// check, and consulted only when a fresh check fails on the backend's side; `None` when
    /// `auth.stale_on_error` is 0.
    last_known: Option<Cache<CacheKey, UserId>>,
    names: std::sync::Arc<SessionNames>,
    /// Lowercase names of the inbound headers passed on to the backends.
    propagate: std::sync::Arc<[String]>,
}

impl Authenticator {
    /// An authenticator asking `monolith`, caching per `config`.
    pub fn new(monolith: MonolithClient, config: &AuthConfig) -> Self {
        Self {
            monolith,
            cache: Cache::builder()
                .max_capacity(config.identity_cache_capacity)
                .expire_after(IdentityExpiry {
                    known: config.identity_cache_ttl,
                    refused: config.negative_cache_ttl,
                })
                .build(),
            last_known: (!config.stale_on_error.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(config.identity_cache_capacity)
                    .time_to_live(config.identity_cache_ttl.saturating_add(config.stale_on_error))
                    .build()
            }),
            propagate: std::sync::Arc::from([]),
            names: std::sync::Arc::new(SessionNames {
                session_cookie: config.session_cookie.clone(),
                csrf_cookie: config.csrf_cookie.clone(),
                // Validated with the configuration.
                csrf_header: HeaderName::from_bytes(config.csrf_header.as_bytes()).ok(),
            }),
        }
    }

    /// The same authenticator, passing these inbound headers (by name, any case) on to the
    /// backends with each caller (`backends.propagate_headers`, validated with the configuration).
    #[must_use]
    pub fn propagating(mut self, names: &[String]) -> Self {
        self.propagate = names.iter().map(|name| name.to_ascii_lowercase()).collect();
        self
    }

    /// `caller` with the allowed inbound headers of its request to pass on to the backends.
    /// Identity and transport headers never pass, whatever the list says: the sources skip them
    /// again when sending.
    pub fn with_forwarded_headers(&self, mut caller: Caller, headers: &HeaderMap) -> Caller {
        caller.forwarded_headers = self
            .propagate
            .iter()
            .filter(|name| banyan_sources::identity::is_forwardable_header(name))
            .flat_map(|name| {
                headers
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(|value| Some((name.clone(), value.to_str().ok()?.to_owned())))
                    .collect::<Vec<_>>()
            })
            .collect();
        caller
    }

    /// The credential carried by `headers`, if any: the `Authorization` header, or else the
    /// session cookie with the CSRF proof that came with it.
    pub fn credential(&self, headers: &HeaderMap) -> Result<Option<Credential>, AuthError> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
            return parse_authorization(value).map(|key| Some(Credential::Token(key)));
        }
        let names = &self.names;
        let Some(session_id) = cookie(headers, &names.session_cookie) else { return Ok(None) };
        let csrf_cookie = cookie(headers, &names.csrf_cookie).map(|value| (names.csrf_cookie.clone(), value));
        let forwarded = [names.csrf_header.clone(), Some(http::header::ORIGIN), Some(http::header::REFERER)];
        let csrf_headers = forwarded
            .into_iter()
            .flatten()
            .filter_map(|name| {
                let value = headers.get(&name)?.to_str().ok()?.to_owned();
                Some((name.as_str().to_owned(), value))
            })
            .collect();
        Ok(Some(Credential::Session(SessionCredential {
            cookie_name: names.session_cookie.clone(),
            session_id,
            csrf_cookie,
            csrf_headers,
        })))
    }

    /// The one identity check of HTTP requests and WebSocket connections: no credential is an
    /// anonymous caller (`None`); a credential is checked (or found in the cache); a failure is
    /// logged here, with the request id and its internal detail, and returned for
    /// [`AuthError::refusal`] to show.
    pub async fn identify(
        &self,
        credential: Result<Option<Credential>, AuthError>,
        request_id: Option<String>,
    ) -> Result<Option<Caller>, AuthError> {
        let outcome = match credential {
            Ok(None) => Ok(None),
            Ok(Some(credential)) => self.caller(credential, request_id.clone()).await.map(Some),
            Err(error) => Err(error),
        };
        if let Err(error) = &outcome {
            let request_id = request_id.as_deref().unwrap_or("-");
            match error {
                AuthError::Backend(source) => {
                    tracing::warn!(request_id, error = %source, "checking a credential failed");
                }
                refused => tracing::debug!(request_id, reason = %refused, "credential refused"),
            }
        }
        outcome
    }

    /// The caller a credential belongs to.
    async fn caller(&self, credential: Credential, request_id: Option<String>) -> Result<Caller, AuthError> {
        // A refusal is an answer and is cached; a backend failure is an error, which `try_get_with`
        // never caches, so the next request asks again.
        let key = cache_key(&credential);
        let checked = self
            .cache
            .try_get_with(key, async {
                let identity = match self
                    .monolith
                    .me(&credential, request_id.as_deref(), &banyan_sources::TraceContext::off())
                    .await
                {
                    Ok(user) => Identity::Known(user.id),
                    Err(SourceError::Unauthenticated) => Identity::Refused,
                    Err(other) => return Err(other),
                };
                // Only a fresh answer updates the stale-on-error memory: a refusal wipes it, so a
                // credential the monolith refused once is never served stale.
                if let Some(last_known) = &self.last_known {
                    match identity {
                        Identity::Known(user_id) => last_known.insert(key, user_id).await,
                        Identity::Refused => last_known.invalidate(&key).await,
                    }
                }
                Ok(identity)
            })
            .await
            .map_err(|e: std::sync::Arc<SourceError>| (*e).clone());
        let identity = match checked {
            Ok(identity) => identity,
            // Only an unreachable, slow or 5xx monolith is a blip to ride out; an answer it should
            // never give (`BadResponse`) is not served stale.
            Err(failure @ (SourceError::Unavailable { .. } | SourceError::Timeout { .. })) => {
                match self.stale(&key).await {
                    Some(user_id) => {
                        let request_id = request_id.as_deref().unwrap_or("-");
                        tracing::warn!(
                            request_id,
                            error = %failure,
                            "checking a credential failed; serving its last known identity (auth.stale_on_error)"
                        );
                        Identity::Known(user_id)
                    }
                    None => return Err(AuthError::Backend(failure)),
                }
            }
            Err(failure) => return Err(AuthError::Backend(failure)),
        };
        match identity {
            Identity::Known(user_id) => Ok(Caller {
                credential,
                user_id,
                request_id,
                budget: Default::default(),
                forwarded_headers: Vec::new(),
                trace: banyan_sources::TraceContext::off(),
            }),
            Identity::Refused => Err(AuthError::InvalidCredential),
        }
    }

    /// The user a credential belonged to when the monolith last accepted it, within
    /// `identity_cache_ttl + stale_on_error` of that check.
    async fn stale(&self, key: &CacheKey) -> Option<UserId> {
        self.last_known.as_ref()?.get(key).await
    }
}

/// The request id the request-id layer put on the request.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `Token <key>` or `Bearer <key>`, scheme case-insensitive.
pub fn parse_authorization(value: &str) -> Result<String, AuthError> {
    let (scheme, key) = value.trim().split_once(' ').ok_or(AuthError::MalformedHeader)?;
    let key = key.trim();
    let scheme_ok = scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
    if !scheme_ok || key.is_empty() || key.contains(char::is_whitespace) {
        return Err(AuthError::MalformedHeader);
    }
    Ok(key.to_owned())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_schemes() {
        assert_eq!(parse_authorization("Token abc").ok().as_deref(), Some("abc"));
        assert_eq!(parse_authorization("bearer abc").ok().as_deref(), Some("abc"));
        assert!(parse_authorization("Basic abc").is_err());
        assert!(parse_authorization("Token").is_err());
        assert!(parse_authorization("Token a b").is_err());
    }

    #[test]
    fn session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, "theme=dark; sessionid=k3y; x=1".parse().expect("header"));
        assert_eq!(cookie(&headers, "sessionid").as_deref(), Some("k3y"));
        assert_eq!(cookie(&headers, "csrftoken"), None);
    }

    #[test]
    fn refusals_hide_the_backends_detail() {
        let detail = "error sending request for url (http://10.0.0.7:8000/api/v1/me/): 502 <html>";
        let backend = banyan_sources::Backend::Monolith;
        let failures = [
            SourceError::Unavailable { backend, detail: detail.to_owned() },
            SourceError::BadResponse { backend, detail: detail.to_owned() },
            SourceError::Timeout { backend, timeout: std::time::Duration::from_secs(5) },
        ];
        for failure in failures {
            let refusal = AuthError::Backend(failure).refusal();
            assert!(refusal.status.is_server_error());
            assert!(!refusal.message.contains("10.0.0.7") && !refusal.message.contains("html"));
            assert!(refusal.message.len() <= 123, "a close reason fits a close frame");
        }
        assert_eq!(AuthError::InvalidCredential.refusal().close_code, CLOSE_FORBIDDEN);
    }

    #[test]
    fn cache_keys_are_digests_of_kind_and_secret_not_the_secret() {
        let secret = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b";
        let token = Credential::Token(secret.to_owned());
        let session = Credential::Session(SessionCredential {
            cookie_name: "sessionid".to_owned(),
            session_id: secret.to_owned(),
            csrf_cookie: None,
            csrf_headers: Vec::new(),
        });
        let key: CacheKey = cache_key(&token);
        // Computed independently: `printf 'token:%s' <secret> | sha256sum`.
        assert_eq!(hex::encode(key), "1af2a7710ce428da88a9ba08e6f477126c017659462b40568cce20715d27bd22");
        assert!(!hex::encode(key).contains(secret));
        assert!(!key.windows(secret.len()).any(|w| w == secret.as_bytes()));
        // Same secret, other kind: another key.
        assert_ne!(cache_key(&session), key);
    }
}
