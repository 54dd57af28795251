//! The mail outbox. A message is written in the transaction of the change it tells of (with
//! the hash of the token it carries), then claimed by one worker at a time: on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so that any number of instances share the work. A sent message
//! keeps its row, without its bodies (which hold the token's link), until the purge.

use chrono::{DateTime, Utc};
use tessera_core::mail::{DueMail, Mail};
use uuid::Uuid;

use crate::db::Db;
use crate::sql::{Columns, Param, Step, parse_id};
use crate::{Result, emails};

const INSERT_SQL: &str = "INSERT INTO mail_outbox (id, tenant_id, recipient, subject, text_body, html_body, status, \
     attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)";

/// The message, and the token it carries, as steps of its change's transaction.
pub(crate) fn insert_steps(m: &Mail) -> Vec<Step> {
    let params = vec![
        Param::text(m.id),
        Param::text(m.tenant_id),
        Param::text(&m.to),
        Param::text(&m.subject),
        Param::text(&m.text),
        Param::text(&m.html),
        Param::time(m.created_at),
    ];
    m.token.iter().map(emails::insert_token_step).chain([Step::execute(INSERT_SQL, params)]).collect()
}

/// Counts the attempt and moves the next one to the lease's end, in one statement that writes
/// first, so that no other write (on SQLite) or worker (on PostgreSQL) comes between.
const CLAIM_SQL: &str = "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $3 WHERE id IN \
     (SELECT id FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2) \
     RETURNING id, recipient, subject, text_body, html_body, attempts";
const CLAIM_LOCKED_SQL: &str = "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $3 WHERE id IN \
     (SELECT id FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2 \
     FOR UPDATE SKIP LOCKED) \
     RETURNING id, recipient, subject, text_body, html_body, attempts";

fn due_from(r: &dyn Columns) -> Result<DueMail> {
    Ok(DueMail {
        id: parse_id(&r.text("id")?)?,
        to: r.text("recipient")?,
        subject: r.text("subject")?,
        text: r.opt_text("text_body")?.unwrap_or_default(),
        html: r.opt_text("html_body")?.unwrap_or_default(),
        attempt: u32::try_from(r.int("attempts")?).unwrap_or(u32::MAX),
    })
}

/// Claims up to `limit` due messages for one attempt each, leased until `lease_until`: a
/// worker that dies mid-attempt leaves the message to be tried again then.
pub(crate) async fn claim(db: &Db, limit: u32, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> Result<Vec<DueMail>> {
    let mut due = db
        .detached(move |db| async move {
            let mut tx = db.begin().await?;
            let sql = tx.pick(CLAIM_SQL, CLAIM_LOCKED_SQL);
            let params = [Param::time(now), Param::Int(Some(i64::from(limit))), Param::time(lease_until)];
            let due = tx.fetch_all(sql, &params, due_from).await?;
            tx.commit().await?;
            Ok(due)
        })
        .await?;
    // `RETURNING` comes in no order: oldest first (ids are ordered by time).
    due.sort_by_key(|m| m.id);
    Ok(due)
}

/// What one attempt at a message came to.
#[derive(Debug, Clone)]
pub struct MailOutcome {
    pub id: Uuid,
    /// Sent, or given up on: the bodies are dropped.
    pub done: bool,
    pub sent: bool,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
    /// When not done: when the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Records a round's outcomes, in one transaction.
pub(crate) async fn record(db: &Db, outcomes: &[MailOutcome]) -> Result<()> {
    const DONE_SQL: &str = "UPDATE mail_outbox SET status = $2, error = $3, sent_at = $4, next_attempt_at = NULL, \
         text_body = NULL, html_body = NULL WHERE id = $1";
    const RETRY_SQL: &str = "UPDATE mail_outbox SET error = $2, next_attempt_at = $3 WHERE id = $1";
    let steps: Vec<Step> = outcomes
        .iter()
        .map(|o| {
            if o.done {
                let status = if o.sent { "sent" } else { "failed" };
                let sent_at = Param::Int(o.sent.then(|| crate::sql::ms(o.at)));
                Step::execute(
                    DONE_SQL,
                    vec![Param::text(o.id), Param::text(status), Param::Text(o.error.clone()), sent_at],
                )
            } else {
                let next = Param::Int(o.next_attempt_at.map(crate::sql::ms));
                Step::execute(RETRY_SQL, vec![Param::text(o.id), Param::Text(o.error.clone()), next])
            }
        })
        .collect();
    if steps.is_empty() {
        return Ok(());
    }
    db.transaction(steps).await
}

/// Messages waiting to be sent, for the metrics.
pub(crate) async fn pending(db: &Db) -> Result<u64> {
    let sql = "SELECT COUNT(*) AS n FROM mail_outbox WHERE status = 'pending'";
    let n = db.fetch_optional(sql, &[], |r: &dyn Columns| r.int("n")).await?;
    Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// Forgets messages sent or given up on before `before`.
pub(crate) async fn purge(db: &Db, before: DateTime<Utc>) -> Result<u64> {
    db.execute("DELETE FROM mail_outbox WHERE status <> 'pending' AND created_at < $1", &[Param::time(before)]).await
}
