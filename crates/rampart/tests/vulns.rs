//! Known vulnerabilities through the real binary and the real engine:
//! images `FROM scratch` that carry a dpkg status file, an apk database,
//! Python distributions and Node packages at versions with published
//! advisories, matched against those advisories' OSV records as published
//! (`tests/fixtures/osv`), with near-miss versions beside each that must
//! not be reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

mod common;

use common::*;
use rampart_testkit::{Sandbox, Server, ok, run};
use serde_json::Value;

const OSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/osv");

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A Debian 12 image: glibc before DSA-5514-1's fix (and a package of the
/// same source at the fix), Django before PYSEC-2023-100's fix (and one at
/// it), lodash before both GHSA fixes (and one at the later), requests
/// pinned before a fix in a requirements file.
fn debian_context(dir: &Path) -> PathBuf {
    let ctx = context(dir, "COPY rootfs/ /\n");
    let root = ctx.join("rootfs");
    write(
        &root,
        "var/lib/dpkg/status",
        "Package: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.36-9+deb12u2\n\n\
         Package: libc6-dev\nStatus: install ok installed\nSource: glibc\nVersion: 2.36-9+deb12u3\n\n\
         Package: zlib1g\nStatus: install ok installed\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n",
    );
    write(
        &root,
        "usr/lib/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    );
    write(
        &root,
        "app/venv/lib/python3.11/site-packages/Django-4.2.2.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: Django\nVersion: 4.2.2\n",
    );
    write(
        &root,
        "opt/tools/lib/python3.11/site-packages/Django-4.2.3.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: Django\nVersion: 4.2.3\n",
    );
    write(
        &root,
        "app/node_modules/lodash/package.json",
        r#"{"name": "lodash", "version": "4.17.11"}"#,
    );
    write(
        &root,
        "app/node_modules/tool/node_modules/lodash/package.json",
        r#"{"name": "lodash", "version": "4.17.21"}"#,
    );
    // Lockfiles: requests only here (before GHSA-9wx4-h78v-vm56's fix,
    // and at it in another), the rest as installed (reported once).
    write(
        &root,
        "app/requirements.txt",
        "Django==4.2.2\nrequests==2.31.0 \\\n    --hash=sha256:58cd\n",
    );
    write(&root, "opt/tools/requirements.txt", "requests==2.32.2\n");
    write(
        &root,
        "app/package-lock.json",
        r#"{"lockfileVersion": 3, "packages": {"": {"name": "app"},
            "node_modules/lodash": {"version": "4.17.11"}}}"#,
    );
    ctx
}

/// An Alpine 3.18 image: libcrypto3 before ALPINE-CVE-2023-5363's fix and
/// libssl3 (same origin) at it.
fn alpine_context(dir: &Path) -> PathBuf {
    let ctx = context(dir, "COPY rootfs/ /\n");
    let root = ctx.join("rootfs");
    write(
        &root,
        "lib/apk/db/installed",
        "C:Q1abc=\nP:libcrypto3\nV:3.1.3-r0\nA:x86_64\no:openssl\n\n\
         C:Q1def=\nP:libssl3\nV:3.1.4-r0\nA:x86_64\no:openssl\n",
    );
    write(
        &root,
        "etc/os-release",
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.18.4\n",
    );
    ctx
}

/// The fixture records as one zip file, as OSV's all.zip carries them.
fn fixture_zip(sb: &Sandbox) -> PathBuf {
    let zip = sb.path().join("osv.zip");
    ok(std::process::Command::new("python3")
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .args(["Alpine", "Debian", "PyPI", "npm"])
        .current_dir(OSV));
    zip
}

