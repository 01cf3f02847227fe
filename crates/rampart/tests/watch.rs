//! The watch through the real binary and edge: attack replays from
//! loopback addresses the test picks (127.0.0.2 and up), bans that take
//! effect at the edge, survive a restart and expire, and the networks an
//! operator names, which are never banned.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use rampart_testkit::{Sandbox, Server, ok, run};

/// A client of the edge for `host`, connecting from `from`.
fn client_from(server: &Server, host: &str, from: &str) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(&server.ca_pem()).unwrap();
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve(host, loopback(server.edge_addr()))
        .local_address(from.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn loopback(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

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
    let _cleanup = Cleanup(vec!["shop".into()]);
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
        audit.contains("bans/127.0.0.2/32: http-known-bad-path"),
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

    // Lifting a ban lets the client back in.
    ok(cli(&sb, &server).args(["bans", "remove", "127.0.0.2"]));
    assert_eq!(status(&scanner, &server, "/"), 200);
    assert!(banned(&sb, &server, "127.0.0.2/32").is_none());
    server.stop().unwrap();
}
