//! Native wire types: how core values look as JSON on `/v1`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_core::tenant::{Tenant, TenantSettings};
use tessera_core::user::{Session, Suspension, Team, User};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who a user object is rendered for: `server_metadata` is shown to the server only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    SelfUser,
    Server,
}

/// A GeoJSON point.
#[derive(Debug, Serialize, ToSchema)]
pub struct GeoJsonPoint {
    /// Always `Point`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `[longitude, latitude]`.
    pub coordinates: [f64; 2],
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionView {
    pub id: Uuid,
    pub reason: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub created_by: String,
}

impl From<&Suspension> for SuspensionView {
    fn from(s: &Suspension) -> Self {
        Self {
            id: s.id.0,
            reason: s.reason.clone(),
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            created_by: s.created_by.clone(),
        }
    }
}

/// A user. `secure_metadata` is never part of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub username: Option<String>,
    pub primary_email: Option<String>,
    pub primary_email_verified: bool,
    pub display_name: Option<String>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub bio: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub avatar_url: Option<String>,
    pub phone_number: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub birthdate: Option<NaiveDate>,
    pub location: Option<GeoJsonPoint>,
    /// `pending` (default), `active` or `disabled`.
    pub status: &'static str,
    pub is_active: bool,
    pub is_onboarded: bool,
    pub is_superuser: bool,
    pub is_service_account: bool,
    pub is_anonymous: bool,
    /// `local`, `oidc` or `saml`.
    pub auth_provider: &'static str,
    pub oauth_provider: Option<String>,
    pub oauth_id: Option<String>,
    pub organization_id: Option<Uuid>,
    pub selected_team_id: Option<Uuid>,
    pub password_expired: bool,
    pub has_password: bool,
    pub totp_enabled: bool,
    #[schema(value_type = Object)]
    pub client_metadata: Map<String, Value>,
    #[schema(value_type = Object)]
    pub client_read_only_metadata: Map<String, Value>,
    /// Present for the tenant's server only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub server_metadata: Option<Map<String, Value>>,
    /// Active suspensions.
    pub suspensions: Vec<SuspensionView>,
    /// Live sessions.
    pub active_sessions: i64,
    /// Bumped by every change; also the `ETag`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the account will be erased, if its deletion is scheduled.
    pub deletion_scheduled_at: Option<DateTime<Utc>>,
}

impl UserView {
    pub fn new(u: &User, audience: Audience, public_url: &str, now: DateTime<Utc>) -> Self {
        let p = &u.profile;
        Self {
            id: u.id.0,
            tenant_id: u.tenant_id.0,
            username: u.username.clone(),
            primary_email: u.primary_email.clone(),
            primary_email_verified: u.primary_email_verified,
            display_name: p.display_name.clone(),
            name: p.name.clone(),
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            bio: p.bio.clone(),
            company: p.company.clone(),
            job_title: p.job_title.clone(),
            avatar_url: p.avatar.as_ref().map(|a| a.url(public_url)),
            phone_number: p.phone_number.clone(),
            locale: p.locale.clone(),
            timezone: p.timezone.clone(),
            birthdate: p.birthdate,
            location: p.location.map(|g| GeoJsonPoint { kind: "Point", coordinates: [g.longitude, g.latitude] }),
            status: u.status.as_str(),
            is_active: p.is_active,
            is_onboarded: p.is_onboarded,
            is_superuser: p.is_superuser,
            is_service_account: u.is_service_account,
            is_anonymous: u.is_anonymous,
            auth_provider: u.auth_provider.as_str(),
            oauth_provider: p.oauth_provider.clone(),
            oauth_id: p.oauth_id.clone(),
            organization_id: p.organization_id,
            selected_team_id: p.selected_team_id.map(|t| t.0),
            password_expired: p.password_expired,
            has_password: u.has_password,
            totp_enabled: u.totp_enabled,
            client_metadata: u.metadata.client.clone(),
            client_read_only_metadata: u.metadata.client_read_only.clone(),
            server_metadata: (audience == Audience::Server).then(|| u.metadata.server.clone()),
            suspensions: u.active_suspensions(now).map(SuspensionView::from).collect(),
            active_sessions: u.active_sessions,
            version: u.version,
            created_at: u.created_at,
            updated_at: u.updated_at,
            deletion_scheduled_at: u.deletion_due_at,
        }
    }
}

