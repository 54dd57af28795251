//! Email: addresses, verification, password recovery and the undoing of a change of primary
//! address, with every message delivered over SMTP to a real server on loopback and its link
//! read from the message's text part, as a person's mail client would show it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::smtp::SmtpReceiver;

/// A server whose mail goes to a receiver on loopback.
async fn app_with_mail() -> (TestApp, SmtpReceiver) {
    let receiver = SmtpReceiver::start().await;
    let transport = receiver.transport();
    let app = spawn_app_with(|s| s.mail.transport = Some(transport)).await;
    (app, receiver)
}

async fn post_token(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    body(app.client.post(app.url(path)).json(&json!({"token": token})).send().await.unwrap()).await
}

async fn my_emails(app: &TestApp, access: &str) -> Vec<Value> {
    let (status, v) = body(app.send(Method::GET, "/v1/me/emails", access, None).await).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v.as_array().unwrap().clone()
}

async fn activity_types(app: &TestApp, access: &str) -> Vec<String> {
    let (_, v) = body(app.send(Method::GET, "/v1/me/activity?limit=200", access, None).await).await;
    v["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn sign_up_mails_a_link_that_verifies_the_address_once_and_only_once() {
    let (app, mail) = app_with_mail().await;
    let t = app.tenant().await;
    let u = app.sign_up(&t, "Ada@Example.com").await;
    let (status, me) = app.get_me(&u.access).await;
    assert_eq!((status, &me["primary_email_verified"]), (StatusCode::OK, &json!(false)));
    let (_, bird) = body(app.send(Method::GET, "/compat/bird/me", &u.access, None).await).await;
    assert_eq!(bird["status"], json!("pending"));

    let sent = mail.wait_for("ada@example.com", 1).await;
    let message = &sent[0];
    assert_eq!(message.from, "no-reply@localhost");
    assert!(message.header("subject").unwrap().contains("Acme"), "{:?}", message.header("subject"));
    assert!(message.part("text/html").contains("verify-email?token="));
    let (link, token) = message.link();
    assert!(link.starts_with(&format!("{}/oidc/{}/verify-email?token=", app.base, t.id)), "{link}");

    let (status, v) = post_token(&app, "/v1/auth/verify-email", &token).await;
    assert_eq!((status, v), (StatusCode::OK, json!({"email": "ada@example.com", "verified": true})));
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!(me["primary_email_verified"], json!(true));
    // Bird's account: its default email is the primary, and pending turns active with it.
    let (_, bird) = body(app.send(Method::GET, "/compat/bird/me", &u.access, None).await).await;
    assert_eq!((&bird["defaultEmail"], &bird["status"]), (&json!("ada@example.com"), &json!("active")), "{bird}");
    let emails = my_emails(&app, &u.access).await;
    assert_eq!(emails.len(), 1);
    assert_eq!((&emails[0]["primary"], &emails[0]["verified"]), (&json!(true), &json!(true)));

    let (status, v) = post_token(&app, "/v1/auth/verify-email", &token).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["token:invalid_token".to_owned()]));
    assert!(activity_types(&app, &u.access).await.contains(&"user.email_verified".to_owned()));
}

#[tokio::test]
async fn a_token_past_its_lifetime_or_for_another_purpose_does_nothing() {
    let (app, mail) = app_with_mail().await;
    let t = app.tenant().await;
    let u = app.sign_up(&t, "ada@example.com").await;
    let (_, token) = mail.wait_for("ada@example.com", 1).await[0].link();

    // A verification token is no reset token.
    let confirm = json!({"token": token, "new_password": "a new and long passphrase"});
    let (status, v) =
        body(app.client.post(app.url("/v1/auth/password-reset/confirm")).json(&confirm).send().await.unwrap()).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["token:invalid_token".to_owned()]));
    let (status, _) = post_token(&app, "/v1/auth/revert-email", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    app.advance(chrono::Duration::hours(25));
    let (status, v) = post_token(&app, "/v1/auth/verify-email", &token).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["token:invalid_token".to_owned()]));
    let (status, v) = post_token(&app, "/v1/auth/verify-email", "tsr_ve_made-up").await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["token:invalid_token".to_owned()]));
    let fresh = app.sign_in_as(&t.id, &u.email).await;
    let (_, me) = app.get_me(&fresh.access).await;
    assert_eq!(me["primary_email_verified"], json!(false));
}

