//! Webhook endpoints, their deliveries, and redelivery.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_core::events::{Delivery, WebhookEndpoint};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{JsonObject, PathParams, QueryParams, ServerTenant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, patch_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

/// What a webhook endpoint's creation and update take.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code, reason = "documents the accepted body; the service reads it")]
pub struct WebhookBody {
    /// An http(s) URL; it must resolve to a public address unless the operator allows private
    /// targets.
    pub url: Option<String>,
    /// The event types to deliver (`user.created`, `user.updated`, …); absent, empty or null
    /// means every type.
    pub event_types: Option<Vec<String>>,
    /// At most 500 characters.
    pub description: Option<String>,
    /// Update only: a disabled endpoint gets no new deliveries.
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub description: Option<String>,
    /// `false` after the endpoint answered `410 Gone`, or when it was disabled.
    pub enabled: bool,
    /// `whsec_…`, only when created or rotated: it is never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookView {
    fn new(w: WebhookEndpoint, show_secret: bool) -> Self {
        Self {
            id: w.id,
            url: w.url,
            event_types: w.event_types,
            description: w.description,
            enabled: w.enabled,
            secret: show_secret.then_some(w.secret),
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// Add a webhook endpoint. Its secret is in this answer only.
#[utoipa::path(post, path = "/v1/webhooks", tag = "server", security(("server_key" = [])),
    request_body = WebhookBody,
    responses((status = 201, description = "The endpoint, with its secret", body = WebhookView), (status = 400, description = "Invalid fields", body = ErrorBody)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, axum::Json<WebhookView>)> {
    let w = state.service.create_webhook(tenant.id, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(WebhookView::new(w, true))))
}

/// The tenant's webhook endpoints.
#[utoipa::path(get, path = "/v1/webhooks", tag = "server", security(("server_key" = [])),
    responses((status = 200, description = "Endpoints", body = [WebhookView])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
) -> ApiResult<axum::Json<Vec<WebhookView>>> {
    let all = state.service.list_webhooks(tenant.id).await?;
    Ok(axum::Json(all.into_iter().map(|w| WebhookView::new(w, false)).collect()))
}

/// One webhook endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses((status = 200, description = "The endpoint", body = WebhookView), (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<axum::Json<WebhookView>> {
    Ok(axum::Json(WebhookView::new(state.service.get_webhook(tenant.id, id).await?, false)))
}

/// Change a webhook endpoint's URL, event types, description or whether it is enabled.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint")),
    request_body = WebhookBody,
    responses((status = 200, description = "The endpoint", body = WebhookView), (status = 400, description = "Invalid fields", body = ErrorBody), (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub async fn patch_webhook(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
    JsonObject(body): JsonObject,
) -> ApiResult<axum::Json<WebhookView>> {
    Ok(axum::Json(WebhookView::new(state.service.update_webhook(tenant.id, id, &body).await?, false)))
}

/// Remove a webhook endpoint and its deliveries.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<StatusCode> {
    state.service.delete_webhook(tenant.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret. The old one keeps signing beside it for 24 hours (two entries in
/// `webhook-signature`), so the receiver can switch without losing a delivery.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses((status = 200, description = "The endpoint, with its new secret", body = WebhookView), (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<axum::Json<WebhookView>> {
    Ok(axum::Json(WebhookView::new(state.service.rotate_webhook_secret(tenant.id, id).await?, true)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// 1–200, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    /// Attempts made so far.
    pub attempt: u32,
    /// `pending`, `delivered` or `failed`.
    pub status: &'static str,
    /// The status the endpoint answered the last attempt with.
    pub response_status: Option<u16>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub attempted_at: Option<DateTime<Utc>>,
    /// When the next attempt is due, while `pending`.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            event_id: d.event_id,
            kind: d.kind,
            attempt: d.attempts,
            status: d.status.as_str(),
            response_status: d.response_status,
            error: d.error,
            attempted_at: d.attempted_at,
            next_attempt_at: d.next_attempt_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<Uuid>,
}

/// An endpoint's deliveries, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint"), DeliveriesQuery),
    responses((status = 200, description = "A page of deliveries", body = DeliveryPage), (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<DeliveriesQuery>,
) -> ApiResult<axum::Json<DeliveryPage>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let page = state.service.list_deliveries(tenant.id, id, q.cursor, limit).await?;
    let next_cursor = (page.len() == limit as usize).then(|| page.last().map(|d| d.event_id)).flatten();
    Ok(axum::Json(DeliveryPage { items: page.into_iter().map(DeliveryView::from).collect(), next_cursor }))
}

/// Queue a new attempt of one event for this endpoint, due now.
#[utoipa::path(post, path = "/v1/webhooks/{id}/events/{event_id}/redeliver", tag = "server", security(("server_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint"), ("event_id" = Uuid, Path, description = "The event")),
    responses((status = 202, description = "Queued"), (status = 404, description = "No such delivery", body = ErrorBody)))]
pub async fn redeliver(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    PathParams((id, event)): PathParams<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    state.service.redeliver(tenant.id, id, event).await?;
    Ok(StatusCode::ACCEPTED)
}
