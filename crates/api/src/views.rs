//! Native wire types: how core values look as JSON on `/v1`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_core::fields::{Kind, Reader, Shown, USER_FIELDS, UserField, Writer};
use tessera_core::tenant::{Tenant, TenantSettings};
use tessera_core::user::{Session, Suspension, Team, User, UserStatus};
use tessera_core::validate::GeoPoint;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Ref, Schema};
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

impl From<GeoPoint> for GeoJsonPoint {
    fn from(g: GeoPoint) -> Self {
        Self { kind: "Point", coordinates: [g.longitude, g.latitude] }
    }
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

/// A user as the native API shows it: every field of the field table
/// (`tessera_core::fields`) that its audience may read, in the table's order, rendered from the
/// user without copying it. `secure_metadata` is never part of it.
#[derive(Debug, Clone, Copy)]
pub struct UserView<'a> {
    user: &'a User,
    audience: Audience,
    public_url: &'a str,
    now: DateTime<Utc>,
}

impl<'a> UserView<'a> {
    pub fn new(user: &'a User, audience: Audience, public_url: &'a str, now: DateTime<Utc>) -> Self {
        Self { user, audience, public_url, now }
    }

    fn shows(&self, f: &UserField) -> bool {
        match f.reader {
            Reader::Everyone => true,
            Reader::Server => self.audience == Audience::Server,
            Reader::Nobody => false,
        }
    }
}

/// A user as the tenant's server sees it, as JSON text: what events carry.
pub fn server_user_json(user: &User, public_url: &str, now: DateTime<Utc>) -> String {
    serde_json::to_string(&UserView::new(user, Audience::Server, public_url, now)).unwrap_or_else(|_| "null".into())
}

impl Serialize for UserView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for f in USER_FIELDS.iter().filter(|f| self.shows(f)) {
            map.serialize_entry(f.name, &Wire { shown: f.read(self.user), view: self })?;
        }
        map.end()
    }
}

/// One field's value in the native wire format.
struct Wire<'a> {
    shown: Shown<'a>,
    view: &'a UserView<'a>,
}

impl Serialize for Wire<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.shown {
            Shown::Null => s.serialize_none(),
            Shown::Text(t) => s.serialize_str(t),
            Shown::Flag(b) => s.serialize_bool(b),
            Shown::Count(n) => s.serialize_i64(n),
            Shown::Uuid(u) => u.serialize(s),
            Shown::Date(d) => d.serialize(s),
            Shown::Time(t) => t.serialize(s),
            Shown::Point(g) => GeoJsonPoint::from(g).serialize(s),
            Shown::Avatar(a) => s.serialize_str(&a.url(self.view.public_url)),
            Shown::Metadata(m) => m.serialize(s),
            Shown::Suspensions(all) => {
                s.collect_seq(all.iter().filter(|x| x.is_active(self.view.now)).map(SuspensionView::from))
            }
        }
    }
}

/// Which way a schema describes a field: as shown, or as an update takes it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    Read,
    Write,
}

/// A field's schema, from its declaration.
fn field_schema(f: &UserField, way: Way) -> RefOr<Schema> {
    use utoipa::openapi::schema::{KnownFormat, SchemaFormat, SchemaType, Type};
    let nullable = f.kind.nullable() || way == Way::Write;
    let of = |t: Type| if nullable { SchemaType::from_iter([t, Type::Null]) } else { SchemaType::Type(t) };
    let format = |k: KnownFormat| Some(SchemaFormat::KnownFormat(k));
    let mut description = String::new();
    if way == Way::Write && f.writer == Writer::Server {
        description.push_str("Server only. ");
    }
    match (f.kind.min_chars(), f.kind.max_chars()) {
        (Some(min), Some(max)) => description.push_str(&format!("{min}–{max} characters. ")),
        (None, Some(max)) => description.push_str(&format!("Up to {max} characters. ")),
        _ => {}
    }
    description.push_str(f.doc);
    let description = Some(description.trim().to_owned()).filter(|d| !d.is_empty());
    let object = |t: Type| ObjectBuilder::new().schema_type(of(t)).description(description.clone());
    match f.kind {
        Kind::Text { .. } | Kind::Name { .. } | Kind::DisplayName { .. } | Kind::Username => object(Type::String)
            .min_length(if way == Way::Write { f.kind.min_chars() } else { None })
            .max_length(if way == Way::Write { f.kind.max_chars() } else { None })
            .into(),
        Kind::Email | Kind::Avatar | Kind::Phone | Kind::Locale | Kind::Timezone | Kind::OptionalText => {
            object(Type::String).into()
        }
        Kind::Birthdate => object(Type::String).format(format(KnownFormat::Date)).into(),
        Kind::Location if way == Way::Read => OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .item(Ref::from_schema_name(GeoJsonPoint::name()))
            .description(description)
            .into(),
        Kind::Location | Kind::Metadata => object(Type::Object).into(),
        Kind::Flag => object(Type::Boolean).into(),
        Kind::Uuid | Kind::Id => object(Type::String).format(format(KnownFormat::Uuid)).into(),
        Kind::Status => object(Type::String).enum_values(Some(UserStatus::NAMES.iter().copied())).into(),
        Kind::Role => object(Type::String).enum_values(Some(tessera_core::user::Role::NAMES.iter().copied())).into(),
        Kind::Label(names) => object(Type::String).enum_values(Some(names.iter().copied())).into(),
        Kind::Count => object(Type::Integer).format(format(KnownFormat::Int64)).into(),
        Kind::Timestamp | Kind::OptionalTimestamp => object(Type::String).format(format(KnownFormat::DateTime)).into(),
        Kind::Suspensions => {
            ArrayBuilder::new().items(Ref::from_schema_name(SuspensionView::name())).description(description).into()
        }
    }
}

