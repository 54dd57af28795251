//! Events: what Tessera tells a tenant's applications about changes, and the webhook
//! endpoints they are delivered to.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::ids::TenantId;

/// Every event type, by its wire name.
pub const EVENT_TYPES: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deleted",
    "user.deletion_cancelled",
    "user.suspended",
    "user.unsuspended",
    "user.password_changed",
    "user.mfa_enabled",
    "user.mfa_disabled",
    "session.created",
    "session.revoked",
    "team.created",
    "team.updated",
    "team.deleted",
    "team.member_added",
    "team.member_removed",
];

/// A change, as written to the outbox in the change's own transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// A UUIDv7: ordered by time, and the `webhook-id` of every delivery of it.
    pub id: Uuid,
    pub tenant_id: TenantId,
    /// One of `EVENT_TYPES`.
    pub kind: &'static str,
    /// JSON text: the server view of the object the event is about, never secrets. Text, so
    /// that it is serialised once, on the write path.
    pub data: String,
    pub created_at: DateTime<Utc>,
}

impl Event {
    pub fn new(tenant_id: TenantId, kind: &'static str, data: String, now: DateTime<Utc>) -> Self {
        debug_assert!(EVENT_TYPES.contains(&kind), "{kind} is not an event type");
        Self { id: Uuid::now_v7(), tenant_id, kind, data, created_at: now }
    }
}

/// Where a tenant wants its events: a URL, the types it wants (none means all), and the
/// secret deliveries are signed with.
#[derive(Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub secret: String,
    /// After a rotation, the secret that signs beside the new one until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpoint {
    pub fn wants(&self, kind: &str) -> bool {
        self.enabled && (self.event_types.is_empty() || self.event_types.iter().any(|t| t == kind))
    }

    /// The secrets each delivery is signed with at `now`: the current one, and the previous one
    /// while it still signs.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> impl Iterator<Item = &str> {
        let previous =
            self.previous_secret.as_deref().filter(|_| self.previous_secret_until.is_some_and(|until| until > now));
        std::iter::once(self.secret.as_str()).chain(previous)
    }
}

impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed].into_iter().find(|d| d.as_str() == s)
    }
}

/// One event for one endpoint: where it stands, and how its last attempt went.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub kind: String,
    /// Attempts made so far (claimed, counting one under way).
    pub attempts: u32,
    pub status: DeliveryStatus,
    pub response_status: Option<u16>,
    pub error: Option<String>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A delivery claimed for an attempt: the event, the endpoint, and which attempt this is.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub endpoint: WebhookEndpoint,
    pub event: StoredEvent,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// An event as read back from the outbox (its type is then just text).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub kind: String,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}
