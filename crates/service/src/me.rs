//! Changing an account: the one update path every surface goes through, and the current
//! user's own operations (deletion, password, sessions, teams, export).

use chrono::Duration;
use serde_json::{Map, Value};
use tessera_core::events::{Activity, By, Record};
use tessera_core::patch::{Field, Limits, UserPatch};
use tessera_core::policy::{self, Actor, UpdateContext};
use tessera_core::user::{Session, Team, User};
use tessera_core::{DomainError, FieldError, SessionId, TenantId, UserId, validate};
use tessera_store::{ImageBlob, PendingWrite, RevokeSessions, StoreError, UserWrite};

use crate::{Principal, Result, Service, store_err};

/// How an update is to be read; the defaults are the native `PATCH`.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// Which surface asks (`native` or a contract's name), for policies that care.
    pub surface: &'static str,
    /// The version the caller last saw (`If-Match`); a different current version means `412`.
    pub if_match: Option<i64>,
    /// `PUT` semantics: profile fields left out are cleared.
    pub replace_profile: bool,
    /// A contract's narrower display-name limit (JITSudo: 100).
    pub display_name_max: Option<usize>,
    /// A contract's narrower image cap (Stack Auth: < 100 KB).
    pub image_max_bytes: Option<usize>,
    /// Server-only fields a contract lets the user write for itself (Replyke's
    /// `secureMetadata`). Still never returned.
    pub self_may_write: &'static [&'static str],
    /// The administrator who makes this server-side change from the console: the change is
    /// the server's, for the policies, and recorded as theirs.
    pub admin: Option<UserId>,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        Self {
            surface: "native",
            if_match: None,
            replace_profile: false,
            display_name_max: None,
            image_max_bytes: None,
            self_may_write: &[],
            admin: None,
        }
    }
}

/// Everything Tessera holds about a user that the user may see (GDPR art. 20).
#[derive(Debug)]
pub struct Export {
    pub user: User,
    pub sessions: Vec<Session>,
    pub teams: Vec<Team>,
    /// What the user's passkeys are called and when they were used; never their keys.
    pub passkeys: Vec<tessera_core::passkey::Passkey>,
}

/// The user an update changes: by id (read first), or as authentication has just read it.
#[derive(Clone, Copy)]
enum Target<'u> {
    Id(UserId),
    Read(&'u User),
}

/// What `apply_patch` did: nothing to write, or a write submitted and not yet committed.
enum Patched {
    Unchanged(User),
    Submitted(User, PendingWrite),
}

/// Who makes a change: the actor, and for a user's own change, the session it is made through.
#[derive(Clone, Copy)]
struct Caller {
    actor: Actor,
    session: Option<SessionId>,
}

/// Attempts of an unconditional update that lost a race before it is reported.
/// Ten, because on PostgreSQL under a write load where several clients update one user at
/// once, five lost races in a row did happen (two `412`s in 30 k requests, 64 connections over
/// 64 users). Within one process, unconditional changes to a user also take turns
/// ([`UserTurns`]), so races are lost only to other instances and to the rarer writes.
const UNCONDITIONAL_RETRIES: usize = 10;

/// Stripes of [`UserTurns`]; users share one only by chance.
const TURN_STRIPES: usize = 1024;

/// Makes unconditional read-change-write cycles on one user take turns within this process.
/// Left to race, 48 clients changing one user at once got `412` for most of them even after
/// ten retries: every loser re-read at once and lost again to whichever of them wrote first.
/// Conditional (`If-Match`) updates do not wait here: a loser's `412` is their answer.
///
/// A turn lasts until the change is submitted, not until it commits: each stripe remembers
/// the user as the changes submitted through it will leave it, and the next change starts
/// from there, without reading. Where the store applies this process's writes in the order
/// they were submitted (SQLite's writer queue), changes to one hot user thus go out one
/// after another and commit together in a group, rather than one per group with a read and
/// a wake-up between them. Every write still names the version it expects, so a change that
/// started from a write that then failed fails as stale and starts again from a fresh read.
pub(crate) struct UserTurns(Box<[tokio::sync::Mutex<Stripe>]>);

