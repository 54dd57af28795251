//! Access tokens: compact JWS with `alg` pinned to EdDSA, and a bounded cache of tokens already
//! verified, so the hot path skips the ~150 µs signature check on repeat requests while still
//! checking expiry on every use. Revocation is checked by the caller against the session row.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_core::{SessionId, TenantId, UserId};

use crate::keys::{ALG_EDDSA, KeyRing};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: UserId,
    /// The tenant: every token carries it, so every surface can check it against headers.
    pub tid: TenantId,
    /// The session, checked on every request so that revocation is immediate.
    pub sid: SessionId,
    /// The audience: Tessera's own API at this issuer. An ID token (whose audience is a
    /// client) or any other token signed by the same key is thereby never an access token.
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub nbf: i64,
    pub jti: String,
}

/// An OpenID Connect ID token (OIDC Core §2): who signed in, for which client, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: UserId,
    /// The client the token is for.
    pub aud: String,
    pub azp: String,
    pub iat: i64,
    pub exp: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The standard claims the granted scopes allow (`profile`, `email`).
    #[serde(flatten)]
    pub profile: serde_json::Map<String, serde_json::Value>,
}

pub const MFA_PURPOSE: &str = "mfa";

/// A short-lived challenge between a correct password and the second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaClaims {
    pub iss: String,
    pub sub: UserId,
    pub tid: TenantId,
    /// Always `mfa`.
    pub purpose: String,
    pub exp: i64,
    pub jti: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    AlgorithmNotAllowed,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is meant for someone else")]
    WrongAudience,
    #[error("no signing key is available")]
    NoSigningKey,
}

#[derive(Deserialize)]
struct Header<'a> {
    alg: &'a str,
    #[serde(default)]
    kid: Option<&'a str>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

pub struct TokenVerifier {
    keys: RwLock<Arc<KeyRing>>,
    /// SHA-256 of a verified token → its claims. Keyed by a hash, not the token, to bound
    /// memory: 64 Ki entries cost about 16 MB at most.
    cache: moka::sync::Cache<[u8; 32], Arc<AccessClaims>>,
    /// Issuer prefix; the full issuer is `{base}/oidc/{tenant}`.
    issuer_base: String,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").field("issuer_base", &self.issuer_base).finish_non_exhaustive()
    }
}

impl TokenVerifier {
    pub fn new(keys: KeyRing, issuer_base: impl Into<String>, max_token_lifetime: Duration) -> Self {
        Self {
            keys: RwLock::new(Arc::new(keys)),
            cache: moka::sync::Cache::builder().max_capacity(64 * 1024).time_to_live(max_token_lifetime).build(),
            issuer_base: issuer_base.into(),
        }
    }

    pub fn issuer(&self, tenant: TenantId) -> String {
        format!("{}/oidc/{tenant}", self.issuer_base)
    }

