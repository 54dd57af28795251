//! Other identity providers a tenant's users may sign in with: their management by the
//! tenant's server and what Tessera learns from an OpenID provider's discovery document (here),
//! the sign-in through one (`sign_in`), and each kind that is not OpenID (`github`). Every call
//! to a provider goes through the outbound guard.

mod github;
mod sign_in;

pub use sign_in::{FederationDone, FederationStart, SignInOption};

use std::time::Duration;

use serde_json::Value;
use tessera_core::federation::{GITHUB_API, GITHUB_WEB, IdentityProvider, ProviderKind, valid_slug};
use tessera_core::keys::SigningAlgorithm;
use tessera_core::{DomainError, FieldError, TenantId, validate};
use tessera_store::{StoreError, constraints};

use crate::{Result, Service, store_err};

/// How long a provider has to answer.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// A provider's fields as the server sends them; on an update, absent fields stay as they are.
/// Read straight from the request body (its wire names are these); no `Debug`, since it holds
/// the client secret.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    pub slug: Option<String>,
    pub kind: Option<String>,
    pub display_name: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub issuer: Option<String>,
    pub web_base_url: Option<String>,
    pub api_base_url: Option<String>,
}

/// What an OpenID provider's discovery document says Tessera needs.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    /// The ID token algorithms it advertises that Tessera knows.
    pub algorithms: Vec<SigningAlgorithm>,
}

fn field(name: &str, code: &'static str, message: impl Into<String>) -> FieldError {
    FieldError::new(name, code, message.into())
}

/// A base URL: http(s), no query or fragment, without a trailing slash.
fn base_url(name: &str, raw: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.query().is_none() && u.fragment().is_none() => {
            Some(trimmed.to_owned())
        }
        _ => {
            errors.push(field(name, "invalid_url", "must be an http(s) URL without a query"));
            None
        }
    }
}

/// Text of 1 to `max` characters, trimmed.
fn text(name: &str, raw: &str, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        errors.push(field(name, "invalid_value", format!("must be 1–{max} characters, without control characters")));
        return None;
    }
    Some(t.to_owned())
}

