//! `/v1/me`: reading, partial updates, PUT profile, If-Match races, password change, avatar,
//! teams, export, and who may write what.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn get_me_returns_the_user_with_its_version_as_etag() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let res = app.send(Method::GET, "/v1/me", &u.access, None).await;
    assert_eq!(res.headers()["etag"], "\"1\"");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (_, v) = body(res).await;
    assert_eq!(v["id"].as_str(), Some(u.id.as_str()));
    assert_eq!(v["tenant_id"].as_str(), Some(t.id.as_str()));
    for field in [
        "primary_email",
        "display_name",
        "phone_number",
        "locale",
        "timezone",
        "location",
        "client_metadata",
        "client_read_only_metadata",
        "is_service_account",
        "is_anonymous",
        "auth_provider",
        "selected_team_id",
        "suspensions",
        "active_sessions",
        "created_at",
        "updated_at",
        "status",
    ] {
        assert!(v.get(field).is_some(), "user object lacks {field}");
    }
    assert!(v.get("server_metadata").is_none(), "server metadata is for the server only");
    assert!(v.get("secure_metadata").is_none());
}

#[tokio::test]
async fn patch_changes_only_what_is_sent_null_clears_and_empty_display_name_is_null() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let (status, v) = app
        .patch_me(
            &u.access,
            json!({"display_name": "  Ada  ", "bio": "Analyst", "locale": "en-gb", "timezone": "Europe/London",
                   "phone_number": "+44 20 7946 0958", "birthdate": "1815-12-10", "client_metadata": {"theme": "dark"},
                   "location": {"longitude": -0.1276, "latitude": 51.5072}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["display_name"], "Ada");
    assert_eq!(v["locale"], "en-GB");
    assert_eq!(v["phone_number"], "+442079460958");
    assert_eq!(v["location"], json!({"type": "Point", "coordinates": [-0.1276, 51.5072]}));
    assert_eq!(v["version"], 2);

    let (status, v) = app.patch_me(&u.access, json!({"display_name": "", "bio": null})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["display_name"], Value::Null);
    assert_eq!(v["bio"], Value::Null);
    assert_eq!(v["locale"], "en-GB", "untouched");
    assert_eq!(v["client_metadata"], json!({"theme": "dark"}));
    let (_, again) = app.get_me(&u.access).await;
    assert_eq!(again["timezone"], "Europe/London");
    assert_eq!(again["birthdate"], "1815-12-10");
}

#[tokio::test]
async fn a_refused_update_changes_nothing() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    app.patch_me(&u.access, json!({"bio": "kept"})).await;
    let (status, v) = app.patch_me(&u.access, json!({"bio": "lost", "timezone": "Nowhere/Nothing"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["timezone:invalid_timezone"]);
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!((me["bio"].as_str(), me["version"].as_i64()), (Some("kept"), Some(2)));
}

#[tokio::test]
async fn fields_the_user_may_not_write_are_refused_by_name_with_notices() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let (status, v) = app
        .patch_me(&u.access, json!({"server_metadata": {"plan": "pro"}, "client_read_only_metadata": {}, "bio": "x"}))
        .await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert_eq!(field_codes(&v), ["client_read_only_metadata:server_only", "server_metadata:server_only"]);
    assert!(!v["notices"].as_array().unwrap().is_empty());
    let (status, v) = app.patch_me(&u.access, json!({"id": "x", "is_service_account": true, "unknown": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["id:read_only", "is_service_account:read_only", "unknown:unknown_field"]);
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["version"], 1);
}

#[tokio::test]
async fn idp_managed_fields_are_read_only_for_oidc_users() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let sso =
        json!({"primary_email": "sso@example.com", "password": PASSWORD, "auth_provider": "oidc", "first_name": "Sam"});
    assert_eq!(app.create_user(&t, sso).await.0, StatusCode::CREATED);
    let u = app.sign_in_as(&t.id, "sso@example.com").await;
    let (status, v) = app.patch_me(&u.access, json!({"first_name": "Samuel", "primary_email": "x@example.com"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(field_codes(&v), ["first_name:idp_managed", "primary_email:idp_managed"]);
    assert_eq!(app.patch_me(&u.access, json!({"display_name": "Sam"})).await.0, StatusCode::OK);
}

#[tokio::test]
async fn service_accounts_get_403_on_self_update() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let ci_bot = json!({"username": "ci-bot", "primary_email": "bot@example.com", "password": PASSWORD, "is_service_account": true});
    assert_eq!(app.create_user(&t, ci_bot).await.0, StatusCode::CREATED);
    let bot = app.sign_in_as(&t.id, "bot@example.com").await;
    let (status, v) = app.get_me(&bot.access).await;
    assert_eq!((status, v["is_service_account"].as_bool()), (StatusCode::OK, Some(true)));
    let (status, v) = app.patch_me(&bot.access, json!({"display_name": "Bot"})).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert_eq!(v["notices"].as_array().unwrap().len(), 1);
    let res = app.send(Method::DELETE, "/v1/me", &bot.access, None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn put_profile_replaces_the_profile_but_keeps_identity_and_metadata() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    app.patch_me(&u.access, json!({"bio": "old", "company": "Acme", "client_metadata": {"k": 1}, "username": "ada"}))
        .await;
    let res = app.send(Method::PUT, "/v1/me/profile", &u.access, Some(json!({"display_name": "Ada"}))).await;
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["display_name"], "Ada");
    assert_eq!(v["bio"], Value::Null);
    assert_eq!(v["company"], Value::Null);
    assert_eq!(v["username"], "ada");
    assert_eq!(v["client_metadata"], json!({"k": 1}));
}

async fn patch_if_match(app: &TestApp, u: &SignedIn, etag: &str, patch: Value) -> reqwest::Response {
    app.client
        .patch(app.url("/v1/me"))
        .bearer_auth(&u.access)
        .header("If-Match", etag)
        .json(&patch)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stale_if_match_gets_412_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let send = |etag: &'static str, bio: &'static str| {
        let (app, u) = (&app, &u);
        async move { body(patch_if_match(app, u, etag, json!({"bio": bio})).await).await }
    };
    assert_eq!(send("\"1\"", "first").await.0, StatusCode::OK);
    let (status, v) = send("\"1\"", "second").await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::PRECONDITION_FAILED, Some("precondition_failed")));
    assert_eq!(send("garbage", "third").await.0, StatusCode::PRECONDITION_FAILED);
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["bio"], "first");
    assert_eq!(send("*", "any").await.0, StatusCode::OK);
}

