//! OAuth 2.0 and OpenID Connect as use cases: registering clients, authenticating them, the
//! authorization-code grant with PKCE (RFC 7636), single-use codes, and ID tokens with the
//! standard claims (OIDC Core §5.1). The wire forms are in `tessera-api`'s `oidc` module.

use std::borrow::Cow;

use chrono::Duration;
use serde_json::{Map, Value, json};
use tessera_auth::secret::{hash_secret, hashes_match, random_token};
use tessera_auth::token::IdClaims;
use tessera_core::oauth::{self, AuthorizationGrant, GrantType, OAuthClient};
use tessera_core::user::{User, UserStatus};
use tessera_core::{DomainError, FieldError, SessionId, TenantId, validate};
use tessera_store::{NewUser, Redemption};

use crate::identity::{ClientInfo, Tokens, ensure_usable};
use crate::{Principal, Result, Service, store_err};

/// How long an authorization code can be redeemed (RFC 6749 §4.1.2 recommends ≤ 10 min).
const CODE_TTL_SECONDS: i64 = 60;
/// How long an ID token is valid; it proves a sign-in, it is not a credential to keep.
const ID_TOKEN_TTL_SECONDS: i64 = 300;
/// Failed authentications of one client id per window.
const CLIENT_FAILURES: u32 = 20;
const CLIENT_WINDOW_SECONDS: i64 = 900;
/// The scopes Tessera grants; others are dropped from the granted scope (RFC 6749 §3.3).
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A client as the server API registers it.
#[derive(Debug, Clone, Default)]
pub struct NewOAuthClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub public: bool,
}

/// A new client and its secret, shown this once (`None` for public clients), with the
/// service-account user of a `client_credentials` client.
#[derive(Debug)]
pub struct CreatedOAuthClient {
    pub client: OAuthClient,
    pub client_secret: Option<String>,
    pub user: Option<User>,
}

/// An error of the OAuth protocol (RFC 6749 §5.2), or a domain error underneath (internal,
/// rate-limited) that the surface reports its usual way.
#[derive(Debug)]
pub enum ProtocolError {
    Protocol { error: &'static str, description: Cow<'static, str> },
    Domain(DomainError),
}

impl ProtocolError {
    pub fn new(error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self::Protocol { error, description: description.into() }
    }

    fn invalid_grant(description: &'static str) -> Self {
        Self::new("invalid_grant", description)
    }
}

impl From<DomainError> for ProtocolError {
    fn from(e: DomainError) -> Self {
        Self::Domain(e)
    }
}

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC §3.1.2.1),
/// as the hosted pages read them from the query string.
#[derive(Debug, Clone, Default)]
pub struct AuthorizationRequest {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
}

/// Why an authorization request is refused.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or the redirect URI cannot be trusted, so the user is told and nobody is
    /// redirected (RFC 6749 §4.1.2.1).
    Show(Cow<'static, str>),
    /// The client is told at its (verified) redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: Cow<'static, str>,
    },
    Domain(DomainError),
}

/// A request that passed every check, ready to be shown for consent and granted.
#[derive(Debug, Clone)]
pub struct ValidAuthorization {
    pub client: OAuthClient,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// `prompt=none`: no page may be shown; without a signed-in user the answer is an error.
    pub prompt_none: bool,
    /// `prompt=login`: the user must sign in again, even with a session.
    pub prompt_login: bool,
}

impl ValidAuthorization {
    /// The redirect that reports `error` to the client.
    pub fn refuse(&self, error: &'static str, description: &'static str) -> AuthorizeError {
        AuthorizeError::Redirect {
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            error,
            description: description.into(),
        }
    }
}

/// The tokens an authorization code buys.
#[derive(Debug)]
pub struct CodeTokens {
    pub tokens: Tokens,
    pub id_token: Option<String>,
    pub scope: String,
}

