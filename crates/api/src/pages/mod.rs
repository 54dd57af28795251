//! The hosted pages of each tenant's issuer: sign-in with the TOTP step, consent, and the
//! account page. Server-rendered HTML and no external assets (one stylesheet served by
//! Tessera); JavaScript only for passkeys, a JavaScript API in browsers (one script served by
//! Tessera, no inline script). Every form carries a CSRF token checked against a cookie; cookies are
//! `HttpOnly`, `SameSite`, scoped to the issuer's path, and `Secure` when Tessera is served over
//! https. Pages are never cached, never framed, and send no referrer (the authorization request
//! in the URL carries `state`).
//!
//! The forms are plain HTML so that any HTTP client can complete them: `email` (or `username`)
//! and `password` to sign in, `code` for the second factor, and an approve button for consent.

/// Implements [`CsrfForm`] for forms whose CSRF field is `csrf: Option<String>`.
macro_rules! csrf_form {
    ($($form:ty),+) => {$(
        impl super::CsrfForm for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        }
    )+};
}

pub mod account;
pub mod admin;
pub mod authorize;
pub mod email;
pub mod federation;
pub mod passkeys;
pub mod sign_in;

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tessera_core::TenantId;
use tessera_service::Principal;

use crate::AppState;
use crate::extract::PathParams;

const SESSION_COOKIE: &str = "tessera_session";
const CSRF_COOKIE: &str = "tessera_csrf";
/// The browser session lasts as long as the tenant's refresh tokens; the cookie a little less.
const SESSION_COOKIE_MAX_AGE: i64 = 30 * 24 * 3600;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/authorize", get(authorize::start).post(authorize::decide))
        .route("/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/sign-in/mfa", post(sign_in::second_factor))
        .route("/sign-in/passkey", post(passkeys::sign_in))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/account", get(account::page))
        .route("/admin", get(admin::home))
        .route("/admin/users", get(admin::users))
        .route("/admin/users/{id}", get(admin::user))
        .route("/admin/sessions/revoke", post(admin::revoke_sessions))
        .route("/admin/suspend", post(admin::suspend))
        .route("/admin/lift", post(admin::lift))
        .route("/admin/profile", post(admin::profile))
        .route("/admin/mfa/reset", post(admin::reset_mfa))
        .route("/admin/erase", post(admin::erase))
        .route("/admin/deletion/schedule", post(admin::schedule_deletion))
        .route("/admin/deletion/cancel", post(admin::cancel_deletion))
        .route("/account/profile", post(account::profile))
        .route(
            "/account/avatar",
            post(account::avatar).layer(axum::extract::DefaultBodyLimit::max(crate::MAX_AVATAR_BODY_BYTES)),
        )
        .route("/account/password", post(account::password))
        .route("/account/totp", post(account::totp_begin))
        .route("/account/totp/confirm", post(account::totp_confirm))
        .route("/account/totp/disable", post(account::totp_disable))
        .route("/account/sessions/revoke", post(account::revoke_session))
        .route("/account/delete", post(account::delete))
        .route("/account/emails", post(email::add))
        .route("/account/emails/verify", post(email::send_link))
        .route("/account/emails/primary", post(email::primary))
        .route("/account/emails/remove", post(email::remove))
        .route("/verify-email", get(email::verify))
        .route("/verify-email/resend", post(email::resend))
        .route("/reset-password", get(email::reset_page).post(email::reset_submit))
        .route("/reset-password/request", post(email::reset_request))
        .route("/revert-email", get(email::revert_page).post(email::revert_submit))
        .route("/federation/{slug}/start", get(federation::start))
        .route("/federation/{slug}/callback", get(federation::callback))
        .route("/account/providers/link", post(federation::link))
        .route("/account/providers/unlink", post(federation::unlink))
        .route("/account/passkeys/options", post(passkeys::registration_options))
        .route("/account/passkeys/add", post(passkeys::add))
        .route("/account/passkeys/rename", post(passkeys::rename))
        .route("/account/passkeys/remove", post(passkeys::remove))
}

/// The answer for a path whose tenant does not exist.
pub fn no_issuer() -> Response {
    (StatusCode::NOT_FOUND, "no such issuer").into_response()
}

/// A form that carries the CSRF field.
pub trait CsrfForm: serde::de::DeserializeOwned + Default + Send {
    fn csrf(&self) -> Option<&str>;
}

/// A form posted to one of a tenant's pages, past the checks every post needs: the tenant
/// exists and the CSRF token is this browser's. Otherwise the answer is the page that says so.
/// A form that does not parse is read as empty, so each field's own message is shown.
pub struct Posted<F> {
    pub ctx: Ctx,
    pub form: F,
    pub headers: HeaderMap,
}

