//! Passkeys over HTTP with a software authenticator (webauthn-authenticator-rs's CTAP2 soft
//! token, which signs with real keys): registration, sign-in without a username, the second
//! factor, and the ceremonies' refusals (replays, wrong origin and RP ID, another user's or
//! tenant's credential, a cloned authenticator whose counter goes backwards).
//!
//! The test is the browser here: it writes `clientDataJSON` with the origin it is "on" and
//! hands its hash to the token, as a browser does. The soft token keeps no resident keys, so
//! for a username-less sign-in the test names the credential to it and returns the user
//! handle itself, which is what a discoverable authenticator does (the handle is not signed).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use webauthn_authenticator_rs::AuthenticatorBackendHashedClientData;
use webauthn_authenticator_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};
use webauthn_authenticator_rs::softtoken::SoftToken;

use crate::helpers::*;

/// An authenticator and the browser it is used from.
pub(crate) struct Authenticator {
    token: SoftToken,
    origin: String,
}

impl Authenticator {
    /// One that can verify its user (a PIN, say) when asked to.
    pub(crate) fn new(origin: &str) -> Self {
        let (token, _) = SoftToken::new(true).unwrap();
        Self { token, origin: origin.to_owned() }
    }

    /// Another device holding the same keys and counter: a clone.
    fn copy(&self) -> Self {
        Self { token: SoftToken::from_cbor(&self.token.to_cbor().unwrap()).unwrap(), origin: self.origin.clone() }
    }

    fn client_data(&self, kind: &str, challenge: &Value) -> (Vec<u8>, Vec<u8>) {
        let data = json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false});
        let bytes = data.to_string().into_bytes();
        (Sha256::digest(&bytes).to_vec(), bytes)
    }

    /// `navigator.credentials.create(options)`: the credential as JSON.
    fn create(&mut self, options: &Value) -> Value {
        let mut options = options.clone();
        // The soft token stores no resident keys and refuses to be asked for one.
        options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(false);
        let (hash, data) = self.client_data("webauthn.create", &options["publicKey"]["challenge"]);
        let ccr: CreationChallengeResponse = serde_json::from_value(options).unwrap();
        let mut cred = self.token.perform_register(hash, ccr.public_key, 60_000).unwrap();
        cred.response.client_data_json = data;
        serde_json::to_value(&cred).unwrap()
    }

    /// `navigator.credentials.get(options)` with the credential `id` of user `user`, verifying
    /// the user (`uv`) or not.
    fn get(&mut self, options: &Value, id: &str, user: &str, uv: bool) -> Value {
        let mut options = options.clone();
        let pk = &mut options["publicKey"];
        if pk["allowCredentials"].as_array().is_none_or(Vec::is_empty) {
            pk["allowCredentials"] = json!([{"type": "public-key", "id": id}]);
        }
        pk["userVerification"] = json!(if uv { "required" } else { "discouraged" });
        let (hash, data) = self.client_data("webauthn.get", &pk["challenge"]);
        let rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
        let mut cred = self.token.perform_auth(hash, rcr.public_key, 60_000).unwrap();
        cred.response.client_data_json = data;
        cred.response.user_handle = Some(uuid::Uuid::parse_str(user).unwrap().as_bytes().to_vec());
        serde_json::to_value(&cred).unwrap()
    }
}

/// The origin the app's pages are on, as a browser sees it.
pub(crate) fn origin(app: &TestApp) -> String {
    app.base.replace("127.0.0.1", "localhost")
}

/// Registers a passkey for `u`; its API view and credential id.
pub(crate) async fn register(
    app: &TestApp,
    u: &SignedIn,
    auth: &mut Authenticator,
    name: Option<&str>,
) -> (Value, String) {
    let (status, begun) = body(app.send(Method::POST, "/v1/me/passkeys/registration", &u.access, None).await).await;
    assert_eq!(status, StatusCode::OK, "{begun}");
    let credential = auth.create(&begun["options"]);
    let id = credential["id"].as_str().unwrap().to_owned();
    let req = json!({"registration_id": begun["registration_id"], "name": name, "credential": credential});
    let (status, added) = body(app.send(Method::POST, "/v1/me/passkeys", &u.access, Some(req)).await).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    (added, id)
}

