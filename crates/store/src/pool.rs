//! sqlx, for both databases: a `Pool` and a `Tx` (a transaction on it) of either, which bind
//! `Param`s, read rows as `Columns`, run `Steps`, and report sqlx's errors as the store's. The
//! code for the two databases, on a pool or in a transaction, is written once: `on!` compiles
//! the same body for each.

use sqlx::{Database, Encode, PgPool, Postgres, Row, SqlitePool, Transaction, Type};

use crate::sql::{MapEach, MapOne, OnNone, Param, Step, Steps, conflict_name, impl_columns, other};
use crate::{Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl_columns!(sqlx::sqlite::SqliteRow, try_get, map_err);
impl_columns!(sqlx::postgres::PgRow, try_get, map_err);

/// A pool of either database.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction of either database, begun on a `Pool`.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, sqlx::Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Where a statement runs: on a pool (a connection of its own) or inside a transaction.
enum On<'a> {
    Pool(&'a Pool),
    Tx(&'a mut Tx),
}

/// `$body` with `$e` bound to the sqlx executor `$on` stands for, compiled once for each
/// database and each kind of executor.
macro_rules! on {
    ($on:expr, $e:ident => $body:expr) => {
        match $on {
            On::Pool(Pool::Sqlite($e)) => $body,
            On::Pool(Pool::Postgres($e)) => $body,
            On::Tx(Tx::Sqlite(t)) => {
                let $e = &mut **t;
                $body
            }
            On::Tx(Tx::Postgres(t)) => {
                let $e = &mut **t;
                $body
            }
        }
    };
}

/// The first row `sql` returns with `params` bound to `$1`, `$2`, …, mapped by `map`.
async fn fetch_optional<T>(on: On<'_>, sql: &str, params: &[Param], map: impl MapOne<T>) -> Result<Option<T>> {
    on!(on, e => {
        let row = bind(sqlx::query(sql), params).fetch_optional(e).await.map_err(map_err)?;
        row.as_ref().map(|r| map(r)).transpose()
    })
}

/// Every row `sql` returns, each mapped by `map`.
async fn fetch_all<T>(on: On<'_>, sql: &str, params: &[Param], mut map: impl MapEach<T>) -> Result<Vec<T>> {
    on!(on, e => {
        let rows = bind(sqlx::query(sql), params).fetch_all(e).await.map_err(map_err)?;
        rows.iter().map(|r| map(r)).collect()
    })
}

/// One statement; the rows it changed.
async fn execute(on: On<'_>, sql: &str, params: &[Param]) -> Result<u64> {
    on!(on, e => Ok(bind(sqlx::query(sql), params).execute(e).await.map_err(map_err)?.rows_affected()))
}

impl Pool {
    pub(crate) async fn fetch_optional<T>(
        &self,
        sql: &str,
        params: &[Param],
        map: impl MapOne<T>,
    ) -> Result<Option<T>> {
        fetch_optional(On::Pool(self), sql, params, map).await
    }

    pub(crate) async fn fetch_all<T>(&self, sql: &str, params: &[Param], map: impl MapEach<T>) -> Result<Vec<T>> {
        fetch_all(On::Pool(self), sql, params, map).await
    }

    /// One statement outside any transaction; the rows it changed.
    pub(crate) async fn execute(&self, sql: &str, params: &[Param]) -> Result<u64> {
        execute(On::Pool(self), sql, params).await
    }

    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await.map_err(map_err)?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await.map_err(map_err)?),
        })
    }

    /// `steps` in one transaction of their own; the events among them that were written.
    /// `steps` in one transaction. One the database refused to serialise (`40001`: a
    /// PostgreSQL-compatible distributed database asks for this under contention, PostgreSQL
    /// itself only at higher isolation levels) or broke as a deadlock (`40P01`) is run again,
    /// a few times, a little later each time.
    pub(crate) async fn transaction(&self, steps: Steps) -> Result<u64> {
        let mut attempt = 0u32;
        loop {
            let mut tx = self.begin().await?;
            let done = match tx.run(&steps).await {
                Ok(events) => tx.commit().await.map(|()| events),
                Err(e) => Err(e),
            };
            match done {
                Err(StoreError::Contended(_)) if attempt < RETRIES_ON_CONTENTION => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn migrate(&self) -> Result<()> {
        match self {
            Pool::Sqlite(p) => MIGRATOR.run(p).await.map_err(other),
            Pool::Postgres(p) => migrate_postgres(p).await,
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// How many times a transaction refused for contention is run again.
const RETRIES_ON_CONTENTION: u32 = 5;

/// Instances starting together on one database take turns through a row lock (held by one
/// connection while another migrates), not through sqlx's advisory lock, which some
/// PostgreSQL-compatible databases lack. The first migrates; the others find nothing to do.
async fn migrate_postgres(p: &PgPool) -> Result<()> {
    const LOCK_TABLE: &str = "CREATE TABLE IF NOT EXISTS tessera_migration_lock (id INTEGER PRIMARY KEY)";
    // Two `CREATE TABLE IF NOT EXISTS` at once may both find no table; the loser's error is
    // the table's existence.
    if sqlx::query(LOCK_TABLE).execute(p).await.is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        sqlx::query(LOCK_TABLE).execute(p).await.map_err(other)?;
    }
    // Under serialisable isolation (a distributed database's default) the instance that waited
    // for the lock is told to try again once the first has finished: it does, and then finds
    // nothing left to migrate.
    let mut attempt = 0;
    loop {
        match migrate_in_turn(p).await {
            Err(StoreError::Contended(_)) if attempt < RETRIES_ON_CONTENTION => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            other => return other,
        }
    }
}

async fn migrate_in_turn(p: &PgPool) -> Result<()> {
    sqlx::query("INSERT INTO tessera_migration_lock (id) VALUES (1) ON CONFLICT (id) DO NOTHING")
        .execute(p)
        .await
        .map_err(map_err)?;
    let mut turn = p.begin().await.map_err(map_err)?;
    sqlx::query("SELECT id FROM tessera_migration_lock WHERE id = 1 FOR UPDATE")
        .execute(&mut *turn)
        .await
        .map_err(map_err)?;
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_locking(false);
    migrator.run(p).await.map_err(other)?;
    turn.commit().await.map_err(map_err)
}

impl Tx {
    /// `sqlite` on SQLite, `postgres` on PostgreSQL: for a row lock SQLite has no syntax for.
    pub(crate) fn pick<'a>(&self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        match self {
            Tx::Sqlite(_) => sqlite,
            Tx::Postgres(_) => postgres,
        }
    }

    pub(crate) async fn fetch_optional<T>(
        &mut self,
        sql: &str,
        params: &[Param],
        map: impl MapOne<T>,
    ) -> Result<Option<T>> {
        fetch_optional(On::Tx(self), sql, params, map).await
    }

    pub(crate) async fn fetch_all<T>(&mut self, sql: &str, params: &[Param], map: impl MapEach<T>) -> Result<Vec<T>> {
        fetch_all(On::Tx(self), sql, params, map).await
    }

    /// Whether the query returns a row.
    pub(crate) async fn exists(&mut self, sql: &str, params: &[Param]) -> Result<bool> {
        Ok(self.fetch_optional(sql, params, |_| Ok(())).await?.is_some())
    }

    /// One statement; the rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64> {
        execute(On::Tx(self), sql, params).await
    }

    /// `steps` in order, each as its `OnNone` says (as `sqlite::conn::run_steps` does on the
    /// writer thread); the events among them that were written.
    pub(crate) async fn run(&mut self, steps: &[Step]) -> Result<u64> {
        let mut events = 0;
        for step in steps {
            let sql = match self {
                Tx::Postgres(_) => step.postgres_sql.unwrap_or(step.sql),
                Tx::Sqlite(_) => step.sql,
            };
            let n = if step.is_query {
                u64::from(self.exists(sql, &step.params).await?)
            } else {
                self.execute(sql, &step.params).await?
            };
            if step.writes_event {
                events += n;
            }
            if n == 0 {
                match &step.on_none {
                    OnNone::GoOn => {}
                    OnNone::Fail(error) => return Err(error()),
                    OnNone::Ask { sql, params, found, missing } => {
                        return Err(if self.exists(sql, params.as_slice()).await? { found() } else { missing() });
                    }
                }
            }
        }
        Ok(events)
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await.map_err(map_err),
            Tx::Postgres(t) => t.commit().await.map_err(map_err),
        }
    }
}

/// `params` bound to `$1`, `$2`, … in order, borrowed for as long as the query runs.
fn bind<'q, DB: Database>(
    mut q: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    params: &'q [Param],
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    for p in params {
        q = match p {
            Param::Text(v) => q.bind(v.as_deref()),
            Param::Int(v) => q.bind(*v),
            Param::Bool(v) => q.bind(*v),
            Param::Bytes(v) => q.bind(v.as_slice()),
        };
    }
    q
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { constraint: conflict_name(db.constraint().unwrap_or(db.message())) }
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "40001" || c == "40P01") => {
            StoreError::Contended(Box::new(sqlx::Error::Database(db)))
        }
        other if unreachable(&other) => StoreError::Unavailable(Box::new(other)),
        other => StoreError::Other(Box::new(other)),
    }
}

/// The errors that say the database could not be reached, rather than that a statement was
/// wrong: PostgreSQL's connection exceptions (class 08) and operator interventions (57P01–
/// 57P05: shutting down, crashed, not yet accepting connections), and the pool's and the
/// socket's own failures.
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}
