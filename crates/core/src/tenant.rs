//! Tenants and their settings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
use crate::keys::SigningAlgorithm;
use crate::validate::ImageLimits;

#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// Stack Auth's publishable client key: public, identifies the tenant to browsers.
    pub publishable_key: String,
    pub settings: TenantSettings,
    pub created_at: DateTime<Utc>,
}

/// What a tenant may tune. Every field has a default, so stored settings from older versions
/// keep loading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// How long a deleted account waits before erasure; signing in meanwhile cancels it.
    pub deletion_grace_seconds: i64,
    /// Cap on each metadata tier, as compact JSON.
    pub metadata_max_bytes: usize,
    /// Cap on a decoded avatar image on the native API.
    pub avatar_max_bytes: usize,
    pub access_token_ttl_seconds: i64,
    pub refresh_token_ttl_seconds: i64,
    /// Replyke's `validateUserUpdated`, for every surface: called before an update is stored.
    pub pre_update_hook: Option<HookSettings>,
    /// Failed sign-ins per account per 15 minutes before it is locked for the rest of them.
    pub sign_in_failures_per_account: u32,
    /// Sign-in, MFA and token attempts per client address per minute.
    pub attempts_per_address_per_minute: u32,
    /// Failed second-factor codes per user per 5 minutes.
    pub mfa_failures_per_user: u32,
    /// How the tenant's access and ID tokens are signed.
    pub signing_algorithm: SigningAlgorithm,
    /// Days an activity entry is kept before it is forgotten.
    pub activity_retention_days: u32,
    /// Sign-in with an unverified primary address is refused (`email_unverified`).
    pub require_verified_email: bool,
    /// A first sign-in through an identity provider that asserts a verified address an
    /// account already has joins that account; otherwise it is refused.
    pub link_verified_emails: bool,
}

/// Where and how the pre-update validation hook is called. The secret is write-only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSettings {
    /// An http(s) URL Tessera POSTs the pending update to.
    pub url: String,
    /// Signs each call (Standard Webhooks): `whsec_` + base64 key, or any string of 16+ bytes.
    pub secret: String,
    /// How long to wait for the answer (default 3000 ms).
    #[serde(default = "default_hook_timeout_ms")]
    pub timeout_ms: u64,
    /// On timeout or unreachable hook: `false` (default) refuses the update, `true` lets it through.
    #[serde(default)]
    pub fail_open: bool,
}

fn default_hook_timeout_ms() -> u64 {
    3000
}

impl std::fmt::Debug for HookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookSettings")
            .field("url", &self.url)
            .field("timeout_ms", &self.timeout_ms)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            deletion_grace_seconds: 7 * 24 * 3600,
            metadata_max_bytes: 64 * 1024,
            avatar_max_bytes: 256 * 1024,
            access_token_ttl_seconds: 900,
            refresh_token_ttl_seconds: 30 * 24 * 3600,
            pre_update_hook: None,
            sign_in_failures_per_account: 10,
            attempts_per_address_per_minute: 60,
            mfa_failures_per_user: 5,
            signing_algorithm: SigningAlgorithm::default(),
            activity_retention_days: 90,
            require_verified_email: false,
            link_verified_emails: false,
        }
    }
}

impl TenantSettings {
    pub fn image_limits(&self) -> ImageLimits {
        ImageLimits { max_bytes: self.avatar_max_bytes, ..ImageLimits::default() }
    }

    /// Bounds that keep a tenant from configuring itself into trouble.
    pub fn check(&self) -> Result<(), crate::DomainError> {
        let mut errors = Vec::new();
        let bound = |errors: &mut Vec<crate::FieldError>, field: &str, value: i64, lo: i64, hi: i64| {
            if !(lo..=hi).contains(&value) {
                errors.push(crate::FieldError::new(field, "out_of_range", format!("must be between {lo} and {hi}")));
            }
        };
        bound(&mut errors, "deletion_grace_seconds", self.deletion_grace_seconds, 0, 365 * 24 * 3600);
        bound(&mut errors, "metadata_max_bytes", self.metadata_max_bytes as i64, 2, 1024 * 1024);
        bound(&mut errors, "avatar_max_bytes", self.avatar_max_bytes as i64, 1024, 5 * 1024 * 1024);
        bound(&mut errors, "access_token_ttl_seconds", self.access_token_ttl_seconds, 60, 24 * 3600);
        bound(&mut errors, "refresh_token_ttl_seconds", self.refresh_token_ttl_seconds, 3600, 365 * 24 * 3600);
        bound(&mut errors, "sign_in_failures_per_account", i64::from(self.sign_in_failures_per_account), 1, 1000);
        bound(
            &mut errors,
            "attempts_per_address_per_minute",
            i64::from(self.attempts_per_address_per_minute),
            1,
            100_000,
        );
        bound(&mut errors, "mfa_failures_per_user", i64::from(self.mfa_failures_per_user), 1, 100);
        bound(&mut errors, "activity_retention_days", i64::from(self.activity_retention_days), 1, 3650);
        if let Some(h) = &self.pre_update_hook {
            bound(&mut errors, "pre_update_hook.timeout_ms", h.timeout_ms as i64, 100, 30_000);
            let url_ok = url::Url::parse(&h.url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()));
            if !url_ok {
                errors.push(crate::FieldError::new("pre_update_hook.url", "invalid_url", "must be an http(s) URL"));
            }
            if h.secret.len() < 16 {
                errors.push(crate::FieldError::new("pre_update_hook.secret", "too_short", "must be at least 16 bytes"));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(crate::DomainError::Validation(errors)) }
    }
}
