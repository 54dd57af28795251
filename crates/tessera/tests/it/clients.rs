//! Real client libraries against Tessera, installed by `scripts/client-libs`: a JWT library
//! without EdDSA verifies the tokens of a tenant set to RS256 or ES256.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// python-jose, which has no EdDSA: it checks the signature against the key the JWKS lists for
/// the token's `kid`, and the audience, issuer and expiry. Prints the subject.
const JOSE_VERIFY: &str = r#"
import json, sys
from jose import jwt
token, jwks, audience, issuer, alg = sys.argv[1:6]
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in json.loads(jwks)["keys"] if k["kid"] == kid)
print(jwt.decode(token, key, algorithms=[alg], audience=audience, issuer=issuer)["sub"])
"#;

async fn get_json(app: &TestApp, path: &str) -> Value {
    app.client.get(app.url(path)).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_jwt_library_without_eddsa_verifies_the_tokens_of_an_rs256_or_es256_tenant() {
    let python = client_lib("CLIENT_LIBS_PYTHON");
    let app = spawn_app().await;
    let (t, before) = app.user().await;
    let issuer = format!("{}/oidc/{}", app.base, t.id);
    for alg in ["RS256", "ES256"] {
        let (status, v) = app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"signing_algorithm": alg}))).await;
        assert_eq!((status, v["signing_algorithm"].as_str()), (StatusCode::OK, Some(alg)), "{v}");
        let u = app.sign_in_as(&t.id, "ada@example.com").await;
        let header = jwt_part(&u.access, 0);
        assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some(alg), Some("at+jwt")));

        let jwks = get_json(&app, &format!("/oidc/{}/jwks", t.id)).await;
        let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).unwrap().clone();
        assert_eq!(key["kty"], if alg == "RS256" { "RSA" } else { "EC" });
        assert!(key.get("d").is_none(), "no private part is published");
        let out = std::process::Command::new(&python)
            .args(["-c", JOSE_VERIFY, &u.access, &jwks.to_string(), &issuer, &issuer, alg])
            .output()
            .unwrap();
        assert!(out.status.success(), "python-jose refused the token: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), u.id);

        assert_eq!(app.get_me(&u.access).await.0, StatusCode::OK);
        let discovery = get_json(&app, &format!("/oidc/{}/.well-known/openid-configuration", t.id)).await;
        assert_eq!(discovery["id_token_signing_alg_values_supported"], json!([alg]));
    }
    // Tokens signed before a change keep working until they expire.
    assert_eq!(app.get_me(&before.access).await.0, StatusCode::OK);
}

