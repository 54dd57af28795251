//! The pre-update validation hook against a real HTTP receiver started by the test: accepting,
//! refusing, hanging past the timeout (failing closed and open), answering garbage, and
//! checking the Standard Webhooks signature.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Copy)]
enum Mode {
    Accept,
    Refuse,
    Hang,
    Garbage,
    /// Accepts only when the signature verifies with this secret.
    Verify(&'static str),
}

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    calls: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.calls.lock().unwrap().push((headers.clone(), payload));
    let mode = *r.mode.lock().unwrap();
    match mode {
        Mode::Accept => axum::Json(json!({"valid": true})).into_response(),
        Mode::Refuse => {
            axum::Json(json!({"valid": false, "message": "bios may not mention competitors"})).into_response()
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            axum::Json(json!({"valid": true})).into_response()
        }
        Mode::Garbage => "<html>oops</html>".into_response(),
        Mode::Verify(secret) => {
            let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let expected = tessera_service::hook::sign(
                secret,
                &h("webhook-id"),
                h("webhook-timestamp").parse().unwrap_or(0),
                &body,
            );
            let valid = h("webhook-signature").split(' ').any(|s| s == expected);
            axum::Json(json!({"valid": valid, "message": "bad signature"})).into_response()
        }
    }
}

async fn receiver(mode: Mode) -> (String, Receiver) {
    let r = Receiver { mode: Arc::new(Mutex::new(mode)), calls: Arc::default() };
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, r)
}

async fn with_hook(app: &TestApp, t: &Tenant, hook: Value) {
    let (status, v) = app.server(Method::PATCH, t, "/v1/settings", Some(json!({ "pre_update_hook": hook }))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(!v.to_string().contains(SECRET), "the hook secret is never shown");
}

/// An app whose tenant's hook is a receiver in `mode`, signed with `SECRET`, and its user.
async fn hooked(mode: Mode) -> (TestApp, Tenant, SignedIn, Receiver) {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (url, r) = receiver(mode).await;
    with_hook(&app, &t, json!({"url": url, "secret": SECRET})).await;
    (app, t, u, r)
}

/// Changes the user's bio and expects the hook to refuse it; returns the error.
async fn refused_by_hook(app: &TestApp, u: &SignedIn, bio: &str) -> Value {
    let (status, v) = app.patch_me(&u.access, json!({ "bio": bio })).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("hook_rejected")));
    v
}

#[tokio::test]
async fn an_accepting_hook_sees_the_user_before_and_the_change_signed() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    app.patch_me(&u.access, json!({"bio": "before"})).await;
    let (url, r) = receiver(Mode::Verify(SECRET)).await;
    with_hook(&app, &t, json!({"url": url, "secret": SECRET})).await;
    let (status, v) = app.patch_me(&u.access, json!({"bio": "after"})).await;
    assert_eq!((status, v["bio"].as_str()), (StatusCode::OK, Some("after")), "{v}");
    let calls = r.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let (headers, payload) = &calls[0];
    assert!(headers.get("webhook-id").unwrap().to_str().unwrap().starts_with("msg_"));
    assert_eq!(payload["type"], "user.pre_update");
    assert_eq!(payload["data"]["user"]["profile"]["bio"], "before");
    assert_eq!(payload["data"]["update"], json!({"bio": "after"}));
    assert_eq!(payload["data"]["surface"], "native");
    *r.mode.lock().unwrap() = Mode::Accept;
    assert_eq!(app.patch_me(&u.access, json!({"bio": "again"})).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_refusing_hook_stops_the_update_with_its_message_and_nothing_is_stored() {
    let (app, _, u, _) = hooked(Mode::Refuse).await;
    let v = refused_by_hook(&app, &u, "Try Competitor Inc.").await;
    assert!(v["message"].as_str().unwrap().contains("bios may not mention competitors"));
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!((me["bio"].clone(), me["version"].as_i64()), (Value::Null, Some(1)));
}

#[tokio::test]
async fn a_hanging_hook_times_out_closed_by_default_and_open_when_chosen() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (url, _) = receiver(Mode::Hang).await;
    with_hook(&app, &t, json!({"url": url, "secret": SECRET, "timeout_ms": 300})).await;
    let started = std::time::Instant::now();
    let v = refused_by_hook(&app, &u, "x").await;
    assert!(v["message"].as_str().unwrap().contains("in time"));
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout, not the hook, decided");

    with_hook(&app, &t, json!({"url": url, "secret": SECRET, "timeout_ms": 300, "fail_open": true})).await;
    let (status, v) = app.patch_me(&u.access, json!({"bio": "through"})).await;
    assert_eq!((status, v["bio"].as_str()), (StatusCode::OK, Some("through")));
}

