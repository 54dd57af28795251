//! `/v1/tenants`: the operator (root key) creates and lists tenants.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{JsonBody, Operator};
use crate::views::TenantView;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1–100 characters.
    pub name: String,
}

/// Create a tenant. The response holds its server key, shown this once.
#[utoipa::path(post, path = "/v1/tenants", tag = "operator", security(("root_key" = [])),
    request_body = CreateTenant,
    responses(
        (status = 201, description = "The tenant with its server key", body = TenantView),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, description = "Wrong root key", body = ErrorBody),
    ))]
pub async fn create_tenant(
    State(state): State<AppState>,
    _: Operator,
    JsonBody(req): JsonBody<CreateTenant>,
) -> ApiResult<(StatusCode, axum::Json<TenantView>)> {
    let created = state.service.create_tenant(&req.name).await?;
    Ok((StatusCode::CREATED, axum::Json(TenantView::new(&created.tenant, Some(created.server_key)))))
}

/// List tenants.
#[utoipa::path(get, path = "/v1/tenants", tag = "operator", security(("root_key" = [])),
    responses((status = 200, description = "Tenants", body = [TenantView]), (status = 401, description = "Wrong root key", body = ErrorBody)))]
pub async fn list_tenants(State(state): State<AppState>, _: Operator) -> ApiResult<axum::Json<Vec<TenantView>>> {
    let tenants = state.service.list_tenants().await?;
    Ok(axum::Json(tenants.iter().map(|t| TenantView::new(t, None)).collect()))
}
