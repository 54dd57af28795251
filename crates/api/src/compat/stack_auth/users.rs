//! Users and teams as Stack shows them: the current user (`/users/me`), the server's user
//! endpoints, and the user's teams.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera_core::events::By;
use tessera_core::user::{Team, User};
use tessera_core::{TeamId, UserId};
use tessera_service::UpdateOptions;
use tessera_store::UserFilter;
use uuid::Uuid;

use super::error::StackError;
use super::{Access, FIELDS, IMAGE_MAX_BYTES, SURFACE, authenticate, project};
use crate::AppState;
use crate::compat::{to_native, to_wire};
use crate::error::ApiError;
use crate::extract::{JsonObject, PathParams};

use axum::Json;

#[derive(Debug, Serialize)]
pub(super) struct StackTeam {
    id: TeamId,
    display_name: String,
    profile_image_url: Option<String>,
    client_metadata: Map<String, Value>,
    client_read_only_metadata: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_metadata: Option<Map<String, Value>>,
    created_at_millis: i64,
}

fn team_view(t: Team, access: Access) -> StackTeam {
    StackTeam {
        id: t.id,
        display_name: t.display_name,
        profile_image_url: t.profile_image_url,
        client_metadata: t.client_metadata,
        client_read_only_metadata: t.client_read_only_metadata,
        server_metadata: (access == Access::Server).then_some(t.server_metadata),
        created_at_millis: t.created_at.timestamp_millis(),
    }
}

/// What only server access sees.
#[derive(Debug, Serialize)]
pub(super) struct ServerOnly {
    server_metadata: Map<String, Value>,
    primary_email_auth_enabled: bool,
    /// Tessera records no activity time: the last change to the account.
    last_active_at_millis: i64,
    restricted_by_admin_private_details: Option<String>,
    country_code: Option<String>,
    /// Tessera scores no risk: always zero.
    risk_scores: Value,
}

/// A user in Stack's shape: every field its SDK reads, filled from what Tessera knows, and the
/// neutral value where Tessera has no such thing.
#[derive(Debug, Serialize)]
pub(super) struct StackUser {
    id: UserId,
    primary_email: Option<String>,
    primary_email_verified: bool,
    display_name: Option<String>,
    selected_team: Option<StackTeam>,
    selected_team_id: Option<TeamId>,
    profile_image_url: Option<String>,
    signed_up_at_millis: i64,
    has_password: bool,
    auth_with_email: bool,
    oauth_providers: Vec<Value>,
    otp_auth_enabled: bool,
    passkey_auth_enabled: bool,
    requires_totp_mfa: bool,
    client_metadata: Map<String, Value>,
    client_read_only_metadata: Map<String, Value>,
    is_anonymous: bool,
    is_restricted: bool,
    restricted_reason: Option<Value>,
    restricted_by_admin: bool,
    restricted_by_admin_reason: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    server: Option<ServerOnly>,
}

async fn render(state: &AppState, u: &User, access: Access) -> StackUser {
    let team = match u.profile.selected_team_id {
        Some(id) => state.service.get_team(u.tenant_id, id).await.ok(),
        None => None,
    };
    let now = state.service.now();
    let suspension = u.active_suspensions(now).next();
    let restricted_reason = if u.is_anonymous {
        Some(json!({"type": "anonymous"}))
    } else {
        suspension.map(|_| json!({"type": "restricted_by_administrator"}))
    };
    let with_email = u.has_password && u.primary_email.is_some();
    let oauth_providers = match (&u.profile.oauth_provider, &u.profile.oauth_id) {
        (Some(id), Some(account)) => vec![json!({"id": id, "account_id": account, "email": u.primary_email})],
        _ => Vec::new(),
    };
    StackUser {
        id: u.id,
        primary_email: u.primary_email.clone(),
        primary_email_verified: u.primary_email_verified,
        display_name: u.profile.display_name.clone(),
        selected_team: team.map(|t| team_view(t, access)),
        selected_team_id: u.profile.selected_team_id,
        profile_image_url: u.profile.avatar.as_ref().map(|a| a.url(&state.public_url)),
        signed_up_at_millis: u.created_at.timestamp_millis(),
        has_password: u.has_password,
        auth_with_email: with_email,
        oauth_providers,
        otp_auth_enabled: false,
        passkey_auth_enabled: false,
        requires_totp_mfa: u.totp_enabled,
        client_metadata: u.metadata.client.clone(),
        client_read_only_metadata: u.metadata.client_read_only.clone(),
        is_anonymous: u.is_anonymous,
        is_restricted: restricted_reason.is_some(),
        restricted_reason,
        restricted_by_admin: suspension.is_some(),
        restricted_by_admin_reason: suspension.map(|s| s.reason.clone()),
        server: (access == Access::Server).then(|| ServerOnly {
            server_metadata: u.metadata.server.clone(),
            primary_email_auth_enabled: with_email,
            last_active_at_millis: u.updated_at.timestamp_millis(),
            restricted_by_admin_private_details: None,
            country_code: None,
            risk_scores: json!({"sign_up": {"bot": 0, "free_trial_abuse": 0}}),
        }),
    }
}

