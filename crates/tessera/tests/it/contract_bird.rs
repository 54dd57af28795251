//! The Bird accounts contract, line by line: `GET/PATCH/DELETE /compat/bird/me`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const ME: &str = "/compat/bird/me";

#[tokio::test]
async fn get_profile_returns_a_user_on_the_platform() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let (status, v) = body(app.send(Method::GET, ME, &u.access, None).await).await;
    assert_eq!(status, StatusCode::OK);
    // Required: id (uuid), status (enum, default pending), name, activeSessions, createdAt, updatedAt.
    assert!(uuid::Uuid::parse_str(v["id"].as_str().unwrap()).is_ok());
    assert_eq!(v["status"], "pending");
    assert!(v["name"].is_string());
    assert_eq!(v["activeSessions"], 1);
    for field in ["createdAt", "updatedAt"] {
        assert!(chrono::DateTime::parse_from_rfc3339(v[field].as_str().unwrap()).is_ok(), "{field} is a date-time");
    }
    assert_eq!(v["defaultEmail"], "ada@example.com");
    // Optional fields with no value are absent, never null.
    for field in ["bio", "avatarUrl", "phoneNumber", "locale", "timezone"] {
        assert!(v.get(field).is_none(), "{field} should be absent");
    }
    let res = app.client.get(app.url(ME)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn update_profile_writes_the_documented_fields_and_validates_locale_and_timezone() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let patch = |b: Value| {
        let (app, u) = (&app, &u);
        async move { body(app.send(Method::PATCH, ME, &u.access, Some(b.clone())).await).await }
    };
    let (status, v) = patch(json!({"name": "Ada", "bio": "Analyst", "avatarUrl": "https://cdn.example.com/a.png",
                                   "locale": "en-GB", "timezone": "Europe/London"}))
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["name"].as_str(), v["bio"].as_str()), (Some("Ada"), Some("Analyst")));
    assert_eq!(v["avatarUrl"], "https://cdn.example.com/a.png");
    assert_eq!((v["locale"].as_str(), v["timezone"].as_str()), (Some("en-GB"), Some("Europe/London")));

    let (status, v) = patch(json!({"locale": "not a tag", "timezone": "Moon/Base"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["locale:invalid_locale", "timezone:invalid_timezone"]);
    // phoneNumber is shown but not writable in this contract; nothing undocumented is.
    let (status, v) = patch(json!({"phoneNumber": "+14155552671", "status": "active"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["phoneNumber:unknown_field", "status:unknown_field"]);
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["phone_number"], Value::Null);
    assert_eq!(me["status"], "pending");
}

#[tokio::test]
async fn delete_profile_answers_202_with_no_content_and_erases_later() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let res = app.send(Method::DELETE, ME, &u.access, None).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert!(res.bytes().await.unwrap().is_empty(), "no content");
    assert_eq!(app.send(Method::GET, ME, &u.access, None).await.status(), StatusCode::UNAUTHORIZED);
    app.advance(chrono::Duration::days(8));
    app.service().purge_due().await.unwrap();
    assert_eq!(
        app.server(reqwest::Method::GET, &t, &format!("/v1/users/{}", u.id), None).await.0,
        StatusCode::NOT_FOUND
    );
}
