//! The PostgreSQL executor: one pool for every statement, and the session reads of concurrent
//! requests answered together (`session_reads`). There is no cache of users: several
//! instances share the database, and none could see another's writes at once. Chosen once,
//! in `connect`; the aggregates only see `Db`.

mod session_reads;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tessera_core::user::User;

use self::session_reads::SessionReads;
use crate::pool::Pool;
use crate::sql::{SessionKey, SessionRead, other};
use crate::{ConnectOptions, Result};

pub(crate) struct Postgres {
    pub(crate) pool: Pool,
    /// Events this process has written and committed, for the metrics.
    pub(crate) events_written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Concurrent `find_user_for_session` reads, one statement for many.
    session_reads: SessionReads,
}

/// `read` is the statement the session reads are batched into.
pub(crate) async fn connect(opts: &ConnectOptions, read: &'static SessionRead) -> Result<Postgres> {
    let options = PgConnectOptions::from_str(&opts.url).map_err(other)?;
    let pool = PgPoolOptions::new()
        .max_connections(opts.max_connections.max(2))
        .acquire_timeout(opts.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(other)?;
    let session_reads = SessionReads::start(pool.clone(), read);
    Ok(Postgres { pool: Pool::Postgres(pool), events_written: Default::default(), session_reads })
}

impl Postgres {
    /// `find_user_for_session`, in the next batched statement.
    pub(crate) async fn session_read(&self, key: SessionKey) -> Result<Option<User>> {
        self.session_reads.find(key).await
    }
}
