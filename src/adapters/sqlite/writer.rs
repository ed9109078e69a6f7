//! The writer: one thread with the connection that writes, and group commit.
//!
//! Every write goes to the writer thread through one channel. The thread takes the first request waiting and
//! every request queued behind it at that moment (at most [`MAX_BATCH`]), runs them in order in one `IMMEDIATE`
//! transaction, commits, and only then answers each caller: callers that write at the same time share a commit
//! instead of queueing for one each. Durability is that of any commit (`synchronous = NORMAL` in WAL mode): a
//! caller is answered after the commit that holds its writes.
//!
//! Each request stays all or nothing. It runs inside a `SAVEPOINT` of its own; one that fails is rolled back to
//! it (its own writes go, the others' stay) and answered with its error at once, and the rest of the batch goes
//! on. The first request of a transaction needs no savepoint: when it fails, the transaction holds nothing else
//! and is rolled back whole. After an error that made SQLite roll back the whole transaction itself (a full disk,
//! an I/O error), the requests that ran before it in that transaction are answered with that error too, since
//! their writes went with it; the requests after it begin a new transaction. A request that panics is rolled back
//! like one that failed.
//!
//! A request runs to its end once it is sent, whether its caller still waits or not: a caller that drops its
//! future leaves its writes committed whole or not at all, and only the answer is lost. Dropping the [`Writer`]
//! lets the thread finish what was sent, then stops it and waits for it.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::ports::{StorageError, StorageErrorKind};

use super::checkpoint::Checkpointer;
use super::codec;

/// The most requests one transaction runs; more waiting form the next one at once. It bounds how long the first
/// caller of a batch waits for the others' work, and how much WAL one commit writes.
pub(super) const MAX_BATCH: usize = 256;

/// A request sent to the writer, boxed.
type Job = Box<dyn Request>;

/// The writer thread of one database, and the channel to it.
pub(super) struct Writer {
    requests: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Transactions committed so far (read by the unit tests).
    #[cfg_attr(not(test), allow(dead_code))]
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer thread on `connection` (configured and migrated). After each commit that changed a row
    /// it tells `checkpointer`, which the thread owns from now on.
    pub(super) fn start(
        connection: Arc<Mutex<Connection>>,
        checkpointer: Option<Checkpointer>,
        location: &str,
    ) -> Result<Self, StorageError> {
        let (requests, inbox) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn({
                let commits = Arc::clone(&commits);
                move || run(&inbox, &connection, checkpointer.as_ref(), &commits)
            })
            .map_err(|e| {
                StorageError::new(StorageErrorKind::Other, format!("cannot start the writer thread of {location}: {e}"))
            })?;
        Ok(Writer { requests: Some(requests), thread: Some(thread), commits })
    }

    /// Runs `work` in the writer's next transaction, inside a savepoint of its own, and answers after the commit.
    /// An error from `work` undoes everything it wrote, and only that. The request is sent at the first poll;
    /// from then on it runs to its end even if this future is dropped.
    pub(super) async fn submit<T, F>(&self, operation: &'static str, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(Pending { operation, work: Some(work), value: None, reply });
        let stopped = || {
            StorageError::new(StorageErrorKind::Other, format!("SQLite {operation} failed: the writer thread stopped"))
        };
        self.requests.as_ref().ok_or_else(stopped)?.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Transactions committed so far.
    #[cfg(test)]
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once it has run what was already sent.
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            // A panic on the thread has already failed the requests it held; nothing is left to undo here.
            let _ = thread.join();
        }
    }
}

/// What the writer thread does with a request, whatever the type of its answer.
trait Request: Send {
    fn operation(&self) -> &'static str;

    /// Runs the work on the transaction's connection; its value is kept for [`answer`](Request::answer).
    fn run(&mut self, connection: &Connection) -> Result<(), StorageError>;

    /// Answers the caller, if it still waits: the value kept, or `failure`.
    fn answer(self: Box<Self>, failure: Option<StorageError>);
}

struct Pending<T, F> {
    operation: &'static str,
    work: Option<F>,
    value: Option<T>,
    reply: oneshot::Sender<Result<T, StorageError>>,
}

impl<T, F> Request for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StorageError> + Send,
{
    fn operation(&self) -> &'static str {
        self.operation
    }

    fn run(&mut self, connection: &Connection) -> Result<(), StorageError> {
        let operation = self.operation;
        let work = self.work.take().ok_or_else(|| {
            StorageError::new(StorageErrorKind::Other, format!("SQLite {operation} failed: it was run twice"))
        })?;
        match catch_unwind(AssertUnwindSafe(|| work(connection))) {
            Ok(value) => {
                self.value = Some(value?);
                Ok(())
            }
            Err(_) => Err(StorageError::new(StorageErrorKind::Other, format!("SQLite {operation} panicked"))),
        }
    }

    fn answer(self: Box<Self>, failure: Option<StorageError>) {
        let operation = self.operation;
        let answer = match failure {
            Some(error) => Err(error),
            None => self.value.ok_or_else(|| {
                StorageError::new(StorageErrorKind::Other, format!("SQLite {operation} failed: it never ran"))
            }),
        };
        // The caller may have dropped its future: the work is done all the same.
        let _ = self.reply.send(answer);
    }
}

