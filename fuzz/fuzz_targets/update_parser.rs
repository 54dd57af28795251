//! The JSON update parser every surface shares: arbitrary bytes as a request body, then
//! `UserPatch::parse` and `apply` on a user. Errors are expected; panics are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::patch::{Limits, UserPatch};

fuzz_target!(|bytes: &[u8]| {
    let Ok(serde_json::Value::Object(body)) = serde_json::from_slice::<serde_json::Value>(bytes) else { return };
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date");
    if let Ok(patch) = UserPatch::parse(&body, &Limits::default(), today) {
        let now = chrono::DateTime::from_timestamp(1_795_372_800, 0).expect("a time");
        let mut user = tessera_core::user::User::new(tessera_core::TenantId::new(), now);
        let _ = patch.apply(&mut user);
    }
});
