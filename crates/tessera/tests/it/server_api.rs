//! The tenant's server API: users, metadata tiers (secure metadata write-only), listing with
//! keyset pagination, teams, settings — and isolation between tenants.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn the_server_creates_reads_updates_and_deletes_users() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let newbie = json!({"primary_email": "new@example.com", "username": "newbie", "display_name": "New",
                        "server_metadata": {"plan": "pro"}, "password": PASSWORD});
    let (status, v) = app.create_user(&t, newbie).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["server_metadata"], json!({"plan": "pro"}), "the server sees server metadata");
    let id = v["id"].as_str().unwrap().to_owned();
    let (status, v) = app.server(Method::GET, &t, &format!("/v1/users/{id}"), None).await;
    assert_eq!((status, v["username"].as_str()), (StatusCode::OK, Some("newbie")));

    let (status, v) =
        app.update_user(&t, &id, json!({"client_read_only_metadata": {"tier": "gold"}, "status": "active"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "active");
    let (_, signed) = app.sign_in(&t.id, "new@example.com", PASSWORD).await;
    let (_, me) = app.get_me(signed["access_token"].as_str().unwrap()).await;
    assert_eq!(me["client_read_only_metadata"], json!({"tier": "gold"}), "the user reads it");
    assert!(me.get("server_metadata").is_none(), "but not server metadata");

    let (status, v) = app.update_user(&t, &id, json!({"status": "gone"})).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["status:invalid_value".to_owned()]));

    let (status, _) = app.server(Method::DELETE, &t, &format!("/v1/users/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.server(Method::GET, &t, &format!("/v1/users/{id}"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.sign_in(&t.id, "new@example.com", PASSWORD).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn secure_metadata_is_stored_but_never_returned_by_any_response() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let secret = "SSN-078-05-1120";
    let (status, v) = app.update_user(&t, &u.id, json!({"secure_metadata": {"ssn": secret}})).await;
    assert_eq!(status, StatusCode::OK);
    let mut seen = vec![v];
    seen.push(app.server(Method::GET, &t, &format!("/v1/users/{}", u.id), None).await.1);
    seen.push(app.server(Method::GET, &t, "/v1/users", None).await.1);
    seen.push(app.get_me(&u.access).await.1);
    seen.push(app.patch_me(&u.access, json!({"bio": "hi"})).await.1);
    for v in &seen {
        assert!(!v.to_string().contains(secret), "leaked in {v}");
        assert!(!v.to_string().contains("secure_metadata"), "no secure_metadata key in {v}");
    }
    let stored = app
        .service()
        .store
        .find_secure_metadata(u.tenant.parse().unwrap(), u.id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored["ssn"], secret, "but it was stored");
    // The user cannot write it.
    let (status, _) = app.patch_me(&u.access, json!({"secure_metadata": {"ssn": "mine"}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn listing_filters_and_pages_through_every_user_exactly_once() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    for i in 0..7 {
        let user = json!({"primary_email": format!("u{i}@example.com"), "is_anonymous": i % 2 == 0});
        let (status, _) = app.create_user(&t, user).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users?limit=3&cursor={c}"),
            None => "/v1/users?limit=3".into(),
        };
        let (status, page) = app.server(Method::GET, &t, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["items"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen.len(), 7);
    assert_eq!(sorted, seen, "in id order, no repeats");

    let (_, page) = app.server(Method::GET, &t, "/v1/users?email=U3@EXAMPLE.COM", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = app.server(Method::GET, &t, "/v1/users?is_anonymous=true", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    let (status, _) = app.server(Method::GET, &t, "/v1/users?limit=lots", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn another_tenants_server_key_reaches_nothing() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (_, team) = app.server(Method::POST, &t, "/v1/teams", Some(json!({"display_name": "A-team"}))).await;
    let intruder = app.tenant().await;
    let team_id = team["id"].as_str().unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/v1/users/{}", u.id), None),
        (Method::PATCH, format!("/v1/users/{}", u.id), Some(json!({"bio": "pwned"}))),
        (Method::DELETE, format!("/v1/users/{}", u.id), None),
        (Method::POST, format!("/v1/users/{}/suspensions", u.id), Some(json!({"reason": "x"}))),
        (Method::GET, format!("/v1/teams/{team_id}"), None),
        (Method::PATCH, format!("/v1/teams/{team_id}"), Some(json!({"display_name": "mine"}))),
        (Method::GET, format!("/v1/teams/{team_id}/members"), None),
        (Method::PUT, format!("/v1/teams/{team_id}/members/{}", u.id), None),
        (Method::DELETE, format!("/v1/teams/{team_id}"), None),
    ] {
        let (status, v) = app.server(method.clone(), &intruder, &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {v}");
    }
    let (_, page) = app.server(Method::GET, &intruder, "/v1/users", None).await;
    assert_eq!(page["items"], json!([]));
    let (_, teams) = app.server(Method::GET, &intruder, "/v1/teams", None).await;
    assert_eq!(teams, json!([]));
    // A server key with another tenant's header is a mismatch, not a way in.
    let res = app
        .client
        .get(app.url("/v1/users"))
        .bearer_auth(&intruder.server_key)
        .header("X-Tenant-ID", &t.id)
        .send()
        .await
        .unwrap();
    assert_eq!(body(res).await.1["code"], "tenant_mismatch");
    // A user token is not a server key, nor a server key a user token.
    let res = app.send(Method::GET, "/v1/users", &u.access, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_me(&t.server_key).await.0, StatusCode::UNAUTHORIZED);
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["bio"], Value::Null);
}

#[tokio::test]
async fn teams_and_memberships_are_managed_by_the_server() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (status, v) = app.server(Method::POST, &t, "/v1/teams", Some(json!({}))).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["display_name:required".to_owned()]));
    let (status, team) = app
        .server(Method::POST, &t, "/v1/teams", Some(json!({"display_name": "Core", "server_metadata": {"budget": 1}})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let id = team["id"].as_str().unwrap();
    let rename = json!({"display_name": "Core team", "profile_image_url": null});
    let (_, team) = app.server(Method::PATCH, &t, &format!("/v1/teams/{id}"), Some(rename)).await;
    assert_eq!(team["display_name"], "Core team");
    for _ in 0..2 {
        let (status, _) = app.server(Method::PUT, &t, &format!("/v1/teams/{id}/members/{}", u.id), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "adding twice is fine");
    }
    let (_, members) = app.server(Method::GET, &t, &format!("/v1/teams/{id}/members"), None).await;
    assert_eq!(members, json!([u.id]));
    app.patch_me(&u.access, json!({"selected_team_id": id})).await;
    let (status, _) = app.server(Method::DELETE, &t, &format!("/v1/teams/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["selected_team_id"], Value::Null);
    let (status, _) = app.server(Method::PUT, &t, &format!("/v1/teams/{id}/members/{}", u.id), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn settings_are_read_and_changed_within_bounds() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let (_, s) = app.server(Method::GET, &t, "/v1/settings", None).await;
    assert_eq!(s["deletion_grace_seconds"], 604800);
    let (status, v) = app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"deletion_grace_seconds": -5}))).await;
    assert_eq!(
        (status, field_codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["deletion_grace_seconds:out_of_range".to_owned()])
    );
    let (status, v) = app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"colour": "red"}))).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["colour:unknown_field".to_owned()]));
    let (status, v) = app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"deletion_grace_seconds": 60}))).await;
    assert_eq!((status, v["deletion_grace_seconds"].as_i64()), (StatusCode::OK, Some(60)));
}

