//! Tessera's HTTP surfaces, on axum: the native API (`/v1`), operational endpoints and the
//! generated OpenAPI document. The only crate that knows HTTP and JSON wire formats.

pub mod compat;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod native;
pub mod oidc;
pub mod ops;
pub mod pages;
pub mod proxies;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tessera_core::DomainError;
use tessera_service::Service;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// How long a request may take, reading its body included, unless configured otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Bodies larger than this are refused with `413` (avatar uploads have their own cap).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub(crate) const MAX_AVATAR_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub public_url: Arc<str>,
    pub metrics: Arc<Metrics>,
    openapi_json: Arc<str>,
    docs_html: Arc<str>,
}

impl FromRef<AppState> for Arc<Service> {
    fn from_ref(s: &AppState) -> Self {
        Arc::clone(&s.service)
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(s: &AppState) -> Self {
        Arc::clone(&s.metrics)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tessera", description = "The current-user API: a signed-in person or machine reads, changes and deletes its own account."),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Sign-up, sign-in, refresh, sign-out, anonymous users. Send `X-Tenant-ID`."),
        (name = "me", description = "The signed-in user's own account. `Authorization: Bearer <access token>`."),
        (name = "server", description = "The tenant's backend. `Authorization: Bearer <server key>`."),
        (name = "operator", description = "The operator. `Authorization: Bearer <root key>`."),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

/// Every operation may also answer with the native error body for a status it does not list:
/// 401 and 403 for credentials, 404, 405, 408, 413, 415, 429 from the HTTP layer and the
/// limits, 500 and 503. A `default` response says so, so that the document describes every
/// answer the server can give (schemathesis checks it).
struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let default = ResponseBuilder::new()
            .description("An error, in the native error body (`code`, `message`, `details`)")
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
            {
                op.responses.responses.entry("default".to_owned()).or_insert_with(|| default.clone().into());
            }
        }
    }
}

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |format: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format(format).build())
        };
        components.add_security_scheme("bearer", bearer("JWT"));
        components.add_security_scheme("server_key", bearer("tenant server key"));
        components.add_security_scheme("root_key", bearer("operator root key"));
    }
}

fn api_routes() -> OpenApiRouter<AppState> {
    use native::{activity, auth, emails, me, operator, passkeys, server};
    let avatar = OpenApiRouter::new()
        .routes(routes!(me::put_avatar, me::delete_avatar))
        .layer(DefaultBodyLimit::max(MAX_AVATAR_BODY_BYTES));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::sign_up))
        .routes(routes!(auth::sign_in))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::mfa))
        .routes(routes!(auth::sign_out))
        .routes(routes!(auth::anonymous))
        .routes(routes!(passkeys::sign_in_options))
        .routes(routes!(passkeys::sign_in))
        .routes(routes!(emails::verify_email))
        .routes(routes!(emails::request_password_reset))
        .routes(routes!(emails::confirm_password_reset))
        .routes(routes!(emails::revert_email))
        .routes(routes!(me::get_me, me::patch_me, me::delete_me))
        .routes(routes!(me::put_profile))
        .routes(routes!(me::export_me))
        .routes(routes!(me::change_password))
        .merge(avatar)
        .routes(routes!(me::list_sessions))
        .routes(routes!(me::revoke_session))
        .routes(routes!(me::list_teams))
        .routes(routes!(me::begin_totp, me::disable_totp))
        .routes(routes!(me::confirm_totp))
        .routes(routes!(passkeys::begin_registration))
        .routes(routes!(passkeys::list_passkeys, passkeys::add_passkey))
        .routes(routes!(passkeys::rename_passkey, passkeys::remove_passkey))
        .routes(routes!(emails::list_my_emails, emails::add_my_email))
        .routes(routes!(emails::resend_verification))
        .routes(routes!(emails::make_primary))
        .routes(routes!(emails::remove_my_email))
        .routes(routes!(emails::list_user_emails, emails::add_user_email))
        .routes(routes!(activity::my_activity))
        .routes(routes!(activity::audit))
        .merge(server::routes())
        .routes(routes!(operator::create_tenant, operator::list_tenants))
}

/// The OpenAPI 3.1 document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().split_for_parts().1;
    // After the routes are in: a modifier on `ApiDoc` would run before there are any paths.
    utoipa::Modify::modify(&ErrorResponses, &mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::Domain(DomainError::Internal("panic".into())).into_response()
}

/// The whole HTTP application.
pub fn router(service: Arc<Service>) -> Router {
    router_with(service, &compat::Prefixes::default(), DEFAULT_REQUEST_TIMEOUT, proxies::TrustedProxies::default())
}

/// The whole HTTP application, with the foreign contracts under the given prefixes.
/// `trusted_proxies` are the peers whose forwarding headers name the client.
pub fn router_with(
    service: Arc<Service>,
    prefixes: &compat::Prefixes,
    request_timeout: Duration,
    trusted_proxies: proxies::TrustedProxies,
) -> Router {
    let public_url: Arc<str> = service.config.public_url.trim_end_matches('/').into();
    let (api, _) = api_routes().split_for_parts();
    let doc = openapi();
    let state = AppState {
        service,
        public_url,
        metrics: Arc::new(Metrics::default()),
        openapi_json: doc.to_pretty_json().unwrap_or_default().into(),
        docs_html: ops::render_docs(&doc).into(),
    };
    let request_span = |req: &Request| {
        let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
    };
    api.nest(&prefixes.stack_auth, compat::stack_auth::routes())
        .nest(&prefixes.zenml, compat::zenml::routes())
        .nest(&prefixes.bird, compat::bird::routes())
        .nest(&prefixes.jitsudo, compat::jitsudo::routes())
        .nest(&prefixes.replyke, compat::replyke::routes())
        .nest("/oidc/{tenant_id}", oidc::routes().merge(pages::routes()))
        .route("/assets/tessera.css", get(pages::stylesheet))
        .route("/assets/passkeys.js", get(pages::passkeys::script))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi_json))
        .route("/docs", get(ops::docs))
        .route("/v1/avatars/{file}", get(ops::avatar))
        .fallback(|| async { ApiError::Domain(DomainError::NotFound("route")) })
        .method_not_allowed_fallback(|| async {
            ApiError::http(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this method is not allowed here")
        })
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state.metrics), metrics::track))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::custom(panic_response))
                // Bounds the whole request, body included: a client trickling its body is cut
                // off with 408 (and nothing half-read is acted on).
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    request_timeout,
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
                .layer(axum::Extension(Arc::new(trusted_proxies))),
        )
        .with_state(state)
}

/// Request ids: a random prefix per process and a counter, unique across instances and
/// restarts without the `getrandom` system call per request that a UUIDv4 costs (strace showed
/// one on every request of the hot path). A client's own `X-Request-Id` is kept.
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        Self { prefix: tessera_auth::secret::random_token("", 9).into(), next: Arc::default() }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n:x}", self.prefix)).ok().map(RequestId::new)
    }
}
