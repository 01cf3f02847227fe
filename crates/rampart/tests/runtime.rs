//! Apps on the real Docker engine, through the real binary: deploys,
//! hardening, isolation, zero-downtime redeploys, failed deploys, rollback,
//! scaling and recovery after a SIGKILL.
//!
//! Test images are built `FROM scratch` from the statically linked
//! `examples/hello`, which build.rs compiles, so nothing is pulled.
//!
//! Long by choice: every file under `tests/` is a test binary of its own,
//! linked on its own, so an area's tests share one file and one link
//! rather than paying for a binary each.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

mod common;

use common::*;
use rampart_testkit::{Sandbox, Server, ok, run};
use serde_json::Value;

#[test]
fn a_deployed_app_serves_over_https_from_hardened_isolated_replicas() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["hard".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "hard"]));
    let dir = context(&sb.path().join("ctx"), "");
    std::fs::write(dir.join("ignored.bin"), vec![0u8; 1 << 20]).unwrap();
    std::fs::write(dir.join(".dockerignore"), "ignored.bin\n").unwrap();
    let release = json(
        cli(&sb, &server)
            .args(["deploy", "hard", "--path"])
            .arg(&dir),
    );
    assert_eq!(release["number"], 1);
    assert_eq!(release["status"], "live");
    assert_eq!(release["image"], "rampart/hard:r1");

    let host = "hard.localhost";
    let client = edge_client(&server, host);
    let (status, body) = get(&client, &app_url(&server, host));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("hello from release 1"), "{body}");
    let response = client.get(app_url(&server, host)).send().unwrap();
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_some()
    );

    let ps = json(cli(&sb, &server).args(["ps", "hard"]));
    let replicas = ps["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2, "{ps}");
    assert!(replicas.iter().all(|r| r["serving"] == true), "{ps}");

    let ids = containers("hard");
    assert_eq!(ids.len(), 2);
    for id in &ids {
        let c = inspect(id);
        let host_config = &c["HostConfig"];
        assert_eq!(host_config["CapDrop"], serde_json::json!(["ALL"]), "{id}");
        assert!(host_config["CapAdd"].is_null());
        assert_eq!(host_config["Privileged"], false);
        assert_eq!(host_config["ReadonlyRootfs"], true);
        assert!(
            host_config["SecurityOpt"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o.as_str().unwrap().starts_with("no-new-privileges"))
        );
        assert_eq!(host_config["Memory"], 256 * 1024 * 1024);
        assert_eq!(host_config["NanoCpus"], 1_000_000_000i64);
        assert_eq!(host_config["PidsLimit"], 256);
        assert!(host_config["Tmpfs"]["/tmp"].is_string());
        assert!(
            host_config["PortBindings"]
                .as_object()
                .is_none_or(|m| m.is_empty()),
            "no published ports: {}",
            host_config["PortBindings"]
        );
        assert_eq!(host_config["PublishAllPorts"], false);
        assert!(host_config["Binds"].as_array().is_none_or(|b| b.is_empty()));
        // No host mounts: the one mount is the app's own media volume.
        let mounts = c["Mounts"].as_array().unwrap();
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        assert_eq!(mounts[0]["Type"], "volume", "{mounts:?}");
        assert_eq!(mounts[0]["Destination"], "/data/media");
        assert!(
            mounts[0]["Name"].as_str().unwrap().ends_with("-hard-media"),
            "{mounts:?}"
        );
        let ports = &c["NetworkSettings"]["Ports"];
        assert!(
            ports
                .as_object()
                .is_none_or(|m| m.values().all(Value::is_null)),
            "nothing bound on the host: {ports}"
        );
        assert_eq!(
            c["Config"]["User"], "65534:65534",
            "root images run as nobody"
        );
        assert_eq!(c["Config"]["Labels"]["rampart.app"], "hard");
        assert_eq!(c["Config"]["Labels"]["rampart.release"], "1");
        let env = c["Config"]["Env"].as_array().unwrap();
        assert!(!env.iter().any(|e| e.as_str().unwrap().contains("DOCKER")));
        // The app's network has no way out.
        let networks = c["NetworkSettings"]["Networks"].as_object().unwrap();
        assert_eq!(networks.len(), 1);
        let net = networks.keys().next().unwrap();
        let (_, out, _) = docker(&["network", "inspect", net]);
        let net: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(net[0]["Internal"], true, "{net}");
    }

    // The build context honoured .dockerignore: the image is small.
    let (_, size, _) = docker(&["image", "inspect", "-f", "{{.Size}}", "rampart/hard:r1"]);
    let size: u64 = size.trim().parse().unwrap();
    let hello = std::fs::metadata(HELLO).unwrap().len();
    assert!(size < hello + 512 * 1024, "image {size} vs binary {hello}");

    // Scale, then roll back to release 1 (deployed again as release 2 then 3).
    let status = json(cli(&sb, &server).args(["scale", "hard", "--replicas", "3"]));
    assert_eq!(status["replicas"].as_array().unwrap().len(), 3, "{status}");
    ok(cli(&sb, &server).args(["deploy", "hard", "--image", "rampart/hard:r1"]));
    let rolled = json(cli(&sb, &server).args(["rollback", "hard"]));
    assert_eq!(rolled["number"], 3);
    assert_eq!(rolled["status"], "live");
    let releases = json(cli(&sb, &server).args(["releases", "hard"]));
    let statuses: Vec<_> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["live", "retired", "retired"]);
    eventually(
        Duration::from_secs(30),
        "three replicas of release 3",
        || {
            containers("hard")
                .iter()
                .filter(|id| inspect_label(id, "rampart.release").as_deref() == Some("3"))
                .count()
                == 3
                && containers("hard").len() == 3
        },
    );
    // A variable set with --restart reaches new replicas at once.
    ok(cli(&sb, &server).args(["env", "set", "hard", "GREETING=hi", "--restart"]));
    let releases = json(cli(&sb, &server).args(["releases", "hard"]));
    assert_eq!(releases[0]["number"], 4);
    assert_eq!(releases[0]["status"], "live");
    assert_eq!(releases[0]["env_names"], serde_json::json!(["GREETING"]));
    // The restart deploys the live release's image again, under its tag.
    assert_eq!(releases[0]["image"], releases[1]["image"], "{releases}");
    assert!(
        !releases[0]["image"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{releases}"
    );
    // `rampart restart` does the same on its own.
    let out = ok(cli(&sb, &server).args(["restart", "hard"]));
    assert!(out.contains("Release 5 of hard is live"), "{out}");
    let releases = json(cli(&sb, &server).args(["releases", "hard"]));
    assert_eq!(releases[0]["image"], releases[1]["image"], "{releases}");
    eventually(
        Duration::from_secs(30),
        "replicas with the variable",
        || {
            let ids = containers("hard");
            ids.len() == 3
                && ids.iter().all(|id| {
                    inspect(id)["Config"]["Env"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e == "GREETING=hi")
                })
        },
    );
    let logs = ok(cli(&sb, &server).args(["logs", "hard", "--tail", "5"]));
    assert!(logs.contains("listening on port 8080"), "{logs}");

    // Deleting the app removes its replicas, its network and its images.
    let (_, images, _) = docker(&["images", "-q", "rampart/hard"]);
    assert!(
        !images.trim().is_empty(),
        "the build was tagged rampart/hard"
    );
    ok(cli(&sb, &server).args(["apps", "delete", "hard", "--yes"]));
    assert!(containers("hard").is_empty());
    let (_, nets, _) = docker(&["network", "ls", "-q", "--filter", "label=rampart.app=hard"]);
    assert!(nets.trim().is_empty(), "{nets}");
    let (_, images, _) = docker(&["images", "-q", "rampart/hard"]);
    assert!(images.trim().is_empty(), "{images}");
    let verify = json(cli(&sb, &server).args(["audit", "verify"]));
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn one_app_cannot_reach_another() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["wall-a".into(), "wall-b".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    let dir = context(&sb.path().join("ctx"), "");
    for app in ["wall-a", "wall-b"] {
        ok(cli(&sb, &server).args(["apps", "create", app]));
        ok(cli(&sb, &server).args(["deploy", app, "--path"]).arg(&dir));
    }
    let ip_of = |id: &str| -> String {
        let c = inspect(id);
        let nets = c["NetworkSettings"]["Networks"]
            .as_object()
            .unwrap()
            .clone();
        nets.values().next().unwrap()["IPAddress"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let a = containers("wall-a");
    let b = containers("wall-b");
    assert_eq!((a.len(), b.len()), (2, 2));
    let probe = |from: &str, to: &str| {
        let target = format!("{}:8080", ip_of(to));
        docker(&["exec", from, "/hello", "probe", &target])
    };
    // Control: replicas of one app reach each other, so the probe works.
    let (code, out, err) = probe(&a[0], &a[1]);
    assert_eq!(code, 0, "sibling replicas connect: {out}{err}");
    for (from, to) in [(&a[0], &b[0]), (&a[1], &b[1]), (&b[0], &a[0])] {
        let (code, out, err) = probe(from, to);
        assert_eq!(code, 1, "app A must not reach app B: {out}{err}");
    }
    // Nor can a replica reach the outside world or the host's API port.
    let api = server.addr().port().to_string();
    let (code, out, _) = docker(&["exec", &a[0], "/hello", "probe", "1.1.1.1:443"]);
    assert_eq!(code, 1, "no egress: {out}");
    let gateway = {
        let c = inspect(&a[0]);
        let nets = c["NetworkSettings"]["Networks"]
            .as_object()
            .unwrap()
            .clone();
        nets.values().next().unwrap()["Gateway"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    if !gateway.is_empty() {
        let (code, out, _) = docker(&[
            "exec",
            &a[0],
            "/hello",
            "probe",
            &format!("{gateway}:{api}"),
        ]);
        assert_eq!(code, 1, "the API listens on loopback only: {out}");
    }

    // An app that asks for egress moves to a network with a way out; it is
    // still walled off from the other app.
    ok(cli(&sb, &server).args(["apps", "configure", "wall-b", "--egress", "true"]));
    ok(cli(&sb, &server).args(["deploy", "wall-b", "--image", "rampart/wall-b:r1"]));
    let b = containers("wall-b");
    assert_eq!(b.len(), 2, "the old replicas stopped");
    let c = inspect(&b[0]);
    let net = c["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert!(net.ends_with("-egress"), "{net}");
    let (_, out, _) = docker(&["network", "inspect", "-f", "{{.Internal}}", &net]);
    assert_eq!(out.trim(), "false");
    let (code, out, err) = probe(&a[0], &b[0]);
    assert_eq!(code, 1, "egress does not open app B to app A: {out}{err}");
    let (code, out, err) = probe(&b[0], &a[0]);
    assert_eq!(code, 1, "nor app A to app B: {out}{err}");
    let (_, nets, _) = docker(&[
        "network",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        "label=rampart.app=wall-b",
    ]);
    assert_eq!(
        nets.lines().count(),
        1,
        "the unused network was removed: {nets}"
    );
}

#[test]
fn ten_redeploys_under_load_fail_no_request() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["steady".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "steady"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "steady", "--path"])
        .arg(&dir));
    ok(cli(&sb, &server).args(["apps", "configure", "steady", "--drain", "5"]));

    let stop = Arc::new(AtomicBool::new(false));
    let (handles, counters) = load(&server, "steady.localhost", 4, stop.clone());
    for n in 0..10 {
        let release =
            json(cli(&sb, &server).args(["deploy", "steady", "--image", "rampart/steady:r1"]));
        assert_eq!(release["number"], n + 2);
        assert_eq!(release["status"], "live");
    }
    std::thread::sleep(Duration::from_millis(500));
    let (good, bad, errors) = stop_load(&stop, handles, counters);
    assert_eq!(bad, 0, "failed requests during redeploys: {errors:?}");
    assert!(good > 200, "the load ran: {good} requests");
    let client = edge_client(&server, "steady.localhost");
    let (_, body) = get(&client, &app_url(&server, "steady.localhost"));
    assert!(body.starts_with("hello from release 11"), "{body}");
    eventually(Duration::from_secs(30), "only release 11 runs", || {
        let ids = containers("steady");
        ids.len() == 2
            && ids
                .iter()
                .all(|id| inspect_label(id, "rampart.release").as_deref() == Some("11"))
    });
}

#[test]
fn failed_deploys_leave_the_previous_release_serving_and_nothing_running() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["sturdy".into(), "sturdy-new".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "sturdy"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "sturdy", "--path"])
        .arg(&dir));
    ok(cli(&sb, &server).args(["apps", "configure", "sturdy", "--health-timeout", "4"]));
    let client = edge_client(&server, "sturdy.localhost");
    let url = app_url(&server, "sturdy.localhost");
    let serving_release_1 = || {
        let (status, body) = get(&client, &url);
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("hello from release 1 "), "{body}");
        let ids = containers("sturdy");
        assert_eq!(ids.len(), 2, "only release 1's replicas are left");
        for id in ids {
            assert_eq!(inspect(&id)["Config"]["Labels"]["rampart.release"], "1");
        }
    };
    let deploy_fails = |sb: &Sandbox, args: &[&str], reason: &str| {
        let (code, out, err) = run(cli(sb, &server).args(args));
        assert_eq!(code, 1, "{args:?} must fail\n{out}\n{err}");
        assert!(
            err.contains("release 1 keeps serving") && err.contains(reason),
            "{args:?}: {err}"
        );
    };

    // A health check that never passes.
    ok(cli(&sb, &server).args(["env", "set", "sturdy", "HELLO_HEALTH=fail"]));
    deploy_fails(
        &sb,
        &["deploy", "sturdy", "--image", "rampart/sturdy:r1"],
        "did not pass its health check",
    );
    serving_release_1();
    ok(cli(&sb, &server).args(["env", "unset", "sturdy", "HELLO_HEALTH"]));

    // A container that exits at once.
    ok(cli(&sb, &server).args(["env", "set", "sturdy", "HELLO_EXIT=3"]));
    deploy_fails(
        &sb,
        &["deploy", "sturdy", "--image", "rampart/sturdy:r1"],
        "exited with status 3",
    );
    serving_release_1();
    ok(cli(&sb, &server).args(["env", "unset", "sturdy", "HELLO_EXIT"]));

    // An image the engine does not have.
    deploy_fails(
        &sb,
        &["deploy", "sturdy", "--image", "none/missing:1"],
        "no image",
    );
    serving_release_1();

    // A build that fails.
    let broken = context(&sb.path().join("broken"), "COPY missing-file /x\n");
    let (code, _, err) = run(cli(&sb, &server)
        .args(["deploy", "sturdy", "--path"])
        .arg(&broken));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("failed"), "{err}");
    serving_release_1();

    let releases = json(cli(&sb, &server).args(["releases", "sturdy"]));
    let releases = releases.as_array().unwrap();
    assert_eq!(releases.len(), 5);
    assert!(
        releases[..4].iter().all(|r| r["status"] == "failed"),
        "{releases:?}"
    );
    assert!(releases[..4].iter().all(|r| r["reason"].is_string()));
    let health = releases[3]["reason"].as_str().unwrap();
    assert!(health.contains("last log lines"), "{health}");

    // Refused before anything starts: no release is recorded.
    let empty = sb.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = run(cli(&sb, &server)
        .args(["deploy", "sturdy", "--path"])
        .arg(&empty));
    assert_ne!(code, 0);
    assert!(err.contains("no Dockerfile"), "{err}");
    let api = server.client(Some(&server.bootstrap_token()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    for body in [b"not a tar archive".to_vec(), vec![0u8; 1024], Vec::new()] {
        let (status, text) = rt
            .block_on(api.raw(
                rampart_client::HttpMethod::POST,
                "/api/apps/sturdy/deploys/build",
                Some("application/x-tar"),
                body,
            ))
            .unwrap();
        assert_eq!(status.as_u16(), 400, "{}", String::from_utf8_lossy(&text));
    }
    let (status, _) = rt
        .block_on(api.raw(
            rampart_client::HttpMethod::POST,
            "/api/apps/sturdy/deploys/build",
            Some("application/json"),
            b"{}".to_vec(),
        ))
        .unwrap();
    assert_eq!(status.as_u16(), 415);
    for body in [
        &b"{\"image\": \"\"}"[..],
        b"{\"image\": \"a b\"}",
        b"{\"img\": 1}",
        b"[]",
    ] {
        let (status, _) = rt
            .block_on(api.raw(
                rampart_client::HttpMethod::POST,
                "/api/apps/sturdy/deploys/image",
                Some("application/json"),
                body.to_vec(),
            ))
            .unwrap();
        assert_eq!(status.as_u16(), 400, "{}", String::from_utf8_lossy(body));
    }
    for patch in [
        &b"{\"replicas\": 1000}"[..],
        b"{\"health_path\": \"no-slash\"}",
        b"{\"memory_mb\": 1}",
        b"{\"unknown\": true}",
    ] {
        let (status, _) = rt
            .block_on(api.raw(
                rampart_client::HttpMethod::PATCH,
                "/api/apps/sturdy/settings",
                Some("application/json"),
                patch.to_vec(),
            ))
            .unwrap();
        assert_eq!(status.as_u16(), 400, "{}", String::from_utf8_lossy(patch));
    }
    let after = json(cli(&sb, &server).args(["releases", "sturdy"]));
    assert_eq!(
        after.as_array().unwrap().len(),
        5,
        "refused requests record nothing"
    );
    let settings = json(cli(&sb, &server).args(["apps", "configure", "sturdy"]));
    assert_eq!(settings["replicas"], 2);
    assert_eq!(settings["health_timeout_secs"], 4);
    serving_release_1();

    // A first deploy that fails says that nothing serves, not that an
    // earlier release does.
    ok(cli(&sb, &server).args(["apps", "create", "sturdy-new"]));
    ok(cli(&sb, &server).args(["env", "set", "sturdy-new", "HELLO_EXIT=3"]));
    let (code, _, err) = run(cli(&sb, &server)
        .args(["deploy", "sturdy-new", "--path"])
        .arg(&dir));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("release 1 of sturdy-new failed; sturdy-new has no release serving"),
        "{err}"
    );
}

