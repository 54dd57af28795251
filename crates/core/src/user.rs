//! The user and what hangs off it: profile, metadata tiers, suspensions, teams and sessions.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::ids::{SessionId, SuspensionId, TeamId, TenantId, UserId};
use crate::validate::{GeoPoint, ImageKind};

/// Who vouches for the user's identity fields. For `Oidc` and `Saml` the identity provider owns
/// first/last name, email and username, and the user cannot change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthProvider {
    #[default]
    Local,
    Oidc,
    Saml,
}

impl AuthProvider {
    /// Every provider's name.
    pub const NAMES: &[&str] = &["local", "oidc", "saml"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Oidc => "oidc",
            Self::Saml => "saml",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            "oidc" => Some(Self::Oidc),
            "saml" => Some(Self::Saml),
            _ => None,
        }
    }

    pub fn is_external(self) -> bool {
        self != Self::Local
    }
}

/// What a user may do beyond their own account. An admin runs the tenant's users from the
/// console; the role is given by the tenant's server, the CLI or another admin, never taken by
/// the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Member,
    Admin,
}

impl Role {
    pub const NAMES: &[&str] = &["member", "admin"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Member, Self::Admin].into_iter().find(|r| r.as_str() == s)
    }
}

/// The account's lifecycle state (Bird's `status`, default `pending`): `pending` until the
/// primary email is verified or the server activates it, `active` after, `disabled` when the
/// server switches the account off. Suspensions and scheduled deletion are kept apart from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    #[default]
    Pending,
    Active,
    Disabled,
}

impl UserStatus {
    /// Every status's name.
    pub const NAMES: &[&str] = &["pending", "active", "disabled"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// An avatar: a URL given by the user, or an image Tessera stores content-addressed and serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Avatar {
    Url { url: String },
    Stored { hash: String, kind: ImageKind },
}

impl Avatar {
    /// Where clients fetch the avatar: its own URL, or Tessera's copy under `public_url`.
    pub fn url(&self, public_url: &str) -> String {
        match self {
            Avatar::Url { url } => url.clone(),
            Avatar::Stored { hash, kind } => format!("{public_url}/v1/avatars/{hash}.{}", kind.extension()),
        }
    }

    /// The stored image's hash, for garbage collection of unreferenced blobs.
    pub fn stored_hash(&self) -> Option<&str> {
        match self {
            Self::Stored { hash, .. } => Some(hash),
            Self::Url { .. } => None,
        }
    }
}

/// The profile fields that are not identity (email, username) or metadata; what each is, is
/// declared in `fields.rs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    pub display_name: Option<String>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub bio: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub avatar: Option<Avatar>,
    pub phone_number: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub birthdate: Option<NaiveDate>,
    pub location: Option<GeoPoint>,
    pub is_active: bool,
    pub is_onboarded: bool,
    pub is_superuser: bool,
    pub password_expired: bool,
    pub organization_id: Option<Uuid>,
    pub selected_team_id: Option<TeamId>,
    pub oauth_provider: Option<String>,
    pub oauth_id: Option<String>,
}

/// The three readable metadata tiers. `secure_metadata` is deliberately not here: it lives in
/// its own column, is never loaded with the user and so can never be serialised into a response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// Read and written by the user.
    pub client: Map<String, Value>,
    /// Read by the user, written only by the server.
    pub client_read_only: Map<String, Value>,
    /// Server only.
    pub server: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub id: SuspensionId,
    pub reason: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub created_by: String,
}

impl Suspension {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && self.ends_at.is_none_or(|end| end > now)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    /// Bumped by every committed change; the `ETag`.
    pub version: i64,
    pub username: Option<String>,
    pub primary_email: Option<String>,
    pub primary_email_verified: bool,
    pub status: UserStatus,
    pub auth_provider: AuthProvider,
    pub is_service_account: bool,
    pub is_anonymous: bool,
    pub has_password: bool,
    pub totp_enabled: bool,
    pub role: Role,
    pub profile: Profile,
    pub metadata: Metadata,
    /// Every suspension, past and present; `active_suspensions` filters.
    pub suspensions: Vec<Suspension>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set while the account waits for erasure after `DELETE /me`.
    pub deletion_due_at: Option<DateTime<Utc>>,
    /// Live sessions, counted by the store when the user is read.
    pub active_sessions: i64,
}

impl User {
    /// A fresh local user with defaults (`status: pending`, `is_active: true`).
    pub fn new(tenant_id: TenantId, now: DateTime<Utc>) -> Self {
        Self {
            id: UserId::new(),
            tenant_id,
            version: 1,
            username: None,
            primary_email: None,
            primary_email_verified: false,
            status: UserStatus::Pending,
            auth_provider: AuthProvider::Local,
            is_service_account: false,
            is_anonymous: false,
            has_password: false,
            totp_enabled: false,
            role: Role::Member,
            profile: Profile { is_active: true, ..Profile::default() },
            metadata: Metadata::default(),
            suspensions: Vec::new(),
            created_at: now,
            updated_at: now,
            deletion_due_at: None,
            active_sessions: 0,
        }
    }

    pub fn active_suspensions(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Suspension> {
        self.suspensions.iter().filter(move |s| s.is_active(now))
    }

    /// The strong validator of this version of the user, as an HTTP entity tag.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }

    /// The name to show: display name, else name, else first and last name, else username.
    pub fn shown_name(&self) -> Option<String> {
        let p = &self.profile;
        p.display_name
            .clone()
            .or_else(|| p.name.clone())
            .or_else(|| match (&p.first_name, &p.last_name) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (Some(n), None) | (None, Some(n)) => Some(n.clone()),
                (None, None) => None,
            })
            .or_else(|| self.username.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub id: TeamId,
    pub tenant_id: TenantId,
    pub display_name: String,
    pub profile_image_url: Option<String>,
    pub client_metadata: Map<String, Value>,
    pub client_read_only_metadata: Map<String, Value>,
    pub server_metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub last_refreshed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    /// The OAuth client the session was granted to; `None` for a first-party sign-in. Its
    /// refresh token is then the client's, and only that client may use it.
    pub client_id: Option<String>,
}

impl Session {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}
