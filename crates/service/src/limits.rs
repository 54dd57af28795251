//! Brute-force limits: failed sign-ins per account, attempts per client address, failed second
//! factors per user, failed client authentications per client id, and the mail limits. Fixed
//! windows: on PostgreSQL counted in the database, so that a limit holds for the whole
//! deployment however many instances share it; on SQLite (one process) counted in memory.
//! Only sign-in, recovery and token requests touch them, never `GET /v1/me`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tessera_auth::secret::hash_secret;
use tessera_core::DomainError;
use tessera_store::Store;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: DateTime<Utc>,
    count: u32,
}

/// Where the windows are counted.
enum Counts {
    /// In this process: one instance.
    Memory(moka::sync::Cache<String, Arc<Mutex<Window>>>),
    /// In the database, by the SHA-256 of each key: every instance sees every count.
    Shared(Arc<dyn Store>),
}

pub struct Limiter {
    counts: Counts,
}

fn refused(ends: DateTime<Utc>, now: DateTime<Utc>) -> DomainError {
    DomainError::RateLimited { retry_after_seconds: (ends - now).num_seconds().max(1).unsigned_abs() }
}

impl Limiter {
    /// Windows in this process's memory.
    pub fn in_memory() -> Self {
        // Keys expire an hour after their last use: longer than any window.
        let cache = moka::sync::Cache::builder().max_capacity(200_000).time_to_idle(Duration::from_secs(3600)).build();
        Self { counts: Counts::Memory(cache) }
    }

    /// Windows in `store`, shared with every instance using it.
    pub fn shared(store: Arc<dyn Store>) -> Self {
        Self { counts: Counts::Shared(store) }
    }

    /// Refuses when `key` has had `limit` events in the current window of `seconds`.
    pub async fn check(&self, key: &str, limit: u32, seconds: i64, now: DateTime<Utc>) -> Result<(), DomainError> {
        let (count, ends) = match &self.counts {
            Counts::Memory(windows) => {
                let Some(w) = windows.get(key) else { return Ok(()) };
                let w = *w.lock().unwrap_or_else(|p| p.into_inner());
                (w.count, w.started + chrono::Duration::seconds(seconds))
            }
            Counts::Shared(store) => {
                match store.find_limit_window(&hash_secret(key), now).await.map_err(crate::store_err)? {
                    Some(w) => w,
                    None => return Ok(()),
                }
            }
        };
        if now < ends && count >= limit { Err(refused(ends, now)) } else { Ok(()) }
    }

    /// Counts one event for `key`, starting a new window when the last one has ended. A count
    /// the database could not take is logged: the request it belongs to has its answer.
    pub async fn record(&self, key: &str, seconds: i64, now: DateTime<Utc>) {
        if let Err(e) = self.count(key, seconds, now).await {
            tracing::error!(error = %e, "a brute-force count could not be recorded");
        }
    }

    /// Counts, and refuses when the count is over `limit`: for limits on every attempt, not
    /// just failures. One statement on the database.
    pub async fn hit(&self, key: &str, limit: u32, seconds: i64, now: DateTime<Utc>) -> Result<(), DomainError> {
        if let Counts::Memory(_) = &self.counts {
            // Refused attempts are not counted, so that the window's end is what it was.
            self.check(key, limit, seconds, now).await?;
        }
        let (count, ends) = self.count(key, seconds, now).await?;
        if count > limit { Err(refused(ends, now)) } else { Ok(()) }
    }

    async fn count(&self, key: &str, seconds: i64, now: DateTime<Utc>) -> Result<(u32, DateTime<Utc>), DomainError> {
        match &self.counts {
            Counts::Memory(windows) => {
                let w = windows.get_with(key.to_owned(), || Arc::new(Mutex::new(Window { started: now, count: 0 })));
                let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
                if now >= w.started + chrono::Duration::seconds(seconds) {
                    *w = Window { started: now, count: 0 };
                }
                w.count += 1;
                Ok((w.count, w.started + chrono::Duration::seconds(seconds)))
            }
            Counts::Shared(store) => {
                store.record_limit_event(&hash_secret(key), seconds, now).await.map_err(crate::store_err)
            }
        }
    }

    /// Forgets the windows that have ended (the database's; memory forgets by itself).
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<u64, DomainError> {
        match &self.counts {
            Counts::Memory(_) => Ok(0),
            Counts::Shared(store) => store.purge_limit_windows(now).await.map_err(crate::store_err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_window_fills_refuses_with_the_time_left_and_then_reopens() {
        let l = Limiter::in_memory();
        let t0 = Utc::now();
        for _ in 0..3 {
            l.hit("k", 3, 60, t0).await.unwrap();
        }
        match l.hit("k", 3, 60, t0 + chrono::Duration::seconds(20)).await {
            Err(DomainError::RateLimited { retry_after_seconds }) => assert_eq!(retry_after_seconds, 40),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(l.hit("k", 3, 60, t0 + chrono::Duration::seconds(61)).await.is_ok());
        assert!(l.check("other", 1, 60, t0).await.is_ok());
    }
}
