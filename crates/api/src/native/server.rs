//! The tenant's server API (server key): users, suspensions, teams, memberships, settings.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_core::{SuspensionId, TeamId, UserId};
use tessera_service::oauth::NewOAuthClient;
use tessera_service::{Actor, NewSuspension, TeamInput, UpdateOptions};
use tessera_store::UserFilter;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::user_response;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{IfMatch, JsonBody, JsonObject, PathParams, QueryParams, ServerTenant};
use crate::views::{Audience, SettingsView, SuspensionView, TeamView, UserUpdate, UserView};
use tessera_core::DomainError;

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
pub struct UserPage {
    pub items: Vec<UserView>,
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
) -> ApiResult<axum::Json<UserPage>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let filter = UserFilter {
        email: q.email,
        username: q.username,
        status: q.status,
        is_anonymous: q.is_anonymous,
        is_service_account: q.is_service_account,
        after: q.cursor.map(UserId),
        limit,
    };
    let users = state.service.list_users(tenant.id, filter).await?;
    let now = state.service.now();
    let next_cursor = (users.len() == limit as usize).then(|| users.last().map(|u| u.id.0)).flatten();
    Ok(axum::Json(UserPage {
        items: users.iter().map(|u| UserView::new(u, Audience::Server, &state.public_url, now)).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccount {
    /// 1–50 of `[a-zA-Z0-9_-@.]`, unique in the tenant.
    pub username: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceAccountCreated {
    pub user: UserView,
    /// OAuth2 client id for the `client_credentials` grant.
    pub client_id: String,
    /// Shown once; Tessera keeps only its hash.
    pub client_secret: String,
}

/// Create a service account (a machine identity that cannot edit itself) with OAuth2 client
/// credentials.
#[utoipa::path(post, path = "/v1/service-accounts", tag = "server", security(("server_key" = [])),
    request_body = CreateServiceAccount,
    responses(
        (status = 201, description = "The account and its credentials", body = ServiceAccountCreated),
        (status = 400, description = "Invalid username", body = ErrorBody),
        (status = 409, description = "Username taken", body = ErrorBody),
    ))]
pub async fn create_service_account(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    JsonBody(req): JsonBody<CreateServiceAccount>,
) -> ApiResult<(StatusCode, axum::Json<ServiceAccountCreated>)> {
    let created = state.service.create_service_account(tenant.id, &req.username).await?;
    let (Some(user), Some(client_secret)) = (created.user, created.client_secret) else {
        return Err(DomainError::Internal("a service account has a user and a secret".into()).into());
    };
    let user = UserView::new(&user, Audience::Server, &state.public_url, state.service.now());
    Ok((
        StatusCode::CREATED,
        axum::Json(ServiceAccountCreated { user, client_id: created.client.client_id, client_secret }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOAuthClient {
    /// Shown to people on the consent page. 1–100 characters.
    pub name: String,
    /// Exact redirect URIs: https, http on a loopback host, or a reverse-domain app scheme.
    /// Required for `authorization_code`.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Any of `authorization_code`, `refresh_token`, `client_credentials`.
    pub grant_types: Vec<String>,
    /// A public client (browser or native app) has no secret and must use PKCE S256.
    #[serde(default)]
    pub public: bool,
}

/// A registered OAuth client. `client_secret` appears only in the answer to its creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthClientView {
    pub client_id: String,
    /// Shown once for confidential clients; Tessera keeps only its hash. Absent for public ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<&'static str>,
    pub public: bool,
    /// The service-account user a `client_credentials` client acts as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl OAuthClientView {
    fn new(c: &tessera_core::oauth::OAuthClient, client_secret: Option<String>) -> Self {
        Self {
            client_id: c.client_id.clone(),
            client_secret,
            name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            grant_types: c.grant_types.iter().map(|g| g.as_str()).collect(),
            public: c.is_public,
            user_id: c.user_id.map(|u| u.0),
            created_at: c.created_at.timestamp_millis(),
        }
    }
}

/// Register an OAuth 2.0 / OpenID Connect client of this tenant. Confidential clients get a
/// secret, shown once; public clients get none and must use PKCE.
#[utoipa::path(post, path = "/v1/oauth/clients", tag = "server", security(("server_key" = [])),
    request_body = CreateOAuthClient,
    responses(
        (status = 201, description = "The client, with its secret if confidential", body = OAuthClientView),
        (status = 400, description = "Invalid name, redirect URI or grant type", body = ErrorBody),
    ))]
pub async fn create_oauth_client(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    JsonBody(req): JsonBody<CreateOAuthClient>,
) -> ApiResult<(StatusCode, axum::Json<OAuthClientView>)> {
    let new = NewOAuthClient {
        name: req.name,
        redirect_uris: req.redirect_uris,
        grant_types: req.grant_types,
        public: req.public,
    };
    let created = state.service.create_oauth_client(tenant.id, new).await?;
    Ok((StatusCode::CREATED, axum::Json(OAuthClientView::new(&created.client, created.client_secret))))
}

/// The tenant's OAuth clients, oldest first (without secrets).
#[utoipa::path(get, path = "/v1/oauth/clients", tag = "server", security(("server_key" = [])),
    responses((status = 200, description = "The clients", body = [OAuthClientView])))]
pub async fn list_oauth_clients(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
) -> ApiResult<axum::Json<Vec<OAuthClientView>>> {
    let clients = state.service.list_oauth_clients(tenant.id).await?;
    Ok(axum::Json(clients.iter().map(|c| OAuthClientView::new(c, None)).collect()))
}

/// Delete a client: its codes and refresh tokens stop working; a `client_credentials`
/// client's service-account user is deleted with it.
#[utoipa::path(delete, path = "/v1/oauth/clients/{client_id}", tag = "server", security(("server_key" = [])),
    params(("client_id" = String, Path, description = "The client")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such client", body = ErrorBody)))]
pub async fn delete_oauth_client(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(client_id): PathParams<String>,
) -> ApiResult<StatusCode> {
    state.service.delete_oauth_client(tenant.id, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
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
    let user = state.service.update_user(Actor::Server, tenant.id, UserId(id), &body, &opts).await?;
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
    state.service.delete_user(tenant.id, UserId(id)).await?;
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
            NewSuspension { reason: req.reason, ends_at: req.ends_at, created_by: "server".into() },
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
    let user = state.service.lift_suspension(tenant.id, UserId(id), SuspensionId(sid)).await?;
    Ok(user_response(&state, &user, Audience::Server, StatusCode::OK))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamBody {
    /// 1–256 characters; required on creation.
    pub display_name: Option<String>,
    /// An https URL, or null.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub profile_image_url: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub client_metadata: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub client_read_only_metadata: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub server_metadata: Option<Map<String, Value>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

impl From<TeamBody> for TeamInput {
    fn from(b: TeamBody) -> Self {
        Self {
            display_name: b.display_name,
            profile_image_url: b.profile_image_url,
            client_metadata: b.client_metadata,
            client_read_only_metadata: b.client_read_only_metadata,
            server_metadata: b.server_metadata,
        }
    }
}

/// Create a team.
#[utoipa::path(post, path = "/v1/teams", tag = "server", security(("server_key" = [])),
    request_body = TeamBody,
    responses((status = 201, description = "The team", body = TeamView), (status = 400, description = "Invalid fields", body = ErrorBody)))]
pub async fn create_team(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    JsonBody(body): JsonBody<TeamBody>,
) -> ApiResult<(StatusCode, axum::Json<TeamView>)> {
    let team = state.service.create_team(tenant.id, body.into()).await?;
    Ok((StatusCode::CREATED, axum::Json(TeamView::new(&team, Audience::Server))))
}

/// List the tenant's teams.
#[utoipa::path(get, path = "/v1/teams", tag = "server", security(("server_key" = [])),
    responses((status = 200, description = "Teams", body = [TeamView])))]
pub async fn list_teams(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
) -> ApiResult<axum::Json<Vec<TeamView>>> {
    let teams = state.service.list_teams(tenant.id).await?;
    Ok(axum::Json(teams.iter().map(|t| TeamView::new(t, Audience::Server)).collect()))
}

/// Read a team.
#[utoipa::path(get, path = "/v1/teams/{id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The team")),
    responses((status = 200, description = "The team", body = TeamView), (status = 404, description = "No such team", body = ErrorBody)))]
