//! The Stack Auth contract: `GET/PATCH/DELETE /api/v1/users/me`, identified by
//! `x-stack-project-id`, `x-stack-access-type` (`client` with the publishable client key,
//! `server` with the secret server key) and `x-stack-access-token`. Errors are
//! `{code, error, details?}` with the code repeated in `x-stack-known-error`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tessera_auth::secret::{hash_secret, hashes_match};
use tessera_core::user::{Team, User};
use tessera_core::{DomainError, TenantId};
use tessera_service::{Principal, UpdateOptions};

use super::{FieldMap, to_native, to_wire};
use crate::AppState;
use crate::error::{ApiError, Untold};
use crate::extract::JsonObject;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Client,
    Server,
}

/// `{code, error, details?}` and the `x-stack-known-error` header.
struct StackError {
    status: StatusCode,
    code: &'static str,
    error: String,
    details: Option<Value>,
    untold: Option<Untold>,
}

impl StackError {
    fn new(status: StatusCode, code: &'static str, error: impl Into<String>) -> Self {
        Self { status, code, error: error.into(), details: None, untold: None }
    }

    /// `SCHEMA_ERROR` for one field of the body.
    fn schema(field: &str, code: &str, message: &str) -> Self {
        Self {
            details: Some(json!({"fields": [{"field": field, "code": code, "message": message}]})),
            ..Self::new(StatusCode::BAD_REQUEST, "SCHEMA_ERROR", format!("{field} {message}"))
        }
    }
}

impl From<ApiError> for StackError {
    fn from(e: ApiError) -> Self {
        let untold = e.untold();
        let (status, body) = e.parts();
        let not_a_member = body.details.as_ref().is_some_and(|d| d.to_string().contains("not_a_member"));
        let code = match (status, body.code) {
            _ if not_a_member => "TEAM_MEMBERSHIP_NOT_FOUND",
            (_, "validation_failed" | "invalid_json" | "forbidden")
                if status != StatusCode::FORBIDDEN || body.details.is_some() =>
            {
                "SCHEMA_ERROR"
            }
            (_, "token_expired") => "ACCESS_TOKEN_EXPIRED",
            (_, "unauthenticated") => "INVALID_ACCESS_TOKEN",
            (_, "tenant_mismatch") => "INVALID_PROJECT_FOR_ACCESS_TOKEN",
            (_, "suspended") => "USER_SUSPENDED",
            (_, "hook_rejected") => "HOOK_REJECTED",
            (_, "not_found") => "USER_NOT_FOUND",
            (_, "payload_too_large") => "BODY_TOO_LARGE",
            (_, "unsupported_media_type") => "SCHEMA_ERROR",
            (s, _) if s.is_server_error() => "INTERNAL_ERROR",
            _ => "FORBIDDEN",
        };
        // Schema errors are 400 here, including fields the access type may not write.
        let status = if code == "SCHEMA_ERROR" || code == "TEAM_MEMBERSHIP_NOT_FOUND" {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        Self { status, code, error: body.message, details: body.details, untold }
    }
}

impl From<DomainError> for StackError {
    fn from(e: DomainError) -> Self {
        ApiError::Domain(e).into()
    }
}

impl IntoResponse for StackError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "error": self.error});
        if let Some(d) = self.details {
            body["details"] = d;
        }
        let mut res = (self.status, axum::Json(body)).into_response();
        res.headers_mut().insert("x-stack-known-error", HeaderValue::from_static(self.code));
        Untold::attach(self.untold, res)
    }
}

#[derive(Debug, Serialize)]
struct SelectedTeam {
    id: String,
    display_name: String,
    profile_image_url: Option<String>,
    client_metadata: Map<String, Value>,
    client_read_only_metadata: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_metadata: Option<Map<String, Value>>,
    created_at_millis: f64,
}

#[derive(Debug, Serialize)]
struct StackUser {
    id: String,
    primary_email_verified: bool,
    signed_up_at_millis: f64,
    is_anonymous: bool,
    selected_team: Option<SelectedTeam>,
    primary_email: Option<String>,
    display_name: Option<String>,
    client_metadata: Map<String, Value>,
    client_read_only_metadata: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_metadata: Option<Map<String, Value>>,
    profile_image_url: Option<String>,
    selected_team_id: Option<String>,
}

