//! The SQLite executor: sqlx's pools (many readers, exactly one writer) for most statements,
//! and on a file the three things that make SQLite fast here: the hot reads inline on the
//! calling thread (`inline`), user and session writes committed in groups on one thread
//! (`writer`), and the users read for sessions kept until a write outdates them
//! (`user_cache`). Chosen once, in `connect`; the aggregates only see `Db`.

mod conn;
mod inline;
mod user_cache;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tessera_core::user::User;

use self::inline::InlineReads;
use self::user_cache::Kept;
pub(crate) use self::user_cache::{Touching, UserCache};
use self::writer::Writer;
use crate::pool::Pool;
use crate::sql::{Keep, MapOne, Param, SessionKey, SessionRead, Steps, Touch, other};
use crate::{ConnectOptions, Result};

pub(crate) struct Sqlite {
    pub(crate) read: Pool,
    pub(crate) write: Pool,
    /// Events this process has written and committed, for the metrics.
    pub(crate) events_written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// `None` for an in-memory database, which has none of them.
    file: Option<OnFile>,
}

struct OnFile {
    /// The hot reads, without sqlx's thread hand-off (`inline.rs`).
    inline: InlineReads,
    /// User and session writes, committed in groups on one thread (`writer.rs`).
    writer: Writer,
    /// Users read for a session, until a write touches them (`user_cache.rs`). Only ever
    /// beside `writer`, whose thread outdates them after its writes.
    users: Option<Arc<UserCache>>,
}

pub(crate) async fn connect(opts: &ConnectOptions) -> Result<Sqlite> {
    let options = SqliteConnectOptions::from_str(&opts.url)
        .map_err(other)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if opts.sqlite_sync_full { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .pragma("wal_autocheckpoint", writer::WAL_BACKSTOP_PAGES.to_string());
    // SQLite has one writer. Writes go through a pool of exactly one connection, so they
    // queue in the pool (fairly, without spinning on the lock) instead of contending.
    // No ping before each acquire (sqlx's default): an embedded database connection does not
    // go stale, and the ping is one more round trip to the connection's worker thread on
    // every query — on `GET /me` the profile showed thread hand-offs as the main cost.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options.clone())
        .await
        .map_err(other)?;
    let read = SqlitePoolOptions::new()
        .max_connections(opts.max_connections.max(1))
        .min_connections(1)
        .test_before_acquire(false)
        .connect_with(options.clone())
        .await
        .map_err(other)?;
    let path = options.get_filename();
    let file = if path == std::path::Path::new(":memory:") {
        None
    } else {
        let inline = InlineReads::new(path.to_path_buf(), opts.max_connections as usize);
        let users = UserCache::new(opts.user_cache_max_age).map(Arc::new);
        let writer = Writer::start(path, opts.sqlite_sync_full, write.clone(), users.clone())?;
        Some(OnFile { inline, writer, users })
    };
    Ok(Sqlite { read: Pool::Sqlite(read), write: Pool::Sqlite(write), events_written: Default::default(), file })
}

impl Sqlite {
    pub(crate) fn users(&self) -> Option<&Arc<UserCache>> {
        self.file.as_ref().and_then(|f| f.users.as_ref())
    }

    /// A point read of a hot path: inline on the calling thread.
    pub(crate) async fn fetch_hot<T>(&self, sql: &str, params: &[Param], map: impl MapOne<T>) -> Result<Option<T>> {
        match &self.file {
            Some(f) => f.inline.query_row(sql, params, |r| map(r)),
            None => self.read.fetch_optional(sql, params, map).await,
        }
    }

    /// `find_user_for_session`: from the cache while it is current, else inline, kept for the
    /// session's next request.
    pub(crate) async fn session_read(&self, key: SessionKey, read: &SessionRead) -> Result<Option<User>> {
        let cache = self.users().map(|c| &**c);
        if let Some(user) = cache.and_then(|c| c.get(key.tenant, key.user, key.session, key.now)) {
            return Ok(Some(user));
        }
        // Taken before the read, so that a write committing during it outdates the entry.
        let stamped = cache.map(|c| (c, c.stamp(key.user)));
        let params = [Param::text(key.tenant), Param::text(key.user), Param::time(key.now), Param::text(key.session)];
        let found = self.fetch_hot(read.one, &params, |r| Ok(((read.user)(r)?, r.opt_int("next_expiry")?))).await?;
        Ok(found.map(|(user, next_expiry)| {
            if let (Some((c, stamp)), Some(until)) = (stamped, next_expiry) {
                c.put(key.session, stamp, until, &user);
            }
            user
        }))
    }

    /// `steps` as one write, on a file in the writer's next group (which outdates `touches`,
    /// or keeps `keep`'s user, after its COMMIT); in memory, in a transaction of its own. On a
    /// file the write has joined the writer's queue when this returns (writes submitted later
    /// run after it); in memory it has already run. The future gives the events among `steps`
    /// that were written.
    pub(crate) async fn group_submit(
        &self,
        touches: Touch,
        keep: Option<Keep<'_>>,
        steps: Steps,
    ) -> Result<crate::Pending<u64>> {
        let Some(f) = &self.file else {
            let done = self.write.transaction(steps).await;
            return Ok(Box::pin(std::future::ready(done)));
        };
        let kept = keep.filter(|_| f.users.is_some()).map(|k| Kept {
            session: k.session,
            from_version: k.from_version,
            user: k.user.clone(),
        });
        Ok(Box::pin(f.writer.submit(touches, kept, move |c| conn::run_steps(c, steps))?))
    }

    pub(crate) async fn close(&self) {
        if let Some(f) = &self.file {
            f.writer.close().await;
            f.inline.close();
        }
        self.read.close().await;
        self.write.close().await;
    }
}
