//! Whether an OSV advisory affects an installed package version, by the
//! OSV schema's rules: each `ECOSYSTEM` or `SEMVER` range is a list of
//! events (`introduced`, `fixed`, `last_affected`, `limit`) read in version
//! order; a version is affected when the last event at or below it opened
//! the range. Listed `versions` are affected too. `GIT` ranges name
//! commits, which an installed package does not have; they are skipped.

use std::cmp::Ordering;

use osv::schema::{Affected, Event, RangeType, Vulnerability};

use crate::version::{Ecosystem, VersionError, compare};

/// An advisory that affects an installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The advisory's id (`GHSA-…`, `PYSEC-…`, `DSA-…`).
    pub id: String,
    pub aliases: Vec<String>,
    /// The lowest version that fixes it above the installed one, if any.
    pub fixed: Option<String>,
}

/// The ecosystem of an `affected` entry, if it is one versions are
/// compared in.
fn ecosystem_of(affected: &Affected) -> Option<Ecosystem> {
    let package = affected.package.as_ref()?;
    let name = serde_json::to_value(&package.ecosystem).ok()?;
    Ecosystem::from_osv(name.as_str()?)
}

/// Whether `version` falls in the events of one range, and the fix above
/// it if there is one.
fn in_range(
    ecosystem: Ecosystem,
    events: &[Event],
    version: &str,
) -> Result<(bool, Option<String>), VersionError> {
    let at = |event: &Event| match event {
        Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => {
            v.clone()
        }
        _ => String::new(),
    };
    // "0" is below every version.
    let order = |a: &str, b: &str| -> Result<Ordering, VersionError> {
        match (a == "0", b == "0") {
            (true, true) => Ok(Ordering::Equal),
            (true, false) => Ok(Ordering::Less),
            (false, true) => Ok(Ordering::Greater),
            (false, false) => compare(ecosystem, a, b),
        }
    };
    let mut sorted: Vec<(String, &Event)> = events.iter().map(|e| (at(e), e)).collect();
    let mut failed = None;
    sorted.sort_by(|(a, _), (b, _)| {
        order(a, b).unwrap_or_else(|e| {
            failed.get_or_insert(e);
            Ordering::Equal
        })
    });
    if let Some(error) = failed {
        return Err(error);
    }
    let mut affected = false;
    let mut fixed = None;
    for (at, event) in &sorted {
        let below_or_at = order(at, version)? != Ordering::Greater;
        match event {
            Event::Introduced(_) if below_or_at => affected = true,
            Event::Fixed(_) if below_or_at => affected = false,
            Event::LastAffected(_) if order(at, version)? == Ordering::Less => affected = false,
            Event::Limit(_) if below_or_at => affected = false,
            Event::Fixed(v) if fixed.is_none() && affected => fixed = Some(v.clone()),
            _ => {}
        }
    }
    Ok((affected, if affected { fixed } else { None }))
}

/// Whether an `affected` entry's ecosystem (`Debian:12`,
/// `Ubuntu:22.04:LTS`, `Alpine:v3.19`, `PyPI`) covers a package of
/// `ecosystem` from the distribution release `distro` (as
/// [`crate::inventory::os_release`] names it). Without a known release
/// every release of the ecosystem counts; with one, only entries of the
/// same distribution and that release, or naming no release.
fn covers(affected: &Affected, ecosystem: Ecosystem, distro: Option<&str>) -> bool {
    if ecosystem_of(affected) != Some(ecosystem) {
        return false;
    }
    let Some(distro) = distro else {
        return true;
    };
    let Some(named) = affected
        .package
        .as_ref()
        .and_then(|p| serde_json::to_value(&p.ecosystem).ok())
    else {
        return false;
    };
    let named = named.as_str().unwrap_or_default();
    let (base, release) = named.split_once(':').unwrap_or((named, ""));
    let (want_base, want_release) = distro.split_once(':').unwrap_or((distro, ""));
    base == want_base
        && (release.is_empty()
            || release == want_release
            || release
                .strip_prefix(want_release)
                .is_some_and(|rest| rest.starts_with(':')))
}

/// Whether `vulnerability` affects `name` at `version` in `ecosystem`,
/// whatever the distribution release. Withdrawn advisories affect
/// nothing.
pub fn affects(
    vulnerability: &Vulnerability,
    ecosystem: Ecosystem,
    name: &str,
    version: &str,
) -> Result<Option<Hit>, VersionError> {
    affects_in(vulnerability, ecosystem, None, name, version)
}

