//! The Bird accounts contract: `GET/PATCH/DELETE /me`, camelCase, bearer token from login.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tessera_core::user::User;
use tessera_service::UpdateOptions;
use uuid::Uuid;

use super::{FieldMap, to_native, to_wire};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{CurrentUser, JsonObject};

/// The PATCH body's fields; `phoneNumber` is shown but not writable in this contract.
pub(super) const FIELDS: FieldMap = &[
    ("name", "display_name"),
    ("bio", "bio"),
    ("avatarUrl", "avatar_url"),
    ("locale", "locale"),
    ("timezone", "timezone"),
];

/// "A user on the platform." Optional fields are left out when empty, so a typed client never
/// sees `null` where the contract says `string`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BirdUser {
    id: Uuid,
    status: &'static str,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bio: Option<String>,
    active_sessions: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
}

impl BirdUser {
    fn new(u: &User, public_url: &str) -> Self {
        let p = &u.profile;
        Self {
            id: u.id.0,
            status: u.status.as_str(),
            name: p.display_name.clone().or_else(|| u.shown_name()).unwrap_or_default(),
            bio: p.bio.clone(),
            active_sessions: u.active_sessions,
            created_at: u.created_at,
            updated_at: u.updated_at,
            default_email: u.primary_email.clone(),
            avatar_url: p.avatar.as_ref().map(|a| a.url(public_url)),
            phone_number: p.phone_number.clone(),
            locale: p.locale.clone(),
            timezone: p.timezone.clone(),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/me", get(get_me).patch(patch_me).delete(delete_me))
}

async fn get_me(State(state): State<AppState>, CurrentUser(who): CurrentUser) -> axum::Json<BirdUser> {
    axum::Json(BirdUser::new(&who.user, &state.public_url))
}

async fn patch_me(
    State(state): State<AppState>,
    CurrentUser(who): CurrentUser,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let update = async {
        let body = to_native(body, FIELDS)?;
        let user = state
            .service
            .update_me(&who, &body, &UpdateOptions { surface: "bird", ..UpdateOptions::default() })
            .await?;
        Ok::<_, crate::error::ApiError>(axum::Json(BirdUser::new(&user, &state.public_url)).into_response())
    };
    update.await.map_err(|e| to_wire(e, FIELDS))
}

/// `202` with no content: erasure follows after the tenant's grace period.
async fn delete_me(State(state): State<AppState>, CurrentUser(who): CurrentUser) -> ApiResult<StatusCode> {
    state.service.delete_me(&who).await?;
    Ok(StatusCode::ACCEPTED)
}
