//! Email addresses and what is mailed to them: `/v1/me/emails` (the user's own), the server's
//! `/v1/users/{id}/emails`, and the token endpoints under `/v1/auth` that the mailed links
//! also reach through the hosted pages (verify, reset the password, undo a change of primary).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_core::UserId;
use tessera_core::mail::EmailAddress;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Client, CurrentUser, JsonBody, PathParams, RequiredTenant, ServerTenant};

/// One of the user's addresses.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailView {
    pub id: Uuid,
    /// Lower-case.
    pub email: String,
    /// The address sign-in and recovery use (the user's `primary_email`).
    pub primary: bool,
    pub verified: bool,
    pub created_at: DateTime<Utc>,
}

impl EmailView {
    fn new(a: EmailAddress, primary: Option<&str>) -> Self {
        Self {
            primary: primary == Some(a.email.as_str()),
            id: a.id,
            email: a.email,
            verified: a.verified,
            created_at: a.created_at,
        }
    }

    /// The views of `all`, marking `primary`.
    fn list(all: Vec<EmailAddress>, primary: Option<&str>) -> Vec<Self> {
        all.into_iter().map(|a| Self::new(a, primary)).collect()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEmail {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerNewEmail {
    pub email: String,
    /// Whether the server vouches for the address (no mail is sent either way).
    #[serde(default)]
    pub verified: bool,
}

/// The signed-in user's addresses, the primary among them.
#[utoipa::path(get, path = "/v1/me/emails", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "The addresses", body = [EmailView]), (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn list_my_emails(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
) -> ApiResult<axum::Json<Vec<EmailView>>> {
    let all = state.service.my_emails(&who).await?;
    Ok(axum::Json(EmailView::list(all, who.user.primary_email.as_deref())))
}

/// Add an address; a verification mail goes to it.
#[utoipa::path(post, path = "/v1/me/emails", tag = "me", security(("bearer" = [])),
    request_body = NewEmail,
    responses(
        (status = 201, description = "Added, unverified", body = EmailView),
        (status = 400, description = "Not an address", body = ErrorBody),
        (status = 409, description = "The address belongs to an account already", body = ErrorBody),
        (status = 429, description = "Too many verification mails", body = ErrorBody),
    ))]
pub async fn add_my_email(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    JsonBody(body): JsonBody<NewEmail>,
) -> ApiResult<(StatusCode, axum::Json<EmailView>)> {
    let added = state.service.add_my_email(&who, &body.email).await?;
    Ok((StatusCode::CREATED, axum::Json(EmailView::new(added, who.user.primary_email.as_deref()))))
}

/// Send the verification mail of an unverified address again.
#[utoipa::path(post, path = "/v1/me/emails/{id}/verification", tag = "me", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The address")),
    responses(
        (status = 202, description = "Queued"),
        (status = 400, description = "Verified already", body = ErrorBody),
        (status = 404, description = "No such address", body = ErrorBody),
        (status = 429, description = "Too many verification mails for this address or user", body = ErrorBody),
    ))]
pub async fn resend_verification(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<StatusCode> {
    state.service.resend_verification(&who, id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Make a verified address the primary. The old one stays on the account, and is told with a
/// link that undoes the change.
#[utoipa::path(post, path = "/v1/me/emails/{id}/primary", tag = "me", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The address")),
    responses(
        (status = 200, description = "The addresses, with the new primary", body = [EmailView]),
        (status = 400, description = "The address is not verified", body = ErrorBody),
        (status = 404, description = "No such address", body = ErrorBody),
    ))]
pub async fn make_primary(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<axum::Json<Vec<EmailView>>> {
    let user = state.service.make_primary(&who, id).await?;
    let all = state.service.emails_of(user.tenant_id, user.id).await?;
    Ok(axum::Json(EmailView::list(all, user.primary_email.as_deref())))
}

/// Remove an address other than the primary.
#[utoipa::path(delete, path = "/v1/me/emails/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The address")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "It is the primary", body = ErrorBody),
        (status = 404, description = "No such address", body = ErrorBody),
    ))]
