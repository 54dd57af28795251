//! TOTP (RFC 6238): 6-digit codes from HMAC-SHA1 over 30-second steps, accepted one step
//! either side of now. Replay protection (a step is accepted once) lives in the store, which
//! records the last accepted step atomically.

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP_SECONDS: i64 = 30;
pub const DIGITS: u32 = 6;
/// The shortest secret accepted: RFC 4226 asks for at least 128 bits, 160 recommended; 80 bits
/// is the floor authenticator apps and Stack Auth's clients use.
pub const MIN_SECRET_BYTES: usize = 10;

/// The code for a time step, with `digits` digits (RFC 4226 dynamic truncation).
pub fn code_at(secret: &[u8], step: i64, digits: u32) -> u32 {
    #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    bin % 10u32.pow(digits)
}

pub fn step_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The step whose code `code` is, within one step of `unix_seconds`; `None` if it matches none.
/// Every candidate is computed, so timing does not say which one matched.
pub fn matching_step(secret: &[u8], code: &str, unix_seconds: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let wanted: u32 = code.parse().ok()?;
    let now = step_of(unix_seconds);
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        if code_at(secret, step, DIGITS) == wanted && found.is_none() {
            found = Some(step);
        }
    }
    found
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as `otpauth://` URIs carry secrets.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            out.push(BASE32[((n >> (35 - i * 5)) & 31) as usize] as char);
        }
    }
    out
}

/// Decodes RFC 4648 base32 (case-insensitive, padding and spaces ignored).
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        let v = BASE32.iter().position(|b| *b == c.to_ascii_uppercase())? as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_follows_rfc_4648() {
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("mzxw6ytboi").unwrap(), b"foobar");
        assert!(base32_decode("not base32!").is_none());
    }

    /// RFC 6238 appendix B, SHA-1 rows (8 digits).
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(code_at(secret, step_of(t), 8), code, "T={t}");
        }
    }

    #[test]
    fn one_step_of_skew_either_side_and_no_more() {
        let secret = b"12345678901234567890";
        let now = 1_700_000_000;
        let code = |t: i64| format!("{:06}", code_at(secret, step_of(t), DIGITS));
        assert_eq!(matching_step(secret, &code(now), now), Some(step_of(now)));
        assert_eq!(matching_step(secret, &code(now - 30), now), Some(step_of(now) - 1));
        assert_eq!(matching_step(secret, &code(now + 30), now), Some(step_of(now) + 1));
        assert_eq!(matching_step(secret, &code(now - 90), now), None);
        assert_eq!(matching_step(secret, "12345", now), None);
        assert_eq!(matching_step(secret, "abcdef", now), None);
    }
}
