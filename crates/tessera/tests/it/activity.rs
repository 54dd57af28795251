//! The activity trail and the audit log, read after known sequences of actions: what each
//! entry says, who did it and from where, its pages, the audit log's filters, erasure and
//! retention, and that a change that fails leaves no entry.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// The user's own trail, newest first: every page, followed to the end, `limit` at a time.
async fn my_activity(app: &TestApp, access: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/me/activity?limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = body(app.send(Method::GET, &path, access, None).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

fn types(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["type"].as_str().unwrap()).collect()
}

async fn audit(app: &TestApp, tenant: &Tenant, query: &str) -> (StatusCode, Value) {
    app.server(Method::GET, tenant, &format!("/v1/audit?{query}"), None).await
}

#[tokio::test]
async fn the_trail_records_a_known_sequence_newest_first() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let first = app.sign_up(&t, "ada@example.com").await;
    // A failed sign-in from a browser, then a good one from the same browser.
    let bad = app
        .client
        .post(app.url("/v1/auth/sign-in"))
        .header("X-Tenant-ID", &t.id)
        .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0")
        .json(&json!({"email": "ada@example.com", "password": "not the password at all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let second = app.sign_in_as(&t.id, "ada@example.com").await;
    let (status, _) = app.patch_me(&second.access, json!({"display_name": "Ada", "bio": "Engines"})).await;
    assert_eq!(status, StatusCode::OK);
    // The password change ends the first session: its revocation is in the trail too.
    let change = json!({"current_password": PASSWORD, "new_password": "a much newer passphrase"});
    let res = app.send(Method::POST, "/v1/me/password", &second.access, Some(change)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    let items = my_activity(&app, &second.access, 2).await;
    assert_eq!(
        types(&items),
        [
            "session.revoked",
            "user.password_changed",
            "user.updated",
            "session.created",
            "sign_in.failed",
            "session.created",
            "user.created"
        ]
    );
    let [revoked, changed, updated, signed_in, failed, first_sign_in, created] = &items[..] else { unreachable!() };
    assert_eq!(revoked["details"]["session_id"], first.session_id.as_str());
    assert_eq!(changed["actor"], "user");
    let mut fields: Vec<&str> =
        updated["details"]["fields"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["bio", "display_name"]);
    assert!(!updated.to_string().contains("Engines"), "field names only, never values: {updated}");
    assert_eq!(signed_in["details"]["method"], "password");
    assert_eq!(signed_in["details"]["session_id"], second.session_id.as_str());
    assert_eq!(signed_in["ip_address"], "127.0.0.1");
    assert_eq!(failed["details"]["method"], "password");
    assert_eq!(failed["ip_address"], "127.0.0.1");
    assert_eq!(failed["user_agent"], "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0");
    assert_eq!(first_sign_in["details"]["session_id"], first.session_id.as_str());
    assert_eq!(created["details"]["anonymous"], false);
    for i in &items {
        assert_eq!(i["user_id"], first.id.as_str());
    }
}

#[tokio::test]
async fn deletion_scheduled_and_cancelled_and_the_second_factor_are_in_the_trail() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let res = app.send(Method::DELETE, "/v1/me", &u.access, None).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    // Signing in again cancels the deletion; then a wrong TOTP code fails the second factor.
    let again = app.sign_in_as(&t.id, &u.email).await;
    app.enable_totp(&again, b"0123456789abcdefghij").await;
    let (status, v) = app.sign_in(&t.id, &u.email, PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let mfa = json!({"mfa_token": v["details"]["mfa_token"], "code": "000000"});
    let (status, _) = body(app.send_for_tenant(Method::POST, "/v1/auth/mfa", &t.id, mfa).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let items = my_activity(&app, &again.access, 50).await;
    assert_eq!(
        types(&items),
        [
            "sign_in.failed",
            "user.mfa_enabled",
            "session.created",
            "user.deletion_cancelled",
            "session.revoked",
            "user.deleted",
            "session.created",
            "user.created"
        ]
    );
    assert_eq!(items[0]["details"]["method"], "totp");
    assert_eq!(items[1]["actor"], "server");
    assert_eq!(items[4]["details"]["session_id"], u.session_id.as_str());
}

#[tokio::test]
async fn pages_do_not_overlap_and_end() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    for i in 0..5 {
        let (status, _) = app.patch_me(&u.access, json!({"display_name": format!("Ada {i}")})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let all = my_activity(&app, &u.access, 50).await;
    assert_eq!(all.len(), 7, "created, signed in, five changes");
    for limit in [1, 2, 3, 7] {
        let paged = my_activity(&app, &u.access, limit).await;
        assert_eq!(paged, all, "pages of {limit}");
    }
    let (status, v) = body(app.send(Method::GET, "/v1/me/activity?cursor=nope", &u.access, None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn a_change_that_fails_leaves_no_entry() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    app.sign_up(&t, "grace@example.com").await;
    let (status, _) =
        app.patch_me(&app.sign_in_as(&t.id, "grace@example.com").await.access, json!({"username": "grace"})).await;
    assert_eq!(status, StatusCode::OK);
    let ada = app.sign_up(&t, "ada@example.com").await;
    let before = my_activity(&app, &ada.access, 50).await;
    let (status, _) = app.patch_me(&ada.access, json!({"username": "grace"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(my_activity(&app, &ada.access, 50).await, before);
}

#[tokio::test]
async fn the_audit_log_filters_by_user_type_and_time_and_names_the_server() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let ada = app.sign_up(&t, "ada@example.com").await;
    let t0 = app.service().now();
    app.advance(chrono::Duration::minutes(10));
    let grace = app.sign_up(&t, "grace@example.com").await;
    let (status, _) = app
        .server(Method::POST, &t, &format!("/v1/users/{}/suspensions", grace.id), Some(json!({"reason": "spam"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, all) = audit(&app, &t, "").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        types(all["items"].as_array().unwrap()),
        ["user.suspended", "session.created", "user.created", "session.created", "user.created"]
    );
    assert_eq!(all["items"][0]["actor"], "server");
    assert_eq!(all["items"][0]["user_id"], grace.id.as_str());

    let (_, mine) = audit(&app, &t, &format!("user_id={}", ada.id)).await;
    assert_eq!(types(mine["items"].as_array().unwrap()), ["session.created", "user.created"]);
    let (_, created) = audit(&app, &t, "type=user.created").await;
    let ids: Vec<&str> = created["items"].as_array().unwrap().iter().map(|i| i["user_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [grace.id.as_str(), ada.id.as_str()]);
    let t0 = urlencode(&t0.to_rfc3339());
    let (_, early) = audit(&app, &t, &format!("until={t0}")).await;
    assert_eq!(types(early["items"].as_array().unwrap()), ["session.created", "user.created"]);
    let (_, late) = audit(&app, &t, &format!("since={t0}&type=session.created")).await;
    assert_eq!(late["items"].as_array().unwrap().len(), 2, "ada's sign-in at t0 and grace's later: {late}");

    let (status, v) = audit(&app, &t, "type=user.exploded").await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["type:invalid_value".to_owned()]));
    let (status, v) = audit(&app, &t, "since=2030-01-01T00:00:00Z&until=2029-01-01T00:00:00Z").await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["since:invalid_range".to_owned()]));

    // Another tenant's log is its own.
    let other = app.tenant().await;
    let (_, v) = audit(&app, &other, "").await;
    assert_eq!(v["items"], json!([]));
    // A user's token is not a server key.
    let res = app.send(Method::GET, "/v1/audit", &ada.access, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn erasure_leaves_one_entry_and_retention_forgets_the_rest() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let ada = app.sign_up(&t, "ada@example.com").await;
    let grace = app.sign_up(&t, "grace@example.com").await;
    let (status, _) = app.server(Method::DELETE, &t, &format!("/v1/users/{}", ada.id), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, v) = audit(&app, &t, &format!("user_id={}", ada.id)).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(types(items), ["user.deleted"], "where Ada signed in from is erased with her");
    assert_eq!((items[0]["details"]["erased"].clone(), items[0]["actor"].clone()), (json!(true), json!("server")));

    let (status, _) = app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"activity_retention_days": 30}))).await;
    assert_eq!(status, StatusCode::OK);
    app.advance(chrono::Duration::days(29));
    assert_eq!(app.service().purge_activity().await.unwrap(), 0);
    app.sign_in_as(&t.id, &grace.email).await;
    app.advance(chrono::Duration::days(2));
    assert_eq!(app.service().purge_activity().await.unwrap(), 3, "grace's first two and ada's erasure");
    let (_, v) = audit(&app, &t, "").await;
    assert_eq!(types(v["items"].as_array().unwrap()), ["session.created"]);
    assert_eq!(v["items"][0]["user_id"], grace.id.as_str());
    let (status, v) = app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"activity_retention_days": 0}))).await;
    assert_eq!(
        (status, field_codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["activity_retention_days:out_of_range".to_owned()])
    );
}

#[tokio::test]
async fn the_scheduled_erasure_is_the_systems() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"deletion_grace_seconds": 0}))).await;
    let res = app.send(Method::DELETE, "/v1/me", &u.access, None).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    app.advance(chrono::Duration::seconds(1));
    assert_eq!(app.service().purge_due().await.unwrap(), 1);
    let (_, v) = audit(&app, &t, &format!("user_id={}", u.id)).await;
    assert_eq!(types(v["items"].as_array().unwrap()), ["user.deleted"]);
    assert_eq!(v["items"][0]["actor"], "system");
}

#[tokio::test]
async fn the_account_page_shows_recent_activity() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (status, _) = app.patch_me(&u.access, json!({"display_name": "Ada"})).await;
    assert_eq!(status, StatusCode::OK);
    let base = format!("{}/oidc/{}", app.base, t.id);
    let browser = FormClient::new(&app.base);
    let page = browser.get(&format!("{base}/sign-in?return_to=account")).await;
    let csrf = page.input("csrf").expect("csrf field");
    browser.sign_in(&format!("{base}/sign-in"), &csrf, &u.email, "account").await;
    let account = browser.get(&format!("{base}/account")).await;
    assert_eq!(account.status, StatusCode::OK);
    let section = account.text.split(r#"id="activity""#).nth(1).expect("a recent-activity section");
    assert!(section.contains("Profile changed") && section.contains("display_name"), "{section}");
    assert!(section.contains(r#"data-activity="session.created""#), "{section}");
}
