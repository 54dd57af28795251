//! Request metrics in the Prometheus text format. Kept in the app state rather than a global
//! recorder, so that many servers in one test process never share counters.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Series {
    count: AtomicU64,
    sum_micros: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
}

type Key = (String, String, u16);

#[derive(Default)]
pub struct Metrics {
    series: RwLock<HashMap<Key, Arc<Series>>>,
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let key = (method.to_owned(), route.to_owned(), status);
        let existing = self.series.read().ok().and_then(|m| m.get(&key).cloned());
        let series = match existing {
            Some(s) => s,
            None => {
                let Ok(mut map) = self.series.write() else { return };
                Arc::clone(map.entry(key).or_default())
            }
        };
        series.count.fetch_add(1, Ordering::Relaxed);
        series.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                series.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(map) = self.series.read() else { return out };
        let mut keys: Vec<&Key> = map.keys().collect();
        keys.sort();
        out.push_str("# HELP tessera_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE tessera_http_requests_total counter\n");
        for k in &keys {
            let s = &map[*k];
            let _ = writeln!(
                out,
                "tessera_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{}\"}} {}",
                k.0,
                k.1,
                k.2,
                s.count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP tessera_http_request_duration_seconds Time to answer, by method, route and status.\n");
        out.push_str("# TYPE tessera_http_request_duration_seconds histogram\n");
        for k in &keys {
            let s = &map[*k];
            let labels = format!("method=\"{}\",route=\"{}\",status=\"{}\"", k.0, k.1, k.2);
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tessera_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    s.buckets[i].load(Ordering::Relaxed)
                );
            }
            let count = s.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "tessera_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(out, "tessera_http_request_duration_seconds_count{{{labels}}} {count}");
        }
        out
    }
}

/// Middleware: times each request and counts it under its route template (never the raw
/// path, which would make one series per user id), and logs the cause of a failure the client
/// was not told (`Untold`): the one place errors are logged.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let res = next.run(req).await;
    crate::error::Untold::log(&res);
    metrics.record(&method, &route, res.status().as_u16(), start.elapsed().as_secs_f64());
    res
}