impl utoipa::PartialSchema for UserView<'_> {
    fn schema() -> RefOr<Schema> {
        let mut user = ObjectBuilder::new().description(Some(
            "A user: every field its reader may see. `server_metadata` is shown to the tenant's server only; \
             `secure_metadata` is never shown.",
        ));
        for f in USER_FIELDS.iter().filter(|f| f.reader != Reader::Nobody) {
            user = user.property(f.name, field_schema(f, Way::Read));
            if f.reader == Reader::Everyone && !f.kind.nullable() {
                user = user.required(f.name);
            }
        }
        user.into()
    }
}

impl ToSchema for UserView<'_> {
    fn name() -> std::borrow::Cow<'static, str> {
        "UserView".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push((GeoJsonPoint::name().into(), GeoJsonPoint::schema()));
        schemas.push((SuspensionView::name().into(), SuspensionView::schema()));
    }
}

/// A partial update of a user: the writable fields of the field table. Only the fields sent
/// change; `null` clears; unknown or read-only fields are refused by name. The server may also
/// write the server-only fields. (The core parser reads the body; this type describes it.)
#[derive(Debug, Deserialize)]
pub struct UserUpdate {}

impl utoipa::PartialSchema for UserUpdate {
    fn schema() -> RefOr<Schema> {
        let mut update = ObjectBuilder::new().description(Some(
            "A partial update of a user. Only the fields sent change; `null` clears; unknown or read-only \
             fields are refused by name. The server may also write the server-only fields.",
        ));
        for f in USER_FIELDS.iter().filter(|f| f.is_writable()) {
            update = update.property(f.name, field_schema(f, Way::Write));
        }
        update.into()
    }
}

impl ToSchema for UserUpdate {
    fn name() -> std::borrow::Cow<'static, str> {
        "UserUpdate".into()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse<'a> {
    pub user: UserView<'a>,
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
    /// How access and ID tokens are signed: `EdDSA` (default), `ES256` or `RS256`. Tokens
    /// signed before a change keep verifying until they expire.
    #[schema(value_type = String, example = "EdDSA")]
    pub signing_algorithm: tessera_core::keys::SigningAlgorithm,
    /// Days the activity trail and audit log keep an entry (default 90, 1–3650).
    pub activity_retention_days: u32,
    /// Sign-in with an unverified primary address is refused with `email_unverified` (default
    /// `false`).
    pub require_verified_email: bool,
    /// A first sign-in through an identity provider whose verified address an account already
    /// has joins that account; otherwise it is refused (default `false`).
    pub link_verified_emails: bool,
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
            signing_algorithm: s.signing_algorithm,
            activity_retention_days: s.activity_retention_days,
            require_verified_email: s.require_verified_email,
            link_verified_emails: s.link_verified_emails,
            pre_update_hook: s.pre_update_hook.as_ref().map(|h| {
                serde_json::json!({"url": h.url, "timeout_ms": h.timeout_ms, "fail_open": h.fail_open, "has_secret": true})
            }),
        }
    }
}
