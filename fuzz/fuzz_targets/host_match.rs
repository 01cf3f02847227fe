#![no_main]
//! Host matching: whatever a client sends as Host or SNI, lookup never
//! panics, and a match is always a name the matched site declared.
use libfuzzer_sys::fuzz_target;
use rampart_edge::routes::{HostPattern, RouteTable, normalize_host};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let toml = "[[site]]\nhosts = [\"app.localhost\", \"*.apps.example.com\"]\nupstreams = [\"127.0.0.1:1\"]\n";
    let Ok(config) = rampart_edge::EdgeConfig::from_toml(toml) else { return };
    let table: &RouteTable = &config.routes;
    if let Some(site) = table.lookup(text) {
        let host = normalize_host(text).expect("a matched host normalizes");
        assert!(site.hosts.iter().any(|h| match h {
            HostPattern::Exact(e) => *e == host,
            HostPattern::Wildcard(w) => host.split_once('.').is_some_and(|(_, parent)| parent == w),
        }));
    }
    let _ = HostPattern::parse(text);
});
