//! The activity trail: entries written as steps of the transaction of the change they record
//! (or alone, for a failed sign-in, which changes nothing), read a page at a time by the user
//! or by the tenant's audit log, and forgotten after the tenant's retention period.
//!
//! An entry is written to `activity_inbox`, which has no index, and moved in batches into
//! `activity`, whose indexes serve the reads (`move_inbox`, run by a background job). A per-user
//! index written on every change cost a third of `PATCH /v1/me`'s throughput on SQLite: each
//! change dirtied one more scattered page. Reads take both tables.

use crate::Result;
use crate::db::Db;
use crate::sql::{Columns, Param, Step, from_ms, parse_id, parse_json};
use chrono::{DateTime, Utc};
use tessera_core::events::{Activity, ActivityFilter, By, first_id_at};
use tessera_core::{TenantId, UserId};

const COLUMNS: &str = "tenant_id, user_id, id, type, actor, ip_address, user_agent, details, created_at";

const INSERT_SQL: &str = "INSERT INTO activity_inbox (tenant_id, user_id, id, type, actor, ip_address, user_agent, \
     details, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Entries one move takes on SQLite: about 3 ms of the write lock, which every user write
/// waits behind meanwhile (a second's worth of entries at once held it for 50 ms and more,
/// the `PATCH` load's p99).
macro_rules! move_chunk {
    () => {
        1000
    };
}
const MOVE_CHUNK: u64 = move_chunk!();

/// Moves entries of the inbox into `activity`. On SQLite, the oldest `MOVE_CHUNK` of them (by
/// rowid: the order they were written in), with the two statements under the one write lock,
/// so that no entry can come between them; PostgreSQL, which makes nobody wait, moves every
/// row its statement deleted, and a concurrent mover skips them.
///
/// SQLite takes the rows unsorted, in the order they were written: a transaction's dirty pages
/// reach the WAL once, at its COMMIT, however often it touches them, so sorting bought no fewer
/// page writes, and the sort itself was half the move's cost (2.9 µs an entry unsorted, 5.5 µs
/// sorted, measured over 100 000 entries of 32 users).
const MOVE_SQLITE: &str = concat!(
    "INSERT INTO activity (tenant_id, user_id, id, type, actor, ip_address, user_agent, details, created_at) ",
    "SELECT tenant_id, user_id, id, type, actor, ip_address, user_agent, details, created_at FROM activity_inbox ",
    "WHERE rowid < (SELECT MIN(rowid) FROM activity_inbox) + ",
    move_chunk!(),
    "; DELETE FROM activity_inbox WHERE rowid < (SELECT MIN(rowid) FROM activity_inbox) + ",
    move_chunk!()
);
const MOVE_POSTGRES: &str = "WITH moved AS (DELETE FROM activity_inbox RETURNING tenant_id, user_id, id, type, \
     actor, ip_address, user_agent, details, created_at) INSERT INTO activity (tenant_id, user_id, id, type, actor, \
     ip_address, user_agent, details, created_at) SELECT tenant_id, user_id, id, type, actor, ip_address, user_agent, \
     details, created_at FROM moved ORDER BY tenant_id, user_id, id ON CONFLICT DO NOTHING";

pub(crate) fn insert_step(a: &Activity) -> Step {
    let params = vec![
        Param::text(a.tenant_id),
        Param::text(a.user_id),
        Param::text(a.id),
        Param::text(&a.kind),
        Param::text(a.by.stored()),
        Param::Text(a.ip_address.clone()),
        Param::Text(a.user_agent.clone()),
        Param::text(&a.details),
        Param::time(a.created_at),
    ];
    Step::execute(INSERT_SQL, params)
}

/// An erased user's entries go with it: they hold where it signed in from. The erasure's own
/// entry is written after these steps.
pub(crate) fn erase_steps(tenant: TenantId, user: UserId) -> [Step; 2] {
    let params = || vec![Param::text(tenant), Param::text(user)];
    [
        Step::execute("DELETE FROM activity WHERE tenant_id = $1 AND user_id = $2", params()),
        Step::execute("DELETE FROM activity_inbox WHERE tenant_id = $1 AND user_id = $2", params()),
    ]
}

/// Moves the inbox's entries into `activity`, a transaction per move, until a move finds
/// less than a chunk's worth.
pub(crate) async fn move_inbox(db: &Db) -> Result<()> {
    db.detached(|db| async move {
        loop {
            let mut tx = db.begin().await?;
            let sql = tx.pick(MOVE_SQLITE, MOVE_POSTGRES);
            // Rows inserted plus rows deleted, on SQLite; rows inserted, on PostgreSQL.
            let changed = tx.execute(sql, &[]).await?;
            tx.commit().await?;
            if changed < MOVE_CHUNK {
                return Ok(());
            }
        }
    })
    .await
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
/// read walks one index of `activity` (the user's, or the tenant's) from its newest end, beside
/// the few entries still in the inbox; the statement names only the filters given, so that
/// PostgreSQL plans it for them.
pub(crate) async fn list(db: &Db, tenant: TenantId, f: &ActivityFilter) -> Result<Vec<Activity>> {
    // The older of the two upper bounds: the page's cursor and the end of the time range.
    let until = f.until.map(|t| first_id_at(t + chrono::Duration::milliseconds(1)));
    let before = match (f.before, until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut params = vec![Param::text(tenant)];
    let mut conditions = String::from("tenant_id = $1");
    let mut and = |condition: &str, param: Param| {
        params.push(param);
        conditions.push_str(&format!(" AND {condition} ${}", params.len()));
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
    let limit = params.len();
    // Each half ordered and limited on its own, so that `activity`'s is an index walk.
    let sql = format!(
        "SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM activity WHERE {conditions} ORDER BY id DESC LIMIT ${limit}) a \
         UNION ALL SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM activity_inbox WHERE {conditions} \
         ORDER BY id DESC LIMIT ${limit}) i ORDER BY id DESC LIMIT ${limit}"
    );
    db.fetch_all(&sql, &params, activity_from).await
}

/// Forgets the tenant's entries made before `before`.
pub(crate) async fn purge(db: &Db, tenant: TenantId, before: DateTime<Utc>) -> Result<u64> {
    let sql = "DELETE FROM activity WHERE tenant_id = $1 AND id < $2";
    db.execute(sql, &[Param::text(tenant), Param::text(first_id_at(before))]).await
}
