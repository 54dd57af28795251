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

/// The JWS algorithms Tessera signs with. A tenant picks one for its tokens (`EdDSA` unless
/// set); every key is pinned to its algorithm, so a token is checked only the way its key
/// signs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SigningAlgorithm {
    /// Ed25519: the smallest and fastest keys and signatures.
    #[default]
    EdDSA,
    /// ECDSA on P-256 with SHA-256, for verifiers without Ed25519.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and 2048-bit keys, for verifiers that know only RSA.
    RS256,
}

impl SigningAlgorithm {
    pub const ALL: [Self; 3] = [Self::EdDSA, Self::ES256, Self::RS256];

    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}
