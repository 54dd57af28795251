//! Tessera as it is deployed: behind proxies, and as several instances over one PostgreSQL
//! database, each a whole server of its own (its own caches, limits and background jobs),
//! driven round-robin as a load balancer would.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// Signs in `email` from `forwarded_for` (as a proxy would say), straight to `app`.
async fn sign_in_from(app: &TestApp, tenant: &str, email: &str, password: &str, forwarded_for: &str) -> StatusCode {
    let res = app
        .client
        .post(app.url("/v1/auth/sign-in"))
        .header("X-Tenant-ID", tenant)
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    res.status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_counted_recorded_and_shown() {
    let app = spawn_app_with(|s| s.trusted_proxies = vec!["127.0.0.1/32".into()]).await;
    let (t, u) = app.user().await;
    let (status, _) =
        app.server(Method::PATCH, &t, "/v1/settings", Some(json!({"attempts_per_address_per_minute": 2}))).await;
    assert_eq!(status, StatusCode::OK);

    // The right-most address the proxy did not add itself; what the client wrote left of it
    // is not believed.
    let chain = "10.9.9.9, 198.51.100.7";
    assert_eq!(sign_in_from(&app, &t.id, &u.email, PASSWORD, chain).await, StatusCode::OK);
    let (_, sessions) = body(app.send(Method::GET, "/v1/me/sessions", &u.access, None).await).await;
    let addresses: Vec<&str> = sessions.as_array().unwrap().iter().filter_map(|s| s["ip_address"].as_str()).collect();
    assert!(addresses.contains(&"198.51.100.7"), "{sessions}");
    let (_, trail) = body(app.send(Method::GET, "/v1/me/activity", &u.access, None).await).await;
    assert_eq!(trail["items"][0]["ip_address"], "198.51.100.7", "{trail}");

    // The limit counts that address, not the proxy's: another client behind it is not held up.
    assert_eq!(sign_in_from(&app, &t.id, &u.email, "wrong", "198.51.100.7").await, StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in_from(&app, &t.id, &u.email, PASSWORD, "198.51.100.7").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sign_in_from(&app, &t.id, &u.email, PASSWORD, "203.0.113.5").await, StatusCode::OK);

    // Forwarded host and scheme never change the issuer: that is `public_url`'s.
    let discovery = app
        .client
        .get(app.url(&format!("/oidc/{}/.well-known/openid-configuration", t.id)))
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "host=evil.example;proto=https")
        .send()
        .await
        .unwrap();
    let (_, doc) = body(discovery).await;
    assert_eq!(doc["issuer"], app.url(&format!("/oidc/{}", t.id)));
}

#[tokio::test]
async fn from_a_peer_that_is_not_trusted_the_forwarding_headers_are_ignored() {
    let app = spawn_app().await;
    let (t, u) = app.user().await;
    assert_eq!(sign_in_from(&app, &t.id, &u.email, PASSWORD, "198.51.100.7").await, StatusCode::OK);
    let (_, sessions) = body(app.send(Method::GET, "/v1/me/sessions", &u.access, None).await).await;
    assert!(sessions.as_array().unwrap().iter().all(|s| s["ip_address"] == "127.0.0.1"), "{sessions}");
}

/// Three servers over one PostgreSQL database, started together.
struct Deployment {
    instances: Vec<tessera::server::Running>,
    bases: Vec<String>,
    client: reqwest::Client,
    db: tessera_testkit::TestDatabase,
}

impl Deployment {
    async fn start() -> Self {
        let (url, db) = crate::helpers::fresh_database().await;
        assert!(url.starts_with("postgres"), "instances share a PostgreSQL database, not {url}");
        let settings = tessera::config::Settings {
            listen: "127.0.0.1:0".into(),
            database_url: url,
            root_key: Some(ROOT_KEY.to_owned().into()),
            public_url: Some("http://tessera.test".into()),
            db_max_connections: 4,
            hash_concurrency: Some(2),
            outbound: tessera::config::OutboundSettings { allow_private_targets: true },
            ..Default::default()
        };
        let clock = std::sync::Arc::new(tessera_core::SystemClock);
        // All at once, on an empty database: one migrates, the others wait their turn.
        let (a, b, c) = tokio::join!(
            tessera::server::start(&settings, clock.clone()),
            tessera::server::start(&settings, clock.clone()),
            tessera::server::start(&settings, clock),
        );
        let instances = vec![a.unwrap(), b.unwrap(), c.unwrap()];
        let bases = instances.iter().map(|i| format!("http://{}", i.addr)).collect();
        Self { instances, bases, client: reqwest::Client::new(), db }
    }

