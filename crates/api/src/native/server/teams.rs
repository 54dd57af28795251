//! Teams and their memberships.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use tessera_core::{TeamId, UserId};
use tessera_service::TeamInput;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{JsonBody, PathParams, ServerTenant};
use crate::views::{Audience, TeamView};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_team, list_teams))
        .routes(routes!(get_team, patch_team, delete_team))
        .routes(routes!(list_members))
        .routes(routes!(add_member, remove_member))
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
