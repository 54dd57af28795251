//! Passkeys: a signed-in user registers, lists, renames and removes them; anyone signs in with
//! one naming no account; a user who gave their password may prove the second factor with
//! one. Each ceremony's state is kept in the database (any instance may take the answer),
//! used once, for five minutes, bound to its user when it has one.

use chrono::Duration;
use serde_json::{Value, json};
use tessera_auth::secret::{hash_secret, random_token};
use tessera_auth::webauthn::{Answer, PasskeyError, RelyingParty};
use tessera_core::passkey::{Ceremony, CeremonyPurpose, MAX_NAME_CHARS, Passkey, StoredPasskey};
use tessera_core::user::User;
use tessera_core::{DomainError, TenantId, validate};
use tessera_store::{StoreError, constraints};
use uuid::Uuid;

use crate::identity::{ACCOUNT_WINDOW_SECONDS, MFA_WINDOW_SECONDS, ensure_usable, ensure_verified, mfa_key};
use crate::{ClientInfo, Tokens};
use crate::{Principal, Result, Service, store_err};

/// A ceremony's options for the browser, and the id its answer must carry.
#[derive(Debug)]
pub struct PasskeyOptions {
    pub ceremony_id: String,
    /// `{"publicKey": …}`: what `navigator.credentials.create` or `.get` takes once its
    /// base64url fields are decoded.
    pub options: Value,
}

fn webauthn_error(e: PasskeyError) -> DomainError {
    match e {
        PasskeyError::Malformed(why) => DomainError::field("credential", "invalid", why),
        PasskeyError::CounterWentBackwards => {
            DomainError::Unauthenticated("the passkey's signature counter went backwards; it may have been copied")
        }
        PasskeyError::Refused(why) => {
            tracing::info!(reason = %why, "a passkey ceremony's answer was refused");
            DomainError::Unauthenticated("the passkey could not be verified")
        }
    }
}

fn unknown_ceremony() -> DomainError {
    DomainError::Unauthenticated("the passkey challenge is unknown, used or expired; ask for a new one")
}

/// A passkey's name, checked.
fn passkey_name(name: &str) -> Result<String> {
    validate::name(name.trim(), 1, MAX_NAME_CHARS)
        .map_err(|(c, m)| DomainError::field("name", c, m))
        .map(Option::unwrap_or_default)
}

impl Service {
    fn relying_party(&self) -> &RelyingParty {
        &self.config.relying_party
    }

    /// Keeps a ceremony's state and hands out the id that finds it.
    async fn keep_ceremony(
        &self,
        tenant: TenantId,
        user: Option<&User>,
        purpose: CeremonyPurpose,
        (options, state): (Value, String),
    ) -> Result<PasskeyOptions> {
        let ceremony_id = random_token("tsr_wa_", 24);
        let seconds = tessera_auth::webauthn::CEREMONY_SECONDS as i64;
        let ceremony = Ceremony {
            hash: hash_secret(&ceremony_id),
            tenant_id: tenant,
            user_id: user.map(|u| u.id),
            purpose,
            state,
            expires_at: self.now() + Duration::seconds(seconds),
        };
        self.store.insert_ceremony(&ceremony).await.map_err(store_err)?;
        Ok(PasskeyOptions { ceremony_id, options })
    }

    /// Uses up the ceremony `id` if it is for `purpose`.
    async fn take_ceremony(&self, id: &str, purpose: CeremonyPurpose) -> Result<Ceremony> {
        let taken = self.store.take_ceremony(&hash_secret(id), self.now()).await.map_err(store_err)?;
        taken.filter(|c| c.purpose == purpose).ok_or_else(unknown_ceremony)
    }

    /// Starts adding a passkey to the signed-in account.
    pub async fn begin_passkey_registration(&self, who: &Principal) -> Result<PasskeyOptions> {
        let user = &who.user;
        if user.is_anonymous {
            return Err(DomainError::forbidden("an anonymous user cannot add a passkey; sign up first"));
        }
        let tenant = self.tenant(user.tenant_id).await?;
        let existing = self.store.list_passkeys(user.tenant_id, user.id).await.map_err(store_err)?;
        let exclude: Vec<String> = existing.into_iter().map(|p| p.passkey.credential_id).collect();
        let name = user.primary_email.clone().or_else(|| user.username.clone()).unwrap_or_else(|| user.id.to_string());
        let display = user.profile.display_name.clone().unwrap_or_else(|| name.clone());
        let started = self
            .relying_party()
            .start_registration(&tenant.name, user.id.0.as_bytes(), &name, &display, &exclude)
            .map_err(webauthn_error)?;
        self.keep_ceremony(user.tenant_id, Some(user), CeremonyPurpose::Register, started).await
    }

