//! Query strings, absolute URLs and DRF's page-number pagination.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::header::HOST;
use axum::http::request::Parts;
use serde::Serialize;
use serde_json::{Value, json};

use super::MonolithState;
use super::error::ApiError;

/// The page size when none (or an unusable one) is asked for (DRF's `PAGE_SIZE`).
pub(crate) const DEFAULT_PAGE_SIZE: usize = 25;
/// The largest page size; larger requests get this (`max_page_size`).
pub(crate) const MAX_PAGE_SIZE: usize = 100;

/// The request's URL, split up: enough to answer with absolute `next`/`previous` links.
#[derive(Debug, Clone)]
pub(crate) struct RequestUrl {
    host: String,
    path: String,
    /// The decoded query pairs, in request order.
    pairs: Vec<(String, String)>,
}

impl FromRequestParts<Arc<MonolithState>> for RequestUrl {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<MonolithState>,
    ) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty())
            .map_or_else(|| state.addr.to_string(), str::to_string);
        let pairs = parts
            .uri
            .query()
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .unwrap_or_default();
        Ok(RequestUrl { host, path: parts.uri.path().to_string(), pairs })
    }
}

impl RequestUrl {
    /// The last value of a query parameter, as Django's `QueryDict` gives it.
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The `id__in` filter: `None` when absent or empty, else the ids (a non-integer is a field
    /// error, as django-filter reports it).
    pub(crate) fn id_in(&self) -> Result<Option<Vec<u64>>, ApiError> {
        self.ids_in("id__in")
    }

    /// An `__in` filter of ids named `param` (`id__in`, `workspace__in`): `None` when absent or
    /// empty, else the ids (a non-integer is a field error, as django-filter reports it).
    pub(crate) fn ids_in(&self, param: &'static str) -> Result<Option<Vec<u64>>, ApiError> {
        let Some(raw) = self.param(param).filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().map_err(|_| ApiError::field(param, "Enter a whole number.")))
            .collect::<Result<Vec<u64>, ApiError>>()
            .map(Some)
    }

    /// This URL with `page` set to `page`, or removed when `None`; the query is re-encoded with
    /// its keys sorted, as DRF's `replace_query_param` does.
    fn with_page(&self, page: Option<usize>) -> String {
        let mut pairs: Vec<(String, String)> =
            self.pairs.iter().filter(|(k, _)| k != "page").cloned().collect();
        if let Some(page) = page {
            pairs.push(("page".to_string(), page.to_string()));
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if query.is_empty() {
            format!("http://{}{}", self.host, self.path)
        } else {
            format!("http://{}{}?{}", self.host, self.path, query)
        }
    }

    /// One page of `items`, per `page` and `page_size`, as `{"count", "next", "previous",
    /// "results"}`; a page that does not exist is `404 {"detail": "Invalid page."}`.
    pub(crate) fn paginate<T: Serialize>(&self, items: Vec<T>) -> Result<Json<Value>, ApiError> {
        self.paginate_with(items, |item| item)
    }

    /// [`paginate`](Self::paginate), turning only the items of the page into their resource.
    pub(crate) fn paginate_with<R, T: Serialize>(
        &self,
        items: Vec<R>,
        resource: impl FnMut(R) -> T,
    ) -> Result<Json<Value>, ApiError> {
        let size = self
            .param("page_size")
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|n| *n > 0)
            .map_or(DEFAULT_PAGE_SIZE, |n| usize::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE));
        let count = items.len();
        let pages = count.div_ceil(size).max(1);
        let page = match self.param("page").map(str::trim) {
            None => 1,
            Some("last") => pages,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (1..=pages).contains(n))
                .ok_or_else(ApiError::invalid_page)?,
        };
        let start = (page - 1) * size;
        let results: Vec<T> = items.into_iter().skip(start).take(size).map(resource).collect();
        let next = (page < pages).then(|| self.with_page(Some(page + 1)));
        let previous = match page {
            1 => None,
            2 => Some(self.with_page(None)),
            n => Some(self.with_page(Some(n - 1))),
        };
        Ok(Json(json!({
            "count": count,
            "next": next,
            "previous": previous,
            "results": results,
        })))
    }
}
