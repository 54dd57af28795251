//! Passkeys: the WebAuthn relying party. The ceremonies' verification (attestation, signature,
//! challenge, origin, RP ID hash, flags, signature counter) is webauthn-rs's, through its core
//! crate; this module chooses the policy and keeps the state and credentials as opaque JSON
//! text, so that the layers above store them without knowing WebAuthn's types.
//!
//! The policy: discoverable credentials (sign-in without a username), user verification
//! *preferred* rather than required, so that a security key without a PIN can still be a
//! passkey, and the caller sees whether the user was verified (a second factor only then).
//! webauthn-rs's high-level API always requires verification, hence its core.

use std::time::Duration;

use url::Url;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, COSEAlgorithm, CreationChallengeResponse, Credential,
    CredentialID, PublicKeyCredential, RegisterPublicKeyCredential, RegistrationState, RequestChallengeResponse,
    ResidentKeyRequirement, UserVerificationPolicy,
};

/// How long a browser may take over a ceremony; the stored state lives as long.
pub const CEREMONY_SECONDS: u64 = 300;

/// Why a ceremony's answer was refused, in words a client may be shown.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// Not a `PublicKeyCredential` of the right shape.
    #[error("the credential is not a WebAuthn credential in JSON: {0}")]
    Malformed(String),
    /// The authenticator's signature counter did not move forward: a cloned authenticator.
    #[error("the passkey's signature counter went backwards")]
    CounterWentBackwards,
    /// Any other failed check (challenge, origin, RP ID, signature, flags).
    #[error("the passkey could not be verified: {0}")]
    Refused(String),
}

fn refused(e: WebauthnError) -> PasskeyError {
    match e {
        WebauthnError::CredentialPossibleCompromise => PasskeyError::CounterWentBackwards,
        other => PasskeyError::Refused(other.to_string()),
    }
}

fn internal<E: std::fmt::Display>(e: E) -> PasskeyError {
    PasskeyError::Refused(format!("internal: {e}"))
}

/// A credential a registration made: what to keep, by id.
#[derive(Debug)]
pub struct NewCredential {
    /// The credential id, base64url without padding: how an assertion names it.
    pub id: String,
    /// The public key, counter and flags, as the relying party reads them back.
    pub stored: String,
    pub backup_eligible: bool,
    pub backup_state: bool,
}

/// A verified assertion.
#[derive(Debug)]
pub struct Assertion {
    pub user_verified: bool,
    pub backup_state: bool,
    pub counter: u32,
    /// The credential with its counter and backup state moved on, to store in its place.
    pub stored: String,
}

/// The relying party: one RP ID for the deployment, the origins its pages and apps run on.
pub struct RelyingParty {
    core: WebauthnCore,
    rp_id: String,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty").field("rp_id", &self.rp_id).finish()
    }
}

/// Whether `host` is a valid RP ID: a domain name (an IP address is not one).
pub fn valid_rp_id(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.parse::<std::net::IpAddr>().is_err()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether `origin`'s host is `rp_id` or under it; a loopback address counts as `localhost`.
fn within(origin: &Url, rp_id: &str) -> bool {
    let host = match origin.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => "localhost".to_owned(),
        Some(url::Host::Ipv6(ip)) if ip.is_loopback() => "localhost".to_owned(),
        _ => return false,
    };
    host == rp_id || host.ends_with(&format!(".{rp_id}"))
}

impl RelyingParty {
    /// `rp_id` and the origins credentials may be used from; each origin must be on the RP ID
    /// or a subdomain of it.
    pub fn new(rp_id: &str, origins: &[Url]) -> Result<Self, String> {
        if !valid_rp_id(rp_id) {
            return Err(format!("{rp_id:?} cannot be a WebAuthn RP ID: it must be a domain name, not an IP address"));
        }
        if origins.is_empty() {
            return Err("give at least one WebAuthn origin".into());
        }
        for o in origins {
            if !within(o, rp_id) {
                return Err(format!("the WebAuthn origin {o} is not on the RP ID {rp_id} or a subdomain of it"));
            }
        }
        let timeout = Duration::from_secs(CEREMONY_SECONDS);
        let core = WebauthnCore::new_unsafe_experts_only(rp_id, rp_id, origins.to_vec(), timeout, None, None);
        Ok(Self { core, rp_id: rp_id.to_owned() })
    }

    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// The options for `navigator.credentials.create` and the state to keep until the answer.
    /// `user_handle` names the user to the authenticator (the user's id: no personal data);
    /// `exclude` are the user's credentials already registered (base64url ids).
    pub fn start_registration(
        &self,
        rp_name: &str,
        user_handle: &[u8],
        user_name: &str,
        display_name: &str,
        exclude: &[String],
    ) -> Result<(serde_json::Value, String), PasskeyError> {
        let exclude: Vec<CredentialID> = exclude.iter().filter_map(|id| decode_id(id)).collect();
        let builder = self
            .core
            .new_challenge_register_builder(user_handle, user_name, display_name)
            .map_err(refused)?
            .attestation(AttestationConveyancePreference::None)
            .credential_algorithms(vec![COSEAlgorithm::ES256, COSEAlgorithm::EDDSA, COSEAlgorithm::RS256])
            .user_verification_policy(UserVerificationPolicy::Preferred)
            .require_resident_key(true)
            .exclude_credentials((!exclude.is_empty()).then_some(exclude));
        let (mut options, state): (CreationChallengeResponse, RegistrationState) =
            self.core.generate_challenge_register(builder).map_err(refused)?;
        options.public_key.rp.name = rp_name.to_owned();
        if let Some(sel) = options.public_key.authenticator_selection.as_mut() {
            sel.resident_key = Some(ResidentKeyRequirement::Required);
        }
        Ok((serde_json::to_value(&options).map_err(internal)?, serde_json::to_string(&state).map_err(internal)?))
    }

