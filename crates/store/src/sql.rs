//! The SQL implementation of `Store`, written once and instantiated for SQLite and PostgreSQL by
//! `impl_store!`. Both read the same migrations and the same statements: only `$n` placeholders,
//! types and syntax the two share. What differs is confined to `connect` (pools and pragmas) and
//! `conflict_name` (how each reports a unique violation).

use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Postgres, QueryBuilder, Row, Sqlite};
use tessera_core::oauth::{AuthorizationGrant, OAuthClient};
use tessera_core::tenant::{Tenant, TenantSettings};
use tessera_core::user::{AuthProvider, Metadata, Profile, Session, Suspension, Team, User, UserStatus};
use tessera_core::{SessionId, TeamId, TenantId, UserId};

use crate::inline::InlineReads;
use crate::session_reads::SessionReads;
use crate::user_cache::{Kept, Touch, Touching, UserCache};
use crate::writer::Writer;
use crate::{
    ImageBlob, Login, NewUser, Redemption, Result, Rotation, SigningKeyRecord, Store, StoreError, UserCredentials,
    UserFilter, UserWrite, constraints,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `sqlite://path` (created if missing) or `postgres://...`.
    pub url: String,
    /// Pool size for PostgreSQL, and for SQLite's readers.
    pub max_connections: u32,
    /// PostgreSQL: how long a query waits for a connection (all busy, or the server out of
    /// reach and being reconnected to) before it fails as `StoreError::Unavailable`.
    pub acquire_timeout: Duration,
    /// SQLite only: fsync the WAL on every commit (`synchronous=FULL`). Off, a commit survives a
    /// crash of the process (kill -9) but not of the machine.
    pub sqlite_sync_full: bool,
    /// SQLite on a file: how long a user read for a session may be served again from memory
    /// (`user_cache.rs`); zero turns the cache off. Writes made by this process are seen at
    /// once regardless; this bounds how long another process's writes go unseen.
    pub user_cache_max_age: Duration,
}

pub async fn connect(opts: &ConnectOptions) -> Result<Arc<dyn Store>> {
    if opts.url.starts_with("postgres://") || opts.url.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(&opts.url).map_err(other)?;
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(2))
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(other)?;
        let session_reads = Some(SessionReads::start(pool.clone()));
        Ok(Arc::new(SqlStore::<Postgres> {
            read: pool.clone(),
            write: pool,
            inline: None,
            writer: None,
            users: None,
            session_reads,
        }))
    } else {
        let options = SqliteConnectOptions::from_str(&opts.url)
            .map_err(other)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if opts.sqlite_sync_full { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("wal_autocheckpoint", crate::writer::WAL_BACKSTOP_PAGES.to_string());
        // SQLite has one writer. Writes go through a pool of exactly one connection, so they
        // queue in the pool (fairly, without spinning on the lock) instead of contending.
        // No ping before each acquire (sqlx's default): an embedded database connection does not
        // go stale, and the ping is one more round trip to the connection's worker thread on
        // every query — on `GET /me` the profile showed thread hand-offs as the main cost.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(other)?;
        let read = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(other)?;
        let file = options.get_filename();
        let (inline, writer, users) = if file == std::path::Path::new(":memory:") {
            (None, None, None)
        } else {
            let inline = InlineReads::new(file.to_path_buf(), opts.max_connections as usize);
            let users = UserCache::new(opts.user_cache_max_age).map(Arc::new);
            let writer = Writer::start(file, opts.sqlite_sync_full, write.clone(), users.clone())?;
            (Some(inline), Some(writer), users)
        };
        Ok(Arc::new(SqlStore::<Sqlite> { read, write, inline, writer, users, session_reads: None }))
    }
}

pub struct SqlStore<DB: sqlx::Database> {
    read: Pool<DB>,
    write: Pool<DB>,
    /// SQLite on a file: the hot reads, without sqlx's thread hand-off (`inline.rs`).
    inline: Option<InlineReads>,
    /// SQLite on a file: user writes, committed in groups on one thread (`writer.rs`).
    writer: Option<Writer>,
    /// SQLite on a file: users read for a session, until a write touches them (`user_cache.rs`).
    /// Only ever beside `writer`, whose thread outdates them after its writes.
    users: Option<Arc<UserCache>>,
    /// PostgreSQL: concurrent `find_user_for_session` reads, one statement for many
    /// (`session_reads.rs`).
    session_reads: Option<SessionReads>,
}

impl<DB: sqlx::Database> SqlStore<DB> {
    /// A guard every write that changes what `find_user_for_session` returns holds until it
    /// has committed (or failed): its drop outdates the cached users it touched.
    fn touching(&self, what: Touch) -> Touching<'_> {
        UserCache::touching(self.users.as_deref(), what)
    }
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Other(Box::new(e))
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { constraint: conflict_name(db.constraint().unwrap_or(db.message())) }
        }
        other if unreachable(&other) => StoreError::Unavailable(Box::new(other)),
        other => StoreError::Other(Box::new(other)),
    }
}

/// The errors that say the database could not be reached, rather than that a statement was
/// wrong: PostgreSQL's connection exceptions (class 08) and operator interventions (57P01–
/// 57P05: shutting down, crashed, not yet accepting connections), and the pool's and the
/// socket's own failures.
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// PostgreSQL names the violated index; SQLite names its columns ("UNIQUE constraint failed:
/// users.tenant_id, users.primary_email"). Both map to the same stable name.
pub(crate) fn conflict_name(said: &str) -> &'static str {
    if said.contains("email") {
        constraints::USER_EMAIL
    } else if said.contains("username") {
        constraints::USER_USERNAME
    } else if said.contains("team_members") {
        constraints::TEAM_MEMBERSHIP
    } else if said.contains("instance_values") {
        constraints::INSTANCE_VALUE
    } else {
        constraints::TENANT_KEY
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(other)
}

fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(other)
}

fn parse_id<T: FromStr>(s: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse().map_err(other)
}

/// The part of a user kept in the `profile` JSON column.
#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(default)]
struct StoredDoc {
    profile: Profile,
    metadata: Metadata,
    suspensions: Vec<Suspension>,
}

/// A row of either driver read by column name: sqlx's rows, and rusqlite's for the reads that
/// run inline (`inline.rs`). `user_from` is written once against it.
pub(crate) trait Columns {
    fn text(&self, c: &str) -> Result<String>;
    fn opt_text(&self, c: &str) -> Result<Option<String>>;
    fn int(&self, c: &str) -> Result<i64>;
    fn opt_int(&self, c: &str) -> Result<Option<i64>>;
    fn flag(&self, c: &str) -> Result<bool>;
}

