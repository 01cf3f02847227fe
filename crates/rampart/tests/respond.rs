//! Responding and proving it, through the real binary: incidents opened by
//! alerts, escalated along the notification channels until someone
//! acknowledges them, reviewed, and their follow-up actions tracked.

mod common;

use std::time::Duration;

use common::*;
use rampart_testkit::{Sandbox, Server, ok, run};
use serde_json::Value;

/// A channel on a fresh webhook receiver; what it accepts.
fn webhook(sb: &Sandbox, server: &Server, name: &str) -> Accepted {
    const SECRET: &[u8] = b"a webhook secret of some length";
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/{name}", listener.local_addr().unwrap());
    let secret_file = sb.path().join(format!("{name}.secret"));
    std::fs::write(&secret_file, SECRET).unwrap();
    ok(cli(sb, server)
        .args(["notify", "add", "webhook", &url, "--secret-file"])
        .arg(&secret_file));
    receiver(listener, SECRET, 0)
}

/// The events a receiver was told about `incident`.
fn told(accepted: &Accepted, incident: &str) -> Vec<String> {
    accepted
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, body, signed)| *signed && body["incident"]["id"] == incident)
        .map(|(_, body, _)| body["event"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn incidents(sb: &Sandbox, server: &Server, all: bool) -> Vec<Value> {
    let mut cmd = cli(sb, server);
    cmd.args(["incidents", "list"]);
    if all {
        cmd.arg("--all");
    }
    json(&mut cmd).as_array().unwrap().clone()
}

fn show(sb: &Sandbox, server: &Server, id: &str) -> Value {
    json(cli(sb, server).args(["incidents", "show", id]))
}

/// Runs `args`, expects a refusal whose message holds `says`.
fn refused(sb: &Sandbox, server: &Server, args: &[&str], says: &str) {
    let (code, out, err) = run(cli(sb, server).args(args));
    assert_ne!(code, 0, "{args:?} was accepted: {out}");
    assert!(err.contains(says), "{args:?}: {err}");
}

#[test]
fn an_alert_opens_an_incident_that_escalates_until_acknowledged_and_is_reviewed() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["shop".into()]);
    let config = sb.write_config(&format!(
        "{CONFIG}[incidents]\nopen_at = \"warning\"\nack_within.medium = \"4s\"\n"
    ));
    let server = sb.start(&config).unwrap();
    let owner = json(cli(&sb, &server).args(["users", "list"]))[0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(cli(&sb, &server).args(["apps", "create", "shop"]));
    ok(cli(&sb, &server).args(["scale", "shop", "web=1"]));
    let first = webhook(&sb, &server, "first");
    let second = webhook(&sb, &server, "second");

    // A failed deploy raises a warning alert, which opens an incident.
    ok(cli(&sb, &server).args(["env", "set", "shop", "HELLO_EXIT=3"]));
    let dir = context(&sb.path().join("ctx"), "");
    let (code, _, _) = run(cli(&sb, &server)
        .args(["deploy", "shop", "--path"])
        .arg(&dir));
    assert_ne!(code, 0);
    // (The daily self-audit may open one of its own: only the app's
    // incidents count here.)
    let of_shop = |all| -> Vec<Value> {
        incidents(&sb, &server, all)
            .into_iter()
            .filter(|i| i["app"] == "shop")
            .collect()
    };
    let open = of_shop(false);
    assert_eq!(open.len(), 1, "{open:?}");
    let incident = &open[0];
    let id = incident["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &incident["app"],
            &incident["severity"],
            &incident["state"],
            &incident["opened_by"]
        ),
        (
            &Value::from("shop"),
            &Value::from("medium"),
            &Value::from("open"),
            &Value::from("watch")
        ),
        "{incident}"
    );

    // The first channel is told at once; the second only once the window
    // passed with nobody acknowledging.
    eventually(Duration::from_secs(10), "the first channel told", || {
        told(&first, &id) == ["incident.opened"]
    });
    assert!(told(&second, &id).is_empty(), "{:?}", told(&second, &id));
    eventually(Duration::from_secs(20), "the escalation", || {
        told(&second, &id) == ["incident.escalated"]
    });
    let detail = show(&sb, &server, &id);
    assert_eq!(detail["incident"]["escalation"], 1, "{detail}");

    // Acknowledging stops it.
    ok(cli(&sb, &server).args(["incidents", "ack", &id, "--note", "looking at the deploy"]));
    let escalated = |detail: &Value| {
        detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "escalated")
            .count()
    };
    let before = escalated(&show(&sb, &server, &id));
    std::thread::sleep(Duration::from_secs(7));
    let detail = show(&sb, &server, &id);
    assert_eq!(escalated(&detail), before, "{detail}");
    let incident = &detail["incident"];
    assert_eq!(incident["state"], "acknowledged");
    assert_eq!(incident["owner"], owner.as_str(), "{incident}");
    assert!(
        incident["time_to_ack_secs"].as_i64().unwrap() >= 4,
        "{incident}"
    );

    // The timeline links the alert, the deploy's audit entry and the notes.
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in ["opened", "alert", "escalated", "state", "note"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let alert_link = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "alert")
        .unwrap()["link"]
        .clone();
    let alerts = json(cli(&sb, &server).args(["alerts", "list"]));
    let deploy_failed = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "deploy_failed")
        .unwrap();
    assert_eq!(deploy_failed["id"], alert_link, "{alerts}");
    // A deploy while it is open shows on its timeline.
    let (code, _, _) = run(cli(&sb, &server)
        .args(["deploy", "shop", "--path"])
        .arg(&dir));
    assert_ne!(code, 0);
    let detail = show(&sb, &server, &id);
    assert!(
        detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "audit"
                && e["text"]
                    .as_str()
                    .unwrap()
                    .contains("app.deploy apps/shop/releases/")),
        "{detail}"
    );

    // Steps never go back; reviews wait for resolution; bad input changes
    // nothing.
    refused(
        &sb,
        &server,
        &["incidents", "review", &id, "--cause", "c", "--impact", "i"],
        "only a resolved incident is reviewed",
    );
    ok(cli(&sb, &server).args(["incidents", "note", &id, "rolled the variable back"]));
    assert!(
        show(&sb, &server, &id)["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "note" && e["text"] == "rolled the variable back")
    );
    ok(cli(&sb, &server).args(["incidents", "mitigate", &id]));
    refused(
        &sb,
        &server,
        &["incidents", "ack", &id],
        "already mitigated",
    );
    ok(cli(&sb, &server).args([
        "incidents",
        "resolve",
        &id,
        "--note",
        "bad variable removed",
    ]));
    let yesterday = rampart_core::time::Timestamp::from_unix_seconds(
        rampart_core::time::Timestamp::now().unix_seconds() - 86_400,
    )
    .unwrap()
    .to_rfc3339();
    for (action, says) in [
        (
            ["nobody@example.com", "2027-01-01", "x"],
            "there is no user",
        ),
        ([owner.as_str(), "31/12/2026", "x"], "is not a date"),
        (
            [owner.as_str(), "2027-01-01", "tab\u{1b}[2J"],
            "control characters",
        ),
    ] {
        let mut args = vec!["incidents", "review", &id, "--cause", "c", "--impact", "i"];
        args.push("--action");
        args.extend(action);
        refused(&sb, &server, &args, says);
    }
    assert_eq!(show(&sb, &server, &id)["incident"]["state"], "resolved");
    ok(cli(&sb, &server).args([
        "incidents",
        "review",
        &id,
        "--cause",
        "a variable made the app exit at start",
        "--impact",
        "none: the previous release kept serving",
        "--action",
        &owner,
        &yesterday,
        "check variables before deploys",
        "--action",
        &owner,
        "2099-01-01",
        "document the release phase",
    ]));

    // The overdue action shows until it is done.
    let actions = json(cli(&sb, &server).args(["incidents", "actions", "--open"]));
    let overdue: Vec<&Value> = actions
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["overdue"] == true)
        .collect();
    assert_eq!(overdue.len(), 1, "{actions}");
    assert_eq!(overdue[0]["number"], 1);
    let listed = of_shop(true);
    assert_eq!(listed[0]["state"], "reviewed");
    assert_eq!(
        (&listed[0]["open_actions"], &listed[0]["overdue_actions"]),
        (&Value::from(2), &Value::from(1))
    );
    let table = ok(cli(&sb, &server).args(["incidents", "actions"]));
    assert!(table.contains("OVERDUE"), "{table}");
    ok(cli(&sb, &server).args(["incidents", "done", &id, "1"]));
    refused(
        &sb,
        &server,
        &["incidents", "done", &id, "1"],
        "already done",
    );
    let actions = json(cli(&sb, &server).args(["incidents", "actions", "--open"]));
    assert_eq!(actions.as_array().unwrap().len(), 1, "{actions}");
    assert_eq!(actions[0]["overdue"], false);

    // Times to acknowledge and resolve are reported over a period.
    let stats = json(cli(&sb, &server).args([
        "incidents",
        "stats",
        "--from",
        "2020-01-01",
        "--to",
        "2099-01-01",
    ]));
    assert_eq!(
        (
            &stats["acknowledged"],
            &stats["resolved"],
            &stats["reviewed"]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(1)),
        "{stats}"
    );
    assert!(stats["opened"].as_u64() >= Some(1), "{stats}");
    assert!(stats["median_ack_secs"].as_i64().unwrap() >= 4, "{stats}");
    for (from, to, says) in [
        ("2026-12-02", "2026-12-01", "the period is empty"),
        ("yesterday", "2026-12-01", "is not a date"),
        ("2026-02-30", "2026-12-01", "is not a date"),
    ] {
        refused(
            &sb,
            &server,
            &["incidents", "stats", "--from", from, "--to", to],
            says,
        );
    }

    // Opened by hand; bad ones are refused and open nothing.
    for (args, says) in [
        (vec!["--severity", "urgent"], "is not a severity"),
        (vec!["--app", "nosuchapp"], "no app named"),
    ] {
        let mut all = vec!["incidents", "open", "a title"];
        all.extend(args);
        refused(&sb, &server, &all, says);
    }
    refused(
        &sb,
        &server,
        &["incidents", "open", "bell\u{7}"],
        "control characters",
    );
    assert!(
        !incidents(&sb, &server, true)
            .iter()
            .any(|i| i["title"] == "a title")
    );
    let manual = json(cli(&sb, &server).args([
        "incidents",
        "open",
        "suspicious logins",
        "--severity",
        "critical",
    ]));
    let manual_id = manual["id"].as_str().unwrap();
    eventually(Duration::from_secs(10), "the manual one told", || {
        told(&first, manual_id) == ["incident.opened"]
    });
    ok(cli(&sb, &server).args(["incidents", "assign", manual_id, &owner]));
    refused(
        &sb,
        &server,
        &["incidents", "assign", manual_id, "nobody@example.com"],
        "there is no user",
    );

    // Every step is in the audit log, and the chain holds.
    let audit = ok(cli(&sb, &server).args(["audit", "list", "--limit", "200"]));
    assert!(audit.contains("incident.manage"), "{audit}");
    ok(cli(&sb, &server).args(["audit", "verify"]));
    server.stop().unwrap();
}

