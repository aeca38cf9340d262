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
//! The dual write runs one way only, from the services to the monolith. The monolith's own draft
//! write endpoints write this table and nothing else, whatever the knob says: a draft written
//! through the monolith is not in the draft store (the two stores of record are not
//! synchronised, as `banyan_migration::banyan`'s draft writes declare). When both sides take the
//! same version, the copy of the store's write is dropped here, so the tables disagree silently,
//! which is the split brain the migration engine warns about.
//!
//! The events table also serves the legacy events view, newest first by `occurred_at` then by the
//! event store's sequence, which the pipeline writes along with each row.
//!
//! [`DevStack::append_events`]: crate::DevStack::append_events
//! [`DevStack::set_legacy_sync`]: crate::DevStack::set_legacy_sync

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};

use crate::dataset::Dataset;
use crate::proto::drafts::{BlockKind, Draft};
use crate::proto::events::EventKind;
use crate::time;

/// One row of the monolith's `email_event` table.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    /// The event store's sequence of the event, which the ingestion pipeline writes along (the
    /// column `event_sequence`): the monolith's own primary key is not the store's.
    pub(crate) sequence: u64,
    /// The event's kind as the Django model stores it: `"sent"`, `"delivered"`, ...
    pub(crate) kind: &'static str,
    pub(crate) recipient: Arc<str>,
    pub(crate) occurred_at: DateTime<Utc>,
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
    /// The number the next block inserted through the monolith gets (`b{n}`), as the draft
    /// store numbers them: one past the highest ever seen, never reused after a delete.
    pub(crate) next_block: u64,
}

/// Why a write to the monolith's draft table was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DraftWriteError {
    /// The template has no draft.
    NoDraft,
    /// The draft is at another version than the writer expected.
    VersionConflict {
        /// The version now.
        current: u64,
    },
    /// The draft has no block with that id.
    NoBlock,
}

/// One change to a draft row, checked against its version by [`LegacyTables::edit_draft`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DraftChange {
    /// Insert a block at `index` (past the end appends); its id is `b{next_block}`.
    Insert {
        /// Where.
        index: usize,
        /// `"heading"`, `"text"`, ...
        block_type: &'static str,
        /// Its content.
        content: String,
    },
    /// Replace a block's content.
    Update {
        /// Which block.
        block_id: String,
        /// The new content.
        content: String,
    },
    /// Remove a block.
    Delete {
        /// Which block.
        block_id: String,
    },
}