/// `Columns` for a driver's row type: `$get` reads a column by name, `$err` maps its error.
macro_rules! impl_columns {
    ($row:ty, $get:ident, $err:path) => {
        impl Columns for $row {
            fn text(&self, c: &str) -> Result<String> {
                self.$get(c).map_err($err)
            }
            fn opt_text(&self, c: &str) -> Result<Option<String>> {
                self.$get(c).map_err($err)
            }
            fn int(&self, c: &str) -> Result<i64> {
                self.$get(c).map_err($err)
            }
            fn opt_int(&self, c: &str) -> Result<Option<i64>> {
                self.$get(c).map_err($err)
            }
            fn flag(&self, c: &str) -> Result<bool> {
                self.$get(c).map_err($err)
            }
        }
    };
}
impl_columns!(sqlx::sqlite::SqliteRow, try_get, map_err);
impl_columns!(sqlx::postgres::PgRow, try_get, map_err);
impl_columns!(rusqlite::Row<'_>, get, crate::writer::map_err);

/// A user from a row holding `USER_COLUMNS` and `active_sessions`.
pub(crate) fn user_from(row: &(impl Columns + ?Sized)) -> Result<User> {
    let doc: StoredDoc = parse_json(&row.text("profile")?)?;
    let mut profile = doc.profile;
    profile.selected_team_id = row.opt_text("selected_team_id")?.map(|s| parse_id(&s)).transpose()?;
    Ok(User {
        id: parse_id(&row.text("id")?)?,
        tenant_id: parse_id(&row.text("tenant_id")?)?,
        version: row.int("version")?,
        username: row.opt_text("username")?,
        primary_email: row.opt_text("primary_email")?,
        primary_email_verified: row.flag("primary_email_verified")?,
        status: UserStatus::parse(&row.text("status")?).unwrap_or_default(),
        auth_provider: AuthProvider::parse(&row.text("auth_provider")?).unwrap_or_default(),
        is_service_account: row.flag("is_service_account")?,
        is_anonymous: row.flag("is_anonymous")?,
        has_password: row.flag("has_password")?,
        totp_enabled: row.flag("totp_enabled")?,
        profile,
        metadata: doc.metadata,
        suspensions: doc.suspensions,
        created_at: from_ms(row.int("created_at")?),
        updated_at: from_ms(row.int("updated_at")?),
        deletion_due_at: row.opt_int("deletion_due_at")?.map(from_ms),
        active_sessions: row.int("active_sessions")?,
    })
}

/// A statement parameter, owned, so that a write can be described once and run by either
/// driver: sqlx (PostgreSQL, and SQLite's other writes) or SQLite's group-commit writer thread.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl Param {
    /// A non-null text parameter: an id, a key, a name.
    fn text(v: impl ToString) -> Self {
        Self::Text(Some(v.to_string()))
    }
}

/// The parameters `$1`–`$16` a user INSERT and UPDATE share, in one order.
fn user_params(u: &User, password_hash: Option<&str>, doc: String) -> Vec<Param> {
    use Param::{Bool, Int, Text};
    vec![
        Param::text(u.id),
        Param::text(u.tenant_id),
        Int(Some(u.version)),
        Text(u.username.clone()),
        Text(u.username.as_ref().map(|n| n.to_lowercase())),
        // Stored lower-case, as `users_email` and every email lookup assume: uniqueness and
        // sign-in ignore case whatever the caller passed.
        Text(u.primary_email.as_ref().map(|e| e.to_lowercase())),
        Bool(u.primary_email_verified),
        Param::text(u.status.as_str()),
        Param::text(u.auth_provider.as_str()),
        Bool(u.is_service_account),
        Bool(u.is_anonymous),
        Text(password_hash.map(str::to_owned)),
        Bool(u.totp_enabled),
        Text(u.profile.selected_team_id.map(|t| t.to_string())),
        Text(u.profile.avatar.as_ref().and_then(|a| a.stored_hash()).map(str::to_owned)),
        Text(Some(doc)),
    ]
}

// DO UPDATE (not DO NOTHING) touches the row, so an image re-used here is both locked against
// and fresh for a concurrent garbage collection.
pub(crate) const INSERT_IMAGE_SQL: &str = "INSERT INTO images (hash, content_type, bytes, created_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (hash) DO UPDATE SET created_at = excluded.created_at";

fn image_params(img: ImageBlob<'_>, now: DateTime<Utc>) -> Vec<Param> {
    vec![
        Param::text(img.hash),
        Param::text(img.content_type),
        Param::Bytes(img.bytes.to_vec()),
        Param::Int(Some(ms(now))),
    ]
}

/// The membership check of a user write; PostgreSQL appends its share lock (`impl_store!`).
macro_rules! membership_sql {
    () => {
        "SELECT 1 FROM team_members WHERE team_id = $1 AND user_id = $2"
    };
}
pub(crate) use membership_sql;

pub(crate) const UPDATE_USER_SQL: &str = "UPDATE users SET version = $3, username = $4, username_lower = $5, \
     primary_email = $6, primary_email_verified = $7, status = $8, auth_provider = $9, is_service_account = $10, \
     is_anonymous = $11, password_hash = COALESCE($12, password_hash), totp_enabled = $13, selected_team_id = $14, \
     avatar_hash = $15, profile = $16, secure_metadata = COALESCE($17, secure_metadata), updated_at = $18, \
     deletion_due_at = $19, totp_secret = CASE WHEN $21 THEN $22 ELSE totp_secret END, \
     totp_last_step = CASE WHEN $21 THEN NULL ELSE totp_last_step END \
     WHERE id = $1 AND tenant_id = $2 AND version = $20";

pub(crate) const USER_EXISTS_SQL: &str = "SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2";

pub(crate) const REVOKE_SESSIONS_SQL: &str =
    "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL AND ($3 IS NULL OR id <> $3)";

/// A `UserWrite` as the parameters of its statements, in the order they run in one
/// transaction: the membership check, the image, the versioned UPDATE (and, when it matched
/// nothing, the existence check that tells `Stale` from `NotFound`), the session revocation.
pub(crate) struct UserWritePlan {
    pub membership: Option<Vec<Param>>,
    pub image: Option<Vec<Param>>,
    pub update: Vec<Param>,
    pub exists: Vec<Param>,
    pub revoke: Option<Vec<Param>>,
}

impl UserWritePlan {
    fn new(w: &UserWrite<'_>) -> Result<Self> {
        let u = w.user;
        let mut update = user_params(u, w.password_hash, stored_doc(u)?);
        update.extend([
            Param::Text(w.secure_metadata.map(json).transpose()?),
            Param::Int(Some(ms(u.updated_at))),
            Param::Int(u.deletion_due_at.map(ms)),
            Param::Int(Some(w.expected_version)),
            Param::Bool(w.totp_secret.is_some()),
            Param::Text(w.totp_secret.flatten().map(str::to_owned)),
        ]);
        Ok(Self {
            membership: w.require_membership.map(|team| vec![Param::text(team), Param::text(u.id)]),
            image: w.new_image.map(|img| image_params(img, w.now)),
            update,
            exists: vec![Param::text(u.tenant_id), Param::text(u.id)],
            revoke: w.revoke_sessions.map(|r| {
                vec![Param::text(u.id), Param::Int(Some(ms(w.now))), Param::Text(r.except.map(|s| s.to_string()))]
            }),
        })
    }
}

