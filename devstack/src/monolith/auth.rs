//! Who is calling, the way Django REST framework decides it: `TokenAuthentication`
//! (`Authorization: Token <key>`) and `SessionAuthentication` (the `sessionid` cookie, with
//! Django's CSRF check on unsafe methods), tried in the configured order; and the path id
//! extractor.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};

use super::MonolithState;
use super::error::ApiError;

/// Django's `SESSION_COOKIE_NAME`.
pub(crate) const SESSION_COOKIE: &str = "sessionid";
/// Django's `CSRF_COOKIE_NAME`.
pub(crate) const CSRF_COOKIE: &str = "csrftoken";
/// Django's `CSRF_HEADER_NAME` (`HTTP_X_CSRFTOKEN`), as a header.
pub(crate) const CSRF_HEADER: &str = "x-csrftoken";

/// The authenticated caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    /// The caller's user id.
    pub(crate) user: u64,
}

/// Why an authentication class refused a request.
enum Refused {
    /// `AuthenticationFailed`: a credential was there but is wrong.
    Failed(String),
    /// `PermissionDenied("CSRF Failed: ...")` from `SessionAuthentication.enforce_csrf`.
    Csrf(String),
}

/// One DRF authentication class: a user, no opinion (`None`), or a refusal.
type Authentication = fn(&Parts, &MonolithState) -> Result<Option<Caller>, Refused>;

const NOT_PROVIDED: &str = "Authentication credentials were not provided.";

impl FromRequestParts<Arc<MonolithState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<MonolithState>,
    ) -> Result<Self, Self::Rejection> {
        // DRF tries each authentication class in order; the first that returns a user wins, the
        // first that raises ends the search.
        let session_first = state.session_authentication_first;
        let order: [Authentication; 2] = if session_first { [session, token] } else { [token, session] };
        for authenticate in order {
            match authenticate(parts, state) {
                Ok(Some(caller)) => return Ok(caller),
                Ok(None) => {}
                Err(Refused::Failed(detail)) => return Err(not_authenticated(session_first, detail)),
                Err(Refused::Csrf(reason)) => {
                    return Err(ApiError::Detail(StatusCode::FORBIDDEN, format!("CSRF Failed: {reason}")));
                }
            }
        }
        Err(not_authenticated(session_first, NOT_PROVIDED.into()))
    }
}

/// DRF answers `NotAuthenticated`/`AuthenticationFailed` with 401 and the first authentication
/// class's `WWW-Authenticate` challenge; `SessionAuthentication` has none, so with it first the
/// answer is 403.
fn not_authenticated(session_first: bool, detail: String) -> ApiError {
    if session_first {
        ApiError::Detail(StatusCode::FORBIDDEN, detail)
    } else {
        ApiError::Unauthenticated(detail)
    }
}

/// `TokenAuthentication`: another scheme (or none) is not its business.
fn token(parts: &Parts, state: &MonolithState) -> Result<Option<Caller>, Refused> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else { return Ok(None) };
    let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
        return Err(Refused::Failed(
            "Invalid token header. Token string should not contain invalid characters.".into(),
        ));
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(None),
        [scheme, ..] if !scheme.eq_ignore_ascii_case("token") => Ok(None),
        [_] => Err(Refused::Failed("Invalid token header. No credentials provided.".into())),
        [_, key] => state
            .user_for_token(key)
            .map(|user| Some(Caller { user }))
            .ok_or_else(|| Refused::Failed("Invalid token.".into())),
        _ => Err(Refused::Failed("Invalid token header. Token string should not contain spaces.".into())),
    }
}

/// `SessionAuthentication`: a session that belongs to no one is an anonymous user (not an
/// error); a signed-in session must pass Django's CSRF check on unsafe methods.
fn session(parts: &Parts, state: &MonolithState) -> Result<Option<Caller>, Refused> {
    let Some(user) = cookie(&parts.headers, SESSION_COOKIE).and_then(|key| state.user_for_session(&key))
    else {
        return Ok(None);
    };
    if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE) {
        check_csrf(&parts.headers).map_err(Refused::Csrf)?;
    }
    Ok(Some(Caller { user }))
}

