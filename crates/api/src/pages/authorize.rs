//! The authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2) and its consent page. The
//! request is checked by the service before anything is shown; until the client and redirect
//! URI are known good, errors are shown here, never redirected. The consent form carries the
//! original query and is checked again when the user decides.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_service::oauth::{AuthorizationRequest, AuthorizeError, ValidAuthorization};

use super::{Ctx, FormErrors, Posted, esc, no_issuer, see_other, sign_in};
use crate::AppState;
use crate::error::Untold;
use crate::extract::PathParams;

/// How recent a sign-in must be to satisfy `prompt=login`.
const FRESH_SIGN_IN_SECONDS: i64 = 120;

#[derive(Debug, Default, Deserialize)]
pub struct DecisionForm {
    csrf: Option<String>,
    /// The authorization request's query string, exactly as it came.
    request: Option<String>,
    decision: Option<String>,
}

csrf_form!(DecisionForm);

/// `redirect_uri` with the response parameters added (RFC 6749 §4.1.2), keeping any query the
/// registered URI has.
fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    see_other(&format!("{redirect_uri}{sep}{query}"))
}

fn refuse(state: &AppState, ctx: &Ctx, e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Show(message) => {
            ctx.error_page(StatusCode::BAD_REQUEST, "This sign-in link is not valid", &message).into_response()
        }
        AuthorizeError::Redirect { redirect_uri, state: client_state, error, description } => {
            let iss = state.service.tokens.issuer(ctx.tenant);
            let mut params = vec![("error", error), ("error_description", &*description)];
            if let Some(s) = client_state.as_deref() {
                params.push(("state", s));
            }
            params.push(("iss", &iss));
            redirect_with(&redirect_uri, &params)
        }
        AuthorizeError::Domain(e) => {
            let page = ctx
                .error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Please try again in a moment.")
                .into_response();
            Untold::attach(Untold::of(&e), page)
        }
    }
}

/// Parses and checks the query: duplicate parameters are refused (RFC 6749 §3.1), unknown ones
/// ignored.
async fn check(state: &AppState, ctx: &Ctx, query: &str) -> Result<ValidAuthorization, AuthorizeError> {
    let req = parse_query(query)
        .ok_or_else(|| AuthorizeError::Show("the request is malformed (a parameter is repeated or not text)".into()))?;
    state.service.check_authorization(ctx.tenant, &req).await
}