pub async fn remove_my_email(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<StatusCode> {
    state.service.remove_my_email(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's addresses.
#[utoipa::path(get, path = "/v1/users/{id}/emails", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The user")),
    responses((status = 200, description = "The addresses", body = [EmailView]), (status = 404, description = "No such user", body = ErrorBody)))]
pub async fn list_user_emails(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<axum::Json<Vec<EmailView>>> {
    let user = state.service.get_user(tenant.id, UserId(id)).await?;
    let all = state.service.emails_of(tenant.id, user.id).await?;
    Ok(axum::Json(EmailView::list(all, user.primary_email.as_deref())))
}

/// Add an address to a user, verified if the server says so; nothing is mailed.
#[utoipa::path(post, path = "/v1/users/{id}/emails", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The user")),
    request_body = ServerNewEmail,
    responses(
        (status = 201, description = "Added", body = EmailView),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "The address belongs to an account already", body = ErrorBody),
    ))]
pub async fn add_user_email(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
    JsonBody(body): JsonBody<ServerNewEmail>,
) -> ApiResult<(StatusCode, axum::Json<EmailView>)> {
    let added = state.service.add_user_email(tenant.id, UserId(id), &body.email, body.verified).await?;
    Ok((StatusCode::CREATED, axum::Json(EmailView::new(added, None))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// The `token` of the mailed link.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifiedView {
    pub email: String,
    pub verified: bool,
}

/// Confirm an address with the token mailed to it (the link's page does the same).
#[utoipa::path(post, path = "/v1/auth/verify-email", tag = "auth",
    request_body = TokenBody,
    responses(
        (status = 200, description = "Verified", body = VerifiedView),
        (status = 400, description = "`invalid_token`: unknown, used or expired", body = ErrorBody),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<TokenBody>,
) -> ApiResult<axum::Json<VerifiedView>> {
    let done = state.service.verify_email(&body.token).await?;
    Ok(axum::Json(VerifiedView { email: done.email, verified: true }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
}

/// Ask for a password-reset mail. The answer is the same whether an account has the address
/// or not.
#[utoipa::path(post, path = "/v1/auth/password-reset", tag = "auth",
    params(("X-Tenant-ID" = uuid::Uuid, Header, description = "The tenant")),
    request_body = ResetRequest,
    responses(
        (status = 202, description = "If an account has the address, a link is on its way"),
        (status = 429, description = "Too many requests for this address or from this client", body = ErrorBody),
    ))]
pub async fn request_password_reset(
    State(state): State<AppState>,
    RequiredTenant(tenant): RequiredTenant,
    Client(client): Client,
    JsonBody(body): JsonBody<ResetRequest>,
) -> ApiResult<StatusCode> {
    state.service.request_password_reset(tenant, &body.email, &client).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    pub token: String,
    /// 8–128 characters, and not easily guessed.
    pub new_password: String,
}

/// Set a new password with the mailed token; every session of the account ends.
#[utoipa::path(post, path = "/v1/auth/password-reset/confirm", tag = "auth",
    request_body = ResetConfirm,
    responses(
        (status = 204, description = "The password is changed"),
        (status = 400, description = "`invalid_token`, or a password the rules refuse", body = ErrorBody),
    ))]
pub async fn confirm_password_reset(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ResetConfirm>,
) -> ApiResult<StatusCode> {
    state.service.confirm_password_reset(&body.token, body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Undo a change of primary address with the token mailed to the old one: it is the primary
/// again, and every session ends.
#[utoipa::path(post, path = "/v1/auth/revert-email", tag = "auth",
    request_body = TokenBody,
    responses(
        (status = 200, description = "The old address is the primary again", body = VerifiedView),
        (status = 400, description = "`invalid_token`: unknown, used or expired", body = ErrorBody),
        (status = 409, description = "The old address belongs to another account now", body = ErrorBody),
    ))]
pub async fn revert_email(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<TokenBody>,
) -> ApiResult<axum::Json<VerifiedView>> {
    let done = state.service.revert_email(&body.token).await?;
    Ok(axum::Json(VerifiedView { email: done.email, verified: true }))
}
