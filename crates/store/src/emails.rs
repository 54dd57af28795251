//! A user's email addresses and the tokens mailed to them. The primary address lives twice:
//! as the user's `primary_email` (the one row `GET /me` reads) and as a row here beside the
//! others, so that one unique index keeps every address to one user of a tenant. The user
//! write keeps the two in step (`primary_steps`).

use chrono::{DateTime, Utc};
use tessera_core::events::Record;
use tessera_core::mail::{EmailAddress, MailToken, TokenPurpose};
use tessera_core::{TenantId, UserId};
use uuid::Uuid;

use crate::db::Db;
use crate::sql::{Columns, OnNone, Param, Step, Touch, from_ms, parse_id};
use crate::{Result, StoreError, constraints, events};

const ADDRESS_COLUMNS: &str = "id, tenant_id, user_id, email, verified, created_at";

/// Adds the address for the user, or updates whether it is verified if it is theirs already;
/// changes nothing when it is another user's, which the step reports as a conflict.
const UPSERT_SQL: &str = "INSERT INTO user_emails (id, tenant_id, user_id, email, verified, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, email) DO UPDATE SET verified = excluded.verified \
     WHERE user_emails.user_id = excluded.user_id";

const DELETE_SQL: &str = "DELETE FROM user_emails WHERE tenant_id = $1 AND user_id = $2 AND email = $3";

fn taken() -> StoreError {
    StoreError::Conflict { constraint: constraints::USER_EMAIL }
}

fn address_from(r: &dyn Columns) -> Result<EmailAddress> {
    Ok(EmailAddress {
        id: parse_id(&r.text("id")?)?,
        tenant_id: parse_id(&r.text("tenant_id")?)?,
        user_id: parse_id(&r.text("user_id")?)?,
        email: r.text("email")?,
        verified: r.flag("verified")?,
        created_at: from_ms(r.int("created_at")?),
    })
}

/// The address `email` of user `user`, verified or not, as a step that fails with a conflict
/// when the address is another user's.
pub(crate) fn upsert_step(tenant: TenantId, user: UserId, email: &str, verified: bool, now: DateTime<Utc>) -> Step {
    let params = vec![
        Param::text(Uuid::now_v7()),
        Param::text(tenant),
        Param::text(user),
        Param::text(email.to_lowercase()),
        Param::Bool(verified),
        Param::time(now),
    ];
    Step::change(UPSERT_SQL, params, OnNone::Fail(taken))
}

/// The steps that keep the user's addresses in step with a write of their primary address:
/// the one it replaces (`before`) leaves the account unless `keep_before`, and the new one is
/// the user's, verified as the user row says.
pub(crate) fn primary_steps(
    tenant: TenantId,
    user: UserId,
    before: Option<&str>,
    keep_before: bool,
    after: Option<&str>,
    verified: bool,
    now: DateTime<Utc>,
) -> Vec<Step> {
    let mut steps = Vec::with_capacity(2);
    let lower = |e: &str| e.to_lowercase();
    if let Some(old) = before
        && !keep_before
        && after.map(lower) != Some(lower(old))
    {
        steps.push(Step::execute(DELETE_SQL, vec![Param::text(tenant), Param::text(user), Param::text(lower(old))]));
    }
    if let Some(new) = after {
        steps.push(upsert_step(tenant, user, new, verified, now));
    }
    steps
}

pub(crate) async fn list(db: &Db, tenant: TenantId, user: UserId) -> Result<Vec<EmailAddress>> {
    let sql = format!(
        "SELECT {ADDRESS_COLUMNS} FROM user_emails WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id"
    );
    db.fetch_all(&sql, &[Param::text(tenant), Param::text(user)], address_from).await
}

/// The address `email` in the tenant, whoever has it.
pub(crate) async fn find_by_email(db: &Db, tenant: TenantId, email: &str) -> Result<Option<EmailAddress>> {
    let sql = format!("SELECT {ADDRESS_COLUMNS} FROM user_emails WHERE tenant_id = $1 AND email = $2");
    db.fetch_optional(&sql, &[Param::text(tenant), Param::text(email.to_lowercase())], address_from).await
}

