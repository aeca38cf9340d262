//! The shadow executor on a real Tokio runtime: the primary's answer never waits for the
//! secondary, capacity and deadlines are enforced, and outcomes are recorded.
//!
//! Secondaries here wait on gates the test opens, so the assertions are about order and counts,
//! never about how long anything took.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banyan_migration::recorder::Counters;
use banyan_migration::{
    Backend, BatchSecondary, CallContext, Catalog, FieldKey, RecorderConfig, RequestSubject, RoutingTable,
    ShadowBatch, ShadowExecutor, ShadowRecorder,
};
use serde::Serialize;
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Stats {
    sent: u64,
    opened: u64,
}

struct Fixture {
    executor: ShadowExecutor,
    table: RoutingTable,
    key: FieldKey,
}

fn fixture(table: &str) -> Fixture {
    let catalog = Arc::new(Catalog::banyan().unwrap_or_else(|e| panic!("{e}")));
    let key = catalog.key("Template.stats").unwrap_or_else(|| panic!("declared"));
    let table = RoutingTable::parse(table, "t.toml", &catalog).unwrap_or_else(|e| panic!("{e}"));
    let recorder = Arc::new(ShadowRecorder::new(catalog, RecorderConfig::default()));
    Fixture { executor: ShadowExecutor::new(recorder), table, key }
}

fn shadow(deadline: &str, max_in_flight: u32) -> String {
    format!(
        "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 1.0\n\
         secondary_deadline = \"{deadline}\"\nmax_in_flight = {max_in_flight}\n"
    )
}

fn subject(n: u32) -> RequestSubject {
    RequestSubject { user_id: Some(format!("u{n}")), request_id: format!("r{n}"), headers: Vec::new() }
}

fn context() -> CallContext {
    CallContext {
        operation: Some("TemplateList".into()),
        field_path: "templates.edges.node.stats".into(),
        ..CallContext::default()
    }
}

fn counters(fixture: &Fixture) -> Counters {
    fixture.executor.recorder().snapshot().keys.get(&fixture.key).map(|r| r.counters).unwrap_or_default()
}

async fn wait_for(done: impl Fn() -> bool) {
    for _ in 0..2_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached");
}

