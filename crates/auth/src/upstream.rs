//! ID tokens of other OpenID providers, for sign-in through them: verified against the
//! provider's JWK set with only the algorithms both sides know (EdDSA, ES256, RS256, as the
//! provider advertises them), never `none` or an HMAC, and each key only with its own
//! algorithm (an RSA key for RS256, a P-256 key for ES256, an Ed25519 key for EdDSA), so that no
//! key can be used the way another algorithm would use it. Then `iss`, `aud` (and `azp` when
//! there are several audiences), `exp`, `iat` and `nonce` (OpenID Connect Core 3.1.3.7).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use tessera_core::keys::SigningAlgorithm;

use crate::keys::Verifier;
use crate::token::LEEWAY_SECONDS;

/// The longest ID token read.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A provider's signing keys, as its `jwks_uri` serves them; the keys Tessera cannot use are
/// left out.
pub struct Jwks {
    keys: Vec<(Option<String>, Option<String>, Verifier)>,
}

impl Jwks {
    pub fn parse(doc: &Value) -> Self {
        let keys = doc["keys"].as_array().map(Vec::as_slice).unwrap_or_default();
        let keys = keys
            .iter()
            .filter_map(|k| {
                let kid = k.get("kid").and_then(Value::as_str).map(str::to_owned);
                let alg = k.get("alg").and_then(Value::as_str).map(str::to_owned);
                Verifier::from_jwk(k).map(|v| (kid, alg, v))
            })
            .collect();
        Self { keys }
    }

    /// How many usable keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key `kid` names, or the only key for `alg` when the token names none; it must be
    /// a key of `alg`.
    fn key(&self, kid: Option<&str>, alg: SigningAlgorithm) -> Result<&Verifier, UpstreamTokenError> {
        let fits = |(_, key_alg, v): &&(Option<String>, Option<String>, Verifier)| {
            v.alg() == alg && key_alg.as_deref().is_none_or(|a| a == alg.name())
        };
        match kid {
            Some(kid) => {
                let named = self.keys.iter().find(|(k, ..)| k.as_deref() == Some(kid));
                let named = named.ok_or(UpstreamTokenError::UnknownKey)?;
                Some(named).filter(fits).map(|(.., v)| v).ok_or(UpstreamTokenError::WrongKeyType)
            }
            None => {
                let mut candidates = self.keys.iter().filter(fits);
                match (candidates.next(), candidates.next()) {
                    (Some((.., v)), None) => Ok(v),
                    _ => Err(UpstreamTokenError::UnknownKey),
                }
            }
        }
    }
}

/// What the ID token must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The provider's issuer, exactly.
    pub issuer: &'a str,
    /// Tessera's client id at the provider: the audience.
    pub client_id: &'a str,
    /// The nonce Tessera sent with the authorization request.
    pub nonce: &'a str,
    /// The algorithms the provider advertises that Tessera knows.
    pub algorithms: &'a [SigningAlgorithm],
    /// Now, in seconds since the epoch.
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamTokenError {
    #[error("the ID token is not a well-formed signed JWT")]
    Malformed,
    #[error("the ID token is signed with {0}, which is not allowed")]
    Algorithm(String),
    #[error("no key of the provider matches the ID token's")]
    UnknownKey,
    #[error("the key the ID token names is not a key of its algorithm")]
    WrongKeyType,
    #[error("the ID token's signature is not valid")]
    BadSignature,
    #[error("the ID token comes from another issuer")]
    WrongIssuer,
    #[error("the ID token was issued to another client")]
    WrongAudience,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token was issued in the future")]
    NotYetValid,
    #[error("the ID token's nonce is not the one this sign-in sent")]
    WrongNonce,
}