#[tokio::test]
async fn two_racing_conditional_updates_have_exactly_one_winner() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let send = |bio: &'static str| {
        let (app, u) = (&app, &u);
        async move { patch_if_match(app, u, "\"1\"", json!({"bio": bio})).await.status() }
    };
    let (a, b) = tokio::join!(send("a"), send("b"));
    let mut got = [a, b];
    got.sort();
    assert_eq!(got, [StatusCode::OK, StatusCode::PRECONDITION_FAILED]);
}

#[tokio::test]
async fn many_clients_incrementing_with_if_match_lose_no_update() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    const CLIENTS: i64 = 8;
    let worker = |_: i64| {
        let (app, u) = (&app, &u);
        async move {
            let mut conflicts = 0;
            loop {
                let res = app.send(Method::GET, "/v1/me", &u.access, None).await;
                let etag = res.headers()["etag"].to_str().unwrap().to_owned();
                let me: Value = res.json().await.unwrap();
                let n = me["client_metadata"]["n"].as_i64().unwrap_or(0);
                let res = patch_if_match(app, u, &etag, json!({"client_metadata": {"n": n + 1}})).await;
                match res.status() {
                    StatusCode::OK => return conflicts,
                    StatusCode::PRECONDITION_FAILED => conflicts += 1,
                    other => panic!("unexpected {other}"),
                }
            }
        }
    };
    let results = futures_join_all((0..CLIENTS).map(worker).collect()).await;
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["client_metadata"]["n"], CLIENTS, "every increment landed (conflicts retried: {results:?})");
    assert_eq!(me["version"], CLIENTS + 1);
}