#[tokio::test]
async fn addresses_are_added_verified_made_primary_and_removed() {
    let (app, mail) = app_with_mail().await;
    let t = app.tenant().await;
    let u = app.sign_up(&t, "ada@example.com").await;
    mail.wait_for("ada@example.com", 1).await;

    let (status, added) =
        body(app.send(Method::POST, "/v1/me/emails", &u.access, Some(json!({"email": "Ada@Work.example"}))).await)
            .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(
        (&added["email"], &added["primary"], &added["verified"]),
        (&json!("ada@work.example"), &json!(false), &json!(false))
    );
    let id = added["id"].as_str().unwrap().to_owned();
    assert_eq!(my_emails(&app, &u.access).await.len(), 2);

    // Only a verified address can be the primary.
    let (status, v) = body(app.send(Method::POST, &format!("/v1/me/emails/{id}/primary"), &u.access, None).await).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["email:unverified".to_owned()]));

    // Another account cannot have it, whatever its case; nor sign up with it.
    let grace = app.sign_up(&t, "grace@example.com").await;
    let (status, _) =
        body(app.send(Method::POST, "/v1/me/emails", &grace.access, Some(json!({"email": "ADA@work.example"}))).await)
            .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app.sign_up_with(&t.id, json!({"email": "ada@work.example", "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A re-send is a second mail; the link of either verifies.
    let (status, _) =
        body(app.send(Method::POST, &format!("/v1/me/emails/{id}/verification"), &u.access, None).await).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let sent = mail.wait_for("ada@work.example", 2).await;
    let (_, token) = sent[1].link();
    let (status, _) = post_token(&app, "/v1/auth/verify-email", &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) =
        body(app.send(Method::POST, &format!("/v1/me/emails/{id}/verification"), &u.access, None).await).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["email:already_verified".to_owned()]));

    // Made primary: the user's primary_email follows, the old one stays as another address and
    // is told, with a link that would undo it.
    let (status, list) =
        body(app.send(Method::POST, &format!("/v1/me/emails/{id}/primary"), &u.access, None).await).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let primary: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["primary"] == json!(true))
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    assert_eq!(primary, ["ada@work.example"]);
    let (_, me) = app.get_me(&u.access).await;
    assert_eq!((&me["primary_email"], &me["primary_email_verified"]), (&json!("ada@work.example"), &json!(true)));
    let notice = &mail.wait_for("ada@example.com", 2).await[1];
    assert!(notice.part("text/plain").contains("ada@work.example"));
    assert!(notice.link().0.contains("/revert-email?token="));

    // The primary cannot be removed; the old address can.
    let (status, v) = body(app.send(Method::DELETE, &format!("/v1/me/emails/{id}"), &u.access, None).await).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["email:primary".to_owned()]));
    let old = list.as_array().unwrap().iter().find(|a| a["email"] == json!("ada@example.com")).unwrap()["id"].clone();
    let old = old.as_str().unwrap();
    let (status, _) = body(app.send(Method::DELETE, &format!("/v1/me/emails/{old}"), &u.access, None).await).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = body(app.send(Method::DELETE, &format!("/v1/me/emails/{old}"), &u.access, None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(my_emails(&app, &u.access).await.len(), 1);
    // Freed, the address can be someone else's.
    let (status, _) =
        body(app.send(Method::POST, "/v1/me/emails", &grace.access, Some(json!({"email": "ada@example.com"}))).await)
            .await;
    assert_eq!(status, StatusCode::CREATED);

    let kinds = activity_types(&app, &u.access).await;
    for kind in ["user.email_added", "user.email_verified", "user.primary_email_changed", "user.email_removed"] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn the_server_adds_verified_addresses_and_the_tenant_can_require_verification() {
    let (app, mail) = app_with_mail().await;
    let t = app.tenant().await;
    let (status, _) =
        app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"require_verified_email": true}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = app.sign_up_with(&t.id, json!({"email": "ada@example.com", "password": PASSWORD})).await;
    assert_eq!((status, v), (StatusCode::ACCEPTED, json!({"status": "verification_sent"})));
    let (_, users) = app.server(Method::GET, &t, "/v1/users", None).await;
    let id = users["items"][0]["id"].as_str().unwrap().to_owned();

    // A wrong password still says only that; the right one says the address is unverified.
    let (status, v) = app.sign_in(&t.id, "ada@example.com", "not the password at all").await;
    assert_eq!((status, &v["code"]), (StatusCode::UNAUTHORIZED, &json!("unauthenticated")));
    let (status, v) = app.sign_in(&t.id, "ada@example.com", PASSWORD).await;
    assert_eq!((status, &v["code"]), (StatusCode::FORBIDDEN, &json!("email_unverified")));

    let (_, token) = mail.wait_for("ada@example.com", 1).await[0].link();
    assert_eq!(post_token(&app, "/v1/auth/verify-email", &token).await.0, StatusCode::OK);
    let (status, _) = app.sign_in(&t.id, "ada@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    // Bird's status follows the verified primary: pending, then active.
    let (_, user) = app.server(Method::GET, &t, &format!("/v1/users/{id}"), None).await;
    assert_eq!(user["status"], json!("active"));

    let path = format!("/v1/users/{id}/emails");
    let (status, v) =
        app.server(Method::POST, &t, &path, Some(json!({"email": "ada@lab.example", "verified": true}))).await;
    assert_eq!((status, &v["verified"]), (StatusCode::CREATED, &json!(true)), "{v}");
    let (status, v) = app.server(Method::GET, &t, &path, None).await;
    assert_eq!((status, v.as_array().unwrap().len()), (StatusCode::OK, 2));
    // The server's verified address needs no mail.
    assert_eq!(mail.all().iter().filter(|m| m.to == ["ada@lab.example"]).count(), 0);
}

#[tokio::test]
async fn password_reset_looks_the_same_for_every_address_and_ends_every_session() {
    let (app, mail) = app_with_mail().await;
    let t = app.tenant().await;
    let u = app.sign_up(&t, "ada@example.com").await;
    app.enable_totp(&u, b"0123456789abcdefghij").await;
    mail.wait_for("ada@example.com", 1).await;

    let ask = |email: &'static str| {
        app.client
            .post(app.url("/v1/auth/password-reset"))
            .header("X-Tenant-ID", &t.id)
            .json(&json!({"email": email}))
            .send()
    };
    let known = ask("ADA@example.com").await.unwrap();
    let unknown = ask("nobody@example.com").await.unwrap();
    assert_eq!((known.status(), unknown.status()), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    let (known_headers, unknown_headers) = (known.headers().len(), unknown.headers().len());
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    assert_eq!(known_headers, unknown_headers);

    let (link, token) = mail.wait_for("ada@example.com", 2).await[1].link();
    assert!(link.starts_with(&format!("{}/oidc/{}/reset-password?token=", app.base, t.id)), "{link}");
    assert!(mail.all().iter().all(|m| m.to != ["nobody@example.com"]));

    let confirm = |token: &str, password: &str| {
        app.client
            .post(app.url("/v1/auth/password-reset/confirm"))
            .json(&json!({"token": token, "new_password": password}))
            .send()
    };
    let (status, v) = body(confirm(&token, "short").await.unwrap()).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["new_password:too_short".to_owned()]));
    let new_password = "a brand new and long passphrase";
    assert_eq!(confirm(&token, new_password).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(confirm(&token, "another long passphrase too").await.unwrap().status(), StatusCode::BAD_REQUEST);

    // Every session ended, access tokens with them; the old password is gone.
    assert_eq!(app.get_me(&u.access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&u.refresh).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.sign_in(&t.id, &u.email, PASSWORD).await.0, StatusCode::UNAUTHORIZED);
    // The second factor is still asked for.
    let (status, v) = app.sign_in(&t.id, &u.email, new_password).await;
    assert_eq!((status, &v["code"]), (StatusCode::UNAUTHORIZED, &json!("mfa_required")));
    let (_, entries) =
        app.server(Method::GET, &t, &format!("/v1/audit?user_id={}&type=user.password_reset", u.id), None).await;
    assert_eq!(entries["items"].as_array().unwrap().len(), 1, "{entries}");
}

#[tokio::test]
async fn password_reset_requests_are_limited_per_address() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res =
            app.send_for_tenant(Method::POST, "/v1/auth/password-reset", &t.id, json!({"email": "x@example.com"}));
        statuses.push(res.await.status());
    }
    assert_eq!(statuses[..3], [StatusCode::ACCEPTED; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
    let res = app.send_for_tenant(Method::POST, "/v1/auth/password-reset", &t.id, json!({"email": "y@example.com"}));
    assert_eq!(res.await.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_change_of_primary_address_can_be_undone_from_the_old_one() {
    let (app, mail) = app_with_mail().await;
    let t = app.tenant().await;
    let u = app.sign_up(&t, "ada@example.com").await;
    let (_, token) = mail.wait_for("ada@example.com", 1).await[0].link();
    assert_eq!(post_token(&app, "/v1/auth/verify-email", &token).await.0, StatusCode::OK);

    // Someone with the session changes the address.
    let (status, me) = app.patch_me(&u.access, json!({"primary_email": "mallory@example.com"})).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["primary_email_verified"], json!(false));
    mail.wait_for("mallory@example.com", 1).await;
    let notice = &mail.wait_for("ada@example.com", 2).await[1];
    assert!(notice.part("text/plain").contains("mallory@example.com"));
    let (link, token) = notice.link();
    assert!(link.starts_with(&format!("{}/oidc/{}/revert-email?token=", app.base, t.id)), "{link}");

    let (status, v) = post_token(&app, "/v1/auth/revert-email", &token).await;
    assert_eq!((status, v), (StatusCode::OK, json!({"email": "ada@example.com", "verified": true})));
    assert_eq!(app.get_me(&u.access).await.0, StatusCode::UNAUTHORIZED, "every session ends");
    let again = app.sign_in_as(&t.id, "ada@example.com").await;
    let (_, me) = app.get_me(&again.access).await;
    assert_eq!((&me["primary_email"], &me["primary_email_verified"]), (&json!("ada@example.com"), &json!(true)));
    let emails: Vec<Value> = my_emails(&app, &again.access).await.into_iter().map(|a| a["email"].clone()).collect();
    assert_eq!(emails, [json!("ada@example.com")], "the address that replaced it has left the account");
    assert_eq!(post_token(&app, "/v1/auth/revert-email", &token).await.0, StatusCode::BAD_REQUEST);
    // The other address is free again.
    assert_eq!(
        app.sign_up_with(&t.id, json!({"email": "mallory@example.com", "password": PASSWORD})).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn mail_queued_while_the_mail_server_is_down_arrives_once_it_is_back() {
    let mut receiver = SmtpReceiver::start().await;
    let addr = receiver.addr;
    let transport = receiver.transport();
    let app = spawn_app_with(|s| s.mail.transport = Some(transport)).await;
    receiver.stop().await;
    let t = app.tenant().await;
    let emails: Vec<String> = (0..5).map(|i| format!("user{i}@example.com")).collect();
    for e in &emails {
        app.sign_up(&t, e).await;
    }
    // Attempts fail meanwhile and are put off; nothing is lost.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(app.service().pending_mail().await.unwrap(), emails.len() as u64);
    let receiver = SmtpReceiver::start_on(addr).await;
    for _ in 0..100 {
        app.advance(chrono::Duration::seconds(30));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if receiver.all().len() >= emails.len() {
            break;
        }
    }
    for e in &emails {
        receiver.wait_for(e, 1).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(receiver.all().len(), emails.len(), "each message once");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("tessera_mail_pending"), 0.0);
    assert_eq!(value(r#"tessera_mail_attempts_total{outcome="sent"}"#), emails.len() as f64);
    assert!(value(r#"tessera_mail_attempts_total{outcome="retrying"}"#) >= emails.len() as f64, "{metrics}");
}

#[tokio::test]
async fn the_default_transport_writes_each_message_as_an_eml_file() {
    let app = spawn_app().await;
    let t = app.tenant().await;
    app.sign_up(&t, "ada@example.com").await;
    let mut files = Vec::new();
    for _ in 0..100 {
        files = std::fs::read_dir(app.mail_dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        if !files.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("To: ada@example.com"), "{text}");
    assert!(text.contains("multipart/alternative"), "{text}");
}

#[tokio::test]
async fn the_revert_page_changes_nothing_until_confirmed_and_sign_in_offers_a_new_link() {
    let (app, mail) = app_with_mail().await;
    let t = app.tenant().await;
    let u = app.sign_up(&t, "ada@example.com").await;
    mail.wait_for("ada@example.com", 1).await;
    let (status, _) = app.patch_me(&u.access, json!({"primary_email": "new@example.com"})).await;
    assert_eq!(status, StatusCode::OK);
    let (link, _) = mail.wait_for("ada@example.com", 2).await[1].link();

    // Opening the link (as a mail scanner would) only explains.
    let browser = FormClient::new(&app.base);
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(app.get_me(&u.access).await.1["primary_email"], json!("new@example.com"));
    let (csrf, token) = (page.input("csrf").unwrap(), page.input("token").unwrap());
    let done = browser.post(&format!("/oidc/{}/revert-email", t.id), &[("csrf", &csrf), ("token", &token)]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains("ada@example.com is your account"), "{}", done.text);
    let again = browser.post(&format!("/oidc/{}/revert-email", t.id), &[("csrf", &csrf), ("token", &token)]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.text.contains("not valid"));

    // With verification required, the sign-in page says why and mails a new link.
    let (status, _) =
        app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"require_verified_email": true}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.sign_up_with(&t.id, json!({"email": "grace@example.com", "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    mail.wait_for("grace@example.com", 1).await;
    let form = browser.get(&format!("/oidc/{}/sign-in", t.id)).await;
    assert!(form.text.contains("Forgot password?"));
    let csrf = form.input("csrf").unwrap();
    let refused = browser.sign_in(&format!("/oidc/{}/sign-in", t.id), &csrf, "grace@example.com", "account").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text.contains(r#"id="email-unverified""#), "{}", refused.text);
    let sent = browser
        .post(&format!("/oidc/{}/verify-email/resend", t.id), &[("csrf", &csrf), ("email", "grace@example.com")])
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    let (_, token) = mail.wait_for("grace@example.com", 2).await[1].link();
    assert_eq!(post_token(&app, "/v1/auth/verify-email", &token).await.0, StatusCode::OK);
    let signed_in = browser.sign_in(&format!("/oidc/{}/sign-in", t.id), &csrf, "grace@example.com", "account").await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: the PostgreSQL half of scripts/test runs it (--run-ignored all)"]
async fn two_instances_over_one_postgresql_send_every_message_once() {
    let (db_url, _db) = fresh_database().await;
    assert!(db_url.starts_with("postgres"), "two instances share a PostgreSQL database, not {db_url}");
    let receiver = SmtpReceiver::start().await;
    let settings = tessera::config::Settings {
        listen: "127.0.0.1:0".into(),
        database_url: db_url,
        root_key: Some(ROOT_KEY.to_owned().into()),
        public_url: Some("http://tessera.test".into()),
        db_max_connections: 4,
        hash_concurrency: Some(2),
        mail: tessera::config::MailSettings { transport: Some(receiver.transport()), ..Default::default() },
        ..Default::default()
    };
    let clock = std::sync::Arc::new(tessera_core::SystemClock);
    let a = tessera::server::start(&settings, clock.clone()).await.unwrap();
    let b = tessera::server::start(&settings, clock).await.unwrap();
    let bases = [format!("http://{}", a.addr), format!("http://{}", b.addr)];
    let client = reqwest::Client::new();
    let res = client.post(format!("{}/v1/tenants", bases[0])).bearer_auth(ROOT_KEY).json(&json!({"name": "Acme"}));
    let (_, tenant) = body(res.send().await.unwrap()).await;
    let tenant = tenant["id"].as_str().unwrap().to_owned();

    let n = 40;
    for i in 0..n {
        let res = client
            .post(format!("{}/v1/auth/sign-up", bases[i % 2]))
            .header("X-Tenant-ID", &tenant)
            .json(&json!({"email": format!("u{i}@example.com"), "password": PASSWORD}));
        assert_eq!(res.send().await.unwrap().status(), StatusCode::CREATED);
    }
    for i in 0..n {
        receiver.wait_for(&format!("u{i}@example.com"), 1).await;
    }
    // A second attempt of any message would show up now.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(receiver.all().len(), n, "each message once");
    let mut sent = Vec::new();
    for base in &bases {
        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        let line = metrics.lines().find(|l| l.starts_with(r#"tessera_mail_attempts_total{outcome="sent"}"#)).unwrap();
        sent.push(line.rsplit(' ').next().unwrap().parse::<usize>().unwrap());
    }
    assert_eq!(sent.iter().sum::<usize>(), n, "each message sent by one instance: {sent:?}");
    a.shutdown(std::time::Duration::from_secs(5)).await;
    b.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_reset_link_works_for_thirty_minutes_and_an_undo_link_for_seven_days() {
    let (app, mail) = app_with_mail().await;
    let t = app.tenant().await;
    let u = app.sign_up(&t, "ada@example.com").await;
    mail.wait_for("ada@example.com", 1).await;
    let ask = json!({"email": "ada@example.com"});
    assert_eq!(
        app.send_for_tenant(Method::POST, "/v1/auth/password-reset", &t.id, ask).await.status(),
        StatusCode::ACCEPTED
    );
    let (_, reset) = mail.wait_for("ada@example.com", 2).await[1].link();
    let (status, _) = app.patch_me(&u.access, json!({"primary_email": "new@example.com"})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, revert) = mail.wait_for("ada@example.com", 3).await[2].link();

    app.advance(chrono::Duration::minutes(31));
    let confirm = json!({"token": reset, "new_password": "a brand new and long passphrase"});
    let res = app.client.post(app.url("/v1/auth/password-reset/confirm")).json(&confirm).send().await.unwrap();
    let (status, v) = body(res).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["token:invalid_token".to_owned()]));
    app.advance(chrono::Duration::days(7));
    let (status, v) = post_token(&app, "/v1/auth/revert-email", &revert).await;
    assert_eq!((status, field_codes(&v)), (StatusCode::BAD_REQUEST, vec!["token:invalid_token".to_owned()]));
    // Nothing changed: the old password still signs in, with the new address.
    assert_eq!(app.sign_in(&t.id, "new@example.com", PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn with_verification_required_sign_up_tells_nothing_of_who_is_registered() {
    let (app, mail) = app_with_mail().await;
    let t = app.tenant().await;
    app.sign_up(&t, "ada@example.com").await;
    let (_, token) = mail.wait_for("ada@example.com", 1).await[0].link();
    assert_eq!(post_token(&app, "/v1/auth/verify-email", &token).await.0, StatusCode::OK);
    let (status, _) =
        app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"require_verified_email": true}))).await;
    assert_eq!(status, StatusCode::OK);

    // A new address and a registered one get the same answer: no tokens, no conflict.
    let new = app.sign_up_with(&t.id, json!({"email": "grace@example.com", "password": PASSWORD})).await;
    let taken =
        app.sign_up_with(&t.id, json!({"email": "Ada@Example.com", "password": "another long passphrase"})).await;
    let expected = (StatusCode::ACCEPTED, json!({"status": "verification_sent"}));
    assert_eq!(new, expected);
    assert_eq!(taken, expected);

    // The new address gets its verification link; the owner of the registered one is told
    // that someone tried, with the way to sign in and to reset the password.
    let (_, token) = mail.wait_for("grace@example.com", 1).await[0].link();
    assert_eq!(post_token(&app, "/v1/auth/verify-email", &token).await.0, StatusCode::OK);
    assert_eq!(app.sign_in(&t.id, "grace@example.com", PASSWORD).await.0, StatusCode::OK);
    let told = &mail.wait_for("ada@example.com", 2).await[1];
    assert!(told.header("Subject").unwrap().contains("Someone tried to create"), "{:?}", told.header("Subject"));
    let text = told.part("text/plain");
    assert!(
        text.contains(&format!("/oidc/{}/sign-in", t.id)) && text.contains(&format!("/oidc/{}/reset-password", t.id))
    );
    // Nothing changed for the owner: the old password still signs in.
    assert_eq!(app.sign_in(&t.id, "ada@example.com", PASSWORD).await.0, StatusCode::OK);

    // Stack's sign-up follows the same rule.
    let res = app
        .client
        .post(app.url("/compat/stack-auth/api/v1/auth/password/sign-up"))
        .header("x-stack-project-id", &t.id)
        .header("x-stack-access-type", "client")
        .header("x-stack-publishable-client-key", &t.publishable_key)
        .json(&json!({"email": "ada@example.com", "password": "another long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(body(res).await, expected);

    // The owner is told a few times an hour at most, however often someone tries.
    for _ in 0..5 {
        let again = app.sign_up_with(&t.id, json!({"email": "ada@example.com", "password": PASSWORD})).await;
        assert_eq!(again, expected);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let notices = mail.all().iter().filter(|m| m.to == ["ada@example.com"]).count();
    assert_eq!(notices, 1 + 3, "the sign-up's own mail and three notices: {notices}");
}