/// A new address that is not the primary, with its records (`user.email_added`, the mail that
/// asks to verify it); a conflict if any user of the tenant has it.
pub(crate) async fn insert(db: &Db, a: &EmailAddress, records: &[Record]) -> Result<()> {
    const INSERT_SQL: &str =
        "INSERT INTO user_emails (id, tenant_id, user_id, email, verified, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
    let params = vec![
        Param::text(a.id),
        Param::text(a.tenant_id),
        Param::text(a.user_id),
        Param::text(a.email.to_lowercase()),
        Param::Bool(a.verified),
        Param::time(a.created_at),
    ];
    let steps = std::iter::once(Step::execute(INSERT_SQL, params)).chain(events::steps(records)).collect();
    db.group_write(Touch::User(a.user_id), None, steps).await
}

/// Removes an address that is not the user's primary, with its records; false when there is
/// no such address, or it is the primary.
pub(crate) async fn delete(db: &Db, tenant: TenantId, user: UserId, id: Uuid, records: &[Record]) -> Result<bool> {
    const SQL: &str = "DELETE FROM user_emails WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND email NOT IN \
         (SELECT primary_email FROM users WHERE id = $2 AND primary_email IS NOT NULL)";
    let params = vec![Param::text(tenant), Param::text(user), Param::text(id)];
    events::change_with(db, Touch::User(user), vec![events::must_change(SQL, params)], records).await
}

const INSERT_TOKEN_SQL: &str = "INSERT INTO mail_tokens (hash, tenant_id, user_id, purpose, email, expires_at, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Stores a mailed token's hash, in the transaction of the message that carries it.
pub(crate) fn insert_token_step(t: &MailToken) -> Step {
    let params = vec![
        Param::text(&t.hash),
        Param::text(t.tenant_id),
        Param::text(t.user_id),
        Param::text(t.purpose.as_str()),
        Param::text(t.email.to_lowercase()),
        Param::time(t.expires_at),
        Param::time(t.created_at),
    ];
    Step::execute(INSERT_TOKEN_SQL, params)
}

fn token_from(r: &dyn Columns) -> Result<MailToken> {
    let purpose = r.text("purpose")?;
    Ok(MailToken {
        hash: r.text("hash")?,
        tenant_id: parse_id(&r.text("tenant_id")?)?,
        user_id: parse_id(&r.text("user_id")?)?,
        purpose: TokenPurpose::parse(&purpose).ok_or(StoreError::NotFound)?,
        email: r.text("email")?,
        expires_at: from_ms(r.int("expires_at")?),
        created_at: from_ms(r.int("created_at")?),
    })
}

/// A token that can still be used at `now`: unused and unexpired.
pub(crate) async fn find_token(db: &Db, hash: &str, now: DateTime<Utc>) -> Result<Option<MailToken>> {
    let sql = "SELECT hash, tenant_id, user_id, purpose, email, expires_at, created_at FROM mail_tokens \
               WHERE hash = $1 AND used_at IS NULL AND expires_at > $2";
    db.fetch_optional(sql, &[Param::text(hash), Param::time(now)], token_from).await
}

/// Uses a token up, as a step of the write it allows: the write fails as a conflict on
/// `mail_token` when the token was used meanwhile or has expired.
pub(crate) fn use_token_step(hash: &str, now: DateTime<Utc>) -> Step {
    const SQL: &str = "UPDATE mail_tokens SET used_at = $2 WHERE hash = $1 AND used_at IS NULL AND expires_at > $2";
    Step::change(SQL, vec![Param::text(hash), Param::time(now)], OnNone::Fail(token_spent))
}

fn token_spent() -> StoreError {
    StoreError::Conflict { constraint: constraints::MAIL_TOKEN }
}

/// Verifies an address that is not the primary with a token, with its records: the token is
/// used up and the address marked verified in one transaction. `NotFound` when the address
/// has left the account since.
pub(crate) async fn verify(db: &Db, token: &MailToken, now: DateTime<Utc>, records: &[Record]) -> Result<()> {
    const SQL: &str = "UPDATE user_emails SET verified = TRUE WHERE tenant_id = $1 AND user_id = $2 AND email = $3";
    let params = vec![Param::text(token.tenant_id), Param::text(token.user_id), Param::text(&token.email)];
    let steps = [use_token_step(&token.hash, now), events::must_change(SQL, params)]
        .into_iter()
        .chain(events::steps(records))
        .collect();
    db.group_write(Touch::User(token.user_id), None, steps).await
}

/// Forgets tokens that expired before `before`.
pub(crate) async fn purge_tokens(db: &Db, before: DateTime<Utc>) -> Result<u64> {
    db.execute("DELETE FROM mail_tokens WHERE expires_at < $1", &[Param::time(before)]).await
}
