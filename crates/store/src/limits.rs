//! Brute-force windows counted in the database, for limits that hold across instances: a fixed
//! window a key, counted by one upsert.

use chrono::{DateTime, Utc};

use crate::Result;
use crate::db::Db;
use crate::sql::{Columns, Param, from_ms};

fn window(r: &dyn Columns) -> Result<(u32, DateTime<Utc>)> {
    Ok((u32::try_from(r.int("hits")?).unwrap_or(u32::MAX), from_ms(r.int("ends_at")?)))
}

/// The count and end of `key`'s window, while it lasts.
pub(crate) async fn find(db: &Db, key: &str, now: DateTime<Utc>) -> Result<Option<(u32, DateTime<Utc>)>> {
    const SQL: &str = "SELECT hits, ends_at FROM rate_limits WHERE key = $1 AND ends_at > $2";
    db.fetch_optional(SQL, &[Param::text(key), Param::time(now)], window).await
}

/// Counts one event of `key`: a window that has ended starts again, `seconds` long, with it.
/// The count and end after it, in the same statement, so that instances counting at once
/// each see their own event counted.
pub(crate) async fn record(db: &Db, key: &str, seconds: i64, now: DateTime<Utc>) -> Result<(u32, DateTime<Utc>)> {
    const SQL: &str = "INSERT INTO rate_limits (key, hits, ends_at) VALUES ($1, 1, $2) \
         ON CONFLICT (key) DO UPDATE SET \
         hits = CASE WHEN rate_limits.ends_at <= $3 THEN 1 ELSE rate_limits.hits + 1 END, \
         ends_at = CASE WHEN rate_limits.ends_at <= $3 THEN excluded.ends_at ELSE rate_limits.ends_at END \
         RETURNING hits, ends_at";
    let ends = now + chrono::Duration::seconds(seconds);
    let params = [Param::text(key), Param::time(ends), Param::time(now)];
    let row = db.execute_returning(SQL, &params, window).await?;
    Ok(row.unwrap_or((1, ends)))
}

/// Forgets the windows that have ended.
pub(crate) async fn purge(db: &Db, now: DateTime<Utc>) -> Result<u64> {
    db.execute("DELETE FROM rate_limits WHERE ends_at <= $1", &[Param::time(now)]).await
}
