//! Events out: the events of user changes (written in the change's transaction by the
//! callers), the tenant's webhook endpoints, and delivery, at least once, signed per Standard
//! Webhooks afresh for each attempt, retried on a schedule, from any number of instances.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tessera_core::events::{
    Activity, By, Delivery, DeliveryStatus, DueDelivery, EVENT_TYPES, Event, Record, WebhookEndpoint,
};
use tessera_core::user::{Session, Team, User};
use tessera_core::{DomainError, FieldError, SessionId, TenantId, UserId};
use tessera_store::Attempted;
use uuid::Uuid;

use crate::{ClientInfo, Result, Service, store_err};

/// Renders a user as the server sees it, as JSON text, for event payloads: the binary passes
/// the API's own server view, so that an event shows a user exactly as `GET /v1/users/{id}`
/// does.
pub type RenderUser = fn(&User, &str, DateTime<Utc>) -> String;

/// How long a claimed attempt is held beyond its time-out before another worker may make it
/// again: the time to record its outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(15);
/// The most of an answer that is read.
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// How long a rotated-out secret keeps signing beside the new one.
const PREVIOUS_SECRET_HOURS: i64 = 24;
/// Deliveries attempted per round of the worker.
const BATCH: u32 = 64;

/// How soon an endpoint added on another instance is seen by this one's writes.
pub(crate) const LISTENERS_TTL: Duration = Duration::from_secs(5);

/// The event types a tenant's enabled endpoints want.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    /// Some endpoint wants every type.
    all: bool,
    kinds: Vec<String>,
}

impl Listeners {
    fn want(&self, kind: &str) -> bool {
        self.all || self.kinds.iter().any(|k| k == kind)
    }
}

/// Standard Webhooks' schedule: seconds after each failed attempt before the next.
pub const DEFAULT_RETRY_SCHEDULE: &[u64] = &[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];

/// This instance's delivery attempts by outcome, since it started.
#[derive(Debug, Default)]
pub struct DeliveryCounts {
    pub delivered: std::sync::atomic::AtomicU64,
    /// Failed, with another attempt to come.
    pub retrying: std::sync::atomic::AtomicU64,
    /// Failed for good (the schedule ran out, or `410 Gone`).
    pub failed: std::sync::atomic::AtomicU64,
}

/// What one round of the worker did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub failed: usize,
}

impl Round {
    /// Whether the round took a whole batch, so that more may be waiting.
    pub fn is_full(&self) -> bool {
        self.delivered + self.failed >= BATCH as usize
    }
}

impl Service {
    /// `make()`, as the records of a write, if an endpoint of the tenant may want `kind`; none
    /// otherwise, so that a write nobody listens to costs nothing more. The write's own
    /// transaction still decides which endpoints get it.
    pub(crate) async fn events<F: FnOnce() -> Event>(
        &self,
        tenant: TenantId,
        kind: &str,
        make: F,
    ) -> Result<Vec<Record>> {
        let store = std::sync::Arc::clone(&self.store);
        let listeners = self
            .listeners
            .try_get_with(tenant, async move {
                let endpoints = store.list_webhooks(tenant).await.map_err(store_err)?;
                let enabled = endpoints.iter().filter(|w| w.enabled);
                let mut l = Listeners::default();
                for w in enabled {
                    l.all |= w.event_types.is_empty();
                    l.kinds.extend(w.event_types.iter().cloned());
                }
                Ok::<_, DomainError>(std::sync::Arc::new(l))
            })
            .await
            .map_err(|e| crate::unshared(&e))?;
        Ok(if listeners.want(kind) { vec![Record::Event(make())] } else { Vec::new() })
    }