/// What happened, in order.
#[derive(Default, Clone)]
struct Log(Arc<Mutex<Vec<&'static str>>>);
impl Log {
    fn push(&self, event: &'static str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event);
    }
    fn events(&self) -> Vec<&'static str> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_secondary_does_not_delay_the_primary() {
    let fixture = fixture(&shadow("10s", 4));
    let decision = fixture.table.decide(fixture.key, &subject(1));
    assert_eq!(decision.serve, Backend::Legacy);
    assert!(decision.shadow.is_some());
    let gate = Arc::new(Notify::new());
    let log = Log::default();
    let (gate2, log2) = (gate.clone(), log.clone());
    let serving = fixture.executor.execute(&decision, context(), move |backend| {
        let (gate, log) = (gate2.clone(), log2.clone());
        async move {
            match backend {
                Backend::Legacy => {
                    log.push("primary answered");
                    Ok::<_, String>(Stats { sent: 10, opened: 4 })
                }
                Backend::Service => {
                    log.push("secondary started");
                    // Stands for a secondary that takes seconds: it finishes only when the
                    // test says so, after the primary's answer is in hand.
                    gate.notified().await;
                    log.push("secondary answered");
                    Ok(Stats { sent: 10, opened: 4 })
                }
            }
        }
    });
    // A bound so that a primary waiting for the held secondary fails the test instead of
    // hanging it; the gate opens only after the primary's answer is in hand.
    let Ok(answer) = tokio::time::timeout(Duration::from_secs(60), serving).await else {
        panic!("the primary waited for the secondary");
    };
    log.push("response returned");
    assert_eq!(answer, Ok(Stats { sent: 10, opened: 4 }));
    // The response was back while the secondary was still running, and nothing was recorded yet.
    assert_eq!(fixture.executor.in_flight(fixture.key), 1);
    assert_eq!(counters(&fixture).compared(), 0);
    assert!(!log.events().contains(&"secondary answered"));

    gate.notify_one();
    wait_for(|| counters(&fixture).matched == 1).await;
    wait_for(|| fixture.executor.in_flight(fixture.key) == 0).await;
    let events = log.events();
    let at = |e| events.iter().position(|x| *x == e).unwrap_or(usize::MAX);
    assert!(at("response returned") < at("secondary answered"), "{events:?}");
    let results = fixture.executor.recorder().snapshot().keys.remove(&fixture.key).unwrap_or_default();
    assert_eq!(results.served.get(&Backend::Legacy), Some(&1));
    assert_eq!(results.served.get(&Backend::Service), None, "the secondary never serves");
    assert_eq!(results.latency.service.count, 1, "the secondary's latency is recorded");
}

/// The same with a real two-second secondary: the primary comes back first, and the comparison
/// lands about two seconds later; only the order is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_second_secondary_is_compared_after_the_response() {
    let fixture = fixture(&shadow("5s", 4));
    let decision = fixture.table.decide(fixture.key, &subject(2));
    let log = Log::default();
    let log2 = log.clone();
    let answer = fixture
        .executor
        .execute(&decision, context(), move |backend| {
            let log = log2.clone();
            async move {
                if backend == Backend::Service {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    log.push("secondary answered");
                    return Ok::<_, String>(Stats { sent: 10, opened: 5 });
                }
                Ok(Stats { sent: 10, opened: 4 })
            }
        })
        .await;
    log.push("response returned");
    assert_eq!(answer, Ok(Stats { sent: 10, opened: 4 }), "the primary's answer, not the secondary's");
    assert_eq!(log.events(), ["response returned"], "the response came back before the secondary answered");
    assert_eq!(counters(&fixture), Counters::default(), "nothing compared when the response returns");
    wait_for(|| counters(&fixture).mismatched == 1).await;
    assert_eq!(log.events(), ["response returned", "secondary answered"]);
    let snapshot = fixture.executor.recorder().snapshot();
    let exemplar = &snapshot.keys[&fixture.key].exemplars[0];
    assert_eq!(exemplar.differences.len(), 1);
    assert_eq!(exemplar.differences[0].path, "$.opened");
    assert_eq!(exemplar.differences[0].primary, Some(serde_json::json!(4)));
    assert_eq!(exemplar.differences[0].secondary, Some(serde_json::json!(5)));
    assert!(exemplar.secondary_ms >= exemplar.primary_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondaries_over_capacity_are_skipped_and_never_started() {
    let fixture = fixture(&shadow("10s", 2));
    let gate = Arc::new(Notify::new());
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for n in 0..5 {
        let decision = fixture.table.decide(fixture.key, &subject(n));
        let (gate, started) = (gate.clone(), started.clone());
        let answer = fixture
            .executor
            .execute(&decision, context(), move |backend| {
                let (gate, started) = (gate.clone(), started.clone());
                async move {
                    if backend == Backend::Service {
                        // Registered before it is counted, so `notify_waiters` cannot miss it.
                        let opened = gate.notified();
                        started.fetch_add(1, Ordering::SeqCst);
                        opened.await;
                    }
                    Ok::<_, String>(Stats { sent: 1, opened: 1 })
                }
            })
            .await;
        assert_eq!(answer, Ok(Stats { sent: 1, opened: 1 }));
    }
    // Two held, three skipped at once.
    assert_eq!(fixture.executor.in_flight(fixture.key), 2);
    assert_eq!(counters(&fixture).skipped, 3);
    wait_for(|| started.load(Ordering::SeqCst) == 2).await;
    gate.notify_waiters();
    wait_for(|| counters(&fixture).matched == 2).await;
    wait_for(|| fixture.executor.in_flight(fixture.key) == 0).await;
    assert_eq!(started.load(Ordering::SeqCst), 2, "skipped secondaries are never run");
    // Capacity is free again.
    let decision = fixture.table.decide(fixture.key, &subject(9));
    let _ = fixture
        .executor
        .execute(&decision, context(), |_| async { Ok::<_, String>(Stats { sent: 1, opened: 1 }) })
        .await;
    wait_for(|| counters(&fixture).matched == 3).await;
    assert_eq!(counters(&fixture).skipped, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_past_its_deadline_counts_as_a_timeout_and_errors_as_errors() {
    let fixture = fixture(&shadow("20ms", 4));
    let decision = fixture.table.decide(fixture.key, &subject(1));
    let dropped = Arc::new(AtomicBool::new(false));
    let dropped2 = dropped.clone();
    let answer = fixture
        .executor
        .execute(&decision, context(), move |backend| {
            let dropped = dropped2.clone();
            async move {
                if backend == Backend::Service {
                    let _flag = SetOnDrop(dropped);
                    std::future::pending::<()>().await;
                }
                Ok::<_, String>(Stats { sent: 1, opened: 0 })
            }
        })
        .await;
    assert_eq!(answer, Ok(Stats { sent: 1, opened: 0 }));
    wait_for(|| counters(&fixture).secondary_timeouts == 1).await;
    assert!(dropped.load(Ordering::SeqCst), "the timed-out secondary is cancelled");
    wait_for(|| fixture.executor.in_flight(fixture.key) == 0).await;

    let decision = fixture.table.decide(fixture.key, &subject(2));
    let _ = fixture
        .executor
        .execute(&decision, context(), |backend| async move {
            match backend {
                Backend::Service => Err("UNAVAILABLE".to_owned()),
                Backend::Legacy => Ok(Stats { sent: 1, opened: 0 }),
            }
        })
        .await;
    wait_for(|| counters(&fixture).secondary_errors == 1).await;

    // A failing primary: its error reaches the caller, and nothing is compared.
    let decision = fixture.table.decide(fixture.key, &subject(3));
    let answer = fixture
        .executor
        .execute(&decision, context(), |backend| async move {
            match backend {
                Backend::Legacy => Err("503".to_owned()),
                Backend::Service => Ok(Stats { sent: 1, opened: 0 }),
            }
        })
        .await;
    assert_eq!(answer, Err("503".to_owned()));
    wait_for(|| counters(&fixture).primary_errors == 1).await;
    assert_eq!(counters(&fixture).compared(), 0);
}

struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibration_calls_the_primary_twice_and_learns_noise() {
    let fixture = fixture(
        "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 1.0\ncalibration_rate = 1.0\n",
    );
    let decision = fixture.table.decide(fixture.key, &subject(1));
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let calls2 = calls.clone();
    let _ = fixture
        .executor
        .execute(&decision, context(), move |backend| {
            let calls = calls2.clone();
            async move {
                assert_eq!(backend, Backend::Legacy, "A/A calls only the primary");
                // Each call answers a different `opened`: the path is noise.
                let n = calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(Stats { sent: 1, opened: n })
            }
        })
        .await;
    wait_for(|| {
        fixture.executor.recorder().snapshot().keys.get(&fixture.key).is_some_and(|r| r.calibrations == 1)
    })
    .await;
    let snapshot = fixture.executor.recorder().snapshot();
    let results = &snapshot.keys[&fixture.key];
    assert_eq!(results.noise.keys().collect::<Vec<_>>(), ["$.opened"]);
    assert_eq!(results.counters, Counters::default(), "calibration is not a comparison");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_and_fixed_requests_make_one_call() {
    for table in [
        "[fields.\"Template.stats\"]\nmode = \"service\"\n",
        &shadow("1s", 4).replace("sample_rate = 1.0", "sample_rate = 0.0"),
    ] {
        let fixture = fixture(table);
        let decision = fixture.table.decide(fixture.key, &subject(1));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let calls2 = calls.clone();
        let _ = fixture
            .executor
            .execute(&decision, context(), move |backend| {
                calls2.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(backend);
                async { Ok::<_, String>(Stats { sent: 0, opened: 0 }) }
            })
            .await;
        assert_eq!(*calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner), vec![decision.serve]);
        assert_eq!(counters(&fixture), Counters::default());
    }
}

/// `run` takes a primary that borrows from the request; only the second call owns its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_accepts_a_borrowing_primary() {
    let fixture = fixture(&shadow("1s", 4));
    let decision = fixture.table.decide(fixture.key, &subject(1));
    let per_request = vec![Stats { sent: 3, opened: 1 }];
    let borrowed = &per_request;
    let answer = fixture
        .executor
        .run(
            &decision,
            context(),
            async move { Ok::<_, String>(borrowed[0].clone()) },
            |backend| async move {
                assert_eq!(backend, Backend::Service);
                Err::<Stats, _>(std::io::Error::other("refused"))
            },
            None,
        )
        .await;
    assert_eq!(answer, Ok(Stats { sent: 3, opened: 1 }));
    wait_for(|| counters(&fixture).secondary_errors == 1).await;
}

/// An answer whose JSON cannot be made; whether two are the same is told by `id` alone, and
/// `note` is left out of the comparison (`PartialEq` ignores it, as a skipped field of a derived
/// type would be).
#[derive(Debug, Clone)]
struct Opaque {
    id: u64,
    note: &'static str,
}

impl PartialEq for Opaque {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Serialize for Opaque {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(format!("no JSON for {} ({})", self.id, self.note)))
    }
}

/// Equal answers are a match without being turned into JSON (these cannot be); different ones
/// are compared as JSON, which here fails on the secondary's side first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_answers_match_without_json() {
    let fixture = fixture(&shadow("1s", 4));
    let decision = fixture.table.decide(fixture.key, &subject(1));
    for (n, secondary_id) in [(1, 7), (2, 7), (3, 8)] {
        let answer = fixture
            .executor
            .execute(&decision, context(), move |backend| async move {
                let id = if backend == Backend::Legacy { 7 } else { secondary_id };
                Ok::<_, String>(Opaque { id, note: "either side" })
            })
            .await;
        assert_eq!(answer.map(|opaque| opaque.id), Ok(7));
        wait_for(|| {
            let counters = counters(&fixture);
            counters.compared() + counters.secondary_errors + counters.primary_errors == n
        })
        .await;
    }
    let counters = counters(&fixture);
    assert_eq!((counters.matched, counters.mismatched, counters.secondary_errors), (2, 0, 1), "{counters:?}");
}

/// A batch of the test's field, and the number of keys each of its secondary calls asked for.
type PageBatch = (Arc<ShadowBatch<u64, Stats, String>>, Arc<Mutex<Vec<usize>>>);

/// A batch whose secondary answers each key `n` with `Stats { sent: n, opened: n }`, recording
/// how many keys each of its calls asked for.
fn page_batch(
    fixture: &Fixture,
    decision: &banyan_migration::Decision,
    deadline_wait: Option<Duration>,
) -> PageBatch {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let calls2 = calls.clone();
    let secondary: BatchSecondary<u64, Stats, String> = Arc::new(move |backend, keys: Vec<u64>| {
        assert_eq!(backend, Backend::Service, "the shadow's side is asked");
        calls2.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(keys.len());
        Box::pin(async move {
            if let Some(wait) = deadline_wait {
                tokio::time::sleep(wait).await;
            }
            keys.into_iter().map(|n| Ok(Stats { sent: n, opened: n })).collect()
        })
    });
    let batch = fixture.executor.batch(decision, secondary).unwrap_or_else(|| panic!("a comparing decision"));
    (Arc::new(batch), calls)
}

/// Runs items `ns` through `batch`, one after another, each with a primary that agrees with
/// the secondary, and checks each gets its primary's answer.
async fn run_items(batch: &ShadowBatch<u64, Stats, String>, ns: impl IntoIterator<Item = u64>) {
    for n in ns {
        let answer =
            batch.run(context(), async move { Ok::<_, String>(Stats { sent: n, opened: n }) }, n, None).await;
        assert_eq!(answer.map(|s| s.sent), Ok(n));
    }
}

fn calls_made(calls: &Mutex<Vec<usize>>) -> Vec<usize> {
    calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// A page's items are compared together once the last of them has its primary's answer, with
/// one secondary call for all of them; a difference is found at its item's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_compared_once_its_last_item_answers_with_one_secondary_call() {
    let fixture = fixture(&shadow("10s", 100));
    let decision = fixture.table.decide(fixture.key, &subject(1));
    let (batch, calls) = page_batch(&fixture, &decision, None);
    batch.expect(10);
    // The primary agrees with the secondary except on item 7's `opened`.
    let primary =
        |n: u64| async move { Ok::<_, String>(Stats { sent: n, opened: if n == 7 { n + 1 } else { n } }) };
    for n in 0..9 {
        assert_eq!(batch.run(context(), primary(n), n, None).await.map(|s| s.sent), Ok(n));
    }
    tokio::task::yield_now().await;
    assert_eq!(counters(&fixture).compared(), 0, "nothing is compared before the page's last item");
    assert!(calls_made(&calls).is_empty(), "the secondary is asked once, for the whole page");
    assert_eq!(batch.run(context(), primary(9), 9, None).await.map(|s| s.sent), Ok(9));
    wait_for(|| counters(&fixture).compared() == 10).await;
    assert_eq!(calls_made(&calls), [10]);
    let counters = counters(&fixture);
    assert_eq!((counters.matched, counters.mismatched), (9, 1), "{counters:?}");
    let snapshot = fixture.executor.recorder().snapshot();
    let differences = &snapshot.keys[&fixture.key].exemplars[0].differences;
    assert_eq!(differences.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(), ["$.opened"]);
    assert_eq!(differences[0].primary, Some(serde_json::json!(8)));
    assert_eq!(differences[0].secondary, Some(serde_json::json!(7)));
    wait_for(|| fixture.executor.in_flight(fixture.key) == 0).await;
}

/// Items beyond what the batch expected are compared one by one, each with its own call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_a_batch_did_not_expect_are_compared_alone() {
    let fixture = fixture(&shadow("10s", 100));
    let decision = fixture.table.decide(fixture.key, &subject(1));
    let (batch, calls) = page_batch(&fixture, &decision, None);
    batch.expect(1);
    run_items(&batch, [3, 4]).await;
    wait_for(|| counters(&fixture).compared() == 2).await;
    assert_eq!(calls_made(&calls), [1, 1]);
    assert_eq!(counters(&fixture).matched, 2);
}

