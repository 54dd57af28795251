//! The key ring: for each algorithm in use, one active key that signs; every unexpired key
//! verifies, and only with the algorithm it was made for.
//!
//! Ed25519 uses `ed25519-dalek`; ES256 and RS256 use `ring` (already linked for TLS). `ring`
//! cannot make RSA keys, so the `rsa` crate generates them, once per rotation.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::Signer as _;
use ring::rand::SystemRandom;
use ring::signature::{self as rs, KeyPair as _};
use serde_json::{Value, json};
use tessera_core::keys::{SigningAlgorithm, SigningKeyRecord};

/// RSA modulus size for new RS256 keys.
const RSA_BITS: usize = 2048;

/// The private half of a key.
enum Signer {
    Ed(ed25519_dalek::SigningKey),
    Es(rs::EcdsaKeyPair),
    Rs(rs::RsaKeyPair),
}

/// The public half of a key, as used to verify and as published in the JWKS.
pub(crate) enum Verifier {
    Ed(ed25519_dalek::VerifyingKey),
    /// The uncompressed SEC1 point.
    Es(Vec<u8>),
    Rs(rs::RsaPublicKeyComponents<Vec<u8>>),
}

impl Verifier {
    pub(crate) fn alg(&self) -> SigningAlgorithm {
        match self {
            Self::Ed(_) => SigningAlgorithm::EdDSA,
            Self::Es(_) => SigningAlgorithm::ES256,
            Self::Rs(_) => SigningAlgorithm::RS256,
        }
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Ed(vk) => <[u8; 64]>::try_from(signature)
                .is_ok_and(|s| vk.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&s)).is_ok()),
            Self::Es(point) => {
                rs::UnparsedPublicKey::new(&rs::ECDSA_P256_SHA256_FIXED, point).verify(message, signature).is_ok()
            }
            Self::Rs(key) => key.verify(&rs::RSA_PKCS1_2048_8192_SHA256, message, signature).is_ok(),
        }
    }

    /// A public key from a JWK of another provider: an RSA key (2048 bits or more), a P-256
    /// key or an Ed25519 key, each of which verifies with one algorithm only. Anything else
    /// (a symmetric key, another curve, a key for encryption) is none.
    pub(crate) fn from_jwk(jwk: &Value) -> Option<Self> {
        let part = |name: &str| jwk.get(name).and_then(Value::as_str).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
        if jwk.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
            return None;
        }
        match (jwk.get("kty")?.as_str()?, jwk.get("crv").and_then(Value::as_str)) {
            ("RSA", _) => {
                let (n, e) = (part("n")?, part("e")?);
                let n = n.into_iter().skip_while(|b| *b == 0).collect::<Vec<u8>>();
                (n.len() * 8 >= 2048).then_some(Self::Rs(rs::RsaPublicKeyComponents { n, e }))
            }
            ("EC", Some("P-256")) => {
                let (x, y) = (part("x")?, part("y")?);
                (x.len() == 32 && y.len() == 32).then(|| Self::Es([&[4u8][..], &x, &y].concat()))
            }
            ("OKP", Some("Ed25519")) => {
                let x: [u8; 32] = part("x")?.try_into().ok()?;
                ed25519_dalek::VerifyingKey::from_bytes(&x).ok().map(Self::Ed)
            }
            _ => None,
        }
    }

    /// The public key as a JWK (RFC 7517; OKP keys per RFC 8037).
    fn jwk(&self, kid: &str) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let alg = self.alg().name();
        match self {
            Self::Ed(vk) => {
                json!({"kty": "OKP", "crv": "Ed25519", "alg": alg, "use": "sig", "kid": kid, "x": b64(&vk.to_bytes())})
            }
            Self::Es(point) => json!({"kty": "EC", "crv": "P-256", "alg": alg, "use": "sig", "kid": kid,
                "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
            Self::Rs(key) => {
                json!({"kty": "RSA", "alg": alg, "use": "sig", "kid": kid, "n": b64(&key.n), "e": b64(&key.e)})
            }
        }
    }
}

pub struct KeyRing {
    active: HashMap<SigningAlgorithm, (String, Signer)>,
    verifiers: HashMap<String, Verifier>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active.iter().map(|(alg, (kid, _))| (alg.name(), kid)).collect::<Vec<_>>())
            .field("verifiers", &self.verifiers.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("signing key {kid} is unreadable")]
pub struct BadKey {
    pub kid: String,
}

fn read_key(r: &SigningKeyRecord) -> Option<(SigningAlgorithm, Signer, Verifier)> {
    let alg = SigningAlgorithm::from_name(&r.alg)?;
    let private = STANDARD.decode(&r.private_key).ok()?;
    Some(match alg {
        SigningAlgorithm::EdDSA => {
            let key = ed25519_dalek::SigningKey::from_bytes(&private.try_into().ok()?);
            let vk = key.verifying_key();
            (alg, Signer::Ed(key), Verifier::Ed(vk))
        }
        SigningAlgorithm::ES256 => {
            let pair =
                rs::EcdsaKeyPair::from_pkcs8(&rs::ECDSA_P256_SHA256_FIXED_SIGNING, &private, &SystemRandom::new())
                    .ok()?;
            let point = pair.public_key().as_ref().to_vec();
            (alg, Signer::Es(pair), Verifier::Es(point))
        }
        SigningAlgorithm::RS256 => {
            let pair = rs::RsaKeyPair::from_pkcs8(&private).ok()?;
            let components = rs::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
            (alg, Signer::Rs(pair), Verifier::Rs(components))
        }
    })
}

