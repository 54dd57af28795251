//! GitHub as an identity provider. Its OAuth 2.0 is not OpenID: there is no ID token, so who
//! signed in comes from its API (`/user`, and `/user/emails` for the primary address and
//! whether GitHub has verified it), read with the access token the code is redeemed for. The
//! claims are then the same as an OpenID provider's, and the sign-in goes on the same way.

use serde_json::{Map, Value, json};
use tessera_core::federation::{GITHUB_API, GITHUB_WEB, IdentityProvider};

use super::sign_in::{failed, unreachable};
use crate::{Result, Service};

/// Where the browser is sent to sign in at GitHub.
pub(crate) fn authorization_endpoint(p: &IdentityProvider) -> String {
    format!("{}/login/oauth/authorize", p.web_base_url.as_deref().unwrap_or(GITHUB_WEB))
}

impl Service {
    /// Who GitHub says signed in, as OpenID claims: `sub` (the account's numeric id, which
    /// never changes, unlike its login), `email` and `email_verified` (the primary address),
    /// `name`, `preferred_username` (the login) and `picture`.
    pub(crate) async fn github_claims(
        &self,
        p: &IdentityProvider,
        code: &str,
        verifier: &str,
    ) -> Result<Map<String, Value>> {
        let slug = p.slug.as_str();
        let web = p.web_base_url.as_deref().unwrap_or(GITHUB_WEB);
        let api = p.api_base_url.as_deref().unwrap_or(GITHUB_API);
        let answer =
            self.redeem_upstream_code(p, &format!("{web}/login/oauth/access_token"), code, verifier, true).await?;
        let Some(token) = answer["access_token"].as_str() else {
            // GitHub answers 200 with `{"error": …}` for a bad code.
            let error = answer["error"].as_str().unwrap_or("").chars().take(64).collect::<String>();
            tracing::warn!(provider = slug, error, "GitHub did not redeem the code");
            return Err(failed("the provider did not confirm the sign-in; start again"));
        };
        let user = self
            .fetch_json(&format!("{api}/user"), Some(token))
            .await
            .map_err(|e| unreachable(slug, "reading the GitHub user", &e))?;
        let id = match &user["id"] {
            Value::Number(n) => n.to_string(),
            _ => return Err(unreachable(slug, "reading the GitHub user", &"it has no id")),
        };
        // The address list needs the `user:email` scope; without it, the profile's public one,
        // unverified.
        let emails = self.fetch_json(&format!("{api}/user/emails"), Some(token)).await.unwrap_or(Value::Null);
        let primary = emails.as_array().and_then(|all| all.iter().find(|e| e["primary"] == json!(true)));
        let (email, verified) = match primary {
            Some(e) => (e["email"].clone(), e["verified"] == json!(true)),
            None => (user["email"].clone(), false),
        };
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(id));
        claims.insert("email".into(), email);
        claims.insert("email_verified".into(), json!(verified));
        claims.insert("name".into(), user["name"].clone());
        claims.insert("preferred_username".into(), user["login"].clone());
        claims.insert("picture".into(), user["avatar_url"].clone());
        Ok(claims)
    }
}