/// How long the writer keeps looking for the next request after a batch before it sleeps until one comes.
///
/// Waking a thread that sleeps costs tens of microseconds on a virtual machine whose idle CPUs halt (about 50 µs
/// on the machines this was measured on, a quarter of a one-row transaction): a caller that writes again as soon
/// as it is answered finds the writer still awake. It yields the CPU all the while, so a thread that is ready to
/// run (the caller) runs first.
const STAY_AWAKE: Duration = Duration::from_micros(100);

/// The next request: one already waiting, one sent within [`STAY_AWAKE`], or the first to come; `None` once every
/// sender is gone.
fn next(inbox: &Receiver<Job>) -> Option<Job> {
    let until = Instant::now() + STAY_AWAKE;
    loop {
        match inbox.try_recv() {
            Ok(job) => return Some(job),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if Instant::now() < until => std::thread::yield_now(),
            Err(TryRecvError::Empty) => return inbox.recv().ok(),
        }
    }
}

/// The thread: a batch of the requests waiting, one transaction, until every sender is gone.
fn run(
    inbox: &Receiver<Job>,
    connection: &Mutex<Connection>,
    checkpointer: Option<&Checkpointer>,
    commits: &AtomicU64,
) {
    while let Some(first) = next(inbox) {
        let mut batch = VecDeque::from([first]);
        batch.extend(inbox.try_iter().take(MAX_BATCH - 1));
        // Only an in-memory database shares this connection (with its reads), so this rarely waits.
        let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
        let changes = connection.total_changes();
        let committed = run_batch(&connection, batch);
        commits.fetch_add(committed, Ordering::Relaxed);
        // A transaction that changed no row wrote nothing to checkpoint.
        if let Some(checkpointer) = checkpointer.filter(|_| committed > 0 && connection.total_changes() != changes) {
            checkpointer.committed();
        }
    }
}

/// Runs `batch` in as few transactions as it can (one, unless a request's error ended one early), answering
/// every request; the number of transactions committed.
fn run_batch(connection: &Connection, mut batch: VecDeque<Job>) -> u64 {
    let mut committed = 0;
    while let Some(first) = batch.front() {
        // A rollback that failed earlier would leave a transaction open: close it before beginning.
        rollback(connection);
        if let Err(e) = execute(connection, "BEGIN IMMEDIATE") {
            // Another process holds the write lock past the busy timeout: nothing ran, every request fails.
            let error = codec::error(&format!("{} (beginning the transaction)", first.operation()), e);
            for request in batch.drain(..) {
                request.answer(Some(error.clone()));
            }
            break;
        }
        let Some(done) = run_requests(connection, &mut batch) else { continue };
        match execute(connection, "COMMIT") {
            Ok(()) => {
                committed += 1;
                for request in done {
                    request.answer(None);
                }
            }
            Err(e) => {
                let error = codec::error("commit", e);
                rollback(connection);
                for request in done {
                    let operation = request.operation();
                    let failure = StorageError::new(error.kind(), format!("SQLite {operation} failed: {error}"));
                    request.answer(Some(failure));
                }
            }
        }
    }
    committed
}

/// Runs requests from the front of `batch` in the open transaction: each one that fails is rolled back to its
/// savepoint and answered. The requests that ran, to be answered after the commit; `None` when a failure ended
/// the transaction (rolled back, and every request in it answered).
fn run_requests(connection: &Connection, batch: &mut VecDeque<Job>) -> Option<Vec<Job>> {
    let mut done: Vec<Job> = Vec::new();
    while let Some(mut request) = batch.pop_front() {
        // The first request of a transaction is rolled back with the transaction, the others to a savepoint.
        let savepoint = !done.is_empty();
        let ran = (|| {
            if savepoint {
                execute(connection, "SAVEPOINT request").map_err(|e| codec::error(request.operation(), e))?;
            }
            request.run(connection)?;
            if savepoint {
                execute(connection, "RELEASE request").map_err(|e| codec::error(request.operation(), e))?;
            }
            Ok(())
        })();
        let Err(error) = ran else {
            done.push(request);
            continue;
        };
        // SQLite ends the transaction itself after some errors (a full disk, an I/O error).
        if savepoint && !connection.is_autocommit() && undo(connection).is_ok() {
            request.answer(Some(error));
            continue;
        }
        rollback(connection);
        for other in done {
            let operation = other.operation();
            let lost = format!("SQLite {operation} failed: rolled back with its transaction after {error}");
            other.answer(Some(StorageError::new(error.kind(), lost)));
        }
        request.answer(Some(error));
        return None;
    }
    Some(done)
}

/// Undoes the current request's writes and closes its savepoint.
fn undo(connection: &Connection) -> rusqlite::Result<()> {
    execute(connection, "ROLLBACK TO request")?;
    execute(connection, "RELEASE request")
}

/// Rolls the open transaction back, if SQLite has not already.
fn rollback(connection: &Connection) {
    if !connection.is_autocommit() {
        // A rollback that fails is tried again before the next BEGIN.
        let _ = execute(connection, "ROLLBACK");
    }
}

/// Runs one transaction-control statement, prepared once.
fn execute(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
}
