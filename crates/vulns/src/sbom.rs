//! An inventory as a CycloneDX 1.5 bill of materials (JSON), each package
//! a component with its package URL (purl), the way scanners and
//! dependency trackers read them.

use crate::inventory::Package;
use crate::version::Ecosystem;

/// Percent-encodes what a purl segment may not hold as it is.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The package URL of `package` (`pkg:deb/debian/libssl3@3.0.11-1~deb12u2`).
pub fn purl(package: &Package) -> String {
    let version = encode(&package.version);
    match package.ecosystem {
        Ecosystem::Debian => {
            let source = package
                .source
                .as_deref()
                .filter(|s| *s != package.name)
                .map(|s| format!("?upstream={}", encode(s)))
                .unwrap_or_default();
            format!("pkg:deb/debian/{}@{version}{source}", encode(&package.name))
        }
        Ecosystem::Alpine => format!("pkg:apk/alpine/{}@{version}", encode(&package.name)),
        Ecosystem::PyPi => format!("pkg:pypi/{}@{version}", encode(&package.name)),
        Ecosystem::Npm => match package
            .name
            .strip_prefix('@')
            .and_then(|n| n.split_once('/'))
        {
            Some((scope, name)) => {
                format!("pkg:npm/%40{}/{}@{version}", encode(scope), encode(name))
            }
            None => format!("pkg:npm/{}@{version}", encode(&package.name)),
        },
        Ecosystem::CratesIo => format!("pkg:cargo/{}@{version}", encode(&package.name)),
        Ecosystem::Go => {
            let path: Vec<String> = package.name.split('/').map(encode).collect();
            format!("pkg:golang/{}@{version}", path.join("/"))
        }
    }
}

/// The bill of materials of `packages`, for the release `name` at
/// `version`, made at `timestamp` (RFC 3339).
pub fn cyclonedx(
    name: &str,
    version: &str,
    timestamp: &str,
    packages: &[Package],
) -> serde_json::Value {
    let components: Vec<serde_json::Value> = packages
        .iter()
        .map(|p| {
            serde_json::json!({
                "type": "library",
                "bom-ref": format!("{}#{}", purl(p), p.location),
                "name": p.name,
                "version": p.version,
                "purl": purl(p),
                "properties": [{"name": "rampart:location", "value": p.location}],
            })
        })
        .collect();
    serde_json::json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{"type": "application", "name": "rampart", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {"type": "container", "name": name, "version": version},
        },
        "components": components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(ecosystem: Ecosystem, name: &str, version: &str, source: Option<&str>) -> Package {
        Package {
            ecosystem,
            name: name.into(),
            version: version.into(),
            source: source.map(str::to_owned),
            location: "/var/lib/dpkg/status".into(),
            distro: None,
        }
    }

    #[test]
    fn package_urls_follow_the_purl_spec() {
        let cases = [
            (
                package(
                    Ecosystem::Debian,
                    "libssl3",
                    "3.0.11-1~deb12u2",
                    Some("openssl"),
                ),
                "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?upstream=openssl",
            ),
            (
                package(
                    Ecosystem::Debian,
                    "zlib1g",
                    "1:1.2.13.dfsg-1",
                    Some("zlib1g"),
                ),
                "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1",
            ),
            (
                package(Ecosystem::Alpine, "musl", "1.2.4_git20230717-r4", None),
                "pkg:apk/alpine/musl@1.2.4_git20230717-r4",
            ),
            (
                package(Ecosystem::PyPi, "django", "4.2.14", None),
                "pkg:pypi/django@4.2.14",
            ),
            (
                package(Ecosystem::Npm, "@babel/core", "7.22.0", None),
                "pkg:npm/%40babel/core@7.22.0",
            ),
            (
                package(Ecosystem::Npm, "lodash", "4.17.20", None),
                "pkg:npm/lodash@4.17.20",
            ),
            (
                package(Ecosystem::Go, "golang.org/x/net", "v0.17.0", None),
                "pkg:golang/golang.org/x/net@v0.17.0",
            ),
        ];
        for (p, expected) in cases {
            assert_eq!(purl(&p), expected);
        }
        // Nothing a name holds can break out of its segment.
        let odd = package(Ecosystem::PyPi, "a/b?c#d@e", "1 2", None);
        assert_eq!(purl(&odd), "pkg:pypi/a%2Fb%3Fc%23d%40e@1%202");
    }

    #[test]
    fn the_bill_of_materials_is_cyclonedx_1_5() {
        let bom = cyclonedx(
            "blog",
            "release 3",
            "2026-11-30T00:00:00Z",
            &[package(
                Ecosystem::Debian,
                "libssl3",
                "3.0.11-1~deb12u2",
                Some("openssl"),
            )],
        );
        assert_eq!(bom["bomFormat"], "CycloneDX");
        assert_eq!(bom["specVersion"], "1.5");
        assert_eq!(bom["metadata"]["component"]["name"], "blog");
        assert_eq!(
            bom["components"][0]["purl"],
            "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?upstream=openssl"
        );
        assert_eq!(
            bom["components"][0]["properties"][0]["value"],
            "/var/lib/dpkg/status"
        );
    }
}
