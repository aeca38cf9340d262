//! A request's loaders are built when first used: a request (or a subscription held for hours)
//! keeps only those it asked something of, each still loading over real sockets.

mod support;

use banyan_devstack::dataset::OWNER_USER;
use banyan_sources::domain::{TemplateId, UserId};
use banyan_sources::loaders::Loaders;
use banyan_sources::{BackendMetrics, Backends, Caller, Credential, Sources};
use support::start;

#[tokio::test]
async fn only_the_loaders_a_request_uses_are_built() {
    let clients = start().await;
    let token = clients.stack.dataset().user(OWNER_USER).expect("the owner").token.clone();
    let caller = Caller {
        credential: Credential::Token(token),
        user_id: UserId(OWNER_USER),
        request_id: Some("lazy-loaders".to_owned()),
        budget: Default::default(),
        forwarded_headers: Vec::new(),
        trace: banyan_sources::trace::TraceContext::off(),
    };
    let sources = Sources::from(Backends {
        monolith: clients.monolith.clone(),
        events: clients.events.clone(),
        drafts: clients.drafts.clone(),
        metrics: BackendMetrics::new(),
    });
    let loaders = Loaders::new(&sources, &caller, chrono::Utc::now());
    let built = |loaders: &Loaders| {
        [
            loaders.users.is_built(),
            loaders.templates.is_built(),
            loaders.stats.is_built(),
            loaders.legacy_stats.is_built(),
            loaders.drafts.is_built(),
            loaders.legacy_drafts.is_built(),
            loaders.event_pages.is_built(),
            loaders.legacy_event_pages.is_built(),
        ]
    };
    assert_eq!(built(&loaders), [false; 8], "nothing is built before it is used");

    let ids = [TemplateId(1), TemplateId(2), TemplateId(3)];
    let loaded = loaders.templates.load_many(ids).await.expect("the templates load");
    // Recounted from the seeded dataset, not through the loader.
    for id in ids {
        let seeded = clients.stack.dataset().template(id.0).expect("seeded");
        assert_eq!(loaded.get(&id).map(|template| template.name.as_str()), Some(seeded.name.as_str()));
    }
    assert_eq!(built(&loaders), [false, true, false, false, false, false, false, false]);
    assert_eq!(clients.stack.calls().count("GET /api/v1/templates/"), 1, "one batched call");
    clients.stack.shutdown().await;
}
