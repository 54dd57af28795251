//! The outbox and its deliveries. An event is a `Step` of the transaction of its change. The
//! workers then dispatch it (one delivery row per subscribed endpoint) and claim due
//! deliveries. On PostgreSQL both claims lock with `FOR UPDATE SKIP LOCKED`, so that any number
//! of instances share the work without two taking the same rows; SQLite has one process.

use chrono::{DateTime, Utc};
use tessera_core::TenantId;
use tessera_core::events::{Delivery, DeliveryStatus, DueDelivery, Event, StoredEvent};
use uuid::Uuid;

use crate::Result;
use crate::db::Db;
use crate::sql::{Columns, Param, Step, from_ms, json, ms, parse_id, parse_json};
use crate::webhooks::{ENDPOINT_COLUMNS, endpoint_from};

const INSERT_EVENT_SQL: &str =
    "INSERT INTO events (id, tenant_id, type, data, created_at, dispatched_at) VALUES ($1, $2, $3, $4, $5, NULL)";

/// The event as a step of its change's transaction.
pub(crate) fn insert_step(e: &Event) -> Result<Step> {
    let params = vec![
        Param::text(e.id),
        Param::text(e.tenant_id),
        Param::text(e.kind),
        Param::Text(Some(json(&e.data)?)),
        Param::time(e.created_at),
    ];
    Ok(Step::execute(INSERT_EVENT_SQL, params))
}

fn event_from(r: &dyn Columns) -> Result<StoredEvent> {
    Ok(StoredEvent {
        id: parse_id(&r.text("id")?)?,
        tenant_id: parse_id(&r.text("tenant_id")?)?,
        kind: r.text("type")?,
        data: parse_json(&r.text("data")?)?,
        created_at: from_ms(r.int("created_at")?),
    })
}

const UNDISPATCHED_SQL: &str = "SELECT id, tenant_id, type, data, created_at FROM events \
     WHERE dispatched_at IS NULL ORDER BY created_at LIMIT $1";
const UNDISPATCHED_LOCKED_SQL: &str = "SELECT id, tenant_id, type, data, created_at FROM events \
     WHERE dispatched_at IS NULL ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED";

/// Turns up to `limit` undispatched events into deliveries, one per endpoint of the tenant that
/// wants the type, due now; returns how many events it dispatched.
pub(crate) async fn dispatch(db: &Db, limit: u32, now: DateTime<Utc>) -> Result<u64> {
    db.detached(move |db| async move {
        let mut tx = db.begin().await?;
        let sql = tx.pick(UNDISPATCHED_SQL, UNDISPATCHED_LOCKED_SQL);
        let events = tx.fetch_all(sql, &[Param::Int(Some(i64::from(limit)))], event_from).await?;
        let endpoints_sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1");
        let mut endpoints: Vec<(TenantId, Vec<tessera_core::events::WebhookEndpoint>)> = Vec::new();
        for e in &events {
            let at = match endpoints.iter().position(|(t, _)| *t == e.tenant_id) {
                Some(at) => at,
                None => {
                    let of_tenant = tx.fetch_all(&endpoints_sql, &[Param::text(e.tenant_id)], endpoint_from).await?;
                    endpoints.push((e.tenant_id, of_tenant));
                    endpoints.len() - 1
                }
            };
            for endpoint in endpoints[at].1.iter().filter(|w| w.wants(&e.kind)) {
                let insert = "INSERT INTO webhook_deliveries (endpoint_id, event_id, tenant_id, attempts, status, \
                              next_attempt_at, created_at) VALUES ($1, $2, $3, 0, 'pending', $4, $4)";
                let params = [Param::text(endpoint.id), Param::text(e.id), Param::text(e.tenant_id), Param::time(now)];
                tx.execute(insert, &params).await?;
            }
            tx.execute("UPDATE events SET dispatched_at = $2 WHERE id = $1", &[Param::text(e.id), Param::time(now)])
                .await?;
        }
        tx.commit().await?;
        Ok(events.len() as u64)
    })
    .await
}