impl Default for UserTurns {
    fn default() -> Self {
        Self((0..TURN_STRIPES).map(|_| tokio::sync::Mutex::new(Stripe::default())).collect())
    }
}

#[derive(Default)]
struct Stripe {
    /// The user as the changes submitted through this stripe will leave it, while any is in
    /// flight.
    ahead: Option<User>,
    /// Counts the broken chains: a change submitted in an earlier one was built on a write
    /// that failed.
    chain: u64,
}

/// One user's turn: held while a change is read, checked and submitted.
struct Turn<'t> {
    stripe: tokio::sync::MutexGuard<'t, Stripe>,
    user: UserId,
    /// Someone else's change came first: a read made before the wait is no longer worth
    /// writing from.
    waited: bool,
}

impl Turn<'_> {
    /// The user as the changes already submitted will leave it, if this process has any in
    /// flight and it is newer than `than` (the version the caller read).
    fn ahead_of(&self, than: Option<i64>) -> Option<&User> {
        self.stripe.ahead.as_ref().filter(|u| u.id == self.user && than.is_none_or(|v| u.version > v))
    }

    /// `user` is what the change just submitted will leave; the chain it belongs to.
    fn submitted(&mut self, user: &User) -> u64 {
        self.stripe.ahead = Some(user.clone());
        self.stripe.chain
    }

    /// Nothing in flight is to be built on: the change holding the turn has committed, or
    /// failed, and nothing was submitted behind it.
    fn clear(&mut self) {
        if self.stripe.ahead.as_ref().is_some_and(|u| u.id == self.user) {
            self.stripe.ahead = None;
        }
    }
}

impl UserTurns {
    fn stripe(&self, user: UserId) -> &tokio::sync::Mutex<Stripe> {
        &self.0[user.0.as_u128() as usize % TURN_STRIPES]
    }

    /// Waits for the user's turn.
    async fn take(&self, user: UserId) -> Turn<'_> {
        let stripe = self.stripe(user);
        match stripe.try_lock() {
            Ok(stripe) => Turn { stripe, user, waited: false },
            Err(_) => Turn { stripe: stripe.lock().await, user, waited: true },
        }
    }

    /// After the commit of a change that left `user`: a stripe that still holds it has nothing
    /// more in flight and lets it go. If the stripe is taken, its holder replaces it anyway.
    fn settle(&self, user: &User) {
        if let Ok(mut stripe) = self.stripe(user.id).try_lock()
            && stripe.ahead.as_ref().is_some_and(|u| u.id == user.id && u.version == user.version)
        {
            stripe.ahead = None;
        }
    }

    /// A change submitted in `chain` failed: what was built on it is not to be built on. Only
    /// the first failure of a chain ends it; the changes behind it fail in turn, and must not
    /// end the chain that has started again since, from fresh reads.
    async fn broken(&self, user: UserId, chain: u64) {
        let mut stripe = self.stripe(user).lock().await;
        if stripe.chain == chain {
            stripe.chain += 1;
            if stripe.ahead.as_ref().is_some_and(|u| u.id == user) {
                stripe.ahead = None;
            }
        }
    }
}

/// Pauses before retrying a write that lost a race (to another instance, on PostgreSQL):
/// a random pause whose ceiling doubles with each loss (1 to 32 ms), so that writers who
/// lost together do not collide again together.
async fn back_off(attempt: usize) {
    let ceiling_us = 500u64 << attempt.clamp(1, 6);
    let pause = (uuid::Uuid::new_v4().as_u128() % u128::from(ceiling_us)) as u64;
    tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
}

/// What a lifecycle write changes beside the user row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extras<'e> {
    pub password_hash: Option<&'e str>,
    /// Every session ends but the one named: each with its `session.revoked`.
    pub revoke_sessions: Option<RevokeSessions>,
    pub totp_secret: Option<Option<&'e str>>,
    /// The event the change is, written with it, and its activity entry.
    pub event: Option<&'static str>,
    /// Who makes the change, as the activity trail says it.
    pub by: By,
    /// A change of the primary address keeps the replaced one on the account (a switch to
    /// an address the user has), rather than removing it.
    pub keep_replaced_email: bool,
    /// The hash of a mailed token the change uses up.
    pub use_token: Option<&'e str>,
    /// More records written with the change (the messages it sends).
    pub records: &'e [Record],
}