pub(super) async fn get_me(State(state): State<AppState>, h: HeaderMap) -> Result<Json<StackUser>, StackError> {
    let (who, access) = authenticate(&state, &h).await?;
    Ok(Json(render(&state, &who.user, access).await))
}

/// `totp_secret_base64` turns TOTP on (the base64 of the raw secret) or off (`null`). The empty
/// string is refused (a deliberate difference from the contract); the secret is never returned.
fn take_totp(body: &mut Map<String, Value>) -> Result<Option<Option<Vec<u8>>>, StackError> {
    use base64::Engine;
    match body.remove("totp_secret_base64") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .ok()
            .filter(|b| b.len() >= tessera_auth::totp::MIN_SECRET_BYTES)
            .map(|b| Some(Some(b)))
            .ok_or_else(|| {
                StackError::schema_field(
                    "totp_secret_base64",
                    "invalid_totp_secret",
                    "must be the base64 of a secret of at least 10 bytes",
                )
            }),
        Some(_) => Err(StackError::schema_field("totp_secret_base64", "invalid_type", "must be a string or null")),
    }
}

fn options() -> UpdateOptions {
    UpdateOptions { surface: SURFACE, image_max_bytes: Some(IMAGE_MAX_BYTES), ..UpdateOptions::default() }
}

/// A user's update in Stack's names, through the one self-update (client access) or the
/// server's update; then TOTP, if the body turns it on or off.
async fn update(
    state: &AppState,
    who: Option<&tessera_service::Principal>,
    target: (tessera_core::TenantId, UserId),
    body: Result<JsonObject, ApiError>,
) -> Result<User, StackError> {
    let JsonObject(mut body) = body?;
    let totp = take_totp(&mut body)?;
    let native = to_native(body, FIELDS).map_err(|e| to_wire(e.into(), FIELDS))?;
    let updated = match who {
        Some(who) => state.service.update_me(who, &native, &options()).await,
        None => state.service.update_user(target.0, target.1, &native, &options()).await,
    };
    let mut user = updated.map_err(|e| to_wire(e.into(), FIELDS))?;
    if let Some(secret) = totp {
        let by = if who.is_some() { By::User } else { By::Server };
        user = state.service.set_totp_secret(target.0, target.1, secret.as_deref(), by).await?;
    }
    Ok(user)
}

pub(super) async fn patch_me(
    State(state): State<AppState>,
    h: HeaderMap,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<StackUser>, StackError> {
    let (who, access) = authenticate(&state, &h).await?;
    let target = (who.tenant_id(), who.user.id);
    let me = (access == Access::Client).then_some(&who);
    let user = update(&state, me, target, body).await?;
    Ok(Json(render(&state, &user, access).await))
}

/// Deletes the account (erasure after the tenant's grace period, as everywhere in Tessera).
pub(super) async fn delete_me(State(state): State<AppState>, h: HeaderMap) -> Result<Json<Value>, StackError> {
    let (who, _) = authenticate(&state, &h).await?;
    state.service.delete_me(&who).await?;
    Ok(Json(json!({"success": true})))
}

/// The server's routes need server access.
async fn server(state: &AppState, h: &HeaderMap) -> Result<tessera_core::TenantId, StackError> {
    let p = project(state, h).await?;
    if p.access != Access::Server {
        return Err(StackError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "INSUFFICIENT_ACCESS_TYPE",
            "this endpoint needs server access",
        )
        .with(json!({"actual_access_type": "client", "allowed_access_types": ["server"]})));
    }
    Ok(p.tenant.id)
}