    /// Finishes adding a passkey: the browser's answer to the registration `ceremony_id`.
    pub async fn finish_passkey_registration(
        &self,
        who: &Principal,
        ceremony_id: &str,
        name: Option<&str>,
        credential: Value,
    ) -> Result<Passkey> {
        let now = self.now();
        let name = match name.filter(|n| !n.trim().is_empty()) {
            Some(n) => passkey_name(n)?,
            None => format!("Passkey added {}", now.format("%Y-%m-%d")),
        };
        let ceremony = self.take_ceremony(ceremony_id, CeremonyPurpose::Register).await?;
        if ceremony.user_id != Some(who.user.id) {
            return Err(unknown_ceremony());
        }
        let made = self.relying_party().finish_registration(credential, &ceremony.state).map_err(webauthn_error)?;
        let passkey = Passkey {
            id: Uuid::now_v7(),
            tenant_id: who.tenant_id(),
            user_id: who.user.id,
            credential_id: made.id,
            name,
            sign_count: 0,
            backup_eligible: made.backup_eligible,
            backup_state: made.backup_state,
            created_at: now,
            last_used_at: None,
        };
        let records = self.passkey_records("user.passkey_added", &who.user, &passkey).await?;
        let stored = StoredPasskey { passkey, credential: made.stored };
        match self.store.insert_passkey(&stored, &records).await {
            Err(StoreError::Conflict { constraint: constraints::PASSKEY }) => {
                Err(DomainError::field("credential", "already_registered", "this passkey is registered already"))
            }
            other => other.map_err(store_err).map(|()| stored.passkey),
        }
    }

    /// The signed-in user's passkeys, oldest first.
    pub async fn my_passkeys(&self, who: &Principal) -> Result<Vec<Passkey>> {
        let all = self.store.list_passkeys(who.tenant_id(), who.user.id).await.map_err(store_err)?;
        Ok(all.into_iter().map(|p| p.passkey).collect())
    }

    pub async fn rename_passkey(&self, who: &Principal, id: Uuid, name: &str) -> Result<Passkey> {
        let name = passkey_name(name)?;
        if !self.store.rename_passkey(who.tenant_id(), who.user.id, id, &name).await.map_err(store_err)? {
            return Err(DomainError::NotFound("passkey"));
        }
        self.my_passkeys(who).await?.into_iter().find(|p| p.id == id).ok_or(DomainError::NotFound("passkey"))
    }

    /// Removes one of the signed-in user's passkeys, unless it is their only way to sign in.
    pub async fn remove_passkey(&self, who: &Principal, id: Uuid) -> Result<()> {
        let mine = self.my_passkeys(who).await?;
        let passkey = mine.iter().find(|p| p.id == id).ok_or(DomainError::NotFound("passkey"))?;
        if mine.len() == 1 && !who.user.has_password && self.my_providers(who).await?.is_empty() {
            return Err(DomainError::forbidden("this passkey is your only way to sign in, so it stays"));
        }
        let records = self.passkey_records("user.passkey_removed", &who.user, passkey).await?;
        if self.store.delete_passkey(who.tenant_id(), who.user.id, id, &records).await.map_err(store_err)? {
            Ok(())
        } else {
            Err(DomainError::NotFound("passkey"))
        }
    }

    /// The options of a passkey sign-in: with no `mfa_token`, for any discoverable passkey of
    /// the tenant (no allow-list); with one, the second step after a password, for that user's
    /// passkeys.
    pub async fn passkey_sign_in_options(&self, tenant: TenantId, mfa_token: Option<&str>) -> Result<PasskeyOptions> {
        let tenant = self.tenant(tenant).await?;
        let Some(mfa_token) = mfa_token else {
            let started = self.relying_party().start_assertion(&[]).map_err(webauthn_error)?;
            return self.keep_ceremony(tenant.id, None, CeremonyPurpose::SignIn, started).await;
        };
        let claims = self.mfa_challenge(mfa_token)?;
        if claims.tid != tenant.id {
            return Err(DomainError::TenantMismatch);
        }
        let user = self
            .store
            .find_user(claims.tid, claims.sub, self.now())
            .await
            .map_err(store_err)?
            .filter(|_| claims.first.is_none())
            .ok_or(DomainError::Unauthenticated("invalid sign-in challenge"))?;
        let passkeys = self.store.list_passkeys(user.tenant_id, user.id).await.map_err(store_err)?;
        if passkeys.is_empty() {
            return Err(DomainError::field("mfa_token", "no_passkey", "this account has no passkey"));
        }
        let allowed: Vec<String> = passkeys.into_iter().map(|p| p.credential).collect();
        let started = self.relying_party().start_assertion(&allowed).map_err(webauthn_error)?;
        self.keep_ceremony(tenant.id, Some(&user), CeremonyPurpose::SecondFactor, started).await
    }