/// A request that ends before all the expected items came compares the ones that did; an item
/// dropped before its primary answered counts as skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_ends_early_compares_the_items_it_has() {
    let fixture = fixture(&shadow("10s", 100));
    let decision = fixture.table.decide(fixture.key, &subject(1));
    let (batch, calls) = page_batch(&fixture, &decision, None);
    batch.expect(5);
    run_items(&batch, 0..3).await;
    // An item whose primary never answers, abandoned (as a cancelled request abandons it).
    let abandoned = tokio::time::timeout(
        Duration::from_millis(20),
        batch.run(context(), std::future::pending::<Result<Stats, String>>(), 3, None),
    )
    .await;
    assert!(abandoned.is_err());
    assert_eq!(counters(&fixture).skipped, 1);
    assert_eq!(counters(&fixture).compared(), 0, "one item is still expected");
    drop(batch);
    wait_for(|| counters(&fixture).compared() == 3).await;
    assert_eq!(calls_made(&calls), [3]);
    assert_eq!(counters(&fixture).matched, 3);
    wait_for(|| fixture.executor.in_flight(fixture.key) == 0).await;
}

/// The deadline counts from the batch's start; a secondary past it times out for every item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_past_its_deadline_counts_a_timeout_per_item() {
    let fixture = fixture(&shadow("50ms", 100));
    let decision = fixture.table.decide(fixture.key, &subject(1));
    let (batch, calls) = page_batch(&fixture, &decision, Some(Duration::from_secs(30)));
    batch.expect(2);
    run_items(&batch, 0..2).await;
    wait_for(|| counters(&fixture).secondary_timeouts == 2).await;
    assert_eq!(calls_made(&calls), [2]);
    assert_eq!(counters(&fixture).compared(), 0);
}