/// An OAuth client from a row holding `OAUTH_CLIENT_COLUMNS`.
fn oauth_client_from(row: &(impl Columns + ?Sized)) -> Result<OAuthClient> {
    Ok(OAuthClient {
        client_id: row.text("client_id")?,
        tenant_id: parse_id(&row.text("tenant_id")?)?,
        name: row.text("name")?,
        redirect_uris: parse_json(&row.text("redirect_uris")?)?,
        grant_types: parse_json(&row.text("grant_types")?)?,
        is_public: row.flag("is_public")?,
        user_id: row.opt_text("user_id")?.as_deref().map(parse_id).transpose()?,
        created_at: from_ms(row.int("created_at")?),
    })
}

const INSERT_SESSION_SQL: &str = "INSERT INTO sessions (id, tenant_id, user_id, created_at, last_refreshed_at, \
     expires_at, revoked_at, user_agent, ip_address, client_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

const INSERT_REFRESH_TOKEN_SQL: &str = "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)";

/// Statements that run in order in one transaction, all or nothing.
pub(crate) type Steps = Vec<(&'static str, Vec<Param>)>;

fn insert_session_steps(s: &Session, refresh_hash: &str) -> Steps {
    use Param::{Int, Text};
    let session = vec![
        Param::text(s.id),
        Param::text(s.tenant_id),
        Param::text(s.user_id),
        Int(Some(ms(s.created_at))),
        Int(Some(ms(s.last_refreshed_at))),
        Int(Some(ms(s.expires_at))),
        Int(s.revoked_at.map(ms)),
        Text(s.user_agent.clone()),
        Text(s.ip_address.clone()),
        Text(s.client_id.clone()),
    ];
    let refresh = vec![Param::text(refresh_hash), Param::text(s.id), Int(Some(ms(s.created_at)))];
    vec![(INSERT_SESSION_SQL, session), (INSERT_REFRESH_TOKEN_SQL, refresh)]
}

/// The JSON document a user's `profile` column holds.
fn stored_doc(u: &User) -> Result<String> {
    json(&StoredDoc { profile: u.profile.clone(), metadata: u.metadata.clone(), suspensions: u.suspensions.clone() })
}

pub(crate) const USER_COLUMNS: &str = "u.id, u.tenant_id, u.version, u.username, u.primary_email, u.primary_email_verified, \
     u.status, u.auth_provider, u.is_service_account, u.is_anonymous, \
     (u.password_hash IS NOT NULL) AS has_password, u.totp_enabled, \
     u.selected_team_id, u.profile, u.created_at, u.updated_at, u.deletion_due_at";

/// Counts live sessions inside the user read, so `active_sessions` costs no second query.
/// `{now}` is the placeholder holding the current time.
fn active_sessions_column(now: &str) -> String {
    format!(
        "(SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > {now}) AS active_sessions"
    )
}

/// The statements of the hot path, built once: `GET /me` formats no SQL.
static FIND_USER_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {USER_COLUMNS}, {} FROM users u WHERE u.tenant_id = $1 AND u.id = $2", active_sessions_column("$3"))
});
/// Also the earliest expiry among the user's live sessions (`next_expiry`): until then the
/// row, `active_sessions` included, stays what it is unless a write touches it (`user_cache.rs`).
/// Both come from one scan of the user's sessions.
static FIND_USER_FOR_SESSION_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {USER_COLUMNS}, a.active_sessions, a.next_expiry FROM users u, \
           (SELECT COUNT(*) AS active_sessions, MIN(s.expires_at) AS next_expiry FROM sessions s \
            WHERE s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3) a \
         WHERE u.tenant_id = $1 AND u.id = $2 AND EXISTS (SELECT 1 FROM sessions s \
           WHERE s.id = $4 AND s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > $3)"
    )
});

const OAUTH_CLIENT_COLUMNS: &str =
    "client_id, tenant_id, name, redirect_uris, grant_types, is_public, user_id, created_at";

static FIND_OAUTH_CLIENT_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {OAUTH_CLIENT_COLUMNS}, secret_hash FROM oauth_clients WHERE client_id = $1"));

const SESSION_COLUMNS: &str =
    "id, tenant_id, user_id, created_at, last_refreshed_at, expires_at, revoked_at, user_agent, ip_address, client_id";

