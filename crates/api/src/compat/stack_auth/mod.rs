//! The Stack Auth contract, as Stack's own SDK (`@stackframe/js`) speaks it: the current user
//! (`/api/v1/users/me`), password and second-factor sign-in, anonymous sign-up, the SDK's
//! refresh and sign-out, the user's teams, and the server's user endpoints. Requests name the
//! project, the access type (`client` with the publishable client key, `server` with the
//! secret server key) and the user's access token in headers, under the `x-stack-` prefix or,
//! from the SDK's releases after the product's rename, `x-hexclave-`.

mod auth;
mod error;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use base64::Engine;
use serde::Serialize;
use serde_json::json;
use tessera_auth::secret::{hash_secret, hashes_match};
use tessera_core::tenant::Tenant;
use tessera_core::{DomainError, TenantId};
use tessera_service::{Principal, Tokens};

use self::error::StackError;
use super::FieldMap;
use crate::AppState;

/// The contract's writable fields. Which of them a `client` may write is the policy engine's
/// decision (`server-only-fields`), not this adapter's.
pub(super) const FIELDS: FieldMap = &[
    ("display_name", "display_name"),
    ("profile_image_url", "avatar_url"),
    ("client_metadata", "client_metadata"),
    ("selected_team_id", "selected_team_id"),
    ("client_read_only_metadata", "client_read_only_metadata"),
    ("server_metadata", "server_metadata"),
];

/// "Must be smaller than 100KB."
const IMAGE_MAX_BYTES: usize = 100 * 1024 - 1;

const SURFACE: &str = "stack-auth";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users/me", get(users::get_me).patch(users::patch_me).delete(users::delete_me))
        .route("/api/v1/users", get(users::list))
        .route("/api/v1/users/{id}", get(users::get).patch(users::patch).delete(users::delete))
        .route("/api/v1/teams", get(users::teams))
        .route("/api/v1/auth/password/sign-in", post(auth::password_sign_in))
        .route("/api/v1/auth/password/sign-up", post(auth::password_sign_up))
        .route("/api/v1/auth/mfa/sign-in", post(auth::mfa_sign_in))
        .route("/api/v1/auth/anonymous/sign-up", post(auth::anonymous_sign_up))
        .route("/api/v1/auth/oauth/token", post(auth::token))
        .route("/api/v1/auth/sessions/current", delete(auth::sign_out))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Client,
    Server,
}

/// A request header by its name after the prefix: `x-stack-{name}`, or `x-hexclave-{name}`.
fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    ["x-stack-", "x-hexclave-"]
        .iter()
        .find_map(|prefix| h.get(format!("{prefix}{name}").as_str()))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The project a request names and the access its key proves.
struct Project {
    tenant: Arc<Tenant>,
    access: Access,
}

/// Whether `key` is the tenant's publishable key, compared in constant time.
fn is_publishable_key(tenant: &Tenant, key: &str) -> bool {
    hashes_match(&hash_secret(key), &hash_secret(&tenant.publishable_key))
}

/// Checks the project, the access type and its key.
async fn project(state: &AppState, h: &HeaderMap) -> Result<Project, StackError> {
    let access = match header(h, "access-type") {
        None => {
            return Err(StackError::new(
                StatusCode::BAD_REQUEST,
                "ACCESS_TYPE_REQUIRED",
                "the access type is required",
            ));
        }
        Some("client") => Access::Client,
        Some("server") => Access::Server,
        Some(other) => {
            return Err(StackError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_ACCESS_TYPE",
                "the access type must be client or server",
            )
            .with(json!({"accessType": other})));
        }
    };
    let Some(raw) = header(h, "project-id") else {
        return Err(StackError::new(
            StatusCode::BAD_REQUEST,
            "ACCESS_TYPE_WITHOUT_PROJECT_ID",
            "the project id is required",
        )
        .with(json!({"request_type": if access == Access::Client { "client" } else { "server" }})));
    };
    let id: TenantId = raw.parse().map_err(|_| StackError::project_not_found(raw))?;
    let tenant = state.service.tenant(id).await.map_err(|_| StackError::project_not_found(raw))?;
    let details = json!({"project_id": raw});
    match access {
        Access::Client => {
            if !is_publishable_key(&tenant, header(h, "publishable-client-key").unwrap_or("")) {
                return Err(StackError::new(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_PUBLISHABLE_CLIENT_KEY",
                    "the publishable client key is not valid for this project",
                )
                .with(details));
            }
        }
        Access::Server => {
            let key = header(h, "secret-server-key").unwrap_or("");
            if !state.service.authenticate_server(key).await.is_ok_and(|t| t.id == tenant.id) {
                return Err(StackError::new(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_SECRET_SERVER_KEY",
                    "the secret server key is not valid for this project",
                )
                .with(details));
            }
        }
    }
    Ok(Project { tenant, access })
}

