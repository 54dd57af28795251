//! Users: their statements and parameters, the row mapping `user_from`, and the one user write
//! sequence (`write_steps`) both backends run.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tessera_core::events::Record;
use tessera_core::user::{AuthProvider, Metadata, Profile, Role, Suspension, User, UserStatus};
use tessera_core::{SessionId, TenantId, UserId};

use crate::db::Db;
use crate::sql::{
    Columns, Keep, OnNone, Param, SessionKey, SessionRead, Step, Steps, Touch, from_ms, json, ms, parse_id, parse_json,
};
use crate::{
    Login, NewUser, Result, StoreError, UserCredentials, UserFilter, UserWrite, activity, constraints, emails, events,
    images, sessions,
};

/// What a user read selects. `secure_metadata` and `password_hash` are not among them: only
/// `find_secure_metadata` and the credential reads load those.
pub(crate) const USER_COLUMNS: &str = "u.id, u.tenant_id, u.version, u.username, u.primary_email, u.primary_email_verified, \
     u.status, u.auth_provider, u.is_service_account, u.is_anonymous, \
     (u.password_hash IS NOT NULL) AS has_password, u.totp_enabled, \
     u.selected_team_id, u.profile, u.created_at, u.updated_at, u.deletion_due_at";

/// Counts live sessions inside the user read, so `active_sessions` costs no second query.
/// `{now}` is the placeholder holding the current time.
fn active_sessions_column(now: &str) -> String {
    format!(
        "(SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > {now}) AS active_sessions"
    )
}

/// The statements of the hot path, built once: `GET /me` formats no SQL.
static FIND_USER_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {USER_COLUMNS}, {} FROM users u WHERE u.tenant_id = $1 AND u.id = $2", active_sessions_column("$3"))
});

/// Also the earliest expiry among the user's live sessions (`next_expiry`): until then the
/// row, `active_sessions` included, stays what it is unless a write touches it
/// (`sqlite::user_cache`). Both come from one scan of the user's sessions.
static FIND_USER_FOR_SESSION_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {USER_COLUMNS}, a.active_sessions, a.next_expiry FROM users u, \
           (SELECT COUNT(*) AS active_sessions, MIN(s.expires_at) AS next_expiry FROM sessions s \
            WHERE s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3) a \
         WHERE u.tenant_id = $1 AND u.id = $2 AND EXISTS (SELECT 1 FROM sessions s \
           WHERE s.id = $4 AND s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > $3)"
    )
});