    pub fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().map(|k| Arc::clone(&k)).unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()))
    }

    /// Swaps in a new ring after a rotation.
    pub fn replace_keys(&self, ring: KeyRing) {
        let mut guard = self.keys.write().unwrap_or_else(|p| p.into_inner());
        *guard = Arc::new(ring);
    }

    /// Signs `claims` with the active key.
    pub fn issue(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        self.sign_jws(claims)
    }

    /// Signs an ID token.
    pub fn issue_id_token(&self, claims: &IdClaims) -> Result<String, TokenError> {
        self.sign_jws(claims)
    }

    /// The audience of access tokens of a tenant: its issuer, where its API lives.
    pub fn audience(&self, tenant: TenantId) -> String {
        self.issuer(tenant)
    }

    /// Signs a second-factor challenge. It can never pass as an access token: it has no `sid`.
    pub fn issue_mfa(&self, claims: &MfaClaims) -> Result<String, TokenError> {
        self.sign_jws(claims)
    }

    /// Verifies a second-factor challenge (never cached: each is used once or twice at most).
    pub fn verify_mfa(&self, token: &str, now: DateTime<Utc>) -> Result<MfaClaims, TokenError> {
        let claims: MfaClaims = self.verify_jws(token)?;
        if claims.purpose != MFA_PURPOSE || claims.iss != self.issuer(claims.tid) {
            return Err(TokenError::Malformed);
        }
        if claims.exp + LEEWAY_SECONDS <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    fn sign_jws<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        let ring = self.keys();
        let (kid, key) = ring.active().ok_or(TokenError::NoSigningKey)?;
        let header = serde_json::json!({"alg": ALG_EDDSA, "typ": "JWT", "kid": kid});
        let mut out = String::with_capacity(400);
        out.push_str(&URL_SAFE_NO_PAD.encode(header.to_string()));
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|_| TokenError::Malformed)?));
        let sig = key.sign(out.as_bytes());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        Ok(out)
    }

    /// Verifies a token: structure, pinned algorithm, known key, signature, issuer, time.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Arc<AccessClaims>, TokenError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let claims = match self.cache.get(&key) {
            Some(c) => c,
            None => {
                let c = Arc::new(self.verify_uncached(token)?);
                self.cache.insert(key, Arc::clone(&c));
                c
            }
        };
        let t = now.timestamp();
        if claims.exp + LEEWAY_SECONDS <= t {
            return Err(TokenError::Expired);
        }
        if claims.nbf.max(claims.iat) - LEEWAY_SECONDS > t {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let claims: AccessClaims = self.verify_jws(token)?;
        let issuer = self.issuer(claims.tid);
        if claims.iss != issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != issuer {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims)
    }

    /// Structure, pinned algorithm, known key, signature; then the payload as `T`.
    fn verify_jws<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        if token.len() > 4096 {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header_bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| TokenError::Malformed)?;
        let header: Header<'_> = serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed)?;
        // The algorithm is pinned: `none`, HS256 with the public key, RS256 … are all refused
        // before any key is touched.
        if header.alg != ALG_EDDSA {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        if header.crit.is_some() {
            return Err(TokenError::Malformed);
        }
        let ring = self.keys();
        let vk = header.kid.and_then(|kid| ring.verifier(kid)).ok_or(TokenError::UnknownKey)?;
        let sig_bytes: [u8; 64] =
            URL_SAFE_NO_PAD.decode(s).ok().and_then(|b| b.try_into().ok()).ok_or(TokenError::Malformed)?;
        let signed_len = h.len() + 1 + p.len();
        vk.verify_strict(&token.as_bytes()[..signed_len], &Signature::from_bytes(&sig_bytes))
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration as D;

    fn verifier() -> TokenVerifier {
        let now = Utc::now();
        let ring = KeyRing::from_records(&[KeyRing::generate(now)], now, D::hours(1)).unwrap();
        TokenVerifier::new(ring, "http://localhost", Duration::from_secs(3600))
    }

    fn claims(v: &TokenVerifier, exp_in: i64) -> AccessClaims {
        let tid = TenantId::new();
        let now = Utc::now().timestamp();
        AccessClaims {
            iss: v.issuer(tid),
            sub: UserId::new(),
            tid,
            sid: SessionId::new(),
            aud: v.audience(tid),
            iat: now,
            exp: now + exp_in,
            nbf: now,
            jti: "j".into(),
        }
    }

    #[test]
    fn issued_tokens_verify_and_tampering_is_refused() {
        let v = verifier();
        let c = claims(&v, 600);
        let t = v.issue(&c).unwrap();
        assert_eq!(*v.verify(&t, Utc::now()).unwrap(), c);
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let mut other = c.clone();
        other.sub = UserId::new();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        assert_eq!(v.verify(&parts.join("."), Utc::now()).unwrap_err(), TokenError::BadSignature);
    }

    #[test]
    fn alg_none_and_hs256_are_refused() {
        let v = verifier();
        let c = claims(&v, 600);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        for alg in ["none", "HS256", "RS256", "ES256"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            assert_eq!(v.verify(&format!("{h}.{body}.AAAA"), Utc::now()).unwrap_err(), TokenError::AlgorithmNotAllowed);
        }
    }

    #[test]
    fn expiry_is_checked_even_for_cached_tokens() {
        let v = verifier();
        let t = v.issue(&claims(&v, 60)).unwrap();
        assert!(v.verify(&t, Utc::now()).is_ok());
        assert_eq!(v.verify(&t, Utc::now() + D::seconds(60 + LEEWAY_SECONDS + 1)).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn a_token_for_another_audience_or_not_yet_valid_is_refused() {
        let v = verifier();
        let mut c = claims(&v, 600);
        c.aud = "tsr_ci_someone_else".into();
        assert_eq!(v.verify(&v.issue(&c).unwrap(), Utc::now()).unwrap_err(), TokenError::WrongAudience);
        let mut c = claims(&v, 600);
        c.nbf += 120;
        let t = v.issue(&c).unwrap();
        assert_eq!(v.verify(&t, Utc::now()).unwrap_err(), TokenError::NotYetValid);
        assert!(v.verify(&t, Utc::now() + D::seconds(120)).is_ok(), "valid once nbf is reached");
    }

    #[test]
    fn an_id_token_never_passes_as_an_access_token() {
        let v = verifier();
        let c = claims(&v, 600);
        let id = IdClaims {
            iss: c.iss.clone(),
            sub: c.sub,
            aud: "tsr_ci_app".into(),
            azp: "tsr_ci_app".into(),
            iat: c.iat,
            exp: c.exp,
            auth_time: c.iat,
            nonce: None,
            profile: serde_json::Map::from_iter([
                ("tid".to_owned(), serde_json::json!(c.tid)),
                ("sid".to_owned(), serde_json::json!(c.sid)),
            ]),
        };
        let t = v.issue_id_token(&id).unwrap();
        assert!(matches!(v.verify(&t, Utc::now()), Err(TokenError::WrongAudience | TokenError::Malformed)));
    }

    #[test]
    fn a_key_from_another_ring_is_unknown() {
        let a = verifier();
        let b = verifier();
        let t = a.issue(&claims(&a, 600)).unwrap();
        assert_eq!(b.verify(&t, Utc::now()).unwrap_err(), TokenError::UnknownKey);
    }
}
