//! Who the caller is: sign-up, sign-in, refresh, sign-out, anonymous users, and turning a
//! presented credential (access token, server key, root key) into a principal.

use chrono::Duration;
use tessera_auth::secret::{hash_secret, random_token};
use tessera_auth::token::{MFA_PURPOSE, MfaClaims};
use tessera_auth::{AccessClaims, TokenError};
use tessera_core::events::{By, Record};
use tessera_core::keys::SigningAlgorithm;
use tessera_core::tenant::Tenant;
use tessera_core::user::{Session, User};
use tessera_core::{DomainError, SessionId, TenantId, UserId, validate};
use tessera_store::{Login, NewUser, Rotation, UserWrite};

use crate::mail::Letter;
use crate::{Principal, Result, Service, store_err};

/// What the client said about itself, kept on the session for the user's session list.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SignUp {
    pub email: String,
    pub password: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
}

/// What a sign-up did.
#[derive(Debug)]
pub enum SignedUp {
    /// The account exists and is signed in.
    In(Tokens),
    /// The tenant requires verified addresses: a mail went to the address, and no session
    /// was started. Whether the address was new is not told.
    VerificationSent,
}

/// How many "someone tried to sign up with your address" mails one address gets an hour.
const SIGN_UP_NOTICES_PER_HOUR: u32 = 3;

/// The answer to every successful sign-in: the user and a fresh token pair.
#[derive(Debug)]
pub struct Tokens {
    pub user: User,
    pub access_token: String,
    /// Empty when none is issued: client credentials (RFC 6749 §4.4.3).
    pub refresh_token: String,
    pub expires_in: i64,
    pub session_id: SessionId,
    /// What `access_token` says, for a surface that signs the same claims with more beside them.
    pub claims: AccessClaims,
}

/// What an active token is (RFC 7662).
#[derive(Debug)]
pub enum Introspection {
    Access(AccessClaims, User),
    Refresh(Session, User),
}

/// Whether the account may be used now: not suspended, not disabled, not deactivated. Checked
/// on every authenticated call, at sign-in and at refresh.
pub(crate) fn ensure_usable(user: &User, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
    if let Some(s) = user.active_suspensions(now).next() {
        return Err(DomainError::Suspended { reason: s.reason.clone(), ends_at: s.ends_at });
    }
    if user.status == tessera_core::user::UserStatus::Disabled || !user.profile.is_active {
        return Err(DomainError::forbidden("the account is disabled"));
    }
    Ok(())
}

/// Whether the tenant lets this account sign in before its address is verified. Asked only
/// after the account's credential checked out, so that only its holder learns the answer.
pub(crate) fn ensure_verified(tenant: &Tenant, user: &User) -> Result<()> {
    if tenant.settings.require_verified_email && user.primary_email.is_some() && !user.primary_email_verified {
        return Err(DomainError::EmailUnverified);
    }
    Ok(())
}

/// How long the challenge between password and code lives.
const MFA_CHALLENGE_SECONDS: i64 = 300;
/// The window over which failed sign-ins of one account (or client id) are counted.
pub(crate) const ACCOUNT_WINDOW_SECONDS: i64 = 900;
/// The window over which failed second-factor codes of one user are counted.
pub(crate) const MFA_WINDOW_SECONDS: i64 = 300;

/// The limiter's key for one user's failed second factors.
pub(crate) fn mfa_key(tenant: TenantId, user: UserId) -> String {
    format!("mfa:{tenant}:{user}")
}

pub(crate) fn token_error(e: TokenError) -> DomainError {
    match e {
        TokenError::Expired => DomainError::TokenExpired,
        TokenError::NoSigningKey => DomainError::Internal("no signing key".into()),
        _ => DomainError::Unauthenticated("invalid access token"),
    }
}

