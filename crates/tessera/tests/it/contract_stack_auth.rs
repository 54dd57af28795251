//! The Stack Auth contract, line by line: `GET/PATCH/DELETE /compat/stack-auth/api/v1/users/me`.

use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const ME: &str = "/compat/stack-auth/api/v1/users/me";

fn client(app: &TestApp, req: RequestBuilder, t: &Tenant, u: &SignedIn) -> RequestBuilder {
    let _ = app;
    req.header("x-stack-project-id", &t.id)
        .header("x-stack-access-type", "client")
        .header("x-stack-publishable-client-key", &t.publishable_key)
        .header("x-stack-access-token", &u.access)
}

fn server(req: RequestBuilder, t: &Tenant, u: &SignedIn) -> RequestBuilder {
    req.header("x-stack-project-id", &t.id)
        .header("x-stack-access-type", "server")
        .header("x-stack-secret-server-key", &t.server_key)
        .header("x-stack-access-token", &u.access)
}

async fn known_error(req: RequestBuilder) -> (StatusCode, String, Value) {
    let res = req.send().await.unwrap();
    let known = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (header, renamed) = (known("x-stack-known-error"), known("x-hexclave-known-error"));
    let (status, v) = body(res).await;
    assert_eq!(v["code"].as_str(), Some(header.as_str()), "the header repeats the code: {v}");
    assert_eq!(renamed, header, "the SDK's releases after the rename read the x-hexclave- twin");
    assert!(v["error"].is_string());
    assert!(v["details"].is_object(), "the SDK rebuilds every known error from its details: {v}");
    (status, header, v)
}

#[tokio::test]
async fn get_returns_the_documented_client_fields() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (status, v) = body(client(&app, app.client.get(app.url(ME)), &t, &u).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["id"].as_str(), Some(u.id.as_str()));
    assert_eq!(v["primary_email_verified"], false);
    assert!(v["signed_up_at_millis"].as_f64().unwrap() > 1.7e12);
    assert_eq!((v["is_anonymous"].as_bool(), v["primary_email"].as_str()), (Some(false), Some("ada@example.com")));
    for k in ["selected_team", "display_name", "profile_image_url", "selected_team_id"] {
        assert!(v.get(k).is_some(), "{k}");
    }
    assert_eq!((v["client_metadata"].clone(), v["client_read_only_metadata"].clone()), (json!({}), json!({})));
    assert!(v.get("server_metadata").is_none(), "clients never see server metadata");
    let (_, v) = body(server(app.client.get(app.url(ME)), &t, &u).send().await.unwrap()).await;
    assert_eq!(v["server_metadata"], json!({}), "the server does");
}

#[tokio::test]
async fn headers_and_keys_are_checked_with_known_errors() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let other = app.tenant().await;
    let get = || app.client.get(app.url(ME));
    let (s, code, _) =
        known_error(get().header("x-stack-project-id", &t.id).header("x-stack-access-token", &u.access)).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "ACCESS_TYPE_REQUIRED"));
    let (s, code, _) =
        known_error(get().header("x-stack-project-id", &t.id).header("x-stack-access-type", "admin")).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "INVALID_ACCESS_TYPE"));
    // This project's id and the user's token, with the other project's keys.
    let wrong_keys = Tenant {
        id: t.id.clone(),
        server_key: other.server_key.clone(),
        publishable_key: other.publishable_key.clone(),
    };
    let (_, code, _) = known_error(client(&app, get(), &wrong_keys, &u)).await;
    assert_eq!(code, "INVALID_PUBLISHABLE_CLIENT_KEY");
    let (_, code, _) = known_error(server(get(), &wrong_keys, &u)).await;
    assert_eq!(code, "INVALID_SECRET_SERVER_KEY");
    let (s, code, _) = known_error(
        get()
            .header("x-stack-project-id", &t.id)
            .header("x-stack-access-type", "client")
            .header("x-stack-publishable-client-key", &t.publishable_key),
    )
    .await;
    // Keys but no user: the SDK's "signed out", which makes its getUser() answer null.
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "CANNOT_GET_OWN_USER_WITHOUT_USER"));
    // The user's token used with another project's id and keys.
    let u_elsewhere = SignedIn { tenant: other.id.clone(), ..u.clone() };
    let (s, code, v) = known_error(client(&app, get(), &other, &u_elsewhere)).await;
    assert_eq!((s, code.as_str()), (StatusCode::UNAUTHORIZED, "INVALID_PROJECT_FOR_ACCESS_TOKEN"));
    assert_eq!(v["details"]["expected_project_id"].as_str(), Some(other.id.as_str()));
    assert_eq!(v["details"]["actual_project_id"].as_str(), Some(t.id.as_str()));
    let (_, code, _) = known_error(client(&app, get(), &t, &SignedIn { access: "nope".into(), ..u.clone() })).await;
    assert_eq!(code, "UNPARSABLE_ACCESS_TOKEN");
}