#[test]
fn a_restart_after_sigkill_mid_deploy_converges() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["phoenix".into()]);
    let config = sb.write_config(CONFIG);
    let server = sb.start(&config).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "phoenix"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "phoenix", "--path"])
        .arg(&dir));
    // Release 2 will never become healthy: the deploy waits, and is killed.
    ok(cli(&sb, &server).args(["env", "set", "phoenix", "HELLO_HEALTH=fail"]));
    let mut deploying = cli(&sb, &server)
        .args(["deploy", "phoenix", "--image", "rampart/phoenix:r1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "release 2's replicas to start",
        || {
            containers("phoenix")
                .iter()
                .filter(|id| inspect_label(id, "rampart.release").as_deref() == Some("2"))
                .count()
                == 2
        },
    );
    drop(server); // SIGKILL
    let _ = deploying.wait();

    let server = sb.start(&config).unwrap();
    eventually(
        Duration::from_secs(40),
        "release 2's replicas to be removed",
        || {
            let ids = containers("phoenix");
            ids.len() == 2
                && ids
                    .iter()
                    .all(|id| inspect_label(id, "rampart.release").as_deref() == Some("1"))
        },
    );
    let releases = json(cli(&sb, &server).args(["releases", "phoenix"]));
    assert_eq!(releases[0]["number"], 2);
    assert_eq!(releases[0]["status"], "failed");
    assert!(
        releases[0]["reason"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{releases}"
    );
    assert_eq!(releases[1]["status"], "live");
    let client = edge_client(&server, "phoenix.localhost");
    eventually(Duration::from_secs(20), "release 1 to serve again", || {
        let (status, body) = get(&client, &app_url(&server, "phoenix.localhost"));
        status == 200 && body.starts_with("hello from release 1 ")
    });
    let ps = json(cli(&sb, &server).args(["ps", "phoenix"]));
    assert_eq!(ps["live_release"], 1);
    assert!(
        ps["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["serving"] == true),
        "{ps}"
    );

    // A replica removed behind the platform's back is replaced.
    let victim = containers("phoenix")[0].clone();
    ok(cli(&sb, &server).args(["env", "unset", "phoenix", "HELLO_HEALTH"]));
    docker(&["rm", "-f", &victim]);
    eventually(
        Duration::from_secs(40),
        "a healthy replacement replica",
        || {
            let ps = json(cli(&sb, &server).args(["ps", "phoenix"]));
            let replicas = ps["replicas"].as_array().unwrap();
            replicas.len() == 2
                && replicas.iter().all(|r| r["serving"] == true)
                && ps["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["kind"] == "repair")
        },
    );
    assert!(!containers("phoenix").contains(&victim));
    let verify = json(cli(&sb, &server).args(["audit", "verify"]));
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn an_unreachable_engine_is_reported_and_changes_nothing() {
    let sb = sandbox();
    let config = sb.write_config("");
    let mut cmd = sb.command();
    cmd.arg("up")
        .arg("--data-dir")
        .arg(sb.data_dir())
        .arg("--config")
        .arg(&config)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", sb.path().join("no-docker.sock").display()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = Server::spawn_command(cmd, sb.data_dir()).unwrap();
    eventually(Duration::from_secs(10), "the engine warning", || {
        server.output().contains("Docker engine is unreachable")
    });
    ok(cli(&sb, &server).args(["apps", "create", "lonely"]));
    let (code, _, err) = run(cli(&sb, &server).args(["deploy", "lonely", "--image", "anything:1"]));
    assert_ne!(code, 0);
    assert!(err.contains("Docker engine is unreachable"), "{err}");
    let releases = json(cli(&sb, &server).args(["releases", "lonely"]));
    assert_eq!(releases, serde_json::json!([]), "nothing was recorded");
    let (code, _, err) = run(cli(&sb, &server).args(["ps", "lonely"]));
    assert_ne!(code, 0);
    assert!(err.contains("unreachable"), "{err}");
    let verify = json(cli(&sb, &server).args(["audit", "verify"]));
    assert_eq!(verify["ok"], true, "{verify}");
    let (status, out) = server.stop().unwrap();
    assert!(status.success(), "{out}");
}

#[test]
fn a_crashing_replica_is_restarted_and_a_crash_loop_is_recorded() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["crashy".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "crashy"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "crashy", "--path"])
        .arg(&dir));
    let victim = containers("crashy")[0].clone();
    // `logs --follow` keeps printing: the restarted replica's new lines show.
    let mut follow = cli(&sb, &server)
        .args(["logs", "crashy", "--follow", "--tail", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let followed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let followed = followed.clone();
        let stdout = follow.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                followed.lock().unwrap().push_str(&line);
                followed.lock().unwrap().push('\n');
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let client = edge_client(&server, "crashy.localhost");
    let url = app_url(&server, "crashy.localhost");
    let listening = || {
        followed
            .lock()
            .unwrap()
            .matches("listening on port 8080")
            .count()
    };
    for round in 1..=3u64 {
        // A run killed before it prints its first line leaves no line to
        // follow: the engine reports it running as soon as its process
        // starts. So each restarted run is killed only once its line came.
        let restarts_seen = usize::try_from(round - 1).unwrap();
        eventually(
            Duration::from_secs(30),
            "the restarted replica's line",
            || listening() >= restarts_seen,
        );
        // The app's process dies (as if it crashed): kill it from the host.
        // The pid is read together with the running state; a replica that is
        // between runs reports pid 0, which `kill` would take for our own
        // process group.
        let mut pid = 0;
        eventually(Duration::from_secs(30), "the replica to run", || {
            let state = inspect(&victim)["State"].clone();
            pid = state["Pid"].as_i64().unwrap_or(0);
            state["Running"] == true && pid > 1
        });
        assert!(pid > 1);
        let (code, _, err) = run(Command::new("kill").args(["-KILL", &pid.to_string()]));
        assert_eq!(code, 0, "{err}");
        eventually(Duration::from_secs(30), "the engine to restart it", || {
            inspect(&victim)["RestartCount"].as_u64() >= Some(round)
        });
        // The other replica keeps the app up meanwhile.
        let (status, body) = get(&client, &url);
        assert_eq!(status, 200, "{body}");
    }
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while listening() < 3 {
        assert!(
            std::time::Instant::now() < until,
            "the followed logs lack a restart: {}",
            followed.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(1));
    let text = followed.lock().unwrap().clone();
    assert!(text.lines().all(|l| l.starts_with("rampart-")), "{text}");
    assert_eq!(
        text.matches("listening on port 8080").count(),
        3,
        "each restart once, no line twice: {text}"
    );
    assert!(
        follow.try_wait().unwrap().is_none(),
        "--follow keeps running"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    let _ = reader.join();
    eventually(Duration::from_secs(40), "a crash_loop event", || {
        let ps = json(cli(&sb, &server).args(["ps", "crashy"]));
        ps["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "crash_loop")
    });
    // People are told, with the app named.
    let alerts = json(cli(&sb, &server).args(["alerts", "list"]));
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "crash_loop"
                && a["app"] == "crashy"
                && a["severity"] == "critical"),
        "{alerts}"
    );
    eventually(
        Duration::from_secs(30),
        "both replicas serving again",
        || {
            let ps = json(cli(&sb, &server).args(["ps", "crashy"]));
            let replicas = ps["replicas"].as_array().unwrap();
            replicas.len() == 2 && replicas.iter().all(|r| r["serving"] == true)
        },
    );
}

#[test]
fn the_demo_prints_a_curl_line_that_works_as_printed() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["hello".into()]);
    let server = sb.start_with(&sb.write_config(""), &["--demo"]).unwrap();
    eventually(Duration::from_secs(60), "the demo to be live", || {
        server.output().contains("try  curl")
    });
    let out = server.output();
    assert!(!out.contains("could not start"), "{out}");
    assert!(
        out.contains(&server.ca_path().display().to_string()),
        "{out}"
    );
    assert!(
        out.contains(&server.token_file().display().to_string()),
        "{out}"
    );
    let line = out
        .lines()
        .find_map(|l| l.split("try  ").nth(1))
        .unwrap()
        .to_owned();
    let (code, body, err) = run(Command::new("sh").arg("-c").arg(&line));
    assert_eq!(code, 0, "{line}: {err}");
    assert!(body.starts_with("hello from release 1 replica"), "{body}");
    let ps = json(cli(&sb, &server).args(["ps", "hello"]));
    assert_eq!(ps["replicas"].as_array().unwrap().len(), 2, "{ps}");
    // The demo app has its own database (the tests install PostgreSQL).
    let line = out
        .lines()
        .find_map(|l| l.split("write to its database: ").nth(1))
        .unwrap_or_else(|| panic!("no database line: {out}"))
        .to_owned();
    let (code, body, err) = run(Command::new("sh").arg("-c").arg(&line));
    assert_eq!((code, body.as_str()), (0, "1 notes\n"), "{line}: {err}");
}

#[test]
fn custom_domains_get_acme_certificates_and_name_localhost_keeps_working() {
    let pebble = rampart_testkit::Pebble::start().unwrap();
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["shop".into()]);
    let config = sb.write_raw_config(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[auth]\nrequire_mfa = false\n\
         [edge.listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:{}\"\nadmin = \"\"\n\
         [edge.tls]\nacme_directory = \"{}\"\nacme_email = \"ops@example.com\"\nacme_trust = \"{}\"\n",
        pebble.http_port,
        pebble.directory,
        pebble.trust.display()
    ));
    let server = sb.start(&config).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "shop", "--domain", "shop.rampart.test"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "shop", "--path"])
        .arg(&dir));

    let root = pebble.issuing_root().unwrap();
    let public = client_for(root.as_bytes(), "shop.rampart.test", server.edge_addr());
    let url = app_url(&server, "shop.rampart.test");
    eventually(
        Duration::from_secs(60),
        "an ACME certificate for the custom domain",
        || {
            let (status, body) = get(&public, &url);
            status == 200 && body.starts_with("hello from release 1")
        },
    );
    // APP.localhost is served too, with the internal CA.
    let local = edge_client(&server, "shop.localhost");
    let (status, body) = get(&local, &app_url(&server, "shop.localhost"));
    assert_eq!(status, 200, "{body}");
    // And plain HTTP redirects to HTTPS.
    let (code, out, _) = run(Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "--resolve",
        &format!("shop.rampart.test:{}:127.0.0.1", pebble.http_port),
        &format!("http://shop.rampart.test:{}/x", pebble.http_port),
    ]));
    assert_eq!(code, 0);
    assert!(out.starts_with("308 https://shop.rampart.test"), "{out}");

    // An app that serves only its custom domain, and whose health path
    // redirects (Django's `/admin`), still passes its health check: the
    // probe names a host the app serves and counts a 3xx.
    ok(cli(&sb, &server).args([
        "env",
        "set",
        "shop",
        "HELLO_HOSTS=shop.rampart.test",
        "HELLO_HEALTH=redirect",
        "--restart",
    ]));
    let (status, body) = get(&public, &url);
    assert!(
        status == 200 && body.starts_with("hello from release 2"),
        "{status} {body}"
    );
    let (status, _) = get(&local, &app_url(&server, "shop.localhost"));
    assert_eq!(
        status, 400,
        "the app itself refuses a host it does not serve"
    );
}

