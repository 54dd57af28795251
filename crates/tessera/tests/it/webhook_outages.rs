//! Webhook delivery through outages, against the real `tessera` binary and a real receiver
//! that checks every signature: the receiver is down while writes happen, Tessera is killed
//! with SIGKILL in the middle of them and started again, and when the receiver comes back every
//! event of every acknowledged write arrives (on both backends). On PostgreSQL, two instances
//! over one database share the delivery of one load without making any attempt twice.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::reliability::{Server, free_port, start_with, write_load};
use crate::webhooks::{Inbox, Received, serve_inbox, verifies};

/// Retries every second for two minutes, so that delivery resumes soon after the receiver is
/// back; attempts time out after 2 s, so a claim left by a killed instance expires in 17 s.
fn settings() -> Vec<(&'static str, String)> {
    let schedule = format!("[{}]", vec!["1"; 120].join(","));
    vec![
        ("TESSERA_OUTBOUND__ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("TESSERA_WEBHOOKS__RETRY_SCHEDULE_SECONDS", schedule),
        ("TESSERA_WEBHOOKS__TIMEOUT_SECONDS", "2".to_owned()),
    ]
}

/// Instances behind one load balancer share one `public_url`, the issuer of their tokens.
const PUBLIC_URL: &str = "http://tessera.test";

async fn serve(db_url: &str, port: u16) -> Server {
    let mut env = settings();
    env.push(("TESSERA_PUBLIC_URL", PUBLIC_URL.to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start_with(db_url, port, &env).await
}

/// A tenant with an endpoint at `receiver`, and `n` users signed up.
struct Setup {
    tenant_id: String,
    server_key: String,
    secret: String,
    /// (user id, access token)
    users: Vec<(String, String)>,
}

async fn tenant_with_users(client: &reqwest::Client, base: &str, receiver: &str, n: usize) -> Setup {
    let res = client.post(format!("{base}/v1/tenants")).bearer_auth(ROOT_KEY).json(&json!({"name": "outage"}));
    let (_, tenant) = body(res.send().await.unwrap()).await;
    let (tenant_id, key) =
        (tenant["id"].as_str().unwrap().to_owned(), tenant["server_key"].as_str().unwrap().to_owned());
    let res = client.post(format!("{base}/v1/webhooks")).bearer_auth(&key).json(&json!({"url": receiver}));
    let (status, endpoint) = body(res.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let mut users = Vec::new();
    for i in 0..n {
        let res = client
            .post(format!("{base}/v1/auth/sign-up"))
            .header("X-Tenant-ID", &tenant_id)
            .json(&json!({"email": format!("o{i}@example.com"), "password": PASSWORD}));
        let (status, v) = body(res.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        users.push((v["user"]["id"].as_str().unwrap().to_owned(), v["access_token"].as_str().unwrap().to_owned()));
    }
    Setup { tenant_id, server_key: key, secret: endpoint["secret"].as_str().unwrap().to_owned(), users }
}

fn tokens(users: &[(String, String)]) -> Vec<String> {
    users.iter().map(|(_, token)| token.clone()).collect()
}

/// Waits until the inbox holds a `user.updated` for every acknowledged value of every user;
/// every delivery it got must verify. How long that took.
async fn all_arrive(inbox: &Inbox, secret: &str, users: &[(String, String)], acked: &[Vec<i64>]) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    loop {
        let got = inbox.got();
        for r in &got {
            assert!(verifies(secret, r), "a delivery that does not verify: {r:?}");
        }
        let seen: HashSet<(String, i64)> = got.iter().filter_map(updated).collect();
        let missing: Vec<(&str, i64)> = users
            .iter()
            .zip(acked)
            .flat_map(|((id, _), seqs)| seqs.iter().map(move |s| (id.as_str(), *s)))
            .filter(|(id, s)| !seen.contains(&((*id).to_owned(), *s)))
            .collect();
        if missing.is_empty() {
            return started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged writes never arrived, e.g. {:?}",
            missing.len(),
            &missing[..3.min(missing.len())]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The user and counter of a `user.updated` delivery.
fn updated(r: &Received) -> Option<(String, i64)> {
    let v: Value = r.json();
    (v["type"] == "user.updated").then(|| {
        let user = &v["data"]["user"];
        (user["id"].as_str().unwrap().to_owned(), user["client_metadata"]["seq"].as_i64().unwrap())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_receiver_down_and_tessera_killed_every_acknowledged_event_arrives_when_it_is_back() {
    let (db_url, _db) = fresh_database().await;
    let (port, receiver_port) = (free_port(), free_port());
    let receiver = format!("http://127.0.0.1:{receiver_port}/events");
    let mut server = serve(&db_url, port).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let Setup { secret, users, .. } = tenant_with_users(&client, &server.base, &receiver, 4).await;

    // The receiver is down (nothing listens on its port) while the load runs; Tessera is
    // killed in the middle of it.
    let bases = [server.base.clone()];
    let load = {
        let (client, users) = (client.clone(), users.clone());
        tokio::spawn(async move { write_load(&client, &bases, &tokens(&users), Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    let mut acked = load.await.unwrap();
    assert!(acked.iter().all(|a| !a.is_empty()), "the load was running when Tessera died");

    // Started again on the same database, it takes writes at once; then the receiver is back.
    let server = serve(&db_url, port).await;
    for ((_, token), acked) in users.iter().zip(&mut acked) {
        let res = client.patch(format!("{}/v1/me", server.base)).bearer_auth(token);
        let res = res.json(&json!({"client_metadata": {"seq": 1_000_000}})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        acked.push(1_000_000);
    }
    let inbox = Inbox::default();
    serve_inbox(tokio::net::TcpListener::bind(("127.0.0.1", receiver_port)).await.unwrap(), inbox.clone());
    let took = all_arrive(&inbox, &secret, &users, &acked).await;

    let got = inbox.got();
    let writes: usize = acked.iter().map(Vec::len).sum();
    let distinct: HashSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    eprintln!(
        "outage: {writes} acknowledged writes, {} deliveries of {} events, all there {took:?} after the receiver came back",
        got.len(),
        distinct.len()
    );
    // Each user's sign-up and first session arrived too.
    let kinds: Vec<String> = got.iter().map(|r| r.json()["type"].as_str().unwrap().to_owned()).collect();
    for kind in ["user.created", "session.created"] {
        let ids: HashSet<&str> =
            got.iter().zip(&kinds).filter(|(_, k)| *k == kind).map(|(r, _)| r.id.as_str()).collect();
        assert_eq!(ids.len(), users.len(), "{kind} of every user");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: the PostgreSQL half of scripts/test runs it (--run-ignored all)"]
async fn two_instances_over_one_postgresql_deliver_every_event_once() {
    let (db_url, _db) = fresh_database().await;
    assert!(db_url.starts_with("postgres"), "two instances share a PostgreSQL database, not {db_url}");
    let inbox = Inbox::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/events", listener.local_addr().unwrap());
    serve_inbox(listener, inbox.clone());
    let (a, b) = (serve(&db_url, free_port()).await, serve(&db_url, free_port()).await);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let Setup { tenant_id, server_key, secret, users } = tenant_with_users(&client, &a.base, &receiver, 4).await;

    // Writes go to both instances in turn, and both deliver.
    let bases = [a.base.clone(), b.base.clone()];
    let acked = write_load(&client, &bases, &tokens(&users), Duration::from_secs(3)).await;
    let took = all_arrive(&inbox, &secret, &users, &acked).await;
    // Late attempts would show up as second deliveries of an event: give them time to.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let got = inbox.got();
    let mut per_event: HashMap<&str, usize> = HashMap::new();
    for r in &got {
        *per_event.entry(r.id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = per_event.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "attempts made twice: {twice:?}");
    let writes: usize = acked.iter().map(Vec::len).sum();
    assert_eq!(got.len(), writes + 2 * users.len(), "every write's event, each sign-up's two, nothing else");
    let (mut by_instance, mut written) = (Vec::new(), 0);
    for base in &bases {
        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        let value = |name: &str| {
            let line = metrics.lines().find(|l| l.starts_with(name));
            line.and_then(|l| l.rsplit(' ').next()).map_or(0, |n| n.parse::<u64>().unwrap())
        };
        by_instance.push(value(r#"tessera_webhook_deliveries_total{outcome="delivered"}"#));
        written += value("tessera_events_written_total");
    }
    let each = "each delivery counted once, by the instance that made it";
    assert_eq!(by_instance.iter().sum::<u64>(), got.len() as u64, "{each}");
    assert_eq!(written, got.len() as u64, "each event counted once, by the instance that wrote it");
    eprintln!("two instances: {} events, delivered {by_instance:?}, all there {took:?} after the load", got.len());

    // A signing key one instance makes (the tenant's first ES256 key) verifies on the other at
    // once: a token with a key it does not know makes it read the keys again.
    let settings = json!({"signing_algorithm": "ES256"});
    let res = client.patch(format!("{}/v1/settings", a.base)).bearer_auth(&server_key).json(&settings);
    assert_eq!(res.send().await.unwrap().status(), StatusCode::OK);
    let res = client
        .post(format!("{}/v1/auth/sign-in", a.base))
        .header("X-Tenant-ID", &tenant_id)
        .json(&json!({"email": "o0@example.com", "password": PASSWORD}));
    let (status, signed_in) = body(res.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let es256 = signed_in["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(es256, 0)["alg"], "ES256");
    let res = client.get(format!("{}/v1/me", b.base)).bearer_auth(es256).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the other instance knows the new key at once");
}