impl<F: CsrfForm> FromRequest<AppState> for Posted<F> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let PathParams(raw) =
            PathParams::<String>::from_request_parts(&mut parts, state).await.map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let ctx = Ctx::new(state, &raw, &headers).await.ok_or_else(no_issuer)?;
        let Form(form) = Form::<F>::from_request(Request::from_parts(parts, body), state).await.unwrap_or_default();
        if !ctx.csrf_ok(form.csrf()) {
            return Err(ctx.csrf_failed());
        }
        Ok(Self { ctx, form, headers })
    }
}

/// The stylesheet of the hosted pages, the only asset they load.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        ],
        include_str!("tessera.css"),
    )
        .into_response()
}

/// Escapes text for HTML content and double-quoted attributes.
pub use tessera_core::mail::escape_html as esc;

/// What every page request knows: the tenant's issuer path, its name, whether cookies must
/// be `Secure`, and the CSRF token of this browser.
pub struct Ctx {
    pub tenant: TenantId,
    pub tenant_name: String,
    /// `/oidc/{tenant}`: links, form actions and cookie paths are relative to it.
    pub base: String,
    secure: bool,
    pub csrf: String,
    /// Set when this browser had no CSRF cookie yet.
    new_csrf: bool,
    /// The other identity providers the sign-in page offers: (slug, display name).
    pub providers: Vec<(String, String)>,
}

impl Ctx {
    /// `None` when the tenant does not exist.
    pub async fn new(state: &AppState, raw_tenant: &str, headers: &HeaderMap) -> Option<Self> {
        let tenant: TenantId = raw_tenant.parse().ok()?;
        let t = state.service.tenant(tenant).await.ok()?;
        let existing = cookie(headers, CSRF_COOKIE).filter(|c| c.len() == 43 && c.bytes().all(is_token_byte));
        let (csrf, new_csrf) = match existing {
            Some(c) => (c.to_owned(), false),
            None => (tessera_auth::secret::random_token("", 32), true),
        };
        let providers = match state.service.sign_in_providers(tenant).await {
            Ok(all) => all.iter().map(|p| (p.slug.clone(), p.display_name.clone())).collect(),
            Err(e) => {
                tracing::error!(error = %e, "listing the sign-in providers failed");
                Vec::new()
            }
        };
        Some(Self {
            providers,
            tenant,
            tenant_name: t.name.clone(),
            base: format!("/oidc/{tenant}"),
            secure: state.public_url.starts_with("https://"),
            csrf,
            new_csrf,
        })
    }

    /// Whether a submitted form's token is this browser's.
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        !self.new_csrf && submitted.is_some_and(|s| tessera_auth::secret::hashes_match(s, &self.csrf))
    }

    fn set_cookie(&self, name: &str, value: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        // Lax, not Strict: a client's redirect to /authorize is a cross-site navigation that
        // must find the signed-in user; cross-site posts still carry neither cookie.
        format!("{name}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}", self.base)
    }

    pub fn session_cookie(&self, token: &str) -> String {
        self.set_cookie(SESSION_COOKIE, token, SESSION_COOKIE_MAX_AGE)
    }

    pub fn clear_session_cookie(&self) -> String {
        self.set_cookie(SESSION_COOKIE, "", 0)
    }

    /// The console's own cookie, on its path only and `Strict`: no request from another site
    /// carries it, not even a link followed from one.
    pub fn console_cookie(&self, name: &str, value: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path={}/admin; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}", self.base)
    }

    /// The hidden CSRF field every form carries.
    pub fn csrf_field(&self) -> String {
        format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(&self.csrf))
    }

    /// The signed-in user of this browser, and when they signed in.
    pub async fn signed_in(
        &self,
        state: &AppState,
        headers: &HeaderMap,
    ) -> Option<(Principal, chrono::DateTime<chrono::Utc>)> {
        let token = cookie(headers, SESSION_COOKIE).filter(|c| !c.is_empty())?;
        state.service.authenticate_browser(self.tenant, token).await.ok()
    }

    /// A 303 to a page of this issuer (`rest` is relative to the issuer path).
    pub fn redirect(&self, rest: &str) -> Response {
        see_other(&format!("{}/{rest}", self.base))
    }

    /// A page in the shared layout.
    pub fn page(&self, status: StatusCode, title: &str, body: &str) -> Page {
        let mut html = String::with_capacity(body.len() + 1024);
        let _ = write!(
            html,
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title} · {tenant}</title>
<link rel="stylesheet" href="/assets/tessera.css">
</head>
<body>
<header class="top"><span class="brand">{tenant}</span></header>
<main>
{body}
</main>
<footer class="foot">Secured by Tessera</footer>
</body>
</html>
"#,
            title = esc(title),
            tenant = esc(&self.tenant_name),
        );
        let mut cookies = Vec::new();
        if self.new_csrf {
            cookies.push(self.set_cookie(CSRF_COOKIE, &self.csrf, SESSION_COOKIE_MAX_AGE));
        }
        Page { status, html, cookies }
    }

    /// A page that only says what went wrong.
    pub fn error_page(&self, status: StatusCode, title: &str, message: &str) -> Page {
        let body = format!(
            r#"<section class="card narrow"><h1>{}</h1><p class="alert error" role="alert">{}</p></section>"#,
            esc(title),
            esc(message)
        );
        self.page(status, title, &body)
    }

    /// The answer to a form whose CSRF token is missing or wrong.
    pub fn csrf_failed(&self) -> Response {
        self.error_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired or did not come from this site. Go back, reload the page and try again.",
        )
        .into_response()
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The value of a request cookie.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A rendered page with the cookies to set.
pub struct Page {
    pub status: StatusCode,
    pub html: String,
    pub cookies: Vec<String>,
}