/// Finding: a 3 KiB build context whose sparse entry declares 2^60 bytes
/// made the context check copy zeros for ever on an async worker; one such
/// request per core froze the API and every app's traffic through the
/// in-process edge. Now the context is refused at once, and the platform
/// keeps answering meanwhile.
#[test]
fn a_sparse_build_context_is_refused_and_freezes_nothing() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["bomb".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "bomb"]));
    let api = server.client(Some(&server.bootstrap_token()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bomb = rampart_testkit::sparse_tar_bomb();
    assert!(bomb.len() <= 4096, "{}", bomb.len());
    let answers = rt.block_on(async {
        // One request per core of this machine, and one more.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let sends = (0..=cores).map(|_| {
            let (api, bomb) = (api.clone(), bomb.clone());
            tokio::spawn(async move {
                tokio::time::timeout(
                    Duration::from_secs(20),
                    api.raw(
                        rampart_client::HttpMethod::POST,
                        "/api/apps/bomb/deploys/build",
                        Some("application/x-tar"),
                        bomb,
                    ),
                )
                .await
            })
        });
        let sends: Vec<_> = sends.collect();
        // The API answers while they are handled.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let health = tokio::time::timeout(Duration::from_secs(10), api.health()).await;
        assert!(
            matches!(health, Ok(Ok(_))),
            "the API stopped answering: {health:?}"
        );
        let mut answers = Vec::new();
        for send in sends {
            answers.push(send.await.unwrap());
        }
        answers
    });
    for answer in answers {
        let (status, body) = answer
            .expect("a sparse context is refused at once, not unpacked")
            .unwrap();
        assert_eq!(status.as_u16(), 400, "{}", String::from_utf8_lossy(&body));
        assert!(
            String::from_utf8_lossy(&body).contains("GNUSparse"),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let releases = json(cli(&sb, &server).args(["releases", "bomb"]));
    assert_eq!(releases.as_array().unwrap().len(), 0, "{releases}");
}

/// Finding: `USER 00`, or a user whose passwd entry has uid 0 under another
/// name, ran the replica as root although the app may not run as root.
#[test]
fn a_root_user_under_another_name_or_number_does_not_run_as_root() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["sneaky".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "sneaky"]));
    for (n, user) in ["toor", "00", "1000", "app:root"].into_iter().enumerate() {
        let dir = context(
            &sb.path().join(format!("ctx-{n}")),
            &format!("COPY passwd /etc/passwd\nCOPY group /etc/group\nUSER {user}\n"),
        );
        std::fs::write(
            dir.join("passwd"),
            "root:x:0:0:root:/:/hello\ntoor:x:0:0::/:/hello\napp:x:1000:1000::/:/hello\n",
        )
        .unwrap();
        std::fs::write(dir.join("group"), "root:x:0:\napp:x:1000:\n").unwrap();
        let release = json(
            cli(&sb, &server)
                .args(["deploy", "sneaky", "--path"])
                .arg(&dir),
        );
        assert_eq!(release["status"], "live", "USER {user}: {release}");
        for id in containers("sneaky") {
            // What the kernel says the replica's processes run as.
            let (code, out, err) = docker(&["top", &id, "-eo", "pid,uid,gid,comm"]);
            assert_eq!(code, 0, "{err}");
            let hello: Vec<&str> = out
                .lines()
                .filter(|l| l.ends_with("hello"))
                .flat_map(|l| l.split_whitespace().skip(1).take(2))
                .collect();
            assert!(!hello.is_empty(), "{out}");
            assert!(
                hello.iter().all(|id| *id != "0" && *id != "root"),
                "USER {user} runs as root: {out}"
            );
        }
    }
}