/// The doctor's report; whether it exited 0.
fn doctor(sb: &Sandbox, server: &Server, token: &str) -> (Value, bool) {
    let (code, out, err) = run(cli(sb, server)
        .env("RAMPART_TOKEN", token)
        .args(["doctor", "--json"]));
    assert!(code == 0 || code == 1, "{code}: {err}");
    (
        serde_json::from_str(&out).expect("a JSON report"),
        code == 0,
    )
}

fn control(report: &Value, name: &str) -> (String, String) {
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["control"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"));
    (
        check["status"].as_str().unwrap().to_owned(),
        check["detail"].as_str().unwrap().to_owned(),
    )
}

/// Sets an audit entry's target, bypassing the platform (as an attacker
/// with the database file would); returns the old one.
fn set_audit_target(db: &std::path::Path, seq: u64, target: &str) -> String {
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1])\n\
        old = c.execute('SELECT target FROM audit_log WHERE seq = ?', (int(sys.argv[2]),)).fetchone()[0]\n\
        c.execute('UPDATE audit_log SET target = ? WHERE seq = ?', (sys.argv[3], int(sys.argv[2])))\n\
        c.commit()\n\
        print(old, end='')\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(seq.to_string())
        .arg(target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn doctor_fails_on_each_seeded_misconfiguration_and_passes_once_it_is_fixed() {
    use std::os::unix::fs::PermissionsExt;
    let sb = sandbox();
    let backups = sb.path().join("backups");
    let config = sb.write_config(&format!(
        "{CONFIG}[doctor]\nfirst_run = \"3s\"\n[backup]\nrepository = \"{}\"\nkey_file = \"{}\"\n",
        backups.display(),
        sb.path().join("backup.key").display(),
    ));
    let server = sb.start(&config).unwrap();
    let bootstrap = server.bootstrap_token().to_owned();
    ok(cli(&sb, &server).args(["apps", "create", "shop"]));

    // A fresh installation: the owner has no MFA, the first token never
    // expires, the app has no backup schedule.
    let (report, passed) = doctor(&sb, &server, &bootstrap);
    assert!(!passed, "{report}");
    assert_eq!(control(&report, "mfa").0, "fail", "{report}");
    assert_eq!(control(&report, "tokens.expiry").0, "warn", "{report}");
    assert!(control(&report, "tokens.expiry").1.contains("bootstrap"));
    assert_eq!(control(&report, "backups.schedule").0, "warn");
    for pass in ["files", "audit.chain", "backups.repository", "apps.egress"] {
        assert_eq!(control(&report, pass).0, "pass", "{pass}: {report}");
    }
    let table = run(cli(&sb, &server).args(["doctor"]));
    assert_eq!(table.0, 1);
    assert!(
        table.1.contains("FAIL") && table.1.contains("mfa"),
        "{}",
        table.1
    );

    // The scheduled run raised an alert for the failure.
    eventually(Duration::from_secs(30), "the doctor alert", || {
        json(cli(&sb, &server).args(["alerts", "list"]))
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "doctor")
    });

    // MFA enrolled: passes.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rampart_client::Client::new(
        &server.url(),
        &std::fs::read(server.ca_path()).unwrap(),
        Some(bootstrap.clone()),
    )
    .unwrap();
    rt.block_on(async {
        let enrollment = client.enroll_mfa().await.unwrap();
        let bytes = totp_rs::Secret::Encoded(enrollment.secret.clone())
            .to_bytes()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let code = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes)
            .unwrap()
            .generate(now);
        client.confirm_mfa(&code).await.unwrap();
    });
    assert_eq!(
        control(&doctor(&sb, &server, &bootstrap).0, "mfa").0,
        "pass"
    );

    // A token that expires replaces the one that never does.
    let created =
        json(cli(&sb, &server).args(["tokens", "create", "ops", "--expires-in-days", "30"]));
    let token = created["token"].as_str().unwrap().to_owned();
    let bootstrap_id = json(cli(&sb, &server).args(["tokens", "list"]))
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bootstrap")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(cli(&sb, &server)
        .env("RAMPART_TOKEN", &token)
        .args(["tokens", "revoke", &bootstrap_id]));
    assert_eq!(
        control(&doctor(&sb, &server, &token).0, "tokens.expiry").0,
        "pass"
    );
    let cli = |sb: &Sandbox, server: &Server| {
        let mut cmd = common::cli(sb, server);
        cmd.env("RAMPART_TOKEN", &token);
        cmd
    };

    // An app that may reach the internet.
    ok(cli(&sb, &server).args(["apps", "configure", "shop", "--egress", "true"]));
    let (status, detail) = control(&doctor(&sb, &server, &token).0, "apps.egress");
    assert_eq!((status.as_str(), detail.contains("shop")), ("warn", true));
    ok(cli(&sb, &server).args(["apps", "configure", "shop", "--egress", "false"]));
    assert_eq!(
        control(&doctor(&sb, &server, &token).0, "apps.egress").0,
        "pass"
    );

    // A backup schedule.
    ok(cli(&sb, &server).args([
        "backup",
        "schedule",
        "shop",
        "--every",
        "1d",
        "--keep-last",
        "3",
    ]));
    assert_eq!(
        control(&doctor(&sb, &server, &token).0, "backups.schedule").0,
        "pass"
    );

    // A key others can read.
    let key = sb.data_dir().join("master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (report, passed) = doctor(&sb, &server, &token);
    let (status, detail) = control(&report, "files");
    assert!(!passed);
    assert_eq!(status, "fail");
    assert!(
        detail.contains("master key") && detail.contains("644"),
        "{detail}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(control(&doctor(&sb, &server, &token).0, "files").0, "pass");

    // The backup repository swapped for a link into the data directory.
    std::fs::create_dir_all(&backups).unwrap();
    let moved = sb.path().join("backups.real");
    std::fs::rename(&backups, &moved).unwrap();
    let inside = sb.data_dir().join("stash");
    std::fs::create_dir_all(&inside).unwrap();
    std::os::unix::fs::symlink(&inside, &backups).unwrap();
    let (status, detail) = control(&doctor(&sb, &server, &token).0, "backups.repository");
    assert_eq!(status, "fail", "{detail}");
    assert!(detail.contains("inside the data directory"), "{detail}");
    std::fs::remove_file(&backups).unwrap();
    std::fs::rename(&moved, &backups).unwrap();
    assert_eq!(
        control(&doctor(&sb, &server, &token).0, "backups.repository").0,
        "pass"
    );

    // An audit entry edited behind the platform's back.
    let old = set_audit_target(
        &sb.data_dir().join("rampart.db"),
        2,
        "apps/nothing-happened",
    );
    let (report, passed) = doctor(&sb, &server, &token);
    let (status, detail) = control(&report, "audit.chain");
    assert!(!passed);
    assert_eq!(status, "fail");
    assert!(detail.contains("broken at entry 2"), "{detail}");
    set_audit_target(&sb.data_dir().join("rampart.db"), 2, &old);

    // Everything fixed: no control fails, and the exit code says so.
    let (report, passed) = doctor(&sb, &server, &token);
    assert!(passed, "{report}");
    assert_eq!(report["failed"], 0);
    server.stop().unwrap();
}

/// A copy of the bundle in `dir` with `change` applied to it.
fn altered(
    dir: &std::path::Path,
    name: &str,
    change: impl FnOnce(&std::path::Path),
) -> std::path::PathBuf {
    let copy = dir.with_file_name(format!(
        "{}-{name}",
        dir.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    change(&copy);
    copy
}

/// The report as headless Chromium renders it: the DOM it built, and a
/// screenshot at `png`.
fn render(html: &std::path::Path, png: &std::path::Path) -> String {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok()
        })
        .expect("Chromium is not installed: scripts/test installs it (Debian's chromium)");
    let url = format!("file://{}", html.display());
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,2400",
    ];
    let profile = html.with_file_name("chromium-profile");
    let dom = std::process::Command::new(chromium)
        .args(base)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let shot = std::process::Command::new(chromium)
        .args(base)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    String::from_utf8(dom.stdout).unwrap()
}