impl Page {
    pub fn with_cookie(mut self, cookie: String) -> Self {
        self.cookies.push(cookie);
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.html).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' https: data:; \
                 base-uri 'none'; frame-ancestors 'none'",
            ),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for c in self.cookies {
            if let Ok(v) = HeaderValue::from_str(&c) {
                h.append(header::SET_COOKIE, v);
            }
        }
        res
    }
}

/// `303 See Other`: after a form post, the browser GETs the next page.
pub fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The page to send people back to after signing in: the account page, or an authorization
/// request of this issuer. Anything else is replaced by the account page, so the parameter
/// cannot be used to redirect elsewhere.
pub fn safe_return_to(raw: Option<&str>) -> String {
    match raw {
        Some(r)
            if (r == "account" || r == "admin" || r.starts_with("authorize?"))
                && r.len() <= 4096
                && !r.contains(|c: char| c.is_control() || c == '#') =>
        {
            r.to_owned()
        }
        _ => "account".to_owned(),
    }
}

/// Field errors shown next to their inputs, and a message for the whole form.
#[derive(Debug, Default)]
pub struct FormErrors {
    pub fields: Vec<(String, String)>,
    pub form: Option<String>,
}

impl FormErrors {
    pub fn form(message: impl Into<String>) -> Self {
        Self { fields: Vec::new(), form: Some(message.into()) }
    }

    pub fn field(name: &str, message: impl Into<String>) -> Self {
        Self { fields: vec![(name.to_owned(), message.into())], form: None }
    }

    /// The error under the input named `name`, with the id its `aria-describedby` names.
    pub fn under(&self, name: &str) -> String {
        self.fields
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, m)| format!(r#"<p class="field-error" id="{0}-error">{1}</p>"#, esc(name), esc(m)))
            .unwrap_or_default()
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(f, _)| f == name)
    }

    pub fn banner(&self) -> String {
        self.form.as_ref().map(|m| format!(r#"<p class="alert error" role="alert">{}</p>"#, esc(m))).unwrap_or_default()
    }

    /// A domain error as people should read it.
    pub fn from_domain(e: &tessera_core::DomainError) -> Self {
        use tessera_core::DomainError as E;
        match e {
            E::Validation(fields) => Self {
                fields: fields.iter().map(|f| (f.field.clone(), f.message.to_string())).collect(),
                form: Some("Please correct the highlighted fields.".into()),
            },
            E::Conflict { field } => Self::field(field, format!("This {} is already taken.", field.replace('_', " "))),
            E::Forbidden { reason, fields, notices } => {
                let mut m = reason.to_string();
                for n in notices {
                    m.push_str(". ");
                    m.push_str(n);
                }
                Self {
                    fields: fields.iter().map(|f| (f.field.clone(), f.message.to_string())).collect(),
                    form: Some(m),
                }
            }
            E::RateLimited { retry_after_seconds } => Self::form(format!(
                "Too many attempts. Try again in {}.",
                if *retry_after_seconds >= 120 {
                    format!("{} minutes", retry_after_seconds.div_ceil(60))
                } else {
                    format!("{retry_after_seconds} seconds")
                }
            )),
            E::Suspended { reason, .. } => Self::form(format!("This account is suspended: {reason}")),
            E::HookRejected { message } => Self::form(message.clone()),
            E::PreconditionFailed => Self::form("The account was changed elsewhere meanwhile. Reload and try again."),
            E::Internal(_) => Self::form("Something went wrong on our side. Please try again."),
            E::Unavailable(_) => Self::form("The service is briefly unavailable. Please try again in a moment."),
            other => Self::form(other.to_string()),
        }
    }
}

/// An `<input>` with its label and the error under it.
pub fn input(label: &str, name: &str, kind: &str, value: &str, extra: &str, errors: &FormErrors) -> String {
    let invalid = if errors.has(name) {
        format!(r#" aria-invalid="true" aria-describedby="{}-error""#, esc(name))
    } else {
        String::new()
    };
    format!(
        r#"<label for="f-{name}">{label}</label><input id="f-{name}" name="{name}" type="{kind}" value="{value}"{invalid} {extra}>{err}"#,
        name = esc(name),
        label = esc(label),
        kind = kind,
        value = esc(value),
        err = errors.under(name),
    )
}
