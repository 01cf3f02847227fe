//! Scan and import figures for bench/scan.sh.
//!
//! Generates advisory archives sized like OSV's Debian and PyPI exports
//! (record counts, affected entries per record, listed versions) and an
//! image of 1,000 dpkg packages and 500 Python distributions, then times,
//! in this process: unpacking and indexing each ecosystem's archive, and
//! scanning the image's tar stream and matching it. With `--write DIR` it
//! only writes `DIR/debian.zip` and `DIR/pypi.zip` (for an import through
//! the real binary).
//!
//! Usage: scan [--write DIR] [DEBIAN_RECORDS] [PYPI_RECORDS]

use std::io::Write;
use std::time::Instant;

use rampart_vulns::db::{Database, unpack};
use rampart_vulns::inventory::scan_tar;

/// A small deterministic generator (xorshift), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const DEBIAN_SOURCES: u64 = 3_000;
const PYPI_PROJECTS: u64 = 4_000;

fn debian_record(rng: &mut Rng, i: u64) -> String {
    let source = rng.below(DEBIAN_SOURCES);
    let mut affected = Vec::new();
    // DEBIAN-CVE records name the package in each release.
    for (release, suffix) in [("11", "deb11u"), ("12", "deb12u"), ("13", "")] {
        let major = 1 + rng.below(5);
        let minor = rng.below(20);
        let fixed = if suffix.is_empty() {
            format!("{major}.{minor}.{}-{}", rng.below(9), 1 + rng.below(4))
        } else {
            format!(
                "{major}.{minor}-{}+{suffix}{}",
                1 + rng.below(4),
                1 + rng.below(9)
            )
        };
        affected.push(serde_json::json!({
            "package": {"ecosystem": format!("Debian:{release}"), "name": format!("src{source}"),
                "purl": format!("pkg:deb/debian/src{source}?arch=source")},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            "ecosystem_specific": {"urgency": "not yet assigned"},
            "database_specific": {"source": format!("https://storage.googleapis.com/debian-osv/debian-cve-osv/DEBIAN-CVE-2024-{i}.json")}
        }));
    }
    serde_json::json!({
        "schema_version": "1.7.0",
        "id": format!("DEBIAN-CVE-2024-{i}"),
        "modified": format!("2026-11-{:02}T10:00:00Z", 1 + rng.below(28)),
        "published": "2024-06-01T00:00:00Z",
        "upstream": [format!("CVE-2024-{i}")],
        "details": "A flaw was found in the handling of crafted input that allows a remote attacker to cause a denial of service or possibly execute arbitrary code.",
        "affected": affected,
        "references": [{"type": "ADVISORY", "url": format!("https://security-tracker.debian.org/tracker/CVE-2024-{i}")}]
    })
    .to_string()
}

fn pypi_record(rng: &mut Rng, i: u64) -> String {
    let project = rng.below(PYPI_PROJECTS);
    let major = rng.below(5);
    let fixed_minor = 1 + rng.below(30);
    // PyPI records list every affected release as well as the range.
    let versions: Vec<String> = (0..fixed_minor)
        .flat_map(|minor| (0..3).map(move |patch| format!("{major}.{minor}.{patch}")))
        .collect();
    serde_json::json!({
        "id": format!("PYSEC-2024-{i}"),
        "modified": format!("2026-11-{:02}T10:00:00Z", 1 + rng.below(28)),
        "published": "2024-06-01T00:00:00Z",
        "aliases": [format!("CVE-2024-{}", 100_000 + i), format!("GHSA-bench-{i}")],
        "details": "An issue in the project allows attackers to bypass a check via a crafted request.",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
        "affected": [{"package": {"ecosystem": "PyPI", "name": format!("project-{project}"),
                "purl": format!("pkg:pypi/project-{project}")},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": format!("{major}.{fixed_minor}.0")}]}],
            "versions": versions}],
        "references": [{"type": "WEB", "url": format!("https://example.org/advisories/{i}")}]
    })
    .to_string()
}