/// `POST /v1/auth/passkey/options`, for a username-less sign-in or (with `mfa_token`) the
/// second step.
async fn options(app: &TestApp, tenant: &str, mfa_token: Option<&str>) -> Value {
    let req = mfa_token.map_or(json!({}), |t| json!({"mfa_token": t}));
    let (status, v) = body(app.send_for_tenant(Method::POST, "/v1/auth/passkey/options", tenant, req).await).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

async fn answer(app: &TestApp, tenant: &str, challenge: &Value, credential: &Value) -> (StatusCode, Value) {
    let req = json!({"challenge_id": challenge, "credential": credential});
    body(app.send_for_tenant(Method::POST, "/v1/auth/passkey", tenant, req).await).await
}

/// A whole username-less sign-in with `auth`'s credential `id` of user `u`.
async fn sign_in(app: &TestApp, u: &SignedIn, auth: &mut Authenticator, id: &str, uv: bool) -> (StatusCode, Value) {
    let begun = options(app, &u.tenant, None).await;
    let credential = auth.get(&begun["options"], id, &u.id, uv);
    answer(app, &u.tenant, &begun["challenge_id"], &credential).await
}

#[tokio::test]
async fn a_passkey_is_registered_renamed_used_without_a_username_and_removed() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let mut auth = Authenticator::new(&origin(&app));

    let (status, begun) = body(app.send(Method::POST, "/v1/me/passkeys/registration", &u.access, None).await).await;
    assert_eq!(status, StatusCode::OK);
    let pk = &begun["options"]["publicKey"];
    assert_eq!(pk["rp"]["id"], "localhost");
    assert_eq!(pk["user"]["id"], B64.encode(uuid::Uuid::parse_str(&u.id).unwrap().as_bytes()));
    assert_eq!(pk["user"]["name"], "ada@example.com");
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "preferred");

    let (added, id) = register(&app, &u, &mut auth, Some("Work laptop")).await;
    assert_eq!(added["name"], "Work laptop");
    assert!(added["last_used_at"].is_null());
    let (_, list) = body(app.send(Method::GET, "/v1/me/passkeys", &u.access, None).await).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    // A second registration of the same authenticator's credential is refused by the options
    // (excluded) and by the store.
    let (_, again) = body(app.send(Method::POST, "/v1/me/passkeys/registration", &u.access, None).await).await;
    assert_eq!(again["options"]["publicKey"]["excludeCredentials"][0]["id"], id.as_str());

    let path = format!("/v1/me/passkeys/{}", added["id"].as_str().unwrap());
    let (status, renamed) = body(app.send(Method::PATCH, &path, &u.access, Some(json!({"name": "Phone"}))).await).await;
    assert_eq!((status, renamed["name"].as_str()), (StatusCode::OK, Some("Phone")));
    let (status, v) = body(app.send(Method::PATCH, &path, &u.access, Some(json!({"name": ""}))).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_codes(&v), ["name:too_short"]);

    // No username, no password: the passkey alone, with the user verified.
    let (status, signed) = sign_in(&app, &u, &mut auth, &id, true).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(signed["user"]["id"], u.id.as_str());
    let access = signed["access_token"].as_str().unwrap();
    assert_eq!(app.get_me(access).await.0, StatusCode::OK);
    let (_, list) = body(app.send(Method::GET, "/v1/me/passkeys", &u.access, None).await).await;
    assert!(list[0]["last_used_at"].is_string());

    // The trail says how: the passkey added, and a session started by `passkey`.
    let (_, trail) = body(app.send(Method::GET, "/v1/me/activity", &u.access, None).await).await;
    let entries = trail["items"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["type"] == "user.passkey_added" && e["details"]["passkey"]["name"] == "Work laptop")
    );
    assert!(entries.iter().any(|e| e["type"] == "session.created" && e["details"]["method"] == "passkey"));

    // The export holds what the passkey is called and when it was used, never its key.
    let res = app.send(Method::GET, "/v1/me/export", &u.access, None).await;
    let text = res.text().await.unwrap();
    let export: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(export["passkeys"][0]["name"], "Phone");
    assert!(!text.contains(&id) && !text.contains("cred") && !text.contains("EC_EC2"), "{text}");

    let (status, _) = body(app.send(Method::DELETE, &path, &u.access, None).await).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, v) = sign_in(&app, &u, &mut auth, &id, true).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a removed passkey signs no one in: {v}");
    let (_, trail) = body(app.send(Method::GET, "/v1/me/activity", &u.access, None).await).await;
    assert!(trail["items"].as_array().unwrap().iter().any(|e| e["type"] == "user.passkey_removed"));
}

