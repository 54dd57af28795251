//! The access-token verifier on arbitrary text: structure, header, algorithm pinning and
//! signature checks must refuse garbage without panicking, and nothing unsigned may pass.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tessera_auth::{KeyRing, TokenVerifier};
use tessera_core::keys::SigningAlgorithm;

static VERIFIER: LazyLock<TokenVerifier> = LazyLock::new(|| {
    let now = chrono::Utc::now();
    // One key of each algorithm, so that every verification path is reached.
    let keys: Vec<_> =
        SigningAlgorithm::ALL.iter().map(|alg| KeyRing::generate(*alg, now).expect("a new key")).collect();
    let ring = KeyRing::from_records(&keys, now, chrono::Duration::hours(1)).expect("a key ring");
    TokenVerifier::new(ring, "http://localhost", Duration::from_secs(3600))
});

fuzz_target!(|token: &str| {
    let now = chrono::Utc::now();
    assert!(VERIFIER.verify(token, now).is_err(), "a token not signed by the ring verified");
    let _ = VERIFIER.verify_mfa(token, now);
});
