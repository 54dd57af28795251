//! The outbox and its deliveries. An event is two steps of the transaction of its change: the
//! event, written only when an enabled endpoint of its tenant wants its type, and one delivery
//! per such endpoint, due at once. So the write path pays two index probes when nobody listens,
//! and no later step has to fan events out. Workers claim due deliveries; on PostgreSQL the
//! claim locks with `FOR UPDATE SKIP LOCKED`, so that any number of instances share the work
//! without two taking the same rows; SQLite has one process.

use chrono::{DateTime, Utc};
use tessera_core::TenantId;
use tessera_core::events::{Delivery, DeliveryStatus, DueDelivery, Event, Record, StoredEvent};
use uuid::Uuid;

use crate::activity;
use crate::db::Db;
use crate::sql::{Columns, OnNone, Param, Step, Steps, Touch, from_ms, ms, parse_id};
use crate::webhooks::{ENDPOINT_COLUMNS, endpoint_from};
use crate::{Result, StoreError};

/// The endpoints of tenant `$2` that want events of type `$T` (`"type"`, quoted, found in the
/// JSON list of types; an empty list means every type). The pattern is built in the statement:
/// SQLite prepares a statement again each time a parameter that is a whole `LIKE` pattern is
/// bound, which cost the write path two parses per event.
macro_rules! wanting {
    ($t:literal) => {
        concat!(
            "FROM webhook_endpoints w WHERE w.tenant_id = $2 AND w.enabled ",
            "AND (w.event_types = '[]' OR w.event_types LIKE '%' || $",
            $t,
            " || '%')"
        )
    };
}

const INSERT_EVENT_SQL: &str = concat!(
    "INSERT INTO events (id, tenant_id, type, data, created_at) SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 ",
    wanting!("6"),
    ")"
);

// Only beside the event: on PostgreSQL an endpoint committed between the two statements is
// seen by the second alone, and gets this event no more than it would a moment earlier.
const INSERT_DELIVERIES_SQL: &str = concat!(
    "INSERT INTO webhook_deliveries (endpoint_id, event_id, tenant_id, attempts, status, next_attempt_at, created_at) ",
    "SELECT w.id, $1, $2, 0, 'pending', $3, $3 ",
    wanting!("4"),
    " AND EXISTS (SELECT 1 FROM events WHERE id = $1)"
);

/// The event and its deliveries, as steps of its change's transaction.
pub(crate) fn insert_steps(e: &Event) -> [Step; 2] {
    let wanted = Param::Text(Some(format!("\"{}\"", e.kind)));
    let event = vec![
        Param::text(e.id),
        Param::text(e.tenant_id),
        Param::text(e.kind),
        Param::text(&e.data),
        Param::time(e.created_at),
        wanted.clone(),
    ];
    let deliveries = vec![Param::text(e.id), Param::text(e.tenant_id), Param::time(e.created_at), wanted];
    [Step::execute(INSERT_EVENT_SQL, event).writing_event(), Step::execute(INSERT_DELIVERIES_SQL, deliveries)]
}

/// The steps of every record in `records`: two for an event, one for an activity entry.
pub(crate) fn steps(records: &[Record]) -> impl Iterator<Item = Step> + '_ {
    records.iter().flat_map(|r| match r {
        Record::Event(e) => Vec::from(insert_steps(e)),
        Record::Activity(a) => vec![activity::insert_step(a)],
        Record::Mail(m) => crate::mail::insert_steps(m),
    })
}

/// A change `change_with` writes only if it changes a row.
pub(crate) fn must_change(sql: &'static str, params: Vec<Param>) -> Step {
    Step::change(sql, params, OnNone::Fail(|| StoreError::NotFound))
}

