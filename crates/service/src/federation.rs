//! Other identity providers a tenant's users may sign in with: their management by the
//! tenant's server, and what Tessera learns from an OpenID provider's discovery document.
//! Every call to a provider goes through the outbound guard.

use std::time::Duration;

use serde_json::Value;
use tessera_auth::secret::{hash_secret, hashes_match, random_token};
use tessera_auth::upstream::{Expected, Jwks, verify_id_token};
use tessera_core::events::{Activity, By, Event, Record};
use tessera_core::federation::{FederationState, GITHUB_API, GITHUB_WEB, IdentityProvider, ProviderKind, valid_slug};
use tessera_core::keys::SigningAlgorithm;
use tessera_core::tenant::Tenant;
use tessera_core::user::{AuthProvider, User, UserStatus};
use tessera_core::{DomainError, FieldError, TenantId, UserId, validate};
use tessera_store::{NewUser, StoreError, constraints};

use crate::identity::ClientInfo;
use crate::{Principal, Result, Service, Tokens, store_err};

/// How long a provider has to answer.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// A provider's fields as the server sends them; on an update, absent fields stay as they are.
#[derive(Debug, Clone, Default)]
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
        let mut set = |value: Option<String>, name: &str, max: usize, slot: &mut String| {
            if let Some(v) = value.and_then(|v| text(name, &v, max, &mut errors)) {
                *slot = v;
            } else if new && slot.is_empty() && !errors.iter().any(|e| e.field == name) {
                errors.push(field(name, "required", "is required"));
            }
        };
        set(input.display_name, "display_name", 64, &mut p.display_name);
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
        match self.store.insert_identity_provider(&p).await {
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
        match self.store.update_identity_provider(&p).await {
            Err(StoreError::NotFound) => Err(DomainError::NotFound("identity provider")),
            other => other.map_err(store_err).map(|()| p),
        }
    }

    pub async fn delete_identity_provider(&self, tenant: TenantId, slug: &str) -> Result<()> {
        if self.store.delete_identity_provider(tenant, slug).await.map_err(store_err)? {
            Ok(())
        } else {
            Err(DomainError::NotFound("identity provider"))
        }
    }
}

/// How long a sign-in through a provider may take, from the redirect to its answer.
const STATE_LIFETIME_SECONDS: i64 = 600;

/// How a provider's answer ended.
#[derive(Debug)]
pub enum FederationDone {
    /// Signed in; then to the place given.
    SignedIn(Tokens, String),
    /// The signed-in user linked the provider; then to the place given.
    Linked(String),
}

/// Where to send the browser to sign in at a provider, and the value of the cookie that binds
/// the sign-in to this browser.
#[derive(Debug)]
pub struct FederationStart {
    pub location: String,
    pub binding: String,
}

/// Why a sign-in through a provider did not happen, in words for the person.
pub(crate) fn failed(why: &'static str) -> DomainError {
    DomainError::Unauthenticated(why)
}

/// A provider that did not answer: the log says what and why, the page that it is down.
pub(crate) fn unreachable(slug: &str, what: &str, e: &dyn std::fmt::Display) -> DomainError {
    tracing::warn!(provider = slug, error = %e, "{what}");
    failed("the provider cannot be reached just now; try again in a moment")
}

impl Service {
    /// The redirect URI registered at the provider.
    pub fn federation_callback(&self, tenant: TenantId, slug: &str) -> String {
        format!("{}/oidc/{tenant}/federation/{slug}/callback", self.config.public_url.trim_end_matches('/'))
    }

    /// The providers the sign-in page offers.
    pub async fn sign_in_providers(&self, tenant: TenantId) -> Result<Vec<IdentityProvider>> {
        self.identity_providers(tenant).await
    }