/// Checks the project and its key, then the user's access token. A request with keys but no
/// token is the SDK's "signed out": `CANNOT_GET_OWN_USER_WITHOUT_USER`.
async fn authenticate(state: &AppState, h: &HeaderMap) -> Result<(Principal, Access), StackError> {
    let p = project(state, h).await?;
    let Some(token) = header(h, "access-token") else {
        return Err(StackError::new(
            StatusCode::BAD_REQUEST,
            "CANNOT_GET_OWN_USER_WITHOUT_USER",
            "no user is signed in on this request",
        ));
    };
    match state.service.authenticate(token, Some(p.tenant.id)).await {
        Ok(who) => Ok((who, p.access)),
        Err(DomainError::TenantMismatch) => Err(StackError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_PROJECT_FOR_ACCESS_TOKEN",
            "the access token belongs to another project",
        )
        .with(json!({"expected_project_id": p.tenant.id, "actual_project_id": token_project(token)}))),
        Err(e) => Err(e.into()),
    }
}

/// The project a token says it is for, read without checking it (only to name it in an error).
fn token_project(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("tid")?.as_str().map(str::to_owned)
}

/// The claims Stack's SDK requires of an access token, beside Tessera's own: it reads the
/// token itself and drops one without them.
#[derive(Serialize)]
struct StackClaims<'a> {
    project_id: TenantId,
    branch_id: &'static str,
    refresh_token_id: tessera_core::SessionId,
    role: &'static str,
    name: Option<&'a str>,
    email: Option<&'a str>,
    email_verified: bool,
    selected_team_id: Option<tessera_core::TeamId>,
    signed_up_at: i64,
    is_anonymous: bool,
    is_restricted: bool,
    restricted_reason: Option<serde_json::Value>,
    requires_totp_mfa: bool,
}

/// `{access_token, refresh_token, user_id}`, the access token with Stack's claims.
async fn token_body(state: &AppState, tokens: &Tokens) -> Result<serde_json::Value, StackError> {
    let access_token = stack_access_token(state, tokens).await?;
    Ok(json!({"access_token": access_token, "refresh_token": tokens.refresh_token, "user_id": tokens.user.id}))
}

async fn stack_access_token(state: &AppState, tokens: &Tokens) -> Result<String, StackError> {
    let u = &tokens.user;
    let claims = StackClaims {
        project_id: u.tenant_id,
        branch_id: "main",
        refresh_token_id: tokens.session_id,
        role: "authenticated",
        name: u.profile.display_name.as_deref(),
        email: u.primary_email.as_deref(),
        email_verified: u.primary_email_verified,
        selected_team_id: u.profile.selected_team_id,
        signed_up_at: u.created_at.timestamp(),
        is_anonymous: u.is_anonymous,
        is_restricted: u.is_anonymous,
        restricted_reason: u.is_anonymous.then(|| json!({"type": "anonymous"})),
        requires_totp_mfa: u.totp_enabled,
    };
    Ok(state.service.access_token_with(tokens, &claims).await?)
}
