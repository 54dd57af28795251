//! Every text validator on arbitrary text: each must answer, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::validate;

fuzz_target!(|text: &str| {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date");
    let _ = validate::username(text);
    let _ = validate::sanitize_username(text);
    let _ = validate::text(text, 1, 256);
    let _ = validate::email(text);
    let _ = validate::phone_number(text);
    let _ = validate::locale(text);
    let _ = validate::timezone(text);
    let _ = validate::birthdate(text, today);
    let _ = validate::https_url(text);
    let _ = tessera_core::oauth::redirect_uri(text);
    let _ = tessera_core::oauth::pkce_matches(text, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    // zxcvbn is quadratic in the length; the API caps passwords well below this.
    if text.len() <= 256 {
        let _ = validate::password(text, &["ada@example.com"]);
    }
});
