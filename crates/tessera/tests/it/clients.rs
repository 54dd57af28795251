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
