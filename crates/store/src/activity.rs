//! The activity trail: entries written as steps of the transaction of the change they record
//! (or alone, for a failed sign-in, which changes nothing), read a page at a time by the user
//! or by the tenant's audit log, and forgotten after the tenant's retention period.

use crate::Result;
use crate::db::Db;
use crate::sql::{Columns, Param, Step, from_ms, parse_id, parse_json};
use chrono::{DateTime, Utc};
use tessera_core::events::{Activity, ActivityFilter, By, first_id_at};
use tessera_core::{TenantId, UserId};

const INSERT_SQL: &str = "INSERT INTO activity (tenant_id, user_id, id, type, actor, ip_address, user_agent, \
     details, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) fn insert_step(a: &Activity) -> Step {
    let params = vec![
        Param::text(a.tenant_id),
        Param::text(a.user_id),
        Param::text(a.id),
        Param::text(&a.kind),
        Param::text(a.by.as_str()),
        Param::Text(a.ip_address.clone()),
        Param::Text(a.user_agent.clone()),
        Param::text(&a.details),
        Param::time(a.created_at),
    ];
    Step::execute(INSERT_SQL, params)
}

/// An erased user's entries go with it: they hold where it signed in from. The erasure's own
/// entry is written after this step.
pub(crate) fn erase_step(tenant: TenantId, user: UserId) -> Step {
    let sql = "DELETE FROM activity WHERE tenant_id = $1 AND user_id = $2";
    Step::execute(sql, vec![Param::text(tenant), Param::text(user)])
}

/// An entry that records no change of its own (a failed sign-in).
pub(crate) async fn insert(db: &Db, a: &Activity) -> Result<()> {
    db.transaction(vec![insert_step(a)]).await
}

fn activity_from(r: &dyn Columns) -> Result<Activity> {
    Ok(Activity {
        id: parse_id(&r.text("id")?)?,
        tenant_id: parse_id(&r.text("tenant_id")?)?,
        user_id: parse_id(&r.text("user_id")?)?,
        kind: r.text("type")?,
        by: By::parse(&r.text("actor")?).unwrap_or(By::System),
        ip_address: r.opt_text("ip_address")?,
        user_agent: r.opt_text("user_agent")?,
        details: parse_json(&r.text("details")?)?,
        created_at: from_ms(r.int("created_at")?),
    })
}

/// Entries of `tenant`, newest first, narrowed by `f`. Every time bound is an id bound, so the
/// read walks one index (the user's, or the tenant's) from its newest end; the statement names
/// only the filters given, so that PostgreSQL plans it for them.
pub(crate) async fn list(db: &Db, tenant: TenantId, f: &ActivityFilter) -> Result<Vec<Activity>> {
    // The older of the two upper bounds: the page's cursor and the end of the time range.
    let until = f.until.map(|t| first_id_at(t + chrono::Duration::milliseconds(1)));
    let before = match (f.before, until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut params = vec![Param::text(tenant)];
    let mut sql = String::from(
        "SELECT tenant_id, user_id, id, type, actor, ip_address, user_agent, details, created_at \
         FROM activity WHERE tenant_id = $1",
    );
    let mut and = |condition: &str, param: Param| {
        params.push(param);
        sql.push_str(&format!(" AND {condition} ${}", params.len()));
    };
    if let Some(user) = f.user_id {
        and("user_id =", Param::text(user));
    }
    if let Some(kind) = &f.kind {
        and("type =", Param::text(kind));
    }
    if let Some(since) = f.since {
        and("id >=", Param::text(first_id_at(since)));
    }
    if let Some(before) = before {
        and("id <", Param::text(before));
    }
    params.push(Param::Int(Some(i64::from(f.limit))));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
    db.fetch_all(&sql, &params, activity_from).await
}

/// Forgets the tenant's entries made before `before`.
pub(crate) async fn purge(db: &Db, tenant: TenantId, before: DateTime<Utc>) -> Result<u64> {
    let sql = "DELETE FROM activity WHERE tenant_id = $1 AND id < $2";
    db.execute(sql, &[Param::text(tenant), Param::text(first_id_at(before))]).await
}
