//! The pages mailed links open, and the account page's addresses: `verify-email?token=`
//! confirms at once and says so; `reset-password` asks for an address to mail a link to, and
//! with `?token=` takes the new password; `revert-email?token=` explains what undoing the
//! change does and does it when confirmed (a link scanner that opens it changes nothing).
//! Every form goes through the same service calls as the API.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_core::DomainError;
use tessera_service::Principal;

use super::account::{AccountPost, Section, TotpView, failed, render as render_account};
use super::{Ctx, FormErrors, Page, Posted, esc, input, no_issuer};
use crate::AppState;
use crate::error::Untold;
use crate::extract::{Client, PathParams};

#[derive(Debug, Default, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    csrf: Option<String>,
    token: Option<String>,
    /// The reset form's.
    new_password: Option<String>,
    /// The request forms' (reset, and a new verification link from the sign-in page).
    email: Option<String>,
}

csrf_form!(TokenForm);

/// A page with a heading and a paragraph, and a link onwards.
fn notice(ctx: &Ctx, status: StatusCode, title: &str, message: &str, next: (&str, &str)) -> Page {
    let body = format!(
        r#"<section class="card narrow"><h1>{title}</h1><p class="alert {kind}" role="status" id="outcome">{message}</p>
<a class="button" href="{base}/{href}">{label}</a></section>"#,
        title = esc(title),
        kind = if status.is_success() { "ok" } else { "error" },
        message = esc(message),
        base = ctx.base,
        href = next.0,
        label = esc(next.1),
    );
    ctx.page(status, title, &body)
}

fn invalid_link(ctx: &Ctx) -> Page {
    notice(
        ctx,
        StatusCode::BAD_REQUEST,
        "Link not valid",
        "This link is not valid any more: it was used already, or it has expired.",
        ("sign-in", "Go to sign-in"),
    )
}

/// What a token's service call failed with, as a page.
fn token_failed(ctx: &Ctx, e: &DomainError, again: Page) -> Response {
    match e {
        DomainError::Validation(fields) if fields.iter().any(|f| f.code == "invalid_token") => {
            invalid_link(ctx).into_response()
        }
        _ => Untold::attach(Untold::of(e), again.into_response()),
    }
}

/// What a page a mailed link opens starts from: its tenant's context and the link's token. A
/// missing tenant or token is answered by the page that says so.
pub struct Opened {
    ctx: Ctx,
    token: String,
}

impl FromRequestParts<AppState> for Opened {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let PathParams(raw) =
            PathParams::<String>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let ctx = Ctx::new(state, &raw, &parts.headers).await.ok_or_else(no_issuer)?;
        let Query(q) = Query::<TokenQuery>::from_request_parts(parts, state).await.unwrap_or_default();
        match q.token.filter(|t| !t.is_empty()) {
            Some(token) => Ok(Self { ctx, token }),
            None => Err(invalid_link(&ctx).into_response()),
        }
    }
}

/// `verify-email?token=`: confirms the address.
pub async fn verify(State(state): State<AppState>, Opened { ctx, token }: Opened) -> Response {
    match state.service.verify_email(&token).await {
        Ok(done) if done.tenant_id == ctx.tenant => notice(
            &ctx,
            StatusCode::OK,
            "Address confirmed",
            &format!("Thank you: {} is confirmed as your address.", done.email),
            ("account", "Go to your account"),
        )
        .into_response(),
        Ok(_) => invalid_link(&ctx).into_response(),
        Err(e) => {
            let again = ctx.error_page(
                StatusCode::BAD_REQUEST,
                "Not confirmed",
                &FormErrors::from_domain(&e).form.unwrap_or_default(),
            );
            token_failed(&ctx, &e, again)
        }
    }
}

