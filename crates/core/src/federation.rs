//! Other identity providers a tenant lets its users sign in with: an OpenID provider, found
//! through its discovery document, or GitHub's OAuth 2.0 (which is not OpenID).

use chrono::{DateTime, Utc};

use crate::ids::TenantId;

/// What protocol a provider speaks. Each kind is one small module of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenID Connect provider: its endpoints and keys come from `{issuer}/.well-known/
    /// openid-configuration`, and who signed in comes from its ID token.
    Oidc,
    /// GitHub: OAuth 2.0, then its user and email endpoints.
    Github,
}

impl ProviderKind {
    pub const NAMES: &[&str] = &["oidc", "github"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Github => "github",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Oidc, Self::Github].into_iter().find(|k| k.as_str() == s)
    }

    /// The scopes asked for when the tenant names none.
    pub fn default_scopes(self) -> &'static [&'static str] {
        match self {
            Self::Oidc => &["openid", "email", "profile"],
            Self::Github => &["read:user", "user:email"],
        }
    }
}

/// GitHub's own addresses; a tenant may point them elsewhere (GitHub Enterprise, or a stand-in
/// in tests).
pub const GITHUB_WEB: &str = "https://github.com";
pub const GITHUB_API: &str = "https://api.github.com";

/// One provider of a tenant, by its slug (which names it in URLs and in the users it links).
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    pub tenant_id: TenantId,
    /// `[a-z0-9-]`, 1–32 characters, unique within the tenant.
    pub slug: String,
    pub kind: ProviderKind,
    /// What the sign-in page's button says: "Continue with {display_name}".
    pub display_name: String,
    /// Tessera's client id at the provider.
    pub client_id: String,
    /// Tessera's client secret at the provider: write-only on the API, sent only to the
    /// provider's token endpoint.
    pub client_secret: String,
    pub scopes: Vec<String>,
    /// `Oidc`: the issuer, exactly as its discovery document and ID tokens say it.
    pub issuer: Option<String>,
    /// `Github`: where its web (authorize, token) and API (user, emails) endpoints are.
    pub web_base_url: Option<String>,
    pub api_base_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("tenant_id", &self.tenant_id)
            .field("slug", &self.slug)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// A sign-in through a provider under way, between the redirect to it and its answer.
#[derive(Clone, PartialEq, Eq)]
pub struct FederationState {
    /// SHA-256 of the `state` parameter sent to the provider.
    pub hash: String,
    pub tenant_id: TenantId,
    pub provider: String,
    /// SHA-256 of the browser's binding cookie.
    pub browser_hash: String,
    pub nonce: String,
    /// The PKCE verifier the code is redeemed with.
    pub code_verifier: String,
    /// Where the browser goes once signed in (the account page, or an authorization request).
    pub return_to: String,
    /// The signed-in user who is linking the provider, rather than signing in through it.
    pub link_user: Option<crate::ids::UserId>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for FederationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationState")
            .field("tenant_id", &self.tenant_id)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// Whether `slug` can name a provider: `[a-z0-9-]`, 1–32 characters, not starting or ending
/// with `-`.
pub fn valid_slug(slug: &str) -> bool {
    (1..=32).contains(&slug.len())
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slug_is_short_lower_case_and_url_safe() {
        for good in ["google", "azure-ad", "gh2", "a"] {
            assert!(valid_slug(good), "{good}");
        }
        for bad in ["", "Google", "-x", "x-", "a b", "a/b", "é", &"x".repeat(33)] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
