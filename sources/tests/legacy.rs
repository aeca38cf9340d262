//! The monolith client's legacy methods against the devstack over real sockets: the same domain
//! values and the same errors as the service clients, recounted from the seeded dataset.
#![allow(clippy::unwrap_used)]

mod support;

use banyan_devstack::DevStack;
use banyan_devstack::dataset::{OWNER_USER, VIEWER_ONLY_USER};
use banyan_sources::domain::{BlockKind, Draft, DraftEdit, EventPage, StatsWindow, TemplateId, UserId};
use banyan_sources::monolith::MonolithClient;
use banyan_sources::{Caller, Credential, MonolithOptions, SessionCredential, SourceError};
use support::{TIMEOUT, start};

const EVENTS_VIEW: &str = "GET /api/v1/templates/{id}/events/";

fn caller(stack: &DevStack, user: u64) -> Caller {
    Caller {
        credential: Credential::Token(stack.dataset().user(user).unwrap().token.clone()),
        user_id: UserId(user),
        request_id: Some(format!("test-{user}")),
        budget: Default::default(),
        forwarded_headers: Vec::new(),
        trace: banyan_sources::TraceContext::off(),
    }
}

/// The template's seeded sequences, newest first (the dataset numbers events in time order).
fn seeded_newest_first(stack: &DevStack, template: u64) -> Vec<u64> {
    let mut sequences: Vec<u64> =
        stack.dataset().events.iter().filter(|e| e.template == template).map(|e| e.sequence).collect();
    sequences.reverse();
    sequences
}

fn sequences(page: &EventPage) -> Vec<u64> {
    page.events.iter().map(|e| e.sequence).collect()
}

#[tokio::test]
async fn legacy_events_walk_like_list_events_with_page_numbers_as_cursors() {
    let c = start().await;
    let me = caller(&c.stack, OWNER_USER);
    let template = TemplateId(21);
    let expected = seeded_newest_first(&c.stack, 21);

    // Walk both sides with the same page size: the same pages of the same events.
    let (mut legacy_token, mut service_token) = (None::<String>, None::<String>);
    let mut walked = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= expected.len(), "the cursors must end");
        let legacy = c.monolith.legacy_events(&me, template, 9, legacy_token.as_deref()).await.unwrap();
        let service = c.events.list_events(&me, template, 9, service_token.as_deref()).await.unwrap();
        assert_eq!(legacy.events, service.events, "page {pages}");
        assert_eq!(legacy.next_page_token.is_some(), service.next_page_token.is_some(), "page {pages}");
        walked.extend(sequences(&legacy));
        match (legacy.next_page_token, service.next_page_token) {
            (Some(l), Some(s)) => {
                assert_ne!(l, s, "the tokens are each side's own");
                legacy_token = Some(l);
                service_token = Some(s);
            }
            _ => break,
        }
    }
    assert_eq!(walked, expected);
    assert_eq!(c.stack.calls().count(EVENTS_VIEW), pages as u64, "one call per aligned page");
    // Every event is the seeded one.
    let seeded = c.stack.dataset().events.iter().find(|e| e.sequence == expected[0]).unwrap();
    let first = c.monolith.legacy_events(&me, template, 1, None).await.unwrap();
    assert_eq!(first.events[0].recipient, &*seeded.recipient);
    assert_eq!(first.events[0].occurred_at, seeded.occurred_at);
    assert_eq!(first.events[0].template_id, template);

    // Changing the page size mid-walk: the offset lands inside a page, so two calls give exactly
    // the next `page_size` events.
    c.stack.calls().reset();
    let page = c.monolith.legacy_events(&me, template, 7, None).await.unwrap();
    let token = page.next_page_token.unwrap();
    let next = c.monolith.legacy_events(&me, template, 10, Some(&token)).await.unwrap();
    assert_eq!(sequences(&next), expected[7..17]);
    assert_eq!(c.stack.calls().count(EVENTS_VIEW), 3);
    // Aligned again (offset 17 is not a multiple of 10, but 17 is of 17): one call.
    let token = next.next_page_token.unwrap();
    let rest = c.monolith.legacy_events(&me, template, 17, Some(&token)).await.unwrap();
    assert_eq!(sequences(&rest), expected[17..(34.min(expected.len()))]);
    assert_eq!(c.stack.calls().count(EVENTS_VIEW), 4);

    // The last page has no next token; a page of exactly the rest ends too.
    let all = c.monolith.legacy_events(&me, template, 100, None).await.unwrap();
    assert_eq!(sequences(&all), expected[..expected.len().min(100)]);
    assert_eq!(all.next_page_token.is_some(), expected.len() > 100);
}