#[tokio::test]
async fn the_operator_needs_the_root_key() {
    let app = spawn_app().await;
    let res = app.send(Method::POST, "/v1/tenants", "wrong-root-key-xxxxxxxx", Some(json!({"name": "x"}))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app.send(Method::POST, "/v1/tenants", ROOT_KEY, Some(json!({"name": ""}))).await;
    let (status, v) = body(res).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["name:too_short".to_owned()]));
    let t = app.tenant().await;
    assert!(t.publishable_key.starts_with("tsr_pk_") && t.server_key.starts_with("tsr_sk_"));
    let (status, list) = body(app.send(Method::GET, "/v1/tenants", ROOT_KEY, None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("server_key").is_none(), "the server key is shown only at creation");
}

#[tokio::test]
async fn creation_refuses_wrongly_typed_fields_instead_of_dropping_them() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let (status, v) =
        app.create_user(&t, json!({"primary_email": "x@example.com", "password": true, "auth_provider": "ldap"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["auth_provider:invalid_value", "password:invalid_type"]);
    let (status, v) =
        app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"avatar_max_bytes": "big", "nope": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_codes(&v), ["avatar_max_bytes:invalid_type", "nope:unknown_field"]);
}

#[tokio::test]
async fn tenant_policies_refuse_changes_on_every_surface_with_their_notice() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (status, v) = app.server(Method::PUT, &t, "/v1/policies", Some(json!({"source": "permit (principal"}))).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["source:invalid_policy".to_owned()]));
    let source = r#"@id("audit-freeze") @notice("Display names are frozen during the audit.")