#[tokio::test]
async fn many_clients_updating_one_user_without_if_match_all_succeed() {
    // Without `If-Match` a lost race is retried, never answered `412`: the benchmark's PATCH
    // load on PostgreSQL once saw a client lose ten races in a row to writers queued on the
    // same row lock, who all retried together.
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    const CLIENTS: usize = 48;
    let send = |i: usize| {
        let (app, u) = (&app, &u);
        async move { app.patch_me(&u.access, json!({"client_metadata": {"last": i}})).await.0 }
    };
    let statuses = futures_join_all((0..CLIENTS).map(send).collect()).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["version"], CLIENTS as i64 + 1, "every update committed once");
}

#[tokio::test]
async fn a_change_that_fails_amid_a_burst_on_one_user_loses_none_of_the_others() {
    // Changes to one user go out one behind another before the first commits, each starting
    // from the state the one before will leave. One that then fails (a username another user
    // has) must take nothing with it: the changes submitted behind it start again.
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let other = app.sign_up(&t, "grace@example.com").await;
    assert_eq!(app.patch_me(&other.access, json!({"username": "taken"})).await.0, StatusCode::OK);
    const ROUNDS: usize = 5;
    const CLIENTS: usize = 16;
    for round in 0..ROUNDS {
        let send = |i: usize| {
            let (app, u) = (&app, &u);
            let patch = if i == CLIENTS / 2 {
                json!({"username": "taken"})
            } else {
                json!({"client_metadata": {"round": round, "i": i}})
            };
            async move { app.patch_me(&u.access, patch).await }
        };
        let answers = futures_join_all((0..CLIENTS).map(send).collect()).await;
        for (i, (status, body)) in answers.iter().enumerate() {
            if i == CLIENTS / 2 {
                assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            } else {
                assert_eq!(*status, StatusCode::OK, "{body}");
                assert_ne!(body["username"], "taken", "an answer shows a change that never committed");
            }
        }
        let mut versions: Vec<i64> = answers.iter().filter_map(|(_, b)| b["version"].as_i64()).collect();
        versions.sort_unstable();
        versions.dedup();
        assert_eq!(versions.len(), CLIENTS - 1, "each change that succeeded is a version of its own");
    }
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["version"], (ROUNDS * (CLIENTS - 1)) as i64 + 1, "every other change committed once");
    assert_ne!(me["username"], "taken");
}

