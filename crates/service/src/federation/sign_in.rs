//! A sign-in through another provider: the start (a state bound to the browser, a nonce,
//! PKCE), the provider's answer (the state used once, the code redeemed, who signed in as the
//! provider says it, checked), and the account it signs in as, links or is refused.

use std::sync::Arc;

use serde_json::Value;
use tessera_auth::secret::{hash_secret, hashes_match, random_token};
use tessera_auth::upstream::{Expected, Jwks, verify_id_token};
use tessera_core::events::By;
use tessera_core::federation::{FederationState, IdentityProvider, ProviderKind};
use tessera_core::tenant::Tenant;
use tessera_core::user::{AuthProvider, User, UserStatus};
use tessera_core::{DomainError, TenantId, UserId, validate};
use tessera_store::{NewUser, StoreError, constraints};

use super::{Discovery, PROVIDER_TIMEOUT};
use crate::identity::ClientInfo;
use crate::{Principal, Result, Service, Tokens, store_err};

/// How long a sign-in through a provider may take, from the redirect to its answer.
const STATE_LIFETIME_SECONDS: i64 = 600;

/// A provider as the hosted pages offer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInOption {
    pub slug: String,
    pub display_name: String,
}

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

    /// The providers the hosted pages offer, from a short-lived cache: another instance's
    /// change shows within seconds, this instance's at once.
    pub async fn sign_in_providers(&self, tenant: TenantId) -> Result<Arc<Vec<SignInOption>>> {
        let store = Arc::clone(&self.store);
        self.sign_in_providers
            .try_get_with(tenant, async move {
                let all = store.list_identity_providers(tenant).await.map_err(store_err)?;
                let options = all.into_iter().map(|p| SignInOption { slug: p.slug, display_name: p.display_name });
                Ok::<_, DomainError>(Arc::new(options.collect()))
            })
            .await
            .map_err(|e| crate::unshared(&e))
    }

    /// After a change of the tenant's providers: the pages offer them anew at once.
    pub(crate) async fn providers_changed(&self, tenant: TenantId) {
        self.sign_in_providers.invalidate(&tenant).await;
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
            ProviderKind::Github => super::github::authorization_endpoint(&provider),
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
        let records =
            self.user_records("user.provider_linked", &user, "provider", serde_json::json!(slug), now).await?;
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
        let records =
            self.user_records("user.provider_unlinked", &who.user, "provider", serde_json::json!(slug), now).await?;
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
        let text = |name: &str| claim(name).and_then(|v| validate::name(v, 1, 256).ok().flatten());
        let (first, last, name) = (text("given_name"), text("family_name"), text("name"));
        if let Some(id) = self.store.find_identity(tenant.id, slug, subject).await.map_err(store_err)? {
            let user = self
                .store
                .find_user(tenant.id, id, now)
                .await
                .map_err(store_err)?
                .ok_or(DomainError::NotFound("user"))?;
            // The fields the provider owns follow what it says now, on an account it made: the
            // names, and the address when it gives one (kept when another account has it).
            if user.auth_provider != AuthProvider::Oidc {
                return Ok(user);
            }
            let address = email.clone().filter(|e| user.primary_email.as_deref() != Some(e.as_str()));
            let names_stale =
                user.profile.first_name != first || user.profile.last_name != last || user.profile.display_name != name;
            if address.is_none() && !names_stale {
                return Ok(user);
            }
            let refresh = |address: Option<String>| {
                let (first, last, name) = (first.clone(), last.clone(), name.clone());
                move |u: &mut User| {
                    (u.profile.first_name, u.profile.last_name, u.profile.display_name) =
                        (first.clone(), last.clone(), name.clone());
                    if let Some(a) = &address {
                        u.primary_email = Some(a.clone());
                        u.primary_email_verified = vouched;
                    }
                    Ok(())
                }
            };
            let extras = || crate::me::Extras { event: Some("user.updated"), ..crate::me::Extras::default() };
            return match self.modify_user(tenant.id, id, refresh(address.clone()), extras()).await {
                Err(DomainError::Conflict { .. }) if address.is_some() => {
                    tracing::info!(provider = slug, "the provider's new address is another account's; it is not taken");
                    self.modify_user(tenant.id, id, refresh(None), extras()).await
                }
                other => other,
            };
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
            let records =
                self.user_records("user.provider_linked", &user, "provider", serde_json::json!(slug), now).await?;
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
        records
            .extend(self.user_records("user.provider_linked", &user, "provider", serde_json::json!(slug), now).await?);
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
}
