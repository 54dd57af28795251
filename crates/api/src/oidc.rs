//! The per-tenant OAuth 2.0 / OpenID Connect provider at `{public_url}/oidc/{tenant_id}` (the
//! issuer): discovery, JWKS, the token endpoint (`client_credentials` for service accounts,
//! `refresh_token` with rotation), userinfo, revocation (RFC 7009) and introspection
//! (RFC 7662). Errors follow RFC 6749 §5.2. The authorization-code flow with PKCE and the
//! hosted pages are still to come (issue 4), so discovery does not advertise them.

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::{DomainError, TenantId};

use crate::AppState;
use crate::extract::{Client, PathParams, bearer};

/// An RFC 6749 §5.2 error.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into() }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(json!({"error": self.error, "error_description": self.description})))
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"tessera\""));
        }
        res
    }
}

fn server_error(e: DomainError) -> OAuthError {
    tracing::error!(error = %e, "oidc endpoint failed");
    OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
        .route("/revoke", post(revoke))
        .route("/introspect", post(introspect))
}

/// The tenant of the path, which must exist.
async fn tenant(state: &AppState, raw: &str) -> Result<TenantId, OAuthError> {
    let not_found = || OAuthError::new(StatusCode::NOT_FOUND, "invalid_request", "no such issuer");
    let id: TenantId = raw.parse().map_err(|_| not_found())?;
    state.service.tenant(id).await.map_err(|_| not_found())?;
    Ok(id)
}

async fn discovery(State(state): State<AppState>, PathParams(raw): PathParams<String>) -> Result<Response, OAuthError> {
    let t = tenant(&state, &raw).await?;
    let issuer = state.service.tokens.issuer(t);
    Ok(axum::Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "grant_types_supported": ["client_credentials", "refresh_token"],
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": ["sub", "iss", "email", "email_verified", "name", "preferred_username", "picture", "locale", "zoneinfo", "phone_number", "updated_at"],
    }))
    .into_response())
}

async fn jwks(State(state): State<AppState>, PathParams(raw): PathParams<String>) -> Result<Response, OAuthError> {
    tenant(&state, &raw).await?;
    let mut res = axum::Json(state.service.tokens.keys().jwks()).into_response();
    // Short enough that a rotation is picked up quickly, long enough to spare the server.
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(res)
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    token: Option<String>,
    #[serde(rename = "token_type_hint")]
    _hint: Option<String>,
    #[serde(rename = "scope")]
    _scope: Option<String>,
}

/// Client authentication: HTTP Basic (RFC 6749 §2.3.1, form-urlencoded parts) or the form.
fn client_auth(h: &HeaderMap, form: &TokenForm) -> Option<(String, String)> {
    use base64::Engine;
    let basic = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.split_once(':').map(|(i, p)| (percent_decode(i), percent_decode(p))));
    basic.or_else(|| Some((form.client_id.clone()?, form.client_secret.clone()?)))
}

/// RFC 6749 §2.3.1 form-urlencodes the Basic credentials; ours never need it, but clients may.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn no_store(v: Value) -> Response {
    let mut res = axum::Json(v).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn token(
    State(state): State<AppState>,
    PathParams(raw): PathParams<String>,
    headers: HeaderMap,
    Client(client): Client,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, OAuthError> {
    let t = tenant(&state, &raw).await?;
    let Form(form) = form.map_err(|e| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    match form.grant_type.as_deref() {
        Some("client_credentials") => {
            let (id, secret) = client_auth(&headers, &form).ok_or_else(|| {
                OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication is required")
            })?;
            let invalid =
                || OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret");
            let (client_tenant, _) = state.service.authenticate_client(&id, &secret).await.map_err(|_| invalid())?;
            if client_tenant != t {
                return Err(invalid());
            }
            let tokens = state.service.client_credentials(&id, &secret, &client).await.map_err(|e| match e {
                DomainError::Internal(_) => server_error(e),
                other => OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", other.to_string()),
            })?;
            // No refresh token with client credentials (RFC 6749 §4.4.3).
            Ok(no_store(
                json!({"access_token": tokens.access_token, "token_type": "Bearer", "expires_in": tokens.expires_in}),
            ))
        }
        Some("refresh_token") => {
            let rt = form.refresh_token.as_deref().ok_or_else(|| {
                OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required")
            })?;
            let tokens = state.service.refresh(rt, Some(t)).await.map_err(|e| match e {
                DomainError::Internal(_) => server_error(e),
                other => OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", other.to_string()),
            })?;
            Ok(no_store(
                json!({"access_token": tokens.access_token, "token_type": "Bearer", "expires_in": tokens.expires_in,
                               "refresh_token": tokens.refresh_token}),
            ))
        }
        Some(_) => {
            Err(OAuthError::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", "this grant type is not supported"))
        }
        None => Err(OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required")),
    }
}

async fn userinfo(State(state): State<AppState>, PathParams(raw): PathParams<String>, headers: HeaderMap) -> Response {
    let unauthorized = |why: &str| {
        let mut res =
            (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_token", "error_description": why})))
                .into_response();
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
        res
    };
    let Ok(t) = tenant(&state, &raw).await else { return unauthorized("no such issuer") };
    let Some(token) = bearer(&headers) else { return unauthorized("a bearer token is required") };
    match state.service.authenticate(token, Some(t)).await {
        Ok(who) => {
            let u = &who.user;
            let p = &u.profile;
            no_store(json!({
                "sub": u.id, "email": u.primary_email, "email_verified": u.primary_email_verified,
                "name": u.shown_name(), "preferred_username": u.username,
                "picture": p.avatar.as_ref().map(|a| crate::views::avatar_url(a, &state.public_url)),
                "locale": p.locale, "zoneinfo": p.timezone, "phone_number": p.phone_number,
                "updated_at": u.updated_at.timestamp(),
            }))
        }
        Err(_) => unauthorized("the token is not active"),
    }
}

async fn revoke(
    State(state): State<AppState>,
    PathParams(raw): PathParams<String>,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Result<StatusCode, OAuthError> {
    let t = tenant(&state, &raw).await?;
    let Form(form) = form.map_err(|e| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let token =
        form.token.ok_or_else(|| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", "token is required"))?;
    state.service.revoke_token(t, &token).await.map_err(server_error)?;
    // RFC 7009 §2.2: 200 whether or not the token was valid.
    Ok(StatusCode::OK)
}

async fn introspect(
    State(state): State<AppState>,
    PathParams(raw): PathParams<String>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, OAuthError> {
    let t = tenant(&state, &raw).await?;
    let Form(form) = form.map_err(|e| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let invalid = || {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "introspection needs this tenant's client credentials",
        )
    };
    let (id, secret) = client_auth(&headers, &form).ok_or_else(invalid)?;
    let (client_tenant, _) = state.service.authenticate_client(&id, &secret).await.map_err(|_| invalid())?;
    if client_tenant != t {
        return Err(invalid());
    }
    let token =
        form.token.ok_or_else(|| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", "token is required"))?;
    Ok(match state.service.introspect(t, &token).await.map_err(server_error)? {
        Some((claims, user)) => no_store(json!({
            "active": true, "sub": claims.sub, "iss": claims.iss, "exp": claims.exp, "iat": claims.iat,
            "token_type": "Bearer", "username": user.username, "sid": claims.sid,
        })),
        None => no_store(json!({"active": false})),
    })
}