    fn at(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.bases[i % self.bases.len()])
    }

    async fn sign_in(&self, i: usize, tenant: &str, email: &str, password: &str) -> (StatusCode, Value) {
        let req = self.client.post(self.at(i, "/v1/auth/sign-in")).header("X-Tenant-ID", tenant);
        body(req.json(&json!({"email": email, "password": password})).send().await.unwrap()).await
    }

    async fn me(&self, i: usize, access: &str) -> StatusCode {
        self.client.get(self.at(i, "/v1/me")).bearer_auth(access).send().await.unwrap().status()
    }

    async fn shutdown(self) {
        for i in self.instances {
            i.shutdown(Duration::from_secs(5)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: the PostgreSQL half of scripts/test runs it (--run-ignored all)"]
async fn three_instances_over_one_postgresql_behave_as_one() {
    let d = Deployment::start().await;
    let applied: i64 = {
        let res = d.client.get(d.at(0, "/readyz")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let pool = sqlx::PgPool::connect(&d.db.url).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap()
    };
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../store/migrations")).unwrap().count();
    assert_eq!(usize::try_from(applied).unwrap(), files, "each migration applied once");

    let res = d.client.post(d.at(0, "/v1/tenants")).bearer_auth(ROOT_KEY).json(&json!({"name": "Acme"}));
    let (_, tenant) = body(res.send().await.unwrap()).await;
    let (tid, server_key) =
        (tenant["id"].as_str().unwrap().to_owned(), tenant["server_key"].as_str().unwrap().to_owned());

    // Signed up through one, the token works through every one.
    let res = d.client.post(d.at(0, "/v1/auth/sign-up")).header("X-Tenant-ID", &tid);
    let (status, ada) =
        body(res.json(&json!({"email": "ada@example.com", "password": PASSWORD})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    let access = ada["access_token"].as_str().unwrap().to_owned();
    for i in 0..3 {
        assert_eq!(d.me(i, &access).await, StatusCode::OK);
    }
    // Signed out through one, refused by every one at once.
    let (_, other) = d.sign_in(1, &tid, "ada@example.com", PASSWORD).await;
    let other = other["access_token"].as_str().unwrap().to_owned();
    let out = d.client.post(d.at(2, "/v1/auth/sign-out")).bearer_auth(&other).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    for i in 0..3 {
        assert_eq!(d.me(i, &other).await, StatusCode::UNAUTHORIZED, "instance {i} still takes a revoked session");
    }
    assert_eq!(d.me(0, &access).await, StatusCode::OK);

    // Failed sign-ins spread across the three count as one account's: ten, then refused
    // everywhere, even with the right password.
    let res = d.client.post(d.at(0, "/v1/auth/sign-up")).header("X-Tenant-ID", &tid);
    let grace = json!({"email": "grace@example.com", "password": PASSWORD});
    assert_eq!(res.json(&grace).send().await.unwrap().status(), StatusCode::CREATED);
    for i in 0..10 {
        assert_eq!(d.sign_in(i, &tid, "grace@example.com", "wrong").await.0, StatusCode::UNAUTHORIZED);
    }
    for i in 0..3 {
        let (status, v) = d.sign_in(i, &tid, "grace@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "instance {i}: {v}");
    }

    // A settings change through one reaches the others within the tenant cache's bound.
    let bound = Duration::from_secs(5);
    let patch = json!({"access_token_ttl_seconds": 123});
    let res = d.client.patch(d.at(0, "/v1/settings")).bearer_auth(&server_key).json(&patch).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let changed = Instant::now();
    for i in 1..3 {
        loop {
            let (status, v) = d.sign_in(i, &tid, "ada@example.com", PASSWORD).await;
            assert_eq!(status, StatusCode::OK);
            if v["expires_in"] == 123 {
                break;
            }
            assert!(changed.elapsed() < bound + Duration::from_secs(1), "instance {i} still has the old settings");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Conditional updates racing through different instances: read, add one, write with
    // If-Match, again on 412. None is lost.
    let writers = 6;
    let rounds = 5;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (client, bases, access) = (d.client.clone(), d.bases.clone(), access.clone());
        tasks.push(tokio::spawn(async move {
            for r in 0..rounds {
                let base = &bases[(w + r) % bases.len()];
                loop {
                    let res = client.get(format!("{base}/v1/me")).bearer_auth(&access).send().await.unwrap();
                    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
                    let me: Value = res.json().await.unwrap();
                    let n = me["client_metadata"]["n"].as_i64().unwrap_or(0);
                    let patch = json!({"client_metadata": {"n": n + 1}});
                    let res = client
                        .patch(format!("{base}/v1/me"))
                        .bearer_auth(&access)
                        .header("If-Match", etag)
                        .json(&patch)
                        .send()
                        .await
                        .unwrap();
                    match res.status() {
                        StatusCode::OK => break,
                        StatusCode::PRECONDITION_FAILED => continue,
                        other => panic!("a conditional update answered {other}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let me: Value = d.client.get(d.at(1, "/v1/me")).bearer_auth(&access).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["client_metadata"]["n"], json!(writers * rounds), "no update lost");

    // Every instance delivers events; a healthy receiver gets each one once.
    let inbox = crate::webhooks::Inbox::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    crate::webhooks::serve_inbox(listener, inbox.clone());
    let endpoint = json!({"url": url, "event_types": ["user.created"]});
    let res = d.client.post(d.at(0, "/v1/webhooks")).bearer_auth(&server_key).json(&endpoint).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    // Past the bound in which every instance's writes see the new endpoint.
    tokio::time::sleep(bound + Duration::from_secs(1)).await;
    let n = 30;
    for i in 0..n {
        let res = d.client.post(d.at(i, "/v1/auth/sign-up")).header("X-Tenant-ID", &tid);
        let user = json!({"email": format!("u{i}@example.com"), "password": PASSWORD});
        assert_eq!(res.json(&user).send().await.unwrap().status(), StatusCode::CREATED);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while inbox.got().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A second attempt of any event would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut ids: Vec<String> = inbox.got().into_iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), n, "each event delivered");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "each event once");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: the PostgreSQL half of scripts/test runs it (--run-ignored all)"]
async fn on_postgresql_under_serializable_isolation_contended_writes_are_run_again_and_none_fails() {
    // Distributed PostgreSQL-compatible databases run every transaction serialisable and ask
    // for a retry (`40001`) under contention; PostgreSQL does the same at this level.
    let (url, db) = crate::helpers::fresh_database().await;
    assert!(url.starts_with("postgres"), "{url}");
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&admin).await.unwrap();
    sqlx::raw_sql(&format!("ALTER DATABASE {name} SET default_transaction_isolation TO 'serializable'"))
        .execute(&admin)
        .await
        .unwrap();
    let settings = tessera::config::Settings {
        listen: "127.0.0.1:0".into(),
        database_url: url,
        root_key: Some(ROOT_KEY.to_owned().into()),
        public_url: Some("http://tessera.test".into()),
        db_max_connections: 8,
        hash_concurrency: Some(2),
        ..Default::default()
    };
    let clock = std::sync::Arc::new(tessera_core::SystemClock);
    let (a, b) =
        tokio::join!(tessera::server::start(&settings, clock.clone()), tessera::server::start(&settings, clock));
    let (a, b) = (a.unwrap(), b.unwrap());
    let bases = [format!("http://{}", a.addr), format!("http://{}", b.addr)];
    let client = reqwest::Client::new();
    let res = client.post(format!("{}/v1/tenants", bases[0])).bearer_auth(ROOT_KEY).json(&json!({"name": "Acme"}));
    let (_, tenant) = body(res.send().await.unwrap()).await;
    let tid = tenant["id"].as_str().unwrap().to_owned();
    let res = client.post(format!("{}/v1/auth/sign-up", bases[0])).header("X-Tenant-ID", &tid);
    let (_, ada) =
        body(res.json(&json!({"email": "ada@example.com", "password": PASSWORD})).send().await.unwrap()).await;
    let access = ada["access_token"].as_str().unwrap().to_owned();

    // One user's profile written through both instances at once: each instance lets its own
    // writes of a user take turns, but not the other's.
    let writes = 120;
    let mut tasks = Vec::new();
    for i in 0..writes {
        let (client, base, access) = (client.clone(), bases[i % 2].clone(), access.clone());
        tasks.push(tokio::spawn(async move {
            let patch = json!({"bio": format!("write {i}")});
            client.patch(format!("{base}/v1/me")).bearer_auth(&access).json(&patch).send().await.unwrap().status()
        }));
    }
    for t in tasks {
        // Without the retries, some of these are answered 503 (checked by hand: set
        // the store's retry count to 0 and this fails).
        assert_eq!(t.await.unwrap(), StatusCode::OK, "a contended write is run again, not failed");
    }
    let me: Value =
        client.get(format!("{}/v1/me", bases[1])).bearer_auth(&access).send().await.unwrap().json().await.unwrap();
    // Sign-up wrote version 1; each write one more.
    assert_eq!(me["version"], json!(1 + writes), "{me}");
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
    drop(db);
}

/// PgBouncer (Debian's) in front of the test server, in session mode, as its own user when
/// this runs as root (it refuses to run as root).
struct PgBouncer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    fn start(server_host: &str, server_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ini = dir.path().join("pgbouncer.ini");
        let users = dir.path().join("users.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host={server_host} port={server_port}\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
                 listen_port = {port}\nauth_type = trust\nauth_file = {}\npool_mode = session\n\
                 max_client_conn = 200\ndefault_pool_size = 20\nignore_startup_parameters = extra_float_digits,options\n",
                users.display()
            ),
        )
        .unwrap();
        let as_root = std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
        let mut cmd = if as_root {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", "pgbouncer"]);
            c
        } else {
            std::process::Command::new("pgbouncer")
        };
        let mut child = cmd
            .arg(&ini)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pgbouncer must be installed (apt-get install pgbouncer; scripts/test does)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, port, _dir: dir };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("pgbouncer did not start");
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: the PostgreSQL half of scripts/test runs it (--run-ignored all)"]
async fn through_pgbouncer_in_session_mode_tessera_runs_on_postgresql_unchanged() {
    let (url, db) = crate::helpers::fresh_database().await;
    let parsed = url::Url::parse(&url).unwrap();
    let bouncer = PgBouncer::start(parsed.host_str().unwrap(), parsed.port().unwrap_or(5432));
    let mut through = parsed.clone();
    through.set_port(Some(bouncer.port)).unwrap();
    let settings = tessera::config::Settings {
        listen: "127.0.0.1:0".into(),
        database_url: through.to_string(),
        root_key: Some(ROOT_KEY.to_owned().into()),
        db_max_connections: 4,
        hash_concurrency: Some(2),
        ..Default::default()
    };
    // Start-up migrates through it, then the usual calls.
    let running = tessera::server::start(&settings, std::sync::Arc::new(tessera_core::SystemClock)).await.unwrap();
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    let res = client.post(format!("{base}/v1/tenants")).bearer_auth(ROOT_KEY).json(&json!({"name": "Acme"}));
    let (_, tenant) = body(res.send().await.unwrap()).await;
    let res = client.post(format!("{base}/v1/auth/sign-up")).header("X-Tenant-ID", tenant["id"].as_str().unwrap());
    let (status, ada) =
        body(res.json(&json!({"email": "ada@example.com", "password": PASSWORD})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{ada}");
    let access = ada["access_token"].as_str().unwrap();
    let patch = json!({"bio": "through a pooler"});
    let res = client.patch(format!("{base}/v1/me")).bearer_auth(access).json(&patch).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = client.get(format!("{base}/v1/me")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["bio"], "through a pooler");
    running.shutdown(Duration::from_secs(5)).await;
    drop(bouncer);
    drop(db);
}
