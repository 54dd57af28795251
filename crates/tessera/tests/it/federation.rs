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

/// Tenant `t` lets its users sign in through tenant `up`, another issuer of this Tessera, to
/// which `t` is an ordinary OAuth client.
async fn federated(app: &TestApp) -> (Tenant, Tenant) {
    let (t, up) = (app.tenant().await, app.tenant().await);
    let callback = app.url(&format!("/oidc/{}/federation/up/callback", t.id));
    let client = json!({"name": "Acme", "redirect_uris": [callback], "grant_types": ["authorization_code"]});
    let (status, c) = app.server(Method::POST, &up, "/v1/oauth/clients", Some(client)).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let provider = json!({"slug": "up", "kind": "oidc", "display_name": "Upstream", "client_id": c["client_id"],
        "client_secret": c["client_secret"], "issuer": app.url(&format!("/oidc/{}", up.id))});
    let (status, p) = providers(app, &t, Method::POST, "", Some(provider)).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    (t, up)
}

/// A browser signs in at `t` through the provider as `login`: the sign-in page's button, the
/// provider's sign-in and consent, and back. The last answer of `t`.
async fn sign_in_through(app: &TestApp, browser: &FormClient, t: &Tenant, login: &str) -> Html {
    let page = browser.get(&format!("/oidc/{}/sign-in", t.id)).await;
    let href = page.text.split(r#"data-provider="up" href=""#).nth(1).expect("a Continue with Upstream button");
    let href = href.split('"').next().unwrap().replace("&amp;", "&");
    assert!(href.contains("/federation/up/"), "{href}");
    assert!(page.text.contains("Continue with Upstream"));
    let go = browser.get(&href).await;
    assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.text);
    let back = crate::oauth::approve(app, browser, &go.location(&app.base), login, None).await;
    assert!(back.starts_with(&app.url(&format!("/oidc/{}/federation/up/callback?", t.id))), "{back}");
    browser.get(&back).await
}

async fn users_of(app: &TestApp, t: &Tenant) -> Vec<Value> {
    let (_, v) = app.server(Method::GET, t, "/v1/users", None).await;
    v["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_first_sign_in_through_a_provider_makes_one_linked_user_and_the_next_finds_it() {
    let app = spawn_app().await;
    let (t, up) = federated(&app).await;
    let ada = app.sign_up(&up, "ada@upstream.example").await;

    let browser = FormClient::new(&app.base);
    let done = sign_in_through(&app, &browser, &t, "ada@upstream.example").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    assert_eq!(done.location(&app.base), app.url(&format!("/oidc/{}/account", t.id)));
    let account = browser.get(&done.location(&app.base)).await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.text.contains("ada@upstream.example"), "signed in at t");

    let users = users_of(&app, &t).await;
    assert_eq!(users.len(), 1, "{users:?}");
    let u = &users[0];
    assert_eq!(
        (&u["auth_provider"], &u["oauth_provider"], &u["oauth_id"]),
        (&json!("oidc"), &json!("up"), &json!(ada.id))
    );
    assert_eq!(u["primary_email"], json!("ada@upstream.example"));
    let (_, audit) = app.server(Method::GET, &t, "/v1/audit?type=session.created", None).await;
    assert_eq!(audit["items"][0]["details"]["method"], json!("federation:up"), "{audit}");

    // The same person again, in another browser, renamed at the provider meanwhile: the same
    // user, with the names the provider says now.
    let renamed = json!({"first_name": "Ada", "last_name": "Lovelace", "primary_email": "ada@lovelace.example"});
    let (status, _) = app.patch_me(&ada.access, renamed).await;
    assert_eq!(status, StatusCode::OK);
    let again = sign_in_through(&app, &FormClient::new(&app.base), &t, "ada@lovelace.example").await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text);
    let users = users_of(&app, &t).await;
    assert_eq!(users.len(), 1);
    assert_eq!((&users[0]["first_name"], &users[0]["last_name"]), (&json!("Ada"), &json!("Lovelace")));
    assert_eq!(users[0]["primary_email"], json!("ada@lovelace.example"), "the address follows the provider's");

    // An address another account here has is not taken; the sign-in still works.
    app.sign_up(&t, "taken@example.com").await;
    assert_eq!(app.patch_me(&ada.access, json!({"primary_email": "taken@example.com"})).await.0, StatusCode::OK);
    let third = sign_in_through(&app, &FormClient::new(&app.base), &t, "taken@example.com").await;
    assert_eq!(third.status, StatusCode::SEE_OTHER, "{}", third.text);
    let linked: Vec<Value> =
        users_of(&app, &t).await.into_iter().filter(|u| u["oauth_provider"] == json!("up")).collect();
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0]["primary_email"], json!("ada@lovelace.example"));
}