async fn render(state: &AppState, u: &User, access: Access) -> Result<StackUser, StackError> {
    let team: Option<Team> = match u.profile.selected_team_id {
        Some(id) => state.service.get_team(u.tenant_id, id).await.ok(),
        None => None,
    };
    let server = access == Access::Server;
    Ok(StackUser {
        id: u.id.to_string(),
        primary_email_verified: u.primary_email_verified,
        signed_up_at_millis: u.created_at.timestamp_millis() as f64,
        is_anonymous: u.is_anonymous,
        selected_team: team.map(|t| SelectedTeam {
            id: t.id.to_string(),
            display_name: t.display_name,
            profile_image_url: t.profile_image_url,
            client_metadata: t.client_metadata,
            client_read_only_metadata: t.client_read_only_metadata,
            server_metadata: server.then_some(t.server_metadata),
            created_at_millis: t.created_at.timestamp_millis() as f64,
        }),
        primary_email: u.primary_email.clone(),
        display_name: u.profile.display_name.clone(),
        client_metadata: u.metadata.client.clone(),
        client_read_only_metadata: u.metadata.client_read_only.clone(),
        server_metadata: server.then(|| u.metadata.server.clone()),
        profile_image_url: u.profile.avatar.as_ref().map(|a| a.url(&state.public_url)),
        selected_team_id: u.profile.selected_team_id.map(|t| t.to_string()),
    })
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

/// Checks the project, the access type and its key, then the user's access token.
async fn authenticate(state: &AppState, h: &HeaderMap) -> Result<(Principal, Access), StackError> {
    let project = header(h, "x-stack-project-id");
    let access = match header(h, "x-stack-access-type") {
        None => {
            return Err(StackError::new(
                StatusCode::BAD_REQUEST,
                "ACCESS_TYPE_REQUIRED",
                "x-stack-access-type is required",
            ));
        }
        Some("client") => Access::Client,
        Some("server") => Access::Server,
        Some(_) => {
            return Err(StackError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_ACCESS_TYPE",
                "x-stack-access-type must be client or server",
            ));
        }
    };
    let Some(project) = project else {
        return Err(StackError::new(
            StatusCode::BAD_REQUEST,
            "ACCESS_TYPE_WITHOUT_PROJECT_ID",
            "x-stack-project-id is required",
        ));
    };
    let not_found = || StackError::new(StatusCode::NOT_FOUND, "PROJECT_NOT_FOUND", "no project with this id");
    let project: TenantId = project.parse().map_err(|_| not_found())?;
    let tenant = state.service.tenant(project).await.map_err(|_| not_found())?;
    match access {
        Access::Client => {
            let key = header(h, "x-stack-publishable-client-key").unwrap_or("");
            if !hashes_match(&hash_secret(key), &hash_secret(&tenant.publishable_key)) {
                return Err(StackError::new(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_PUBLISHABLE_CLIENT_KEY",
                    "the publishable client key is not valid for this project",
                ));
            }
        }
        Access::Server => {
            let key = header(h, "x-stack-secret-server-key").unwrap_or("");
            let ok = state.service.authenticate_server(key).await.is_ok_and(|t| t.id == tenant.id);
            if !ok {
                return Err(StackError::new(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_SECRET_SERVER_KEY",
                    "the secret server key is not valid for this project",
                ));
            }
        }
    }
    let Some(token) = header(h, "x-stack-access-token") else {
        return Err(StackError::new(
            StatusCode::UNAUTHORIZED,
            "USER_AUTHENTICATION_REQUIRED",
            "x-stack-access-token is required",
        ));
    };
    let who = state.service.authenticate(token, Some(project)).await?;
    Ok((who, access))
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/users/me", get(get_me).patch(patch_me).delete(delete_me))
}

async fn get_me(State(state): State<AppState>, h: HeaderMap) -> Result<axum::Json<StackUser>, StackError> {
    let (who, access) = authenticate(&state, &h).await?;
    Ok(axum::Json(render(&state, &who.user, access).await?))
}

async fn patch_me(
    State(state): State<AppState>,
    h: HeaderMap,
    body: Result<JsonObject, ApiError>,
) -> Result<axum::Json<StackUser>, StackError> {
    let (who, access) = authenticate(&state, &h).await?;
    let JsonObject(mut body) = body?;
    // `totp_secret_base64` turns TOTP on (the base64 of the raw secret) or off (`null`). The
    // empty string is refused (a deliberate difference from the contract); the secret is never returned.
    let totp: Option<Option<Vec<u8>>> = match body.remove("totp_secret_base64") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .ok()
                .filter(|b| b.len() >= tessera_auth::totp::MIN_SECRET_BYTES);
            match bytes {
                Some(b) => Some(Some(b)),
                None => {
                    return Err(StackError::schema(
                        "totp_secret_base64",
                        "invalid_totp_secret",
                        "must be the base64 of a secret of at least 10 bytes",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(StackError::schema("totp_secret_base64", "invalid_type", "must be a string or null"));
        }
    };
    let native = to_native(body, FIELDS).map_err(|e| to_wire(e.into(), FIELDS))?;
    let opts =
        UpdateOptions { surface: "stack-auth", image_max_bytes: Some(IMAGE_MAX_BYTES), ..UpdateOptions::default() };
    let updated = match access {
        Access::Client => state.service.update_me(&who, &native, &opts).await,
        Access::Server => state.service.update_user(who.tenant_id(), who.user.id, &native, &opts).await,
    };
    let mut user = updated.map_err(|e| to_wire(e.into(), FIELDS))?;
    if let Some(secret) = totp {
        user = state.service.set_totp_secret(who.tenant_id(), who.user.id, secret.as_deref()).await?;
    }
    Ok(axum::Json(render(&state, &user, access).await?))
}

/// Deletes the account (erasure after the tenant's grace period, as everywhere in Tessera).
async fn delete_me(State(state): State<AppState>, h: HeaderMap) -> Result<axum::Json<Value>, StackError> {
    let (who, _) = authenticate(&state, &h).await?;
    state.service.delete_me(&who).await?;
    Ok(axum::Json(json!({"success": true})))
}