/// `FIND_USER_FOR_SESSION_SQL` for many reads at once (PostgreSQL): row `i` answers the `i`-th
/// (1-based) of the arrays' elements, and a read with no row found nothing.
static FIND_USERS_FOR_SESSIONS_SQL: LazyLock<String> = LazyLock::new(|| {
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

/// `find_user_for_session`, for whichever backend runs it.
pub(crate) static SESSION_READ: SessionRead =
    SessionRead { one: &FIND_USER_FOR_SESSION_SQL, batched: &FIND_USERS_FOR_SESSIONS_SQL, user: user_from };

const INSERT_USER_SQL: &str = "INSERT INTO users (id, tenant_id, version, username, username_lower, primary_email, \
     primary_email_verified, status, auth_provider, is_service_account, is_anonymous, password_hash, totp_enabled, \
     selected_team_id, avatar_hash, profile, secure_metadata, created_at, updated_at, deletion_due_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)";

const UPDATE_USER_SQL: &str = "UPDATE users SET version = $3, username = $4, username_lower = $5, \
     primary_email = $6, primary_email_verified = $7, status = $8, auth_provider = $9, is_service_account = $10, \
     is_anonymous = $11, password_hash = COALESCE($12, password_hash), totp_enabled = $13, selected_team_id = $14, \
     avatar_hash = $15, profile = $16, secure_metadata = COALESCE($17, secure_metadata), updated_at = $18, \
     deletion_due_at = $19, totp_secret = CASE WHEN $21 THEN $22 ELSE totp_secret END, \
     totp_last_step = CASE WHEN $21 THEN NULL ELSE totp_last_step END \
     WHERE id = $1 AND tenant_id = $2 AND version = $20";

const USER_EXISTS_SQL: &str = "SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2";

/// The membership check of a user write. On PostgreSQL the membership row is share-locked, so
/// a concurrent removal waits for this write and then clears the selection it made; SQLite's
/// single writer serialises the two anyway, and has no such syntax.
macro_rules! membership_sql {
    () => {
        "SELECT 1 FROM team_members WHERE team_id = $1 AND user_id = $2"
    };
}
const MEMBERSHIP_SQL: &str = membership_sql!();
const MEMBERSHIP_SHARE_LOCKED_SQL: &str = concat!(membership_sql!(), " FOR SHARE");

const DELETE_USER_SQL: &str = "DELETE FROM users WHERE tenant_id = $1 AND id = $2";

/// The part of a user kept in the `profile` JSON column.
#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(default)]
struct StoredDoc {
    profile: Profile,
    metadata: Metadata,
    suspensions: Vec<Suspension>,
    role: Role,
}

/// The JSON document a user's `profile` column holds.
fn stored_doc(u: &User) -> Result<String> {
    json(&StoredDoc {
        profile: u.profile.clone(),
        metadata: u.metadata.clone(),
        suspensions: u.suspensions.clone(),
        role: u.role,
    })
}

/// A user from a row holding `USER_COLUMNS` and `active_sessions`.
pub(crate) fn user_from(row: &dyn Columns) -> Result<User> {
    let doc: StoredDoc = parse_json(&row.text("profile")?)?;
    let mut profile = doc.profile;
    profile.selected_team_id = row.opt_text("selected_team_id")?.map(|s| parse_id(&s)).transpose()?;
    Ok(User {
        id: parse_id(&row.text("id")?)?,
        tenant_id: parse_id(&row.text("tenant_id")?)?,
        version: row.int("version")?,
        username: row.opt_text("username")?,
        primary_email: row.opt_text("primary_email")?,
        primary_email_verified: row.flag("primary_email_verified")?,
        status: UserStatus::parse(&row.text("status")?).unwrap_or_default(),
        auth_provider: AuthProvider::parse(&row.text("auth_provider")?).unwrap_or_default(),
        is_service_account: row.flag("is_service_account")?,
        is_anonymous: row.flag("is_anonymous")?,
        has_password: row.flag("has_password")?,
        totp_enabled: row.flag("totp_enabled")?,
        role: doc.role,
        profile,
        metadata: doc.metadata,
        suspensions: doc.suspensions,
        created_at: from_ms(row.int("created_at")?),
        updated_at: from_ms(row.int("updated_at")?),
        deletion_due_at: row.opt_int("deletion_due_at")?.map(from_ms),
        active_sessions: row.int("active_sessions")?,
    })
}

/// The parameters `$1`–`$16` a user INSERT and UPDATE share, in one order.
fn user_params(u: &User, password_hash: Option<&str>, doc: String) -> Vec<Param> {
    use Param::{Bool, Int, Text};
    vec![
        Param::text(u.id),
        Param::text(u.tenant_id),
        Int(Some(u.version)),
        Text(u.username.clone()),
        Text(u.username.as_ref().map(|n| n.to_lowercase())),
        // Stored lower-case, as `users_email` and every email lookup assume: uniqueness and
        // sign-in ignore case whatever the caller passed.
        Text(u.primary_email.as_ref().map(|e| e.to_lowercase())),
        Bool(u.primary_email_verified),
        Param::text(u.status.as_str()),
        Param::text(u.auth_provider.as_str()),
        Bool(u.is_service_account),
        Bool(u.is_anonymous),
        Text(password_hash.map(str::to_owned)),
        Bool(u.totp_enabled),
        Text(u.profile.selected_team_id.map(|t| t.to_string())),
        Text(u.profile.avatar.as_ref().and_then(|a| a.stored_hash()).map(str::to_owned)),
        Text(Some(doc)),
    ]
}

/// A new user (and its image) as the steps of the caller's transaction.
pub(crate) fn insert_steps(new: NewUser<'_>) -> Result<Steps> {
    let u = new.user;
    let mut params = user_params(u, new.password_hash, stored_doc(u)?);
    params.extend([
        Param::Text(Some(json(new.secure_metadata)?)),
        Param::time(u.created_at),
        Param::time(u.updated_at),
        Param::Int(u.deletion_due_at.map(ms)),
    ]);
    let image = new.new_image.map(|img| images::insert_step(img, u.created_at));
    let mut steps: Steps = image.into_iter().chain([Step::execute(INSERT_USER_SQL, params)]).collect();
    if let Some(email) = &u.primary_email {
        steps.push(emails::upsert_step(u.tenant_id, u.id, email, u.primary_email_verified, u.created_at));
    }
    steps.extend(events::steps(new.records));
    Ok(steps)
}

/// A `UserWrite` as the statements of its one transaction, in order: the membership check,
/// the image, the versioned UPDATE (which, when it matched nothing, asks whether the user
/// exists, to tell `Stale` from `NotFound`), the session revocation.
fn write_steps(w: &UserWrite<'_>) -> Result<Steps> {
    let u = w.user;
    let mut update = user_params(u, w.password_hash, stored_doc(u)?);
    update.extend([
        Param::Text(w.secure_metadata.map(json).transpose()?),
        Param::time(u.updated_at),
        Param::Int(u.deletion_due_at.map(ms)),
        Param::Int(Some(w.expected_version)),
        Param::Bool(w.totp_secret.is_some()),
        Param::Text(w.totp_secret.flatten().map(str::to_owned)),
    ]);
    let exists = vec![Param::text(u.tenant_id), Param::text(u.id)];
    let mut steps = Vec::with_capacity(4);
    if let Some(team) = w.require_membership {
        let params = vec![Param::text(team), Param::text(u.id)];
        let not_member = || StoreError::Conflict { constraint: constraints::TEAM_MEMBERSHIP };
        steps.push(Step::require(MEMBERSHIP_SQL, params, not_member).on_postgres(MEMBERSHIP_SHARE_LOCKED_SQL));
    }
    if let Some(img) = w.new_image {
        steps.push(images::insert_step(img, w.now));
    }
    let why = OnNone::Ask {
        sql: USER_EXISTS_SQL,
        params: exists,
        found: || StoreError::Stale,
        missing: || StoreError::NotFound,
    };
    steps.push(Step::change(UPDATE_USER_SQL, update, why));
    if let Some(a) = w.addresses {
        let after = u.primary_email.as_deref();
        steps.extend(emails::primary_steps(
            u.tenant_id,
            u.id,
            a.before,
            a.keep_before,
            after,
            u.primary_email_verified,
            w.now,
        ));
    }
    if let Some(hash) = w.use_token {
        steps.push(emails::use_token_step(hash, w.now));
    }
    if let Some(r) = w.revoke_sessions {
        steps.extend(sessions::revoke_all_steps(u.id, w.now, r.except, w.ending_sessions));
    }
    steps.extend(events::steps(w.records));
    Ok(steps)
}

pub(crate) async fn insert(db: &Db, new: NewUser<'_>) -> Result<()> {
    db.transaction(insert_steps(new)?).await
}

pub(crate) async fn submit_update(db: &Db, w: UserWrite<'_>) -> Result<crate::Pending<()>> {
    let steps = write_steps(&w)?;
    // A write that changes only the user's row may be kept for the session it came through.
    let row_only = w.password_hash.is_none() && w.totp_secret.is_none() && w.revoke_sessions.is_none();
    let keep = w.through_session.filter(|_| row_only).map(|session| Keep {
        session,
        from_version: w.expected_version,
        user: w.user,
    });
    db.group_submit(Touch::User(w.user.id), keep, steps).await
}

pub(crate) async fn find(db: &Db, tenant: TenantId, id: UserId, now: DateTime<Utc>) -> Result<Option<User>> {
    let params = [Param::text(tenant), Param::text(id), Param::time(now)];
    db.fetch_hot(&FIND_USER_SQL, &params, user_from).await
}

pub(crate) async fn find_for_session(
    db: &Db,
    tenant: TenantId,
    user: UserId,
    session: SessionId,
    now: DateTime<Utc>,
) -> Result<Option<User>> {
    db.session_read(SessionKey { tenant, user, session, now }, &SESSION_READ).await
}

pub(crate) async fn find_credentials(
    db: &Db,
    tenant: TenantId,
    login: Login<'_>,
    now: DateTime<Utc>,
) -> Result<Option<UserCredentials>> {
    let (column, value) = match login {
        Login::Email(e) => ("primary_email", e.to_lowercase()),
        Login::Username(n) => ("username_lower", n.to_lowercase()),
    };
    let sql = format!(
        "SELECT {USER_COLUMNS}, {}, u.password_hash FROM users u WHERE u.tenant_id = $1 AND u.{column} = $2",
        active_sessions_column("$3")
    );
    let params = [Param::text(tenant), Param::Text(Some(value)), Param::time(now)];
    db.fetch_optional(&sql, &params, |r| {
        Ok(UserCredentials { user: user_from(r)?, password_hash: r.opt_text("password_hash")? })
    })
    .await
}

pub(crate) async fn find_password_hash(db: &Db, tenant: TenantId, id: UserId) -> Result<Option<String>> {
    let sql = "SELECT password_hash FROM users WHERE tenant_id = $1 AND id = $2";
    let hash = db.fetch_optional(sql, &[Param::text(tenant), Param::text(id)], |r| r.opt_text("password_hash")).await?;
    Ok(hash.flatten())
}

pub(crate) async fn find_secure_metadata(db: &Db, tenant: TenantId, id: UserId) -> Result<Option<Map<String, Value>>> {
    let sql = "SELECT secure_metadata FROM users WHERE tenant_id = $1 AND id = $2";
    let raw = db.fetch_optional(sql, &[Param::text(tenant), Param::text(id)], |r| r.text("secure_metadata")).await?;
    raw.map(|s| parse_json(&s)).transpose()
}

pub(crate) async fn delete(db: &Db, tenant: TenantId, id: UserId, records: &[Record]) -> Result<bool> {
    let params = vec![Param::text(tenant), Param::text(id)];
    let erase = std::iter::once(events::must_change(DELETE_USER_SQL, params))
        .chain(activity::erase_steps(tenant, id))
        .collect();
    events::change_with(db, Touch::User(id), erase, records).await
}

pub(crate) async fn list(db: &Db, tenant: TenantId, f: &UserFilter, now: DateTime<Utc>) -> Result<Vec<User>> {
    let mut params = vec![Param::time(now), Param::text(tenant)];
    let mut sql =
        format!("SELECT {USER_COLUMNS}, {} FROM users u WHERE u.tenant_id = $2", active_sessions_column("$1"));
    let mut and = |condition: &str, param: Param| {
        params.push(param);
        sql.push_str(&format!(" AND u.{condition} ${}", params.len()));
    };
    if let Some(email) = &f.email {
        and("primary_email =", Param::Text(Some(email.to_lowercase())));
    }
    if let Some(name) = &f.username {
        and("username_lower =", Param::Text(Some(name.to_lowercase())));
    }
    if let Some(status) = &f.status {
        and("status =", Param::text(status));
    }
    if let Some(anon) = f.is_anonymous {
        and("is_anonymous =", Param::Bool(anon));
    }
    if let Some(sa) = f.is_service_account {
        and("is_service_account =", Param::Bool(sa));
    }
    if let Some(after) = f.after {
        and("id >", Param::text(after));
    }
    if let Some(prefix) = f.prefix.as_deref().map(str::to_lowercase).filter(|p| !p.is_empty()) {
        // A range, not LIKE: both backends walk the index for it, and no character of the
        // prefix is a wildcard. Everything starting with the prefix sorts below it followed
        // by the highest character.
        let end = format!("{prefix}\u{10FFFF}");
        let n = params.len();
        params.extend([Param::Text(Some(prefix)), Param::Text(Some(end))]);
        sql.push_str(&format!(
            " AND ((u.primary_email >= ${a} AND u.primary_email < ${b}) OR (u.username_lower >= ${a} AND u.username_lower < ${b}))",
            a = n + 1,
            b = n + 2
        ));
    }
    params.push(Param::Int(Some(i64::from(f.limit))));
    sql.push_str(&format!(" ORDER BY u.id LIMIT ${}", params.len()));
    db.fetch_all(&sql, &params, user_from).await
}

pub(crate) async fn purge_due(
    db: &Db,
    now: DateTime<Utc>,
    limit: u32,
    erased: &(dyn Fn(TenantId, UserId) -> Vec<Record> + Send + Sync),
) -> Result<Vec<(TenantId, UserId)>> {
    let db = db.handle();
    let mut tx = db.begin().await?;
    let due = tx
        .fetch_all(
            "SELECT tenant_id, id FROM users WHERE deletion_due_at IS NOT NULL AND deletion_due_at <= $1 \
             ORDER BY deletion_due_at LIMIT $2",
            &[Param::time(now), Param::Int(Some(i64::from(limit)))],
            |r| Ok((r.text("tenant_id")?, r.text("id")?)),
        )
        .await?;
    let _touch = (!due.is_empty()).then(|| db.touching(Touch::All));
    let mut purged = Vec::with_capacity(due.len());
    let mut events = 0;
    for (tenant, id) in due {
        // Checked again at delete time: a sign-in may have cancelled the deletion.
        let sql = "DELETE FROM users WHERE id = $1 AND deletion_due_at IS NOT NULL AND deletion_due_at <= $2";
        let params = [Param::text(&id), Param::time(now)];
        if tx.execute(sql, &params).await? == 1 {
            let (tenant, id) = (parse_id(&tenant)?, parse_id(&id)?);
            let records = erased(tenant, id);
            let steps = activity::erase_steps(tenant, id).into_iter().chain(events::steps(&records));
            events += tx.run(&steps.collect::<Vec<_>>()).await?;
            purged.push((tenant, id));
        }
    }
    db.commit(tx, events).await?;
    Ok(purged)
}
