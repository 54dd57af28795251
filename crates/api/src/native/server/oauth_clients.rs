//! OAuth clients and service accounts (a confidential client with a user of its own).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tessera_service::oauth::NewOAuthClient;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{JsonBody, PathParams, ServerTenant};
use crate::views::{Audience, UserView};
use tessera_core::DomainError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_service_account))
        .routes(routes!(create_oauth_client, list_oauth_clients))
        .routes(routes!(delete_oauth_client))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccount {
    /// 1–50 of `[a-zA-Z0-9_-@.]`, unique in the tenant.
    pub username: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceAccountCreated<'a> {
    pub user: UserView<'a>,
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
) -> ApiResult<Response> {
    let created = state.service.create_service_account(tenant.id, &req.username).await?;
    let (Some(user), Some(client_secret)) = (created.user, created.client_secret) else {
        return Err(DomainError::Internal("a service account has a user and a secret".into()).into());
    };
    let user = UserView::new(&user, Audience::Server, &state.public_url, state.service.now());
    let body = ServiceAccountCreated { user, client_id: created.client.client_id, client_secret };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
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
