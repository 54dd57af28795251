//! Reliability under failure (SPEC §6), against the real `tessera` binary: killed with SIGKILL in
//! the middle of a concurrent write load, after a restart every acknowledged write must be
//! there; held open by hundreds of slow clients, its memory stays bounded and others are served.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

struct Server {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start(db_url: &str, port: u16) -> Server {
    start_with(db_url, port, &[]).await
}

async fn start_with(db_url: &str, port: u16, env: &[(&str, &str)]) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("serve")
        .envs(env.iter().copied())
        .env("TESSERA_DATABASE_URL", db_url)
        .env("TESSERA_LISTEN", format!("127.0.0.1:{port}"))
        .env("TESSERA_ROOT_KEY", ROOT_KEY)
        .env("TESSERA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tessera");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/readyz")).send().await.map(|r| r.status() != StatusCode::OK).unwrap_or(true) {
        assert!(Instant::now() < deadline, "tessera did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Server { child, base }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9_during_a_write_load() {
    let (db_url, _db) = fresh_database().await;
    let port = free_port();
    let mut server = start(&db_url, port).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let (_, tenant) = body(
        client
            .post(format!("{base}/v1/tenants"))
            .bearer_auth(ROOT_KEY)
            .json(&json!({"name": "crash"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let mut tokens = Vec::new();
    for i in 0..6 {
        let res = client
            .post(format!("{base}/v1/auth/sign-up"))
            .header("X-Tenant-ID", &tenant_id)
            .json(&json!({"email": format!("w{i}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        tokens.push(body(res).await.1["access_token"].as_str().unwrap().to_owned());
    }

    // Each writer bumps its own counter as fast as it can and remembers the last value the
    // server acknowledged with a 200.
    let writers: Vec<_> = tokens
        .iter()
        .cloned()
        .map(|token| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let mut acked = 0i64;
                for seq in 1.. {
                    let res = client
                        .patch(format!("{base}/v1/me"))
                        .bearer_auth(&token)
                        .json(&json!({"client_metadata": {"seq": seq}}))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == StatusCode::OK => acked = seq,
                        _ => return acked,
                    }
                }
                acked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    let mut acked = Vec::new();
    for w in writers {
        acked.push(w.await.unwrap());
    }
    assert!(acked.iter().all(|a| *a > 0), "the load was running when the server died: {acked:?}");

    let mut server = start(&db_url, port).await;
    for (token, acked) in tokens.iter().zip(&acked) {
        let (status, me): (StatusCode, Value) =
            body(client.get(format!("{}/v1/me", server.base)).bearer_auth(token).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        let stored = me["client_metadata"]["seq"].as_i64().unwrap();
        // A write may have committed with its answer lost in the kill, never the other way.
        assert!(stored >= *acked, "acknowledged seq {acked} lost: found {stored}");
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// The resident memory of a process, from /proc (Linux).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_slow_clients_at_once_stay_within_a_memory_bound_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (db_url, _db) = fresh_database().await;
    let port = free_port();
    let mut server = start_with(&db_url, port, &[("TESSERA_HEADER_READ_TIMEOUT_SECONDS", "3")]).await;
    let client = reqwest::Client::new();
    let before = rss_kib(server.child.id());
    // 300 clients that send half their headers and then nothing.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: tessera\r\nX-Slow: ").await.unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let res = client.get(format!("{}/v1/tenants", server.base)).bearer_auth(ROOT_KEY).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a well-behaved client is served meanwhile");
    assert!(started.elapsed() < Duration::from_secs(2));
    let during = rss_kib(server.child.id());
    eprintln!("RSS with 300 slow clients held: {before} KiB before, {during} KiB during");
    // Each held connection costs a task and hyper's buffers: a few KiB, not megabytes.
    assert!(during.saturating_sub(before) < 30 * 1024, "RSS grew from {before} KiB to {during} KiB");
    // And they are all let go by the header timeout.
    let mut buf = [0u8; 64];
    for s in &mut slow {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("closed in time");
        assert!(matches!(n, Ok(0) | Err(_)) || String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"));
    }
    server.child.kill().unwrap();
    let _ = server.child.wait();
}