/// One change that touches `touches` (`change`, its first step a `must_change`, and what goes
/// with it), with its records, only if it changes a row: whether it did (a session already
/// revoked, a user already erased: no change, no record).
pub(crate) async fn change_with(db: &Db, touches: Touch, change: Steps, records: &[Record]) -> Result<bool> {
    match db.group_write(touches, None, change.into_iter().chain(steps(records)).collect()).await {
        Ok(()) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

fn event_from(r: &dyn Columns) -> Result<StoredEvent> {
    Ok(StoredEvent {
        id: parse_id(&r.text("id")?)?,
        tenant_id: parse_id(&r.text("tenant_id")?)?,
        kind: r.text("type")?,
        data: r.text("data")?,
        created_at: from_ms(r.int("created_at")?),
    })
}

/// Claims due attempts of enabled endpoints (a disabled endpoint's deliveries wait for it) in
/// one statement that writes first, so that on SQLite no other write can come between the
/// reading and the claiming.
const CLAIM_SQL: &str = "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $3 \
     WHERE (endpoint_id, event_id) IN (SELECT d.endpoint_id, d.event_id FROM webhook_deliveries d \
     JOIN webhook_endpoints w ON w.id = d.endpoint_id \
     WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.enabled ORDER BY d.next_attempt_at LIMIT $2) \
     RETURNING endpoint_id, event_id, attempts";
const CLAIM_LOCKED_SQL: &str = "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $3 \
     WHERE (endpoint_id, event_id) IN (SELECT d.endpoint_id, d.event_id FROM webhook_deliveries d \
     JOIN webhook_endpoints w ON w.id = d.endpoint_id \
     WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.enabled ORDER BY d.next_attempt_at LIMIT $2 \
     FOR UPDATE OF d SKIP LOCKED) \
     RETURNING endpoint_id, event_id, attempts";

/// Claims up to `limit` due deliveries for one attempt each: counts the attempt and moves the
/// next one to `lease_until`, so that no other worker makes the same attempt while this one
/// runs (and a worker that dies mid-attempt leaves the delivery to be retried at `lease_until`).
/// The claim commits before its events and endpoints are read, so that the write lock (SQLite's
/// only one) is held for one statement.
pub(crate) async fn claim(
    db: &Db,
    limit: u32,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<DueDelivery>> {
    let mut claimed = db
        .detached(move |db| async move {
            let mut tx = db.begin().await?;
            let sql = tx.pick(CLAIM_SQL, CLAIM_LOCKED_SQL);
            let params = [Param::time(now), Param::Int(Some(i64::from(limit))), Param::time(lease_until)];
            let claimed = tx
                .fetch_all(sql, &params, |r: &dyn Columns| {
                    Ok((r.text("event_id")?, r.text("endpoint_id")?, r.int("attempts")?))
                })
                .await?;
            tx.commit().await?;
            Ok(claimed)
        })
        .await?;
    // `RETURNING` comes in no order: oldest event first (its ids are ordered by time).
    claimed.sort();
    let mut endpoints = std::collections::HashMap::new();
    let endpoint_sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
    let event_sql = "SELECT id, tenant_id, type, data, created_at FROM events WHERE id = $1";
    let mut due = Vec::with_capacity(claimed.len());
    for (event_id, endpoint_id, attempt) in claimed {
        let endpoint = match endpoints.get(&endpoint_id) {
            Some(found) => Option::clone(found),
            None => {
                let found = db.fetch_optional(&endpoint_sql, &[Param::text(&endpoint_id)], endpoint_from).await?;
                endpoints.insert(endpoint_id, found.clone());
                found
            }
        };
        let event = db.fetch_optional(event_sql, &[Param::text(&event_id)], event_from).await?;
        if let (Some(endpoint), Some(event)) = (endpoint, event) {
            due.push(DueDelivery { endpoint, event, attempt: attempt as u32 });
        }
    }
    Ok(due)
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub status: DeliveryStatus,
    pub response_status: Option<u16>,
    pub error: Option<String>,
    pub attempted_at: DateTime<Utc>,
    /// When the next attempt is due (with `Pending`).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The endpoint answered `410 Gone`: it is disabled.
    pub disable_endpoint: bool,
}

/// Records the outcomes of a round's attempts, in one transaction.
pub(crate) async fn record(db: &Db, attempts: &[Attempted]) -> Result<()> {
    const RECORD_SQL: &str = "UPDATE webhook_deliveries SET status = $3, response_status = $4, error = $5, \
         attempted_at = $6, next_attempt_at = $7 WHERE endpoint_id = $1 AND event_id = $2";
    const DISABLE_SQL: &str = "UPDATE webhook_endpoints SET enabled = FALSE, updated_at = $2 WHERE id = $1";
    let mut steps = Vec::with_capacity(attempts.len());
    for a in attempts {
        let params = vec![
            Param::text(a.endpoint_id),
            Param::text(a.event_id),
            Param::text(a.status.as_str()),
            Param::Int(a.response_status.map(i64::from)),
            Param::Text(a.error.clone()),
            Param::time(a.attempted_at),
            Param::Int(a.next_attempt_at.map(ms)),
        ];
        steps.push(Step::execute(RECORD_SQL, params));
        if a.disable_endpoint {
            steps.push(Step::execute(DISABLE_SQL, vec![Param::text(a.endpoint_id), Param::time(a.attempted_at)]));
        }
    }
    if steps.is_empty() {
        return Ok(());
    }
    db.transaction(steps).await
}

fn delivery_from(r: &dyn Columns) -> Result<Delivery> {
    let status = r.text("status")?;
    Ok(Delivery {
        endpoint_id: parse_id(&r.text("endpoint_id")?)?,
        event_id: parse_id(&r.text("event_id")?)?,
        kind: r.text("type")?,
        attempts: r.int("attempts")? as u32,
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Failed),
        response_status: r.opt_int("response_status")?.and_then(|s| u16::try_from(s).ok()),
        error: r.opt_text("error")?,
        attempted_at: r.opt_int("attempted_at")?.map(from_ms),
        next_attempt_at: r.opt_int("next_attempt_at")?.map(from_ms),
    })
}

/// An endpoint's deliveries, newest first, a page at a time: `before` is the `event_id` the
/// previous page ended with (event ids are ordered by time).
pub(crate) async fn list(
    db: &Db,
    tenant: TenantId,
    endpoint: Uuid,
    before: Option<Uuid>,
    limit: u32,
) -> Result<Vec<Delivery>> {
    let sql = "SELECT d.endpoint_id, d.event_id, e.type, d.attempts, d.status, d.response_status, d.error, \
               d.attempted_at, d.next_attempt_at FROM webhook_deliveries d JOIN events e ON e.id = d.event_id \
               WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND ($3 IS NULL OR d.event_id < $3) \
               ORDER BY d.event_id DESC LIMIT $4";
    let params = [
        Param::text(tenant),
        Param::text(endpoint),
        Param::Text(before.map(|b| b.to_string())),
        Param::Int(Some(i64::from(limit))),
    ];
    db.fetch_all(sql, &params, delivery_from).await
}

/// Queues a new attempt of one event for one endpoint, due now; false when there is no such
/// delivery.
pub(crate) async fn redeliver(
    db: &Db,
    tenant: TenantId,
    endpoint: Uuid,
    event: Uuid,
    now: DateTime<Utc>,
) -> Result<bool> {
    let sql = "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $4 \
               WHERE tenant_id = $1 AND endpoint_id = $2 AND event_id = $3";
    let params = [Param::text(tenant), Param::text(endpoint), Param::text(event), Param::time(now)];
    Ok(db.execute(sql, &params).await? == 1)
}

/// Forgets events (and so their deliveries) older than `before` whose deliveries are all done.
pub(crate) async fn purge(db: &Db, before: DateTime<Utc>) -> Result<u64> {
    let sql = "DELETE FROM events WHERE created_at < $1 AND NOT EXISTS \
               (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id AND d.status = 'pending')";
    db.execute(sql, &[Param::time(before)]).await
}

/// When the oldest delivery still pending was due first, for the metrics.
pub(crate) async fn oldest_undelivered(db: &Db) -> Result<Option<DateTime<Utc>>> {
    let sql = "SELECT MIN(created_at) AS oldest FROM webhook_deliveries WHERE status = 'pending'";
    let oldest = db.fetch_optional(sql, &[], |r: &dyn Columns| r.opt_int("oldest")).await?;
    Ok(oldest.flatten().map(from_ms))
}
