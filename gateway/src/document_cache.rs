//! The documents already parsed and measured, so a repeated query (a page sends the same few
//! texts again and again) is neither parsed nor checked against `[limits]`' document rules
//! (steps 1 to 3 of `limits`) a second time.
//!
//! Keyed by a hash of the text, but a hit also compares the whole text: two texts never share an
//! entry, whatever their hashes. Only a document that passed every rule with no warn-only excess
//! is kept, so a refusal is worked out (and a warning logged and counted) anew on every request,
//! exactly as without the cache. Bounded by `server.document_cache_size` entries (moka, TinyLFU),
//! and texts above [`MAX_CACHED_TEXT`] are not kept.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::Variables;
use async_graphql::parser::types::{ExecutableDocument, OperationDefinition};
use async_graphql::registry::Registry;

use crate::limits::cost::CostMemo;
use crate::response_order::ResponseOrder;
use crate::validated::VariableSites;

/// Longest text kept (16 KiB): the contract's operations are a few KiB at most, and a parsed
/// document takes several times its text in memory.
pub(crate) const MAX_CACHED_TEXT: usize = 16 * 1024;

/// A parsed document within every limit, with the text it was parsed from.
pub(crate) struct CachedDocument {
    text: Box<str>,
    /// The document, as `limits::parse_bounded` returned it.
    pub(crate) document: ExecutableDocument,
    /// The order of the objects of the operation that last ran, by its name (a document is
    /// nearly always sent for one operation).
    pub(crate) order: OnceLock<(Option<String>, Arc<ResponseOrder>)>,
    /// Whether the document has passed async-graphql's full validation.
    validated: AtomicBool,
    /// The arguments its variables go into (`crate::validated`), or `None` when they cannot all
    /// be typed; worked out on the first request after the validation, so a document that is
    /// not kept never needs them.
    variable_sites: OnceLock<Option<VariableSites>>,
    /// `limits::complexity_bound` of the document, which depends on its text alone: walked
    /// once, not on every request that sends it.
    complexity_bound: OnceLock<usize>,
    /// The last cost worked out for the document (`limits::cost`), kept with what it read.
    cost: Mutex<Option<CostMemo>>,
}

impl CachedDocument {
    /// Records that the document has passed async-graphql's full validation.
    pub(crate) fn mark_validated(&self) {
        // Read first: a popular document is marked by every response, from every core, and a
        // store each time would bounce its cache line between them.
        if !self.validated.load(Ordering::Relaxed) {
            self.validated.store(true, Ordering::Relaxed);
        }
    }

    /// At least async-graphql's flat complexity of any operation of the document
    /// (`limits::complexity_bound`).
    pub(crate) fn complexity_bound(&self) -> usize {
        *self.complexity_bound.get_or_init(|| crate::limits::complexity_bound(&self.document))
    }

    /// The cost of `operation` of the document, asked for as `operation_name`, with
    /// `variables` (`limits::cost`): remembered from the last request when it read the same.
    pub(crate) fn cost(
        &self,
        registry: &Registry,
        operation: (&OperationDefinition, Option<&str>),
        variables: &Variables,
        default_list_size: u64,
    ) -> u64 {
        crate::limits::cost::remembered_cost(
            &self.cost,
            registry,
            &self.document,
            operation,
            variables,
            default_list_size,
        )
    }

    /// Whether a request for the document with `variables` may be validated in async-graphql's
    /// fast mode (`crate::validated`).
    pub(crate) fn validated_for(&self, variables: &Variables, registry: &Registry) -> bool {
        self.validated.load(Ordering::Relaxed)
            && self
                .variable_sites
                .get_or_init(|| VariableSites::of(&self.document, registry))
                .as_ref()
                .is_some_and(|sites| sites.accept(variables, registry))
    }
}

/// The cache (see the module's documentation). Cheap to clone.
#[derive(Clone)]
pub(crate) struct DocumentCache<S = RandomState> {
    entries: Option<moka::sync::Cache<u64, Arc<CachedDocument>>>,
    hasher: S,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl DocumentCache {
    /// A cache of at most `capacity` documents; `0` keeps none.
    pub(crate) fn new(capacity: u64) -> Self {
        Self::with_hasher(capacity, RandomState::new())
    }
}

impl<S: BuildHasher> DocumentCache<S> {
    /// [`DocumentCache::new`] hashing with `hasher` (a test gives every text the same hash).
    pub(crate) fn with_hasher(capacity: u64, hasher: S) -> Self {
        let entries = (capacity > 0).then(|| moka::sync::Cache::new(capacity));
        Self { entries, hasher, counts: Arc::default() }
    }