/// The claims a user's token may reveal, by granted scope (OIDC Core §5.1, §5.4).
pub fn standard_claims(user: &User, public_url: &str, scope: &str) -> Map<String, Value> {
    let has = |s: &str| scope.split(' ').any(|x| x == s);
    let p = &user.profile;
    let mut m = Map::new();
    if has("profile") {
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                m.insert(k.to_owned(), v);
            }
        };
        put("name", json!(user.shown_name()));
        put("given_name", json!(p.first_name));
        put("family_name", json!(p.last_name));
        put("preferred_username", json!(user.username));
        put("picture", json!(p.avatar.as_ref().map(|a| a.url(public_url))));
        put("locale", json!(p.locale));
        put("zoneinfo", json!(p.timezone));
        put("birthdate", json!(p.birthdate));
        put("updated_at", json!(user.updated_at.timestamp()));
    }
    if has("email")
        && let Some(e) = &user.primary_email
    {
        m.insert("email".into(), json!(e));
        m.insert("email_verified".into(), json!(user.primary_email_verified));
    }
    if has("phone")
        && let Some(ph) = &p.phone_number
    {
        m.insert("phone_number".into(), json!(ph));
    }
    m
}

/// Keeps the scopes Tessera knows, in request order, without repeats.
fn granted_scope(requested: Option<&str>) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in requested.unwrap_or("").split(' ').filter(|s| SCOPES.contains(s)) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(" ")
}

