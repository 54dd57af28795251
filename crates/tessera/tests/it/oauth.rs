//! The authorization-code flow with PKCE, client credentials, refresh, introspection and
//! revocation, driven by the `openidconnect` crate (a client library no one here wrote) using
//! only the discovery document; the user's part is done by posting the hosted forms. Then the
//! ways it must fail: wrong redirect URI, missing or wrong verifier, replayed and expired codes,
//! forged tokens, CSRF, rate limits.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AccessToken, AdditionalProviderMetadata, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, ProviderMetadata, RedirectUrl, Scope,
    TokenIntrospectionResponse, TokenResponse,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/callback";

#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
struct ExtraMeta {
    revocation_endpoint: String,
    introspection_endpoint: String,
}
impl AdditionalProviderMetadata for ExtraMeta {}

type Meta = ProviderMetadata<
    ExtraMeta,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

fn http() -> reqwest::Client {
    // As openidconnect recommends: redirects are not followed (SSRF).
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn issuer(app: &TestApp, t: &Tenant) -> String {
    app.url(&format!("/oidc/{}", t.id))
}

fn authorize_url(app: &TestApp, t: &Tenant, params: &[(&str, &str)]) -> String {
    format!("{}/authorize?{}", issuer(app, t), serde_urlencoded::to_string(params).unwrap())
}

async fn discover(app: &TestApp, t: &Tenant) -> Meta {
    Meta::discover_async(IssuerUrl::new(issuer(app, t)).unwrap(), &http()).await.expect("discovery")
}

async fn create_client(app: &TestApp, t: &Tenant, body: Value) -> (StatusCode, Value) {
    app.server(Method::POST, t, "/v1/oauth/clients", Some(body)).await
}

/// Registers a client through the server API; returns its id and secret.
async fn register(app: &TestApp, t: &Tenant, body: Value) -> (String, Option<String>) {
    let (status, c) = create_client(app, t, body).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    (c["client_id"].as_str().unwrap().to_owned(), c["client_secret"].as_str().map(str::to_owned))
}

pub(crate) async fn confidential(app: &TestApp, t: &Tenant) -> (String, String) {
    let body =
        json!({"name": "Notes", "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"]});
    let (id, secret) = register(app, t, body).await;
    (id, secret.expect("a confidential client has a secret"))
}

