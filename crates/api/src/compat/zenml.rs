//! The ZenML Pro contract: `GET/PATCH /users/me` with OAuth2 bearer tokens, and the password
//! login (`POST /login`, form-encoded, as ZenML's client sends it). Errors as FastAPI writes
//! them: `422 {"detail": [{"type", "loc", "msg"}]}` for invalid fields, and
//! `{"detail": ["<ExceptionType>", "<message>"]}` otherwise — `ValueError` with `400` for the
//! refusals the contract names (service accounts, internal users, the admin username, identity
//! fields of OAuth2 accounts).

use axum::Router;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera_core::DomainError;
use tessera_core::policy::NOTICE_SERVICE_ACCOUNT;
use tessera_core::user::User;
use tessera_service::UpdateOptions;
use tessera_store::Login;
use uuid::Uuid;

use super::{FieldMap, to_native, to_wire};
use crate::AppState;
use crate::error::{ApiError, Untold};
use crate::extract::{Client, CurrentUser, JsonObject};

pub(super) const FIELDS: FieldMap = &[
    ("name", "name"),
    ("avatar_url", "avatar_url"),
    ("company", "company"),
    ("job_title", "job_title"),
    ("metadata", "client_metadata"),
    ("username", "username"),
    ("email", "primary_email"),
    ("is_active", "is_active"),
    ("is_onboarded", "is_onboarded"),
    ("is_superuser", "is_superuser"),
    ("password_expired", "password_expired"),
];

/// "User model for displaying user account and service account information."
#[derive(Debug, Serialize)]
struct ZenUser {
    /// Never returned; the model has the field, so it is always `null`.
    password: Option<String>,
    password_expired: Option<bool>,
    name: Option<String>,
    avatar_url: Option<String>,
    company: Option<String>,
    job_title: Option<String>,
    metadata: Option<Map<String, Value>>,
    id: Uuid,
    username: String,
    email: Option<String>,
    oauth_provider: Option<String>,
    oauth_id: Option<String>,
    is_active: bool,
    is_superuser: bool,
    is_service_account: bool,
    organization_id: Option<Uuid>,
    is_onboarded: bool,
}

impl ZenUser {
    fn new(u: &User, public_url: &str) -> Self {
        let p = &u.profile;
        Self {
            password: None,
            password_expired: Some(p.password_expired),
            name: p.name.clone(),
            avatar_url: p.avatar.as_ref().map(|a| a.url(public_url)),
            company: p.company.clone(),
            job_title: p.job_title.clone(),
            metadata: Some(u.metadata.client.clone()),
            id: u.id.0,
            // "For OAuth2 user accounts, this is the same as the email address."
            username: u.username.clone().or_else(|| u.primary_email.clone()).unwrap_or_else(|| u.id.to_string()),
            email: u.primary_email.clone(),
            oauth_provider: p.oauth_provider.clone(),
            oauth_id: p.oauth_id.clone(),
            is_active: p.is_active,
            // The tenant's admins are ZenML's superusers.
            is_superuser: p.is_superuser || u.role == tessera_core::user::Role::Admin,
            is_service_account: u.is_service_account,
            organization_id: if u.is_service_account { p.organization_id } else { None },
            is_onboarded: p.is_onboarded,
        }
    }
}

struct ZenError(ApiError);

impl<E: Into<ApiError>> From<E> for ZenError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

fn value_error(message: impl Into<String>) -> ZenError {
    ZenError(ApiError::http(StatusCode::BAD_REQUEST, "value_error", message))
}

impl IntoResponse for ZenError {
    fn into_response(self) -> Response {
        let untold = self.0.untold();
        Untold::attach(untold, self.render())
    }
}