impl Service {
    /// Registers a client. Confidential clients get a secret; a `client_credentials` client
    /// also gets a service-account user, the identity its tokens stand for.
    pub async fn create_oauth_client(&self, tenant_id: TenantId, req: NewOAuthClient) -> Result<CreatedOAuthClient> {
        self.tenant(tenant_id).await?;
        let mut errors = Vec::new();
        let name = validate::name(&req.name, 1, 100)
            .map_err(|(c, m)| errors.push(FieldError::new("name", c, m)))
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut grant_types = Vec::new();
        for (i, g) in req.grant_types.iter().enumerate() {
            match GrantType::parse(g) {
                Some(g) if !grant_types.contains(&g) => grant_types.push(g),
                Some(_) => {}
                None => errors.push(FieldError::new(
                    format!("grant_types[{i}]"),
                    "unsupported_grant_type",
                    "must be authorization_code, client_credentials or refresh_token",
                )),
            }
        }
        if req.grant_types.is_empty() {
            errors.push(FieldError::new("grant_types", "required", "give at least one grant type"));
        }
        let mut redirect_uris = Vec::new();
        for (i, u) in req.redirect_uris.iter().enumerate() {
            match oauth::redirect_uri(u) {
                Ok(u) => redirect_uris.push(u),
                Err((c, m)) => errors.push(FieldError::new(format!("redirect_uris[{i}]"), c, m)),
            }
        }
        if redirect_uris.len() > 20 {
            errors.push(FieldError::new("redirect_uris", "too_many", "at most 20 redirect URIs"));
        }
        if grant_types.contains(&GrantType::AuthorizationCode) && req.redirect_uris.is_empty() {
            errors.push(FieldError::new(
                "redirect_uris",
                "required",
                "the authorization_code grant needs at least one redirect URI",
            ));
        }
        if req.public && grant_types.contains(&GrantType::ClientCredentials) {
            errors.push(FieldError::new(
                "grant_types",
                "not_allowed",
                "a public client cannot use client_credentials: it has no secret",
            ));
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let now = self.now();
        let user = grant_types.contains(&GrantType::ClientCredentials).then(|| {
            let mut u = User::new(tenant_id, now);
            u.is_service_account = true;
            u.status = UserStatus::Active;
            u.profile.display_name = Some(name.clone());
            u
        });
        let client = OAuthClient {
            client_id: random_token("tsr_ci_", 16),
            tenant_id,
            name,
            redirect_uris,
            grant_types,
            is_public: req.public,
            user_id: user.as_ref().map(|u| u.id),
            created_at: now,
        };
        self.insert_client(client, user).await
    }

    /// Stores a client, minting its secret unless it is public.
    pub(crate) async fn insert_client(&self, client: OAuthClient, user: Option<User>) -> Result<CreatedOAuthClient> {
        let client_secret = (!client.is_public).then(|| random_token("tsr_cs_", 32));
        let secret_hash = client_secret.as_deref().map(hash_secret);
        let empty = Map::new();
        let records = match &user {
            Some(u) => self.user_created(u, tessera_core::events::By::Server, None).await?,
            None => Vec::new(),
        };
        let new_user = user.as_ref().map(|u| NewUser {
            user: u,
            password_hash: None,
            secure_metadata: &empty,
            new_image: None,
            records: &records,
        });
        self.store.insert_oauth_client(&client, secret_hash.as_deref(), new_user).await.map_err(store_err)?;
        Ok(CreatedOAuthClient { client, client_secret, user })
    }

    pub async fn list_oauth_clients(&self, tenant_id: TenantId) -> Result<Vec<OAuthClient>> {
        self.store.list_oauth_clients(tenant_id).await.map_err(store_err)
    }

    /// Deletes a client; its tokens stop working (a machine client's user goes with it).
    pub async fn delete_oauth_client(&self, tenant_id: TenantId, client_id: &str) -> Result<()> {
        if self.store.delete_oauth_client(tenant_id, client_id).await.map_err(store_err)? {
            Ok(())
        } else {
            Err(DomainError::NotFound("client"))
        }
    }

    /// Authenticates a client of `tenant` (any tenant when `None`: the client id names it, as
    /// on ZenML's login): a confidential client by its secret, a public one
    /// by its id alone (it must then prove itself with PKCE). Unknown client and wrong secret
    /// look alike, and failures are rate-limited per client id.
    pub async fn authenticate_client(
        &self,
        tenant: Option<TenantId>,
        client_id: &str,
        secret: Option<&str>,
    ) -> Result<OAuthClient, ProtocolError> {
        let now = self.now();
        let key = format!("client:{client_id}");
        self.limits.check(&key, CLIENT_FAILURES, CLIENT_WINDOW_SECONDS, now).await?;
        let found = self.store.find_oauth_client(client_id).await.map_err(store_err)?;
        let ok =
            found.filter(|(c, _)| tenant.is_none_or(|t| c.tenant_id == t)).and_then(|(c, hash)| match (hash, secret) {
                (Some(hash), Some(secret)) if hashes_match(&hash_secret(secret), &hash) => Some(c),
                (None, _) if c.is_public => Some(c),
                _ => None,
            });
        match ok {
            Some(c) => Ok(c),
            None => {
                self.limits.record(&key, CLIENT_WINDOW_SECONDS, now).await;
                Err(ProtocolError::new("invalid_client", "unknown client or wrong secret"))
            }
        }
    }

    /// Failed token requests from one client address are limited like sign-in attempts
    /// (the tenant's per-address limit per minute). Only failures count, so a busy backend
    /// refreshing many tokens from one address is never throttled.
    pub async fn check_token_address(&self, tenant: TenantId, info: &ClientInfo) -> Result<(), ProtocolError> {
        let Some(ip) = &info.ip_address else { return Ok(()) };
        let limit = self.tenant(tenant).await?.settings.attempts_per_address_per_minute;
        Ok(self.limits.check(&format!("token:{tenant}:{ip}"), limit, 60, self.now()).await?)
    }

    pub async fn record_token_failure(&self, tenant: TenantId, info: &ClientInfo) {
        if let Some(ip) = &info.ip_address {
            self.limits.record(&format!("token:{tenant}:{ip}"), 60, self.now()).await;
        }
    }

    /// OAuth2 client credentials (RFC 6749 §4.4): a session of the client's service-account
    /// user, whose access token says who the machine is.
    pub async fn client_credentials(&self, client: &OAuthClient, info: &ClientInfo) -> Result<Tokens, ProtocolError> {
        let Some(user_id) = client.user_id.filter(|_| client.allows(GrantType::ClientCredentials)) else {
            return Err(ProtocolError::new("unauthorized_client", "this client may not use client_credentials"));
        };
        let now = self.now();
        let tenant = self.tenant(client.tenant_id).await?;
        let user = self
            .store
            .find_user(client.tenant_id, user_id, now)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ProtocolError::new("invalid_client", "the client's account is gone"))?;
        ensure_usable(&user, now).map_err(|e| ProtocolError::new("invalid_grant", e.to_string()))?;
        // One session per client, reused by every grant while it outlives the token it would
        // carry: a machine asking for a token every minute must not pile up a session row per
        // grant (and counting its sessions on every read). Revoking it, or deleting the client,
        // still ends every token issued on it; the next grant then starts a new one.
        let outlives = now + chrono::Duration::seconds(tenant.settings.access_token_ttl_seconds);
        let reusable = self
            .store
            .list_sessions(tenant.id, user_id, now)
            .await
            .map_err(store_err)?
            .into_iter()
            .find(|s| s.client_id.as_deref() == Some(client.client_id.as_str()) && s.expires_at > outlives);
        let mut tokens = match reusable {
            Some(session) => self.tokens_for(&tenant, user, session.id, String::new(), session.client_id).await?,
            None => {
                let id = SessionId::new();
                self.start_session(&tenant, user, info, id, Some(&client.client_id), "client_credentials").await?
            }
        };
        // RFC 6749 §4.4.3: no refresh token for client credentials.
        tokens.refresh_token.clear();
        Ok(tokens)
    }

