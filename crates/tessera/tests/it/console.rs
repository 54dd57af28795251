//! The tenant's console, as an ordinary HTTP client drives it: who may enter, and finding a
//! user among many.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// A browser signed in to the hosted pages as `email`.
async fn signed_in(app: &TestApp, t: &Tenant, email: &str) -> FormClient {
    let browser = FormClient::new(&app.base);
    let base = format!("{}/oidc/{}", app.base, t.id);
    let page = browser.get(&format!("{base}/sign-in?return_to=admin")).await;
    let csrf = page.input("csrf").unwrap();
    let done = browser.sign_in(&format!("{base}/sign-in"), &csrf, email, "admin").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(&app.base), format!("{base}/admin"), "back to the console after signing in");
    browser
}

/// An admin of `t` (root@example.com) and a browser signed in to the console as them.
async fn admin_in_console(app: &TestApp, t: &Tenant) -> (SignedIn, FormClient) {
    let admin = app.sign_up(t, "root@example.com").await;
    let (status, _) = app.update_user(t, &admin.id, json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::OK);
    let browser = signed_in(app, t, "root@example.com").await;
    (admin, browser)
}

#[tokio::test]
async fn only_admins_enter_and_they_find_a_user_by_the_start_of_an_address_or_username() {
    let app = spawn_app().await;
    let (t, member) = app.user().await;
    let admin = app.sign_up(&t, "root@example.com").await;
    let (status, _) = app.update_user(&t, &admin.id, json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::OK);
    for i in 0..60 {
        let u = json!({"primary_email": format!("user{i:02}@shop.example"), "username": format!("shopper{i:02}")});
        assert_eq!(app.create_user(&t, u).await.0, StatusCode::CREATED);
    }
    let base = format!("{}/oidc/{}", app.base, t.id);

    // Nobody signed in is sent to sign in; a member is refused everywhere in it.
    let anonymous = FormClient::new(&app.base).get(&format!("{base}/admin")).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert!(anonymous.location(&app.base).ends_with("/sign-in?return_to=admin"));
    let browser = signed_in(&app, &t, &member.email).await;
    for path in ["admin", "admin/users?q=user", &format!("admin/users/{}", admin.id)] {
        let page = browser.get(&format!("{base}/{path}")).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.text.contains("Not an administrator"), "{path}");
        assert!(!page.text.contains("root@example.com"), "{path}");
    }

    let browser = signed_in(&app, &t, "root@example.com").await;
    let home = browser.get(&format!("{base}/admin")).await;
    assert_eq!(home.status, StatusCode::OK);
    assert_eq!(home.headers["cache-control"], "no-store");
    assert!(home.headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    // A page of 50, then the rest; by the start of the address or of the username, any case.
    let first = browser.get(&format!("{base}/admin/users?q=USER")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.text.matches("data-user=").count(), 50);
    let next = first.text.split(r#"id="next" href=""#).nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    let rest = browser.get(&format!("{}{next}", app.base)).await;
    assert_eq!(rest.text.matches("data-user=").count(), 10);
    assert!(!rest.text.contains(r#"id="next""#));
    let by_name = browser.get(&format!("{base}/admin/users?q=shopper4")).await;
    assert_eq!(by_name.text.matches("data-user=").count(), 10, "shopper40 to shopper49");
    let none = browser.get(&format!("{base}/admin/users?q=nobody")).await;
    assert!(none.text.contains(r#"id="none""#));

    // A user's page: the server's view of them, their sessions and activity.
    let page = browser.get(&format!("{base}/admin/users/{}", member.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains(&member.email) && page.text.contains(&member.session_id), "{}", page.text);
    assert!(page.text.contains("session.created"));
}

#[tokio::test]
async fn an_admin_ends_sessions_suspends_and_lifts_and_each_is_in_the_audit_log_under_their_name() {
    let app = spawn_app().await;
    let (t, member) = app.user().await;
    let other = app.sign_in_as(&t.id, &member.email).await;
    let (admin, browser) = admin_in_console(&app, &t).await;
    let base = format!("{}/oidc/{}", app.base, t.id);
    let page = browser.get(&format!("{base}/admin/users/{}", member.id)).await;
    let csrf = page.input("csrf").unwrap();
    let post = |path: &'static str, fields: Vec<(&'static str, String)>| {
        let browser = &browser;
        let url = format!("{base}/admin/{path}");
        async move {
            let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser.post(&url, &form).await
        }
    };

    // Without the page's CSRF token, nothing happens.
    let forged = post("sessions/revoke", vec![("user_id", member.id.clone())]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get_me(&member.access).await.0, StatusCode::OK);

    // One session, then every other one.
    let one = vec![("csrf", csrf.clone()), ("user_id", member.id.clone()), ("session_id", other.session_id.clone())];
    let done = post("sessions/revoke", one).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(done.location(&app.base).ends_with(&format!("/admin/users/{}?done=sessions-ended", member.id)));
    let after = browser.get(&done.location(&app.base)).await;
    assert!(after.text.contains(r#"id="flash""#) && !after.text.contains(&other.session_id));
    assert_eq!(app.get_me(&other.access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_me(&member.access).await.0, StatusCode::OK);
    post("sessions/revoke", vec![("csrf", csrf.clone()), ("user_id", member.id.clone())]).await;
    assert_eq!(app.get_me(&member.access).await.0, StatusCode::UNAUTHORIZED);

    // A suspension needs its reason; then it holds until lifted.
    let empty =
        post("suspend", vec![("csrf", csrf.clone()), ("user_id", member.id.clone()), ("reason", String::new())]).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let reason = ("reason", "chargeback".to_owned());
    post("suspend", vec![("csrf", csrf.clone()), ("user_id", member.id.clone()), reason]).await;
    assert_eq!(app.sign_in(&t.id, &member.email, PASSWORD).await.0, StatusCode::FORBIDDEN);
    let page = browser.get(&format!("{base}/admin/users/{}", member.id)).await;
    let suspension = page.text.split(r#"data-suspension=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let lift = vec![("csrf", csrf.clone()), ("user_id", member.id.clone()), ("suspension_id", suspension)];
    assert_eq!(post("lift", lift).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.sign_in(&t.id, &member.email, PASSWORD).await.0, StatusCode::OK);

    // The audit log names the administrator for each.
    let (_, log) = app.server(reqwest::Method::GET, &t, &format!("/v1/audit?user_id={}", member.id), None).await;
    let by_admin: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "admin" && e["admin_id"] == admin.id.as_str())
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(by_admin, ["user.unsuspended", "user.suspended", "session.revoked", "session.revoked"], "{log}");
    // The user's own account page says an administrator did it.
    let mine = FormClient::new(&app.base);
    let page = mine.get(&format!("{base}/sign-in?return_to=account")).await;
    mine.sign_in(&format!("{base}/sign-in"), &page.input("csrf").unwrap(), &member.email, "account").await;
    let account = mine.get(&format!("{base}/account")).await;
    let suspended_row =
        account.text.split(r#"data-activity="user.suspended""#).nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(suspended_row.contains("an administrator"), "{suspended_row}");
}

#[tokio::test]
async fn an_admin_edits_a_profile_and_role_through_the_same_validation_and_it_is_recorded_as_theirs() {
    let app = spawn_app().await;
    let (t, member) = app.user().await;
    let (admin, browser) = admin_in_console(&app, &t).await;
    let base = format!("{}/oidc/{}", app.base, t.id);
    let page = browser.get(&format!("{base}/admin/users/{}", member.id)).await;
    let csrf = page.input("csrf").unwrap();
    let url = format!("{base}/admin/profile");

    // A name that could pass for another is refused, with the field's message, and nothing changes.
    let bad = [("csrf", csrf.as_str()), ("user_id", &member.id), ("display_name", "ab\u{202e}cd"), ("role", "member")];
    let refused = browser.post(&url, &bad).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.text.contains("must not contain invisible or direction-changing characters"));
    assert_eq!(app.get_me(&member.access).await.1["display_name"], serde_json::Value::Null);

    let good = [("csrf", csrf.as_str()), ("user_id", &member.id), ("display_name", "Grace Hopper"), ("role", "admin")];
    assert_eq!(browser.post(&url, &good).await.status, StatusCode::SEE_OTHER);
    let (_, v) = app.server(reqwest::Method::GET, &t, &format!("/v1/users/{}", member.id), None).await;
    assert_eq!((v["display_name"].as_str(), v["role"].as_str()), (Some("Grace Hopper"), Some("admin")));
    let (_, log) = app.server(reqwest::Method::GET, &t, &format!("/v1/audit?user_id={}", member.id), None).await;
    let update = &log["items"][0];
    assert_eq!((update["type"].as_str(), update["actor"].as_str()), (Some("user.updated"), Some("admin")));
    assert_eq!(update["admin_id"], admin.id.as_str());
    assert_eq!(update["details"]["fields"], json!(["display_name", "role"]));
}

#[tokio::test]
async fn the_console_closes_after_thirty_idle_minutes_and_a_fresh_sign_in_opens_it() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let (admin, browser) = admin_in_console(&app, &t).await;
    let base = format!("{}/oidc/{}", app.base, t.id);
    let home = browser.get(&format!("{base}/admin")).await;
    assert_eq!(home.status, StatusCode::OK);
    // Its own cookie: on the console's path, Strict, and as long-lived as the idle time.
    let set = home.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    let console = set.iter().find(|c| c.starts_with("tessera_console=")).unwrap();
    assert!(
        console.contains(&format!("Path=/oidc/{}/admin", t.id)) && console.contains("SameSite=Strict"),
        "{console}"
    );
    assert!(console.contains("Max-Age=1800") && console.contains("HttpOnly"), "{console}");

    // Used every 20 minutes, it stays open.
    for _ in 0..3 {
        app.advance(chrono::Duration::minutes(20));
        assert_eq!(browser.get(&format!("{base}/admin/users?q=root")).await.status, StatusCode::OK);
    }
    // Left for 31, it asks for the password again, and takes no action meanwhile.
    app.advance(chrono::Duration::minutes(31));
    let closed = browser.get(&format!("{base}/admin")).await;
    assert_eq!(closed.status, StatusCode::SEE_OTHER);
    assert!(closed.location(&app.base).ends_with("/sign-in?return_to=admin&prompt=login"));
    let csrf = browser.get(&format!("{base}/sign-in?return_to=admin&prompt=login")).await;
    assert!(csrf.text.contains("idle"), "the form is shown though signed in");
    let csrf = csrf.input("csrf").unwrap();
    let blocked = browser
        .post(&format!("{base}/admin/suspend"), &[("csrf", &csrf), ("user_id", &admin.id), ("reason", "x")])
        .await;
    assert_eq!(blocked.status, StatusCode::SEE_OTHER);
    let (_, me) = app.server(reqwest::Method::GET, &t, &format!("/v1/users/{}", admin.id), None).await;
    assert_eq!(me["suspensions"], json!([]), "nothing was suspended");
    let again = browser.sign_in(&format!("{base}/sign-in"), &csrf, "root@example.com", "admin").await;
    assert_eq!(again.location(&app.base), format!("{base}/admin"));
    assert_eq!(browser.get(&format!("{base}/admin")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_admin_turns_off_a_users_mfa_and_erases_an_account_only_with_a_recent_sign_in() {
    let app = spawn_app().await;
    let (t, member) = app.user().await;
    app.enable_totp(&member, b"12345678901234567890").await;
    let (admin, browser) = admin_in_console(&app, &t).await;
    let base = format!("{}/oidc/{}", app.base, t.id);
    let page = browser.get(&format!("{base}/admin/users/{}", member.id)).await;
    let csrf = page.input("csrf").unwrap();

    let reset = browser.post(&format!("{base}/admin/mfa/reset"), &[("csrf", &csrf), ("user_id", &member.id)]).await;
    assert!(reset.location(&app.base).ends_with("?done=mfa-reset"));
    assert_eq!(app.sign_in(&t.id, &member.email, PASSWORD).await.0, StatusCode::OK, "no code asked any more");
    let (_, log) = app.server(reqwest::Method::GET, &t, &format!("/v1/audit?user_id={}", member.id), None).await;
    let mfa = log["items"].as_array().unwrap().iter().find(|e| e["type"] == "user.mfa_disabled").cloned().unwrap();
    assert_eq!(mfa["admin_id"], admin.id.as_str());

    // Erasing asks for the word, then for a sign-in of the last ten minutes.
    let erase = format!("{base}/admin/erase");
    let unconfirmed = browser.post(&erase, &[("csrf", &csrf), ("user_id", &member.id)]).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    app.advance(chrono::Duration::minutes(11));
    let confirm = [("csrf", csrf.as_str()), ("user_id", member.id.as_str()), ("confirm", "erase")];
    let stale = browser.post(&erase, &confirm).await;
    assert!(stale.location(&app.base).ends_with("/sign-in?return_to=admin&prompt=login"));
    let (status, _) = app.server(reqwest::Method::GET, &t, &format!("/v1/users/{}", member.id), None).await;
    assert_eq!(status, StatusCode::OK, "still there");
    let again = browser.sign_in(&format!("{base}/sign-in"), &csrf, "root@example.com", "admin").await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let erased = browser.post(&erase, &confirm).await;
    assert!(erased.location(&app.base).ends_with("/admin/users?done=erased"), "{}", erased.location(&app.base));
    let (status, _) = app.server(reqwest::Method::GET, &t, &format!("/v1/users/{}", member.id), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_admin_schedules_and_cancels_a_deletion() {
    let app = spawn_app().await;
    let (t, member) = app.user().await;
    let (admin, browser) = admin_in_console(&app, &t).await;
    let base = format!("{}/oidc/{}", app.base, t.id);
    let csrf = browser.get(&format!("{base}/admin/users/{}", member.id)).await.input("csrf").unwrap();
    let form = [("csrf", csrf.as_str()), ("user_id", member.id.as_str())];

    let scheduled = browser.post(&format!("{base}/admin/deletion/schedule"), &form).await;
    assert!(scheduled.location(&app.base).ends_with("?done=deletion-scheduled"));
    let (_, v) = app.server(reqwest::Method::GET, &t, &format!("/v1/users/{}", member.id), None).await;
    assert!(v["deletion_scheduled_at"].is_string(), "{v}");
    assert_eq!(app.get_me(&member.access).await.0, StatusCode::UNAUTHORIZED, "its sessions ended");
    let page = browser.get(&format!("{base}/admin/users/{}", member.id)).await;
    assert!(page.text.contains(r#"id="deletion-due""#));

    let cancelled = browser.post(&format!("{base}/admin/deletion/cancel"), &form).await;
    assert!(cancelled.location(&app.base).ends_with("?done=deletion-cancelled"));
    let (_, v) = app.server(reqwest::Method::GET, &t, &format!("/v1/users/{}", member.id), None).await;
    assert!(v["deletion_scheduled_at"].is_null(), "{v}");
    // Cancelling what is not scheduled says so.
    let again = browser.post(&format!("{base}/admin/deletion/cancel"), &form).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.text.contains("no deletion is scheduled"));
    let (_, log) = app.server(reqwest::Method::GET, &t, &format!("/v1/audit?user_id={}", member.id), None).await;
    let kinds: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["admin_id"] == admin.id.as_str())
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"user.deletion_cancelled"), "{kinds:?}");
    assert!(kinds.contains(&"user.deleted") && kinds.contains(&"session.revoked"), "{kinds:?}");
}