    /// Signs in with a passkey: the answer to the ceremony `ceremony_id`. A passkey that
    /// verified the user is both factors; one that did not, for a user with a second factor,
    /// is answered `mfa_required`. After a password, any of the user's passkeys is the second
    /// factor.
    pub async fn passkey_sign_in(
        &self,
        ceremony_id: &str,
        tenant_header: Option<TenantId>,
        credential: Value,
        client: &ClientInfo,
    ) -> Result<Tokens> {
        let now = self.now();
        let answer = Answer::parse(credential).map_err(webauthn_error)?;
        let taken = self.store.take_ceremony(&hash_secret(ceremony_id), now).await.map_err(store_err)?;
        let ceremony = taken.filter(|c| c.purpose != CeremonyPurpose::Register).ok_or_else(unknown_ceremony)?;
        if tenant_header.is_some_and(|t| t != ceremony.tenant_id) {
            return Err(DomainError::TenantMismatch);
        }
        let tenant = self.tenant(ceremony.tenant_id).await?;
        self.limit_address(tenant.id, client, tenant.settings.attempts_per_address_per_minute, now).await?;
        let refused = || DomainError::Unauthenticated("invalid credentials");
        let stored = self.store.find_passkey(tenant.id, &answer.credential_id()).await.map_err(store_err)?;
        let Some(mut stored) = stored else { return Err(refused()) };
        let owner = stored.passkey.user_id;
        // The user the ceremony was for (after a password), or the one the authenticator names.
        let claimed = match ceremony.user_id {
            Some(user) => Some(user) == Some(owner) && answer.user_handle().is_none_or(|h| h == owner.0.as_bytes()),
            None => answer.user_handle() == Some(owner.0.as_bytes()),
        };
        if !claimed {
            return Err(refused());
        }
        let second = ceremony.purpose == CeremonyPurpose::SecondFactor;
        let (key, limit, window) = if second {
            (mfa_key(tenant.id, owner), tenant.settings.mfa_failures_per_user, MFA_WINDOW_SECONDS)
        } else {
            let key = format!("signin:{}:passkey:{owner}", tenant.id);
            (key, tenant.settings.sign_in_failures_per_account, ACCOUNT_WINDOW_SECONDS)
        };
        self.limits.check(&key, limit, window, now).await?;
        let previous = stored.passkey.sign_count;
        let assertion = match self.relying_party().finish_assertion(&answer, &ceremony.state, &stored.credential) {
            Ok(a) => a,
            Err(e) => {
                self.limits.record(&key, window, now).await;
                let reason = match e {
                    PasskeyError::CounterWentBackwards => {
                        tracing::warn!(user = %owner, passkey = %stored.passkey.id, "a passkey's signature counter went backwards");
                        "counter_went_backwards"
                    }
                    _ => "not_verified",
                };
                let details = json!({"method": "passkey", "passkey_id": stored.passkey.id, "reason": reason});
                self.sign_in_refused(tenant.id, owner, details, client).await;
                return Err(webauthn_error(e));
            }
        };
        (stored.passkey.sign_count, stored.passkey.backup_state) = (assertion.counter, assertion.backup_state);
        stored.credential = assertion.stored;
        if !self.store.record_passkey_use(&stored, previous, now).await.map_err(store_err)? {
            // Another assertion of this passkey moved its counter meanwhile.
            return Err(webauthn_error(PasskeyError::CounterWentBackwards));
        }
        let user = self.store.find_user(tenant.id, owner, now).await.map_err(store_err)?.ok_or_else(refused)?;
        ensure_usable(&user, now)?;
        ensure_verified(&tenant, &user)?;
        if second {
            return self.finish_sign_in(&tenant, user, client, "password+passkey").await;
        }
        if user.totp_enabled && !assertion.user_verified {
            return Err(self.second_factor_required(&user, Some("passkey")).await?);
        }
        self.finish_sign_in(&tenant, user, client, "passkey").await
    }

    /// `user.passkey_added` or `user.passkey_removed`, and its entry in the user's trail.
    async fn passkey_records(
        &self,
        kind: &'static str,
        user: &User,
        p: &Passkey,
    ) -> Result<Vec<tessera_core::events::Record>> {
        let passkey = json!({"id": p.id, "name": p.name, "created_at": p.created_at});
        self.user_records(kind, user, "passkey", passkey, self.now()).await
    }
}