    /// Checks an authorization request in the order RFC 6749 §4.1.2.1 demands: until the
    /// client and redirect URI are known good, nothing is redirected.
    pub async fn check_authorization(
        &self,
        tenant: TenantId,
        req: &AuthorizationRequest,
    ) -> Result<ValidAuthorization, AuthorizeError> {
        let client_id = req.client_id.as_deref().ok_or(AuthorizeError::Show("client_id is missing".into()))?;
        let client = match self.store.find_oauth_client(client_id).await {
            Ok(Some((c, _))) if c.tenant_id == tenant => c,
            Ok(_) => return Err(AuthorizeError::Show("this application is not registered here".into())),
            Err(e) => return Err(AuthorizeError::Domain(store_err(e))),
        };
        let redirect_uri = match &req.redirect_uri {
            Some(uri) if client.has_redirect_uri(uri) => uri.clone(),
            Some(_) => {
                return Err(AuthorizeError::Show(
                    "the redirect_uri does not match any registered for this application".into(),
                ));
            }
            // RFC 6749 §3.1.2.3: optional only when exactly one is registered.
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => return Err(AuthorizeError::Show("redirect_uri is missing".into())),
        };
        let prompts: Vec<&str> = req.prompt.as_deref().unwrap_or("").split(' ').collect();
        let mut valid = ValidAuthorization {
            redirect_uri,
            scope: granted_scope(req.scope.as_deref()),
            state: req.state.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            prompt_none: prompts.contains(&"none"),
            prompt_login: prompts.contains(&"login"),
            client,
        };
        if !valid.client.allows(GrantType::AuthorizationCode) {
            return Err(valid.refuse("unauthorized_client", "this client may not use the authorization code grant"));
        }
        match req.response_type.as_deref() {
            Some("code") => {}
            Some(_) => return Err(valid.refuse("unsupported_response_type", "only response_type=code is supported")),
            None => return Err(valid.refuse("invalid_request", "response_type is missing")),
        }
        match (&req.code_challenge, req.code_challenge_method.as_deref()) {
            (Some(c), Some("S256")) if oauth::is_valid_code_challenge(c) => {}
            (Some(_), Some("S256")) => {
                return Err(valid.refuse("invalid_request", "code_challenge must be 43 base64url characters"));
            }
            (Some(_), _) => {
                return Err(
                    valid.refuse("invalid_request", "code_challenge_method must be S256; plain is not accepted")
                );
            }
            (None, Some(_)) => return Err(valid.refuse("invalid_request", "code_challenge is missing")),
            (None, None) if valid.client.is_public => {
                return Err(valid.refuse("invalid_request", "public clients must use PKCE (code_challenge with S256)"));
            }
            (None, None) => {}
        }
        if valid.nonce.as_ref().is_some_and(|n| n.len() > 512) || valid.state.as_ref().is_some_and(|s| s.len() > 2048) {
            return Err(valid.refuse("invalid_request", "state or nonce is too long"));
        }
        if valid.scope.is_empty() && req.scope.as_deref().is_some_and(|s| !s.trim().is_empty()) {
            return Err(valid.refuse("invalid_scope", "none of the requested scopes is supported"));
        }
        valid.nonce = valid.nonce.filter(|n| !n.is_empty());
        Ok(valid)
    }

