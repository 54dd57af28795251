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
use std::sync::{Arc, LazyLock};

use sqlx::PgPool;
use tessera_core::user::User;
use tessera_core::{SessionId, TenantId, UserId};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::sql::{Columns, USER_COLUMNS, map_err, user_from};
use crate::{Result, StoreError};

/// The most reads one statement carries.
const MAX_BATCH: usize = 128;
/// Statements in flight at once. While they are, new reads wait and batch up; more than one,
/// so that a slow statement does not hold every request behind it.
const IN_FLIGHT: usize = 2;

/// `FIND_USER_FOR_SESSION_SQL` for many reads: row `i` answers the `i`-th (1-based) of the
/// arrays' elements, and a read with no row found nothing.
static SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT q.i, {USER_COLUMNS}, a.active_sessions \
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS q(tenant_id, user_id, now, session_id, i) \
         JOIN users u ON u.tenant_id = q.tenant_id AND u.id = q.user_id \
         CROSS JOIN LATERAL (SELECT COUNT(*) AS active_sessions FROM sessions s \
            WHERE s.user_id = q.user_id AND s.revoked_at IS NULL AND s.expires_at > q.now) a \
         WHERE EXISTS (SELECT 1 FROM sessions s \
            WHERE s.id = q.session_id AND s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > q.now)"
    )
});

struct Read {
    tenant: TenantId,
    user: UserId,
    session: SessionId,
    now_ms: i64,
    reply: oneshot::Sender<Result<Option<User>>>,
}

pub(crate) struct SessionReads {
    reads: mpsc::UnboundedSender<Read>,
}

impl SessionReads {
    /// Starts the task that batches the reads; it ends when this is dropped.
    pub(crate) fn start(pool: PgPool) -> Self {
        let (reads, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, queue));
        Self { reads }
    }

    /// `Store::find_user_for_session`, in the next statement.
    pub(crate) async fn find(
        &self,
        tenant: TenantId,
        user: UserId,
        session: SessionId,
        now_ms: i64,
    ) -> Result<Option<User>> {
        let (reply, answer) = oneshot::channel();
        self.reads.send(Read { tenant, user, session, now_ms, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the session reads have stopped".into())
}

async fn run(pool: PgPool, mut queue: mpsc::UnboundedReceiver<Read>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Waiting for a slot first lets the reads that arrive meanwhile join this batch.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(read) => batch.push(read),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, batch).await;
            drop(slot);
        });
    }
}

async fn answer(pool: &PgPool, batch: Vec<Read>) {
    let mut found = match query(pool, &batch).await {
        Ok(found) => found,
        Err(e) => {
            // One failure answers every read of the statement, each with its own copy.
            let message = e.to_string();
            let kind: fn(_) -> StoreError =
                if matches!(e, StoreError::Unavailable(_)) { StoreError::Unavailable } else { StoreError::Other };
            for read in batch {
                let _ = read.reply.send(Err(kind(message.clone().into())));
            }
            return;
        }
    };
    for (i, read) in batch.into_iter().enumerate() {
        // A caller that stopped waiting (a cancelled request) has dropped its receiver.
        let _ = read.reply.send(Ok(found.remove(&(i as i64 + 1))));
    }
}

/// The users found, by the 1-based position of the read they answer.
async fn query(pool: &PgPool, batch: &[Read]) -> Result<HashMap<i64, User>> {
    let column = |f: fn(&Read) -> String| batch.iter().map(f).collect::<Vec<String>>();
    let rows = sqlx::query(&SQL)
        .bind(column(|r| r.tenant.to_string()))
        .bind(column(|r| r.user.to_string()))
        .bind(batch.iter().map(|r| r.now_ms).collect::<Vec<i64>>())
        .bind(column(|r| r.session.to_string()))
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    rows.iter().map(|row| Ok((row.int("i")?, user_from(row)?))).collect()
}
