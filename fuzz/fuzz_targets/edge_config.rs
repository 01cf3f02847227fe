#![no_main]
//! edge.toml: any bytes give a config or an error naming a key.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = rampart_edge::EdgeConfig::from_toml(text) {
            assert!(!e.to_string().is_empty());
        }
    }
});
