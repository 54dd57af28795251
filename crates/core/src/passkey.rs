//! Passkeys: a user's WebAuthn credentials, and the ceremonies that make and use them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ids::{TenantId, UserId};

/// The longest name a passkey may be given.
pub const MAX_NAME_CHARS: usize = 64;

/// One passkey of a user, as its owner sees it: never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// How an assertion names the credential: base64url, unique in the tenant.
    pub credential_id: String,
    pub name: String,
    /// The authenticator's signature counter at the last use (0 for those that keep none).
    pub sign_count: u32,
    /// Whether the credential may be synced to other devices, and whether it is.
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A passkey with the relying party's record of its credential (public key, counter, flags),
/// opaque here: what an assertion is checked against.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    pub passkey: Passkey,
    pub credential: String,
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// A signed-in user adds a passkey.
    Register,
    /// Anyone signs in with a passkey, naming no account.
    SignIn,
    /// A user who gave their password proves the second factor with a passkey.
    SecondFactor,
}

impl CeremonyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SignIn => "sign_in",
            Self::SecondFactor => "second_factor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Register, Self::SignIn, Self::SecondFactor].into_iter().find(|p| p.as_str() == s)
    }
}

/// A ceremony between its options and the answer, kept server-side: found by the hash of the
/// id the client holds, used once, short-lived, bound to its user when it has one.
#[derive(Debug, Clone)]
pub struct Ceremony {
    pub hash: String,
    pub tenant_id: TenantId,
    pub user_id: Option<UserId>,
    pub purpose: CeremonyPurpose,
    /// The relying party's state (the challenge and what the answer must meet), opaque here.
    pub state: String,
    pub expires_at: DateTime<Utc>,
}