pub async fn get_team(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<axum::Json<TeamView>> {
    let team = state.service.get_team(tenant.id, TeamId(id)).await?;
    Ok(axum::Json(TeamView::new(&team, Audience::Server)))
}

/// Change a team.
#[utoipa::path(patch, path = "/v1/teams/{id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The team")),
    request_body = TeamBody,
    responses((status = 200, description = "The team", body = TeamView), (status = 404, description = "No such team", body = ErrorBody)))]
pub async fn patch_team(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
    JsonBody(body): JsonBody<TeamBody>,
) -> ApiResult<axum::Json<TeamView>> {
    let team = state.service.update_team(tenant.id, TeamId(id), body.into()).await?;
    Ok(axum::Json(TeamView::new(&team, Audience::Server)))
}

/// Delete a team; it stops being anyone's selected team.
#[utoipa::path(delete, path = "/v1/teams/{id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The team")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such team", body = ErrorBody)))]
pub async fn delete_team(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<StatusCode> {
    state.service.delete_team(tenant.id, TeamId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The team's members' ids.
#[utoipa::path(get, path = "/v1/teams/{id}/members", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The team")),
    responses((status = 200, description = "Member user ids", body = [Uuid]), (status = 404, description = "No such team", body = ErrorBody)))]
pub async fn list_members(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<axum::Json<Vec<Uuid>>> {
    let members = state.service.team_members(tenant.id, TeamId(id)).await?;
    Ok(axum::Json(members.into_iter().map(|u| u.0).collect()))
}

/// Add a user to a team (idempotent).
#[utoipa::path(put, path = "/v1/teams/{id}/members/{user_id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The team"), ("user_id" = Uuid, Path, description = "The user")),
    responses((status = 204, description = "Member"), (status = 404, description = "No such team or user", body = ErrorBody)))]
