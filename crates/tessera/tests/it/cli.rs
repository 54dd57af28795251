//! The `tessera` binary's administration commands, run as a user would run them.

use std::process::Command;

use serde_json::Value;

fn tessera(db: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("TESSERA_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env_remove("TESSERA_ROOT_KEY")
        .output()
        .expect("run tessera");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `tessera oauth-client create --tenant <tenant>` followed by `args`.
fn create_client(db: &std::path::Path, tenant: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["oauth-client", "create", "--tenant", tenant];
    all.extend_from_slice(args);
    tessera(db, &all)
}

#[test]
fn tenant_and_user_commands_work_with_json_and_human_output() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let (ok, out, err) = tessera(&db, &["migrate"]);
    assert!(ok, "{err}");
    assert!(out.contains("up to date"));

    let (ok, out, err) = tessera(&db, &["tenant", "create", "--name", "Acme", "--json"]);
    assert!(ok, "{err}");
    let tenant: Value = serde_json::from_str(&out).unwrap();
    let tid = tenant["id"].as_str().unwrap();
    assert!(tenant["server_key"].as_str().unwrap().starts_with("tsr_sk_"));

    let (ok, out, _) = tessera(&db, &["tenant", "list"]);
    assert!(ok && out.contains("Acme") && out.contains(tid));

    let (ok, out, err) = tessera(&db, &["user", "create", "--tenant", tid, "--email", "cli@example.com", "--json"]);
    assert!(ok, "{err}");
    let user: Value = serde_json::from_str(&out).unwrap();
    let uid = user["id"].as_str().unwrap();
    let (ok, out, _) = tessera(&db, &["user", "list", "--tenant", tid, "--json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()[0]["primary_email"], "cli@example.com");
    let (ok, out, _) = tessera(&db, &["user", "suspend", "--tenant", tid, uid, "--reason", "abuse", "--json"]);
    assert!(ok);
    let first = serde_json::from_str::<Value>(&out).unwrap()["suspension_id"].as_str().unwrap().to_owned();
    let (ok, out, _) = tessera(&db, &["user", "suspend", "--tenant", tid, uid, "--reason", "again"]);
    assert!(ok && out.contains("suspended user"), "{out}");
    // The CLI undoes what it did: one suspension by its id, then every one left.
    let (ok, out, err) = tessera(&db, &["user", "lift-suspension", "--tenant", tid, uid, "--suspension", &first]);
    assert!(ok && out.contains(&format!("lifted suspension {first}")), "{out}{err}");
    let (_, out, _) = tessera(&db, &["user", "get", "--tenant", tid, uid, "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["suspensions"].as_array().unwrap().len(), 1, "{out}");
    let (ok, out, _) = tessera(&db, &["user", "lift-suspension", "--tenant", tid, uid, "--json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["lifted"].as_array().unwrap().len(), 1, "{out}");
    let (_, out, _) = tessera(&db, &["user", "get", "--tenant", tid, uid, "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["suspensions"], serde_json::json!([]), "{out}");
    let (ok, out, _) = tessera(&db, &["user", "lift-suspension", "--tenant", tid, uid]);
    assert!(ok && out.contains("nothing lifted"), "{out}");
    let (ok, out, _) = tessera(&db, &["user", "set-role", "--tenant", tid, uid, "admin"]);
    assert!(ok && out.contains("is now admin"), "{out}");
    let (_, out, _) = tessera(&db, &["user", "get", "--tenant", tid, uid, "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["role"], "admin");
    let (ok, _, err) = tessera(&db, &["user", "set-role", "--tenant", tid, uid, "owner"]);
    assert!(!ok && err.contains("owner"), "{err}");
    let (ok, out, _) = tessera(&db, &["user", "delete", "--tenant", tid, uid]);
    assert!(ok && out.contains("erased"));
    let (ok, _, err) = tessera(&db, &["user", "get", "--tenant", tid, uid]);
    assert!(!ok && err.contains("not found"), "{err}");

    let (ok, out, _) = tessera(&db, &["user", "create", "--tenant", tid, "--email", "bad"]);
    assert!(!ok, "{out}");
    let (ok, out, _) = tessera(&db, &["keys", "rotate", "--json"]);
    assert!(ok && out.contains("active_kids"));

    let (ok, out, err) =
        create_client(&db, tid, &["--name", "Notes", "--redirect-uri", "https://notes.example/cb", "--json"]);
    assert!(ok, "{err}");
    let client: Value = serde_json::from_str(&out).unwrap();
    assert!(client["client_secret"].as_str().unwrap().starts_with("tsr_cs_"));
    assert_eq!(client["grant_types"], serde_json::json!(["authorization_code", "refresh_token"]));
    let cid = client["client_id"].as_str().unwrap();
    let (ok, out, err) =
        create_client(&db, tid, &["--name", "SPA", "--public", "--redirect-uri", "http://localhost:5173/cb"]);
    assert!(ok && out.contains("public client") && !out.contains("secret"), "{out}{err}");
    let (ok, _, err) = create_client(&db, tid, &["--name", "x", "--redirect-uri", "http://evil.example/"]);
    assert!(!ok && err.contains("redirect_uris[0]"), "{err}");
    let (ok, out, _) = tessera(&db, &["oauth-client", "list", "--tenant", tid]);
    assert!(ok && out.contains(cid) && out.contains("Notes"));
    let (ok, out, _) = tessera(&db, &["oauth-client", "delete", "--tenant", tid, cid]);
    assert!(ok && out.contains("deleted"));
}

#[test]
fn serve_refuses_a_bad_listen_address_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = tessera(&dir.path().join("x.db"), &["serve", "--listen", "not-an-address"]);
    assert!(!ok);
    assert!(err.contains("not an address"), "{err}");
}

#[test]
fn text_logs_written_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tessera.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("TESSERA_DATABASE_URL", format!("sqlite://{}", dir.path().join("t.db").display()))
        .env("TESSERA_ROOT_KEY", "cli-root-key-0123456789abcdef")
        .env("TESSERA_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A request, so that a request's line is in the log too.
    if ready {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(ready, "the server did not start");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO") && text.lines().count() >= 2, "{text}");
    assert!(!text.contains('\u{1b}'), "a log file has no escape codes: {text:?}");
}
