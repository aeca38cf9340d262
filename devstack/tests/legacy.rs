//! The monolith's legacy events view, its legacy draft write endpoints and the A/A noise knob,
//! over real sockets, against recounts from the seeded dataset.
#![allow(clippy::unwrap_used)]

mod common;

use banyan_devstack::dataset::{OWNER_USER, VIEWER_ONLY_USER, has_draft};
use banyan_devstack::proto::drafts::{BatchGetDraftsRequest, UpdateBlockRequest};
use banyan_devstack::{DevStack, EventKind};
use common::{Api, as_user, drafts_client, read, start};
use reqwest::Method;
use serde_json::{Value, json};

const EVENTS_VIEW: &str = "GET /api/v1/templates/{id}/events/";
const INSERT: &str = "POST /api/v1/templates/{id}/draft/blocks/";
const UPDATE: &str = "PATCH /api/v1/templates/{id}/draft/blocks/{block_id}/";
const DELETE: &str = "DELETE /api/v1/templates/{id}/draft/blocks/{block_id}/";

/// The template's seeded events' sequences, newest first: the dataset numbers events in
/// `occurred_at` order, so newest first is the sequences backwards.
fn seeded_sequences_newest_first(stack: &DevStack, template: u64) -> Vec<u64> {
    let mut sequences: Vec<u64> =
        stack.dataset().events.iter().filter(|e| e.template == template).map(|e| e.sequence).collect();
    sequences.reverse();
    sequences
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Sent => "sent",
        EventKind::Delivered => "delivered",
        EventKind::Opened => "opened",
        EventKind::Clicked => "clicked",
        EventKind::Bounced => "bounced",
        EventKind::Unspecified => "unspecified",
    }
}

