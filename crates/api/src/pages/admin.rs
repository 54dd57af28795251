//! The tenant's console, for its admins (users whose `role` is `admin`), reached through the
//! hosted sign-in like the account page: who may enter (with the console's own `Strict`
//! cookie, closing after `console_idle` without a request), finding users (by the start of
//! their email address or username, a page at a time), and a user's page: their fields as the
//! server sees them, sessions (end one or all), suspensions (add, lift), the profile and role
//! (through the server's validation and policies, surface `console`), two-step verification
//! (turn off), erasure (only with a sign-in of the last ten minutes) and recent activity. Each
//! action is a form with the page's CSRF token, and is recorded as that administrator's.
//! Server-rendered, no script.

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_core::events::By;
use tessera_core::user::{Role, User};
use tessera_core::{DomainError, SessionId, SuspensionId, UserId};
use tessera_service::{NewSuspension, Principal};

use super::{Ctx, FormErrors, Posted, esc, no_issuer};
use crate::AppState;
use crate::extract::PathParams;

/// Users a page of the search shows.
const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct Search {
    q: Option<String>,
    after: Option<UserId>,
    done: Option<String>,
}

/// The console's cookie: when this browser last used the console, and a hash tying that time
/// to the browser's session, so that it cannot be made or moved forward by hand.
const CONSOLE_COOKIE: &str = "tessera_console";

fn console_stamp(session: &str, at_ms: i64) -> String {
    let mac = tessera_auth::secret::hash_secret(&format!("console:{session}:{at_ms}"));
    format!("{at_ms}.{mac}")
}

/// When the console was last used from this browser, if its cookie belongs to the browser's sign-in.
fn last_used(headers: &HeaderMap, session: &str) -> Option<i64> {
    let value = super::cookie(headers, CONSOLE_COOKIE)?;
    let at: i64 = value.split_once('.')?.0.parse().ok()?;
    tessera_auth::secret::hashes_match(value, &console_stamp(session, at)).then_some(at)
}

/// An admin in the console, with the cookie that keeps it open.
struct InConsole {
    who: Principal,
    /// When this browser last proved who it is (signed in).
    proven_at: chrono::DateTime<chrono::Utc>,
    cookie: String,
}

impl InConsole {
    /// `res` with the console's cookie moved on: the idle time starts again.
    fn answer(&self, mut res: Response) -> Response {
        if let Ok(v) = axum::http::HeaderValue::from_str(&self.cookie) {
            res.headers_mut().append(axum::http::header::SET_COOKIE, v);
        }
        res
    }
}

/// The signed-in admin, or the answer for anyone else: the sign-in page for nobody, `403` for
/// a member. The console closes after `console_idle` without a request: then only a fresh
/// sign-in (the password again, or a passkey) opens it.
async fn admin(state: &AppState, ctx: &Ctx, headers: &HeaderMap) -> Result<InConsole, Response> {
    match ctx.signed_in(state, headers).await {
        None => Err(ctx.redirect("sign-in?return_to=admin")),
        Some((who, signed_in_at)) if who.user.role == Role::Admin => {
            let session = super::cookie(headers, super::SESSION_COOKIE).unwrap_or_default();
            let now = state.service.now();
            let idle = state.service.config.console_idle;
            let open = last_used(headers, session)
                .and_then(chrono::DateTime::from_timestamp_millis)
                .is_some_and(|at| now - at <= idle);
            if !open && now - signed_in_at > idle {
                let mut res = ctx.redirect("sign-in?return_to=admin&prompt=login");
                if let Ok(v) = axum::http::HeaderValue::from_str(&ctx.console_cookie(CONSOLE_COOKIE, "", 0)) {
                    res.headers_mut().append(axum::http::header::SET_COOKIE, v);
                }
                return Err(res);
            }
            let cookie =
                ctx.console_cookie(CONSOLE_COOKIE, &console_stamp(session, now.timestamp_millis()), idle.num_seconds());
            Ok(InConsole { who, proven_at: signed_in_at, cookie })
        }
        Some(_) => {
            let message = format!(
                "This console is for the administrators of {}. Your account is not one: ask one of them, \
                 or the team that runs {0}.",
                ctx.tenant_name
            );
            Err(ctx.error_page(StatusCode::FORBIDDEN, "Not an administrator", &message).into_response())
        }
    }
}

