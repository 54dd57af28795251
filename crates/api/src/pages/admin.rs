//! The tenant's console, for its admins (users whose `role` is `admin`), reached through the
//! hosted sign-in like the account page: who may enter, finding users (by the start of their
//! email address or username, a page at a time) and a user's page (their fields as the server
//! sees them, sessions, suspensions and recent activity). Server-rendered, no script.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_core::UserId;
use tessera_core::user::{Role, User};
use tessera_service::Principal;

use super::{Ctx, esc, no_issuer};
use crate::AppState;
use crate::extract::PathParams;

/// Users a page of the search shows.
const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct Search {
    q: Option<String>,
    after: Option<UserId>,
}

/// The signed-in admin, or the answer for anyone else: the sign-in page for nobody, `403` for
/// a member.
async fn admin(state: &AppState, ctx: &Ctx, headers: &HeaderMap) -> Result<Principal, Response> {
    match ctx.signed_in(state, headers).await {
        None => Err(ctx.redirect("sign-in?return_to=admin")),
        Some((who, _)) if who.user.role == Role::Admin => Ok(who),
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
    let who = match admin(&state, &ctx, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let body = format!(
        r#"<section class="card"><h1>Console</h1><p class="sub">{tenant}: signed in as {me}.</p>
<h2>Users</h2>{search}</section>"#,
        tenant = esc(&ctx.tenant_name),
        me = esc(who.user.primary_email.as_deref().or(who.user.username.as_deref()).unwrap_or("an administrator")),
        search = search_form(&ctx, ""),
    );
    ctx.page(StatusCode::OK, "Console", &body).into_response()
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
    if let Err(r) = admin(&state, &ctx, &headers).await {
        return r;
    }
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
        Some(last) if found.len() == PAGE as usize => format!(
            r#"<p><a class="button secondary" id="next" href="{}/admin/users?q={}&amp;after={}">Next</a></p>"#,
            ctx.base,
            esc(&url_part(&q)),
            last.id
        ),
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
    let body = format!(
        r#"<section class="card"><h1>Users</h1><p class="sub"><a href="{base}/admin">Console</a></p>{search}{table}{next}</section>"#,
        base = ctx.base,
        search = search_form(&ctx, &q),
    );
    ctx.page(StatusCode::OK, "Users", &body).into_response()
}

/// `s` percent-encoded for a query string.
fn url_part(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub async fn user(
    State(state): State<AppState>,
    PathParams((raw, id)): PathParams<(String, UserId)>,
    headers: HeaderMap,
) -> Response {
    let Some(ctx) = Ctx::new(&state, &raw, &headers).await else { return no_issuer() };
    if let Err(r) = admin(&state, &ctx, &headers).await {
        return r;
    }
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
    let session_rows: String = sessions
        .iter()
        .map(|s| {
            format!(
                "<tr data-session=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                s.id,
                esc(s.ip_address.as_deref().unwrap_or("—")),
                s.created_at.format("%Y-%m-%d %H:%M UTC"),
                s.last_refreshed_at.format("%Y-%m-%d %H:%M UTC"),
            )
        })
        .collect();
    let filter = tessera_core::events::ActivityFilter { user_id: Some(id), limit: 20, ..Default::default() };
    let activity = state.service.audit(ctx.tenant, filter).await.unwrap_or_default();
    let activity_rows: String = activity
        .iter()
        .map(|a| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                a.created_at.format("%Y-%m-%d %H:%M UTC"),
                esc(a.kind.as_str()),
                esc(a.ip_address.as_deref().unwrap_or("")),
            )
        })
        .collect();
    let body = format!(
        r#"<section class="card"><h1>{title}</h1><p class="sub"><a href="{base}/admin/users">Users</a></p>
<table id="fields"><tbody>{fields}</tbody></table></section>
<section class="card" id="sessions"><h2>Sessions</h2><table><thead><tr><th>Address</th><th>Signed in</th><th>Last active</th></tr></thead><tbody>{session_rows}</tbody></table></section>
<section class="card" id="activity"><h2>Recent activity</h2><table><tbody>{activity_rows}</tbody></table></section>"#,
        title = esc(u.primary_email.as_deref().or(u.username.as_deref()).unwrap_or("User")),
        base = ctx.base,
    );
    ctx.page(StatusCode::OK, "User", &body).into_response()
}
