//! The Replyke contract: `PATCH /{projectId}/users/{userId}` with `{update: {...}}`. The project is
//! the tenant. A user may update only itself; the project's server key may update anyone in it.
//! Only the documented fields are writable, the username really is sanitised, and
//! `secureMetadata` is accepted but never returned (a deliberate difference from the contract).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::patch;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tessera_core::user::User;
use tessera_core::{DomainError, TenantId, UserId, validate};
use tessera_service::{Principal, UpdateOptions};

use super::{FieldMap, to_native, to_wire};
use crate::AppState;
use crate::error::{ApiError, Untold};
use crate::extract::{JsonBody, PathParams};
use crate::views::{GeoJsonPoint, SuspensionView};

pub(super) const FIELDS: FieldMap = &[
    ("name", "display_name"),
    ("username", "username"),
    ("avatar", "avatar_url"),
    ("bio", "bio"),
    ("birthdate", "birthdate"),
    ("location", "location"),
    ("metadata", "client_metadata"),
    ("secureMetadata", "secure_metadata"),
];

/// Replyke lets a user write its own `secureMetadata`; it is still never returned.
const SELF_WRITABLE_SERVER_FIELDS: &[&str] = &["secure_metadata"];

#[derive(Debug, Serialize)]
struct ReplykeUser {
    id: String,
    username: Option<String>,
    name: Option<String>,
    avatar: Option<String>,
    bio: Option<String>,
    /// As Replyke writes it: midnight UTC with milliseconds.
    birthdate: Option<String>,
    location: Option<GeoJsonPoint>,
    metadata: Map<String, Value>,
    suspensions: Vec<SuspensionView>,
}

impl ReplykeUser {
    fn new(u: &User, public_url: &str, now: chrono::DateTime<chrono::Utc>) -> Self {
        let p = &u.profile;
        Self {
            id: u.id.to_string(),
            username: u.username.clone(),
            name: p.display_name.clone(),
            avatar: p.avatar.as_ref().map(|a| a.url(public_url)),
            bio: p.bio.clone(),
            birthdate: p.birthdate.map(|d| format!("{}T00:00:00.000Z", d.format("%Y-%m-%d"))),
            location: p.location.map(GeoJsonPoint::from),
            metadata: u.metadata.client.clone(),
            suspensions: u.active_suspensions(now).map(SuspensionView::from).collect(),
        }
    }
}

/// `{error, code, details?}` with Replyke's `user/...` codes. 5xx details say nothing inside.
struct ReplykeError(ApiError);

impl<E: Into<ApiError>> From<E> for ReplykeError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ReplykeError {
    fn into_response(self) -> Response {
        let untold = self.0.untold();
        Untold::attach(untold, self.render())
    }
}

impl ReplykeError {
    fn render(self) -> Response {
        let (status, body) = self.0.parts();
        let (status, error, code) = match status {
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::BAD_REQUEST, "Missing required data".to_owned(), "user/missing-data")
            }
            StatusCode::NOT_FOUND => (status, "User not found".to_owned(), "user/not-found"),
            StatusCode::UNAUTHORIZED => (status, body.message, "user/unauthorized"),
            StatusCode::FORBIDDEN => (status, body.message, "user/forbidden"),
            StatusCode::CONFLICT => (status, body.message, "user/conflict"),
            s if s.is_server_error() => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"error": "Internal server error", "code": "user/server-error", "details": "internal error"})),
                )
                    .into_response();
            }
            _ => (status, body.message, "user/missing-data"),
        };
        let mut value = json!({ "error": error, "code": code });
        if let Some(d) = body.details {
            value["details"] = d;
        }
        (status, axum::Json(value)).into_response()
    }
}

#[derive(Debug, serde::Deserialize)]
struct UpdateBody {
    update: Option<Value>,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/{project_id}/users/{user_id}", patch(update_user))
}

/// Who is asking: the project's server (server key) or the user itself (access token).
enum Caller {
    Server,
    User(Principal),
}

async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    project: TenantId,
    target: UserId,
) -> Result<Caller, ReplykeError> {
    let token = crate::extract::bearer(headers).ok_or(DomainError::Unauthenticated("missing bearer token"))?;
    if token.starts_with("tsr_sk_") {
        let tenant = state.service.authenticate_server(token).await?;
        return if tenant.id == project { Ok(Caller::Server) } else { Err(DomainError::TenantMismatch.into()) };
    }
    let who = state.service.authenticate(token, Some(project)).await?;
    if who.user.id != target {
        return Err(DomainError::forbidden("a user may update only itself").into());
    }
    Ok(Caller::User(who))
}

async fn update_user(
    State(state): State<AppState>,
    path: Result<PathParams<(String, String)>, ApiError>,
    headers: HeaderMap,
    body: Result<JsonBody<UpdateBody>, ApiError>,
) -> Result<axum::Json<ReplykeUser>, ReplykeError> {
    let PathParams((project, user)) = path?;
    let (Ok(project), Ok(user)) = (project.parse::<TenantId>(), user.parse::<UserId>()) else {
        return Err(DomainError::NotFound("user").into());
    };
    let caller = caller(&state, &headers, project, user).await?;
    let JsonBody(body) = body?;
    let Some(Value::Object(mut update)) = body.update else {
        return Err(DomainError::field("update", "required", "the body must contain an update object").into());
    };
    if update.is_empty() {
        return Err(DomainError::field("update", "required", "the update object is empty").into());
    }
    if let Some(Value::String(raw)) = update.get("username") {
        let clean = validate::sanitize_username(raw).map_err(|(c, m)| DomainError::field("username", c, m))?;
        update.insert("username".into(), Value::String(clean));
    }
    let native = to_native(update, FIELDS).map_err(|e| to_wire(e.into(), FIELDS))?;
    let opts =
        UpdateOptions { surface: "replyke", self_may_write: SELF_WRITABLE_SERVER_FIELDS, ..UpdateOptions::default() };
    let updated = match &caller {
        Caller::Server => state.service.update_user(project, user, &native, &opts).await,
        Caller::User(who) => state.service.update_me(who, &native, &opts).await,
    };
    let updated = updated.map_err(|e| to_wire(e.into(), FIELDS))?;
    Ok(axum::Json(ReplykeUser::new(&updated, &state.public_url, state.service.now())))
}