const DUE_SQL: &str = "SELECT endpoint_id, event_id, attempts FROM webhook_deliveries \
     WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2";
const DUE_LOCKED_SQL: &str = "SELECT endpoint_id, event_id, attempts FROM webhook_deliveries \
     WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED";

/// Claims up to `limit` due deliveries for one attempt each: counts the attempt and moves the
/// next one to `lease_until`, so that no other worker makes the same attempt while this one
/// runs (and a worker that dies mid-attempt leaves the delivery to be retried at `lease_until`).
pub(crate) async fn claim(
    db: &Db,
    limit: u32,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<DueDelivery>> {
    db.detached(move |db| async move {
        let mut tx = db.begin().await?;
        let sql = tx.pick(DUE_SQL, DUE_LOCKED_SQL);
        let due = tx
            .fetch_all(sql, &[Param::time(now), Param::Int(Some(i64::from(limit)))], |r: &dyn Columns| {
                Ok((r.text("endpoint_id")?, r.text("event_id")?, r.int("attempts")?))
            })
            .await?;
        let mut claimed = Vec::with_capacity(due.len());
        let endpoint_sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
        for (endpoint_id, event_id, attempts) in due {
            let mark = "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $3 \
                        WHERE endpoint_id = $1 AND event_id = $2";
            let params = [Param::text(&endpoint_id), Param::text(&event_id), Param::time(lease_until)];
            tx.execute(mark, &params).await?;
            let endpoint = tx.fetch_optional(&endpoint_sql, &[Param::text(&endpoint_id)], endpoint_from).await?;
            let event = tx
                .fetch_optional(
                    "SELECT id, tenant_id, type, data, created_at FROM events WHERE id = $1",
                    &[Param::text(&event_id)],
                    event_from,
                )
                .await?;
            if let (Some(endpoint), Some(event)) = (endpoint, event) {
                claimed.push(DueDelivery { endpoint, event, attempt: attempts as u32 + 1 });
            }
        }
        tx.commit().await?;
        Ok(claimed)
    })
    .await
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

pub(crate) async fn record(db: &Db, a: &Attempted) -> Result<()> {
    let sql = "UPDATE webhook_deliveries SET status = $3, response_status = $4, error = $5, attempted_at = $6, \
               next_attempt_at = $7 WHERE endpoint_id = $1 AND event_id = $2";
    let params = [
        Param::text(a.endpoint_id),
        Param::text(a.event_id),
        Param::text(a.status.as_str()),
        Param::Int(a.response_status.map(i64::from)),
        Param::Text(a.error.clone()),
        Param::time(a.attempted_at),
        Param::Int(a.next_attempt_at.map(ms)),
    ];
    db.execute(sql, &params).await?;
    if a.disable_endpoint {
        let sql = "UPDATE webhook_endpoints SET enabled = FALSE, updated_at = $2 WHERE id = $1";
        db.execute(sql, &[Param::text(a.endpoint_id), Param::time(a.attempted_at)]).await?;
    }
    Ok(())
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
    let sql = "DELETE FROM events WHERE created_at < $1 AND dispatched_at IS NOT NULL AND NOT EXISTS \
               (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id AND d.status = 'pending')";
    db.execute(sql, &[Param::time(before)]).await
}

/// The age of the oldest event not yet delivered everywhere it is due, for the metrics.
pub(crate) async fn oldest_undelivered(db: &Db) -> Result<Option<DateTime<Utc>>> {
    let sql = "SELECT MIN(e.created_at) AS oldest FROM events e WHERE e.dispatched_at IS NULL OR EXISTS \
               (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')";
    let oldest = db.fetch_optional(sql, &[], |r: &dyn Columns| r.opt_int("oldest")).await?;
    Ok(oldest.flatten().map(from_ms))
}