/// The person's part: open the authorization URL, sign in on the hosted form (and give a TOTP
/// code when asked), approve on the consent page. Returns where the browser is sent.
pub(crate) async fn approve(
    app: &TestApp,
    browser: &FormClient,
    auth_url: &str,
    login: &str,
    code: Option<String>,
) -> String {
    let page = browser.get(auth_url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains(r#"name="password""#), "the sign-in form is shown: {}", page.text);
    let action = format!("{}/sign-in", auth_url.split("/authorize").next().unwrap());
    let csrf = page.input("csrf").unwrap();
    let return_to = page.input("return_to").unwrap();
    let mut next = browser.sign_in(&action, &csrf, login, &return_to).await;
    if let Some(code) = code {
        assert_eq!(next.status, StatusCode::OK, "the TOTP step: {}", next.text);
        assert!(next.text.contains(r#"name="code""#));
        let token = next.input("mfa_token").unwrap();
        next = browser
            .post(
                &format!("{action}/mfa"),
                &[("csrf", &csrf), ("mfa_token", &token), ("code", &code), ("return_to", &return_to)],
            )
            .await;
    }
    assert_eq!(next.status, StatusCode::SEE_OTHER, "{}", next.text);
    let consent = browser.get(&next.location(&app.base)).await;
    assert_eq!(consent.status, StatusCode::OK);
    assert!(consent.text.contains("Allow"), "{}", consent.text);
    let request = consent.input("request").unwrap();
    let done = browser
        .post(auth_url.split('?').next().unwrap(), &[("csrf", &csrf), ("request", &request), ("decision", "approve")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    done.location(&app.base)
}

pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok()?.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

#[tokio::test]
async fn authorization_code_with_pkce_through_openidconnect_reaches_me_and_refreshes_introspects_and_revokes() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let user = app.sign_up(&t, "ada@example.com").await;
    app.patch_me(&user.access, json!({"display_name": "Ada L."})).await;
    let (id, secret) = confidential(&app, &t).await;

    let meta = discover(&app, &t).await;
    let introspection = meta.additional_metadata().introspection_endpoint.clone();
    let revocation = meta.additional_metadata().revocation_endpoint.clone();
    let client =
        CoreClient::from_provider_metadata(meta, ClientId::new(id.clone()), Some(ClientSecret::new(secret.clone())))
            .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
            .set_introspection_url(IntrospectionUrl::new(introspection).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let browser = FormClient::new(&app.base);
    let back = approve(&app, &browser, auth_url.as_str(), "ada@example.com", None).await;
    assert!(back.starts_with(REDIRECT), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some(state.secret().as_str()));
    assert_eq!(query_param(&back, "iss").as_deref(), Some(issuer(&app, &t).as_str()));
    let code = query_param(&back, "code").unwrap();

    let http = http();
    let exchange = client.exchange_code(AuthorizationCode::new(code)).unwrap().set_pkce_verifier(verifier);
    let tokens = exchange.request_async(&http).await.expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token for the openid scope");
    let claims = id_token.claims(&client.id_token_verifier(), &nonce).expect("the ID token verifies");
    assert_eq!(claims.subject().as_str(), user.id);
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.com"));
    assert_eq!(claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()), Some("Ada L."));
    assert!(claims.auth_time().is_some());

    // The access token works on the native API and on ZenML's current-user endpoint.
    let access = tokens.access_token().secret().clone();
    let (status, me) = app.get_me(&access).await;
    assert_eq!((status, me["id"].as_str()), (StatusCode::OK, Some(user.id.as_str())));
    let res = app.send(Method::GET, "/compat/zenml/users/me", &access, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The ID token is not an access token.
    assert_eq!(app.get_me(&id_token.to_string()).await.0, StatusCode::UNAUTHORIZED);

    // Introspection (RFC 7662) through the library.
    let info = client.introspect(tokens.access_token()).request_async(&http).await.expect("introspection");
    assert!(info.active());
    assert_eq!(info.sub(), Some(user.id.as_str()));

    // The access token is an RFC 9068 one: its type says so, and it names the client.
    let [header, payload] = [0, 1].map(|i| jwt_part(tokens.access_token().secret(), i));
    assert_eq!((header["typ"].as_str(), payload["client_id"].as_str()), (Some("at+jwt"), Some(id.as_str())));

    // A live refresh token introspects as active until it is used.
    let rt = tokens.refresh_token().expect("a refresh token").clone();
    let as_token = AccessToken::new(rt.secret().clone());
    let info = client.introspect(&as_token).request_async(&http).await.expect("introspection");
    assert!(info.active(), "a live refresh token is active");
    assert_eq!(info.sub(), Some(user.id.as_str()));

    // Refresh with rotation; the old refresh token is then spent.
    let refreshed = client.exchange_refresh_token(&rt).unwrap().request_async(&http).await.expect("refresh");
    let info = client.introspect(&as_token).request_async(&http).await.unwrap();
    assert!(!info.active(), "a rotated refresh token is no longer active");
    assert_eq!(app.get_me(refreshed.access_token().secret()).await.0, StatusCode::OK);
    assert!(client.exchange_refresh_token(&rt).unwrap().request_async(&http).await.is_err(), "reuse is refused");
    // The reuse revoked the session: the rotated tokens died with it.
    assert_eq!(app.get_me(refreshed.access_token().secret()).await.0, StatusCode::UNAUTHORIZED);

    // A second grant, then revocation (RFC 7009). openidconnect refuses revocation over plain
    // http, so this one request is made by hand.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, _) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let consent = browser.get(auth_url.as_str()).await;
    assert!(consent.text.contains("Allow"), "already signed in: straight to consent");
    let done = browser
        .post(
            &format!("{}/authorize", issuer(&app, &t)),
            &[
                ("csrf", &consent.input("csrf").unwrap()),
                ("request", &consent.input("request").unwrap()),
                ("decision", "approve"),
            ],
        )
        .await;
    let code = query_param(&done.location(&app.base), "code").unwrap();
    let exchange = client.exchange_code(AuthorizationCode::new(code)).unwrap().set_pkce_verifier(verifier);
    let second = exchange.request_async(&http).await.unwrap();
    let res = http
        .post(&revocation)
        .basic_auth(&id, Some(&secret))
        .form(&[("token", second.refresh_token().unwrap().secret().as_str()), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let info = client.introspect(second.access_token()).request_async(&http).await.unwrap();
    assert!(!info.active(), "revoking the refresh token ended the session");
    assert_eq!(app.get_me(second.access_token().secret()).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_public_client_must_use_pkce_and_its_verifier_gets_the_tokens() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    app.sign_up(&t, "ada@example.com").await;
    let body = json!({"name": "Mobile", "redirect_uris": ["com.example.notes:/cb"], "grant_types": ["authorization_code"], "public": true});
    let (id, secret) = register(&app, &t, body).await;
    assert!(secret.is_none(), "a public client has no secret");

    let client = CoreClient::from_provider_metadata(discover(&app, &t).await, ClientId::new(id.clone()), None)
        .set_redirect_uri(RedirectUrl::new("com.example.notes:/cb".into()).unwrap());
    // Without PKCE the client is told so at its redirect URI.
    let (auth_url, _, _) =
        client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random).url();
    let browser = FormClient::new(&app.base);
    let res = browser.get(auth_url.as_str()).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let loc = res.location(&app.base);
    assert!(loc.starts_with("com.example.notes:/cb?"), "{loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"));

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let back = approve(&app, &browser, auth_url.as_str(), "ada@example.com", None).await;
    let code = query_param(&back, "code").unwrap();
    let http = http();
    let exchange = client.exchange_code(AuthorizationCode::new(code)).unwrap().set_pkce_verifier(verifier);
    let tokens = exchange.request_async(&http).await.unwrap();
    tokens.id_token().unwrap().claims(&client.id_token_verifier(), &nonce).unwrap();
    assert_eq!(app.get_me(tokens.access_token().secret()).await.0, StatusCode::OK);
    assert!(tokens.refresh_token().is_none(), "the client was not allowed refresh_token");
}

#[tokio::test]
async fn client_credentials_through_openidconnect_reach_seed_001_and_native_me() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let (_, sa) = app.server(Method::POST, &t, "/v1/service-accounts", Some(json!({"username": "ci-bot"}))).await;
    let client = CoreClient::from_provider_metadata(
        discover(&app, &t).await,
        ClientId::new(sa["client_id"].as_str().unwrap().into()),
        Some(ClientSecret::new(sa["client_secret"].as_str().unwrap().into())),
    );
    let tokens =
        client.exchange_client_credentials().unwrap().request_async(&http()).await.expect("client credentials");
    let access = tokens.access_token().secret();
    let (status, me) = app.get_me(access).await;
    assert_eq!((status, me["username"].as_str()), (StatusCode::OK, Some("ci-bot")));
    let (status, z) = body(app.send(Method::GET, "/compat/zenml/users/me", access, None).await).await;
    assert_eq!(
        (status, z["username"].as_str(), z["is_service_account"].as_bool()),
        (StatusCode::OK, Some("ci-bot"), Some(true))
    );

    // An OAuth client registered for client_credentials is its own service account.
    let (id, secret) = register(&app, &t, json!({"name": "Nightly job", "grant_types": ["client_credentials"]})).await;
    let client = CoreClient::from_provider_metadata(
        discover(&app, &t).await,
        ClientId::new(id),
        Some(ClientSecret::new(secret.unwrap())),
    );
    let tokens = client.exchange_client_credentials().unwrap().request_async(&http()).await.unwrap();
    let (status, me) = app.get_me(tokens.access_token().secret()).await;
    assert_eq!(
        (status, me["display_name"].as_str(), me["is_service_account"].as_bool()),
        (StatusCode::OK, Some("Nightly job"), Some(true))
    );
}

#[tokio::test]
async fn client_credentials_grants_share_one_session_until_it_is_revoked() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let (id, secret) = register(&app, &t, json!({"name": "Poller", "grant_types": ["client_credentials"]})).await;
    let client = CoreClient::from_provider_metadata(
        discover(&app, &t).await,
        ClientId::new(id),
        Some(ClientSecret::new(secret.unwrap())),
    );
    let mut access = Vec::new();
    for _ in 0..3 {
        let tokens = client.exchange_client_credentials().unwrap().request_async(&http()).await.unwrap();
        assert!(tokens.refresh_token().is_none(), "RFC 6749 §4.4.3: no refresh token");
        access.push(tokens.access_token().secret().clone());
    }
    assert_eq!(access.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "each grant is a new token");
    for token in &access {
        let (status, me) = app.get_me(token).await;
        assert_eq!((status, me["active_sessions"].as_i64()), (StatusCode::OK, Some(1)), "grants pile up sessions");
    }

    // Revoking one of them ends the session, so every token issued on it.
    let revoked = app.post_form(format!("{}/revoke", issuer(&app, &t)), None, &[("token", &access[0])]).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    for token in &access {
        assert_eq!(app.get_me(token).await.0, StatusCode::UNAUTHORIZED);
    }
    let tokens = client.exchange_client_credentials().unwrap().request_async(&http()).await.unwrap();
    let (status, me) = app.get_me(tokens.access_token().secret()).await;
    assert_eq!((status, me["active_sessions"].as_i64()), (StatusCode::OK, Some(1)));
}

/// An authorization request by hand, approved through the forms; returns the code.
async fn code_for(app: &TestApp, t: &Tenant, client_id: &str, challenge: Option<&str>, login: &str) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "s1"),
    ];
    if let Some(c) = challenge {
        params.push(("code_challenge", c));
        params.push(("code_challenge_method", "S256"));
    }
    let back = approve(app, &FormClient::new(&app.base), &authorize_url(app, t, &params), login, None).await;
    query_param(&back, "code").unwrap()
}

fn challenge_of(verifier: &str) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

async fn redeem(
    app: &TestApp,
    t: &Tenant,
    id: &str,
    secret: &str,
    code: &str,
    verifier: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    body(app.post_form(format!("{}/token", issuer(app, t)), Some((id, secret)), &form).await).await
}

#[tokio::test]
async fn codes_are_single_use_bound_to_the_verifier_and_a_replay_revokes_what_they_issued() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    app.sign_up(&t, "ada@example.com").await;
    let (id, secret) = confidential(&app, &t).await;
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789";
    let challenge = challenge_of(verifier);

    // A wrong verifier, and none at all, are refused.
    let code = code_for(&app, &t, &id, Some(&challenge), "ada@example.com").await;
    let (status, v) =
        redeem(&app, &t, &id, &secret, &code, Some("the-wrong-verifier-but-long-enough-to-be-well-formed-xx")).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let code = code_for(&app, &t, &id, Some(&challenge), "ada@example.com").await;
    let (status, v) = redeem(&app, &t, &id, &secret, &code, None).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));

    // The right one works once; the replay fails and revokes the tokens of the first.
    let code = code_for(&app, &t, &id, Some(&challenge), "ada@example.com").await;
    let (status, first) = redeem(&app, &t, &id, &secret, &code, Some(verifier)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(app.get_me(access).await.0, StatusCode::OK);
    let (status, v) = redeem(&app, &t, &id, &secret, &code, Some(verifier)).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert_eq!(app.get_me(access).await.0, StatusCode::UNAUTHORIZED, "the replay revoked the first tokens");
    let token_url = format!("{}/token", issuer(&app, &t));
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", first["refresh_token"].as_str().unwrap())];
    let res = app.post_form(&token_url, Some((&id, &secret)), &refresh).await;
    assert_eq!(body(res).await.1["error"], "invalid_grant");

    // Another client cannot redeem the code; a wrong redirect URI neither.
    let (other, other_secret) = confidential(&app, &t).await;
    let code = code_for(&app, &t, &id, None, "ada@example.com").await;
    assert_eq!(redeem(&app, &t, &other, &other_secret, &code, None).await.1["error"], "invalid_grant");
    let code = code_for(&app, &t, &id, None, "ada@example.com").await;
    let elsewhere =
        [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://127.0.0.1:9/other")];
    let res = app.post_form(&token_url, Some((&id, &secret)), &elsewhere).await;
    assert_eq!(body(res).await.1["error"], "invalid_grant");
    // Nor the right client with a wrong secret.
    let code = code_for(&app, &t, &id, None, "ada@example.com").await;
    let (status, v) = redeem(&app, &t, &id, "tsr_cs_wrong", &code, None).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));

    // Codes expire after a minute.
    let code = code_for(&app, &t, &id, None, "ada@example.com").await;
    app.advance(chrono::Duration::seconds(61));
    assert_eq!(redeem(&app, &t, &id, &secret, &code, None).await.1["error"], "invalid_grant");
}

