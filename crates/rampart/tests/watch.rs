//! The watch through the real binary and edge: attack replays from
//! loopback addresses the test picks (127.0.0.2 and up), bans that take
//! effect at the edge, survive a restart and expire, and the networks an
//! operator names, which are never banned.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use rampart_testkit::{Sandbox, Server, Smtp, ok, run};

fn status(client: &reqwest::blocking::Client, server: &Server, path: &str) -> u16 {
    let url = format!(
        "{}{}",
        app_url(server, "shop.localhost").trim_end_matches('/'),
        path
    );
    client
        .get(url)
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn bans(sb: &Sandbox, server: &Server) -> Vec<serde_json::Value> {
    json(cli(sb, server).args(["bans", "list"]))
        .as_array()
        .unwrap()
        .clone()
}

fn banned(sb: &Sandbox, server: &Server, net: &str) -> Option<serde_json::Value> {
    bans(sb, server).into_iter().find(|b| b["net"] == net)
}

#[test]
fn attackers_are_banned_at_the_edge_while_others_are_served() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["shop".into(), "other".into()]);
    let config = sb.write_config(&format!(
        "{CONFIG}[watch]\nnever_ban = [\"127.0.0.4\", \"127.0.1.0/24\"]\n"
    ));
    let server = sb.start(&config).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "shop"]));
    ok(cli(&sb, &server).args(["env", "set", "shop", "HELLO_STRICT=1"]));
    ok(cli(&sb, &server).args(["scale", "shop", "web=1"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "shop", "--path"])
        .arg(&dir));
    ok(cli(&sb, &server).args(["apps", "create", "other"]));
    ok(cli(&sb, &server).args(["scale", "other", "web=1"]));
    ok(cli(&sb, &server)
        .args(["deploy", "other", "--path"])
        .arg(&dir));

    let visitor = client_from(&server, "shop.localhost", "127.0.0.3");
    assert_eq!(status(&visitor, &server, "/"), 200);

    // A scanner asking for /.env is banned at once; its next requests get
    // 403 at the edge.
    let scanner = client_from(&server, "shop.localhost", "127.0.0.2");
    assert_eq!(status(&scanner, &server, "/.env"), 404);
    eventually(Duration::from_secs(10), "the scanner's ban", || {
        status(&scanner, &server, "/") == 403
    });
    let ban = banned(&sb, &server, "127.0.0.2/32").expect("a stored ban");
    assert_eq!(ban["scenario"], "http-known-bad-path");
    assert_eq!(ban["created_by"], "watch");
    // The ban holds on the app where it happened only: an app's answers
    // are its tenant's to shape (a page can make every visitor fetch
    // /.env from it), so it must not lock anyone out of other apps or out
    // of the platform's API.
    assert_eq!(ban["host"], "shop.localhost");
    let elsewhere = client_from(&server, "other.localhost", "127.0.0.2");
    let url = app_url(&server, "other.localhost");
    assert_eq!(elsewhere.get(&url).send().unwrap().status().as_u16(), 200);
    let api = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let whoami = api
        .get(format!("{}/api/whoami", server.url()))
        .send()
        .unwrap();
    assert_eq!(whoami.status().as_u16(), 401, "not banned from the API");

    // One walking random paths is banned for probing, within seconds.
    let prober = client_from(&server, "shop.localhost", "127.0.0.5");
    let started = std::time::Instant::now();
    for i in 0..11 {
        status(&prober, &server, &format!("/backup-{i}.zip"));
    }
    eventually(Duration::from_secs(10), "the prober's ban", || {
        status(&prober, &server, "/") == 403
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        banned(&sb, &server, "127.0.0.5/32").unwrap()["scenario"],
        "http-probing"
    );

    // A password spray on the app's login form.
    let sprayer = client_from(&server, "shop.localhost", "127.0.0.6");
    let login = format!("{}login", app_url(&server, "shop.localhost"));
    for guess in ["a", "b", "c", "d", "e", "f"] {
        let _ = sprayer
            .post(&login)
            .body(format!("password={guess}"))
            .send();
    }
    eventually(Duration::from_secs(10), "the sprayer's ban", || {
        status(&sprayer, &server, "/") == 403
    });
    assert_eq!(
        banned(&sb, &server, "127.0.0.6/32").unwrap()["scenario"],
        "http-bruteforce"
    );
    // Someone who knows the password is never counted.
    let member = client_from(&server, "shop.localhost", "127.0.0.7");
    for _ in 0..10 {
        let answer = member.post(&login).body("password=right").send().unwrap();
        assert_eq!(answer.status().as_u16(), 303);
    }

    // The operator's networks are never banned, whatever they do.
    for from in ["127.0.0.4", "127.0.1.9"] {
        let operator = client_from(&server, "shop.localhost", from);
        for i in 0..15 {
            assert_eq!(status(&operator, &server, "/.git/config"), 404);
            assert_eq!(status(&operator, &server, &format!("/p{i}")), 404);
        }
        assert_eq!(status(&operator, &server, "/"), 200);
    }
    // The visitor was served throughout.
    assert_eq!(status(&visitor, &server, "/"), 200);
    assert!(banned(&sb, &server, "127.0.0.3/32").is_none());
    assert!(banned(&sb, &server, "127.0.0.4/32").is_none());
    assert!(banned(&sb, &server, "127.0.0.7/32").is_none());
    let audit = ok(cli(&sb, &server).args(["audit", "list", "--json"]));
    assert!(
        audit.contains("bans/127.0.0.2/32 on shop.localhost: http-known-bad-path"),
        "{audit}"
    );

    // A ban by hand works at once and expires on time.
    ok(cli(&sb, &server).args([
        "bans",
        "add",
        "127.0.0.8",
        "--for",
        "3s",
        "--reason",
        "testing",
    ]));
    let timed = client_from(&server, "shop.localhost", "127.0.0.8");
    assert_eq!(status(&timed, &server, "/"), 403);
    eventually(Duration::from_secs(10), "the ban to expire", || {
        status(&timed, &server, "/") == 200
    });
    assert!(banned(&sb, &server, "127.0.0.8/32").is_none());

    // Bad input is refused and changes nothing.
    let before = bans(&sb, &server);
    for args in [
        &["bans", "add", "nonsense"][..],
        &["bans", "add", "10.0.0.0/33"],
        &["bans", "add", "127.0.0.9", "--for", "0s"],
        &["bans", "add", "127.0.0.9", "--for", "400d"],
        &["bans", "remove", "127.0.0.9"],
        &["bans", "remove", "not an address"],
    ] {
        let (code, _, err) = run(cli(&sb, &server).args(args));
        assert_ne!(code, 0, "{args:?}");
        assert!(!err.is_empty());
    }
    assert_eq!(bans(&sb, &server), before);

    // Only owners and admins see or change bans.
    let created: serde_json::Value = serde_json::from_str(&ok(cli(&sb, &server).args([
        "tokens",
        "create",
        "dev",
        "--role",
        "developer",
        "--json",
    ])))
    .unwrap();
    let developer = |args: &[&str]| {
        let mut cmd = cli(&sb, &server);
        cmd.env("RAMPART_TOKEN", created["token"].as_str().unwrap())
            .args(args);
        run(&mut cmd)
    };
    let (code, _, err) = developer(&["bans", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("403"), "{err}");
    let (code, _, _) = developer(&["bans", "remove", "127.0.0.2"]);
    assert_ne!(code, 0);
    assert!(banned(&sb, &server, "127.0.0.2/32").is_some());

    // A password spray on the platform's own login is banned too, from
    // the API and the edge alike; the operator's CLI goes on working.
    let api_from = |from: &str| {
        reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
            .local_address(from.parse::<IpAddr>().unwrap())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let spray = api_from("127.0.0.9");
    for guess in ["a", "b", "c", "d", "e", "f", "g"] {
        let _ = spray
            .post(format!("{}/api/sessions", server.url()))
            .json(&serde_json::json!({"email": "owner@localhost", "password": guess}))
            .send();
    }
    eventually(Duration::from_secs(10), "the API sprayer's ban", || {
        spray
            .get(format!("{}/api/whoami", server.url()))
            .send()
            .is_ok_and(|r| r.status().as_u16() == 403)
    });
    let refused = spray
        .get(format!("{}/api/whoami", server.url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(refused.contains("\"banned\""), "{refused}");
    assert_eq!(
        status(
            &client_from(&server, "shop.localhost", "127.0.0.9"),
            &server,
            "/"
        ),
        403
    );
    assert_eq!(
        banned(&sb, &server, "127.0.0.9/32").unwrap()["scenario"],
        "http-bruteforce"
    );
    assert!(banned(&sb, &server, "127.0.0.9/32").unwrap()["host"].is_null());

    // Bans survive a restart: the scanner is refused before it sends
    // anything new.
    server.stop().unwrap();
    let server = sb.start(&config).unwrap();
    let scanner = client_from(&server, "shop.localhost", "127.0.0.2");
    let visitor = client_from(&server, "shop.localhost", "127.0.0.3");
    eventually(
        Duration::from_secs(60),
        "the app back after the restart",
        || status(&visitor, &server, "/") == 200,
    );
    assert_eq!(status(&scanner, &server, "/"), 403);
    let elsewhere = client_from(&server, "other.localhost", "127.0.0.2");
    let url = app_url(&server, "other.localhost");
    assert_eq!(
        elsewhere.get(&url).send().unwrap().status().as_u16(),
        200,
        "still on its own host only"
    );

    // Lifting a ban lets the client back in; the scope must be named.
    let (code, _, err) = run(cli(&sb, &server).args(["bans", "remove", "127.0.0.2"]));
    assert_ne!(code, 0);
    assert!(err.contains("not banned everywhere"), "{err}");
    ok(cli(&sb, &server).args(["bans", "remove", "127.0.0.2", "--host", "shop.localhost"]));
    assert_eq!(status(&scanner, &server, "/"), 200);
    assert!(banned(&sb, &server, "127.0.0.2/32").is_none());
    server.stop().unwrap();
}

fn alerts(sb: &Sandbox, server: &Server, all: bool) -> Vec<serde_json::Value> {
    let mut cmd = cli(sb, server);
    cmd.args(["alerts", "list"]);
    if all {
        cmd.arg("--all");
    }
    json(&mut cmd).as_array().unwrap().clone()
}

#[test]
fn alerts_reach_a_signed_webhook_once_even_when_it_was_down() {
    const SECRET: &[u8] = b"a webhook secret of some length";
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["alarm".into()]);
    let config = sb.write_config(CONFIG);
    let server = sb.start(&config).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "alarm"]));
    ok(cli(&sb, &server).args(["scale", "alarm", "web=1"]));

    // A receiver that is down for now: its port is free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret_file = sb.path().join("webhook.secret");
    std::fs::write(&secret_file, [SECRET, b"\n"].concat()).unwrap();
    let url = format!("http://127.0.0.1:{port}/hook");
    let channel: serde_json::Value = serde_json::from_str(&ok(cli(&sb, &server)
        .args(["notify", "add", "webhook", &url, "--json", "--secret-file"])
        .arg(&secret_file)))
    .unwrap();
    assert!(channel.get("secret").is_none(), "{channel}");

    // Bad channels are refused and add nothing.
    let short = sb.path().join("short.secret");
    std::fs::write(&short, "short").unwrap();
    for (kind, target, file) in [
        ("webhook", "ftp://127.0.0.1/hook", &secret_file),
        ("webhook", "http://example.com/hook", &secret_file),
        ("webhook", "https://user:pw@example.com/hook", &secret_file),
        ("webhook", "not a url", &secret_file),
        ("pager", "https://example.com/hook", &secret_file),
        ("webhook", "https://example.com/hook", &short),
        (
            "webhook",
            "https://example.com/hook",
            &sb.path().join("missing"),
        ),
    ] {
        let (code, _, err) = run(cli(&sb, &server)
            .args(["notify", "add", kind, target, "--secret-file"])
            .arg(file));
        assert_ne!(code, 0, "{kind} {target}");
        assert!(!err.is_empty());
    }
    let channels = json(cli(&sb, &server).args(["notify", "list"]));
    assert_eq!(channels.as_array().unwrap().len(), 1, "{channels}");

    // Two failed deploys: one alert with a count of two, told once.
    ok(cli(&sb, &server).args(["env", "set", "alarm", "HELLO_EXIT=3"]));
    let dir = context(&sb.path().join("ctx"), "");
    for _ in 0..2 {
        let (code, _, _) = run(cli(&sb, &server)
            .args(["deploy", "alarm", "--path"])
            .arg(&dir));
        assert_ne!(code, 0);
    }
    let firing = alerts(&sb, &server, false);
    assert_eq!(firing.len(), 1, "{firing:?}");
    let alert = &firing[0];
    assert_eq!(
        (
            &alert["rule"],
            &alert["app"],
            &alert["severity"],
            &alert["count"]
        ),
        (
            &serde_json::json!("deploy_failed"),
            &serde_json::json!("alarm"),
            &serde_json::json!("warning"),
            &serde_json::json!(2)
        )
    );
    let id = alert["id"].as_str().unwrap().to_owned();
    let show = || json(cli(&sb, &server).args(["alerts", "show", &id]));
    eventually(Duration::from_secs(20), "a failed attempt", || {
        let detail = show();
        detail["deliveries"][0]["attempts"].as_u64() >= Some(1)
            && detail["deliveries"][0]["state"] == "pending"
    });
    let detail = show();
    assert_eq!(
        detail["deliveries"].as_array().unwrap().len(),
        1,
        "{detail}"
    );
    assert!(
        detail["deliveries"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{detail}"
    );

    // The outbox outlives a restart; the receiver comes back, fails once,
    // then takes it.
    server.stop().unwrap();
    let server = sb.start(&config).unwrap();
    let accepted = receiver(
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
        SECRET,
        1,
    );
    eventually(Duration::from_secs(60), "the delivery", || {
        !accepted.lock().unwrap().is_empty()
    });
    {
        let got = accepted.lock().unwrap();
        let (delivery, body, signed) = &got[0];
        assert!(signed, "the signature checks out: {body}");
        assert_eq!(body["event"], "alert.firing");
        assert_eq!(body["alert"]["id"], id.as_str());
        assert_eq!(body["alert"]["app"], "alarm");
        assert_eq!(body["delivery"], delivery.as_str());
    }
    let detail = json(cli(&sb, &server).args(["alerts", "show", &id]));
    assert_eq!(detail["deliveries"][0]["state"], "delivered", "{detail}");
    assert!(
        detail["deliveries"][0]["attempts"].as_u64() >= Some(3),
        "{detail}"
    );

    // Acknowledged, then resolved by a deploy that works; people are told.
    ok(cli(&sb, &server).args(["alerts", "ack", &id]));
    ok(cli(&sb, &server).args(["env", "unset", "alarm", "HELLO_EXIT"]));
    ok(cli(&sb, &server)
        .args(["deploy", "alarm", "--path"])
        .arg(&dir));
    assert!(alerts(&sb, &server, false).is_empty());
    let all = alerts(&sb, &server, true);
    assert_eq!(all[0]["state"], "resolved", "{all:?}");
    assert!(all[0]["acked_by"].is_string(), "{all:?}");
    ok(cli(&sb, &server).args(["notify", "test"]));
    eventually(
        Duration::from_secs(30),
        "the resolution and the test",
        || {
            let got = accepted.lock().unwrap();
            got.iter().any(|(_, b, _)| b["event"] == "alert.resolved")
                && got.iter().any(|(_, b, _)| b["event"] == "alert.test")
        },
    );
    // Each delivery arrived once, signed.
    std::thread::sleep(Duration::from_secs(3));
    let got = accepted.lock().unwrap();
    let mut ids: Vec<&str> = got.iter().map(|(d, _, _)| d.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "{got:?}");
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|(_, _, signed)| *signed));
    drop(got);

    let audit = ok(cli(&sb, &server).args(["audit", "list", "--json"]));
    assert!(
        audit.contains(&format!("alerts/{id}: warning deploy_failed of alarm")),
        "{audit}"
    );
    assert!(audit.contains(&format!("alerts/{id}/acked")), "{audit}");
    assert!(!audit.contains("a webhook secret"), "{audit}");
    server.stop().unwrap();
}

