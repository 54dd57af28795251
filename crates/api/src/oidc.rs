//! The per-tenant OAuth 2.0 / OpenID Connect provider at `{public_url}/oidc/{tenant_id}` (the
//! issuer): discovery, JWKS, the token endpoint (`authorization_code` with PKCE,
//! `client_credentials`, `refresh_token` with rotation), userinfo, revocation (RFC 7009) and
//! introspection (RFC 7662). Errors follow RFC 6749 §5.2. The authorization endpoint and the
//! pages it shows are in `pages`.

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::{DomainError, TenantId};

use tessera_core::oauth::GrantType;
use tessera_service::oauth::{ProtocolError, SCOPES, standard_claims};
use tessera_service::{ClientInfo, Introspection, Tokens};

use crate::AppState;
use crate::error::Untold;
use crate::extract::{Client, PathParams, bearer};

/// An RFC 6749 §5.2 error.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<u64>,
    untold: Option<Untold>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into(), retry_after: None, untold: None }
    }

    /// Too many attempts: `429` with `Retry-After`.
    fn slow_down(retry_after_seconds: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: "slow_down",
            description: "too many attempts; try again later".into(),
            retry_after: Some(retry_after_seconds),
            untold: None,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(json!({"error": self.error, "error_description": self.description})))
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"tessera\""));
        }
        if let Some(s) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Untold::attach(self.untold, res)
    }
}

fn server_error(e: DomainError) -> OAuthError {
    OAuthError {
        untold: Untold::of(&e),
        ..OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
    }
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
    let alg = state.service.tenant(t).await.map(|t| t.settings.signing_algorithm).unwrap_or_default();
    let issuer = state.service.tokens.issuer(t);
    Ok(axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg.name()],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": true,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "name", "given_name",
            "family_name", "preferred_username", "picture", "locale", "zoneinfo", "birthdate", "updated_at", "email",
            "email_verified", "phone_number"],
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
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    token: Option<String>,
    #[serde(rename = "token_type_hint")]
    _hint: Option<String>,
    #[serde(rename = "scope")]
    _scope: Option<String>,
}

/// The client's id and secret: HTTP Basic (RFC 6749 §2.3.1, form-urlencoded parts) or the
/// form; a public client sends only its id.
fn client_auth(h: &HeaderMap, form: &TokenForm) -> Option<(String, Option<String>)> {
    use base64::Engine;
    let basic = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.split_once(':').map(|(i, p)| (percent_decode(i), Some(percent_decode(p)))));
    basic.or_else(|| Some((form.client_id.clone()?, form.client_secret.clone())))
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

fn protocol_error(e: ProtocolError) -> OAuthError {
    match e {
        ProtocolError::Protocol { error: "invalid_client", description } => {
            OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
        }
        ProtocolError::Protocol { error, description } => OAuthError::new(StatusCode::BAD_REQUEST, error, description),
        ProtocolError::Domain(DomainError::RateLimited { retry_after_seconds }) => {
            OAuthError::slow_down(retry_after_seconds)
        }
        ProtocolError::Domain(e @ DomainError::Internal(_)) => server_error(e),
        // RFC 6749 §4.1.2.1 names this error for a server that is briefly unable to answer.
        ProtocolError::Domain(e @ DomainError::Unavailable(_)) => OAuthError {
            untold: Untold::of(&e),
            ..OAuthError::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again shortly")
        },
        ProtocolError::Domain(e) => OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", e.to_string()),
    }
}

fn token_response(tokens: &Tokens, refresh: bool, id_token: Option<&str>, scope: Option<&str>) -> Response {
    let mut body =
        json!({"access_token": tokens.access_token, "token_type": "Bearer", "expires_in": tokens.expires_in});
    if refresh {
        body["refresh_token"] = json!(tokens.refresh_token);
    }
    if let Some(id) = id_token {
        body["id_token"] = json!(id);
    }
    if let Some(scope) = scope.filter(|s| !s.is_empty()) {
        body["scope"] = json!(scope);
    }
    no_store(body)
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
    state.service.check_token_address(t, &client).await.map_err(protocol_error)?;
    let result = grant(&state, t, &headers, &client, &form).await;
    if let Err(ProtocolError::Protocol { error: "invalid_client" | "invalid_grant", .. }) = &result {
        state.service.record_token_failure(t, &client).await;
    }
    result.map_err(protocol_error)
}

