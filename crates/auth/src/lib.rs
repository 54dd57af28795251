//! Credentials: password hashing on a bounded pool, signing keys, access tokens (EdDSA JWTs)
//! with a cache of verified tokens, and the random secrets (refresh tokens, API keys).

pub mod keys;
pub mod password;
pub mod secret;
pub mod token;
pub mod totp;
pub mod upstream;
pub mod webauthn;

pub use keys::KeyRing;
pub use password::PasswordHasher;
pub use token::{AccessClaims, TokenError, TokenVerifier};