/// New private key material for `alg`, as stored: the Ed25519 seed, or PKCS#8 DER.
fn new_private_key(alg: SigningAlgorithm) -> Option<Vec<u8>> {
    match alg {
        SigningAlgorithm::EdDSA => {
            let mut seed = [0u8; 32];
            crate::secret::fill_random(&mut seed);
            Some(seed.to_vec())
        }
        SigningAlgorithm::ES256 => {
            rs::EcdsaKeyPair::generate_pkcs8(&rs::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .ok()
                .map(|der| der.as_ref().to_vec())
        }
        SigningAlgorithm::RS256 => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS).ok()?;
            key.to_pkcs8_der().ok().map(|der| der.as_bytes().to_vec())
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no new {0} signing key could be made")]
pub struct KeygenFailed(pub &'static str);

impl KeyRing {
    /// Builds the ring from stored keys. For each algorithm the newest unretired key signs;
    /// retired keys verify until `retired_at + keep_verifying`.
    pub fn from_records(
        records: &[SigningKeyRecord],
        now: DateTime<Utc>,
        keep_verifying: chrono::Duration,
    ) -> Result<Self, BadKey> {
        let mut ring = Self { active: HashMap::new(), verifiers: HashMap::new() };
        let mut newest: HashMap<SigningAlgorithm, DateTime<Utc>> = HashMap::new();
        for r in records {
            let verifying = r.retired_at.is_none_or(|retired| retired + keep_verifying > now);
            if !verifying {
                continue;
            }
            let (alg, signer, verifier) = read_key(r).ok_or_else(|| BadKey { kid: r.kid.clone() })?;
            ring.verifiers.insert(r.kid.clone(), verifier);
            if r.retired_at.is_none() && newest.get(&alg).is_none_or(|n| r.created_at > *n) {
                newest.insert(alg, r.created_at);
                ring.active.insert(alg, (r.kid.clone(), signer));
            }
        }
        Ok(ring)
    }

    /// A new key for `alg`, ready to be stored. An RSA key takes a moment to make.
    pub fn generate(alg: SigningAlgorithm, now: DateTime<Utc>) -> Result<SigningKeyRecord, KeygenFailed> {
        let private = new_private_key(alg).ok_or(KeygenFailed(alg.name()))?;
        let mut kid = [0u8; 9];
        crate::secret::fill_random(&mut kid);
        let record = SigningKeyRecord {
            kid: URL_SAFE_NO_PAD.encode(kid),
            alg: alg.name().to_owned(),
            private_key: STANDARD.encode(&private),
            public_key: String::new(),
            created_at: now,
            retired_at: None,
        };
        let (_, _, verifier) = read_key(&record).ok_or(KeygenFailed(alg.name()))?;
        Ok(SigningKeyRecord { public_key: verifier.jwk(&record.kid).to_string(), ..record })
    }

    /// The algorithms that have an active key.
    pub fn algorithms(&self) -> impl Iterator<Item = SigningAlgorithm> + '_ {
        SigningAlgorithm::ALL.into_iter().filter(|a| self.active.contains_key(a))
    }

    /// The `kid` of the key that signs for `alg`.
    pub fn active_kid(&self, alg: SigningAlgorithm) -> Option<&str> {
        self.active.get(&alg).map(|(kid, _)| kid.as_str())
    }

    /// Signs `message` with the active key of `alg`.
    pub(crate) fn sign(&self, alg: SigningAlgorithm, message: &[u8]) -> Option<Vec<u8>> {
        let (_, signer) = self.active.get(&alg)?;
        let signature = match signer {
            Signer::Ed(key) => key.sign(message).to_bytes().to_vec(),
            Signer::Es(pair) => pair.sign(&SystemRandom::new(), message).ok()?.as_ref().to_vec(),
            Signer::Rs(pair) => {
                let mut out = vec![0u8; pair.public().modulus_len()];
                pair.sign(&rs::RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut out).ok()?;
                out
            }
        };
        Some(signature)
    }

    /// Checks a signature with the key `kid`, only if that key is of `alg`.
    pub(crate) fn verify(&self, kid: &str, alg: SigningAlgorithm, message: &[u8], signature: &[u8]) -> Verdict {
        match self.verifiers.get(kid) {
            None => Verdict::UnknownKey,
            Some(v) if v.alg() != alg => Verdict::WrongAlgorithm,
            Some(v) if v.verify(message, signature) => Verdict::Valid,
            Some(_) => Verdict::BadSignature,
        }
    }

    /// Public keys as a JWK set, for the JWKS endpoint.
    pub fn jwks(&self) -> Value {
        let mut keys: Vec<(&String, &Verifier)> = self.verifiers.iter().collect();
        keys.sort_by_key(|(kid, _)| *kid);
        json!({ "keys": keys.into_iter().map(|(kid, v)| v.jwk(kid)).collect::<Vec<_>>() })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Valid,
    UnknownKey,
    WrongAlgorithm,
    BadSignature,
}
