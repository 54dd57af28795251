//! Sign-in (password, then the TOTP step when the account has it) and sign-out. A successful
//! sign-in starts a session whose token the browser keeps in an `HttpOnly` cookie, then goes
//! back to where it came from: an authorization request or the account page.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_core::DomainError;
use tessera_store::Login;

use super::{Ctx, FormErrors, Page, Posted, esc, input, no_issuer, safe_return_to};
use crate::AppState;
use crate::error::Untold;
use crate::extract::{Client, PathParams};

#[derive(Debug, Default, Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
    /// `login`: show the form even to someone signed in (the console asks for a fresh proof).
    prompt: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SignInForm {
    csrf: Option<String>,
    /// An email address or a username: one field, whichever the person has.
    email: Option<String>,
    username: Option<String>,
    password: Option<String>,
    return_to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct MfaForm {
    csrf: Option<String>,
    mfa_token: Option<String>,
    code: Option<String>,
    /// The methods the challenge offered, comma-separated: shown again after a wrong code.
    methods: Option<String>,
    return_to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

csrf_form!(SignInForm, MfaForm, CsrfOnly);

/// The sign-in form. `intro` says what the sign-in is for.
pub fn render(ctx: &Ctx, return_to: &str, login: &str, errors: &FormErrors, intro: &str) -> Page {
    render_with(ctx, return_to, login, errors, intro, "")
}

/// The sign-in form with `above` (HTML) above it.
fn render_with(ctx: &Ctx, return_to: &str, login: &str, errors: &FormErrors, intro: &str, above: &str) -> Page {
    let body = format!(
        r#"<section class="card narrow">
<h1>Sign in</h1>
<p class="sub">{intro}</p>
{banner}{above}
<form method="post" action="{base}/sign-in" novalidate>
{csrf}
<input type="hidden" name="return_to" value="{return_to}">
{login}
{password}
<button type="submit" class="wide">Sign in</button>
</form>
{passkey}
<p class="hint"><a href="{base}/reset-password" id="forgot-password">Forgot password?</a></p>
{providers}
</section>"#,
        passkey = super::passkeys::sign_in_form(ctx, return_to, None, "Sign in with a passkey"),
        providers = providers(ctx, return_to),
        intro = esc(intro),
        banner = errors.banner(),
        base = ctx.base,
        csrf = ctx.csrf_field(),
        return_to = esc(return_to),
        login = input(
            "Email or username",
            "email",
            "text",
            login,
            r#"autocomplete="username webauthn" autocapitalize="none" spellcheck="false" required autofocus"#,
            errors
        ),
        password = input("Password", "password", "password", "", r#"autocomplete="current-password" required"#, errors),
    );
    let status =
        if errors.form.is_some() || !errors.fields.is_empty() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    ctx.page(status, "Sign in", &body)
}

/// "Continue with …" for each of the tenant's other identity providers.
fn providers(ctx: &Ctx, return_to: &str) -> String {
    let links: String = ctx
        .providers
        .iter()
        .map(|(slug, name)| {
            format!(
                r#"<a class="button secondary wide" data-provider="{slug}" href="{href}">Continue with {name}</a>"#,
                slug = esc(slug),
                href = esc(&super::federation::start_path(ctx, slug, return_to)),
                name = esc(name),
            )
        })
        .collect();
    if links.is_empty() { links } else { format!(r#"<div class="providers">{links}</div>"#) }
}

/// The second step: a code from the authenticator app, or a recovery code, or a passkey when
/// `methods` offers one.
pub(super) fn render_mfa(ctx: &Ctx, mfa_token: &str, methods: &[&str], return_to: &str, errors: &FormErrors) -> Page {
    let passkey = if methods.contains(&"passkey") {
        super::passkeys::sign_in_form(ctx, return_to, Some(mfa_token), "Use a passkey instead")
    } else {
        String::new()
    };
    let body = format!(
        r#"<section class="card narrow">
<h1>Two-step verification</h1>
<p class="sub">Enter the 6-digit code from your authenticator app. Lost it? Enter one of your recovery codes instead.</p>
{banner}
<form method="post" action="{base}/sign-in/mfa" novalidate>
{csrf}
<input type="hidden" name="mfa_token" value="{token}">
<input type="hidden" name="methods" value="{methods}">
<input type="hidden" name="return_to" value="{return_to}">
{code}
<button type="submit" class="wide">Verify</button>
</form>
{passkey}
</section>"#,
        banner = errors.banner(),
        base = ctx.base,
        csrf = ctx.csrf_field(),
        token = esc(mfa_token),
        methods = esc(&methods.join(",")),
        return_to = esc(return_to),
        code = input(
            "Code",
            "code",
            "text",
            "",
            r#"class="code-input" inputmode="numeric" autocomplete="one-time-code" maxlength="32" required autofocus"#,
            errors
        ),
    );
    let status =
        if errors.form.is_some() || !errors.fields.is_empty() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    ctx.page(status, "Two-step verification", &body)
}

pub async fn page(
    State(state): State<AppState>,
    PathParams(raw): PathParams<String>,
    headers: HeaderMap,
    Query(q): Query<ReturnTo>,
) -> Response {
    let Some(ctx) = Ctx::new(&state, &raw, &headers).await else { return no_issuer() };
    let return_to = safe_return_to(q.return_to.as_deref());
    let again = q.prompt.as_deref() == Some("login");
    if !again && ctx.signed_in(&state, &headers).await.is_some() {
        return ctx.redirect(&return_to);
    }
    let intro =
        if again { "The console has been idle: sign in again to go on." } else { "Use your account to continue." };
    render(&ctx, &return_to, "", &FormErrors::default(), intro).into_response()
}

/// Where a successful sign-in goes: the session cookie, then back to `return_to`.
pub(super) fn signed_in(ctx: &Ctx, tokens: &tessera_service::Tokens, return_to: &str) -> Response {
    let mut res = ctx.redirect(return_to);
    if let Ok(v) = axum::http::HeaderValue::from_str(&ctx.session_cookie(&tokens.refresh_token)) {
        res.headers_mut().append(axum::http::header::SET_COOKIE, v);
    }
    res
}

pub async fn submit(
    State(state): State<AppState>,
    Client(client): Client,
    Posted { ctx, form: f, .. }: Posted<SignInForm>,
) -> Response {
    let return_to = safe_return_to(f.return_to.as_deref());
    let login_value = f.email.or(f.username).unwrap_or_default();
    let login_value = login_value.trim();
    let password = f.password.unwrap_or_default();
    let intro = "Use your account to continue.";
    if login_value.is_empty() || password.is_empty() {
        let mut errors = FormErrors::default();
        if login_value.is_empty() {
            errors.fields.push(("email".into(), "Enter your email address or username.".into()));
        }
        if password.is_empty() {
            errors.fields.push(("password".into(), "Enter your password.".into()));
        }
        return render(&ctx, &return_to, login_value, &errors, intro).into_response();
    }
    let login = if login_value.contains('@') { Login::Email(login_value) } else { Login::Username(login_value) };
    match state.service.sign_in(ctx.tenant, login, password, &client).await {
        Ok(tokens) => signed_in(&ctx, &tokens, &return_to),
        Err(DomainError::MfaRequired { mfa_token, methods }) => {
            render_mfa(&ctx, &mfa_token, &methods, &return_to, &FormErrors::default()).into_response()
        }
        Err(DomainError::Unauthenticated(_)) => {
            let errors = FormErrors::form("The email, username or password is not right.");
            render(&ctx, &return_to, login_value, &errors, intro).into_response()
        }
        Err(DomainError::EmailUnverified) => {
            let notice = super::email::unverified_notice(&ctx, login_value);
            let mut page = render_with(&ctx, &return_to, login_value, &FormErrors::default(), intro, &notice);
            page.status = StatusCode::FORBIDDEN;
            page.into_response()
        }
        Err(e) => {
            let page = render(&ctx, &return_to, login_value, &FormErrors::from_domain(&e), intro).into_response();
            Untold::attach(Untold::of(&e), page)
        }
    }
}

pub async fn second_factor(
    State(state): State<AppState>,
    Client(client): Client,
    Posted { ctx, form: f, .. }: Posted<MfaForm>,
) -> Response {
    let return_to = safe_return_to(f.return_to.as_deref());
    let token = f.mfa_token.unwrap_or_default();
    let code = f.code.unwrap_or_default();
    let offered = f.methods.unwrap_or_default();
    let methods: Vec<&str> = ["totp", "recovery_code", "passkey"].into_iter().filter(|m| offered.contains(m)).collect();
    if code.trim().is_empty() {
        let errors = FormErrors::field("code", "Enter the code from your authenticator app.");
        return render_mfa(&ctx, &token, &methods, &return_to, &errors).into_response();
    }
    match state.service.complete_mfa(&token, &code, &client).await {
        Ok(tokens) if tokens.user.tenant_id == ctx.tenant => signed_in(&ctx, &tokens, &return_to),
        Ok(_) => {
            ctx.error_page(StatusCode::BAD_REQUEST, "Sign in", "This sign-in belongs to another site.").into_response()
        }
        Err(DomainError::Validation(fields)) => {
            let message = match fields.first().map(|f| f.code) {
                Some("code_reused") => "This code was already used. Wait for the next one.",
                _ => "That code is not right. Check the time on your device and try again.",
            };
            render_mfa(&ctx, &token, &methods, &return_to, &FormErrors::field("code", message)).into_response()
        }
        Err(DomainError::Unauthenticated(why)) => {
            // The challenge expired or is not valid: start over.
            render(&ctx, &return_to, "", &FormErrors::form(format!("{why}.")), "Use your account to continue.")
                .into_response()
        }
        Err(e) => render_mfa(&ctx, &token, &methods, &return_to, &FormErrors::from_domain(&e)).into_response(),
    }
}

pub async fn sign_out(State(state): State<AppState>, Posted { ctx, headers, .. }: Posted<CsrfOnly>) -> Response {
    if let Some((who, _)) = ctx.signed_in(&state, &headers).await
        && let Err(e) = state.service.sign_out(&who).await
    {
        tracing::error!(error = %e, "hosted sign-out failed");
    }
    let body = format!(
        r#"<section class="card narrow"><h1>Signed out</h1><p class="sub">You have been signed out on this device.</p>
<a class="button" href="{}/account">Sign in again</a></section>"#,
        ctx.base
    );
    ctx.page(StatusCode::OK, "Signed out", &body).with_cookie(ctx.clear_session_cookie()).into_response()
}