impl Default for Extras<'_> {
    fn default() -> Self {
        Self {
            password_hash: None,
            revoke_sessions: None,
            totp_secret: None,
            event: None,
            by: By::User,
            keep_replaced_email: false,
            use_token: None,
            records: &[],
        }
    }
}

impl Service {
    /// The tenant's server changes a user: parses, authorises and stores the change, all or
    /// nothing. Without `if_match`, a concurrent change is merged by re-reading and re-applying;
    /// with it, the caller gets `PreconditionFailed` instead.
    pub async fn update_user(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
        body: &Map<String, Value>,
        opts: &UpdateOptions,
    ) -> Result<User> {
        self.update(Caller { actor: Actor::Server, session: None }, tenant_id, user_id, None, body, opts).await
    }

    /// The signed-in user changes their own account: the one entry point of every surface's
    /// self-update, with the same rules as `update_user`. Authentication has just read the
    /// user, so that read is the first attempt's starting point instead of a second one; the
    /// versioned write still catches any change in between, and on SQLite the written user is
    /// kept for the session's next read.
    pub async fn update_me(&self, who: &Principal, body: &Map<String, Value>, opts: &UpdateOptions) -> Result<User> {
        let by = Caller { actor: Actor::SelfService, session: Some(who.session_id) };
        self.update(by, who.tenant_id(), who.user.id, Some(&who.user), body, opts).await
    }

    async fn update(
        &self,
        by: Caller,
        tenant_id: TenantId,
        user_id: UserId,
        mut known: Option<&User>,
        body: &Map<String, Value>,
        opts: &UpdateOptions,
    ) -> Result<User> {
        let tenant = self.tenant(tenant_id).await?;
        let mut limits = Limits {
            display_name_max: opts.display_name_max.unwrap_or(256),
            image: tenant.settings.image_limits(),
            metadata_max_bytes: tenant.settings.metadata_max_bytes,
        };
        if let Some(max) = opts.image_max_bytes {
            limits.image.max_bytes = limits.image.max_bytes.min(max);
        }
        let mut patch = UserPatch::parse(body, &limits, self.now().date_naive())?;
        if opts.replace_profile {
            patch = patch.replacing_profile();
        }
        let mut attempt = 0;
        loop {
            let mut turn = match opts.if_match {
                None => Some(self.turns.take(user_id).await),
                Some(_) => None,
            };
            if turn.as_ref().is_some_and(|t| t.waited) {
                known = None;
            }
            let target = match turn.as_ref().and_then(|t| t.ahead_of(known.map(|u| u.version))) {
                Some(ahead) => Target::Read(ahead),
                None => known.take().map_or(Target::Id(user_id), Target::Read),
            };
            // A start from authentication's read, or from the change before, is not one of the
            // retries: under contention it is the likeliest to be stale, and it must not use up
            // the fresh reads.
            if matches!(target, Target::Id(_)) {
                attempt += 1;
            }
            let (user, pending) = match self.apply_patch(by, tenant_id, target, patch.clone(), body, opts).await? {
                Patched::Unchanged(user) => return Ok(user),
                Patched::Submitted(user, pending) => (user, pending),
            };
            let chain = turn.as_mut().map(|t| t.submitted(&user));
            drop(turn);
            let failed = match pending.await {
                Ok(()) => {
                    self.turns.settle(&user);
                    return Ok(user);
                }
                Err(e) => e,
            };
            if let Some(chain) = chain {
                self.turns.broken(user_id, chain).await;
            }
            match failed {
                StoreError::Stale if opts.if_match.is_none() && attempt < UNCONDITIONAL_RETRIES => {
                    if attempt > 0 {
                        back_off(attempt).await;
                    }
                    known = None;
                }
                e => return Err(store_err(e)),
            }
        }
    }