/// A partial update of a user. Only the fields sent change; `null` clears; unknown or
/// read-only fields are refused by name. The server may also write the server-only fields.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code, reason = "documents the accepted body; the core parser reads it")]
pub struct UserUpdate {
    /// 1–50 of `[a-zA-Z0-9_-@.]`, unique per tenant regardless of case; `admin` is reserved.
    pub username: Option<String>,
    /// Stored lower-case; a change leaves it unverified.
    pub primary_email: Option<String>,
    /// Up to 256 characters; `""` clears it.
    pub display_name: Option<String>,
    /// 1–50 characters.
    pub name: Option<String>,
    /// Up to 100 characters.
    pub first_name: Option<String>,
    /// Up to 100 characters.
    pub last_name: Option<String>,
    /// Up to 300 characters.
    pub bio: Option<String>,
    /// 1–50 characters.
    pub company: Option<String>,
    /// 1–50 characters.
    pub job_title: Option<String>,
    /// An https URL, or a base64 PNG/JPEG/GIF/WebP image (bare or as a data URI).
    pub avatar_url: Option<String>,
    /// E.164, e.g. `+14155552671`.
    pub phone_number: Option<String>,
    /// A BCP 47 tag, e.g. `en-GB`.
    pub locale: Option<String>,
    /// An IANA zone, e.g. `Europe/Paris`.
    pub timezone: Option<String>,
    /// `YYYY-MM-DD`, not in the future.
    pub birthdate: Option<NaiveDate>,
    /// `{longitude, latitude}` in range.
    #[schema(value_type = Option<Object>)]
    pub location: Option<Value>,
    pub is_onboarded: Option<bool>,
    /// Must name a team the user belongs to.
    pub selected_team_id: Option<Uuid>,
    #[schema(value_type = Option<Object>)]
    pub client_metadata: Option<Map<String, Value>>,
    /// Server only.
    #[schema(value_type = Option<Object>)]
    pub client_read_only_metadata: Option<Map<String, Value>>,
    /// Server only.
    #[schema(value_type = Option<Object>)]
    pub server_metadata: Option<Map<String, Value>>,
    /// Server only; write-only, never returned.
    #[schema(value_type = Option<Object>)]
    pub secure_metadata: Option<Map<String, Value>>,
    /// Server only: `pending`, `active` or `disabled`.
    pub status: Option<String>,
    /// Server only.
    pub primary_email_verified: Option<bool>,
    /// Server only.
    pub is_active: Option<bool>,
    /// Server only.
    pub is_superuser: Option<bool>,
    /// Server only.
    pub password_expired: Option<bool>,
    /// Server only.
    pub organization_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub user: UserView,
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub session_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_refreshed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl SessionView {
    pub fn new(s: &Session, current: tessera_core::SessionId) -> Self {
        Self {
            id: s.id.0,
            created_at: s.created_at,
            last_refreshed_at: s.last_refreshed_at,
            expires_at: s.expires_at,
            user_agent: s.user_agent.clone(),
            ip_address: s.ip_address.clone(),
            current: s.id == current,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    pub id: Uuid,
    pub display_name: String,
    pub profile_image_url: Option<String>,
    #[schema(value_type = Object)]
    pub client_metadata: Map<String, Value>,
    #[schema(value_type = Object)]
    pub client_read_only_metadata: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub server_metadata: Option<Map<String, Value>>,
    pub created_at: DateTime<Utc>,
}

impl TeamView {
    pub fn new(t: &Team, audience: Audience) -> Self {
        Self {
            id: t.id.0,
            display_name: t.display_name.clone(),
            profile_image_url: t.profile_image_url.clone(),
            client_metadata: t.client_metadata.clone(),
            client_read_only_metadata: t.client_read_only_metadata.clone(),
            server_metadata: (audience == Audience::Server).then(|| t.server_metadata.clone()),
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: Uuid,
    pub name: String,
    /// Public: identifies the tenant to browsers (Stack Auth's publishable client key).
    pub publishable_key: String,
    /// Shown once, at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_key: Option<String>,
    pub settings: SettingsView,
    pub created_at: DateTime<Utc>,
}

impl TenantView {
    pub fn new(t: &Tenant, server_key: Option<String>) -> Self {
        Self {
            id: t.id.0,
            name: t.name.clone(),
            publishable_key: t.publishable_key.clone(),
            server_key,
            settings: SettingsView::from(&t.settings),
            created_at: t.created_at,
        }
    }
}

/// A tenant's settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SettingsView {
    /// Seconds a deleted account waits before erasure (default 7 days).
    pub deletion_grace_seconds: i64,
    /// Cap on each metadata tier, in bytes of JSON (default 65536).
    pub metadata_max_bytes: usize,
    /// Cap on an uploaded avatar, in bytes (default 262144).
    pub avatar_max_bytes: usize,
    /// Access-token lifetime in seconds (default 900).
    pub access_token_ttl_seconds: i64,
    /// Session (refresh-token) lifetime in seconds (default 30 days).
    pub refresh_token_ttl_seconds: i64,
    /// The pre-update validation hook, or `null`. Write `{url, secret, timeout_ms?, fail_open?}`;
    /// the secret is never shown again.
    #[schema(value_type = Option<Object>)]
    pub pre_update_hook: Option<serde_json::Value>,
    /// Failed sign-ins per account per 15 minutes (default 10); then `429` until the window ends.
    pub sign_in_failures_per_account: u32,
    /// Sign-in, MFA and token attempts per client address per minute (default 60).
    pub attempts_per_address_per_minute: u32,
    /// Failed second-factor codes per user per 5 minutes (default 5).
    pub mfa_failures_per_user: u32,
}

impl From<&TenantSettings> for SettingsView {
    fn from(s: &TenantSettings) -> Self {
        Self {
            deletion_grace_seconds: s.deletion_grace_seconds,
            metadata_max_bytes: s.metadata_max_bytes,
            avatar_max_bytes: s.avatar_max_bytes,
            access_token_ttl_seconds: s.access_token_ttl_seconds,
            refresh_token_ttl_seconds: s.refresh_token_ttl_seconds,
            sign_in_failures_per_account: s.sign_in_failures_per_account,
            attempts_per_address_per_minute: s.attempts_per_address_per_minute,
            mfa_failures_per_user: s.mfa_failures_per_user,
            pre_update_hook: s.pre_update_hook.as_ref().map(|h| {
                serde_json::json!({"url": h.url, "timeout_ms": h.timeout_ms, "fail_open": h.fail_open, "has_secret": true})
            }),
        }
    }
}