/// Finding: a viewer, who may not read an app's logs, read its log lines
/// in failed releases' reasons; a developer listed apps not granted to
/// them.
#[test]
fn viewers_read_no_log_lines_and_developers_list_only_their_apps() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["loud".into(), "quiet".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "loud"]));
    ok(cli(&sb, &server).args(["apps", "create", "quiet"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server).args(["apps", "configure", "loud", "--health-timeout", "4"]));
    ok(cli(&sb, &server).args(["env", "set", "loud", "HELLO_HEALTH=fail"]));
    let (code, _, err) = run(cli(&sb, &server)
        .args(["deploy", "loud", "--path"])
        .arg(&dir));
    assert_eq!(code, 1, "{err}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let owner = server.client(Some(&server.bootstrap_token()));
    let token = |role| {
        let made = rt
            .block_on(owner.create_token(&rampart_core::wire::CreateToken {
                name: format!("{role}"),
                role: Some(role),
                app: None,
                expires_in_days: None,
            }))
            .unwrap();
        server.client(Some(&made.token))
    };
    let reason = |client: &rampart_client::Client| {
        rt.block_on(client.releases("loud")).unwrap()[0]
            .reason
            .clone()
            .unwrap()
    };
    let full = reason(&owner);
    assert!(full.contains("last log lines"), "{full}");
    let viewer = token(rampart_core::Role::Viewer);
    let seen = reason(&viewer);
    assert!(seen.contains("did not pass its health check"), "{seen}");
    assert!(
        !seen.contains("last log lines"),
        "a viewer read log lines: {seen}"
    );
    assert!(full.starts_with(seen.split(" (its log lines").next().unwrap()));

    // The owner's developer token has no grants: it lists no app.
    let developer = token(rampart_core::Role::Developer);
    let listed = rt.block_on(developer.apps()).unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(
        rt.block_on(viewer.apps()).unwrap().len(),
        2,
        "viewers read all"
    );
}

/// Finding: a developer could switch an app's hardening off (`allow_root`,
/// `egress`) and take as much of the host as they liked (replicas ×
/// memory × CPU × pids). Those two switches are now owners' and admins'
/// decisions, refused and audited otherwise, and every setting stays under
/// the operator's ceilings in `[apps]`.
#[test]
fn developers_cannot_switch_hardening_off_or_exceed_the_operators_ceilings() {
    let sb = sandbox();
    let server = sb
        .start(&sb.write_config(&format!(
            "{CONFIG}[apps]\nmax_replicas = 4\nmax_memory_mb = 512\n"
        )))
        .unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "tight"]));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let owner = server.client(Some(&server.bootstrap_token()));
    let dev = rt
        .block_on(owner.create_token(&rampart_core::wire::CreateToken {
            name: "dev".into(),
            role: Some(rampart_core::Role::Developer),
            app: Some("tight".into()),
            expires_in_days: None,
        }))
        .unwrap();
    let dev = server.client(Some(&dev.token));
    let patch = |client: &rampart_client::Client, body: &str| {
        let (status, text) = rt
            .block_on(client.raw(
                rampart_client::HttpMethod::PATCH,
                "/api/apps/tight/settings",
                Some("application/json"),
                body.as_bytes().to_vec(),
            ))
            .unwrap();
        (status.as_u16(), String::from_utf8_lossy(&text).into_owned())
    };
    for body in [
        r#"{"allow_root": true}"#,
        r#"{"egress": true}"#,
        r#"{"placement": ["node.role == manager"]}"#,
    ] {
        let (status, text) = patch(&dev, body);
        assert_eq!(status, 403, "{body}: {text}");
    }
    // On one engine there is nowhere to place: refused for owners too.
    let (status, text) = patch(&owner, r#"{"placement": ["node.role == manager"]}"#);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("runtime.backend"), "{text}");
    assert_eq!(
        patch(&dev, r#"{"memory_mb": 384}"#).0,
        200,
        "within the ceiling"
    );
    for (body, key) in [
        (r#"{"replicas": 5}"#, "apps.max_replicas"),
        (r#"{"memory_mb": 4096}"#, "apps.max_memory_mb"),
    ] {
        for client in [&dev, &owner] {
            let (status, text) = patch(client, body);
            assert_eq!(status, 400, "{body}: {text}");
            assert!(text.contains(key), "{text}");
        }
    }
    let settings = rt.block_on(owner.settings("tight")).unwrap();
    assert_eq!(
        (settings.allow_root, settings.egress, settings.memory_mb),
        (false, false, 384),
        "{settings:?}"
    );
    // The owner may decide, and the refusal and the decision are on record.
    assert_eq!(patch(&owner, r#"{"egress": true}"#).0, 200);
    let audit = ok(cli(&sb, &server).args(["audit", "list"]));
    assert!(audit.contains("denied"), "{audit}");
}

/// Finding: a developer could run or build from another app's image
/// (`deploy --image rampart/other:rN`, its id, or `FROM`/`COPY --from=` of
/// it in a Dockerfile) and read whatever it holds. An app now runs and
/// builds only from its own images and those the operator allows.
#[test]
fn an_app_cannot_run_or_build_from_another_apps_image() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["victim".into(), "thief".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "victim"]));
    ok(cli(&sb, &server).args(["apps", "create", "thief"]));
    ok(cli(&sb, &server)
        .args(["deploy", "victim", "--path"])
        .arg(context(&sb.path().join("victim"), "ENV SECRET=victims\n")));
    let (_, id, _) = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "rampart/victim:r1",
    ]);
    let refused = |args: &[&str]| {
        let (code, out, err) = run(cli(&sb, &server).args(args));
        assert_ne!(code, 0, "{args:?} was let through: {out}");
        assert!(err.contains("may not use image"), "{args:?}: {err}");
    };
    refused(&["deploy", "thief", "--image", "rampart/victim:r1"]);
    refused(&["deploy", "thief", "--image", id.trim()]);
    // An id names any image, the unnamed layers another app's build left
    // behind among them (they are no release's image).
    let (_, parent, _) = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Parent}}",
        "rampart/victim:r1",
    ]);
    let parent = parent.trim();
    assert!(
        parent.starts_with("sha256:"),
        "the builder keeps its layers: {parent:?}"
    );
    refused(&["deploy", "thief", "--image", parent]);
    // A prefix of an id names any image, unnamed build layers included.
    let short = &id.trim()["sha256:".len().."sha256:".len() + 12];
    refused(&["deploy", "thief", "--image", short]);
    let dir = context(&sb.path().join("thief-short"), "");
    std::fs::write(dir.join("Dockerfile"), format!("FROM {short}\n")).unwrap();
    refused(&["deploy", "thief", "--path", dir.to_str().unwrap()]);
    for (n, dockerfile) in [
        "FROM rampart/victim:r1\n",
        "FROM scratch\nCOPY --from=rampart/victim:r1 /hello /hello\nENTRYPOINT [\"/hello\"]\n",
        "FROM scratch AS base\nCOPY hello /hello\nONBUILD COPY --from=rampart/victim:r1 /a /a\n",
    ]
    .into_iter()
    .enumerate()
    {
        let dir = context(&sb.path().join(format!("thief-{n}")), "");
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        let path = dir.to_str().unwrap().to_owned();
        refused(&["deploy", "thief", "--path", &path]);
    }
    let releases = json(cli(&sb, &server).args(["releases", "thief"]));
    assert_eq!(releases.as_array().unwrap().len(), 0, "{releases}");
    // Its own build, and then its own image, are fine.
    ok(cli(&sb, &server)
        .args(["deploy", "thief", "--path"])
        .arg(context(&sb.path().join("thief-own"), "")));
    ok(cli(&sb, &server).args(["deploy", "thief", "--image", "rampart/thief:r1"]));
}

