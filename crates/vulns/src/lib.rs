//! Vulnerabilities: what an app's release contains, and which published
//! advisories (OSV) affect it. The platform hands in an image's files as
//! a tar stream and advisory files from the operator; nothing here runs
//! a container or fetches anything.
//!
//! `version` orders package versions the way each ecosystem does: dpkg's
//! algorithm for Debian (epochs, `~`), PEP 440 for PyPI, SemVer for npm,
//! crates.io and Go, and apk's for Alpine, which no crate implements.
//! `advisory` decides whether an OSV record affects an installed version,
//! and which version fixes it; `inventory` reads what package managers
//! record about what is installed; `db` holds advisories indexed by
//! package, imports folders of OSV records incrementally and matches an
//! inventory; `severity` rates advisories (CVSS vectors, else the
//! database's rating); `sbom` writes an inventory as CycloneDX.

pub mod advisory;
pub mod db;
pub mod inventory;
pub mod sbom;
pub mod severity;
pub mod version;

pub use version::{Ecosystem, VersionError, compare};