    /// The document parsed from exactly `text`, if kept. Counts a hit or a miss (not when the
    /// cache is off).
    pub(crate) fn get(&self, text: &str) -> Option<Arc<CachedDocument>> {
        let entries = self.entries.as_ref()?;
        let found = entries.get(&self.hasher.hash_one(text)).filter(|cached| &*cached.text == text);
        let count = if found.is_some() { &self.counts.hits } else { &self.counts.misses };
        count.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `document`, parsed from `text` within every limit, and returns it shared. A text
    /// whose hash another text holds replaces it (the next ask for either compares the text).
    pub(crate) fn insert(&self, text: &str, document: ExecutableDocument) -> Arc<CachedDocument> {
        let cached = Arc::new(CachedDocument {
            text: Box::from(text),
            document,
            order: OnceLock::new(),
            validated: AtomicBool::new(false),
            variable_sites: OnceLock::new(),
            complexity_bound: OnceLock::new(),
            cost: Mutex::new(None),
        });
        if let Some(entries) = &self.entries
            && text.len() <= MAX_CACHED_TEXT
        {
            entries.insert(self.hasher.hash_one(text), cached.clone());
        }
        cached
    }

    /// Requests that found their document here.
    pub(crate) fn hits(&self) -> u64 {
        self.counts.hits.load(Ordering::Relaxed)
    }

    /// Requests that did not (their document was parsed).
    pub(crate) fn misses(&self) -> u64 {
        self.counts.misses.load(Ordering::Relaxed)
    }

    /// Documents kept, once moka has applied its pending insertions and evictions.
    pub(crate) fn entries(&self) -> u64 {
        self.entries.as_ref().map_or(0, |entries| {
            entries.run_pending_tasks();
            entries.entry_count()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasherDefault, Hasher};

    use super::*;

    /// Gives every text the same hash, so only the comparison of texts tells entries apart.
    #[derive(Default)]
    struct Colliding;

    impl Hasher for Colliding {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _bytes: &[u8]) {}
    }

    fn parse(text: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(text).expect("parses")
    }

    fn first_field(cached: &CachedDocument) -> String {
        let (_, operation) = cached.document.operations.iter().next().expect("an operation");
        match &operation.node.selection_set.node.items[0].node {
            async_graphql::parser::types::Selection::Field(field) => field.node.name.node.to_string(),
            _ => String::new(),
        }
    }

    #[test]
    fn two_texts_with_one_hash_never_share_an_entry() {
        let cache = DocumentCache::with_hasher(10, BuildHasherDefault::<Colliding>::default());
        cache.insert("{ a }", parse("{ a }"));
        assert!(cache.get("{ b }").is_none(), "another text with the same hash is a miss");
        cache.insert("{ b }", parse("{ b }"));
        let found = cache.get("{ b }").expect("kept");
        assert_eq!(first_field(&found), "b");
        assert!(cache.get("{ a }").is_none(), "the colliding text it replaced is not served for it");
        assert_eq!((cache.hits(), cache.misses()), (1, 2));
    }

    #[test]
    fn the_bound_holds_and_zero_keeps_nothing() {
        let cache = DocumentCache::new(3);
        for n in 0..50 {
            let text = format!("{{ f{n} }}");
            cache.insert(&text, parse(&text));
        }
        assert!(cache.entries() <= 3, "{} entries", cache.entries());
        let off = DocumentCache::new(0);
        off.insert("{ a }", parse("{ a }"));
        assert!(off.get("{ a }").is_none());
        assert_eq!((off.entries(), off.hits(), off.misses()), (0, 0, 0));
    }

    #[test]
    fn long_texts_are_not_kept() {
        let cache = DocumentCache::new(3);
        let text = format!("{{ a }}{}", " ".repeat(MAX_CACHED_TEXT));
        cache.insert(&text, parse(&text));
        assert!(cache.get(&text).is_none());
    }
}
