//! The field table (`tessera_core::fields`) is the one declaration of a user's fields. Every
//! field it declares is shown by `GET /v1/me` to whom it says, is taken by `PATCH /v1/me` up to
//! its limit and refused past it, is described in `/openapi.json` with that limit, and, when the
//! account page offers it, has the same limit there.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_core::fields::{Kind, Reader, USER_FIELDS, Writer};

use crate::helpers::*;

#[tokio::test]
async fn every_declared_field_is_shown_taken_described_and_limited_alike_on_every_surface() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (_, me) = app.get_me(&u.access).await;
    let (_, as_server) = app.server(Method::GET, &t, &format!("/v1/users/{}", u.id), None).await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    let (view, update) = (&schemas["UserView"]["properties"], &schemas["UserUpdate"]["properties"]);

    for f in USER_FIELDS {
        let name = f.name;
        assert_eq!(me.get(name).is_some(), f.reader == Reader::Everyone, "{name} in GET /v1/me");
        assert_eq!(as_server.get(name).is_some(), f.reader != Reader::Nobody, "{name} in the server's view");
        assert_eq!(view.get(name).is_some(), f.reader != Reader::Nobody, "{name} in the UserView schema");
        assert_eq!(update.get(name).is_some(), f.is_writable(), "{name} in the UserUpdate schema");

        let Some(max) = f.kind.max_chars() else { continue };
        assert_eq!(update[name]["maxLength"], json!(max), "{name}: the documented limit");
        if f.writer != Writer::User {
            continue;
        }
        let longest = if f.kind == Kind::Username { "u".repeat(max) } else { "x".repeat(max) };
        let (status, body) = app.patch_me(&u.access, json!({ name: longest })).await;
        assert_eq!(status, StatusCode::OK, "{name} at its limit: {body}");
        assert_eq!(body[name], json!(longest), "{name} is stored");
        let (status, body) = app.patch_me(&u.access, json!({ name: "x".repeat(max + 1) })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name} past its limit");
        assert_eq!(field_codes(&body), [format!("{name}:too_long")]);
    }

    // The account page's profile inputs carry the same limits.
    let browser = FormClient::new(&app.base);
    let base = format!("{}/oidc/{}", app.base, t.id);
    let page = browser.get(&format!("{base}/sign-in?return_to=account")).await;
    let csrf = page.input("csrf").unwrap();
    browser.sign_in(&format!("{base}/sign-in"), &csrf, "ada@example.com", "account").await;
    let account = browser.get(&format!("{base}/account")).await;
    assert_eq!(account.status, StatusCode::OK);
    let mut offered = Vec::new();
    for f in USER_FIELDS {
        let Some(at) = account.text.find(&format!(r#"name="{}""#, f.name)) else { continue };
        let tag = &account.text[at..at + account.text[at..].find('>').unwrap()];
        let limit = tag.split(r#"maxlength=""#).nth(1).and_then(|s| s.split('"').next()).map(|s| s.parse().unwrap());
        assert_eq!(limit, f.kind.max_chars(), "{}: the account page's limit", f.name);
        offered.push(f.name);
    }
    assert_eq!(offered, ["display_name", "first_name", "last_name", "bio"]);
}
