//! OAuth clients (with their service-account users) and authorization codes, each code used
//! once.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use tessera_core::oauth::{AuthorizationGrant, OAuthClient};
use tessera_core::{SessionId, TenantId};

use crate::db::Db;
use crate::sql::{Columns, Param, Step, Touch, from_ms, json, ms, parse_id, parse_json};
use crate::{NewUser, Redemption, Result, users};

const OAUTH_CLIENT_COLUMNS: &str =
    "client_id, tenant_id, name, redirect_uris, grant_types, is_public, user_id, created_at";

static FIND_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {OAUTH_CLIENT_COLUMNS}, secret_hash FROM oauth_clients WHERE client_id = $1"));

static LIST_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {OAUTH_CLIENT_COLUMNS} FROM oauth_clients WHERE tenant_id = $1 ORDER BY created_at, client_id")
});

const INSERT_SQL: &str = "INSERT INTO oauth_clients (client_id, tenant_id, name, redirect_uris, grant_types, \
     is_public, secret_hash, user_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// An OAuth client from a row holding `OAUTH_CLIENT_COLUMNS`.
fn client_from(row: &dyn Columns) -> Result<OAuthClient> {
    Ok(OAuthClient {
        client_id: row.text("client_id")?,
        tenant_id: parse_id(&row.text("tenant_id")?)?,
        name: row.text("name")?,
        redirect_uris: parse_json(&row.text("redirect_uris")?)?,
        grant_types: parse_json(&row.text("grant_types")?)?,
        is_public: row.flag("is_public")?,
        user_id: row.opt_text("user_id")?.as_deref().map(parse_id).transpose()?,
        created_at: from_ms(row.int("created_at")?),
    })
}

pub(crate) async fn insert_client(
    db: &Db,
    c: &OAuthClient,
    secret_hash: Option<&str>,
    service_user: Option<NewUser<'_>>,
) -> Result<()> {
    let mut steps = match service_user {
        Some(new) => users::insert_steps(new)?,
        None => Vec::with_capacity(1),
    };
    let params = vec![
        Param::text(&c.client_id),
        Param::text(c.tenant_id),
        Param::text(&c.name),
        Param::Text(Some(json(&c.redirect_uris)?)),
        Param::Text(Some(json(&c.grant_types)?)),
        Param::Bool(c.is_public),
        Param::Text(secret_hash.map(str::to_owned)),
        Param::Text(c.user_id.map(|u| u.to_string())),
        Param::time(c.created_at),
    ];
    steps.push(Step::execute(INSERT_SQL, params));
    db.transaction(steps).await
}

pub(crate) async fn find_client(db: &Db, client_id: &str) -> Result<Option<(OAuthClient, Option<String>)>> {
    db.fetch_hot(&FIND_SQL, &[Param::text(client_id)], |r| Ok((client_from(r)?, r.opt_text("secret_hash")?))).await
}

pub(crate) async fn list_clients(db: &Db, tenant: TenantId) -> Result<Vec<OAuthClient>> {
    db.fetch_all(&LIST_SQL, &[Param::text(tenant)], client_from).await
}

pub(crate) async fn delete_client(db: &Db, tenant: TenantId, client_id: &str) -> Result<bool> {
    let client_id = Param::text(client_id);
    db.detached(move |db| async move {
        // Deletes the client's service-account user, if it has one.
        let _touch = db.touching(Touch::All);
        let mut tx = db.begin().await?;
        let sql = "SELECT user_id FROM oauth_clients WHERE client_id = $1 AND tenant_id = $2";
        let found =
            tx.fetch_optional(sql, &[client_id.clone(), Param::text(tenant)], |r| r.opt_text("user_id")).await?;
        let Some(user) = found else { return Ok(false) };
        tx.execute("DELETE FROM oauth_clients WHERE client_id = $1", &[client_id]).await?;
        if let Some(user) = user {
            tx.execute("DELETE FROM users WHERE id = $1", &[Param::Text(Some(user))]).await?;
        }
        tx.commit().await?;
        Ok(true)
    })
    .await
}

pub(crate) async fn insert_code(db: &Db, code_hash: &str, g: &AuthorizationGrant) -> Result<()> {
    let sql = "INSERT INTO authorization_codes (code_hash, tenant_id, client_id, user_id, grant_data, expires_at) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    let params = [
        Param::text(code_hash),
        Param::text(g.tenant_id),
        Param::text(&g.client_id),
        Param::text(g.user_id),
        Param::Text(Some(json(g)?)),
        Param::time(g.expires_at),
    ];
    db.execute(sql, &params).await.map(drop)
}

pub(crate) async fn redeem_code(
    db: &Db,
    code_hash: &str,
    session: SessionId,
    now: DateTime<Utc>,
) -> Result<Redemption> {
    let code_hash = Param::text(code_hash);
    db.detached(move |db| async move {
        let mut tx = db.begin().await?;
        let sql = "SELECT grant_data, expires_at, used_at FROM authorization_codes WHERE code_hash = $1";
        let found = tx
            .fetch_optional(sql, std::slice::from_ref(&code_hash), |r| {
                Ok((r.text("grant_data")?, r.int("expires_at")?, r.opt_int("used_at")?))
            })
            .await?;
        let Some((grant, expires_at, used_at)) = found else { return Ok(Redemption::Invalid) };
        if used_at.is_none() && expires_at <= ms(now) {
            return Ok(Redemption::Invalid);
        }
        // Conditional, so of two racing redemptions exactly one wins; the other is the replay
        // it looks like.
        let mark =
            "UPDATE authorization_codes SET used_at = $2, session_id = $3 WHERE code_hash = $1 AND used_at IS NULL";
        let won = used_at.is_none()
            && tx.execute(mark, &[code_hash.clone(), Param::time(now), Param::text(session)]).await? == 1;
        if !won {
            let _touch = db.touching(Touch::All);
            let revoke = "UPDATE sessions SET revoked_at = $2 WHERE revoked_at IS NULL \
                          AND id = (SELECT session_id FROM authorization_codes WHERE code_hash = $1)";
            tx.execute(revoke, &[code_hash, Param::time(now)]).await?;
            tx.commit().await?;
            return Ok(Redemption::Replayed);
        }
        let grant: AuthorizationGrant = parse_json(&grant)?;
        tx.commit().await?;
        Ok(Redemption::Redeemed(grant))
    })
    .await
}

pub(crate) async fn delete_expired_codes(db: &Db, before: DateTime<Utc>) -> Result<u64> {
    db.execute("DELETE FROM authorization_codes WHERE expires_at < $1", &[Param::time(before)]).await
}