#[test]
fn an_evidence_bundle_verifies_renders_in_a_browser_and_one_changed_byte_fails_it() {
    use rampart_core::time::Timestamp;
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["ledger".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    let day = |offset: i64| {
        Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() + offset * 86_400)
            .unwrap()
            .to_rfc3339()[..10]
            .to_owned()
    };
    let (from, to) = (day(-1), day(1));

    // Something to prove: a release, an incident with its review, an
    // access review and a self-audit.
    ok(cli(&sb, &server).args(["apps", "create", "ledger"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "ledger", "--path"])
        .arg(&dir));
    let hostile = "<script>alert('x')</script><img src=x onerror=alert(1)>";
    let incident = json(cli(&sb, &server).args([
        "incidents",
        "open",
        hostile,
        "--severity",
        "high",
        "--app",
        "ledger",
    ]));
    let id = incident["id"].as_str().unwrap();
    ok(cli(&sb, &server).args(["incidents", "resolve", id]));
    let owner = json(cli(&sb, &server).args(["users", "list"]))[0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(cli(&sb, &server).args([
        "incidents",
        "review",
        id,
        "--cause",
        "a test",
        "--impact",
        "none",
        "--action",
        &owner,
        &day(7),
        "write the runbook",
    ]));
    ok(cli(&sb, &server).args([
        "access-review",
        "record",
        "--note",
        "Q4 review: one owner, no stale tokens",
    ]));
    let reviews = json(cli(&sb, &server).args(["access-review", "list"]));
    assert_eq!(reviews[0]["reviewer"], owner.as_str(), "{reviews}");
    refused(
        &sb,
        &server,
        &["access-review", "record", "--note", " "],
        "what the review concluded",
    );
    let _ = run(cli(&sb, &server).args(["doctor"]));

    // Bad periods and folders are refused and nothing is written.
    let out = sb.path().join("evidence");
    for (f, t, says) in [
        (to.as_str(), from.as_str(), "the period is empty"),
        ("2026-02-30", to.as_str(), "is not a date"),
        ("2020-01-01", "2026-01-01", "export it in parts"),
    ] {
        refused(
            &sb,
            &server,
            &[
                "evidence",
                "export",
                "--from",
                f,
                "--to",
                t,
                "--out",
                out.to_str().unwrap(),
            ],
            says,
        );
    }
    assert!(std::fs::read_dir(&out).map_or(true, |mut d| d.next().is_none()));
    let full = sb.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("keep.txt"), "mine").unwrap();
    refused(
        &sb,
        &server,
        &[
            "evidence",
            "export",
            "--from",
            &from,
            "--to",
            &to,
            "--out",
            full.to_str().unwrap(),
        ],
        "not empty",
    );
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);

    // The export verifies, pinned to the key it printed.
    let printed = ok(cli(&sb, &server).args([
        "evidence",
        "export",
        "--from",
        &from,
        "--to",
        &to,
        "--out",
        out.to_str().unwrap(),
    ]));
    let fingerprint = printed
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint: "))
        .unwrap()
        .trim()
        .to_owned();
    let verified = ok(sb
        .command()
        .args(["evidence", "verify"])
        .arg(&out)
        .args(["--key", &fingerprint]));
    assert!(verified.contains("the bundle is whole"), "{verified}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "evidence.json",
            "manifest.json",
            "manifest.sig",
            "report.html"
        ]
    );

    // What it holds, per control.
    let doc: Value =
        serde_json::from_slice(&std::fs::read(out.join("evidence.json")).unwrap()).unwrap();
    let c = &doc["controls"];
    assert_eq!(
        c["change_management"]["releases"][0]["app"], "ledger",
        "{c}"
    );
    assert_eq!(c["change_management"]["releases"][0]["outcome"], "live");
    assert_eq!(
        c["incidents"]["incidents"][0]["incident"]["state"],
        "reviewed"
    );
    assert_eq!(c["access"]["reviews"][0]["reviewer"], owner.as_str());
    assert!(c["access"]["reviews"][0]["snapshot"]["users"].is_array());
    assert!(!c["doctor"]["runs"].as_array().unwrap().is_empty());
    assert_eq!(c["audit"]["verification"]["ok"], true);
    assert!(c["access"]["changes"].as_array().is_some());

    // One byte changed anywhere, a file added or taken away: refused.
    let flip = |name: &'static str| {
        move |dir: &std::path::Path| {
            let path = dir.join(name);
            let mut bytes = std::fs::read(&path).unwrap();
            let at = bytes.len() / 2;
            bytes[at] ^= 0x01;
            std::fs::write(&path, bytes).unwrap();
        }
    };
    let copies = [
        altered(&out, "json", flip("evidence.json")),
        altered(&out, "html", flip("report.html")),
        altered(&out, "manifest", flip("manifest.json")),
        altered(&out, "sig", flip("manifest.sig")),
        altered(&out, "added", |d| {
            std::fs::write(d.join("extra.txt"), "x").unwrap()
        }),
        altered(&out, "removed", |d| {
            std::fs::remove_file(d.join("report.html")).unwrap()
        }),
    ];
    for copy in &copies {
        let (code, _, err) = run(sb.command().args(["evidence", "verify"]).arg(copy));
        assert_eq!(code, 1, "{} verified: {err}", copy.display());
        assert!(err.contains("does not verify"), "{err}");
    }
    // Whole, but signed by another key than the installation's.
    let (code, _, err) = run(sb
        .command()
        .args(["evidence", "verify"])
        .arg(&out)
        .args(["--key", "0000:1111:2222:3333:4444:5555:6666:7777"]));
    assert_eq!(code, 1);
    assert!(err.contains("not the expected"), "{err}");

    // The report in a real browser: its tables render, the hostile title
    // stays text.
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("evidence");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("report.png");
    let _ = std::fs::remove_file(&png);
    let dom = render(&out.join("report.html"), &png);
    assert!(dom.matches("<table").count() >= 10, "{dom}");
    assert!(dom.contains("<td>ledger</td>"), "{dom}");
    assert!(
        dom.contains("Change management") && dom.contains("<svg"),
        "{dom}"
    );
    assert!(!dom.contains("<script") && !dom.contains("<img"), "{dom}");
    assert!(dom.contains("&lt;script&gt;alert"), "{dom}");
    let shot = std::fs::read(&png).unwrap();
    assert!(shot.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        shot.len() > 30_000,
        "a near-empty screenshot: {} bytes",
        shot.len()
    );
    server.stop().unwrap();
}

