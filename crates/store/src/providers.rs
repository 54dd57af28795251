//! A tenant's identity providers, the users linked to them, and the sign-ins through them
//! under way.

use chrono::{DateTime, Utc};
use tessera_core::events::Record;
use tessera_core::federation::{FederationState, IdentityProvider, ProviderKind};
use tessera_core::user::User;
use tessera_core::{TenantId, UserId};

use crate::db::Db;
use crate::sql::{Columns, Param, Step, from_ms, json, parse_id, parse_json};
use crate::{NewUser, Result, StoreError, constraints, events, users};

const COLUMNS: &str = "tenant_id, slug, kind, display_name, client_id, client_secret, scopes, issuer, web_base_url, \
     api_base_url, created_at, updated_at";

fn provider_from(r: &dyn Columns) -> Result<IdentityProvider> {
    Ok(IdentityProvider {
        tenant_id: parse_id(&r.text("tenant_id")?)?,
        slug: r.text("slug")?,
        kind: ProviderKind::parse(&r.text("kind")?).ok_or(StoreError::NotFound)?,
        display_name: r.text("display_name")?,
        client_id: r.text("client_id")?,
        client_secret: r.text("client_secret")?,
        scopes: parse_json(&r.text("scopes")?)?,
        issuer: r.opt_text("issuer")?,
        web_base_url: r.opt_text("web_base_url")?,
        api_base_url: r.opt_text("api_base_url")?,
        created_at: from_ms(r.int("created_at")?),
        updated_at: from_ms(r.int("updated_at")?),
    })
}

fn params(p: &IdentityProvider) -> Result<Vec<Param>> {
    Ok(vec![
        Param::text(p.tenant_id),
        Param::text(&p.slug),
        Param::text(p.kind.as_str()),
        Param::text(&p.display_name),
        Param::text(&p.client_id),
        Param::text(&p.client_secret),
        Param::Text(Some(json(&p.scopes)?)),
        Param::Text(p.issuer.clone()),
        Param::Text(p.web_base_url.clone()),
        Param::Text(p.api_base_url.clone()),
        Param::time(p.created_at),
        Param::time(p.updated_at),
    ])
}

/// A new provider; a conflict on `identity_provider` when the tenant has one by its slug.
pub(crate) async fn insert(db: &Db, p: &IdentityProvider) -> Result<()> {
    let sql = format!(
        "INSERT INTO identity_providers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    match db.execute(&sql, &params(p)?).await {
        Err(StoreError::Conflict { .. }) => Err(StoreError::Conflict { constraint: constraints::IDENTITY_PROVIDER }),
        other => other.map(drop),
    }
}

pub(crate) async fn find(db: &Db, tenant: TenantId, slug: &str) -> Result<Option<IdentityProvider>> {
    let sql = format!("SELECT {COLUMNS} FROM identity_providers WHERE tenant_id = $1 AND slug = $2");
    db.fetch_optional(&sql, &[Param::text(tenant), Param::text(slug)], provider_from).await
}

pub(crate) async fn list(db: &Db, tenant: TenantId) -> Result<Vec<IdentityProvider>> {
    let sql = format!("SELECT {COLUMNS} FROM identity_providers WHERE tenant_id = $1 ORDER BY created_at, slug");
    db.fetch_all(&sql, &[Param::text(tenant)], provider_from).await
}

/// Writes every field but the tenant, slug and creation time; `NotFound` when it is gone.
pub(crate) async fn update(db: &Db, p: &IdentityProvider) -> Result<()> {
    let sql = "UPDATE identity_providers SET kind = $3, display_name = $4, client_id = $5, client_secret = $6, \
               scopes = $7, issuer = $8, web_base_url = $9, api_base_url = $10, updated_at = $12 \
               WHERE tenant_id = $1 AND slug = $2 AND created_at = $11";
    if db.execute(sql, &params(p)?).await? == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

pub(crate) async fn delete(db: &Db, tenant: TenantId, slug: &str) -> Result<bool> {
    let sql = "DELETE FROM identity_providers WHERE tenant_id = $1 AND slug = $2";
    Ok(db.execute(sql, &[Param::text(tenant), Param::text(slug)]).await? == 1)
}

/// A sign-in through a provider that has just started.
pub(crate) async fn insert_state(db: &Db, s: &FederationState) -> Result<()> {
    let sql = "INSERT INTO federation_states (hash, tenant_id, provider, browser_hash, nonce, code_verifier, return_to, \
               expires_at, link_user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    let params = [
        Param::text(&s.hash),
        Param::text(s.tenant_id),
        Param::text(&s.provider),
        Param::text(&s.browser_hash),
        Param::text(&s.nonce),
        Param::text(&s.code_verifier),
        Param::text(&s.return_to),
        Param::time(s.expires_at),
        Param::Text(s.link_user.map(|u| u.to_string())),
    ];
    db.execute(sql, &params).await.map(drop)
}

