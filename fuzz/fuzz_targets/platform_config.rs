#![no_main]
//! rampart.toml: any bytes give a config or an error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rampart_core::config::Config::from_toml(text);
    }
});