/// Sends a report to `host`'s intake from `from`: the status, the
/// `report-id` header, the body.
fn report(
    server: &Server,
    host: &str,
    from: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Option<String>, String) {
    let url = format!("{}.well-known/security-report", app_url(server, host));
    match client_from(server, host, from)
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
    {
        Ok(r) => {
            let id = r
                .headers()
                .get("report-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (r.status().as_u16(), id, r.text().unwrap_or_default())
        }
        Err(e) => (0, None, e.to_string()),
    }
}

fn security_txt(server: &Server, host: &str) -> (u16, String, String, String) {
    let url = format!("{}.well-known/security.txt", app_url(server, host));
    let r = edge_client(server, host).get(url).send().unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (ct, hsts) = (header("content-type"), header("strict-transport-security"));
    (r.status().as_u16(), ct, hsts, r.text().unwrap())
}

#[test]
fn security_txt_is_served_on_every_host_and_reports_reach_the_intake_without_an_account() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["docs".into()]);
    // A file that could expire, or expire over a year away, is refused.
    for bad in [
        "expires_days = 0",
        "expires_days = 365",
        "contact = [\"http://x\"]",
    ] {
        let config = sb.write_config(&format!("{CONFIG}[security_txt]\n{bad}\n"));
        let out = sb.start_expecting_failure(&config).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("security_txt."), "{bad}: {err}");
    }
    // Access-log days from before: one past the retention, one to
    // pseudonymise, and a file that is not the log's.
    let logs = sb.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let yesterday = {
        let t = rampart_core::time::Timestamp::now().unix_seconds() - 86_400;
        rampart_core::time::Timestamp::from_unix_seconds(t)
            .unwrap()
            .to_rfc3339()[..10]
            .to_owned()
    };
    std::fs::write(
        logs.join("access.log.2020-01-01"),
        "{\"client_ip\":\"192.0.2.1\"}\n",
    )
    .unwrap();
    std::fs::write(
        logs.join(format!("access.log.{yesterday}")),
        "{\"client_ip\":\"198.51.100.7\",\"path\":\"/login\"}\n",
    )
    .unwrap();
    std::fs::write(logs.join("notes.txt"), "198.51.100.7 is ours").unwrap();
    let server = sb
        .start(&sb.write_config(&format!(
            "{CONFIG}[edge.log]\naccess = \"{}\"\n\
             [privacy]\nretention = \"2d\"\npseudonymize_after = \"1s\"\n\
             [security_txt]\ncontact = [\"mailto:security@example.test\"]\n\
             policy = \"https://example.test/disclosure\"\n",
            logs.join("access.log").display()
        )))
        .unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "docs", "--domain", "docs.example.test"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "docs", "--path"])
        .arg(&dir));

    // Served on APP.localhost and on the custom domain, valid RFC 9116.
    for host in ["docs.localhost", "docs.example.test"] {
        let (status, content_type, hsts, text) = security_txt(&server, host);
        assert_eq!(status, 200, "{host}: {text}");
        assert_eq!(content_type, "text/plain; charset=utf-8");
        assert!(hsts.starts_with("max-age="), "{hsts}");
        let parsed = sectxtlib::SecurityTxt::parse(&text).expect("valid RFC 9116");
        let contacts: Vec<String> = parsed.contact.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            contacts,
            [
                "mailto:security@example.test".to_owned(),
                format!("https://{host}/.well-known/security-report"),
            ],
            "{text}"
        );
        let canonical: Vec<String> = parsed.canonical.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            canonical,
            [format!("https://{host}/.well-known/security.txt")]
        );
        let left = parsed.expires.datetime - chrono::Utc::now();
        assert!(
            left > chrono::Duration::days(150) && left < chrono::Duration::days(364),
            "{text}"
        );
        assert!(text.contains("Policy: https://example.test/disclosure\n"));
    }
    // The API names the platform's contacts too.
    let (code, out, _) = run(std::process::Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(server.ca_path())
        .arg(format!("{}/.well-known/security.txt", server.url())));
    assert_eq!(code, 0);
    assert!(sectxtlib::SecurityTxt::parse(&out).is_ok(), "{out}");

    // The app's own contact and policy come first; a bad one is refused.
    refused(
        &sb,
        &server,
        &[
            "apps",
            "configure",
            "docs",
            "--security-contact",
            "javascript:alert(1)",
        ],
        "security_contact",
    );
    ok(cli(&sb, &server).args([
        "apps",
        "configure",
        "docs",
        "--security-contact",
        "mailto:docs-team@example.test",
        "--security-policy",
        "https://docs.example.test/security",
    ]));
    eventually(Duration::from_secs(20), "the app's own contact", || {
        let text = security_txt(&server, "docs.localhost").3;
        text.lines().find(|l| l.starts_with("Contact:"))
            == Some("Contact: mailto:docs-team@example.test")
            && text.contains("Policy: https://docs.example.test/security\n")
    });

    // The form, for a browser.
    let form = client_from(&server, "docs.localhost", "127.0.0.2")
        .get(format!(
            "{}.well-known/security-report",
            app_url(&server, "docs.localhost")
        ))
        .send()
        .unwrap();
    assert_eq!(form.status().as_u16(), 200);
    assert!(
        form.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(form.text().unwrap().contains("<form method=\"post\">"));

    // Hostile reports are taken as they are, with a tracking id.
    let html = b"contact=eve%40example.test&title=%3Cscript%3Ealert(1)%3C%2Fscript%3E&details=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E".to_vec();
    let (status, id, text) = report(
        &server,
        "docs.localhost",
        "127.0.0.2",
        "application/x-www-form-urlencoded",
        html,
    );
    assert_eq!(status, 201, "{text}");
    let html_id = id.unwrap();
    assert!(
        html_id.starts_with("rpt_") && text.contains(&html_id),
        "{text}"
    );
    let raw: Vec<u8> = [
        b"binary \x1b]0;pwned\x07 ".as_slice(),
        &[0xff, 0xfe, 0x00, 0x80],
        b"\nmore",
    ]
    .concat();
    let (status, id, _) = report(
        &server,
        "docs.example.test",
        "127.0.0.2",
        "application/octet-stream",
        raw.clone(),
    );
    assert_eq!(status, 201);
    let raw_id = id.unwrap();

    // Too big and empty ones are refused and store nothing.
    let (status, _, _) = report(
        &server,
        "docs.localhost",
        "127.0.0.4",
        "text/plain",
        vec![b'x'; 70 * 1024],
    );
    assert_eq!(status, 413);
    let (status, _, _) = report(
        &server,
        "docs.localhost",
        "127.0.0.5",
        "text/plain",
        b"  \n".to_vec(),
    );
    assert_eq!(status, 400);
    let listed = json(cli(&sb, &server).args(["reports", "list"]));
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    // Arrivals alert the operators: one alert per host with reports
    // waiting, naming the latest.
    let report_alerts = || -> Vec<String> {
        json(cli(&sb, &server).args(["alerts", "list"]))
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["rule"] == "security_report")
            .map(|a| a["summary"].as_str().unwrap().to_owned())
            .collect()
    };
    let summaries = report_alerts();
    assert_eq!(summaries.len(), 2, "{summaries:?}");
    for id in [&html_id, &raw_id] {
        assert!(
            summaries.iter().any(|s| s.contains(id.as_str())),
            "{summaries:?}"
        );
    }

    // Shown inert: the terminal gets no escape sequence, the bytes are kept.
    let shown = ok(cli(&sb, &server).args(["reports", "show", &raw_id]));
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
        "{shown:?}"
    );
    assert!(shown.contains("\\u{1b}]0;pwned"), "{shown}");
    let detail = json(cli(&sb, &server).args(["reports", "show", &raw_id]));
    use base64::Engine as _;
    let kept = base64::engine::general_purpose::STANDARD
        .decode(detail["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(kept, raw);
    let detail = json(cli(&sb, &server).args(["reports", "show", &html_id]));
    assert_eq!(detail["report"]["title"], "<script>alert(1)</script>");
    assert_eq!(detail["report"]["contact"], "eve@example.test");
    assert_eq!(detail["report"]["app"], "docs");

    // A flood from one client is cut at three; many clients together at
    // thirty.
    let flood: Vec<u16> = (0..6)
        .map(|i| {
            report(
                &server,
                "docs.localhost",
                "127.0.0.3",
                "text/plain",
                format!("flood {i}").into_bytes(),
            )
            .0
        })
        .collect();
    assert_eq!(flood, [201, 201, 201, 429, 429, 429]);
    let mut many = Vec::new();
    for client in 10..22 {
        for i in 0..3 {
            let from = format!("127.0.0.{client}");
            many.push(
                report(
                    &server,
                    "docs.localhost",
                    &from,
                    "text/plain",
                    format!("crowd {i}").into_bytes(),
                )
                .0,
            );
        }
    }
    let taken = many.iter().filter(|s| **s == 201).count();
    assert!(many.contains(&429), "{many:?}");
    assert_eq!(report_alerts().len(), 2, "a crowd is one alert per host");
    assert!(taken <= 30 - 5 + 1, "{taken} taken: {many:?}");

    // Triage opens an incident for it; closing ends it. Bad input changes
    // nothing.
    refused(
        &sb,
        &server,
        &["reports", "triage", &html_id, "--severity", "urgent"],
        "is not a severity",
    );
    refused(
        &sb,
        &server,
        &[
            "reports",
            "triage",
            &html_id,
            "--severity",
            "high",
            "--incident",
            "inc_nope",
        ],
        "no incident",
    );
    assert_eq!(
        json(cli(&sb, &server).args(["reports", "show", &html_id]))["report"]["state"],
        "new"
    );
    ok(cli(&sb, &server).args([
        "reports",
        "triage",
        &html_id,
        "--severity",
        "high",
        "--open-incident",
    ]));
    let detail = json(cli(&sb, &server).args(["reports", "show", &html_id]));
    assert_eq!(detail["report"]["state"], "triaged");
    let incident = detail["report"]["incident"].as_str().unwrap().to_owned();
    let shown = show(&sb, &server, &incident);
    assert!(
        shown["incident"]["title"]
            .as_str()
            .unwrap()
            .contains(&html_id),
        "{shown}"
    );
    assert_eq!(shown["incident"]["app"], "docs");
    ok(cli(&sb, &server).args([
        "reports",
        "close",
        &html_id,
        "--resolution",
        "not exploitable: escaped",
    ]));
    refused(
        &sb,
        &server,
        &["reports", "close", &html_id, "--resolution", "again"],
        "already closed",
    );
    // The custom domain's only report closed: its alert resolves; the
    // other host still has the crowd's waiting.
    ok(cli(&sb, &server).args(["reports", "close", &raw_id, "--resolution", "spam"]));
    let left = report_alerts();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains("docs.localhost"), "{left:?}");
    let open: Vec<String> = json(cli(&sb, &server).args(["reports", "list"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!open.contains(&html_id));

    // Personal data past its time: the old day is gone, yesterday's and the
    // reports' senders are pseudonyms; today's log and other files stay.
    // (pseudonymize_after is 1 s: every report is older than that now.)
    std::thread::sleep(Duration::from_millis(1500));
    ok(cli(&sb, &server).args(["privacy", "sweep"]));
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "access.log".to_owned(),
            format!("access.log.{yesterday}.anon"),
            "notes.txt".to_owned()
        ]
    );
    let day = std::fs::read_to_string(logs.join(format!("access.log.{yesterday}.anon"))).unwrap();
    assert!(
        day.contains("anon-") && !day.contains("198.51.100.7") && day.contains("/login"),
        "{day}"
    );
    assert!(
        std::fs::read_to_string(logs.join("access.log"))
            .unwrap()
            .contains("127.0.0.2")
    );
    let clients: Vec<String> = json(cli(&sb, &server).args(["reports", "list", "--all"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["client"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        clients.iter().all(|c| c.starts_with("anon-")),
        "{clients:?}"
    );
    // One client, one pseudonym.
    let distinct: std::collections::HashSet<&String> = clients.iter().collect();
    assert!(distinct.len() < clients.len(), "{clients:?}");

    let audit = ok(cli(&sb, &server).args(["audit", "list", "--limit", "500"]));
    assert!(audit.contains("privacy.sweep"), "{audit}");
    assert!(
        audit.contains("report.submit") && audit.contains("public"),
        "{audit}"
    );
    assert!(
        audit.contains(&format!(
            "reports/{html_id} triaged high incident {incident}"
        )),
        "{audit}"
    );
    server.stop().unwrap();
}