impl Service {
    /// Reads and checks `{issuer}/.well-known/openid-configuration`: it must name the same
    /// issuer, the endpoints of the code flow and a key set, and an ID token algorithm Tessera
    /// knows.
    pub async fn discover(&self, issuer: &str) -> Result<Discovery> {
        let url = format!("{issuer}/.well-known/openid-configuration");
        let doc = self.fetch_json(&url, None).await.map_err(|why| {
            DomainError::field("issuer", "discovery_failed", format!("its discovery document could not be read: {why}"))
        })?;
        let endpoint = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_owned);
        let bad = |why: &str| DomainError::field("issuer", "discovery_failed", format!("its discovery document {why}"));
        if endpoint("issuer").as_deref() != Some(issuer) {
            return Err(bad("names another issuer"));
        }
        let algorithms: Vec<SigningAlgorithm> = doc["id_token_signing_alg_values_supported"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).filter_map(SigningAlgorithm::from_name).collect())
            // OpenID Connect Discovery: RS256 must be supported when nothing else is said.
            .unwrap_or_else(|| vec![SigningAlgorithm::RS256]);
        if algorithms.is_empty() {
            return Err(bad("advertises no ID token algorithm Tessera knows (EdDSA, ES256, RS256)"));
        }
        Ok(Discovery {
            issuer: issuer.to_owned(),
            authorization_endpoint: endpoint("authorization_endpoint")
                .ok_or_else(|| bad("has no authorization_endpoint"))?,
            token_endpoint: endpoint("token_endpoint").ok_or_else(|| bad("has no token_endpoint"))?,
            jwks_uri: endpoint("jwks_uri").ok_or_else(|| bad("has no jwks_uri"))?,
            userinfo_endpoint: endpoint("userinfo_endpoint"),
            algorithms,
        })
    }

    /// A JSON document from a provider, through the outbound guard; why not, in words.
    pub(crate) async fn fetch_json(&self, url: &str, bearer: Option<&str>) -> std::result::Result<Value, String> {
        let mut request = self.http.get(url).map_err(|e| e.to_string())?;
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let res = request.timeout(PROVIDER_TIMEOUT).header("accept", "application/json").send().await.map_err(|e| {
            if crate::outbound::refused_in(&e) {
                "the address is not a public one".to_owned()
            } else {
                "the provider did not answer".to_owned()
            }
        })?;
        if !res.status().is_success() {
            return Err(format!("the provider answered {}", res.status().as_u16()));
        }
        let bytes = res.bytes().await.map_err(|_| "the answer was cut off".to_owned())?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err("the answer is too large".to_owned());
        }
        serde_json::from_slice(&bytes).map_err(|_| "the answer is not JSON".to_owned())
    }

    /// Applies `input` to `p` (a new provider's defaults, or the stored one), checked field by
    /// field; an OpenID provider's discovery document is read and checked too.
    async fn apply_provider(
        &self,
        mut p: IdentityProvider,
        input: ProviderInput,
        new: bool,
    ) -> Result<IdentityProvider> {
        let mut errors = Vec::new();
        // What the other fields must be depends on the kind; without one, they are not judged.
        let mut kind_known = true;
        if new {
            match input.slug.as_deref().map(str::trim) {
                Some(s) if valid_slug(s) => p.slug = s.to_owned(),
                Some(_) => errors.push(field("slug", "invalid_format", "1–32 of a-z, 0-9 and -, not at either end")),
                None => errors.push(field("slug", "required", "is required")),
            }
            match input.kind.as_deref().map(ProviderKind::parse) {
                Some(Some(kind)) => p.kind = kind,
                Some(None) => errors.push(field("kind", "invalid_choice", "must be oidc or github")),
                None => errors.push(field("kind", "required", "is required")),
            }
            kind_known = !errors.iter().any(|e| e.field == "kind");
        } else {
            if input.slug.as_deref().is_some_and(|s| s != p.slug) {
                errors.push(field("slug", "read_only", "cannot be changed; create another provider"));
            }
            if input.kind.as_deref().is_some_and(|k| k != p.kind.as_str()) {
                errors.push(field("kind", "read_only", "cannot be changed; create another provider"));
            }
        }
        // The sign-in button's words are a name people trust: no characters that disguise one.
        let display_name = match input.display_name.map(|d| validate::name(&d, 1, 64)) {
            Some(Err((code, message))) => {
                errors.push(field("display_name", code, message));
                None
            }
            Some(Ok(d)) => d,
            None => None,
        };
        let mut set = |value: Option<String>, name: &str, max: usize, slot: &mut String| {
            if let Some(v) = value.and_then(|v| text(name, &v, max, &mut errors)) {
                *slot = v;
            } else if new && slot.is_empty() && !errors.iter().any(|e| e.field == name) {
                errors.push(field(name, "required", "is required"));
            }
        };
        set(display_name, "display_name", 64, &mut p.display_name);
        set(input.client_id, "client_id", 256, &mut p.client_id);
        set(input.client_secret, "client_secret", 1024, &mut p.client_secret);
        if let Some(scopes) = input.scopes {
            let ok = !scopes.is_empty()
                && scopes.len() <= 20
                && scopes.iter().all(|s| {
                    !s.is_empty()
                        && s.len() <= 128
                        && s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                });
            if ok {
                p.scopes = scopes;
            } else {
                errors.push(field(
                    "scopes",
                    "invalid_value",
                    "1–20 scopes, each of printable characters without spaces",
                ));
            }
        } else if new {
            p.scopes = p.kind.default_scopes().iter().map(|s| (*s).to_owned()).collect();
        }
        if let Some(raw) = input.issuer {
            p.issuer = base_url("issuer", &raw, &mut errors);
        }
        if let Some(raw) = input.web_base_url {
            p.web_base_url = base_url("web_base_url", &raw, &mut errors);
        }
        if let Some(raw) = input.api_base_url {
            p.api_base_url = base_url("api_base_url", &raw, &mut errors);
        }
        match p.kind {
            _ if !kind_known => {}
            ProviderKind::Oidc if p.issuer.is_none() && !errors.iter().any(|e| e.field == "issuer") => {
                errors.push(field("issuer", "required", "an OpenID provider needs its issuer"));
            }
            ProviderKind::Github if p.issuer.is_some() => {
                errors.push(field(
                    "issuer",
                    "not_applicable",
                    "GitHub is no OpenID provider; set web_base_url and api_base_url instead",
                ));
            }
            ProviderKind::Oidc if p.web_base_url.is_some() || p.api_base_url.is_some() => {
                errors.push(field(
                    "web_base_url",
                    "not_applicable",
                    "an OpenID provider's endpoints come from its discovery document",
                ));
            }
            ProviderKind::Github => {
                p.web_base_url.get_or_insert_with(|| GITHUB_WEB.to_owned());
                p.api_base_url.get_or_insert_with(|| GITHUB_API.to_owned());
            }
            ProviderKind::Oidc => {}
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        if let (ProviderKind::Oidc, Some(issuer)) = (p.kind, &p.issuer) {
            self.discover(issuer).await?;
        }
        Ok(p)
    }

    /// A new provider for the tenant's users to sign in with.
    pub async fn create_identity_provider(&self, tenant: TenantId, input: ProviderInput) -> Result<IdentityProvider> {
        let now = self.now();
        let blank = IdentityProvider {
            tenant_id: tenant,
            slug: String::new(),
            kind: ProviderKind::Oidc,
            display_name: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            scopes: Vec::new(),
            issuer: None,
            web_base_url: None,
            api_base_url: None,
            created_at: now,
            updated_at: now,
        };
        let p = self.apply_provider(blank, input, true).await?;
        let inserted = self.store.insert_identity_provider(&p).await;
        self.providers_changed(tenant).await;
        match inserted {
            Err(StoreError::Conflict { constraint: constraints::IDENTITY_PROVIDER }) => {
                Err(DomainError::Conflict { field: "slug" })
            }
            other => other.map_err(store_err).map(|()| p),
        }
    }

    pub async fn identity_providers(&self, tenant: TenantId) -> Result<Vec<IdentityProvider>> {
        self.store.list_identity_providers(tenant).await.map_err(store_err)
    }

    pub async fn identity_provider(&self, tenant: TenantId, slug: &str) -> Result<IdentityProvider> {
        self.store
            .find_identity_provider(tenant, slug)
            .await
            .map_err(store_err)?
            .ok_or(DomainError::NotFound("identity provider"))
    }

    /// Changes some of a provider's fields; its slug and kind stay.
    pub async fn update_identity_provider(
        &self,
        tenant: TenantId,
        slug: &str,
        input: ProviderInput,
    ) -> Result<IdentityProvider> {
        let current = self.identity_provider(tenant, slug).await?;
        let mut p = self.apply_provider(current, input, false).await?;
        p.updated_at = self.now();
        let updated = self.store.update_identity_provider(&p).await;
        self.providers_changed(tenant).await;
        match updated {
            Err(StoreError::NotFound) => Err(DomainError::NotFound("identity provider")),
            other => other.map_err(store_err).map(|()| p),
        }
    }

    pub async fn delete_identity_provider(&self, tenant: TenantId, slug: &str) -> Result<()> {
        let deleted = self.store.delete_identity_provider(tenant, slug).await.map_err(store_err);
        self.providers_changed(tenant).await;
        if deleted? { Ok(()) } else { Err(DomainError::NotFound("identity provider")) }
    }
}