#[tokio::test]
async fn forged_replayed_foreign_and_refused_answers_sign_nobody_in_and_create_nothing() {
    let app = spawn_app().await;
    let (t, up) = federated(&app).await;
    app.sign_up(&up, "ada@upstream.example").await;
    let callback = format!("/oidc/{}/federation/up/callback", t.id);

    let browser = FormClient::new(&app.base);
    let page = browser.get(&format!("/oidc/{}/sign-in", t.id)).await;
    let href = page
        .text
        .split(r#"data-provider="up" href=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let go = browser.get(&href).await;
    let back = crate::oauth::approve(&app, &browser, &go.location(&app.base), "ada@upstream.example", None).await;

    // The answer in another browser (no binding cookie) is refused, and uses the state up.
    let other = FormClient::new(&app.base);
    let elsewhere = other.get(&back).await;
    assert_eq!(elsewhere.status, StatusCode::BAD_REQUEST);
    assert!(elsewhere.text.contains("another browser"), "{}", elsewhere.text);
    let replayed = browser.get(&back).await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert!(replayed.text.contains("used already"), "{}", replayed.text);

    let forged = browser.get(&format!("{callback}?code=abc&state=forged")).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    let denied = browser.get(&format!("{callback}?error=access_denied&state=x")).await;
    assert_eq!(denied.status, StatusCode::BAD_REQUEST);
    assert!(denied.text.contains("did not allow"), "{}", denied.text);
    assert!(users_of(&app, &t).await.is_empty(), "nobody was created");
}

#[tokio::test]
async fn an_account_with_the_same_address_is_never_taken_over() {
    let app = spawn_app().await;
    let (t, up) = federated(&app).await;
    let mine = app.sign_up(&t, "grace@example.com").await;
    app.sign_up(&up, "grace@example.com").await;
    let done = sign_in_through(&app, &FormClient::new(&app.base), &t, "grace@example.com").await;
    assert_eq!(done.status, StatusCode::BAD_REQUEST, "{}", done.text);
    assert!(done.text.contains("exists already"), "{}", done.text);
    let users = users_of(&app, &t).await;
    assert_eq!(users.len(), 1);
    assert_eq!((&users[0]["id"], &users[0]["auth_provider"]), (&json!(mine.id), &json!("local")));
}

#[tokio::test]
async fn idp_hint_goes_straight_to_the_provider_and_the_authorization_continues_as_after_a_password() {
    let app = spawn_app().await;
    let (t, up) = federated(&app).await;
    app.sign_up(&up, "ada@upstream.example").await;
    let (client_id, client_secret) = crate::oauth::confidential(&app, &t).await;
    let issuer = app.url(&format!("/oidc/{}", t.id));
    let authorize = format!(
        "{issuer}/authorize?response_type=code&scope=openid%20email%20profile&client_id={client_id}&redirect_uri={}&state=s1&idp_hint=up",
        crate::oauth::REDIRECT
    );
    let browser = FormClient::new(&app.base);
    let hinted = browser.get(&authorize).await;
    assert_eq!(hinted.status, StatusCode::SEE_OTHER, "no sign-in page: {}", hinted.text);
    assert!(hinted.location(&app.base).contains("/federation/up/start?"), "{}", hinted.location(&app.base));
    let go = browser.get(&hinted.location(&app.base)).await;
    let back = crate::oauth::approve(&app, &browser, &go.location(&app.base), "ada@upstream.example", None).await;
    let done = browser.get(&back).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let resumed = done.location(&app.base);
    assert!(resumed.starts_with(&format!("{issuer}/authorize?")), "back to the authorization request: {resumed}");

    // Signed in at t now: its consent page, then the code to the client.
    let consent = browser.get(&resumed).await;
    assert!(consent.text.contains("Allow"), "{}", consent.text);
    let (csrf, request) = (consent.input("csrf").unwrap(), consent.input("request").unwrap());
    let approved = browser
        .post(&format!("{issuer}/authorize"), &[("csrf", &csrf), ("request", &request), ("decision", "approve")])
        .await;
    let to_client = approved.location(&app.base);
    assert_eq!(crate::oauth::query_param(&to_client, "state").as_deref(), Some("s1"));
    let code = crate::oauth::query_param(&to_client, "code").unwrap();
    let grant =
        [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", crate::oauth::REDIRECT)];
    let (status, tokens) =
        body(app.post_form(format!("{issuer}/token"), Some((&client_id, &client_secret)), &grant).await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let (_, me) = app.get_me(access).await;
    assert_eq!((&me["auth_provider"], &me["primary_email"]), (&json!("oidc"), &json!("ada@upstream.example")));
    // What the provider owns, the user cannot change.
    let (status, v) = app.patch_me(access, json!({"primary_email": "other@example.com"})).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::FORBIDDEN, vec!["primary_email:idp_managed".to_owned()]));
}

/// A stand-in for GitHub's OAuth and API endpoints, on loopback: its authorize page approves at
/// once, its token endpoint takes the one code it handed out, with the client's secret.
async fn github_stand_in() -> String {
    use axum::extract::{Form, Query};
    use axum::http::HeaderMap;
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::{get, post};
    use std::collections::HashMap;
    let authorize = get(|Query(q): Query<HashMap<String, String>>| async move {
        assert_eq!(q.get("client_id").map(String::as_str), Some("gh-client"));
        assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
        let back = format!("{}?code=gh-code&state={}", q["redirect_uri"], q["state"]);
        Redirect::to(&back)
    });
    let token = post(|headers: HeaderMap, Form(f): Form<HashMap<String, String>>| async move {
        let json_wanted = headers.get("accept").is_some_and(|v| v == "application/json");
        let ok = f.get("code").map(String::as_str) == Some("gh-code")
            && f.get("client_secret").map(String::as_str) == Some("gh-secret")
            && f.contains_key("code_verifier")
            && json_wanted;
        if ok {
            axum::Json(json!({"access_token": "gho_stand_in", "token_type": "bearer"}))
        } else {
            axum::Json(json!({"error": "bad_verification_code"}))
        }
    });
    let authorized = |headers: &HeaderMap| headers.get("authorization").is_some_and(|v| v == "Bearer gho_stand_in");
    let user = get(move |headers: HeaderMap| async move {
        if !authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        axum::Json(json!({"id": 583231, "login": "octocat", "name": "The Octocat", "email": null,
            "avatar_url": "https://avatars.example/u/583231"}))
        .into_response()
    });
    let emails = get(move |headers: HeaderMap| async move {
        if !authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        axum::Json(json!([{"email": "old@github.example", "primary": false, "verified": true},
            {"email": "octocat@github.example", "primary": true, "verified": true}]))
        .into_response()
    });
    let app = axum::Router::new()
        .route("/login/oauth/authorize", authorize)
        .route("/login/oauth/access_token", token)
        .route("/api/user", user)
        .route("/api/user/emails", emails);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn a_sign_in_through_github_reads_who_it_is_from_the_api() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let github = github_stand_in().await;
    let provider = json!({"slug": "gh", "kind": "github", "display_name": "GitHub", "client_id": "gh-client",
        "client_secret": "gh-secret", "web_base_url": github, "api_base_url": format!("{github}/api")});
    assert_eq!(providers(&app, &t, Method::POST, "", Some(provider)).await.0, StatusCode::CREATED);

    let browser = FormClient::new(&app.base);
    let page = browser.get(&format!("/oidc/{}/sign-in", t.id)).await;
    assert!(page.text.contains("Continue with GitHub"));
    let go = browser.get(&format!("/oidc/{}/federation/gh/start?return_to=account", t.id)).await;
    assert!(go.location(&app.base).starts_with(&format!("{github}/login/oauth/authorize?")));
    let back = browser.get(&go.location(&app.base)).await;
    let done = browser.get(&back.location(&app.base)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let users = users_of(&app, &t).await;
    assert_eq!(users.len(), 1);
    let u = &users[0];
    assert_eq!((&u["oauth_provider"], &u["oauth_id"]), (&json!("gh"), &json!("583231")));
    assert_eq!((&u["primary_email"], &u["primary_email_verified"]), (&json!("octocat@github.example"), &json!(true)));
    assert_eq!(u["display_name"], json!("The Octocat"));
    assert_eq!(u["avatar_url"], json!("https://avatars.example/u/583231"));
}

#[tokio::test]
async fn a_signed_in_user_links_a_provider_from_the_account_page_and_may_unlink_it_unless_it_is_the_only_way_in() {
    let app = spawn_app().await;
    let (t, up) = federated(&app).await;
    app.sign_up(&up, "ada@upstream.example").await;
    let mine = app.sign_up(&t, "ada@example.com").await;

    // Signed in at t with a password, the account page offers the provider.
    let browser = FormClient::new(&app.base);
    let page = browser.get(&format!("/oidc/{}/sign-in", t.id)).await;
    let csrf = page.input("csrf").unwrap();
    let signed_in = browser.sign_in(&format!("/oidc/{}/sign-in", t.id), &csrf, "ada@example.com", "account").await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let account = browser.get(&format!("/oidc/{}/account", t.id)).await;
    assert!(account.text.contains(r#"<tr data-provider="up">"#), "{}", account.text);
    assert!(account.text.contains("Not linked"));
    let go =
        browser.post(&format!("/oidc/{}/account/providers/link", t.id), &[("csrf", &csrf), ("provider", "up")]).await;
    assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.text);
    // The provider's pages keep their own cookies (this test's browser does not scope cookies
    // by path, as a real one does): they get a client of their own.
    let at_provider = FormClient::new(&app.base);
    let back = crate::oauth::approve(&app, &at_provider, &go.location(&app.base), "ada@upstream.example", None).await;
    let done = browser.get(&back).await;
    assert_eq!(done.location(&app.base), app.url(&format!("/oidc/{}/account?done=provider-linked", t.id)));
    assert!(browser.get(&format!("/oidc/{}/account", t.id)).await.text.contains("Linked"));

    // From now on the provider signs in as this account, whatever its address.
    let through = sign_in_through(&app, &FormClient::new(&app.base), &t, "ada@upstream.example").await;
    assert_eq!(through.status, StatusCode::SEE_OTHER, "{}", through.text);
    let users = users_of(&app, &t).await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["id"], json!(mine.id));

    // Unlinked (the password still signs in), and the provider makes a new account next time.
    let csrf = browser.get(&format!("/oidc/{}/account", t.id)).await.input("csrf").unwrap();
    let unlinked =
        browser.post(&format!("/oidc/{}/account/providers/unlink", t.id), &[("csrf", &csrf), ("provider", "up")]).await;
    assert_eq!(unlinked.location(&app.base), app.url(&format!("/oidc/{}/account?done=provider-unlinked", t.id)));
    let kinds: Vec<String> = {
        let (_, v) = app.server(Method::GET, &t, &format!("/v1/audit?user_id={}", mine.id), None).await;
        v["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
    };
    assert!(
        kinds.contains(&"user.provider_linked".to_owned()) && kinds.contains(&"user.provider_unlinked".to_owned()),
        "{kinds:?}"
    );

    // An account made by the provider has no other way in: its only provider stays.
    let grace = FormClient::new(&app.base);
    app.sign_up(&up, "grace@upstream.example").await;
    let made = sign_in_through(&app, &grace, &t, "grace@upstream.example").await;
    assert_eq!(made.status, StatusCode::SEE_OTHER);
    let page = grace.get(&format!("/oidc/{}/account", t.id)).await;
    let csrf = page.input("csrf").unwrap();
    let refused =
        grace.post(&format!("/oidc/{}/account/providers/unlink", t.id), &[("csrf", &csrf), ("provider", "up")]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert!(refused.text.contains("only way to sign in"), "{}", refused.text);
}
