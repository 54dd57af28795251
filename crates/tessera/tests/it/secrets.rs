//! Secrets never appear in a log line or in a response that is not the one meant to
//! deliver them. Every log line of the server (at debug level) is captured while a flow touches
//! each kind of secret, then searched.

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_a_response_that_should_not_carry_it() {
    // nextest runs each test in its own process, so this subscriber sees only this test.
    let logs = Captured::default();
    let writer = logs.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug,hyper=info,hyper_util=info,h2=info,reqwest=info,rustls=info")
        .with_writer(move || writer.clone())
        .try_init();

    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let mut responses: Vec<String> = Vec::new();
    let mut keep = |v: &Value| responses.push(v.to_string());

    let secure = "SECURE-METADATA-VALUE-42";
    keep(&app.update_user(&t, &u.id, json!({"secure_metadata": {"k": secure}})).await.1);
    let hook_secret = "whsec_c2VjcmV0LWhvb2sta2V5LWJ5dGVz";
    keep(&app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"pre_update_hook": {"url": "http://127.0.0.1:9/h", "secret": hook_secret, "fail_open": true, "timeout_ms": 200}}))).await.1);
    let totp = b"totp-secret-bytes-20";
    let totp_b64 = "dG90cC1zZWNyZXQtYnl0ZXMtMjA=";
    app.enable_totp(&u, totp).await;
    let (_, sa) = app.server(Method::POST, &t, "/v1/service-accounts", Some(json!({"username": "bot"}))).await;
    let client_secret = sa["client_secret"].as_str().unwrap().to_owned();
    let (status, challenge) = app.sign_in(&t.id, &u.email, PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    keep(&challenge);
    keep(&app.sign_in(&t.id, &u.email, "a wrong password entirely").await.1);
    keep(&app.get_me(&u.access).await.1);
    keep(&app.patch_me(&u.access, json!({"bio": "hello"})).await.1);
    keep(&body(app.send(Method::GET, "/v1/me/export", &u.access, None).await).await.1);
    keep(&app.server(Method::GET, &t, &format!("/v1/users/{}", u.id), None).await.1);
    keep(&app.server(Method::GET, &t, "/v1/users", None).await.1);
    keep(&app.server(Method::GET, &t, "/v1/settings", None).await.1);
    assert_eq!(app.refresh(&u.refresh).await.status(), StatusCode::OK);
    let res = app.refresh(&u.refresh).await;
    keep(&body(res).await.1);
    let replyke = format!("/compat/replyke/{}/users/{}", t.id, u.id);
    let update = json!({"update": {"secureMetadata": {"k": secure}}});
    let res = app.send(Method::PATCH, &replyke, &t.server_key, Some(update)).await;
    keep(&body(res).await.1);

    // An identity provider's client secret, through its creation, change and reads.
    let idp_secret = "identity-provider-client-secret-42";
    let idp = json!({"slug": "up", "kind": "oidc", "display_name": "Up", "client_id": "c", "client_secret": idp_secret,
        "issuer": app.url(&format!("/oidc/{}", t.id))});
    keep(&app.server(Method::POST, &t, "/v1/identity-providers", Some(idp)).await.1);
    keep(
        &app.server(Method::PATCH, &t, "/v1/identity-providers/up", Some(json!({"client_secret": idp_secret}))).await.1,
    );
    keep(&app.server(Method::GET, &t, "/v1/identity-providers", None).await.1);

    // The authorization-code flow: a password posted to a hosted form, the browser session
    // cookie, the code, the client secret, the tokens.
    let ben = app.sign_up(&t, "ben@example.com").await;
    let (oauth_id, oauth_secret) = crate::oauth::confidential(&app, &t).await;
    let browser = FormClient::new(&app.base);
    let authorize = format!(
        "{}/authorize?response_type=code&scope=openid%20email&client_id={oauth_id}&redirect_uri={}",
        app.url(&format!("/oidc/{}", t.id)),
        crate::oauth::REDIRECT
    );
    let back = crate::oauth::approve(&app, &browser, &authorize, &ben.email, None).await;
    let code = crate::oauth::query_param(&back, "code").unwrap();
    let cookie = browser.cookie("tessera_session").unwrap();
    let grant = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", crate::oauth::REDIRECT)];
    let res = app.post_form(app.url(&format!("/oidc/{}/token", t.id)), Some((&oauth_id, &oauth_secret)), &grant).await;
    let granted = body(res).await.1;
    let id_token = granted["id_token"].as_str().unwrap().to_owned();
    let account = browser.get(&app.url(&format!("/oidc/{}/account", t.id))).await;
    responses.push(account.text);

    // Mailed tokens: a verification link opened, a reset asked for and its link opened.
    let ask = json!({"email": u.email});
    assert_eq!(
        app.send_for_tenant(Method::POST, "/v1/auth/password-reset", &t.id, ask).await.status(),
        StatusCode::ACCEPTED
    );
    let mailed = mailed_tokens(&app, 3).await;
    for token in &mailed {
        browser.get(&app.url(&format!("/oidc/{}/verify-email?token={token}", t.id))).await;
        browser.get(&app.url(&format!("/oidc/{}/reset-password?token={token}", t.id))).await;
    }

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request"), "the capture works: {}", &logs[..logs.len().min(500)]);
    for (what, secret) in [
        ("password", PASSWORD),
        ("secure metadata", secure),
        ("hook secret", hook_secret),
        ("TOTP secret", totp_b64),
        ("client secret", client_secret.as_str()),
        ("server key", t.server_key.as_str()),
        ("root key", ROOT_KEY),
        ("refresh token", u.refresh.as_str()),
        ("access token", u.access.as_str()),
        ("password hash", "$argon2id$"),
        ("OAuth client secret", oauth_secret.as_str()),
        ("authorization code", code.as_str()),
        ("browser session cookie", cookie.as_str()),
        ("ID token", id_token.as_str()),
        ("identity provider's client secret", idp_secret),
        ("mailed token", mailed[0].as_str()),
        ("mailed token", mailed[1].as_str()),
        ("mailed token", mailed[2].as_str()),
    ] {
        assert!(!logs.contains(secret), "the {what} is in the logs");
        for r in &responses {
            assert!(!r.contains(secret), "the {what} is in a response: {r}");
        }
    }
}

/// The tokens of the first `n` messages written to the app's mail directory.
async fn mailed_tokens(app: &TestApp, n: usize) -> Vec<String> {
    for _ in 0..200 {
        let files: Vec<_> = std::fs::read_dir(app.mail_dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        if files.len() >= n {
            return files
                .iter()
                .map(|f| {
                    let data = std::fs::read_to_string(f).unwrap();
                    crate::smtp::Received { from: String::new(), to: Vec::new(), data }.link().1
                })
                .collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("expected {n} messages in the mail directory")
}
