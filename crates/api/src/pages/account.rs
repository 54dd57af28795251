//! The account page at `{issuer}/account`: the signed-in user edits the profile, uploads an
//! avatar, turns on two-step verification (QR code, then recovery codes), sees and ends
//! sessions, changes the password and deletes the account. Every action is a form post that
//! goes through the same service calls as the API (so the same validation and policies apply,
//! under the surface name `hosted`), then redirects back with a message, or shows the page
//! again with the errors next to their fields.

use std::collections::HashMap;

use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};
use tessera_core::DomainError;
use tessera_core::fields::{self, Shown};
use tessera_core::user::User;
use tessera_service::{Principal, TotpEnrolment, UpdateOptions};

use super::{Ctx, FormErrors, Posted, esc, input, no_issuer};
use crate::AppState;
use crate::error::Untold;
use crate::extract::PathParams;

/// The section of the page an error or a special view belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Profile,
    Emails,
    Providers,
    Passkeys,
    Avatar,
    Totp,
    Sessions,
    Password,
    Delete,
}

/// What the two-step section shows besides its normal state.
pub(super) enum TotpView {
    Normal,
    Enrolling(TotpEnrolment),
    RecoveryCodes(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// The profile fields the account page edits: (field, label, autocomplete token). What each
/// field takes, its limit included, comes from the field table; `bio` is a text area.
pub(super) const PROFILE_FORM: &[(&str, &str, &str)] = &[
    ("display_name", "Display name", "nickname"),
    ("first_name", "First name", "given-name"),
    ("last_name", "Last name", "family-name"),
    ("bio", "About you", ""),
];

/// One profile field's input, with the field table's character limit.
pub(super) fn profile_input(u: &User, name: &str, label: &str, autocomplete: &str, errors: &FormErrors) -> String {
    let f = fields::known(name);
    let value = match f.read(u) {
        Shown::Text(t) => t,
        _ => "",
    };
    let limit = f.kind.max_chars().map(|m| format!(r#" maxlength="{m}""#)).unwrap_or_default();
    if name == "bio" {
        return format!(
            r#"<label for="f-{name}">{label}</label><textarea id="f-{name}" name="{name}" rows="3"{limit}>{value}</textarea>{err}"#,
            label = esc(label),
            value = esc(value),
            err = errors.under(name),
        );
    }
    let extra = format!(r#"autocomplete="{autocomplete}"{limit}"#);
    input(label, name, "text", value, &extra, errors)
}

#[derive(Debug, Default, Deserialize)]
pub struct AccountForm {
    csrf: Option<String>,
    /// The profile form's fields (`PROFILE_FORM`), by name.
    #[serde(flatten)]
    profile: HashMap<String, String>,
    code: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
    new_password: Option<String>,
    session_id: Option<String>,
    confirm: Option<String>,
    /// The addresses section's: a new address, or the one a button acts on.
    pub(super) email: Option<String>,
    pub(super) email_id: Option<String>,
    /// The sign-in providers section's: the provider a button acts on.
    pub(super) provider: Option<String>,
    /// The passkeys section's: the passkey a button acts on, its name, and a new one's
    /// registration and credential (JSON).
    pub(super) passkey_id: Option<String>,
    pub(super) passkey_name: Option<String>,
    pub(super) registration_id: Option<String>,
    pub(super) credential: Option<String>,
}

csrf_form!(AccountForm);

const SURFACE: &str = "hosted";

fn flash(done: &str) -> Option<&'static str> {
    Some(match done {
        "profile" => "Your profile has been saved.",
        "avatar" => "Your picture has been updated.",
        "avatar-removed" => "Your picture has been removed.",
        "password" => "Your password has been changed. Your other sessions have been signed out.",
        "totp-off" => "Two-step verification is off.",
        "session" => "The session has been signed out.",
        "email-added" => "The address has been added. Follow the link we mailed to it to confirm it.",
        "email-sent" => "A new confirmation link is on its way.",
        "email-primary" => "Your primary address has been changed. Your old one was told, in case it was not you.",
        "email-removed" => "The address has been removed.",
        "provider-linked" => "The provider is linked: you can sign in with it from now on.",
        "provider-unlinked" => "The provider is unlinked.",
        "passkey-added" => "The passkey is added: you can sign in with it from now on.",
        "passkey-renamed" => "The passkey is renamed.",
        "passkey-removed" => "The passkey is removed.",
        _ => return None,
    })
}

pub(super) async fn render(
    state: &AppState,
    ctx: &Ctx,
    who: &Principal,
    message: Option<&str>,
    errors: Option<(Section, FormErrors)>,
    totp: TotpView,
) -> Response {
    let none = FormErrors::default();
    let errs = |s: Section| errors.as_ref().filter(|(sec, _)| *sec == s).map_or(&none, |(_, e)| e);
    let status = if errors.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let u = &who.user;
    let p = &u.profile;
    let csrf = ctx.csrf_field();
    let base = &ctx.base;
    let shown = u.shown_name().or_else(|| u.username.clone()).unwrap_or_else(|| "Your account".into());
    let avatar = match &p.avatar {
        Some(a) => format!(r#"<img class="avatar" id="avatar" src="{}" alt="">"#, esc(&a.url(&state.public_url))),
        None => format!(
            r#"<div class="avatar placeholder" aria-hidden="true">{}</div>"#,
            esc(&shown.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_default())
        ),
    };
    let identity = u.primary_email.as_deref().or(u.username.as_deref()).unwrap_or("");
    let flash_html =
        message.map(|m| format!(r#"<p class="alert ok" role="status" id="flash">{}</p>"#, esc(m))).unwrap_or_default();

    // Profile.
    let pe = errs(Section::Profile);
    let field = |name: &str| {
        let (_, label, autocomplete) = PROFILE_FORM.iter().find(|(n, ..)| *n == name).copied().unwrap_or_default();
        profile_input(u, name, label, autocomplete, pe)
    };
    let profile = format!(
        r#"<section class="card" id="profile"><h2>Profile</h2>{banner}
<form method="post" action="{base}/account/profile" novalidate>{csrf}
{dn}
<div class="row"><div>{first}</div><div>{last}</div></div>
{bio}
<button type="submit">Save profile</button></form></section>"#,
        banner = pe.banner(),
        dn = field("display_name"),
        first = field("first_name"),
        last = field("last_name"),
        bio = field("bio"),
    );

    // Avatar.
    let ae = errs(Section::Avatar);
    let remove = if p.avatar.is_some() {
        format!(
            r#"<form method="post" action="{base}/account/avatar" enctype="multipart/form-data">{csrf}<input type="hidden" name="remove" value="1"><button type="submit" class="secondary">Remove picture</button></form>"#
        )
    } else {
        String::new()
    };
    let avatar_section = format!(
        r#"<section class="card" id="picture"><h2>Picture</h2>{banner}
<form method="post" action="{base}/account/avatar" enctype="multipart/form-data">{csrf}
<label for="f-avatar">Upload a PNG, JPEG, GIF or WebP image</label>
<input id="f-avatar" name="avatar" type="file" accept="image/png,image/jpeg,image/gif,image/webp">{err}
<button type="submit">Upload</button></form>{remove}</section>"#,
        banner = ae.banner(),
        err = ae.under("avatar_url"),
    );

    // Two-step verification.
    let te = errs(Section::Totp);
    let totp_body = match totp {
        TotpView::RecoveryCodes(codes) => {
            let items: String = codes.iter().map(|c| format!("<li>{}</li>", esc(c))).collect();
            format!(
                r#"<p class="alert ok" role="status">Two-step verification is on.</p>
<p>Save these recovery codes somewhere safe. Each works once, if you lose your authenticator. They are shown only now.</p>
<ul class="codes" id="recovery-codes">{items}</ul>
<a class="button" href="{base}/account">I have saved them</a>"#
            )
        }
        TotpView::Enrolling(e) => {
            let svg = e.qr_svg.find("<svg").map_or("", |i| &e.qr_svg[i..]);
            format!(
                r#"<p>Scan this code with an authenticator app (such as 1Password, Google Authenticator or Aegis), then enter the 6-digit code it shows.</p>
<div class="qr" role="img" aria-label="QR code for your authenticator app">{svg}</div>
<p class="hint">Can't scan it? Enter this key by hand: <code id="totp-secret">{secret}</code></p>
{banner}
<form method="post" action="{base}/account/totp/confirm" novalidate>{csrf}
{code}
<button type="submit">Turn on</button></form>"#,
                secret = esc(&e.secret),
                banner = te.banner(),
                code = input(
                    "Code from the app",
                    "code",
                    "text",
                    "",
                    r#"class="code-input" inputmode="numeric" autocomplete="one-time-code" maxlength="6" autofocus"#,
                    te
                ),
            )
        }
        TotpView::Normal if u.totp_enabled => format!(
            r#"<p><span class="badge on">On</span> A code from your authenticator app is asked for when you sign in.</p>
{banner}
<form method="post" action="{base}/account/totp/disable" novalidate>{csrf}
<p class="hint">To turn it off, confirm with a current code or your password.</p>
<div class="row"><div>{code}</div><div>{pw}</div></div>
<button type="submit" class="secondary">Turn off</button></form>"#,
            banner = te.banner(),
            code = input("Code", "code", "text", "", r#"inputmode="numeric" autocomplete="one-time-code""#, te),
            pw = input("Or password", "password", "password", "", r#"autocomplete="current-password""#, te),
        ),
        TotpView::Normal => format!(
            r#"<p><span class="badge">Off</span> Protect your account with a code from an authenticator app as well as your password.</p>
{banner}
<form method="post" action="{base}/account/totp">{csrf}<button type="submit" id="totp-begin">Set up two-step verification</button></form>"#,
            banner = te.banner(),
        ),
    };
    let totp_section =
        format!(r#"<section class="card" id="two-step"><h2>Two-step verification</h2>{totp_body}</section>"#);

    // Sessions.
    let se = errs(Section::Sessions);
    let sessions = match state.service.my_sessions(who).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "listing sessions for the account page failed");
            Vec::new()
        }
    };
    let mut rows = String::new();
    for s in &sessions {
        let this = s.id == who.session_id;
        let device = s.user_agent.as_deref().map(short_agent).unwrap_or_else(|| "Unknown device".into());
        let via = s
            .client_id
            .as_deref()
            .map(|c| format!(r#"<br><span class="hint">via app {}</span>"#, esc(c)))
            .unwrap_or_default();
        let action = if this {
            r#"<span class="badge">This device</span>"#.to_owned()
        } else {
            format!(
                r#"<form method="post" action="{base}/account/sessions/revoke">{csrf}<input type="hidden" name="session_id" value="{id}"><button type="submit" class="secondary flush">Sign out</button></form>"#,
                id = s.id
            )
        };
        rows.push_str(&format!(
            r#"<tr data-session="{id}"><td>{device}{via}</td><td>{ip}</td><td>{created}</td><td>{last}</td><td>{action}</td></tr>"#,
            id = s.id,
            device = esc(&device),
            ip = esc(s.ip_address.as_deref().unwrap_or("—")),
            created = s.created_at.format("%Y-%m-%d %H:%M UTC"),
            last = s.last_refreshed_at.format("%Y-%m-%d %H:%M UTC"),
        ));
    }
    let sessions_section = format!(
        r#"<section class="card" id="sessions"><h2>Where you are signed in</h2>{banner}
<table><thead><tr><th>Device</th><th>Address</th><th>Signed in</th><th>Last active</th><th></th></tr></thead><tbody>{rows}</tbody></table></section>"#,
        banner = se.banner(),
    );

    let activity_section = activity_section(state, who).await;
    let emails_section = super::email::addresses_section(state, ctx, who, errs(Section::Emails)).await;
    let providers_section = super::federation::providers_section(state, ctx, who, errs(Section::Providers)).await;
    let passkeys_section = super::passkeys::section(state, ctx, who, errs(Section::Passkeys)).await;

    // Password.
    let pwe = errs(Section::Password);
    let password_section = if u.has_password {
        format!(
            r#"<section class="card" id="password"><h2>Password</h2>{banner}
<form method="post" action="{base}/account/password" novalidate>{csrf}
{cur}{new}<p class="hint">At least 8 characters; avoid common passwords.</p>
<button type="submit">Change password</button></form></section>"#,
            banner = pwe.banner(),
            cur = input(
                "Current password",
                "current_password",
                "password",
                "",
                r#"autocomplete="current-password""#,
                pwe
            ),
            new = input("New password", "new_password", "password", "", r#"autocomplete="new-password""#, pwe),
        )
    } else {
        String::new()
    };

    // Deletion.
    let de = errs(Section::Delete);
    let delete_section = format!(
        r#"<section class="card danger-zone" id="delete"><h2>Delete account</h2>{banner}
<p>Your account and everything in it will be erased after a grace period. Signing in before then cancels the deletion.</p>
<form method="post" action="{base}/account/delete">{csrf}
<label><input type="checkbox" name="confirm" value="yes"> I want to delete my account</label>{err}
<button type="submit" class="danger">Delete my account</button></form></section>"#,
        banner = de.banner(),
        err = de.under("confirm"),
    );

    let body = format!(
        r#"<section class="card"><div class="who">{avatar}<div><h1 id="shown-name">{shown}</h1><p class="sub flush">{identity}</p></div></div>
<form method="post" action="{base}/sign-out">{csrf}<button type="submit" class="secondary">Sign out</button></form></section>
{flash_html}{profile}{emails_section}{providers_section}{passkeys_section}{avatar_section}{totp_section}{sessions_section}{activity_section}{password_section}{delete_section}"#,
        shown = esc(&shown),
        identity = esc(identity),
    );
    ctx.page(status, "Your account", &body).into_response()
}

/// A readable device name from a User-Agent header.
fn short_agent(ua: &str) -> String {
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/"].into_iter().find(|b| ua.contains(b)).map(|b| match b {
        "Edg/" => "Edge",
        "Firefox/" => "Firefox",
        "Chrome/" => {
            if ua.contains("HeadlessChrome") {
                "Headless Chrome"
            } else {
                "Chrome"
            }
        }
        _ => "Safari",
    });
    let os = ["Android", "iPhone", "iPad", "Windows", "Mac OS X", "Linux"]
        .into_iter()
        .find(|o| ua.contains(o))
        .map(|o| if o == "Mac OS X" { "macOS" } else { o });
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        _ => ua.chars().take(60).collect(),
    }
}

/// The signed-in user for a page request, or the redirect to sign in.
async fn session(state: &AppState, ctx: &Ctx, headers: &HeaderMap) -> Result<Principal, Response> {
    match ctx.signed_in(state, headers).await {
        Some((who, _)) => Ok(who),
        None => Err(ctx.redirect("sign-in?return_to=account")),
    }
}

pub async fn page(
    State(state): State<AppState>,
    PathParams(raw): PathParams<String>,
    headers: HeaderMap,
    Query(q): Query<Done>,
) -> Response {
    let Some(ctx) = Ctx::new(&state, &raw, &headers).await else { return no_issuer() };
    let who = match session(&state, &ctx, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    // An enrolment left half-way shows again, so the QR code is not lost on a reload.
    let totp = match state.service.pending_totp(&who).await {
        Ok(Some(e)) => TotpView::Enrolling(e),
        _ => TotpView::Normal,
    };
    render(&state, &ctx, &who, q.done.as_deref().and_then(flash), None, totp).await
}

/// A posted account form, past the checks every one of them needs: the issuer exists, the
/// CSRF token is this browser's, and someone is signed in. Otherwise the answer is the page
/// that says so (or the redirect to sign in).
pub struct AccountPost {
    pub(super) ctx: Ctx,
    pub(super) who: Principal,
    pub(super) form: AccountForm,
}

impl FromRequest<AppState> for AccountPost {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let Posted { ctx, form, headers } = Posted::<AccountForm>::from_request(req, state).await?;
        let who = session(state, &ctx, &headers).await?;
        Ok(Self { ctx, who, form })
    }
}

/// The checks of an account form read by hand (the avatar's multipart body): issuer, CSRF,
/// signed-in user.
async fn begin(
    state: &AppState,
    raw: &str,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<(Ctx, Principal), Response> {
    let ctx = Ctx::new(state, raw, headers).await.ok_or_else(no_issuer)?;
    if !ctx.csrf_ok(csrf) {
        return Err(ctx.csrf_failed());
    }
    let who = session(state, &ctx, headers).await?;
    Ok((ctx, who))
}

pub(super) async fn failed(
    state: &AppState,
    ctx: &Ctx,
    who: &Principal,
    section: Section,
    e: &DomainError,
) -> Response {
    let page = render(state, ctx, who, None, Some((section, FormErrors::from_domain(e))), TotpView::Normal).await;
    Untold::attach(Untold::of(e), page)
}

pub(super) fn text_or_null(v: Option<String>) -> Value {
    match v.map(|s| s.trim().to_owned()) {
        Some(s) if !s.is_empty() => Value::String(s),
        _ => Value::Null,
    }
}

async fn update(state: &AppState, who: &Principal, body: Map<String, Value>) -> Result<(), DomainError> {
    let opts = UpdateOptions { surface: SURFACE, ..UpdateOptions::default() };
    state.service.update_me(who, &body, &opts).await.map(|_| ())
}

pub async fn profile(State(state): State<AppState>, AccountPost { ctx, who, form: f }: AccountPost) -> Response {
    let mut sent = f.profile;
    let body = PROFILE_FORM.iter().map(|(name, ..)| ((*name).to_owned(), text_or_null(sent.remove(*name)))).collect();
    match update(&state, &who, body).await {
        Ok(()) => ctx.redirect("account?done=profile"),
        Err(e) => failed(&state, &ctx, &who, Section::Profile, &e).await,
    }
}

pub async fn avatar(
    State(state): State<AppState>,
    PathParams(raw): PathParams<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    // The CSRF field comes inside the multipart body, so the form is read first.
    let mut csrf = None;
    let mut image: Option<Vec<u8>> = None;
    let mut remove = false;
    let mut too_large = false;
    if let Ok(mut m) = multipart {
        loop {
            match m.next_field().await {
                Ok(Some(field)) => {
                    let name = field.name().unwrap_or("").to_owned();
                    match field.bytes().await {
                        Ok(bytes) => match name.as_str() {
                            "csrf" => csrf = Some(String::from_utf8_lossy(&bytes).into_owned()),
                            "avatar" => image = Some(bytes.to_vec()).filter(|b| !b.is_empty()),
                            "remove" => remove = true,
                            _ => {}
                        },
                        Err(_) => {
                            too_large = true;
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    too_large = true;
                    break;
                }
            }
        }
    }
    let (ctx, who) = match begin(&state, &raw, &headers, csrf.as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let problem = |m: &str| FormErrors::field("avatar_url", m);
    let value = match (remove, image) {
        (true, _) => Value::Null,
        (false, Some(bytes)) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        (false, None) => {
            let m = if too_large { "The upload failed or the file is too large." } else { "Choose an image first." };
            return render(&state, &ctx, &who, None, Some((Section::Avatar, problem(m))), TotpView::Normal).await;
        }
    };
    match update(&state, &who, Map::from_iter([("avatar_url".to_owned(), value.clone())])).await {
        Ok(()) => ctx.redirect(if value.is_null() { "account?done=avatar-removed" } else { "account?done=avatar" }),
        Err(e) => failed(&state, &ctx, &who, Section::Avatar, &e).await,
    }
}

pub async fn password(State(state): State<AppState>, AccountPost { ctx, who, form: f }: AccountPost) -> Response {
    let current = f.current_password.unwrap_or_default();
    let new = f.new_password.unwrap_or_default();
    match state.service.change_password(&who, current, new).await {
        Ok(()) => ctx.redirect("account?done=password"),
        Err(DomainError::Validation(mut fields)) => {
            // The API names the fields `current_password` and `password`; the form's are these.
            for field in &mut fields {
                if field.field == "password" {
                    field.field = "new_password".into();
                }
            }
            failed(&state, &ctx, &who, Section::Password, &DomainError::Validation(fields)).await
        }
        Err(DomainError::Unauthenticated(_)) => {
            let e = FormErrors::field("current_password", "The current password is not right.");
            render(&state, &ctx, &who, None, Some((Section::Password, e)), TotpView::Normal).await
        }
        Err(e) => failed(&state, &ctx, &who, Section::Password, &e).await,
    }
}

pub async fn totp_begin(State(state): State<AppState>, AccountPost { ctx, who, .. }: AccountPost) -> Response {
    match state.service.begin_totp(&who).await {
        Ok(e) => render(&state, &ctx, &who, None, None, TotpView::Enrolling(e)).await,
        Err(e) => failed(&state, &ctx, &who, Section::Totp, &e).await,
    }
}

pub async fn totp_confirm(State(state): State<AppState>, AccountPost { ctx, who, form: f }: AccountPost) -> Response {
    match state.service.confirm_totp(&who, f.code.as_deref().unwrap_or("")).await {
        Ok(codes) => {
            let mut who = who;
            who.user.totp_enabled = true;
            render(&state, &ctx, &who, None, None, TotpView::RecoveryCodes(codes)).await
        }
        Err(e) => {
            let errors = match &e {
                DomainError::Validation(_) => {
                    FormErrors::field("code", "That code is not right. Check the time on your device and try again.")
                }
                other => FormErrors::from_domain(other),
            };
            let view = match state.service.pending_totp(&who).await {
                Ok(Some(enrolment)) => TotpView::Enrolling(enrolment),
                _ => TotpView::Normal,
            };
            render(&state, &ctx, &who, None, Some((Section::Totp, errors)), view).await
        }
    }
}

pub async fn totp_disable(State(state): State<AppState>, AccountPost { ctx, who, form: f }: AccountPost) -> Response {
    let code = f.code.filter(|c| !c.trim().is_empty());
    let password = f.password.filter(|p| !p.is_empty());
    if code.is_none() && password.is_none() {
        let e = FormErrors::field("code", "Enter a code from your authenticator app, or your password.");
        return render(&state, &ctx, &who, None, Some((Section::Totp, e)), TotpView::Normal).await;
    }
    match state.service.disable_totp(&who, code.as_deref(), password).await {
        Ok(()) => ctx.redirect("account?done=totp-off"),
        Err(DomainError::Validation(_) | DomainError::Unauthenticated(_)) => {
            let e = FormErrors::field("code", "That code or password is not right.");
            render(&state, &ctx, &who, None, Some((Section::Totp, e)), TotpView::Normal).await
        }
        Err(e) => failed(&state, &ctx, &who, Section::Totp, &e).await,
    }
}

pub async fn revoke_session(State(state): State<AppState>, AccountPost { ctx, who, form: f }: AccountPost) -> Response {
    let Some(id) = f.session_id.and_then(|s| s.parse().ok()) else {
        let e = FormErrors::form("That session does not exist.");
        return render(&state, &ctx, &who, None, Some((Section::Sessions, e)), TotpView::Normal).await;
    };
    match state.service.revoke_my_session(&who, id).await {
        Ok(()) => ctx.redirect("account?done=session"),
        Err(e) => failed(&state, &ctx, &who, Section::Sessions, &e).await,
    }
}

pub async fn delete(State(state): State<AppState>, AccountPost { ctx, who, form: f }: AccountPost) -> Response {
    if f.confirm.as_deref() != Some("yes") {
        let e = FormErrors::field("confirm", "Tick the box to confirm.");
        return render(&state, &ctx, &who, None, Some((Section::Delete, e)), TotpView::Normal).await;
    }
    match state.service.delete_me(&who).await {
        Ok(due) => {
            let body = format!(
                r#"<section class="card narrow"><h1>Account scheduled for deletion</h1>
<p>Your account will be erased on <strong>{}</strong>. You have been signed out everywhere.</p>
<p class="hint">Changed your mind? Sign in before then and the deletion is cancelled.</p>
<a class="button secondary" href="{}/account">Sign in</a></section>"#,
                due.format("%Y-%m-%d %H:%M UTC"),
                ctx.base
            );
            ctx.page(StatusCode::OK, "Account scheduled for deletion", &body)
                .with_cookie(ctx.clear_session_cookie())
                .into_response()
        }
        Err(e) => failed(&state, &ctx, &who, Section::Delete, &e).await,
    }
}

/// Entries shown in the account page's recent activity.
const RECENT_ACTIVITY: u32 = 10;

/// The account's recent activity, newest first, in words.
async fn activity_section(state: &AppState, who: &tessera_service::Principal) -> String {
    let entries = match state.service.my_activity(who, None, RECENT_ACTIVITY).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "listing activity for the account page failed");
            Vec::new()
        }
    };
    let mut rows = String::new();
    for a in &entries {
        let what = match a.kind.as_str() {
            "session.created" => "Signed in",
            "sign_in.failed" => "Failed sign-in attempt",
            "session.revoked" => "Signed out a session",
            "user.created" => "Account created",
            "user.updated" => "Profile changed",
            "user.password_changed" => "Password changed",
            "user.mfa_enabled" => "Two-step verification turned on",
            "user.mfa_disabled" => "Two-step verification turned off",
            "user.deleted" => "Account deletion scheduled",
            "user.deletion_cancelled" => "Account deletion cancelled",
            "user.suspended" => "Account suspended",
            "user.unsuspended" => "Suspension lifted",
            "user.email_added" => "Email address added",
            "user.email_verified" => "Email address confirmed",
            "user.email_removed" => "Email address removed",
            "user.primary_email_changed" => "Primary email address changed",
            "user.password_reset" => "Password reset by email",
            "user.provider_linked" => "Sign-in provider linked",
            "user.provider_unlinked" => "Sign-in provider unlinked",
            "user.passkey_added" => "Passkey added",
            "user.passkey_removed" => "Passkey removed",
            other => other,
        };
        let fields = a.details["fields"].as_array().map(|f| {
            let names: Vec<&str> = f.iter().filter_map(|v| v.as_str()).collect();
            format!(r#"<br><span class="hint">{}</span>"#, esc(&names.join(", ")))
        });
        let device = a.user_agent.as_deref().map(short_agent);
        let from = match (device, a.ip_address.as_deref()) {
            _ if a.by.admin().is_some() => "an administrator".to_owned(),
            (Some(d), Some(ip)) => format!("{d}, {ip}"),
            (Some(d), None) => d,
            (None, Some(ip)) => ip.to_owned(),
            (None, None) => "—".to_owned(),
        };
        rows.push_str(&format!(
            r#"<tr data-activity="{kind}"><td>{what}{fields}</td><td>{from}</td><td>{at}</td></tr>"#,
            kind = esc(&a.kind),
            what = esc(what),
            fields = fields.unwrap_or_default(),
            from = esc(&from),
            at = a.created_at.format("%Y-%m-%d %H:%M UTC"),
        ));
    }
    format!(
        r#"<section class="card" id="activity"><h2>Recent activity</h2>
<table><thead><tr><th>What</th><th>From</th><th>When</th></tr></thead><tbody>{rows}</tbody></table></section>"#
    )
}
