//! The monolith's own tables for the data that moved to the services: email events (for the
//! legacy analytics view) and drafts (for the legacy draft view), as a Django app keeps them in
//! its own Postgres tables.
//!
//! They are seeded from the same [`Dataset`] as the event store and the draft store, and kept in
//! step by a dual write, as a real ingestion pipeline would: every event ingested by the event
//! store (gRPC `AppendEvents`, the background generator, [`DevStack::append_events`]) is also
//! inserted here, and every draft the draft store saves is copied here. Nothing here calls the
//! stores, and the analytics are counted here by a plain row scan, the way the Django ORM would,
//! so the legacy views are a second computation, not the services' answer by another road.
//!
//! [`DevStack::set_legacy_sync`] turns the dual write off: the legacy views then fall behind,
//! which is how a test (or the migration engine's shadow comparison) sees the two sides disagree.
//!
//! [`DevStack::append_events`]: crate::DevStack::append_events
//! [`DevStack::set_legacy_sync`]: crate::DevStack::set_legacy_sync

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};

use crate::dataset::Dataset;
use crate::proto::drafts::{BlockKind, Draft};
use crate::proto::events::EventKind;
use crate::time;

/// One row of the monolith's `email_event` table.
#[derive(Debug, Clone)]
struct EventRow {
    /// The event's kind as the Django model stores it: `"sent"`, `"delivered"`, ...
    kind: &'static str,
    recipient: Arc<str>,
    occurred_at: DateTime<Utc>,
}

/// One content block as the monolith stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockRow {
    pub(crate) id: String,
    /// `"heading"`, `"text"`, `"image"`, `"button"` or `"divider"`.
    pub(crate) block_type: &'static str,
    pub(crate) content: String,
}

/// One row of the monolith's `draft` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DraftRow {
    pub(crate) version: u64,
    pub(crate) blocks: Vec<BlockRow>,
    pub(crate) updated_at: Option<DateTime<Utc>>,
    /// The author as recorded (a decimal user id, unless a client sent something else).
    pub(crate) updated_by: String,
}

/// The legacy analytics of one template over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Analytics {
    pub(crate) sent: u64,
    pub(crate) delivered: u64,
    pub(crate) opened: u64,
    pub(crate) clicked: u64,
    pub(crate) bounced: u64,
    pub(crate) unique_opens: u64,
}

/// The monolith's tables, and the switch of the dual write that feeds them.
#[derive(Debug)]
pub(crate) struct LegacyTables {
    /// `email_event`, by `template_id` (the column Django indexes as a foreign key).
    events: RwLock<HashMap<u64, Vec<EventRow>>>,
    /// `draft`, by template id.
    drafts: RwLock<HashMap<u64, DraftRow>>,
    /// Whether writes to the services are also written here.
    sync: AtomicBool,
}

fn kind_column(kind: EventKind) -> Option<&'static str> {
    match kind {
        EventKind::Sent => Some("sent"),
        EventKind::Delivered => Some("delivered"),
        EventKind::Opened => Some("opened"),
        EventKind::Clicked => Some("clicked"),
        EventKind::Bounced => Some("bounced"),
        EventKind::Unspecified => None,
    }
}

fn block_type(kind: i32) -> &'static str {
    match BlockKind::try_from(kind) {
        Ok(BlockKind::Heading) => "heading",
        Ok(BlockKind::Text) => "text",
        Ok(BlockKind::Image) => "image",
        Ok(BlockKind::Button) => "button",
        Ok(BlockKind::Divider) => "divider",
        Ok(BlockKind::Unspecified) | Err(_) => "unknown",
    }
}

