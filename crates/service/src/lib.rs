//! Tessera's use cases. Every surface — the native API, the server API, each foreign contract —
//! calls these operations, so each rule is enforced in exactly one place.
//!
//! This crate knows neither HTTP nor SQL: it speaks `tessera_core` types and `DomainError`, and
//! reaches storage only through the `Store` trait.

mod activity;
mod email;
pub mod federation;
pub mod hook;
mod identity;
pub mod limits;
pub mod mail;
mod me;
mod mfa;
pub mod oauth;
pub mod outbound;
mod passkeys;
mod server;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tessera_auth::{KeyRing, PasswordHasher, TokenVerifier};
use tessera_core::events::By;
use tessera_core::keys::SigningAlgorithm;
use tessera_core::policy::PolicyEngine;
use tessera_core::tenant::Tenant;
use tessera_core::user::User;
use tessera_core::{Clock, DomainError, SessionId, TenantId};
use tessera_store::{Store, StoreError, constraints};

pub use activity::MAX_PAGE as MAX_ACTIVITY_PAGE;
pub use identity::{ClientInfo, Introspection, SignUp, SignedUp, Tokens};
pub use me::{Export, UpdateOptions};
pub use mfa::TotpEnrolment;
pub use passkeys::PasskeyOptions;
pub use server::{CreatedTenant, NewSuspension, TeamInput};
pub use tessera_core::policy::Actor;

pub type Result<T, E = DomainError> = std::result::Result<T, E>;

/// Settings the service needs from the binary's configuration.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The base URL Tessera is reached at; issuers and avatar URLs are built from it.
    pub public_url: String,
    /// How many argon2id hashes may run at once.
    pub hash_concurrency: usize,
    /// The operator's root key from configuration; when absent, the stored one is used, and on
    /// first start a new one is generated (and returned once by `bootstrap`).
    pub root_key: Option<String>,
    /// Whether outbound calls (the pre-update hook, webhooks) may reach loopback and private
    /// addresses.
    pub allow_private_targets: bool,
    /// How event payloads show a user.
    pub render_user: webhooks::RenderUser,
    /// Seconds to wait after each failed delivery attempt before the next; after the last,
    /// the delivery has failed.
    pub webhook_retry_schedule: Vec<u64>,
    /// How long delivered events are kept.
    pub event_retention_seconds: i64,
    /// How long an endpoint has to answer a delivery attempt.
    pub webhook_timeout: Duration,
    /// The background jobs' runtime, on a thread of its own at a lower priority, where
    /// delivery attempts run; without one they run where the delivery round does.
    pub background: Option<tokio::runtime::Handle>,
    /// Where mail goes, from whom, and how long its links work.
    pub mail: mail::MailConfig,
    /// The WebAuthn relying party passkeys are made for and checked by.
    pub relying_party: Arc<tessera_auth::webauthn::RelyingParty>,
    /// How long the tenants' console stays open without a request.
    pub console_idle: chrono::Duration,
}

/// A signed-in user, as established from an access token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub session_id: SessionId,
}

impl Principal {
    pub fn tenant_id(&self) -> TenantId {
        self.user.tenant_id
    }
}

