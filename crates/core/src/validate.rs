//! Field validation: every rule of the field table, each done by a real library where one exists
//! (`email_address`, `phonenumber`, `icu_locale_core`, `chrono-tz`, `imagesize`, `zxcvbn`).
//!
//! Each function parses its input into the normalised value that is stored, or returns a
//! machine code and a human message. The caller attaches the field name, because the same rule
//! is reached under different names by different wire contracts.

use std::borrow::Cow;

use base64::Engine;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A rejected value: a stable machine code and a message for people.
pub type Invalid = (&'static str, Cow<'static, str>);
pub type Checked<T> = Result<T, Invalid>;

fn invalid<T>(code: &'static str, message: impl Into<Cow<'static, str>>) -> Checked<T> {
    Err((code, message.into()))
}

/// The usernames nobody may take, or move away from (ZenML's admin rule).
pub const RESERVED_USERNAMES: &[&str] = &["admin"];

pub fn is_reserved_username(name: &str) -> bool {
    RESERVED_USERNAMES.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// 1–50 characters of `[a-zA-Z0-9_\-@.]`; `admin` is reserved. Case is kept for display;
/// uniqueness is case-insensitive (the store indexes the lower-cased form).
/// The longest username, in characters.
pub const USERNAME_MAX: usize = 50;

pub fn username(raw: &str) -> Checked<String> {
    let n = raw.chars().count();
    if n == 0 {
        return invalid("too_short", "must be at least 1 character");
    }
    if n > USERNAME_MAX {
        return invalid("too_long", "must be at most 50 characters");
    }
    if !raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@' | '.')) {
        return invalid("invalid_format", "may contain only letters, digits and _ - @ .");
    }
    if is_reserved_username(raw) {
        return invalid("reserved", "this username is reserved");
    }
    Ok(raw.to_owned())
}

/// Makes any string into a valid username, for contracts that document sanitising (Replyke):
/// disallowed characters are dropped, the rest is cut to 50 characters. An input with nothing
/// usable left is still an error, never an empty username.
pub fn sanitize_username(raw: &str) -> Checked<String> {
    let cleaned: String = raw
        .trim()
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@' | '.'))
        .take(50)
        .collect();
    username(&cleaned)
}

/// Trimmed text with a character limit. `min` of 0 means the empty string is allowed and
/// becomes `None` (the display-name rule); `min` of 1 rejects it (ZenML's 1–50 rule).
pub fn text(raw: &str, min: usize, max: usize) -> Checked<Option<String>> {
    let t = raw.trim();
    let n = t.chars().count();
    if n == 0 {
        return if min == 0 { Ok(None) } else { invalid("too_short", format!("must be at least {min} character(s)")) };
    }
    if n < min {
        return invalid("too_short", format!("must be at least {min} characters"));
    }
    if n > max {
        return invalid("too_long", format!("must be at most {max} characters"));
    }
    if t.chars().any(|c| c.is_control()) {
        return invalid("invalid_format", "must not contain control characters");
    }
    Ok(Some(t.to_owned()))
}

/// Characters that show nothing, or change the direction of what follows, and so let one name
/// look like another: the bidirectional embeddings, overrides, isolates and marks, the
/// zero-width space and joiners, the word joiner and invisible operators, the byte-order mark,
/// the soft hyphen, the combining grapheme joiner, the Mongolian vowel separator and the
/// Hangul fillers.
pub fn is_spoofing_char(c: char) -> bool {
    matches!(c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
        | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{034F}'
        | '\u{180E}' | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}')
}

/// A human-readable name (a display name, a person's, a team's, a client's, a tenant's): text
/// as [`text`] takes it, without the characters that could make it pass for another name.
pub fn name(raw: &str, min: usize, max: usize) -> Checked<Option<String>> {
    let checked = text(raw, min, max)?;
    if checked.as_deref().is_some_and(|t| t.chars().any(is_spoofing_char)) {
        return invalid("invalid_format", "must not contain invisible or direction-changing characters");
    }
    Ok(checked)
}