/// The form that asks for a reset link.
fn request_form(ctx: &Ctx, email: &str, errors: &FormErrors) -> Page {
    let body = format!(
        r#"<section class="card narrow"><h1>Forgot your password?</h1>
<p class="sub">Enter your account's email address and we will mail you a link to choose a new password.</p>{banner}
<form method="post" action="{base}/reset-password/request" novalidate>{csrf}
{email}
<button type="submit" class="wide">Send the link</button></form>
<p class="hint"><a href="{base}/sign-in">Back to sign-in</a></p></section>"#,
        banner = errors.banner(),
        base = ctx.base,
        csrf = ctx.csrf_field(),
        email = input("Email", "email", "email", email, r#"autocomplete="email" required autofocus"#, errors),
    );
    let status =
        if errors.form.is_some() || !errors.fields.is_empty() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    ctx.page(status, "Forgot your password?", &body)
}

/// The form that takes the new password, with the token.
fn reset_form(ctx: &Ctx, token: &str, errors: &FormErrors) -> Page {
    let body = format!(
        r#"<section class="card narrow"><h1>Choose a new password</h1>{banner}
<form method="post" action="{base}/reset-password" novalidate>{csrf}
<input type="hidden" name="token" value="{token}">
{password}<p class="hint">At least 8 characters; avoid common passwords. Every device signed in to your account will be signed out.</p>
<button type="submit" class="wide">Set the new password</button></form></section>"#,
        banner = errors.banner(),
        base = ctx.base,
        csrf = ctx.csrf_field(),
        token = esc(token),
        password = input(
            "New password",
            "new_password",
            "password",
            "",
            r#"autocomplete="new-password" required autofocus"#,
            errors
        ),
    );
    let status =
        if errors.form.is_some() || !errors.fields.is_empty() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    ctx.page(status, "Choose a new password", &body)
}

/// `reset-password`: the request form, or with `?token=` the new-password form.
pub async fn reset_page(
    State(state): State<AppState>,
    PathParams(raw): PathParams<String>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let Some(ctx) = Ctx::new(&state, &raw, &headers).await else { return no_issuer() };
    match q.token.filter(|t| !t.is_empty()) {
        Some(token) => reset_form(&ctx, &token, &FormErrors::default()).into_response(),
        None => request_form(&ctx, "", &FormErrors::default()).into_response(),
    }
}

/// The same answer whether an account has the address or not.
pub async fn reset_request(
    State(state): State<AppState>,
    Client(client): Client,
    Posted { ctx, form: f, .. }: Posted<TokenForm>,
) -> Response {
    let email = f.email.unwrap_or_default();
    let email = email.trim();
    if email.is_empty() {
        return request_form(&ctx, email, &FormErrors::field("email", "Enter your email address.")).into_response();
    }
    match state.service.request_password_reset(ctx.tenant, email, &client).await {
        Ok(()) => notice(
            &ctx,
            StatusCode::OK,
            "Check your mail",
            &format!("If an account has the address {email}, a link to choose a new password is on its way. It works for a short while, once."),
            ("sign-in", "Back to sign-in"),
        )
        .into_response(),
        Err(e) => request_form(&ctx, email, &FormErrors::from_domain(&e)).into_response(),
    }
}

pub async fn reset_submit(State(state): State<AppState>, Posted { ctx, form: f, .. }: Posted<TokenForm>) -> Response {
    let token = f.token.unwrap_or_default();
    let password = f.new_password.unwrap_or_default();
    if password.is_empty() {
        return reset_form(&ctx, &token, &FormErrors::field("new_password", "Enter a new password.")).into_response();
    }
    match state.service.confirm_password_reset(&token, password).await {
        Ok(()) => notice(
            &ctx,
            StatusCode::OK,
            "Password changed",
            "Your password has been changed, and every device signed in to your account has been signed out.",
            ("sign-in", "Sign in"),
        )
        .into_response(),
        Err(e) => {
            let again = reset_form(&ctx, &token, &FormErrors::from_domain(&e));
            token_failed(&ctx, &e, again)
        }
    }
}

/// `revert-email?token=`: what undoing does, and the button that does it.
pub async fn revert_page(Opened { ctx, token }: Opened) -> Response {
    let body = format!(
        r#"<section class="card narrow"><h1>Undo the change of address</h1>
<p>This puts this address back as your account's address, removes the one that replaced it, and signs your account out everywhere. If someone else knows your password, choose a new one afterwards.</p>
<form method="post" action="{base}/revert-email">{csrf}<input type="hidden" name="token" value="{token}">
<button type="submit" class="wide danger">Undo the change</button></form></section>"#,
        base = ctx.base,
        csrf = ctx.csrf_field(),
        token = esc(&token),
    );
    ctx.page(StatusCode::OK, "Undo the change of address", &body).into_response()
}

pub async fn revert_submit(State(state): State<AppState>, Posted { ctx, form: f, .. }: Posted<TokenForm>) -> Response {
    match state.service.revert_email(f.token.as_deref().unwrap_or_default()).await {
        Ok(done) => notice(
            &ctx,
            StatusCode::OK,
            "Change undone",
            &format!(
                "{} is your account's address again, and every device has been signed out. If someone else knows your password, choose a new one now.",
                done.email
            ),
            ("reset-password", "Choose a new password"),
        )
        .into_response(),
        Err(e) => {
            let again = ctx.error_page(StatusCode::CONFLICT, "Not undone", &FormErrors::from_domain(&e).form.unwrap_or_default());
            token_failed(&ctx, &e, again)
        }
    }
}

/// From the sign-in page after `email_unverified`: a new link, if the address is an
/// unverified account's; the same answer either way.
pub async fn resend(State(state): State<AppState>, Posted { ctx, form: f, .. }: Posted<TokenForm>) -> Response {
    let email = f.email.unwrap_or_default();
    let email = email.trim();
    if let Err(e) = state.service.resend_verification_for(ctx.tenant, email).await {
        let page = ctx.error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not sent",
            &FormErrors::from_domain(&e).form.unwrap_or_default(),
        );
        return Untold::attach(Untold::of(&e), page.into_response());
    }
    notice(
        &ctx,
        StatusCode::OK,
        "Check your mail",
        "If the address belongs to an account that is not confirmed yet, a new link is on its way.",
        ("sign-in", "Back to sign-in"),
    )
    .into_response()
}