/// `CsrfViewMiddleware._check_token` (Django 4.1+): the `csrftoken` cookie holds the secret (32
/// characters, or 64 when masked); the `X-CSRFToken` header must hold the same secret, plain or
/// masked. `Err` is Django's reason. (The `Origin`/`Referer` checks apply over HTTPS, which the
/// stand-in does not serve.)
pub(crate) fn check_csrf(headers: &HeaderMap) -> Result<(), String> {
    let Some(cookie) = cookie(headers, CSRF_COOKIE) else { return Err("CSRF cookie not set.".into()) };
    let secret = token_format(&cookie).map_err(|reason| format!("CSRF cookie {reason}."))?;
    let Some(header) = headers.get(CSRF_HEADER) else { return Err("CSRF token missing.".into()) };
    let source = "the 'X-Csrftoken' HTTP header";
    let header = header.to_str().map_err(|_| format!("CSRF token from {source} has invalid characters."))?;
    let sent = token_format(header).map_err(|reason| format!("CSRF token from {source} {reason}."))?;
    if sent == secret { Ok(()) } else { Err(format!("CSRF token from {source} incorrect.")) }
}

/// Django's `CSRF_ALLOWED_CHARS`.
const CSRF_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// `_check_token_format`, then the secret: a 32-character token is the secret, a 64-character
/// one is a mask followed by the masked secret.
fn token_format(token: &str) -> Result<String, &'static str> {
    if token.len() != 32 && token.len() != 64 {
        return Err("has incorrect length");
    }
    let indexes: Vec<usize> = token
        .bytes()
        .map(|b| CSRF_CHARS.iter().position(|c| *c == b))
        .collect::<Option<_>>()
        .ok_or("has invalid characters")?;
    if indexes.len() == 32 {
        return Ok(token.to_owned());
    }
    let (mask, masked) = indexes.split_at(32);
    Ok(masked
        .iter()
        .zip(mask)
        .map(|(x, y)| char::from(CSRF_CHARS[(*x + CSRF_CHARS.len() - *y) % CSRF_CHARS.len()]))
        .collect())
}

/// A cookie's value among the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The `{id}` of the path, an integer as Django's `<int:pk>` matches it; anything else is a 404.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdPath(pub(crate) u64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::not_found())?;
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::not_found());
        }
        raw.parse().map(IdPath).map_err(|_| ApiError::not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: Option<&str>, csrf: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(cookie) = cookie {
            headers.insert(COOKIE, cookie.parse().expect("a header value"));
        }
        if let Some(csrf) = csrf {
            headers.insert(CSRF_HEADER, csrf.parse().expect("a header value"));
        }
        headers
    }

    /// Masks `secret` with `mask` as Django's `_mask_cipher_secret` does.
    fn mask(secret: &str, mask: &str) -> String {
        let index = |c: u8| CSRF_CHARS.iter().position(|x| *x == c).expect("a CSRF char");
        let masked: String = secret
            .bytes()
            .zip(mask.bytes())
            .map(|(s, m)| char::from(CSRF_CHARS[(index(s) + index(m)) % CSRF_CHARS.len()]))
            .collect();
        format!("{mask}{masked}")
    }

    #[test]
    fn csrf_is_checked_like_django() {
        let secret = "abcdefghijABCDEFGHIJ0123456789zz";
        let cookie = format!("sessionid=x; csrftoken={secret}");
        assert_eq!(check_csrf(&headers(Some(&cookie), Some(secret))), Ok(()));
        let masked = mask(secret, "ZYXWVUTSRQponmlkjihg9876543210aa");
        assert_eq!(masked.len(), 64);
        assert_eq!(check_csrf(&headers(Some(&cookie), Some(&masked))), Ok(()));
        assert_eq!(
            check_csrf(&headers(Some("sessionid=x"), Some(secret))).unwrap_err(),
            "CSRF cookie not set."
        );
        assert_eq!(check_csrf(&headers(Some(&cookie), None)).unwrap_err(), "CSRF token missing.");
        assert_eq!(
            check_csrf(&headers(Some(&cookie), Some("short"))).unwrap_err(),
            "CSRF token from the 'X-Csrftoken' HTTP header has incorrect length."
        );
        assert_eq!(
            check_csrf(&headers(Some(&cookie), Some("abcdefghijABCDEFGHIJ0123456789zy"))).unwrap_err(),
            "CSRF token from the 'X-Csrftoken' HTTP header incorrect."
        );
    }
}