/// A valid address (RFC 5321/5322 as `email_address` reads it), stored lower-case.
pub fn email(raw: &str) -> Checked<String> {
    let t = raw.trim();
    if t.len() > 254 {
        return invalid("too_long", "must be at most 254 characters");
    }
    match email_address::EmailAddress::parse_with_options(t, email_address::Options::default().without_display_text()) {
        Ok(addr) if addr.domain().contains('.') || addr.domain() == "localhost" => Ok(t.to_lowercase()),
        _ => invalid("invalid_email", "must be a valid email address"),
    }
}

/// An E.164 number, parsed and checked by `phonenumber` (libphonenumber's metadata), stored in
/// E.164 form.
pub fn phone_number(raw: &str) -> Checked<String> {
    let t = raw.trim();
    if !t.starts_with('+') {
        return invalid("invalid_phone_number", "must be in E.164 form, starting with + and the country code");
    }
    match phonenumber::parse(None, t) {
        Ok(n) if phonenumber::is_valid(&n) => Ok(n.format().mode(phonenumber::Mode::E164).to_string()),
        _ => invalid("invalid_phone_number", "must be a valid E.164 phone number"),
    }
}

/// A BCP 47 language tag, parsed by `icu_locale_core` and stored in canonical form.
pub fn locale(raw: &str) -> Checked<String> {
    let t = raw.trim();
    if t.is_empty() || t.len() > 64 {
        return invalid("invalid_locale", "must be a BCP 47 language tag such as en-GB");
    }
    match icu_locale_core::Locale::try_from_str(t) {
        Ok(l) if !l.id.language.is_unknown() => Ok(l.to_string()),
        _ => invalid("invalid_locale", "must be a BCP 47 language tag such as en-GB"),
    }
}

/// An IANA time-zone name known to `chrono-tz`.
pub fn timezone(raw: &str) -> Checked<String> {
    match raw.trim().parse::<chrono_tz::Tz>() {
        Ok(tz) => Ok(tz.name().to_owned()),
        Err(_) => invalid("invalid_timezone", "must be an IANA time-zone name such as Europe/Paris"),
    }
}

/// An ISO 8601 date, not after `today`. A full timestamp at midnight UTC is accepted too,
/// because Replyke returns birthdates in that form and clients echo them back.
pub fn birthdate(raw: &str, today: NaiveDate) -> Checked<NaiveDate> {
    let t = raw.trim();
    let date = NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| d.naive_utc())
            .filter(|d| d.time() == chrono::NaiveTime::MIN)
            .map(|d| d.date())
    });
    match date {
        None => invalid("invalid_date", "must be an ISO 8601 date (YYYY-MM-DD)"),
        Some(d) if d > today => invalid("in_future", "must not be in the future"),
        Some(d) => Ok(d),
    }
}

/// A point on Earth, stored and returned as GeoJSON `Point [longitude, latitude]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub longitude: f64,
    pub latitude: f64,
}

/// `{longitude, latitude}` (or a GeoJSON Point) with both in range. The Replyke contract's own example has
/// latitude −118.25, which is out of range: it is refused, with the field and bound named.
pub fn location(value: &Value) -> Result<GeoPoint, Vec<(String, Invalid)>> {
    let (lon, lat) = match value {
        Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("Point") => {
            match m.get("coordinates").and_then(Value::as_array).map(Vec::as_slice) {
                Some([lon, lat]) => (Some(lon), Some(lat)),
                _ => {
                    return Err(vec![(
                        String::new(),
                        ("invalid_format", "a GeoJSON Point needs coordinates [longitude, latitude]".into()),
                    )]);
                }
            }
        }
        Value::Object(m) => {
            if let Some(k) = m.keys().find(|k| *k != "longitude" && *k != "latitude") {
                return Err(vec![(
                    format!(".{k}"),
                    ("unknown_field", "location takes only longitude and latitude".into()),
                )]);
            }
            (m.get("longitude"), m.get("latitude"))
        }
        _ => {
            return Err(vec![(
                String::new(),
                ("invalid_type", "must be an object with longitude and latitude".into()),
            )]);
        }
    };
    let mut errors = Vec::new();
    let mut coord = |v: Option<&Value>, name: &str, bound: f64| -> f64 {
        match v.and_then(Value::as_f64) {
            None => {
                errors.push((
                    format!(".{name}"),
                    ("required", format!("{name} is required and must be a number").into()),
                ));
                0.0
            }
            Some(x) if !(-bound..=bound).contains(&x) => {
                errors.push((
                    format!(".{name}"),
                    ("out_of_range", format!("{name} must be between -{bound} and {bound}").into()),
                ));
                0.0
            }
            Some(x) => x,
        }
    };
    let longitude = coord(lon, "longitude", 180.0);
    let latitude = coord(lat, "latitude", 90.0);
    if errors.is_empty() { Ok(GeoPoint { longitude, latitude }) } else { Err(errors) }
}

