//! The ZenML Pro contract, line by line: `GET/PATCH /compat/zenml/users/me` and its login.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const ME: &str = "/compat/zenml/users/me";
const LOGIN: &str = "/compat/zenml/login";

async fn patch(app: &TestApp, token: &str, b: Value) -> (StatusCode, Value) {
    body(app.send(Method::PATCH, ME, token, Some(b.clone())).await).await
}

/// The password form of the login, for ada@example.com.
async fn password_login(app: &TestApp, t: &Tenant, password: &str) -> (StatusCode, Value) {
    let form = [("username", "ada@example.com"), ("password", password)];
    body(app.client.post(app.url(LOGIN)).header("X-Tenant-ID", &t.id).form(&form).send().await.unwrap()).await
}

#[tokio::test]
async fn login_with_the_password_form_then_read_the_exact_response_model() {
    let app = spawn_app().await;
    let (t, _) = app.user().await;
    let (status, login) = password_login(&app, &t, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["token_type"], "bearer");
    let token = login["access_token"].as_str().unwrap();

    let (status, v) = body(app.send(Method::GET, ME, token, None).await).await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "password",
        "password_expired",
        "name",
        "avatar_url",
        "company",
        "job_title",
        "metadata",
        "id",
        "username",
        "email",
        "oauth_provider",
        "oauth_id",
        "is_active",
        "is_superuser",
        "is_service_account",
        "organization_id",
        "is_onboarded",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert_eq!(v["password"], Value::Null, "never returned");
    assert!(uuid::Uuid::parse_str(v["id"].as_str().unwrap()).is_ok());
    assert_eq!(v["username"], "ada@example.com", "no username: the email stands in, as for OAuth2 accounts");
    assert_eq!((v["is_active"].as_bool(), v["is_superuser"].as_bool()), (Some(true), Some(false)));
    assert_eq!((v["is_service_account"].as_bool(), v["is_onboarded"].as_bool()), (Some(false), Some(false)));
    assert_eq!(v["organization_id"], Value::Null);

    let (status, v) = password_login(&app, &t, "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["detail"][0], "AuthorizationException");
}

#[tokio::test]
async fn update_validates_lengths_and_the_username_pattern_as_fastapi_does() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let documented = json!({"name": "Ada", "company": "Analytical Engines", "job_title": "Programmer",
        "metadata": {"k": 1}, "username": "ada.l", "is_onboarded": true, "avatar_url": "https://example.com/a.png"});
    let (status, v) = patch(&app, &u.access, documented).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["username"].as_str(), v["is_onboarded"].as_bool()),
        (Some("Ada"), Some("ada.l"), Some(true))
    );
    assert_eq!(v["metadata"], json!({"k": 1}));

    for (field, value) in [
        ("name", json!("")),
        ("company", json!("c".repeat(51))),
        ("job_title", json!("")),
        ("username", json!("no spaces")),
    ] {
        let (status, v) = patch(&app, &u.access, json!({ field: value })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(v["detail"][0]["loc"], json!(["body", field]), "{v}");
        assert!(v["detail"][0]["msg"].is_string());
    }
    let (status, v) = patch(&app, &u.access, json!({"is_superuser": true})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, v) = patch(&app, &u.access, json!({"username": "admin"})).await;
    assert_eq!((status, v["detail"][0].as_str()), (StatusCode::BAD_REQUEST, Some("ValueError")));
}