/// [`affects`] for a package of a known distribution release (`Debian:12`):
/// entries for other releases do not count.
pub fn affects_in(
    vulnerability: &Vulnerability,
    ecosystem: Ecosystem,
    distro: Option<&str>,
    name: &str,
    version: &str,
) -> Result<Option<Hit>, VersionError> {
    if vulnerability.withdrawn.is_some() {
        return Ok(None);
    }
    let mut hit = false;
    let mut fixes: Vec<String> = Vec::new();
    for affected in vulnerability.affected.iter().flatten() {
        let same_package = affected.package.as_ref().is_some_and(|p| p.name == name);
        if !same_package || !covers(affected, ecosystem, distro) {
            continue;
        }
        if affected.versions.iter().flatten().any(|v| v == version) {
            hit = true;
        }
        for range in affected.ranges.iter().flatten() {
            if !matches!(range.range_type, RangeType::Ecosystem | RangeType::Semver) {
                continue;
            }
            let (inside, fix) = in_range(ecosystem, &range.events, version)?;
            if inside {
                hit = true;
                fixes.extend(fix);
            }
        }
    }
    if !hit {
        return Ok(None);
    }
    let mut fixed: Option<String> = None;
    for fix in fixes {
        fixed = match fixed {
            Some(best) if compare(ecosystem, &best, &fix)? != Ordering::Greater => Some(best),
            _ => Some(fix),
        };
    }
    // Distributions name the CVEs a record is about in `upstream`.
    let mut aliases: Vec<String> = Vec::new();
    for alias in vulnerability
        .aliases
        .iter()
        .chain(&vulnerability.upstream)
        .flatten()
    {
        if !aliases.contains(alias) {
            aliases.push(alias.clone());
        }
    }
    Ok(Some(Hit {
        id: vulnerability.id.clone(),
        aliases,
        fixed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Vulnerability {
        serde_json::from_str(json).unwrap()
    }

    /// Shaped like PyPI's record of CVE-2024-35195 in requests: affected
    /// from the start, fixed in 2.32.0.
    const REQUESTS: &str = r#"{
        "id": "GHSA-9wx4-h78v-vm56", "modified": "2024-06-10T00:00:00Z",
        "aliases": ["CVE-2024-35195"],
        "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.32.0"}]}]}]
    }"#;

    /// Two branches fixed separately, as Django's advisories are.
    const DJANGO: &str = r#"{
        "id": "GHSA-test-django", "modified": "2024-09-03T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "django"},
            "ranges": [{"type": "ECOSYSTEM", "events": [
                {"introduced": "5.0"}, {"fixed": "5.0.8"},
                {"introduced": "4.2"}, {"fixed": "4.2.15"}]}]}]
    }"#;

    #[test]
    fn a_version_is_affected_between_introduced_and_fixed() {
        let requests = record(REQUESTS);
        let hit = |v| affects(&requests, Ecosystem::PyPi, "requests", v).unwrap();
        let found = hit("2.31.0").unwrap();
        assert_eq!(found.fixed.as_deref(), Some("2.32.0"));
        assert_eq!(found.aliases, ["CVE-2024-35195"]);
        assert!(hit("2.32.0").is_none(), "the fix itself");
        assert!(hit("2.32.3").is_none());
        assert!(hit("0.1").is_some());
        // Another package or ecosystem is not this one.
        assert!(
            affects(&requests, Ecosystem::Npm, "requests", "2.31.0")
                .unwrap()
                .is_none()
        );
        assert!(
            affects(&requests, Ecosystem::PyPi, "requests-oauthlib", "1.0")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn each_branch_gets_its_own_fix_and_near_misses_are_clean() {
        let django = record(DJANGO);
        let hit = |v| affects(&django, Ecosystem::PyPi, "django", v).unwrap();
        assert_eq!(hit("4.2.14").unwrap().fixed.as_deref(), Some("4.2.15"));
        assert_eq!(hit("5.0.7").unwrap().fixed.as_deref(), Some("5.0.8"));
        for clean in ["4.2.15", "4.2.16", "4.1.13", "5.0.8", "5.1", "4.2rc1"] {
            assert!(hit(clean).is_none(), "{clean}");
        }
    }

    #[test]
    fn last_affected_limits_and_listed_versions_count() {
        let v = record(
            r#"{"id": "X-1", "modified": "2024-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "3.0.0"}, {"last_affected": "3.0.11-1~deb12u1"}]}],
                "versions": ["1.1.1n-0+deb11u5"]}]}"#,
        );
        let hit = |ver| affects(&v, Ecosystem::Debian, "openssl", ver).unwrap();
        let inside = hit("3.0.11-1~deb12u1").unwrap();
        assert_eq!(inside.fixed, None, "no fix published");
        assert!(hit("3.0.11-1~deb12u2").is_none());
        assert!(hit("1.1.1n-0+deb11u5").is_some(), "listed");
        assert!(hit("1.1.1n-0+deb11u4").is_none());
        let withdrawn = record(
            r#"{"id": "X-2", "modified": "2024-01-01T00:00:00Z", "withdrawn": "2024-02-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]}"#,
        );
        assert!(
            affects(&withdrawn, Ecosystem::Npm, "lodash", "4.17.20")
                .unwrap()
                .is_none()
        );
    }

    /// DSA-5514-1 (glibc, CVE-2023-4911) as Debian published it: one
    /// fix per release.
    const GLIBC: &str = r#"{
        "id": "DSA-5514-1", "modified": "2023-10-03T00:00:00Z",
        "summary": "glibc - security update",
        "upstream": ["CVE-2023-4806", "CVE-2023-4911"],
        "affected": [
            {"package": {"ecosystem": "Debian:11", "name": "glibc"},
             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.31-13+deb11u7"}]}]},
            {"package": {"ecosystem": "Debian:12", "name": "glibc"},
             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u3"}]}]}
        ]
    }"#;

    #[test]
    fn another_releases_fix_is_not_borrowed() {
        let glibc = record(GLIBC);
        assert_eq!(
            affects_in(
                &glibc,
                Ecosystem::Debian,
                Some("Debian:12"),
                "glibc",
                "2.36-9"
            )
            .unwrap()
            .unwrap()
            .aliases,
            ["CVE-2023-4806", "CVE-2023-4911"],
            "upstream ids count as aliases"
        );
        let hit = |distro, v| {
            affects_in(&glibc, Ecosystem::Debian, distro, "glibc", v)
                .unwrap()
                .map(|h| h.fixed.unwrap_or_default())
        };
        assert_eq!(
            hit(Some("Debian:11"), "2.31-13+deb11u6").as_deref(),
            Some("2.31-13+deb11u7")
        );
        assert_eq!(hit(Some("Debian:11"), "2.31-13+deb11u7"), None);
        assert_eq!(
            hit(Some("Debian:12"), "2.36-9+deb12u2").as_deref(),
            Some("2.36-9+deb12u3")
        );
        assert_eq!(hit(Some("Debian:12"), "2.36-9+deb12u3"), None);
        // Judged against bookworm's range, bullseye's patched glibc would
        // look affected; its own release says it is not.
        assert!(hit(None, "2.31-13+deb11u7").is_some());
        // Ubuntu's packages are not judged by Debian's advisories.
        assert_eq!(hit(Some("Ubuntu:22.04"), "2.35-0ubuntu3"), None);
        let ubuntu = record(
            r#"{"id": "USN-1", "modified": "2024-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "glibc"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.35-0ubuntu3.4"}]}]}]}"#,
        );
        let on = |distro| {
            affects_in(
                &ubuntu,
                Ecosystem::Debian,
                Some(distro),
                "glibc",
                "2.35-0ubuntu3",
            )
            .unwrap()
            .is_some()
        };
        assert!(on("Ubuntu:22.04"));
        assert!(!on("Ubuntu:22.0"));
        assert!(!on("Debian:12"));
    }

    #[test]
    fn an_unreadable_version_is_an_error_not_a_verdict() {
        let requests = record(REQUESTS);
        assert!(affects(&requests, Ecosystem::PyPi, "requests", "2.31.0-$$").is_err());
        let broken = record(
            r#"{"id": "X-3", "modified": "2024-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "not/a/version"}]}]}]}"#,
        );
        assert!(affects(&broken, Ecosystem::PyPi, "requests", "2.31.0").is_err());
    }
}