fn parse_query(query: &str) -> Option<AuthorizationRequest> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    let mut req = AuthorizationRequest::default();
    for (name, value) in pairs {
        let slot = match name.as_str() {
            "client_id" => &mut req.client_id,
            "redirect_uri" => &mut req.redirect_uri,
            "response_type" => &mut req.response_type,
            "scope" => &mut req.scope,
            "state" => &mut req.state,
            "nonce" => &mut req.nonce,
            "code_challenge" => &mut req.code_challenge,
            "code_challenge_method" => &mut req.code_challenge_method,
            "prompt" => &mut req.prompt,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    Some(req)
}

fn scope_lines(scope: &str) -> String {
    let mut out = String::new();
    for s in scope.split(' ') {
        let line = match s {
            "openid" => "Know who you are",
            "profile" => "See your name, username, picture, language and time zone",
            "email" => "See your email address",
            "phone" => "See your phone number",
            "offline_access" => "Stay signed in when you are not using it",
            _ => continue,
        };
        out.push_str(&format!("<li>{line}</li>"));
    }
    if out.is_empty() {
        out.push_str("<li>Know who you are</li>");
    }
    out
}

fn consent_page(ctx: &Ctx, v: &ValidAuthorization, query: &str, who: &tessera_service::Principal) -> Response {
    let u = &who.user;
    let shown = u.shown_name().or_else(|| u.primary_email.clone()).or_else(|| u.username.clone()).unwrap_or_default();
    let body = format!(
        r#"<section class="card narrow">
<h1>Allow {client}?</h1>
<p class="sub">Signed in as <strong>{shown}</strong>.</p>
<p><strong>{client}</strong> would like to:</p>
<ul class="scopes">{scopes}</ul>
<p class="hint">You will be sent to <span class="mono">{host}</span>.</p>
<form method="post" action="{base}/authorize">
{csrf}
<input type="hidden" name="request" value="{request}">
<div class="actions">
<button type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny" class="secondary">Cancel</button>
</div>
</form>
<form method="post" action="{base}/sign-out"><p class="hint">Not you? {csrf}<button type="submit" class="link">Sign out</button></p></form>
</section>"#,
        client = esc(&v.client.name),
        shown = esc(&shown),
        scopes = scope_lines(&v.scope),
        host = esc(&redirect_host(&v.redirect_uri)),
        base = ctx.base,
        csrf = ctx.csrf_field(),
        request = esc(query),
    );
    ctx.page(StatusCode::OK, "Allow access", &body).into_response()
}

/// The part of the redirect URI people recognise: its host, or its scheme for an app.
fn redirect_host(uri: &str) -> String {
    url_host(uri).unwrap_or_else(|| uri.split(':').next().unwrap_or(uri).to_owned())
}

fn url_host(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    Some(rest.split(['/', '?']).next()?.to_owned())
}

pub async fn start(
    State(state): State<AppState>,
    PathParams(raw): PathParams<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(ctx) = Ctx::new(&state, &raw, &headers).await else { return no_issuer() };
    let query = query.unwrap_or_default();
    let v = match check(&state, &ctx, &query).await {
        Ok(v) => v,
        Err(e) => return refuse(&state, &ctx, e),
    };
    let signed_in = ctx.signed_in(&state, &headers).await;
    let now = state.service.now();
    match signed_in {
        Some((who, since)) if !v.prompt_login || (now - since).num_seconds() <= FRESH_SIGN_IN_SECONDS => {
            if v.prompt_none {
                // Consent is asked every time, so it can never be given without a page.
                return refuse(&state, &ctx, v.refuse("consent_required", "the user must approve this client"));
            }
            consent_page(&ctx, &v, &query, &who)
        }
        _ if v.prompt_none => refuse(&state, &ctx, v.refuse("login_required", "the user is not signed in")),
        // `idp_hint`: straight to that provider, when the tenant has it.
        _ if let Some(slug) = idp_hint(&query).filter(|h| ctx.providers.iter().any(|(s, _)| s == h)) => {
            super::see_other(&super::federation::start_path(&ctx, &slug, &format!("authorize?{query}")))
        }
        _ => {
            let intro = format!("to continue to {}", v.client.name);
            sign_in::render(&ctx, &format!("authorize?{query}"), "", &FormErrors::default(), &intro).into_response()
        }
    }
}

pub async fn decide(State(state): State<AppState>, Posted { ctx, form: f, headers }: Posted<DecisionForm>) -> Response {
    let query = f.request.unwrap_or_default();
    let v = match check(&state, &ctx, &query).await {
        Ok(v) => v,
        Err(e) => return refuse(&state, &ctx, e),
    };
    let Some((who, since)) = ctx.signed_in(&state, &headers).await else {
        let intro = format!("to continue to {}", v.client.name);
        return sign_in::render(&ctx, &format!("authorize?{query}"), "", &FormErrors::default(), &intro)
            .into_response();
    };
    // Only an explicit "deny" denies: a client that posts the form without the button's value
    // has still submitted the consent form, which only this site can render (CSRF token).
    if f.decision.as_deref() == Some("deny") {
        return refuse(&state, &ctx, v.refuse("access_denied", "the user did not allow access"));
    }
    match state.service.grant_authorization(&who, &v, since.timestamp()).await {
        Ok(code) => {
            let iss = state.service.tokens.issuer(ctx.tenant);
            let mut params = vec![("code", code.as_str())];
            if let Some(s) = v.state.as_deref() {
                params.push(("state", s));
            }
            // RFC 9207: tells the client which issuer answered, against mix-up attacks.
            params.push(("iss", &iss));
            redirect_with(&v.redirect_uri, &params)
        }
        Err(e) => Untold::attach(
            Untold::of(&e),
            refuse(&state, &ctx, v.refuse("server_error", "the authorization could not be stored")),
        ),
    }
}

/// The `idp_hint` of an authorization request.
fn idp_hint(query: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    pairs.into_iter().find(|(k, _)| k == "idp_hint").map(|(_, v)| v)
}
