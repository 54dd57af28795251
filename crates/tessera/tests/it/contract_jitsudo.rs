//! The JITSudo contract, line by line: `GET/PUT /compat/jitsudo/v1/users/me/profile`.

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const PROFILE: &str = "/compat/jitsudo/v1/users/me/profile";

fn assert_error_shape(v: &Value, code: &str) {
    assert_eq!(v["code"], code, "{v}");
    assert!(v["message"].is_string());
    assert!(v["details"].is_object(), "details is an object: {v}");
    assert!(v["notices"].is_array(), "notices is an array: {v}");
}

async fn put(app: &TestApp, u: &SignedIn, tenant: &str, b: Value) -> (StatusCode, Value) {
    body(
        app.client
            .put(app.url(PROFILE))
            .bearer_auth(&u.access)
            .header("X-Tenant-ID", tenant)
            .json(&b)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn the_tenant_header_is_required_and_must_match_the_credential() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let other = app.tenant().await;
    let (status, v) = body(app.send(Method::GET, PROFILE, &u.access, None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&v, "validation_failed");
    let (status, v) = body(
        app.client.get(app.url(PROFILE)).bearer_auth(&u.access).header("X-Tenant-ID", &other.id).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error_shape(&v, "tenant_mismatch");
    let (status, v) = put(&app, &u, &other.id, json!({"display_name": "x"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error_shape(&v, "tenant_mismatch");
    let (status, v) = body(app.client.get(app.url(PROFILE)).header("X-Tenant-ID", &t.id).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&v, "unauthenticated");
}

#[tokio::test]
async fn get_and_put_use_the_documented_fields_and_limits() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (status, v) = body(
        app.client.get(app.url(PROFILE)).bearer_auth(&u.access).header("X-Tenant-ID", &t.id).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(uuid::Uuid::parse_str(v["id"].as_str().unwrap()).is_ok());
    assert_eq!((v["email"].as_str(), v["auth_provider"].as_str()), (Some("ada@example.com"), Some("local")));
    assert!(v["name"].is_string());
    for nullable in ["first_name", "last_name", "display_name", "avatar_base64"] {
        assert_eq!(v[nullable], Value::Null, "{nullable}");
    }

    let (status, v) =
        put(&app, &u, &t.id, json!({"first_name": "Ada", "last_name": "Lovelace", "display_name": "d".repeat(100)}))
            .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["first_name"].as_str(), v["last_name"].as_str()), (Some("Ada"), Some("Lovelace")));
    assert_eq!(v["display_name"].as_str().unwrap().len(), 100);

    for field in ["first_name", "last_name", "display_name"] {
        let (status, v) = put(&app, &u, &t.id, json!({ field: "x".repeat(101) })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        assert_error_shape(&v, "validation_failed");
        assert_eq!(field_codes(&v), [format!("{field}:too_long")]);
    }
    let (status, v) = put(&app, &u, &t.id, json!({"email": "x@example.com"})).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["email:unknown_field".to_owned()]));
}

#[tokio::test]
async fn avatar_base64_takes_a_data_uri_returns_it_and_null_removes_it() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let uri = format!("data:image/png;base64,{PNG_1X1}");
    let (status, v) = put(&app, &u, &t.id, json!({"avatar_base64": uri})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let back = v["avatar_base64"].as_str().unwrap();
    assert!(back.starts_with("data:image/png;base64,"));
    let decode = |s: &str| base64::engine::general_purpose::STANDARD.decode(s.split_once(',').unwrap().1).unwrap();
    assert_eq!(decode(back), decode(&uri), "the same image comes back");

    let big = base64::engine::general_purpose::STANDARD.encode({
        let mut b = base64::engine::general_purpose::STANDARD.decode(PNG_1X1).unwrap();
        b.resize(300 * 1024, 0);
        b
    });
    let (status, v) = put(&app, &u, &t.id, json!({"avatar_base64": format!("data:image/png;base64,{big}")})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "avatar too large");
    assert_eq!(field_codes(&v), ["avatar_base64:too_large"]);
    let (_, v) = put(&app, &u, &t.id, json!({"avatar_base64": "https://example.com/a.png"})).await;
    assert_eq!(field_codes(&v), ["avatar_base64:invalid_base64"]);

    let (status, v) = put(&app, &u, &t.id, json!({"avatar_base64": null})).await;
    assert_eq!((status, v["avatar_base64"].clone()), (StatusCode::OK, Value::Null));
}

#[tokio::test]
async fn idp_managed_names_are_read_only_with_a_400_naming_the_field_and_notices() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    app.server(
        reqwest::Method::POST,
        &t,
        "/v1/users",
        Some(json!({"primary_email": "saml@example.com", "password": PASSWORD, "auth_provider": "saml", "first_name": "Sam"})),
    )
    .await;
    let (_, v) = app.sign_in(&t.id, "saml@example.com", PASSWORD).await;
    let u = signed_in(&t.id, "saml@example.com", &v);
    let (status, v) = put(&app, &u, &t.id, json!({"first_name": "Samuel", "display_name": "Sam"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&v, "forbidden");
    assert_eq!(field_codes(&v), ["first_name:idp_managed"]);
    assert!(!v["notices"].as_array().unwrap().is_empty(), "the deciding policy's notice");
    let (status, v) = put(&app, &u, &t.id, json!({"display_name": "Sam"})).await;
    assert_eq!((status, v["auth_provider"].as_str()), (StatusCode::OK, Some("saml")));
}
