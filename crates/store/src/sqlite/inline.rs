//! SQLite point reads on the calling thread.
//!
//! sqlx's SQLite driver runs every statement on a worker thread of its own, so each query costs
//! two channel hand-offs and a wake-up. On `GET /me` (one indexed read of a cached page) those
//! hand-offs were 41 % of the CPU and SQLite itself 1.4 % (BENCHMARKS.md, "the GET /me
//! profile"). The reads of the hot paths therefore run here instead: on the request's own
//! thread, through a rusqlite connection (the same `libsqlite3-sys` as sqlx) taken from a small
//! idle list and put back. A WAL reader never waits for the writer, so the thread is held for
//! the lookup only — tens of microseconds — which is less than the hand-off it replaces.
//!
//! Only reads go here; the statements and their `Param`s are the ones sqlx runs for
//! PostgreSQL. Writes go through sqlx's single write connection or `writer.rs`; a connection
//! here is `query_only`, so a write sent to it by mistake fails.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Row};

use crate::Result;
use crate::sql::Param;
use crate::sqlite::conn::{bind, map_err as other};

pub(crate) struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl InlineReads {
    pub(crate) fn new(path: PathBuf, max_idle: usize) -> Self {
        Self { path, idle: Mutex::new(Vec::new()), max_idle: max_idle.max(1) }
    }

    /// Closes the idle connections (`Store::close`).
    pub(crate) fn close(&self) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// The first row `sql` returns with `params` bound to `$1`, `$2`, …, mapped by `map`.
    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        params: &[Param],
        map: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let conn = self.take()?;
        let found = (|| {
            let mut stmt = conn.prepare_cached(sql).map_err(other)?;
            bind(&mut stmt, params)?;
            let mut rows = stmt.raw_query();
            rows.next().map_err(other)?.map(map).transpose()
        })();
        self.give_back(conn);
        found
    }

    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.open().map_err(other),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        // Waits only while SQLite recovers a WAL after a crash; ordinary reads never wait.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }
}
