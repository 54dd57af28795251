//! The driver-neutral vocabulary every statement is written in: `Param` (a parameter either
//! driver binds), `Step` (a statement of a transaction, with what its outcome must be),
//! `Columns` (a row either driver returns, read by column name), the conversions between the
//! domain's types and the columns' (epoch milliseconds, JSON text, text ids), and
//! `conflict_name`. Nothing here knows sqlx or rusqlite: the drivers import this module, never
//! the other way round.

use std::str::FromStr;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use tessera_core::user::User;
use tessera_core::{SessionId, TenantId, UserId};

use crate::{Result, StoreError, constraints};

/// A statement parameter, owned, so that a statement can be described once and run by either
/// driver: sqlx (PostgreSQL, and SQLite's other statements) or rusqlite (SQLite's inline reads
/// and its group-commit writer thread).
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl Param {
    /// A non-null text parameter: an id, a key, a name.
    pub(crate) fn text(v: impl ToString) -> Self {
        Self::Text(Some(v.to_string()))
    }

    /// A non-null time, in epoch milliseconds.
    pub(crate) fn time(t: DateTime<Utc>) -> Self {
        Self::Int(Some(ms(t)))
    }
}

/// One statement of a transaction, and what it must do for the transaction to go on.
pub(crate) struct Step {
    pub sql: &'static str,
    /// PostgreSQL's form of `sql` where the two differ (a row lock SQLite has no syntax for).
    pub postgres_sql: Option<&'static str>,
    pub params: Vec<Param>,
    /// A query (its outcome is whether it found a row) rather than a change (rows changed).
    pub is_query: bool,
    /// What it means when the statement found or changed nothing.
    pub on_none: OnNone,
    /// It writes an event: the rows it changed count in the metrics once committed.
    pub writes_event: bool,
}

/// What a `Step` that found or changed no row does to its transaction.
pub(crate) enum OnNone {
    /// Nothing: the transaction goes on.
    GoOn,
    /// The transaction fails with this error.
    Fail(fn() -> StoreError),
    /// The query `sql` with `params` tells why: the transaction fails with `found` if it returns
    /// a row, with `missing` if not.
    Ask { sql: &'static str, params: Vec<Param>, found: fn() -> StoreError, missing: fn() -> StoreError },
}

impl Step {
    /// A change whose row count does not matter.
    pub(crate) fn execute(sql: &'static str, params: Vec<Param>) -> Self {
        Self { sql, postgres_sql: None, params, is_query: false, on_none: OnNone::GoOn, writes_event: false }
    }

    /// A query that must return a row, or the transaction fails with `or`.
    pub(crate) fn require(sql: &'static str, params: Vec<Param>, or: fn() -> StoreError) -> Self {
        Self { sql, postgres_sql: None, params, is_query: true, on_none: OnNone::Fail(or), writes_event: false }
    }

    /// A change that must change a row, or the transaction fails as `on_none` says.
    pub(crate) fn change(sql: &'static str, params: Vec<Param>, on_none: OnNone) -> Self {
        Self { sql, postgres_sql: None, params, is_query: false, on_none, writes_event: false }
    }

    /// The same step, counted as writing an event.
    pub(crate) fn writing_event(self) -> Self {
        Self { writes_event: true, ..self }
    }

    /// The same step, with PostgreSQL's own form of the statement.
    pub(crate) fn on_postgres(self, sql: &'static str) -> Self {
        Self { postgres_sql: Some(sql), ..self }
    }
}

/// Statements that run in order in one transaction, all or nothing.
pub(crate) type Steps = Vec<Step>;

/// A row of either driver read by column name: sqlx's rows, and rusqlite's for the statements
/// SQLite runs without sqlx. Every row mapping is written once against it.
pub(crate) trait Columns {
    fn text(&self, c: &str) -> Result<String>;
    fn opt_text(&self, c: &str) -> Result<Option<String>>;
    fn int(&self, c: &str) -> Result<i64>;
    fn opt_int(&self, c: &str) -> Result<Option<i64>>;
    fn flag(&self, c: &str) -> Result<bool>;
    fn bytes(&self, c: &str) -> Result<Vec<u8>>;
}

/// How a read of at most one row maps it.
pub(crate) trait MapOne<T>: FnOnce(&dyn Columns) -> Result<T> {}
impl<T, F: FnOnce(&dyn Columns) -> Result<T>> MapOne<T> for F {}

/// How a read maps each of its rows.
pub(crate) trait MapEach<T>: FnMut(&dyn Columns) -> Result<T> {}
impl<T, F: FnMut(&dyn Columns) -> Result<T>> MapEach<T> for F {}

/// `Columns` for a driver's row type: `$get` reads a column by name, `$err` maps its error.
macro_rules! impl_columns {
    ($row:ty, $get:ident, $err:path) => {
        impl $crate::sql::Columns for $row {
            fn text(&self, c: &str) -> $crate::Result<String> {
                self.$get(c).map_err($err)
            }
            fn opt_text(&self, c: &str) -> $crate::Result<Option<String>> {
                self.$get(c).map_err($err)
            }
            fn int(&self, c: &str) -> $crate::Result<i64> {
                self.$get(c).map_err($err)
            }
            fn opt_int(&self, c: &str) -> $crate::Result<Option<i64>> {
                self.$get(c).map_err($err)
            }
            fn flag(&self, c: &str) -> $crate::Result<bool> {
                self.$get(c).map_err($err)
            }
            fn bytes(&self, c: &str) -> $crate::Result<Vec<u8>> {
                self.$get(c).map_err($err)
            }
        }
    };
}
pub(crate) use impl_columns;

/// PostgreSQL names the violated index; SQLite names its columns ("UNIQUE constraint failed:
/// users.tenant_id, users.primary_email"). Both map to the same stable name.
pub(crate) fn conflict_name(said: &str) -> &'static str {
    if said.contains("email") {
        constraints::USER_EMAIL
    } else if said.contains("username") {
        constraints::USER_USERNAME
    } else if said.contains("team_members") {
        constraints::TEAM_MEMBERSHIP
    } else if said.contains("instance_values") {
        constraints::INSTANCE_VALUE
    } else {
        constraints::TENANT_KEY
    }
}

pub(crate) fn other(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Other(Box::new(e))
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(other)
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(other)
}

pub(crate) fn parse_id<T: FromStr>(s: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse().map_err(other)
}

/// Which users a write may change, so that SQLite's cache of session reads outdates them
/// (`sqlite::user_cache`); PostgreSQL has no such cache and ignores it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Touch {
    User(UserId),
    All,
}

/// A user written through one of their own sessions, which a backend that keeps users read for
/// sessions may keep for that session's next read instead of reading it again. Only for writes
/// that change nothing but the user's row, from what the `User` holds.
#[derive(Clone, Copy)]
pub(crate) struct Keep<'a> {
    pub session: SessionId,
    /// The version the write replaced.
    pub from_version: i64,
    pub user: &'a User,
}

/// The hot read of `find_user_for_session`, as each backend runs it. SQLite runs `one` with
/// `$1` tenant, `$2` user, `$3` now and `$4` session, whose row also holds `next_expiry`;
/// PostgreSQL runs `batched` for many reads at once (`postgres::session_reads`). `user` maps a
/// row of either.
pub(crate) struct SessionRead {
    pub one: &'static LazyLock<String>,
    pub batched: &'static LazyLock<String>,
    pub user: fn(&dyn Columns) -> Result<User>,
}

/// Whose session read it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionKey {
    pub tenant: TenantId,
    pub user: UserId,
    pub session: SessionId,
    pub now: DateTime<Utc>,
}