/// An avatar given by reference: an absolute https URL.
pub fn https_url(raw: &str) -> Checked<String> {
    let t = raw.trim();
    if t.len() > 2048 {
        return invalid("too_long", "must be at most 2048 characters");
    }
    match url::Url::parse(t) {
        Ok(u)
            if u.scheme() == "https"
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            Ok(u.to_string())
        }
        _ => invalid("invalid_url", "must be an absolute https URL"),
    }
}

/// The image formats Tessera accepts and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageKind {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    /// Sniffs the format from magic bytes; the declared content type is never trusted.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            _ => None,
        }
    }
}

/// A decoded, checked image ready to be stored content-addressed.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    pub kind: ImageKind,
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
    hash: String,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({:?}, {}x{}, {} bytes)", self.kind, self.width, self.height, self.bytes.len())
    }
}

impl Image {
    /// Checks nothing: for images already checked and stored.
    fn new(kind: ImageKind, bytes: Vec<u8>, width: u32, height: u32) -> Self {
        let digest = Sha256::digest(&bytes);
        let hash = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self { kind, bytes, width, height, hash }
    }

    /// The content address: hex SHA-256 of the bytes.
    pub fn hash(&self) -> String {
        self.hash.clone()
    }

    pub fn hash_str(&self) -> &str {
        &self.hash
    }
}

/// Limits for images; the defaults are the native API's.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// Decoded size must be at most this many bytes.
    pub max_bytes: usize,
    pub max_width: u32,
    pub max_height: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self { max_bytes: 256 * 1024, max_width: 4096, max_height: 4096 }
    }
}

/// Checks raw image bytes: known magic bytes, size cap, and pixel dimensions read from the
/// header alone (never decoded), so a decompression bomb is refused before any pixel exists.
pub fn image_bytes(bytes: Vec<u8>, limits: ImageLimits) -> Checked<Image> {
    if bytes.len() > limits.max_bytes {
        return invalid("too_large", format!("image must be at most {} bytes", limits.max_bytes));
    }
    let Some(kind) = ImageKind::sniff(&bytes) else {
        return invalid("unsupported_image_type", "must be a PNG, JPEG, GIF or WebP image");
    };
    let Ok(size) = imagesize::blob_size(&bytes) else {
        return invalid("invalid_image", "the image header could not be read");
    };
    let (width, height) = (size.width as u64, size.height as u64);
    if width == 0 || height == 0 {
        return invalid("invalid_image", "the image has no pixels");
    }
    if width > u64::from(limits.max_width) || height > u64::from(limits.max_height) {
        return invalid(
            "image_dimensions_too_large",
            format!("image must be at most {}x{} pixels", limits.max_width, limits.max_height),
        );
    }
    Ok(Image::new(kind, bytes, width as u32, height as u32))
}

/// A base64 image, bare or as a `data:image/...;base64,` URI.
pub fn image_base64(raw: &str, limits: ImageLimits) -> Checked<Image> {
    let t = raw.trim();
    let payload = if let Some(rest) = t.strip_prefix("data:") {
        let Some((meta, data)) = rest.split_once(',') else {
            return invalid("invalid_data_uri", "a data URI needs a comma before its data");
        };
        let Some(media) = meta.strip_suffix(";base64") else {
            return invalid("invalid_data_uri", "a data URI must be base64-encoded (;base64)");
        };
        if !media.starts_with("image/") {
            return invalid("unsupported_image_type", "the data URI must have an image/ media type");
        }
        data
    } else {
        t
    };
    // A base64 text 4/3 the size of the cap (plus padding) is the most that can decode within it;
    // refuse longer ones before allocating.
    if payload.len() > limits.max_bytes / 3 * 4 + 8 {
        return invalid("too_large", format!("image must be at most {} bytes", limits.max_bytes));
    }
    let cleaned: String = payload.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(cleaned.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(cleaned.trim_end_matches('=')))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned.trim_end_matches('=')));
    match decoded {
        Ok(bytes) => image_bytes(bytes, limits),
        Err(_) => invalid("invalid_base64", "must be base64-encoded image data"),
    }
}