#[tokio::test]
async fn clients_write_client_fields_and_are_refused_server_fields_by_name() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let patch = |b: Value| client(&app, app.client.patch(app.url(ME)), &t, &u).json(&b);
    let (status, v) = body(
        patch(json!({"display_name": "Ada", "client_metadata": {"theme": "dark"},
        "profile_image_url": format!("data:image/png;base64,{PNG_1X1}")}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["display_name"], "Ada");
    assert!(v["profile_image_url"].as_str().unwrap().ends_with(".png"));

    let (status, code, v) =
        known_error(patch(json!({"server_metadata": {"plan": "pro"}, "client_read_only_metadata": {}}))).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "SCHEMA_ERROR"));
    assert_eq!(field_codes(&v), ["client_read_only_metadata:server_only", "server_metadata:server_only"]);
    let (_, code, v) = known_error(patch(json!({"primary_email": "x@example.com"}))).await;
    assert_eq!((code.as_str(), field_codes(&v)), ("SCHEMA_ERROR", vec!["primary_email:unknown_field".to_owned()]));

    let res = server(app.client.patch(app.url(ME)), &t, &u)
        .json(&json!({"server_metadata": {"plan": "pro"}}))
        .send()
        .await
        .unwrap();
    let (status, v) = body(res).await;
    assert_eq!((status, v["server_metadata"].clone()), (StatusCode::OK, json!({"plan": "pro"})));
}

#[tokio::test]
async fn profile_images_must_be_smaller_than_100kb() {
    use base64::Engine;
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let mut png = base64::engine::general_purpose::STANDARD.decode(PNG_1X1).unwrap();
    png.resize(100 * 1024, 0);
    let big = base64::engine::general_purpose::STANDARD.encode(png);
    let req = client(&app, app.client.patch(app.url(ME)), &t, &u).json(&json!({"profile_image_url": big}));
    let (status, code, v) = known_error(req).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "SCHEMA_ERROR"));
    assert_eq!(field_codes(&v), ["profile_image_url:too_large"]);
}

#[tokio::test]
async fn selected_team_must_be_one_of_the_users_teams_and_comes_back_as_an_object() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (_, team) = app.server(reqwest::Method::POST, &t, "/v1/teams", Some(json!({"display_name": "Core"}))).await;
    let team_id = team["id"].as_str().unwrap().to_owned();
    let patch = |b: Value| client(&app, app.client.patch(app.url(ME)), &t, &u).json(&b);
    let (status, code, _) = known_error(patch(json!({"selected_team_id": team_id}))).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "TEAM_MEMBERSHIP_NOT_FOUND"));
    app.server(reqwest::Method::PUT, &t, &format!("/v1/teams/{team_id}/members/{}", u.id), None).await;
    let (status, v) = body(patch(json!({"selected_team_id": team_id})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["selected_team"]["id"].as_str(), Some(team_id.as_str()));
    assert_eq!(v["selected_team"]["display_name"], "Core");
}

#[tokio::test]
async fn totp_secret_enables_2fa_null_disables_it_and_it_is_never_returned() {
    use base64::Engine;
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let secret = b"12345678901234567890";
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let req = client(&app, app.client.patch(app.url(ME)), &t, &u)
        .json(&json!({"totp_secret_base64": b64, "display_name": "Ada"}));
    let (status, v) = body(req.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(!v.to_string().contains(&b64) && v.get("totp_secret_base64").is_none(), "never returned");
    assert_eq!(app.get_me(&u.access).await.1["totp_enabled"], true);

    // Sign-in now needs a code.
    let (status, v) = app.sign_in(&t.id, &u.email, PASSWORD).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("mfa_required")));
    let mfa_token = v["details"]["mfa_token"].as_str().unwrap().to_owned();
    let now = app.clock.now_unix();
    let code = format!("{:06}", tessera_auth::totp::code_at(secret, tessera_auth::totp::step_of(now), 6));
    let res = app
        .client
        .post(app.url("/v1/auth/mfa"))
        .json(&json!({"mfa_token": mfa_token, "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    for bad in [json!(""), json!("c2hvcnQ="), json!(42)] {
        let req = client(&app, app.client.patch(app.url(ME)), &t, &u).json(&json!({ "totp_secret_base64": bad }));
        let (status, _, v) = known_error(req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(field_codes(&v).len(), 1);
    }
    let req = client(&app, app.client.patch(app.url(ME)), &t, &u).json(&json!({"totp_secret_base64": null}));
    assert_eq!(req.send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::OK, "2FA is off again");
}

#[tokio::test]
async fn delete_answers_success_and_schedules_erasure() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (status, v) = body(client(&app, app.client.delete(app.url(ME)), &t, &u).send().await.unwrap()).await;
    assert_eq!((status, v), (StatusCode::OK, json!({"success": true})));
    assert_eq!(app.get_me(&u.access).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn prefixes_are_configurable() {
    let app = spawn_app_with(|s| s.compat.stack_auth = "/stack".into()).await;
    let (t, u) = app.user().await;
    let res = client(&app, app.client.get(app.url("/stack/api/v1/users/me")), &t, &u).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(client(&app, app.client.get(app.url(ME)), &t, &u).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}
