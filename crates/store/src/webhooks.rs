//! A tenant's webhook endpoints.

use tessera_core::TenantId;
use tessera_core::events::WebhookEndpoint;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::{Columns, Param, from_ms, json, ms, parse_id, parse_json};
use crate::{Result, StoreError};

pub(crate) const ENDPOINT_COLUMNS: &str = "id, tenant_id, url, event_types, description, enabled, secret, \
     previous_secret, previous_secret_until, created_at, updated_at";

pub(crate) fn endpoint_from(r: &dyn Columns) -> Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: parse_id(&r.text("id")?)?,
        tenant_id: parse_id(&r.text("tenant_id")?)?,
        url: r.text("url")?,
        event_types: parse_json(&r.text("event_types")?)?,
        description: r.opt_text("description")?,
        enabled: r.flag("enabled")?,
        secret: r.text("secret")?,
        previous_secret: r.opt_text("previous_secret")?,
        previous_secret_until: r.opt_int("previous_secret_until")?.map(from_ms),
        created_at: from_ms(r.int("created_at")?),
        updated_at: from_ms(r.int("updated_at")?),
    })
}

fn params(w: &WebhookEndpoint) -> Result<Vec<Param>> {
    Ok(vec![
        Param::text(w.id),
        Param::text(w.tenant_id),
        Param::text(&w.url),
        Param::Text(Some(json(&w.event_types)?)),
        Param::Text(w.description.clone()),
        Param::Bool(w.enabled),
        Param::text(&w.secret),
        Param::Text(w.previous_secret.clone()),
        Param::Int(w.previous_secret_until.map(ms)),
        Param::time(w.created_at),
        Param::time(w.updated_at),
    ])
}

pub(crate) async fn insert(db: &Db, w: &WebhookEndpoint) -> Result<()> {
    let sql = format!(
        "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    db.execute(&sql, &params(w)?).await.map(drop)
}

pub(crate) async fn find(db: &Db, tenant: TenantId, id: Uuid) -> Result<Option<WebhookEndpoint>> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2");
    db.fetch_optional(&sql, &[Param::text(tenant), Param::text(id)], endpoint_from).await
}

pub(crate) async fn list(db: &Db, tenant: TenantId) -> Result<Vec<WebhookEndpoint>> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id");
    db.fetch_all(&sql, &[Param::text(tenant)], endpoint_from).await
}

/// Writes every field but the id, tenant and creation time.
pub(crate) async fn update(db: &Db, w: &WebhookEndpoint) -> Result<()> {
    let sql = "UPDATE webhook_endpoints SET url = $3, event_types = $4, description = $5, enabled = $6, secret = $7, \
               previous_secret = $8, previous_secret_until = $9, updated_at = $11 \
               WHERE id = $1 AND tenant_id = $2 AND created_at = $10";
    let changed = db.execute(sql, &params(w)?).await?;
    if changed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

pub(crate) async fn delete(db: &Db, tenant: TenantId, id: Uuid) -> Result<bool> {
    let sql = "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2";
    Ok(db.execute(sql, &[Param::text(tenant), Param::text(id)]).await? == 1)
}
