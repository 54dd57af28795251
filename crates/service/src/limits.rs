//! Brute-force limits: failed sign-ins per account, attempts per client address, failed second
//! factors per user, failed client authentications per client id. Fixed windows counted in
//! memory per instance (behind a load balancer each instance limits on its own, so the
//! effective limit is at most the instance count times the setting).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tessera_core::DomainError;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: DateTime<Utc>,
    count: u32,
}

pub struct Limiter {
    windows: moka::sync::Cache<String, Arc<Mutex<Window>>>,
}

impl Default for Limiter {
    fn default() -> Self {
        // Keys expire an hour after their last use: longer than any window.
        Self {
            windows: moka::sync::Cache::builder().max_capacity(200_000).time_to_idle(Duration::from_secs(3600)).build(),
        }
    }
}

impl Limiter {
    fn window(&self, key: &str, now: DateTime<Utc>) -> Arc<Mutex<Window>> {
        self.windows.get_with(key.to_owned(), || Arc::new(Mutex::new(Window { started: now, count: 0 })))
    }

    /// Refuses when `key` has had `limit` events in the current window of `seconds`.
    pub fn check(&self, key: &str, limit: u32, seconds: i64, now: DateTime<Utc>) -> Result<(), DomainError> {
        let Some(w) = self.windows.get(key) else { return Ok(()) };
        let w = *w.lock().unwrap_or_else(|p| p.into_inner());
        let ends = w.started + chrono::Duration::seconds(seconds);
        if now < ends && w.count >= limit {
            return Err(DomainError::RateLimited { retry_after_seconds: (ends - now).num_seconds().max(1) as u64 });
        }
        Ok(())
    }

    /// Counts one event for `key`, starting a new window when the last one has ended.
    pub fn record(&self, key: &str, seconds: i64, now: DateTime<Utc>) {
        let w = self.window(key, now);
        let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
        if now >= w.started + chrono::Duration::seconds(seconds) {
            *w = Window { started: now, count: 0 };
        }
        w.count += 1;
    }

    /// Checks, then counts: for limits on every attempt, not just failures.
    pub fn hit(&self, key: &str, limit: u32, seconds: i64, now: DateTime<Utc>) -> Result<(), DomainError> {
        self.check(key, limit, seconds, now)?;
        self.record(key, seconds, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_fills_refuses_with_the_time_left_and_then_reopens() {
        let l = Limiter::default();
        let t0 = Utc::now();
        for _ in 0..3 {
            l.hit("k", 3, 60, t0).unwrap();
        }
        match l.hit("k", 3, 60, t0 + chrono::Duration::seconds(20)) {
            Err(DomainError::RateLimited { retry_after_seconds }) => assert_eq!(retry_after_seconds, 40),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(l.hit("k", 3, 60, t0 + chrono::Duration::seconds(61)).is_ok());
        assert!(l.check("other", 1, 60, t0).is_ok());
    }
}