/// `stack_sdk.mjs` with one installed release of Stack's SDK: every call a Stack app makes
/// through it, against a fresh tenant, and the known errors it must recognise.
async fn drive_stack_sdk(sdk_dir: &str) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let app = spawn_app().await;
    let (t, ada) = app.user().await;
    let totp_user = app.sign_up(&t, "totp@example.com").await;
    let secret = b"stack-sdk-totp-secret";
    app.enable_totp(&totp_user, secret).await;
    let mut teams = Vec::new();
    for name in ["Core", "Elsewhere"] {
        let (_, team) = app.server(Method::POST, &t, "/v1/teams", Some(json!({"display_name": name}))).await;
        teams.push(team["id"].as_str().unwrap().to_owned());
    }
    app.server(Method::PUT, &t, &format!("/v1/teams/{}/members/{}", teams[0], ada.id), None).await;
    let suspended = app.sign_up(&t, "suspended@example.com").await;
    let path = format!("/v1/users/{}/suspensions", suspended.id);
    app.server(Method::POST, &t, &path, Some(json!({"reason": "chargeback"}))).await;
    let other = app.tenant().await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/stack_sdk.mjs");
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(secret)
    };
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .envs([
            ("SDK_DIR", sdk_dir),
            ("BASE", &app.url("/compat/stack-auth")),
            ("PROJECT_ID", &t.id),
            ("PUBLISHABLE_KEY", &t.publishable_key),
            ("SECRET_KEY", &t.server_key),
            ("EMAIL", "ada@example.com"),
            ("PASSWORD", PASSWORD),
            ("TEAM_ID", &teams[0]),
            ("OTHER_TEAM_ID", &teams[1]),
            ("TOTP_EMAIL", "totp@example.com"),
            ("TOTP_SECRET_BASE64", &b64),
            ("SUSPENDED_EMAIL", "suspended@example.com"),
            ("OTHER_PROJECT_ID", &other.id),
            ("OTHER_PUBLISHABLE_KEY", &other.publishable_key),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "expire" {
                // Past the access token's lifetime (15 minutes), well inside the session's.
                app.advance(chrono::Duration::minutes(20));
                stdin.write_all(b"go\n").await.unwrap();
            }
            seen.push(line);
        }
        child.wait_with_output().await.unwrap()
    };
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run).await.expect("the SDK run ends");
    assert!(
        out.status.success() && seen.last().map(String::as_str) == Some("ok"),
        "{sdk_dir}: {}\n{}",
        seen.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn stack_s_own_sdk_works_unmodified_at_its_oldest_and_newest_supported_release() {
    let sdks = client_lib("CLIENT_LIBS_STACK_SDKS");
    let sdks: Vec<&str> = sdks.split(',').collect();
    assert_eq!(sdks.len(), 2, "2.8.102 and the newest release");
    for sdk in sdks {
        drive_stack_sdk(sdk).await;
    }
}

/// Sign-in through an OpenID provider Tessera did not write: `oidc-provider` (Node), with its
/// own sign-in and consent pages, its own keys (RS256) and its own checks of Tessera's
/// client authentication and PKCE.
#[tokio::test]
async fn a_sign_in_through_an_openid_provider_tessera_did_not_write() {
    let op_dir = client_lib("CLIENT_LIBS_OIDC_PROVIDER");
    let app = spawn_app().await;
    let t = app.tenant().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let callback = app.url(&format!("/oidc/{}/federation/op/callback", t.id));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/oidc_provider.mjs");
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .envs([
            ("OP_DIR", op_dir.as_str()),
            ("PORT", &port.to_string()),
            ("REDIRECT", &callback),
            ("CLIENT_ID", "tessera"),
            ("CLIENT_SECRET", "tessera-secret-at-the-provider"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"));
    let issuer = format!("http://127.0.0.1:{port}");
    let provider = json!({"slug": "op", "kind": "oidc", "display_name": "Elsewhere", "client_id": "tessera",
        "client_secret": "tessera-secret-at-the-provider", "issuer": issuer});
    let (status, p) = app.server(Method::POST, &t, "/v1/identity-providers", Some(provider)).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");

    let browser = FormClient::new(&app.base);
    let go = browser.get(&format!("/oidc/{}/federation/op/start?return_to=account", t.id)).await;
    let to_provider = go.location(&app.base);
    assert!(to_provider.starts_with(&format!("{issuer}/auth?")), "{to_provider}");
    // The provider's development pages: sign in as any account id, then consent.
    let mut next = browser.get(&to_provider).await.location(&issuer);
    let mut answered = None;
    for _ in 0..8 {
        if next.starts_with(&callback) {
            answered = Some(next.clone());
            break;
        }
        let page = browser.get(&next).await;
        next = if page.status.is_redirection() {
            page.location(&issuer)
        } else {
            let form = if page.text.contains(r#"name="login""#) {
                vec![("prompt", "login"), ("login", "octavia")]
            } else {
                vec![("prompt", "consent")]
            };
            browser.post(&next, &form).await.location(&issuer)
        };
    }
    let answered = answered.expect("the provider sends the browser back");
    let done = browser.get(&answered).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let (_, users) = app.server(Method::GET, &t, "/v1/users", None).await;
    let u = &users["items"][0];
    assert_eq!((&u["oauth_provider"], &u["oauth_id"]), (&json!("op"), &json!("octavia")));
    assert_eq!((&u["primary_email"], &u["primary_email_verified"]), (&json!("octavia@op.example"), &json!(true)));
    assert_eq!(u["first_name"], json!("octavia"));
}