macro_rules! impl_store {
    ($db:ty, $backend:expr, $share_lock:literal) => {
        impl SqlStore<$db> {
            fn session_from_row(row: &<$db as sqlx::Database>::Row) -> Result<Session> {
                Ok(Session {
                    id: parse_id(&row.try_get::<String, _>("id").map_err(map_err)?)?,
                    tenant_id: parse_id(&row.try_get::<String, _>("tenant_id").map_err(map_err)?)?,
                    user_id: parse_id(&row.try_get::<String, _>("user_id").map_err(map_err)?)?,
                    created_at: from_ms(row.try_get("created_at").map_err(map_err)?),
                    last_refreshed_at: from_ms(row.try_get("last_refreshed_at").map_err(map_err)?),
                    expires_at: from_ms(row.try_get("expires_at").map_err(map_err)?),
                    revoked_at: row.try_get::<Option<i64>, _>("revoked_at").map_err(map_err)?.map(from_ms),
                    user_agent: row.try_get("user_agent").map_err(map_err)?,
                    ip_address: row.try_get("ip_address").map_err(map_err)?,
                    client_id: row.try_get("client_id").map_err(map_err)?,
                })
            }

            /// One optional row, mapped by `map`: inline on SQLite (`inline.rs`), else through sqlx.
            async fn fetch_optional<T, const N: usize>(
                &self,
                sql: &str,
                params: [Param; N],
                map: fn(&dyn Columns) -> Result<T>,
            ) -> Result<Option<T>> {
                if let Some(inline) = &self.inline {
                    return inline.query_row(sql, &params, |r| map(r));
                }
                let row = Self::bind_params(sqlx::query(sql), params).fetch_optional(&self.read).await.map_err(map_err)?;
                row.as_ref().map(|r| map(r)).transpose()
            }

            fn tenant_from_row(row: &<$db as sqlx::Database>::Row) -> Result<Tenant> {
                let settings: TenantSettings = parse_json(&row.try_get::<String, _>("settings").map_err(map_err)?)?;
                Ok(Tenant {
                    id: parse_id(&row.try_get::<String, _>("id").map_err(map_err)?)?,
                    name: row.try_get("name").map_err(map_err)?,
                    publishable_key: row.try_get("publishable_key").map_err(map_err)?,
                    settings,
                    created_at: from_ms(row.try_get("created_at").map_err(map_err)?),
                })
            }

            /// One tenant by a unique column; `sql` selects it with `$1`.
            async fn find_tenant_by(&self, sql: &'static str, value: &str) -> Result<Option<Tenant>> {
                let row = sqlx::query(sql).bind(value).fetch_optional(&self.read).await.map_err(map_err)?;
                row.as_ref().map(Self::tenant_from_row).transpose()
            }

            fn team_from_row(row: &<$db as sqlx::Database>::Row) -> Result<Team> {
                parse_json(&row.try_get::<String, _>("doc").map_err(map_err)?)
            }

            fn bind_params<'q>(
                mut q: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
                params: impl IntoIterator<Item = Param>,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
                for p in params {
                    q = match p {
                        Param::Text(v) => q.bind(v),
                        Param::Int(v) => q.bind(v),
                        Param::Bool(v) => q.bind(v),
                        Param::Bytes(v) => q.bind(v),
                    };
                }
                q
            }

            /// Runs a write that holds a `Touching` guard in a task of its own, so that it runs
            /// to its end, and the guard outdates the cached users after its commit, even if the
            /// caller stops waiting: a request is cancelled when its client hangs up, and a
            /// commit already sent could otherwise land after the guard had been dropped.
            /// `write` gets the write pool and the user cache to take its guard from.
            async fn detached<T: Send + 'static, F>(
                &self,
                write: impl FnOnce(sqlx::Pool<$db>, Option<Arc<UserCache>>) -> F,
            ) -> Result<T>
            where
                F: Future<Output = Result<T>> + Send + 'static,
            {
                let task = write(self.write.clone(), self.users.clone());
                tokio::spawn(task).await.unwrap_or_else(|e| Err(StoreError::Other(Box::new(e))))
            }

            /// One statement that changes what `find_user_for_session` may return for `touches`:
            /// on SQLite through the writer thread (which outdates the cached users after the
            /// COMMIT, even if this caller is cancelled meanwhile); the rows it changed.
            async fn execute_user_write(&self, touches: Touch, sql: &'static str, params: Vec<Param>) -> Result<u64> {
                if let Some(writer) = &self.writer {
                    return writer.write(touches, None, move |conn| crate::writer::execute(conn, sql, &params)).await.map(|n| n as u64);
                }
                // No writer, no cache (`users`): nothing to outdate.
                let done = Self::bind_params(sqlx::query(sql), params).execute(&self.write).await.map_err(map_err)?;
                Ok(done.rows_affected())
            }

            /// The user row (and its image), inside the caller's transaction.
            async fn insert_user_in(tx: &mut sqlx::Transaction<'_, $db>, new: NewUser<'_>) -> Result<()> {
                let u = new.user;
                let doc = stored_doc(u)?;
                if let Some(img) = new.new_image {
                    Self::insert_image(tx, img, u.created_at).await?;
                }
                let mut params = user_params(u, new.password_hash, doc);
                params.extend([
                    Param::Text(Some(json(new.secure_metadata)?)),
                    Param::Int(Some(ms(u.created_at))),
                    Param::Int(Some(ms(u.updated_at))),
                    Param::Int(u.deletion_due_at.map(ms)),
                ]);
                let insert = sqlx::query(
                    "INSERT INTO users (id, tenant_id, version, username, username_lower, primary_email, primary_email_verified, \
                     status, auth_provider, is_service_account, is_anonymous, password_hash, totp_enabled, selected_team_id, \
                     avatar_hash, profile, secure_metadata, created_at, updated_at, deletion_due_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
                );
                Self::bind_params(insert, params).execute(&mut **tx).await.map_err(map_err)?;
                Ok(())
            }

            async fn insert_image(tx: &mut sqlx::Transaction<'_, $db>, img: ImageBlob<'_>, now: DateTime<Utc>) -> Result<()> {
                Self::bind_params(sqlx::query(INSERT_IMAGE_SQL), image_params(img, now))
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
        }

        #[async_trait]
        impl Store for SqlStore<$db> {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn migrate(&self) -> Result<()> {
                MIGRATOR.run(&self.write).await.map_err(other)
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.read).await.map_err(map_err)?;
                Ok(())
            }

            async fn close(&self) {
                if let Some(writer) = &self.writer {
                    writer.close().await;
                }
                if let Some(inline) = &self.inline {
                    inline.close();
                }
                self.read.close().await;
                self.write.close().await;
            }

            async fn find_instance_value(&self, key: &str) -> Result<Option<String>> {
                sqlx::query_scalar("SELECT value FROM instance_values WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.read)
                    .await
                    .map_err(map_err)
            }

            async fn insert_instance_value(&self, key: &str, value: &str) -> Result<bool> {
                let done = sqlx::query("INSERT INTO instance_values (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(&self.write)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
                let rows = sqlx::query("SELECT kid, alg, private_key, public_key, created_at, retired_at FROM signing_keys ORDER BY created_at")
                    .fetch_all(&self.read)
                    .await
                    .map_err(map_err)?;
                rows.iter()
                    .map(|r| {
                        Ok(SigningKeyRecord {
                            kid: r.try_get("kid").map_err(map_err)?,
                            alg: r.try_get("alg").map_err(map_err)?,
                            private_key: r.try_get("private_key").map_err(map_err)?,
                            public_key: r.try_get("public_key").map_err(map_err)?,
                            created_at: from_ms(r.try_get("created_at").map_err(map_err)?),
                            retired_at: r.try_get::<Option<i64>, _>("retired_at").map_err(map_err)?.map(from_ms),
                        })
                    })
                    .collect()
            }

            async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
                sqlx::query("INSERT INTO signing_keys (kid, alg, private_key, public_key, created_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&key.kid)
                    .bind(&key.alg)
                    .bind(&key.private_key)
                    .bind(&key.public_key)
                    .bind(ms(key.created_at))
                    .bind(key.retired_at.map(ms))
                    .execute(&self.write)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn retire_signing_key(&self, kid: &str, at: DateTime<Utc>) -> Result<()> {
                sqlx::query("UPDATE signing_keys SET retired_at = $2 WHERE kid = $1 AND retired_at IS NULL")
                    .bind(kid)
                    .bind(ms(at))
                    .execute(&self.write)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn insert_tenant(&self, tenant: &Tenant, server_key_hash: &str) -> Result<()> {
                sqlx::query("INSERT INTO tenants (id, name, server_key_hash, publishable_key, settings, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(tenant.id.to_string())
                    .bind(&tenant.name)
                    .bind(server_key_hash)
                    .bind(&tenant.publishable_key)
                    .bind(json(&tenant.settings)?)
                    .bind(ms(tenant.created_at))
                    .execute(&self.write)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn find_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
                self.find_tenant_by("SELECT * FROM tenants WHERE id = $1", &id.to_string()).await
            }

            async fn find_tenant_by_server_key(&self, server_key_hash: &str) -> Result<Option<Tenant>> {
                self.find_tenant_by("SELECT * FROM tenants WHERE server_key_hash = $1", server_key_hash).await
            }

            async fn find_tenant_by_publishable_key(&self, key: &str) -> Result<Option<Tenant>> {
                self.find_tenant_by("SELECT * FROM tenants WHERE publishable_key = $1", key).await
            }

            async fn list_tenants(&self) -> Result<Vec<Tenant>> {
                let rows = sqlx::query("SELECT * FROM tenants ORDER BY created_at, id").fetch_all(&self.read).await.map_err(map_err)?;
                rows.iter().map(Self::tenant_from_row).collect()
            }

            async fn update_tenant(&self, tenant: &Tenant) -> Result<()> {
                let done = sqlx::query("UPDATE tenants SET name = $2, settings = $3 WHERE id = $1")
                    .bind(tenant.id.to_string())
                    .bind(&tenant.name)
                    .bind(json(&tenant.settings)?)
                    .execute(&self.write)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn find_tenant_policies(&self, tenant: TenantId) -> Result<String> {
                let src: Option<String> = sqlx::query_scalar("SELECT source FROM tenant_policies WHERE tenant_id = $1")
                    .bind(tenant.to_string())
                    .fetch_optional(&self.read)
                    .await
                    .map_err(map_err)?;
                Ok(src.unwrap_or_default())
            }

            async fn put_tenant_policies(&self, tenant: TenantId, source: &str, now: DateTime<Utc>) -> Result<()> {
                sqlx::query(
                    "INSERT INTO tenant_policies (tenant_id, source, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id) DO UPDATE SET source = excluded.source, updated_at = excluded.updated_at",
                )
                .bind(tenant.to_string())
                .bind(source)
                .bind(ms(now))
                .execute(&self.write)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn insert_user(&self, new: NewUser<'_>) -> Result<()> {
                let mut tx = self.write.begin().await.map_err(map_err)?;
                Self::insert_user_in(&mut tx, new).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn insert_oauth_client(
                &self,
                c: &OAuthClient,
                secret_hash: Option<&str>,
                service_user: Option<NewUser<'_>>,
            ) -> Result<()> {
                let mut tx = self.write.begin().await.map_err(map_err)?;
                if let Some(new) = service_user {
                    Self::insert_user_in(&mut tx, new).await?;
                }
                sqlx::query(
                    "INSERT INTO oauth_clients (client_id, tenant_id, name, redirect_uris, grant_types, is_public, secret_hash, user_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&c.client_id)
                .bind(c.tenant_id.to_string())
                .bind(&c.name)
                .bind(json(&c.redirect_uris)?)
                .bind(json(&c.grant_types)?)
                .bind(c.is_public)
                .bind(secret_hash)
                .bind(c.user_id.map(|u| u.to_string()))
                .bind(ms(c.created_at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn find_oauth_client(&self, client_id: &str) -> Result<Option<(OAuthClient, Option<String>)>> {
                self.fetch_optional(&FIND_OAUTH_CLIENT_SQL, [Param::text(client_id)], |r| {
                    Ok((oauth_client_from(r)?, r.opt_text("secret_hash")?))
                })
                .await
            }

            async fn list_oauth_clients(&self, tenant: TenantId) -> Result<Vec<OAuthClient>> {
                let sql = format!("SELECT {OAUTH_CLIENT_COLUMNS} FROM oauth_clients WHERE tenant_id = $1 ORDER BY created_at, client_id");
                let rows = sqlx::query(&sql).bind(tenant.to_string()).fetch_all(&self.read).await.map_err(map_err)?;
                rows.iter().map(oauth_client_from).collect()
            }

            async fn delete_oauth_client(&self, tenant: TenantId, client_id: &str) -> Result<bool> {
                let client_id = client_id.to_owned();
                self.detached(move |write, users| async move {
                    let client_id = client_id.as_str();
                    // Deletes the client's service-account user, if it has one.
                    let _touch = UserCache::touching(users.as_deref(), Touch::All);
                    let mut tx = write.begin().await.map_err(map_err)?;
                    let user: Option<Option<String>> =
                        sqlx::query_scalar("SELECT user_id FROM oauth_clients WHERE client_id = $1 AND tenant_id = $2")
                            .bind(client_id)
                            .bind(tenant.to_string())
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    let Some(user) = user else { return Ok(false) };
                    sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1").bind(client_id).execute(&mut *tx).await.map_err(map_err)?;
                    if let Some(user) = user {
                        sqlx::query("DELETE FROM users WHERE id = $1").bind(user).execute(&mut *tx).await.map_err(map_err)?;
                    }
                    tx.commit().await.map_err(map_err)?;
                    Ok(true)
                })
                .await
            }

            async fn insert_authorization_code(&self, code_hash: &str, g: &AuthorizationGrant) -> Result<()> {
                sqlx::query(
                    "INSERT INTO authorization_codes (code_hash, tenant_id, client_id, user_id, grant_data, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(code_hash)
                .bind(g.tenant_id.to_string())
                .bind(&g.client_id)
                .bind(g.user_id.to_string())
                .bind(json(g)?)
                .bind(ms(g.expires_at))
                .execute(&self.write)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn redeem_authorization_code(
                &self,
                code_hash: &str,
                session: SessionId,
                now: DateTime<Utc>,
            ) -> Result<Redemption> {
                let code_hash = code_hash.to_owned();
                self.detached(move |write, users| async move {
                    let code_hash = code_hash.as_str();
                    let mut tx = write.begin().await.map_err(map_err)?;
                    let row = sqlx::query("SELECT grant_data, expires_at, used_at FROM authorization_codes WHERE code_hash = $1")
                        .bind(code_hash)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    let Some(row) = row else { return Ok(Redemption::Invalid) };
                    let used_at: Option<i64> = row.try_get("used_at").map_err(map_err)?;
                    let expires_at: i64 = row.try_get("expires_at").map_err(map_err)?;
                    if used_at.is_none() && expires_at <= ms(now) {
                        return Ok(Redemption::Invalid);
                    }
                    // Conditional, so of two racing redemptions exactly one wins; the other is the
                    // replay it looks like.
                    let won = used_at.is_none()
                        && sqlx::query("UPDATE authorization_codes SET used_at = $2, session_id = $3 WHERE code_hash = $1 AND used_at IS NULL")
                            .bind(code_hash)
                            .bind(ms(now))
                            .bind(session.to_string())
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?
                            .rows_affected()
                            == 1;
                    if !won {
                        let _touch = UserCache::touching(users.as_deref(), Touch::All);
                        sqlx::query(
                            "UPDATE sessions SET revoked_at = $2 WHERE revoked_at IS NULL \
                             AND id = (SELECT session_id FROM authorization_codes WHERE code_hash = $1)",
                        )
                        .bind(code_hash)
                        .bind(ms(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                        tx.commit().await.map_err(map_err)?;
                        return Ok(Redemption::Replayed);
                    }
                    let grant: AuthorizationGrant = parse_json(&row.try_get::<String, _>("grant_data").map_err(map_err)?)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(Redemption::Redeemed(grant))
                })
                .await
            }

            async fn delete_expired_codes(&self, before: DateTime<Utc>) -> Result<u64> {
                let done = sqlx::query("DELETE FROM authorization_codes WHERE expires_at < $1")
                    .bind(ms(before))
                    .execute(&self.write)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn find_user(&self, tenant: TenantId, id: UserId, now: DateTime<Utc>) -> Result<Option<User>> {
                let params = [Param::text(tenant), Param::text(id), Param::Int(Some(ms(now)))];
                self.fetch_optional(&FIND_USER_SQL, params, |r| user_from(r)).await
            }

            async fn find_user_for_session(&self, tenant: TenantId, id: UserId, session: SessionId, now: DateTime<Utc>) -> Result<Option<User>> {
                let cache = self.users.as_deref();
                if let Some(user) = cache.and_then(|c| c.get(tenant, id, session, now)) {
                    return Ok(Some(user));
                }
                // Taken before the read, so that a write committing during it outdates the entry.
                if let Some(reads) = &self.session_reads {
                    return reads.find(tenant, id, session, ms(now)).await;
                }
                let stamped = cache.map(|c| (c, c.stamp(id)));
                let params = [Param::text(tenant), Param::text(id), Param::Int(Some(ms(now))), Param::text(session)];
                let found = self
                    .fetch_optional(&FIND_USER_FOR_SESSION_SQL, params, |r| Ok((user_from(r)?, r.opt_int("next_expiry")?)))
                    .await?;
                Ok(found.map(|(user, next_expiry)| {
                    if let (Some((c, stamp)), Some(until)) = (stamped, next_expiry) {
                        c.put(session, stamp, until, &user);
                    }
                    user
                }))
            }

            async fn find_user_credentials(&self, tenant: TenantId, login: Login<'_>, now: DateTime<Utc>) -> Result<Option<UserCredentials>> {
                let (column, value) = match login {
                    Login::Email(e) => ("primary_email", e.to_lowercase()),
                    Login::Username(n) => ("username_lower", n.to_lowercase()),
                };
                let sql = format!(
                    "SELECT {USER_COLUMNS}, {}, u.password_hash FROM users u WHERE u.tenant_id = $1 AND u.{column} = $2",
                    active_sessions_column("$3")
                );
                let row = sqlx::query(&sql)
                    .bind(tenant.to_string())
                    .bind(value)
                    .bind(ms(now))
                    .fetch_optional(&self.read)
                    .await
                    .map_err(map_err)?;
                row.as_ref()
                    .map(|r| {
                        Ok(UserCredentials { user: user_from(r)?, password_hash: r.try_get("password_hash").map_err(map_err)? })
                    })
                    .transpose()
            }

            async fn find_password_hash(&self, tenant: TenantId, id: UserId) -> Result<Option<String>> {
                let hash: Option<Option<String>> = sqlx::query_scalar("SELECT password_hash FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.read)
                    .await
                    .map_err(map_err)?;
                Ok(hash.flatten())
            }

            async fn find_secure_metadata(&self, tenant: TenantId, id: UserId) -> Result<Option<Map<String, Value>>> {
                let raw: Option<String> = sqlx::query_scalar("SELECT secure_metadata FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.read)
                    .await
                    .map_err(map_err)?;
                raw.map(|s| parse_json(&s)).transpose()
            }

            async fn update_user(&self, w: UserWrite<'_>) -> Result<()> {
                let plan = UserWritePlan::new(&w)?;
                if let Some(writer) = &self.writer {
                    let row_only = w.password_hash.is_none() && w.totp_secret.is_none() && w.revoke_sessions.is_none();
                    let kept = w.through_session.filter(|_| row_only && self.users.is_some()).map(|session| Kept {
                        session,
                        from_version: w.expected_version,
                        user: w.user.clone(),
                    });
                    return writer.write(Touch::User(w.user.id), kept, move |conn| crate::writer::run_user_write(conn, plan)).await;
                }
                let mut tx = self.write.begin().await.map_err(map_err)?;
                if let Some(params) = plan.membership {
                    // The membership row is share-locked where the backend has row locks, so a concurrent
                    // removal waits for this write and then clears the selection it made. (SQLite's
                    // single writer serialises the two anyway.)
                    let member = Self::bind_params(sqlx::query(concat!(membership_sql!(), $share_lock)), params)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    if member.is_none() {
                        return Err(StoreError::Conflict { constraint: constraints::TEAM_MEMBERSHIP });
                    }
                }
                if let Some(params) = plan.image {
                    Self::bind_params(sqlx::query(INSERT_IMAGE_SQL), params).execute(&mut *tx).await.map_err(map_err)?;
                }
                let done = Self::bind_params(sqlx::query(UPDATE_USER_SQL), plan.update)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    let exists = Self::bind_params(sqlx::query(USER_EXISTS_SQL), plan.exists)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    return Err(if exists.is_some() { StoreError::Stale } else { StoreError::NotFound });
                }
                if let Some(params) = plan.revoke {
                    Self::bind_params(sqlx::query(REVOKE_SESSIONS_SQL), params).execute(&mut *tx).await.map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }

            async fn find_totp(&self, tenant: TenantId, id: UserId) -> Result<Option<(String, Option<i64>)>> {
                let row = sqlx::query("SELECT totp_secret, totp_last_step FROM users WHERE tenant_id = $1 AND id = $2 AND totp_secret IS NOT NULL")
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.read)
                    .await
                    .map_err(map_err)?;
                row.map(|r| Ok((r.try_get("totp_secret").map_err(map_err)?, r.try_get("totp_last_step").map_err(map_err)?)))
                    .transpose()
            }

            async fn accept_totp_step(&self, tenant: TenantId, id: UserId, step: i64) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE users SET totp_last_step = $3 WHERE tenant_id = $1 AND id = $2 \
                     AND totp_secret IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $3)",
                )
                .bind(tenant.to_string())
                .bind(id.to_string())
                .bind(step)
                .execute(&self.write)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn replace_recovery_codes(&self, user: UserId, hashes: &[String]) -> Result<()> {
                let mut tx = self.write.begin().await.map_err(map_err)?;
                sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                for h in hashes {
                    sqlx::query("INSERT INTO recovery_codes (user_id, hash) VALUES ($1, $2)")
                        .bind(user.to_string())
                        .bind(h)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }

            async fn use_recovery_code(&self, user: UserId, hash: &str, now: DateTime<Utc>) -> Result<bool> {
                let done = sqlx::query("UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND hash = $2 AND used_at IS NULL")
                    .bind(user.to_string())
                    .bind(hash)
                    .bind(ms(now))
                    .execute(&self.write)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_user(&self, tenant: TenantId, id: UserId) -> Result<bool> {
                let params = vec![Param::text(tenant), Param::text(id)];
                let done = self.execute_user_write(Touch::User(id), "DELETE FROM users WHERE tenant_id = $1 AND id = $2", params).await?;
                Ok(done == 1)
            }

            async fn list_users(&self, tenant: TenantId, f: &UserFilter, now: DateTime<Utc>) -> Result<Vec<User>> {
                let mut q = QueryBuilder::<$db>::new(format!("SELECT {USER_COLUMNS}, "));
                q.push("(SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > ")
                    .push_bind(ms(now))
                    .push(") AS active_sessions FROM users u WHERE u.tenant_id = ")
                    .push_bind(tenant.to_string());
                if let Some(email) = &f.email {
                    q.push(" AND u.primary_email = ").push_bind(email.to_lowercase());
                }
                if let Some(name) = &f.username {
                    q.push(" AND u.username_lower = ").push_bind(name.to_lowercase());
                }
                if let Some(status) = &f.status {
                    q.push(" AND u.status = ").push_bind(status.clone());
                }
                if let Some(anon) = f.is_anonymous {
                    q.push(" AND u.is_anonymous = ").push_bind(anon);
                }
                if let Some(sa) = f.is_service_account {
                    q.push(" AND u.is_service_account = ").push_bind(sa);
                }
                if let Some(after) = f.after {
                    q.push(" AND u.id > ").push_bind(after.to_string());
                }
                q.push(" ORDER BY u.id LIMIT ").push_bind(i64::from(f.limit));
                let rows = q.build().fetch_all(&self.read).await.map_err(map_err)?;
                rows.iter().map(user_from).collect()
            }

            async fn purge_due_users(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<(TenantId, UserId)>> {
                let mut tx = self.write.begin().await.map_err(map_err)?;
                let rows = sqlx::query(
                    "SELECT tenant_id, id FROM users WHERE deletion_due_at IS NOT NULL AND deletion_due_at <= $1 ORDER BY deletion_due_at LIMIT $2",
                )
                .bind(ms(now))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let _touch = (!rows.is_empty()).then(|| self.touching(Touch::All));
                let mut purged = Vec::with_capacity(rows.len());
                for row in &rows {
                    let tenant: String = row.try_get("tenant_id").map_err(map_err)?;
                    let id: String = row.try_get("id").map_err(map_err)?;
                    // Checked again at delete time: a sign-in may have cancelled the deletion.
                    let done = sqlx::query("DELETE FROM users WHERE id = $1 AND deletion_due_at IS NOT NULL AND deletion_due_at <= $2")
                        .bind(&id)
                        .bind(ms(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    if done.rows_affected() == 1 {
                        purged.push((parse_id(&tenant)?, parse_id(&id)?));
                    }
                }
                tx.commit().await.map_err(map_err)?;
                Ok(purged)
            }

            async fn find_image(&self, hash: &str) -> Result<Option<(String, Vec<u8>)>> {
                let row = sqlx::query("SELECT content_type, bytes FROM images WHERE hash = $1")
                    .bind(hash)
                    .fetch_optional(&self.read)
                    .await
                    .map_err(map_err)?;
                row.map(|r| Ok((r.try_get("content_type").map_err(map_err)?, r.try_get("bytes").map_err(map_err)?))).transpose()
            }

            async fn delete_unreferenced_images(&self) -> Result<u64> {
                let done = sqlx::query("DELETE FROM images WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.avatar_hash = images.hash)")
                    .execute(&self.write)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn insert_session(&self, s: &Session, refresh_hash: &str) -> Result<()> {
                let steps = insert_session_steps(s, refresh_hash);
                if let Some(writer) = &self.writer {
                    // The user's `active_sessions` grows.
                    return writer.write(Touch::User(s.user_id), None, move |conn| crate::writer::run_steps(conn, &steps)).await;
                }
                let mut tx = self.write.begin().await.map_err(map_err)?;
                for (sql, params) in steps {
                    Self::bind_params(sqlx::query(sql), params).execute(&mut *tx).await.map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }

            async fn rotate_refresh_token(&self, old_hash: &str, new_hash: &str, now: DateTime<Utc>) -> Result<Rotation> {
                let old_hash = old_hash.to_owned();
                let new_hash = new_hash.to_owned();
                self.detached(move |write, users| async move {
                    let old_hash = old_hash.as_str();
                    let new_hash = new_hash.as_str();
                    let mut tx = write.begin().await.map_err(map_err)?;
                    let found = sqlx::query("SELECT session_id, used_at FROM refresh_tokens WHERE hash = $1")
                        .bind(old_hash)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    let Some(found) = found else {
                        return Ok(Rotation::Invalid);
                    };
                    let session_id: String = found.try_get("session_id").map_err(map_err)?;
                    let used_at: Option<i64> = found.try_get("used_at").map_err(map_err)?;
                    // Marking the token used is conditional, so of two racing refreshes exactly one
                    // wins and the other is treated as the reuse it is.
                    let won = used_at.is_none()
                        && sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE hash = $1 AND used_at IS NULL")
                            .bind(old_hash)
                            .bind(ms(now))
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?
                            .rows_affected()
                            == 1;
                    if !won {
                        let _touch = UserCache::touching(users.as_deref(), Touch::All);
                        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                            .bind(&session_id)
                            .bind(ms(now))
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                        tx.commit().await.map_err(map_err)?;
                        return Ok(Rotation::Reused);
                    }
                    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2");
                    let row = sqlx::query(&sql).bind(&session_id).bind(ms(now)).fetch_optional(&mut *tx).await.map_err(map_err)?;
                    let Some(row) = row else {
                        tx.commit().await.map_err(map_err)?;
                        return Ok(Rotation::Invalid);
                    };
                    let mut session = Self::session_from_row(&row)?;
                    sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)")
                        .bind(new_hash)
                        .bind(&session_id)
                        .bind(ms(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    sqlx::query("UPDATE sessions SET last_refreshed_at = $2 WHERE id = $1")
                        .bind(&session_id)
                        .bind(ms(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                    session.last_refreshed_at = now;
                    Ok(Rotation::Rotated(session))
                })
                .await
            }

            async fn find_session_by_refresh(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
                let sql = format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = (SELECT session_id FROM refresh_tokens WHERE hash = $1) \
                     AND revoked_at IS NULL AND expires_at > $2"
                );
                let row = sqlx::query(&sql).bind(hash).bind(ms(now)).fetch_optional(&self.read).await.map_err(map_err)?;
                row.as_ref().map(Self::session_from_row).transpose()
            }

            async fn list_sessions(&self, tenant: TenantId, user: UserId, now: DateTime<Utc>) -> Result<Vec<Session>> {
                let sql = format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 \
                     ORDER BY created_at DESC, id"
                );
                let rows = sqlx::query(&sql)
                    .bind(tenant.to_string())
                    .bind(user.to_string())
                    .bind(ms(now))
                    .fetch_all(&self.read)
                    .await
                    .map_err(map_err)?;
                rows.iter().map(Self::session_from_row).collect()
            }

            async fn revoke_session(&self, tenant: TenantId, user: UserId, id: SessionId, now: DateTime<Utc>) -> Result<bool> {
                let params = vec![Param::text(tenant), Param::text(user), Param::text(id), Param::Int(Some(ms(now)))];
                let sql = "UPDATE sessions SET revoked_at = $4 WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND revoked_at IS NULL";
                Ok(self.execute_user_write(Touch::User(user), sql, params).await? == 1)
            }

            async fn insert_team(&self, team: &Team) -> Result<()> {
                sqlx::query("INSERT INTO teams (id, tenant_id, doc, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(team.id.to_string())
                    .bind(team.tenant_id.to_string())
                    .bind(json(team)?)
                    .bind(ms(team.created_at))
                    .execute(&self.write)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn find_team(&self, tenant: TenantId, id: TeamId) -> Result<Option<Team>> {
                let row = sqlx::query("SELECT doc FROM teams WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.read)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(Self::team_from_row).transpose()
            }

            async fn list_teams(&self, tenant: TenantId) -> Result<Vec<Team>> {
                let rows = sqlx::query("SELECT doc FROM teams WHERE tenant_id = $1 ORDER BY id")
                    .bind(tenant.to_string())
                    .fetch_all(&self.read)
                    .await
                    .map_err(map_err)?;
                rows.iter().map(Self::team_from_row).collect()
            }

            async fn update_team(&self, team: &Team) -> Result<()> {
                let done = sqlx::query("UPDATE teams SET doc = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(team.tenant_id.to_string())
                    .bind(team.id.to_string())
                    .bind(json(team)?)
                    .execute(&self.write)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn delete_team(&self, tenant: TenantId, id: TeamId, now: DateTime<Utc>) -> Result<bool> {
                self.detached(move |write, users| async move {
                    // Clears the selection of every member, whoever they are.
                    let _touch = UserCache::touching(users.as_deref(), Touch::All);
                    let mut tx = write.begin().await.map_err(map_err)?;
                    sqlx::query("UPDATE users SET selected_team_id = NULL, version = version + 1, updated_at = $3 WHERE tenant_id = $1 AND selected_team_id = $2")
                        .bind(tenant.to_string())
                        .bind(id.to_string())
                        .bind(ms(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    let done = sqlx::query("DELETE FROM teams WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.to_string())
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(done.rows_affected() == 1)
                })
                .await
            }

            async fn add_member(&self, tenant: TenantId, team: TeamId, user: UserId, now: DateTime<Utc>) -> Result<()> {
                // The tenant is checked on both sides in the statement itself, so no id from
                // another tenant can be joined to this one.
                let done = sqlx::query(
                    "INSERT INTO team_members (team_id, user_id, tenant_id, created_at) \
                     SELECT t.id, u.id, t.tenant_id, $4 FROM teams t, users u \
                     WHERE t.tenant_id = $1 AND t.id = $2 AND u.tenant_id = $1 AND u.id = $3 \
                     ON CONFLICT (team_id, user_id) DO NOTHING",
                )
                .bind(tenant.to_string())
                .bind(team.to_string())
                .bind(user.to_string())
                .bind(ms(now))
                .execute(&self.write)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                let already: Option<i32> = sqlx::query_scalar("SELECT 1 FROM team_members WHERE tenant_id = $1 AND team_id = $2 AND user_id = $3")
                    .bind(tenant.to_string())
                    .bind(team.to_string())
                    .bind(user.to_string())
                    .fetch_optional(&self.read)
                    .await
                    .map_err(map_err)?;
                if already.is_some() { Ok(()) } else { Err(StoreError::NotFound) }
            }

            async fn remove_member(&self, tenant: TenantId, team: TeamId, user: UserId, now: DateTime<Utc>) -> Result<bool> {
                self.detached(move |write, users| async move {
                    let _touch = UserCache::touching(users.as_deref(), Touch::User(user));
                    let mut tx = write.begin().await.map_err(map_err)?;
                    let done = sqlx::query("DELETE FROM team_members WHERE tenant_id = $1 AND team_id = $2 AND user_id = $3")
                        .bind(tenant.to_string())
                        .bind(team.to_string())
                        .bind(user.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    sqlx::query(
                        "UPDATE users SET selected_team_id = NULL, version = version + 1, updated_at = $4 \
                         WHERE tenant_id = $1 AND id = $3 AND selected_team_id = $2",
                    )
                    .bind(tenant.to_string())
                    .bind(team.to_string())
                    .bind(user.to_string())
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(done.rows_affected() == 1)
                })
                .await
            }

            async fn list_user_teams(&self, tenant: TenantId, user: UserId) -> Result<Vec<Team>> {
                let rows = sqlx::query(
                    "SELECT t.doc FROM teams t JOIN team_members m ON m.team_id = t.id \
                     WHERE m.tenant_id = $1 AND m.user_id = $2 ORDER BY t.id",
                )
                .bind(tenant.to_string())
                .bind(user.to_string())
                .fetch_all(&self.read)
                .await
                .map_err(map_err)?;
                rows.iter().map(Self::team_from_row).collect()
            }

            async fn list_team_members(&self, tenant: TenantId, team: TeamId) -> Result<Vec<UserId>> {
                let ids: Vec<String> = sqlx::query_scalar("SELECT user_id FROM team_members WHERE tenant_id = $1 AND team_id = $2 ORDER BY user_id")
                    .bind(tenant.to_string())
                    .bind(team.to_string())
                    .fetch_all(&self.read)
                    .await
                    .map_err(map_err)?;
                ids.iter().map(|s| parse_id(s)).collect()
            }
        }
    };
}

impl_store!(Sqlite, Backend::Sqlite, "");
impl_store!(Postgres, Backend::Postgres, " FOR SHARE");
