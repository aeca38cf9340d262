//! Every endpoint and method name the migration engine declares (`banyan_migration::calls`, and
//! every call the declarations of fields and resolvers list) is a name the devstack actually
//! counts, and every call the clients make is declared: each client method is called once
//! through the devstack, then the call log is read.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use banyan_devstack::dataset::OWNER_USER;
use banyan_migration::banyan::{DEPENDENCIES, FIELDS};
use banyan_migration::calls::ALL;
use banyan_sources::domain::{
    BlockKind, DraftEdit, StatsWindow, TemplateId, TemplatePatch, UserId, WorkspaceId,
};
use banyan_sources::{Caller, Credential};

/// Every name declared anywhere: the list of calls, and the calls each field's two sides and
/// each other resolver list.
fn declared() -> BTreeSet<&'static str> {
    let mut names: BTreeSet<&'static str> = ALL.iter().map(|c| c.name).collect();
    for field in FIELDS {
        names.extend(field.legacy.calls.iter().chain(field.service.calls).map(|c| c.name));
    }
    for dependency in DEPENDENCIES {
        names.extend(dependency.calls.iter().map(|c| c.name));
    }
    names
}

#[tokio::test]
async fn every_declared_call_is_one_the_devstack_counts() {
    let support::Clients { stack, monolith, events, drafts } = support::start().await;
    let credential = Credential::Token(stack.dataset().user(OWNER_USER).unwrap().token.clone());
    let me = Caller {
        credential: credential.clone(),
        user_id: UserId(OWNER_USER),
        request_id: None,
        budget: Default::default(),
        forwarded_headers: Vec::new(),
        trace: banyan_sources::TraceContext::off(),
    };
    let template = TemplateId(31);
    let now = chrono::Utc::now();

    // Every client method, once.
    monolith.me(&credential, None, &banyan_sources::TraceContext::off()).await.unwrap();
    monolith.users_by_ids(&me, &[UserId(1), UserId(2)]).await.unwrap();
    monolith.workspaces(&me).await.unwrap();
    monolith.members_of_workspaces(&me, &[WorkspaceId(1)]).await.unwrap();
    monolith.templates_page(&me, WorkspaceId(1), None, 1, 10).await.unwrap();
    monolith.templates_by_ids(&me, &[template]).await.unwrap();
    monolith
        .update_template(&me, template, &TemplatePatch { name: Some("Renamed".into()), status: None })
        .await
        .unwrap();
    monolith.legacy_analytics(&me, template, StatsWindow::Last7Days).await.unwrap();
    let draft = monolith.legacy_draft(&me, template).await.unwrap().unwrap();
    monolith.legacy_events(&me, template, 10, None).await.unwrap();
    let v = draft.version;
    let insert = DraftEdit::InsertBlock { index: 0, kind: BlockKind::Text, content: "x".into() };
    monolith.legacy_edit_draft(&me, template, v, insert.clone()).await.unwrap();
    let update = DraftEdit::UpdateBlock { block_id: "b1".into(), content: "y".into() };
    monolith.legacy_edit_draft(&me, template, v + 1, update.clone()).await.unwrap();
    let delete = DraftEdit::DeleteBlock { block_id: "b2".into() };
    monolith.legacy_edit_draft(&me, template, v + 2, delete.clone()).await.unwrap();

    events.template_stats(&me, &[template], StatsWindow::Last7Days, now).await.unwrap();
    events.list_events(&me, template, 10, None).await.unwrap();
    let stream = events.stream_events(&me, &[template], 0).await.unwrap();
    drop(stream);
    drafts.batch_get(&me, &[template]).await.unwrap();
    drafts.edit(&me, template, v, insert).await.unwrap();
    drafts.edit(&me, template, v + 1, update).await.unwrap();
    drafts.edit(&me, template, v + 2, delete).await.unwrap();

    let seen = stack.calls().snapshot();
    let declared = declared();
    let never_counted: Vec<&str> =
        declared.iter().copied().filter(|name| !seen.contains_key(*name)).collect();
    assert!(
        never_counted.is_empty(),
        "declared, but the devstack never counted: {never_counted:?}; it saw {seen:?}"
    );
    let undeclared: Vec<&String> = seen.keys().filter(|name| !declared.contains(name.as_str())).collect();
    assert!(undeclared.is_empty(), "the clients called names nothing declares: {undeclared:?}");
    // Each name was counted exactly as often as it was called above (the templates list twice:
    // by page and by ids), so no call is counted under a second spelling.
    let expected: std::collections::BTreeMap<String, u64> = declared
        .iter()
        .map(|name| (name.to_string(), if *name == "GET /api/v1/templates/" { 2 } else { 1 }))
        .collect();
    assert_eq!(seen, expected);
    stack.shutdown().await;
}