impl LegacyTables {
    /// The tables as the dataset seeds them, with the dual write on.
    pub(crate) fn new(dataset: &Dataset) -> Self {
        let mut events: HashMap<u64, Vec<EventRow>> = HashMap::new();
        for event in &dataset.events {
            if let Some(kind) = kind_column(event.kind) {
                events.entry(event.template).or_default().push(EventRow {
                    kind,
                    recipient: event.recipient.clone(),
                    occurred_at: event.occurred_at,
                });
            }
        }
        let drafts = dataset
            .drafts
            .iter()
            .map(|d| {
                let blocks = d
                    .blocks
                    .iter()
                    .map(|b| BlockRow {
                        id: b.id.clone(),
                        block_type: block_type(b.kind.into()),
                        content: b.content.clone(),
                    })
                    .collect();
                let row = DraftRow {
                    version: d.version,
                    blocks,
                    updated_at: Some(d.updated_at),
                    updated_by: d.updated_by.clone(),
                };
                (d.template, row)
            })
            .collect();
        Self { events: RwLock::new(events), drafts: RwLock::new(drafts), sync: AtomicBool::new(true) }
    }

    fn events(&self) -> RwLockReadGuard<'_, HashMap<u64, Vec<EventRow>>> {
        // Inserts push whole rows: a poisoned lock still guards consistent rows.
        self.events.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn events_mut(&self) -> RwLockWriteGuard<'_, HashMap<u64, Vec<EventRow>>> {
        self.events.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn drafts_mut(&self) -> RwLockWriteGuard<'_, HashMap<u64, DraftRow>> {
        self.drafts.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether writes to the services reach these tables.
    pub(crate) fn syncing(&self) -> bool {
        self.sync.load(Ordering::SeqCst)
    }

    /// Turns the dual write on or off.
    pub(crate) fn set_sync(&self, enabled: bool) {
        self.sync.store(enabled, Ordering::SeqCst);
    }

    /// The legacy analytics: a scan of the template's rows, counting those with
    /// `start <= occurred_at < end` by kind, and the distinct recipients of the opens
    /// (`.filter(...).values("kind").annotate(Count("id"))` and
    /// `.filter(kind="opened").values("recipient").distinct().count()`).
    pub(crate) fn analytics(&self, template: u64, start: DateTime<Utc>, end: DateTime<Utc>) -> Analytics {
        let events = self.events();
        let mut counts = Analytics::default();
        let mut openers: BTreeSet<&str> = BTreeSet::new();
        for row in events.get(&template).map_or(&[][..], Vec::as_slice) {
            if row.occurred_at < start || row.occurred_at >= end {
                continue;
            }
            match row.kind {
                "sent" => counts.sent += 1,
                "delivered" => counts.delivered += 1,
                "opened" => {
                    counts.opened += 1;
                    openers.insert(&row.recipient);
                }
                "clicked" => counts.clicked += 1,
                "bounced" => counts.bounced += 1,
                _ => {}
            }
        }
        counts.unique_opens = openers.len() as u64;
        counts
    }

    /// The template's draft row.
    pub(crate) fn draft(&self, template: u64) -> Option<DraftRow> {
        self.drafts.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&template).cloned()
    }

    /// The dual write of ingested events: inserts the rows (events of templates that are not
    /// integer ids have no row: the foreign key would refuse them).
    pub(crate) fn insert_events<'a>(
        &self,
        events: impl IntoIterator<Item = (&'a str, EventKind, &'a Arc<str>, DateTime<Utc>)>,
    ) {
        let mut table = self.events_mut();
        for (template, kind, recipient, occurred_at) in events {
            let (Ok(template), Some(kind)) = (template.parse::<u64>(), kind_column(kind)) else { continue };
            table.entry(template).or_default().push(EventRow {
                kind,
                recipient: recipient.clone(),
                occurred_at,
            });
        }
    }

    /// The dual write of a saved draft: stores it unless a newer version is there already
    /// (concurrent saves may arrive out of order).
    pub(crate) fn save_draft(&self, draft: &Draft) {
        let Ok(template) = draft.template_id.parse::<u64>() else { return };
        let row = DraftRow {
            version: draft.version,
            blocks: draft
                .blocks
                .iter()
                .map(|b| BlockRow {
                    id: b.id.clone(),
                    block_type: block_type(b.kind),
                    content: b.content.clone(),
                })
                .collect(),
            updated_at: draft.updated_at.as_ref().and_then(time::from_timestamp),
            updated_by: draft.updated_by.clone(),
        };
        let mut drafts = self.drafts_mut();
        if drafts.get(&template).is_none_or(|current| current.version < row.version) {
            drafts.insert(template, row);
        }
    }
}
