//! The tenant's console, as an ordinary HTTP client drives it: who may enter, and finding a
//! user among many.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// A browser signed in to the hosted pages as `email`.
async fn signed_in(app: &TestApp, t: &Tenant, email: &str) -> FormClient {
    let browser = FormClient::new(&app.base);
    let base = format!("{}/oidc/{}", app.base, t.id);
    let page = browser.get(&format!("{base}/sign-in?return_to=admin")).await;
    let csrf = page.input("csrf").unwrap();
    let done = browser.sign_in(&format!("{base}/sign-in"), &csrf, email, "admin").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(&app.base), format!("{base}/admin"), "back to the console after signing in");
    browser
}

#[tokio::test]
async fn only_admins_enter_and_they_find_a_user_by_the_start_of_an_address_or_username() {
    let app = spawn_app().await;
    let (t, member) = app.user().await;
    let admin = app.sign_up(&t, "root@example.com").await;
    let (status, _) = app.update_user(&t, &admin.id, json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::OK);
    for i in 0..60 {
        let u = json!({"primary_email": format!("user{i:02}@shop.example"), "username": format!("shopper{i:02}")});
        assert_eq!(app.create_user(&t, u).await.0, StatusCode::CREATED);
    }
    let base = format!("{}/oidc/{}", app.base, t.id);

    // Nobody signed in is sent to sign in; a member is refused everywhere in it.
    let anonymous = FormClient::new(&app.base).get(&format!("{base}/admin")).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert!(anonymous.location(&app.base).ends_with("/sign-in?return_to=admin"));
    let browser = signed_in(&app, &t, &member.email).await;
    for path in ["admin", "admin/users?q=user", &format!("admin/users/{}", admin.id)] {
        let page = browser.get(&format!("{base}/{path}")).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.text.contains("Not an administrator"), "{path}");
        assert!(!page.text.contains("root@example.com"), "{path}");
    }

    let browser = signed_in(&app, &t, "root@example.com").await;
    let home = browser.get(&format!("{base}/admin")).await;
    assert_eq!(home.status, StatusCode::OK);
    assert_eq!(home.headers["cache-control"], "no-store");
    assert!(home.headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    // A page of 50, then the rest; by the start of the address or of the username, any case.
    let first = browser.get(&format!("{base}/admin/users?q=USER")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.text.matches("data-user=").count(), 50);
    let next = first.text.split(r#"id="next" href=""#).nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    let rest = browser.get(&format!("{}{next}", app.base)).await;
    assert_eq!(rest.text.matches("data-user=").count(), 10);
    assert!(!rest.text.contains(r#"id="next""#));
    let by_name = browser.get(&format!("{base}/admin/users?q=shopper4")).await;
    assert_eq!(by_name.text.matches("data-user=").count(), 10, "shopper40 to shopper49");
    let none = browser.get(&format!("{base}/admin/users?q=nobody")).await;
    assert!(none.text.contains(r#"id="none""#));

    // A user's page: the server's view of them, their sessions and activity.
    let page = browser.get(&format!("{base}/admin/users/{}", member.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains(&member.email) && page.text.contains(&member.session_id), "{}", page.text);
    assert!(page.text.contains("session.created"));
}