impl Service {
    /// Establishes the signed-in user from an access token: signature (cached), expiry, tenant,
    /// then one indexed read that returns the user only while the session is live.
    pub async fn authenticate(&self, token: &str, tenant_header: Option<TenantId>) -> Result<Principal> {
        let now = self.now();
        let claims = self.verify_access(token, now).await.map_err(token_error)?;
        if tenant_header.is_some_and(|t| t != claims.tid) {
            return Err(DomainError::TenantMismatch);
        }
        let user = self
            .store
            .find_user_for_session(claims.tid, claims.sub, claims.sid, now)
            .await
            .map_err(store_err)?
            .ok_or(DomainError::Unauthenticated("the session has ended"))?;
        ensure_usable(&user, now)?;
        Ok(Principal { user, session_id: claims.sid })
    }

    /// The user of a hosted-pages browser session (its cookie holds the session's refresh
    /// token, which the pages never rotate), and when they signed in.
    pub async fn authenticate_browser(
        &self,
        tenant: TenantId,
        cookie: &str,
    ) -> Result<(Principal, chrono::DateTime<chrono::Utc>)> {
        let now = self.now();
        let session = self
            .store
            .find_session_by_refresh(&hash_secret(cookie), now)
            .await
            .map_err(store_err)?
            .filter(|s| s.tenant_id == tenant && s.client_id.is_none())
            .ok_or(DomainError::Unauthenticated("not signed in"))?;
        let user = self
            .store
            .find_user_for_session(tenant, session.user_id, session.id, now)
            .await
            .map_err(store_err)?
            .ok_or(DomainError::Unauthenticated("the session has ended"))?;
        ensure_usable(&user, now)?;
        Ok((Principal { user, session_id: session.id }, session.created_at))
    }

    /// The tenant a server key belongs to.
    pub async fn authenticate_server(&self, key: &str) -> Result<Tenant> {
        self.store
            .find_tenant_by_server_key(&hash_secret(key))
            .await
            .map_err(store_err)?
            .ok_or(DomainError::Unauthenticated("invalid server key"))
    }

    /// Starts session `id` for `user`; `oauth_client` is the client it is granted to, if any.
    pub(crate) async fn start_session(
        &self,
        tenant: &Tenant,
        user: User,
        client: &ClientInfo,
        id: SessionId,
        oauth_client: Option<&str>,
        method: &str,
    ) -> Result<Tokens> {
        let now = self.now();
        let refresh = random_token("tsr_rt_", 32);
        let session = Session {
            id,
            tenant_id: tenant.id,
            user_id: user.id,
            created_at: now,
            last_refreshed_at: now,
            expires_at: now + Duration::seconds(tenant.settings.refresh_token_ttl_seconds),
            revoked_at: None,
            user_agent: client.user_agent.as_ref().map(|s| s.chars().take(512).collect()),
            ip_address: client.ip_address.clone(),
            client_id: oauth_client.map(str::to_owned),
        };
        let records = self.session_started(&session, method, now).await?;
        self.store.insert_session(&session, &hash_secret(&refresh), &records).await.map_err(store_err)?;
        let mut user = user;
        user.active_sessions += 1;
        self.tokens_for(tenant, user, session.id, refresh, session.client_id).await
    }

    /// An access token for session `sid`, signed with the tenant's algorithm.
    pub(crate) async fn tokens_for(
        &self,
        tenant: &Tenant,
        user: User,
        sid: SessionId,
        refresh_token: String,
        client_id: Option<String>,
    ) -> Result<Tokens> {
        let now = self.now().timestamp();
        let ttl = tenant.settings.access_token_ttl_seconds;
        let claims = AccessClaims {
            iss: self.tokens.issuer(tenant.id),
            sub: user.id,
            tid: tenant.id,
            sid,
            aud: self.tokens.audience(tenant.id),
            iat: now,
            exp: now + ttl,
            nbf: now,
            jti: random_token("", 12),
            client_id,
            scope: None,
        };
        let access_token = self.sign(tenant, |alg| self.tokens.issue(&claims, alg)).await?;
        Ok(Tokens { user, access_token, refresh_token, expires_in: ttl, session_id: sid, claims })
    }

