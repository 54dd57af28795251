//! `/v1/auth`: sign-up, sign-in, refresh, sign-out and anonymous users.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_core::DomainError;
use tessera_service::{SignUp, SignedUp, Tokens};
use tessera_store::Login;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Client, CurrentUser, JsonBody, MaybeUser, RequiredTenant, tenant_header};
use crate::views::{Audience, TokenResponse, UserView};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    pub email: String,
    /// 8–128 characters, and not easily guessed.
    pub password: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// The account's email; or give `username`.
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

pub fn token_response(state: &AppState, t: Tokens, status: StatusCode) -> Response {
    let body = TokenResponse {
        user: UserView::new(&t.user, Audience::SelfUser, &state.public_url, state.service.now()),
        access_token: t.access_token,
        refresh_token: t.refresh_token,
        token_type: "Bearer",
        expires_in: t.expires_in,
        session_id: t.session_id.0,
    };
    let mut res = (status, axum::Json(body)).into_response();
    // Token responses must never be cached (RFC 6749 §5.1).
    res.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    res
}

/// Create a password account and sign it in. Sent with an anonymous user's access token, the
/// anonymous user becomes this account, keeping its id and data.
#[utoipa::path(post, path = "/v1/auth/sign-up", tag = "auth",
    params(("X-Tenant-ID" = uuid::Uuid, Header, description = "The tenant to sign up in")),
    request_body = SignUpRequest,
    responses(
        (status = 201, description = "Signed up and signed in", body = TokenResponse),
        (status = 202, description = "The tenant requires verified addresses: `{\"status\": \"verification_sent\"}`, \
            whether the address was new (its verification mail is sent) or taken (its owner is told)", body = VerificationSent),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "Email (unless the tenant requires verified addresses) or username taken", body = ErrorBody),
    ))]
pub async fn sign_up(
    State(state): State<AppState>,
    RequiredTenant(tenant): RequiredTenant,
    MaybeUser(anonymous): MaybeUser,
    Client(client): Client,
    JsonBody(req): JsonBody<SignUpRequest>,
) -> ApiResult<Response> {
    let signed_up = state
        .service
        .sign_up(
            tenant,
            SignUp { email: req.email, password: req.password, username: req.username, display_name: req.display_name },
            anonymous,
            &client,
        )
        .await
        .map_err(|e| match e {
            DomainError::Conflict { field: "primary_email" } => DomainError::Conflict { field: "email" },
            other => other,
        })?;
    Ok(match signed_up {
        SignedUp::In(tokens) => token_response(&state, tokens, StatusCode::CREATED),
        SignedUp::VerificationSent => verification_sent(),
    })
}

/// The answer of a sign-up that tells nothing of whether the address was taken.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct VerificationSent {
    /// Always `verification_sent`.
    pub status: &'static str,
}

pub(crate) fn verification_sent() -> Response {
    (StatusCode::ACCEPTED, axum::Json(VerificationSent { status: "verification_sent" })).into_response()
}

/// Sign in with email or username and password.
#[utoipa::path(post, path = "/v1/auth/sign-in", tag = "auth",
    params(("X-Tenant-ID" = uuid::Uuid, Header, description = "The tenant to sign in to")),
    request_body = SignInRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Neither email nor username", body = ErrorBody),
        (status = 401, description = "Wrong credentials, or `mfa_required` with `details.mfa_token`", body = ErrorBody),
        (status = 403, description = "Suspended or deactivated", body = ErrorBody),
    ))]
pub async fn sign_in(
    State(state): State<AppState>,
    RequiredTenant(tenant): RequiredTenant,
    Client(client): Client,
    JsonBody(req): JsonBody<SignInRequest>,
) -> ApiResult<Response> {
    let login = match (&req.email, &req.username) {
        (Some(e), None) => Login::Email(e.trim()),
        (None, Some(u)) => Login::Username(u.trim()),
        _ => return Err(DomainError::field("email", "required", "give either email or username").into()),
    };
    let tokens = state.service.sign_in(tenant, login, req.password, &client).await?;
    Ok(token_response(&state, tokens, StatusCode::OK))
}

/// Exchange a refresh token for a new token pair. Each refresh token works once; presenting
/// a used one again revokes its session.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Invalid, expired or reused refresh token", body = ErrorBody),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> ApiResult<Response> {
    let tenant = tenant_header(&headers)?;
    let tokens = state.service.refresh(&req.refresh_token, tenant, None).await?;
    Ok(token_response(&state, tokens, StatusCode::OK))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaRequest {
    /// From the `mfa_required` answer to sign-in (`details.mfa_token`); valid for 5 minutes.
    pub mfa_token: String,
    /// The current 6-digit TOTP code. Each code is accepted once.
    pub code: String,
}

/// Complete a sign-in that answered `401 mfa_required`, with the challenge and a TOTP code.
#[utoipa::path(post, path = "/v1/auth/mfa", tag = "auth",
    request_body = MfaRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Wrong or already used code", body = ErrorBody),
        (status = 401, description = "Invalid or expired challenge", body = ErrorBody),
    ))]
pub async fn mfa(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(req): JsonBody<MfaRequest>,
) -> ApiResult<Response> {
    let tokens = state.service.complete_mfa(&req.mfa_token, &req.code, &client).await?;
    Ok(token_response(&state, tokens, StatusCode::OK))
}

/// End the current session; its access and refresh tokens stop working at once.
#[utoipa::path(post, path = "/v1/auth/sign-out", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn sign_out(State(state): State<AppState>, CurrentUser(who): CurrentUser) -> ApiResult<StatusCode> {
    state.service.sign_out(&who).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an anonymous user and sign it in; sign up later with its token to keep its data.
#[utoipa::path(post, path = "/v1/auth/anonymous", tag = "auth",
    params(("X-Tenant-ID" = uuid::Uuid, Header, description = "The tenant")),
    responses((status = 201, description = "Anonymous user signed in", body = TokenResponse)))]
pub async fn anonymous(
    State(state): State<AppState>,
    RequiredTenant(tenant): RequiredTenant,
    Client(client): Client,
) -> ApiResult<Response> {
    let tokens = state.service.sign_in_anonymously(tenant, &client).await?;
    Ok(token_response(&state, tokens, StatusCode::CREATED))
}