    async fn apply_patch(
        &self,
        by: Caller,
        tenant_id: TenantId,
        target: Target<'_>,
        patch: UserPatch,
        change: &Map<String, Value>,
        opts: &UpdateOptions,
    ) -> Result<Patched> {
        let if_match = opts.if_match;
        let now = self.now();
        let current = match target {
            Target::Read(user) => user.clone(),
            Target::Id(user_id) => self
                .store
                .find_user(tenant_id, user_id, now)
                .await
                .map_err(store_err)?
                .ok_or(DomainError::NotFound("user"))?,
        };
        if if_match.is_some_and(|v| v != current.version) {
            return Err(DomainError::PreconditionFailed);
        }
        let ctx = UpdateContext { surface: opts.surface, granted_by_contract: opts.self_may_write };
        self.policy_engine(tenant_id).await?.authorize_update(by.actor, &current, &patch.fields(), ctx)?;
        if patch.is_empty() {
            return Ok(Patched::Unchanged(current));
        }
        // Last, because it is the slowest and the only one outside: the tenant's own hook.
        let tenant = self.tenant(tenant_id).await?;
        if let Some(hook) = &tenant.settings.pre_update_hook {
            crate::hook::ask(&self.http, hook, opts.surface, &current, change, now).await?;
        }
        let require_membership = match patch.selected_team() {
            Field::Set(team) => Some(team),
            _ => None,
        };
        let mut user = current.clone();
        let changed = patch.fields();
        let applied = patch.apply(&mut user);
        user.version = current.version + 1;
        user.updated_at = now;
        let recorded_by = opts.admin.map_or_else(|| by.actor.into(), By::Admin);
        let mut records = self.user_updated(&user, &changed, recorded_by, now).await?;
        if current.primary_email != user.primary_email {
            records.extend(self.primary_email_changed(&tenant, &current, &user, by.actor, now).await?);
        }
        let empty = Map::new();
        let secure = match &applied.secure_metadata {
            Field::Absent => None,
            Field::Clear => Some(&empty),
            Field::Set(m) => Some(m),
        };
        let mut write = UserWrite::between(&current, &user, now);
        write.secure_metadata = secure;
        write.require_membership = require_membership;
        write.through_session = by.session;
        write.records = &records;
        write.new_image = applied.new_image.as_ref().map(|img| ImageBlob {
            hash: img.hash_str(),
            content_type: img.kind.content_type(),
            bytes: &img.bytes,
        });
        let pending = self.store.submit_user_update(write).await.map_err(store_err)?;
        Ok(Patched::Submitted(user, pending))
    }

    /// Reads, changes and writes a user with the version check, re-reading and retrying when
    /// another write came between: for changes that do not depend on what the caller last saw
    /// (lifecycle operations), so they never answer a spurious `412`.
    pub(crate) async fn modify_user(
        &self,
        tenant_id: TenantId,
        id: UserId,
        change: impl Fn(&mut User) -> Result<()>,
        extras: Extras<'_>,
    ) -> Result<User> {
        // Held until the change commits, so nothing is submitted behind it. Its reads are
        // fresh: a change in flight before it makes the first one stale, and it waits for that
        // change's commit like a lost race.
        let mut turn = self.turns.take(id).await;
        let attempts = async {
            for attempt in 0..UNCONDITIONAL_RETRIES {
                if attempt > 0 {
                    back_off(attempt).await;
                }
                let now = self.now();
                let current = self
                    .store
                    .find_user(tenant_id, id, now)
                    .await
                    .map_err(store_err)?
                    .ok_or(DomainError::NotFound("user"))?;
                let mut user = current.clone();
                change(&mut user)?;
                user.version = current.version + 1;
                user.updated_at = now;
                let mut records = match extras.event {
                    Some(kind) => {
                        let mut records =
                            self.events(tenant_id, kind, || self.user_event(kind, &user, None, now)).await?;
                        records.push(Record::Activity(Activity::new(tenant_id, id, kind, extras.by, now)));
                        records
                    }
                    None => Vec::new(),
                };
                // The sessions the write ends, each with its records; the write itself checks that
                // no other one started meanwhile.
                let ending = match extras.revoke_sessions {
                    Some(r) => self.live_sessions_but(tenant_id, id, r.except, now).await?,
                    None => Vec::new(),
                };
                for &session in &ending {
                    records.extend(self.session_ended(tenant_id, id, session, extras.by, now).await?);
                }
                records.extend(extras.records.iter().cloned());
                let mut write = UserWrite::between(&current, &user, now);
                write.password_hash = extras.password_hash;
                write.revoke_sessions = extras.revoke_sessions;
                write.ending_sessions = &ending;
                write.totp_secret = extras.totp_secret;
                write.records = &records;
                write.use_token = extras.use_token;
                if let Some(a) = &mut write.addresses {
                    a.keep_before = extras.keep_replaced_email;
                }
                match self.store.update_user(write).await {
                    Ok(()) => return Ok(user),
                    Err(StoreError::Stale) => continue,
                    Err(e) => return Err(store_err(e)),
                }
            }
            Err(DomainError::PreconditionFailed)
        };
        let done = attempts.await;
        turn.clear();
        done
    }

