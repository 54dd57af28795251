//! `Db`, the executor the aggregates run their statements through: SQLite's or PostgreSQL's,
//! chosen once by `connect`. Its methods say *what* a statement is (a read, a hot point read,
//! a write a session read depends on, a group of steps), and each backend decides *how* it
//! runs; an aggregate never asks which backend it is on.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use tessera_core::user::User;

use crate::pool::{Pool, Tx};
use crate::postgres::Postgres;
use crate::sql::{Keep, MapEach, MapOne, Param, SessionKey, SessionRead, Steps, Touch};
use crate::sqlite::{Sqlite, Touching, UserCache};
use crate::{Backend, Result, StoreError};

pub(crate) enum Db {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

/// What a write running in a task of its own (`Db::detached`) needs: the write pool, and the
/// user cache to take its `Touching` guard from.
#[derive(Clone)]
pub(crate) struct Handle {
    write: Pool,
    users: Option<Arc<UserCache>>,
    events_written: Arc<AtomicU64>,
}

impl Handle {
    pub(crate) async fn begin(&self) -> Result<Tx> {
        self.write.begin().await
    }

    /// Commits `tx`, in which `events` events were written.
    pub(crate) async fn commit(&self, tx: Tx, events: u64) -> Result<()> {
        tx.commit().await?;
        self.events_written.fetch_add(events, Relaxed);
        Ok(())
    }

    /// A guard every write that changes what `find_user_for_session` returns, and does not go
    /// through the writer thread, holds until it has committed (on SQLite, dropping it
    /// outdates the cached users; elsewhere it does nothing).
    pub(crate) fn touching(&self, what: Touch) -> Touching<'_> {
        UserCache::touching(self.users.as_deref(), what)
    }
}

impl Db {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    fn read(&self) -> &Pool {
        match self {
            Db::Sqlite(s) => &s.read,
            Db::Postgres(p) => &p.pool,
        }
    }

    fn write(&self) -> &Pool {
        match self {
            Db::Sqlite(s) => &s.write,
            Db::Postgres(p) => &p.pool,
        }
    }

    pub(crate) fn handle(&self) -> Handle {
        let users = match self {
            Db::Sqlite(s) => s.users().cloned(),
            Db::Postgres(_) => None,
        };
        Handle { write: self.write().clone(), users, events_written: Arc::clone(self.events_counter()) }
    }

    fn events_counter(&self) -> &Arc<AtomicU64> {
        match self {
            Db::Sqlite(s) => &s.events_written,
            Db::Postgres(p) => &p.events_written,
        }
    }

    /// The events this process has written and committed.
    pub(crate) fn events_written(&self) -> u64 {
        self.events_counter().load(Relaxed)
    }

    pub(crate) async fn migrate(&self) -> Result<()> {
        self.write().migrate().await
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        self.read().execute("SELECT 1", &[]).await.map(drop)
    }

    pub(crate) async fn close(&self) {
        match self {
            Db::Sqlite(s) => s.close().await,
            Db::Postgres(p) => p.pool.close().await,
        }
    }

    /// One row, or none.
    pub(crate) async fn fetch_optional<T>(
        &self,
        sql: &str,
        params: &[Param],
        map: impl MapOne<T>,
    ) -> Result<Option<T>> {
        self.read().fetch_optional(sql, params, map).await
    }

    pub(crate) async fn fetch_all<T>(&self, sql: &str, params: &[Param], map: impl MapEach<T>) -> Result<Vec<T>> {
        self.read().fetch_all(sql, params, map).await
    }

    /// A point read of a hot path (`find_user`, `find_oauth_client`): on SQLite inline on the
    /// calling thread (`sqlite::inline`).
    pub(crate) async fn fetch_hot<T>(&self, sql: &str, params: &[Param], map: impl MapOne<T>) -> Result<Option<T>> {
        match self {
            Db::Sqlite(s) => s.fetch_hot(sql, params, map).await,
            Db::Postgres(p) => p.pool.fetch_optional(sql, params, map).await,
        }
    }

    /// `find_user_for_session`, the hot path: one statement, `read`.
    pub(crate) async fn session_read(&self, key: SessionKey, read: &SessionRead) -> Result<Option<User>> {
        match self {
            Db::Sqlite(s) => s.session_read(key, read).await,
            // The batch task was given `read` at connect time.
            Db::Postgres(p) => p.session_read(key).await,
        }
    }

    /// One write that returns a row (`INSERT … RETURNING`), on its own.
    pub(crate) async fn execute_returning<T>(
        &self,
        sql: &str,
        params: &[Param],
        map: impl MapOne<T>,
    ) -> Result<Option<T>> {
        self.write().fetch_optional(sql, params, map).await
    }

    /// One write that no session read depends on; the rows it changed.
    pub(crate) async fn execute(&self, sql: &str, params: &[Param]) -> Result<u64> {
        self.write().execute(sql, params).await
    }

    /// The frequent writes a session read depends on (`update_user`, `insert_session`): one
    /// transaction, on SQLite committed in the writer's next group.
    pub(crate) async fn group_write(&self, touches: Touch, keep: Option<Keep<'_>>, steps: Steps) -> Result<()> {
        self.group_submit(touches, keep, steps).await?.await
    }

    /// `group_write`'s two halves. When this returns, a write submitted afterwards by this
    /// process is applied after this one: on SQLite's file because both join the writer's
    /// queue in that order; elsewhere because this one has already committed, and the future
    /// is ready with its result.
    pub(crate) async fn group_submit(
        &self,
        touches: Touch,
        keep: Option<Keep<'_>>,
        steps: Steps,
    ) -> Result<crate::Pending<()>> {
        let counter = Arc::clone(self.events_counter());
        let committed = match self {
            Db::Sqlite(s) => s.group_submit(touches, keep, steps).await?,
            Db::Postgres(p) => {
                let done = p.pool.transaction(steps).await;
                Box::pin(std::future::ready(done))
            }
        };
        Ok(Box::pin(async move {
            counter.fetch_add(committed.await?, Relaxed);
            Ok(())
        }))
    }

    /// `steps` in one transaction, for writes no session read depends on.
    pub(crate) async fn transaction(&self, steps: Steps) -> Result<()> {
        let events = self.write().transaction(steps).await?;
        self.events_counter().fetch_add(events, Relaxed);
        Ok(())
    }

    /// Runs a write that holds a `Touching` guard in a task of its own, so that it runs to its
    /// end, and the guard outdates the cached users after its commit, even if the caller stops
    /// waiting: a request is cancelled when its client hangs up, and a commit already sent
    /// could otherwise land after the guard had been dropped.
    pub(crate) async fn detached<T: Send + 'static, F>(&self, write: impl FnOnce(Handle) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let task = write(self.handle());
        tokio::spawn(task).await.unwrap_or_else(|e| Err(StoreError::Other(Box::new(e))))
    }
}
