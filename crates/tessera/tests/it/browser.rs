//! The account page in a real browser: headless Chromium, driven through chromedriver with
//! the `fantoccini` WebDriver client, does what a new user would — signs in, changes the
//! display name, uploads an avatar, turns on two-step verification with a code computed here
//! from the secret the page shows, and signs out another session. Each step is checked
//! through the API as well. It also follows mailed links as a person would (confirms an
//! address, resets a forgotten password from the sign-in page's link, adds an address on the
//! account page), and signs in through another identity provider. Screenshots are saved under
//! `$CARGO_TARGET_TMPDIR/screenshots/` as test artefacts.
//!
//! Needs `chromium` and `chromium-driver` (Debian packages; `scripts/test` installs them).
//! `SKIP_BROWSER_TEST=1 scripts/test` leaves it out (reported as skipped) on a machine without them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::helpers::*;

struct Driver {
    _child: Child,
    port: u16,
}

async fn start_chromedriver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver must be installed (apt-get install -y chromium chromium-driver)");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("http://127.0.0.1:{port}/status")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Driver { _child: child, port };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not become ready");
}

async fn chromium(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1100,1400", format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

fn artefacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(artefacts().join(format!("{name}.png")), png).unwrap();
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait().at_most(Duration::from_secs(15)).for_element(Locator::Css(css)).await.unwrap_or_else(|e| {
        panic!("{css} did not appear: {e}");
    })
}

