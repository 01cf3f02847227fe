//! What a release contains, read from the files package managers leave in
//! an image: dpkg's status database, apk's installed database, Python
//! distributions' metadata and Node packages' `package.json`. Pure
//! parsers over text; reading the image is the platform's. A record that
//! lacks a name or a version, or is not installed, is skipped, never
//! guessed.

use crate::version::Ecosystem;

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
    /// As the ecosystem's advisories name it (a Python name normalised as
    /// PEP 503 says).
    pub name: String,
    pub version: String,
    /// The source package a binary package was built from (Debian's
    /// advisories name sources; Alpine's name origins).
    pub source: Option<String>,
    /// The file it was read from, inside the image.
    pub location: String,
    /// For a distribution's package, the release the image says it is, as
    /// OSV names it (`Debian:12`, `Alpine:v3.19`, `Ubuntu:22.04`): its
    /// advisories are per release, and another release's fix is not this
    /// one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<String>,
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
            let name = name.filter(|n| !n.is_empty());
            let version = version.filter(|v| !v.is_empty());
            Some(Package {
                ecosystem: Ecosystem::Debian,
                name: name?.to_owned(),
                version: version?.to_owned(),
                source: Some(source.or(name)?.to_owned()),
                location: String::new(),
                distro: None,
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
                location: String::new(),
                distro: None,
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
        location: String::new(),
        distro: None,
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
        location: String::new(),
        distro: None,
    })
}

/// The release an `os-release` file names, as OSV names it: `Debian:12`,
/// `Ubuntu:22.04`, `Alpine:v3.19` (from `3.19.1`). `None` for other
/// systems, or without a version (Debian testing).
pub fn os_release(text: &str) -> Option<String> {
    let (mut id, mut version) = (None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches(['"', '\'']);
        match key.trim() {
            "ID" => id = Some(value),
            "VERSION_ID" => version = Some(value),
            _ => {}
        }
    }
    let version = version.filter(|v| !v.is_empty() && v.len() <= 32)?;
    match id? {
        "debian" => Some(format!("Debian:{}", version.split('.').next()?)),
        "ubuntu" => Some(format!("Ubuntu:{version}")),
        "alpine" => {
            let mut parts = version.split('.');
            Some(format!("Alpine:v{}.{}", parts.next()?, parts.next()?))
        }
        _ => None,
    }
}

fn locked(ecosystem: Ecosystem, name: &str, version: &str) -> Option<Package> {
    let name = name.trim();
    let version = version.trim();
    if name.is_empty() || version.is_empty() || name.len() > 214 || version.len() > 128 {
        return None;
    }
    Some(Package {
        ecosystem,
        name: match ecosystem {
            Ecosystem::PyPi => python_name(name),
            _ => name.to_owned(),
        },
        version: version.to_owned(),
        source: None,
        location: String::new(),
        distro: None,
    })
}

/// Pinned requirements (`name==version`, extras and markers dropped);
/// ranges pin nothing and are skipped.
pub fn requirements_txt(text: &str) -> Vec<Package> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(" #").next()?.split(';').next()?.trim();
            let line = line.trim_end_matches('\\').trim();
            if line.starts_with(['#', '-']) {
                return None;
            }
            let (name, version) = line.split_once("==")?;
            let version = version.trim_start_matches('=').split_whitespace().next()?;
            if version.contains('*') {
                return None;
            }
            let name = name.split('[').next()?;
            locked(Ecosystem::PyPi, name, version)
        })
        .collect()
}

/// `[[package]]` tables with a name and a version (poetry.lock, uv.lock,
/// Cargo.lock). Cargo's own path and git packages carry no registry
/// source and are not crates.io's.
fn toml_packages(text: &str, ecosystem: Ecosystem) -> Vec<Package> {
    let Ok(value) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let Some(packages) = value.get("package").and_then(toml::Value::as_array) else {
        return Vec::new();
    };
    packages
        .iter()
        .filter_map(|p| {
            if ecosystem == Ecosystem::CratesIo
                && !p
                    .get("source")
                    .and_then(toml::Value::as_str)
                    .is_some_and(|s| s.starts_with("registry+"))
            {
                return None;
            }
            locked(
                ecosystem,
                p.get("name")?.as_str()?,
                p.get("version")?.as_str()?,
            )
        })
        .collect()
}