/// The highest `n` among block ids `b{n}`, plus one (1 when there is none).
fn next_block_number(blocks: &[BlockRow]) -> u64 {
    blocks
        .iter()
        .filter_map(|b| b.id.strip_prefix('b').and_then(|n| n.parse::<u64>().ok()))
        .max()
        .map_or(1, |n| n + 1)
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
    /// The A/A noise knob: whether the analytics view says when it computed its numbers.
    aa_noise: AtomicBool,
    /// The last `computed_at` handed out, in microseconds since the epoch.
    last_computed_at: AtomicI64,
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
                    sequence: event.sequence,
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
                let blocks: Vec<BlockRow> = d
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
                    next_block: next_block_number(&blocks),
                    blocks,
                    updated_at: Some(d.updated_at),
                    updated_by: d.updated_by.clone(),
                };
                (d.template, row)
            })
            .collect();
        Self {
            events: RwLock::new(events),
            drafts: RwLock::new(drafts),
            sync: AtomicBool::new(true),
            aa_noise: AtomicBool::new(false),
            last_computed_at: AtomicI64::new(0),
        }
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

    /// Whether the A/A noise knob is on.
    pub(crate) fn aa_noise(&self) -> bool {
        self.aa_noise.load(Ordering::SeqCst)
    }

    /// Turns the A/A noise knob on or off.
    pub(crate) fn set_aa_noise(&self, enabled: bool) {
        self.aa_noise.store(enabled, Ordering::SeqCst);
    }

    /// A `computed_at` for one analytics answer: now, but always at least one microsecond after
    /// the previous one, so two calls never get the same value however close together they come
    /// (what makes it noise is that it differs between identical calls, every time).
    pub(crate) fn computed_at(&self) -> DateTime<Utc> {
        let now = time::now().timestamp_micros();
        let previous = self
            .last_computed_at
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now.max(last + 1)))
            .unwrap_or(now);
        DateTime::from_timestamp_micros(now.max(previous + 1)).unwrap_or_else(time::now)
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

    /// The template's events, newest first (`.order_by("-occurred_at", "-event_sequence")`).
    pub(crate) fn events_newest_first(&self, template: u64) -> Vec<EventRow> {
        let mut rows = self.events().get(&template).cloned().unwrap_or_default();
        rows.sort_by(|a, b| b.occurred_at.cmp(&a.occurred_at).then(b.sequence.cmp(&a.sequence)));
        rows
    }

    /// A write to the monolith's draft table, as a Django view does it inside
    /// `select_for_update()`: the row must exist, be at `expected_version`, and the change must
    /// apply; then the version goes up by one and the author and time are stamped. Nothing is
    /// copied to the draft store: the dual write runs from the services to the monolith only.
    pub(crate) fn edit_draft(
        &self,
        template: u64,
        expected_version: u64,
        user: u64,
        change: DraftChange,
    ) -> Result<DraftRow, DraftWriteError> {
        let mut drafts = self.drafts_mut();
        let row = drafts.get_mut(&template).ok_or(DraftWriteError::NoDraft)?;
        if row.version != expected_version {
            return Err(DraftWriteError::VersionConflict { current: row.version });
        }
        let mut next = row.clone();
        let position = |blocks: &[BlockRow], id: &str| {
            blocks.iter().position(|b| b.id == id).ok_or(DraftWriteError::NoBlock)
        };
        match change {
            DraftChange::Insert { index, block_type, content } => {
                let id = format!("b{}", next.next_block);
                next.next_block += 1;
                let at = index.min(next.blocks.len());
                next.blocks.insert(at, BlockRow { id, block_type, content });
            }
            DraftChange::Update { block_id, content } => {
                let at = position(&next.blocks, &block_id)?;
                if let Some(block) = next.blocks.get_mut(at) {
                    block.content = content;
                }
            }
            DraftChange::Delete { block_id } => {
                let at = position(&next.blocks, &block_id)?;
                next.blocks.remove(at);
            }
        }
        next.version += 1;
        next.updated_at = Some(time::now());
        next.updated_by = user.to_string();
        *row = next;
        Ok(row.clone())
    }

    /// The template's draft row.
    pub(crate) fn draft(&self, template: u64) -> Option<DraftRow> {
        self.drafts.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&template).cloned()
    }

    /// The dual write of ingested events: inserts the rows (events of templates that are not
    /// integer ids have no row: the foreign key would refuse them).
    pub(crate) fn insert_events<'a>(
        &self,
        events: impl IntoIterator<Item = (u64, &'a str, EventKind, &'a Arc<str>, DateTime<Utc>)>,
    ) {
        let mut table = self.events_mut();
        for (sequence, template, kind, recipient, occurred_at) in events {
            let (Ok(template), Some(kind)) = (template.parse::<u64>(), kind_column(kind)) else { continue };
            table.entry(template).or_default().push(EventRow {
                sequence,
                kind,
                recipient: recipient.clone(),
                occurred_at,
            });
        }
    }

    /// The dual write of a saved draft: stores it unless the row is at that version or newer
    /// already (concurrent saves may arrive out of order; and a write made through the monolith
    /// itself may have taken the version first, which is the split brain of two stores of record:
    /// the copy is then dropped, as an upsert guarded by the version would drop it).
    pub(crate) fn save_draft(&self, draft: &Draft) {
        let Ok(template) = draft.template_id.parse::<u64>() else { return };
        let blocks: Vec<BlockRow> = draft
            .blocks
            .iter()
            .map(|b| BlockRow {
                id: b.id.clone(),
                block_type: block_type(b.kind),
                content: b.content.clone(),
            })
            .collect();
        let mut drafts = self.drafts_mut();
        let current = drafts.get(&template);
        if current.is_some_and(|current| current.version >= draft.version) {
            return;
        }
        let next_block = next_block_number(&blocks).max(current.map_or(1, |c| c.next_block));
        let row = DraftRow {
            version: draft.version,
            blocks,
            updated_at: draft.updated_at.as_ref().and_then(time::from_timestamp),
            updated_by: draft.updated_by.clone(),
            next_block,
        };
        drafts.insert(template, row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_at_differs_on_every_call_however_close() {
        let tables = LegacyTables {
            events: RwLock::new(HashMap::new()),
            drafts: RwLock::new(HashMap::new()),
            sync: AtomicBool::new(true),
            aa_noise: AtomicBool::new(true),
            last_computed_at: AtomicI64::new(0),
        };
        let stamps: Vec<DateTime<Utc>> = (0..10_000).map(|_| tables.computed_at()).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    }

    #[test]
    fn block_numbers_continue_after_the_highest() {
        let block = |id: &str| BlockRow { id: id.into(), block_type: "text", content: String::new() };
        assert_eq!(next_block_number(&[]), 1);
        assert_eq!(next_block_number(&[block("b1"), block("b7"), block("b3")]), 8);
        assert_eq!(next_block_number(&[block("x"), block("b2")]), 3);
    }
}
