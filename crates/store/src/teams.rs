//! Teams and their memberships.

use chrono::{DateTime, Utc};
use tessera_core::events::Record;
use tessera_core::user::Team;
use tessera_core::{TeamId, TenantId, UserId};

use crate::db::Db;
use crate::pool::Tx;
use crate::sql::{Columns, OnNone, Param, Step, Steps, Touch, json, parse_id, parse_json};
use crate::{Result, StoreError, events};

fn team_from(r: &dyn Columns) -> Result<Team> {
    parse_json(&r.text("doc")?)
}

pub(crate) async fn insert(db: &Db, team: &Team, records: &[Record]) -> Result<()> {
    let sql = "INSERT INTO teams (id, tenant_id, doc, created_at) VALUES ($1, $2, $3, $4)";
    let params = vec![
        Param::text(team.id),
        Param::text(team.tenant_id),
        Param::Text(Some(json(team)?)),
        Param::time(team.created_at),
    ];
    db.transaction(with_events(Step::execute(sql, params), records)).await
}

/// A step and the events it is, for one transaction.
fn with_events(step: Step, records: &[Record]) -> Steps {
    std::iter::once(step).chain(events::steps(records)).collect()
}

/// Writes `records` in `tx`, for a change that happened in it; the events written.
async fn write_events(tx: &mut Tx, records: &[Record]) -> Result<u64> {
    tx.run(&events::steps(records).collect::<Vec<_>>()).await
}

pub(crate) async fn find(db: &Db, tenant: TenantId, id: TeamId) -> Result<Option<Team>> {
    let sql = "SELECT doc FROM teams WHERE tenant_id = $1 AND id = $2";
    db.fetch_optional(sql, &[Param::text(tenant), Param::text(id)], team_from).await
}

pub(crate) async fn list(db: &Db, tenant: TenantId) -> Result<Vec<Team>> {
    db.fetch_all("SELECT doc FROM teams WHERE tenant_id = $1 ORDER BY id", &[Param::text(tenant)], team_from).await
}

pub(crate) async fn update(db: &Db, team: &Team, records: &[Record]) -> Result<()> {
    let params = vec![Param::text(team.tenant_id), Param::text(team.id), Param::Text(Some(json(team)?))];
    let sql = "UPDATE teams SET doc = $3 WHERE tenant_id = $1 AND id = $2";
    db.transaction(with_events(Step::change(sql, params, OnNone::Fail(|| StoreError::NotFound)), records)).await
}

pub(crate) async fn delete(
    db: &Db,
    tenant: TenantId,
    id: TeamId,
    now: DateTime<Utc>,
    records: &[Record],
) -> Result<bool> {
    let records = records.to_vec();
    db.detached(move |db| async move {
        // Clears the selection of every member, whoever they are.
        let _touch = db.touching(Touch::All);
        let mut tx = db.begin().await?;
        let unselect = "UPDATE users SET selected_team_id = NULL, version = version + 1, updated_at = $3 \
                        WHERE tenant_id = $1 AND selected_team_id = $2";
        tx.execute(unselect, &[Param::text(tenant), Param::text(id), Param::time(now)]).await?;
        let deleted = tx
            .execute("DELETE FROM teams WHERE tenant_id = $1 AND id = $2", &[Param::text(tenant), Param::text(id)])
            .await?;
        let events = if deleted == 1 { write_events(&mut tx, &records).await? } else { 0 };
        db.commit(tx, events).await?;
        Ok(deleted == 1)
    })
    .await
}

pub(crate) async fn add_member(
    db: &Db,
    tenant: TenantId,
    team: TeamId,
    user: UserId,
    now: DateTime<Utc>,
    records: &[Record],
) -> Result<()> {
    // The tenant is checked on both sides in the statement itself, so no id from another
    // tenant can be joined to this one.
    let sql = "INSERT INTO team_members (team_id, user_id, tenant_id, created_at) \
               SELECT t.id, u.id, t.tenant_id, $4 FROM teams t, users u \
               WHERE t.tenant_id = $1 AND t.id = $2 AND u.tenant_id = $1 AND u.id = $3 \
               ON CONFLICT (team_id, user_id) DO NOTHING";
    let params = [Param::text(tenant), Param::text(team), Param::text(user), Param::time(now)];
    let records = records.to_vec();
    db.detached(move |db| async move {
        let mut tx = db.begin().await?;
        // The events only with a new membership: adding a member twice changes nothing.
        if tx.execute(sql, &params).await? == 1 {
            let events = write_events(&mut tx, &records).await?;
            return db.commit(tx, events).await;
        }
        let sql = "SELECT 1 FROM team_members WHERE tenant_id = $1 AND team_id = $2 AND user_id = $3";
        let already = tx.exists(sql, &params[..3]).await?;
        tx.commit().await?;
        if already { Ok(()) } else { Err(StoreError::NotFound) }
    })
    .await
}

pub(crate) async fn remove_member(
    db: &Db,
    tenant: TenantId,
    team: TeamId,
    user: UserId,
    now: DateTime<Utc>,
    records: &[Record],
) -> Result<bool> {
    let records = records.to_vec();
    db.detached(move |db| async move {
        let _touch = db.touching(Touch::User(user));
        let mut tx = db.begin().await?;
        let params = [Param::text(tenant), Param::text(team), Param::text(user), Param::time(now)];
        let delete = "DELETE FROM team_members WHERE tenant_id = $1 AND team_id = $2 AND user_id = $3";
        let removed = tx.execute(delete, &params[..3]).await?;
        let unselect = "UPDATE users SET selected_team_id = NULL, version = version + 1, updated_at = $4 \
                        WHERE tenant_id = $1 AND id = $3 AND selected_team_id = $2";
        tx.execute(unselect, &params).await?;
        let events = if removed == 1 { write_events(&mut tx, &records).await? } else { 0 };
        db.commit(tx, events).await?;
        Ok(removed == 1)
    })
    .await
}

pub(crate) async fn list_user_teams(db: &Db, tenant: TenantId, user: UserId) -> Result<Vec<Team>> {
    let sql = "SELECT t.doc FROM teams t JOIN team_members m ON m.team_id = t.id \
               WHERE m.tenant_id = $1 AND m.user_id = $2 ORDER BY t.id";
    db.fetch_all(sql, &[Param::text(tenant), Param::text(user)], team_from).await
}

pub(crate) async fn list_members(db: &Db, tenant: TenantId, team: TeamId) -> Result<Vec<UserId>> {
    let sql = "SELECT user_id FROM team_members WHERE tenant_id = $1 AND team_id = $2 ORDER BY user_id";
    db.fetch_all(sql, &[Param::text(tenant), Param::text(team)], |r| parse_id(&r.text("user_id")?)).await
}