#[tokio::test]
async fn legacy_events_fail_like_list_events() {
    let c = start().await;
    let me = caller(&c.stack, OWNER_USER);
    let template = TemplateId(22);
    // Out-of-range page sizes: the same code and message on both sides.
    for size in [0, 101] {
        let legacy = c.monolith.legacy_events(&me, template, size, None).await.unwrap_err();
        let service = c.events.list_events(&me, template, size, None).await.unwrap_err();
        assert_eq!(legacy.code(), "BAD_USER_INPUT");
        assert_eq!(legacy.to_string(), service.to_string(), "page_size {size}");
    }
    // A token of the other side, of another template, or garbage.
    let service_token = c.events.list_events(&me, template, 5, None).await.unwrap().next_page_token.unwrap();
    let other_template =
        c.monolith.legacy_events(&me, TemplateId(23), 5, None).await.unwrap().next_page_token.unwrap();
    c.stack.calls().reset();
    for token in [service_token.as_str(), other_template.as_str(), "legacy-v1:22:x"] {
        let error = c.monolith.legacy_events(&me, template, 5, Some(token)).await.unwrap_err();
        assert!(
            matches!(&error, SourceError::InvalidInput(m) if m == "page_token is not valid for this request"),
            "{token}: {error:?}"
        );
    }
    assert_eq!(c.stack.calls().count(EVENTS_VIEW), 0, "refused before calling");
    // A cursor past the end (DRF's 404 "Invalid page.") is an empty last page, not an error.
    let beyond = "legacy-v1:22:100000";
    let page = c.monolith.legacy_events(&me, template, 5, Some(beyond)).await.unwrap();
    assert_eq!(page, EventPage { events: Vec::new(), next_page_token: None });
    // A template the caller cannot see is NOT_FOUND (the view's 404 "Not found.").
    let error = c.monolith.legacy_events(&me, TemplateId(450), 5, None).await.unwrap_err();
    assert!(matches!(error, SourceError::NotFound), "{error:?}");
    // The monolith down: unavailable, named.
    let down = MonolithClient::new(&MonolithOptions {
        base_url: "http://127.0.0.1:9".to_owned(),
        timeout: TIMEOUT,
        connect_timeout: TIMEOUT,
        resilience: banyan_sources::ResilienceOptions::default(),
    })
    .unwrap();
    let error = down.legacy_events(&me, template, 5, None).await.unwrap_err();
    assert_eq!(error.code(), "BACKEND_UNAVAILABLE");
}

/// A draft without its time, which each store stamps itself.
fn content(draft: &Draft) -> (u64, Vec<(String, BlockKind, String)>, UserId) {
    let blocks = draft.blocks.iter().map(|b| (b.id.clone(), b.kind, b.content.clone())).collect();
    (draft.version, blocks, draft.updated_by)
}

#[tokio::test]
async fn legacy_draft_edits_give_what_the_draft_store_gives() {
    let c = start().await;
    let me = caller(&c.stack, OWNER_USER);
    let template = TemplateId(24);
    let v = c.stack.dataset().draft(24).unwrap().version;
    // The stores start equal; with the dual write off, each sees only its own writes.
    c.stack.set_legacy_sync(false);
    let edits = [
        DraftEdit::InsertBlock { index: 1, kind: BlockKind::Image, content: "https://x/y.png".into() },
        DraftEdit::UpdateBlock { block_id: "b1".into(), content: "A new heading".into() },
        DraftEdit::InsertBlock { index: 1000, kind: BlockKind::Divider, content: String::new() },
        DraftEdit::DeleteBlock { block_id: "b2".into() },
    ];
    for (n, edit) in edits.into_iter().enumerate() {
        let expected = v + n as u64;
        let legacy = c.monolith.legacy_edit_draft(&me, template, expected, edit.clone()).await.unwrap();
        let service = c.drafts.edit(&me, template, expected, edit.clone()).await.unwrap();
        assert_eq!(content(&legacy), content(&service), "{edit:?}");
        assert_eq!(legacy.version, expected + 1);
        // What the write answered is what the legacy draft view reads.
        assert_eq!(c.monolith.legacy_draft(&me, template).await.unwrap(), Some(legacy));
    }

    // The same refusals with the same codes.
    let stale = DraftEdit::UpdateBlock { block_id: "b1".into(), content: "late".into() };
    let legacy = c.monolith.legacy_edit_draft(&me, template, v, stale.clone()).await.unwrap_err();
    let service = c.drafts.edit(&me, template, v, stale).await.unwrap_err();
    assert!(
        matches!(legacy, SourceError::VersionConflict { expected, current } if expected == v && current == v + 4)
    );
    assert!(
        matches!(service, SourceError::VersionConflict { expected, current } if expected == v && current == v + 4)
    );
    let cases = [
        (TemplateId(24), v + 4, DraftEdit::DeleteBlock { block_id: "b99".into() }),
        (TemplateId(50), 1, DraftEdit::DeleteBlock { block_id: "b1".into() }),
        // A block id that is not a path segment stays one.
        (
            TemplateId(24),
            v + 4,
            DraftEdit::UpdateBlock { block_id: "b1/../b2?x=#".into(), content: "x".into() },
        ),
    ];
    for (template, version, edit) in cases {
        let legacy = c.monolith.legacy_edit_draft(&me, template, version, edit.clone()).await.unwrap_err();
        let service = c.drafts.edit(&me, template, version, edit.clone()).await.unwrap_err();
        assert_eq!((legacy.code(), service.code()), ("NOT_FOUND", "NOT_FOUND"), "{template} {edit:?}");
    }
    assert_eq!(c.stack.calls().count("PATCH /api/v1/templates/{id}/draft/blocks/{block_id}/"), 3);

    // The monolith checks permissions itself: a viewer is refused, an outsider does not see it.
    let viewer = caller(&c.stack, VIEWER_ONLY_USER);
    let edit = DraftEdit::DeleteBlock { block_id: "b1".into() };
    let error = c.monolith.legacy_edit_draft(&viewer, TemplateId(24), v + 4, edit.clone()).await.unwrap_err();
    assert!(
        matches!(&error, SourceError::Forbidden(m) if m == "You do not have permission to perform this action.")
    );
    let error = c.monolith.legacy_edit_draft(&me, TemplateId(450), 1, edit).await.unwrap_err();
    assert_eq!(error.code(), "NOT_FOUND");
}

