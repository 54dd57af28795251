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
    let (ok, _, _) = tessera(&db, &["user", "suspend", "--tenant", tid, uid, "--reason", "abuse"]);
    assert!(ok);
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