impl ZenError {
    fn render(self) -> Response {
        let detail = |status: StatusCode, kind: &str, msg: &str| {
            (status, axum::Json(json!({"detail": [kind, msg]}))).into_response()
        };
        match self.0 {
            // The admin username is a ValueError in this contract, not a schema error.
            ApiError::Domain(DomainError::Validation(fields)) if fields.iter().any(|f| f.code == "reserved") => {
                detail(StatusCode::BAD_REQUEST, "ValueError", "the admin username is reserved")
            }
            ApiError::Domain(DomainError::Validation(fields)) => {
                let detail: Vec<Value> = fields
                    .iter()
                    .map(|f| json!({"type": f.code, "loc": ["body", f.field], "msg": f.message}))
                    .collect();
                (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({ "detail": detail }))).into_response()
            }
            ApiError::Domain(DomainError::Forbidden { reason, fields, notices }) => {
                // The refusals the contract documents as ValueError are 400s; the rest stay 403.
                let value_error = notices.iter().any(|n| n == NOTICE_SERVICE_ACCOUNT)
                    || fields.iter().any(|f| f.code == "idp_managed" || f.code == "reserved");
                if value_error {
                    let msg = fields.first().map_or(reason.to_string(), |f| format!("{}: {}", f.field, f.message));
                    detail(StatusCode::BAD_REQUEST, "ValueError", &msg)
                } else {
                    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
                    detail(StatusCode::FORBIDDEN, "IllegalOperationError", &format!("{reason}: {}", names.join(", ")))
                }
            }
            other => {
                let (status, body) = other.parts();
                let kind = match status {
                    StatusCode::UNAUTHORIZED => "AuthorizationException",
                    StatusCode::NOT_FOUND => "KeyError",
                    StatusCode::CONFLICT => "EntityExistsError",
                    StatusCode::BAD_REQUEST => "ValueError",
                    s if s.is_server_error() => "RuntimeError",
                    _ => "IllegalOperationError",
                };
                detail(status, kind, &body.message)
            }
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/users/me", get(get_me).patch(patch_me)).route("/login", post(login))
}

async fn get_me(
    State(state): State<AppState>,
    auth: Result<CurrentUser, ApiError>,
) -> Result<axum::Json<ZenUser>, ZenError> {
    let CurrentUser(who) = auth?;
    Ok(axum::Json(ZenUser::new(&who.user, &state.public_url)))
}

async fn patch_me(
    State(state): State<AppState>,
    auth: Result<CurrentUser, ApiError>,
    body: Result<JsonObject, ApiError>,
) -> Result<axum::Json<ZenUser>, ZenError> {
    let CurrentUser(who) = auth?;
    let JsonObject(mut body) = body?;
    // ZenML accepts `password` (with `old_password`) in the same body; Tessera changes the
    // password only on its own, so a refused profile field can never leave a changed password.
    let new_password = body.remove("password");
    let old_password = body.remove("old_password");
    if new_password.as_ref().is_some_and(Value::is_null) || (new_password.is_none() && old_password.is_some()) {
        return Err(value_error("send password (the new one) and old_password together, both strings"));
    }
    if let Some(new) = new_password {
        if !body.is_empty() {
            return Err(value_error("change the password in a request of its own"));
        }
        let (Some(Value::String(new)), Some(Value::String(old))) = (Some(new), old_password) else {
            return Err(value_error("a password change needs the old password (old_password)"));
        };
        state.service.change_password(&who, old, new).await.map_err(|e| match e {
            DomainError::Validation(mut fs) => {
                for f in &mut fs {
                    f.field = if f.field == "current_password" { "old_password".into() } else { "password".into() };
                }
                DomainError::Validation(fs)
            }
            other => other,
        })?;
        let user = state.service.get_user(who.tenant_id(), who.user.id).await?;
        return Ok(axum::Json(ZenUser::new(&user, &state.public_url)));
    }
    let native = to_native(body, FIELDS).map_err(|e| to_wire(e.into(), FIELDS))?;
    let user = state
        .service
        .update_me(&who, &native, &UpdateOptions { surface: "zenml", ..UpdateOptions::default() })
        .await
        .map_err(|e| to_wire(e.into(), FIELDS))?;
    Ok(axum::Json(ZenUser::new(&user, &state.public_url)))
}

/// OAuth2's token form as ZenML's clients post it: the password grant for people,
/// `client_credentials` for service accounts (credentials in the form or in HTTP Basic).
#[derive(Debug, Deserialize)]
struct LoginForm {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// `Authorization: Basic base64(client_id:client_secret)` (RFC 6749 §2.3.1).
fn basic_credentials(h: &axum::http::HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let v = h.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

#[derive(Debug, Serialize)]
struct LoginResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    /// Not issued with client credentials (RFC 6749 §4.4.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// Login. Password grant: `username` (the username or the email) and `password`, with the
/// tenant in `X-Tenant-ID` since the form has no place for it. Client credentials: the service
/// account's `client_id` and `client_secret` (the tenant comes with them).
async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Client(client): Client,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ZenError> {
    let Form(form) =
        form.map_err(|e| ZenError(ApiError::Domain(DomainError::field("grant_type", "missing", e.body_text()))))?;
    let machine = form.grant_type.as_deref() == Some("client_credentials");
    let tokens = if machine {
        let (id, secret) = match (form.client_id, form.client_secret) {
            (Some(id), Some(secret)) => (id, secret),
            _ => basic_credentials(&headers)
                .ok_or_else(|| value_error("client_credentials needs client_id and client_secret"))?,
        };
        let oauth_client = state.service.authenticate_client(None, &id, Some(&secret)).await?;
        state.service.client_credentials(&oauth_client, &client).await?
    } else {
        let tenant = crate::extract::tenant_header(&headers)?
            .ok_or_else(|| value_error("X-Tenant-ID is required for a password login"))?;
        let (Some(username), Some(password)) = (form.username, form.password) else {
            return Err(value_error("username and password are required"));
        };
        let login =
            if username.contains('@') { Login::Email(username.trim()) } else { Login::Username(username.trim()) };
        state.service.sign_in(tenant, login, password, &client).await?
    };
    let body = LoginResponse {
        access_token: tokens.access_token,
        token_type: "bearer",
        expires_in: tokens.expires_in,
        refresh_token: (!machine).then_some(tokens.refresh_token),
    };
    Ok((StatusCode::OK, [(axum::http::header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
}
