//! Advisories held in memory, indexed by ecosystem and package name, and
//! an inventory matched against them. Records come from OSV JSON files
//! (one record per file, as OSV's per-ecosystem exports hold them); a
//! record replaces an older one with the same id only when its `modified`
//! time is later, so importing the same files again changes nothing.

use std::collections::HashMap;
use std::path::Path;

use osv::schema::Vulnerability;

use crate::advisory::{Hit, affects_in};
use crate::inventory::{Package, python_name};
use crate::severity::{self, Severity};
use crate::version::{Ecosystem, VersionError};

/// Drops what matching, rating and listing never read from a record
/// (details, references, credits, ecosystem- and database-specific data
/// but the database's severity).
pub fn slim(record: &mut Vulnerability) {
    record.details = None;
    record.references = None;
    record.credits = None;
    record.related = None;
    if let Some(specific) = &mut record.database_specific {
        let severity = specific.get("severity").cloned();
        *specific = serde_json::json!({ "severity": severity });
    }
    for affected in record.affected.iter_mut().flatten() {
        affected.ecosystem_specific = None;
        affected.database_specific = None;
    }
}

/// A record's `modified` time in the platform's form
/// (`2024-03-01T00:00:00.000Z`).
pub fn modified(record: &Vulnerability) -> String {
    record
        .modified
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The most of one advisory file read.
pub const MAX_RECORD: u64 = 4 << 20;

/// What adding a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    Updated,
    Unchanged,
}

/// A package of the inventory that an advisory affects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub package: Package,
    pub advisory: Hit,
    pub severity: Severity,
    pub summary: Option<String>,
}

/// A package whose version, or an advisory's, could not be ordered: it is
/// reported, not taken for clean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unjudged {
    pub package: Package,
    pub advisory: String,
    pub error: VersionError,
}

/// The advisories known.
#[derive(Debug, Default)]
pub struct Database {
    records: Vec<Vulnerability>,
    by_id: HashMap<String, usize>,
    by_package: HashMap<(Ecosystem, String), Vec<usize>>,
}

/// How a package is named in the index.
fn key_name(ecosystem: Ecosystem, name: &str) -> String {
    match ecosystem {
        Ecosystem::PyPi => python_name(name),
        _ => name.to_owned(),
    }
}

impl Database {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// What [`Database::add`] would do with `record`, changing nothing.
    pub fn would_add(&self, record: &Vulnerability) -> Added {
        match self.by_id.get(&record.id) {
            Some(&i) if self.records[i].modified >= record.modified => Added::Unchanged,
            Some(_) => Added::Updated,
            None => Added::New,
        }
    }

    /// The latest `modified` time of any record (RFC 3339): how fresh the
    /// data is.
    pub fn newest(&self) -> Option<String> {
        self.records.iter().max_by_key(|r| r.modified).map(modified)
    }

    /// Adds `record`, or replaces the one with its id if it is newer.
    /// Only what matching, rating and listing read is kept (the full
    /// record is the caller's to store).
    pub fn add(&mut self, mut record: Vulnerability) -> Added {
        slim(&mut record);
        let keys: Vec<(Ecosystem, String)> = record
            .affected
            .iter()
            .flatten()
            .filter_map(|a| {
                let package = a.package.as_ref()?;
                let name = serde_json::to_value(&package.ecosystem).ok()?;
                let ecosystem = Ecosystem::from_osv(name.as_str()?)?;
                Some((ecosystem, key_name(ecosystem, &package.name)))
            })
            .collect();
        match self.by_id.get(&record.id).copied() {
            Some(i) if self.records[i].modified >= record.modified => Added::Unchanged,
            Some(i) => {
                for list in self.by_package.values_mut() {
                    list.retain(|&j| j != i);
                }
                for key in keys {
                    self.by_package.entry(key).or_default().push(i);
                }
                self.records[i] = record;
                Added::Updated
            }
            None => {
                let i = self.records.len();
                self.by_id.insert(record.id.clone(), i);
                for key in keys {
                    let list = self.by_package.entry(key).or_default();
                    if !list.contains(&i) {
                        list.push(i);
                    }
                }
                self.records.push(record);
                Added::New
            }
        }
    }