#[test]
fn a_traffic_spike_raises_one_alert_that_resolves_when_it_ends() {
    const SECRET: &[u8] = b"another webhook secret, long enough";
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["surge".into()]);
    let tls = sb.path().join("smtp-tls");
    let ca = Smtp::tls_material(&tls).unwrap();
    let smtp = Smtp::start(rampart_testkit::free_port(), Some(&tls)).unwrap();
    let config = sb.write_config(&format!(
        "{CONFIG}[watch]\nbaseline_warmup = \"30s\"\n{}",
        smtp_table(smtp.port, &ca)
    ));
    let server = sb.start(&config).unwrap();
    ok(cli(&sb, &server).args(["notify", "add", "email", "oncall@rampart.test"]));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let accepted = receiver(listener, SECRET, 0);
    let secret_file = sb.path().join("hook.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    ok(cli(&sb, &server)
        .args(["notify", "add", "webhook", &url, "--secret-file"])
        .arg(&secret_file));
    ok(cli(&sb, &server).args(["apps", "create", "surge"]));
    ok(cli(&sb, &server).args(["scale", "surge", "web=1"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "surge", "--path"])
        .arg(&dir));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let visit = |from: &'static str, every: Duration| {
        let client = client_from(&server, "surge.localhost", from);
        let url = app_url(&server, "surge.localhost");
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = client.get(&url).send();
                sent += 1;
                std::thread::sleep(every);
            }
            sent
        })
    };
    // Its usual traffic, about 2 requests a second, for the warm-up.
    let usual = visit("127.0.0.3", Duration::from_millis(500));
    std::thread::sleep(Duration::from_secs(45));
    assert!(
        alerts(&sb, &server, true).is_empty(),
        "usual traffic raises nothing"
    );

    // Ten times that and more, from several visitors: one alert.
    let spike: Vec<_> = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"]
        .into_iter()
        .map(|from| visit(from, Duration::from_millis(100)))
        .collect();
    eventually(Duration::from_secs(40), "the spike's alert", || {
        alerts(&sb, &server, false)
            .iter()
            .any(|a| a["rule"] == "traffic_spike")
    });
    std::thread::sleep(Duration::from_secs(12));
    let firing = alerts(&sb, &server, false);
    let spikes: Vec<_> = firing
        .iter()
        .filter(|a| a["rule"] == "traffic_spike")
        .collect();
    assert_eq!(spikes.len(), 1, "{firing:?}");
    assert_eq!(spikes[0]["app"], "surge");
    assert!(spikes[0]["count"].as_u64() >= Some(2), "{firing:?}");
    assert!(
        spikes[0]["summary"]
            .as_str()
            .unwrap()
            .contains("requests/s, usually"),
        "{firing:?}"
    );
    let id = spikes[0]["id"].as_str().unwrap().to_owned();

    // It ends: the alert resolves, and the receiver heard both, once each.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for visitor in spike {
        visitor.join().unwrap();
    }
    usual.join().unwrap();
    eventually(Duration::from_secs(40), "the resolution", || {
        let got = accepted.lock().unwrap();
        got.iter()
            .any(|(_, b, _)| b["event"] == "alert.resolved" && b["alert"]["id"] == id.as_str())
    });
    let got = accepted.lock().unwrap();
    let about: Vec<&str> = got
        .iter()
        .filter(|(_, b, _)| b["alert"]["id"] == id.as_str())
        .map(|(_, b, _)| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(about, ["alert.firing", "alert.resolved"], "{got:?}");
    assert!(got.iter().all(|(_, _, signed)| *signed));
    drop(got);
    // The same two reached the mailbox, over TLS, once each.
    eventually(Duration::from_secs(20), "two emails", || {
        smtp.messages().iter().filter(|m| m.contains(&id)).count() >= 2
    });
    let mails: Vec<String> = smtp
        .messages()
        .into_iter()
        .filter(|m| m.contains(&id))
        .collect();
    assert_eq!(mails.len(), 2, "{mails:?}");
    for (mail, state) in mails.iter().zip(["firing", "resolved"]) {
        assert!(
            mail.starts_with("X-Test-TLS: yes\r\nX-Test-Rcpt: oncall@rampart.test\r\n"),
            "{mail}"
        );
        assert!(
            mail.contains(&format!(
                "Subject: [rampart] WARNING traffic_spike of surge: {state}"
            )),
            "{mail}"
        );
        assert!(mail.contains("Message-ID: <dlv_"), "{mail}");
    }

    // Every replica stops answering while visitors keep coming: the app is
    // unreachable, and the alert names it; it resolves once it answers.
    let replicas = containers("surge");
    assert!(!replicas.is_empty());
    for c in &replicas {
        ok(std::process::Command::new("docker").args(["pause", c]));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let visitor = {
        let client = client_from(&server, "surge.localhost", "127.0.0.3");
        let url = app_url(&server, "surge.localhost");
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = client.get(&url).timeout(Duration::from_secs(2)).send();
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    eventually(
        Duration::from_secs(60),
        "the unreachable app's alert",
        || {
            alerts(&sb, &server, false)
                .iter()
                .any(|a| a["rule"] == "app_unreachable" && a["app"] == "surge")
        },
    );
    for c in &replicas {
        let _ = std::process::Command::new("docker")
            .args(["unpause", c])
            .output();
    }
    eventually(Duration::from_secs(60), "the app answering again", || {
        !alerts(&sb, &server, false)
            .iter()
            .any(|a| a["rule"] == "app_unreachable")
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    visitor.join().unwrap();
    server.stop().unwrap();
}

/// The `[notify.smtp]` table for a test server on `port` whose certificate
/// `ca` issued.
fn smtp_table(port: u16, ca: &std::path::Path) -> String {
    format!(
        "[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"Rampart <alerts@rampart.test>\"\nca_file = \"{}\"\n",
        ca.display()
    )
}

#[test]
fn alert_email_requires_starttls_and_arrives_once_the_server_offers_it() {
    let sb = sandbox();
    let tls = sb.path().join("smtp-tls");
    let ca = Smtp::tls_material(&tls).unwrap();
    let port = rampart_testkit::free_port();

    // A bad [notify.smtp] stops the start with the reason.
    let bad = sb.write_config(&format!(
        "{CONFIG}{}",
        smtp_table(port, &sb.path().join("no-such-ca.pem"))
    ));
    let error = sb.start(&bad).unwrap_err().to_string();
    assert!(error.contains("notify.smtp.ca_file"), "{error}");

    let config = sb.write_config(&format!("{CONFIG}{}", smtp_table(port, &ca)));
    let server = sb.start(&config).unwrap();
    for (target, extra) in [
        ("not-an-address", None),
        ("Ops <ops@rampart.test>", None),
        ("ops@rampart.test\r\nBcc: x@evil.test", None),
        ("ops@rampart.test", Some("--secret-file")),
    ] {
        let mut cmd = cli(&sb, &server);
        cmd.args(["notify", "add", "email", target]);
        if let Some(flag) = extra {
            cmd.arg(flag).arg(sb.path().join("any"));
        }
        let (code, _, err) = run(&mut cmd);
        assert_ne!(code, 0, "{target}");
        assert!(!err.is_empty());
    }
    assert_eq!(
        json(cli(&sb, &server).args(["notify", "list"])),
        serde_json::json!([])
    );
    let email = json(cli(&sb, &server).args(["notify", "add", "email", "ops@rampart.test"]));
    let email = email["id"].as_str().unwrap().to_owned();
    // And a webhook receiver that takes the connection and never answers.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hook", hanging.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hanging.incoming().take(2) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(60));
        drop(held);
    });
    let secret_file = sb.path().join("hook.secret");
    std::fs::write(&secret_file, "a secret of more than sixteen bytes").unwrap();
    ok(cli(&sb, &server)
        .args(["notify", "add", "webhook", &hook, "--secret-file"])
        .arg(&secret_file));

    // A server that does not offer STARTTLS gets nothing.
    let plain = Smtp::start(port, None).unwrap();
    let alert = json(cli(&sb, &server).args(["notify", "test"]));
    let id = alert["id"].as_str().unwrap().to_owned();
    let show = || json(cli(&sb, &server).args(["alerts", "show", &id]));
    let delivery = |kind_is_email: bool| {
        show()["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| (d["channel"] == email.as_str()) == kind_is_email)
            .cloned()
            .unwrap()
    };
    eventually(Duration::from_secs(30), "a refused attempt", || {
        delivery(true)["attempts"].as_u64() >= Some(1)
    });
    let detail = delivery(true);
    assert_eq!(detail["state"], "pending", "{detail}");
    let error = detail["last_error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("tls"), "{error}");
    assert!(plain.messages().is_empty());
    drop(plain);

    // The server comes back with STARTTLS: the retry arrives, once.
    let smtp = Smtp::start(port, Some(&tls)).unwrap();
    eventually(Duration::from_secs(40), "the email", || {
        !smtp.messages().is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].starts_with("X-Test-TLS: yes\r\n"), "{}", mails[0]);
    assert!(
        mails[0].contains("Subject: [rampart] INFO test: test"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0].contains("From: Rampart <alerts@rampart.test>"),
        "{}",
        mails[0]
    );
    let sent = delivery(true);
    assert_eq!(sent["state"], "delivered", "{sent}");
    assert!(
        mails[0].contains(&format!(
            "Message-ID: <{}@rampart>",
            sent["id"].as_str().unwrap()
        )),
        "{}",
        mails[0]
    );
    // The receiver that hangs costs one attempt's limit, and is retried.
    let hung = delivery(false);
    assert_eq!(hung["state"], "pending", "{hung}");
    assert!(
        hung["last_error"].as_str().unwrap().contains("timed out"),
        "{hung}"
    );
    server.stop().unwrap();
    drop(held);
}

#[test]
fn certificates_that_cannot_be_had_or_renewed_raise_alerts_naming_the_app() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["renew".into(), "fresh".into()]);
    // Nothing listens here: the certificate authority is unreachable.
    let ca_port = rampart_testkit::free_port();
    let config = sb.write_config(&format!(
        "{CONFIG}[edge.tls]\nacme_directory = \"https://127.0.0.1:{ca_port}/dir\"\nacme_email = \"ops@rampart.test\"\n"
    ));
    let server = sb.start(&config).unwrap();
    // An ACME certificate 61 days into its 90: due for renewal, 29 days
    // left, stored by an earlier order.
    let acme = sb.data_dir().join("acme");
    std::fs::create_dir_all(&acme).unwrap();
    let (cert, key) =
        rampart_testkit::certificate(&["renew.rampart.test"], -61 * 86_400, 29 * 86_400).unwrap();
    std::fs::write(acme.join("renew.rampart.test.pem"), &cert).unwrap();
    std::fs::write(acme.join("renew.rampart.test.key.pem"), key).unwrap();
    let stored = sb.path().join("stored.pem");
    std::fs::write(&stored, &cert).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "renew", "--domain", "renew.rampart.test"]));
    ok(cli(&sb, &server).args(["apps", "create", "fresh", "--domain", "fresh.rampart.test"]));
    let dir = context(&sb.path().join("ctx"), "");
    for app in ["renew", "fresh"] {
        ok(cli(&sb, &server).args(["scale", app, "web=1"]));
        ok(cli(&sb, &server).args(["deploy", app, "--path"]).arg(&dir));
    }

    let certificate_alerts = || {
        alerts(&sb, &server, false)
            .into_iter()
            .filter(|a| a["rule"] == "certificate")
            .collect::<Vec<_>>()
    };
    eventually(Duration::from_secs(60), "two certificate alerts", || {
        certificate_alerts().len() == 2
    });
    let firing = certificate_alerts();
    let of = |app: &str| {
        firing
            .iter()
            .find(|a| a["app"] == app)
            .unwrap_or_else(|| panic!("no alert for {app}: {firing:?}"))["summary"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let renew = of("renew");
    assert!(
        renew.contains("renew.rampart.test is due for renewal and expires in 2")
            && renew.contains("renewing it fails"),
        "{renew}"
    );
    assert!(
        of("fresh").contains("fresh.rampart.test has no ACME certificate yet"),
        "{firing:?}"
    );

    // Meanwhile the stored certificate, not a stand-in, is still served.
    let edge = server.edge_addr();
    let (code, out, err) = run(std::process::Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        &stored.display().to_string(),
        "--resolve",
        &format!("renew.rampart.test:{}:127.0.0.1", edge.port()),
        &format!("https://renew.rampart.test:{}/", edge.port()),
    ]));
    assert_eq!(code, 0, "the stored certificate verifies: {out} {err}");

    // A site that is no longer served has nothing left to renew.
    ok(cli(&sb, &server).args(["apps", "delete", "fresh", "--yes"]));
    eventually(
        Duration::from_secs(40),
        "the deleted app's alert resolved",
        || {
            let left = certificate_alerts();
            left.len() == 1 && left[0]["app"] == "renew"
        },
    );
    server.stop().unwrap();
}