    /// Schedules the caller's account for erasure after the tenant's grace period and signs it
    /// out everywhere. Signing in again before then cancels the deletion.
    pub async fn delete_me(&self, who: &Principal) -> Result<chrono::DateTime<chrono::Utc>> {
        if who.user.is_service_account {
            return Err(DomainError::Forbidden {
                reason: "service accounts cannot delete themselves".into(),
                fields: Vec::new(),
                notices: vec![policy::NOTICE_SERVICE_ACCOUNT.to_owned()],
            });
        }
        self.schedule_deletion(who.tenant_id(), who.user.id, By::User).await
    }

    /// Schedules a user's erasure after the tenant's grace period, for `by`, and ends every
    /// session; signing in meanwhile (or `cancel_deletion`) cancels it.
    pub async fn schedule_deletion(
        &self,
        tenant_id: TenantId,
        user: UserId,
        by: By,
    ) -> Result<chrono::DateTime<chrono::Utc>> {
        let tenant = self.tenant(tenant_id).await?;
        let due = self.now() + Duration::seconds(tenant.settings.deletion_grace_seconds);
        let extras = Extras {
            revoke_sessions: Some(RevokeSessions { except: None }),
            event: Some("user.deleted"),
            by,
            ..Extras::default()
        };
        let schedule = |u: &mut User| {
            u.deletion_due_at = Some(due);
            Ok(())
        };
        self.modify_user(tenant_id, user, schedule, extras).await?;
        tracing::info!(%user, due = %due, "account deletion scheduled");
        Ok(due)
    }

    /// Cancels a scheduled erasure, for `by`.
    pub async fn cancel_deletion(&self, tenant_id: TenantId, user: UserId, by: By) -> Result<()> {
        let cancel = |u: &mut User| {
            if u.deletion_due_at.is_none() {
                return Err(DomainError::field("deletion", "not_scheduled", "no deletion is scheduled"));
            }
            u.deletion_due_at = None;
            Ok(())
        };
        let extras = Extras { event: Some("user.deletion_cancelled"), by, ..Extras::default() };
        self.modify_user(tenant_id, user, cancel, extras).await.map(drop)
    }

