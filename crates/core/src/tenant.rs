//! Tenants and their settings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
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
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            deletion_grace_seconds: 7 * 24 * 3600,
            metadata_max_bytes: 64 * 1024,
            avatar_max_bytes: 256 * 1024,
            access_token_ttl_seconds: 900,
            refresh_token_ttl_seconds: 30 * 24 * 3600,
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
        let mut bound = |field: &str, value: i64, lo: i64, hi: i64| {
            if !(lo..=hi).contains(&value) {
                errors.push(crate::FieldError::new(field, "out_of_range", format!("must be between {lo} and {hi}")));
            }
        };
        bound("deletion_grace_seconds", self.deletion_grace_seconds, 0, 365 * 24 * 3600);
        bound("metadata_max_bytes", self.metadata_max_bytes as i64, 2, 1024 * 1024);
        bound("avatar_max_bytes", self.avatar_max_bytes as i64, 1024, 5 * 1024 * 1024);
        bound("access_token_ttl_seconds", self.access_token_ttl_seconds, 60, 24 * 3600);
        bound("refresh_token_ttl_seconds", self.refresh_token_ttl_seconds, 3600, 365 * 24 * 3600);
        if errors.is_empty() { Ok(()) } else { Err(crate::DomainError::Validation(errors)) }
    }
}
