//! The image check on arbitrary bytes, raw and as base64 / data URIs: the format is read from
//! the header only, and dimensions are bounded before anything is decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::validate::{self, ImageLimits};

fuzz_target!(|bytes: &[u8]| {
    let limits = ImageLimits::default();
    if let Ok(image) = validate::image_bytes(bytes.to_vec(), limits) {
        assert!(image.bytes.len() <= limits.max_bytes, "an accepted image is within the size limit");
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = validate::image_base64(text, limits);
    }
});
