//! Every validation rule, over HTTP: each row's valid values are stored (as their
//! normalised form) and each invalid value gets a 400 naming the field and a machine code.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A location as it is stored and shown: a GeoJSON point.
fn point(longitude: f64, latitude: f64) -> Value {
    json!({"type": "Point", "coordinates": [longitude, latitude]})
}

/// (field, value sent, value stored) — accepted.
fn valid_rows() -> Vec<(&'static str, Value, Value)> {
    vec![
        ("username", json!("ada_lovelace-1@x.y"), json!("ada_lovelace-1@x.y")),
        ("username", json!("a"), json!("a")),
        ("username", json!("u".repeat(50)), json!("u".repeat(50))),
        ("display_name", json!("d".repeat(256)), json!("d".repeat(256))),
        ("display_name", json!("  Ada  "), json!("Ada")),
        ("display_name", json!(""), Value::Null),
        ("name", json!("n".repeat(50)), json!("n".repeat(50))),
        ("company", json!("Acme"), json!("Acme")),
        ("job_title", json!("j"), json!("j")),
        ("first_name", json!("f".repeat(100)), json!("f".repeat(100))),
        ("last_name", json!("Lovelace"), json!("Lovelace")),
        ("bio", json!("b".repeat(300)), json!("b".repeat(300))),
        ("primary_email", json!("New.Address@Example.org"), json!("new.address@example.org")),
        ("phone_number", json!("+14155552671"), json!("+14155552671")),
        ("phone_number", json!("+33 1 42 68 53 00"), json!("+33142685300")),
        ("locale", json!("fr-CA"), json!("fr-CA")),
        ("locale", json!("zh-hant-tw"), json!("zh-Hant-TW")),
        ("timezone", json!("America/Los_Angeles"), json!("America/Los_Angeles")),
        ("birthdate", json!("1990-01-01"), json!("1990-01-01")),
        ("location", json!({"longitude": 180, "latitude": -90}), point(180.0, -90.0)),
        ("location", json!({"longitude": -118.25, "latitude": 34.05}), point(-118.25, 34.05)),
        ("avatar_url", json!("https://cdn.example.com/me.png"), json!("https://cdn.example.com/me.png")),
        ("client_metadata", json!({"a": {"b": [1, 2, {"c": null}]}}), json!({"a": {"b": [1, 2, {"c": null}]}})),
        ("is_onboarded", json!(true), json!(true)),
    ]
}

/// (field, value sent, machine code) — refused.
fn invalid_rows() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("username", json!(""), "too_short"),
        ("username", json!("u".repeat(51)), "too_long"),
        ("username", json!("with space"), "invalid_format"),
        ("username", json!("émile"), "invalid_format"),
        ("username", json!("Admin"), "reserved"),
        ("username", json!(42), "invalid_type"),
        ("display_name", json!("d".repeat(257)), "too_long"),
        ("name", json!(""), "too_short"),
        ("name", json!("n".repeat(51)), "too_long"),
        ("company", json!("c".repeat(51)), "too_long"),
        ("job_title", json!(""), "too_short"),
        ("first_name", json!("f".repeat(101)), "too_long"),
        ("last_name", json!("l".repeat(101)), "too_long"),
        ("bio", json!("b".repeat(301)), "too_long"),
        ("primary_email", json!("not-an-email"), "invalid_email"),
        ("primary_email", json!("a@b"), "invalid_email"),
        ("phone_number", json!("0207 946 0958"), "invalid_phone_number"),
        ("phone_number", json!("+1 555"), "invalid_phone_number"),
        ("locale", json!("english please"), "invalid_locale"),
        ("locale", json!(""), "invalid_locale"),
        ("timezone", json!("Europe/Atlantis"), "invalid_timezone"),
        ("timezone", json!("UTC+25"), "invalid_timezone"),
        ("birthdate", json!("1990-02-30"), "invalid_date"),
        ("birthdate", json!("01/02/1990"), "invalid_date"),
        ("birthdate", json!("2999-01-01"), "in_future"),
        ("location", json!("somewhere"), "invalid_type"),
        ("location.longitude", json!({"longitude": 180.5, "latitude": 0}), "out_of_range"),
        ("location.latitude", json!({"longitude": 34.05, "latitude": -118.25}), "out_of_range"),
        ("location.latitude", json!({"longitude": 1}), "required"),
        ("avatar_url", json!("http://insecure.example.com/a.png"), "invalid_url"),
        ("avatar_url", json!("bm90IGFuIGltYWdl"), "unsupported_image_type"),
        ("avatar_url", json!("data:text/html;base64,PGgxPg=="), "unsupported_image_type"),
        ("client_metadata", json!([1, 2]), "invalid_type"),
        ("client_metadata", json!({"big": "x".repeat(70 * 1024)}), "too_large"),
        ("is_onboarded", json!("yes"), "invalid_type"),
        ("selected_team_id", json!("not-a-uuid"), "invalid_format"),
    ]
}

#[tokio::test]
async fn every_valid_value_is_stored_in_its_normalised_form() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    for (field, sent, stored) in valid_rows() {
        let (status, v) = app.patch_me(&u.access, json!({ field: sent })).await;
        assert_eq!(status, StatusCode::OK, "{field} = {sent}: {v}");
        assert_eq!(v[field], stored, "{field} = {sent}");
    }
}