fn zip_of(records: impl Iterator<Item = (String, String)>) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, record) in records {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(record.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn archives(debian: u64, pypi: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let debian = zip_of((0..debian).map(|i| {
        let record = debian_record(&mut rng, i);
        (format!("DEBIAN-CVE-2024-{i}.json"), record)
    }));
    let pypi = zip_of((0..pypi).map(|i| {
        let record = pypi_record(&mut rng, i);
        (format!("PYSEC-2024-{i}.json"), record)
    }));
    (debian, pypi)
}

/// An image of 1,000 dpkg packages and 500 Python distributions, plus
/// 2,000 other files, as the engine would export it.
fn image() -> Vec<u8> {
    let mut rng = Rng(42);
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, data).unwrap();
    };
    add("usr/lib/os-release", b"ID=debian\nVERSION_ID=\"12\"\n");
    let mut status = String::new();
    for i in 0..1_000 {
        let source = rng.below(DEBIAN_SOURCES);
        status.push_str(&format!(
            "Package: pkg{i}\nStatus: install ok installed\nPriority: optional\nSection: libs\n\
             Installed-Size: 1234\nMaintainer: Debian <debian@example.org>\nArchitecture: amd64\n\
             Source: src{source}\nVersion: {}.{}-{}+deb12u{}\nDepends: libc6 (>= 2.36)\n\
             Description: package {i}\n a longer description of package {i}\n\n",
            1 + rng.below(5),
            rng.below(20),
            1 + rng.below(4),
            1 + rng.below(9)
        ));
    }
    add("var/lib/dpkg/status", status.as_bytes());
    for i in 0..500 {
        let project = rng.below(PYPI_PROJECTS);
        let meta = format!(
            "Metadata-Version: 2.1\nName: project-{project}\nVersion: {}.{}.{}\nSummary: a library\n\n{}",
            rng.below(5),
            rng.below(30),
            rng.below(3),
            "long description ".repeat(200)
        );
        add(
            &format!(
                "app/venv/lib/python3.11/site-packages/project_{project}_{i}-1.0.dist-info/METADATA"
            ),
            meta.as_bytes(),
        );
    }
    let filler = vec![0x5a; 16 << 10];
    for i in 0..2_000 {
        add(&format!("usr/share/doc/file{i}"), &filler);
    }
    tar.into_inner().unwrap()
}

fn peak_rss_mib() -> f64 {
    rss_mib("VmHWM:")
}

fn rss_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let write = match args.iter().position(|a| a == "--write") {
        Some(i) => {
            let dir = args.remove(i + 1);
            args.remove(i);
            Some(dir)
        }
        None => None,
    };
    let debian: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(60_000);
    let pypi: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16_000);
    let (debian_zip, pypi_zip) = archives(debian, pypi);
    if let Some(dir) = write {
        std::fs::write(format!("{dir}/debian.zip"), &debian_zip).unwrap();
        std::fs::write(format!("{dir}/pypi.zip"), &pypi_zip).unwrap();
        return;
    }
    let mut db = Database::default();
    for (name, zip) in [("Debian", &debian_zip), ("PyPI", &pypi_zip)] {
        let start = Instant::now();
        let unpacked = unpack(zip).unwrap();
        let records = unpacked.records.len();
        for record in unpacked.records {
            db.add(record);
        }
        println!(
            "import_{name}: {records} records, {:.1} MiB zip, {:.2} s (unpack, parse, index)",
            zip.len() as f64 / (1 << 20) as f64,
            start.elapsed().as_secs_f64()
        );
    }
    println!(
        "db_rss_mib: {:.0} after the import (peak {:.0}, archives held)",
        rss_mib("VmRSS:"),
        peak_rss_mib()
    );
    let image = image();
    let mut best = f64::MAX;
    let mut found = (0, 0, 0);
    for _ in 0..5 {
        let start = Instant::now();
        let packages = scan_tar(image.as_slice()).unwrap();
        let (findings, unjudged) = db.findings(&packages);
        best = best.min(start.elapsed().as_secs_f64());
        found = (packages.len(), findings.len(), unjudged.len());
    }
    println!(
        "scan: {} packages from a {:.0} MiB image, {} findings, {} unjudged, {:.3} s (best of 5)",
        found.0,
        image.len() as f64 / (1 << 20) as f64,
        found.1,
        found.2,
        best
    );
    println!("total_peak_rss_mib: {:.0}", peak_rss_mib());
}
