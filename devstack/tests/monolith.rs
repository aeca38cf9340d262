//! The monolith stand-in over a real socket: auth, pagination, filters, visibility, PATCH, the
//! admin surface and call counting.
#![allow(clippy::unwrap_used)]

mod common;

use banyan_devstack::dataset::{NO_WORKSPACE_USER, OWNER_USER, Role, VIEWER_ONLY_USER};
use banyan_devstack::{DevStack, DevStackConfig};
use common::{Api, ids, read, start};
use serde_json::{Value, json};

#[tokio::test]
async fn auth_follows_drf_token_authentication() {
    let stack = start().await;
    let client = reqwest::Client::new();
    let me = format!("{}/api/v1/me/", stack.monolith_url());
    let token = stack.dataset().user(OWNER_USER).unwrap().token.clone();

    let response = client.get(&me).send().await.unwrap();
    assert_eq!(response.headers().get("www-authenticate").unwrap(), "Token");
    let (status, body) = read(response).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"detail": "Authentication credentials were not provided."}));

    let cases = [
        (format!("Bearer {token}"), "Authentication credentials were not provided."),
        ("Token 0000000000000000000000000000000000000000".to_string(), "Invalid token."),
        ("Token".to_string(), "Invalid token header. No credentials provided."),
        (format!("Token {token} extra"), "Invalid token header. Token string should not contain spaces."),
    ];
    for (header, detail) in cases {
        let (status, body) =
            read(client.get(&me).header("authorization", &header).send().await.unwrap()).await;
        assert_eq!((status, body), (401, json!({ "detail": detail })), "{header}");
    }

    let (status, body) = Api::new(&stack, OWNER_USER).get("/api/v1/me/").await;
    assert_eq!(status, 200);
    let user = stack.dataset().user(OWNER_USER).unwrap();
    assert_eq!(body["id"], 1);
    assert_eq!(body["username"], user.username.as_str());
    assert_eq!(body["email"], user.email.as_str());
    assert_eq!(body["full_name"], user.full_name.as_str());
    assert!(body["date_joined"].as_str().unwrap().ends_with('Z'));
    // The scheme is case-insensitive, as in DRF.
    let (status, _) =
        read(client.get(&me).header("authorization", format!("token {token}")).send().await.unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn templates_paginate_with_absolute_links() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let base = stack.monolith_url();

    let (status, first) = api.get("/api/v1/templates/").await;
    assert_eq!(status, 200);
    assert_eq!(first["count"], 400, "user 1 sees workspaces 1 and 2");
    assert_eq!(first["results"].as_array().unwrap().len(), 25);
    assert_eq!(first["previous"], Value::Null);
    assert_eq!(first["next"], format!("{base}/api/v1/templates/?page=2"));

    let (_, second) = api.get(first["next"].as_str().unwrap()).await;
    assert_eq!(second["previous"], format!("{base}/api/v1/templates/"));
    assert_eq!(second["next"], format!("{base}/api/v1/templates/?page=3"));

    // Newest updated_at first, then id descending, across pages.
    let mut all = Vec::new();
    let mut next = Some(format!("{base}/api/v1/templates/?page_size=100"));
    while let Some(url) = next {
        let (status, page) = api.get(&url).await;
        assert_eq!(status, 200);
        all.extend(page["results"].as_array().unwrap().iter().cloned());
        next = page["next"].as_str().map(str::to_string);
    }
    assert_eq!(all.len(), 400);
    for pair in all.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let (ua, ub) = (a["updated_at"].as_str().unwrap(), b["updated_at"].as_str().unwrap());
        assert!(ua > ub || (ua == ub && a["id"].as_u64() > b["id"].as_u64()), "{ua} {ub}");
    }

    // Other parameters survive in the links, sorted by name as DRF does it.
    let (_, page) = api.get("/api/v1/templates/?search=a&page_size=10&page=2").await;
    assert_eq!(page["next"], format!("{base}/api/v1/templates/?page=3&page_size=10&search=a"));
    assert_eq!(page["previous"], format!("{base}/api/v1/templates/?page_size=10&search=a"));

    let (_, last) = api.get("/api/v1/templates/?page_size=100&page=4").await;
    assert_eq!(last["next"], Value::Null);
    assert_eq!(last["previous"], format!("{base}/api/v1/templates/?page=3&page_size=100"));
    let (_, last) = api.get("/api/v1/templates/?page_size=100&page=last").await;
    assert_eq!(last["results"].as_array().unwrap().len(), 100);

    for bad in ["5", "0", "-1", "abc"] {
        let (status, body) = api.get(&format!("/api/v1/templates/?page_size=100&page={bad}")).await;
        assert_eq!((status, body), (404, json!({"detail": "Invalid page."})), "page={bad}");
    }
    // page_size: above 100 is 100, unusable values fall back to 25.
    let (_, page) = api.get("/api/v1/templates/?page_size=500").await;
    assert_eq!(page["results"].as_array().unwrap().len(), 100);
    let (_, page) = api.get("/api/v1/templates/?page_size=0").await;
    assert_eq!(page["results"].as_array().unwrap().len(), 25);

    // An empty list still has a first page.
    let (status, page) = Api::new(&stack, NO_WORKSPACE_USER).get("/api/v1/templates/").await;
    assert_eq!(status, 200);
    assert_eq!(page, json!({"count": 0, "next": null, "previous": null, "results": []}));
}

