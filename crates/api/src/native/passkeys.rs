//! Passkeys: the signed-in user's under `/v1/me/passkeys`, and sign-in with one under
//! `/v1/auth/passkey`. The options are WebAuthn's JSON as browsers take it (binary fields in
//! base64url); the credentials come back the same way.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::passkey::Passkey;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::token_response;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Client, CurrentUser, JsonBody, PathParams, RequiredTenant, parse_json, tenant_header};

/// One of the user's passkeys: never its key.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whether the passkey may be synced to the user's other devices, and whether it is.
    pub backup_eligible: bool,
    pub backed_up: bool,
}

impl From<Passkey> for PasskeyView {
    fn from(p: Passkey) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backup_eligible: p.backup_eligible,
            backed_up: p.backup_state,
        }
    }
}

/// A registration begun: answer it with `navigator.credentials.create(options)`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationOptions {
    /// Send it back with the credential; works once, for 5 minutes.
    pub registration_id: String,
    /// `{"publicKey": PublicKeyCredentialCreationOptions}`, binary fields in base64url.
    #[schema(value_type = Object)]
    pub options: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPasskey {
    pub registration_id: String,
    /// What to call it (1–64 characters); default "Passkey added {date}".
    pub name: Option<String>,
    /// The `PublicKeyCredential` the browser made, as JSON: `{id, rawId, type: "public-key",
    /// response: {clientDataJSON, attestationObject}}`, binary fields in base64url.
    #[schema(value_type = Object)]
    pub credential: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyRename {
    pub name: String,
}

/// A sign-in ceremony begun: answer it with `navigator.credentials.get(options)`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssertionOptions {
    /// Send it back with the credential; works once, for 5 minutes.
    pub challenge_id: String,
    /// `{"publicKey": PublicKeyCredentialRequestOptions}`, binary fields in base64url.
    #[schema(value_type = Object)]
    pub options: Value,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertionRequest {
    /// The challenge of an `mfa_required` answer: the passkey is then the second step after
    /// the password, and only that user's passkeys are asked for.
    pub mfa_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignIn {
    pub challenge_id: String,
    /// The `PublicKeyCredential` the browser returned, as JSON: `{id, rawId, type:
    /// "public-key", response: {clientDataJSON, authenticatorData, signature, userHandle}}`.
    #[schema(value_type = Object)]
    pub credential: Value,
}

/// Begin adding a passkey to the signed-in account.
#[utoipa::path(post, path = "/v1/me/passkeys/registration", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The options for the browser", body = RegistrationOptions),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "An anonymous user", body = ErrorBody),
    ))]
pub async fn begin_registration(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
) -> ApiResult<axum::Json<RegistrationOptions>> {
    let begun = state.service.begin_passkey_registration(&who).await?;
    Ok(axum::Json(RegistrationOptions { registration_id: begun.ceremony_id, options: begun.options }))
}

/// Add a passkey: the browser's answer to a registration.
#[utoipa::path(post, path = "/v1/me/passkeys", tag = "me", security(("bearer" = [])),
    request_body = NewPasskey,
    responses(
        (status = 201, description = "Added", body = PasskeyView),
        (status = 400, description = "Not a credential, a bad name, or registered already", body = ErrorBody),
        (status = 401, description = "Not signed in, or the registration is unknown, used, expired or not verified", body = ErrorBody),
    ))]
pub async fn add_passkey(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    JsonBody(body): JsonBody<NewPasskey>,
) -> ApiResult<(StatusCode, axum::Json<PasskeyView>)> {
    let added = state
        .service
        .finish_passkey_registration(&who, &body.registration_id, body.name.as_deref(), body.credential)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(added.into())))
}

/// The signed-in user's passkeys, oldest first.
#[utoipa::path(get, path = "/v1/me/passkeys", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "The passkeys", body = [PasskeyView]), (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn list_passkeys(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
) -> ApiResult<axum::Json<Vec<PasskeyView>>> {
    Ok(axum::Json(state.service.my_passkeys(&who).await?.into_iter().map(Into::into).collect()))
}

/// Rename a passkey.
#[utoipa::path(patch, path = "/v1/me/passkeys/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The passkey")),
    request_body = PasskeyRename,
    responses(
        (status = 200, description = "Renamed", body = PasskeyView),
        (status = 400, description = "A bad name", body = ErrorBody),
        (status = 404, description = "No such passkey", body = ErrorBody),
    ))]
pub async fn rename_passkey(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    PathParams(id): PathParams<Uuid>,
    JsonBody(body): JsonBody<PasskeyRename>,
) -> ApiResult<axum::Json<PasskeyView>> {
    Ok(axum::Json(state.service.rename_passkey(&who, id, &body.name).await?.into()))
}

/// Remove a passkey (not the last way to sign in).
#[utoipa::path(delete, path = "/v1/me/passkeys/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The passkey")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "The account's only way to sign in", body = ErrorBody),
        (status = 404, description = "No such passkey", body = ErrorBody),
    ))]
pub async fn remove_passkey(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<StatusCode> {
    state.service.remove_passkey(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Begin a sign-in with a passkey, naming no account (no allow-list: the browser offers the
/// user's passkeys for this site); or, with `mfa_token`, the second step after a password. The
/// body may be empty.
#[utoipa::path(post, path = "/v1/auth/passkey/options", tag = "auth",
    params(("X-Tenant-ID" = uuid::Uuid, Header, description = "The tenant to sign in to")),
    request_body(content = AssertionRequest, description = "Optional"),
    responses(
        (status = 200, description = "The options for the browser", body = AssertionOptions),
        (status = 400, description = "The account of the `mfa_token` has no passkey", body = ErrorBody),
        (status = 401, description = "An invalid or expired `mfa_token`", body = ErrorBody),
    ))]
pub async fn sign_in_options(
    State(state): State<AppState>,
    RequiredTenant(tenant): RequiredTenant,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<AssertionOptions>> {
    let req: AssertionRequest =
        if body.iter().all(u8::is_ascii_whitespace) { AssertionRequest::default() } else { parse_json(&body)? };
    let begun = state.service.passkey_sign_in_options(tenant, req.mfa_token.as_deref()).await?;
    Ok(axum::Json(AssertionOptions { challenge_id: begun.ceremony_id, options: begun.options }))
}

/// Sign in with a passkey: the browser's answer to the options. A passkey that verified the
/// user (PIN, biometrics) is both factors; one that did not, for an account with TOTP, is
/// answered `401 mfa_required`.
#[utoipa::path(post, path = "/v1/auth/passkey", tag = "auth",
    request_body = PasskeySignIn,
    responses(
        (status = 200, description = "Signed in", body = crate::views::TokenResponse),
        (status = 400, description = "Not a credential", body = ErrorBody),
        (status = 401, description = "Not verified, an unknown passkey, a used or expired challenge, or `mfa_required`", body = ErrorBody),
        (status = 403, description = "Suspended, deactivated, or the address is unverified", body = ErrorBody),
    ))]
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    JsonBody(body): JsonBody<PasskeySignIn>,
) -> ApiResult<Response> {
    let tenant = tenant_header(&headers)?;
    let tokens = state.service.passkey_sign_in(&body.challenge_id, tenant, body.credential, &client).await?;
    Ok(token_response(&state, tokens, StatusCode::OK))
}