/// Runs futures concurrently on this task (no extra dependency for `join_all`).
async fn futures_join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_every_other_session() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let other = app.sign_in_as(&t.id, &u.email).await;
    let change = |current: &'static str, new: &'static str| {
        let (app, u) = (&app, &u);
        let passwords = json!({"current_password": current, "new_password": new});
        async move { body(app.send(Method::POST, "/v1/me/password", &u.access, Some(passwords)).await).await }
    };
    let (status, v) = change("wrong password here", "a brand new long passphrase").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["current_password:incorrect"]);
    let (_, v) = change(PASSWORD, "password1").await;
    assert_eq!(field_codes(&v), ["new_password:weak_password"]);
    let (_, v) = change(PASSWORD, PASSWORD).await;
    assert_eq!(field_codes(&v), ["new_password:same_as_old"]);
    assert_eq!(app.get_me(&other.access).await.0, StatusCode::OK, "failed attempts end nothing");

    let (status, _) = change(PASSWORD, "a brand new long passphrase").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get_me(&other.access).await.0, StatusCode::UNAUTHORIZED, "other sessions end, tokens included");
    assert_eq!(app.get_me(&u.access).await.0, StatusCode::OK, "the session that changed it stays");
    assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.sign_in(&t.id, &u.email, "a brand new long passphrase").await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_uploaded_avatar_is_stored_content_addressed_and_served_with_cache_headers() {
    use base64::Engine;
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let gif = base64::engine::general_purpose::STANDARD.decode(GIF_1X1).unwrap();
    let res = app.send_body(Method::PUT, "/v1/me/avatar", &u.access, "image/gif", gif.clone()).await;
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let url = v["avatar_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&app.base) && url.ends_with(".gif"), "{url}");

    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/gif");
    assert!(res.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.bytes().await.unwrap().as_ref(), gif.as_slice());
    let res = app.client.get(&url).header("If-None-Match", etag).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

    // JSON with a data URI, and with a URL.
    let data_uri = json!({"image": format!("data:image/png;base64,{PNG_1X1}")});
    let res = app.send(Method::PUT, "/v1/me/avatar", &u.access, Some(data_uri)).await;
    let (_, v) = body(res).await;
    assert!(v["avatar_url"].as_str().unwrap().ends_with(".png"));
    let res =
        app.send(Method::PUT, "/v1/me/avatar", &u.access, Some(json!({"url": "https://cdn.example.com/a.png"}))).await;
    let (_, v) = body(res).await;
    assert_eq!(v["avatar_url"], "https://cdn.example.com/a.png");

    let res = app.send(Method::DELETE, "/v1/me/avatar", &u.access, None).await;
    let (_, v) = body(res).await;
    assert_eq!(v["avatar_url"], Value::Null);
}

#[tokio::test]
async fn avatars_that_are_not_images_too_large_or_bombs_are_refused() {
    use base64::Engine;
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let put = |ct: &'static str, bytes: Vec<u8>| {
        let (app, u) = (&app, &u);
        async move { body(app.send_body(Method::PUT, "/v1/me/avatar", &u.access, ct, bytes).await).await }
    };
    let (status, v) = put("image/png", b"<svg onload=alert(1)>".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["avatar_url:unsupported_image_type"]);

    let mut bomb = base64::engine::general_purpose::STANDARD.decode(PNG_1X1).unwrap();
    bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let (_, v) = put("image/png", bomb).await;
    assert_eq!(field_codes(&v), ["avatar_url:image_dimensions_too_large"]);

    app.server(reqwest::Method::PATCH, &t, "/v1/settings", Some(json!({"avatar_max_bytes": 1024}))).await;
    let mut big = base64::engine::general_purpose::STANDARD.decode(PNG_1X1).unwrap();
    big.resize(2048, 0);
    let (_, v) = put("image/png", big).await;
    assert_eq!(field_codes(&v), ["avatar_url:too_large"]);
    let (status, v) = put("text/plain", b"hello".to_vec()).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")));
    assert_eq!(app.get_me(&u.access).await.1["avatar_url"], Value::Null);
}

#[tokio::test]
async fn selected_team_must_be_a_team_the_user_is_in() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (_, team) = app.server(reqwest::Method::POST, &t, "/v1/teams", Some(json!({"display_name": "Core"}))).await;
    let (_, other) = app.server(reqwest::Method::POST, &t, "/v1/teams", Some(json!({"display_name": "Other"}))).await;
    let team_id = team["id"].as_str().unwrap();
    let (status, _) =
        app.server(reqwest::Method::PUT, &t, &format!("/v1/teams/{team_id}/members/{}", u.id), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, v) = app.patch_me(&u.access, json!({"selected_team_id": other["id"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["selected_team_id:not_a_member"]);
    let (status, v) = app.patch_me(&u.access, json!({"selected_team_id": team_id})).await;
    assert_eq!((status, v["selected_team_id"].as_str()), (StatusCode::OK, Some(team_id)));

    let (_, teams) = body(app.send(Method::GET, "/v1/me/teams", &u.access, None).await).await;
    assert_eq!(teams.as_array().unwrap().len(), 1);
    assert_eq!(teams[0]["display_name"], "Core");
    assert!(teams[0].get("server_metadata").is_none());

    app.server(reqwest::Method::DELETE, &t, &format!("/v1/teams/{team_id}/members/{}", u.id), None).await;
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["selected_team_id"], Value::Null, "leaving the team clears the selection");
}

#[tokio::test]
async fn export_holds_the_users_data_and_never_secure_metadata() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    app.update_user(&t, &u.id, json!({"secure_metadata": {"ssn": "SECRET-123"}})).await;
    let res = app.send(Method::GET, "/v1/me/export", &u.access, None).await;
    assert!(res.headers()["content-disposition"].to_str().unwrap().contains("attachment"));
    let text = res.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["user"]["id"].as_str(), Some(u.id.as_str()));
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1);
    assert!(!text.contains("SECRET-123"));
}
