//! SQLite's user writes on one thread, committed in groups.
//!
//! SQLite has one writer. Through sqlx every statement of a write transaction is a round trip
//! to the connection's worker thread, and the write lock is held across all of them: a
//! `PATCH /me` (BEGIN, UPDATE, COMMIT) held it for about a millisecond of wake-ups while the
//! CPU sat half idle (BENCHMARKS.md). Here, user writes are sent to one thread that owns a
//! rusqlite connection, takes every write waiting, runs each under its own SAVEPOINT inside one
//! `BEGIN IMMEDIATE` … `COMMIT`, and only then answers them all. A write that fails rolls back
//! its savepoint alone; a failed COMMIT fails the whole group. Nobody is answered before the
//! COMMIT that contains their write has returned, so an acknowledged write is exactly as
//! durable as before (`synchronous` is the same setting).
//!
//! Checkpoints (copying the WAL back into the database file, with two fsyncs) run on a thread
//! of their own, after the groups commit. Left to SQLite, the connection whose COMMIT took the
//! WAL past 1 000 pages would do it: the writer thread, stalling every write waiting behind it
//! for 10–70 ms once a second under load, which was `PATCH`'s p99 (BENCHMARKS.md). Every
//! connection of this process now checkpoints itself only past [`WAL_BACKSTOP_PAGES`], a
//! point the checkpointer normally keeps the WAL far below.
//!
//! The other writes keep sqlx's single write connection. That connection is the lock both
//! paths take: the thread holds it (acquired from the pool) while its group runs, so the two
//! never race for SQLite's write lock (which would cost busy-waits, or `SQLITE_BUSY_SNAPSHOT`
//! for a deferred transaction that read first).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::sql::Touch;
use crate::sqlite::conn::map_err;
use crate::sqlite::user_cache::{Kept, UserCache};
use crate::{Result, StoreError};

/// The most writes one COMMIT carries: enough to absorb a burst from every connection of a
/// busy server, small enough that the first of them does not wait long for the last.
const MAX_GROUP: usize = 128;

/// WAL pages past which a committing connection of this process checkpoints itself, as
/// SQLite does at 1 000 by default. The checkpointer keeps the WAL well below it; it is
/// reached only when the checkpointer cannot keep up, or the WAL can never restart from its
/// beginning because a group commits before each checkpoint has caught up (then the writer's
/// own checkpoint finds nearly every page already copied).
pub(crate) const WAL_BACKSTOP_PAGES: u32 = 10_000;

/// How long the checkpointer lets groups commit after being woken before it checkpoints
/// them all at once: fewer, larger checkpoints, each two fsyncs on their own thread.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(50);

pub(crate) struct Writer {
    jobs: mpsc::Sender<Message>,
}

enum Message {
    Job(Box<dyn Job>),
    /// Stop after the writes sent before this one, close both connections, then answer.
    Close(oneshot::Sender<()>),
}

impl Writer {
    /// Opens the writer's connection and starts its thread. `gate` is sqlx's write pool;
    /// `users`, the cache whose entries each write outdates after its group's COMMIT.
    pub(crate) fn start(
        path: &Path,
        sync_full: bool,
        gate: sqlx::Pool<sqlx::Sqlite>,
        users: Option<Arc<UserCache>>,
    ) -> Result<Self> {
        let conn = open(path, sync_full).map_err(map_err)?;
        let checkpointer = open(path, sync_full).map_err(map_err)?;
        let runtime = tokio::runtime::Handle::current();
        let (jobs, queue) = mpsc::channel();
        // Bounded at one: a wake-up already pending covers every commit after it.
        let (wake, commits) = mpsc::sync_channel(1);
        let spawn_error = |e| StoreError::Other(Box::new(e));
        let checkpointing = std::thread::Builder::new()
            .name("tessera-sqlite-checkpoint".into())
            .spawn(move || checkpoint(&checkpointer, &commits))
            .map_err(spawn_error)?;
        std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || {
                let closing = run(&conn, &queue, &gate, &runtime, users.as_deref(), &wake);
                // Both connections are closed before `close` returns: the last connection of
                // the file to close copies the WAL into it (`Store::close`).
                drop(conn);
                drop(wake);
                let _ = checkpointing.join();
                if let Some(done) = closing {
                    let _ = done.send(());
                }
            })
            .map_err(spawn_error)?;
        Ok(Self { jobs })
    }

    /// Queues `f` for the next group, so that a write submitted after this call returns runs
    /// after it. The future gives its result once that group has committed and
    /// the cached users it `touches` are outdated (or, if it succeeded, `kept` is kept: see
    /// `UserCache::touch_keeping`). Both happen on the writer's thread, so a caller that stops
    /// waiting (a cancelled request) cannot leave a cached user stale.
    pub(crate) fn submit<T: Send + 'static>(
        &self,
        touches: Touch,
        kept: Option<Kept>,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<impl Future<Output = Result<T>> + Send + 'static> {
        let (reply, answer) = oneshot::channel();
        let call = Call { f: Some(f), touches, kept, out: None, reply: Some(reply) };
        self.jobs.send(Message::Job(Box::new(call))).map_err(|_| stopped())?;
        Ok(async move { answer.await.map_err(|_| stopped())? })
    }

    /// Waits for the writes already sent, then stops the thread and closes its connections
    /// and the checkpointer's. Writes sent afterwards fail as `Unavailable`.
    pub(crate) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Message::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer has stopped".into())
}

