//! What a release contains, read from the files package managers leave in
//! an image: dpkg's status database, apk's installed database, Python
//! distributions' metadata and Node packages' `package.json`. Pure
//! parsers over text; reading the image is the platform's. A record that
//! lacks a name or a version, or is not installed, is skipped, never
//! guessed.

use crate::version::Ecosystem;

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub ecosystem: Ecosystem,
    /// As the ecosystem's advisories name it (a Python name normalised as
    /// PEP 503 says).
    pub name: String,
    pub version: String,
    /// The source package a binary package was built from (Debian's
    /// advisories name sources; Alpine's name origins).
    pub source: Option<String>,
}

/// `Key: value` fields of one RFC 822-style paragraph; continuation
/// lines (starting with a space or tab) are skipped.
fn fields(paragraph: &str) -> impl Iterator<Item = (&str, &str)> {
    paragraph
        .lines()
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
}

/// Paragraphs separated by blank lines.
fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    text.split("\n\n").map(|p| p.trim_matches(['\r', '\n']))
}

/// Packages in dpkg's `var/lib/dpkg/status` (or a `status.d/` file, as
/// distroless images keep them): those whose status says installed.
pub fn dpkg_status(text: &str) -> Vec<Package> {
    let text = text.replace("\r\n", "\n");
    paragraphs(&text)
        .filter_map(|p| {
            let (mut name, mut version, mut source, mut status) = (None, None, None, None);
            for (key, value) in fields(p) {
                match key {
                    "Package" => name = Some(value),
                    "Version" => version = Some(value),
                    // `Source: openssl (3.0.11-1)` when the versions differ.
                    "Source" => source = value.split_whitespace().next(),
                    "Status" => status = Some(value),
                    _ => {}
                }
            }
            // status.d files carry no Status field: they list what is there.
            if status.is_some_and(|s| !s.ends_with(" installed")) {
                return None;
            }
            Some(Package {
                ecosystem: Ecosystem::Debian,
                name: name?.to_owned(),
                version: version?.to_owned(),
                source: Some(source.or(name)?.to_owned()),
            })
        })
        .collect()
}

/// Packages in apk's `lib/apk/db/installed`: `P:` name, `V:` version,
/// `o:` origin.
pub fn apk_installed(text: &str) -> Vec<Package> {
    let text = text.replace("\r\n", "\n");
    paragraphs(&text)
        .filter_map(|p| {
            let (mut name, mut version, mut origin) = (None, None, None);
            for line in p.lines() {
                match line.split_once(':') {
                    Some(("P", v)) => name = Some(v.trim()),
                    Some(("V", v)) => version = Some(v.trim()),
                    Some(("o", v)) => origin = Some(v.trim()),
                    _ => {}
                }
            }
            let name = name.filter(|n| !n.is_empty())?;
            Some(Package {
                ecosystem: Ecosystem::Alpine,
                name: name.to_owned(),
                version: version.filter(|v| !v.is_empty())?.to_owned(),
                source: Some(origin.unwrap_or(name).to_owned()),
            })
        })
        .collect()
}

/// A Python name as PEP 503 normalises it: lower case, runs of `-`, `_`
/// and `.` as one `-`.
pub fn python_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The distribution a `*.dist-info/METADATA` or `*.egg-info/PKG-INFO`
/// file describes (its headers end at the first blank line).
pub fn python_metadata(text: &str) -> Option<Package> {
    let text = text.replace("\r\n", "\n");
    let headers = text.split("\n\n").next()?;
    let (mut name, mut version) = (None, None);
    for (key, value) in fields(headers) {
        match key {
            "Name" if name.is_none() => name = Some(value),
            "Version" if version.is_none() => version = Some(value),
            _ => {}
        }
    }
    let name = python_name(name.filter(|n| !n.is_empty())?);
    Some(Package {
        ecosystem: Ecosystem::PyPi,
        source: None,
        name,
        version: version.filter(|v| !v.is_empty())?.to_owned(),
    })
}

/// The package a `node_modules/…/package.json` describes.
pub fn package_json(text: &str) -> Option<Package> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let name = value["name"].as_str().filter(|n| !n.is_empty())?;
    let version = value["version"].as_str().filter(|v| !v.is_empty())?;
    Some(Package {
        ecosystem: Ecosystem::Npm,
        name: name.to_owned(),
        version: version.to_owned(),
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: libssl3\n\
Status: install ok installed\n\
Priority: optional\n\
Source: openssl (3.0.11-1~deb12u2)\n\
Version: 3.0.11-1~deb12u2\n\
Description: Secure Sockets Layer toolkit\n \
This package is part of the OpenSSL project.\n \
Version: 9.9 (a continuation line, not a field)\n\
\n\
Package: zlib1g\n\
Status: install ok installed\n\
Source: zlib\n\
Version: 1:1.2.13.dfsg-1\n\
\n\
Package: removed-thing\n\
Status: deinstall ok config-files\n\
Version: 1.0\n\
\n\
Package: base-files\n\
Status: install ok installed\n\
Version: 12.4+deb12u5\n";

    #[test]
    fn dpkg_status_lists_installed_packages_with_their_sources() {
        let packages = dpkg_status(STATUS);
        let got: Vec<(&str, &str, Option<&str>)> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.source.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("libssl3", "3.0.11-1~deb12u2", Some("openssl")),
                ("zlib1g", "1:1.2.13.dfsg-1", Some("zlib")),
                ("base-files", "12.4+deb12u5", Some("base-files")),
            ]
        );
        assert!(packages.iter().all(|p| p.ecosystem == Ecosystem::Debian));
        // Windows line ends and a distroless status.d file (no Status).
        assert_eq!(dpkg_status(&STATUS.replace('\n', "\r\n")).len(), 3);
        assert_eq!(
            dpkg_status("Package: tzdata\nVersion: 2024a-0+deb12u1\n").len(),
            1
        );
    }

    #[test]
    fn apk_installed_lists_packages_with_their_origins() {
        let db = "C:Q1abc=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\n\nP:musl\nV:1.2.4_git20230717-r4\n\nP:broken\n";
        let packages = apk_installed(db);
        let got: Vec<(&str, &str, Option<&str>)> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.source.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("libcrypto3", "3.1.4-r5", Some("openssl")),
                ("musl", "1.2.4_git20230717-r4", Some("musl")),
            ]
        );
    }

    #[test]
    fn python_and_node_metadata_name_their_package() {
        let metadata = "Metadata-Version: 2.1\nName: Django_REST.framework\nVersion: 3.14.0\n\nName: not-this\nVersion: 0\n";
        let package = python_metadata(metadata).unwrap();
        assert_eq!(
            (package.name.as_str(), package.version.as_str()),
            ("django-rest-framework", "3.14.0")
        );
        assert_eq!(python_name("Foo__Bar..baz"), "foo-bar-baz");
        assert!(python_metadata("Name: x\n").is_none(), "no version");
        assert!(python_metadata("\u{0}\u{1}garbage").is_none());

        let package =
            package_json(r#"{"name": "lodash", "version": "4.17.20", "main": "lodash.js"}"#)
                .unwrap();
        assert_eq!(
            (package.name.as_str(), package.version.as_str()),
            ("lodash", "4.17.20")
        );
        for junk in [
            r#"{"name": "x"}"#,
            r#"{"version": "1.0.0"}"#,
            "[1, 2]",
            "not json",
            r#"{"name": 3, "version": "1"}"#,
        ] {
            assert!(package_json(junk).is_none(), "{junk}");
        }
    }
}
