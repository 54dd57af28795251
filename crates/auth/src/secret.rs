//! Random secrets and their stored form. Secrets are shown once and stored only as SHA-256
//! hashes: they are high-entropy, so a fast hash is enough and lookups stay indexed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// `bytes` of OS randomness, base64url, after `prefix` (which says what the secret is for, so a
/// leaked one can be recognised by scanners).
pub fn random_token(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(buf))
}

pub fn fill_random(buf: &mut [u8]) {
    // The OS generator failing is not recoverable and must not yield a weak secret.
    #[allow(clippy::expect_used, reason = "no secret may be made without OS randomness")]
    getrandom::fill(buf).expect("the operating system's random generator failed");
}

/// Hex SHA-256: the stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Compares two secrets' hashes without an early exit, so timing says nothing of the prefix.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hash_stably() {
        let a = random_token("rt_", 32);
        let b = random_token("rt_", 32);
        assert!(a.starts_with("rt_") && a.len() == 3 + 43);
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert!(hashes_match(&hash_secret(&a), &hash_secret(&a)));
        assert!(!hashes_match(&hash_secret(&a), &hash_secret(&b)));
    }
}
