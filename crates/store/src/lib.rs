//! Storage for Tessera: the `Store` trait every backend implements, `StoreError`, and the SQL
//! implementation shared by SQLite (the embedded default) and PostgreSQL.
//!
//! Layers, each importing only those named before it: `sql` (the driver-neutral vocabulary), the
//! drivers (`pool` for sqlx, `sqlite::conn` for rusqlite), the executors (`sqlite`,
//! `postgres`, chosen once as a `db::Db`), the aggregates (`users`, `sessions`, `tenants`,
//! `teams`, `oauth`, `keys`, `mfa`, `images`, `instance`: their SQL, parameters and row
//! mappings) and `store`, which implements `Store` over them.
//!
//! Only this crate knows SQL. It owns uniqueness (named unique indexes, reported as
//! `StoreError::Conflict`), optimistic concurrency (`version` checked in the `UPDATE` itself) and
//! transactions: every multi-step write is one transaction.

mod activity;
mod db;
mod emails;
mod events;
mod images;
mod instance;
mod keys;
mod limits;
mod mail;
mod mfa;
mod oauth;
mod passkeys;
mod pool;
mod postgres;
mod providers;
mod sessions;
mod sql;
mod sqlite;
mod store;
mod teams;
mod tenants;
mod users;
mod webhooks;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tessera_core::events::{Activity, ActivityFilter, Delivery, DueDelivery, Record, WebhookEndpoint};
use tessera_core::federation::{FederationState, IdentityProvider};
pub use tessera_core::keys::SigningKeyRecord;
use tessera_core::mail::{DueMail, EmailAddress, MailToken};
use tessera_core::oauth::{AuthorizationGrant, OAuthClient};
use tessera_core::passkey::{Ceremony, StoredPasskey};
use tessera_core::tenant::Tenant;
use tessera_core::user::{Session, Team, User};
use tessera_core::{SessionId, TeamId, TenantId, UserId};
use uuid::Uuid;

