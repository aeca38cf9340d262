//! Who is calling: the credential from the request (`Authorization: Token`/`Bearer`, or the
//! session cookie), checked against the monolith once and then cached briefly, so a page of
//! GraphQL requests costs one identity check, not one per request.

use std::sync::Arc;

use banyan_sources::domain::UserId;
use banyan_sources::monolith::MonolithClient;
use banyan_sources::{Caller, SourceError};
use http::HeaderMap;
use moka::future::Cache;

use crate::config::AuthConfig;

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

/// Checks credentials, with a short-lived cache of the answers.
#[derive(Clone)]
pub struct Authenticator {
    monolith: MonolithClient,
    cache: Cache<String, UserId>,
    session_cookie: Arc<str>,
}

impl Authenticator {
    /// An authenticator asking `monolith`, caching per `config`.
    pub fn new(monolith: MonolithClient, config: &AuthConfig) -> Self {
        Self {
            monolith,
            cache: Cache::builder()
                .max_capacity(config.identity_cache_capacity)
                .time_to_live(config.identity_cache_ttl)
                .build(),
            session_cookie: config.session_cookie.as_str().into(),
        }
    }

    /// The credential carried by `headers`, if any.
    pub fn credential(&self, headers: &HeaderMap) -> Result<Option<String>, AuthError> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
            return parse_authorization(value).map(Some);
        }
        Ok(cookie(headers, &self.session_cookie))
    }

    /// The caller a credential belongs to.
    pub async fn caller(&self, token: String, request_id: Option<String>) -> Result<Caller, AuthError> {
        let user_id = self
            .cache
            .try_get_with(token.clone(), async {
                self.monolith.me(&token, request_id.as_deref()).await.map(|user| user.id)
            })
            .await
            .map_err(|e: Arc<SourceError>| match &*e {
                SourceError::Unauthenticated => AuthError::InvalidCredential,
                other => AuthError::Backend(other.clone()),
            })?;
        Ok(Caller { token, user_id, request_id })
    }
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
}
