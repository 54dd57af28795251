//! TOTP enrolment with proof: begin (a secret, its `otpauth://` URI and a QR code), confirm with
//! a code (then recovery codes), disable with a code or the password.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tessera_auth::secret::hash_secret;
use tessera_auth::totp;
use tessera_core::DomainError;
use tessera_core::events::By;

use crate::me::Extras;
use crate::{Principal, Result, Service, store_err};

/// What the user needs to add the account to an authenticator app.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// Base32, as authenticator apps take it by hand.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

const RECOVERY_CODES: usize = 10;
const SECRET_BYTES: usize = 20;

/// `xxxxx-xxxxx`, and the form its hash is taken of (lower-case, no separators).
fn recovery_code() -> String {
    let raw = totp::base32_encode(&{
        let mut b = [0u8; 7];
        tessera_auth::secret::fill_random(&mut b);
        b
    })
    .to_lowercase();
    format!("{}-{}", &raw[..5], &raw[5..10])
}

pub(crate) fn normalize_recovery_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase()
}

/// Percent-encodes a label part of an `otpauth://` URI.
fn uri_part(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Service {
    /// Starts enrolment: a new secret is stored but not yet enforced; sign-in asks for codes
    /// only after `confirm_totp` has seen one.
    pub async fn begin_totp(&self, who: &Principal) -> Result<TotpEnrolment> {
        if who.user.totp_enabled {
            return Err(DomainError::field("totp", "already_enabled", "TOTP is on; disable it first"));
        }
        let tenant = self.tenant(who.tenant_id()).await?;
        let mut secret = [0u8; SECRET_BYTES];
        tessera_auth::secret::fill_random(&mut secret);
        let b64 = STANDARD.encode(secret);
        let extras = Extras { totp_secret: Some(Some(&b64)), ..Extras::default() };
        self.modify_user(who.tenant_id(), who.user.id, |_| Ok(()), extras).await?;
        self.enrolment(who, &tenant.name, &secret)
    }

    /// The enrolment started and not yet confirmed, shown again (after a wrong code, say).
    pub async fn pending_totp(&self, who: &Principal) -> Result<Option<TotpEnrolment>> {
        if who.user.totp_enabled {
            return Ok(None);
        }
        let Some((b64, _)) = self.store.find_totp(who.tenant_id(), who.user.id).await.map_err(store_err)? else {
            return Ok(None);
        };
        let secret = STANDARD.decode(b64).map_err(DomainError::internal)?;
        let tenant = self.tenant(who.tenant_id()).await?;
        self.enrolment(who, &tenant.name, &secret).map(Some)
    }

    fn enrolment(&self, who: &Principal, tenant_name: &str, secret: &[u8]) -> Result<TotpEnrolment> {
        let base32 = totp::base32_encode(secret);
        let account = who
            .user
            .primary_email
            .clone()
            .or_else(|| who.user.username.clone())
            .unwrap_or_else(|| who.user.id.to_string());
        let issuer = uri_part(tenant_name);
        let otpauth_uri = format!(
            "otpauth://totp/{issuer}:{}?secret={base32}&issuer={issuer}&algorithm=SHA1&digits={}&period={}",
            uri_part(&account),
            totp::DIGITS,
            totp::STEP_SECONDS
        );
        let qr = qrcode::QrCode::new(otpauth_uri.as_bytes()).map_err(DomainError::internal)?;
        let qr_svg = qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(240, 240).build();
        Ok(TotpEnrolment { secret: base32, otpauth_uri, qr_svg })
    }

    /// Proves the authenticator works: a current code turns TOTP on and yields the recovery
    /// codes, shown this once (stored hashed).
    pub async fn confirm_totp(&self, who: &Principal, code: &str) -> Result<Vec<String>> {
        if who.user.totp_enabled {
            return Err(DomainError::field("totp", "already_enabled", "TOTP is already on"));
        }
        self.check_totp_code(who, code).await?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        let hashes: Vec<String> = codes.iter().map(|c| hash_secret(&normalize_recovery_code(c))).collect();
        self.store.replace_recovery_codes(who.user.id, &hashes).await.map_err(store_err)?;
        let enable = |u: &mut tessera_core::user::User| {
            u.totp_enabled = true;
            Ok(())
        };
        let extras = Extras { event: Some("user.mfa_enabled"), ..Extras::default() };
        self.modify_user(who.tenant_id(), who.user.id, enable, extras).await?;
        Ok(codes)
    }

    /// Turns TOTP off, proven by a current code, a recovery code or the password.
    pub async fn disable_totp(&self, who: &Principal, code: Option<&str>, password: Option<String>) -> Result<()> {
        match (code, password) {
            (Some(code), _) => self.check_second_factor(who, code).await?,
            (None, Some(password)) => {
                let hash = self.store.find_password_hash(who.tenant_id(), who.user.id).await.map_err(store_err)?;
                if !self.hasher.verify(password, hash).await.map_err(DomainError::internal)? {
                    return Err(DomainError::field("password", "incorrect", "the password is not correct"));
                }
            }
            (None, None) => return Err(DomainError::field("code", "required", "give a code or the password")),
        }
        self.set_totp_secret(who.tenant_id(), who.user.id, None, tessera_core::events::By::User).await?;
        self.store.replace_recovery_codes(who.user.id, &[]).await.map_err(store_err)
    }

    /// Turns a user's TOTP off and drops their recovery codes, for `by` (an administrator
    /// helping someone who lost their authenticator).
    pub async fn reset_mfa(&self, tenant: tessera_core::TenantId, user: tessera_core::UserId, by: By) -> Result<()> {
        self.set_totp_secret(tenant, user, None, by).await?;
        self.store.replace_recovery_codes(user, &[]).await.map_err(store_err)
    }

    /// A current TOTP code for the stored secret, accepted once.
    async fn check_totp_code(&self, who: &Principal, code: &str) -> Result<()> {
        let (secret, _) = self
            .store
            .find_totp(who.tenant_id(), who.user.id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| DomainError::field("totp", "not_started", "begin TOTP enrolment first"))?;
        let secret = STANDARD.decode(secret).map_err(DomainError::internal)?;
        let step = totp::matching_step(&secret, code, self.now().timestamp())
            .ok_or_else(|| DomainError::field("code", "invalid_code", "the code is not valid"))?;
        if self.store.accept_totp_step(who.tenant_id(), who.user.id, step).await.map_err(store_err)? {
            Ok(())
        } else {
            Err(DomainError::field("code", "code_reused", "this code was already used; wait for the next one"))
        }
    }

    /// A TOTP code, or else a recovery code (used up).
    async fn check_second_factor(&self, who: &Principal, code: &str) -> Result<()> {
        if code.trim().len() == totp::DIGITS as usize {
            return self.check_totp_code(who, code).await;
        }
        let hash = hash_secret(&normalize_recovery_code(code));
        if self.store.use_recovery_code(who.user.id, &hash, self.now()).await.map_err(store_err)? {
            Ok(())
        } else {
            Err(DomainError::field("code", "invalid_code", "the code is not valid"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_look_alike_and_normalise() {
        let c = recovery_code();
        assert_eq!(c.len(), 11);
        assert_eq!(&c[5..6], "-");
        assert_eq!(normalize_recovery_code(&c.to_uppercase().replace('-', " ")), c.replace('-', ""));
        assert_ne!(recovery_code(), recovery_code());
    }
}
