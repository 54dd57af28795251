//! Operational endpoints, the OpenAPI document (and its drift check), and errors of the HTTP
//! layer answered in the native shape.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    let (status, v) = body(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!((status, v), (StatusCode::OK, json!({"status": "ok"})));
    let (status, v) = body(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!((status, v["status"].as_str()), (StatusCode::OK, Some("ready")));
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(res.headers().contains_key("x-request-id"), "every response carries a request id");
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"tessera_http_requests_total{method="GET",route="/healthz",status="200"} 2"#), "{text}");
    assert!(text.contains("tessera_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code() {
    let generated = tessera_api::openapi().to_pretty_json().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, format!("{generated}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo nextest run -p tessera the_committed_openapi` and commit it"
    );
    let doc: Value = serde_json::from_str(&generated).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/v1/me", "/v1/auth/sign-up", "/v1/users/{id}", "/v1/tenants"] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}

#[tokio::test]
async fn the_served_document_and_docs_page_need_nothing_from_outside() {
    let app = spawn_app().await;
    let (status, doc) = body(app.client.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc, serde_json::from_str::<Value>(&tessera_api::openapi().to_pretty_json().unwrap()).unwrap());
    let html = app.client.get(app.url("/docs")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("/v1/me/password"));
    assert!(!html.contains("http://") && !html.contains("https://"), "no external assets");
}

#[tokio::test]
async fn http_layer_errors_come_in_the_native_shape() {
    let app = spawn_app().await;
    let (_, u) = app.user().await;
    let patch = |ct: &'static str, body_text: String| {
        let (app, u) = (&app, &u);
        async move { body(app.send_body(Method::PATCH, "/v1/me", &u.access, ct, body_text).await).await }
    };
    let (status, v) = patch("application/json", "{\"bio\": ".into()).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
    let (status, v) = patch("application/json", "[1,2]".into()).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
    let (status, v) = patch("text/plain", "{}".into()).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")));
    let (status, v) = patch("application/json", format!("{{\"bio\": \"{}\"}}", "x".repeat(2 * 1024 * 1024))).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    let deep = format!("{}{}", "{\"a\":".repeat(200), "}".repeat(200));
    let (status, v) = patch("application/json", deep).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = body(app.client.get(app.url("/v1/nowhere")).send().await.unwrap()).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, v) = body(app.client.put(app.url("/v1/me")).send().await.unwrap()).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));
    let (status, _) = body(app.send(Method::DELETE, "/v1/me/sessions/not-a-uuid", &u.access, None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_client_sending_its_headers_too_slowly_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.header_read_timeout_seconds = 1).await;
    let mut slow = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    // Half a request, then nothing: a slowloris client.
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: tessera\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("the server should have closed the connection");
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"), "only a 408 may come back"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "closed by the header timeout, not by chance");
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "well-behaved clients are still served");
}

#[tokio::test]
async fn a_client_sending_its_body_too_slowly_gets_408_and_changes_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.request_timeout_seconds = 1).await;
    let (_, u) = app.user().await;
    let mut slow = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let body = br#"{"display_name": "Trickled"}"#;
    let head = format!(
        "PATCH /v1/me HTTP/1.1\r\nHost: tessera\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        u.access,
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    // A few bytes of the body, then the rest far too late.
    slow.write_all(&body[..5]).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("the server answers within the request timeout")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&buf[..n]));
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    let _ = slow.write_all(&body[5..]).await;
    let (_, me) = app.get_me(&u.access).await;
    assert!(me["display_name"].is_null(), "nothing of the cut-off request was applied: {me}");
}
