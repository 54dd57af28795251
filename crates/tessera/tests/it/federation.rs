//! Identity providers: the tenant's server adds, reads, changes and removes them. An OpenID
//! provider's discovery document is read and checked when it is added; here the provider is
//! another tenant of the same Tessera, a real OpenID issuer.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn providers(app: &TestApp, t: &Tenant, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    app.server(method, t, &format!("/v1/identity-providers{path}"), body).await
}

#[tokio::test]
async fn the_server_manages_its_identity_providers_and_their_secrets_stay_hidden() {
    let app = spawn_app().await;
    let (t, upstream) = (app.tenant().await, app.tenant().await);
    let issuer = app.url(&format!("/oidc/{}", upstream.id));
    let secret = "upstream-client-secret-0123456789";
    let created = json!({"slug": "acme-sso", "kind": "oidc", "display_name": "Acme SSO", "client_id": "tessera",
        "client_secret": secret, "issuer": format!("{issuer}/")});
    let (status, p) = providers(&app, &t, Method::POST, "", Some(created.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["issuer"], json!(issuer), "stored without the trailing slash its discovery document omits");
    assert_eq!(p["scopes"], json!(["openid", "email", "profile"]));
    assert_eq!(p["callback_url"], json!(format!("{}/oidc/{}/federation/acme-sso/callback", app.base, t.id)));
    assert_eq!(p["has_client_secret"], json!(true));
    assert!(!p.to_string().contains(secret));
    let (status, _) = providers(&app, &t, Method::POST, "", Some(created)).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // GitHub, with its own addresses by default.
    let github = json!({"slug": "github", "kind": "github", "display_name": "GitHub", "client_id": "Iv1.x", "client_secret": "s"});
    let (status, g) = providers(&app, &t, Method::POST, "", Some(github)).await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    assert_eq!(
        (&g["web_base_url"], &g["api_base_url"]),
        (&json!("https://github.com"), &json!("https://api.github.com"))
    );
    assert_eq!(g["scopes"], json!(["read:user", "user:email"]));

    let (status, all) = providers(&app, &t, Method::GET, "", None).await;
    assert_eq!(status, StatusCode::OK);
    let slugs: Vec<&str> = all.as_array().unwrap().iter().map(|p| p["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["acme-sso", "github"]);
    assert!(!all.to_string().contains(secret));
    let (_, elsewhere) = providers(&app, &upstream, Method::GET, "", None).await;
    assert_eq!(elsewhere, json!([]), "each tenant sees its own");

    let (status, p) =
        providers(&app, &t, Method::PATCH, "/acme-sso", Some(json!({"display_name": "Acme", "scopes": ["openid"]})))
            .await;
    assert_eq!((status, &p["display_name"], &p["scopes"]), (StatusCode::OK, &json!("Acme"), &json!(["openid"])));
    let (status, v) =
        providers(&app, &t, Method::PATCH, "/acme-sso", Some(json!({"slug": "other", "kind": "github"}))).await;
    assert_eq!(
        (status, field_codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["kind:read_only".to_owned(), "slug:read_only".to_owned()])
    );
    assert_eq!(providers(&app, &t, Method::GET, "/acme-sso", None).await.1["display_name"], json!("Acme"));

    assert_eq!(providers(&app, &t, Method::DELETE, "/acme-sso", None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(providers(&app, &t, Method::GET, "/acme-sso", None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(providers(&app, &t, Method::DELETE, "/acme-sso", None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_provider_that_does_not_do_is_refused_by_field() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let add = |body: Value| providers(&app, &t, Method::POST, "", Some(body));
    let (status, v) = add(json!({"slug": "Bad Slug", "kind": "saml", "client_id": "", "client_secret": "s"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        field_codes(&v),
        ["client_id:invalid_value", "display_name:required", "kind:invalid_choice", "slug:invalid_format"]
    );
    let base = json!({"slug": "sso", "kind": "oidc", "display_name": "SSO", "client_id": "c", "client_secret": "s"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    assert_eq!(field_codes(&add(base.clone()).await.1), ["issuer:required"]);
    // No such issuer here: its discovery document is a 404.
    let nowhere = app.url("/oidc/00000000-0000-7000-8000-000000000000");
    let (status, v) = add(with("issuer", json!(nowhere))).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["issuer:discovery_failed".to_owned()]));
    // A document that names another issuer than the one asked for.
    let other = app.tenant().await;
    let (_, v) = add(with("issuer", json!(app.url(&format!("/oidc/{}/x/..", other.id))))).await;
    assert_eq!(field_codes(&v), ["issuer:discovery_failed"]);
    assert_eq!(field_codes(&add(with("issuer", json!("ftp://idp.example"))).await.1), ["issuer:invalid_url"]);
    assert_eq!(field_codes(&add(with("scopes", json!([]))).await.1), ["issuer:required", "scopes:invalid_value"]);
    let github = json!({"slug": "gh", "kind": "github", "display_name": "GitHub", "client_id": "c", "client_secret": "s",
        "issuer": "https://github.com"});
    assert_eq!(field_codes(&add(github).await.1), ["issuer:not_applicable"]);
    let (status, all) = providers(&app, &t, Method::GET, "", None).await;
    assert_eq!((status, all), (StatusCode::OK, json!([])), "nothing was added");
}

#[tokio::test]
async fn an_issuer_on_a_private_address_is_refused_unless_the_operator_allows_it() {
    let app = spawn_app_with(|s| s.outbound.allow_private_targets = false).await;
    let (t, upstream) = (app.tenant().await, app.tenant().await);
    let body = json!({"slug": "sso", "kind": "oidc", "display_name": "SSO", "client_id": "c", "client_secret": "s",
        "issuer": app.url(&format!("/oidc/{}", upstream.id))});
    let (status, v) = providers(&app, &t, Method::POST, "", Some(body)).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["issuer:discovery_failed".to_owned()]));
    assert!(v.to_string().contains("not a public address"), "{v}");
}