pub fn python_lock(text: &str) -> Vec<Package> {
    toml_packages(text, Ecosystem::PyPi)
}

pub fn cargo_lock(text: &str) -> Vec<Package> {
    toml_packages(text, Ecosystem::CratesIo)
}

/// Pipfile.lock's `default` packages (those installed in production).
pub fn pipfile_lock(text: &str) -> Vec<Package> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let Some(default) = value["default"].as_object() else {
        return Vec::new();
    };
    default
        .iter()
        .filter_map(|(name, entry)| {
            let version = entry["version"].as_str()?.strip_prefix("==")?;
            locked(Ecosystem::PyPi, name, version)
        })
        .collect()
}

/// package-lock.json: `packages` (lockfile versions 2 and 3) or, in
/// version 1 files, the nested `dependencies`.
pub fn package_lock(text: &str) -> Vec<Package> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(packages) = value["packages"].as_object() {
        for (path, entry) in packages {
            let Some((_, name)) = path.rsplit_once("node_modules/") else {
                continue;
            };
            if entry["link"].as_bool() == Some(true) {
                continue;
            }
            if let Some(version) = entry["version"].as_str() {
                out.extend(locked(Ecosystem::Npm, name, version));
            }
        }
        return out;
    }
    let mut pending = vec![&value["dependencies"]];
    while let Some(deps) = pending.pop() {
        for (name, entry) in deps.as_object().into_iter().flatten() {
            if let Some(version) = entry["version"].as_str() {
                out.extend(locked(Ecosystem::Npm, name, version));
            }
            pending.push(&entry["dependencies"]);
        }
    }
    out
}

/// go.sum: each module version once (its `/go.mod` line and its tree's
/// are one version), without the `v` OSV's Go records leave off.
pub fn go_sum(text: &str) -> Vec<Package> {
    let mut seen = std::collections::BTreeSet::new();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let module = parts.next()?;
            let version = parts.next()?.trim_end_matches("/go.mod");
            let version = version.strip_prefix('v').unwrap_or(version);
            seen.insert((module, version))
                .then(|| locked(Ecosystem::Go, module, version))
                .flatten()
        })
        .collect()
}

/// The most of a Rust binary read for its dependency list.
pub const MAX_BINARY: u64 = 128 << 20;

/// The dependency list cargo-auditable embeds in a Rust binary (an
/// ELF64 little-endian file's `.dep-v0` section: zlib-compressed JSON):
/// its crates.io packages, build-time ones left out (they are not in the
/// binary). Anything else, or a malformed file, yields nothing.
pub fn auditable_binary(bytes: &[u8]) -> Vec<Package> {
    use std::io::Read;
    let Some(section) = elf_section(bytes, b".dep-v0") else {
        return Vec::new();
    };
    let mut json = Vec::new();
    let read = flate2::read::ZlibDecoder::new(section)
        .take(8 << 20)
        .read_to_end(&mut json);
    let Ok(value) = read.and_then(|_| Ok(serde_json::from_slice::<serde_json::Value>(&json)?))
    else {
        return Vec::new();
    };
    value["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["source"] == "crates.io" && p["kind"] != "build")
        .filter_map(|p| {
            locked(
                Ecosystem::CratesIo,
                p["name"].as_str()?,
                p["version"].as_str()?,
            )
        })
        .collect()
}

/// The contents of the section named `wanted` of an ELF64 little-endian
/// file, if it has one and every offset is inside the file.
fn elf_section<'a>(bytes: &'a [u8], wanted: &[u8]) -> Option<&'a [u8]> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return None;
    }
    let u16_at = |at: usize| -> Option<usize> {
        Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?) as usize)
    };
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let u64_at = |at: usize| -> Option<usize> {
        usize::try_from(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?)).ok()
    };
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?);
    if shentsize < 64 || shstrndx >= shnum {
        return None;
    }
    let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let body = |h: usize| -> Option<&'a [u8]> {
        let (offset, size) = (u64_at(h + 24)?, u64_at(h + 32)?);
        bytes.get(offset..offset.checked_add(size)?)
    };
    let names = body(header(shstrndx)?)?;
    (0..shnum).find_map(|i| {
        let h = header(i)?;
        let name_at = u32_at(h)?;
        let name = names.get(name_at..)?;
        let name = &name[..name.iter().position(|&b| b == 0)?];
        (name == wanted).then(|| body(h)).flatten()
    })
}

