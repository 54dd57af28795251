//! Signing in and out as Stack's SDK does it: password sign-in and sign-up, the TOTP step
//! (`MULTI_FACTOR_AUTHENTICATION_REQUIRED` with an `attempt_code`, then `/auth/mfa/sign-in`),
//! anonymous sign-up, the SDK's refresh at `/auth/oauth/token`, and sign-out of the current
//! session.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::{DomainError, TenantId, validate};
use tessera_service::{SignUp, SignedUp};
use tessera_store::Login;

use super::error::StackError;
use super::{authenticate, is_publishable_key, project, stack_access_token, token_body};
use crate::AppState;
use crate::extract::{Client, JsonBody};

use axum::Json;

#[derive(Debug, Deserialize)]
pub(super) struct Credentials {
    email: String,
    password: String,
    /// Accepted and ignored: Tessera sends no verification mail from this surface.
    #[serde(default)]
    #[allow(dead_code, reason = "part of the contract's body; nothing to do with it")]
    verification_callback_url: Option<String>,
}

/// The client access every sign-in needs: the project and its publishable key.
async fn client_project(state: &AppState, h: &HeaderMap) -> Result<TenantId, StackError> {
    Ok(project(state, h).await?.tenant.id)
}

pub(super) async fn password_sign_in(
    State(state): State<AppState>,
    h: HeaderMap,
    Client(client): Client,
    body: Result<JsonBody<Credentials>, crate::error::ApiError>,
) -> Result<Json<Value>, StackError> {
    let tenant = client_project(&state, &h).await?;
    let JsonBody(c) = body?;
    match state.service.sign_in(tenant, Login::Email(c.email.trim()), c.password, &client).await {
        Ok(tokens) => Ok(Json(token_body(&state, &tokens).await?)),
        Err(DomainError::MfaRequired { mfa_token, .. }) => Err(StackError::new(
            StatusCode::BAD_REQUEST,
            "MULTI_FACTOR_AUTHENTICATION_REQUIRED",
            "a second factor is required",
        )
        .with(json!({"attempt_code": mfa_token}))),
        Err(DomainError::Unauthenticated(_)) => {
            Err(StackError::new(StatusCode::BAD_REQUEST, "EMAIL_PASSWORD_MISMATCH", "wrong email or password"))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn password_sign_up(
    State(state): State<AppState>,
    h: HeaderMap,
    Client(client): Client,
    body: Result<JsonBody<Credentials>, crate::error::ApiError>,
) -> Result<axum::response::Response, StackError> {
    use axum::response::IntoResponse;
    let tenant = client_project(&state, &h).await?;
    let JsonBody(c) = body?;
    let email = c.email.clone();
    let req = SignUp { email: c.email, password: c.password, username: None, display_name: None };
    match state.service.sign_up(tenant, req, None, &client).await {
        Ok(SignedUp::In(tokens)) => Ok(Json(token_body(&state, &tokens).await?).into_response()),
        // The tenant requires verified addresses: the same answer as the native API's, which
        // does not tell whether the address was taken.
        Ok(SignedUp::VerificationSent) => Ok(crate::native::auth::verification_sent()),
        Err(DomainError::Conflict { .. }) => Err(StackError::new(
            StatusCode::CONFLICT,
            "USER_EMAIL_ALREADY_EXISTS",
            "a user with this email already exists",
        )
        .with(json!({"email": email, "would_work_if_email_was_verified": false}))),
        Err(DomainError::Validation(fields)) => {
            let password = fields.iter().find(|f| f.field == "password").map(|f| f.code);
            Err(match password {
                Some("too_short") => {
                    StackError::new(StatusCode::BAD_REQUEST, "PASSWORD_TOO_SHORT", "the password is too short")
                        .with(json!({"min_length": validate::PASSWORD_CHARS.start()}))
                }
                Some("too_long") => {
                    StackError::new(StatusCode::BAD_REQUEST, "PASSWORD_TOO_LONG", "the password is too long")
                        .with(json!({"maxLength": validate::PASSWORD_CHARS.end()}))
                }
                _ => DomainError::Validation(fields).into(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct MfaSignIn {
    /// Always `totp`.
    r#type: String,
    totp: String,
    /// The `attempt_code` of `MULTI_FACTOR_AUTHENTICATION_REQUIRED`.
    code: String,
}

pub(super) async fn mfa_sign_in(
    State(state): State<AppState>,
    h: HeaderMap,
    Client(client): Client,
    body: Result<JsonBody<MfaSignIn>, crate::error::ApiError>,
) -> Result<Json<Value>, StackError> {
    let tenant = client_project(&state, &h).await?;
    let JsonBody(m) = body?;
    if m.r#type != "totp" {
        return Err(StackError::schema_field("type", "invalid_choice", "must be totp"));
    }
    match state.service.complete_mfa(&m.code, &m.totp, &client).await {
        Ok(tokens) if tokens.user.tenant_id == tenant => {
            let mut body = token_body(&state, &tokens).await?;
            body["is_new_user"] = json!(false);
            Ok(Json(body))
        }
        Ok(_) | Err(DomainError::Unauthenticated(_)) => Err(StackError::new(
            StatusCode::NOT_FOUND,
            "VERIFICATION_CODE_NOT_FOUND",
            "the attempt code is unknown or has expired; sign in again",
        )),
        Err(DomainError::Validation(_)) => {
            Err(StackError::new(StatusCode::BAD_REQUEST, "INVALID_TOTP_CODE", "the code is not right"))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn anonymous_sign_up(
    State(state): State<AppState>,
    h: HeaderMap,
    Client(client): Client,
) -> Result<Json<Value>, StackError> {
    let tenant = client_project(&state, &h).await?;
    let tokens = state.service.sign_in_anonymously(tenant, &client).await?;
    Ok(Json(token_body(&state, &tokens).await?))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenForm {
    grant_type: Option<String>,
    refresh_token: Option<String>,
    /// The project id.
    client_id: Option<String>,
    /// The project's publishable client key.
    client_secret: Option<String>,
}

/// The SDK's refresh, an OAuth 2.0 refresh grant authenticated with the project id and its
/// publishable key (no Stack headers). Stack's SDK keeps its refresh token for the whole
/// session, so here the refresh token is not rotated: the answer carries the same one.
pub(super) async fn token(
    State(state): State<AppState>,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Json<Value>, StackError> {
    let Form(f) = form.map_err(|e| StackError::schema(e.body_text(), &[]))?;
    if f.grant_type.as_deref() != Some("refresh_token") {
        return Err(StackError::schema_field("grant_type", "unsupported", "must be refresh_token"));
    }
    let client_id = f.client_id.unwrap_or_default();
    let bad_client = || {
        StackError::new(StatusCode::BAD_REQUEST, "INVALID_OAUTH_CLIENT_ID_OR_SECRET", "the project id or key is wrong")
            .with(json!({"client_id": client_id}))
    };
    let tenant = match client_id.parse::<TenantId>() {
        Ok(id) => state.service.tenant(id).await.map_err(|_| bad_client())?,
        Err(_) => return Err(bad_client()),
    };
    if !is_publishable_key(&tenant, f.client_secret.as_deref().unwrap_or_default()) {
        return Err(bad_client());
    }
    let refresh = f.refresh_token.unwrap_or_default();
    let tokens = state.service.refresh_access_token(tenant.id, &refresh).await.map_err(|e| match e {
        DomainError::Unauthenticated(_) => StackError::refresh_token_not_found(),
        other => other.into(),
    })?;
    let access_token = stack_access_token(&state, &tokens).await?;
    Ok(Json(json!({
        "access_token": access_token, "token_type": "Bearer", "expires_in": tokens.expires_in,
        "refresh_token": tokens.refresh_token,
    })))
}

/// Ends the session of the access token. A session already ended is Stack's
/// `REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED`, which the SDK takes as signed out.
pub(super) async fn sign_out(State(state): State<AppState>, h: HeaderMap) -> Result<Json<Value>, StackError> {
    let (who, _) = authenticate(&state, &h).await.map_err(|e| {
        if e.code() == Some("UNPARSABLE_ACCESS_TOKEN") { StackError::refresh_token_not_found() } else { e }
    })?;
    state.service.sign_out(&who).await?;
    Ok(Json(json!({"success": true})))
}
