//! Operational endpoints: health, readiness, metrics, the OpenAPI document and its docs page,
//! and stored avatar images.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use tessera_core::DomainError;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::PathParams;

/// Liveness; also the benchmark harness's static-JSON ceiling (no I/O, no allocation beyond
/// the response).
pub async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#)
}

/// Readiness: the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.service.ready().await {
        Ok(()) => axum::Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "unavailable"}))).into_response()
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = state.metrics.render();
    let c = &state.service.delivery_counts;
    out.push_str("# HELP tessera_events_written_total Events this instance has written to the outbox.\n");
    out.push_str("# TYPE tessera_events_written_total counter\n");
    let _ = writeln!(out, "tessera_events_written_total {}", state.service.store.events_written());
    out.push_str("# HELP tessera_webhook_deliveries_total Delivery attempts by this instance, by outcome.\n");
    out.push_str("# TYPE tessera_webhook_deliveries_total counter\n");
    for (outcome, n) in [("delivered", &c.delivered), ("retrying", &c.retrying), ("failed", &c.failed)] {
        let _ = writeln!(out, "tessera_webhook_deliveries_total{{outcome=\"{outcome}\"}} {}", n.load(Relaxed));
    }
    // The whole deployment's backlog, from the database: 0 when nothing is pending.
    if let Ok(age) = state.service.oldest_undelivered_age().await {
        let seconds = age.map_or(0.0, |a| a.num_milliseconds().max(0) as f64 / 1000.0);
        out.push_str(
            "# HELP tessera_webhook_oldest_pending_seconds How long the oldest pending delivery has waited.\n",
        );
        out.push_str("# TYPE tessera_webhook_oldest_pending_seconds gauge\n");
        let _ = writeln!(out, "tessera_webhook_oldest_pending_seconds {seconds}");
    }
    let m = &state.service.mail_counts;
    out.push_str("# HELP tessera_mail_attempts_total Mail attempts by this instance, by outcome.\n");
    out.push_str("# TYPE tessera_mail_attempts_total counter\n");
    for (outcome, n) in [("sent", &m.delivered), ("retrying", &m.retrying), ("failed", &m.failed)] {
        let _ = writeln!(out, "tessera_mail_attempts_total{{outcome=\"{outcome}\"}} {}", n.load(Relaxed));
    }
    if let Ok(pending) = state.service.pending_mail().await {
        out.push_str("# HELP tessera_mail_pending Messages waiting to be sent, in the whole deployment.\n");
        out.push_str("# TYPE tessera_mail_pending gauge\n");
        let _ = writeln!(out, "tessera_mail_pending {pending}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

pub async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi_json.to_string())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A readable reference rendered on the server from the OpenAPI document: no scripts, no
/// assets from anywhere else, so it works offline.
pub fn render_docs(doc: &utoipa::openapi::OpenApi) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Tessera API</title><style>\
         body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2330}\
         h1{margin-bottom:0}code,.path{font-family:ui-monospace,monospace}\
         .op{border:1px solid #dde2ea;border-radius:8px;padding:.6rem .9rem;margin:.6rem 0}\
         .m{display:inline-block;min-width:4.5rem;font-weight:700;font-family:ui-monospace,monospace}\
         .get{color:#1a7f37}.post{color:#0550ae}.patch{color:#8250df}.put{color:#9a6700}.delete{color:#cf222e}\
         .d{color:#4b5565;margin:.3rem 0 0}</style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>{}</h1><p>Version {} · the machine-readable document is at <a href=\"/openapi.json\"><code>/openapi.json</code></a>.</p>",
        escape(&doc.info.title),
        escape(&doc.info.version)
    );
    if let Some(d) = &doc.info.description {
        let _ = write!(html, "<p>{}</p>", escape(d));
    }
    let mut by_tag: std::collections::BTreeMap<String, Vec<(String, &str, &utoipa::openapi::path::Operation)>> =
        Default::default();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("get", &item.get),
            ("post", &item.post),
            ("put", &item.put),
            ("patch", &item.patch),
            ("delete", &item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                let tag = op.tags.as_ref().and_then(|t| t.first()).cloned().unwrap_or_else(|| "other".into());
                by_tag.entry(tag).or_default().push((path.clone(), method, op));
            }
        }
    }
    for (tag, ops) in by_tag {
        let _ = write!(html, "<h2>{}</h2>", escape(&tag));
        for (path, method, op) in ops {
            let _ = write!(
                html,
                "<div class=\"op\"><span class=\"m {method}\">{}</span> <span class=\"path\">{}</span>",
                method.to_uppercase(),
                escape(&path)
            );
            let text =
                [op.summary.as_deref(), op.description.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
            if !text.is_empty() {
                let _ = write!(html, "<p class=\"d\">{}</p>", escape(&text));
            }
            html.push_str("</div>");
        }
    }
    html.push_str("</body></html>");
    html
}

pub async fn docs(State(state): State<AppState>) -> Html<String> {
    Html(state.docs_html.to_string())
}

/// A stored avatar, by content address. The address never changes meaning, so it is cached
/// for a year and revalidated by `ETag`.
pub async fn avatar(
    State(state): State<AppState>,
    PathParams(file): PathParams<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let hash = file.split('.').next().unwrap_or("");
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::Domain(DomainError::NotFound("image")));
    }
    let etag = format!("\"{hash}\"");
    let cache = HeaderValue::from_static("public, max-age=31536000, immutable");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, "public, max-age=31536000, immutable".into())],
        )
            .into_response());
    }
    let (content_type, bytes) = state.service.image(hash).await?;
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CACHE_CONTROL, cache);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
    Ok(res)
}