pub struct Service {
    pub store: Arc<dyn Store>,
    pub tokens: TokenVerifier,
    pub hasher: PasswordHasher,
    pub clock: Arc<dyn Clock>,
    pub config: ServiceConfig,
    root_key_hash: String,
    /// Tenants change rarely and are read by every write; a short TTL keeps many instances
    /// in step with a settings change within seconds.
    tenants: moka::future::Cache<TenantId, Arc<Tenant>>,
    /// Each tenant's compiled policies, cached like tenants.
    policies: moka::future::Cache<TenantId, Arc<PolicyEngine>>,
    /// Per tenant, the event types some enabled endpoint wants (`None`: every type), so that a
    /// write nobody listens to skips its event. Short-lived, like the other caches: another
    /// instance's new endpoint is seen within `LISTENERS_TTL`.
    listeners: moka::future::Cache<TenantId, Arc<webhooks::Listeners>>,
    /// Per tenant, the identity providers every hosted page offers, cached like `listeners`
    /// (cleared at once on this instance's changes), so that a page view reads none.
    sign_in_providers: moka::future::Cache<TenantId, Arc<Vec<federation::SignInOption>>>,
    /// Calls to URLs tenants configure (the pre-update hook, webhooks), through the
    /// private-target guard.
    http: outbound::Outbound,
    /// The same guard, with connections of its own for webhook deliveries, which run on the
    /// background runtime.
    webhook_http: outbound::Outbound,
    limits: limits::Limiter,
    /// Unconditional changes to one user take turns here (`me::UserTurns`).
    turns: me::UserTurns,
    /// This instance's delivery attempts by outcome, for the metrics.
    pub delivery_counts: webhooks::DeliveryCounts,
    /// This instance's mail attempts by outcome, for the metrics.
    pub mail_counts: webhooks::DeliveryCounts,
    /// When a token signed with a key this instance did not know last made it reload its keys.
    unknown_key_reload: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often a token with an unknown key may make an instance reload its keys: often enough
/// that a key another instance has just made is found at once, seldom enough that tokens with
/// made-up key ids cannot keep the database busy.
const UNKNOWN_KEY_RELOAD_EVERY: Duration = Duration::from_secs(1);

const ROOT_KEY_HASH: &str = "root_key_hash";
/// Keys stay in the verifying ring this long after retirement: longer than any token lives.
const KEEP_VERIFYING_HOURS: i64 = 25;

impl Service {
    /// Connects the pieces: makes sure a signing key and a root key exist. Returns the service
    /// and, on the first start without a configured root key, the generated key (shown once).
    pub async fn bootstrap(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
        hash_params: tessera_auth::password::Params,
    ) -> Result<(Self, Option<String>)> {
        let now = clock.now();
        let mut records = store.list_signing_keys().await.map_err(store_err)?;
        if !records.iter().any(|r| r.retired_at.is_none() && r.alg == SigningAlgorithm::EdDSA.name()) {
            let rec = KeyRing::generate(SigningAlgorithm::EdDSA, now).map_err(DomainError::internal)?;
            store.insert_signing_key(&rec).await.map_err(store_err)?;
            records = store.list_signing_keys().await.map_err(store_err)?;
        }
        let ring = KeyRing::from_records(&records, now, chrono::Duration::hours(KEEP_VERIFYING_HOURS))
            .map_err(DomainError::internal)?;
        let tokens = TokenVerifier::new(ring, config.public_url.trim_end_matches('/'), Duration::from_secs(24 * 3600));

        let mut generated = None;
        let root_key_hash = match &config.root_key {
            Some(key) => tessera_auth::secret::hash_secret(key),
            None => match store.find_instance_value(ROOT_KEY_HASH).await.map_err(store_err)? {
                Some(h) => h,
                None => {
                    let key = tessera_auth::secret::random_token("tsr_root_", 32);
                    let hash = tessera_auth::secret::hash_secret(&key);
                    if store.insert_instance_value(ROOT_KEY_HASH, &hash).await.map_err(store_err)? {
                        generated = Some(key);
                        hash
                    } else {
                        // Another instance won the race; use its key.
                        store.find_instance_value(ROOT_KEY_HASH).await.map_err(store_err)?.unwrap_or(hash)
                    }
                }
            },
        };
        let hasher = PasswordHasher::new(config.hash_concurrency, hash_params).map_err(DomainError::internal)?;
        let tenants = moka::future::Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(5)).build();
        let policies = moka::future::Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(5)).build();
        let listeners =
            moka::future::Cache::builder().max_capacity(10_000).time_to_live(webhooks::LISTENERS_TTL).build();
        let http = outbound::Outbound::new(config.allow_private_targets).map_err(DomainError::internal)?;
        let webhook_http = outbound::Outbound::new(config.allow_private_targets).map_err(DomainError::internal)?;
        // Several instances share a PostgreSQL database: their limits must too.
        let limits = match store.backend() {
            tessera_store::Backend::Postgres => limits::Limiter::shared(Arc::clone(&store)),
            tessera_store::Backend::Sqlite => limits::Limiter::in_memory(),
        };
        Ok((
            Self {
                store,
                tokens,
                hasher,
                clock,
                config,
                root_key_hash,
                tenants,
                policies,
                listeners,
                sign_in_providers: moka::future::Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(webhooks::LISTENERS_TTL)
                    .build(),
                http,
                webhook_http,
                limits,
                turns: me::UserTurns::default(),
                delivery_counts: webhooks::DeliveryCounts::default(),
                mail_counts: webhooks::DeliveryCounts::default(),
                unknown_key_reload: std::sync::Mutex::new(None),
            },
            generated,
        ))
    }

    /// The current time at the store's precision (milliseconds), so that a response to a write
    /// shows the same timestamps a later read will.
    pub fn now(&self) -> DateTime<Utc> {
        let now = self.clock.now();
        DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
    }

    /// Rotates the signing keys: for each algorithm in use, a new key signs from now on and
    /// the old one keeps verifying. Returns the new keys' ids.
    pub async fn rotate_signing_key(&self) -> Result<Vec<String>> {
        let now = self.now();
        let active: Vec<_> = self.store.list_signing_keys().await.map_err(store_err)?;
        let active: Vec<_> = active.iter().filter(|r| r.retired_at.is_none()).collect();
        let mut kids = Vec::new();
        for alg in SigningAlgorithm::ALL.into_iter().filter(|a| active.iter().any(|r| r.alg == a.name())) {
            let rec = KeyRing::generate(alg, now).map_err(DomainError::internal)?;
            for old in active.iter().filter(|r| r.alg == alg.name()) {
                self.store.retire_signing_key(&old.kid, now).await.map_err(store_err)?;
            }
            self.store.insert_signing_key(&rec).await.map_err(store_err)?;
            kids.push(rec.kid);
        }
        self.reload_keys().await?;
        Ok(kids)
    }

    /// Makes sure a key of `alg` signs: reloads the ring (another instance may have made one),
    /// then makes one if there is still none. Two instances racing here each make a key; the
    /// newer signs and both verify, so the race costs nothing but a spare key.
    pub(crate) async fn ensure_signing_key(&self, alg: SigningAlgorithm) -> Result<()> {
        if self.tokens.keys().active_kid(alg).is_some() {
            return Ok(());
        }
        self.reload_keys().await?;
        if self.tokens.keys().active_kid(alg).is_some() {
            return Ok(());
        }
        // An RSA key takes a moment to make: not on the async threads.
        let now = self.now();
        let rec = tokio::task::spawn_blocking(move || KeyRing::generate(alg, now))
            .await
            .map_err(DomainError::internal)?
            .map_err(DomainError::internal)?;
        self.store.insert_signing_key(&rec).await.map_err(store_err)?;
        self.reload_keys().await
    }

    /// Verifies an access token. A key this instance does not know may have been made moments
    /// ago by another one (a new tenant's first ES256 key, two instances started together): the
    /// ring is reloaded, at most once every `UNKNOWN_KEY_RELOAD_EVERY`, and the token tried again.
    pub(crate) async fn verify_access(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<Arc<tessera_auth::AccessClaims>, tessera_auth::TokenError> {
        match self.tokens.verify(token, now) {
            Err(tessera_auth::TokenError::UnknownKey) if self.may_reload_for_unknown_key() => {
                if let Err(e) = self.reload_keys().await {
                    tracing::warn!(error = %e, "reloading signing keys for an unknown key failed");
                }
                self.tokens.verify(token, now)
            }
            verdict => verdict,
        }
    }

    fn may_reload_for_unknown_key(&self) -> bool {
        let mut last = self.unknown_key_reload.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= UNKNOWN_KEY_RELOAD_EVERY);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }

    /// Reloads the key ring from the store (after a rotation by this or another instance).
    pub async fn reload_keys(&self) -> Result<()> {
        let records = self.store.list_signing_keys().await.map_err(store_err)?;
        let ring = KeyRing::from_records(&records, self.now(), chrono::Duration::hours(KEEP_VERIFYING_HOURS))
            .map_err(DomainError::internal)?;
        self.tokens.replace_keys(ring);
        Ok(())
    }

    pub fn check_root_key(&self, presented: &str) -> Result<()> {
        if tessera_auth::secret::hashes_match(&tessera_auth::secret::hash_secret(presented), &self.root_key_hash) {
            Ok(())
        } else {
            Err(DomainError::Unauthenticated("invalid root key"))
        }
    }

    pub async fn tenant(&self, id: TenantId) -> Result<Arc<Tenant>> {
        let store = Arc::clone(&self.store);
        self.tenants
            .try_get_with(id, async move {
                match store.find_tenant(id).await {
                    Ok(Some(t)) => Ok(Arc::new(t)),
                    Ok(None) => Err(DomainError::NotFound("tenant")),
                    Err(e) => Err(store_err(e)),
                }
            })
            .await
            .map_err(|e: Arc<DomainError>| unshared(&e))
    }

    /// The tenant's policy engine: the built-in policies plus the tenant's own.
    pub async fn policy_engine(&self, id: TenantId) -> Result<Arc<PolicyEngine>> {
        let store = Arc::clone(&self.store);
        self.policies
            .try_get_with(id, async move {
                let src = store.find_tenant_policies(id).await.map_err(store_err)?;
                // Stored policies were checked when they were written; if one no longer parses
                // (a Cedar upgrade), refusing every update is safer than dropping a forbid.
                PolicyEngine::with_tenant_policies(&src).map(Arc::new)
            })
            .await
            .map_err(|e: Arc<DomainError>| unshared(&e))
    }

    /// The tenant's own policies' source.
    pub async fn tenant_policies(&self, id: TenantId) -> Result<String> {
        self.store.find_tenant_policies(id).await.map_err(store_err)
    }

    /// Replaces the tenant's own policies after checking that they compile with the built-in
    /// ones; a source that does not is refused and nothing changes.
    pub async fn set_tenant_policies(&self, id: TenantId, source: &str) -> Result<()> {
        if source.len() > 64 * 1024 {
            return Err(DomainError::field("source", "too_large", "policies must be at most 64 KiB"));
        }
        let engine = PolicyEngine::with_tenant_policies(source)?;
        self.store.put_tenant_policies(id, source, self.now()).await.map_err(store_err)?;
        self.policies.insert(id, Arc::new(engine)).await;
        Ok(())
    }

    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await.map_err(store_err)
    }

    /// Forgets the brute-force windows that have ended; run by the purge job.
    pub async fn purge_limits(&self) -> Result<u64> {
        self.limits.purge(self.now()).await
    }

    /// Erases accounts whose deletion grace period has passed, then images nobody uses.
    /// Run periodically by every instance (see the binary's jobs).
    pub async fn purge_due(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let now = self.now();
            let erased = |tenant, user| crate::webhooks::erasure(tenant, user, By::System, now);
            let purged = self.store.purge_due_users(now, 500, &erased).await.map_err(store_err)?;
            for (tenant, user) in &purged {
                tracing::info!(%tenant, %user, "account erased after its deletion grace period");
            }
            total += purged.len();
            if purged.len() < 500 {
                break;
            }
        }
        // Replaced and orphaned avatars go too; the statement is one indexed anti-join.
        self.store.delete_unreferenced_images().await.map_err(store_err)?;
        self.purge_mail().await?;
        Ok(total)
    }

    pub async fn image(&self, hash: &str) -> Result<(String, Vec<u8>)> {
        self.store.find_image(hash).await.map_err(store_err)?.ok_or(DomainError::NotFound("image"))
    }
}

