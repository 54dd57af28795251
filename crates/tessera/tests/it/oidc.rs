//! The OAuth 2.0 / OIDC provider's first endpoints, over HTTP: discovery, JWKS, the token
//! endpoint (client credentials, refresh with rotation, RFC 6749 §5.2 errors), userinfo,
//! revocation (RFC 7009) and introspection (RFC 7662).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn service_account(app: &TestApp, t: &Tenant) -> (String, String) {
    let (_, sa) = app.server(Method::POST, t, "/v1/service-accounts", Some(json!({"username": "ci-bot"}))).await;
    (sa["client_id"].as_str().unwrap().into(), sa["client_secret"].as_str().unwrap().into())
}

#[tokio::test]
async fn discovery_and_jwks_describe_a_per_tenant_issuer() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let issuer = app.url(&format!("/oidc/{}", t.id));
    let (status, d) =
        body(app.client.get(format!("{issuer}/.well-known/openid-configuration")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(d["issuer"].as_str(), Some(issuer.as_str()));
    assert_eq!(d["token_endpoint"].as_str(), Some(format!("{issuer}/token").as_str()));
    let (_, jwks) = body(app.client.get(d["jwks_uri"].as_str().unwrap()).send().await.unwrap()).await;
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    // The key that signs access tokens is the one published.
    let (_, u) = app.user().await;
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(u.access.split('.').next().unwrap()).unwrap();
    let kid = serde_json::from_slice::<Value>(&header).unwrap()["kid"].clone();
    let (_, jwks) = body(app.client.get(format!("{}/oidc/{}/jwks", app.base, u.tenant)).send().await.unwrap()).await;
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == kid));
    let res = app.client.get(app.url(&format!("/oidc/{}/jwks", uuid::Uuid::now_v7()))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn client_credentials_give_a_service_account_a_token_for_userinfo_and_me() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let (id, secret) = service_account(&app, &t).await;
    let token_url = app.url(&format!("/oidc/{}/token", t.id));
    let grant = [("grant_type", "client_credentials")];
    let res = app.post_form(&token_url, Some((&id, &secret)), &grant).await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert!(v.get("refresh_token").is_none());
    let at = v["access_token"].as_str().unwrap();
    let (_, me) = app.get_me(at).await;
    assert_eq!((me["is_service_account"].as_bool(), me["username"].as_str()), (Some(true), Some("ci-bot")));
    let (status, info) = body(app.send(Method::GET, &format!("/oidc/{}/userinfo", t.id), at, None).await).await;
    assert_eq!((status, info["preferred_username"].as_str()), (StatusCode::OK, Some("ci-bot")));

    // RFC 6749 §5.2 errors.
    let wrong_secret = [("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", "wrong")];
    let res = app.post_form(&token_url, None, &wrong_secret).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(res).await.1["error"], "invalid_client");
    let res = app.post_form(&token_url, None, &[("grant_type", "password")]).await;
    assert_eq!(body(res).await.1["error"], "unsupported_grant_type");
    let res = app.post_form(&token_url, None, &[("nothing", "here")]).await;
    assert_eq!(body(res).await.1["error"], "invalid_request");
    // Another tenant's issuer does not take this client.
    let other = app.tenant().await;
    let res = app.post_form(app.url(&format!("/oidc/{}/token", other.id)), Some((&id, &secret)), &grant).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_rotates_through_the_token_endpoint_and_revocation_and_introspection_agree() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (id, secret) = service_account(&app, &t).await;
    let issuer = app.url(&format!("/oidc/{}", t.id));
    let grant = [("grant_type", "refresh_token"), ("refresh_token", u.refresh.as_str())];
    let (status, v) = body(app.post_form(format!("{issuer}/token"), None, &grant).await).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (access, refresh) =
        (v["access_token"].as_str().unwrap().to_owned(), v["refresh_token"].as_str().unwrap().to_owned());
    let res = app.post_form(format!("{issuer}/token"), None, &grant).await;
    assert_eq!(body(res).await.1["error"], "invalid_grant", "a used refresh token is a reuse");

    // The reuse revoked the session; start a fresh one to test revoke and introspect.
    let fresh = app.sign_in_as(&t.id, &u.email).await;
    let introspect = |tok: String| {
        let (app, issuer, id, secret) = (&app, &issuer, &id, &secret);
        async move {
            body(app.post_form(format!("{issuer}/introspect"), Some((id, secret)), &[("token", &tok)]).await).await
        }
    };
    let (status, v) = introspect(fresh.access.clone()).await;
    assert_eq!((status, v["active"].as_bool(), v["sub"].as_str()), (StatusCode::OK, Some(true), Some(u.id.as_str())));
    assert_eq!(introspect(access).await.1["active"], false, "the reused family is gone");
    let _ = refresh;
    let res = app.post_form(format!("{issuer}/introspect"), None, &[("token", &fresh.access)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "introspection needs client credentials");

    let res = app.post_form(format!("{issuer}/revoke"), None, &[("token", &fresh.refresh)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        introspect(fresh.access.clone()).await.1["active"],
        false,
        "revoking the refresh token ends the session"
    );
    assert_eq!(app.get_me(&fresh.access).await.0, StatusCode::UNAUTHORIZED);
    let res = app.post_form(format!("{issuer}/revoke"), None, &[("token", "garbage")]).await;
    assert_eq!(res.status(), StatusCode::OK, "RFC 7009: unknown tokens are fine");
}

#[tokio::test]
async fn an_unknown_algorithm_is_refused_by_name_and_changes_nothing() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    for bad in [json!("HS256"), json!("none"), json!(256)] {
        let (status, v) = app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"signing_algorithm": bad}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let code = if bad.is_string() { "invalid_choice" } else { "invalid_type" };
        assert_eq!(field_codes(&v), [format!("signing_algorithm:{code}")]);
    }
    let (_, v) = app.server(Method::GET, &t, "/v1/settings", None).await;
    assert_eq!(v["signing_algorithm"], "EdDSA");
}

#[tokio::test]
async fn rotation_replaces_the_key_of_every_algorithm_in_use_and_old_tokens_keep_verifying() {
    let app = spawn_app().await;
    let (t, _) = app.user().await;
    app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"signing_algorithm": "RS256"}))).await;
    let old = app.sign_in_as(&t.id, "ada@example.com").await;
    let kids = app.service().rotate_signing_key().await.unwrap();
    assert_eq!(kids.len(), 2, "the EdDSA key and the RS256 key");
    let new = app.sign_in_as(&t.id, "ada@example.com").await;
    let kid = |token: &str| jwt_part(token, 0)["kid"].as_str().unwrap().to_owned();
    assert_ne!(kid(&old.access), kid(&new.access));
    assert!(kids.contains(&kid(&new.access)));
    assert_eq!(jwt_part(&new.access, 0)["alg"], "RS256");
    for u in [&old, &new] {
        assert_eq!(app.get_me(&u.access).await.0, StatusCode::OK);
    }
}