/// The largest nesting a metadata object may have; deeper input is refused before it can make
/// serialisation or storage expensive.
pub const MAX_METADATA_DEPTH: usize = 16;

/// A metadata tier: a JSON object whose compact serialisation fits in `max_bytes`.
pub fn metadata(value: &Value, max_bytes: usize) -> Checked<Map<String, Value>> {
    let Value::Object(map) = value else {
        return invalid("invalid_type", "must be a JSON object");
    };
    if depth(value) > MAX_METADATA_DEPTH {
        return invalid("too_deep", format!("must be nested at most {MAX_METADATA_DEPTH} levels"));
    }
    let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > max_bytes {
        return invalid("too_large", format!("must be at most {max_bytes} bytes as JSON"));
    }
    Ok(map.clone())
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The shortest and longest passwords, in characters.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;

/// `PASSWORD_CHARS` long, and not guessable by the `zxcvbn` estimator (score 3 of 4 at least),
/// counting the user's own email and username as known words.
pub fn password(raw: &str, user_inputs: &[&str]) -> Checked<()> {
    let n = raw.chars().count();
    if n < *PASSWORD_CHARS.start() {
        return invalid("too_short", format!("must be at least {} characters", PASSWORD_CHARS.start()));
    }
    if n > *PASSWORD_CHARS.end() {
        return invalid("too_long", format!("must be at most {} characters", PASSWORD_CHARS.end()));
    }
    let estimate = zxcvbn::zxcvbn(raw, user_inputs);
    if (estimate.score() as u8) < 3 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!("too easy to guess: {w}"))
            .unwrap_or_else(|| "too easy to guess; use a longer phrase of uncommon words".into());
        return invalid("weak_password", hint);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_pattern_and_reserve_admin() {
        assert_eq!(username("Ada_Lovelace-1@x.y").unwrap(), "Ada_Lovelace-1@x.y");
        assert_eq!(username("").unwrap_err().0, "too_short");
        assert_eq!(username(&"a".repeat(51)).unwrap_err().0, "too_long");
        assert!(username(&"a".repeat(50)).is_ok());
        assert_eq!(username("has space").unwrap_err().0, "invalid_format");
        assert_eq!(username("ADMIN").unwrap_err().0, "reserved");
    }

    #[test]
    fn sanitizing_removes_what_the_pattern_forbids() {
        assert_eq!(sanitize_username("  new user<script>!").unwrap(), "new_userscript");
        assert_eq!(sanitize_username("<>!").unwrap_err().0, "too_short");
    }

    #[test]
    fn text_trims_and_turns_empty_into_none_only_when_allowed() {
        assert_eq!(text("  hi ", 0, 256).unwrap().as_deref(), Some("hi"));
        assert_eq!(text("   ", 0, 256).unwrap(), None);
        assert_eq!(text("", 1, 50).unwrap_err().0, "too_short");
        assert_eq!(text(&"é".repeat(101), 0, 100).unwrap_err().0, "too_long");
        assert!(text(&"é".repeat(100), 0, 100).is_ok());
    }

    #[test]
    fn emails_are_checked_and_lowercased() {
        assert_eq!(email("Ada@Example.COM").unwrap(), "ada@example.com");
        for bad in ["not-an-email", "a@", "@b.c", "a b@c.d", "a@nodot"] {
            assert_eq!(email(bad).unwrap_err().0, "invalid_email", "{bad}");
        }
    }

    #[test]
    fn phone_numbers_must_be_valid_e164() {
        assert_eq!(phone_number("+44 20 7946 0958").unwrap(), "+442079460958");
        assert_eq!(phone_number("+14155552671").unwrap(), "+14155552671");
        for bad in ["020 7946 0958", "+1", "+999123", "hello"] {
            assert_eq!(phone_number(bad).unwrap_err().0, "invalid_phone_number", "{bad}");
        }
    }

    #[test]
    fn locales_are_bcp47_and_canonicalised() {
        assert_eq!(locale("en-gb").unwrap(), "en-GB");
        assert_eq!(locale("zh-Hant-TW").unwrap(), "zh-Hant-TW");
        for bad in ["", "english!", "x", "en_GB_bad_tag_"] {
            assert_eq!(locale(bad).unwrap_err().0, "invalid_locale", "{bad}");
        }
    }

    #[test]
    fn timezones_are_iana_names() {
        assert_eq!(timezone("Europe/Paris").unwrap(), "Europe/Paris");
        assert_eq!(timezone("Mars/Olympus").unwrap_err().0, "invalid_timezone");
    }

    #[test]
    fn birthdates_are_iso_dates_not_in_the_future() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        assert_eq!(birthdate("1990-01-01", today).unwrap(), NaiveDate::from_ymd_opt(1990, 1, 1).unwrap());
        assert_eq!(birthdate("1990-01-01T00:00:00.000Z", today).unwrap(), NaiveDate::from_ymd_opt(1990, 1, 1).unwrap());
        assert_eq!(birthdate("2026-11-23", today).unwrap_err().0, "in_future");
        assert_eq!(birthdate("1990-13-01", today).unwrap_err().0, "invalid_date");
    }

    #[test]
    fn the_replyke_examples_swapped_location_is_refused_with_the_bound_named() {
        let errs = location(&serde_json::json!({"longitude": 34.05, "latitude": -118.25})).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, ".latitude");
        assert_eq!(errs[0].1.0, "out_of_range");
        let ok = location(&serde_json::json!({"longitude": -118.25, "latitude": 34.05})).unwrap();
        assert_eq!(ok, GeoPoint { longitude: -118.25, latitude: 34.05 });
    }

    /// A 1×1 PNG.
    const PNG_1X1: &str =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

    #[test]
    fn images_are_sniffed_sized_and_dimension_capped() {
        let img = image_base64(&format!("data:image/png;base64,{PNG_1X1}"), ImageLimits::default()).unwrap();
        assert_eq!((img.kind, img.width, img.height), (ImageKind::Png, 1, 1));
        assert_eq!(image_base64(PNG_1X1, ImageLimits::default()).unwrap().kind, ImageKind::Png);
        assert_eq!(image_base64("aGVsbG8gd29ybGQ=", ImageLimits::default()).unwrap_err().0, "unsupported_image_type");
        assert_eq!(image_base64("!!!", ImageLimits::default()).unwrap_err().0, "invalid_base64");
        let tiny = ImageLimits { max_bytes: 10, ..ImageLimits::default() };
        assert_eq!(image_base64(PNG_1X1, tiny).unwrap_err().0, "too_large");
        // A PNG header that claims 100000×100000 pixels: refused from the header alone.
        let mut bomb = base64::engine::general_purpose::STANDARD.decode(PNG_1X1).unwrap();
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert_eq!(image_bytes(bomb, ImageLimits::default()).unwrap_err().0, "image_dimensions_too_large");
    }

    #[test]
    fn metadata_must_be_a_small_shallow_object() {
        assert!(metadata(&serde_json::json!({"theme": "dark"}), 64).is_ok());
        assert_eq!(metadata(&serde_json::json!([1]), 64).unwrap_err().0, "invalid_type");
        assert_eq!(metadata(&serde_json::json!({"k": "x".repeat(100)}), 64).unwrap_err().0, "too_large");
        let mut deep = serde_json::json!(1);
        for _ in 0..20 {
            deep = serde_json::json!({ "a": deep });
        }
        assert_eq!(metadata(&deep, 1 << 20).unwrap_err().0, "too_deep");
    }

    #[test]
    fn passwords_need_length_and_strength() {
        assert_eq!(password("short", &[]).unwrap_err().0, "too_short");
        assert_eq!(password("password123", &[]).unwrap_err().0, "weak_password");
        assert_eq!(password(&"x".repeat(129), &[]).unwrap_err().0, "too_long");
        assert!(password("correct horse battery staple", &[]).is_ok());
    }
}
