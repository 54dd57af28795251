//! `spawn_app()` and the typed helpers every test module uses.

use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::{IntoUrl, Method, Response, StatusCode};
use serde_json::{Value, json};
use tessera::config::Settings;
use tessera::server::Running;
use tessera_core::ManualClock;
use tessera_testkit::TestDatabase;

pub const PASSWORD: &str = "correct horse battery staple";
pub const ROOT_KEY: &str = "test-root-key-0123456789abcdef";

/// A 1×1 PNG.
pub const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
/// A 1×1 GIF.
pub const GIF_1X1: &str = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub settings: Settings,
    /// Where mail goes unless a test sends it elsewhere: each message an `.eml` file.
    pub mail_dir: tempfile::TempDir,
    running: Option<Running>,
    _db: TestDatabase,
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_env_filter("info,sqlx=warn").with_test_writer().try_init();
        }
    });
}

/// A fresh database on the backend the suite runs against (PostgreSQL when
/// `TEST_DATABASE_URL` is set), removed when the returned guard is dropped.
pub(crate) async fn fresh_database() -> (String, TestDatabase) {
    let db = TestDatabase::from_env().await;
    (db.url.clone(), db)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server on port 0 with a fresh database and a manual clock; `adjust` may change
/// the settings first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    init_logs();
    let (url, db) = fresh_database().await;
    let mail_dir = tempfile::tempdir().expect("a mail directory");
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: url,
        root_key: Some(ROOT_KEY.to_owned().into()),
        db_max_connections: 4,
        hash_concurrency: Some(2),
        purge_interval_seconds: 3600,
        // The hook receivers of the tests listen on loopback.
        outbound: tessera::config::OutboundSettings { allow_private_targets: true },
        mail: tessera::config::MailSettings {
            transport: Some(format!("file:{}", mail_dir.path().display())),
            ..Default::default()
        },
        ..Settings::default()
    };
    adjust(&mut settings);
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let running = tessera::server::start(&settings, clock.clone()).await.expect("server starts");
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    TestApp { base, client, clock, settings, mail_dir, running: Some(running), _db: db }
}

/// A tenant as created through the operator API.
pub struct Tenant {
    pub id: String,
    pub server_key: String,
    pub publishable_key: String,
}

/// A signed-in user.
#[derive(Clone)]
pub struct SignedIn {
    pub tenant: String,
    pub id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
    pub session_id: String,
}

