//! Events: what Tessera tells a tenant's applications about changes, and the webhook
//! endpoints they are delivered to.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::ids::{TenantId, UserId};

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
    "user.email_added",
    "user.email_verified",
    "user.email_removed",
    "user.primary_email_changed",
    "user.password_reset",
    "user.provider_linked",
    "user.provider_unlinked",
    "user.passkey_added",
    "user.passkey_removed",
    "session.created",
    "session.revoked",
    "team.created",
    "team.updated",
    "team.deleted",
    "team.member_added",
    "team.member_removed",
];

/// What a write records beside its change, in the change's own transaction: they exist if
/// and only if the change does.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// For the tenant's webhooks (the outbox).
    Event(Event),
    /// For the user's activity trail and the tenant's audit log.
    Activity(Activity),
    /// A message for the mail outbox, with the token it carries.
    Mail(crate::mail::Mail),
}

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

/// The one activity type that is no event: a failed sign-in, which changes nothing.
pub const SIGN_IN_FAILED: &str = "sign_in.failed";

/// Every type of activity entry: the event types of changes to an account and its sessions
/// (not the teams'), and failed sign-ins.
pub fn activity_types() -> impl Iterator<Item = &'static str> {
    EVENT_TYPES.iter().copied().filter(|t| !t.starts_with("team.")).chain([SIGN_IN_FAILED])
}

/// Who did what an activity entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The user, through a self-service surface (or signing in).
    User,
    /// The tenant's backend, with the server key.
    Server,
    /// Tessera itself: a scheduled erasure.
    System,
    /// An administrator of the tenant, from the console.
    Admin(UserId),
}

impl By {
    /// The kind of actor: `user`, `server`, `system` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Server => "server",
            Self::System => "system",
            Self::Admin(_) => "admin",
        }
    }

    /// The administrator, when one acted.
    pub fn admin(self) -> Option<UserId> {
        match self {
            Self::Admin(id) => Some(id),
            _ => None,
        }
    }

    /// As stored: the kind, and an administrator's id after a colon.
    pub fn stored(self) -> String {
        match self {
            Self::Admin(id) => format!("admin:{id}"),
            other => other.as_str().to_owned(),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        if let Some(id) = s.strip_prefix("admin:") {
            return id.parse().ok().map(Self::Admin);
        }
        [Self::User, Self::Server, Self::System].into_iter().find(|b| b.as_str() == s)
    }
}

impl From<crate::policy::Actor> for By {
    fn from(a: crate::policy::Actor) -> Self {
        match a {
            crate::policy::Actor::SelfService => Self::User,
            crate::policy::Actor::Server => Self::Server,
        }
    }
}

/// One entry of a user's activity trail: what happened to the account, who did it, and from
/// where when it was a sign-in. `details` never holds a secret or a field's value, only names
/// and methods.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// A UUIDv7: ordered by time, so a page boundary and a time bound are both id bounds.
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// One of `activity_types()`.
    pub kind: String,
    pub by: By,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// A JSON object: `{"fields": […]}` of a profile change, `{"method": …}` of a sign-in, …
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

impl Activity {
    pub fn new(tenant_id: TenantId, user_id: UserId, kind: &str, by: By, now: DateTime<Utc>) -> Self {
        debug_assert!(activity_types().any(|t| t == kind), "{kind} is not an activity type");
        Self {
            id: id_at(now),
            tenant_id,
            user_id,
            kind: kind.to_owned(),
            by,
            ip_address: None,
            user_agent: None,
            details: Value::Object(serde_json::Map::new()),
            created_at: now,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Where the request came from, as a session records it.
    pub fn from_client(mut self, ip_address: Option<&str>, user_agent: Option<&str>) -> Self {
        self.ip_address = ip_address.map(str::to_owned);
        self.user_agent = user_agent.map(|ua| ua.chars().take(512).collect());
        self
    }
}

/// Which activity entries to read, newest first: a user's own, or the tenant's audit log with
/// its filters.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub user_id: Option<UserId>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keyset cursor: only entries older than this one.
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// A UUIDv7 of time `t` (the service's clock, not the system's, so that ids and `created_at`
/// agree), later than every id this process made before: entries made in the same
/// millisecond keep their order.
fn id_at(t: DateTime<Utc>) -> Uuid {
    static CONTEXT: std::sync::Mutex<uuid::ContextV7> = std::sync::Mutex::new(uuid::ContextV7::new());
    let secs = u64::try_from(t.timestamp()).unwrap_or(0);
    Uuid::new_v7(uuid::Timestamp::from_unix(&CONTEXT, secs, t.timestamp_subsec_nanos()))
}

/// The smallest UUIDv7 of millisecond `t`: every entry made at `t` or later has an id at least
/// this, every earlier one a smaller id.
pub fn first_id_at(t: DateTime<Utc>) -> Uuid {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(ms, &[0; 10]).into_uuid()
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
    /// JSON text, as written: a delivery's body embeds it as it is.
    pub data: String,
    pub created_at: DateTime<Utc>,
}