    /// Every advisory affecting a package of `inventory`, and the pairs
    /// that could not be judged. Debian and Alpine packages are looked up
    /// by their source package, the name their advisories use.
    pub fn findings(&self, inventory: &[Package]) -> (Vec<Finding>, Vec<Unjudged>) {
        let mut found = Vec::new();
        let mut unjudged = Vec::new();
        for package in inventory {
            let name = match package.ecosystem {
                Ecosystem::Debian | Ecosystem::Alpine => {
                    package.source.as_deref().unwrap_or(&package.name)
                }
                _ => &package.name,
            };
            let key = (package.ecosystem, key_name(package.ecosystem, name));
            for &i in self.by_package.get(&key).into_iter().flatten() {
                let record = &self.records[i];
                // The record names the package as it does; match on that.
                let named = record
                    .affected
                    .iter()
                    .flatten()
                    .filter_map(|a| a.package.as_ref())
                    .map(|p| p.name.clone())
                    .find(|n| key_name(package.ecosystem, n) == key.1)
                    .unwrap_or_else(|| name.to_owned());
                match affects_in(
                    record,
                    package.ecosystem,
                    package.distro.as_deref(),
                    &named,
                    &package.version,
                ) {
                    Ok(Some(hit)) => found.push(Finding {
                        package: package.clone(),
                        advisory: hit,
                        severity: severity::of(record),
                        summary: record.summary.clone(),
                    }),
                    Ok(None) => {}
                    Err(error) => unjudged.push(Unjudged {
                        package: package.clone(),
                        advisory: record.id.clone(),
                        error,
                    }),
                }
            }
        }
        (found, unjudged)
    }
}

/// Why an advisory file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_RECORD} bytes")]
    TooLarge { path: String },
    #[error("{path} is not an OSV record: {source}")]
    Invalid {
        path: String,
        source: serde_json::Error,
    },
}

/// The most files one archive may hold.
pub const MAX_FILES: usize = 2_000_000;

/// Why an archive of advisories was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive is not a readable zip file: {0}")]
    Zip(String),
    #[error("the archive is not a readable tar file: {0}")]
    Tar(std::io::Error),
    #[error("the archive holds more than {MAX_FILES} files")]
    TooManyFiles,
}

/// The records of an archive, read whole before anything is imported.
#[derive(Debug)]
pub struct Unpacked<T = Vulnerability> {
    /// What the caller kept of the newest record of each id.
    pub records: Vec<T>,
    /// Records naming no ecosystem matched here (Maven, Packagist …).
    pub skipped: usize,
    /// Files that were not OSV records, each with why.
    pub refused: Vec<String>,
}

impl<T> Default for Unpacked<T> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            skipped: 0,
            refused: Vec::new(),
        }
    }
}

/// Reads the records of an archive one at a time, so only what the caller
/// keeps of each stays in memory.
struct Reader<T, F> {
    out: Unpacked<T>,
    /// Per id: where its kept record is, if it was kept, and its time.
    newest: HashMap<String, (Option<usize>, chrono::DateTime<chrono::Utc>)>,
    keep: F,
}

