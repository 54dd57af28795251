//! Sign-in through another identity provider: `federation/{slug}/start` sends the browser to
//! the provider (with a state bound to this browser by a cookie, a nonce and PKCE), and
//! `federation/{slug}/callback` takes its answer, signs the person in and goes on to where the
//! sign-in was for (the account page, or an authorization request, which then continues as
//! after a password sign-in). Every failure ends on a page that says what happened.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_core::DomainError;
use tessera_service::Principal;
use tessera_service::federation::{FederationDone, FederationStart};

use super::account::{AccountPost, Section, TotpView, failed, render as render_account};
use super::{Ctx, FormErrors, cookie, esc, no_issuer, safe_return_to};
use crate::AppState;
use crate::error::Untold;
use crate::extract::{Client, PathParams};

/// Binds a sign-in through a provider to the browser that started it.
const BINDING_COOKIE: &str = "tessera_federation";

#[derive(Debug, Default, Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn failed_page(ctx: &Ctx, message: &str) -> Response {
    ctx.error_page(StatusCode::BAD_REQUEST, "Sign-in did not work", message).into_response()
}

/// The sign-in page's link to a provider.
pub fn start_path(ctx: &Ctx, slug: &str, return_to: &str) -> String {
    let query = serde_urlencoded::to_string([("return_to", return_to)]).unwrap_or_default();
    format!("{}/federation/{slug}/start?{query}", ctx.base)
}

pub async fn start(
    State(state): State<AppState>,
    PathParams((raw, slug)): PathParams<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(ctx) = Ctx::new(&state, &raw, &headers).await else { return no_issuer() };
    let return_to = safe_return_to(q.return_to.as_deref());
    go_to_provider(&state, &ctx, state.service.start_federation(ctx.tenant, &slug, &return_to, None).await)
}

/// The redirect to the provider, with the cookie that binds the sign-in to this browser; or
/// the page that says why not.
fn go_to_provider(state: &AppState, ctx: &Ctx, started: Result<FederationStart, DomainError>) -> Response {
    match started {
        Ok(go) => {
            let mut res = super::see_other(&go.location);
            let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
            // Lax: the provider sends the browser back with a top-level GET, which carries it.
            let binding = format!(
                "{BINDING_COOKIE}={}; Path={}/federation; Max-Age=600; HttpOnly; SameSite=Lax{secure}",
                go.binding, ctx.base
            );
            if let Ok(v) = HeaderValue::from_str(&binding) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
        Err(DomainError::NotFound(_)) => failed_page(ctx, "This sign-in option does not exist."),
        Err(e) => {
            Untold::attach(Untold::of(&e), failed_page(ctx, &FormErrors::from_domain(&e).form.unwrap_or_default()))
        }
    }
}

pub async fn callback(
    State(state): State<AppState>,
    PathParams((raw, slug)): PathParams<(String, String)>,
    headers: HeaderMap,
    Client(client): Client,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(ctx) = Ctx::new(&state, &raw, &headers).await else { return no_issuer() };
    if let Some(error) = q.error.as_deref() {
        tracing::info!(provider = %slug, error = %error.chars().take(64).collect::<String>(), "a provider answered with an error");
        let message = match error {
            "access_denied" => "You did not allow the sign-in at the provider, so you are not signed in.",
            _ => "The provider could not sign you in. Try again, or sign in another way.",
        };
        return failed_page(&ctx, message);
    }
    let (Some(code), Some(st)) = (q.code.as_deref(), q.state.as_deref()) else {
        return failed_page(&ctx, "The provider's answer is incomplete. Start the sign-in again.");
    };
    let binding = cookie(&headers, BINDING_COOKIE);
    match state.service.finish_federation(ctx.tenant, &slug, st, code, binding, &client).await {
        Ok(done) => {
            let clear = format!("{BINDING_COOKIE}=; Path={}/federation; Max-Age=0", ctx.base);
            let (mut res, cookies) = match done {
                FederationDone::SignedIn(tokens, return_to) => (
                    ctx.redirect(&safe_return_to(Some(&return_to))),
                    vec![ctx.session_cookie(&tokens.refresh_token), clear],
                ),
                FederationDone::Linked(_) => (ctx.redirect("account?done=provider-linked"), vec![clear]),
            };
            for c in cookies {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            res
        }
        Err(e) => {
            let message = match &e {
                DomainError::Unauthenticated(why) => format!("{}{}.", why[..1].to_uppercase(), &why[1..]),
                other => FormErrors::from_domain(other).form.unwrap_or_default(),
            };
            Untold::attach(Untold::of(&e), failed_page(&ctx, &message))
        }
    }
}

/// The account page's sign-in providers: each of the tenant's, linked or not, with the button
/// that links it (a fresh round trip to the provider) or unlinks it.
pub(super) async fn providers_section(state: &AppState, ctx: &Ctx, who: &Principal, errors: &FormErrors) -> String {
    if ctx.providers.is_empty() || who.user.is_anonymous {
        return String::new();
    }
    let linked = match state.service.my_providers(who).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "listing the linked providers failed");
            Vec::new()
        }
    };
    let (base, csrf) = (&ctx.base, ctx.csrf_field());
    let mut rows = String::new();
    for (slug, name) in &ctx.providers {
        let since = linked.iter().find(|(s, _)| s == slug).map(|(_, since)| since);
        let (status, action, label) = match since {
            Some(since) => (
                format!(
                    r#"<span class="badge on">Linked</span> <span class="hint">since {}</span>"#,
                    since.format("%Y-%m-%d")
                ),
                "unlink",
                "Unlink",
            ),
            None => (r#"<span class="badge">Not linked</span>"#.to_owned(), "link", "Link"),
        };
        rows.push_str(&format!(
            r#"<tr data-provider="{slug}"><td>{name} {status}</td><td class="actions"><form method="post" action="{base}/account/providers/{action}">{csrf}<input type="hidden" name="provider" value="{slug}"><button type="submit" class="secondary flush">{label}</button></form></td></tr>"#,
            slug = esc(slug),
            name = esc(name),
        ));
    }
    format!(
        r#"<section class="card" id="providers"><h2>Sign-in providers</h2>{banner}<table><tbody>{rows}</tbody></table></section>"#,
        banner = errors.banner()
    )
}

/// Links a provider to the signed-in user: to the provider, and back to the account page.
pub async fn link(State(state): State<AppState>, AccountPost { ctx, who, form }: AccountPost) -> Response {
    let slug = form.provider.unwrap_or_default();
    let started = state.service.start_federation(ctx.tenant, &slug, "account", Some(who.user.id)).await;
    go_to_provider(&state, &ctx, started)
}

/// Unlinks a provider from the signed-in user, unless it is their only way to sign in.
pub async fn unlink(State(state): State<AppState>, AccountPost { ctx, who, form }: AccountPost) -> Response {
    let slug = form.provider.unwrap_or_default();
    match state.service.unlink_provider(&who, &slug).await {
        Ok(()) => ctx.redirect("account?done=provider-unlinked"),
        Err(DomainError::NotFound(_)) => {
            let e = FormErrors::form("That provider is not linked to your account.");
            render_account(&state, &ctx, &who, None, Some((Section::Providers, e)), TotpView::Normal).await
        }
        Err(e) => failed(&state, &ctx, &who, Section::Providers, &e).await,
    }
}