/// A page's items share one call, so they hold one of the field's `max_in_flight` slots: a page
/// of ten goes through a bound of one, and another page finds the slot taken until the first is
/// compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_counts_once_among_max_in_flight() {
    let fixture = fixture(&shadow("10s", 1));
    let decision = fixture.table.decide(fixture.key, &subject(1));
    let (batch, calls) = page_batch(&fixture, &decision, None);
    let (other, _) = page_batch(&fixture, &fixture.table.decide(fixture.key, &subject(2)), None);
    assert!(batch.expect(10), "a free slot");
    assert_eq!(fixture.executor.in_flight(fixture.key), 1);
    assert!(batch.expect(5), "the page's slot covers more of its items");
    assert!(!other.expect(10), "the field's one slot is taken by the first page");
    run_items(&batch, 0..15).await;
    wait_for(|| counters(&fixture).compared() == 15).await;
    assert_eq!((counters(&fixture).matched, counters(&fixture).skipped), (15, 0));
    assert_eq!(calls_made(&calls), [15]);
    wait_for(|| fixture.executor.in_flight(fixture.key) == 0).await;
    assert!(other.expect(10), "free again once the first page is compared");
}

/// A WebSocket operation keeps its scope, and so its batch, from one event to the next: a page
/// that comes after the batch's earlier pages were compared starts a round of its own, whose
/// deadline counts from its own start, not from the first page's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_after_the_batch_was_compared_has_a_deadline_of_its_own() {
    let fixture = fixture(&shadow("200ms", 100));
    let decision = fixture.table.decide(fixture.key, &subject(1));
    // The secondary takes a little of the deadline (an answer ready at once beats any timer).
    let (batch, calls) = page_batch(&fixture, &decision, Some(Duration::from_millis(20)));
    assert!(batch.expect(2));
    run_items(&batch, 0..2).await;
    wait_for(|| counters(&fixture).compared() == 2).await;
    // Longer than the deadline after the first page started.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(batch.expect(3));
    run_items(&batch, 10..13).await;
    wait_for(|| counters(&fixture).compared() + counters(&fixture).secondary_timeouts >= 5).await;
    let counters = counters(&fixture);
    assert_eq!((counters.matched, counters.secondary_timeouts), (5, 0), "{counters:?}");
    assert_eq!(calls_made(&calls), [2, 3]);
    wait_for(|| fixture.executor.in_flight(fixture.key) == 0).await;
}

