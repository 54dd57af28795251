//! OAuth 2.0 clients and authorization grants: what a client may do, which redirect URIs it may
//! use, and what an authorization code stands for. The protocol's wire forms live in
//! `tessera-api`; the rules (exact redirect matching, PKCE S256 for public clients) live here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::validate::{Checked, Invalid};
use crate::{TenantId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [Self::AuthorizationCode, Self::ClientCredentials, Self::RefreshToken];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// A registered client. Confidential clients hold a secret (stored hashed); public clients
/// (browser and native apps) hold none and must use PKCE. A client allowed `client_credentials`
/// acts as its own service-account user, so `GET /v1/me` answers for the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub tenant_id: TenantId,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub is_public: bool,
    pub user_id: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

impl OAuthClient {
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Redirect URIs match exactly, character for character (RFC 9700 §4.1.3): no prefix, no
    /// wildcard, no normalisation an attacker could play with.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }
}

/// A redirect URI a client may register: absolute, no fragment, no credentials; `https`, or
/// `http` only on a loopback host (RFC 8252 §7.3), or a private-use scheme of a native app
/// (`com.example.app:/callback`, RFC 8252 §7.1).
pub fn redirect_uri(raw: &str) -> Checked<String> {
    let bad = |m: &'static str| -> Invalid { ("invalid_redirect_uri", m.into()) };
    if raw.len() > 2000 {
        return Err(("too_long", "must be at most 2000 characters".into()));
    }
    let u = url::Url::parse(raw).map_err(|_| bad("must be an absolute URI"))?;
    if u.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("must not contain credentials"));
    }
    let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match u.scheme() {
        "https" if u.host_str().is_some_and(|h| !h.is_empty()) => {}
        "http" if loopback => {}
        "http" => return Err(bad("http is allowed only for localhost, 127.0.0.1 and [::1]; use https")),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => {
            return Err(bad("this scheme is not allowed"));
        }
        s if s.contains('.') => {} // a private-use scheme in reverse-domain form
        _ => return Err(bad("use https, a loopback http URI, or a reverse-domain private-use scheme")),
    }
    // Stored as given: matching is exact against what the client sends, not a normalised form.
    Ok(raw.to_owned())
}

/// What an authorization code stands for, fixed when the user approves and checked when the
/// client redeems it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationGrant {
    pub tenant_id: TenantId,
    pub client_id: String,
    pub user_id: UserId,
    pub redirect_uri: String,
    /// The S256 code challenge, when PKCE was used.
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scope: String,
    /// When the user authenticated (seconds), for the ID token's `auth_time`.
    pub auth_time: i64,
    pub expires_at: DateTime<Utc>,
}

impl AuthorizationGrant {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn is_valid_code_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// An S256 challenge is the base64url SHA-256 of a verifier: 43 characters.
pub fn is_valid_code_challenge(c: &str) -> bool {
    c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.6, S256 only (`plain` would let an intercepted request redeem the code).
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    if !is_valid_code_verifier(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    // Both are public-length strings; the comparison need not be constant-time, but it is cheap.
    computed.len() == challenge.len() && computed.bytes().zip(challenge.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_appendix_b_example_matches() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", challenge));
        assert!(!pkce_matches("short", challenge));
    }

    #[test]
    fn redirect_uris_are_checked() {
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com/cb?x=1",
            "http://localhost:8080/cb",
            "http://127.0.0.1:9/cb",
            "com.example.app:/oauth",
        ] {
            assert_eq!(redirect_uri(ok).unwrap(), ok);
        }
        for bad in [
            "/relative",
            "http://example.com/cb",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "javascript:alert(1)",
            "myapp:/cb",
        ] {
            assert!(redirect_uri(bad).is_err(), "{bad} was accepted");
        }
    }
}
