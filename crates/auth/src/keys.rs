//! The key ring: one active Ed25519 key that signs, every unexpired key that verifies.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use tessera_core::keys::SigningKeyRecord;

pub const ALG_EDDSA: &str = "EdDSA";

pub struct KeyRing {
    active: Option<(String, SigningKey)>,
    verifiers: HashMap<String, VerifyingKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active.as_ref().map(|(kid, _)| kid))
            .field("verifiers", &self.verifiers.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("signing key {kid} is unreadable")]
pub struct BadKey {
    pub kid: String,
}

impl KeyRing {
    /// Builds the ring from stored keys. The newest unretired key signs; retired keys verify
    /// until `retired_at + keep_verifying`.
    pub fn from_records(
        records: &[SigningKeyRecord],
        now: DateTime<Utc>,
        keep_verifying: chrono::Duration,
    ) -> Result<Self, BadKey> {
        let mut ring = Self { active: None, verifiers: HashMap::new() };
        let mut newest: Option<DateTime<Utc>> = None;
        for r in records.iter().filter(|r| r.alg == ALG_EDDSA) {
            let bad = || BadKey { kid: r.kid.clone() };
            let seed: [u8; 32] =
                STANDARD.decode(&r.private_key).ok().and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
            let key = SigningKey::from_bytes(&seed);
            match r.retired_at {
                None => {
                    if newest.is_none_or(|n| r.created_at > n) {
                        newest = Some(r.created_at);
                        ring.active = Some((r.kid.clone(), key.clone()));
                    }
                    ring.verifiers.insert(r.kid.clone(), key.verifying_key());
                }
                Some(retired) if retired + keep_verifying > now => {
                    ring.verifiers.insert(r.kid.clone(), key.verifying_key());
                }
                Some(_) => {}
            }
        }
        Ok(ring)
    }

    /// A new key, ready to be stored.
    pub fn generate(now: DateTime<Utc>) -> SigningKeyRecord {
        let mut seed = [0u8; 32];
        crate::secret::fill_random(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        let mut kid = [0u8; 9];
        crate::secret::fill_random(&mut kid);
        SigningKeyRecord {
            kid: URL_SAFE_NO_PAD.encode(kid),
            alg: ALG_EDDSA.to_owned(),
            private_key: STANDARD.encode(seed),
            public_key: URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
            created_at: now,
            retired_at: None,
        }
    }

    pub fn active(&self) -> Option<(&str, &SigningKey)> {
        self.active.as_ref().map(|(k, s)| (k.as_str(), s))
    }

    pub fn verifier(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifiers.get(kid)
    }

    /// Public keys as JWKs (RFC 8037 OKP), for the JWKS endpoint.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .verifiers
            .iter()
            .map(|(kid, vk)| {
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": ALG_EDDSA, "use": "sig", "kid": kid,
                    "x": URL_SAFE_NO_PAD.encode(vk.to_bytes())})
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}
