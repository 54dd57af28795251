//! Events delivered to a real HTTP receiver started by the test, which checks every signature
//! with its own implementation of the Standard Webhooks check: delivery of a change, retries
//! on the schedule (a manual clock), `410 Gone`, the private-target guard, and the endpoints'
//! management.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Vec<u8>,
}

impl Received {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Answers each request with the next queued status (200 when none is queued).
#[derive(Clone, Default)]
pub(crate) struct Inbox {
    answers: Arc<Mutex<VecDeque<u16>>>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Inbox {
    pub(crate) fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: axum::body::Bytes) -> AxumStatus {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    inbox.got.lock().unwrap().push(Received {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp").parse().unwrap_or(0),
        signature: h("webhook-signature"),
        body: body.to_vec(),
    });
    let status = inbox.answers.lock().unwrap().pop_front().unwrap_or(200);
    AxumStatus::from_u16(status).unwrap()
}

async fn inbox() -> (String, Inbox) {
    let inbox = Inbox::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    serve_inbox(listener, inbox.clone());
    (url, inbox)
}

/// Receives at `/events` on `listener` into `inbox`, until the test ends.
pub(crate) fn serve_inbox(listener: tokio::net::TcpListener, inbox: Inbox) {
    let app = axum::Router::new().route("/events", axum::routing::post(receive)).with_state(inbox);
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// The Standard Webhooks check, written from the specification: the key is the base64 after
/// `whsec_`; the signature is `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`;
/// any of the space-separated signatures may match.
pub(crate) fn verifies(secret: &str, r: &Received) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", r.id, r.timestamp).as_bytes());
    mac.update(&r.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    r.signature.split(' ').any(|s| s == expected)
}

/// Runs delivery rounds (the background worker runs them too) until the inbox holds `n`.
async fn delivered(app: &TestApp, inbox: &Inbox, n: usize) -> Vec<Received> {
    for _ in 0..100 {
        if inbox.got().len() >= n {
            return inbox.got();
        }
        app.service().deliver_due().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("expected {n} deliveries, got {}", inbox.got().len());
}

/// Deliveries in the order of their events (ids are UUIDv7, ordered by time): attempts made
/// together may arrive in any order, as Standard Webhooks allows.
fn by_event_id(mut got: Vec<Received>) -> Vec<Received> {
    got.sort_by(|a, b| a.id.cmp(&b.id));
    got
}

async fn endpoint(app: &TestApp, t: &Tenant, body: Value) -> (String, String) {
    let (status, v) = app.server(Method::POST, t, "/v1/webhooks", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    (v["id"].as_str().unwrap().to_owned(), v["secret"].as_str().unwrap().to_owned())
}

async fn deliveries(app: &TestApp, t: &Tenant, id: &str) -> Vec<Value> {
    let (status, v) = app.server(Method::GET, t, &format!("/v1/webhooks/{id}/deliveries"), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_change_is_delivered_signed_with_its_event_id_and_only_the_types_asked_for() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (url, inbox) = inbox().await;
    let (id, secret) = endpoint(&app, &t, json!({"url": url, "event_types": ["user.updated"]})).await;
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = app.server(Method::GET, &t, "/v1/webhooks", None).await;
    assert!(!listed.to_string().contains(&secret), "the secret is shown once");

    let patch = json!({"bio": "events out", "secure_metadata": {"ssn": "SECRET-123"}});
    assert_eq!(app.patch_me(&u.access, patch).await.0, StatusCode::FORBIDDEN, "a user may not write it");
    assert_eq!(app.patch_me(&u.access, json!({"bio": "events out"})).await.0, StatusCode::OK);
    app.update_user(&t, &u.id, json!({"secure_metadata": {"ssn": "SECRET-123"}})).await;
    let got = by_event_id(delivered(&app, &inbox, 2).await);
    for r in &got {
        assert!(verifies(&secret, r), "every delivery verifies: {r:?}");
        assert!(!String::from_utf8_lossy(&r.body).contains("SECRET-123"), "no secret in an event");
    }
    let first = got[0].json();
    assert_eq!(first["type"], "user.updated");
    assert_eq!(first["data"]["user"]["bio"], "events out");
    assert_eq!(first["data"]["changed_fields"], json!(["bio"]));
    assert_eq!(got[1].json()["data"]["changed_fields"], json!(["secure_metadata"]));
    // The sign-up was `user.created`, which this endpoint did not ask for.
    let log = deliveries(&app, &t, &id).await;
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|d| d["status"] == "delivered" && d["type"] == "user.updated" && d["attempt"] == 1));
    let ids: Vec<&str> = log.iter().map(|d| d["event_id"].as_str().unwrap()).collect();
    assert!(got.iter().all(|r| ids.contains(&r.id.as_str())), "webhook-id is the event's id");
    assert!(inbox.got().len() == 2, "each event once");
}

#[tokio::test]
async fn a_failed_attempt_is_retried_on_the_schedule_signed_afresh_and_410_disables_the_endpoint() {
    let app = spawn_app_with(|s| s.webhooks.retry_schedule_seconds = vec![0, 60]).await;
    let (t, u) = app.user().await;
    let (url, inbox) = inbox().await;
    let (id, secret) = endpoint(&app, &t, json!({"url": url, "event_types": ["user.updated"]})).await;
    inbox.answers.lock().unwrap().extend([500, 200]);
    app.patch_me(&u.access, json!({"bio": "retried"})).await;
    let first = delivered(&app, &inbox, 1).await.remove(0);
    let log = deliveries(&app, &t, &id).await;
    assert_eq!((log[0]["status"].as_str(), log[0]["response_status"].as_u64()), (Some("pending"), Some(500)));
    // Not due before its time: nothing more arrives until the clock moves.
    for _ in 0..3 {
        app.service().deliver_due().await.unwrap();
    }
    assert_eq!(inbox.got().len(), 1);
    app.advance(chrono::Duration::seconds(70));
    let second = delivered(&app, &inbox, 2).await.remove(1);
    assert_eq!(second.id, first.id, "the same webhook-id on every attempt");
    assert!(second.timestamp > first.timestamp && second.signature != first.signature, "signed afresh");
    assert!(verifies(&secret, &first) && verifies(&secret, &second));
    let log = deliveries(&app, &t, &id).await;
    assert_eq!((log[0]["status"].as_str(), log[0]["attempt"].as_u64()), (Some("delivered"), Some(2)));

    inbox.answers.lock().unwrap().push_back(410);
    app.patch_me(&u.access, json!({"bio": "gone"})).await;
    delivered(&app, &inbox, 3).await;
    let log = deliveries(&app, &t, &id).await;
    assert_eq!((log[0]["status"].as_str(), log[0]["response_status"].as_u64()), (Some("failed"), Some(410)));
    let (_, w) = app.server(Method::GET, &t, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(w["enabled"], false, "410 Gone disables the endpoint");
    app.patch_me(&u.access, json!({"bio": "after"})).await;
    app.service().deliver_due().await.unwrap();
    assert_eq!(inbox.got().len(), 3, "a disabled endpoint gets nothing new");
}

#[tokio::test]
async fn a_delivery_is_never_made_to_a_private_address_unless_the_operator_allows_it() {
    let app = spawn_app_with(|s| s.outbound.allow_private_targets = false).await;
    let (t, u) = app.user().await;
    let (url, inbox) = inbox().await;
    let (id, _) = endpoint(&app, &t, json!({"url": url})).await;
    app.patch_me(&u.access, json!({"bio": "nowhere"})).await;
    for _ in 0..3 {
        app.service().deliver_due().await.unwrap();
    }
    assert!(inbox.got().is_empty(), "the receiver on loopback was never called");
    let log = deliveries(&app, &t, &id).await;
    let refused = log.iter().find(|d| d["type"] == "user.updated").unwrap();
    assert_eq!(refused["status"], "pending");
    assert!(refused["error"].as_str().unwrap().contains("not a public one"), "{refused}");
}

#[tokio::test]
async fn endpoints_are_managed_by_name_with_every_bad_field_refused() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let bad = json!({"url": "ftp://x", "event_types": ["user.exploded"], "description": "x".repeat(501), "extra": 1});
    let (status, v) = app.server(Method::POST, &t, "/v1/webhooks", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut codes = field_codes(&v);
    codes.sort();
    assert_eq!(codes, ["description:too_long", "event_types:invalid_choice", "extra:unknown_field", "url:invalid_url"]);
    let (_, v) = app.server(Method::POST, &t, "/v1/webhooks", Some(json!({}))).await;
    assert_eq!(field_codes(&v), ["url:required"]);

    let (id, secret) = endpoint(&app, &t, json!({"url": "https://hooks.example.com/in", "description": "CRM"})).await;
    let path = format!("/v1/webhooks/{id}");
    let (status, v) =
        app.server(Method::PATCH, &t, &path, Some(json!({"enabled": false, "event_types": ["team.created"]}))).await;
    assert_eq!((status, v["enabled"].as_bool()), (StatusCode::OK, Some(false)), "{v}");
    assert_eq!(v["event_types"], json!(["team.created"]));
    assert!(v.get("secret").is_none());
    let (status, v) = app.server(Method::POST, &t, &format!("{path}/rotate-secret"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["secret"].as_str().unwrap().starts_with("whsec_") && v["secret"] != secret.as_str());

    let other = app.tenant().await;
    assert_eq!(app.server(Method::GET, &other, &path, None).await.0, StatusCode::NOT_FOUND, "another tenant's");
    assert_eq!(app.server(Method::DELETE, &t, &path, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.server(Method::GET, &t, &path, None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn each_lifecycle_change_is_one_event_and_a_refused_change_is_none() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (url, inbox) = inbox().await;
    endpoint(&app, &t, json!({"url": url})).await;
    // Refused inside the write's transaction (not a member of the team): no event.
    let (_, team) = app.server(Method::POST, &t, "/v1/teams", Some(json!({"display_name": "Core"}))).await;
    let (status, _) = app.patch_me(&u.access, json!({"selected_team_id": team["id"]})).await;
    assert!(status.is_client_error());
    let res = app
        .send(
            Method::POST,
            "/v1/me/password",
            &u.access,
            Some(json!({
        "current_password": PASSWORD, "new_password": "an entirely new passphrase 7"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let path = format!("/v1/users/{}/suspensions", u.id);
    let (_, s) = app.server(Method::POST, &t, &path, Some(json!({"reason": "chargeback"}))).await;
    app.server(Method::DELETE, &t, &format!("{path}/{}", s["id"].as_str().unwrap()), None).await;
    app.enable_totp(&u, b"lifecycle-secret-bytes").await;
    assert_eq!(app.send(Method::DELETE, "/v1/me", &u.access, None).await.status(), StatusCode::ACCEPTED);

    let expected = [
        "team.created",
        "user.password_changed",
        "user.suspended",
        "user.unsuspended",
        "user.mfa_enabled",
        "user.deleted",
        // The scheduled deletion signs the user out everywhere.
        "session.revoked",
    ];
    let got = by_event_id(delivered(&app, &inbox, expected.len()).await);
    let kinds: Vec<String> = got.iter().map(|r| r.json()["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, expected, "once each, in the order of the changes, and nothing for the refused change");
    assert!(got[1..6].iter().all(|r| r.json()["data"]["user"]["id"] == u.id.as_str()), "each about the user");
    let revoked = got[6].json();
    assert_eq!(revoked["data"]["session"], json!({"id": u.session_id, "user_id": u.id}));
    assert_eq!(got[0].json()["data"]["team"]["display_name"], "Core");
}

#[tokio::test]
async fn sign_in_sign_out_and_team_membership_are_events_and_repeats_are_not() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (url, inbox) = inbox().await;
    let types = ["session.created", "session.revoked", "team.member_added", "team.member_removed"];
    endpoint(&app, &t, json!({"url": url, "event_types": types})).await;
    let second = app.sign_in_as(&t.id, &u.email).await;
    assert_eq!(
        app.send(Method::POST, "/v1/auth/sign-out", &second.access, None).await.status(),
        StatusCode::NO_CONTENT
    );
    let (_, team) = app.server(Method::POST, &t, "/v1/teams", Some(json!({"display_name": "Core"}))).await;
    let member = format!("/v1/teams/{}/members/{}", team["id"].as_str().unwrap(), u.id);
    for _ in 0..2 {
        app.server(Method::PUT, &t, &member, None).await;
    }
    app.server(Method::DELETE, &t, &member, None).await;
    assert_eq!(app.server(Method::DELETE, &t, &member, None).await.0, StatusCode::NOT_FOUND);

    let got = by_event_id(delivered(&app, &inbox, 4).await);
    let kinds: Vec<String> = got.iter().map(|r| r.json()["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, types, "one event per change; adding twice or removing twice is one");
    let created = got[0].json();
    assert_eq!(created["data"]["session"]["method"], "password");
    assert_eq!(created["data"]["session"]["id"].as_str(), Some(second.session_id.as_str()));
    assert!(created.to_string().find("tsr_rt_").is_none(), "no token in an event");
    assert_eq!(got[1].json()["data"]["session"]["id"].as_str(), Some(second.session_id.as_str()));
    tokio::time::sleep(Duration::from_millis(600)).await;
    app.service().deliver_due().await.unwrap();
    assert_eq!(inbox.got().len(), 4);
}

#[tokio::test]
async fn the_cli_lists_endpoints_and_deliveries_and_redelivers_and_metrics_count_attempts() {
    // The next scheduled attempt an hour away: only the redelivery can bring it sooner.
    let app = spawn_app_with(|s| s.webhooks.retry_schedule_seconds = vec![0, 3600]).await;
    let (t, u) = app.user().await;
    let (url, inbox) = inbox().await;
    let (id, _) = endpoint(&app, &t, json!({"url": url, "event_types": ["user.updated"]})).await;
    inbox.answers.lock().unwrap().push_back(503);
    app.patch_me(&u.access, json!({"bio": "via the CLI"})).await;
    delivered(&app, &inbox, 1).await;

    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .arg("--json")
            .env("TESSERA_DATABASE_URL", &app.settings.database_url)
            .env_remove("TESSERA_ROOT_KEY")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let listed = cli(&["webhooks", "list", "--tenant", &t.id]);
    assert_eq!((listed[0]["id"].as_str(), listed[0]["url"].as_str()), (Some(id.as_str()), Some(url.as_str())));
    assert!(!listed.to_string().contains("whsec_"), "no secret on the command line's output");
    let log = cli(&["webhooks", "deliveries", "--tenant", &t.id, "--endpoint", &id]);
    assert_eq!((log[0]["status"].as_str(), log[0]["response_status"].as_u64()), (Some("pending"), Some(503)));
    let event = log[0]["event_id"].as_str().unwrap().to_owned();
    cli(&["webhooks", "redeliver", "--tenant", &t.id, "--endpoint", &id, "--event", &event]);
    // The command ran on the real clock, a little ahead of the server's manual one.
    app.advance(chrono::Duration::seconds(60));
    let got = delivered(&app, &inbox, 2).await;
    assert_eq!(got[1].id, event, "redelivered at once, not at the schedule's next step");

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"tessera_webhook_deliveries_total{outcome="retrying"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"tessera_webhook_deliveries_total{outcome="delivered"} 1"#), "{metrics}");
    assert!(metrics.contains("tessera_webhook_oldest_pending_seconds 0"), "{metrics}");
    assert!(metrics.contains("tessera_events_written_total 1\n"), "one event, the update's: {metrics}");
}

#[tokio::test]
async fn a_deletion_is_an_event_when_scheduled_and_again_when_the_account_is_erased() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let other = app.sign_up(&t, "grace@example.com").await;
    let (url, inbox) = inbox().await;
    endpoint(&app, &t, json!({"url": url, "event_types": ["user.deleted"]})).await;
    assert_eq!(app.server(Method::DELETE, &t, &format!("/v1/users/{}", u.id), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.send(Method::DELETE, "/v1/me", &other.access, None).await.status(), StatusCode::ACCEPTED);
    app.advance(chrono::Duration::days(8));
    assert_eq!(app.service().purge_due().await.unwrap(), 1);

    let got = by_event_id(delivered(&app, &inbox, 3).await);
    let data: Vec<Value> = got.iter().map(|r| r.json()["data"].clone()).collect();
    assert_eq!((data[0]["user"]["id"].as_str(), &data[0]["erased"]), (Some(u.id.as_str()), &json!(true)));
    assert_eq!(data[1]["user"]["id"].as_str(), Some(other.id.as_str()));
    assert!(data[1]["erased"].is_null() && data[1]["user"]["deletion_scheduled_at"].is_string(), "scheduled");
    assert_eq!((data[2]["user"]["id"].as_str(), &data[2]["erased"]), (Some(other.id.as_str()), &json!(true)));
}

#[tokio::test]
async fn a_passkey_added_and_removed_are_events_naming_it_and_never_its_key() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (url, inbox) = inbox().await;
    let kinds = json!(["user.passkey_added", "user.passkey_removed"]);
    endpoint(&app, &t, json!({"url": url, "event_types": kinds})).await;
    let mut auth = crate::passkeys::Authenticator::new(&crate::passkeys::origin(&app));
    let (added, credential_id) = crate::passkeys::register(&app, &u, &mut auth, Some("Phone")).await;
    let path = format!("/v1/me/passkeys/{}", added["id"].as_str().unwrap());
    assert_eq!(app.send(Method::DELETE, &path, &u.access, None).await.status(), StatusCode::NO_CONTENT);
    let got = by_event_id(delivered(&app, &inbox, 2).await);
    let (first, second) = (got[0].json(), got[1].json());
    assert_eq!(
        (first["type"].as_str(), second["type"].as_str()),
        (Some("user.passkey_added"), Some("user.passkey_removed"))
    );
    assert_eq!(first["data"]["user"]["id"], u.id.as_str());
    assert_eq!(first["data"]["passkey"]["name"], "Phone");
    assert_eq!(second["data"]["passkey"]["id"], added["id"]);
    assert!(got.iter().all(|r| !String::from_utf8_lossy(&r.body).contains(&credential_id)));
}