/// Status and JSON body (or `Null` for an empty or non-JSON body).
pub async fn body(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The machine codes of the fields named in an error body, as `field:code`, sorted.
pub fn field_codes(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["details"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| format!("{}:{}", f["field"].as_str().unwrap_or("?"), f["code"].as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn service(&self) -> &Arc<tessera_service::Service> {
        &self.running.as_ref().expect("running").service
    }

    /// Stops the server and starts a new one on the same address, database and clock.
    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            self.settings.listen = r.addr.to_string();
            r.shutdown(Duration::from_secs(5)).await;
        }
        let running = tessera::server::start(&self.settings, self.clock.clone()).await.expect("server restarts");
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    pub async fn tenant(&self) -> Tenant {
        let res = self
            .client
            .post(self.url("/v1/tenants"))
            .bearer_auth(ROOT_KEY)
            .json(&json!({"name": "Acme"}))
            .send()
            .await
            .unwrap();
        let (status, v) = body(res).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        Tenant {
            id: v["id"].as_str().unwrap().into(),
            server_key: v["server_key"].as_str().unwrap().into(),
            publishable_key: v["publishable_key"].as_str().unwrap().into(),
        }
    }

    pub async fn sign_up(&self, tenant: &Tenant, email: &str) -> SignedIn {
        let (status, v) = self.sign_up_with(&tenant.id, json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        signed_in(&tenant.id, email, &v)
    }

    pub async fn sign_up_with(&self, tenant: &str, json_body: Value) -> (StatusCode, Value) {
        body(self.send_for_tenant(Method::POST, "/v1/auth/sign-up", tenant, json_body).await).await
    }

    pub async fn sign_in(&self, tenant: &str, email: &str, password: &str) -> (StatusCode, Value) {
        let res = self.send_for_tenant(
            Method::POST,
            "/v1/auth/sign-in",
            tenant,
            json!({"email": email, "password": password}),
        );
        body(res.await).await
    }

    /// `POST /v1/auth/refresh`, which needs no tenant header.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        let token = json!({"refresh_token": refresh_token});
        self.client.post(self.url("/v1/auth/refresh")).json(&token).send().await.unwrap()
    }

    /// A new session of an account whose password is `PASSWORD`.
    pub async fn sign_in_as(&self, tenant: &str, email: &str) -> SignedIn {
        let (_, v) = self.sign_in(tenant, email, PASSWORD).await;
        signed_in(tenant, email, &v)
    }

    /// `method path` for a tenant's public endpoints (`X-Tenant-ID`), with a JSON body.
    pub async fn send_for_tenant(&self, method: Method, path: &str, tenant: &str, json_body: Value) -> Response {
        self.client.request(method, self.url(path)).header("X-Tenant-ID", tenant).json(&json_body).send().await.unwrap()
    }

    /// A new tenant with one signed-up user.
    pub async fn user(&self) -> (Tenant, SignedIn) {
        let t = self.tenant().await;
        let u = self.sign_up(&t, "ada@example.com").await;
        (t, u)
    }

    pub async fn get_me(&self, access: &str) -> (StatusCode, Value) {
        body(self.client.get(self.url("/v1/me")).bearer_auth(access).send().await.unwrap()).await
    }

    pub async fn patch_me(&self, access: &str, patch: Value) -> (StatusCode, Value) {
        body(self.client.patch(self.url("/v1/me")).bearer_auth(access).json(&patch).send().await.unwrap()).await
    }

    pub async fn server(
        &self,
        method: Method,
        tenant: &Tenant,
        path: &str,
        json_body: Option<Value>,
    ) -> (StatusCode, Value) {
        body(self.send(method, path, &tenant.server_key, json_body).await).await
    }

    /// `method path` with a bearer credential (an access token, a server or root key) and, if
    /// given, a JSON body.
    pub async fn send(&self, method: Method, path: &str, bearer: &str, json_body: Option<Value>) -> Response {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(bearer);
        if let Some(b) = json_body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// `method path` with a bearer credential and a body that is not JSON.
    pub async fn send_body(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        content_type: &str,
        bytes: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(bearer)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// Posts `form` to `url` (an issuer's endpoints take full URLs), with the client's id and
    /// secret as HTTP Basic when given.
    pub async fn post_form(&self, url: impl IntoUrl, client: Option<(&str, &str)>, form: &[(&str, &str)]) -> Response {
        let mut req = self.client.post(url).form(form);
        if let Some((id, secret)) = client {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().await.unwrap()
    }

    /// The server's `POST /v1/users`.
    pub async fn create_user(&self, tenant: &Tenant, user: Value) -> (StatusCode, Value) {
        self.server(Method::POST, tenant, "/v1/users", Some(user)).await
    }

    /// The server's `PATCH /v1/users/{id}`.
    pub async fn update_user(&self, tenant: &Tenant, id: &str, patch: Value) -> (StatusCode, Value) {
        self.server(Method::PATCH, tenant, &format!("/v1/users/{id}"), Some(patch)).await
    }

    /// Enables TOTP for a user through the service.
    pub async fn enable_totp(&self, u: &SignedIn, secret: &[u8]) {
        self.service()
            .set_totp_secret(
                u.tenant.parse().unwrap(),
                u.id.parse().unwrap(),
                Some(secret),
                tessera_core::events::By::Server,
            )
            .await
            .unwrap();
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }
}

pub fn signed_in(tenant: &str, email: &str, v: &Value) -> SignedIn {
    SignedIn {
        tenant: tenant.to_owned(),
        id: v["user"]["id"].as_str().unwrap().into(),
        email: email.to_owned(),
        access: v["access_token"].as_str().unwrap().into(),
        refresh: v["refresh_token"].as_str().unwrap().into(),
        session_id: v["session_id"].as_str().unwrap().into(),
    }
}

/// A minimal browser for the hosted forms, as any HTTP client could drive them: it keeps
/// cookies and follows no redirects, so every step can be checked.
pub struct FormClient {
    base: String,
    http: reqwest::Client,
    cookies: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
}

/// A response of the hosted pages.
pub struct Html {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Html {
    /// Where a redirect points, made absolute.
    pub fn location(&self, base: &str) -> String {
        let l = self.headers.get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        if l.starts_with('/') { format!("{base}{l}") } else { l }
    }

    /// The value of the hidden (or any) input `name`, HTML-unescaped.
    pub fn input(&self, name: &str) -> Option<String> {
        let at = self.text.find(&format!(r#"name="{name}""#))?;
        let tag_start = self.text[..at].rfind('<')?;
        let tag = &self.text[tag_start..at + self.text[at..].find('>')?];
        let v = tag.split(r#"value=""#).nth(1)?.split('"').next()?;
        Some(
            v.replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    }
}

impl FormClient {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self { base: base.to_owned(), http, cookies: Default::default() }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Html {
        let jar = self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let req = if jar.is_empty() { req } else { req.header("cookie", jar) };
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        for c in headers.get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") || v.is_empty() {
                self.cookies.lock().unwrap().remove(k);
            } else {
                self.cookies.lock().unwrap().insert(k.to_owned(), v.to_owned());
            }
        }
        Html { status, headers, text: res.text().await.unwrap() }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') { format!("{}{url}", self.base) } else { url.to_owned() }
    }

    pub async fn get(&self, url: &str) -> Html {
        self.send(self.http.get(self.absolute(url))).await
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> Html {
        self.send(self.http.post(self.absolute(url)).form(form)).await
    }

    /// Posts the hosted sign-in form at `action` with `PASSWORD`.
    pub async fn sign_in(&self, action: &str, csrf: &str, email: &str, return_to: &str) -> Html {
        self.post(action, &[("csrf", csrf), ("email", email), ("password", PASSWORD), ("return_to", return_to)]).await
    }
}

/// Part `i` (0 the header, 1 the claims) of a compact JWS, decoded.
pub fn jwt_part(token: &str, i: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Where `scripts/client-libs` installed a client library. A test that needs one fails when it
/// is missing, so that it is never counted as passed without having run.
pub fn client_lib(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run `eval \"$(scripts/client-libs)\"` first, or leave these tests out with SKIP_CLIENT_LIBS=1")
    })
}
