//! The engine end to end, as a resolver would drive it: concurrent requests take a snapshot,
//! decide and execute, while the table file is rewritten underneath them. No restart, no failed
//! request, and no request sees two tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use banyan_migration::{
    Backend, CallContext, Catalog, ContractIndex, LiveTable, RecorderConfig, RequestSubject, ShadowExecutor,
    ShadowRecorder,
};

fn both(mode: &str) -> String {
    format!(
        "[fields.\"Template.stats\"]\nmode = \"{mode}\"\n[fields.\"Template.recentEvents\"]\nmode = \"{mode}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_the_file_flips_backends_under_concurrent_requests() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("routing.toml");
    std::fs::write(&path, both("legacy")).unwrap_or_else(|e| panic!("{e}"));

    let catalog = Arc::new(Catalog::banyan().unwrap_or_else(|e| panic!("{e}")));
    let recorder = Arc::new(ShadowRecorder::new(catalog.clone(), RecorderConfig::default()));
    let live = LiveTable::from_file(&path, recorder.clone(), Arc::new(ContractIndex::empty()))
        .unwrap_or_else(|e| panic!("{e}"));
    let _watcher = live.watch(path.clone(), Duration::from_millis(5));
    let executor = ShadowExecutor::new(recorder);
    let stats = catalog.key("Template.stats").unwrap_or_else(|| panic!("declared"));
    let events = catalog.key("Template.recentEvents").unwrap_or_else(|| panic!("declared"));

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4u32)
        .map(|client| {
            let (live, executor, stop, served) =
                (live.clone(), executor.clone(), stop.clone(), served.clone());
            tokio::spawn(async move {
                let mut sequence = Vec::new();
                let mut n = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let subject = RequestSubject {
                        user_id: Some(format!("user-{client}")),
                        request_id: format!("{client}-{n}"),
                        headers: Vec::new(),
                    };
                    // One snapshot per request, for every field of it.
                    let table = live.snapshot();
                    let first = table.decide(stats, &subject);
                    let second = table.decide(events, &subject);
                    assert_eq!(first.serve, second.serve, "one request, one table");
                    let answer = executor
                        .execute(&first, CallContext::default(), |backend| async move {
                            tokio::task::yield_now().await;
                            Ok::<_, String>(backend.as_str().to_owned())
                        })
                        .await;
                    assert_eq!(answer.as_deref(), Ok(first.serve.as_str()), "no failed request");
                    served.fetch_add(1, Ordering::SeqCst);
                    sequence.push(first.serve);
                    tokio::task::yield_now().await;
                }
                sequence
            })
        })
        .collect();

    wait_for(|| served.load(Ordering::SeqCst) >= 200).await;
    std::fs::write(&path, both("service")).unwrap_or_else(|e| panic!("{e}"));
    wait_for(|| live.snapshot().route(stats).is_some_and(|r| r.mode_name() == "service")).await;
    let at_flip = served.load(Ordering::SeqCst);
    wait_for(|| served.load(Ordering::SeqCst) >= at_flip + 200).await;
    stop.store(true, Ordering::SeqCst);

    for client in clients {
        let sequence = client.await.unwrap_or_else(|e| panic!("{e}"));
        // Every client went from legacy to service once, and never back.
        let flipped_at = sequence.iter().position(|b| *b == Backend::Service).unwrap_or(sequence.len());
        assert!(flipped_at > 0, "started on legacy");
        assert!(flipped_at < sequence.len(), "ended on service");
        assert!(sequence[flipped_at..].iter().all(|b| *b == Backend::Service));
    }
    assert_eq!(live.status().reloads, 1);
    assert_eq!(live.status().rejections, 0);
}

async fn wait_for(done: impl Fn() -> bool) {
    for _ in 0..4_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached");
}