#[tokio::test]
async fn every_invalid_value_is_refused_naming_the_field_and_a_code() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    for (field, sent, code) in invalid_rows() {
        let top = field.split('.').next().unwrap();
        let (status, v) = app.patch_me(&u.access, json!({ top: sent })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field} = {sent}: {v}");
        assert_eq!(v["code"], "validation_failed");
        assert_eq!(field_codes(&v), [format!("{field}:{code}")], "{field} = {sent}");
    }
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["version"], 1, "no refused update changed anything");
}

#[tokio::test]
async fn usernames_and_emails_are_unique_per_tenant_regardless_of_case() {
    let app = spawn_app().await;
    let (t, a) = app.user().await;
    let b = app.sign_up(&t, "bob@example.com").await;
    assert_eq!(app.patch_me(&a.access, json!({"username": "Taken"})).await.0, StatusCode::OK);
    let (status, v) = app.patch_me(&b.access, json!({"username": "taken"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(field_codes(&v), ["username:already_taken"]);
    let (status, v) = app.patch_me(&b.access, json!({"primary_email": "ADA@example.com"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(field_codes(&v), ["primary_email:already_taken"]);
}

#[tokio::test]
async fn a_new_email_is_unverified_and_metadata_caps_follow_tenant_settings() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    app.update_user(&t, &u.id, json!({"primary_email_verified": true})).await;
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["primary_email_verified"], true);
    let (_, me) = app.patch_me(&u.access, json!({"primary_email": "new@example.com"})).await;
    assert_eq!(me["primary_email_verified"], false);

    let (status, _) =
        app.server(reqwest::Method::PATCH, &t, "/v1/settings", Some(json!({"metadata_max_bytes": 32}))).await;
    assert_eq!(status, StatusCode::OK);
    // The instance that took the change sees it at once (its tenant cache is invalidated).
    let (status, v) = app.patch_me(&u.access, json!({"client_metadata": {"k": "x".repeat(40)}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_codes(&v), ["client_metadata:too_large"]);
}

/// Each character that can make one name pass for another: the bidirectional controls, and
/// the invisible ones.
const SPOOFING: &[char] = &[
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    '\u{200E}', '\u{200F}', '\u{061C}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}',
];

#[tokio::test]
async fn names_with_invisible_or_direction_changing_characters_are_refused_on_every_surface() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let invalid = |v: &Value, field: &str| {
        assert_eq!(v["code"], "validation_failed", "{v}");
        assert_eq!(field_codes(v), [format!("{field}:invalid_format")], "{v}");
        assert!(v.to_string().contains("must not contain invisible or direction-changing characters"), "{v}");
    };
    for c in SPOOFING {
        let name = format!("ab{c}cd");
        // The user's own names, on the native API.
        for field in ["display_name", "first_name", "last_name", "name"] {
            let (status, v) = app.patch_me(&u.access, json!({ field: name })).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{field} {c:?}");
            invalid(&v, field);
        }
        // The server's, a tenant's team, client and the operator's tenant.
        let (status, v) = app.update_user(&t, &u.id, json!({"display_name": name})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        invalid(&v, "display_name");
        let (status, v) = app.server(reqwest::Method::POST, &t, "/v1/teams", Some(json!({"display_name": name}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        invalid(&v, "display_name");
        let client =
            json!({"name": name, "redirect_uris": ["https://app.example/cb"], "grant_types": ["authorization_code"]});
        let (status, v) = app.server(reqwest::Method::POST, &t, "/v1/oauth/clients", Some(client)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        invalid(&v, "name");
        let res = app.send(reqwest::Method::POST, "/v1/tenants", ROOT_KEY, Some(json!({"name": name}))).await;
        let (status, v) = body(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        invalid(&v, "name");
        // Sign-up with a display name.
        let signup = json!({"email": "new@example.com", "password": PASSWORD, "display_name": name});
        let (status, v) = app.sign_up_with(&t.id, signup).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        invalid(&v, "display_name");
    }
    // A foreign contract takes the same rule from the same table: Stack's display name.
    let res = app
        .client
        .patch(app.url("/compat/stack-auth/api/v1/users/me"))
        .header("x-stack-project-id", &t.id)
        .header("x-stack-access-type", "client")
        .header("x-stack-publishable-client-key", &t.publishable_key)
        .header("x-stack-access-token", &u.access)
        .json(&json!({"display_name": "ab\u{202e}cd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("invisible or direction-changing"));
    // Nothing was stored, and plain names (other scripts included) still are.
    assert_eq!(app.get_me(&u.access).await.1["display_name"], Value::Null);
    let (status, v) = app.patch_me(&u.access, json!({"display_name": "Ada Lovelace", "first_name": "عائشة"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // The account page shows the message under the field.
    let browser = FormClient::new(&app.base);
    let base = format!("{}/oidc/{}", app.base, t.id);
    let page = browser.get(&format!("{base}/sign-in?return_to=account")).await;
    let csrf = page.input("csrf").unwrap();
    browser.sign_in(&format!("{base}/sign-in"), &csrf, &u.email, "account").await;
    let saved =
        browser.post(&format!("{base}/account/profile"), &[("csrf", &csrf), ("display_name", "ab\u{202e}cd")]).await;
    assert_eq!(saved.status, StatusCode::BAD_REQUEST);
    assert!(saved.text.contains("must not contain invisible or direction-changing characters"), "{}", saved.text);
}