    /// Changes the password after checking the current one; every other session ends, and
    /// their access tokens stop working with them.
    pub async fn change_password(&self, who: &Principal, current: String, new: String) -> Result<()> {
        if who.user.is_service_account {
            return Err(DomainError::Forbidden {
                reason: "service accounts have no password to change".into(),
                fields: Vec::new(),
                notices: vec![policy::NOTICE_SERVICE_ACCOUNT.to_owned()],
            });
        }
        let hash = self.store.find_password_hash(who.tenant_id(), who.user.id).await.map_err(store_err)?;
        if hash.is_none() {
            return Err(DomainError::field("current_password", "no_password", "this account has no password"));
        }
        let inputs: Vec<&str> =
            [who.user.primary_email.as_deref(), who.user.username.as_deref()].into_iter().flatten().collect();
        let strength = validate::password(&new, &inputs);
        if !self.hasher.verify(current, hash.clone()).await.map_err(DomainError::internal)? {
            return Err(DomainError::field("current_password", "incorrect", "the current password is not correct"));
        }
        if let Err((code, msg)) = strength {
            return Err(DomainError::Validation(vec![FieldError::new("new_password", code, msg)]));
        }
        if self.hasher.verify(new.clone(), hash).await.map_err(DomainError::internal)? {
            return Err(DomainError::field("new_password", "same_as_old", "must differ from the current password"));
        }
        let new_hash = self.hasher.hash(new).await.map_err(DomainError::internal)?;
        let extras = Extras {
            password_hash: Some(&new_hash),
            revoke_sessions: Some(RevokeSessions { except: Some(who.session_id) }),
            event: Some("user.password_changed"),
            ..Extras::default()
        };
        self.modify_user(
            who.tenant_id(),
            who.user.id,
            |u| {
                u.profile.password_expired = false;
                Ok(())
            },
            extras,
        )
        .await?;
        Ok(())
    }

    /// Turns TOTP on with `secret` (raw bytes), or off with `None`. From then on sign-in asks
    /// for a code. The secret is stored, never returned.
    pub async fn set_totp_secret(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
        secret: Option<&[u8]>,
        by: By,
    ) -> Result<User> {
        use base64::Engine;
        if let Some(s) = secret
            && s.len() < tessera_auth::totp::MIN_SECRET_BYTES
        {
            return Err(DomainError::field("totp_secret", "too_short", "the secret must be at least 10 bytes"));
        }
        let encoded = secret.map(|s| base64::engine::general_purpose::STANDARD.encode(s));
        let on = secret.is_some();
        let event = if on { "user.mfa_enabled" } else { "user.mfa_disabled" };
        let extras = Extras { totp_secret: Some(encoded.as_deref()), event: Some(event), by, ..Extras::default() };
        self.modify_user(
            tenant_id,
            user_id,
            |u| {
                u.totp_enabled = on;
                Ok(())
            },
            extras,
        )
        .await
    }

    /// A user's live sessions, for the tenant's console.
    pub async fn user_sessions(&self, tenant: TenantId, user: UserId) -> Result<Vec<Session>> {
        self.store.list_sessions(tenant, user, self.now()).await.map_err(store_err)
    }

    /// Ends one of a user's sessions (`Some`), or all of them, for `by`: how many ended.
    pub async fn revoke_user_sessions(
        &self,
        tenant: TenantId,
        user: UserId,
        session: Option<SessionId>,
        by: By,
    ) -> Result<usize> {
        let live = self.user_sessions(tenant, user).await?;
        let mut ended = 0;
        for s in live.iter().filter(|s| session.is_none_or(|id| s.id == id)) {
            if self.end_session(tenant, user, s.id, by).await? {
                ended += 1;
            }
        }
        if session.is_some() && ended == 0 {
            return Err(DomainError::NotFound("session"));
        }
        Ok(ended)
    }

    pub async fn my_sessions(&self, who: &Principal) -> Result<Vec<Session>> {
        self.store.list_sessions(who.tenant_id(), who.user.id, self.now()).await.map_err(store_err)
    }

    pub async fn revoke_my_session(&self, who: &Principal, id: SessionId) -> Result<()> {
        if self.end_session(who.tenant_id(), who.user.id, id, By::User).await? {
            Ok(())
        } else {
            Err(DomainError::NotFound("session"))
        }
    }

    pub async fn my_teams(&self, who: &Principal) -> Result<Vec<Team>> {
        self.store.list_user_teams(who.tenant_id(), who.user.id).await.map_err(store_err)
    }

    pub async fn export(&self, who: &Principal) -> Result<Export> {
        Ok(Export {
            user: who.user.clone(),
            sessions: self.my_sessions(who).await?,
            teams: self.my_teams(who).await?,
            passkeys: self.my_passkeys(who).await?,
        })
    }
}
