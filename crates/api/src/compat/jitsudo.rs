//! The JITSudo contract: `GET/PUT /v1/users/me/profile` with a required `X-Tenant-ID`, and errors
//! as `{code, message, details, notices}` — `notices` being the deciding policies' notices.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use tessera_core::DomainError;
use tessera_core::user::{Avatar, User};
use tessera_service::{Principal, UpdateOptions};
use uuid::Uuid;

use super::{FieldMap, to_native, to_wire};
use crate::AppState;
use crate::error::{ApiError, Untold};
use crate::extract::{CurrentUser, JsonObject, RequiredTenant};

pub(super) const FIELDS: FieldMap = &[
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("display_name", "display_name"),
    ("avatar_base64", "avatar_url"),
];

/// The contract's limits: display names of at most 100 characters, avatars of about 256 KB.
const DISPLAY_NAME_MAX: usize = 100;
const AVATAR_MAX_BYTES: usize = 256 * 1024;

#[derive(Debug, Serialize)]
struct Profile {
    id: Uuid,
    email: String,
    name: String,
    auth_provider: &'static str,
    first_name: Option<String>,
    last_name: Option<String>,
    display_name: Option<String>,
    /// The stored image as a data URI; `null` when there is none (or it is a link).
    avatar_base64: Option<String>,
}

/// Errors in this contract's shape. IdP-managed fields are a `400` naming the field here
/// (the contract says so); everything else keeps the native status.
struct JitError(ApiError);

impl<E: Into<ApiError>> From<E> for JitError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for JitError {
    fn into_response(self) -> Response {
        let untold = self.0.untold();
        Untold::attach(untold, self.render())
    }
}

impl JitError {
    fn render(self) -> Response {
        let (mut status, body) = self.0.parts();
        if status == StatusCode::FORBIDDEN && body.code == "forbidden" && body.details.is_some() {
            status = StatusCode::BAD_REQUEST;
        }
        let value = json!({
            "code": body.code,
            "message": body.message,
            "details": body.details.unwrap_or_else(|| json!({})),
            "notices": body.notices,
        });
        (status, axum::Json(value)).into_response()
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/users/me/profile", get(get_profile).put(put_profile))
}

async fn profile(state: &AppState, u: &User) -> Result<Profile, JitError> {
    let avatar_base64 = match &u.profile.avatar {
        Some(Avatar::Stored { hash, .. }) => {
            let (content_type, bytes) = state.service.image(hash).await?;
            Some(format!("data:{content_type};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
        }
        _ => None,
    };
    Ok(Profile {
        id: u.id.0,
        email: u.primary_email.clone().unwrap_or_default(),
        name: u.shown_name().unwrap_or_default(),
        auth_provider: u.auth_provider.as_str(),
        first_name: u.profile.first_name.clone(),
        last_name: u.profile.last_name.clone(),
        display_name: u.profile.display_name.clone(),
        avatar_base64,
    })
}

/// The tenant header is required here, and must match the credential's tenant.
fn caller(
    tenant: Result<RequiredTenant, ApiError>,
    auth: Result<CurrentUser, ApiError>,
) -> Result<Principal, JitError> {
    tenant?;
    Ok(auth?.0)
}

async fn get_profile(
    State(state): State<AppState>,
    tenant: Result<RequiredTenant, ApiError>,
    auth: Result<CurrentUser, ApiError>,
) -> Result<axum::Json<Profile>, JitError> {
    let who = caller(tenant, auth)?;
    Ok(axum::Json(profile(&state, &who.user).await?))
}

async fn put_profile(
    State(state): State<AppState>,
    tenant: Result<RequiredTenant, ApiError>,
    auth: Result<CurrentUser, ApiError>,
    body: Result<JsonObject, ApiError>,
) -> Result<axum::Json<Profile>, JitError> {
    let who = caller(tenant, auth)?;
    let JsonObject(body) = body?;
    // The contract takes images only: a link is not "base64-encoded image data".
    if let Some(Value::String(s)) = body.get("avatar_base64")
        && s.trim_start().starts_with("http")
    {
        return Err(DomainError::field(
            "avatar_base64",
            "invalid_base64",
            "must be base64 image data with a data URI prefix",
        )
        .into());
    }
    let opts = UpdateOptions {
        surface: "jitsudo",
        display_name_max: Some(DISPLAY_NAME_MAX),
        image_max_bytes: Some(AVATAR_MAX_BYTES),
        ..UpdateOptions::default()
    };
    let native = to_native(body, FIELDS).map_err(|e| to_wire(e.into(), FIELDS))?;
    let user = state.service.update_me(&who, &native, &opts).await.map_err(|e| to_wire(e.into(), FIELDS))?;
    Ok(axum::Json(profile(&state, &user).await?))
}
