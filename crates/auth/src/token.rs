//! Access tokens: compact JWS signed with the tenant's algorithm (`alg` pinned to the key that
//! `kid` names), and a bounded cache of tokens already verified, so the hot path skips the
//! signature check on repeat requests while still checking expiry on every use. Revocation is
//! checked by the caller against the session row.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_core::keys::SigningAlgorithm;
use tessera_core::{SessionId, TenantId, UserId};

use crate::keys::{KeyRing, Verdict};

/// The JWS `typ` of access tokens (RFC 9068), so that no other JWT passes for one.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

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
    /// The OAuth client the session was started through (RFC 9068), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The granted scopes, space-separated (RFC 9068), when the token came from an OAuth grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
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
    /// How the first step was proven, when not by the password (`passkey`: one that did not
    /// verify the user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
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

    /// Signs access-token `claims` with the active key of `alg`.
    pub fn issue(&self, claims: &AccessClaims, alg: SigningAlgorithm) -> Result<String, TokenError> {
        self.sign_jws(claims, alg, ACCESS_TOKEN_TYPE)
    }

    /// Signs access-token `claims` with more claims beside them, for a surface whose clients
    /// read the token themselves. Verification ignores the extra claims.
    pub fn issue_with<E: Serialize>(
        &self,
        claims: &AccessClaims,
        extra: &E,
        alg: SigningAlgorithm,
    ) -> Result<String, TokenError> {
        #[derive(Serialize)]
        struct With<'a, E> {
            #[serde(flatten)]
            extra: &'a E,
            #[serde(flatten)]
            claims: &'a AccessClaims,
        }
        self.sign_jws(&With { extra, claims }, alg, ACCESS_TOKEN_TYPE)
    }

    /// Signs an ID token.
    pub fn issue_id_token(&self, claims: &IdClaims, alg: SigningAlgorithm) -> Result<String, TokenError> {
        self.sign_jws(claims, alg, "JWT")
    }

    /// The audience of access tokens of a tenant: its issuer, where its API lives.
    pub fn audience(&self, tenant: TenantId) -> String {
        self.issuer(tenant)
    }

    /// Signs a second-factor challenge. It can never pass as an access token: it has no `sid`.
    /// Only Tessera reads it, so it is always signed with Ed25519.
    pub fn issue_mfa(&self, claims: &MfaClaims) -> Result<String, TokenError> {
        self.sign_jws(claims, SigningAlgorithm::EdDSA, "JWT")
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

    fn sign_jws<T: Serialize>(&self, claims: &T, alg: SigningAlgorithm, typ: &str) -> Result<String, TokenError> {
        let ring = self.keys();
        let kid = ring.active_kid(alg).ok_or(TokenError::NoSigningKey)?;
        let header = serde_json::json!({"alg": alg.name(), "typ": typ, "kid": kid});
        let mut out = String::with_capacity(if alg == SigningAlgorithm::RS256 { 800 } else { 480 });
        out.push_str(&URL_SAFE_NO_PAD.encode(header.to_string()));
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|_| TokenError::Malformed)?));
        let sig = ring.sign(alg, out.as_bytes()).ok_or(TokenError::NoSigningKey)?;
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig));
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
        // The algorithm is pinned: `none`, HS256 with a public key as the secret … are refused
        // before any key is touched, and a known algorithm must be the one of the key `kid`
        // names, so no key is ever used the way another algorithm would use it.
        let alg = SigningAlgorithm::from_name(header.alg).ok_or(TokenError::AlgorithmNotAllowed)?;
        if header.crit.is_some() {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed)?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        match self.keys().verify(kid, alg, signed, &sig) {
            Verdict::Valid => {}
            Verdict::UnknownKey => return Err(TokenError::UnknownKey),
            Verdict::WrongAlgorithm => return Err(TokenError::AlgorithmNotAllowed),
            Verdict::BadSignature => return Err(TokenError::BadSignature),
        }
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration as D;

    const ED: SigningAlgorithm = SigningAlgorithm::EdDSA;

    /// A verifier with one active key of each algorithm.
    fn verifier() -> TokenVerifier {
        let now = Utc::now();
        let records: Vec<_> = SigningAlgorithm::ALL.iter().map(|a| KeyRing::generate(*a, now).unwrap()).collect();
        let ring = KeyRing::from_records(&records, now, D::hours(1)).unwrap();
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
            client_id: None,
            scope: None,
        }
    }

    #[test]
    fn issued_tokens_verify_and_tampering_is_refused_with_every_algorithm() {
        let v = verifier();
        for alg in SigningAlgorithm::ALL {
            let c = claims(&v, 600);
            let t = v.issue(&c, alg).unwrap();
            let header: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(t.split('.').next().unwrap()).unwrap()).unwrap();
            assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some(alg.name()), Some("at+jwt")));
            assert_eq!(*v.verify(&t, Utc::now()).unwrap(), c, "{alg:?}");
            let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
            let mut other = c.clone();
            other.sub = UserId::new();
            parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
            assert_eq!(v.verify(&parts.join("."), Utc::now()).unwrap_err(), TokenError::BadSignature, "{alg:?}");
        }
    }

    /// A token relabelled with another algorithm is checked against the algorithm of the key
    /// its `kid` names, never the one its header claims.
    #[test]
    fn a_token_relabelled_with_another_algorithm_is_refused() {
        let v = verifier();
        for signed_with in SigningAlgorithm::ALL {
            let t = v.issue(&claims(&v, 600), signed_with).unwrap();
            let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
            let header: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();
            for claimed in SigningAlgorithm::ALL.into_iter().filter(|a| *a != signed_with) {
                let relabelled = serde_json::json!({"alg": claimed.name(), "typ": "at+jwt", "kid": header["kid"]});
                parts[0] = URL_SAFE_NO_PAD.encode(relabelled.to_string());
                assert_eq!(v.verify(&parts.join("."), Utc::now()).unwrap_err(), TokenError::AlgorithmNotAllowed);
            }
        }
    }

    #[test]
    fn extra_claims_are_signed_and_ignored_by_verification() {
        let v = verifier();
        let c = claims(&v, 600);
        let t = v.issue_with(&c, &serde_json::json!({"role": "authenticated"}), ED).unwrap();
        let payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(t.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(payload["role"], "authenticated");
        assert_eq!(*v.verify(&t, Utc::now()).unwrap(), c);
    }

    #[test]
    fn the_jwks_lists_each_key_with_its_own_type() {
        let v = verifier();
        let jwks = v.keys().jwks();
        let mut types: Vec<(String, String)> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["kty"].as_str().unwrap().to_owned(), k["alg"].as_str().unwrap().to_owned()))
            .collect();
        types.sort();
        assert_eq!(
            types,
            [("EC".into(), "ES256".into()), ("OKP".into(), "EdDSA".into()), ("RSA".into(), "RS256".into())]
        );
        assert!(!jwks.to_string().contains("\"d\""), "no private parts");
    }

    #[test]
    fn alg_none_and_hs256_are_refused() {
        let v = verifier();
        let c = claims(&v, 600);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        for alg in ["none", "HS256", "PS256", "ES384", "eddsa"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            assert_eq!(v.verify(&format!("{h}.{body}.AAAA"), Utc::now()).unwrap_err(), TokenError::AlgorithmNotAllowed);
        }
    }

    #[test]
    fn expiry_is_checked_even_for_cached_tokens() {
        let v = verifier();
        let t = v.issue(&claims(&v, 60), ED).unwrap();
        assert!(v.verify(&t, Utc::now()).is_ok());
        assert_eq!(v.verify(&t, Utc::now() + D::seconds(60 + LEEWAY_SECONDS + 1)).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn a_token_for_another_audience_or_not_yet_valid_is_refused() {
        let v = verifier();
        let mut c = claims(&v, 600);
        c.aud = "tsr_ci_someone_else".into();
        assert_eq!(v.verify(&v.issue(&c, ED).unwrap(), Utc::now()).unwrap_err(), TokenError::WrongAudience);
        let mut c = claims(&v, 600);
        c.nbf += 120;
        let t = v.issue(&c, ED).unwrap();
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
        let t = v.issue_id_token(&id, ED).unwrap();
        assert!(matches!(v.verify(&t, Utc::now()), Err(TokenError::WrongAudience | TokenError::Malformed)));
    }

    #[test]
    fn a_key_from_another_ring_is_unknown() {
        let a = verifier();
        let b = verifier();
        let t = a.issue(&claims(&a, 600), ED).unwrap();
        assert_eq!(b.verify(&t, Utc::now()).unwrap_err(), TokenError::UnknownKey);
    }
}