#[tokio::test]
async fn id_in_returns_the_visible_ones_in_id_order() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);

    let (status, page) = api.get("/api/v1/templates/?id__in=250,5,450,9999,3").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), vec![3, 5, 250], "450 is in workspace 3, 9999 does not exist");
    assert_eq!(page["count"], 3);

    let (_, page) = api.get("/api/v1/users/?id__in=30,2,1").await;
    assert_eq!(ids(&page), vec![1, 2], "user 30 shares no workspace with user 1");

    let (status, body) = api.get("/api/v1/templates/?id__in=1,x").await;
    assert_eq!((status, body), (400, json!({"id__in": ["Enter a whole number."]})));

    // id__in and page_size together: 100 ids in one call.
    let list: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
    let (_, page) = api.get(&format!("/api/v1/templates/?page_size=100&id__in={}", list.join(","))).await;
    assert_eq!(ids(&page), (1..=100).collect::<Vec<u64>>());
}

#[tokio::test]
async fn filters_by_workspace_and_search() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let (_, page) = api.get("/api/v1/templates/?workspace=2&page_size=100").await;
    assert_eq!(page["count"], 200);
    assert!(page["results"].as_array().unwrap().iter().all(|t| t["workspace"] == 2));
    let (_, page) = api.get("/api/v1/templates/?workspace=3").await;
    assert_eq!(page["count"], 0, "not a member of workspace 3");
    let (status, body) = api.get("/api/v1/templates/?workspace=abc").await;
    assert_eq!((status, body), (400, json!({"workspace": ["Enter a whole number."]})));

    let dataset = stack.dataset();
    let expected = dataset
        .templates
        .iter()
        .filter(|t| t.workspace <= 2)
        .filter(|t| t.name.to_lowercase().contains("spring") || t.subject.to_lowercase().contains("spring"))
        .count();
    assert!(expected > 0);
    let (_, page) = api.get("/api/v1/templates/?search=SPRING").await;
    assert_eq!(page["count"], expected);
}