    /// The event `kind` about `user`, for the caller to write with the change:
    /// `{"user": …}`, with `"changed_fields": […]` when given. Composed as text, so that the
    /// user is serialised once, on the write path.
    pub(crate) fn user_event(
        &self,
        kind: &'static str,
        user: &User,
        changed_fields: Option<&[&str]>,
        now: DateTime<Utc>,
    ) -> Event {
        let rendered = (self.config.render_user)(user, &self.config.public_url, now);
        let data = match changed_fields {
            Some(fields) => format!(r#"{{"user":{rendered},"changed_fields":{}}}"#, json!(fields)),
            None => format!(r#"{{"user":{rendered}}}"#),
        };
        Event::new(user.tenant_id, kind, data, now)
    }

    /// The records of a user just created by `by` (from `client`, when it signed itself up):
    /// its `user.created` and the first entry of its trail.
    pub(crate) async fn user_created(&self, user: &User, by: By, client: Option<&ClientInfo>) -> Result<Vec<Record>> {
        let now = user.created_at;
        let mut records =
            self.events(user.tenant_id, "user.created", || self.user_event("user.created", user, None, now)).await?;
        let entry = Activity::new(user.tenant_id, user.id, "user.created", by, now)
            .with_details(json!({"anonymous": user.is_anonymous}))
            .from_client(client.and_then(|c| c.ip_address.as_deref()), client.and_then(|c| c.user_agent.as_deref()));
        records.push(Record::Activity(entry));
        Ok(records)
    }

    /// The records of a change of `changed` fields of `user` by `by`: its `user.updated` and
    /// the entry of its trail, both naming the fields, never their values.
    pub(crate) async fn user_updated(
        &self,
        user: &User,
        changed: &[&str],
        by: By,
        now: DateTime<Utc>,
    ) -> Result<Vec<Record>> {
        let mut records = self
            .events(user.tenant_id, "user.updated", || self.user_event("user.updated", user, Some(changed), now))
            .await?;
        let entry = Activity::new(user.tenant_id, user.id, "user.updated", by, now);
        records.push(Record::Activity(entry.with_details(json!({ "fields": changed }))));
        Ok(records)
    }

    /// An event about a team, with the team as stored (what the server API shows).
    pub(crate) fn team_event(&self, kind: &'static str, team: &Team) -> Event {
        let data = json!({ "team": serde_json::to_value(team).unwrap_or_default() });
        Event::new(team.tenant_id, kind, data.to_string(), self.now())
    }

    /// The records of a change to something of a user's other than the user row (a linked
    /// provider, a passkey): the event `kind`, whose data is the user beside `key: value`, and
    /// its entry in the user's trail with `key: value` as details.
    pub(crate) async fn user_records(
        &self,
        kind: &'static str,
        user: &User,
        key: &str,
        value: Value,
        now: DateTime<Utc>,
    ) -> Result<Vec<Record>> {
        let mut records = self
            .events(user.tenant_id, kind, || {
                let rendered = (self.config.render_user)(user, &self.config.public_url, now);
                let key = Value::from(key);
                Event::new(user.tenant_id, kind, format!(r#"{{"user":{rendered},{key}:{value}}}"#), now)
            })
            .await?;
        let entry = Activity::new(user.tenant_id, user.id, kind, By::User, now).with_details(json!({ key: value }));
        records.push(Record::Activity(entry));
        Ok(records)
    }

    /// The records of a session just started by `method` (`password`, `anonymous`,
    /// `authorization_code`, …): its `session.created`, and the sign-in in the user's trail.
    pub(crate) async fn session_started(&self, s: &Session, method: &str, now: DateTime<Utc>) -> Result<Vec<Record>> {
        let mut records = self
            .events(s.tenant_id, "session.created", || {
                let session = json!({
                    "id": s.id, "user_id": s.user_id, "method": method, "client_id": s.client_id,
                    "ip_address": s.ip_address, "user_agent": s.user_agent, "created_at": s.created_at,
                    "expires_at": s.expires_at,
                });
                Event::new(s.tenant_id, "session.created", json!({ "session": session }).to_string(), now)
            })
            .await?;
        let entry = Activity::new(s.tenant_id, s.user_id, "session.created", By::User, now)
            .with_details(json!({"session_id": s.id, "method": method, "client_id": s.client_id}))
            .from_client(s.ip_address.as_deref(), s.user_agent.as_deref());
        records.push(Record::Activity(entry));
        Ok(records)
    }

    /// The records of a session ended by `by`: its `session.revoked`, and the entry in the
    /// user's trail.
    pub(crate) async fn session_ended(
        &self,
        tenant: TenantId,
        user: UserId,
        id: SessionId,
        by: By,
        now: DateTime<Utc>,
    ) -> Result<Vec<Record>> {
        let data = || json!({"session": {"id": id, "user_id": user}}).to_string();
        let mut records =
            self.events(tenant, "session.revoked", || Event::new(tenant, "session.revoked", data(), now)).await?;
        let entry = Activity::new(tenant, user, "session.revoked", by, now).with_details(json!({"session_id": id}));
        records.push(Record::Activity(entry));
        Ok(records)
    }

    /// The user's live sessions but `except`: those a revocation of them all ends.
    pub(crate) async fn live_sessions_but(
        &self,
        tenant: TenantId,
        user: UserId,
        except: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>> {
        let live = self.store.list_sessions(tenant, user, now).await.map_err(store_err)?;
        Ok(live.into_iter().map(|s| s.id).filter(|id| Some(*id) != except).collect())
    }

    pub async fn create_webhook(&self, tenant_id: TenantId, body: &Map<String, Value>) -> Result<WebhookEndpoint> {
        let now = self.now();
        let mut endpoint = WebhookEndpoint {
            id: Uuid::now_v7(),
            tenant_id,
            url: String::new(),
            event_types: Vec::new(),
            description: None,
            enabled: true,
            secret: new_secret(),
            previous_secret: None,
            previous_secret_until: None,
            created_at: now,
            updated_at: now,
        };
        if !body.contains_key("url") {
            return Err(DomainError::field("url", "required", "the endpoint's URL is required"));
        }
        apply(&mut endpoint, body, &["url", "event_types", "description"])?;
        self.store.insert_webhook(&endpoint).await.map_err(store_err)?;
        self.listeners.invalidate(&tenant_id).await;
        Ok(endpoint)
    }

    pub async fn list_webhooks(&self, tenant_id: TenantId) -> Result<Vec<WebhookEndpoint>> {
        self.store.list_webhooks(tenant_id).await.map_err(store_err)
    }

    pub async fn get_webhook(&self, tenant_id: TenantId, id: Uuid) -> Result<WebhookEndpoint> {
        self.store.find_webhook(tenant_id, id).await.map_err(store_err)?.ok_or(DomainError::NotFound("webhook"))
    }

    pub async fn update_webhook(
        &self,
        tenant_id: TenantId,
        id: Uuid,
        body: &Map<String, Value>,
    ) -> Result<WebhookEndpoint> {
        let mut endpoint = self.get_webhook(tenant_id, id).await?;
        apply(&mut endpoint, body, &["url", "event_types", "description", "enabled"])?;
        endpoint.updated_at = self.now();
        self.store.update_webhook(&endpoint).await.map_err(store_err)?;
        self.listeners.invalidate(&tenant_id).await;
        Ok(endpoint)
    }

    pub async fn delete_webhook(&self, tenant_id: TenantId, id: Uuid) -> Result<()> {
        if self.store.delete_webhook(tenant_id, id).await.map_err(store_err)? {
            self.listeners.invalidate(&tenant_id).await;
            Ok(())
        } else {
            Err(DomainError::NotFound("webhook"))
        }
    }

    /// A new secret; the old one keeps signing beside it for a day, so receivers can switch.
    pub async fn rotate_webhook_secret(&self, tenant_id: TenantId, id: Uuid) -> Result<WebhookEndpoint> {
        let mut endpoint = self.get_webhook(tenant_id, id).await?;
        let now = self.now();
        endpoint.previous_secret = Some(std::mem::replace(&mut endpoint.secret, new_secret()));
        endpoint.previous_secret_until = Some(now + chrono::Duration::hours(PREVIOUS_SECRET_HOURS));
        endpoint.updated_at = now;
        self.store.update_webhook(&endpoint).await.map_err(store_err)?;
        Ok(endpoint)
    }

    pub async fn list_deliveries(
        &self,
        tenant_id: TenantId,
        id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        self.get_webhook(tenant_id, id).await?;
        self.store.list_deliveries(tenant_id, id, before, limit).await.map_err(store_err)
    }

    pub async fn redeliver(&self, tenant_id: TenantId, id: Uuid, event: Uuid) -> Result<()> {
        if self.store.redeliver(tenant_id, id, event, self.now()).await.map_err(store_err)? {
            Ok(())
        } else {
            Err(DomainError::NotFound("delivery"))
        }
    }

    /// One round of the delivery worker: the attempts that are due, made concurrently. Runs on
    /// the background worker, never on a request.
    pub async fn deliver_due(&self) -> Result<Round> {
        let now = self.now();
        let lease = now + chrono::Duration::from_std(self.config.webhook_timeout + LEASE_MARGIN).unwrap_or_default();
        let due = self.store.claim_deliveries(BATCH, now, lease).await.map_err(store_err)?;
        let attempts = due.into_iter().map(|d| self.attempt(d));
        let results = futures_util::future::join_all(attempts).await;
        let mut round = Round::default();
        use std::sync::atomic::Ordering::Relaxed;
        for a in &results {
            let counter = match a.status {
                DeliveryStatus::Delivered => &self.delivery_counts.delivered,
                DeliveryStatus::Pending => &self.delivery_counts.retrying,
                DeliveryStatus::Failed => &self.delivery_counts.failed,
            };
            counter.fetch_add(1, Relaxed);
            match a.status {
                DeliveryStatus::Delivered => round.delivered += 1,
                _ => round.failed += 1,
            }
        }
        self.store.record_attempts(&results).await.map_err(store_err)?;
        Ok(round)
    }

    async fn attempt(&self, d: DueDelivery) -> Attempted {
        let now = self.now();
        // The stored payload goes in as it was written: it is JSON text already.
        let body = format!(
            r#"{{"type":{},"timestamp":{},"data":{}}}"#,
            json!(d.event.kind),
            json!(d.event.created_at),
            d.event.data
        )
        .into_bytes();
        let id = d.event.id.to_string();
        let timestamp = now.timestamp();
        let signature = d
            .endpoint
            .signing_secrets(now)
            .map(|s| crate::hook::sign(s, &id, timestamp, &body))
            .collect::<Vec<_>>()
            .join(" ");
        let request = Request {
            http: self.webhook_http.clone(),
            url: d.endpoint.url.clone(),
            id,
            timestamp,
            signature,
            body,
            timeout: self.config.webhook_timeout,
        };
        // On the jobs' own thread when there is one: the HTTP work is most of a delivery's.
        let outcome = match &self.config.background {
            Some(jobs) => jobs.spawn(request.send()).await.unwrap_or_else(|_| Err("the attempt was cut off".into())),
            None => request.send().await,
        };
        let schedule = &self.config.webhook_retry_schedule;
        let next = |retry_after: Option<u64>| {
            schedule.get(d.attempt as usize).map(|wait| {
                let wait = with_jitter(*wait).max(retry_after.unwrap_or(0) as i64 * 1000);
                now + chrono::Duration::milliseconds(wait)
            })
        };
        let (status, response_status, error, next_attempt_at, disable) = match outcome {
            Ok((code, _)) if (200..300).contains(&code) => (DeliveryStatus::Delivered, Some(code), None, None, false),
            Ok((410, _)) => {
                (DeliveryStatus::Failed, Some(410), Some("410 Gone: the endpoint is disabled".into()), None, true)
            }
            Ok((code, retry_after)) => {
                let next = next(retry_after);
                let status = if next.is_some() { DeliveryStatus::Pending } else { DeliveryStatus::Failed };
                (status, Some(code), Some(format!("answered {code}")), next, false)
            }
            Err(why) => {
                let next = next(None);
                let status = if next.is_some() { DeliveryStatus::Pending } else { DeliveryStatus::Failed };
                (status, None, Some(why), next, false)
            }
        };
        Attempted {
            endpoint_id: d.endpoint.id,
            event_id: d.event.id,
            status,
            response_status,
            error,
            attempted_at: now,
            next_attempt_at,
            disable_endpoint: disable,
        }
    }

    /// Forgets delivered events older than the retention.
    pub async fn purge_events(&self) -> Result<u64> {
        let before = self.now() - chrono::Duration::seconds(self.config.event_retention_seconds);
        self.store.purge_events(before).await.map_err(store_err)
    }

    /// How long the oldest undelivered event has waited, for the metrics.
    pub async fn oldest_undelivered_age(&self) -> Result<Option<chrono::Duration>> {
        let oldest = self.store.oldest_undelivered_event().await.map_err(store_err)?;
        Ok(oldest.map(|t| self.now() - t))
    }
}

/// One attempt's request, owned, so that it can run on the jobs' thread.
struct Request {
    http: crate::outbound::Outbound,
    url: String,
    id: String,
    timestamp: i64,
    signature: String,
    body: Vec<u8>,
    timeout: Duration,
}

impl Request {
    /// The endpoint's status and `Retry-After` (seconds), or why there is none.
    async fn send(self) -> std::result::Result<(u16, Option<u64>), String> {
        let request = match self.http.post(&self.url) {
            Err(crate::outbound::Refused::PrivateTarget(_)) => {
                return Err("the endpoint's address is not a public one".to_owned());
            }
            Err(e) => return Err(e.to_string()),
            Ok(request) => request,
        };
        let sent = request
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", self.timestamp.to_string())
            .header("webhook-signature", self.signature)
            .body(self.body)
            .send()
            .await;
        match sent {
            Ok(mut res) => {
                let status = res.status();
                let retry_after = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                // Read (a bounded part of) the answer, so the connection can be reused.
                let mut read = 0;
                while let Ok(Some(chunk)) = res.chunk().await {
                    read += chunk.len();
                    if read > MAX_ANSWER_BYTES {
                        break;
                    }
                }
                Ok((status.as_u16(), retry_after))
            }
            Err(e) if e.is_timeout() => Err("the endpoint did not answer in time".to_owned()),
            Err(e) if crate::outbound::refused_in(&e) => Err("the endpoint's address is not a public one".to_owned()),
            Err(_) => Err("the endpoint could not be reached".to_owned()),
        }
    }
}

/// Up to 10 % either way, so that retries after one outage do not all arrive at once.
fn with_jitter(seconds: u64) -> i64 {
    let ms = seconds as i64 * 1000;
    if ms == 0 {
        return 0;
    }
    let mut b = [0u8; 2];
    tessera_auth::secret::fill_random(&mut b);
    let unit = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX);
    ms + ((unit * 2.0 - 1.0) * ms as f64 * 0.1) as i64
}

/// `whsec_` and 24 random bytes in base64, as Standard Webhooks' secrets look.
/// The records of an erasure by `by`: `user.deleted` with `erased: true` (for any endpoint that
/// wants it: the write decides, as erasures are rare), and the one entry of the user's trail
/// that outlives it.
pub(crate) fn erasure(tenant: TenantId, user: UserId, by: By, now: DateTime<Utc>) -> Vec<Record> {
    let data = json!({"user": {"id": user}, "erased": true}).to_string();
    let entry = Activity::new(tenant, user, "user.deleted", by, now).with_details(json!({"erased": true}));
    vec![Record::Event(Event::new(tenant, "user.deleted", data, now)), Record::Activity(entry)]
}

fn new_secret() -> String {
    let mut key = [0u8; 24];
    tessera_auth::secret::fill_random(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// Sets the fields of `body` (all of them `allowed`) on an endpoint, naming every bad one.
fn apply(endpoint: &mut WebhookEndpoint, body: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
    let mut errors = Vec::new();
    for (k, v) in body {
        match (k.as_str(), v) {
            (k, _) if !allowed.contains(&k) => errors.push(FieldError::new(k, "unknown_field", "no such field")),
            ("url", Value::String(u)) => match crate::outbound::check_url(u, true) {
                Ok(_) if u.len() <= 2048 => endpoint.url = u.clone(),
                _ => errors.push(FieldError::new(
                    "url",
                    "invalid_url",
                    "must be an http(s) URL of at most 2048 characters",
                )),
            },
            ("event_types", Value::Array(types)) => {
                let mut kinds = Vec::new();
                for t in types {
                    match t.as_str().filter(|t| EVENT_TYPES.contains(t)) {
                        Some(t) if !kinds.iter().any(|k: &String| k == t) => kinds.push(t.to_owned()),
                        Some(_) => {}
                        None => {
                            errors.push(FieldError::new(
                                "event_types",
                                "invalid_choice",
                                "names an unknown event type",
                            ));
                            break;
                        }
                    }
                }
                endpoint.event_types = kinds;
            }
            ("event_types", Value::Null) => endpoint.event_types.clear(),
            ("description", Value::Null) => endpoint.description = None,
            ("description", Value::String(d)) if d.chars().count() <= 500 => endpoint.description = Some(d.clone()),
            ("description", Value::String(_)) => {
                errors.push(FieldError::new("description", "too_long", "must be at most 500 characters"))
            }
            ("enabled", Value::Bool(b)) => endpoint.enabled = *b,
            (k, _) => errors.push(FieldError::new(k, "invalid_type", "has the wrong type")),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(DomainError::Validation(errors)) }
}
