//! Version ordering per ecosystem. A version that does not parse is an
//! error, never a guess: a wrong answer here is a missed or a false
//! finding.

use std::cmp::Ordering;
use std::str::FromStr;

/// The ecosystems advisories name (OSV's `affected[].package.ecosystem`,
/// without a release suffix such as `Debian:12`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Ecosystem {
    #[serde(rename = "Debian")]
    Debian,
    #[serde(rename = "Alpine")]
    Alpine,
    #[serde(rename = "PyPI")]
    PyPi,
    #[serde(rename = "npm")]
    Npm,
    #[serde(rename = "crates.io")]
    CratesIo,
    #[serde(rename = "Go")]
    Go,
}

impl Ecosystem {
    /// The ecosystem of an OSV name (`Debian:12` is Debian).
    pub fn from_osv(name: &str) -> Option<Self> {
        let base = name.split(':').next().unwrap_or(name);
        Some(match base {
            "Debian" | "Ubuntu" => Self::Debian,
            "Alpine" => Self::Alpine,
            "PyPI" => Self::PyPi,
            "npm" => Self::Npm,
            "crates.io" => Self::CratesIo,
            "Go" => Self::Go,
            _ => return None,
        })
    }

    pub fn as_osv(self) -> &'static str {
        match self {
            Self::Debian => "Debian",
            Self::Alpine => "Alpine",
            Self::PyPi => "PyPI",
            Self::Npm => "npm",
            Self::CratesIo => "crates.io",
            Self::Go => "Go",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{version:?} is not a {ecosystem} version")]
pub struct VersionError {
    pub ecosystem: &'static str,
    pub version: String,
}

fn bad(ecosystem: Ecosystem, version: &str) -> VersionError {
    VersionError {
        ecosystem: ecosystem.as_osv(),
        version: version.chars().take(100).collect(),
    }
}

/// How `a` orders against `b` in `ecosystem`.
pub fn compare(ecosystem: Ecosystem, a: &str, b: &str) -> Result<Ordering, VersionError> {
    match ecosystem {
        Ecosystem::Debian => {
            let parse = |v: &str| debversion::Version::from_str(v).map_err(|_| bad(ecosystem, v));
            Ok(parse(a)?.cmp(&parse(b)?))
        }
        Ecosystem::PyPi => {
            let parse = |v: &str| pep440_rs::Version::from_str(v).map_err(|_| bad(ecosystem, v));
            Ok(parse(a)?.cmp(&parse(b)?))
        }
        Ecosystem::Npm | Ecosystem::CratesIo | Ecosystem::Go => {
            let parse = |v: &str| {
                // Go modules write `v1.2.3`; npm tolerates a leading `v` or `=`.
                let bare = v
                    .strip_prefix('v')
                    .or_else(|| v.strip_prefix('='))
                    .unwrap_or(v);
                semver::Version::parse(bare).map_err(|_| bad(ecosystem, v))
            };
            // SemVer ignores build metadata in precedence; `semver`'s Ord
            // does not, so compare without it.
            let (mut a, mut b) = (parse(a)?, parse(b)?);
            a.build = semver::BuildMetadata::EMPTY;
            b.build = semver::BuildMetadata::EMPTY;
            Ok(a.cmp(&b))
        }
        Ecosystem::Alpine => apk::compare(a, b).ok_or_else(|| {
            let which = if apk::compare(a, a).is_none() { a } else { b };
            bad(ecosystem, which)
        }),
    }
}

/// apk's version ordering: `1.2.3a_rc1_p2~1a2b-r4` is dotted numbers, an
/// optional letter, suffixes (`_alpha`, `_beta`, `_pre`, `_rc` before the
/// release; `_cvs`, `_svn`, `_git`, `_hg`, `_p` after it) each with an
/// optional number, an optional commit hash after `~`, and a package
/// revision `-rN`. Numbers after the first compare as text when either
/// starts with a zero (`1.001` < `1.01` < `1.1`).
mod apk {
    use std::cmp::Ordering;

    /// Token kinds in apk's order: where the versions part, the one with
    /// the later kind ended first and is older, unless the other goes on
    /// with a pre-release suffix.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Kind {
        InitialDigit,
        Digit,
        Letter,
        Suffix,
        SuffixNo,
        CommitHash,
        RevisionNo,
        End,
    }

    /// Suffixes in order; those before `NONE` are pre-releases.
    const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
    const NONE: usize = 4;

    #[derive(Debug, Clone, Copy)]
    struct Token<'a> {
        kind: Kind,
        text: &'a [u8],
        number: u64,
        suffix: usize,
    }