#[tokio::test]
async fn legacy_draft_edits_by_session_carry_the_csrf_proof() {
    let c = start().await;
    let owner = c.stack.dataset().user(OWNER_USER).unwrap().clone();
    let secret = "Q7wErTy8uIoP1aSdFgHjKlZxCvBnM042".to_owned();
    let session = |csrf: bool| Caller {
        credential: Credential::Session(SessionCredential {
            cookie_name: "sessionid".into(),
            session_id: owner.session_id.clone(),
            csrf_cookie: csrf.then(|| ("csrftoken".to_owned(), secret.clone())),
            csrf_headers: if csrf { vec![("X-CSRFToken".to_owned(), secret.clone())] } else { Vec::new() },
        }),
        user_id: UserId(OWNER_USER),
        request_id: None,
        budget: Default::default(),
        forwarded_headers: Vec::new(),
        trace: banyan_sources::TraceContext::off(),
    };
    let v = c.stack.dataset().draft(25).unwrap().version;
    let edit = DraftEdit::UpdateBlock { block_id: "b1".into(), content: "by session".into() };
    let error =
        c.monolith.legacy_edit_draft(&session(false), TemplateId(25), v, edit.clone()).await.unwrap_err();
    assert!(
        matches!(&error, SourceError::Forbidden(m) if m == "CSRF Failed: CSRF cookie not set."),
        "{error:?}"
    );
    let draft = c.monolith.legacy_edit_draft(&session(true), TemplateId(25), v, edit).await.unwrap();
    assert_eq!((draft.version, draft.blocks[0].content.as_str()), (v + 1, "by session"));
}

#[tokio::test]
async fn the_aa_noise_knob_reaches_the_domain_value_of_the_legacy_stats_only() {
    let c = start().await;
    let me = caller(&c.stack, OWNER_USER);
    let id = TemplateId(26);
    let quiet = c.monolith.legacy_analytics(&me, id, StatsWindow::Last30Days).await.unwrap();
    assert_eq!(quiet.computed_at, None);
    let json = serde_json::to_value(&quiet).unwrap();
    assert!(json.get("computed_at").is_none(), "absent from the compared JSON when off: {json}");

    c.stack.set_aa_noise(true);
    let first = c.monolith.legacy_analytics(&me, id, StatsWindow::Last30Days).await.unwrap();
    let second = c.monolith.legacy_analytics(&me, id, StatsWindow::Last30Days).await.unwrap();
    assert!(first.computed_at.is_some() && second.computed_at.is_some());
    assert_ne!(first.computed_at, second.computed_at, "two identical calls differ at computed_at");
    assert_eq!(TemplateStatsWithoutTime::from(&first), TemplateStatsWithoutTime::from(&quiet));
    assert_eq!(TemplateStatsWithoutTime::from(&second), TemplateStatsWithoutTime::from(&quiet));
    // The service never says when it computed.
    let now = chrono::Utc::now();
    let service = c.events.template_stats(&me, &[id], StatsWindow::Last30Days, now).await.unwrap();
    assert_eq!(service[0].computed_at, None);
    assert_eq!(TemplateStatsWithoutTime::from(&service[0]), TemplateStatsWithoutTime::from(&quiet));
}

/// The counts of a `TemplateStats`.
#[derive(Debug, PartialEq)]
struct TemplateStatsWithoutTime([u64; 6]);

impl From<&banyan_sources::domain::TemplateStats> for TemplateStatsWithoutTime {
    fn from(s: &banyan_sources::domain::TemplateStats) -> Self {
        Self([s.sent, s.delivered, s.opened, s.clicked, s.bounced, s.unique_opens])
    }
}