/// A subscription's event resolved with items of its page never started (an error nulled the
/// list before they ran): ending the round compares the items that came and frees the field's
/// slot, and the next event's page has a round, and a deadline, of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_round_compares_the_items_that_came_and_frees_the_slot() {
    let fixture = fixture(&shadow("200ms", 1));
    let decision = fixture.table.decide(fixture.key, &subject(1));
    let (batch, calls) = page_batch(&fixture, &decision, Some(Duration::from_millis(20)));
    assert!(batch.expect(5));
    run_items(&batch, 0..2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(counters(&fixture).compared(), 0, "the batch still waits for the items it expects");
    assert_eq!(fixture.executor.in_flight(fixture.key), 1);
    batch.end_round();
    wait_for(|| counters(&fixture).compared() == 2).await;
    wait_for(|| fixture.executor.in_flight(fixture.key) == 0).await;
    // Past the first round's deadline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(batch.expect(2), "the slot is free again");
    run_items(&batch, 10..12).await;
    wait_for(|| counters(&fixture).compared() + counters(&fixture).secondary_timeouts >= 4).await;
    let counters = counters(&fixture);
    assert_eq!((counters.matched, counters.secondary_timeouts, counters.skipped), (4, 0, 0), "{counters:?}");
    assert_eq!(calls_made(&calls), [2, 2]);
}

