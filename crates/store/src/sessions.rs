//! Sessions and their refresh tokens: started, rotated once, listed, revoked.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use tessera_core::events::Record;
use tessera_core::user::Session;
use tessera_core::{SessionId, TenantId, UserId};

use crate::db::Db;
use crate::sql::{Columns, Param, Step, Touch, from_ms, ms, parse_id};
use crate::{Result, Rotation, StoreError, events};

const SESSION_COLUMNS: &str =
    "id, tenant_id, user_id, created_at, last_refreshed_at, expires_at, revoked_at, user_agent, ip_address, client_id";

const INSERT_SESSION_SQL: &str = "INSERT INTO sessions (id, tenant_id, user_id, created_at, last_refreshed_at, \
     expires_at, revoked_at, user_agent, ip_address, client_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

const INSERT_REFRESH_TOKEN_SQL: &str = "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)";

const REVOKE_ALL_SQL: &str =
    "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL AND ($3 IS NULL OR id <> $3)";

static FIND_LIVE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2")
});

static FIND_BY_REFRESH_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = (SELECT session_id FROM refresh_tokens WHERE hash = $1) \
         AND revoked_at IS NULL AND expires_at > $2"
    )
});

/// As above, only while the token itself is unused (its rotation has not happened).
static FIND_BY_UNUSED_REFRESH_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = \
         (SELECT session_id FROM refresh_tokens WHERE hash = $1 AND used_at IS NULL) \
         AND revoked_at IS NULL AND expires_at > $2"
    )
});

static LIST_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL \
         AND expires_at > $3 ORDER BY created_at DESC, id"
    )
});

fn session_from(r: &dyn Columns) -> Result<Session> {
    Ok(Session {
        id: parse_id(&r.text("id")?)?,
        tenant_id: parse_id(&r.text("tenant_id")?)?,
        user_id: parse_id(&r.text("user_id")?)?,
        created_at: from_ms(r.int("created_at")?),
        last_refreshed_at: from_ms(r.int("last_refreshed_at")?),
        expires_at: from_ms(r.int("expires_at")?),
        revoked_at: r.opt_int("revoked_at")?.map(from_ms),
        user_agent: r.opt_text("user_agent")?,
        ip_address: r.opt_text("ip_address")?,
        client_id: r.opt_text("client_id")?,
    })
}

/// Whether the live sessions of `$1` but `$3` at `$2` are all in the list `$4` (their ids,
/// comma-separated).
const ONLY_LISTED_LIVE_SQL: &str = "SELECT 1 AS ok WHERE NOT EXISTS (SELECT 1 FROM sessions WHERE user_id = $1 \
     AND revoked_at IS NULL AND expires_at > $2 AND ($3 IS NULL OR id <> $3) AND $4 NOT LIKE '%' || id || '%')";

/// Revokes every live session of `user` but `except`, as steps of a user write, after checking
/// that the live ones are those in `ending` (the caller listed them and wrote their records):
/// a session started meanwhile makes the write `Stale`, to be listed again.
pub(crate) fn revoke_all_steps(
    user: UserId,
    now: DateTime<Utc>,
    except: Option<SessionId>,
    ending: &[SessionId],
) -> [Step; 2] {
    let except = Param::Text(except.map(|s| s.to_string()));
    let listed = ending.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let check = vec![Param::text(user), Param::time(now), except.clone(), Param::Text(Some(listed))];
    [
        Step::require(ONLY_LISTED_LIVE_SQL, check, || StoreError::Stale),
        Step::execute(REVOKE_ALL_SQL, vec![Param::text(user), Param::time(now), except]),
    ]
}