#[tokio::test]
async fn the_authorization_endpoint_never_redirects_to_an_unregistered_uri() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let (id, _) = confidential(&app, &t).await;
    let browser = FormClient::new(&app.base);
    let url = |params: &[(&str, &str)]| authorize_url(&app, &t, params);

    for bad in [
        url(&[("response_type", "code"), ("client_id", &id), ("redirect_uri", "https://evil.example/cb")]),
        url(&[("response_type", "code"), ("client_id", &id), ("redirect_uri", "http://127.0.0.1:9/callback/")]),
        url(&[("response_type", "code"), ("client_id", "tsr_ci_unknown"), ("redirect_uri", REDIRECT)]),
        url(&[("response_type", "code"), ("redirect_uri", REDIRECT)]),
        format!("{}/authorize?client_id={id}&client_id={id}&redirect_uri=x", issuer(&app, &t)),
    ] {
        let res = browser.get(&bad).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(res.headers.get("location").is_none());
    }
    // Once client and URI are good, errors go back to the client, with its state.
    let res = browser
        .get(&url(&[("response_type", "token"), ("client_id", &id), ("redirect_uri", REDIRECT), ("state", "xyz")]))
        .await;
    let loc = res.location(&app.base);
    assert_eq!(query_param(&loc, "error").as_deref(), Some("unsupported_response_type"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("xyz"));
    let res = browser
        .get(&url(&[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "plain"),
        ]))
        .await;
    assert_eq!(query_param(&res.location(&app.base), "error").as_deref(), Some("invalid_request"));
    // prompt=none without a signed-in user.
    let res = browser
        .get(&url(&[("response_type", "code"), ("client_id", &id), ("redirect_uri", REDIRECT), ("prompt", "none")]))
        .await;
    assert_eq!(query_param(&res.location(&app.base), "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn denying_consent_tells_the_client_access_denied() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    app.sign_up(&t, "ada@example.com").await;
    let (id, _) = confidential(&app, &t).await;
    let params = [("response_type", "code"), ("client_id", &id), ("redirect_uri", REDIRECT), ("state", "s")];
    let browser = FormClient::new(&app.base);
    let page = browser.get(&authorize_url(&app, &t, &params)).await;
    let csrf = page.input("csrf").unwrap();
    let return_to = page.input("return_to").unwrap();
    let signed = browser.sign_in(&format!("{}/sign-in", issuer(&app, &t)), &csrf, "ada@example.com", &return_to).await;
    let consent = browser.get(&signed.location(&app.base)).await;
    let done = browser
        .post(
            &format!("{}/authorize", issuer(&app, &t)),
            &[("csrf", &csrf), ("request", &consent.input("request").unwrap()), ("decision", "deny")],
        )
        .await;
    let loc = done.location(&app.base);
    assert!(loc.starts_with(REDIRECT));
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert!(query_param(&loc, "code").is_none());
}

#[tokio::test]
async fn the_hosted_sign_in_asks_for_the_totp_code_and_refuses_a_replayed_one() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let u = app.sign_up(&t, "ada@example.com").await;
    let secret = b"12345678901234567890";
    app.enable_totp(&u, secret).await;
    let (id, _) = confidential(&app, &t).await;
    let code_now =
        format!("{:06}", tessera_auth::totp::code_at(secret, tessera_auth::totp::step_of(app.clock.now_unix()), 6));
    let url = authorize_url(&app, &t, &[("response_type", "code"), ("client_id", &id), ("redirect_uri", REDIRECT)]);
    let back = approve(&app, &FormClient::new(&app.base), &url, "ada@example.com", Some(code_now.clone())).await;
    assert!(query_param(&back, "code").is_some(), "{back}");

    // The same code again, in another browser: refused, next to the field.
    let browser = FormClient::new(&app.base);
    let page = browser.get(&url).await;
    let csrf = page.input("csrf").unwrap();
    let step = browser.sign_in(&format!("{}/sign-in", issuer(&app, &t)), &csrf, "ada@example.com", "account").await;
    let again = browser
        .post(
            &format!("{}/sign-in/mfa", issuer(&app, &t)),
            &[
                ("csrf", &csrf),
                ("mfa_token", &step.input("mfa_token").unwrap()),
                ("code", &code_now),
                ("return_to", "account"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.text.contains("already used"), "{}", again.text);
    assert!(again.text.contains(r#"id="code-error""#));
    assert!(browser.cookie("tessera_session").is_none());
}

#[tokio::test]
async fn hosted_forms_need_their_csrf_token_and_set_hardened_cookies() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    app.sign_up(&t, "ada@example.com").await;
    let browser = FormClient::new(&app.base);
    let sign_in = format!("{}/sign-in", issuer(&app, &t));
    let page = browser.get(&format!("{sign_in}?return_to=account")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let csrf_cookie = page.headers["set-cookie"].to_str().unwrap();
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"), "{csrf_cookie}");
    assert!(csrf_cookie.contains(&format!("Path=/oidc/{}", t.id)));

    // A forged post (no token, or another token) is refused and signs nobody in.
    let res = browser.sign_in(&sign_in, "", "ada@example.com", "account").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res =
        browser.sign_in(&sign_in, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "ada@example.com", "account").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(browser.cookie("tessera_session").is_none());
    // A fresh browser without the cookie cannot post either.
    let stranger = FormClient::new(&app.base);
    let token = page.input("csrf").unwrap();
    let res = stranger
        .post(&sign_in, &[("csrf", token.as_str()), ("email", "ada@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    // A wrong password is shown on the page; the right one sets the session cookie.
    let res = browser
        .post(
            &sign_in,
            &[("csrf", token.as_str()), ("email", "ada@example.com"), ("password", "nope"), ("return_to", "account")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.text.contains("not right"));
    let res = browser.sign_in(&sign_in, &token, "ada@example.com", "https://evil.example/").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(&app.base), format!("{}/account", issuer(&app, &t)), "return_to cannot leave the issuer");
    let session_cookie = res.headers["set-cookie"].to_str().unwrap();
    assert!(session_cookie.starts_with("tessera_session=") && session_cookie.contains("HttpOnly"));
    let account = browser.get(&format!("{}/account", issuer(&app, &t))).await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.text.contains("ada@example.com"));
}

#[tokio::test]
async fn the_account_page_changes_the_password_and_deletes_the_account_through_its_forms() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let api = app.sign_up(&t, "ada@example.com").await;
    let browser = FormClient::new(&app.base);
    let base = issuer(&app, &t);
    let page = browser.get(&format!("{base}/sign-in?return_to=account")).await;
    let csrf = page.input("csrf").unwrap();
    browser.sign_in(&format!("{base}/sign-in"), &csrf, "ada@example.com", "account").await;

    // Field errors are shown next to the field; nothing changes.
    let res =
        browser.post(&format!("{base}/account/profile"), &[("csrf", &csrf), ("display_name", &"x".repeat(300))]).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.text.contains(r#"id="display_name-error""#), "{}", res.text);
    let res = browser.post(&format!("{base}/account/profile"), &[("csrf", &csrf), ("display_name", "Ada")]).await;
    assert_eq!(res.location(&app.base), format!("{base}/account?done=profile"));
    assert_eq!(app.get_me(&api.access).await.1["display_name"], "Ada");

    let new_password = "a much better passphrase 42";
    let res = browser
        .post(
            &format!("{base}/account/password"),
            &[("csrf", &csrf), ("current_password", "wrong"), ("new_password", new_password)],
        )
        .await;
    assert!(res.text.contains(r#"id="current_password-error""#));
    let res = browser
        .post(
            &format!("{base}/account/password"),
            &[("csrf", &csrf), ("current_password", PASSWORD), ("new_password", new_password)],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(app.get_me(&api.access).await.0, StatusCode::UNAUTHORIZED, "other sessions end with a password change");
    assert_eq!(app.sign_in(&t.id, "ada@example.com", new_password).await.0, StatusCode::OK);

    let res = browser.post(&format!("{base}/account/delete"), &[("csrf", &csrf)]).await;
    assert!(res.text.contains(r#"id="confirm-error""#));
    let res = browser.post(&format!("{base}/account/delete"), &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.text.contains("scheduled for deletion"));
    assert!(browser.cookie("tessera_session").is_none());
    let res = browser.get(&format!("{base}/account")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "signed out");
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let parts: Vec<&str> = u.access.split('.').collect();
    let payload = parts[1];
    // alg none.
    let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#));
    assert_eq!(app.get_me(&none).await.0, StatusCode::UNAUTHORIZED);
    // HS256 keyed with the published public key (the classic confusion).
    let (_, jwks) = body(app.client.get(format!("{}/jwks", issuer(&app, &t))).send().await.unwrap()).await;
    let public = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
    use hmac::Mac;
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&public).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    let forged = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    assert_eq!(app.get_me(&forged).await.0, StatusCode::UNAUTHORIZED);
    // The real token works until it expires (plus the bounded skew).
    assert_eq!(app.get_me(&u.access).await.0, StatusCode::OK);
    app.advance(chrono::Duration::seconds(3600 + 31));
    assert_eq!(app.get_me(&u.access).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_token_requests_from_one_address_are_rate_limited() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"attempts_per_address_per_minute": 3}))).await;
    let (id, secret) = confidential(&app, &t).await;
    for _ in 0..3 {
        let (status, _) = redeem(&app, &t, &id, &secret, "tsr_ac_made_up", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let made_up = [("grant_type", "authorization_code"), ("code", "tsr_ac_made_up")];
    let res = app.post_form(format!("{}/token", issuer(&app, &t)), Some((&id, &secret)), &made_up).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    assert_eq!(body(res).await.1["error"], "slow_down");
    app.advance(chrono::Duration::seconds(61));
    assert_eq!(redeem(&app, &t, &id, &secret, "tsr_ac_made_up", None).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oauth_clients_are_validated_listed_and_deleted_by_the_server() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let bad = json!({"name": "", "redirect_uris": ["http://example.com/cb", "https://ok.example/cb#x"], "grant_types": ["implicit"]});
    let (status, v) = create_client(&app, &t, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut fields = field_codes(&v);
    fields.sort();
    assert_eq!(
        fields,
        [
            "grant_types[0]:unsupported_grant_type",
            "name:too_short",
            "redirect_uris[0]:invalid_redirect_uri",
            "redirect_uris[1]:invalid_redirect_uri"
        ],
        "{v}"
    );
    let public_machine = json!({"name": "SPA", "grant_types": ["client_credentials"], "public": true});
    let (status, v) = create_client(&app, &t, public_machine).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["grant_types:not_allowed".to_owned()]));

    let (id, _) = confidential(&app, &t).await;
    let (status, list) = app.server(Method::GET, &t, "/v1/oauth/clients", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("client_secret").is_none(), "secrets are shown only at creation");
    let other = app.tenant().await;
    let (status, _) = app.server(Method::DELETE, &other, &format!("/v1/oauth/clients/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not across tenants");
    let (status, _) = app.server(Method::DELETE, &t, &format!("/v1/oauth/clients/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let url = format!("{}/authorize?response_type=code&client_id={id}&redirect_uri={REDIRECT}", issuer(&app, &t));
    assert_eq!(
        FormClient::new(&app.base).get(&url).await.status,
        StatusCode::BAD_REQUEST,
        "a deleted client is unknown"
    );
}

#[tokio::test]
async fn another_tenants_clients_and_codes_reach_nothing() {
    let app = spawn_app().await;
    let a = app.tenant().await;
    let b = app.tenant().await;
    app.sign_up(&a, "ada@example.com").await;
    app.sign_up(&b, "ada@example.com").await;
    let (id, secret) = confidential(&app, &a).await;
    // A's client is unknown at B's issuer, for authorization and for tokens.
    let url = format!("{}/authorize?response_type=code&client_id={id}&redirect_uri={REDIRECT}", issuer(&app, &b));
    assert_eq!(FormClient::new(&app.base).get(&url).await.status, StatusCode::BAD_REQUEST);
    let (status, v) = redeem(&app, &b, &id, &secret, "tsr_ac_whatever", None).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    // A code issued at A cannot be redeemed at B, even by a client of B.
    let code = code_for(&app, &a, &id, None, "ada@example.com").await;
    let (b_id, b_secret) = confidential(&app, &b).await;
    assert_eq!(redeem(&app, &b, &b_id, &b_secret, &code, None).await.1["error"], "invalid_grant");
    // B's browser session is not A's: signed in at A, the account page of B asks to sign in.
    let browser = FormClient::new(&app.base);
    let page = browser.get(&format!("{}/sign-in?return_to=account", issuer(&app, &a))).await;
    let csrf = page.input("csrf").unwrap();
    browser.sign_in(&format!("{}/sign-in", issuer(&app, &a)), &csrf, "ada@example.com", "account").await;
    assert_eq!(browser.get(&format!("{}/account", issuer(&app, &a))).await.status, StatusCode::OK);
    assert_eq!(browser.get(&format!("{}/account", issuer(&app, &b))).await.status, StatusCode::SEE_OTHER);
    // B's server key sees none of A's clients.
    let (_, list) = app.server(Method::GET, &b, "/v1/oauth/clients", None).await;
    assert!(list.as_array().unwrap().iter().all(|c| c["client_id"] != id.as_str()));
}
