//! Passkeys on the hosted pages: "Sign in with a passkey" (and the browser's own offer in the
//! username field, where it makes one), a passkey as the second step, and the account page's
//! list to add, rename and remove them. WebAuthn is a JavaScript API, so these parts need the
//! one script Tessera serves (`/assets/passkeys.js`); without it the buttons stay hidden and
//! every other way in works as before. The script only fills in and submits the page's own
//! forms, which carry their CSRF token like every other.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_core::DomainError;
use tessera_service::Principal;
use uuid::Uuid;

use super::account::{AccountPost, Section, TotpView, failed, render as render_account};
use super::{Ctx, FormErrors, Posted, esc, safe_return_to};
use crate::AppState;
use crate::error::Untold;
use crate::extract::Client;

/// The script: served as an asset, so that the pages' CSP allows no inline script.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        ],
        include_str!("passkeys.js"),
    )
        .into_response()
}

/// The tag that loads it.
pub(super) fn script_tag() -> &'static str {
    r#"<script src="/assets/passkeys.js" defer></script>"#
}

/// The hidden form the script submits with a passkey's answer, and the button that starts it.
/// `mfa_token` makes it the second step after a password.
pub(super) fn sign_in_form(ctx: &Ctx, return_to: &str, mfa_token: Option<&str>, label: &str) -> String {
    format!(
        r#"<form method="post" action="{base}/sign-in/passkey" id="passkey-form" data-tenant="{tenant}"{mfa}>
{csrf}<input type="hidden" name="return_to" value="{return_to}"><input type="hidden" name="challenge_id" value=""><input type="hidden" name="credential" value="">
<button type="button" class="secondary wide" id="passkey-sign-in" hidden>{label}</button>
<p class="hint error" id="passkey-error" hidden></p>
</form>{script}"#,
        base = ctx.base,
        tenant = ctx.tenant,
        mfa = mfa_token.map(|t| format!(r#" data-mfa-token="{}""#, esc(t))).unwrap_or_default(),
        csrf = ctx.csrf_field(),
        return_to = esc(return_to),
        label = esc(label),
        script = script_tag(),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct PasskeyForm {
    csrf: Option<String>,
    challenge_id: Option<String>,
    credential: Option<String>,
    return_to: Option<String>,
}

csrf_form!(PasskeyForm);

/// The answer of a passkey sign-in (or second step): signed in, or the next step, or the
/// sign-in page saying why not.
pub async fn sign_in(
    State(state): State<AppState>,
    Client(client): Client,
    Posted { ctx, form: f, .. }: Posted<PasskeyForm>,
) -> Response {
    let return_to = safe_return_to(f.return_to.as_deref());
    let intro = "Use your account to continue.";
    let credential = serde_json::from_str(f.credential.as_deref().unwrap_or_default()).unwrap_or_default();
    let challenge = f.challenge_id.unwrap_or_default();
    match state.service.passkey_sign_in(&challenge, Some(ctx.tenant), credential, &client).await {
        Ok(tokens) => super::sign_in::signed_in(&ctx, &tokens, &return_to),
        Err(DomainError::MfaRequired { mfa_token, methods }) => {
            super::sign_in::render_mfa(&ctx, &mfa_token, &methods, &return_to, &FormErrors::default()).into_response()
        }
        Err(DomainError::EmailUnverified) => {
            let errors = FormErrors::form("Confirm your email address first: follow the link we mailed to it.");
            super::sign_in::render(&ctx, &return_to, "", &errors, intro).into_response()
        }
        Err(e @ (DomainError::Unauthenticated(_) | DomainError::Validation(_) | DomainError::TenantMismatch)) => {
            let errors = FormErrors::form("That passkey did not work here. Try again, or use your password.");
            let page = super::sign_in::render(&ctx, &return_to, "", &errors, intro).into_response();
            Untold::attach(Untold::of(&e), page)
        }
        Err(e) => {
            let page =
                super::sign_in::render(&ctx, &return_to, "", &FormErrors::from_domain(&e), intro).into_response();
            Untold::attach(Untold::of(&e), page)
        }
    }
}

/// The account page's passkeys: each with rename and remove, and the button that adds one.
pub(super) async fn section(state: &AppState, ctx: &Ctx, who: &Principal, errors: &FormErrors) -> String {
    if who.user.is_anonymous {
        return String::new();
    }
    let passkeys = state.service.my_passkeys(who).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "listing the passkeys failed");
        Vec::new()
    });
    let (base, csrf) = (&ctx.base, ctx.csrf_field());
    let rows: String = passkeys
        .iter()
        .map(|p| {
            let used = p.last_used_at.map_or("never".to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
            format!(
                r#"<tr data-passkey="{id}"><td><form method="post" action="{base}/account/passkeys/rename" class="inline">{csrf}<input type="hidden" name="passkey_id" value="{id}"><label class="visually-hidden" for="pk-{id}">Name</label><input type="text" id="pk-{id}" name="passkey_name" value="{name}" maxlength="{max}" required><button type="submit" class="secondary flush">Rename</button></form></td><td>added {added}<br><span class="hint">last used {used}</span></td><td class="actions"><form method="post" action="{base}/account/passkeys/remove">{csrf}<input type="hidden" name="passkey_id" value="{id}"><button type="submit" class="secondary flush">Remove</button></form></td></tr>"#,
                id = p.id,
                name = esc(&p.name),
                max = tessera_core::passkey::MAX_NAME_CHARS,
                added = p.created_at.format("%Y-%m-%d"),
            )
        })
        .collect();
    let list = if rows.is_empty() {
        r#"<p class="hint">No passkeys yet. A passkey signs you in with your fingerprint, face or device PIN instead of a password.</p>"#.to_owned()
    } else {
        format!("<table><tbody>{rows}</tbody></table>")
    };
    format!(
        r#"<section class="card" id="passkeys"><h2>Passkeys</h2>{banner}{list}
<form method="post" action="{base}/account/passkeys/add" id="passkey-add-form" data-options="{base}/account/passkeys/options">{csrf}<input type="hidden" name="registration_id" value=""><input type="hidden" name="credential" value="">
<label for="passkey-name">Name of the new passkey</label><input type="text" id="passkey-name" name="passkey_name" maxlength="{max}" placeholder="This device" autocomplete="off">
<button type="button" id="passkey-add" hidden>Add a passkey</button>
<p class="hint error" id="passkey-error" hidden></p>
<noscript><p class="hint">Adding a passkey needs JavaScript.</p></noscript>
</form>{script}</section>"#,
        banner = errors.banner(),
        max = tessera_core::passkey::MAX_NAME_CHARS,
        script = script_tag(),
    )
}

/// A registration's options, for the script (JSON): the account page's CSRF token proves the
/// request is the page's own.
pub async fn registration_options(State(state): State<AppState>, AccountPost { who, .. }: AccountPost) -> Response {
    match state.service.begin_passkey_registration(&who).await {
        Ok(begun) => {
            let body = serde_json::json!({"registration_id": begun.ceremony_id, "options": begun.options});
            let mut res = axum::Json(body).into_response();
            res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// Adds the passkey the browser made.
pub async fn add(State(state): State<AppState>, AccountPost { ctx, who, form }: AccountPost) -> Response {
    let credential = serde_json::from_str(form.credential.as_deref().unwrap_or_default()).unwrap_or_default();
    let registration = form.registration_id.unwrap_or_default();
    match state.service.finish_passkey_registration(&who, &registration, form.passkey_name.as_deref(), credential).await
    {
        Ok(_) => ctx.redirect("account?done=passkey-added"),
        Err(DomainError::Unauthenticated(_)) => {
            let e = FormErrors::form("The passkey could not be added. Try again.");
            render_account(&state, &ctx, &who, None, Some((Section::Passkeys, e)), TotpView::Normal).await
        }
        Err(e) => failed(&state, &ctx, &who, Section::Passkeys, &e).await,
    }
}

fn passkey_id(form_id: Option<&str>) -> Uuid {
    form_id.and_then(|id| id.parse().ok()).unwrap_or_default()
}

pub async fn rename(State(state): State<AppState>, AccountPost { ctx, who, form }: AccountPost) -> Response {
    let id = passkey_id(form.passkey_id.as_deref());
    match state.service.rename_passkey(&who, id, form.passkey_name.as_deref().unwrap_or_default()).await {
        Ok(_) => ctx.redirect("account?done=passkey-renamed"),
        Err(e) => failed(&state, &ctx, &who, Section::Passkeys, &e).await,
    }
}

pub async fn remove(State(state): State<AppState>, AccountPost { ctx, who, form }: AccountPost) -> Response {
    match state.service.remove_passkey(&who, passkey_id(form.passkey_id.as_deref())).await {
        Ok(()) => ctx.redirect("account?done=passkey-removed"),
        Err(e) => failed(&state, &ctx, &who, Section::Passkeys, &e).await,
    }
}
