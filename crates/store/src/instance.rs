//! Instance-wide values (the root key's hash), each set once.

use crate::Result;
use crate::db::Db;
use crate::sql::Param;

pub(crate) async fn find(db: &Db, key: &str) -> Result<Option<String>> {
    db.fetch_optional("SELECT value FROM instance_values WHERE key = $1", &[Param::text(key)], |r| r.text("value"))
        .await
}

/// Whether `value` was stored: a key already set keeps its value.
pub(crate) async fn insert(db: &Db, key: &str, value: &str) -> Result<bool> {
    let sql = "INSERT INTO instance_values (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
    Ok(db.execute(sql, &[Param::text(key), Param::text(value)]).await? == 1)
}
