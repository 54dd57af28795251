//! A user's passkeys and the WebAuthn ceremonies in flight.

use chrono::{DateTime, Utc};
use tessera_core::events::Record;
use tessera_core::passkey::{Ceremony, CeremonyPurpose, Passkey, StoredPasskey};
use tessera_core::{TenantId, UserId};
use uuid::Uuid;

use crate::db::Db;
use crate::sql::{Columns, Param, Step, Touch, from_ms, parse_id};
use crate::{Result, StoreError, constraints, events};

const COLUMNS: &str = "id, tenant_id, user_id, credential_id, name, credential, sign_count, backup_eligible, \
                       backup_state, created_at, last_used_at";

fn stored_from(r: &dyn Columns) -> Result<StoredPasskey> {
    Ok(StoredPasskey {
        passkey: Passkey {
            id: parse_id(&r.text("id")?)?,
            tenant_id: parse_id(&r.text("tenant_id")?)?,
            user_id: parse_id(&r.text("user_id")?)?,
            credential_id: r.text("credential_id")?,
            name: r.text("name")?,
            sign_count: u32::try_from(r.int("sign_count")?).unwrap_or(u32::MAX),
            backup_eligible: r.flag("backup_eligible")?,
            backup_state: r.flag("backup_state")?,
            created_at: from_ms(r.int("created_at")?),
            last_used_at: r.opt_int("last_used_at")?.map(from_ms),
        },
        credential: r.text("credential")?,
    })
}

/// Adds a passkey with its records; a conflict when its credential is registered already.
pub(crate) async fn insert(db: &Db, new: &StoredPasskey, records: &[Record]) -> Result<()> {
    const SQL: &str = "INSERT INTO passkeys (id, tenant_id, user_id, credential_id, name, credential, sign_count, \
                       backup_eligible, backup_state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    let p = &new.passkey;
    let params = vec![
        Param::text(p.id),
        Param::text(p.tenant_id),
        Param::text(p.user_id),
        Param::text(&p.credential_id),
        Param::text(&p.name),
        Param::text(&new.credential),
        Param::Int(Some(i64::from(p.sign_count))),
        Param::Bool(p.backup_eligible),
        Param::Bool(p.backup_state),
        Param::time(p.created_at),
    ];
    let steps = std::iter::once(Step::execute(SQL, params)).chain(events::steps(records)).collect();
    db.transaction(steps).await.map_err(|e| match e {
        StoreError::Conflict { .. } => StoreError::Conflict { constraint: constraints::PASSKEY },
        other => other,
    })
}

/// The user's passkeys, oldest first.
pub(crate) async fn list(db: &Db, tenant: TenantId, user: UserId) -> Result<Vec<StoredPasskey>> {
    let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id");
    db.fetch_all(&sql, &[Param::text(tenant), Param::text(user)], stored_from).await
}

/// The tenant's passkey with this credential id, whoever's it is.
pub(crate) async fn find(db: &Db, tenant: TenantId, credential_id: &str) -> Result<Option<StoredPasskey>> {
    let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE tenant_id = $1 AND credential_id = $2");
    db.fetch_optional(&sql, &[Param::text(tenant), Param::text(credential_id)], stored_from).await
}

/// Renames one of the user's passkeys; false when they have none by that id.
pub(crate) async fn rename(db: &Db, tenant: TenantId, user: UserId, id: Uuid, name: &str) -> Result<bool> {
    const SQL: &str = "UPDATE passkeys SET name = $4 WHERE tenant_id = $1 AND user_id = $2 AND id = $3";
    let params = [Param::text(tenant), Param::text(user), Param::text(id), Param::text(name)];
    Ok(db.execute(SQL, &params).await? == 1)
}

/// Removes one of the user's passkeys, with its records only if it was there.
pub(crate) async fn delete(db: &Db, tenant: TenantId, user: UserId, id: Uuid, records: &[Record]) -> Result<bool> {
    const SQL: &str = "DELETE FROM passkeys WHERE tenant_id = $1 AND user_id = $2 AND id = $3";
    let params = vec![Param::text(tenant), Param::text(user), Param::text(id)];
    events::change_with(db, Touch::User(user), vec![events::must_change(SQL, params)], records).await
}

/// Records a use: the credential as the assertion left it, its counter and backup state. Only
/// if the counter still is what the assertion was checked against (or it keeps none), so that
/// of two assertions racing with one counter value, one wins.
pub(crate) async fn record_use(db: &Db, used: &StoredPasskey, previous_count: u32, now: DateTime<Utc>) -> Result<bool> {
    const SQL: &str = "UPDATE passkeys SET credential = $3, sign_count = $4, backup_state = $5, last_used_at = $6 \
                       WHERE tenant_id = $1 AND id = $2 AND (sign_count = $7 OR $4 = 0)";
    let p = &used.passkey;
    let params = [
        Param::text(p.tenant_id),
        Param::text(p.id),
        Param::text(&used.credential),
        Param::Int(Some(i64::from(p.sign_count))),
        Param::Bool(p.backup_state),
        Param::time(now),
        Param::Int(Some(i64::from(previous_count))),
    ];
    Ok(db.execute(SQL, &params).await? == 1)
}

pub(crate) async fn insert_ceremony(db: &Db, c: &Ceremony) -> Result<()> {
    const SQL: &str = "INSERT INTO passkey_ceremonies (hash, tenant_id, user_id, purpose, state, expires_at) \
                       VALUES ($1, $2, $3, $4, $5, $6)";
    let params = [
        Param::text(&c.hash),
        Param::text(c.tenant_id),
        Param::Text(c.user_id.map(|u| u.to_string())),
        Param::text(c.purpose.as_str()),
        Param::text(&c.state),
        Param::time(c.expires_at),
    ];
    db.execute(SQL, &params).await.map(drop)
}

/// Uses a ceremony up, in one statement that writes first, so that of two answers to it only
/// one gets it; none when it is unknown, used or expired. Expired ceremonies are forgotten.
pub(crate) async fn take_ceremony(db: &Db, hash: &str, now: DateTime<Utc>) -> Result<Option<Ceremony>> {
    const SQL: &str = "UPDATE passkey_ceremonies SET used_at = $2 \
                       WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 \
                       RETURNING hash, tenant_id, user_id, purpose, state, expires_at";
    let hash = hash.to_owned();
    db.detached(move |db| async move {
        let mut tx = db.begin().await?;
        let taken = tx
            .fetch_optional(SQL, &[Param::text(&hash), Param::time(now)], |r: &dyn Columns| {
                let purpose = r.text("purpose")?;
                Ok(Ceremony {
                    hash: r.text("hash")?,
                    tenant_id: parse_id(&r.text("tenant_id")?)?,
                    user_id: r.opt_text("user_id")?.map(|u| parse_id(&u)).transpose()?,
                    purpose: CeremonyPurpose::parse(&purpose)
                        .ok_or_else(|| crate::sql::other(std::io::Error::other(format!("purpose {purpose}"))))?,
                    state: r.text("state")?,
                    expires_at: from_ms(r.int("expires_at")?),
                })
            })
            .await?;
        tx.execute("DELETE FROM passkey_ceremonies WHERE expires_at < $1", &[Param::time(now)]).await?;
        tx.commit().await?;
        Ok(taken)
    })
    .await
}