/// A platform whose edge serves metrics on a port the OS picks, and the
/// metrics URL it prints.
fn start_with_metrics(sb: &Sandbox) -> (Server, String) {
    let config = sb.write_raw_config(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[auth]\nrequire_mfa = false\n\
         [edge.listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{CONFIG}"
    ));
    let server = sb.start(&config).unwrap();
    let url = server
        .output()
        .lines()
        .find_map(|l| l.strip_prefix("rampart: metrics at "))
        .expect("the metrics address is printed")
        .trim()
        .to_owned();
    (server, url)
}

#[test]
fn metrics_and_top_show_each_apps_traffic() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["gauge".into()]);
    let (server, metrics_url) = start_with_metrics(&sb);
    ok(cli(&sb, &server).args(["apps", "create", "gauge"]));
    ok(cli(&sb, &server).args(["scale", "gauge", "web=1"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "gauge", "--path"])
        .arg(&dir));

    let client = client_from(&server, "gauge.localhost", "127.0.0.3");
    let url = app_url(&server, "gauge.localhost");
    for _ in 0..40 {
        assert_eq!(client.get(&url).send().unwrap().status(), 200);
    }
    let metrics = || {
        reqwest::blocking::get(&metrics_url)
            .unwrap()
            .text()
            .unwrap()
    };
    eventually(Duration::from_secs(30), "the window's figures", || {
        metrics().contains("rampart_app_requests_total{app=\"gauge\"} 40\n")
    });
    let text = metrics();
    for line in [
        "# TYPE rampart_app_requests counter",
        "rampart_app_errors_total{app=\"gauge\"} 0\n",
        "rampart_app_request_duration_seconds_bucket{app=\"gauge\",le=\"+Inf\"} 40\n",
        "rampart_app_request_duration_seconds_count{app=\"gauge\"} 40\n",
        "rampart_app_replicas_healthy{app=\"gauge\"} 1\n",
        "rampart_app_backup_age_seconds{app=\"gauge\"} +Inf\n",
        "rampart_alerts_firing{severity=\"critical\"} 0\n",
        // The edge's own figures are still there, and the text still ends
        // as OpenMetrics wants.
        "rampart_edge_open_connections",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Requests within 10 s are all within the last bucket but one.
    assert!(
        text.contains("rampart_app_request_duration_seconds_bucket{app=\"gauge\",le=\"10\"} 40\n"),
        "{text}"
    );

    let top = json(cli(&sb, &server).args(["top"]));
    let app = &top["apps"][0];
    assert_eq!(app["app"], "gauge", "{top}");
    assert_eq!(app["replicas_healthy"], 1, "{top}");
    let samples = app["samples"].as_array().unwrap();
    let requests: u64 = samples
        .iter()
        .map(|s| s["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 40, "{top}");
    assert!(app["requests_per_sec"].as_f64().unwrap() > 0.0, "{top}");
    let one = ok(cli(&sb, &server).args(["top", "gauge", "--minutes", "5"]));
    assert!(
        one.contains("gauge") && one.contains("alert(s) firing"),
        "{one}"
    );
    for bad in [["top", "--minutes", "0"], ["top", "--minutes", "99999"]] {
        let (code, _, err) = run(cli(&sb, &server).args(bad));
        assert_ne!(code, 0);
        assert!(err.contains("minutes"), "{err}");
    }
    let (code, _, err) = run(cli(&sb, &server).args(["top", "nosuchapp"]));
    assert_ne!(code, 0);
    assert!(err.contains("nosuchapp"), "{err}");
    server.stop().unwrap();
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A metric's value in Prometheus text, 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn an_event_flood_is_counted_whole_in_bounded_memory() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["flood".into()]);
    let (server, metrics_url) = start_with_metrics(&sb);
    ok(cli(&sb, &server).args(["apps", "create", "flood"]));
    ok(cli(&sb, &server).args(["scale", "flood", "web=1"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "flood", "--path"])
        .arg(&dir));
    let pid = server.pid().unwrap();
    let before = rss_kib(pid);

    // Eight clients on keep-alive connections, 1,500 requests each, with
    // paths and query strings up to 4 KiB; and 600 more clients with one
    // request each, each a bucket in the detectors.
    const EACH: usize = 1_500;
    let url = app_url(&server, "flood.localhost");
    let heavy: Vec<_> = (0..8)
        .map(|i| {
            let client = client_from(&server, "flood.localhost", &format!("127.0.2.{}", i + 1));
            let url = url.clone();
            std::thread::spawn(move || {
                let mut served = 0;
                for n in 0..EACH {
                    let query = "q".repeat(n % 4096);
                    let response = client.get(format!("{url}?{query}")).send();
                    served += usize::from(response.is_ok_and(|r| r.status() == 200));
                }
                served
            })
        })
        .collect();
    let crowd = std::thread::spawn({
        let url = url.clone();
        let server_edge = server.edge_addr();
        move || {
            let mut served = 0;
            for n in 0..600u32 {
                let from = format!("127.0.{}.{}", 3 + n / 250, 1 + n % 250);
                let client = reqwest::blocking::Client::builder()
                    .danger_accept_invalid_certs(true)
                    .resolve("flood.localhost", loopback(server_edge))
                    .local_address(from.parse::<IpAddr>().unwrap())
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                served += usize::from(client.get(&url).send().is_ok_and(|r| r.status() == 200));
            }
            served
        }
    });
    let served: usize = heavy.into_iter().map(|t| t.join().unwrap()).sum();
    let crowd_served = crowd.join().unwrap();
    assert_eq!(served, 8 * EACH, "every request of the flood was served");
    assert_eq!(crowd_served, 600);

    // Every request is either counted for the app or counted as skipped;
    // nobody was banned for sending a lot of the same page.
    let total = (8 * EACH + 600) as f64;
    eventually(Duration::from_secs(30), "the flood counted", || {
        let text = reqwest::blocking::get(&metrics_url)
            .unwrap()
            .text()
            .unwrap();
        metric(&text, "rampart_app_requests_total{app=\"flood\"}")
            + metric(&text, "rampart_watch_events_skipped_total")
            == total
    });
    assert!(bans(&sb, &server).is_empty(), "{:?}", bans(&sb, &server));
    let grown = rss_kib(pid).saturating_sub(before);
    eprintln!("memory grew by {grown} KiB");
    assert!(grown < 150 * 1024, "memory grew by {grown} KiB");
    // The platform still answers.
    ok(cli(&sb, &server).args(["apps", "list"]));
    server.stop().unwrap();
}
