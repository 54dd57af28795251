//! PostgreSQL: the session reads of concurrent requests (`GET /me`'s `find_user_for_session`)
//! answered by one statement.
//!
//! One round trip per request cost more CPU than the whole of a request to the framework
//! ceiling: in the profile, 37 % of Tessera's CPU on `GET /me` was the loopback `send` to
//! PostgreSQL, and PostgreSQL spent 90–160 µs per statement (BENCHMARKS.md). Here the reads
//! that arrive while earlier ones are in flight wait, and go together in the next statement,
//! whose rows say which read each answers. Every read is still made after its request
//! arrived, by the database, with the request's own clock: nothing is answered from memory,
//! so a revocation on any instance is seen by the next request, as before. Under no
//! concurrency a read goes alone, at the cost of one hop to this module's task.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::PgPool;
use tessera_core::user::User;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::pool::map_err;
use crate::sql::{Columns, SessionKey, SessionRead, ms};
use crate::{Result, StoreError};

/// The most reads one statement carries.
const MAX_BATCH: usize = 128;
/// Statements in flight at once. While they are, new reads wait and batch up; more than one,
/// so that a slow statement does not hold every request behind it.
const IN_FLIGHT: usize = 2;

struct Read {
    key: SessionKey,
    reply: oneshot::Sender<Result<Option<User>>>,
}

pub(crate) struct SessionReads {
    reads: mpsc::UnboundedSender<Read>,
}

impl SessionReads {
    /// Starts the task that batches the reads, each answered by `read.batched`: row `i`
    /// answers the `i`-th (1-based) of the arrays `$1` (tenants), `$2` (users), `$3` (nows)
    /// and `$4` (sessions), and a read with no row found nothing. The task ends when this is
    /// dropped.
    pub(crate) fn start(pool: PgPool, read: &'static SessionRead) -> Self {
        let (reads, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, read, queue));
        Self { reads }
    }

    /// `Store::find_user_for_session`, in the next statement.
    pub(crate) async fn find(&self, key: SessionKey) -> Result<Option<User>> {
        let (reply, answer) = oneshot::channel();
        self.reads.send(Read { key, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the session reads have stopped".into())
}

async fn run(pool: PgPool, read: &'static SessionRead, mut queue: mpsc::UnboundedReceiver<Read>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Waiting for a slot first lets the reads that arrive meanwhile join this batch.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, read, batch).await;
            drop(slot);
        });
    }
}

async fn answer(pool: &PgPool, read: &SessionRead, batch: Vec<Read>) {
    let mut found = match query(pool, read, &batch).await {
        Ok(found) => found,
        Err(e) => {
            // One failure answers every read of the statement, each with its own copy.
            let message = e.to_string();
            let kind: fn(_) -> StoreError =
                if matches!(e, StoreError::Unavailable(_)) { StoreError::Unavailable } else { StoreError::Other };
            for r in batch {
                let _ = r.reply.send(Err(kind(message.clone().into())));
            }
            return;
        }
    };
    for (i, r) in batch.into_iter().enumerate() {
        // A caller that stopped waiting (a cancelled request) has dropped its receiver.
        let _ = r.reply.send(Ok(found.remove(&(i as i64 + 1))));
    }
}

/// The users found, by the 1-based position of the read they answer.
async fn query(pool: &PgPool, read: &SessionRead, batch: &[Read]) -> Result<HashMap<i64, User>> {
    let column = |f: fn(&SessionKey) -> String| batch.iter().map(|r| f(&r.key)).collect::<Vec<String>>();
    let rows = sqlx::query(read.batched.as_str())
        .bind(column(|k| k.tenant.to_string()))
        .bind(column(|k| k.user.to_string()))
        .bind(batch.iter().map(|r| ms(r.key.now)).collect::<Vec<i64>>())
        .bind(column(|k| k.session.to_string()))
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    rows.iter().map(|row| Ok((row.int("i")?, (read.user)(row)?))).collect()
}