#[tokio::test]
async fn oauth2_accounts_keep_username_and_email_and_service_accounts_cannot_update() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    for body_json in [
        json!({"primary_email": "gh@example.com", "password": PASSWORD, "auth_provider": "oidc", "oauth_provider": "github", "oauth_id": "42"}),
        json!({"primary_email": "bot@example.com", "username": "bot", "password": PASSWORD, "is_service_account": true}),
    ] {
        assert_eq!(app.create_user(&t, body_json).await.0, StatusCode::CREATED);
    }
    let gh = app.sign_in_as(&t.id, "gh@example.com").await.access;
    let (_, me) = body(app.send(Method::GET, ME, &gh, None).await).await;
    assert_eq!((me["oauth_provider"].as_str(), me["oauth_id"].as_str()), (Some("github"), Some("42")));
    for field in [("username", "newname"), ("email", "new@example.com")] {
        let (status, v) = patch(&app, &gh, json!({ field.0: field.1 })).await;
        assert_eq!((status, v["detail"][0].as_str()), (StatusCode::BAD_REQUEST, Some("ValueError")), "{field:?}: {v}");
    }
    assert_eq!(patch(&app, &gh, json!({"name": "Octo"})).await.0, StatusCode::OK);

    let bot = app.sign_in_as(&t.id, "bot@example.com").await.access;
    let (_, me) = body(app.send(Method::GET, ME, &bot, None).await).await;
    assert_eq!(me["is_service_account"], true);
    let (status, v) = patch(&app, &bot, json!({"name": "Bot"})).await;
    assert_eq!((status, v["detail"][0].as_str()), (StatusCode::BAD_REQUEST, Some("ValueError")));
}

#[tokio::test]
async fn a_password_change_needs_the_old_password_and_ends_other_sessions() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let other = app.sign_in_as(&t.id, &u.email).await.access;
    let (status, v) = patch(&app, &u.access, json!({"password": "a brand new long passphrase"})).await;
    assert_eq!((status, v["detail"][0].as_str()), (StatusCode::BAD_REQUEST, Some("ValueError")));
    let (status, v) =
        patch(&app, &u.access, json!({"password": "a brand new long passphrase", "old_password": "wrong one"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["detail"][0]["loc"], json!(["body", "old_password"]));
    let (status, _) =
        patch(&app, &u.access, json!({"password": "a brand new long passphrase", "old_password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.send(Method::GET, ME, &other, None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.sign_in(&t.id, &u.email, "a brand new long passphrase").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_admin_account_is_refused_here_and_password_fields_are_never_dropped() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let admin = json!({"primary_email": "root@example.com", "username": "admin", "password": PASSWORD});
    // `admin` is reserved for users, not for the server creating the built-in account.
    let (status, v) = app.create_user(&t, admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (_, u) = (0, app.sign_up(&t, "ada@example.com").await);
    let (status, v) = patch(&app, &u.access, json!({"old_password": PASSWORD})).await;
    assert_eq!((status, v["detail"][0].as_str()), (StatusCode::BAD_REQUEST, Some("ValueError")));
    let (status, v) = patch(&app, &u.access, json!({"password": null})).await;
    assert_eq!((status, v["detail"][0].as_str()), (StatusCode::BAD_REQUEST, Some("ValueError")));
}

#[tokio::test]
async fn service_accounts_use_client_credentials_and_cannot_update_themselves() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let (status, sa) =
        app.server(reqwest::Method::POST, &t, "/v1/service-accounts", Some(json!({"username": "ci-bot"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{sa}");
    assert_eq!(sa["user"]["is_service_account"], true);
    let (id, secret) = (sa["client_id"].as_str().unwrap().to_owned(), sa["client_secret"].as_str().unwrap().to_owned());

    let in_form =
        [("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", secret.as_str())];
    let (status, v) = body(app.post_form(app.url(LOGIN), None, &in_form).await).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v.get("refresh_token").is_none(), "no refresh token for client credentials");
    let token = v["access_token"].as_str().unwrap().to_owned();
    let (_, me) = body(app.send(Method::GET, ME, &token, None).await).await;
    assert_eq!((me["is_service_account"].as_bool(), me["username"].as_str()), (Some(true), Some("ci-bot")));
    assert_eq!(app.get_me(&token).await.0, StatusCode::OK, "the native API takes the same token");
    let (status, v) = patch(&app, &token, json!({"name": "Bot"})).await;
    assert_eq!((status, v["detail"][0].as_str()), (StatusCode::BAD_REQUEST, Some("ValueError")));

    // HTTP Basic works too; a wrong secret does not.
    let res = app.post_form(app.url(LOGIN), Some((&id, &secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let wrong = [("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", "tsr_cs_wrong")];
    let res = app.post_form(app.url(LOGIN), None, &wrong).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