/// Uses a state up, in one statement that writes first, so that of two answers carrying it
/// only one gets it; none when it is unknown, used or expired. Expired states are forgotten.
pub(crate) async fn take_state(db: &Db, hash: &str, now: DateTime<Utc>) -> Result<Option<FederationState>> {
    const SQL: &str = "UPDATE federation_states SET used_at = $2 WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 \
         RETURNING hash, tenant_id, provider, browser_hash, nonce, code_verifier, return_to, expires_at, link_user_id";
    let hash = hash.to_owned();
    db.detached(move |db| async move {
        let mut tx = db.begin().await?;
        let taken = tx
            .fetch_optional(SQL, &[Param::text(&hash), Param::time(now)], |r: &dyn Columns| {
                Ok(FederationState {
                    hash: r.text("hash")?,
                    tenant_id: parse_id(&r.text("tenant_id")?)?,
                    provider: r.text("provider")?,
                    browser_hash: r.text("browser_hash")?,
                    nonce: r.text("nonce")?,
                    code_verifier: r.text("code_verifier")?,
                    return_to: r.text("return_to")?,
                    expires_at: from_ms(r.int("expires_at")?),
                    link_user: r.opt_text("link_user_id")?.map(|u| parse_id(&u)).transpose()?,
                })
            })
            .await?;
        tx.execute("DELETE FROM federation_states WHERE expires_at < $1", &[Param::time(now)]).await?;
        tx.commit().await?;
        Ok(taken)
    })
    .await
}

/// The user a provider's subject is, if any.
pub(crate) async fn find_identity(db: &Db, tenant: TenantId, provider: &str, subject: &str) -> Result<Option<UserId>> {
    let sql = "SELECT user_id FROM user_identities WHERE tenant_id = $1 AND provider = $2 AND subject = $3";
    let params = [Param::text(tenant), Param::text(provider), Param::text(subject)];
    db.fetch_optional(sql, &params, |r: &dyn Columns| parse_id(&r.text("user_id")?)).await
}

const LINK_SQL: &str =
    "INSERT INTO user_identities (tenant_id, provider, subject, user_id, created_at) VALUES ($1, $2, $3, $4, $5)";

/// The step that links `user` to a provider's subject.
pub(crate) fn link_step(user: &User, provider: &str, subject: &str, now: DateTime<Utc>) -> Step {
    let params = vec![
        Param::text(user.tenant_id),
        Param::text(provider),
        Param::text(subject),
        Param::text(user.id),
        Param::time(now),
    ];
    Step::execute(LINK_SQL, params)
}

/// A user who signed in through a provider for the first time, linked to it, in one transaction.
pub(crate) async fn insert_linked_user(db: &Db, new: NewUser<'_>, provider: &str, subject: &str) -> Result<()> {
    let link = link_step(new.user, provider, subject, new.user.created_at);
    let mut steps = users::insert_steps(new)?;
    steps.push(link);
    db.transaction(steps).await.map_err(linked_conflict)
}

/// Links an existing user to a provider's subject, with its records.
pub(crate) async fn link(
    db: &Db,
    user: &User,
    provider: &str,
    subject: &str,
    now: DateTime<Utc>,
    records: &[Record],
) -> Result<()> {
    let steps = std::iter::once(link_step(user, provider, subject, now)).chain(events::steps(records)).collect();
    db.transaction(steps).await.map_err(linked_conflict)
}

/// The subject is linked already: the same conflict whichever table's index said so.
fn linked_conflict(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { constraint } if constraint == constraints::TENANT_KEY => {
            StoreError::Conflict { constraint: constraints::IDENTITY_LINK }
        }
        other => other,
    }
}

/// The providers a user is linked to: (provider, subject, since), oldest first.
pub(crate) async fn identities(
    db: &Db,
    tenant: TenantId,
    user: UserId,
) -> Result<Vec<(String, String, DateTime<Utc>)>> {
    let sql = "SELECT provider, subject, created_at FROM user_identities WHERE tenant_id = $1 AND user_id = $2 \
               ORDER BY created_at, provider";
    db.fetch_all(sql, &[Param::text(tenant), Param::text(user)], |r: &dyn Columns| {
        Ok((r.text("provider")?, r.text("subject")?, from_ms(r.int("created_at")?)))
    })
    .await
}

/// Unlinks a user from a provider, with its records only if it was linked.
pub(crate) async fn unlink(
    db: &Db,
    tenant: TenantId,
    user: UserId,
    provider: &str,
    records: &[Record],
) -> Result<bool> {
    const SQL: &str = "DELETE FROM user_identities WHERE tenant_id = $1 AND user_id = $2 AND provider = $3";
    let params = vec![Param::text(tenant), Param::text(user), Param::text(provider)];
    events::change_with(db, crate::sql::Touch::User(user), vec![events::must_change(SQL, params)], records).await
}