    /// The access token of `tokens` signed again with `extra` claims beside Tessera's own, for a
    /// surface whose clients read the token themselves.
    pub async fn access_token_with<E: serde::Serialize>(&self, tokens: &Tokens, extra: &E) -> Result<String> {
        let tenant = self.tenant(tokens.claims.tid).await?;
        self.sign(&tenant, |alg| self.tokens.issue_with(&tokens.claims, extra, alg)).await
    }

    /// A new access token for the session of a refresh token, leaving the refresh token as it
    /// is: for a client that keeps one refresh token for the whole session and never rotates
    /// it. The token stays single-session; revoking the session still ends it at once.
    pub async fn refresh_access_token(&self, tenant_id: TenantId, refresh_token: &str) -> Result<Tokens> {
        let now = self.now();
        let invalid = || DomainError::Unauthenticated("invalid refresh token");
        let session = self
            .store
            .find_session_by_unused_refresh(&hash_secret(refresh_token), now)
            .await
            .map_err(store_err)?
            // A token issued to an OAuth client is refreshed only by that client, at the token endpoint.
            .filter(|s| s.tenant_id == tenant_id && s.client_id.is_none())
            .ok_or_else(invalid)?;
        let tenant = self.tenant(tenant_id).await?;
        let user =
            self.store.find_user(tenant_id, session.user_id, now).await.map_err(store_err)?.ok_or_else(invalid)?;
        ensure_usable(&user, now)?;
        self.tokens_for(&tenant, user, session.id, refresh_token.to_owned(), session.client_id).await
    }

    /// Signs with the tenant's algorithm (`issue` given it). A tenant whose algorithm has no
    /// key on this instance yet (another instance made it moments ago) gets it here.
    pub(crate) async fn sign(
        &self,
        tenant: &Tenant,
        issue: impl Fn(SigningAlgorithm) -> std::result::Result<String, TokenError>,
    ) -> Result<String> {
        let alg = tenant.settings.signing_algorithm;
        match issue(alg) {
            Err(TokenError::NoSigningKey) => {
                self.ensure_signing_key(alg).await?;
                issue(alg).map_err(token_error)
            }
            other => other.map_err(token_error),
        }
    }