#[tokio::test]
async fn visibility_hides_with_404_never_403() {
    let stack = start().await;
    let owner = Api::new(&stack, OWNER_USER);
    let not_found = json!({"detail": "Not found."});
    for path in [
        "/api/v1/templates/450/",
        "/api/v1/templates/450/analytics/",
        "/api/v1/templates/450/draft/",
        "/api/v1/workspaces/3/",
        "/api/v1/workspaces/3/members/",
        "/api/v1/users/30/",
        "/api/v1/templates/601/",
        "/api/v1/templates/abc/",
    ] {
        let (status, body) = owner.get(path).await;
        assert_eq!((status, &body), (404, &not_found), "{path}");
    }
    let (status, body) = owner.patch("/api/v1/templates/450/", &json!({"name": "x"})).await;
    assert_eq!((status, body), (404, not_found.clone()));

    let (_, page) = owner.get("/api/v1/workspaces/").await;
    assert_eq!(ids(&page), vec![1, 2]);
    let ws = stack.dataset().workspace(1).unwrap();
    assert_eq!(page["results"][0]["name"], ws.name.as_str());
    assert_eq!(page["results"][0]["slug"], ws.slug.as_str());

    let (_, members) = owner.get("/api/v1/workspaces/1/members/?page_size=100").await;
    let users: Vec<u64> =
        members["results"].as_array().unwrap().iter().map(|m| m["user"].as_u64().unwrap()).collect();
    let mut sorted = users.clone();
    sorted.sort_unstable();
    assert_eq!(users, sorted);
    assert_eq!(
        members["results"][0],
        json!({
            "user": 1,
            "role": "owner",
            "joined_at": members["results"][0]["joined_at"].clone(),
        })
    );
    let (_, users) = owner.get("/api/v1/users/?page_size=100").await;
    assert_eq!(ids(&users), stack.dataset().visible_users(OWNER_USER));

    // The user with no workspace sees only themselves.
    let loner = Api::new(&stack, NO_WORKSPACE_USER);
    let (_, users) = loner.get("/api/v1/users/").await;
    assert_eq!(ids(&users), vec![NO_WORKSPACE_USER]);
    let (_, workspaces) = loner.get("/api/v1/workspaces/").await;
    assert_eq!(workspaces["count"], 0);

    // can_edit follows the caller's role.
    let (_, template) = owner.get("/api/v1/templates/1/").await;
    assert_eq!(template["can_edit"], true);
    let (_, template) = Api::new(&stack, VIEWER_ONLY_USER).get("/api/v1/templates/1/").await;
    assert_eq!(template["can_edit"], false);
    let seeded = stack.dataset().template(1).unwrap();
    assert_eq!(template["name"], seeded.name.as_str());
    assert_eq!(template["status"], seeded.status.as_str());
    assert_eq!(template["workspace"], 1);
    assert_eq!(template["created_by"], seeded.created_by);
}

#[tokio::test]
async fn patch_validates_like_a_drf_serializer() {
    let stack = start().await;
    let owner = Api::new(&stack, OWNER_USER);
    assert_eq!(stack.dataset().role(VIEWER_ONLY_USER, 1), Some(Role::Viewer));
    let viewer = Api::new(&stack, VIEWER_ONLY_USER);
    let (status, body) = viewer.patch("/api/v1/templates/1/", &json!({"name": "Mine"})).await;
    assert_eq!(
        (status, body),
        (403, json!({"detail": "You do not have permission to perform this action."}))
    );

    let cases = [
        (json!({"name": ""}), json!({"name": ["This field may not be blank."]})),
        (json!({"name": "   "}), json!({"name": ["This field may not be blank."]})),
        (json!({"name": null}), json!({"name": ["This field may not be null."]})),
        (json!({"name": ["a"]}), json!({"name": ["Not a valid string."]})),
        (
            json!({"name": "x".repeat(201)}),
            json!({"name": ["Ensure this field has no more than 200 characters."]}),
        ),
        (json!({"status": "deleted"}), json!({"status": ["\"deleted\" is not a valid choice."]})),
        (
            json!({"name": "", "status": "x"}),
            json!({"name": ["This field may not be blank."], "status": ["\"x\" is not a valid choice."]}),
        ),
        (json!([1]), json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})),
    ];
    for (input, expected) in cases {
        let (status, body) = owner.patch("/api/v1/templates/2/", &input).await;
        assert_eq!((status, body), (400, expected), "{input}");
    }
    let response = owner
        .client
        .patch(owner.url("/api/v1/templates/2/"))
        .header("authorization", format!("Token {}", owner.token))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().starts_with("JSON parse error"));

    let before = stack.dataset().template(2).unwrap().clone();
    let name = "x".repeat(200);
    let (status, body) =
        owner.patch("/api/v1/templates/2/", &json!({"name": name, "status": "archived", "id": 99})).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], 2, "read-only fields are ignored");
    assert_eq!(body["name"], name.as_str());
    assert_eq!(body["status"], "archived");
    assert_eq!(body["subject"], before.subject.as_str());
    assert!(body["updated_at"].as_str().unwrap() > banyan_devstack_rfc3339(&before.updated_at).as_str());
    let (_, again) = owner.get("/api/v1/templates/2/").await;
    assert_eq!(again, body);
    // The change moved it to the top of the list.
    let (_, page) = owner.get("/api/v1/templates/").await;
    assert_eq!(ids(&page)[0], 2);
    // The dataset keeps the initial state.
    assert_eq!(stack.dataset().template(2).unwrap().name, before.name);
}