/// Same class as the findings: text an app controls (its log lines, and the
/// failure reasons that quote them) reached the terminal of whoever read
/// it as it was, so an app could send escape sequences that rewrite the
/// screen, the window title or the clipboard of a developer or an admin.
#[test]
fn an_apps_escape_sequences_never_reach_a_readers_terminal() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["noisy".into()]);
    let server = sb.start(&sb.write_config(CONFIG)).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "noisy"]));
    let escape = "\u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{1b}[2Jpwned";
    ok(cli(&sb, &server).args(["env", "set", "noisy", &format!("HELLO_SAY={escape}")]));
    ok(cli(&sb, &server)
        .args(["deploy", "noisy", "--path"])
        .arg(context(&sb.path().join("ctx"), "")));
    let mut logs = String::new();
    eventually(Duration::from_secs(10), "the line in the log", || {
        logs = ok(cli(&sb, &server).args(["logs", "noisy"]));
        logs.contains("pwned")
    });
    assert!(
        !logs.contains('\u{1b}') && !logs.contains('\u{7}'),
        "{logs:?}"
    );
    assert!(logs.contains("\\u{1b}]52;c;"), "shown escaped: {logs:?}");
    // And through a failure reason that quotes the log.
    ok(cli(&sb, &server).args(["apps", "configure", "noisy", "--health-timeout", "3"]));
    ok(cli(&sb, &server).args(["env", "set", "noisy", "HELLO_HEALTH=fail"]));
    let (code, out, err) =
        run(cli(&sb, &server).args(["deploy", "noisy", "--image", "rampart/noisy:r1"]));
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("pwned"), "{err}");
    assert!(
        !err.contains('\u{1b}') && !out.contains('\u{1b}'),
        "{err:?}"
    );
}
