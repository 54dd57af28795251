//! The identity providers a tenant's users may sign in with.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_core::federation::IdentityProvider;
use tessera_service::federation::ProviderInput;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{JsonBody, PathParams, ServerTenant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_provider, list_providers)).routes(routes!(
        get_provider,
        patch_provider,
        delete_provider
    ))
}

/// A provider's fields; on `PATCH`, absent fields stay as they are.
// The body is read as the service's `ProviderInput`; this type documents it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "documents the accepted body; the service's ProviderInput reads it")]
pub struct ProviderBody {
    /// 1–32 of `a-z`, `0-9` and `-`; names the provider in URLs. Creation only.
    pub slug: Option<String>,
    /// `oidc` (any OpenID provider) or `github`. Creation only.
    pub kind: Option<String>,
    /// What the sign-in page's button says: "Continue with …".
    pub display_name: Option<String>,
    /// Tessera's client id at the provider.
    pub client_id: Option<String>,
    /// Tessera's client secret at the provider: never shown again.
    pub client_secret: Option<String>,
    /// The scopes asked for; `openid email profile` (oidc) or `read:user user:email` (github)
    /// by default.
    pub scopes: Option<Vec<String>>,
    /// `oidc`: the issuer; its discovery document is read and checked.
    pub issuer: Option<String>,
    /// `github`: where GitHub's web and API endpoints are (GitHub Enterprise).
    pub web_base_url: Option<String>,
    pub api_base_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    pub slug: String,
    pub kind: &'static str,
    pub display_name: String,
    pub client_id: String,
    /// The secret itself is never shown.
    pub has_client_secret: bool,
    pub scopes: Vec<String>,
    pub issuer: Option<String>,
    pub web_base_url: Option<String>,
    pub api_base_url: Option<String>,
    /// The redirect URI to register at the provider.
    pub callback_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ProviderView {
    fn new(state: &AppState, p: IdentityProvider) -> Self {
        Self {
            callback_url: format!("{}/oidc/{}/federation/{}/callback", state.public_url, p.tenant_id, p.slug),
            kind: p.kind.as_str(),
            has_client_secret: !p.client_secret.is_empty(),
            slug: p.slug,
            display_name: p.display_name,
            client_id: p.client_id,
            scopes: p.scopes,
            issuer: p.issuer,
            web_base_url: p.web_base_url,
            api_base_url: p.api_base_url,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Add an identity provider. An OpenID provider's discovery document is read and checked
/// first.
#[utoipa::path(post, path = "/v1/identity-providers", tag = "server", security(("server_key" = [])),
    request_body = ProviderBody,
    responses(
        (status = 201, description = "The provider", body = ProviderView),
        (status = 400, description = "Invalid fields, or an issuer whose discovery document does not do", body = ErrorBody),
        (status = 409, description = "The slug is taken", body = ErrorBody),
    ))]
pub async fn create_provider(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    JsonBody(body): JsonBody<ProviderInput>,
) -> ApiResult<(StatusCode, axum::Json<ProviderView>)> {
    let p = state.service.create_identity_provider(tenant.id, body).await?;
    Ok((StatusCode::CREATED, axum::Json(ProviderView::new(&state, p))))
}

/// The tenant's identity providers.
#[utoipa::path(get, path = "/v1/identity-providers", tag = "server", security(("server_key" = [])),
    responses((status = 200, description = "The providers", body = [ProviderView])))]
pub async fn list_providers(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
) -> ApiResult<axum::Json<Vec<ProviderView>>> {
    let all = state.service.identity_providers(tenant.id).await?;
    Ok(axum::Json(all.into_iter().map(|p| ProviderView::new(&state, p)).collect()))
}

/// One identity provider.
#[utoipa::path(get, path = "/v1/identity-providers/{slug}", tag = "server", security(("server_key" = [])),
    params(("slug" = String, Path, description = "The provider")),
    responses((status = 200, description = "The provider", body = ProviderView), (status = 404, description = "No such provider", body = ErrorBody)))]
pub async fn get_provider(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(slug): PathParams<String>,
) -> ApiResult<axum::Json<ProviderView>> {
    let p = state.service.identity_provider(tenant.id, &slug).await?;
    Ok(axum::Json(ProviderView::new(&state, p)))
}

/// Change an identity provider; its slug and kind stay.
#[utoipa::path(patch, path = "/v1/identity-providers/{slug}", tag = "server", security(("server_key" = [])),
    params(("slug" = String, Path, description = "The provider")),
    request_body = ProviderBody,
    responses(
        (status = 200, description = "The provider", body = ProviderView),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
    ))]
pub async fn patch_provider(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(slug): PathParams<String>,
    JsonBody(body): JsonBody<ProviderInput>,
) -> ApiResult<axum::Json<ProviderView>> {
    let p = state.service.update_identity_provider(tenant.id, &slug, body).await?;
    Ok(axum::Json(ProviderView::new(&state, p)))
}

/// Remove an identity provider.
#[utoipa::path(delete, path = "/v1/identity-providers/{slug}", tag = "server", security(("server_key" = [])),
    params(("slug" = String, Path, description = "The provider")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such provider", body = ErrorBody)))]
pub async fn delete_provider(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(slug): PathParams<String>,
) -> ApiResult<StatusCode> {
    state.service.delete_identity_provider(tenant.id, &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}
