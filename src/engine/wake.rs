//! Waking the workers of an engine when work is queued, so a save is sent at once rather than at the next poll:
//! work this engine queues, and work the storage hears another engine queued ([`Storage::queued_elsewhere`]).
//!
//! [`Storage::queued_elsewhere`]: crate::Storage::queued_elsewhere

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::ports::QueuedElsewhere;
use crate::signal::Next;

/// Completes once work was queued after it was made: by this engine or one of its clones, or by another engine
/// sharing the storage when the storage can tell (PostgreSQL can); see
/// [`Engine::work_queued`](crate::Engine::work_queued).
#[must_use = "a future does nothing unless awaited"]
pub struct WorkQueued {
    pub(super) here: Next,
    pub(super) elsewhere: QueuedElsewhere,
}

impl std::fmt::Debug for WorkQueued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueued").field("here", &self.here).finish_non_exhaustive()
    }
}

impl Future for WorkQueued {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Pin::new(&mut this.here).poll(cx).is_ready() {
            return Poll::Ready(());
        }
        this.elsewhere.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::FutureExt as _;

    use super::*;
    use crate::signal::Signal;

    #[test]
    fn either_side_completes_it() {
        let (here, elsewhere) = (Arc::new(Signal::default()), Arc::new(Signal::default()));
        let queued = |here: &Arc<Signal>, elsewhere: &Arc<Signal>| WorkQueued {
            here: here.next(),
            elsewhere: Box::pin(elsewhere.next()),
        };
        let mut first = queued(&here, &elsewhere);
        assert!((&mut first).now_or_never().is_none());
        here.notify();
        assert!(first.now_or_never().is_some(), "this engine queued work");
        let mut second = queued(&here, &elsewhere);
        assert!((&mut second).now_or_never().is_none());
        elsewhere.notify();
        assert!(second.now_or_never().is_some(), "another engine queued work");
    }
}
