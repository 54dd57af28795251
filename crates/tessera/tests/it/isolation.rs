//! Tenant isolation across the surfaces added beside the native API: every credential
//! of tenant B, used on tenant A's ids, paths or issuer, reaches nothing and changes nothing.
//! (The native and server APIs are swept in `server_api.rs`.)

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn another_tenants_credentials_reach_nothing_on_the_contracts_and_the_issuer() {
    let app = spawn_app().await;
    let (a, ada) = app.user().await;
    let (b, bob) = app.user().await;
    let (_, sa_b) = app.server(Method::POST, &b, "/v1/service-accounts", Some(json!({"username": "b-bot"}))).await;
    let (b_id, b_secret) =
        (sa_b["client_id"].as_str().unwrap().to_owned(), sa_b["client_secret"].as_str().unwrap().to_owned());

    // Replyke: B's key, B's project, A's user: not found there.
    let replyke = format!("/compat/replyke/{}/users/{}", b.id, ada.id);
    let res = app.send(Method::PATCH, &replyke, &b.server_key, Some(json!({"update": {"bio": "from b"}}))).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Stack: B's keys with A's user token and B's project id.
    let res = app
        .client
        .patch(app.url("/compat/stack-auth/api/v1/users/me"))
        .header("x-stack-project-id", &b.id)
        .header("x-stack-access-type", "server")
        .header("x-stack-secret-server-key", &b.server_key)
        .header("x-stack-access-token", &ada.access)
        .json(&json!({"server_metadata": {"b": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "INVALID_PROJECT_FOR_ACCESS_TOKEN, as Stack answers it");

    // B's issuer: A's tokens are not active there, cannot be refreshed or revoked there.
    let issuer_b = app.url(&format!("/oidc/{}", b.id));
    let b_client = Some((b_id.as_str(), b_secret.as_str()));
    let access = [("token", ada.access.as_str())];
    let res = app.post_form(format!("{issuer_b}/introspect"), b_client, &access).await;
    assert_eq!(body(res).await.1["active"], false);
    let res = app.client.get(format!("{issuer_b}/userinfo")).bearer_auth(&ada.access).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app.post_form(format!("{issuer_b}/revoke"), None, &[("token", ada.refresh.as_str())]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.post_form(format!("{issuer_b}/revoke"), None, &access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", ada.refresh.as_str())];
    let res = app.post_form(format!("{issuer_b}/token"), None, &refresh).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // B's client at A's issuer.
    let res = app.post_form(app.url(&format!("/oidc/{}/introspect", a.id)), b_client, &access).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Nothing of A changed: the session lives, the refresh token was not used up, no field moved.
    let (status, me) = app.get_me(&ada.access).await;
    assert_eq!((status, me["bio"].clone(), me["version"].as_i64()), (StatusCode::OK, serde_json::Value::Null, Some(1)));
    assert_eq!(app.refresh(&ada.refresh).await.status(), StatusCode::OK);
    assert_eq!(app.get_me(&bob.access).await.0, StatusCode::OK);
}