/// The sign-in page's answer to `email_unverified`: what to do, and the button that mails a
/// new link.
pub fn unverified_notice(ctx: &Ctx, email: &str) -> String {
    format!(
        r#"<div class="alert error" role="alert" id="email-unverified"><p>Your email address is not confirmed yet. Follow the link we mailed to it, then sign in.</p>
<form method="post" action="{base}/verify-email/resend">{csrf}<input type="hidden" name="email" value="{email}">
<button type="submit" class="secondary">Send a new link</button></form></div>"#,
        base = ctx.base,
        csrf = ctx.csrf_field(),
        email = esc(email),
    )
}

/// The account page's addresses: each with what can be done to it, and a form to add one.
pub(super) async fn addresses_section(state: &AppState, ctx: &Ctx, who: &Principal, errors: &FormErrors) -> String {
    if who.user.is_anonymous {
        return String::new();
    }
    let addresses = match state.service.my_emails(who).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "listing addresses for the account page failed");
            Vec::new()
        }
    };
    let base = &ctx.base;
    let csrf = ctx.csrf_field();
    let button = |action: &str, id: &str, label: &str| {
        format!(
            r#"<form method="post" action="{base}/account/emails/{action}">{csrf}<input type="hidden" name="email_id" value="{id}"><button type="submit" class="secondary flush">{label}</button></form>"#
        )
    };
    let mut rows = String::new();
    for a in &addresses {
        let id = a.id.to_string();
        let primary = who.user.primary_email.as_deref() == Some(a.email.as_str());
        let mut badges = String::new();
        if primary {
            badges.push_str(r#" <span class="badge on">Primary</span>"#);
        }
        badges.push_str(if a.verified {
            r#" <span class="badge on">Confirmed</span>"#
        } else {
            r#" <span class="badge">Not confirmed</span>"#
        });
        let mut actions = String::new();
        if !a.verified {
            actions.push_str(&button("verify", &id, "Send link"));
        }
        if a.verified && !primary {
            actions.push_str(&button("primary", &id, "Make primary"));
        }
        if !primary {
            actions.push_str(&button("remove", &id, "Remove"));
        }
        rows.push_str(&format!(
            r#"<tr data-email="{email}"><td>{email}{badges}</td><td class="actions">{actions}</td></tr>"#,
            email = esc(&a.email),
        ));
    }
    format!(
        r#"<section class="card" id="emails"><h2>Email addresses</h2>{banner}
<table><tbody>{rows}</tbody></table>
<form method="post" action="{base}/account/emails" novalidate>{csrf}
{input}
<button type="submit">Add address</button></form></section>"#,
        banner = errors.banner(),
        input = input("Add an address", "email", "email", "", r#"autocomplete="email""#, errors),
    )
}

/// Runs one of the addresses section's actions, then back to the account page.
async fn act(state: &AppState, post: AccountPost, done: &str, action: Action) -> Response {
    let AccountPost { ctx, who, form } = post;
    let id = form.email_id.as_deref().and_then(|s| s.parse().ok());
    let result = match (action, id) {
        (Action::Add, _) => state.service.add_my_email(&who, form.email.as_deref().unwrap_or_default()).await.map(drop),
        (_, None) => Err(DomainError::NotFound("email address")),
        (Action::Verify, Some(id)) => state.service.resend_verification(&who, id).await,
        (Action::Primary, Some(id)) => state.service.make_primary(&who, id).await.map(drop),
        (Action::Remove, Some(id)) => state.service.remove_my_email(&who, id).await,
    };
    match result {
        Ok(()) => ctx.redirect(&format!("account?done={done}")),
        Err(DomainError::NotFound(_)) => {
            let e = FormErrors::form("That address is not on your account.");
            render_account(state, &ctx, &who, None, Some((Section::Emails, e)), TotpView::Normal).await
        }
        Err(e) => failed(state, &ctx, &who, Section::Emails, &e).await,
    }
}

#[derive(Clone, Copy)]
enum Action {
    Add,
    Verify,
    Primary,
    Remove,
}

pub async fn add(State(state): State<AppState>, post: AccountPost) -> Response {
    act(&state, post, "email-added", Action::Add).await
}

pub async fn send_link(State(state): State<AppState>, post: AccountPost) -> Response {
    act(&state, post, "email-sent", Action::Verify).await
}

pub async fn primary(State(state): State<AppState>, post: AccountPost) -> Response {
    act(&state, post, "email-primary", Action::Primary).await
}

pub async fn remove(State(state): State<AppState>, post: AccountPost) -> Response {
    act(&state, post, "email-removed", Action::Remove).await
}
