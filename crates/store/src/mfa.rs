//! A user's second factors: the TOTP secret with its last accepted step, and recovery codes.

use chrono::{DateTime, Utc};
use tessera_core::{TenantId, UserId};

use crate::Result;
use crate::db::Db;
use crate::sql::{Param, Step};

pub(crate) async fn find_totp(db: &Db, tenant: TenantId, id: UserId) -> Result<Option<(String, Option<i64>)>> {
    let sql =
        "SELECT totp_secret, totp_last_step FROM users WHERE tenant_id = $1 AND id = $2 AND totp_secret IS NOT NULL";
    db.fetch_optional(sql, &[Param::text(tenant), Param::text(id)], |r| {
        Ok((r.text("totp_secret")?, r.opt_int("totp_last_step")?))
    })
    .await
}

/// Conditional, so that of two uses of one code exactly one is accepted.
pub(crate) async fn accept_totp_step(db: &Db, tenant: TenantId, id: UserId, step: i64) -> Result<bool> {
    let sql = "UPDATE users SET totp_last_step = $3 WHERE tenant_id = $1 AND id = $2 \
               AND totp_secret IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $3)";
    Ok(db.execute(sql, &[Param::text(tenant), Param::text(id), Param::Int(Some(step))]).await? == 1)
}

pub(crate) async fn replace_recovery_codes(db: &Db, user: UserId, hashes: &[String]) -> Result<()> {
    let mut steps = vec![Step::execute("DELETE FROM recovery_codes WHERE user_id = $1", vec![Param::text(user)])];
    steps.extend(hashes.iter().map(|h| {
        Step::execute(
            "INSERT INTO recovery_codes (user_id, hash) VALUES ($1, $2)",
            vec![Param::text(user), Param::text(h)],
        )
    }));
    db.transaction(steps).await
}

pub(crate) async fn use_recovery_code(db: &Db, user: UserId, hash: &str, now: DateTime<Utc>) -> Result<bool> {
    let sql = "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND hash = $2 AND used_at IS NULL";
    Ok(db.execute(sql, &[Param::text(user), Param::text(hash), Param::time(now)]).await? == 1)
}