forbid (principal is User, action == Action::"update", resource) when { context.field == "display_name" };"#;
    let (status, v) = app.server(Method::PUT, &t, "/v1/policies", Some(json!({ "source": source }))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, v) = app.server(Method::GET, &t, "/v1/policies", None).await;
    assert_eq!(v["source"], source);
    assert!(v["built_in"].as_str().unwrap().contains("server-only-fields"));

    let (status, v) = app.patch_me(&u.access, json!({"display_name": "Ada", "bio": "ok"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(field_codes(&v), ["display_name:forbidden_by_policy"]);
    assert_eq!(v["notices"], json!(["Display names are frozen during the audit."]));
    // The same engine answers the foreign contracts.
    let res = app
        .client
        .put(app.url("/compat/jitsudo/v1/users/me/profile"))
        .bearer_auth(&u.access)
        .header("X-Tenant-ID", &t.id)
        .json(&json!({"display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["notices"], json!(["Display names are frozen during the audit."]));
    let res = app.send(Method::PATCH, "/compat/bird/me", &u.access, Some(json!({"name": "Ada"}))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The server is not a User principal, so the tenant's rule leaves it alone.
    let (status, _) = app.update_user(&t, &u.id, json!({"display_name": "Ada"})).await;
    assert_eq!(status, StatusCode::OK);
    // Other tenants are untouched.
    let (_, other) = app.user().await;
    assert_eq!(app.patch_me(&other.access, json!({"display_name": "Ada"})).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_role_is_given_by_the_server_never_taken_by_the_user_and_shows_where_a_contract_has_one() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let (_, v) = app.server(Method::GET, &t, &format!("/v1/users/{}", u.id), None).await;
    assert_eq!(v["role"], "member");
    // The user cannot make itself an admin, on any surface, and is told why.
    let (status, v) = app.patch_me(&u.access, json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(field_codes(&v), ["role:role_not_self_assigned"]);
    assert!(v.to_string().contains("never by the user"), "{v}");
    assert!(app.get_me(&u.access).await.1.get("role").is_none(), "the self view does not show it");
    // The server gives it; a value that is not a role is refused.
    let (status, v) = app.update_user(&t, &u.id, json!({"role": "owner"})).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["role:invalid_value".to_owned()]));
    let (status, v) = app.update_user(&t, &u.id, json!({"role": "admin"})).await;
    assert_eq!((status, &v["role"]), (StatusCode::OK, &json!("admin")), "{v}");
    // ZenML's superuser is the tenant's admin; the other contracts show nothing new.
    let (_, zen) = body(app.send(Method::GET, "/compat/zenml/users/me", &u.access, None).await).await;
    assert_eq!(zen["is_superuser"], true, "{zen}");
    let (_, jit) = body(app.send(Method::GET, "/compat/jitsudo/users/me", &u.access, None).await).await;
    assert!(!jit.to_string().contains("admin"), "{jit}");
}
