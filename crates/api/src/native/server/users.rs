//! Users and their suspensions, as the tenant's server manages them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_core::events::By;
use tessera_core::{SuspensionId, UserId};
use tessera_service::{NewSuspension, UpdateOptions};
use tessera_store::UserFilter;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{IfMatch, JsonBody, JsonObject, PathParams, QueryParams, ServerTenant};
use crate::native::user_response;
use crate::views::{Audience, SuspensionView, UserUpdate, UserView};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, patch_user, delete_user))
        .routes(routes!(suspend_user))
        .routes(routes!(lift_suspension))
}

/// Creation takes every field of an update, plus these.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code, reason = "documents the accepted body; the service reads it")]
pub struct CreateUser {
    #[serde(flatten)]
    pub fields: UserUpdate,
    /// Optional: a user without one signs in by other means.
    pub password: Option<String>,
    pub is_service_account: Option<bool>,
    pub is_anonymous: Option<bool>,
    /// `local` (default), `oidc` or `saml`.
    pub auth_provider: Option<String>,
    pub oauth_provider: Option<String>,
    pub oauth_id: Option<String>,
}

/// Create a user.
#[utoipa::path(post, path = "/v1/users", tag = "server", security(("server_key" = [])),
    request_body = CreateUser,
    responses(
        (status = 201, description = "The new user", body = UserView),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 409, description = "Email or username taken", body = ErrorBody),
    ))]
pub async fn create_user(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let user = state.service.create_user(tenant.id, &body).await?;
    Ok(user_response(&state, &user, Audience::Server, StatusCode::CREATED))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Exact email (case-insensitive).
    pub email: Option<String>,
    /// Exact username (case-insensitive).
    pub username: Option<String>,
    /// `pending`, `active` or `disabled`.
    pub status: Option<String>,
    pub is_anonymous: Option<bool>,
    pub is_service_account: Option<bool>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage<'a> {
    pub items: Vec<UserView<'a>>,
    /// Pass as `cursor` for the next page; `null` when this page was not full (the last one).
    pub next_cursor: Option<Uuid>,
}

/// List users, filtered, in id order, a page at a time (keyset pagination: stable under
/// concurrent inserts, and as fast on the last page as on the first).
#[utoipa::path(get, path = "/v1/users", tag = "server", security(("server_key" = [])),
    params(ListUsersQuery),
    responses((status = 200, description = "A page of users", body = UserPage), (status = 400, description = "Bad query", body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    QueryParams(q): QueryParams<ListUsersQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let filter = UserFilter {
        email: q.email,
        username: q.username,
        status: q.status,
        is_anonymous: q.is_anonymous,
        is_service_account: q.is_service_account,
        after: q.cursor.map(UserId),
        limit,
        prefix: None,
    };
    let users = state.service.list_users(tenant.id, filter).await?;
    let now = state.service.now();
    let next_cursor = (users.len() == limit as usize).then(|| users.last().map(|u| u.id.0)).flatten();
    let items = users.iter().map(|u| UserView::new(u, Audience::Server, &state.public_url, now)).collect();
    Ok(axum::Json(UserPage { items, next_cursor }).into_response())
}

/// Read a user.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The user")),
    responses((status = 200, description = "The user", body = UserView), (status = 404, description = "No such user", body = ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<Response> {
    let user = state.service.get_user(tenant.id, UserId(id)).await?;
    Ok(user_response(&state, &user, Audience::Server, StatusCode::OK))
}

/// Change a user, including the server-only fields and tiers.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The user"), ("If-Match" = Option<String>, Header, description = "The ETag last read")),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "The updated user", body = UserView),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "Email or username taken", body = ErrorBody),
        (status = 412, description = "Stale If-Match", body = ErrorBody),
    ))]
pub async fn patch_user(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
    IfMatch(if_match): IfMatch,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let opts = UpdateOptions { if_match, ..Default::default() };
    let user = state.service.update_user(tenant.id, UserId(id), &body, &opts).await?;
    Ok(user_response(&state, &user, Audience::Server, StatusCode::OK))
}

/// Erase a user now, with no grace period.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The user")),
    responses((status = 204, description = "Erased"), (status = 404, description = "No such user", body = ErrorBody)))]
pub async fn delete_user(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<StatusCode> {
    state.service.delete_user(tenant.id, UserId(id), By::Server).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSuspension {
    pub reason: String,
    /// When it ends by itself; absent means until lifted.
    pub ends_at: Option<DateTime<Utc>>,
}

/// Suspend a user: sign-in and every authenticated call are refused while it lasts.
#[utoipa::path(post, path = "/v1/users/{id}/suspensions", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The user")),
    request_body = CreateSuspension,
    responses((status = 201, description = "The suspension", body = SuspensionView), (status = 404, description = "No such user", body = ErrorBody)))]
pub async fn suspend_user(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
    JsonBody(req): JsonBody<CreateSuspension>,
) -> ApiResult<(StatusCode, axum::Json<SuspensionView>)> {
    let s = state
        .service
        .suspend_user(
            tenant.id,
            UserId(id),
            NewSuspension { reason: req.reason, ends_at: req.ends_at, created_by: "server".into(), by: By::Server },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(SuspensionView::from(&s))))
}

/// Lift a suspension now; it stays in the user's history.
#[utoipa::path(delete, path = "/v1/users/{id}/suspensions/{suspension_id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The user"), ("suspension_id" = Uuid, Path, description = "The suspension")),
    responses((status = 200, description = "The user", body = UserView), (status = 404, description = "No such user or suspension", body = ErrorBody)))]
pub async fn lift_suspension(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams((id, sid)): PathParams<(Uuid, Uuid)>,
) -> ApiResult<Response> {
    let user = state.service.lift_suspension(tenant.id, UserId(id), SuspensionId(sid), By::Server).await?;
    Ok(user_response(&state, &user, Audience::Server, StatusCode::OK))
}