/// Waits until the page is one whose URL ends with `suffix` (the next page after a form).
async fn wait_for_url(c: &Client, suffix: &str) {
    for _ in 0..150 {
        if c.current_url().await.unwrap().as_str().ends_with(suffix) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page never became …{suffix}");
}

#[tokio::test]
async fn a_new_user_manages_the_account_page_in_headless_chromium() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    // Another device, to be signed out from the page.
    let other = app.sign_in_as(&t.id, &u.email).await;
    let (other_access, other_session) = (other.access, other.session_id);

    let driver = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = chromium(&driver, profile.path()).await;
    let account = app.url(&format!("/oidc/{}/account", t.id));

    // Signing in.
    c.goto(&account).await.unwrap();
    wait_for(&c, "input[name=email]").await.send_keys(&u.email).await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    shot(&c, "01-sign-in").await;
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&c, "#profile").await;
    assert_eq!(c.current_url().await.unwrap().as_str(), account);
    shot(&c, "02-account").await;

    // The display name.
    let name = c.find(Locator::Css("#f-display_name")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("Ada Lovelace").await.unwrap();
    c.find(Locator::Css("#profile button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&c, "#flash").await;
    assert_eq!(c.find(Locator::Css("#shown-name")).await.unwrap().text().await.unwrap(), "Ada Lovelace");
    assert_eq!(app.get_me(&u.access).await.1["display_name"], "Ada Lovelace");

    // The avatar, from a file on disk.
    use base64::Engine;
    let png = profile.path().join("me.png");
    std::fs::write(&png, base64::engine::general_purpose::STANDARD.decode(PNG_1X1).unwrap()).unwrap();
    c.find(Locator::Css("#f-avatar")).await.unwrap().send_keys(png.to_str().unwrap()).await.unwrap();
    c.find(Locator::Css("#picture button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&c, "#flash").await;
    let src = wait_for(&c, "img#avatar").await.attr("src").await.unwrap().unwrap();
    let me = app.get_me(&u.access).await.1;
    assert_eq!(me["avatar_url"].as_str(), Some(src.as_str()));
    assert_eq!(app.client.get(&src).send().await.unwrap().status(), StatusCode::OK);
    shot(&c, "03-profile-and-avatar").await;

    // Two-step verification: scan (read the key), type the code, see the recovery codes.
    c.find(Locator::Css("#totp-begin")).await.unwrap().click().await.unwrap();
    let secret = wait_for(&c, "#totp-secret").await.text().await.unwrap();
    c.find(Locator::Css(".qr svg")).await.expect("the QR code is on the page");
    shot(&c, "04-totp-qr").await;
    let key = tessera_auth::totp::base32_decode(&secret).unwrap();
    let code =
        format!("{:06}", tessera_auth::totp::code_at(&key, tessera_auth::totp::step_of(app.clock.now_unix()), 6));
    c.find(Locator::Css("#two-step input[name=code]")).await.unwrap().send_keys(&code).await.unwrap();
    c.find(Locator::Css("#two-step button[type=submit]")).await.unwrap().click().await.unwrap();
    let codes = wait_for(&c, "#recovery-codes").await.find_all(Locator::Css("li")).await.unwrap();
    assert_eq!(codes.len(), 10);
    shot(&c, "05-recovery-codes").await;
    let (status, v) = app.sign_in(&t.id, &u.email, PASSWORD).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("mfa_required")), "{v}");

    // The other device's session, signed out from the list.
    c.find(Locator::Css("#two-step a.button")).await.unwrap().click().await.unwrap();
    let row = wait_for(&c, &format!("tr[data-session='{other_session}']")).await;
    row.find(Locator::Css("button")).await.unwrap().click().await.unwrap();
    wait_for(&c, "#flash").await;
    assert!(c.find(Locator::Css(&format!("tr[data-session='{other_session}']"))).await.is_err());
    assert_eq!(app.get_me(&other_access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_me(&u.access).await.0, StatusCode::OK, "the API session was not touched");
    shot(&c, "06-sessions").await;

    // Readable on a phone: the same page at 390 px wide, without sideways scrolling.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&account).await.unwrap();
    wait_for(&c, "#profile").await;
    let overflow = c
        .execute("return document.documentElement.scrollWidth - document.documentElement.clientWidth;", vec![])
        .await
        .unwrap();
    assert_eq!(overflow.as_i64(), Some(0), "the page scrolls sideways on a phone");
    shot(&c, "07-phone").await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_forgotten_password_is_reset_and_an_address_confirmed_from_mailed_links_in_headless_chromium() {
    let receiver = crate::smtp::SmtpReceiver::start().await;
    let transport = receiver.transport();
    let app = spawn_app_with(|s| s.mail.transport = Some(transport)).await;
    let (t, u) = app.user().await;
    let verify_link = receiver.wait_for(&u.email, 1).await[0].link().0;

    let driver = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = chromium(&driver, profile.path()).await;

    // The confirmation link says so, once.
    c.goto(&verify_link).await.unwrap();
    let outcome = wait_for(&c, "#outcome").await.text().await.unwrap();
    assert!(outcome.contains("is confirmed"), "{outcome}");
    shot(&c, "11-address-confirmed").await;
    assert_eq!(app.get_me(&u.access).await.1["primary_email_verified"], json!(true));
    c.goto(&verify_link).await.unwrap();
    assert!(wait_for(&c, "#outcome").await.text().await.unwrap().contains("not valid"));

    // "Forgot password?" from the sign-in page, the mail, the new password.
    c.goto(&app.url(&format!("/oidc/{}/sign-in", t.id))).await.unwrap();
    wait_for(&c, "#forgot-password").await.click().await.unwrap();
    wait_for(&c, "input[name=email]").await.send_keys(&u.email).await.unwrap();
    shot(&c, "12-forgot-password").await;
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    assert!(wait_for(&c, "#outcome").await.text().await.unwrap().contains("on its way"));
    let reset_link = receiver.wait_for(&u.email, 2).await[1].link().0;
    c.goto(&reset_link).await.unwrap();
    let new_password = "an entirely new passphrase";
    wait_for(&c, "input[name=new_password]").await.send_keys(new_password).await.unwrap();
    shot(&c, "13-new-password").await;
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    assert!(wait_for(&c, "#outcome").await.text().await.unwrap().contains("has been changed"));
    assert_eq!(app.get_me(&u.access).await.0, StatusCode::UNAUTHORIZED, "signed out everywhere");
    assert_eq!(app.sign_in(&t.id, &u.email, new_password).await.0, StatusCode::OK);

    // The account page: sign in, add an address, see it waiting for confirmation.
    c.goto(&app.url(&format!("/oidc/{}/account", t.id))).await.unwrap();
    wait_for(&c, "input[name=email]").await.send_keys(&u.email).await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(new_password).await.unwrap();
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&c, "#emails").await;
    c.find(Locator::Css("#emails input[name=email]")).await.unwrap().send_keys("ada@work.example").await.unwrap();
    c.find(Locator::Css("#emails form[action$='/account/emails'] button")).await.unwrap().click().await.unwrap();
    wait_for(&c, "#flash").await;
    let row = wait_for(&c, "tr[data-email='ada@work.example']").await.text().await.unwrap();
    assert!(row.contains("Not confirmed"), "{row}");
    shot(&c, "14-addresses").await;
    receiver.wait_for("ada@work.example", 1).await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_person_signs_in_through_another_provider_in_headless_chromium() {
    let app = spawn_app().await;
    let (t, up) = (app.tenant().await, app.tenant().await);
    app.sign_up(&up, "ada@upstream.example").await;
    let callback = app.url(&format!("/oidc/{}/federation/up/callback", t.id));
    let client = json!({"name": "Acme", "redirect_uris": [callback], "grant_types": ["authorization_code"]});
    let (_, c) = app.server(reqwest::Method::POST, &up, "/v1/oauth/clients", Some(client)).await;
    let provider = json!({"slug": "up", "kind": "oidc", "display_name": "Upstream", "client_id": c["client_id"],
        "client_secret": c["client_secret"], "issuer": app.url(&format!("/oidc/{}", up.id))});
    let (status, _) = app.server(reqwest::Method::POST, &t, "/v1/identity-providers", Some(provider)).await;
    assert_eq!(status, StatusCode::CREATED);

    let driver = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = chromium(&driver, profile.path()).await;
    c.goto(&app.url(&format!("/oidc/{}/account", t.id))).await.unwrap();
    wait_for(&c, "a[data-provider='up']").await;
    shot(&c, "21-continue-with").await;
    c.find(Locator::Css("a[data-provider='up']")).await.unwrap().click().await.unwrap();
    // The provider's own sign-in page, then its consent page.
    wait_for(&c, "input[name=password]").await;
    assert!(c.current_url().await.unwrap().as_str().contains(&format!("/oidc/{}/", up.id)));
    c.find(Locator::Css("input[name=email]")).await.unwrap().send_keys("ada@upstream.example").await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let allow = wait_for(&c, "button[value=approve]").await;
    shot(&c, "22-provider-consent").await;
    allow.click().await.unwrap();
    // Back at this tenant, signed in.
    wait_for(&c, "#profile").await;
    assert_eq!(c.current_url().await.unwrap().as_str(), app.url(&format!("/oidc/{}/account", t.id)));
    shot(&c, "23-signed-in-through-provider").await;
    let (_, users) = app.server(reqwest::Method::GET, &t, "/v1/users", None).await;
    assert_eq!(users["items"][0]["oauth_provider"], json!("up"));
    c.close().await.unwrap();
}

/// WebDriver's virtual authenticator (Web Authentication, §11): a CTAP2 platform
/// authenticator that keeps discoverable credentials and verifies its user.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/webauthn/authenticator", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        let body = json!({"protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
            "hasUserVerification": true, "isUserVerified": true, "isUserConsenting": true});
        (reqwest::Method::POST, Some(body.to_string()))
    }
}

