//! Each served host's `/.well-known/security.txt` (RFC 9116): made from
//! `[security_txt]` and an app's own contact and policy, with `Expires`
//! always in the future and under a year away (it is renewed every day by
//! construction), and `Canonical` naming the host it is served on. Every
//! file made is checked by `sectxtlib`'s RFC 9116 parser before it is
//! served.

use crate::time::Timestamp;

/// The path of the built-in report intake on every host.
pub const INTAKE_PATH: &str = "/.well-known/security-report";

/// What `[security_txt]` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityTxtConfig {
    /// Whether security.txt is served at all.
    pub enabled: bool,
    /// `mailto:`, `https:` or `tel:` URIs, in order of preference.
    pub contact: Vec<String>,
    /// Whether the built-in intake is offered as a `Contact` (and served).
    pub intake: bool,
    pub policy: Option<String>,
    pub encryption: Option<String>,
    pub acknowledgments: Option<String>,
    pub preferred_languages: Vec<String>,
    /// `Expires` is this many days after the start of today (UTC).
    pub expires_days: u32,
}

impl Default for SecurityTxtConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            contact: Vec::new(),
            intake: true,
            policy: None,
            encryption: None,
            acknowledgments: None,
            preferred_languages: vec!["en".into()],
            expires_days: 180,
        }
    }
}

/// Whether `uri` is a URI a security.txt field may carry: `https:`, or
/// for a contact also `mailto:` and `tel:`, printable and short.
pub fn check_uri(uri: &str, contact: bool) -> Result<(), String> {
    let scheme_ok = uri.starts_with("https://")
        || (contact && (uri.starts_with("mailto:") || uri.starts_with("tel:")));
    let rest = uri
        .split_once(':')
        .map_or("", |(_, r)| r.trim_start_matches('/'));
    if !scheme_ok
        || rest.is_empty()
        || uri.len() > 512
        || uri
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
    {
        let schemes = if contact {
            "mailto:, https:// or tel:"
        } else {
            "https://"
        };
        return Err(format!(
            "{:?} is not a {schemes} URI",
            uri.chars().take(64).collect::<String>()
        ));
    }
    Ok(())
}

/// A language tag (`en`, `de-CH`).
pub fn check_language(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 35
        && tag.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a language tag such as en or de-CH",
            tag.chars().take(40).collect::<String>()
        ))
    }
}

/// The security.txt served on `host`: the app's own contact and policy
/// (when it set them) before the platform's.
pub fn render(
    config: &SecurityTxtConfig,
    host: &str,
    app_contact: Option<&str>,
    app_policy: Option<&str>,
    now: Timestamp,
) -> Result<String, String> {
    let mut text = format!("# Security contacts for {host} (RFC 9116).\n");
    let mut line = |field: &str, value: &str| {
        text.push_str(field);
        text.push_str(": ");
        text.push_str(value);
        text.push('\n');
    };
    for contact in app_contact
        .into_iter()
        .chain(config.contact.iter().map(String::as_str))
    {
        line("Contact", contact);
    }
    if config.intake {
        line("Contact", &format!("https://{host}{INTAKE_PATH}"));
    }
    let today = now.unix_seconds() - now.unix_seconds().rem_euclid(86_400);
    let expires = Timestamp::from_unix_seconds(today + i64::from(config.expires_days) * 86_400)
        .ok_or("the expiry is out of range")?;
    line("Expires", &expires.to_rfc3339());
    if let Some(policy) = app_policy.or(config.policy.as_deref()) {
        line("Policy", policy);
    }
    if let Some(encryption) = &config.encryption {
        line("Encryption", encryption);
    }
    if let Some(thanks) = &config.acknowledgments {
        line("Acknowledgments", thanks);
    }
    if !config.preferred_languages.is_empty() {
        line(
            "Preferred-Languages",
            &config.preferred_languages.join(", "),
        );
    }
    line(
        "Canonical",
        &format!("https://{host}/.well-known/security.txt"),
    );
    sectxtlib::SecurityTxt::parse(&text)
        .map_err(|e| format!("the security.txt for {host} is not valid RFC 9116: {e}"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SecurityTxtConfig {
        SecurityTxtConfig {
            contact: vec!["mailto:security@example.com".into()],
            policy: Some("https://example.com/disclosure".into()),
            ..SecurityTxtConfig::default()
        }
    }

    #[test]
    fn files_are_valid_and_expire_within_a_year() {
        let now = Timestamp::parse("2026-12-01T15:30:00.000Z").unwrap();
        let text = render(&config(), "shop.example.com", None, None, now).unwrap();
        let parsed = sectxtlib::SecurityTxt::parse(&text).unwrap();
        assert_eq!(parsed.contact.len(), 2);
        assert!(text.contains("Contact: https://shop.example.com/.well-known/security-report\n"));
        assert!(
            text.contains("Expires: 2027-05-30T00:00:00.000Z\n"),
            "{text}"
        );
        assert!(text.contains("Canonical: https://shop.example.com/.well-known/security.txt\n"));
        // The app's own come first.
        let text = render(
            &config(),
            "shop.localhost",
            Some("mailto:shop@example.com"),
            Some("https://shop.example.com/policy"),
            now,
        )
        .unwrap();
        let first = text.lines().find(|l| l.starts_with("Contact")).unwrap();
        assert_eq!(first, "Contact: mailto:shop@example.com");
        assert!(text.contains("Policy: https://shop.example.com/policy\n"));
        assert!(!text.contains("example.com/disclosure"));
    }

    #[test]
    fn bad_uris_and_tags_are_named() {
        for (uri, contact) in [
            ("http://example.com", true),
            ("mailto:", true),
            ("mailto:a@b.c", false),
            ("https://a b", true),
            ("https://a\nExpires: 2020", true),
            ("javascript:alert(1)", true),
        ] {
            assert!(check_uri(uri, contact).is_err(), "{uri}");
        }
        assert!(check_uri("tel:+41441234567", true).is_ok());
        for tag in ["", "en_US", "toolongtag-x", "e n"] {
            assert!(check_language(tag).is_err(), "{tag}");
        }
        assert!(check_language("de-CH").is_ok());
    }
}
