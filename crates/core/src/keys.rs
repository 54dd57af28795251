//! Signing keys as the rest of Tessera sees them: an id, an algorithm, material, a lifecycle.

use chrono::{DateTime, Utc};

/// A signing key as stored, key material in base64. Rotation adds a key and retires the old
/// one; a retired key keeps verifying until every token it signed has expired.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    pub private_key: String,
    pub public_key: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}