    /// The user approved: a single-use code for the client, bound to the redirect URI, the
    /// PKCE challenge and the nonce.
    pub async fn grant_authorization(&self, who: &Principal, v: &ValidAuthorization, auth_time: i64) -> Result<String> {
        if who.tenant_id() != v.client.tenant_id {
            return Err(DomainError::TenantMismatch);
        }
        let code = random_token("tsr_ac_", 32);
        let grant = AuthorizationGrant {
            tenant_id: v.client.tenant_id,
            client_id: v.client.client_id.clone(),
            user_id: who.user.id,
            redirect_uri: v.redirect_uri.clone(),
            code_challenge: v.code_challenge.clone(),
            nonce: v.nonce.clone(),
            scope: v.scope.clone(),
            auth_time,
            expires_at: self.now() + Duration::seconds(CODE_TTL_SECONDS),
        };
        self.store.insert_authorization_code(&hash_secret(&code), &grant).await.map_err(store_err)?;
        Ok(code)
    }

    /// Redeems a code (RFC 6749 §4.1.3): once, by the client it was issued to, with the same
    /// redirect URI and the PKCE verifier. A second redemption revokes what the first issued.
    pub async fn redeem_code(
        &self,
        client: &OAuthClient,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        info: &ClientInfo,
    ) -> Result<CodeTokens, ProtocolError> {
        let now = self.now();
        let sid = SessionId::new();
        let grant = match self.store.redeem_authorization_code(&hash_secret(code), sid, now).await.map_err(store_err)? {
            Redemption::Redeemed(g) => g,
            Redemption::Replayed => {
                tracing::warn!(client = %client.client_id, "an authorization code was used twice; its tokens are revoked");
                return Err(ProtocolError::invalid_grant(
                    "the code was already used; the tokens issued with it have been revoked",
                ));
            }
            Redemption::Invalid => return Err(ProtocolError::invalid_grant("the code is unknown or has expired")),
        };
        if grant.client_id != client.client_id || grant.tenant_id != client.tenant_id {
            return Err(ProtocolError::invalid_grant("the code was issued to another client"));
        }
        if redirect_uri.is_some_and(|r| r != grant.redirect_uri) {
            return Err(ProtocolError::invalid_grant("redirect_uri differs from the authorization request's"));
        }
        match (&grant.code_challenge, verifier) {
            (Some(challenge), Some(v)) if oauth::pkce_matches(v, challenge) => {}
            (Some(_), Some(_)) => return Err(ProtocolError::invalid_grant("the code_verifier does not match")),
            (Some(_), None) => return Err(ProtocolError::new("invalid_request", "code_verifier is required")),
            (None, Some(_)) => {
                return Err(ProtocolError::invalid_grant("a code_verifier was sent but no code_challenge was"));
            }
            (None, None) => {}
        }
        let tenant = self.tenant(grant.tenant_id).await?;
        let user = self
            .store
            .find_user(grant.tenant_id, grant.user_id, now)
            .await
            .map_err(store_err)?
            .ok_or(ProtocolError::invalid_grant("the account is gone"))?;
        ensure_usable(&user, now).map_err(|e| ProtocolError::new("invalid_grant", e.to_string()))?;
        let tokens =
            self.start_session(&tenant, user, info, sid, Some(&client.client_id), "authorization_code").await?;
        let id_token = if grant.has_scope("openid") {
            let t = now.timestamp();
            let claims = IdClaims {
                iss: self.tokens.issuer(tenant.id),
                sub: tokens.user.id,
                aud: client.client_id.clone(),
                azp: client.client_id.clone(),
                iat: t,
                exp: t + ID_TOKEN_TTL_SECONDS,
                auth_time: grant.auth_time,
                nonce: grant.nonce.clone(),
                profile: standard_claims(&tokens.user, &self.config.public_url, &grant.scope),
            };
            Some(self.sign(&tenant, |alg| self.tokens.issue_id_token(&claims, alg)).await?)
        } else {
            None
        };
        Ok(CodeTokens { tokens, id_token, scope: grant.scope })
    }
}
