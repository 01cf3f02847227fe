//! Vulnerabilities: what an app's release contains, and which published
//! advisories (OSV) affect it. Pure code: the platform reads images and
//! advisory files and hands their contents here.
//!
//! `version` orders package versions the way each ecosystem does: dpkg's
//! algorithm for Debian (epochs, `~`), PEP 440 for PyPI, SemVer for npm,
//! crates.io and Go, and apk's for Alpine, which no crate implements.
//! `advisory` decides whether an OSV record affects an installed version,
//! and which version fixes it; `inventory` reads what package managers
//! record about what is installed.

pub mod advisory;
pub mod inventory;
pub mod version;

pub use version::{Ecosystem, VersionError, compare};