    /// Starts a sign-in through provider `slug`: a state bound to this browser, a nonce and a
    /// PKCE verifier are kept, and the browser goes to the provider.
    pub async fn start_federation(
        &self,
        tenant: TenantId,
        slug: &str,
        return_to: &str,
        link: Option<UserId>,
    ) -> Result<FederationStart> {
        use base64::Engine;
        use sha2::Digest;
        let provider = self.identity_provider(tenant, slug).await?;
        let authorization_endpoint = match provider.kind {
            ProviderKind::Oidc => self.provider_discovery(&provider).await?.authorization_endpoint,
            ProviderKind::Github => crate::github::authorization_endpoint(&provider),
        };
        let (state, nonce, verifier, binding) =
            (random_token("", 32), random_token("", 16), random_token("", 32), random_token("", 32));
        let now = self.now();
        self.store
            .insert_federation_state(&FederationState {
                hash: hash_secret(&state),
                tenant_id: tenant,
                provider: slug.to_owned(),
                browser_hash: hash_secret(&binding),
                nonce: nonce.clone(),
                code_verifier: verifier.clone(),
                return_to: return_to.to_owned(),
                link_user: link,
                expires_at: now + chrono::Duration::seconds(STATE_LIFETIME_SECONDS),
            })
            .await
            .map_err(store_err)?;
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let mut url = url::Url::parse(&authorization_endpoint)
            .map_err(|_| failed("the provider's sign-in address is not valid"))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", &self.federation_callback(tenant, slug))
            .append_pair("scope", &provider.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(FederationStart { location: url.into(), binding })
    }

    /// The provider's answer: the state must be this browser's, unused and fresh; the code is
    /// redeemed and the ID token checked strictly; then the person signs in as the user the
    /// provider's subject is linked to, or a new one, or (when the tenant allows it and the
    /// provider vouches for the address) the account that has the address. Returns the tokens
    /// and where the browser goes next.
    pub async fn finish_federation(
        &self,
        tenant: TenantId,
        slug: &str,
        state: &str,
        code: &str,
        binding: Option<&str>,
        client: &ClientInfo,
    ) -> Result<FederationDone> {
        let now = self.now();
        let expired = "this sign-in has expired or was used already; start again";
        let taken = self.store.take_federation_state(&hash_secret(state), now).await.map_err(store_err)?;
        let taken = taken.filter(|s| s.tenant_id == tenant && s.provider == slug).ok_or(failed(expired))?;
        if binding.is_none_or(|b| !hashes_match(&hash_secret(b), &taken.browser_hash)) {
            return Err(failed("this sign-in was started in another browser; start again here"));
        }
        let provider = self.identity_provider(tenant, slug).await?;
        let claims = match provider.kind {
            ProviderKind::Oidc => self.oidc_claims(&provider, code, &taken).await?,
            ProviderKind::Github => self.github_claims(&provider, code, &taken.code_verifier).await?,
        };
        if let Some(user) = taken.link_user {
            self.link_provider(tenant, user, slug, &claims).await?;
            return Ok(FederationDone::Linked(taken.return_to));
        }
        let tenant = self.tenant(tenant).await?;
        let user = self.federated_user(&tenant, &provider, &claims, client).await?;
        let tokens = self.finish_sign_in(&tenant, user, client, &format!("federation:{slug}")).await?;
        Ok(FederationDone::SignedIn(tokens, taken.return_to))
    }

    /// Links the signed-in `user` to who the provider says signed in there, unless that is
    /// another user's already.
    async fn link_provider(
        &self,
        tenant: TenantId,
        user: UserId,
        slug: &str,
        claims: &serde_json::Map<String, Value>,
    ) -> Result<()> {
        let now = self.now();
        let subject = claims["sub"].as_str().unwrap_or_default();
        let taken = || DomainError::forbidden("this account at the provider is linked to another user");
        match self.store.find_identity(tenant, slug, subject).await.map_err(store_err)? {
            Some(linked) if linked == user => return Ok(()),
            Some(_) => return Err(taken()),
            None => {}
        }
        let user =
            self.store.find_user(tenant, user, now).await.map_err(store_err)?.ok_or(DomainError::NotFound("user"))?;
        let records = self.provider_records("user.provider_linked", &user, slug, now).await?;
        match self.store.link_identity(&user, slug, subject, now, &records).await {
            Err(StoreError::Conflict { constraint: constraints::IDENTITY_LINK }) => Err(taken()),
            other => other.map_err(store_err),
        }
    }

    /// The providers the signed-in user is linked to: (slug, since).
    pub async fn my_providers(&self, who: &Principal) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>> {
        let all = self.store.list_identities(who.tenant_id(), who.user.id).await.map_err(store_err)?;
        Ok(all.into_iter().map(|(slug, _, since)| (slug, since)).collect())
    }

    /// Unlinks the signed-in user from a provider, unless it is their only way to sign in.
    pub async fn unlink_provider(&self, who: &Principal, slug: &str) -> Result<()> {
        let linked = self.my_providers(who).await?;
        if !linked.iter().any(|(s, _)| s == slug) {
            return Err(DomainError::NotFound("linked provider"));
        }
        if !who.user.has_password && linked.len() == 1 {
            return Err(DomainError::forbidden("this provider is your only way to sign in, so it stays linked"));
        }
        let now = self.now();
        let records = self.provider_records("user.provider_unlinked", &who.user, slug, now).await?;
        if self.store.unlink_identity(who.tenant_id(), who.user.id, slug, &records).await.map_err(store_err)? {
            Ok(())
        } else {
            Err(DomainError::NotFound("linked provider"))
        }
    }

    /// An OpenID provider's discovery document, or the page's words for why not.
    async fn provider_discovery(&self, provider: &IdentityProvider) -> Result<Discovery> {
        let issuer = provider.issuer.as_deref().unwrap_or_default();
        self.discover(issuer).await.map_err(|e| unreachable(&provider.slug, "reading the discovery document", &e))
    }

    /// Who an OpenID provider says signed in: its ID token's claims, checked strictly.
    async fn oidc_claims(
        &self,
        provider: &IdentityProvider,
        code: &str,
        state: &FederationState,
    ) -> Result<serde_json::Map<String, Value>> {
        let slug = provider.slug.as_str();
        let discovery = self.provider_discovery(provider).await?;
        let answer =
            self.redeem_upstream_code(provider, &discovery.token_endpoint, code, &state.code_verifier, false).await?;
        let id_token = answer["id_token"].as_str().ok_or_else(|| {
            tracing::warn!(provider = slug, "the provider's token answer has no id_token");
            failed("the provider did not confirm the sign-in; start again")
        })?;
        let keys = self
            .fetch_json(&discovery.jwks_uri, None)
            .await
            .map_err(|e| unreachable(slug, "reading the key set", &e))?;
        let expected = Expected {
            issuer: &discovery.issuer,
            client_id: &provider.client_id,
            nonce: &state.nonce,
            algorithms: &discovery.algorithms,
            now: self.now().timestamp(),
        };
        let mut claims = verify_id_token(id_token, &Jwks::parse(&keys), &expected).map_err(|e| {
            tracing::warn!(provider = slug, error = %e, "an ID token was refused");
            failed("the provider's answer could not be verified; start again")
        })?;
        // Many providers put the profile and address only in the UserInfo answer when the code
        // flow also gives an access token (OpenID Connect Core 5.4). Its `sub` must be the ID
        // token's (5.3.2); what the ID token says wins.
        if let (Some(endpoint), Some(access)) = (&discovery.userinfo_endpoint, answer["access_token"].as_str()) {
            let info =
                self.fetch_json(endpoint, Some(access)).await.map_err(|e| unreachable(slug, "reading UserInfo", &e))?;
            if info.get("sub") != claims.get("sub") {
                tracing::warn!(provider = slug, "the UserInfo answer is about another subject");
                return Err(failed("the provider's answer could not be verified; start again"));
            }
            if let Value::Object(info) = info {
                for (k, v) in info {
                    claims.entry(k).or_insert(v);
                }
            }
        }
        Ok(claims)
    }

    /// Redeems the provider's code at `token_endpoint`, with PKCE; the answer. The client
    /// authenticates with HTTP Basic (`client_secret_basic`, every OpenID provider's default),
    /// or with `secret_in_form` in the form (`client_secret_post`, as GitHub documents it):
    /// never both, which OpenID providers refuse.
    pub(crate) async fn redeem_upstream_code(
        &self,
        provider: &IdentityProvider,
        token_endpoint: &str,
        code: &str,
        verifier: &str,
        secret_in_form: bool,
    ) -> Result<Value> {
        let refused = failed("the provider did not confirm the sign-in; start again");
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let callback = self.federation_callback(provider.tenant_id, &provider.slug);
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", callback.as_str()),
            ("code_verifier", verifier),
        ];
        if secret_in_form {
            form.extend([
                ("client_id", provider.client_id.as_str()),
                ("client_secret", provider.client_secret.as_str()),
            ]);
        }
        let request = self.http.post(token_endpoint).map_err(|e| {
            tracing::warn!(provider = %provider.slug, error = %e, "the token endpoint was refused");
            failed("the provider did not confirm the sign-in; start again")
        })?;
        let request = if secret_in_form {
            request
        } else {
            request.basic_auth(encode(&provider.client_id), Some(encode(&provider.client_secret)))
        };
        let res =
            request.timeout(PROVIDER_TIMEOUT).header("accept", "application/json").form(&form).send().await.map_err(
                |e| {
                    tracing::warn!(provider = %provider.slug, error = %e, "the token endpoint did not answer");
                    failed("the provider cannot be reached just now; try again in a moment")
                },
            )?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            // The provider's error code only: never the body, which may echo what was sent.
            let error = body["error"].as_str().unwrap_or("").chars().take(64).collect::<String>();
            tracing::warn!(provider = %provider.slug, status = status.as_u16(), error, "the provider refused the code");
            return Err(refused);
        }
        Ok(body)
    }

    /// The user the claims sign in as: the linked one, else a new one, else (allowed and
    /// vouched for) the account with the address.
    async fn federated_user(
        &self,
        tenant: &Tenant,
        provider: &IdentityProvider,
        claims: &serde_json::Map<String, Value>,
        client: &ClientInfo,
    ) -> Result<User> {
        let now = self.now();
        let subject = claims["sub"].as_str().unwrap_or_default();
        let slug = provider.slug.as_str();
        let claim = |name: &str| claims.get(name).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
        let email = claim("email").and_then(|e| validate::email(e).ok());
        let vouched = claims.get("email_verified").and_then(Value::as_bool).unwrap_or(false);
        let text = |name: &str| claim(name).and_then(|v| validate::text(v, 1, 256).ok().flatten());
        let (first, last, name) = (text("given_name"), text("family_name"), text("name"));
        if let Some(id) = self.store.find_identity(tenant.id, slug, subject).await.map_err(store_err)? {
            let user = self
                .store
                .find_user(tenant.id, id, now)
                .await
                .map_err(store_err)?
                .ok_or(DomainError::NotFound("user"))?;
            // The fields the provider owns follow what it says now, on an account it made.
            let stale = user.auth_provider == AuthProvider::Oidc
                && (user.profile.first_name != first
                    || user.profile.last_name != last
                    || user.profile.display_name != name);
            if !stale {
                return Ok(user);
            }
            let refresh = move |u: &mut User| {
                u.profile.first_name = first.clone();
                u.profile.last_name = last.clone();
                u.profile.display_name = name.clone();
                Ok(())
            };
            let extras = crate::me::Extras { event: Some("user.updated"), ..crate::me::Extras::default() };
            return self.modify_user(tenant.id, id, refresh, extras).await;
        }
        let exists = "an account with this email address exists already: sign in with it, and link this provider from your account page";
        if let Some(existing) = match &email {
            Some(e) => self.store.find_email(tenant.id, e).await.map_err(store_err)?,
            None => None,
        } {
            if !(tenant.settings.link_verified_emails && vouched && existing.verified) {
                return Err(DomainError::forbidden(exists));
            }
            let user = self
                .store
                .find_user(tenant.id, existing.user_id, now)
                .await
                .map_err(store_err)?
                .ok_or(DomainError::NotFound("user"))?;
            let records = self.provider_records("user.provider_linked", &user, slug, now).await?;
            self.store.link_identity(&user, slug, subject, now, &records).await.map_err(store_err)?;
            return Ok(user);
        }
        let mut user = User::new(tenant.id, now);
        user.auth_provider = AuthProvider::Oidc;
        user.primary_email = email;
        user.primary_email_verified = vouched && user.primary_email.is_some();
        if user.primary_email_verified {
            user.status = UserStatus::Active;
        }
        (user.profile.first_name, user.profile.last_name, user.profile.display_name) = (first, last, name);
        // The provider's picture, when it is an https URL; the provider's login name is not
        // taken as the username, which is unique in the tenant and may be someone else's.
        user.profile.avatar = claim("picture")
            .and_then(|p| validate::https_url(p).ok())
            .map(|url| tessera_core::user::Avatar::Url { url });
        user.profile.oauth_provider = Some(slug.to_owned());
        user.profile.oauth_id = Some(subject.to_owned());
        let mut records = self.user_created(&user, By::User, Some(client)).await?;
        records.extend(self.provider_records("user.provider_linked", &user, slug, now).await?);
        let empty = serde_json::Map::new();
        let new =
            NewUser { user: &user, password_hash: None, secure_metadata: &empty, new_image: None, records: &records };
        match self.store.insert_linked_user(new, slug, subject).await {
            Ok(()) => Ok(user),
            // Taken meanwhile by another account.
            Err(StoreError::Conflict { constraint: constraints::USER_EMAIL }) => Err(DomainError::forbidden(exists)),
            Err(e) => Err(store_err(e)),
        }
    }

    /// `kind` (`user.provider_linked` or `user.provider_unlinked`) and its entry in the user's
    /// trail.
    async fn provider_records(
        &self,
        kind: &'static str,
        user: &User,
        slug: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Record>> {
        let mut records = self
            .events(user.tenant_id, kind, || {
                let rendered = (self.config.render_user)(user, &self.config.public_url, now);
                let provider = serde_json::json!(slug);
                Event::new(user.tenant_id, kind, format!(r#"{{"user":{rendered},"provider":{provider}}}"#), now)
            })
            .await?;
        let entry = Activity::new(user.tenant_id, user.id, kind, By::User, now)
            .with_details(serde_json::json!({"provider": slug}));
        records.push(Record::Activity(entry));
        Ok(records)
    }
}