/// A primary served alone records the latency of the backend call that answered it: what it
/// waited for; when it was answered on its first poll (from the request's loaders), the
/// prefetch's wait that loaded it, or zero when nothing was prefetched.
#[tokio::test]
async fn a_served_primary_records_what_it_waited_for_or_what_its_prefetch_did() {
    let fixture = fixture("[fields.\"Template.stats\"]\nmode = \"legacy\"\n");
    let decision = fixture.table.decide(fixture.key, &subject(1));
    assert!(decision.shadow.is_none());
    let ready = fixture.executor.serve(&decision, async { Ok::<_, String>(1) }, None).await;
    let waited = fixture
        .executor
        .serve(
            &decision,
            async {
                tokio::time::sleep(Duration::from_millis(3)).await;
                Ok::<_, String>(2)
            },
            None,
        )
        .await;
    let prefetched =
        fixture.executor.serve(&decision, async { Ok::<_, String>(3) }, Some(Duration::from_secs(3))).await;
    assert_eq!((ready, waited, prefetched), (Ok(1), Ok(2), Ok(3)));
    let snapshot = fixture.executor.recorder().snapshot();
    let results = snapshot.keys.get(&fixture.key).unwrap_or_else(|| panic!("recorded"));
    assert_eq!(results.served.get(&Backend::Legacy), Some(&3));
    let legacy = &results.latency.legacy;
    assert_eq!(legacy.count, 3);
    // Buckets (upper bounds 1, 2, 5, … 2500, 5000 ms): the ready one with nothing prefetched in
    // the first; the one that slept at least its 3 ms above 2 ms; the prefetched one at its
    // prefetch's 3 s, in (2.5, 5] s, though its own future was ready at once. A sleep lasts at
    // least its duration, so this holds however slow the machine (short of a 2.5 s stall).
    assert_eq!(legacy.bounds_ms[11], 5000);
    assert_eq!(legacy.counts[0], 1, "the ready one, nothing prefetched: {legacy:?}");
    assert_eq!(legacy.counts[..2].iter().sum::<u64>(), 1, "only it at 2 ms or less: {legacy:?}");
    assert_eq!(legacy.counts[11], 1, "the prefetched one at its prefetch's wait: {legacy:?}");
    assert!(legacy.sum_micros >= 3_003_000, "{legacy:?}");
}