fn search_form(ctx: &Ctx, q: &str) -> String {
    format!(
        r#"<form method="get" action="{base}/admin/users" class="inline" role="search">
<label class="visually-hidden" for="q">Email or username starts with</label>
<input type="text" id="q" name="q" value="{q}" placeholder="Email or username starts with…" autocomplete="off" autofocus>
<button type="submit" class="flush">Find</button></form>"#,
        base = ctx.base,
        q = esc(q)
    )
}

pub async fn home(State(state): State<AppState>, PathParams(raw): PathParams<String>, headers: HeaderMap) -> Response {
    let Some(ctx) = Ctx::new(&state, &raw, &headers).await else { return no_issuer() };
    let console = match admin(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let who = &console.who;
    let body = format!(
        r#"<section class="card"><h1>Console</h1><p class="sub">{tenant}: signed in as {me}.</p>
<h2>Users</h2>{search}</section>"#,
        tenant = esc(&ctx.tenant_name),
        me = esc(who.user.primary_email.as_deref().or(who.user.username.as_deref()).unwrap_or("an administrator")),
        search = search_form(&ctx, ""),
    );
    console.answer(ctx.page(StatusCode::OK, "Console", &body).into_response())
}

fn user_row(ctx: &Ctx, u: &User) -> String {
    format!(
        r#"<tr data-user="{id}"><td><a href="{base}/admin/users/{id}">{email}</a></td><td>{username}</td><td>{name}</td><td>{status}{role}</td><td>{created}</td></tr>"#,
        id = u.id,
        base = ctx.base,
        email = esc(u.primary_email.as_deref().unwrap_or("—")),
        username = esc(u.username.as_deref().unwrap_or("—")),
        name = esc(&u.shown_name().unwrap_or_default()),
        status = u.status.as_str(),
        role = if u.role == Role::Admin { r#" <span class="badge">admin</span>"# } else { "" },
        created = u.created_at.format("%Y-%m-%d"),
    )
}

pub async fn users(
    State(state): State<AppState>,
    PathParams(raw): PathParams<String>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let Some(ctx) = Ctx::new(&state, &raw, &headers).await else { return no_issuer() };
    let console = match admin(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = search.q.unwrap_or_default();
    let filter = tessera_store::UserFilter {
        prefix: Some(q.trim().to_owned()),
        after: search.after,
        limit: PAGE,
        ..Default::default()
    };
    let found = match state.service.list_users(ctx.tenant, filter).await {
        Ok(f) => f,
        Err(e) => {
            let page =
                ctx.error_page(StatusCode::INTERNAL_SERVER_ERROR, "Users", "The users could not be read. Try again.");
            return crate::error::Untold::attach(crate::error::Untold::of(&e), page.into_response());
        }
    };
    let rows: String = found.iter().map(|u| user_row(&ctx, u)).collect();
    let next = match found.last() {
        Some(last) if found.len() == PAGE as usize => {
            let query =
                serde_urlencoded::to_string([("q", q.clone()), ("after", last.id.to_string())]).unwrap_or_default();
            format!(
                r#"<p><a class="button secondary" id="next" href="{}/admin/users?{}">Next</a></p>"#,
                ctx.base,
                esc(&query)
            )
        }
        _ => String::new(),
    };
    let table = if rows.is_empty() {
        r#"<p class="hint" id="none">No user's email address or username starts with that.</p>"#.to_owned()
    } else {
        format!(
            "<table><thead><tr><th>Email</th><th>Username</th><th>Name</th><th>Status</th><th>Since</th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        )
    };
    let erased = if search.done.as_deref() == Some("erased") {
        r#"<p class="alert ok" role="status" id="flash">The account has been erased.</p>"#
    } else {
        ""
    };
    let body = format!(
        r#"<section class="card"><h1>Users</h1><p class="sub"><a href="{base}/admin">Console</a></p>{erased}{search}{table}{next}</section>"#,
        base = ctx.base,
        search = search_form(&ctx, &q),
    );
    console.answer(ctx.page(StatusCode::OK, "Users", &body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn flash(done: &str) -> Option<&'static str> {
    Some(match done {
        "sessions-ended" => "The session has ended: its tokens no longer work.",
        "suspended" => "The user is suspended: they cannot sign in, and their sessions stop working.",
        "lifted" => "The suspension is lifted.",
        "saved" => "The profile has been saved.",
        "mfa-reset" => "Two-step verification is off; the user can turn it on again from their account.",
        "deletion-scheduled" => "The account will be erased after the grace period; its sessions have ended.",
        "deletion-cancelled" => "The deletion is cancelled.",
        _ => return None,
    })
}

pub async fn user(
    State(state): State<AppState>,
    PathParams((raw, id)): PathParams<(String, UserId)>,
    headers: HeaderMap,
    Query(q): Query<Done>,
) -> Response {
    let Some(ctx) = Ctx::new(&state, &raw, &headers).await else { return no_issuer() };
    let console = match admin(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let notice = q.done.as_deref().and_then(flash);
    console.answer(render_user(&state, &ctx, console.who.user.id, id, None, notice).await)
}

/// A user's page, with `errors` of the action that could not be done.
async fn render_user(
    state: &AppState,
    ctx: &Ctx,
    admin_id: UserId,
    id: UserId,
    errors: Option<&FormErrors>,
    notice: Option<&str>,
) -> Response {
    let u = match state.service.get_user(ctx.tenant, id).await {
        Ok(u) => u,
        Err(_) => return ctx.error_page(StatusCode::NOT_FOUND, "User", "There is no such user here.").into_response(),
    };
    let view = crate::views::server_user_json(&u, &state.public_url, state.service.now());
    let fields: String = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&view)
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("<tr><th>{}</th><td class=\"mono\">{}</td></tr>", esc(k), esc(&v.to_string())))
        .collect();
    let sessions = state.service.user_sessions(ctx.tenant, id).await.unwrap_or_default();
    let csrf = ctx.csrf_field();
    let act = |action: &str, fields: &str, label: &str| {
        format!(
            r#"<form method="post" action="{}/admin/{action}">{csrf}<input type="hidden" name="user_id" value="{id}">{fields}<button type="submit" class="secondary flush">{label}</button></form>"#,
            ctx.base
        )
    };
    let session_rows: String = sessions
        .iter()
        .map(|s| {
            format!(
                "<tr data-session=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"actions\">{}</td></tr>",
                s.id,
                esc(s.ip_address.as_deref().unwrap_or("—")),
                s.created_at.format("%Y-%m-%d %H:%M UTC"),
                s.last_refreshed_at.format("%Y-%m-%d %H:%M UTC"),
                act("sessions/revoke", &format!(r#"<input type="hidden" name="session_id" value="{}">"#, s.id), "End"),
            )
        })
        .collect();
    let end_all = if sessions.is_empty() { String::new() } else { act("sessions/revoke", "", "End every session") };
    let now = state.service.now();
    let suspension_rows: String = u
        .active_suspensions(now)
        .map(|s| {
            format!(
                "<tr data-suspension=\"{}\"><td>{}</td><td>{}</td><td class=\"actions\">{}</td></tr>",
                s.id,
                esc(&s.reason),
                s.ends_at.map_or("until lifted".to_owned(), |e| format!("until {}", e.format("%Y-%m-%d %H:%M UTC"))),
                act("lift", &format!(r#"<input type="hidden" name="suspension_id" value="{}">"#, s.id), "Lift"),
            )
        })
        .collect();
    let none = FormErrors::default();
    let profile_inputs: String = super::account::PROFILE_FORM
        .iter()
        .map(|(name, label, autocomplete)| {
            super::account::profile_input(&u, name, label, autocomplete, errors.unwrap_or(&none))
        })
        .collect();
    let role_options: String = Role::NAMES
        .iter()
        .map(|r| {
            let selected = if *r == u.role.as_str() { " selected" } else { "" };
            format!(r#"<option value="{r}"{selected}>{r}</option>"#)
        })
        .collect();
    let profile = act(
        "profile",
        &format!(
            r#"{profile_inputs}<label for="f-role">Role</label><select id="f-role" name="role">{role_options}</select>"#
        ),
        "Save",
    );
    let mfa = if u.totp_enabled {
        act("mfa/reset", "", "Turn two-step verification off")
    } else {
        r#"<p class="hint">Two-step verification is off.</p>"#.to_owned()
    };
    let deletion = match u.deletion_due_at {
        Some(due) => format!(
            r#"<p class="hint" id="deletion-due">Erasure is scheduled for {}.</p>{}"#,
            due.format("%Y-%m-%d %H:%M UTC"),
            act("deletion/cancel", "", "Cancel the deletion")
        ),
        None => act("deletion/schedule", "", "Schedule deletion (after the grace period)"),
    };
    let erase = act(
        "erase",
        r#"<label for="confirm">Type <code>erase</code> to erase this account now, for good</label><input type="text" id="confirm" name="confirm" autocomplete="off" required>"#,
        "Erase now",
    );
    let suspend = act(
        "suspend",
        r#"<label for="reason">Reason</label><input type="text" id="reason" name="reason" maxlength="500" required>"#,
        "Suspend",
    );
    let filter = tessera_core::events::ActivityFilter { user_id: Some(id), limit: 20, ..Default::default() };
    let activity = state.service.audit(ctx.tenant, filter).await.unwrap_or_default();
    let activity_rows: String = activity
        .iter()
        .map(|a| {
            let by = match a.by {
                By::Admin(id) if id == admin_id => "you".to_owned(),
                By::Admin(_) => "an administrator".to_owned(),
                other => other.as_str().to_owned(),
            };
            format!(
                "<tr data-activity=\"{kind}\"><td>{}</td><td>{kind}</td><td>by {}</td><td>{}</td></tr>",
                a.created_at.format("%Y-%m-%d %H:%M UTC"),
                esc(&by),
                esc(a.ip_address.as_deref().unwrap_or("")),
                kind = esc(a.kind.as_str()),
            )
        })
        .collect();
    let body = format!(
        r#"<section class="card"><h1>{title}</h1><p class="sub"><a href="{base}/admin/users">Users</a></p>{banner}</section>
<section class="card" id="sessions"><h2>Sessions</h2><table><thead><tr><th>Address</th><th>Signed in</th><th>Last active</th><th></th></tr></thead><tbody>{session_rows}</tbody></table>{end_all}</section>
<section class="card" id="suspensions"><h2>Suspensions</h2><table><tbody>{suspension_rows}</tbody></table>{suspend}</section>
<section class="card" id="profile"><h2>Profile</h2>{profile}</section>
<section class="card" id="mfa"><h2>Two-step verification</h2>{mfa}</section>
<section class="card" id="activity"><h2>Recent activity</h2><table><tbody>{activity_rows}</tbody></table></section>
<section class="card"><details><summary>Every field, as the server API shows it</summary><table id="fields"><tbody>{fields}</tbody></table></details></section>
<section class="card danger-zone" id="erase"><h2>Deletion</h2>{deletion}{erase}</section>"#,
        title = esc(u.primary_email.as_deref().or(u.username.as_deref()).unwrap_or("User")),
        base = ctx.base,
        banner = match (errors, notice) {
            (Some(e), _) => e.banner(),
            (None, Some(n)) => format!(r#"<p class="alert ok" role="status" id="flash">{}</p>"#, esc(n)),
            (None, None) => String::new(),
        },
    );
    let status = if errors.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    ctx.page(status, "User", &body).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct AdminForm {
    csrf: Option<String>,
    user_id: Option<UserId>,
    session_id: Option<SessionId>,
    suspension_id: Option<SuspensionId>,
    reason: Option<String>,
    confirm: Option<String>,
}

csrf_form!(AdminForm);

/// A posted console form, past its checks: the tenant, the CSRF token, an admin signed in.
pub struct AdminPost<F = AdminForm> {
    ctx: Ctx,
    who: Principal,
    proven_at: chrono::DateTime<chrono::Utc>,
    form: F,
}

impl<F: super::CsrfForm> FromRequest<AppState> for AdminPost<F> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let Posted { ctx, form, headers } = Posted::<F>::from_request(req, state).await?;
        // A post's answer is a redirect to a page, which moves the idle time on itself.
        let InConsole { who, proven_at, .. } = admin(state, &ctx, &headers).await?;
        Ok(Self { ctx, who, proven_at, form })
    }
}

/// The profile form: the account page's fields, and the role.
#[derive(Debug, Default, Deserialize)]
pub struct ProfileForm {
    csrf: Option<String>,
    user_id: Option<String>,
    #[serde(flatten)]
    fields: std::collections::HashMap<String, String>,
}

csrf_form!(ProfileForm);

/// Changes a user's profile and role with the server's rights, through the same validation,
/// policies and hook as the server API (surface `console`), recorded as the administrator's.
pub async fn profile(
    State(state): State<AppState>,
    AdminPost { ctx, who, mut form, .. }: AdminPost<ProfileForm>,
) -> Response {
    let Some(user) = form.user_id.as_deref().and_then(|id| id.parse::<UserId>().ok()) else {
        return ctx.redirect("admin/users");
    };
    let current = match state.service.get_user(ctx.tenant, user).await {
        Ok(u) => u,
        Err(e) => return done(&state, &ctx, &who, user, "saved", Err(e)).await,
    };
    // Only what the form changes, so that the record names just those fields.
    let mut body = serde_json::Map::new();
    for (name, _, _) in super::account::PROFILE_FORM {
        let value = super::account::text_or_null(form.fields.remove(*name));
        let now = match tessera_core::fields::known(name).read(&current) {
            tessera_core::fields::Shown::Text(t) => serde_json::Value::String(t.to_owned()),
            _ => serde_json::Value::Null,
        };
        if value != now {
            body.insert((*name).to_owned(), value);
        }
    }
    if let Some(role) = form.fields.remove("role").filter(|r| r != current.role.as_str()) {
        body.insert("role".to_owned(), serde_json::Value::String(role));
    }
    if body.is_empty() {
        return ctx.redirect(&format!("admin/users/{user}"));
    }
    let opts = tessera_service::UpdateOptions { surface: "console", admin: Some(who.user.id), ..Default::default() };
    let result = state.service.update_user(ctx.tenant, user, &body, &opts).await.map(drop);
    done(&state, &ctx, &who, user, "saved", result).await
}

/// Back to the user's page, or the page with why not.
async fn done(
    state: &AppState,
    ctx: &Ctx,
    who: &Principal,
    user: UserId,
    what: &str,
    result: Result<(), DomainError>,
) -> Response {
    match result {
        Ok(()) => ctx.redirect(&format!("admin/users/{user}?done={what}")),
        Err(e) => {
            let mut errors = FormErrors::from_domain(&e);
            // The console's forms are spread over the page: say each refusal at the top too.
            if let DomainError::Validation(fields) = &e {
                let said: Vec<String> =
                    fields.iter().map(|f| format!("{}: {}", f.field.replace('_', " "), f.message)).collect();
                errors.form = Some(said.join("; "));
            }
            let page = render_user(state, ctx, who.user.id, user, Some(&errors), None).await;
            crate::error::Untold::attach(crate::error::Untold::of(&e), page)
        }
    }
}

/// Ends one of the user's sessions, or all of them.
pub async fn revoke_sessions(State(state): State<AppState>, AdminPost { ctx, who, form, .. }: AdminPost) -> Response {
    let Some(user) = form.user_id else { return ctx.redirect("admin/users") };
    let by = By::Admin(who.user.id);
    let result = state.service.revoke_user_sessions(ctx.tenant, user, form.session_id, by).await.map(drop);
    done(&state, &ctx, &who, user, "sessions-ended", result).await
}

pub async fn suspend(State(state): State<AppState>, AdminPost { ctx, who, form, .. }: AdminPost) -> Response {
    let Some(user) = form.user_id else { return ctx.redirect("admin/users") };
    let s = NewSuspension {
        reason: form.reason.unwrap_or_default(),
        ends_at: None,
        created_by: format!("admin:{}", who.user.id),
        by: By::Admin(who.user.id),
    };
    let result = state.service.suspend_user(ctx.tenant, user, s).await.map(drop);
    done(&state, &ctx, &who, user, "suspended", result).await
}

pub async fn lift(State(state): State<AppState>, AdminPost { ctx, who, form, .. }: AdminPost) -> Response {
    let Some(user) = form.user_id else { return ctx.redirect("admin/users") };
    let Some(suspension) = form.suspension_id else { return ctx.redirect(&format!("admin/users/{user}")) };
    let result = state.service.lift_suspension(ctx.tenant, user, suspension, By::Admin(who.user.id)).await.map(drop);
    done(&state, &ctx, &who, user, "lifted", result).await
}

/// How recent the last proof (a sign-in) must be for an action that cannot be undone.
const REPROOF_MINUTES: i64 = 10;

/// Turns a user's two-step verification off and drops their recovery codes.
pub async fn reset_mfa(State(state): State<AppState>, AdminPost { ctx, who, form, .. }: AdminPost) -> Response {
    let Some(user) = form.user_id else { return ctx.redirect("admin/users") };
    let result = state.service.reset_mfa(ctx.tenant, user, By::Admin(who.user.id)).await;
    done(&state, &ctx, &who, user, "mfa-reset", result).await
}

/// Erases a user now. It cannot be undone, so it asks for a sign-in of the last ten minutes.
pub async fn erase(State(state): State<AppState>, post: AdminPost) -> Response {
    let AdminPost { ctx, who, proven_at, form } = post;
    let Some(user) = form.user_id else { return ctx.redirect("admin/users") };
    if state.service.now() - proven_at > chrono::Duration::minutes(REPROOF_MINUTES) {
        return ctx.redirect("sign-in?return_to=admin&prompt=login");
    }
    if form.confirm.as_deref() != Some("erase") {
        let e = DomainError::field("confirm", "required", "type erase to confirm");
        return done(&state, &ctx, &who, user, "erased", Err(e)).await;
    }
    match state.service.delete_user(ctx.tenant, user, By::Admin(who.user.id)).await {
        Ok(()) => ctx.redirect("admin/users?done=erased"),
        Err(e) => done(&state, &ctx, &who, user, "erased", Err(e)).await,
    }
}

/// Schedules the user's erasure after the tenant's grace period (the user's own signing in
/// cancels it, as after `DELETE /v1/me`).
pub async fn schedule_deletion(State(state): State<AppState>, AdminPost { ctx, who, form, .. }: AdminPost) -> Response {
    let Some(user) = form.user_id else { return ctx.redirect("admin/users") };
    let result = state.service.schedule_deletion(ctx.tenant, user, By::Admin(who.user.id)).await.map(drop);
    done(&state, &ctx, &who, user, "deletion-scheduled", result).await
}

pub async fn cancel_deletion(State(state): State<AppState>, AdminPost { ctx, who, form, .. }: AdminPost) -> Response {
    let Some(user) = form.user_id else { return ctx.redirect("admin/users") };
    let result = state.service.cancel_deletion(ctx.tenant, user, By::Admin(who.user.id)).await;
    done(&state, &ctx, &who, user, "deletion-cancelled", result).await
}