pub use events::Attempted;
pub use mail::MailOutcome;
pub use store::connect;

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
    /// (`sqlite::user_cache`); zero turns the cache off. Writes made by this process are seen
    /// at once regardless; this bounds how long another process's writes go unseen.
    pub user_cache_max_age: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique index or an invariant checked in the transaction refused the write.
    /// `constraint` is one of the names in [`constraints`].
    #[error("conflict on {constraint}")]
    Conflict { constraint: &'static str },
    /// The row's version was not the one the write expected.
    #[error("stale version")]
    Stale,
    /// The database could not be reached: a connection failed or was refused, none was free
    /// in time, or the server is shutting down or recovering. The write did not happen, or
    /// (a connection lost during COMMIT) its outcome is unknown to this process.
    #[error("the database is unavailable: {0}")]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// The database refused to serialise the transaction with others (`40001`) or broke a
    /// deadlock (`40P01`): running it again may succeed. Transactions are run again a few
    /// times before this reaches a caller.
    #[error("the transaction met contention: {0}")]
    Contended(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Other(#[from] Box<dyn std::error::Error + Send + Sync>),
}

/// The names `StoreError::Conflict` reports.
pub mod constraints {
    pub const USER_EMAIL: &str = "users_email";
    pub const USER_USERNAME: &str = "users_username";
    pub const TEAM_MEMBERSHIP: &str = "team_membership";
    pub const TENANT_KEY: &str = "tenant_key";
    pub const INSTANCE_VALUE: &str = "instance_value";
    /// A mailed token presented to a write had been used, or had expired, by the time it
    /// committed.
    pub const MAIL_TOKEN: &str = "mail_token";
    /// The tenant has an identity provider by that slug.
    pub const IDENTITY_PROVIDER: &str = "identity_provider";
    /// The provider's subject is linked to a user already.
    pub const IDENTITY_LINK: &str = "identity_link";
    /// The credential is registered as a passkey of the tenant already.
    pub const PASSKEY: &str = "passkey";
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A user with the credential material sign-in needs. Never serialised anywhere.
pub struct UserCredentials {
    pub user: User,
    pub password_hash: Option<String>,
}

/// How a user signs in.
#[derive(Debug, Clone, Copy)]
pub enum Login<'a> {
    Email(&'a str),
    Username(&'a str),
}

/// An image to store content-addressed.
#[derive(Debug, Clone, Copy)]
pub struct ImageBlob<'a> {
    pub hash: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// Sessions to end in the same transaction as a user write.
#[derive(Debug, Clone, Copy)]
pub struct RevokeSessions {
    /// The caller's own session, kept alive (a password change keeps the session that made it).
    pub except: Option<SessionId>,
}

/// How a write that may change the primary address keeps the user's addresses in step.
#[derive(Debug, Clone, Copy)]
pub struct AddressSync<'a> {
    /// The primary address before the write.
    pub before: Option<&'a str>,
    /// The replaced address stays on the account as one of its others (the user switched to
    /// an address they had); otherwise it leaves the account.
    pub keep_before: bool,
}

/// One atomic change to a user: the new state (whose `version` must be `expected_version + 1`)
/// plus whatever must change with it. Either all of it commits or none.
pub struct UserWrite<'a> {
    pub user: &'a User,
    pub expected_version: i64,
    pub password_hash: Option<&'a str>,
    pub secure_metadata: Option<&'a Map<String, Value>>,
    pub new_image: Option<ImageBlob<'a>>,
    /// Checked inside the transaction: the user must be a member of this team.
    pub require_membership: Option<TeamId>,
    pub revoke_sessions: Option<RevokeSessions>,
    /// With `revoke_sessions`: the live sessions it ends, as the caller listed them (and wrote
    /// their records). The write is `Stale` if others are live.
    pub ending_sessions: &'a [SessionId],
    /// `Some(Some(secret))` sets the TOTP secret (base64) and forgets the last used step;
    /// `Some(None)` removes it.
    pub totp_secret: Option<Option<&'a str>>,
    pub now: DateTime<Utc>,
    /// The session the user is making this change through, if it is their own: a store that
    /// keeps users read for sessions in memory (SQLite's) may keep the written user for it
    /// rather than read it again on the session's next request.
    pub through_session: Option<SessionId>,
    /// Written in the same transaction (the outbox): they exist if and only if the write does.
    pub records: &'a [Record],
    /// Set when the write may change the primary address or whether it is verified.
    pub addresses: Option<AddressSync<'a>>,
    /// The hash of a mailed token the write uses up; the write fails as a conflict on
    /// `constraints::MAIL_TOKEN` if it was used meanwhile or has expired.
    pub use_token: Option<&'a str>,
}

impl<'a> UserWrite<'a> {
    /// The change from `before` to `after`, expecting `before`'s version; when the primary
    /// address or whether it is verified changes, the user's addresses follow (the replaced
    /// one leaves the account). The way to write a user read before.
    pub fn between(before: &'a User, after: &'a User, now: DateTime<Utc>) -> Self {
        let moved = before.primary_email != after.primary_email
            || before.primary_email_verified != after.primary_email_verified;
        let addresses = moved.then_some(AddressSync { before: before.primary_email.as_deref(), keep_before: false });
        Self { addresses, ..Self::new(after, before.version, now) }
    }

    pub fn new(user: &'a User, expected_version: i64, now: DateTime<Utc>) -> Self {
        Self {
            user,
            expected_version,
            password_hash: None,
            secure_metadata: None,
            new_image: None,
            require_membership: None,
            revoke_sessions: None,
            ending_sessions: &[],
            totp_secret: None,
            now,
            through_session: None,
            records: &[],
            addresses: None,
            use_token: None,
        }
    }
}

/// A new user with its first credentials.
pub struct NewUser<'a> {
    pub user: &'a User,
    pub password_hash: Option<&'a str>,
    pub secure_metadata: &'a Map<String, Value>,
    pub new_image: Option<ImageBlob<'a>>,
    /// Written in the same transaction (the outbox).
    pub records: &'a [Record],
}

/// Filters for the server's user listing; each set field narrows it.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// The start of the email address or the username (case-insensitive), through their
    /// unique indexes.
    pub prefix: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
    pub status: Option<String>,
    pub is_anonymous: Option<bool>,
    pub is_service_account: Option<bool>,
    /// Keyset cursor: only users with an id after this one.
    pub after: Option<UserId>,
    pub limit: u32,
}