async fn grant(
    state: &AppState,
    t: TenantId,
    headers: &HeaderMap,
    info: &ClientInfo,
    form: &TokenForm,
) -> Result<Response, ProtocolError> {
    let authenticate = || async {
        let (id, secret) = client_auth(headers, form)
            .ok_or_else(|| ProtocolError::new("invalid_client", "client authentication is required"))?;
        state.service.authenticate_client(Some(t), &id, secret.as_deref()).await
    };
    match form.grant_type.as_deref() {
        Some("authorization_code") => {
            let client = authenticate().await?;
            let code = form.code.as_deref().ok_or_else(|| ProtocolError::new("invalid_request", "code is required"))?;
            let done = state
                .service
                .redeem_code(&client, code, form.redirect_uri.as_deref(), form.code_verifier.as_deref(), info)
                .await?;
            let refresh = client.allows(GrantType::RefreshToken);
            Ok(token_response(&done.tokens, refresh, done.id_token.as_deref(), Some(&done.scope)))
        }
        Some("client_credentials") => {
            let client = authenticate().await?;
            if client.is_public {
                return Err(ProtocolError::new("unauthorized_client", "a public client cannot use client_credentials"));
            }
            // No refresh token with client credentials (RFC 6749 §4.4.3).
            Ok(token_response(&state.service.client_credentials(&client, info).await?, false, None, None))
        }
        Some("refresh_token") => {
            let rt = form
                .refresh_token
                .as_deref()
                .ok_or_else(|| ProtocolError::new("invalid_request", "refresh_token is required"))?;
            // Client authentication is optional here: a first-party session's token needs none,
            // a client's token is refused unless its client authenticates.
            let client = match client_auth(headers, form) {
                Some(_) => Some(authenticate().await?),
                None => None,
            };
            let tokens = state.service.refresh(rt, Some(t), client.as_ref()).await.map_err(|e| match e {
                e @ (DomainError::Internal(_) | DomainError::Unavailable(_) | DomainError::RateLimited { .. }) => {
                    ProtocolError::Domain(e)
                }
                other => ProtocolError::Protocol { error: "invalid_grant", description: other.to_string().into() },
            })?;
            Ok(token_response(&tokens, true, None, None))
        }
        Some(_) => Err(ProtocolError::new("unsupported_grant_type", "this grant type is not supported")),
        None => Err(ProtocolError::new("invalid_request", "grant_type is required")),
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
            // The access token does not carry its scopes; userinfo shows what the user has.
            let mut claims = standard_claims(&who.user, &state.public_url, "profile email phone");
            claims.insert("sub".into(), json!(who.user.id));
            no_store(Value::Object(claims))
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
    let client = state.service.authenticate_client(Some(t), &id, secret.as_deref()).await.map_err(|e| match e {
        ProtocolError::Domain(e) => protocol_error(ProtocolError::Domain(e)),
        ProtocolError::Protocol { .. } => invalid(),
    })?;
    if client.is_public {
        return Err(invalid());
    }
    let token =
        form.token.ok_or_else(|| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", "token is required"))?;
    let issuer = state.service.tokens.issuer(t);
    Ok(match state.service.introspect(t, &token).await.map_err(server_error)? {
        Some(Introspection::Access(claims, user)) => no_store(json!({
            "active": true, "sub": claims.sub, "iss": claims.iss, "exp": claims.exp, "iat": claims.iat,
            "token_type": "Bearer", "username": user.username, "sid": claims.sid, "aud": claims.aud,
            "client_id": claims.client_id,
        })),
        Some(Introspection::Refresh(session, user)) => no_store(json!({
            "active": true, "sub": session.user_id, "iss": issuer, "exp": session.expires_at.timestamp(),
            "iat": session.last_refreshed_at.timestamp(), "token_type": "refresh_token",
            "username": user.username, "sid": session.id, "client_id": session.client_id,
        })),
        None => no_store(json!({"active": false})),
    })
}