fn banyan_devstack_rfc3339(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[tokio::test]
async fn paths_need_their_trailing_slash_and_methods_are_checked() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    let (status, body) = api.get("/api/v1/me").await;
    assert_eq!((status, body), (404, json!({"detail": "Not found."})));
    let (status, body) = api.get("/api/v1/templates/1").await;
    assert_eq!((status, body), (404, json!({"detail": "Not found."})));
    let response = api
        .client
        .post(api.url("/api/v1/templates/"))
        .header("authorization", format!("Token {}", api.token))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!((status, body), (405, json!({"detail": "Method \"POST\" not allowed."})));
    let (status, body) = api.get("/api/v1/templates/1/analytics/?window=1y").await;
    assert_eq!((status, body), (400, json!({"window": ["\"1y\" is not a valid choice."]})));
}

#[tokio::test]
async fn calls_are_counted_per_route_with_headers() {
    let stack = start().await;
    let api = Api::new(&stack, OWNER_USER);
    for id in [1, 2, 3] {
        api.get(&format!("/api/v1/templates/{id}/")).await;
    }
    api.get("/api/v1/templates/4/analytics/?window=24h").await;
    api.get("/api/v1/templates/?id__in=1,2").await;
    api.patch("/api/v1/templates/5/", &json!({"status": "active"})).await;
    api.get("/api/v1/me").await;

    let calls = stack.calls();
    assert_eq!(calls.count("GET /api/v1/templates/{id}/"), 3);
    assert_eq!(calls.count("GET /api/v1/templates/{id}/analytics/"), 1);
    assert_eq!(calls.count("GET /api/v1/templates/"), 1);
    assert_eq!(calls.count("PATCH /api/v1/templates/{id}/"), 1);
    assert_eq!(calls.count("GET /api/v1/me"), 1, "an unmatched path is counted as sent");
    let headers = calls.last_headers("GET /api/v1/templates/{id}/").unwrap();
    assert_eq!(headers["authorization"], format!("Token {}", api.token));

    // The admin surface shows the same counters and is not counted itself.
    let admin = format!("{}/__devstack/calls", stack.monolith_url());
    let (status, body) = read(reqwest::get(&admin).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["GET /api/v1/templates/{id}/"], 3);
    assert_eq!(serde_json::to_value(calls.snapshot()).unwrap(), body);
    let reset = api.client.delete(&admin).send().await.unwrap();
    assert_eq!(reset.status().as_u16(), 204);
    assert_eq!(calls.total(), 0);
    assert!(calls.last_headers("GET /api/v1/templates/{id}/").is_none());

    let (_, users) =
        read(reqwest::get(format!("{}/__devstack/users", stack.monolith_url())).await.unwrap()).await;
    assert_eq!(users[0]["token"], api.token.as_str());
    assert_eq!(users[0]["session_id"], stack.dataset().user(OWNER_USER).unwrap().session_id.as_str());
    assert_eq!(calls.total(), 0);
}

/// A CSRF secret as Django's `get_token` makes them: 32 characters of `a-zA-Z0-9`.
const CSRF_SECRET: &str = "Q7wErTy8uIoP1aSdFgHjKlZxCvBnM042";

