//! A signal futures wait on: a generation count, and the wakers of the futures waiting for it to move.
//!
//! Runtime-agnostic. A waiting future that is dropped takes its waker out, so an idle worker that waits for a day
//! leaves nothing behind. The engine uses it to wake its workers when it queues work; the PostgreSQL storage to
//! pass on what its `LISTEN` connection hears.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// What the notifier and the waiting futures share.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Moves on every notification.
    generation: u64,
    /// The futures waiting, by key.
    waiting: HashMap<u64, Waker>,
    next_key: u64,
}

impl Signal {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under any panic (each change is one assignment), so a poisoned lock is used.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every waiting future completes, and so does every future made before this call.
    pub(crate) fn notify(&self) {
        let wakers: Vec<Waker> = {
            let mut state = self.state();
            state.generation = state.generation.wrapping_add(1);
            state.waiting.drain().map(|(_, waker)| waker).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// A future that completes at the first notification after this call.
    pub(crate) fn next(self: &Arc<Self>) -> Next {
        let seen = self.state().generation;
        Next { signal: Arc::clone(self), seen, key: None }
    }
}

/// Completes at the first [`Signal::notify`] after it was made.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub(crate) struct Next {
    signal: Arc<Signal>,
    seen: u64,
    key: Option<u64>,
}

impl Future for Next {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut state = this.signal.state();
        if state.generation != this.seen {
            if let Some(key) = this.key.take() {
                state.waiting.remove(&key);
            }
            return Poll::Ready(());
        }
        let key = match this.key {
            Some(key) => key,
            None => {
                let key = state.next_key;
                state.next_key = state.next_key.wrapping_add(1);
                this.key = Some(key);
                key
            }
        };
        state.waiting.insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Next {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.signal.state().waiting.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    #[test]
    fn a_notification_after_the_future_was_made_completes_it() {
        let wake = Arc::new(Signal::default());
        let mut before = wake.next();
        assert!((&mut before).now_or_never().is_none(), "nothing queued yet");
        wake.notify();
        assert!(before.now_or_never().is_some(), "queued after it was made, even before it was first polled again");
        let after = wake.next();
        assert!(after.now_or_never().is_none(), "a notification before the future was made does not count");
    }

    #[test]
    fn dropped_futures_leave_no_waker_behind() {
        let wake = Arc::new(Signal::default());
        for _ in 0..1000 {
            let mut waiting = wake.next();
            assert!((&mut waiting).now_or_never().is_none());
        }
        assert!(wake.state().waiting.is_empty());
        let mut a = wake.next();
        let mut b = wake.next();
        assert!((&mut a).now_or_never().is_none() && (&mut b).now_or_never().is_none());
        assert_eq!(wake.state().waiting.len(), 2, "every waiting future is woken");
        wake.notify();
        assert!(wake.state().waiting.is_empty());
        assert!(a.now_or_never().is_some() && b.now_or_never().is_some());
    }
}
