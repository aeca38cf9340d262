//! CSRF prevention for requests that ride the session cookie (see [`CsrfConfig`]): such a
//! request must be one a browser only sends after a CORS preflight, or it is refused before the
//! caller is identified. Requests authenticated by a header, or anonymous, are not affected: a
//! browser never adds an `Authorization` header to another site's request.
//!
//! The rule is Apollo Router's: a request is preflighted when its `Content-Type` is not one a
//! `<form>` can send (absent, `text/plain`, `application/x-www-form-urlencoded`,
//! `multipart/form-data`), or when it carries a header a page cannot add without a preflight.
//! It does not depend on which content types the GraphQL endpoint accepts.

use http::{HeaderMap, HeaderName, header};

use crate::config::Config;

/// The stable `extensions.code` of a refused request.
pub(crate) const CSRF_PREVENTED: &str = "CSRF_PREVENTED";

/// Content types a browser sends cross-site without a preflight (the Fetch standard's
/// CORS-safelisted request header values for `Content-Type`).
const SIMPLE_CONTENT_TYPES: [&str; 3] =
    ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain"];

/// The configured rule.
#[derive(Debug, Clone)]
pub(crate) struct CsrfRule {
    enabled: bool,
    /// Any one of these proves a preflight.
    preflight_headers: Vec<HeaderName>,
}

impl CsrfRule {
    /// `[csrf]`, plus Django's CSRF header (`auth.csrf_header`), which a page cannot add
    /// cross-site without a preflight either.
    pub(crate) fn new(config: &Config) -> Self {
        let names = config.csrf.required_headers.iter().chain(std::iter::once(&config.auth.csrf_header));
        // Names were validated with the configuration.
        let preflight_headers =
            names.filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok()).collect();
        Self { enabled: config.csrf.enabled, preflight_headers }
    }

    /// Whether a request with these headers may proceed; `rides_session` says whether its
    /// credential is the session cookie (ambient) rather than a header.
    pub(crate) fn allows(&self, headers: &HeaderMap, rides_session: bool) -> bool {
        !self.enabled || !rides_session || self.preflighted(headers)
    }

    /// A browser would have sent a preflight before this request.
    fn preflighted(&self, headers: &HeaderMap) -> bool {
        let custom_header = self.preflight_headers.iter().any(|name| headers.contains_key(name));
        custom_header || !has_simple_content_type(headers)
    }

    /// What a refused request is told: what to add.
    pub(crate) fn message(&self) -> String {
        let names: Vec<&str> = self.preflight_headers.iter().map(HeaderName::as_str).collect();
        format!(
            "this request carries the session cookie but could have been sent by another site: send it \
             with Content-Type: application/json, or with one of the headers {}",
            names.join(", ")
        )
    }
}

/// No `Content-Type`, or one of the three a `<form>` can send (parameters and case ignored);
/// a value that is not text counts as simple, to be safe.
fn has_simple_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return true };
    let Ok(value) = value.to_str() else { return true };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.is_empty() || SIMPLE_CONTENT_TYPES.contains(&essence.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_session_requests_a_form_could_send_are_refused() {
        let rule = CsrfRule::new(&Config::default());
        for simple in [
            &[][..],
            &[("content-type", "text/plain")],
            &[("content-type", "Text/Plain; charset=utf-8")],
            &[("content-type", "application/x-www-form-urlencoded")],
            &[("content-type", "multipart/form-data; boundary=x")],
        ] {
            assert!(!rule.allows(&headers(simple), true), "{simple:?}");
            assert!(rule.allows(&headers(simple), false), "no session, no rule: {simple:?}");
        }
        for preflighted in [
            &[("content-type", "application/json")][..],
            &[("x-banyan-csrf", "1")],
            &[("apollo-require-preflight", "true"), ("content-type", "text/plain")],
            &[("x-apollo-operation-name", "Q")],
            &[("x-csrftoken", "t")],
        ] {
            assert!(rule.allows(&headers(preflighted), true), "{preflighted:?}");
        }
        let mut config = Config::default();
        config.csrf.enabled = false;
        assert!(CsrfRule::new(&config).allows(&headers(&[]), true));
    }
}