    /// Creates a password account and signs it in. With `upgrade`, an anonymous user becomes
    /// this account in place, keeping its id and data.
    ///
    /// When the tenant requires verified addresses, the answer is `VerificationSent` whether
    /// or not the address was taken, after the same work (the password is hashed either way):
    /// a new account gets its verification mail and no session; the owner of a taken address
    /// is told that someone tried, with links to sign in and to reset the password.
    pub async fn sign_up(
        &self,
        tenant_id: TenantId,
        req: SignUp,
        upgrade: Option<Principal>,
        client: &ClientInfo,
    ) -> Result<SignedUp> {
        let tenant = self.tenant(tenant_id).await?;
        let now = self.now();
        let mut errors = Vec::new();
        let email = validate::email(&req.email)
            .map_err(|(c, m)| errors.push(tessera_core::FieldError::new("email", c, m)))
            .ok();
        let username = req
            .username
            .as_deref()
            .map(|u| validate::username(u.trim()))
            .transpose()
            .map_err(|(c, m)| errors.push(tessera_core::FieldError::new("username", c, m)))
            .ok()
            .flatten();
        let display_name = req
            .display_name
            .as_deref()
            .map(|d| validate::name(d, 0, 256))
            .transpose()
            .map_err(|(c, m)| errors.push(tessera_core::FieldError::new("display_name", c, m)))
            .ok()
            .flatten()
            .flatten();
        let inputs: Vec<&str> = [Some(req.email.as_str()), req.username.as_deref()].into_iter().flatten().collect();
        if let Err((c, m)) = validate::password(&req.password, &inputs) {
            errors.push(tessera_core::FieldError::new("password", c, m));
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let hash = self.hasher.hash(req.password).await.map_err(DomainError::internal)?;
        let quiet = tenant.settings.require_verified_email;

        if let Some(anon) = upgrade {
            if !anon.user.is_anonymous || anon.tenant_id() != tenant_id {
                return Err(DomainError::forbidden("only an anonymous user can be upgraded by signing up"));
            }
            let mut user = anon.user.clone();
            user.is_anonymous = false;
            user.primary_email = email;
            user.username = username;
            user.profile.display_name = display_name.or(user.profile.display_name);
            user.version += 1;
            user.updated_at = now;
            let changed = ["is_anonymous", "primary_email", "username", "display_name"];
            let mut records = self.user_updated(&user, &changed, By::User, now).await?;
            records.extend(self.signed_up_mail(&tenant, &user, now));
            let mut write = UserWrite::between(&anon.user, &user, now);
            write.password_hash = Some(&hash);
            write.records = &records;
            let written = self.store.update_user(write).await.map_err(store_err);
            if quiet {
                return self.quietly(&tenant, written, user.primary_email.as_deref()).await;
            }
            written?;
            user.has_password = true;
            return self
                .start_session(&tenant, user, client, SessionId::new(), None, "password")
                .await
                .map(SignedUp::In);
        }

        let mut user = User::new(tenant_id, now);
        user.primary_email = email;
        user.username = username;
        user.profile.display_name = display_name;
        user.has_password = true;
        let empty = serde_json::Map::new();
        let mut records = self.user_created(&user, By::User, Some(client)).await?;
        records.extend(self.signed_up_mail(&tenant, &user, now));
        let written = self
            .store
            .insert_user(NewUser {
                user: &user,
                password_hash: Some(&hash),
                secure_metadata: &empty,
                new_image: None,
                records: &records,
            })
            .await
            .map_err(store_err);
        if quiet {
            return self.quietly(&tenant, written, user.primary_email.as_deref()).await;
        }
        written?;
        self.start_session(&tenant, user, client, SessionId::new(), None, "password").await.map(SignedUp::In)
    }

    /// The answer of a sign-up that must not tell whether the address was taken: the account
    /// was made (its verification mail is on its way), or the address's owner is told of the
    /// attempt (at most a few times an hour). Any other failure is still an error.
    async fn quietly(&self, tenant: &Tenant, written: Result<()>, email: Option<&str>) -> Result<SignedUp> {
        match (written, email) {
            (Ok(()), _) => Ok(SignedUp::VerificationSent),
            (Err(DomainError::Conflict { field: "primary_email" }), Some(email)) => {
                let now = self.now();
                let key = format!("signup-notice:{}:{email}", tenant.id);
                if self.limits.hit(&key, SIGN_UP_NOTICES_PER_HOUR, 3600, now).await.is_ok() {
                    let notice = Record::Mail(self.letter(tenant, email, Letter::SignUpAttempted, None, now));
                    self.store.insert_records(&[notice]).await.map_err(store_err)?;
                }
                Ok(SignedUp::VerificationSent)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// The verification mail of a new account's address.
    fn signed_up_mail(&self, tenant: &Tenant, user: &User, now: chrono::DateTime<chrono::Utc>) -> Option<Record> {
        let email = user.primary_email.as_deref().filter(|_| !user.primary_email_verified)?;
        Some(self.verification_mail(tenant, user.id, email, now))
    }

    /// Password sign-in. Unknown account and wrong password get the same error after the same
    /// work. Signing in during a deletion grace period cancels the deletion.
    pub async fn sign_in(
        &self,
        tenant_id: TenantId,
        login: Login<'_>,
        password: String,
        client: &ClientInfo,
    ) -> Result<Tokens> {
        let tenant = self.tenant(tenant_id).await?;
        let now = self.now();
        let limits = &tenant.settings;
        self.limit_address(tenant_id, client, limits.attempts_per_address_per_minute, now).await?;
        let account_key = match login {
            Login::Email(e) => format!("signin:{tenant_id}:e:{}", e.to_lowercase()),
            Login::Username(u) => format!("signin:{tenant_id}:u:{}", u.to_lowercase()),
        };
        self.limits.check(&account_key, limits.sign_in_failures_per_account, ACCOUNT_WINDOW_SECONDS, now).await?;
        let found = self.store.find_user_credentials(tenant_id, login, now).await.map_err(store_err)?;
        let (user, hash) = match found {
            Some(c) => (Some(c.user), c.password_hash),
            None => (None, None),
        };
        let ok = self.hasher.verify(password, hash).await.map_err(DomainError::internal)?;
        let user = match user {
            Some(user) if ok => user,
            found => {
                self.limits.record(&account_key, ACCOUNT_WINDOW_SECONDS, now).await;
                if let Some(user) = found {
                    self.sign_in_failed(tenant_id, user.id, "password", client).await;
                }
                return Err(DomainError::Unauthenticated("invalid credentials"));
            }
        };
        ensure_usable(&user, now)?;
        // After the password, so that only its holder learns the address is unverified.
        ensure_verified(&tenant, &user)?;
        if user.totp_enabled {
            return Err(self.second_factor_required(&user, None).await?);
        }
        self.finish_sign_in(&tenant, user, client, "password").await
    }

    /// The answer to a first step that needs a second: a short-lived challenge and the
    /// methods that may answer it. `first` is the first step when it was not the password
    /// (then a passkey cannot be the second).
    pub(crate) async fn second_factor_required(&self, user: &User, first: Option<&str>) -> Result<DomainError> {
        let claims = MfaClaims {
            iss: self.tokens.issuer(user.tenant_id),
            sub: user.id,
            tid: user.tenant_id,
            purpose: MFA_PURPOSE.to_owned(),
            exp: self.now().timestamp() + MFA_CHALLENGE_SECONDS,
            jti: random_token("", 12),
            first: first.map(str::to_owned),
        };
        let mfa_token = self.tokens.issue_mfa(&claims).map_err(token_error)?;
        let mut methods = vec!["totp", "recovery_code"];
        if first.is_none() && !self.store.list_passkeys(user.tenant_id, user.id).await.map_err(store_err)?.is_empty() {
            methods.push("passkey");
        }
        Ok(DomainError::MfaRequired { mfa_token, methods })
    }

    /// The challenge of an `mfa_required` answer, checked.
    pub(crate) fn mfa_challenge(&self, mfa_token: &str) -> Result<MfaClaims> {
        self.tokens.verify_mfa(mfa_token, self.now()).map_err(|e| match e {
            TokenError::Expired => DomainError::Unauthenticated("the sign-in challenge has expired; sign in again"),
            _ => DomainError::Unauthenticated("invalid sign-in challenge"),
        })
    }

    /// Completes a sign-in that was answered `mfa_required`: the challenge and a TOTP code. A
    /// code is accepted once; a wrong or reused one changes nothing.
    pub async fn complete_mfa(&self, mfa_token: &str, code: &str, client: &ClientInfo) -> Result<Tokens> {
        use base64::Engine;
        let now = self.now();
        let claims = self.mfa_challenge(mfa_token)?;
        let first = claims.first.as_deref().unwrap_or("password");
        let tenant = self.tenant(claims.tid).await?;
        self.limit_address(claims.tid, client, tenant.settings.attempts_per_address_per_minute, now).await?;
        let mfa_key = mfa_key(claims.tid, claims.sub);
        self.limits.check(&mfa_key, tenant.settings.mfa_failures_per_user, MFA_WINDOW_SECONDS, now).await?;
        let user = self.store.find_user(claims.tid, claims.sub, now).await.map_err(store_err)?;
        let totp = self.store.find_totp(claims.tid, claims.sub).await.map_err(store_err)?;
        let (Some(user), Some((secret, _))) = (user, totp) else {
            return Err(DomainError::Unauthenticated("invalid sign-in challenge"));
        };
        ensure_usable(&user, now)?;
        let secret = base64::engine::general_purpose::STANDARD.decode(secret).map_err(DomainError::internal)?;
        if code.trim().len() != tessera_auth::totp::DIGITS as usize {
            // Not a TOTP code: a recovery code, used up by this sign-in.
            let hash = hash_secret(&crate::mfa::normalize_recovery_code(code));
            if !self.store.use_recovery_code(claims.sub, &hash, now).await.map_err(store_err)? {
                self.limits.record(&mfa_key, MFA_WINDOW_SECONDS, now).await;
                self.sign_in_failed(claims.tid, claims.sub, "recovery_code", client).await;
                return Err(DomainError::field("code", "invalid_code", "the code is not valid"));
            }
            return self.finish_sign_in(&tenant, user, client, &format!("{first}+recovery_code")).await;
        }
        let Some(step) = tessera_auth::totp::matching_step(&secret, code, now.timestamp()) else {
            self.limits.record(&mfa_key, MFA_WINDOW_SECONDS, now).await;
            self.sign_in_failed(claims.tid, claims.sub, "totp", client).await;
            return Err(DomainError::field("code", "invalid_code", "the code is not valid"));
        };
        if !self.store.accept_totp_step(claims.tid, claims.sub, step).await.map_err(store_err)? {
            self.limits.record(&mfa_key, MFA_WINDOW_SECONDS, now).await;
            return Err(DomainError::field("code", "code_reused", "this code was already used; wait for the next one"));
        }
        self.finish_sign_in(&tenant, user, client, &format!("{first}+totp")).await
    }

    /// The end of every successful sign-in: a pending deletion is cancelled, a session starts.
    /// `method` is how the person proved who they are, as `session.created` says it.
    pub(crate) async fn finish_sign_in(
        &self,
        tenant: &Tenant,
        mut user: User,
        client: &ClientInfo,
        method: &str,
    ) -> Result<Tokens> {
        if user.deletion_due_at.is_some() {
            let cancel = |u: &mut User| {
                u.deletion_due_at = None;
                Ok(())
            };
            let extras = crate::me::Extras { event: Some("user.deletion_cancelled"), ..crate::me::Extras::default() };
            user = self.modify_user(tenant.id, user.id, cancel, extras).await?;
            tracing::info!(user = %user.id, "sign-in cancelled the scheduled account deletion");
        }
        self.start_session(tenant, user, client, SessionId::new(), None, method).await
    }

    /// Every attempt from one client address counts against the tenant's per-minute limit.
    pub(crate) async fn limit_address(
        &self,
        tenant: TenantId,
        client: &ClientInfo,
        limit: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        match &client.ip_address {
            Some(ip) => self.limits.hit(&format!("addr:{tenant}:{ip}"), limit, 60, now).await,
            None => Ok(()),
        }
    }

    /// Creates an anonymous user and signs it in.
    pub async fn sign_in_anonymously(&self, tenant_id: TenantId, client: &ClientInfo) -> Result<Tokens> {
        let tenant = self.tenant(tenant_id).await?;
        let now = self.now();
        let mut user = User::new(tenant_id, now);
        user.is_anonymous = true;
        let empty = serde_json::Map::new();
        let records = self.user_created(&user, By::User, Some(client)).await?;
        self.store
            .insert_user(NewUser {
                user: &user,
                password_hash: None,
                secure_metadata: &empty,
                new_image: None,
                records: &records,
            })
            .await
            .map_err(store_err)?;
        self.start_session(&tenant, user, client, SessionId::new(), None, "anonymous").await
    }

    /// Rotates a refresh token. A token used twice revokes its whole session. A token granted
    /// to an OAuth client is the client's: `client` must be that client (RFC 6749 §6).
    pub async fn refresh(
        &self,
        refresh_token: &str,
        tenant_header: Option<TenantId>,
        client: Option<&tessera_core::oauth::OAuthClient>,
    ) -> Result<Tokens> {
        let now = self.now();
        let old = hash_secret(refresh_token);
        // Checked before the token is used up, so a mismatch changes nothing.
        if let Some(s) = self.store.find_session_by_refresh(&old, now).await.map_err(store_err)? {
            if tenant_header.is_some_and(|t| t != s.tenant_id) {
                return Err(DomainError::TenantMismatch);
            }
            if let Some(owner) = &s.client_id
                && client.is_none_or(|c| &c.client_id != owner)
            {
                return Err(DomainError::Unauthenticated("the refresh token was issued to another client"));
            }
        }
        let new = random_token("tsr_rt_", 32);
        match self.store.rotate_refresh_token(&old, &hash_secret(&new), now).await.map_err(store_err)? {
            Rotation::Rotated(session) => {
                let tenant = self.tenant(session.tenant_id).await?;
                let user = self
                    .store
                    .find_user(session.tenant_id, session.user_id, now)
                    .await
                    .map_err(store_err)?
                    .ok_or(DomainError::Unauthenticated("the session has ended"))?;
                ensure_usable(&user, now)?;
                self.tokens_for(&tenant, user, session.id, new, session.client_id).await
            }
            Rotation::Reused => {
                tracing::warn!("a refresh token was used twice; its session is revoked");
                Err(DomainError::Unauthenticated("refresh token reused; the session has been revoked"))
            }
            Rotation::Invalid => Err(DomainError::Unauthenticated("invalid refresh token")),
        }
    }

    /// RFC 7009: ends the session a refresh or access token of this tenant belongs to. Unknown,
    /// expired or foreign tokens are ignored, as the RFC asks.
    pub async fn revoke_token(&self, tenant: TenantId, token: &str) -> Result<()> {
        let now = self.now();
        if let Some(s) = self.store.find_session_by_refresh(&hash_secret(token), now).await.map_err(store_err)?
            && s.tenant_id == tenant
        {
            self.end_session(s.tenant_id, s.user_id, s.id, By::User).await?;
        } else if let Ok(c) = self.verify_access(token, now).await
            && c.tid == tenant
        {
            self.end_session(c.tid, c.sub, c.sid, By::User).await?;
        }
        Ok(())
    }

    /// RFC 7662: whether a token of this tenant is active now, and what it is. An access token
    /// is active while its signature, expiry and session hold; a refresh token while it is
    /// unused and its session lives.
    pub async fn introspect(&self, tenant: TenantId, token: &str) -> Result<Option<Introspection>> {
        let now = self.now();
        if let Ok(claims) = self.verify_access(token, now).await {
            if claims.tid != tenant {
                return Ok(None);
            }
            let user =
                self.store.find_user_for_session(claims.tid, claims.sub, claims.sid, now).await.map_err(store_err)?;
            return Ok(user
                .filter(|u| ensure_usable(u, now).is_ok())
                .map(|u| Introspection::Access((*claims).clone(), u)));
        }
        let Some(session) =
            self.store.find_session_by_unused_refresh(&hash_secret(token), now).await.map_err(store_err)?
        else {
            return Ok(None);
        };
        if session.tenant_id != tenant {
            return Ok(None);
        }
        let user = self.store.find_user(tenant, session.user_id, now).await.map_err(store_err)?;
        Ok(user.filter(|u| ensure_usable(u, now).is_ok()).map(|u| Introspection::Refresh(session, u)))
    }

    /// Ends the caller's session: its refresh token and access tokens stop working at once.
    pub async fn sign_out(&self, who: &Principal) -> Result<()> {
        self.end_session(who.tenant_id(), who.user.id, who.session_id, By::User).await.map(drop)
    }

    /// Revokes a live session, with its records; false when it had already ended.
    pub(crate) async fn end_session(&self, tenant: TenantId, user: UserId, id: SessionId, by: By) -> Result<bool> {
        let now = self.now();
        let records = self.session_ended(tenant, user, id, by, now).await?;
        self.store.revoke_session(tenant, user, id, now, &records).await.map_err(store_err)
    }
}
