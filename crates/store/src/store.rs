//! The assembly: `connect` picks the executor from the URL, and `SqlStore` implements `Store`
//! by handing each method to its aggregate's module, which runs it through that executor.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tessera_core::events::{Activity, ActivityFilter, Delivery, DueDelivery, Record, WebhookEndpoint};
use tessera_core::oauth::{AuthorizationGrant, OAuthClient};
use tessera_core::tenant::Tenant;
use tessera_core::user::{Session, Team, User};
use tessera_core::{SessionId, TeamId, TenantId, UserId};
use uuid::Uuid;

use crate::db::Db;
use crate::{
    Attempted, Backend, ConnectOptions, Login, NewUser, PendingWrite, Redemption, Result, Rotation, SigningKeyRecord,
    Store, UserCredentials, UserFilter, UserWrite, activity, emails, events, images, instance, keys, limits, mail, mfa,
    oauth, passkeys, postgres, providers, sessions, sqlite, teams, tenants, users, webhooks,
};
use tessera_core::federation::{FederationState, IdentityProvider};
use tessera_core::mail::{DueMail, EmailAddress, MailToken};
use tessera_core::passkey::{Ceremony, StoredPasskey};

pub async fn connect(opts: &ConnectOptions) -> Result<Arc<dyn Store>> {
    let db = if opts.url.starts_with("postgres://") || opts.url.starts_with("postgresql://") {
        Db::Postgres(postgres::connect(opts, &users::SESSION_READ).await?)
    } else {
        Db::Sqlite(sqlite::connect(opts).await?)
    };
    Ok(Arc::new(SqlStore { db }))
}