fn sequences(page: &Value) -> Vec<u64> {
    page["results"].as_array().unwrap().iter().map(|e| e["sequence"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn the_events_view_pages_newest_first_like_drf() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let template = 7;
    let expected = seeded_sequences_newest_first(&stack, template);
    assert!(expected.len() > 40, "the dataset gives every template at least 30 sends");

    // The default page: 25, with an absolute next link and no previous.
    let (status, page) = api.get(&format!("/api/v1/templates/{template}/events/")).await;
    assert_eq!(status, 200);
    assert_eq!(page["count"], expected.len());
    assert_eq!(sequences(&page), expected[..25]);
    assert_eq!(page["previous"], Value::Null);
    let base = format!("{}/api/v1/templates/{template}/events/", stack.monolith_url());
    assert_eq!(page["next"], format!("{base}?page=2"));

    // Every row is the seeded event, field by field.
    let first = &page["results"][0];
    let seeded = stack.dataset().events.iter().find(|e| e.sequence == expected[0]).unwrap();
    let occurred_at = seeded.occurred_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        first,
        &json!({
            "sequence": seeded.sequence,
            "template": template,
            "kind": kind_name(seeded.kind),
            "recipient": &*seeded.recipient,
            "occurred_at": occurred_at,
        })
    );

    // Walking the pages by their links visits every event once, in order.
    let mut walked = Vec::new();
    let mut next = Some(format!("/api/v1/templates/{template}/events/?page_size=7"));
    let mut pages = 0;
    while let Some(url) = next {
        pages += 1;
        assert!(pages <= expected.len(), "the links must end");
        let (status, page) = api.get(&url).await;
        assert_eq!(status, 200, "{url}");
        walked.extend(sequences(&page));
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(walked, expected);
    assert_eq!(pages, expected.len().div_ceil(7));

    // The second page's previous link has no page parameter; page_size is kept.
    let (_, second) = api.get(&format!("/api/v1/templates/{template}/events/?page=2&page_size=10")).await;
    assert_eq!(second["previous"], format!("{base}?page_size=10"));
    assert_eq!(sequences(&second), expected[10..20]);

    // page_size is capped at 100; 0 and nonsense fall back to 25; `last` is the last page.
    let (_, big) = api.get(&format!("/api/v1/templates/{template}/events/?page_size=500")).await;
    assert_eq!(sequences(&big).len(), expected.len().min(100));
    let (_, zero) = api.get(&format!("/api/v1/templates/{template}/events/?page_size=0")).await;
    assert_eq!(sequences(&zero).len(), 25);
    let (_, last) = api.get(&format!("/api/v1/templates/{template}/events/?page=last&page_size=10")).await;
    let tail = expected.len() - (expected.len() - 1) / 10 * 10;
    assert_eq!(sequences(&last), expected[expected.len() - tail..]);

    // A page past the end, page 0 and a non-number are DRF's 404 "Invalid page.".
    let past = expected.len().div_ceil(10) + 1;
    for page in [past.to_string(), "0".to_owned(), "x".to_owned()] {
        let (status, body) =
            api.get(&format!("/api/v1/templates/{template}/events/?page={page}&page_size=10")).await;
        assert_eq!((status, body), (404, json!({"detail": "Invalid page."})), "page={page}");
    }
    assert_eq!(stack.calls().count(EVENTS_VIEW), 8 + pages as u64);
}

#[tokio::test]
async fn the_events_view_follows_template_visibility_and_its_own_table() {
    let stack = start().await;
    // User 1 is not a member of workspace 3 (templates 401..=600); user 30 of none.
    let (status, body) = Api::new(&stack, OWNER_USER).get("/api/v1/templates/450/events/").await;
    assert_eq!((status, body), (404, json!({"detail": "Not found."})));
    let (status, _) = Api::new(&stack, 30).get("/api/v1/templates/1/events/").await;
    assert_eq!(status, 404);
    let (status, _) = Api::new(&stack, OWNER_USER).get("/api/v1/templates/9999/events/").await;
    assert_eq!(status, 404);
    let (status, _) = Api::new(&stack, OWNER_USER).get("/api/v1/templates/abc/events/").await;
    assert_eq!(status, 404);
    // A viewer reads.
    let (status, page) = Api::new(&stack, VIEWER_ONLY_USER).get("/api/v1/templates/3/events/").await;
    assert_eq!(
        (status, page["count"].as_u64().unwrap() as usize),
        (200, seeded_sequences_newest_first(&stack, 3).len())
    );
    // No credentials: 401.
    let response =
        reqwest::get(format!("{}/api/v1/templates/3/events/", stack.monolith_url())).await.unwrap();
    assert_eq!(response.status().as_u16(), 401);

    // Ingested events reach the view through the dual write, newest first ...
    let api = Api::new(&stack, OWNER_USER);
    let seeded = seeded_sequences_newest_first(&stack, 12).len();
    let appended = stack.append_events(vec![(12, EventKind::Opened), (12, EventKind::Clicked)]).await;
    let (_, page) = api.get("/api/v1/templates/12/events/?page_size=3").await;
    assert_eq!(page["count"], seeded + 2);
    let head = sequences(&page);
    assert_eq!(head[..2], [appended[1], appended[0]]);
    assert_eq!(page["results"][0]["kind"], "clicked");
    assert_eq!(page["results"][0]["recipient"], "test-1@example.com");
    // ... and not while it is off: the view falls behind the store.
    stack.set_legacy_sync(false);
    stack.append_events(vec![(12, EventKind::Sent)]).await;
    let (_, page) = api.get("/api/v1/templates/12/events/?page_size=3").await;
    assert_eq!(page["count"], seeded + 2);
    assert_eq!(sequences(&page)[0], appended[1]);
}

/// The draft the monolith's draft view shows now.
async fn legacy_draft(api: &Api, template: u64) -> Value {
    let (status, draft) = api.get(&format!("/api/v1/templates/{template}/draft/")).await;
    assert_eq!(status, 200);
    draft
}

fn block_ids(draft: &Value) -> Vec<String> {
    draft["blocks"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn draft_writes_bump_the_version_in_the_monoliths_table_only() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let seeded = stack.dataset().draft(8).unwrap().clone();
    let v = seeded.version;
    let n = seeded.blocks.len();
    let blocks = "/api/v1/templates/8/draft/blocks/";

    // Insert at index 1: 201 with the whole draft at v + 1, the new block numbered after the
    // seeded ones, stamped with the author.
    let body = json!({"version": v, "index": 1, "type": "button", "content": "Buy now"});
    let (status, draft) = api.send(Method::POST, blocks, Some(&body)).await;
    assert_eq!(status, 201, "{draft}");
    assert_eq!(draft["version"], v + 1);
    assert_eq!(draft["template"], 8);
    assert_eq!(draft["updated_by"], OWNER_USER);
    let new_id = format!("b{}", n + 1);
    assert_eq!(draft["blocks"][1], json!({"id": new_id, "type": "button", "content": "Buy now"}));
    assert_eq!(draft["blocks"].as_array().unwrap().len(), n + 1);
    assert_eq!(legacy_draft(&api, 8).await, draft, "the draft view shows what the write answered");

    // Without an index (or past the end) it appends; content defaults to "".
    let (status, draft) =
        api.send(Method::POST, blocks, Some(&json!({"version": v + 1, "type": "divider"}))).await;
    assert_eq!(status, 201);
    assert_eq!(
        draft["blocks"].as_array().unwrap().last().unwrap(),
        &json!({"id": format!("b{}", n + 2), "type": "divider", "content": ""})
    );

    // Update and delete.
    let (status, draft) = api
        .send(Method::PATCH, &format!("{blocks}b1/"), Some(&json!({"version": v + 2, "content": "Hello"})))
        .await;
    assert_eq!(
        (status, draft["version"].clone(), draft["blocks"][0]["content"].clone()),
        (200, json!(v + 3), json!("Hello"))
    );
    let (status, draft) =
        api.send(Method::DELETE, &format!("{blocks}{new_id}/?version={}", v + 3), None).await;
    assert_eq!(status, 200);
    assert_eq!(draft["version"], v + 4);
    assert!(!block_ids(&draft).contains(&new_id));
    // A deleted block's number is not reused.
    let (_, draft) = api.send(Method::POST, blocks, Some(&json!({"version": v + 4, "type": "text"}))).await;
    assert_eq!(block_ids(&draft).last().unwrap(), &format!("b{}", n + 3));

    // The draft store never saw any of it: the dual write runs from the services only.
    let mut client = drafts_client(&stack).await;
    let request = BatchGetDraftsRequest { template_ids: vec!["8".into()] };
    let stored = client.batch_get_drafts(request).await.unwrap().into_inner().drafts;
    assert_eq!(stored[0].version, v);
    assert_eq!(stored[0].blocks.len(), n);

    let calls = stack.calls();
    assert_eq!((calls.count(INSERT), calls.count(UPDATE), calls.count(DELETE)), (3, 1, 1));
    assert_eq!(calls.count("DraftService/InsertBlock"), 0);
}

#[tokio::test]
async fn a_stale_version_is_a_409_with_the_current_version() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let v = stack.dataset().draft(9).unwrap().version;
    let stale = v + 5;
    let conflict =
        json!({"detail": format!("The draft is at version {v}, not {stale}."), "current_version": v});
    let cases = [
        (
            Method::POST,
            "/api/v1/templates/9/draft/blocks/".to_owned(),
            Some(json!({"version": stale, "type": "text"})),
        ),
        (
            Method::PATCH,
            "/api/v1/templates/9/draft/blocks/b1/".to_owned(),
            Some(json!({"version": stale, "content": "x"})),
        ),
        (Method::DELETE, format!("/api/v1/templates/9/draft/blocks/b1/?version={stale}"), None),
        // The version is checked before the block, as the draft store does.
        (Method::DELETE, format!("/api/v1/templates/9/draft/blocks/b999/?version={stale}"), None),
    ];
    for (method, path, body) in cases {
        let (status, answer) = api.send(method.clone(), &path, body.as_ref()).await;
        assert_eq!((status, answer), (409, conflict.clone()), "{method} {path}");
    }
    assert_eq!(legacy_draft(&api, 9).await["version"], v, "nothing was written");
}

#[tokio::test]
async fn draft_writes_check_visibility_role_body_and_fields_in_drfs_order() {
    let stack = start().await;
    let owner = Api::new(&stack, OWNER_USER);
    let v = stack.dataset().draft(10).unwrap().version;
    let blocks = "/api/v1/templates/10/draft/blocks/";
    let not_found = json!({"detail": "Not found."});

    // Invisible template (user 1 is not in workspace 3), unknown template, no draft, no block.
    assert!(!has_draft(50));
    let cases = [
        (
            Method::POST,
            "/api/v1/templates/450/draft/blocks/".to_owned(),
            Some(json!({"version": 1, "type": "text"})),
        ),
        (
            Method::POST,
            "/api/v1/templates/9999/draft/blocks/".to_owned(),
            Some(json!({"version": 1, "type": "text"})),
        ),
        (
            Method::POST,
            "/api/v1/templates/50/draft/blocks/".to_owned(),
            Some(json!({"version": 1, "type": "text"})),
        ),
        (Method::PATCH, format!("{blocks}b99/"), Some(json!({"version": v, "content": "x"}))),
        (Method::DELETE, format!("{blocks}b99/?version={v}"), None),
    ];
    for (method, path, body) in cases {
        let (status, answer) = owner.send(method.clone(), &path, body.as_ref()).await;
        assert_eq!((status, answer), (404, not_found.clone()), "{method} {path}");
    }

    // A viewer sees the draft but may not write it, even with a bad body: the role comes first.
    let viewer = Api::new(&stack, VIEWER_ONLY_USER);
    let forbidden = json!({"detail": "You do not have permission to perform this action."});
    let (status, _) = viewer.get("/api/v1/templates/10/draft/").await;
    assert_eq!(status, 200);
    for (method, path, body) in [
        (Method::POST, blocks.to_owned(), Some(json!({"version": v, "type": "text"}))),
        (Method::POST, blocks.to_owned(), Some(json!(["not", "an", "object"]))),
        (Method::PATCH, format!("{blocks}b1/"), Some(json!({"version": v, "content": "x"}))),
        (Method::DELETE, format!("{blocks}b1/?version={v}"), None),
    ] {
        let (status, answer) = viewer.send(method.clone(), &path, body.as_ref()).await;
        assert_eq!((status, answer), (403, forbidden.clone()), "{method} {path}");
    }

    // Field errors, all at once, as a serializer reports them.
    let field_cases = [
        (
            Method::POST,
            blocks.to_owned(),
            json!({}),
            json!({"version": ["This field is required."], "type": ["This field is required."]}),
        ),
        (
            Method::POST,
            blocks.to_owned(),
            json!({"version": -1, "type": "video", "index": "x", "content": ["a"]}),
            json!({
                "version": ["Ensure this value is greater than or equal to 0."],
                "type": ["\"video\" is not a valid choice."],
                "index": ["A valid integer is required."],
                "content": ["Not a valid string."],
            }),
        ),
        (
            Method::PATCH,
            format!("{blocks}b1/"),
            json!({"version": v}),
            json!({"content": ["This field is required."]}),
        ),
        (
            Method::PATCH,
            format!("{blocks}b1/"),
            json!({"version": null, "content": "x"}),
            json!({"version": ["This field may not be null."]}),
        ),
        (
            Method::POST,
            blocks.to_owned(),
            json!([1]),
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
        ),
    ];
    for (method, path, body, errors) in field_cases {
        let (status, answer) = owner.send(method.clone(), &path, Some(&body)).await;
        assert_eq!((status, answer), (400, errors), "{method} {path} {body}");
    }
    for (query, message) in
        [("", "This field is required."), ("?version=abc", "A valid integer is required.")]
    {
        let (status, answer) = owner.send(Method::DELETE, &format!("{blocks}b1/{query}"), None).await;
        assert_eq!((status, answer), (400, json!({"version": [message]})), "{query}");
    }

    // Another content type is 415; broken JSON is 400.
    let response = owner
        .client
        .post(owner.url(blocks))
        .header("authorization", format!("Token {}", owner.token))
        .header("content-type", "text/plain")
        .body("version=1")
        .send()
        .await
        .unwrap();
    let (status, answer) = read(response).await;
    assert_eq!(
        (status, answer),
        (415, json!({"detail": "Unsupported media type \"text/plain\" in request."}))
    );
    let response = owner
        .client
        .patch(owner.url(&format!("{blocks}b1/")))
        .header("authorization", format!("Token {}", owner.token))
        .header("content-type", "application/json")
        .body("{\"version\": ")
        .send()
        .await
        .unwrap();
    let (status, answer) = read(response).await;
    assert_eq!(status, 400);
    assert!(answer["detail"].as_str().unwrap().starts_with("JSON parse error - "), "{answer}");

    // GET on the blocks collection is not a method it has.
    let (status, answer) = owner.get(blocks).await;
    assert_eq!((status, answer), (405, json!({"detail": "Method \"GET\" not allowed."})));
    assert_eq!(legacy_draft(&owner, 10).await["version"], v, "nothing was written");
}

/// A CSRF secret as Django's `get_token` makes them.
const CSRF_SECRET: &str = "Q7wErTy8uIoP1aSdFgHjKlZxCvBnM042";

#[tokio::test]
async fn session_draft_writes_need_django_csrf() {
    let stack = start().await;
    let owner = stack.dataset().user(OWNER_USER).unwrap().clone();
    let v = stack.dataset().draft(11).unwrap().version;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/templates/11/draft/blocks/b1/?version={v}", stack.monolith_url());
    let delete = |cookie: String, csrf: Option<&str>| {
        let mut request = client.delete(&url).header("cookie", cookie);
        if let Some(csrf) = csrf {
            request = request.header("x-csrftoken", csrf);
        }
        request.send()
    };
    let (status, answer) =
        read(delete(format!("sessionid={}", owner.session_id), Some(CSRF_SECRET)).await.unwrap()).await;
    assert_eq!((status, answer), (403, json!({"detail": "CSRF Failed: CSRF cookie not set."})));
    let with_cookie = format!("sessionid={}; csrftoken={CSRF_SECRET}", owner.session_id);
    let (status, answer) = read(delete(with_cookie.clone(), None).await.unwrap()).await;
    assert_eq!((status, answer), (403, json!({"detail": "CSRF Failed: CSRF token missing."})));
    let (status, answer) = read(delete(with_cookie, Some(CSRF_SECRET)).await.unwrap()).await;
    assert_eq!((status, answer["version"].clone()), (200, json!(v + 1)));
    assert_eq!(stack.calls().count(DELETE), 3);
}

#[tokio::test]
async fn the_legacy_sync_knob_governs_only_the_services_to_monolith_direction() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let mut client = drafts_client(&stack).await;
    let v = stack.dataset().draft(13).unwrap().version;
    // With the dual write on, a draft-store write shows in the monolith's view.
    let update = UpdateBlockRequest {
        template_id: "13".into(),
        expected_version: v,
        block_id: "b2".into(),
        content: "From the service".into(),
    };
    client.update_block(as_user(1, update)).await.unwrap();
    let legacy = legacy_draft(&api, 13).await;
    assert_eq!(
        (legacy["version"].clone(), legacy["blocks"][1]["content"].clone()),
        (json!(v + 1), json!("From the service"))
    );

    // A monolith write does not reach the draft store, whatever the knob says.
    for sync in [true, false] {
        stack.set_legacy_sync(sync);
        let current = legacy_draft(&api, 13).await["version"].as_u64().unwrap();
        let body = json!({"version": current, "content": format!("From the monolith, sync {sync}")});
        let (status, _) = api.send(Method::PATCH, "/api/v1/templates/13/draft/blocks/b1/", Some(&body)).await;
        assert_eq!(status, 200);
        let request = BatchGetDraftsRequest { template_ids: vec!["13".into()] };
        let stored = client.batch_get_drafts(request).await.unwrap().into_inner().drafts;
        assert_eq!(stored[0].version, v + 1, "sync {sync}");
        assert_ne!(stored[0].blocks[0].content, format!("From the monolith, sync {sync}"));
    }

    // Split brain: both stores took version v + 2 with different content, and the copy of the
    // store's write is dropped because the monolith's row is at that version already.
    stack.set_legacy_sync(true);
    let update = UpdateBlockRequest {
        template_id: "13".into(),
        expected_version: v + 1,
        block_id: "b2".into(),
        content: "Second from the service".into(),
    };
    let stored = client.update_block(as_user(1, update)).await.unwrap().into_inner().draft.unwrap();
    assert_eq!(stored.version, v + 2);
    let legacy = legacy_draft(&api, 13).await;
    assert_eq!(legacy["version"], v + 3);
    assert_ne!(legacy["blocks"][1]["content"], "Second from the service");
}

#[tokio::test]
async fn the_aa_noise_knob_makes_computed_at_differ_between_identical_calls() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let path = "/api/v1/templates/14/analytics/?window=30d";
    let admin = format!("{}/__devstack/aa-noise", stack.monolith_url());

    // Off by default: two identical calls answer identically, without computed_at.
    let (_, knob) = read(reqwest::get(&admin).await.unwrap()).await;
    assert_eq!(knob, json!({"enabled": false}));
    let (status, first) = api.get(path).await;
    let (_, second) = api.get(path).await;
    assert_eq!(status, 200);
    assert!(first.get("computed_at").is_none(), "{first}");
    assert_eq!(first, second);

    // On (through the admin surface): computed_at differs on every call, nothing else does.
    let response = api.client.put(&admin).json(&json!({"enabled": true})).send().await.unwrap();
    assert_eq!(read(response).await, (200, json!({"enabled": true})));
    assert!(stack.aa_noise());
    let mut answers = Vec::new();
    for _ in 0..20 {
        answers.push(api.get(path).await.1);
    }
    let mut stamps: Vec<String> =
        answers.iter().map(|a| a["computed_at"].as_str().unwrap().to_owned()).collect();
    let sorted = {
        let mut s = stamps.clone();
        s.sort();
        s.dedup();
        s
    };
    assert_eq!(sorted.len(), 20, "every call gets its own computed_at: {stamps:?}");
    stamps.clear();
    let strip = |mut a: Value| {
        a.as_object_mut().unwrap().remove("computed_at");
        a
    };
    for answer in answers {
        assert_eq!(strip(answer), first);
    }
    chrono::DateTime::parse_from_rfc3339(sorted[0].as_str()).unwrap();

    // Off again through the handle; a bad body is a 400.
    stack.set_aa_noise(false);
    assert!(api.get(path).await.1.get("computed_at").is_none());
    let response = api.client.put(&admin).json(&json!({"on": true})).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // The knob's own endpoint is not counted.
    assert_eq!(stack.calls().count("GET /api/v1/templates/{id}/analytics/"), 23);
    assert_eq!(stack.calls().total(), 23);
}