#[tokio::test]
async fn a_passkey_is_added_on_the_account_page_and_signs_in_without_a_password_in_headless_chromium() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    let driver = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = chromium(&driver, profile.path()).await;
    c.issue_cmd(AddVirtualAuthenticator).await.expect("a virtual authenticator");
    // WebAuthn needs a secure context whose host the RP ID (`localhost`) is.
    let account = app.url(&format!("/oidc/{}/account", t.id)).replace("127.0.0.1", "localhost");

    c.goto(&account).await.unwrap();
    wait_for(&c, "input[name=email]").await.send_keys(&u.email).await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    c.find(Locator::Css("form[action$='/sign-in'] button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&c, "#passkeys").await;

    // Adding one: the page's script asks the authenticator, then submits the page's form.
    c.find(Locator::Css("#passkey-name")).await.unwrap().send_keys("This laptop").await.unwrap();
    wait_for(&c, "#passkey-add:not([hidden])").await.click().await.unwrap();
    wait_for(&c, "#passkeys tr[data-passkey]").await;
    shot(&c, "31-passkey-added").await;
    let (_, list) = body(app.send(reqwest::Method::GET, "/v1/me/passkeys", &u.access, None).await).await;
    assert_eq!(list[0]["name"], "This laptop");

    // Renaming it on the page.
    let name = c.find(Locator::Css("#passkeys tr[data-passkey] input[name=passkey_name]")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("Work laptop").await.unwrap();
    c.find(Locator::Css("#passkeys form[action$='/rename'] button")).await.unwrap().click().await.unwrap();
    wait_for_url(&c, "done=passkey-renamed").await;
    let (_, list) = body(app.send(reqwest::Method::GET, "/v1/me/passkeys", &u.access, None).await).await;
    assert_eq!(list[0]["name"], "Work laptop");

    // Signed out, back in with the passkey alone: no email, no password.
    c.delete_all_cookies().await.unwrap();
    c.goto(&account).await.unwrap();
    // Chromium offers the passkey as the page loads (conditional mediation), and a consenting
    // authenticator takes the offer at once; where it is not offered, the button asks.
    if c.wait().at_most(Duration::from_secs(3)).for_element(Locator::Css("#profile")).await.is_err() {
        wait_for(&c, "#passkey-sign-in:not([hidden])").await.click().await.unwrap();
        wait_for(&c, "#profile").await;
    }
    assert_eq!(c.current_url().await.unwrap().as_str(), account);
    shot(&c, "32-signed-in-with-a-passkey").await;
    let (_, trail) = body(app.send(reqwest::Method::GET, "/v1/me/activity", &u.access, None).await).await;
    let methods: Vec<&str> =
        trail["items"].as_array().unwrap().iter().filter_map(|e| e["details"]["method"].as_str()).collect();
    assert_eq!(methods.first(), Some(&"passkey"), "{trail}");

    // Removing it.
    c.find(Locator::Css("#passkeys form[action$='/remove'] button")).await.unwrap().click().await.unwrap();
    wait_for_url(&c, "done=passkey-removed").await;
    let (_, list) = body(app.send(reqwest::Method::GET, "/v1/me/passkeys", &u.access, None).await).await;
    assert_eq!(list, json!([]));
    c.close().await.unwrap();
}

#[tokio::test]
async fn an_admin_finds_a_user_ends_their_session_and_suspends_them_in_the_console_in_headless_chromium() {
    let app = spawn_app().await;
    let (t, member) = app.user().await;
    let admin = app.sign_up(&t, "root@example.com").await;
    app.update_user(&t, &admin.id, json!({"role": "admin"})).await;
    for i in 0..30 {
        app.create_user(&t, json!({"primary_email": format!("customer{i:02}@shop.example")})).await;
    }
    let driver = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = chromium(&driver, profile.path()).await;
    let console = app.url(&format!("/oidc/{}/admin", t.id));

    c.goto(&console).await.unwrap();
    wait_for(&c, "input[name=email]").await.send_keys("root@example.com").await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    c.find(Locator::Css("form[action$='/sign-in'] button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&c, "input#q").await.send_keys("ada").await.unwrap();
    shot(&c, "41-console-home").await;
    c.find(Locator::Css("form[role=search] button")).await.unwrap().click().await.unwrap();
    let link = wait_for(&c, &format!("tr[data-user='{}'] a", member.id)).await;
    shot(&c, "42-console-search").await;
    link.click().await.unwrap();

    // Ending the user's session.
    wait_for(&c, "#sessions form button").await.click().await.unwrap();
    wait_for_url(&c, "done=sessions-ended").await;
    assert_eq!(app.get_me(&member.access).await.0, StatusCode::UNAUTHORIZED);
    // Suspending them, with a reason.
    c.find(Locator::Css("#reason")).await.unwrap().send_keys("chargeback").await.unwrap();
    c.find(Locator::Css("#suspensions form button")).await.unwrap().click().await.unwrap();
    wait_for_url(&c, "done=suspended").await;
    wait_for(&c, "tr[data-suspension]").await;
    shot(&c, "43-console-user-suspended").await;
    assert_eq!(app.sign_in(&t.id, &member.email, PASSWORD).await.0, StatusCode::FORBIDDEN);
    // The page's own activity shows both, done by this administrator.
    let activity = c.find(Locator::Css("#activity")).await.unwrap().text().await.unwrap();
    assert!(activity.contains("user.suspended") && activity.contains("by you"), "{activity}");
    let (_, log) = app.server(reqwest::Method::GET, &t, &format!("/v1/audit?user_id={}", member.id), None).await;
    assert_eq!(log["items"][0]["admin_id"], admin.id.as_str());
    c.close().await.unwrap();
}
