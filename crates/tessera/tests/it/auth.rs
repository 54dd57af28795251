//! Sign-up, sign-in, refresh (rotation and reuse), sign-out, anonymous users, revocation and
//! tenant checks.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn sign_up_returns_the_user_and_a_bearer_token_pair() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let ada = json!({"email": "Ada@Example.com", "password": PASSWORD, "username": "ada", "display_name": "Ada"});
    let res = app.send_for_tenant(Method::POST, "/v1/auth/sign-up", &t.id, ada).await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    assert_eq!(v["user"]["primary_email"], "ada@example.com");
    assert_eq!(v["user"]["username"], "ada");
    assert_eq!(v["user"]["display_name"], "Ada");
    assert_eq!(v["user"]["status"], "pending");
    assert_eq!(v["user"]["active_sessions"], 1);
    assert!(v["refresh_token"].as_str().unwrap().len() > 40);
    assert!(v.to_string().find("argon2").is_none(), "no hash in the response");
}

#[tokio::test]
async fn sign_up_names_every_bad_field_and_rejects_taken_emails_case_insensitively() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let (status, v) =
        app.sign_up_with(&t.id, json!({"email": "nope", "password": "password", "username": "bad name"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["email:invalid_email", "password:weak_password", "username:invalid_format"]);

    app.sign_up(&t, "ada@example.com").await;
    let (status, v) = app.sign_up_with(&t.id, json!({"email": "ADA@example.com", "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(field_codes(&v), ["email:already_taken"]);

    // The same address in another tenant is another account.
    let other = app.tenant().await;
    app.sign_up(&other, "ada@example.com").await;
}

#[tokio::test]
async fn sign_up_without_a_tenant_or_with_unknown_fields_is_refused() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let res = app
        .client
        .post(app.url("/v1/auth/sign-up"))
        .json(&json!({"email": "a@b.co", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["X-Tenant-ID:required"]);
    let (status, v) =
        app.sign_up_with(&t.id, json!({"email": "a@b.co", "password": PASSWORD, "is_superuser": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["is_superuser:unknown_field"]);
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, _) = app.sign_up_with(&unknown, json!({"email": "a@b.co", "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sign_in_by_email_or_username_and_wrong_credentials_look_alike() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let (status, _) =
        app.sign_up_with(&t.id, json!({"email": "ada@example.com", "password": PASSWORD, "username": "Ada"})).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, v) = app.sign_in(&t.id, "ADA@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["active_sessions"], 2);
    let res = app
        .send_for_tenant(Method::POST, "/v1/auth/sign-in", &t.id, json!({"username": "ada", "password": PASSWORD}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    let (s1, wrong_pw) = app.sign_in(&t.id, "ada@example.com", "not the password at all").await;
    let (s2, no_user) = app.sign_in(&t.id, "nobody@example.com", PASSWORD).await;
    assert_eq!((s1, s2), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    assert_eq!(wrong_pw, no_user, "an unknown account must not be told apart from a wrong password");
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_session() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let refresh = |token: String| {
        let app = &app;
        async move { body(app.refresh(&token).await).await }
    };
    let (status, v) = refresh(u.refresh.clone()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let next = signed_in(&t.id, &u.email, &v);
    assert_ne!(next.refresh, u.refresh);
    assert_eq!(next.session_id, u.session_id, "refresh keeps the session");
    assert_eq!(app.get_me(&next.access).await.0, StatusCode::OK);

    // The first token again: reuse. The whole session ends, including the newest tokens.
    let (status, v) = refresh(u.refresh.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(refresh(next.refresh.clone()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_me(&next.access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_me(&u.access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh("tsr_rt_unknown".into()).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_with_another_tenants_header_is_a_mismatch_and_uses_nothing_up() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let other = app.tenant().await;
    let res =
        app.send_for_tenant(Method::POST, "/v1/auth/refresh", &other.id, json!({"refresh_token": u.refresh})).await;
    let (status, v) = body(res).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("tenant_mismatch")));
    assert_eq!(
        app.refresh(&u.refresh).await.status(),
        StatusCode::OK,
        "the token was not used up by the refused attempt"
    );
}

#[tokio::test]
async fn sign_out_ends_the_session_at_once() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let res = app.send(Method::POST, "/v1/auth/sign-out", &u.access, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (status, v) = app.get_me(&u.access).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")));
    assert_eq!(app.refresh(&u.refresh).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_revoked_sessions_access_token_stops_working_immediately() {
    let app = spawn_app().await;
    let (t, phone) = app.user().await;
    let laptop = app.sign_in_as(&t.id, &phone.email).await;
    assert_eq!(app.get_me(&phone.access).await.0, StatusCode::OK);

    let (status, sessions) = body(app.send(Method::GET, "/v1/me/sessions", &laptop.access, None).await).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = sessions.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&phone.session_id.as_str()) && ids.contains(&laptop.session_id.as_str()));
    let current: Vec<bool> = sessions.as_array().unwrap().iter().map(|s| s["current"].as_bool().unwrap()).collect();
    assert_eq!(current.iter().filter(|c| **c).count(), 1);

    let res = app.send(Method::DELETE, &format!("/v1/me/sessions/{}", phone.session_id), &laptop.access, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_me(&phone.access).await.0,
        StatusCode::UNAUTHORIZED,
        "verified tokens are cached, revocation still wins"
    );
    let (_, me) = app.get_me(&laptop.access).await;
    assert_eq!(me["active_sessions"], 1);
    let res = app.send(Method::DELETE, &format!("/v1/me/sessions/{}", phone.session_id), &laptop.access, None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_users_token_with_another_tenants_header_is_tenant_mismatch() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let other = app.tenant().await;
    let me_for = |tenant: &str| app.client.get(app.url("/v1/me")).bearer_auth(&u.access).header("X-Tenant-ID", tenant);
    let (status, v) = body(me_for(&other.id).send().await.unwrap()).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("tenant_mismatch")));
    assert_eq!(me_for(&t.id).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(me_for("not-a-uuid").send().await.unwrap().status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn expired_forged_and_missing_tokens_are_refused() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let res = app.client.get(app.url("/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");

    let mut forged = u.access.clone();
    forged.pop();
    forged.push(if u.access.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(app.get_me(&forged).await.0, StatusCode::UNAUTHORIZED);
    let parts: Vec<&str> = u.access.split('.').collect();
    use base64::Engine;
    let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    assert_eq!(app.get_me(&format!("{none_header}.{}.", parts[1])).await.0, StatusCode::UNAUTHORIZED);

    app.advance(chrono::Duration::minutes(16));
    let (status, v) = app.get_me(&u.access).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("token_expired")));
    assert_eq!(app.refresh(&u.refresh).await.status(), StatusCode::OK, "the session outlives its access tokens");
}

#[tokio::test]
async fn an_anonymous_user_upgrades_in_place_by_signing_up_with_its_token() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let res = app.client.post(app.url("/v1/auth/anonymous")).header("X-Tenant-ID", &t.id).send().await.unwrap();
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v["user"]["is_anonymous"], true);
    let anon = signed_in(&t.id, "", &v);
    assert_eq!(app.patch_me(&anon.access, json!({"client_metadata": {"cart": [1, 2]}})).await.0, StatusCode::OK);

    let res = app
        .client
        .post(app.url("/v1/auth/sign-up"))
        .header("X-Tenant-ID", &t.id)
        .bearer_auth(&anon.access)
        .json(&json!({"email": "later@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["user"]["id"].as_str(), Some(anon.id.as_str()), "same user");
    assert_eq!(v["user"]["is_anonymous"], false);
    assert_eq!(v["user"]["client_metadata"], json!({"cart": [1, 2]}));
    assert_eq!(app.sign_in(&t.id, "later@example.com", PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_suspended_user_cannot_sign_in_or_call_anything_until_lifted() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let suspensions = format!("/v1/users/{}/suspensions", u.id);
    let (status, s) = app.server(reqwest::Method::POST, &t, &suspensions, Some(json!({"reason": "chargeback"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    let (status, v) = app.get_me(&u.access).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("suspended")));
    assert_eq!(v["details"]["reason"], "chargeback");
    let (status, v) = app.sign_in(&t.id, &u.email, PASSWORD).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("suspended")));
    let (_, user) = app.server(reqwest::Method::GET, &t, &format!("/v1/users/{}", u.id), None).await;
    assert_eq!(user["suspensions"][0]["reason"], "chargeback");

    let path = format!("/v1/users/{}/suspensions/{}", u.id, s["id"].as_str().unwrap());
    let (status, user) = app.server(reqwest::Method::DELETE, &t, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["suspensions"], json!([]));
    assert_eq!(app.get_me(&u.access).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_disabled_or_deactivated_account_is_refused_everywhere() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    for (off, on) in [
        (json!({"status": "disabled"}), json!({"status": "active"})),
        (json!({"is_active": false}), json!({"is_active": true})),
    ] {
        assert_eq!(app.update_user(&t, &u.id, off).await.0, StatusCode::OK);
        assert_eq!(app.get_me(&u.access).await.0, StatusCode::FORBIDDEN);
        assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::FORBIDDEN);
        assert_eq!(app.update_user(&t, &u.id, on).await.0, StatusCode::OK);
        assert_eq!(app.get_me(&u.access).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn tokens_signed_after_a_key_rotation_verify_and_old_ones_still_do() {
    let app = spawn_app().await;
    let (t, before) = app.user().await;
    app.service().rotate_signing_key().await.unwrap();
    let (status, v) = app.sign_in(&t.id, &before.email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let after = signed_in(&t.id, &before.email, &v);
    let kid = |tok: &str| {
        use base64::Engine;
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tok.split('.').next().unwrap()).unwrap();
        serde_json::from_slice::<serde_json::Value>(&h).unwrap()["kid"].clone()
    };
    assert_ne!(kid(&before.access), kid(&after.access), "the new key signs");
    assert_eq!(app.get_me(&before.access).await.0, StatusCode::OK, "the retired key still verifies");
    assert_eq!(app.get_me(&after.access).await.0, StatusCode::OK);
    // Both keys are published, so other verifiers accept both too.
    let (_, jwks) = body(app.client.get(app.url(&format!("/oidc/{}/jwks", t.id))).send().await.unwrap()).await;
    let kids: Vec<&serde_json::Value> = jwks["keys"].as_array().unwrap().iter().map(|k| &k["kid"]).collect();
    assert!(kids.contains(&&kid(&before.access)) && kids.contains(&&kid(&after.access)), "{jwks}");
}

const TOTP_SECRET: &[u8] = b"a-secret-of-twenty-b";

/// The TOTP code of `secret` at the test clock's time plus `offset_steps`.
fn totp_code(app: &TestApp, secret: &[u8], offset_steps: i64) -> String {
    let step = tessera_auth::totp::step_of(app.clock.now_unix()) + offset_steps;
    format!("{:06}", tessera_auth::totp::code_at(secret, step, 6))
}

async fn mfa(app: &TestApp, token: &str, code: &str) -> (StatusCode, serde_json::Value) {
    body(
        app.client.post(app.url("/v1/auth/mfa")).json(&json!({"mfa_token": token, "code": code})).send().await.unwrap(),
    )
    .await
}

/// Signs in with the password and returns the second-factor challenge the refusal carries.
async fn mfa_challenge(app: &TestApp, u: &SignedIn) -> String {
    let (_, v) = app.sign_in(&u.tenant, &u.email, PASSWORD).await;
    v["details"]["mfa_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn with_totp_on_sign_in_answers_mfa_required_and_a_code_completes_it_once() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    app.enable_totp(&u, TOTP_SECRET).await;
    let (status, v) = app.sign_in(&t.id, &u.email, PASSWORD).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("mfa_required")));
    let challenge = v["details"]["mfa_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_me(&challenge).await.0, StatusCode::UNAUTHORIZED, "a challenge is not an access token");

    let (status, v) = mfa(&app, &challenge, "000000").await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["code:invalid_code".to_owned()]));
    let code = totp_code(&app, TOTP_SECRET, 0);
    let (status, v) = mfa(&app, &challenge, &code).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(app.get_me(v["access_token"].as_str().unwrap()).await.0, StatusCode::OK);
    let (status, v) = mfa(&app, &challenge, &code).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["code:code_reused".to_owned()]), "no replay");
    // One step of skew either way, not two; an older step than the last used one never.
    app.advance(chrono::Duration::seconds(30));
    assert_eq!(mfa(&app, &challenge, &totp_code(&app, TOTP_SECRET, -2)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(mfa(&app, &challenge, &totp_code(&app, TOTP_SECRET, 1)).await.0, StatusCode::OK);
    assert_eq!(
        mfa(&app, &challenge, &totp_code(&app, TOTP_SECRET, 0)).await.0,
        StatusCode::BAD_REQUEST,
        "older than the last used"
    );
    app.advance(chrono::Duration::minutes(6));
    let (status, v) = mfa(&app, &challenge, &totp_code(&app, TOTP_SECRET, 0)).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated")),
        "the challenge expired"
    );
}

#[tokio::test]
async fn repeated_failed_sign_ins_lock_the_account_for_the_window_with_retry_after() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    for _ in 0..10 {
        assert_eq!(app.sign_in(&t.id, &u.email, "not the password at all").await.0, StatusCode::UNAUTHORIZED);
    }
    let res = app
        .send_for_tenant(Method::POST, "/v1/auth/sign-in", &t.id, json!({"email": u.email, "password": PASSWORD}))
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "locked, even with the right password");
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry));
    assert_eq!(body(res).await.1["code"], "rate_limited");
    assert_eq!(
        app.sign_in(&t.id, "someone.else@example.com", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED,
        "other accounts are not locked"
    );
    app.advance(chrono::Duration::minutes(16));
    assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::OK, "the window has passed");
}

#[tokio::test]
async fn second_factor_guesses_are_limited_per_user() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    app.enable_totp(&u, TOTP_SECRET).await;
    let challenge = mfa_challenge(&app, &u).await;
    for _ in 0..5 {
        assert_eq!(mfa(&app, &challenge, "000000").await.0, StatusCode::BAD_REQUEST);
    }
    let (status, v) = mfa(&app, &challenge, &totp_code(&app, TOTP_SECRET, 0)).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "even the right code waits"
    );
    app.advance(chrono::Duration::minutes(4));
    let challenge = mfa_challenge(&app, &u).await;
    app.advance(chrono::Duration::minutes(2));
    assert_eq!(mfa(&app, &challenge, &totp_code(&app, TOTP_SECRET, 0)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn attempts_per_client_address_follow_the_tenants_setting() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (status, _) = app
        .server(reqwest::Method::PATCH, &t, "/v1/settings", Some(json!({"attempts_per_address_per_minute": 3})))
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::OK);
    }
    assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::TOO_MANY_REQUESTS);
    app.advance(chrono::Duration::seconds(61));
    assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn totp_enrolment_needs_proof_gives_recovery_codes_each_usable_once_and_can_be_disabled() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let post = |path: &'static str, b: serde_json::Value| {
        let (app, u) = (&app, &u);
        async move { body(app.send(Method::POST, path, &u.access, Some(b.clone())).await).await }
    };
    let (status, begin) = body(app.send(Method::POST, "/v1/me/mfa/totp", &u.access, None).await).await;
    assert_eq!(status, StatusCode::OK, "{begin}");
    assert!(begin["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Acme:ada@example.com?secret="));
    assert!(begin["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = tessera_auth::totp::base32_decode(begin["secret"].as_str().unwrap()).unwrap();
    assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::OK, "not enforced before confirmation");

    let (status, _) = post("/v1/me/mfa/totp/confirm", json!({"code": "000000"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, v) = post("/v1/me/mfa/totp/confirm", json!({"code": totp_code(&app, &secret, 0)})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let codes: Vec<String> =
        v["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10);

    // Sign-in now asks for a second factor; a recovery code works once.
    let (status, v) = app.sign_in(&t.id, &u.email, PASSWORD).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("mfa_required")));
    let challenge = v["details"]["mfa_token"].as_str().unwrap().to_owned();
    assert_eq!(mfa(&app, &challenge, &codes[0]).await.0, StatusCode::OK);
    assert_eq!(mfa(&app, &challenge, &codes[0]).await.0, StatusCode::BAD_REQUEST, "a recovery code is used up");
    assert_eq!(mfa(&app, &challenge, &codes[1].to_uppercase()).await.0, StatusCode::OK, "case does not matter");

    let res =
        app.send(Method::DELETE, "/v1/me/mfa/totp", &u.access, Some(json!({"password": "wrong password here"}))).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app.send(Method::DELETE, "/v1/me/mfa/totp", &u.access, Some(json!({"password": PASSWORD}))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::OK, "TOTP is off");
    assert_eq!(mfa(&app, &challenge, &codes[2]).await.0, StatusCode::UNAUTHORIZED, "recovery codes went with it");
}
