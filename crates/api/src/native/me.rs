//! `/v1/me`: the signed-in user reads, changes and deletes its own account.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_core::DomainError;
use tessera_service::{Principal, UpdateOptions};
use utoipa::ToSchema;
use uuid::Uuid;

use super::user_response;
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{CurrentUser, IfMatch, JsonBody, JsonObject, PathParams, parse_json, read_body};
use crate::views::{Audience, SessionView, TeamView, UserUpdate, UserView};

/// The signed-in user.
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The current user; `ETag` holds its version", body = UserView),
        (status = 401, description = "Not signed in, token expired, or session revoked", body = ErrorBody),
        (status = 403, description = "Suspended, or X-Tenant-ID names another tenant", body = ErrorBody),
    ))]
pub async fn get_me(State(state): State<AppState>, CurrentUser(who): CurrentUser) -> Response {
    user_response(&state, &who.user, Audience::SelfUser, StatusCode::OK)
}

async fn update_me(
    state: &AppState,
    who: &Principal,
    body: &Map<String, Value>,
    opts: UpdateOptions,
) -> ApiResult<Response> {
    let user = state.service.update_me(who, body, &opts).await?;
    Ok(user_response(state, &user, Audience::SelfUser, StatusCode::OK))
}

/// Change some fields of the current user. Absent fields are unchanged, `null` clears, and
/// unknown or forbidden fields are refused by name. With `If-Match`, a stale version gets 412.
#[utoipa::path(patch, path = "/v1/me", tag = "me", security(("bearer" = [])),
    params(("If-Match" = Option<String>, Header, description = "The ETag last read; 412 if the user changed since")),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "The updated user", body = UserView),
        (status = 400, description = "Invalid, unknown or read-only fields", body = ErrorBody),
        (status = 403, description = "Fields the caller may not write", body = ErrorBody),
        (status = 409, description = "Email or username taken", body = ErrorBody),
        (status = 412, description = "The user changed since the ETag was read", body = ErrorBody),
    ))]
pub async fn patch_me(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    IfMatch(if_match): IfMatch,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    update_me(&state, &who, &body, UpdateOptions { if_match, ..Default::default() }).await
}

/// Replace the profile: profile fields left out are cleared. Identity (email, username) and
/// metadata are not profile fields and stay as they are.
#[utoipa::path(put, path = "/v1/me/profile", tag = "me", security(("bearer" = [])),
    params(("If-Match" = Option<String>, Header, description = "The ETag last read")),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "The updated user", body = UserView),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 412, description = "Stale If-Match", body = ErrorBody),
    ))]
pub async fn put_profile(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    IfMatch(if_match): IfMatch,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    update_me(&state, &who, &body, UpdateOptions { if_match, replace_profile: true, ..Default::default() }).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionScheduled {
    /// When the account will be erased. Signing in before then cancels the deletion.
    pub deletion_scheduled_at: DateTime<Utc>,
}

/// Delete the account: every session ends now, and the data is erased after the tenant's
/// grace period unless the user signs in again before then.
#[utoipa::path(delete, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses(
        (status = 202, description = "Erasure scheduled", body = DeletionScheduled),
        (status = 403, description = "Service accounts cannot delete themselves", body = ErrorBody),
    ))]
pub async fn delete_me(State(state): State<AppState>, CurrentUser(who): CurrentUser) -> ApiResult<Response> {
    let due = state.service.delete_me(&who).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(DeletionScheduled { deletion_scheduled_at: due })).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportView<'a> {
    pub user: UserView<'a>,
    pub sessions: Vec<SessionView>,
    pub teams: Vec<TeamView>,
    pub passkeys: Vec<super::passkeys::PasskeyView>,
}

/// Everything Tessera holds about the current user that the user may see (GDPR art. 20).
#[utoipa::path(get, path = "/v1/me/export", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "The user's data", body = ExportView)))]
pub async fn export_me(State(state): State<AppState>, CurrentUser(who): CurrentUser) -> ApiResult<Response> {
    let export = state.service.export(&who).await?;
    let body = ExportView {
        user: UserView::new(&export.user, Audience::SelfUser, &state.public_url, state.service.now()),
        sessions: export.sessions.iter().map(|s| SessionView::new(s, who.session_id)).collect(),
        teams: export.teams.iter().map(|t| TeamView::new(t, Audience::SelfUser)).collect(),
        passkeys: export.passkeys.into_iter().map(Into::into).collect(),
    };
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"tessera-export.json\""),
    );
    Ok(res)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// Change the password. Every other session ends, and its access tokens stop working.