fn findings(sb: &Sandbox, server: &Server, args: &[&str]) -> (Value, Vec<String>) {
    let report = json(cli(sb, server).arg("vulns").args(args));
    let mut rows: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} fixed {} {}{}",
                f["app"].as_str().unwrap(),
                f["package"].as_str().unwrap(),
                f["version"].as_str().unwrap(),
                f["advisory"].as_str().unwrap(),
                f["fixed"].as_str().unwrap_or("-"),
                f["severity"].as_str().unwrap(),
                if f["accepted"].is_object() {
                    " accepted"
                } else {
                    ""
                },
            )
        })
        .collect();
    rows.sort();
    (report, rows)
}

fn firing_vulnerability_alerts(sb: &Sandbox, server: &Server) -> Vec<String> {
    let alerts = json(cli(sb, server).args(["alerts", "list"]));
    alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "vulnerability")
        .map(|a| a["summary"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn images_are_inventoried_and_matched_against_published_advisories() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["vuln".into(), "alp".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    for app in ["vuln", "alp"] {
        ok(cli(&sb, &server).args(["apps", "create", app]));
    }
    let debian = debian_context(&sb.path().join("debian"));
    ok(cli(&sb, &server)
        .args(["deploy", "vuln", "--path"])
        .arg(&debian));
    ok(cli(&sb, &server)
        .args(["deploy", "alp", "--path"])
        .arg(alpine_context(&sb.path().join("alpine"))));

    // No data yet: nothing found, and the report says why.
    let (report, rows) = findings(&sb, &server, &[]);
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(report["db"]["advisories"], 0);
    assert_eq!(report["db"]["stale"], true);

    // Bad archives are refused whole and change nothing.
    let zip = fixture_zip(&sb);
    let bytes = std::fs::read(&zip).unwrap();
    let truncated = sb.path().join("truncated.zip");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let not_zip = sb.path().join("notes.txt");
    std::fs::write(&not_zip, b"\x00\xffnot an archive").unwrap();
    for bad in [&truncated, &not_zip] {
        let (code, _, err) = run(cli(&sb, &server).args(["vulns", "db", "import"]).arg(bad));
        assert_ne!(code, 0, "{err}");
        assert!(err.contains("zip"), "{err}");
    }
    let status = json(cli(&sb, &server).args(["vulns", "db", "status"]));
    assert_eq!(status["advisories"], 0, "{status}");

    // The published records, as OSV's all.zip carries them.
    let imported = json(cli(&sb, &server).args(["vulns", "db", "import"]).arg(&zip));
    assert_eq!(imported["new"], 6, "{imported}");
    assert_eq!(
        imported["refused"].as_array().unwrap().len(),
        0,
        "{imported}"
    );
    assert_eq!(
        imported["status"]["newest_record"],
        "2024-05-20T22:07:29.000Z"
    );

    let want = [
        "alp libcrypto3 3.1.3-r0 ALPINE-CVE-2023-5363 fixed 3.1.4-r0 unknown",
        "vuln django 4.2.2 PYSEC-2023-100 fixed 4.2.3 unknown",
        "vuln libc6 2.36-9+deb12u2 DSA-5514-1 fixed 2.36-9+deb12u3 unknown",
        "vuln lodash 4.17.11 GHSA-35jh-r3h4-6jhm fixed 4.17.21 high",
        "vuln lodash 4.17.11 GHSA-jf85-cpcp-j695 fixed 4.17.12 critical",
        "vuln requests 2.31.0 GHSA-9wx4-h78v-vm56 fixed 2.32.2 medium",
    ];
    let (report, rows) = findings(&sb, &server, &[]);
    assert_eq!(rows, want, "{report}");
    assert!(
        report["unjudged"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let finding = |id: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["advisory"] == id)
            .unwrap()
            .clone()
    };
    let critical = finding("GHSA-jf85-cpcp-j695");
    assert_eq!(critical["aliases"], serde_json::json!(["CVE-2019-10744"]));
    assert_eq!(
        critical["location"],
        "/app/node_modules/lodash/package.json"
    );
    let glibc = finding("DSA-5514-1");
    assert_eq!(
        glibc["aliases"],
        serde_json::json!(["CVE-2023-4806", "CVE-2023-4911"]),
        "a distribution's upstream CVEs are its aliases"
    );

    // The critical one reaches the alerts, naming the app and advisory.
    let alerts = firing_vulnerability_alerts(&sb, &server);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0]
            .starts_with("vuln: critical GHSA-jf85-cpcp-j695 (CVE-2019-10744) in lodash 4.17.11"),
        "{alerts:?}"
    );

    // Importing the same records again, as a folder this time, changes nothing.
    let again = json(cli(&sb, &server).args(["vulns", "db", "import", OSV]));
    assert_eq!(
        (
            again["new"].as_u64(),
            again["updated"].as_u64(),
            again["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(6)),
        "{again}"
    );

    // Filters.
    let (_, rows) = findings(&sb, &server, &["vuln", "--severity", "high"]);
    assert_eq!(rows, want[3..5]);
    let (code, _, err) = run(cli(&sb, &server).args(["vulns", "--severity", "dire"]));
    assert_ne!(code, 0);
    assert!(err.contains("severity must be"), "{err}");

    // Acceptances: bad ones are refused and record nothing.
    for (args, why) in [
        (vec!["--reason", "x", "--days", "0"], "1 to 365 days"),
        (vec!["--reason", "x", "--days", "366"], "1 to 365 days"),
        (vec!["--reason", " ", "--days", "30"], "reason is required"),
        (
            vec!["--reason", "a\u{1b}[2Jb", "--days", "30"],
            "reason is required",
        ),
    ] {
        let (code, _, err) = run(cli(&sb, &server)
            .args(["vulns", "accept", "vuln", "CVE-2019-10744"])
            .args(&args));
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let (code, _, err) =
        run(cli(&sb, &server).args(["vulns", "accept", "vuln", "../../etc", "--reason", "x"]));
    assert_ne!(code, 0);
    assert!(err.contains("not an advisory id"), "{err}");
    assert_eq!(
        json(cli(&sb, &server).args(["vulns", "accepted"])),
        serde_json::json!([])
    );
    // Accepted by its CVE alias: still listed, marked, and the alert ends.
    ok(cli(&sb, &server).args([
        "vulns",
        "accept",
        "vuln",
        "CVE-2019-10744",
        "--reason",
        "defaultsDeep is never called on user input",
        "--days",
        "30",
    ]));
    let (_, rows) = findings(&sb, &server, &["vuln", "--severity", "critical"]);
    assert_eq!(
        rows,
        ["vuln lodash 4.17.11 GHSA-jf85-cpcp-j695 fixed 4.17.12 critical accepted"]
    );
    assert!(firing_vulnerability_alerts(&sb, &server).is_empty());
    let audit = ok(cli(&sb, &server).args(["audit", "list"]));
    assert!(audit.contains("vulns.accept"), "{audit}");
    assert!(audit.contains("vulns.import"), "{audit}");

    // The bill of materials names each package by its purl.
    let bom: Value = serde_json::from_str(&ok(cli(&sb, &server).args(["sbom", "vuln"]))).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    let purls: Vec<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["purl"].as_str().unwrap())
        .collect();
    for purl in [
        "pkg:npm/lodash@4.17.11",
        "pkg:pypi/django@4.2.2",
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u2?upstream=glibc",
    ] {
        assert!(purls.contains(&purl), "{purl} in {purls:?}");
    }
    let (code, _, err) = run(cli(&sb, &server).args(["sbom", "vuln", "--release", "9"]));
    assert_ne!(code, 0);
    assert!(err.contains("no release 9"), "{err}");

    // With the policy on and the acceptance withdrawn, the same image is
    // refused, naming the finding, and release 1 keeps serving.
    ok(cli(&sb, &server).args(["vulns", "unaccept", "vuln", "CVE-2019-10744"]));
    ok(cli(&sb, &server).args(["apps", "configure", "vuln", "--refuse-critical", "true"]));
    let (code, out, err) = run(cli(&sb, &server)
        .args(["deploy", "vuln", "--path"])
        .arg(&debian));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("refuse_critical")
            && err.contains("GHSA-jf85-cpcp-j695 in lodash 4.17.11 (fixed in 4.17.12)")
            && err.contains("release 1 keeps serving"),
        "{err}"
    );
    assert!(
        !err.contains("GHSA-35jh"),
        "only critical findings block: {err}"
    );
    let (status, body) = get(
        &edge_client(&server, "vuln.localhost"),
        &app_url(&server, "vuln.localhost"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("hello from release 1"), "{body}");
    // Accepted again, the same image deploys.
    ok(cli(&sb, &server).args([
        "vulns",
        "accept",
        "vuln",
        "GHSA-jf85-cpcp-j695",
        "--reason",
        "reviewed",
        "--days",
        "7",
    ]));
    let release = json(
        cli(&sb, &server)
            .args(["deploy", "vuln", "--path"])
            .arg(&debian),
    );
    assert_eq!(release["number"], 3, "{release}");
    assert_eq!(release["status"], "live");
    let (_, rows) = findings(&sb, &server, &["vuln"]);
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows.iter().all(|r| r.starts_with("vuln ")));

    // The platform's own crates, matched against a crates.io advisory
    // that covers every tokio release before 999.
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
    let tokio = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"tokio\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let rustsec = sb.path().join("rustsec");
    std::fs::create_dir_all(&rustsec).unwrap();
    std::fs::write(
        rustsec.join("RUSTSEC-0000-0001.json"),
        r#"{"id": "RUSTSEC-0000-0001", "modified": "2024-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "crates.io", "name": "tokio"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0.0.0-0"}, {"fixed": "999.0.0"}]}]}]}"#,
    )
    .unwrap();
    ok(cli(&sb, &server)
        .args(["vulns", "db", "import"])
        .arg(&rustsec));
    let (report, rows) = findings(&sb, &server, &["--self"]);
    assert_eq!(
        rows,
        [format!(
            "rampart tokio {tokio} RUSTSEC-0000-0001 fixed 999.0.0 unknown"
        )],
        "{report}"
    );

    // No inventory container is left behind.
    eventually(Duration::from_secs(5), "inventory containers gone", || {
        let (_, out, _) = docker(&["ps", "-aq", "--filter", "label=rampart.task=inventory"]);
        out.trim().is_empty()
    });
}

/// Builds a base image tagged `tag`: the hello app with lodash at
/// `lodash`, and `extra` Dockerfile lines.
fn build_base(dir: &Path, tag: &str, lodash: &str, extra: &str) {
    let ctx = context(dir, &format!("COPY rootfs/ /\n{extra}"));
    write(
        &ctx.join("rootfs"),
        "app/node_modules/lodash/package.json",
        &format!(r#"{{"name": "lodash", "version": "{lodash}"}}"#),
    );
    ok(std::process::Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(&ctx));
}

#[test]
fn a_patch_rebuilds_on_the_new_base_under_load_and_closes_the_findings() {
    const BASE: &str = "rampart-test-base:patch";
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["patched".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "patched"]));
    ok(cli(&sb, &server).args(["vulns", "db", "import", OSV]));

    // An image deploy has no context to rebuild.
    build_base(&sb.path().join("base1"), BASE, "4.17.11", "");
    ok(cli(&sb, &server).args(["deploy", "patched", "--image", BASE]));
    let (code, _, err) = run(cli(&sb, &server).args(["patch", "patched"]));
    assert_ne!(code, 0);
    assert!(err.contains("nothing to rebuild"), "{err}");

    // The app's own build on the shared base.
    let app = sb.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        format!("FROM {BASE}\nENV APP=patched\n"),
    )
    .unwrap();
    let release = json(
        cli(&sb, &server)
            .args(["deploy", "patched", "--path"])
            .arg(&app),
    );
    assert_eq!(release["number"], 2);
    let (_, rows) = findings(&sb, &server, &["patched"]);
    assert_eq!(
        rows,
        [
            "patched lodash 4.17.11 GHSA-35jh-r3h4-6jhm fixed 4.17.21 high",
            "patched lodash 4.17.11 GHSA-jf85-cpcp-j695 fixed 4.17.12 critical",
        ]
    );

    // The base is patched (a newer image under the same tag), and the
    // app rebuilt on it while visitors keep coming.
    build_base(&sb.path().join("base2"), BASE, "4.17.21", "");
    ok(cli(&sb, &server).args(["apps", "configure", "patched", "--drain", "3"]));
    let stop = Arc::new(AtomicBool::new(false));
    let (handles, counters) = load(&server, "patched.localhost", 4, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let (code, out, err) = run(cli(&sb, &server).args(["patch", "patched"]));
    assert_eq!(code, 0, "{out}\n{err}");
    let out = out + &err;
    std::thread::sleep(Duration::from_millis(500));
    let (good, bad, errors) = stop_load(&stop, handles, counters);
    assert_eq!(bad, 0, "failed requests during the patch: {errors:?}");
    assert!(good > 50, "the load ran: {good} requests");
    assert!(
        out.contains("release 3 closes 2 finding(s) of release 2")
            && out.contains("GHSA-jf85-cpcp-j695 in lodash 4.17.11"),
        "{out}"
    );
    let (_, rows) = findings(&sb, &server, &["patched"]);
    assert!(rows.is_empty(), "{rows:?}");
    let ps = json(cli(&sb, &server).args(["ps", "patched"]));
    assert!(
        ps["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "vulnerabilities"),
        "{ps}"
    );

    // The release before the patch can still be rolled back to.
    let releases = json(cli(&sb, &server).args(["releases", "patched"]));
    assert_eq!(releases[0]["number"], 3);
    assert_eq!(releases[0]["status"], "live");
    assert_eq!(releases[1]["number"], 2);
    assert_eq!(releases[1]["status"], "retired");
    let back = json(cli(&sb, &server).args(["rollback", "patched", "--to", "2"]));
    assert_eq!(back["status"], "live");
    let (_, rows) = findings(&sb, &server, &["patched"]);
    assert_eq!(
        rows.len(),
        2,
        "the old image brings its findings back: {rows:?}"
    );
    // --pull asks the registry for the base; none is reachable from here,
    // so the patch fails and the live release keeps serving.
    let (code, _, err) = run(cli(&sb, &server).args(["patch", "patched", "--pull"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("release 4 keeps serving"), "{err}");
    let (status, body) = get(
        &edge_client(&server, "patched.localhost"),
        &app_url(&server, "patched.localhost"),
    );
    assert_eq!(status, 200, "{body}");
    docker(&["rmi", "-f", BASE]);
}

/// Serves `files` over plain HTTP on loopback, one request per connection,
/// until the test ends; 404 for anything else.
fn serve(files: Vec<(&'static str, Vec<u8>)>) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n]).into_owned();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, body) = match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => ("200 OK", body.clone()),
                None => ("404 Not Found", Vec::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    addr
}

#[test]
fn configured_advisory_archives_are_fetched_and_a_bad_one_raises_an_alert() {
    let sb = sandbox();
    let zip = std::fs::read(fixture_zip(&sb)).unwrap();
    let addr = serve(vec![
        ("/all.zip", zip),
        ("/broken.zip", b"PK\x03\x04 not really".to_vec()),
    ]);
    let config = format!(
        "{CONFIG}[vulns]\nurls = [\"http://{addr}/all.zip\", \"http://{addr}/broken.zip\"]\nfirst_fetch = \"1s\"\n"
    );
    let server = sb.start(&sb.write_config(&config)).unwrap();
    eventually(
        Duration::from_secs(30),
        "the fetched advisories are in",
        || json(cli(&sb, &server).args(["vulns", "db", "status"]))["advisories"] == 6,
    );
    eventually(
        Duration::from_secs(30),
        "the broken archive raised an alert",
        || {
            let alerts = json(cli(&sb, &server).args(["alerts", "list"]));
            alerts.as_array().unwrap().iter().any(|a| {
                a["rule"] == "advisories_fetch_failed"
                    && a["summary"].as_str().unwrap().contains("/broken.zip")
            })
        },
    );
    let audit = json(cli(&sb, &server).args(["audit", "list"]));
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "vulns.import" && e["actor"] == "fetch"),
        "{audit}"
    );
    // A URL that is neither https:// nor this machine's stops the start.
    let other = sandbox();
    let out = other
        .start_expecting_failure(
            &other.write_config("[vulns]\nurls = [\"http://example.org/all.zip\"]\n"),
        )
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vulns.urls"), "{err}");
}

#[test]
fn auto_patch_deploys_a_patched_base_by_itself_and_keeps_serving_when_it_fails() {
    const BASE: &str = "rampart-test-base:auto";
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["auto".into()]);
    let config = format!("{CONFIG}[vulns]\npatch_check_every = \"5s\"\n");
    let server = sb.start(&sb.write_config(&config)).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "auto"]));
    ok(cli(&sb, &server).args(["vulns", "db", "import", OSV]));
    build_base(&sb.path().join("base1"), BASE, "4.17.11", "");
    let app = sb.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("Dockerfile"), format!("FROM {BASE}\n")).unwrap();
    ok(cli(&sb, &server)
        .args(["deploy", "auto", "--path"])
        .arg(&app));
    let bad = ["apps", "configure", "auto", "--patch-window", "2am-4am"];
    let (code, _, err) = run(cli(&sb, &server).args(bad));
    assert_ne!(code, 0);
    assert!(err.contains("patch_window must be HH:MM-HH:MM"), "{err}");
    ok(cli(&sb, &server).args([
        "apps",
        "configure",
        "auto",
        "--auto-patch",
        "true",
        "--health-timeout",
        "4",
    ]));
    let releases = || json(cli(&sb, &server).args(["releases", "auto"]));
    // Nothing changed under the app: the rebuild is the live image, so
    // nothing is deployed.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(releases().as_array().unwrap().len(), 1);

    // A patched base whose replicas never pass their health check: the
    // attempt fails once, release 1 keeps serving, and it is not retried.
    build_base(
        &sb.path().join("base2"),
        BASE,
        "4.17.21",
        "ENV HELLO_HEALTH=fail\n",
    );
    eventually(Duration::from_secs(60), "the failed attempt", || {
        releases()[0]["status"] == "failed"
    });
    std::thread::sleep(Duration::from_secs(8));
    let list = releases();
    assert_eq!(list.as_array().unwrap().len(), 2, "not retried: {list}");
    assert_eq!(list[1]["status"], "live");
    let (status, body) = get(
        &edge_client(&server, "auto.localhost"),
        &app_url(&server, "auto.localhost"),
    );
    assert_eq!(status, 200, "{body}");

    // A good patched base: deployed by itself, findings closed.
    build_base(&sb.path().join("base3"), BASE, "4.17.21", "");
    eventually(Duration::from_secs(60), "the unattended patch", || {
        releases()[0]["status"] == "live" && releases()[0]["number"] == 3
    });
    let (_, rows) = findings(&sb, &server, &["auto"]);
    assert!(rows.is_empty(), "{rows:?}");
    let audit = json(cli(&sb, &server).args(["audit", "list"]));
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "app.deploy" && e["actor"] == "autopatch"),
        "{audit}"
    );
    docker(&["rmi", "-f", BASE]);
}
