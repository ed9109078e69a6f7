//! Checkpoints on a thread of their own.
//!
//! A checkpoint copies committed pages from the WAL back into the database file and syncs both files. Left to
//! SQLite, the connection whose commit takes the WAL past `wal_autocheckpoint` pages runs it there and then, and
//! that call waits for the copying and the syncs (milliseconds, every few hundred calls under load). Here a
//! connection of its own (beside the writer's and the reader's) checkpoints on its own thread shortly after
//! commits, and the writing connection keeps an automatic checkpoint only as a backstop, at [`BACKSTOP_PAGES`]:
//! under sustained writes the WAL is never fully copied at the moment a write begins, so SQLite cannot start it
//! over unless the writer checkpoints itself.
//!
//! Durability is unchanged in kind (`synchronous = NORMAL`: a commit survives the application crashing, and
//! power loss once a checkpoint has synced the WAL) and better in practice: a checkpoint, and so a sync of the
//! WAL, follows every commit within about [`INTERVAL`], where before it waited for a thousand pages of WAL.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::ports::{StorageError, StorageErrorKind};

use super::codec;

/// The least time from one background checkpoint to the next: commits in between are checkpointed together.
pub(super) const INTERVAL: Duration = Duration::from_millis(20);

/// The WAL size, in pages, at which the writing connection checkpoints by itself (SQLite's default is 1000).
pub(super) const BACKSTOP_PAGES: u32 = 4000;

/// The background checkpointer of one database file. Dropping it stops its thread and waits for it.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// A commit since the last checkpoint began.
    dirty: bool,
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Checkpointer {
    /// Opens a connection of its own to the database at `path` and starts checkpointing on a new thread; `writer`,
    /// the connection that commits, keeps its automatic checkpoint only as the backstop.
    pub(super) fn start(writer: &Connection, path: &Path, location: &str) -> Result<Self, StorageError> {
        writer
            .pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)
            .map_err(|e| codec::error("setting wal_autocheckpoint", e))?;
        let connection =
            Connection::open(path).map_err(|e| codec::error(&format!("opening {location} to checkpoint"), e))?;
        // A checkpoint syncs the WAL and the database file under NORMAL (as under FULL), never under OFF.
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| codec::error("setting synchronous for checkpoints", e))?;
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), wake: Condvar::new() });
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&connection, &shared)
            })
            .map_err(|e| {
                StorageError::new(
                    StorageErrorKind::Other,
                    format!("cannot start the checkpoint thread of {location}: {e}"),
                )
            })?;
        Ok(Checkpointer { shared, thread: Some(thread) })
    }

    /// Notes a commit: a checkpoint follows within about [`INTERVAL`].
    pub(super) fn committed(&self) {
        let mut state = self.shared.lock();
        if !state.dirty {
            state.dirty = true;
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // The thread ignores every error and cannot panic; a failed join would change nothing here.
            let _ = thread.join();
        }
    }
}

/// The thread: after each commit, and at most once an [`INTERVAL`], a passive checkpoint.
fn run(connection: &Connection, shared: &Shared) {
    let mut last: Option<Instant> = None;
    let mut state = shared.lock();
    loop {
        while !state.dirty && !state.stop {
            state = shared.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        // Commits gather for what remains of the interval since the last checkpoint.
        if let Some(until) = last.map(|at| at + INTERVAL) {
            loop {
                let now = Instant::now();
                if state.stop || now >= until {
                    break;
                }
                state = shared.wake.wait_timeout(state, until - now).unwrap_or_else(PoisonError::into_inner).0;
            }
        }
        if state.stop {
            return;
        }
        state.dirty = false;
        drop(state);
        // PASSIVE waits for no reader or writer and copies what it can. A busy or failed checkpoint is tried
        // again after the next commit; meanwhile the writer's backstop bounds the WAL.
        let _ = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        last = Some(Instant::now());
        state = shared.lock();
    }
}