    /// Checks a registration's answer against its state; the new credential.
    pub fn finish_registration(
        &self,
        credential: serde_json::Value,
        state: &str,
    ) -> Result<NewCredential, PasskeyError> {
        let answer: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|e| PasskeyError::Malformed(e.to_string()))?;
        let state: RegistrationState = serde_json::from_str(state).map_err(internal)?;
        let cred = self.core.register_credential(&answer, &state, None).map_err(refused)?;
        Ok(NewCredential {
            id: encode_id(cred.cred_id.as_slice()),
            backup_eligible: cred.backup_eligible,
            backup_state: cred.backup_state,
            stored: serde_json::to_string(&cred).map_err(internal)?,
        })
    }

    /// The options for `navigator.credentials.get` and the state to keep. With no `allowed`
    /// credentials (stored form), any discoverable credential of the RP ID may answer.
    pub fn start_assertion(&self, allowed: &[String]) -> Result<(serde_json::Value, String), PasskeyError> {
        let creds = allowed.iter().map(|s| serde_json::from_str::<Credential>(s)).collect::<Result<Vec<_>, _>>();
        let builder = self
            .core
            .new_challenge_authenticate_builder(creds.map_err(internal)?, Some(UserVerificationPolicy::Preferred))
            .map_err(refused)?;
        let (options, state): (RequestChallengeResponse, AuthenticationState) =
            self.core.generate_challenge_authenticate(builder).map_err(refused)?;
        Ok((serde_json::to_value(&options).map_err(internal)?, serde_json::to_string(&state).map_err(internal)?))
    }

    /// Checks an assertion against its state and the stored credential it names.
    pub fn finish_assertion(&self, answer: &Answer, state: &str, stored: &str) -> Result<Assertion, PasskeyError> {
        let state: AuthenticationState = serde_json::from_str(state).map_err(internal)?;
        let mut cred: Credential = serde_json::from_str(stored).map_err(internal)?;
        let result = self.core.authenticate_single_credential(&answer.0, &state, &cred).map_err(refused)?;
        if result.counter() > cred.counter {
            cred.counter = result.counter();
        }
        (cred.backup_state, cred.backup_eligible) = (result.backup_state(), result.backup_eligible());
        Ok(Assertion {
            user_verified: result.user_verified(),
            backup_state: result.backup_state(),
            counter: result.counter(),
            stored: serde_json::to_string(&cred).map_err(internal)?,
        })
    }
}

/// An assertion as the client sent it, read before it is checked: it names its credential.
#[derive(Debug)]
pub struct Answer(PublicKeyCredential);

impl Answer {
    pub fn parse(credential: serde_json::Value) -> Result<Self, PasskeyError> {
        let c: PublicKeyCredential =
            serde_json::from_value(credential).map_err(|e| PasskeyError::Malformed(e.to_string()))?;
        if c.type_ != "public-key" {
            return Err(PasskeyError::Malformed("type must be \"public-key\"".into()));
        }
        Ok(Self(c))
    }

    /// The credential's id, base64url without padding.
    pub fn credential_id(&self) -> String {
        encode_id(self.0.get_credential_id())
    }

    /// The user handle the authenticator returned, if any.
    pub fn user_handle(&self) -> Option<&[u8]> {
        self.0.get_user_unique_id()
    }
}

fn encode_id(raw: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_id(id: &str) -> Option<CredentialID> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rp_id_is_a_domain_and_origins_are_on_it() {
        assert!(valid_rp_id("localhost") && valid_rp_id("login.example.com"));
        assert!(!valid_rp_id("127.0.0.1") && !valid_rp_id("::1") && !valid_rp_id("") && !valid_rp_id("a..b"));
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(RelyingParty::new("example.com", &[url("https://app.example.com")]).is_ok());
        assert!(RelyingParty::new("localhost", &[url("http://127.0.0.1:8080")]).is_ok());
        let err = RelyingParty::new("example.com", &[url("https://example.org")]).unwrap_err();
        assert!(err.contains("not on the RP ID"), "{err}");
        assert!(RelyingParty::new("10.0.0.5", &[url("http://10.0.0.5")]).unwrap_err().contains("IP address"));
    }

    #[test]
    fn registration_options_ask_for_a_discoverable_key_with_verification_preferred() {
        let rp = RelyingParty::new("localhost", &[Url::parse("http://localhost:8080").unwrap()]).unwrap();
        let (options, state) = rp.start_registration("Acme", &[7; 16], "ada", "Ada", &[]).unwrap();
        let pk = &options["publicKey"];
        assert_eq!(pk["rp"], serde_json::json!({"id": "localhost", "name": "Acme"}));
        assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(pk["authenticatorSelection"]["userVerification"], "preferred");
        assert!(pk["challenge"].as_str().is_some_and(|c| c.len() >= 43));
        assert!(!state.is_empty());
        let (options, _) = rp.start_assertion(&[]).unwrap();
        assert_eq!(options["publicKey"]["rpId"], "localhost");
        assert!(options["publicKey"]["allowCredentials"].as_array().is_none_or(Vec::is_empty));
    }
}