#[tokio::test]
async fn passkey_ceremonies_refuse_replays_wrong_origins_and_rp_ids_and_others_credentials() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let other = app.sign_up(&t, "grace@example.com").await;
    let mut auth = Authenticator::new(&origin(&app));
    let (_, id) = register(&app, &u, &mut auth, None).await;
    let mut grace_auth = Authenticator::new(&origin(&app));
    let (_, grace_id) = register(&app, &other, &mut grace_auth, None).await;

    // An assertion sent twice: the challenge is used up by the first.
    let begun = options(&app, &u.tenant, None).await;
    let credential = auth.get(&begun["options"], &id, &u.id, true);
    assert_eq!(answer(&app, &u.tenant, &begun["challenge_id"], &credential).await.0, StatusCode::OK);
    let (status, v) = answer(&app, &u.tenant, &begun["challenge_id"], &credential).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a replayed assertion: {v}");
    // A fresh assertion on a used challenge is refused too.
    let fresh = auth.get(&begun["options"], &id, &u.id, true);
    assert_eq!(answer(&app, &u.tenant, &begun["challenge_id"], &fresh).await.0, StatusCode::UNAUTHORIZED);

    // From a page on another origin.
    let mut phished = Authenticator { token: auth.copy().token, origin: "http://evil.localhost:1".into() };
    let (status, v) = sign_in(&app, &u, &mut phished, &id, true).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a wrong origin: {v}");

    // Signed for another RP ID.
    let begun = options(&app, &u.tenant, None).await;
    let mut opts = begun["options"].clone();
    opts["publicKey"]["rpId"] = json!("evil.example");
    let credential = auth.get(&opts, &id, &u.id, true);
    let (status, v) = answer(&app, &u.tenant, &begun["challenge_id"], &credential).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a wrong RP ID: {v}");

    // Grace's credential, claimed for Ada's account, and Ada's registration answered by Grace.
    let begun = options(&app, &u.tenant, None).await;
    let credential = grace_auth.get(&begun["options"], &grace_id, &u.id, true);
    assert_eq!(answer(&app, &u.tenant, &begun["challenge_id"], &credential).await.0, StatusCode::UNAUTHORIZED);
    let (_, ada_reg) = body(app.send(Method::POST, "/v1/me/passkeys/registration", &u.access, None).await).await;
    let credential = grace_auth.create(&ada_reg["options"]);
    let req = json!({"registration_id": ada_reg["registration_id"], "credential": credential});
    let (status, v) = body(app.send(Method::POST, "/v1/me/passkeys", &other.access, Some(req)).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another user's registration: {v}");

    // A passkey of another tenant is not one of this tenant's.
    let t2 = app.tenant().await;
    let begun = options(&app, &t2.id, None).await;
    let credential = auth.get(&begun["options"], &id, &u.id, true);
    let (status, v) = answer(&app, &t2.id, &begun["challenge_id"], &credential).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another tenant's passkey: {v}");
    let begun = options(&app, &t2.id, None).await;
    let credential = auth.get(&begun["options"], &id, &u.id, true);
    let (status, _) = answer(&app, &u.tenant, &begun["challenge_id"], &credential).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a ceremony of another tenant: tenant_mismatch");

    // Not a credential at all names the field.
    let begun = options(&app, &u.tenant, None).await;
    let (status, v) = answer(&app, &u.tenant, &begun["challenge_id"], &json!({"id": "x"})).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["credential:invalid".to_owned()]));

    // A challenge lives five minutes.
    let begun = options(&app, &u.tenant, None).await;
    let credential = auth.get(&begun["options"], &id, &u.id, true);
    app.advance(chrono::Duration::seconds(301));
    let (status, v) = answer(&app, &u.tenant, &begun["challenge_id"], &credential).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an expired challenge: {v}");

    // An erased user's passkeys went with the account.
    let (status, _) = app.server(Method::DELETE, &t, &format!("/v1/users/{}", other.id), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = sign_in(&app, &other, &mut grace_auth, &grace_id, true).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an erased user's passkey");

    // A suspended user's passkey opens nothing.
    let suspend = json!({"reason": "investigation"});
    let (status, _) = app.server(Method::POST, &t, &format!("/v1/users/{}/suspensions", u.id), Some(suspend)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, v) = sign_in(&app, &u, &mut auth, &id, true).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("suspended")), "{v}");
}

