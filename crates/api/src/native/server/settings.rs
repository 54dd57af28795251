//! The tenant's settings and its Cedar field policies.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{JsonBody, JsonObject, ServerTenant};
use crate::views::SettingsView;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, patch_settings)).routes(routes!(get_policies, put_policies))
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