/// What happened to a refresh token presented for rotation.
#[derive(Debug)]
pub enum Rotation {
    /// The token was current: it is now used up, and `new_hash` is the session's token.
    Rotated(Session),
    /// The token had already been used: its session is now revoked, because a refresh token
    /// presented twice may have been stolen (refresh-token rotation, RFC 6819 §5.2.2.3).
    Reused,
    /// Unknown token, or its session is revoked or expired.
    Invalid,
}

/// What happened to an authorization code presented for redemption.
#[derive(Debug)]
pub enum Redemption {
    /// The code was current and is now used up.
    Redeemed(AuthorizationGrant),
    /// The code had been used before: the session its first redemption started is now revoked.
    Replayed,
    /// Unknown or expired.
    Invalid,
}

/// What a backend gives back for a write it has taken but may not have committed yet.
pub(crate) type Pending<T> = std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>;

/// A user write that has been submitted (`Store::submit_user_update`): awaiting it gives the
/// write's result once it has committed or failed.
pub struct PendingWrite(Pending<()>);

impl Future for PendingWrite {
    type Output = Result<()>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<()>> {
        self.0.as_mut().poll(cx)
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    async fn migrate(&self) -> Result<()>;
    async fn ping(&self) -> Result<()>;
    /// Closes every connection, after the writes already under way. On SQLite the last
    /// connection of the file to close copies the WAL into the database file and removes it,
    /// so that after a clean stop the file alone holds everything (a copy of it is a whole
    /// backup). Calls made afterwards fail as `Unavailable`.
    async fn close(&self);

    // Instance-wide values (the root key's hash).
    async fn find_instance_value(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value` unless `key` is set already; returns whether it was stored.
    async fn insert_instance_value(&self, key: &str, value: &str) -> Result<bool>;

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<()>;
    async fn retire_signing_key(&self, kid: &str, at: DateTime<Utc>) -> Result<()>;

    async fn insert_tenant(&self, tenant: &Tenant, server_key_hash: &str) -> Result<()>;
    async fn find_tenant(&self, id: TenantId) -> Result<Option<Tenant>>;
    async fn find_tenant_by_server_key(&self, server_key_hash: &str) -> Result<Option<Tenant>>;
    async fn find_tenant_by_publishable_key(&self, key: &str) -> Result<Option<Tenant>>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    async fn update_tenant(&self, tenant: &Tenant) -> Result<()>;
    /// The tenant's own Cedar policies (empty when it has none).
    async fn find_tenant_policies(&self, tenant: TenantId) -> Result<String>;
    async fn put_tenant_policies(&self, tenant: TenantId, source: &str, now: DateTime<Utc>) -> Result<()>;

    async fn insert_user(&self, new: NewUser<'_>) -> Result<()>;
    /// A new OAuth client, with its service-account user when it has one, in one transaction.
    async fn insert_oauth_client(
        &self,
        client: &OAuthClient,
        secret_hash: Option<&str>,
        service_user: Option<NewUser<'_>>,
    ) -> Result<()>;
    /// A client and the hash of its secret (`None` for public clients).
    async fn find_oauth_client(&self, client_id: &str) -> Result<Option<(OAuthClient, Option<String>)>>;
    async fn list_oauth_clients(&self, tenant: TenantId) -> Result<Vec<OAuthClient>>;
    /// Deletes a client, its codes, and its service-account user (whose sessions go with it).
    async fn delete_oauth_client(&self, tenant: TenantId, client_id: &str) -> Result<bool>;
    async fn insert_authorization_code(&self, code_hash: &str, grant: &AuthorizationGrant) -> Result<()>;
    /// Uses a code up. `session` is the session the caller will start with it, remembered so
    /// that a replay of the code can revoke it.
    async fn redeem_authorization_code(
        &self,
        code_hash: &str,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Redemption>;
    /// Forgets codes that expired before `before`.
    async fn delete_expired_codes(&self, before: DateTime<Utc>) -> Result<u64>;
    /// The user with `active_sessions` counted at `now`.
    async fn find_user(&self, tenant: TenantId, id: UserId, now: DateTime<Utc>) -> Result<Option<User>>;
    /// The hot path: the user, only if `session` is theirs and live at `now`. One statement.
    async fn find_user_for_session(
        &self,
        tenant: TenantId,
        id: UserId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<User>>;
    async fn find_user_credentials(
        &self,
        tenant: TenantId,
        login: Login<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<UserCredentials>>;
    async fn find_password_hash(&self, tenant: TenantId, id: UserId) -> Result<Option<String>>;
    /// Secure metadata is write-only on every API; this read exists for server-side consumers
    /// inside Tessera (hooks) and for tests that prove it was stored.
    async fn find_secure_metadata(&self, tenant: TenantId, id: UserId) -> Result<Option<Map<String, Value>>>;
    async fn update_user(&self, write: UserWrite<'_>) -> Result<()> {
        self.submit_user_update(write).await?.await
    }
    /// `update_user` in two halves, so that a caller may let the next change of the same user
    /// start before this one commits: when this returns, a write this process submits later is
    /// applied after this one (a later write that expects this one's version finds it, if it
    /// committed). The `PendingWrite` gives the write's result.
    async fn submit_user_update(&self, write: UserWrite<'_>) -> Result<PendingWrite>;
    /// The TOTP secret (base64) and the last accepted step, if TOTP is set up.
    async fn find_totp(&self, tenant: TenantId, id: UserId) -> Result<Option<(String, Option<i64>)>>;
    /// Records `step` as used, only if it is later than every step used before: `false` means
    /// the code was already used (or an older one), atomically even under concurrency.
    async fn accept_totp_step(&self, tenant: TenantId, id: UserId, step: i64) -> Result<bool>;
    /// Replaces the user's recovery codes (hashes); an empty list removes them.
    async fn replace_recovery_codes(&self, user: UserId, hashes: &[String]) -> Result<()>;
    /// Uses a recovery code once: `false` if it is unknown or already used.
    async fn use_recovery_code(&self, user: UserId, hash: &str, now: DateTime<Utc>) -> Result<bool>;
    /// Erases a user now (its activity entries with it), with its records (`user.deleted`) only if
    /// it existed.
    async fn delete_user(&self, tenant: TenantId, id: UserId, records: &[Record]) -> Result<bool>;
    async fn list_users(&self, tenant: TenantId, filter: &UserFilter, now: DateTime<Utc>) -> Result<Vec<User>>;
    /// Erases up to `limit` users whose deletion is due at `now` (their activity entries with
    /// them), each with the records `erased` makes for it; returns who was erased.
    async fn purge_due_users(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        erased: &(dyn Fn(TenantId, UserId) -> Vec<Record> + Send + Sync),
    ) -> Result<Vec<(TenantId, UserId)>>;

    async fn find_image(&self, hash: &str) -> Result<Option<(String, Vec<u8>)>>;
    /// Deletes stored images no user refers to any more.
    async fn delete_unreferenced_images(&self) -> Result<u64>;

    /// Starts a session, with its records (`session.created`) in the same transaction.
    async fn insert_session(&self, session: &Session, refresh_hash: &str, records: &[Record]) -> Result<()>;
    async fn rotate_refresh_token(&self, old_hash: &str, new_hash: &str, now: DateTime<Utc>) -> Result<Rotation>;
    /// The live session a refresh token belongs to, without using the token up.
    async fn find_session_by_refresh(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<Session>>;
    /// The live session of a refresh token that can still be used (not yet rotated away).
    async fn find_session_by_unused_refresh(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<Session>>;
    async fn list_sessions(&self, tenant: TenantId, user: UserId, now: DateTime<Utc>) -> Result<Vec<Session>>;
    /// Ends a live session, with its records (`session.revoked`) only if it was live.
    async fn revoke_session(
        &self,
        tenant: TenantId,
        user: UserId,
        id: SessionId,
        now: DateTime<Utc>,
        records: &[Record],
    ) -> Result<bool>;

    // Each team write takes the records it is, written in its transaction only when it changed
    // something (a member added twice, a team already gone: no event).
    async fn insert_team(&self, team: &Team, records: &[Record]) -> Result<()>;
    async fn find_team(&self, tenant: TenantId, id: TeamId) -> Result<Option<Team>>;
    async fn list_teams(&self, tenant: TenantId) -> Result<Vec<Team>>;
    async fn update_team(&self, team: &Team, records: &[Record]) -> Result<()>;
    /// Deletes the team, its memberships, and clears it as anyone's selected team.
    async fn delete_team(&self, tenant: TenantId, id: TeamId, now: DateTime<Utc>, records: &[Record]) -> Result<bool>;
    async fn add_member(
        &self,
        tenant: TenantId,
        team: TeamId,
        user: UserId,
        now: DateTime<Utc>,
        records: &[Record],
    ) -> Result<()>;
    /// Removes the membership and clears the team as the user's selected team.
    async fn remove_member(
        &self,
        tenant: TenantId,
        team: TeamId,
        user: UserId,
        now: DateTime<Utc>,
        records: &[Record],
    ) -> Result<bool>;
    async fn list_user_teams(&self, tenant: TenantId, user: UserId) -> Result<Vec<Team>>;
    async fn list_team_members(&self, tenant: TenantId, team: TeamId) -> Result<Vec<UserId>>;

    async fn insert_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()>;
    async fn find_webhook(&self, tenant: TenantId, id: Uuid) -> Result<Option<WebhookEndpoint>>;
    async fn list_webhooks(&self, tenant: TenantId) -> Result<Vec<WebhookEndpoint>>;
    async fn update_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()>;
    async fn delete_webhook(&self, tenant: TenantId, id: Uuid) -> Result<bool>;
    /// Claims up to `limit` due deliveries, one attempt each, leased until `lease_until`.
    async fn claim_deliveries(
        &self,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueDelivery>>;
    /// Records how a round's attempts went, in one transaction.
    async fn record_attempts(&self, attempts: &[Attempted]) -> Result<()>;
    /// An endpoint's deliveries, newest first, after the event `before`.
    async fn list_deliveries(
        &self,
        tenant: TenantId,
        endpoint: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Delivery>>;
    async fn redeliver(&self, tenant: TenantId, endpoint: Uuid, event: Uuid, now: DateTime<Utc>) -> Result<bool>;
    /// Forgets delivered events older than `before`.
    async fn purge_events(&self, before: DateTime<Utc>) -> Result<u64>;
    async fn oldest_undelivered_event(&self) -> Result<Option<DateTime<Utc>>>;

    /// Events this process has written and committed since it started, for the metrics.
    fn events_written(&self) -> u64;

    /// An activity entry that records no change of its own: a failed sign-in.
    async fn insert_activity(&self, entry: &Activity) -> Result<()>;
    /// A tenant's activity entries, newest first, as `filter` narrows them.
    async fn list_activity(&self, tenant: TenantId, filter: &ActivityFilter) -> Result<Vec<Activity>>;
    /// Moves the entries written since the last move to where the reads' indexes are; the
    /// background job calls it every moment, and any number of instances may at once.
    async fn move_activity(&self) -> Result<()>;
    /// Forgets a tenant's activity entries made before `before`.
    async fn purge_activity(&self, tenant: TenantId, before: DateTime<Utc>) -> Result<u64>;

    /// Records that go with no change of their own (a message asked for again), in one
    /// transaction.
    async fn insert_records(&self, records: &[Record]) -> Result<()>;
    /// The user's addresses, the primary among them, oldest first.
    async fn list_emails(&self, tenant: TenantId, user: UserId) -> Result<Vec<EmailAddress>>;
    /// The address in the tenant, whoever has it.
    async fn find_email(&self, tenant: TenantId, email: &str) -> Result<Option<EmailAddress>>;
    /// Adds an address that is not the primary, with its records; a conflict on
    /// `users_email` when any user of the tenant has it.
    async fn insert_email(&self, address: &EmailAddress, records: &[Record]) -> Result<()>;
    /// Removes an address that is not the primary, with its records only if it did.
    async fn delete_email(&self, tenant: TenantId, user: UserId, id: Uuid, records: &[Record]) -> Result<bool>;
    /// A mailed token that can still be used at `now`.
    async fn find_mail_token(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<MailToken>>;
    /// Uses up a verification token of an address that is not the primary and marks the
    /// address verified, with the records; `NotFound` when the address has gone.
    async fn verify_email(&self, token: &MailToken, now: DateTime<Utc>, records: &[Record]) -> Result<()>;
    /// Forgets mailed tokens that expired before `before`.
    async fn purge_mail_tokens(&self, before: DateTime<Utc>) -> Result<u64>;
    /// Claims up to `limit` due messages, one attempt each, leased until `lease_until`.
    async fn claim_mail(&self, limit: u32, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> Result<Vec<DueMail>>;
    /// Records how a round's attempts went, in one transaction.
    async fn record_mail(&self, outcomes: &[MailOutcome]) -> Result<()>;
    /// Messages waiting to be sent.
    async fn pending_mail(&self) -> Result<u64>;
    /// Forgets messages sent or given up on before `before`.
    async fn purge_mail(&self, before: DateTime<Utc>) -> Result<u64>;

    /// A new identity provider; a conflict on `identity_provider` when its slug is taken.
    async fn insert_identity_provider(&self, provider: &IdentityProvider) -> Result<()>;
    async fn find_identity_provider(&self, tenant: TenantId, slug: &str) -> Result<Option<IdentityProvider>>;
    async fn list_identity_providers(&self, tenant: TenantId) -> Result<Vec<IdentityProvider>>;
    async fn update_identity_provider(&self, provider: &IdentityProvider) -> Result<()>;
    async fn delete_identity_provider(&self, tenant: TenantId, slug: &str) -> Result<bool>;
    async fn insert_federation_state(&self, state: &FederationState) -> Result<()>;
    /// Uses a sign-in's state up: none when it is unknown, used or expired.
    async fn take_federation_state(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<FederationState>>;
    /// The user a provider's subject is linked to.
    async fn find_identity(&self, tenant: TenantId, provider: &str, subject: &str) -> Result<Option<UserId>>;
    /// A new user, linked to a provider's subject, in one transaction.
    async fn insert_linked_user(&self, new: NewUser<'_>, provider: &str, subject: &str) -> Result<()>;
    /// Links a user to a provider's subject, with its records; a conflict on `identity_link`
    /// when the subject is linked already.
    async fn link_identity(
        &self,
        user: &User,
        provider: &str,
        subject: &str,
        now: DateTime<Utc>,
        records: &[Record],
    ) -> Result<()>;
    /// The providers a user is linked to: (provider, subject, since), oldest first.
    async fn list_identities(&self, tenant: TenantId, user: UserId) -> Result<Vec<(String, String, DateTime<Utc>)>>;
    /// Unlinks a user from a provider, with its records only if it was linked.
    async fn unlink_identity(&self, tenant: TenantId, user: UserId, provider: &str, records: &[Record])
    -> Result<bool>;

    // Passkeys.
    /// Adds a passkey, with its records; `constraints::PASSKEY` when its credential is the
    /// tenant's already.
    async fn insert_passkey(&self, passkey: &StoredPasskey, records: &[Record]) -> Result<()>;
    /// The user's passkeys, oldest first.
    async fn list_passkeys(&self, tenant: TenantId, user: UserId) -> Result<Vec<StoredPasskey>>;
    /// The tenant's passkey with this credential id.
    async fn find_passkey(&self, tenant: TenantId, credential_id: &str) -> Result<Option<StoredPasskey>>;
    async fn rename_passkey(&self, tenant: TenantId, user: UserId, id: Uuid, name: &str) -> Result<bool>;
    /// Removes one of the user's passkeys, with its records only if it was there.
    async fn delete_passkey(&self, tenant: TenantId, user: UserId, id: Uuid, records: &[Record]) -> Result<bool>;
    /// Records a use of a passkey whose counter was `previous_count`; false when another use
    /// moved it meanwhile.
    async fn record_passkey_use(&self, used: &StoredPasskey, previous_count: u32, now: DateTime<Utc>) -> Result<bool>;
    async fn insert_ceremony(&self, ceremony: &Ceremony) -> Result<()>;
    /// Uses a ceremony up; none when it is unknown, used or expired.
    async fn take_ceremony(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<Ceremony>>;

    // Brute-force windows shared by instances.
    /// The count and end of a key's window, while it lasts.
    async fn find_limit_window(&self, key: &str, now: DateTime<Utc>) -> Result<Option<(u32, DateTime<Utc>)>>;
    /// Counts one event of a key (a new window of `seconds` if the last has ended): the count
    /// and end after it.
    async fn record_limit_event(&self, key: &str, seconds: i64, now: DateTime<Utc>) -> Result<(u32, DateTime<Utc>)>;
    /// Forgets the windows that have ended.
    async fn purge_limit_windows(&self, now: DateTime<Utc>) -> Result<u64>;
}
