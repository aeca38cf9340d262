//! Singleflight: identical in-flight reads share one backend call. The first caller of a key (the
//! leader) makes the call; callers of the same key meanwhile (followers) wait for its result. A
//! key names the call and whoever it is made for, so callers share only what each may see. When
//! the leader goes away before answering (its request was cancelled), each follower makes its
//! own call.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::error::SourceError;

type Shared = Option<Arc<dyn Any + Send + Sync>>;

#[derive(Debug, Default)]
pub(super) struct Singleflight {
    in_flight: Mutex<HashMap<String, watch::Receiver<SharedDebug>>>,
}

/// The shared result, opaque to `Debug`.
#[derive(Clone, Default)]
struct SharedDebug(Shared);

impl std::fmt::Debug for SharedDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Done" } else { "Pending" })
    }
}

/// Removes the leader's key when it finishes or is dropped.
struct Leader<'a> {
    map: &'a Mutex<HashMap<String, watch::Receiver<SharedDebug>>>,
    key: String,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.key);
    }
}

impl Singleflight {
    /// Runs `call` unless an identical one is in flight, whose result it then shares. Returns the
    /// result and whether it was shared.
    pub(super) async fn run<T>(
        &self,
        key: String,
        call: impl Future<Output = Result<T, SourceError>>,
    ) -> (Result<T, SourceError>, bool)
    where
        T: Clone + Send + Sync + 'static,
    {
        let existing = {
            let mut map = self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match map.get(&key) {
                Some(receiver) => Err(receiver.clone()),
                None => {
                    let (sender, receiver) = watch::channel(SharedDebug::default());
                    map.insert(key.clone(), receiver);
                    Ok(sender)
                }
            }
        };
        match existing {
            Ok(sender) => {
                let _leader = Leader { map: &self.in_flight, key };
                let result = call.await;
                let shared: Arc<dyn Any + Send + Sync> = Arc::new(result.clone());
                // No follower is fine.
                let _ = sender.send(SharedDebug(Some(shared)));
                (result, false)
            }
            Err(mut receiver) => {
                let shared =
                    receiver.wait_for(|value| value.0.is_some()).await.ok().and_then(|value| value.0.clone());
                match shared.as_ref().and_then(|value| value.downcast_ref::<Result<T, SourceError>>()) {
                    Some(result) => (result.clone(), true),
                    None => (call.await, false),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn identical_keys_share_one_call_and_others_do_not() {
        let flights = Singleflight::default();
        let calls = AtomicUsize::new(0);
        let call = |value: u32| {
            let calls = &calls;
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, SourceError>(value)
            }
        };
        let (a, b, c) = tokio::join!(
            flights.run("k".to_owned(), call(1)),
            flights.run("k".to_owned(), call(2)),
            flights.run("other".to_owned(), call(3)),
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!((a.0.ok(), a.1), (Some(1), false));
        assert_eq!((b.0.ok(), b.1), (Some(1), true), "the follower gets the leader's answer");
        assert_eq!((c.0.ok(), c.1), (Some(3), false));
    }
}