/// The most of one metadata file read; larger ones are skipped.
pub const MAX_FILE: u64 = 16 << 20;

/// Which parser reads a file at `path` (relative, without a leading `/`
/// or `./`), if any.
fn reader_for(path: &str) -> Option<fn(&str) -> Vec<Package>> {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    if path == "var/lib/dpkg/status"
        || (path.starts_with("var/lib/dpkg/status.d/") && !path.ends_with(".md5sums"))
    {
        return Some(dpkg_status);
    }
    if path == "lib/apk/db/installed" {
        return Some(apk_installed);
    }
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    let parent = dir.rsplit('/').next().unwrap_or(dir);
    if (file == "METADATA" && parent.ends_with(".dist-info"))
        || (file == "PKG-INFO" && parent.ends_with(".egg-info"))
    {
        return Some(|text| python_metadata(text).into_iter().collect());
    }
    // Lockfiles of the app itself, not those a dependency ships.
    let vendored = [
        "node_modules/",
        "site-packages/",
        "dist-packages/",
        "usr/share/",
        "usr/lib/",
    ]
    .iter()
    .any(|d| path.contains(d));
    if !vendored {
        let read: Option<fn(&str) -> Vec<Package>> = match file {
            "requirements.txt" => Some(requirements_txt),
            "poetry.lock" | "uv.lock" => Some(python_lock),
            "Pipfile.lock" => Some(pipfile_lock),
            "package-lock.json" => Some(package_lock),
            "Cargo.lock" => Some(cargo_lock),
            "go.sum" => Some(go_sum),
            _ => None,
        };
        if read.is_some() {
            return read;
        }
    }
    if file == "package.json" {
        // Only a package's own: node_modules/NAME/ or node_modules/@SCOPE/NAME/.
        let parts: Vec<&str> = dir.rsplit('/').take(3).collect();
        let direct = match parts.as_slice() {
            [_, "node_modules", ..] => !parts[0].starts_with('@'),
            [_, scope, "node_modules"] => scope.starts_with('@'),
            _ => false,
        };
        if direct {
            return Some(|text| package_json(text).into_iter().collect());
        }
    }
    None
}