#[tokio::test]
async fn sessions_follow_drf_session_authentication_with_its_csrf_check() {
    let stack = start().await;
    let client = reqwest::Client::new();
    let owner = stack.dataset().user(OWNER_USER).unwrap().clone();
    assert_ne!(owner.session_id, owner.token, "a session id is not a token");
    let url = |path: &str| format!("{}{path}", stack.monolith_url());

    // A signed-in session reads without any CSRF proof (GET is safe).
    let (status, me) = read(
        client
            .get(url("/api/v1/me/"))
            .header("cookie", format!("sessionid={}", owner.session_id))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, me["id"].clone()), (200, json!(OWNER_USER)));
    // A token is not a session key, and a session key is not a token.
    let (status, _) = read(
        client
            .get(url("/api/v1/me/"))
            .header("cookie", format!("sessionid={}", owner.token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = read(
        client
            .get(url("/api/v1/me/"))
            .header("authorization", format!("Token {}", owner.session_id))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (401, json!({"detail": "Invalid token."})));

    // A write by session needs the CSRF cookie and a matching X-CSRFToken header.
    let patch = |cookie: String, csrf: Option<&str>| {
        let mut request = client
            .patch(url("/api/v1/templates/3/"))
            .header("cookie", cookie)
            .json(&json!({"name": "Renamed by session"}));
        if let Some(csrf) = csrf {
            request = request.header("x-csrftoken", csrf);
        }
        request.send()
    };
    let session = format!("sessionid={}", owner.session_id);
    let with_csrf = format!("sessionid={}; csrftoken={CSRF_SECRET}", owner.session_id);
    let refusals = [
        (patch(session.clone(), Some(CSRF_SECRET)), "CSRF Failed: CSRF cookie not set."),
        (patch(with_csrf.clone(), None), "CSRF Failed: CSRF token missing."),
        (
            patch(with_csrf.clone(), Some("Q7wErTy8uIoP1aSdFgHjKlZxCvBnM043")),
            "CSRF Failed: CSRF token from the 'X-Csrftoken' HTTP header incorrect.",
        ),
    ];
    for (request, detail) in refusals {
        let (status, body) = read(request.await.unwrap()).await;
        assert_eq!((status, body), (403, json!({ "detail": detail })));
    }
    assert_eq!(stack.calls().count("PATCH /api/v1/templates/{id}/"), 3);
    let (status, body) = read(patch(with_csrf, Some(CSRF_SECRET)).await.unwrap()).await;
    assert_eq!((status, body["name"].clone()), (200, json!("Renamed by session")));

    // A token needs no CSRF proof: CSRF protects cookies, which a browser sends by itself.
    let (status, _) =
        Api::new(&stack, OWNER_USER).patch("/api/v1/templates/3/", &json!({"name": "By token"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn with_session_authentication_first_unauthenticated_requests_are_403() {
    let config = DevStackConfig { session_authentication_first: true, ..DevStackConfig::default() };
    let stack = DevStack::start(config).await.unwrap();
    let client = reqwest::Client::new();
    let me = format!("{}/api/v1/me/", stack.monolith_url());
    let owner = stack.dataset().user(OWNER_USER).unwrap().clone();
    let cases = [
        (None, "Authentication credentials were not provided."),
        (Some("Token 0000000000000000000000000000000000000000".to_owned()), "Invalid token."),
    ];
    for (authorization, detail) in cases {
        let mut request = client.get(&me);
        if let Some(authorization) = &authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.unwrap();
        assert!(response.headers().get("www-authenticate").is_none(), "no challenge: DRF coerces to 403");
        let (status, body) = read(response).await;
        assert_eq!((status, body), (403, json!({ "detail": detail })), "{authorization:?}");
    }
    // Credentials that are right still work, either way.
    let (status, _) = Api::new(&stack, OWNER_USER).get("/api/v1/me/").await;
    assert_eq!(status, 200);
    let (status, _) = read(
        client.get(&me).header("cookie", format!("sessionid={}", owner.session_id)).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    stack.shutdown().await;
}
