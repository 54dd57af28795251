//! Extractors: JSON bodies that fail in the native error shape, and the three credentials
//! (user access token, tenant server key, operator root key).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tessera_core::tenant::Tenant;
use tessera_core::{DomainError, FieldError, TenantId};
use tessera_service::{ClientInfo, Principal, Service};

use crate::error::ApiError;

/// A JSON body. Wrong content type, malformed JSON and wrong shapes all answer in the native
/// error shape, naming the field where serde can tell.
pub struct JsonBody<T>(pub T);

fn is_json(parts_ct: Option<&axum::http::HeaderValue>) -> bool {
    parts_ct.and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
    })
}

/// Reads the whole body within the router's limit; too large is `413` in our shape.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::http(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        } else {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        }
    })
}

/// Parses JSON into `T`, turning serde's complaint into a field-level error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {inner}"));
        }
        let msg = inner.to_string();
        let path = e.path().to_string();
        // serde reports missing and unknown fields at the parent's path, naming them in backticks.
        let named = msg.split('`').nth(1).map(str::to_owned);
        let (field, code) = if msg.starts_with("missing field") {
            (named.unwrap_or(path), "required")
        } else if msg.starts_with("unknown field") {
            (named.unwrap_or(path), "unknown_field")
        } else {
            (if path == "." { named.unwrap_or(path) } else { path }, "invalid_type")
        };
        ApiError::Domain(DomainError::Validation(vec![FieldError::new(field, code, msg)]))
    })
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON object body, for partial updates whose fields are checked by the core.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBody(v) = JsonBody::<Value>::from_request(req, state).await?;
        match v {
            Value::Object(m) => Ok(Self(m)),
            _ => Err(ApiError::bad_request("invalid_json", "the body must be a JSON object")),
        }
    }
}

pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// `X-Tenant-ID`, if sent. A value that is not a UUID is a `400`, never ignored.
pub fn tenant_header(headers: &axum::http::HeaderMap) -> Result<Option<TenantId>, ApiError> {
    match headers.get("x-tenant-id") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::Domain(DomainError::field("X-Tenant-ID", "invalid_format", "must be a UUID"))),
    }
}

/// `X-Tenant-ID` where the request cannot go on without it.
pub struct RequiredTenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for RequiredTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        tenant_header(&parts.headers)?.map(Self).ok_or_else(|| {
            ApiError::Domain(DomainError::field("X-Tenant-ID", "required", "the X-Tenant-ID header is required"))
        })
    }
}

/// The signed-in user (from `Authorization: Bearer <access token>`).
pub struct CurrentUser(pub Principal);

impl<S> FromRequestParts<S> for CurrentUser
where
    S: Send + Sync,
    Arc<Service>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let service = Arc::<Service>::from_ref(state);
        let token = bearer(&parts.headers).ok_or(DomainError::Unauthenticated("missing bearer token"))?;
        let tenant = tenant_header(&parts.headers)?;
        Ok(Self(service.authenticate(token, tenant).await?))
    }
}

/// An optional signed-in user: absent credentials are fine, bad ones are not.
pub struct MaybeUser(pub Option<Principal>);

impl<S> FromRequestParts<S> for MaybeUser
where
    S: Send + Sync,
    Arc<Service>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if bearer(&parts.headers).is_none() {
            return Ok(Self(None));
        }
        CurrentUser::from_request_parts(parts, state).await.map(|CurrentUser(p)| Self(Some(p)))
    }
}

/// The tenant whose server key is presented.
pub struct ServerTenant(pub Tenant);

impl<S> FromRequestParts<S> for ServerTenant
where
    S: Send + Sync,
    Arc<Service>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let service = Arc::<Service>::from_ref(state);
        let key = bearer(&parts.headers).ok_or(DomainError::Unauthenticated("missing server key"))?;
        let tenant = service.authenticate_server(key).await?;
        if tenant_header(&parts.headers)?.is_some_and(|t| t != tenant.id) {
            return Err(DomainError::TenantMismatch.into());
        }
        Ok(Self(tenant))
    }
}

/// The operator, holding the root key.
pub struct Operator;

impl<S> FromRequestParts<S> for Operator
where
    S: Send + Sync,
    Arc<Service>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let service = Arc::<Service>::from_ref(state);
        let key = bearer(&parts.headers).ok_or(DomainError::Unauthenticated("missing root key"))?;
        service.check_root_key(key)?;
        Ok(Self)
    }
}

/// What the client says about itself, and its address (behind trusted proxies, the one they
/// forward for), for the session list, the limits and the activity trail.
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        let trusted = parts.extensions.get::<std::sync::Arc<crate::proxies::TrustedProxies>>();
        let ip_address = peer.map(|p| trusted.map_or(p, |t| t.client_address(p, &parts.headers)).to_string());
        Ok(Self(ClientInfo { user_agent, ip_address }))
    }
}

/// `If-Match: "<version>"`. Anything that is not one of our entity tags cannot match, so it is
/// a `412` rather than being ignored; `*` matches any version.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(v) = parts.headers.get(header::IF_MATCH) else { return Ok(Self(None)) };
        let raw = v.to_str().unwrap_or("").trim();
        if raw == "*" {
            return Ok(Self(None));
        }
        raw.trim_start_matches("W/")
            .trim_matches('"')
            .parse::<i64>()
            .map(|n| Self(Some(n)))
            .map_err(|_| ApiError::Domain(DomainError::PreconditionFailed))
    }
}

/// Path parameters; one that does not parse (not a UUID) names nothing that exists: `404`.
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| Self(t))
            .map_err(|_| ApiError::Domain(DomainError::NotFound("resource")))
    }
}

/// Query strings, failing in the native shape.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(t)| Self(t))
            .map_err(|e| ApiError::Domain(DomainError::field("query", "invalid_query", e.body_text())))
    }
}