/// The one place a storage error becomes a domain error.
pub fn store_err(e: StoreError) -> DomainError {
    match e {
        StoreError::NotFound => DomainError::NotFound("user"),
        StoreError::Stale => DomainError::PreconditionFailed,
        StoreError::Conflict { constraint } => match constraint {
            constraints::USER_EMAIL => DomainError::Conflict { field: "primary_email" },
            constraints::USER_USERNAME => DomainError::Conflict { field: "username" },
            constraints::MAIL_TOKEN => DomainError::field(
                "token",
                "invalid_token",
                "the link is not valid: it was used already, or has expired",
            ),
            constraints::TEAM_MEMBERSHIP => {
                DomainError::field("selected_team_id", "not_a_member", "the user is not a member of this team")
            }
            // A uniqueness rule no caller expects is a bug, not the caller's fault.
            other => DomainError::Internal(format!("unexpected conflict on {other}").into()),
        },
        StoreError::Unavailable(e) | StoreError::Contended(e) => DomainError::Unavailable(e),
        StoreError::Other(e) => DomainError::Internal(e),
    }
}

/// A domain error shared by the callers of one cache load, as their own copy: the kinds
/// callers tell apart keep their kind, anything else is internal.
fn unshared(e: &DomainError) -> DomainError {
    match e {
        DomainError::NotFound(what) => DomainError::NotFound(what),
        DomainError::Unavailable(cause) => DomainError::Unavailable(cause.to_string().into()),
        other => DomainError::Internal(other.to_string().into()),
    }
}
