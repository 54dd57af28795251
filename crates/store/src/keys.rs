//! Token signing keys: listed oldest first, retired once.

use chrono::{DateTime, Utc};

use crate::db::Db;
use crate::sql::{Columns, Param, from_ms, ms};
use crate::{Result, SigningKeyRecord};

fn key_from(r: &dyn Columns) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: r.text("kid")?,
        alg: r.text("alg")?,
        private_key: r.text("private_key")?,
        public_key: r.text("public_key")?,
        created_at: from_ms(r.int("created_at")?),
        retired_at: r.opt_int("retired_at")?.map(from_ms),
    })
}

pub(crate) async fn list(db: &Db) -> Result<Vec<SigningKeyRecord>> {
    let sql = "SELECT kid, alg, private_key, public_key, created_at, retired_at FROM signing_keys ORDER BY created_at";
    db.fetch_all(sql, &[], key_from).await
}

pub(crate) async fn insert(db: &Db, key: &SigningKeyRecord) -> Result<()> {
    let sql = "INSERT INTO signing_keys (kid, alg, private_key, public_key, created_at, retired_at) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    let params = [
        Param::text(&key.kid),
        Param::text(&key.alg),
        Param::text(&key.private_key),
        Param::text(&key.public_key),
        Param::time(key.created_at),
        Param::Int(key.retired_at.map(ms)),
    ];
    db.execute(sql, &params).await.map(drop)
}

pub(crate) async fn retire(db: &Db, kid: &str, at: DateTime<Utc>) -> Result<()> {
    let sql = "UPDATE signing_keys SET retired_at = $2 WHERE kid = $1 AND retired_at IS NULL";
    db.execute(sql, &[Param::text(kid), Param::time(at)]).await.map(drop)
}
