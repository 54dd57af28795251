//! A user's email addresses, their verification, password recovery and the undoing of a
//! change of primary address: every mailed token is random, stored hashed, used once and
//! expires, and every message is queued in the transaction of the change it tells of.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use tessera_auth::secret::{hash_secret, random_token};
use tessera_core::events::{Activity, By, Event, Record};
use tessera_core::mail::{EmailAddress, MailToken, TokenPurpose};
use tessera_core::policy::Actor;
use tessera_core::tenant::Tenant;
use tessera_core::user::{User, UserStatus};
use tessera_core::{DomainError, FieldError, TenantId, UserId, validate};
use tessera_store::{Login, RevokeSessions};
use uuid::Uuid;

use crate::identity::ClientInfo;
use crate::mail::Letter;
use crate::me::Extras;
use crate::{Principal, Result, Service, store_err};

/// Verification mails per address, and per user, per window.
const RESEND_PER_ADDRESS: u32 = 3;
const RESEND_PER_USER: u32 = 10;
const RESEND_WINDOW_SECONDS: i64 = 3600;
/// Reset requests per address, per account and per client address, per window.
const RESET_PER_ADDRESS: u32 = 3;
const RESET_PER_ACCOUNT: u32 = 5;
const RESET_PER_CLIENT: u32 = 20;
const RESET_WINDOW_SECONDS: i64 = 900;

/// What a verification link confirmed.
#[derive(Debug, Clone)]
pub struct Verified {
    pub email: String,
    pub user_id: UserId,
    pub tenant_id: TenantId,
}

fn invalid_token() -> DomainError {
    DomainError::field("token", "invalid_token", "the link is not valid: it was used already, or has expired")
}

/// A conflict on an address, named as the caller spelled the field.
fn taken_as(field: &'static str) -> impl Fn(DomainError) -> DomainError {
    move |e| match e {
        DomainError::Conflict { field: "primary_email" } => DomainError::Conflict { field },
        other => other,
    }
}

impl Service {
    /// A fresh token for `user` with `purpose` about `email`, valid for `ttl`: its secret half
    /// (for the link) and what is stored of it.
    fn mail_token(
        &self,
        tenant: TenantId,
        user: UserId,
        purpose: TokenPurpose,
        email: &str,
        ttl: chrono::Duration,
        now: DateTime<Utc>,
    ) -> (String, MailToken) {
        let prefix = match purpose {
            TokenPurpose::VerifyEmail => "tsr_ve_",
            TokenPurpose::ResetPassword => "tsr_pr_",
            TokenPurpose::RevertEmail => "tsr_re_",
        };
        let secret = random_token(prefix, 32);
        let stored = MailToken {
            hash: hash_secret(&secret),
            tenant_id: tenant,
            user_id: user,
            purpose,
            email: email.to_lowercase(),
            expires_at: now + ttl,
            created_at: now,
        };
        (secret, stored)
    }

    /// The message that asks to verify `email`, with its token.
    pub(crate) fn verification_mail(&self, tenant: &Tenant, user: UserId, email: &str, now: DateTime<Utc>) -> Record {
        let ttl = self.mail_config().verify_ttl;
        let token = self.mail_token(tenant.id, user, TokenPurpose::VerifyEmail, email, ttl, now);
        Record::Mail(self.letter(tenant, email, Letter::Verify { email }, Some(token), now))
    }