/// Why an image's file tree could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the image's files: {0}")]
pub struct ScanError(#[from] std::io::Error);

/// Every package recorded in a tar stream of an image's file tree (what
/// the engine exports of a container made from it). Only regular files
/// are read, each up to [`MAX_FILE`]; links are never followed, and
/// nothing is written anywhere.
pub fn scan_tar(reader: impl std::io::Read) -> Result<Vec<Package>, ScanError> {
    use std::io::Read;
    let mut archive = tar::Archive::new(reader);
    let mut found = Vec::new();
    // `etc/os-release` is usually a link to `usr/lib/os-release`; the
    // first regular one of the two wins, `etc` before `usr/lib`.
    let mut distro: [Option<String>; 2] = [None, None];
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let relative = path.trim_start_matches("./").trim_start_matches('/');
        let slot = match relative {
            "etc/os-release" => Some(0),
            "usr/lib/os-release" => Some(1),
            _ => None,
        };
        if let Some(slot) = slot {
            let mut text = String::new();
            (&mut entry).take(64 << 10).read_to_string(&mut text).ok();
            distro[slot] = os_release(&text);
            continue;
        }
        let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
        if reader_for(&path).is_none()
            && executable
            && entry.size() <= MAX_BINARY
            && entry.size() >= 64
        {
            let mut magic = [0u8; 4];
            if entry.read_exact(&mut magic).is_ok() && &magic == b"\x7fELF" {
                let mut bytes = magic.to_vec();
                (&mut entry).take(MAX_BINARY).read_to_end(&mut bytes)?;
                let location = format!("/{}", relative);
                found.extend(auditable_binary(&bytes).into_iter().map(|mut p| {
                    p.location = location.clone();
                    p
                }));
            }
            continue;
        }
        let Some(read) = reader_for(&path) else {
            continue;
        };
        if entry.size() > MAX_FILE {
            continue;
        }
        let mut bytes = Vec::new();
        (&mut entry).take(MAX_FILE).read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        let location = format!("/{}", path.trim_start_matches("./").trim_start_matches('/'));
        found.extend(read(&text).into_iter().map(|mut p| {
            p.location = location.clone();
            p
        }));
    }
    let [etc, usr] = distro;
    if let Some(distro) = etc.or(usr) {
        for package in &mut found {
            if matches!(package.ecosystem, Ecosystem::Debian | Ecosystem::Alpine) {
                package.distro = Some(distro.clone());
            }
        }
    }
    Ok(found)
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

    fn tar_of(files: &[(&str, &[u8])], link: Option<(&str, &str)>) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, *data).unwrap();
        }
        if let Some((path, target)) = link {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, path, target).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn an_image_tree_is_read_from_its_tar_stream() {
        let pkg = br#"{"name": "lodash", "version": "4.17.20"}"#;
        let scoped = br#"{"name": "@babel/core", "version": "7.22.0"}"#;
        let fixture = br#"{"name": "fixture", "version": "0.0.1"}"#;
        let tar = tar_of(
            &[
                ("var/lib/dpkg/status", STATUS.as_bytes()),
                (
                    "var/lib/dpkg/status.d/tzdata",
                    b"Package: tzdata\nVersion: 2024a-0+deb12u1\n",
                ),
                (
                    "var/lib/dpkg/status.d/tzdata.md5sums",
                    b"Package: nope\nVersion: 1\n",
                ),
                (
                    "usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA",
                    b"Name: requests\nVersion: 2.31.0\n",
                ),
                (
                    "app/venv/lib/python3.11/site-packages/Django-4.2.14.egg-info/PKG-INFO",
                    b"Name: Django\nVersion: 4.2.14\n",
                ),
                ("app/node_modules/lodash/package.json", pkg),
                ("app/node_modules/@babel/core/package.json", scoped),
                (
                    "app/node_modules/lodash/test/fixtures/package.json",
                    fixture,
                ),
                ("app/package.json", fixture),
                ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                (
                    "usr/lib/os-release",
                    b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
                ),
            ],
            Some(("lib/apk/db/installed", "/etc/shadow")),
        );
        let found = scan_tar(tar.as_slice()).unwrap();
        let mut got: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|p| (p.ecosystem.as_osv(), p.name.as_str(), p.location.as_str()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("Debian", "base-files", "/var/lib/dpkg/status"),
                ("Debian", "libssl3", "/var/lib/dpkg/status"),
                ("Debian", "tzdata", "/var/lib/dpkg/status.d/tzdata"),
                ("Debian", "zlib1g", "/var/lib/dpkg/status"),
                (
                    "PyPI",
                    "django",
                    "/app/venv/lib/python3.11/site-packages/Django-4.2.14.egg-info/PKG-INFO"
                ),
                (
                    "PyPI",
                    "requests",
                    "/usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA"
                ),
                (
                    "npm",
                    "@babel/core",
                    "/app/node_modules/@babel/core/package.json"
                ),
                ("npm", "lodash", "/app/node_modules/lodash/package.json"),
            ]
        );
        for package in &found {
            let want = (package.ecosystem == Ecosystem::Debian).then_some("Debian:12");
            assert_eq!(package.distro.as_deref(), want, "{}", package.name);
        }
        // Not a tar at all: an error, not an empty inventory.
        let junk = [b'x'; 1024];
        assert!(scan_tar(&junk[..]).is_err());
    }

    /// A minimal ELF64 file whose sections are the string table and
    /// `.dep-v0` holding `deps`, compressed as cargo-auditable does.
    fn elf_with_deps(deps: &serde_json::Value) -> Vec<u8> {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(deps.to_string().as_bytes()).unwrap();
        let section = z.finish().unwrap();
        let names = b"\0.shstrtab\0.dep-v0\0".to_vec();
        let mut file = vec![0u8; 64];
        file[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let names_at = file.len();
        file.extend_from_slice(&names);
        let section_at = file.len();
        file.extend_from_slice(&section);
        let shoff = file.len();
        let header = |name: u32, offset: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[24..32].copy_from_slice(&(offset as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            h
        };
        let null = header(0, 0, 0);
        let strtab = header(1, names_at, names.len());
        let deps = header(11, section_at, section.len());
        file.extend(null.into_iter().chain(strtab).chain(deps));
        file[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        file[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        file[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        file[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        file
    }

    #[test]
    fn rust_binaries_built_with_cargo_auditable_name_their_crates() {
        let deps = serde_json::json!({"packages": [
            {"name": "app", "version": "0.1.0", "source": "local", "kind": "runtime", "root": true},
            {"name": "time", "version": "0.3.20", "source": "crates.io", "kind": "runtime"},
            {"name": "cc", "version": "1.0.0", "source": "crates.io", "kind": "build"},
            {"name": "forked", "version": "1.0.0", "source": "git", "kind": "runtime"}
        ]});
        let binary = elf_with_deps(&deps);
        let got: Vec<String> = auditable_binary(&binary)
            .iter()
            .map(|p| format!("{} {} {}", p.ecosystem.as_osv(), p.name, p.version))
            .collect();
        assert_eq!(got, ["crates.io time 0.3.20"]);
        // Through a tar stream, as an executable file.
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(binary.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, "usr/local/bin/app", binary.as_slice())
            .unwrap();
        let found = scan_tar(tar.into_inner().unwrap().as_slice()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].location, "/usr/local/bin/app");
        // Truncated, corrupt or foreign files give nothing, and never panic.
        for cut in [0, 10, 64, 100, binary.len() - 40] {
            assert!(auditable_binary(&binary[..cut]).is_empty(), "{cut}");
        }
        let mut wild = binary.clone();
        wild[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(auditable_binary(&wild).is_empty());
        let mut garbled = binary.clone();
        let last = garbled.len() - 200;
        garbled[last..last + 8].copy_from_slice(&[0xff; 8]);
        let _ = auditable_binary(&garbled);
        assert!(
            auditable_binary(
                b"\x7fELF not really an elf file at all, no no no no no no no no no no no"
            )
            .is_empty()
        );
    }

    #[test]
    fn lockfiles_name_their_pinned_packages() {
        let names = |packages: Vec<Package>| -> Vec<String> {
            packages
                .iter()
                .map(|p| format!("{} {} {}", p.ecosystem.as_osv(), p.name, p.version))
                .collect()
        };
        let requirements = "# pinned\nDjango==4.2.2 \\\n    --hash=sha256:abc\nrequests[socks]==2.31.0 ; python_version >= \"3.8\"\nflask>=2\nurllib3===1.26.5\n-r other.txt\nbroken==\n";
        assert_eq!(
            names(requirements_txt(requirements)),
            [
                "PyPI django 4.2.2",
                "PyPI requests 2.31.0",
                "PyPI urllib3 1.26.5"
            ]
        );
        let poetry =
            "[[package]]\nname = \"Jinja2\"\nversion = \"3.1.2\"\n\n[[package]]\nname = \"x\"\n";
        assert_eq!(names(python_lock(poetry)), ["PyPI jinja2 3.1.2"]);
        let cargo = "version = 3\n[[package]]\nname = \"time\"\nversion = \"0.3.20\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[[package]]\nname = \"my-app\"\nversion = \"0.1.0\"\n";
        assert_eq!(names(cargo_lock(cargo)), ["crates.io time 0.3.20"]);
        let pipfile = r#"{"default": {"django": {"version": "==4.2.2"}, "gitdep": {"git": "x"}},
            "develop": {"pytest": {"version": "==7.0.0"}}}"#;
        assert_eq!(names(pipfile_lock(pipfile)), ["PyPI django 4.2.2"]);
        let lock3 = r#"{"lockfileVersion": 3, "packages": {"": {"name": "app", "version": "1.0.0"},
            "node_modules/lodash": {"version": "4.17.20"},
            "node_modules/@babel/core": {"version": "7.22.0"},
            "node_modules/a/node_modules/lodash": {"version": "4.17.11"},
            "node_modules/local": {"link": true}}}"#;
        let mut got = names(package_lock(lock3));
        got.sort();
        assert_eq!(
            got,
            [
                "npm @babel/core 7.22.0",
                "npm lodash 4.17.11",
                "npm lodash 4.17.20"
            ]
        );
        let lock1 = r#"{"lockfileVersion": 1, "dependencies": {"a": {"version": "1.0.0",
            "dependencies": {"lodash": {"version": "4.17.11"}}}}}"#;
        let mut got = names(package_lock(lock1));
        got.sort();
        assert_eq!(got, ["npm a 1.0.0", "npm lodash 4.17.11"]);
        let sum = "golang.org/x/net v0.7.0 h1:abc=\ngolang.org/x/net v0.7.0/go.mod h1:def=\nbad\n";
        assert_eq!(names(go_sum(sum)), ["Go golang.org/x/net 0.7.0"]);
        for junk in ["\u{0}\u{ff}", "[[package]", "{", ""] {
            assert!(python_lock(junk).is_empty());
            assert!(cargo_lock(junk).is_empty());
            assert!(package_lock(junk).is_empty());
            assert!(pipfile_lock(junk).is_empty());
        }
        assert_eq!(
            reader_for("app/node_modules/x/package-lock.json").map(|_| ()),
            None,
            "a dependency's own lockfile is not the app's"
        );
        assert!(reader_for("app/requirements.txt").is_some());
        assert!(reader_for("srv/go.sum").is_some());
    }

    #[test]
    fn link_loops_and_malformed_metadata_yield_nothing_and_never_hang() {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, target) in [
            ("loop/a", "b"),
            ("loop/b", "a"),
            ("var/lib/dpkg/status", "status"),
            ("lib/apk/db/installed", "/lib/apk/db/installed"),
            ("app/node_modules/x/package.json", "../../../etc/shadow"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, path, target).unwrap();
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Link);
        header.set_size(0);
        builder
            .append_link(&mut header, "usr/lib/os-release", "usr/lib/os-release")
            .unwrap();
        let junk: &[(&str, &[u8])] = &[
            (
                "var/lib/dpkg/status.d/junk",
                b"\x00\xff\xfe\n\nPackage:\nVersion:\n\n::::\n",
            ),
            ("lib/apk/db/installed.bak", b"P:x\n"),
            (
                "srv/venv/lib/python3.11/site-packages/x-1.dist-info/METADATA",
                b"Name:\nVersion: 1\n",
            ),
            (
                "srv/venv/lib/python3.11/site-packages/y-1.dist-info/METADATA",
                &[0xff; 300],
            ),
            (
                "srv/node_modules/z/package.json",
                b"{\"name\": 5, \"version\": []}",
            ),
            ("srv/requirements.txt", b"==\n==1.0\nname==\n"),
        ];
        for (path, data) in junk {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, *data).unwrap();
        }
        let found = scan_tar(builder.into_inner().unwrap().as_slice()).unwrap();
        assert!(found.is_empty(), "{found:?}");
        assert!(dpkg_status("Package: a\nStatus: install ok installed\n").is_empty());
        assert!(apk_installed("V:1.0\n\nP:\nV:1\n").is_empty());
        assert!(python_metadata("Version: 1.0\n").is_none());
        assert!(package_json("[1, 2]").is_none());
    }

    #[test]
    fn os_release_names_the_release_as_osv_does() {
        let debian =
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";
        assert_eq!(os_release(debian).as_deref(), Some("Debian:12"));
        let alpine = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n";
        assert_eq!(os_release(alpine).as_deref(), Some("Alpine:v3.19"));
        let ubuntu = "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\n";
        assert_eq!(os_release(ubuntu).as_deref(), Some("Ubuntu:22.04"));
        for unknown in [
            "ID=debian\n",
            "ID=fedora\nVERSION_ID=40\n",
            "ID=alpine\nVERSION_ID=edge\n",
            "\u{0}\u{ff}",
            "",
        ] {
            assert_eq!(os_release(unknown), None, "{unknown:?}");
        }
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