pub async fn add_member(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams((id, user)): PathParams<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    state.service.add_member(tenant.id, TeamId(id), UserId(user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a user from a team; if it was the user's selected team, the selection is cleared.
#[utoipa::path(delete, path = "/v1/teams/{id}/members/{user_id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The team"), ("user_id" = Uuid, Path, description = "The user")),
    responses((status = 204, description = "Removed"), (status = 404, description = "Not a member", body = ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams((id, user)): PathParams<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    state.service.remove_member(tenant.id, TeamId(id), UserId(user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoliciesBody {
    /// The tenant's own Cedar policies, evaluated with the built-in ones for every update of
    /// every surface: a `forbid` here refuses the change, its `@notice("...")` comes back in the
    /// error's `notices`. Principals are `User` (self-service) or `Server`; the action is
    /// `Action::"update"`; the resource is the `User` (attributes `auth_provider`,
    /// `is_service_account`, `is_anonymous`, `username`); the context has `field`, `surface` and
    /// `granted_by_contract`.
    pub source: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoliciesView {
    /// The tenant's own policies.
    pub source: String,
    /// The built-in policies they are evaluated with (read-only).
    pub built_in: &'static str,
}

/// The tenant's Cedar field policies, and the built-in ones beside them.
#[utoipa::path(get, path = "/v1/policies", tag = "server", security(("server_key" = [])),
    responses((status = 200, description = "Policies", body = PoliciesView)))]
pub async fn get_policies(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
) -> ApiResult<axum::Json<PoliciesView>> {
    let source = state.service.tenant_policies(tenant.id).await?;
    Ok(axum::Json(PoliciesView { source, built_in: tessera_core::policy::DEFAULT_POLICIES }))
}

/// Replace the tenant's own Cedar policies. A source that does not compile is refused.
#[utoipa::path(put, path = "/v1/policies", tag = "server", security(("server_key" = [])),
    request_body = PoliciesBody,
    responses((status = 200, description = "Policies", body = PoliciesView), (status = 400, description = "The policies do not compile", body = ErrorBody)))]
pub async fn put_policies(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    JsonBody(body): JsonBody<PoliciesBody>,
) -> ApiResult<axum::Json<PoliciesView>> {
    state.service.set_tenant_policies(tenant.id, &body.source).await?;
    Ok(axum::Json(PoliciesView { source: body.source, built_in: tessera_core::policy::DEFAULT_POLICIES }))
}

/// The tenant's settings.
#[utoipa::path(get, path = "/v1/settings", tag = "server", security(("server_key" = [])),
    responses((status = 200, description = "Settings", body = SettingsView)))]
pub async fn get_settings(ServerTenant(tenant): ServerTenant) -> axum::Json<SettingsView> {
    axum::Json(SettingsView::from(&tenant.settings))
}

/// Change some of the tenant's settings.
#[utoipa::path(patch, path = "/v1/settings", tag = "server", security(("server_key" = [])),
    request_body = SettingsView,
    responses((status = 200, description = "Settings", body = SettingsView), (status = 400, description = "Invalid setting", body = ErrorBody)))]
pub async fn patch_settings(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    JsonObject(body): JsonObject,
) -> ApiResult<axum::Json<SettingsView>> {
    let t = state.service.update_tenant_settings(tenant.id, &body).await?;
    Ok(axum::Json(SettingsView::from(&t.settings)))
}