    fn split(rest: &[u8], keep: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
        let n = rest.iter().take_while(|b| keep(**b)).count();
        rest.split_at(n)
    }

    /// The number `rest` starts with, and how many digits it has.
    fn digits(rest: &[u8]) -> Option<(u64, usize)> {
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let number = std::str::from_utf8(&rest[..n]).ok()?.parse().ok()?;
        Some((number, n))
    }

    /// A number token of `kind` taken off the front of `rest`.
    fn number<'a>(kind: Kind, rest: &mut &'a [u8]) -> Option<Token<'a>> {
        let (number, n) = digits(rest)?;
        let (text, tail) = rest.split_at(n);
        *rest = tail;
        Some(Token {
            kind,
            text,
            number,
            suffix: 0,
        })
    }

    /// The tokens of `version`, or `None` if apk would not accept it.
    fn tokens(version: &str) -> Option<Vec<Token<'_>>> {
        let mut rest = version.as_bytes();
        let mut out: Vec<Token<'_>> = Vec::new();
        let mut kind = Kind::InitialDigit;
        loop {
            let token = match out.last().map(|t| t.kind) {
                None => number(kind, &mut rest)?,
                Some(previous) => {
                    let Some(&first) = rest.first() else { break };
                    match first {
                        b'a'..=b'z' if previous <= Kind::Digit => {
                            let (text, tail) = rest.split_at(1);
                            rest = tail;
                            kind = Kind::Letter;
                            Token {
                                kind,
                                text,
                                number: 0,
                                suffix: 0,
                            }
                        }
                        b'.' | b'0'..=b'9' => {
                            if first == b'.' {
                                if previous > Kind::Digit {
                                    return None;
                                }
                                rest = &rest[1..];
                            }
                            kind = match previous {
                                Kind::InitialDigit | Kind::Digit if first == b'.' => Kind::Digit,
                                Kind::Suffix if first != b'.' => Kind::SuffixNo,
                                _ => return None,
                            };
                            number(kind, &mut rest)?
                        }
                        b'_' if previous <= Kind::SuffixNo => {
                            let (text, tail) = split(&rest[1..], |b| b.is_ascii_lowercase());
                            rest = tail;
                            let suffix = SUFFIXES.iter().position(|s| s.as_bytes() == text)?;
                            kind = Kind::Suffix;
                            Token {
                                kind,
                                text,
                                number: 0,
                                suffix,
                            }
                        }
                        b'~' if previous < Kind::CommitHash => {
                            let (text, tail) = split(&rest[1..], |b| b.is_ascii_hexdigit());
                            if text.is_empty() {
                                return None;
                            }
                            rest = tail;
                            kind = Kind::CommitHash;
                            Token {
                                kind,
                                text,
                                number: 0,
                                suffix: 0,
                            }
                        }
                        b'-' if previous < Kind::RevisionNo && rest.get(1) == Some(&b'r') => {
                            rest = &rest[2..];
                            kind = Kind::RevisionNo;
                            number(kind, &mut rest)?
                        }
                        _ => return None,
                    }
                }
            };
            out.push(token);
        }
        Some(out)
    }

    fn compare_token(a: &Token<'_>, b: &Token<'_>) -> Ordering {
        match a.kind {
            Kind::Digit if a.text[0] == b'0' || b.text[0] == b'0' => a.text.cmp(b.text),
            Kind::Digit | Kind::InitialDigit | Kind::SuffixNo | Kind::RevisionNo => {
                a.number.cmp(&b.number)
            }
            Kind::Letter | Kind::CommitHash => a.text.cmp(b.text),
            Kind::Suffix => a.suffix.cmp(&b.suffix),
            Kind::End => Ordering::Equal,
        }
    }

    pub(super) fn compare(a: &str, b: &str) -> Option<Ordering> {
        let (x, y) = (tokens(a)?, tokens(b)?);
        let end = Token {
            kind: Kind::End,
            text: b"",
            number: 0,
            suffix: 0,
        };
        for i in 0.. {
            let (ta, tb) = (x.get(i).unwrap_or(&end), y.get(i).unwrap_or(&end));
            if ta.kind != tb.kind {
                if ta.kind == Kind::Suffix && ta.suffix < NONE {
                    return Some(Ordering::Less);
                }
                if tb.kind == Kind::Suffix && tb.suffix < NONE {
                    return Some(Ordering::Greater);
                }
                return Some(tb.kind.cmp(&ta.kind));
            }
            if ta.kind == Kind::End {
                return Some(Ordering::Equal);
            }
            match compare_token(ta, tb) {
                Ordering::Equal => {}
                other => return Some(other),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of `sorted` (ascending, equal neighbours joined by `=`)
    /// compares as its positions do, both ways round.
    fn orders(ecosystem: Ecosystem, sorted: &[&str]) {
        let mut ranks = Vec::new();
        for (rank, group) in sorted.iter().enumerate() {
            for v in group.split('=') {
                ranks.push((v.trim(), rank));
            }
        }
        for (a, ra) in &ranks {
            for (b, rb) in &ranks {
                assert_eq!(
                    compare(ecosystem, a, b),
                    Ok(ra.cmp(rb)),
                    "{ecosystem:?}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn debian_versions_order_as_dpkg_does() {
        orders(
            Ecosystem::Debian,
            &[
                "0.9",
                "1.0~alpha",
                "1.0~rc1",
                "1.0~rc1+b1",
                "1.0",
                "1.0-1",
                "1.0-1+deb12u1",
                "1.0-1+deb12u2",
                "1.0-2",
                "1.0a",
                "1.0+dfsg-1",
                "1.0.1",
                "2.36-9+deb12u4",
                "2.36-9+deb12u7",
                "3.0.11-1~deb12u2",
                "3.0.11-1",
                "1:0.1",
                "1:0.1-1",
                "2:0",
            ],
        );
        assert!(compare(Ecosystem::Debian, "1.0", "not a version!").is_err());
    }

    #[test]
    fn python_versions_order_as_pep_440_does() {
        orders(
            Ecosystem::PyPi,
            &[
                "1.0.dev1",
                "1.0a1",
                "1.0b2",
                "1.0rc1",
                "1.0 = 1.0.0 = 1.0.0.0",
                "1.0.post1",
                "1.1.dev1",
                "1.1",
                "4.2.11",
                "4.2.16",
                "42.0.4",
                "1!0.1",
            ],
        );
        assert!(compare(Ecosystem::PyPi, "1.0", "1.0-$").is_err());
    }

    #[test]
    fn semver_ecosystems_order_by_precedence() {
        for eco in [Ecosystem::Npm, Ecosystem::CratesIo, Ecosystem::Go] {
            orders(
                eco,
                &[
                    "1.0.0-alpha",
                    "1.0.0-alpha.1",
                    "1.0.0-alpha.beta",
                    "1.0.0-beta",
                    "1.0.0-beta.2",
                    "1.0.0-beta.11",
                    "1.0.0-rc.1",
                    "1.0.0 = v1.0.0 = 1.0.0+build.5",
                    "1.0.1",
                    "1.10.0",
                    "4.17.21",
                ],
            );
            assert!(compare(eco, "1.0", "1.0.0").is_err(), "{eco:?}");
        }
    }

    #[test]
    fn alpine_versions_order_as_apk_does() {
        orders(
            Ecosystem::Alpine,
            &[
                "0.9",
                "1.0_alpha",
                "1.0_alpha2",
                "1.0_beta",
                "1.0_pre1",
                "1.0_rc1",
                "1.0",
                "1.0-r1",
                "1.0-r2",
                "1.0-r10",
                "1.0_p1",
                "1.0_p1-r1",
                "1.0a",
                "1.0b",
                "1.0.0",
                "1.001",
                "1.01",
                "1.1",
                "1.1.1",
                "1.2_git20230101",
                "1.2_git20230101~ab12",
                "1.2.1",
                "3.0.8-r0",
                "3.0.12-r1",
                "3.1.4-r5",
                "10.0",
            ],
        );
        for junk in [
            "", "x1", "1.0-x", "1.0_zeta", "1..0", "1.0-r", "1.0 ", "1.0a1", "v1.0", "1.0~",
        ] {
            assert!(compare(Ecosystem::Alpine, "1.0", junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn osv_ecosystem_names_map_to_orderings() {
        assert_eq!(Ecosystem::from_osv("Debian:12"), Some(Ecosystem::Debian));
        assert_eq!(Ecosystem::from_osv("Alpine:v3.19"), Some(Ecosystem::Alpine));
        assert_eq!(Ecosystem::from_osv("PyPI"), Some(Ecosystem::PyPi));
        assert_eq!(Ecosystem::from_osv("crates.io"), Some(Ecosystem::CratesIo));
        assert_eq!(Ecosystem::from_osv("Maven"), None);
    }
}
