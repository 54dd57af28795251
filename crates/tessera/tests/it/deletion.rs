//! Account deletion: 202, sessions end, erasure after the grace period by the background job,
//! cancellation by signing in — with the injected clock.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn delete_me_schedules_erasure_and_signing_in_during_the_grace_period_cancels_it() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let res = app.send(Method::DELETE, "/v1/me", &u.access, None).await;
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(v["deletion_scheduled_at"].is_string());
    assert_eq!(app.get_me(&u.access).await.0, StatusCode::UNAUTHORIZED, "every session ended");

    app.advance(chrono::Duration::days(6));
    assert_eq!(app.service().purge_due().await.unwrap(), 0, "not due yet");
    let (status, v) = app.sign_in(&t.id, &u.email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["user"]["deletion_scheduled_at"], serde_json::Value::Null, "signing in cancelled it");
    app.advance(chrono::Duration::days(2));
    assert_eq!(app.service().purge_due().await.unwrap(), 0);
    assert_eq!(app.server(Method::GET, &t, &format!("/v1/users/{}", u.id), None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_account_past_its_grace_period_is_erased_with_its_sessions_and_avatar() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let res = app.send(Method::PUT, "/v1/me/avatar", &u.access, Some(json!({"image": PNG_1X1}))).await;
    let avatar = body(res).await.1["avatar_url"].as_str().unwrap().to_owned();
    app.client.delete(app.url("/v1/me")).bearer_auth(&u.access).send().await.unwrap();
    app.advance(chrono::Duration::days(7) + chrono::Duration::seconds(1));
    assert_eq!(app.service().purge_due().await.unwrap(), 1);
    assert_eq!(app.server(Method::GET, &t, &format!("/v1/users/{}", u.id), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.client.get(&avatar).send().await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "unreferenced images go too"
    );
    // The address is free again.
    app.sign_up(&app_tenant(&t), &u.email).await;
}

fn app_tenant(t: &Tenant) -> Tenant {
    Tenant { id: t.id.clone(), server_key: t.server_key.clone(), publishable_key: t.publishable_key.clone() }
}

#[tokio::test]
async fn the_background_job_erases_due_accounts_by_itself() {
    let app = spawn_app_with(|s| s.purge_interval_seconds = 1).await;
    let (t, u) = app.user().await;
    app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"deletion_grace_seconds": 0}))).await;
    let res = app.send(Method::DELETE, "/v1/me", &u.access, None).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, _) = app.server(Method::GET, &t, &format!("/v1/users/{}", u.id), None).await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the purge job never ran");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn committed_data_survives_a_restart() {
    let mut app = spawn_app().await;
    let (t, u) = app.user().await;
    app.patch_me(&u.access, json!({"bio": "durable"})).await;
    app.restart().await;
    let (status, me) = app.get_me(&u.access).await;
    assert_eq!(status, StatusCode::OK, "tokens and sessions survive too: {me}");
    assert_eq!(me["bio"], "durable");
    assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::OK);
}