impl<T, F: FnMut(Vulnerability, &[u8]) -> Option<T>> Reader<T, F> {
    fn take(&mut self, path: &str, bytes: &[u8]) {
        if !path.ends_with(".json") {
            return;
        }
        let record = match parse_record(bytes, path) {
            Ok(record) => record,
            Err(error) => {
                self.out.refused.push(error.to_string());
                return;
            }
        };
        let known = record.affected.iter().flatten().any(|a| {
            a.package
                .as_ref()
                .and_then(|p| serde_json::to_value(&p.ecosystem).ok())
                .is_some_and(|e| e.as_str().and_then(Ecosystem::from_osv).is_some())
        });
        if !known {
            self.out.skipped += 1;
            return;
        }
        let seen = self.newest.get(&record.id).copied();
        if seen.is_some_and(|(_, at)| at >= record.modified) {
            return;
        }
        let (id, modified) = (record.id.clone(), record.modified);
        let kept = (self.keep)(record, bytes);
        let slot = match (seen.and_then(|(slot, _)| slot), kept) {
            (Some(slot), Some(kept)) => {
                self.out.records[slot] = kept;
                Some(slot)
            }
            (None, Some(kept)) => {
                self.out.records.push(kept);
                Some(self.out.records.len() - 1)
            }
            (slot, None) => slot,
        };
        self.newest.insert(id, (slot, modified));
    }
}

/// Reads every `*.json` OSV record in a zip file (OSV's `all.zip`) or a
/// tar archive (a folder of records). A file that is not a record is
/// refused and named; an archive that cannot be read is refused whole.
/// No entry is read past [`MAX_RECORD`] bytes, so a compression bomb
/// costs at most that much per file.
pub fn unpack(bytes: &[u8]) -> Result<Unpacked, ArchiveError> {
    unpack_with(bytes, |record, _| Some(record))
}

/// [`unpack`], handing each record that is the newest of its id so far
/// (and its file's bytes) to `keep`, which returns what to hold of it, or
/// nothing. A later, newer record of the same id replaces what was kept.
pub fn unpack_with<T>(
    bytes: &[u8],
    keep: impl FnMut(Vulnerability, &[u8]) -> Option<T>,
) -> Result<Unpacked<T>, ArchiveError> {
    use std::io::Read;
    let mut reader = Reader {
        out: Unpacked::default(),
        newest: HashMap::new(),
        keep,
    };
    if bytes.starts_with(b"PK") {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| ArchiveError::Zip(e.to_string()))?;
        if archive.len() > MAX_FILES {
            return Err(ArchiveError::TooManyFiles);
        }
        for i in 0..archive.len() {
            let mut file = archive
                .by_index(i)
                .map_err(|e| ArchiveError::Zip(e.to_string()))?;
            if !file.is_file() {
                continue;
            }
            let path = file.name().to_owned();
            let mut data = Vec::new();
            (&mut file)
                .take(MAX_RECORD + 1)
                .read_to_end(&mut data)
                .map_err(|e| ArchiveError::Zip(format!("{path}: {e}")))?;
            reader.take(&path, &data);
        }
    } else {
        let mut archive = tar::Archive::new(bytes);
        let mut files = 0usize;
        for entry in archive.entries().map_err(ArchiveError::Tar)? {
            let mut entry = entry.map_err(ArchiveError::Tar)?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            files += 1;
            if files > MAX_FILES {
                return Err(ArchiveError::TooManyFiles);
            }
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let mut data = Vec::new();
            (&mut entry)
                .take(MAX_RECORD + 1)
                .read_to_end(&mut data)
                .map_err(ArchiveError::Tar)?;
            reader.take(&path, &data);
        }
    }
    Ok(reader.out)
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub new: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Files that were not OSV records, with why; the rest still count.
    pub refused: Vec<String>,
}

/// Parses one OSV record.
pub fn parse_record(bytes: &[u8], path: &str) -> Result<Vulnerability, ImportError> {
    if bytes.len() as u64 > MAX_RECORD {
        return Err(ImportError::TooLarge { path: path.into() });
    }
    serde_json::from_slice(bytes).map_err(|source| ImportError::Invalid {
        path: path.into(),
        source,
    })
}