#[utoipa::path(post, path = "/v1/me/password", tag = "me", security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "Wrong current password, or weak or unchanged new one", body = ErrorBody),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    JsonBody(req): JsonBody<ChangePassword>,
) -> ApiResult<StatusCode> {
    state.service.change_password(&who, req.current_password, req.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvatarJson {
    /// A base64 image, bare or as a `data:image/...;base64,` URI.
    pub image: Option<String>,
    /// Or an https URL.
    pub url: Option<String>,
}

/// Set the avatar: the image itself as the body (`Content-Type: image/png`, `image/jpeg`,
/// `image/gif`, `image/webp`), or JSON with a base64 `image` or an https `url`. Images are
/// checked by their bytes, capped in size and pixels, and served from Tessera.
#[utoipa::path(put, path = "/v1/me/avatar", tag = "me", security(("bearer" = [])),
    request_body(content(
        (AvatarJson = "application/json"),
        (Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/gif"), (Vec<u8> = "image/webp"),
    )),
    responses(
        (status = 200, description = "The updated user", body = UserView),
        (status = 400, description = "Not an accepted image, too large, or too many pixels", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Neither an image nor JSON", body = ErrorBody),
    ))]
pub async fn put_avatar(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    req: Request,
) -> ApiResult<Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    let bytes = read_body(req, &state).await?;
    let value = if content_type.starts_with("image/") {
        // The core checks images in their text forms; encoding costs little next to the upload.
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    } else if content_type == "application/json" {
        match parse_json::<AvatarJson>(&bytes)? {
            AvatarJson { image: Some(i), url: None } => i,
            AvatarJson { image: None, url: Some(u) } if u.trim_start().starts_with("https://") => u,
            AvatarJson { image: None, url: Some(_) } => {
                return Err(DomainError::field("url", "invalid_url", "must be an absolute https URL").into());
            }
            _ => return Err(DomainError::field("image", "required", "give exactly one of image or url").into()),
        }
    } else {
        return Err(ApiError::http(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send an image or JSON",
        ));
    };
    let body = Map::from_iter([("avatar_url".to_owned(), Value::String(value))]);
    update_me(&state, &who, &body, UpdateOptions::default()).await
}

/// Remove the avatar.
#[utoipa::path(delete, path = "/v1/me/avatar", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "The updated user", body = UserView)))]
pub async fn delete_avatar(State(state): State<AppState>, CurrentUser(who): CurrentUser) -> ApiResult<Response> {
    let body = Map::from_iter([("avatar_url".to_owned(), Value::Null)]);
    update_me(&state, &who, &body, UpdateOptions::default()).await
}

/// The current user's live sessions, newest first.
#[utoipa::path(get, path = "/v1/me/sessions", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "Live sessions", body = [SessionView])))]
pub async fn list_sessions(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
) -> ApiResult<axum::Json<Vec<SessionView>>> {
    let sessions = state.service.my_sessions(&who).await?;
    Ok(axum::Json(sessions.iter().map(|s| SessionView::new(s, who.session_id)).collect()))
}

/// End one of the current user's sessions; its tokens stop working at once.
#[utoipa::path(delete, path = "/v1/me/sessions/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such live session", body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<StatusCode> {
    state.service.revoke_my_session(&who, tessera_core::SessionId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The teams the current user belongs to.
#[utoipa::path(get, path = "/v1/me/teams", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "Teams", body = [TeamView])))]
pub async fn list_teams(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
) -> ApiResult<axum::Json<Vec<TeamView>>> {
    let teams = state.service.my_teams(&who).await?;
    Ok(axum::Json(teams.iter().map(|t| TeamView::new(t, Audience::SelfUser)).collect()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpBegin {
    /// The secret in base32, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/...`, for apps that take a link.
    pub otpauth_uri: String,
    /// The same URI as a QR code: an SVG document.
    pub qr_svg: String,
}

/// Start TOTP enrolment. Nothing is enforced until a code is confirmed.
#[utoipa::path(post, path = "/v1/me/mfa/totp", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The secret, its URI and QR code", body = TotpBegin),
        (status = 400, description = "TOTP is already on", body = ErrorBody),
    ))]
pub async fn begin_totp(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
) -> ApiResult<axum::Json<TotpBegin>> {
    let e = state.service.begin_totp(&who).await?;
    Ok(axum::Json(TotpBegin { secret: e.secret, otpauth_uri: e.otpauth_uri, qr_svg: e.qr_svg }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    /// A current 6-digit code from the authenticator.
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten one-time codes for `POST /v1/auth/mfa` when the authenticator is lost. Shown once.
    pub recovery_codes: Vec<String>,
}

/// Confirm enrolment with a current code: TOTP is on from now, and the recovery codes come back.
#[utoipa::path(post, path = "/v1/me/mfa/totp/confirm", tag = "me", security(("bearer" = [])),
    request_body = TotpCode,
    responses(
        (status = 200, description = "TOTP is on", body = RecoveryCodes),
        (status = 400, description = "Wrong or reused code, or no enrolment begun", body = ErrorBody),
    ))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    JsonBody(req): JsonBody<TotpCode>,
) -> ApiResult<axum::Json<RecoveryCodes>> {
    let codes = state.service.confirm_totp(&who, &req.code).await?;
    Ok(axum::Json(RecoveryCodes { recovery_codes: codes }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpDisable {
    /// A current TOTP code or a recovery code…
    pub code: Option<String>,
    /// …or the password.
    pub password: Option<String>,
}

/// Turn TOTP off, proven by a code, a recovery code or the password.
#[utoipa::path(delete, path = "/v1/me/mfa/totp", tag = "me", security(("bearer" = [])),
    request_body = TotpDisable,
    responses((status = 204, description = "TOTP is off"), (status = 400, description = "Wrong proof", body = ErrorBody)))]
pub async fn disable_totp(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    JsonBody(req): JsonBody<TotpDisable>,
) -> ApiResult<StatusCode> {
    state.service.disable_totp(&who, req.code.as_deref(), req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