pub(crate) async fn insert(db: &Db, s: &Session, refresh_hash: &str, records: &[Record]) -> Result<()> {
    use Param::{Int, Text};
    let session = vec![
        Param::text(s.id),
        Param::text(s.tenant_id),
        Param::text(s.user_id),
        Param::time(s.created_at),
        Param::time(s.last_refreshed_at),
        Param::time(s.expires_at),
        Int(s.revoked_at.map(ms)),
        Text(s.user_agent.clone()),
        Text(s.ip_address.clone()),
        Text(s.client_id.clone()),
    ];
    let refresh = vec![Param::text(refresh_hash), Param::text(s.id), Param::time(s.created_at)];
    let mut steps = vec![Step::execute(INSERT_SESSION_SQL, session), Step::execute(INSERT_REFRESH_TOKEN_SQL, refresh)];
    steps.extend(events::steps(records));
    // The user's `active_sessions` grows.
    db.group_write(Touch::User(s.user_id), None, steps).await
}

pub(crate) async fn rotate_refresh_token(
    db: &Db,
    old_hash: &str,
    new_hash: &str,
    now: DateTime<Utc>,
) -> Result<Rotation> {
    let old_hash = Param::text(old_hash);
    let new_hash = Param::text(new_hash);
    db.detached(move |db| async move {
        let mut tx = db.begin().await?;
        let sql = "SELECT session_id, used_at FROM refresh_tokens WHERE hash = $1";
        let found = tx
            .fetch_optional(sql, std::slice::from_ref(&old_hash), |r| {
                Ok((r.text("session_id")?, r.opt_int("used_at")?))
            })
            .await?;
        let Some((session_id, used_at)) = found else {
            return Ok(Rotation::Invalid);
        };
        let session_id = Param::Text(Some(session_id));
        // Marking the token used is conditional, so of two racing refreshes exactly one wins
        // and the other is treated as the reuse it is.
        let mark = "UPDATE refresh_tokens SET used_at = $2 WHERE hash = $1 AND used_at IS NULL";
        let won = used_at.is_none() && tx.execute(mark, &[old_hash, Param::time(now)]).await? == 1;
        if !won {
            let _touch = db.touching(Touch::All);
            let revoke = "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
            tx.execute(revoke, &[session_id, Param::time(now)]).await?;
            tx.commit().await?;
            return Ok(Rotation::Reused);
        }
        let Some(mut session) =
            tx.fetch_optional(&FIND_LIVE_SQL, &[session_id.clone(), Param::time(now)], session_from).await?
        else {
            tx.commit().await?;
            return Ok(Rotation::Invalid);
        };
        tx.execute(INSERT_REFRESH_TOKEN_SQL, &[new_hash, session_id.clone(), Param::time(now)]).await?;
        tx.execute("UPDATE sessions SET last_refreshed_at = $2 WHERE id = $1", &[session_id, Param::time(now)]).await?;
        tx.commit().await?;
        session.last_refreshed_at = now;
        Ok(Rotation::Rotated(session))
    })
    .await
}

pub(crate) async fn find_by_refresh(db: &Db, hash: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
    db.fetch_optional(&FIND_BY_REFRESH_SQL, &[Param::text(hash), Param::time(now)], session_from).await
}

pub(crate) async fn find_by_unused_refresh(db: &Db, hash: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
    db.fetch_optional(&FIND_BY_UNUSED_REFRESH_SQL, &[Param::text(hash), Param::time(now)], session_from).await
}

pub(crate) async fn list(db: &Db, tenant: TenantId, user: UserId, now: DateTime<Utc>) -> Result<Vec<Session>> {
    db.fetch_all(&LIST_SQL, &[Param::text(tenant), Param::text(user), Param::time(now)], session_from).await
}

pub(crate) async fn revoke(
    db: &Db,
    tenant: TenantId,
    user: UserId,
    id: SessionId,
    now: DateTime<Utc>,
    records: &[Record],
) -> Result<bool> {
    let params = vec![Param::text(tenant), Param::text(user), Param::text(id), Param::time(now)];
    let sql =
        "UPDATE sessions SET revoked_at = $4 WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND revoked_at IS NULL";
    events::change_with(db, Touch::User(user), vec![events::must_change(sql, params)], records).await
}