struct SqlStore {
    db: Db,
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.db.backend()
    }

    async fn migrate(&self) -> Result<()> {
        self.db.migrate().await
    }

    async fn ping(&self) -> Result<()> {
        self.db.ping().await
    }

    async fn close(&self) {
        self.db.close().await
    }

    async fn find_instance_value(&self, key: &str) -> Result<Option<String>> {
        instance::find(&self.db, key).await
    }

    async fn insert_instance_value(&self, key: &str, value: &str) -> Result<bool> {
        instance::insert(&self.db, key, value).await
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        keys::list(&self.db).await
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        keys::insert(&self.db, key).await
    }

    async fn retire_signing_key(&self, kid: &str, at: DateTime<Utc>) -> Result<()> {
        keys::retire(&self.db, kid, at).await
    }

    async fn insert_tenant(&self, tenant: &Tenant, server_key_hash: &str) -> Result<()> {
        tenants::insert(&self.db, tenant, server_key_hash).await
    }

    async fn find_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        tenants::find(&self.db, id).await
    }

    async fn find_tenant_by_server_key(&self, server_key_hash: &str) -> Result<Option<Tenant>> {
        tenants::find_by_server_key(&self.db, server_key_hash).await
    }

    async fn find_tenant_by_publishable_key(&self, key: &str) -> Result<Option<Tenant>> {
        tenants::find_by_publishable_key(&self.db, key).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        tenants::list(&self.db).await
    }

    async fn update_tenant(&self, tenant: &Tenant) -> Result<()> {
        tenants::update(&self.db, tenant).await
    }

    async fn find_tenant_policies(&self, tenant: TenantId) -> Result<String> {
        tenants::find_policies(&self.db, tenant).await
    }

    async fn put_tenant_policies(&self, tenant: TenantId, source: &str, now: DateTime<Utc>) -> Result<()> {
        tenants::put_policies(&self.db, tenant, source, now).await
    }

    async fn insert_user(&self, new: NewUser<'_>) -> Result<()> {
        users::insert(&self.db, new).await
    }

    async fn insert_oauth_client(
        &self,
        client: &OAuthClient,
        secret_hash: Option<&str>,
        service_user: Option<NewUser<'_>>,
    ) -> Result<()> {
        oauth::insert_client(&self.db, client, secret_hash, service_user).await
    }

    async fn find_oauth_client(&self, client_id: &str) -> Result<Option<(OAuthClient, Option<String>)>> {
        oauth::find_client(&self.db, client_id).await
    }

    async fn list_oauth_clients(&self, tenant: TenantId) -> Result<Vec<OAuthClient>> {
        oauth::list_clients(&self.db, tenant).await
    }

    async fn delete_oauth_client(&self, tenant: TenantId, client_id: &str) -> Result<bool> {
        oauth::delete_client(&self.db, tenant, client_id).await
    }

    async fn insert_authorization_code(&self, code_hash: &str, grant: &AuthorizationGrant) -> Result<()> {
        oauth::insert_code(&self.db, code_hash, grant).await
    }

    async fn redeem_authorization_code(
        &self,
        code_hash: &str,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Redemption> {
        oauth::redeem_code(&self.db, code_hash, session, now).await
    }

    async fn delete_expired_codes(&self, before: DateTime<Utc>) -> Result<u64> {
        oauth::delete_expired_codes(&self.db, before).await
    }

    async fn find_user(&self, tenant: TenantId, id: UserId, now: DateTime<Utc>) -> Result<Option<User>> {
        users::find(&self.db, tenant, id, now).await
    }

    async fn find_user_for_session(
        &self,
        tenant: TenantId,
        id: UserId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<User>> {
        users::find_for_session(&self.db, tenant, id, session, now).await
    }

    async fn find_user_credentials(
        &self,
        tenant: TenantId,
        login: Login<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<UserCredentials>> {
        users::find_credentials(&self.db, tenant, login, now).await
    }

    async fn find_password_hash(&self, tenant: TenantId, id: UserId) -> Result<Option<String>> {
        users::find_password_hash(&self.db, tenant, id).await
    }

    async fn find_secure_metadata(&self, tenant: TenantId, id: UserId) -> Result<Option<Map<String, Value>>> {
        users::find_secure_metadata(&self.db, tenant, id).await
    }

    async fn submit_user_update(&self, write: UserWrite<'_>) -> Result<PendingWrite> {
        users::submit_update(&self.db, write).await.map(PendingWrite)
    }

    async fn find_totp(&self, tenant: TenantId, id: UserId) -> Result<Option<(String, Option<i64>)>> {
        mfa::find_totp(&self.db, tenant, id).await
    }

    async fn accept_totp_step(&self, tenant: TenantId, id: UserId, step: i64) -> Result<bool> {
        mfa::accept_totp_step(&self.db, tenant, id, step).await
    }

    async fn replace_recovery_codes(&self, user: UserId, hashes: &[String]) -> Result<()> {
        mfa::replace_recovery_codes(&self.db, user, hashes).await
    }

    async fn use_recovery_code(&self, user: UserId, hash: &str, now: DateTime<Utc>) -> Result<bool> {
        mfa::use_recovery_code(&self.db, user, hash, now).await
    }

    async fn delete_user(&self, tenant: TenantId, id: UserId, records: &[Record]) -> Result<bool> {
        users::delete(&self.db, tenant, id, records).await
    }

    async fn list_users(&self, tenant: TenantId, filter: &UserFilter, now: DateTime<Utc>) -> Result<Vec<User>> {
        users::list(&self.db, tenant, filter, now).await
    }

    async fn purge_due_users(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        erased: &(dyn Fn(TenantId, UserId) -> Vec<Record> + Send + Sync),
    ) -> Result<Vec<(TenantId, UserId)>> {
        users::purge_due(&self.db, now, limit, erased).await
    }

    async fn find_image(&self, hash: &str) -> Result<Option<(String, Vec<u8>)>> {
        images::find(&self.db, hash).await
    }

    async fn delete_unreferenced_images(&self) -> Result<u64> {
        images::delete_unreferenced(&self.db).await
    }

    async fn insert_session(&self, session: &Session, refresh_hash: &str, records: &[Record]) -> Result<()> {
        sessions::insert(&self.db, session, refresh_hash, records).await
    }

    async fn rotate_refresh_token(&self, old_hash: &str, new_hash: &str, now: DateTime<Utc>) -> Result<Rotation> {
        sessions::rotate_refresh_token(&self.db, old_hash, new_hash, now).await
    }

    async fn find_session_by_refresh(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
        sessions::find_by_refresh(&self.db, hash, now).await
    }

    async fn find_session_by_unused_refresh(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
        sessions::find_by_unused_refresh(&self.db, hash, now).await
    }

    async fn list_sessions(&self, tenant: TenantId, user: UserId, now: DateTime<Utc>) -> Result<Vec<Session>> {
        sessions::list(&self.db, tenant, user, now).await
    }

    async fn revoke_session(
        &self,
        tenant: TenantId,
        user: UserId,
        id: SessionId,
        now: DateTime<Utc>,
        records: &[Record],
    ) -> Result<bool> {
        sessions::revoke(&self.db, tenant, user, id, now, records).await
    }

    async fn insert_team(&self, team: &Team, records: &[Record]) -> Result<()> {
        teams::insert(&self.db, team, records).await
    }

    async fn find_team(&self, tenant: TenantId, id: TeamId) -> Result<Option<Team>> {
        teams::find(&self.db, tenant, id).await
    }

    async fn list_teams(&self, tenant: TenantId) -> Result<Vec<Team>> {
        teams::list(&self.db, tenant).await
    }

    async fn update_team(&self, team: &Team, records: &[Record]) -> Result<()> {
        teams::update(&self.db, team, records).await
    }

    async fn delete_team(&self, tenant: TenantId, id: TeamId, now: DateTime<Utc>, records: &[Record]) -> Result<bool> {
        teams::delete(&self.db, tenant, id, now, records).await
    }

    async fn add_member(
        &self,
        tenant: TenantId,
        team: TeamId,
        user: UserId,
        now: DateTime<Utc>,
        records: &[Record],
    ) -> Result<()> {
        teams::add_member(&self.db, tenant, team, user, now, records).await
    }

    async fn remove_member(
        &self,
        tenant: TenantId,
        team: TeamId,
        user: UserId,
        now: DateTime<Utc>,
        records: &[Record],
    ) -> Result<bool> {
        teams::remove_member(&self.db, tenant, team, user, now, records).await
    }

    async fn list_user_teams(&self, tenant: TenantId, user: UserId) -> Result<Vec<Team>> {
        teams::list_user_teams(&self.db, tenant, user).await
    }

    async fn list_team_members(&self, tenant: TenantId, team: TeamId) -> Result<Vec<UserId>> {
        teams::list_members(&self.db, tenant, team).await
    }

    async fn insert_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        webhooks::insert(&self.db, endpoint).await
    }

    async fn find_webhook(&self, tenant: TenantId, id: Uuid) -> Result<Option<WebhookEndpoint>> {
        webhooks::find(&self.db, tenant, id).await
    }

    async fn list_webhooks(&self, tenant: TenantId) -> Result<Vec<WebhookEndpoint>> {
        webhooks::list(&self.db, tenant).await
    }

    async fn update_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        webhooks::update(&self.db, endpoint).await
    }

    async fn delete_webhook(&self, tenant: TenantId, id: Uuid) -> Result<bool> {
        webhooks::delete(&self.db, tenant, id).await
    }

    async fn claim_deliveries(
        &self,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueDelivery>> {
        events::claim(&self.db, limit, now, lease_until).await
    }

    async fn record_attempts(&self, attempts: &[Attempted]) -> Result<()> {
        events::record(&self.db, attempts).await
    }

    async fn list_deliveries(
        &self,
        tenant: TenantId,
        endpoint: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        events::list(&self.db, tenant, endpoint, before, limit).await
    }

    async fn redeliver(&self, tenant: TenantId, endpoint: Uuid, event: Uuid, now: DateTime<Utc>) -> Result<bool> {
        events::redeliver(&self.db, tenant, endpoint, event, now).await
    }

    async fn purge_events(&self, before: DateTime<Utc>) -> Result<u64> {
        events::purge(&self.db, before).await
    }

    async fn oldest_undelivered_event(&self) -> Result<Option<DateTime<Utc>>> {
        events::oldest_undelivered(&self.db).await
    }

    fn events_written(&self) -> u64 {
        self.db.events_written()
    }

    async fn insert_activity(&self, entry: &Activity) -> Result<()> {
        activity::insert(&self.db, entry).await
    }

    async fn list_activity(&self, tenant: TenantId, filter: &ActivityFilter) -> Result<Vec<Activity>> {
        activity::list(&self.db, tenant, filter).await
    }

    async fn move_activity(&self) -> Result<()> {
        activity::move_inbox(&self.db).await
    }

    async fn purge_activity(&self, tenant: TenantId, before: DateTime<Utc>) -> Result<u64> {
        activity::purge(&self.db, tenant, before).await
    }

    async fn insert_records(&self, records: &[Record]) -> Result<()> {
        self.db.transaction(events::steps(records).collect()).await
    }

    async fn list_emails(&self, tenant: TenantId, user: UserId) -> Result<Vec<EmailAddress>> {
        emails::list(&self.db, tenant, user).await
    }

    async fn find_email(&self, tenant: TenantId, email: &str) -> Result<Option<EmailAddress>> {
        emails::find_by_email(&self.db, tenant, email).await
    }

    async fn insert_email(&self, address: &EmailAddress, records: &[Record]) -> Result<()> {
        emails::insert(&self.db, address, records).await
    }

    async fn delete_email(&self, tenant: TenantId, user: UserId, id: Uuid, records: &[Record]) -> Result<bool> {
        emails::delete(&self.db, tenant, user, id, records).await
    }

    async fn find_mail_token(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<MailToken>> {
        emails::find_token(&self.db, hash, now).await
    }

    async fn verify_email(&self, token: &MailToken, now: DateTime<Utc>, records: &[Record]) -> Result<()> {
        emails::verify(&self.db, token, now, records).await
    }

    async fn purge_mail_tokens(&self, before: DateTime<Utc>) -> Result<u64> {
        emails::purge_tokens(&self.db, before).await
    }

    async fn claim_mail(&self, limit: u32, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> Result<Vec<DueMail>> {
        mail::claim(&self.db, limit, now, lease_until).await
    }

    async fn record_mail(&self, outcomes: &[crate::MailOutcome]) -> Result<()> {
        mail::record(&self.db, outcomes).await
    }

    async fn pending_mail(&self) -> Result<u64> {
        mail::pending(&self.db).await
    }

    async fn purge_mail(&self, before: DateTime<Utc>) -> Result<u64> {
        mail::purge(&self.db, before).await
    }

    async fn insert_identity_provider(&self, provider: &IdentityProvider) -> Result<()> {
        providers::insert(&self.db, provider).await
    }

    async fn find_identity_provider(&self, tenant: TenantId, slug: &str) -> Result<Option<IdentityProvider>> {
        providers::find(&self.db, tenant, slug).await
    }

    async fn list_identity_providers(&self, tenant: TenantId) -> Result<Vec<IdentityProvider>> {
        providers::list(&self.db, tenant).await
    }

    async fn update_identity_provider(&self, provider: &IdentityProvider) -> Result<()> {
        providers::update(&self.db, provider).await
    }

    async fn delete_identity_provider(&self, tenant: TenantId, slug: &str) -> Result<bool> {
        providers::delete(&self.db, tenant, slug).await
    }

    async fn insert_federation_state(&self, state: &FederationState) -> Result<()> {
        providers::insert_state(&self.db, state).await
    }

    async fn take_federation_state(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<FederationState>> {
        providers::take_state(&self.db, hash, now).await
    }

    async fn find_identity(&self, tenant: TenantId, provider: &str, subject: &str) -> Result<Option<UserId>> {
        providers::find_identity(&self.db, tenant, provider, subject).await
    }

    async fn insert_linked_user(&self, new: NewUser<'_>, provider: &str, subject: &str) -> Result<()> {
        providers::insert_linked_user(&self.db, new, provider, subject).await
    }

    async fn link_identity(
        &self,
        user: &User,
        provider: &str,
        subject: &str,
        now: DateTime<Utc>,
        records: &[Record],
    ) -> Result<()> {
        providers::link(&self.db, user, provider, subject, now, records).await
    }

    async fn list_identities(&self, tenant: TenantId, user: UserId) -> Result<Vec<(String, String, DateTime<Utc>)>> {
        providers::identities(&self.db, tenant, user).await
    }

    async fn unlink_identity(
        &self,
        tenant: TenantId,
        user: UserId,
        provider: &str,
        records: &[Record],
    ) -> Result<bool> {
        providers::unlink(&self.db, tenant, user, provider, records).await
    }

    async fn insert_passkey(&self, passkey: &StoredPasskey, records: &[Record]) -> Result<()> {
        passkeys::insert(&self.db, passkey, records).await
    }

    async fn list_passkeys(&self, tenant: TenantId, user: UserId) -> Result<Vec<StoredPasskey>> {
        passkeys::list(&self.db, tenant, user).await
    }

    async fn find_passkey(&self, tenant: TenantId, credential_id: &str) -> Result<Option<StoredPasskey>> {
        passkeys::find(&self.db, tenant, credential_id).await
    }

    async fn rename_passkey(&self, tenant: TenantId, user: UserId, id: Uuid, name: &str) -> Result<bool> {
        passkeys::rename(&self.db, tenant, user, id, name).await
    }

    async fn delete_passkey(&self, tenant: TenantId, user: UserId, id: Uuid, records: &[Record]) -> Result<bool> {
        passkeys::delete(&self.db, tenant, user, id, records).await
    }

    async fn record_passkey_use(&self, used: &StoredPasskey, previous_count: u32, now: DateTime<Utc>) -> Result<bool> {
        passkeys::record_use(&self.db, used, previous_count, now).await
    }

    async fn insert_ceremony(&self, ceremony: &Ceremony) -> Result<()> {
        passkeys::insert_ceremony(&self.db, ceremony).await
    }

    async fn take_ceremony(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<Ceremony>> {
        passkeys::take_ceremony(&self.db, hash, now).await
    }

    async fn find_limit_window(&self, key: &str, now: DateTime<Utc>) -> Result<Option<(u32, DateTime<Utc>)>> {
        limits::find(&self.db, key, now).await
    }

    async fn record_limit_event(&self, key: &str, seconds: i64, now: DateTime<Utc>) -> Result<(u32, DateTime<Utc>)> {
        limits::record(&self.db, key, seconds, now).await
    }

    async fn purge_limit_windows(&self, now: DateTime<Utc>) -> Result<u64> {
        limits::purge(&self.db, now).await
    }
}