fn user_id(raw: &str) -> Result<UserId, StackError> {
    raw.parse::<Uuid>().map(UserId).map_err(|_| StackError::user_not_found())
}

pub(super) async fn get(
    State(state): State<AppState>,
    h: HeaderMap,
    PathParams(raw): PathParams<String>,
) -> Result<Json<StackUser>, StackError> {
    let tenant = server(&state, &h).await?;
    let user = state.service.get_user(tenant, user_id(&raw)?).await?;
    Ok(Json(render(&state, &user, Access::Server).await))
}

pub(super) async fn patch(
    State(state): State<AppState>,
    h: HeaderMap,
    PathParams(raw): PathParams<String>,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<StackUser>, StackError> {
    let tenant = server(&state, &h).await?;
    let user = update(&state, None, (tenant, user_id(&raw)?), body).await?;
    Ok(Json(render(&state, &user, Access::Server).await))
}

/// Erases the user now, as the native server API does.
pub(super) async fn delete(
    State(state): State<AppState>,
    h: HeaderMap,
    PathParams(raw): PathParams<String>,
) -> Result<Json<Value>, StackError> {
    let tenant = server(&state, &h).await?;
    state.service.delete_user(tenant, user_id(&raw)?, tessera_core::events::By::Server).await?;
    Ok(Json(json!({"success": true})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ListQuery {
    cursor: Option<Uuid>,
    limit: Option<u32>,
    include_anonymous: Option<String>,
    only_anonymous: Option<String>,
}

/// A page of users in id order; `pagination.next_cursor` continues it. Anonymous users are
/// left out unless asked for, as in Stack.
pub(super) async fn list(
    State(state): State<AppState>,
    h: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, StackError> {
    let tenant = server(&state, &h).await?;
    let Query(q) = q.map_err(|e| StackError::schema(e.body_text(), &[]))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 200);
    let is_anonymous = match (q.only_anonymous.as_deref(), q.include_anonymous.as_deref()) {
        (Some("true"), _) => Some(true),
        (_, Some("true")) => None,
        _ => Some(false),
    };
    let filter = UserFilter { is_anonymous, after: q.cursor.map(UserId), limit, ..UserFilter::default() };
    let users = state.service.list_users(tenant, filter).await?;
    let next_cursor = (users.len() == limit as usize).then(|| users.last().map(|u| u.id)).flatten();
    let mut items = Vec::with_capacity(users.len());
    for u in &users {
        items.push(render(&state, u, Access::Server).await);
    }
    Ok(Json(json!({"items": items, "is_paginated": true, "pagination": {"next_cursor": next_cursor}})))
}

#[derive(Debug, Deserialize)]
pub(super) struct TeamsQuery {
    user_id: Option<String>,
}

/// `GET /teams?user_id=me`: the signed-in user's teams.
pub(super) async fn teams(
    State(state): State<AppState>,
    h: HeaderMap,
    q: Result<Query<TeamsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, StackError> {
    let Query(q) = q.map_err(|e| StackError::schema(e.body_text(), &[]))?;
    if q.user_id.as_deref() != Some("me") {
        return Err(StackError::schema_field("user_id", "unsupported", "must be me"));
    }
    let (who, access) = authenticate(&state, &h).await?;
    let teams: Vec<StackTeam> = state.service.my_teams(&who).await?.into_iter().map(|t| team_view(t, access)).collect();
    Ok(Json(json!({"items": teams, "is_paginated": false})))
}
