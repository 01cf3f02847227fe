#![no_main]
//! API request bodies: every payload type decodes or errors, never panics,
//! and decoded names go through the validating constructors.
use libfuzzer_sys::fuzz_target;
use rampart_core::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(app) = serde_json::from_slice::<wire::CreateApp>(data) {
        let _ = rampart_core::AppName::parse(&app.name);
        for d in app.domains.unwrap_or_default() {
            let _ = rampart_core::Domain::parse(&d);
        }
    }
    if let Ok(env) = serde_json::from_slice::<wire::SetEnv>(data) {
        for name in env.vars.keys() {
            let _ = rampart_core::EnvName::parse(name);
        }
    }
    let _ = serde_json::from_slice::<wire::RevealEnv>(data);
    let _ = serde_json::from_slice::<wire::CreateToken>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rampart_core::token::check(text);
    }
});