/// Imports every `*.json` file under `dir` (regular files only; links are
/// not followed) into `db`.
pub fn import_dir(db: &mut Database, dir: &Path) -> Result<Imported, ImportError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ImportError::Io { path, source }
    };
    let mut report = Imported::default();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&next)
            .map_err(io(&next))?
            .collect::<Result<_, _>>()
            .map_err(io(&next))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                pending.push(path);
                continue;
            }
            if !kind.is_file() || path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let shown = path.display().to_string();
            let len = entry.metadata().map_err(io(&path))?.len();
            if len > MAX_RECORD {
                report
                    .refused
                    .push(ImportError::TooLarge { path: shown }.to_string());
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            match parse_record(&bytes, &shown) {
                Ok(record) => match db.add(record) {
                    Added::New => report.new += 1,
                    Added::Updated => report.updated += 1,
                    Added::Unchanged => report.unchanged += 1,
                },
                Err(error) => report.refused.push(error.to_string()),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, modified: &str, ecosystem: &str, name: &str, fixed: &str) -> Vulnerability {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "modified": modified,
            "summary": format!("{name} is affected"),
            "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]
        }))
        .unwrap()
    }

    fn package(ecosystem: Ecosystem, name: &str, version: &str, source: Option<&str>) -> Package {
        Package {
            ecosystem,
            name: name.into(),
            version: version.into(),
            source: source.map(str::to_owned),
            location: "/x".into(),
            distro: None,
        }
    }

    #[test]
    fn records_are_replaced_only_by_newer_ones() {
        let mut db = Database::default();
        assert_eq!(
            db.add(record(
                "A-1",
                "2024-01-01T00:00:00Z",
                "PyPI",
                "Django",
                "4.2.15"
            )),
            Added::New
        );
        assert_eq!(
            db.add(record(
                "A-1",
                "2024-01-01T00:00:00Z",
                "PyPI",
                "Django",
                "4.2.99"
            )),
            Added::Unchanged
        );
        assert_eq!(
            db.add(record(
                "A-1",
                "2023-01-01T00:00:00Z",
                "PyPI",
                "Django",
                "4.2.99"
            )),
            Added::Unchanged
        );
        assert_eq!(
            db.add(record(
                "A-1",
                "2024-02-01T00:00:00Z",
                "PyPI",
                "Django",
                "4.2.16"
            )),
            Added::Updated
        );
        assert_eq!(db.len(), 1);
        let (found, _) = db.findings(&[package(Ecosystem::PyPi, "django", "4.2.15", None)]);
        assert_eq!(
            found[0].advisory.fixed.as_deref(),
            Some("4.2.16"),
            "the newer record counts"
        );
    }

    #[test]
    fn an_inventory_is_matched_by_source_and_normalised_names() {
        let mut db = Database::default();
        db.add(record(
            "DSA-1",
            "2024-01-01T00:00:00Z",
            "Debian:12",
            "openssl",
            "3.0.13-1~deb12u1",
        ));
        db.add(record(
            "PYSEC-1",
            "2024-01-01T00:00:00Z",
            "PyPI",
            "Django_REST.framework",
            "3.15.2",
        ));
        db.add(record(
            "GHSA-1",
            "2024-01-01T00:00:00Z",
            "npm",
            "lodash",
            "4.17.21",
        ));
        let inventory = [
            package(
                Ecosystem::Debian,
                "libssl3",
                "3.0.11-1~deb12u2",
                Some("openssl"),
            ),
            package(Ecosystem::Debian, "zlib1g", "1:1.2.13.dfsg-1", Some("zlib")),
            package(Ecosystem::PyPi, "djangorestframework", "3.14.0", None),
            package(Ecosystem::PyPi, "django-rest-framework", "3.14.0", None),
            package(Ecosystem::Npm, "lodash", "4.17.21", None),
            package(Ecosystem::Npm, "lodash", "4.17.20", None),
        ];
        let (found, unjudged) = db.findings(&inventory);
        let got: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.package.name.as_str(), f.advisory.id.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("libssl3", "DSA-1"),
                ("django-rest-framework", "PYSEC-1"),
                ("lodash", "GHSA-1")
            ]
        );
        assert!(unjudged.is_empty());
        let (_, unjudged) = db.findings(&[package(Ecosystem::Npm, "lodash", "latest", None)]);
        assert_eq!(
            unjudged.len(),
            1,
            "an unreadable version is reported, not clean"
        );
    }

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn archives_are_read_whole_or_refused_whole() {
        let json = |r: &Vulnerability| serde_json::to_vec(r).unwrap();
        let old = json(&record(
            "A-1",
            "2024-01-01T00:00:00Z",
            "PyPI",
            "django",
            "4.2.15",
        ));
        let new = json(&record(
            "A-1",
            "2024-03-01T00:00:00Z",
            "PyPI",
            "django",
            "4.2.16",
        ));
        let maven = json(&record(
            "M-1",
            "2024-01-01T00:00:00Z",
            "Maven",
            "log4j",
            "2.17",
        ));
        // Unknown fields are how the schema grows: they are accepted.
        let future = br#"{"id": "F-1", "modified": "2024-01-01T00:00:00Z", "new_field": {"x": 1},
            "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.1.0"}]}]}]}"#;
        let bytes = zip_of(&[
            ("PyPI/A-1.json", &new),
            ("old/A-1.json", &old),
            ("Maven/M-1.json", &maven),
            ("npm/F-1.json", future),
            ("junk.json", b"\x00\xff"),
            ("no-id.json", br#"{"modified": "2024-01-01T00:00:00Z"}"#),
            ("README", b"not json"),
        ]);
        let unpacked = unpack(&bytes).unwrap();
        let ids: Vec<(&str, String)> = unpacked
            .records
            .iter()
            .map(|r| (r.id.as_str(), r.modified.to_rfc3339()))
            .collect();
        assert_eq!(
            ids,
            [
                ("A-1", "2024-03-01T00:00:00+00:00".to_owned()),
                ("F-1", "2024-01-01T00:00:00+00:00".to_owned())
            ],
            "the newest of each id"
        );
        assert_eq!(unpacked.skipped, 1);
        assert_eq!(unpacked.refused.len(), 2, "{:?}", unpacked.refused);
        // A truncated zip, random bytes, an empty body: refused whole.
        assert!(unpack(&bytes[..bytes.len() / 2]).is_err());
        assert!(unpack(b"PK\x03\x04 garbage").is_err());
        assert!(unpack(&[0x5a; 700]).is_err());
        // A compression bomb: one entry far past the record limit.
        let bomb = zip_of(&[("bomb.json", &vec![b' '; (MAX_RECORD as usize) * 2])]);
        let unpacked = unpack(&bomb).unwrap();
        assert!(unpacked.records.is_empty());
        assert!(
            unpacked.refused[0].contains("larger than"),
            "{:?}",
            unpacked.refused
        );
    }

    #[test]
    fn a_folder_imports_again_without_changes_and_refuses_junk() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, value: &Vulnerability| {
            std::fs::write(dir.path().join(name), serde_json::to_vec(value).unwrap()).unwrap()
        };
        std::fs::create_dir(dir.path().join("PyPI")).unwrap();
        write(
            "PyPI/A-1.json",
            &record("A-1", "2024-01-01T00:00:00Z", "PyPI", "django", "4.2.15"),
        );
        write(
            "B-1.json",
            &record("B-1", "2024-01-01T00:00:00Z", "npm", "lodash", "4.17.21"),
        );
        std::fs::write(dir.path().join("junk.json"), b"\x00\xffnot json").unwrap();
        std::fs::write(dir.path().join("README.md"), b"not a record").unwrap();
        let mut db = Database::default();
        let first = import_dir(&mut db, dir.path()).unwrap();
        assert_eq!((first.new, first.updated, first.unchanged), (2, 0, 0));
        assert_eq!(first.refused.len(), 1, "{:?}", first.refused);
        assert!(first.refused[0].contains("junk.json"));
        let again = import_dir(&mut db, dir.path()).unwrap();
        assert_eq!((again.new, again.updated, again.unchanged), (0, 0, 2));
        assert!(import_dir(&mut db, &dir.path().join("missing")).is_err());
    }
}