/// The claims of an ID token that passes every check.
pub fn verify_id_token(
    token: &str,
    jwks: &Jwks,
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, UpstreamTokenError> {
    use UpstreamTokenError as E;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(E::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(E::Malformed);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| E::Malformed);
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| E::Malformed)?;
    if header.get("crit").is_some() {
        return Err(E::Malformed);
    }
    let alg_name = header["alg"].as_str().ok_or(E::Malformed)?;
    let alg = SigningAlgorithm::from_name(alg_name)
        .filter(|a| expected.algorithms.contains(a))
        .ok_or_else(|| E::Algorithm(alg_name.chars().take(16).collect()))?;
    let key = jwks.key(header["kid"].as_str(), alg)?;
    let signed = &token[..h.len() + 1 + p.len()];
    if !key.verify(signed.as_bytes(), &decode(s)?) {
        return Err(E::BadSignature);
    }
    let claims: Map<String, Value> = serde_json::from_slice(&decode(p)?).map_err(|_| E::Malformed)?;
    if claims.get("iss").and_then(Value::as_str) != Some(expected.issuer) {
        return Err(E::WrongIssuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let azp = claims.get("azp").and_then(Value::as_str);
    if !audiences.contains(&expected.client_id)
        || (audiences.len() > 1 && azp != Some(expected.client_id))
        || azp.is_some_and(|a| a != expected.client_id)
    {
        return Err(E::WrongAudience);
    }
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or(E::Malformed)?;
    if exp + LEEWAY_SECONDS <= expected.now {
        return Err(E::Expired);
    }
    if claims.get("iat").and_then(Value::as_i64).is_some_and(|iat| iat - LEEWAY_SECONDS > expected.now) {
        return Err(E::NotYetValid);
    }
    if claims.get("nonce").and_then(Value::as_str) != Some(expected.nonce) {
        return Err(E::WrongNonce);
    }
    if claims.get("sub").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(E::Malformed);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::KeyRing;

    const ISS: &str = "https://idp.example";
    const CLIENT: &str = "tessera-client";
    const NONCE: &str = "n-0S6_WzA2Mj";

    fn ring(alg: SigningAlgorithm) -> KeyRing {
        let record = KeyRing::generate(alg, Utc::now()).unwrap();
        KeyRing::from_records(&[record], Utc::now(), chrono::Duration::hours(1)).unwrap()
    }

    fn signed(ring: &KeyRing, alg: SigningAlgorithm, header: Value, claims: Value) -> String {
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let message = format!("{}.{}", b64(&header), b64(&claims));
        let signature = ring.sign(alg, message.as_bytes()).unwrap();
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn claims(now: i64) -> Value {
        json!({"iss": ISS, "aud": CLIENT, "sub": "248289761001", "exp": now + 300, "iat": now, "nonce": NONCE})
    }

    fn expected(now: i64, algorithms: &[SigningAlgorithm]) -> Expected<'_> {
        Expected { issuer: ISS, client_id: CLIENT, nonce: NONCE, algorithms, now }
    }

    #[test]
    fn a_token_of_each_algorithm_verifies_with_the_provider_keys_and_fails_every_other_check() {
        let now = Utc::now().timestamp();
        for alg in SigningAlgorithm::ALL {
            let r = ring(alg);
            let jwks = Jwks::parse(&r.jwks());
            let kid = r.active_kid(alg).unwrap();
            let header = json!({"alg": alg.name(), "kid": kid, "typ": "JWT"});
            let token = signed(&r, alg, header.clone(), claims(now));
            let ok = verify_id_token(&token, &jwks, &expected(now, &SigningAlgorithm::ALL)).unwrap();
            assert_eq!(ok["sub"], "248289761001", "{alg:?}");
            // A key named nowhere, when there is one key of the algorithm, is that key.
            let unnamed = signed(&r, alg, json!({"alg": alg.name()}), claims(now));
            assert!(verify_id_token(&unnamed, &jwks, &expected(now, &SigningAlgorithm::ALL)).is_ok());

            let check = |c: Value, e: UpstreamTokenError| {
                let t = signed(&r, alg, header.clone(), c);
                assert_eq!(verify_id_token(&t, &jwks, &expected(now, &SigningAlgorithm::ALL)), Err(e), "{alg:?}");
            };
            let with = |k: &str, v: Value| {
                let mut c = claims(now);
                c[k] = v;
                c
            };
            check(with("iss", json!("https://evil.example")), UpstreamTokenError::WrongIssuer);
            check(with("aud", json!("someone-else")), UpstreamTokenError::WrongAudience);
            check(with("aud", json!([CLIENT, "another"])), UpstreamTokenError::WrongAudience);
            check(with("exp", json!(now - 120)), UpstreamTokenError::Expired);
            check(with("iat", json!(now + 600)), UpstreamTokenError::NotYetValid);
            check(with("nonce", json!("replayed")), UpstreamTokenError::WrongNonce);
            let mut several = with("aud", json!([CLIENT, "another"]));
            several["azp"] = json!(CLIENT);
            assert!(
                verify_id_token(
                    &signed(&r, alg, header.clone(), several),
                    &jwks,
                    &expected(now, &SigningAlgorithm::ALL)
                )
                .is_ok()
            );

            // A changed payload, and an algorithm the provider does not advertise.
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            parts[1] = URL_SAFE_NO_PAD.encode(with("sub", json!("someone-else")).to_string());
            assert_eq!(
                verify_id_token(&parts.join("."), &jwks, &expected(now, &SigningAlgorithm::ALL)),
                Err(UpstreamTokenError::BadSignature)
            );
            let others: Vec<SigningAlgorithm> = SigningAlgorithm::ALL.into_iter().filter(|a| *a != alg).collect();
            assert!(matches!(
                verify_id_token(&token, &jwks, &expected(now, &others)),
                Err(UpstreamTokenError::Algorithm(_))
            ));
        }
    }

    #[test]
    fn none_hmac_and_a_key_of_another_algorithm_are_refused() {
        let now = Utc::now().timestamp();
        let rsa = ring(SigningAlgorithm::RS256);
        let jwks = Jwks::parse(&rsa.jwks());
        let all = SigningAlgorithm::ALL;
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims(now)));
        assert_eq!(
            verify_id_token(&none, &jwks, &expected(now, &all)),
            Err(UpstreamTokenError::Algorithm("none".into()))
        );
        let kid = rsa.active_kid(SigningAlgorithm::RS256).unwrap();
        let hs = format!("{}.{}.c2ln", b64(&json!({"alg": "HS256", "kid": kid})), b64(&claims(now)));
        assert_eq!(
            verify_id_token(&hs, &jwks, &expected(now, &all)),
            Err(UpstreamTokenError::Algorithm("HS256".into()))
        );
        // An ES256 token naming the RSA key: the key is not used as another algorithm's.
        let ec = ring(SigningAlgorithm::ES256);
        let confused = signed(&ec, SigningAlgorithm::ES256, json!({"alg": "ES256", "kid": kid}), claims(now));
        assert_eq!(verify_id_token(&confused, &jwks, &expected(now, &all)), Err(UpstreamTokenError::WrongKeyType));
        // A key the provider does not publish.
        let other = signed(&ec, SigningAlgorithm::ES256, json!({"alg": "ES256", "kid": "not-there"}), claims(now));
        assert_eq!(verify_id_token(&other, &jwks, &expected(now, &all)), Err(UpstreamTokenError::UnknownKey));
        // Symmetric, encryption and small RSA keys are not keys at all here.
        let odd = Jwks::parse(&json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "h"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB", "kid": "e"},
            {"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([1u8; 128]), "e": "AQAB", "kid": "small"},
        ]}));
        assert!(odd.is_empty());
    }
}
