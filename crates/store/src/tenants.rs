//! Tenants, their keys and settings, and their own Cedar policies.

use chrono::{DateTime, Utc};
use tessera_core::TenantId;
use tessera_core::tenant::{Tenant, TenantSettings};

use crate::db::Db;
use crate::sql::{Columns, Param, from_ms, json, parse_id, parse_json};
use crate::{Result, StoreError};

fn tenant_from(r: &dyn Columns) -> Result<Tenant> {
    let settings: TenantSettings = parse_json(&r.text("settings")?)?;
    Ok(Tenant {
        id: parse_id(&r.text("id")?)?,
        name: r.text("name")?,
        publishable_key: r.text("publishable_key")?,
        settings,
        created_at: from_ms(r.int("created_at")?),
    })
}

pub(crate) async fn insert(db: &Db, tenant: &Tenant, server_key_hash: &str) -> Result<()> {
    let sql = "INSERT INTO tenants (id, name, server_key_hash, publishable_key, settings, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    let params = [
        Param::text(tenant.id),
        Param::text(&tenant.name),
        Param::text(server_key_hash),
        Param::text(&tenant.publishable_key),
        Param::Text(Some(json(&tenant.settings)?)),
        Param::time(tenant.created_at),
    ];
    db.execute(sql, &params).await.map(drop)
}

/// One tenant by a unique column; `sql` selects it with `$1`.
async fn find_by(db: &Db, sql: &str, value: Param) -> Result<Option<Tenant>> {
    db.fetch_optional(sql, &[value], tenant_from).await
}

pub(crate) async fn find(db: &Db, id: TenantId) -> Result<Option<Tenant>> {
    find_by(db, "SELECT * FROM tenants WHERE id = $1", Param::text(id)).await
}

pub(crate) async fn find_by_server_key(db: &Db, server_key_hash: &str) -> Result<Option<Tenant>> {
    find_by(db, "SELECT * FROM tenants WHERE server_key_hash = $1", Param::text(server_key_hash)).await
}

pub(crate) async fn find_by_publishable_key(db: &Db, key: &str) -> Result<Option<Tenant>> {
    find_by(db, "SELECT * FROM tenants WHERE publishable_key = $1", Param::text(key)).await
}

pub(crate) async fn list(db: &Db) -> Result<Vec<Tenant>> {
    db.fetch_all("SELECT * FROM tenants ORDER BY created_at, id", &[], tenant_from).await
}

pub(crate) async fn update(db: &Db, tenant: &Tenant) -> Result<()> {
    let params = [Param::text(tenant.id), Param::text(&tenant.name), Param::Text(Some(json(&tenant.settings)?))];
    let changed = db.execute("UPDATE tenants SET name = $2, settings = $3 WHERE id = $1", &params).await?;
    if changed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

pub(crate) async fn find_policies(db: &Db, tenant: TenantId) -> Result<String> {
    let sql = "SELECT source FROM tenant_policies WHERE tenant_id = $1";
    let source = db.fetch_optional(sql, &[Param::text(tenant)], |r| r.text("source")).await?;
    Ok(source.unwrap_or_default())
}

pub(crate) async fn put_policies(db: &Db, tenant: TenantId, source: &str, now: DateTime<Utc>) -> Result<()> {
    let sql = "INSERT INTO tenant_policies (tenant_id, source, updated_at) VALUES ($1, $2, $3) \
               ON CONFLICT (tenant_id) DO UPDATE SET source = excluded.source, updated_at = excluded.updated_at";
    db.execute(sql, &[Param::text(tenant), Param::text(source), Param::time(now)]).await.map(drop)
}