    /// The event `kind` about `user` and one of its addresses, with its entry in the trail.
    async fn email_records(
        &self,
        kind: &'static str,
        user: &User,
        address: &EmailAddress,
        by: By,
        now: DateTime<Utc>,
    ) -> Result<Vec<Record>> {
        let mut records = self
            .events(user.tenant_id, kind, || {
                let rendered = (self.config.render_user)(user, &self.config.public_url, now);
                let email = json!({"id": address.id, "email": address.email, "verified": address.verified,
                    "primary": user.primary_email.as_deref() == Some(address.email.as_str())});
                Event::new(user.tenant_id, kind, format!(r#"{{"user":{rendered},"email":{email}}}"#), now)
            })
            .await?;
        let entry = Activity::new(user.tenant_id, user.id, kind, by, now).with_details(json!({"email_id": address.id}));
        records.push(Record::Activity(entry));
        Ok(records)
    }

    /// What a change of the primary address from `before`'s to `after`'s writes beside it:
    /// `user.primary_email_changed`, a verification mail to the new address unless it is
    /// verified, and, for the user's own change, a message to the old address with a link that
    /// undoes it.
    pub(crate) async fn primary_email_changed(
        &self,
        tenant: &Tenant,
        before: &User,
        after: &User,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<Vec<Record>> {
        let kind = "user.primary_email_changed";
        let mut records = self.events(tenant.id, kind, || self.user_event(kind, after, None, now)).await?;
        records.push(Record::Activity(Activity::new(tenant.id, after.id, kind, actor.into(), now)));
        if let Some(new) = after.primary_email.as_deref().filter(|_| !after.primary_email_verified) {
            records.push(self.verification_mail(tenant, after.id, new, now));
        }
        if let (Actor::SelfService, Some(old)) = (actor, before.primary_email.as_deref()) {
            records.push(self.revert_mail(tenant, after.id, old, after.primary_email.as_deref(), now));
        }
        Ok(records)
    }

    /// The message to `old` that a change took the primary address away from it.
    fn revert_mail(&self, tenant: &Tenant, user: UserId, old: &str, new: Option<&str>, now: DateTime<Utc>) -> Record {
        let ttl = self.mail_config().revert_ttl;
        let token = self.mail_token(tenant.id, user, TokenPurpose::RevertEmail, old, ttl, now);
        Record::Mail(self.letter(tenant, old, Letter::PrimaryChanged { new }, Some(token), now))
    }

    /// The signed-in user's addresses, the primary among them.
    pub async fn my_emails(&self, who: &Principal) -> Result<Vec<EmailAddress>> {
        self.emails_of(who.tenant_id(), who.user.id).await
    }

    /// A user's addresses (the server's view).
    pub async fn emails_of(&self, tenant: TenantId, user: UserId) -> Result<Vec<EmailAddress>> {
        self.store.list_emails(tenant, user).await.map_err(store_err)
    }

    /// The signed-in user adds an address; a verification mail goes to it.
    pub async fn add_my_email(&self, who: &Principal, email: &str) -> Result<EmailAddress> {
        if who.user.is_anonymous {
            return Err(DomainError::forbidden("an anonymous user has no addresses; sign up first"));
        }
        let now = self.now();
        let tenant = self.tenant(who.tenant_id()).await?;
        self.limits.hit(&format!("verify-user:{}", who.user.id), RESEND_PER_USER, RESEND_WINDOW_SECONDS, now).await?;
        self.add_email(&tenant, &who.user, email, false, By::User, now).await
    }

    /// The tenant's server adds an address to a user, verified or not; no mail is sent.
    pub async fn add_user_email(
        &self,
        tenant: TenantId,
        user: UserId,
        email: &str,
        verified: bool,
    ) -> Result<EmailAddress> {
        let now = self.now();
        let tenant = self.tenant(tenant).await?;
        let user = self
            .store
            .find_user(tenant.id, user, now)
            .await
            .map_err(store_err)?
            .ok_or(DomainError::NotFound("user"))?;
        self.add_email(&tenant, &user, email, verified, By::Server, now).await
    }

    async fn add_email(
        &self,
        tenant: &Tenant,
        user: &User,
        email: &str,
        verified: bool,
        by: By,
        now: DateTime<Utc>,
    ) -> Result<EmailAddress> {
        let email =
            validate::email(email).map_err(|(c, m)| DomainError::Validation(vec![FieldError::new("email", c, m)]))?;
        let address = EmailAddress {
            id: Uuid::now_v7(),
            tenant_id: tenant.id,
            user_id: user.id,
            email,
            verified,
            created_at: now,
        };
        let mut records = self.email_records("user.email_added", user, &address, by, now).await?;
        if !verified {
            records.push(self.verification_mail(tenant, user.id, &address.email, now));
        }
        self.store.insert_email(&address, &records).await.map_err(store_err).map_err(taken_as("email"))?;
        Ok(address)
    }

    /// Sends the verification mail of one of the user's unverified addresses again, within
    /// the limits per address and per user.
    pub async fn resend_verification(&self, who: &Principal, id: Uuid) -> Result<()> {
        let now = self.now();
        let address = self.my_address(who, id).await?;
        if address.verified {
            return Err(DomainError::field("email", "already_verified", "the address is verified already"));
        }
        let tenant = self.tenant(who.tenant_id()).await?;
        self.send_verification(&tenant, who.user.id, &address.email, now).await
    }

    /// The verification mail of `email`, within the limits per address and per user.
    async fn send_verification(&self, tenant: &Tenant, user: UserId, email: &str, now: DateTime<Utc>) -> Result<()> {
        let per_address = format!("verify-address:{}:{}", tenant.id, email.to_lowercase());
        self.limits.check(&per_address, RESEND_PER_ADDRESS, RESEND_WINDOW_SECONDS, now).await?;
        self.limits.hit(&format!("verify-user:{user}"), RESEND_PER_USER, RESEND_WINDOW_SECONDS, now).await?;
        self.limits.record(&per_address, RESEND_WINDOW_SECONDS, now).await;
        let mail = self.verification_mail(tenant, user, email, now);
        self.store.insert_records(&[mail]).await.map_err(store_err)
    }

    /// From the hosted sign-in page, after `email_unverified`: the verification mail of the
    /// account whose primary address `email` is, if there is one and it is unverified. The
    /// answer is the same either way.
    pub async fn resend_verification_for(&self, tenant: TenantId, email: &str) -> Result<()> {
        let now = self.now();
        let tenant = self.tenant(tenant).await?;
        let found = self.store.find_user_credentials(tenant.id, Login::Email(email), now).await.map_err(store_err)?;
        if let Some(c) = found
            && let Some(primary) = c.user.primary_email.as_deref()
            && !c.user.primary_email_verified
        {
            match self.send_verification(&tenant, c.user.id, primary, now).await {
                Ok(()) | Err(DomainError::RateLimited { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn my_address(&self, who: &Principal, id: Uuid) -> Result<EmailAddress> {
        let all = self.my_emails(who).await?;
        all.into_iter().find(|a| a.id == id).ok_or(DomainError::NotFound("email address"))
    }

    /// Makes one of the user's verified addresses the primary; the old primary stays on the
    /// account, and is told, with a link that undoes the change.
    pub async fn make_primary(&self, who: &Principal, id: Uuid) -> Result<User> {
        let address = self.my_address(who, id).await?;
        if who.user.primary_email.as_deref() == Some(address.email.as_str()) {
            return Ok(who.user.clone());
        }
        if !address.verified {
            return Err(DomainError::field("email", "unverified", "only a verified address can be the primary"));
        }
        let now = self.now();
        let tenant = self.tenant(who.tenant_id()).await?;
        let mut after = who.user.clone();
        after.primary_email = Some(address.email.clone());
        after.primary_email_verified = true;
        // The event comes from `modify_user`; the message to the old address from here.
        let mail: Vec<Record> = who
            .user
            .primary_email
            .as_deref()
            .map(|old| self.revert_mail(&tenant, who.user.id, old, Some(&address.email), now))
            .into_iter()
            .collect();
        let extras = Extras {
            event: Some("user.primary_email_changed"),
            keep_replaced_email: true,
            records: &mail,
            ..Extras::default()
        };
        let email = address.email.clone();
        self.modify_user(
            who.tenant_id(),
            who.user.id,
            move |u| {
                u.primary_email = Some(email.clone());
                u.primary_email_verified = true;
                Ok(())
            },
            extras,
        )
        .await
        .map_err(taken_as("email"))
    }

    /// Removes one of the user's addresses other than the primary.
    pub async fn remove_my_email(&self, who: &Principal, id: Uuid) -> Result<()> {
        let address = self.my_address(who, id).await?;
        if who.user.primary_email.as_deref() == Some(address.email.as_str()) {
            return Err(DomainError::field(
                "email",
                "primary",
                "the primary address cannot be removed; make another one primary first",
            ));
        }
        let now = self.now();
        let records = self.email_records("user.email_removed", &who.user, &address, By::User, now).await?;
        if self.store.delete_email(who.tenant_id(), who.user.id, id, &records).await.map_err(store_err)? {
            Ok(())
        } else {
            Err(DomainError::NotFound("email address"))
        }
    }

    /// A token of `purpose` that can still be used, and its user.
    async fn usable_token(&self, secret: &str, purpose: TokenPurpose) -> Result<(MailToken, User)> {
        let now = self.now();
        let found = self.store.find_mail_token(&hash_secret(secret.trim()), now).await.map_err(store_err)?;
        let token = found.filter(|t| t.purpose == purpose).ok_or_else(invalid_token)?;
        let user = self.store.find_user(token.tenant_id, token.user_id, now).await.map_err(store_err)?;
        Ok((token, user.ok_or_else(invalid_token)?))
    }

    /// Confirms an address with the token mailed to it. A verified primary address makes a
    /// `pending` account `active`.
    pub async fn verify_email(&self, secret: &str) -> Result<Verified> {
        let (token, user) = self.usable_token(secret, TokenPurpose::VerifyEmail).await?;
        let now = self.now();
        let verified = Verified { email: token.email.clone(), user_id: user.id, tenant_id: user.tenant_id };
        if user.primary_email.as_deref() == Some(token.email.as_str()) {
            let email = token.email.clone();
            let extras =
                Extras { event: Some("user.email_verified"), use_token: Some(&token.hash), ..Extras::default() };
            let verify = move |u: &mut User| {
                if u.primary_email.as_deref() != Some(email.as_str()) {
                    return Err(invalid_token());
                }
                u.primary_email_verified = true;
                if u.status == UserStatus::Pending {
                    u.status = UserStatus::Active;
                }
                Ok(())
            };
            self.modify_user(token.tenant_id, token.user_id, verify, extras).await?;
            return Ok(verified);
        }
        let addresses = self.emails_of(user.tenant_id, user.id).await?;
        let address = addresses.into_iter().find(|a| a.email == token.email).ok_or_else(invalid_token)?;
        let address = EmailAddress { verified: true, ..address };
        let records = self.email_records("user.email_verified", &user, &address, By::User, now).await?;
        match self.store.verify_email(&token, now, &records).await {
            Ok(()) => Ok(verified),
            Err(tessera_store::StoreError::NotFound) => Err(invalid_token()),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Asks for a password-reset mail to `email`. The answer is the same whether an account
    /// has this address or not, and comes as soon: the look-up and the mail happen after it,
    /// off the request. Limited per address and per client address (which both callers
    /// share), and per account (silently).
    pub async fn request_password_reset(
        self: &Arc<Self>,
        tenant: TenantId,
        email: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let now = self.now();
        let email = email.trim().to_lowercase();
        if let Some(ip) = &client.ip_address {
            self.limits
                .hit(&format!("reset-client:{tenant}:{ip}"), RESET_PER_CLIENT, RESET_WINDOW_SECONDS, now)
                .await?;
        }
        self.limits
            .hit(&format!("reset-address:{tenant}:{email}"), RESET_PER_ADDRESS, RESET_WINDOW_SECONDS, now)
            .await?;
        let service = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = service.mail_password_reset(tenant, &email).await {
                tracing::warn!(%tenant, error = %e, "a password reset could not be queued");
            }
        });
        Ok(())
    }

    async fn mail_password_reset(&self, tenant: TenantId, email: &str) -> Result<()> {
        let now = self.now();
        let tenant = self.tenant(tenant).await?;
        let Some(found) =
            self.store.find_user_credentials(tenant.id, Login::Email(email), now).await.map_err(store_err)?
        else {
            return Ok(());
        };
        let user = found.user;
        if user.is_anonymous || user.is_service_account || crate::identity::ensure_usable(&user, now).is_err() {
            return Ok(());
        }
        if self
            .limits
            .hit(&format!("reset-account:{}", user.id), RESET_PER_ACCOUNT, RESET_WINDOW_SECONDS, now)
            .await
            .is_err()
        {
            return Ok(());
        }
        let Some(to) = user.primary_email.as_deref() else { return Ok(()) };
        let ttl = self.mail_config().reset_ttl;
        let token = self.mail_token(tenant.id, user.id, TokenPurpose::ResetPassword, to, ttl, now);
        let mail = Record::Mail(self.letter(&tenant, to, Letter::Reset, Some(token), now));
        self.store.insert_records(&[mail]).await.map_err(store_err)
    }

    /// Sets a new password with a reset token: the password rules of a change apply, every
    /// session ends (and its access tokens with it). A second factor is still asked for at
    /// the next sign-in.
    pub async fn confirm_password_reset(&self, secret: &str, new_password: String) -> Result<()> {
        let (token, user) = self.usable_token(secret, TokenPurpose::ResetPassword).await?;
        let inputs: Vec<&str> =
            [user.primary_email.as_deref(), user.username.as_deref()].into_iter().flatten().collect();
        if let Err((code, msg)) = validate::password(&new_password, &inputs) {
            return Err(DomainError::Validation(vec![FieldError::new("new_password", code, msg)]));
        }
        let hash = self.hasher.hash(new_password).await.map_err(DomainError::internal)?;
        let extras = Extras {
            password_hash: Some(&hash),
            revoke_sessions: Some(RevokeSessions { except: None }),
            event: Some("user.password_reset"),
            use_token: Some(&token.hash),
            ..Extras::default()
        };
        let reset = |u: &mut User| {
            u.profile.password_expired = false;
            Ok(())
        };
        self.modify_user(token.tenant_id, token.user_id, reset, extras).await.map(drop)
    }

    /// Undoes a change of the primary address with the token mailed to the old one: that
    /// address is the primary again (verified: the link proved it), the one that replaced it
    /// leaves the account, and every session ends.
    pub async fn revert_email(&self, secret: &str) -> Result<Verified> {
        let (token, _) = self.usable_token(secret, TokenPurpose::RevertEmail).await?;
        let extras = Extras {
            revoke_sessions: Some(RevokeSessions { except: None }),
            event: Some("user.primary_email_changed"),
            use_token: Some(&token.hash),
            ..Extras::default()
        };
        let old = token.email.clone();
        let revert = move |u: &mut User| {
            u.primary_email = Some(old.clone());
            u.primary_email_verified = true;
            Ok(())
        };
        let user = self.modify_user(token.tenant_id, token.user_id, revert, extras).await?;
        Ok(Verified { email: token.email, user_id: user.id, tenant_id: user.tenant_id })
    }
}
