//! Random and hostile bytes through every parser of outside input: none may
//! panic, and whatever a parser accepts must satisfy the type's rules.

use rampart_core::config::Config;
use rampart_core::time::Timestamp;
use rampart_core::{AppName, Domain, EnvName, Role, token};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Pieces that make parsers work hard: valid characters, separators,
/// TOML syntax, multi-byte UTF-8, control characters.
const PIECES: &[&str] = &[
    "a",
    "z",
    "0",
    "9",
    "-",
    "_",
    ".",
    "*",
    "*.",
    "=",
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "{",
    "}",
    "\n",
    "\r\n",
    "\t",
    " ",
    "\0",
    "\u{7f}",
    "é",
    "ß",
    "\u{202e}",
    "🦀",
    "rmp_",
    "api",
    "listen",
    "[api]\n",
    "[log]\n",
    "level = ",
    "max_body_bytes = ",
    "99999999999999999999",
    "-1",
    "#",
    "true",
    "localhost",
    ".localhost",
    "A",
    "Z",
    "RAMPART_",
    "\\u0000",
    "\"\"\"",
];

fn hostile(rng: &mut StdRng) -> String {
    let n = rng.random_range(0..24);
    (0..n)
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

#[test]
fn parsers_never_panic_and_accept_only_valid_values() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for _ in 0..20_000 {
        let input = hostile(&mut rng);

        if let Ok(name) = AppName::parse(&input) {
            let s = name.as_str();
            assert!((1..=40).contains(&s.len()), "{s:?}");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
            assert!(s.starts_with(|c: char| c.is_ascii_lowercase()) && !s.ends_with('-'));
        }
        if let Ok(domain) = Domain::parse(&input) {
            let s = domain.as_str();
            assert!(s.len() <= 253 && s.contains('.'), "{s:?}");
            let labels = s.strip_prefix("*.").unwrap_or(s);
            assert!(!labels.contains('*'), "{s:?}");
            assert!(labels.split('.').all(|l| !l.is_empty() && l.len() <= 63));
        }
        if let Ok(env) = EnvName::parse(&input) {
            let s = env.as_str();
            assert!(
                s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{s:?}"
            );
            assert!(!s.starts_with(|c: char| c.is_ascii_digit()));
        }
        if token::check(&input).is_ok() {
            assert_eq!(input.len(), token::TOKEN_LEN);
        }
        let _ = input.parse::<Role>();
        let _ = Timestamp::parse(&input);
        if let Ok(config) = Config::from_toml(&input) {
            assert!(config.api.max_body_bytes >= 1024);
        }
        // Errors are single lines, so they cannot forge log entries.
        for err in [
            AppName::parse(&input).err().map(|e| e.to_string()),
            EnvName::parse(&input).err().map(|e| e.to_string()),
            Domain::parse(&input).err().map(|e| e.to_string()),
        ]
        .into_iter()
        .flatten()
        {
            assert!(!err.contains('\n') && !err.contains('\r'), "{err:?}");
        }
    }
}
