//! The Replyke contract, line by line: `PATCH /compat/replyke/{projectId}/users/{userId}` with
//! `{update: {...}}`, plus the deliberate differences from the contract.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn update(app: &TestApp, key: &str, project: &str, user: &str, b: Value) -> (StatusCode, Value) {
    let url = app.url(&format!("/compat/replyke/{project}/users/{user}"));
    body(app.client.patch(url).bearer_auth(key).json(&b).send().await.unwrap()).await
}

#[tokio::test]
async fn a_user_updates_itself_with_the_documented_fields() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let documented = json!({"update": {
        "name": "John Doe", "username": "new_username", "avatar": "https://example.com/avatar.jpg",
        "bio": "New bio text", "birthdate": "1990-01-01", "location": {"longitude": -118.25, "latitude": 34.05},
        "metadata": {"theme": "dark"}
    }});
    let (status, v) = update(&app, &u.access, &t.id, &u.id, documented).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["id"].as_str(), Some(u.id.as_str()));
    assert_eq!((v["username"].as_str(), v["name"].as_str()), (Some("new_username"), Some("John Doe")));
    assert_eq!(
        (v["avatar"].as_str(), v["bio"].as_str()),
        (Some("https://example.com/avatar.jpg"), Some("New bio text"))
    );
    assert_eq!(v["birthdate"], "1990-01-01T00:00:00.000Z");
    assert_eq!(v["location"], json!({"type": "Point", "coordinates": [-118.25, 34.05]}));
    assert_eq!(v["metadata"], json!({"theme": "dark"}));
    assert_eq!(v["suspensions"], json!([]));
}

#[tokio::test]
async fn the_seeds_own_example_location_is_refused_because_latitude_is_out_of_range() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let seed_example = json!({"update": {"username": "new_username", "location": {"longitude": 34.05, "latitude": -118.25}, "metadata": {"theme": "dark"}}});
    let (status, v) = update(&app, &u.access, &t.id, &u.id, seed_example).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "user/missing-data");
    assert!(v["error"].is_string());
    assert_eq!(field_codes(&v), ["location.latitude:out_of_range"]);
    assert_eq!(app.get_me(&u.access).await.1["username"], Value::Null, "nothing of the refused update was stored");
}

#[tokio::test]
async fn usernames_are_really_sanitised_and_nothing_undocumented_is_writable() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (status, v) =
        update(&app, &u.access, &t.id, &u.id, json!({"update": {"username": " Robert'); DROP TABLE users;-- "}})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["username"], "Robert_DROP_TABLE_users--");
    for field in ["email", "isAdmin", "role", "suspensions", "id"] {
        let (status, v) = update(&app, &u.access, &t.id, &u.id, json!({"update": { field: true }})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(field_codes(&v), [format!("{field}:unknown_field")]);
    }
}

#[tokio::test]
async fn secure_metadata_is_accepted_and_never_returned() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (status, v) =
        update(&app, &u.access, &t.id, &u.id, json!({"update": {"secureMetadata": {"apiKey": "S3CRET-VALUE"}}})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(!v.to_string().contains("S3CRET-VALUE") && v.get("secureMetadata").is_none());
    let (_, server_view) = update(&app, &t.server_key, &t.id, &u.id, json!({"update": {"bio": "x"}})).await;
    assert!(!server_view.to_string().contains("S3CRET-VALUE"));
    assert!(!app.get_me(&u.access).await.1.to_string().contains("S3CRET-VALUE"));
    let stored =
        app.service().store.find_secure_metadata(t.id.parse().unwrap(), u.id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored["apiKey"], "S3CRET-VALUE");
}

#[tokio::test]
async fn a_user_may_update_only_itself_unless_holding_the_projects_server_key() {
    let app = spawn_app().await;
    let (t, ada) = app.user().await;
    let bob = app.sign_up(&t, "bob@example.com").await;
    let (status, v) = update(&app, &bob.access, &t.id, &ada.id, json!({"update": {"bio": "bob was here"}})).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("user/forbidden")));
    let (status, v) = update(&app, &t.server_key, &t.id, &ada.id, json!({"update": {"bio": "from the server"}})).await;
    assert_eq!((status, v["bio"].as_str()), (StatusCode::OK, Some("from the server")));

    let other = app.tenant().await;
    let (status, _) = update(&app, &other.server_key, &t.id, &ada.id, json!({"update": {"bio": "x"}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another project's key");
    let (status, _) = update(&app, &ada.access, &other.id, &ada.id, json!({"update": {"bio": "x"}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another project in the path");
    let (status, _) = update(&app, "garbage", &t.id, &ada.id, json!({"update": {"bio": "x"}})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn errors_have_the_documented_codes() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (status, v) = update(&app, &u.access, &t.id, &u.id, json!({"name": "no update object"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "user/missing-data");
    assert_eq!(v["error"], "Missing required data");
    let (status, _) = update(&app, &u.access, &t.id, &u.id, json!({"update": {}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let ghost = uuid::Uuid::now_v7().to_string();
    let (status, v) = update(&app, &t.server_key, &t.id, &ghost, json!({"update": {"bio": "x"}})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v, json!({"error": "User not found", "code": "user/not-found"}));
    let (status, v) = update(&app, &t.server_key, &t.id, "not-a-user-id", json!({"update": {"bio": "x"}})).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::NOT_FOUND, Some("user/not-found")));
}

#[tokio::test]
async fn active_suspensions_are_in_the_response() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    app.server(reqwest::Method::POST, &t, &format!("/v1/users/{}/suspensions", u.id), Some(json!({"reason": "spam"})))
        .await;
    let (status, v) = update(&app, &t.server_key, &t.id, &u.id, json!({"update": {"bio": "x"}})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["suspensions"][0]["reason"], "spam");
    let (status, _) = update(&app, &u.access, &t.id, &u.id, json!({"update": {"bio": "y"}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a suspended user cannot update itself");
}