#[tokio::test]
async fn a_cloned_passkey_whose_counter_goes_backwards_is_refused_and_recorded() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let mut auth = Authenticator::new(&origin(&app));
    let (_, id) = register(&app, &u, &mut auth, None).await;
    let mut clone = auth.copy();
    assert_eq!(sign_in(&app, &u, &mut auth, &id, true).await.0, StatusCode::OK);
    assert_eq!(sign_in(&app, &u, &mut auth, &id, true).await.0, StatusCode::OK);
    // The clone's counter is behind the original's.
    let (status, v) = sign_in(&app, &u, &mut clone, &id, true).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert!(v["message"].as_str().unwrap().contains("counter went backwards"), "{v}");
    let (_, trail) = body(app.send(Method::GET, "/v1/me/activity", &u.access, None).await).await;
    let failed = trail["items"].as_array().unwrap().iter().find(|e| e["type"] == "sign_in.failed").cloned();
    assert_eq!(failed.unwrap()["details"]["reason"], "counter_went_backwards");
    // The original goes on working.
    assert_eq!(sign_in(&app, &u, &mut auth, &id, true).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_passkey_is_a_second_factor_and_one_that_did_not_verify_the_user_asks_for_another() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let mut auth = Authenticator::new(&origin(&app));
    let (_, id) = register(&app, &u, &mut auth, None).await;
    app.enable_totp(&u, b"12345678901234567890").await;

    // After the password, the challenge offers the passkey beside the codes.
    let (status, v) = app.sign_in(&u.tenant, &u.email, PASSWORD).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("mfa_required")));
    assert_eq!(v["details"]["methods"], json!(["totp", "recovery_code", "passkey"]));
    let mfa_token = v["details"]["mfa_token"].as_str().unwrap();
    let begun = options(&app, &u.tenant, Some(mfa_token)).await;
    assert_eq!(begun["options"]["publicKey"]["allowCredentials"][0]["id"], id.as_str());
    // Without user verification: the passkey is the second factor, the password the first.
    let credential = auth.get(&begun["options"], &id, &u.id, false);
    let (status, signed) = answer(&app, &u.tenant, &begun["challenge_id"], &credential).await;
    assert_eq!(status, StatusCode::OK, "{signed}");

    // Alone, a passkey that did not verify the user is one factor: the account asks for its
    // second; one that did is both.
    let (status, v) = sign_in(&app, &u, &mut auth, &id, false).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("mfa_required")), "{v}");
    assert_eq!(v["details"]["methods"], json!(["totp", "recovery_code"]));
    let (status, v) = sign_in(&app, &u, &mut auth, &id, true).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    let (_, trail) = body(app.send(Method::GET, "/v1/me/activity", &u.access, None).await).await;
    let methods: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "session.created")
        .filter_map(|e| e["details"]["method"].as_str())
        .collect();
    assert_eq!(methods[..2], ["passkey", "password+passkey"]);
}

#[tokio::test]
async fn a_public_url_whose_host_cannot_be_an_rp_id_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    let load = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        tessera::config::Settings::load(Some(&file), &tessera::config::Overrides::default())
    };
    let err = load("public_url = \"http://10.0.0.5:8080\"\n").unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("cannot be a WebAuthn RP ID") && err.contains("TESSERA_WEBAUTHN__RP_ID"), "{err}");
    // Told where the RP ID is, the same URL works; an origin off the RP ID does not.
    let told = "public_url = \"http://10.0.0.5:8080\"\n[webauthn]\nrp_id = \"example.com\"\n";
    assert!(load(&format!("{told}origins = [\"https://login.example.com\"]\n")).is_ok());
    let err = format!("{:#}", load(&format!("{told}origins = \"https://example.org\"\n")).unwrap_err());
    assert!(err.contains("not on the RP ID"), "{err}");
}

#[tokio::test]
async fn passkey_sign_ins_count_against_the_same_limits_as_passwords() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let mut auth = Authenticator::new(&origin(&app));
    let (_, id) = register(&app, &u, &mut auth, None).await;
    let (status, _) =
        app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"attempts_per_address_per_minute": 3}))).await;
    assert_eq!(status, StatusCode::OK);
    // A password attempt and two passkey sign-ins from this address use up the minute's three.
    assert_eq!(app.sign_in(&t.id, &u.email, "wrong password").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&app, &u, &mut auth, &id, true).await.0, StatusCode::OK);
    assert_eq!(sign_in(&app, &u, &mut auth, &id, true).await.0, StatusCode::OK);
    let (status, v) = sign_in(&app, &u, &mut auth, &id, true).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")), "{v}");
    app.advance(chrono::Duration::seconds(61));
    assert_eq!(sign_in(&app, &u, &mut auth, &id, true).await.0, StatusCode::OK);
}
