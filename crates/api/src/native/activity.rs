//! The activity trail: `/v1/me/activity`, the user's own, and `/v1/audit`, the tenant's audit
//! log (server key) with its filters. Both are pages of the same entries, newest first.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::UserId;
use tessera_core::events::{Activity, ActivityFilter};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{CurrentUser, QueryParams, ServerTenant};

/// One entry: what happened to the account, who did it (`user`, `server` or `system`), and
/// for sign-ins where from.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityView {
    pub id: Uuid,
    /// `session.created` (a sign-in), `sign_in.failed`, `user.updated`, `user.password_changed`,
    /// `user.mfa_enabled`, `user.mfa_disabled`, `session.revoked`, `user.deleted` (scheduled, or
    /// `erased`), `user.deletion_cancelled`, `user.created`, `user.suspended`, `user.unsuspended`.
    #[serde(rename = "type")]
    pub kind: String,
    pub user_id: Uuid,
    /// `user`, `server`, `system` or `admin` (an administrator, from the console).
    pub actor: &'static str,
    /// The administrator who acted, when `actor` is `admin`.
    pub admin_id: Option<Uuid>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// What the entry adds: `fields` (names only) of a profile change, `method` and
    /// `client_id` of a sign-in, `session_id` of a revocation, `erased` of an erasure.
    #[schema(value_type = Object)]
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

impl From<Activity> for ActivityView {
    fn from(a: Activity) -> Self {
        Self {
            id: a.id,
            kind: a.kind,
            user_id: a.user_id.0,
            actor: a.by.as_str(),
            admin_id: a.by.admin().map(|id| id.0),
            ip_address: a.ip_address,
            user_agent: a.user_agent,
            details: a.details,
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityPage {
    pub items: Vec<ActivityView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last one.
    pub next_cursor: Option<Uuid>,
}

impl ActivityPage {
    fn new(entries: Vec<Activity>, limit: u32) -> Self {
        let next_cursor = (entries.len() == limit as usize).then(|| entries.last().map(|a| a.id)).flatten();
        Self { items: entries.into_iter().map(ActivityView::from).collect(), next_cursor }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1–200, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

fn limit(asked: Option<u32>) -> u32 {
    asked.unwrap_or(50).clamp(1, tessera_service::MAX_ACTIVITY_PAGE)
}

/// The current user's activity: sign-ins and failed sign-ins, password, MFA and profile
/// changes, sessions ended, deletion scheduled or cancelled. Newest first.
#[utoipa::path(get, path = "/v1/me/activity", tag = "me", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, description = "A page of entries", body = ActivityPage)))]
pub async fn my_activity(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<axum::Json<ActivityPage>> {
    let limit = limit(q.limit);
    let entries = state.service.my_activity(&who, q.cursor, limit).await?;
    Ok(axum::Json(ActivityPage::new(entries, limit)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this user's entries.
    pub user_id: Option<Uuid>,
    /// Only entries of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Only entries made at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only entries made at or before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// The tenant's audit log: every user's activity entries, newest first, filtered by user,
/// type and time. Entries are kept for the tenant's `activity_retention_days`.
#[utoipa::path(get, path = "/v1/audit", tag = "server", security(("server_key" = [])),
    params(AuditQuery),
    responses((status = 200, description = "A page of entries", body = ActivityPage), (status = 400, description = "An unknown type or an empty time range", body = ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    ServerTenant(tenant): ServerTenant,
    QueryParams(q): QueryParams<AuditQuery>,
) -> ApiResult<axum::Json<ActivityPage>> {
    let limit = limit(q.limit);
    let filter = ActivityFilter {
        user_id: q.user_id.map(UserId),
        kind: q.kind,
        since: q.since,
        until: q.until,
        before: q.cursor,
        limit,
    };
    let entries = state.service.audit(tenant.id, filter).await?;
    Ok(axum::Json(ActivityPage::new(entries, limit)))
}