fn open(path: &Path, sync_full: bool) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Per connection, so the same as sqlx's (`sqlite::connect`); the journal mode is the file's.
    conn.pragma_update(None, "synchronous", if sync_full { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
    // Room for every statement the writer runs (a group's own, and each write's), so that none
    // is parsed again: rusqlite keeps 16 by default.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Statements the writer keeps prepared.
const STATEMENT_CACHE: usize = 128;

/// The checkpointer's thread: after commits, copies the WAL into the database file without
/// taking the write lock (`PASSIVE`), so the writer goes on appending meanwhile. It ends with
/// the writer, whose end drops the other side of `commits`.
fn checkpoint(conn: &Connection, commits: &mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_PAUSE);
        // Busy only while another process (a `tessera user …` command) checkpoints; the next
        // commit brings another try.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

/// The thread: waits for a write, takes every other one waiting, commits them together, answers.
/// Returns when the writers are gone, or with the caller to answer once closed.
fn run(
    conn: &Connection,
    queue: &mpsc::Receiver<Message>,
    gate: &sqlx::Pool<sqlx::Sqlite>,
    runtime: &tokio::runtime::Handle,
    users: Option<&UserCache>,
    checkpointer: &mpsc::SyncSender<()>,
) -> Option<oneshot::Sender<()>> {
    let mut closing = None;
    while closing.is_none()
        && let Ok(first) = queue.recv()
    {
        let mut group = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Job(job) => group.push(job),
                // Every write sent before the close is in this group or done already.
                Message::Close(done) => {
                    closing = Some(done);
                    break;
                }
            }
            next = if group.len() < MAX_GROUP { queue.try_recv().ok() } else { None };
        }
        if group.is_empty() {
            continue;
        }
        // Inside the runtime, because sqlx returns a pooled connection by spawning a task.
        let committed = runtime.block_on(async {
            let _write_lock = gate.acquire().await.map_err(|e| e.to_string())?;
            commit_group(conn, &mut group)
        });
        if committed.is_ok() {
            let _ = checkpointer.try_send(());
        }
        for mut job in group {
            if let Some(users) = users {
                job.outdate(users, committed.is_ok());
            }
            job.finish(committed.clone());
        }
    }
    closing
}

fn commit_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> std::result::Result<(), String> {
    let step =
        |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop).map_err(|e| e.to_string());
    step("BEGIN IMMEDIATE")?;
    for job in group.iter_mut() {
        let group_ok = step("SAVEPOINT job").and_then(|()| {
            if job.run(conn) { step("RELEASE job") } else { step("ROLLBACK TO job").and_then(|()| step("RELEASE job")) }
        });
        if let Err(e) = group_ok {
            let _ = step("ROLLBACK");
            return Err(e);
        }
    }
    step("COMMIT").inspect_err(|_| {
        let _ = step("ROLLBACK");
    })
}

/// A write waiting in the queue, with its caller's reply.
trait Job: Send {
    /// Runs the write inside the group's transaction; `false` rolls its savepoint back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Outdates the cached users the write may have changed, after the group's COMMIT.
    fn outdate(&mut self, users: &UserCache, committed: bool);
    /// Answers the caller once the group's COMMIT has returned.
    fn finish(self: Box<Self>, committed: std::result::Result<(), String>);
}

struct Call<T, F> {
    f: Option<F>,
    touches: Touch,
    kept: Option<Kept>,
    out: Option<Result<T>>,
    reply: Option<oneshot::Sender<Result<T>>>,
}

impl<T: Send, F: FnOnce(&Connection) -> Result<T> + Send> Job for Call<T, F> {
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        // A panicking write fails alone; the thread, and every other write, go on.
        let out = catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(StoreError::Other("a write panicked".into())));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn outdate(&mut self, users: &UserCache, committed: bool) {
        match self.kept.take() {
            Some(kept) if committed && matches!(self.out, Some(Ok(_))) => users.touch_keeping(kept),
            _ => users.touch(self.touches),
        }
    }

    fn finish(mut self: Box<Self>, committed: std::result::Result<(), String>) {
        let out = match (self.out.take(), committed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(StoreError::Other(format!("group commit failed: {e}").into())),
            (None, Ok(())) => Err(StoreError::Other("the write did not run".into())),
        };
        if let Some(reply) = self.reply.take() {
            // The caller may have gone (its request was cancelled); the write stands regardless.
            let _ = reply.send(out);
        }
    }
}
