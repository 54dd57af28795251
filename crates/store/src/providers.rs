//! A tenant's identity providers.

use tessera_core::TenantId;
use tessera_core::federation::{IdentityProvider, ProviderKind};

use crate::db::Db;
use crate::sql::{Columns, Param, from_ms, json, parse_id, parse_json};
use crate::{Result, StoreError, constraints};

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