#[tokio::test]
async fn garbage_a_bad_signature_or_an_unreachable_hook_refuse() {
    let (app, t, u, _) = hooked(Mode::Garbage).await;
    refused_by_hook(&app, &u, "x").await;

    let (url, _) = receiver(Mode::Verify("whsec_c29tZSBvdGhlciBzZWNyZXQ=")).await;
    with_hook(&app, &t, json!({"url": url, "secret": SECRET})).await;
    let (status, v) = app.patch_me(&u.access, json!({"bio": "x"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["message"].as_str().unwrap().contains("bad signature"));

    with_hook(&app, &t, json!({"url": "http://127.0.0.1:9/hook", "secret": SECRET, "timeout_ms": 500})).await;
    assert_eq!(app.patch_me(&u.access, json!({"bio": "x"})).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["version"], 1, "nothing was stored");
}

#[tokio::test]
async fn the_hook_guards_every_surface_and_bad_settings_are_refused() {
    let (app, t, u, r) = hooked(Mode::Refuse).await;
    let replyke = format!("/compat/replyke/{}/users/{}", t.id, u.id);
    let update = json!({"update": {"bio": "x", "secureMetadata": {"k": "v"}}});
    let res = app.send(Method::PATCH, &replyke, &u.access, Some(update)).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app.send(Method::PATCH, "/compat/bird/me", &u.access, Some(json!({"bio": "x"}))).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let calls = r.calls.lock().unwrap().clone();
    assert_eq!(calls[0].1["data"]["surface"], "replyke");
    assert_eq!(calls[0].1["data"]["update"], json!({"bio": "x", "secure_metadata": {"k": "v"}}));
    assert_eq!(calls[1].1["data"]["surface"], "bird");

    let bad = json!({"pre_update_hook": {"url": "ftp://x", "secret": "short", "timeout_ms": 1}});
    let (status, v) = app.server(Method::PATCH, &t, "/v1/settings", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        field_codes(&v),
        [
            "pre_update_hook.secret:too_short",
            "pre_update_hook.timeout_ms:out_of_range",
            "pre_update_hook.url:invalid_url"
        ]
    );
    with_hook(&app, &t, Value::Null).await;
    assert_eq!(app.patch_me(&u.access, json!({"bio": "free"})).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_hook_on_a_private_address_is_never_called_unless_the_operator_allows_it() {
    let app = spawn_app_with(|s| s.outbound.allow_private_targets = false).await;
    let (t, u) = app.user().await;
    let (url, r) = receiver(Mode::Verify(SECRET)).await;
    // The receiver's own URL (an address), and a name that resolves to loopback.
    let by_name = url.replace("127.0.0.1", "localhost");
    for url in [url, by_name] {
        with_hook(&app, &t, json!({"url": url, "secret": SECRET})).await;
        let v = refused_by_hook(&app, &u, "through the guard").await;
        assert_eq!(v["message"], "the update was refused: the validation hook's address is not a public one", "{url}");
    }
    assert!(r.calls.lock().unwrap().is_empty(), "the receiver was never called");
    let (_, me) = app.get_me(&u.access).await;
    assert!(me["bio"].is_null(), "nothing was written");
}
