//! Real apps through the real binary, the Docker engine and the host's
//! PostgreSQL: the app manifest and the release phase that runs once per
//! deploy, before any new replica starts.

mod common;

use std::net::TcpListener;

use common::*;
use rampart_testkit::{Sandbox, Server, run};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A platform with a managed PostgreSQL cluster on a free port.
fn start(sb: &Sandbox) -> Server {
    let config = sb.write_config(&format!("{CONFIG}[postgres]\nport = {}\n", free_port()));
    sb.start(&config).unwrap()
}

/// A build context of the sample app with `manifest` as its
/// `rampart.app.toml`.
fn context_with(sb: &Sandbox, name: &str, manifest: &str) -> std::path::PathBuf {
    let dir = context(&sb.path().join(name), "");
    std::fs::write(dir.join("rampart.app.toml"), manifest).unwrap();
    dir
}

/// Containers of one-off tasks left on the engine for `app`.
fn tasks(app: &str) -> Vec<String> {
    let (_, out, _) = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=rampart.app={app}"),
        "--filter",
        "label=rampart.task",
    ]);
    out.lines().map(str::to_owned).collect()
}

fn deploy(sb: &Sandbox, server: &Server, app: &str, dir: &std::path::Path) -> (i32, String) {
    let (code, _, err) = run(cli(sb, server).args(["deploy", app, "--path"]).arg(dir));
    (code, err)
}

#[test]
fn the_release_phase_runs_once_per_deploy_before_any_replica() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["phased".into()]);
    let server = start(&sb);
    ok_cli(&sb, &server, &["apps", "create", "phased", "--with-db"]);
    ok_cli(&sb, &server, &["scale", "phased", "--replicas", "5"]);
    let client = edge_client(&server, "phased.localhost");
    let notes = || {
        get(
            &client,
            &format!("{}notes", app_url(&server, "phased.localhost")),
        )
    };

    // Five replicas, one release phase per deploy; it finishes before the
    // first replica of the release starts.
    let migrate = context_with(&sb, "migrate", "release = \"note 'migrated once'\"\n");
    for n in 1..=2 {
        let (code, err) = deploy(&sb, &server, "phased", &migrate);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("release phase: running note migrated once"),
            "{err}"
        );
        assert!(err.contains("  > hello: noted \"migrated once\""), "{err}");
        let done = err.find("release phase: done").expect("the phase finished");
        let first_replica = err.find("started replica").expect("replicas started");
        assert!(done < first_replica, "{err}");
        assert_eq!(notes(), (200, format!("{n} notes\n")), "one run per deploy");
    }
    assert_eq!(containers("phased").len(), 5);
    assert!(
        tasks("phased").is_empty(),
        "the task's container is removed"
    );
    let releases = json(cli(&sb, &server).args(["releases", "phased"]));
    assert_eq!(
        releases[0]["release_command"]["argv"],
        serde_json::json!(["note", "migrated once"])
    );

    // A release command that fails stops the deploy: the live release keeps
    // serving, no replica of the failed one ever started, and its output is
    // the release's reason.
    let failing = context_with(&sb, "failing", "release = \"exit 4 'no such column'\"\n");
    let (code, err) = deploy(&sb, &server, "phased", &failing);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("release 3 of phased failed; release 2 keeps serving")
            && err.contains("the release command exited with status 4")
            && err.contains("no such column"),
        "{err}"
    );
    assert!(!err.contains("started replica"), "{err}");
    let releases = json(cli(&sb, &server).args(["releases", "phased"]));
    assert_eq!(releases[0]["status"], "failed");
    assert!(
        releases[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no such column"),
        "{releases}"
    );
    assert_eq!(releases[1]["status"], "live");
    assert_eq!(notes(), (200, "2 notes\n".into()));
    assert!(
        containers("phased")
            .iter()
            .all(|id| inspect_label(id, "rampart.release").as_deref() == Some("2")),
        "only release 2 runs"
    );

    // One that runs past its deadline is stopped, and fails the deploy too.
    let slow = context_with(
        &sb,
        "slow",
        "release = [\"sleep\", \"120\"]\nrelease_timeout = \"2s\"\n",
    );
    let (code, err) = deploy(&sb, &server, "phased", &slow);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the release command did not finish within 2 s and was stopped"),
        "{err}"
    );
    assert!(tasks("phased").is_empty(), "the stopped task is removed");
    assert_eq!(notes(), (200, "2 notes\n".into()));

    // A broken manifest is refused before anything is built or recorded.
    let before = json(cli(&sb, &server).args(["releases", "phased"]));
    for (manifest, expected) in [
        (
            "relase = \"note x\"\n",
            "rampart.app.toml: line 1: relase: unknown field `relase`",
        ),
        (
            "release = \"note 'open\"\n",
            "rampart.app.toml: release: its quotes",
        ),
        (
            "release = \"\"\n",
            "rampart.app.toml: release: the command is empty",
        ),
    ] {
        let dir = context_with(&sb, "broken", manifest);
        let (code, err) = deploy(&sb, &server, "phased", &dir);
        assert_ne!(code, 0);
        assert!(err.contains(expected), "{manifest:?}: {err}");
    }
    assert_eq!(json(cli(&sb, &server).args(["releases", "phased"])), before);
    assert_eq!(notes(), (200, "2 notes\n".into()));
}

fn ok_cli(sb: &Sandbox, server: &Server, args: &[&str]) -> String {
    rampart_testkit::ok(cli(sb, server).args(args))
}

#[test]
fn one_off_commands_run_in_the_apps_environment_and_pass_their_exit_code() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["oneoff".into()]);
    let server = start(&sb);
    ok_cli(&sb, &server, &["apps", "create", "oneoff", "--with-db"]);
    ok_cli(&sb, &server, &["scale", "oneoff", "--replicas", "1"]);
    ok_cli(
        &sb,
        &server,
        &["env", "set", "oneoff", "SECRET_TOKEN=hunter2-value"],
    );

    // Nothing to run in before the first deploy.
    let (code, _, err) = run(cli(&sb, &server).args(["run", "oneoff", "--", "note", "x"]));
    assert_ne!(code, 0);
    assert!(err.contains("has no live release"), "{err}");

    let dir = context(&sb.path().join("ctx"), "");
    let (code, err) = deploy(&sb, &server, "oneoff", &dir);
    assert_eq!(code, 0, "{err}");

    // The command reaches the app's own database, with its variables.
    let (code, out, err) = run(cli(&sb, &server).args(["run", "oneoff", "--", "note", "by hand"]));
    assert_eq!(
        (code, out.trim()),
        (0, "hello: noted \"by hand\"; 1 notes"),
        "{err}"
    );
    let client = edge_client(&server, "oneoff.localhost");
    let url = format!("{}notes", app_url(&server, "oneoff.localhost"));
    assert_eq!(get(&client, &url), (200, "1 notes\n".into()));

    // Variables for one run reach it over the app's, and are not recorded.
    let out = ok_cli(
        &sb,
        &server,
        &[
            "run",
            "oneoff",
            "-e",
            "SECRET_TOKEN=run-only-value",
            "--",
            "env",
            "SECRET_TOKEN",
        ],
    );
    assert_eq!(out.trim(), "run-only-value");
    let out = ok_cli(
        &sb,
        &server,
        &["run", "oneoff", "--", "env", "SECRET_TOKEN"],
    );
    assert_eq!(out.trim(), "hunter2-value");

    // Its exit status is this process's; a command past its deadline is
    // stopped and exits 124.
    let (code, _, _) = run(cli(&sb, &server).args(["run", "oneoff", "--", "exit", "7", "oops"]));
    assert_eq!(code, 7);
    let (code, _, err) =
        run(cli(&sb, &server).args(["run", "oneoff", "--timeout", "1s", "--", "sleep", "30"]));
    assert_eq!(code, 124, "{err}");
    assert!(err.contains("deadline"), "{err}");
    assert!(tasks("oneoff").is_empty(), "no one-off container is left");
    assert_eq!(containers("oneoff").len(), 1, "replicas are untouched");

    // The audit log has each command line and outcome, never a value from
    // the environment.
    let audit = ok_cli(&sb, &server, &["audit", "list", "--json"]);
    assert!(
        audit.contains("apps/oneoff/releases/1/run: note 'by hand'"),
        "{audit}"
    );
    assert!(
        audit.contains("apps/oneoff/releases/1/run/exit/0"),
        "{audit}"
    );
    assert!(
        audit.contains("apps/oneoff/releases/1/run/exit/7"),
        "{audit}"
    );
    assert!(
        audit.contains("apps/oneoff/releases/1/run/timed-out"),
        "{audit}"
    );
    assert!(!audit.contains("hunter2-value"), "{audit}");
    assert!(!audit.contains("run-only-value"), "{audit}");

    // Bad requests are refused before anything runs; viewers may not run.
    let api = server.client(Some(&server.bootstrap_token()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let post = |api: &rampart_client::Client, body: &[u8]| {
        rt.block_on(api.raw(
            rampart_client::HttpMethod::POST,
            "/api/apps/oneoff/runs",
            Some("application/json"),
            body.to_vec(),
        ))
        .unwrap()
        .0
        .as_u16()
    };
    for (body, status) in [
        (&b"{\"argv\": []}"[..], 400),
        (b"{\"argv\": [\"\"]}", 400),
        (b"{\"argv\": [\"a\\u0000b\"]}", 400),
        (b"{\"argv\": \"note x\"}", 400),
        (b"{\"argv\": [\"note\"], \"timeout_secs\": 0}", 400),
        (b"{\"argv\": [\"note\"], \"release\": 99}", 404),
        (b"{\"argv\": [\"note\"], \"as_root\": true}", 400),
        (b"{\"argv\": [\"note\"], \"env\": {\"1BAD\": \"x\"}}", 400),
        (
            b"{\"argv\": [\"note\"], \"env\": {\"A\": \"a\\u0000b\"}}",
            400,
        ),
        (b"not json", 400),
    ] {
        assert_eq!(
            post(&api, body),
            status,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let created: serde_json::Value = serde_json::from_str(&ok_cli(
        &sb,
        &server,
        &["tokens", "create", "watcher", "--role", "viewer", "--json"],
    ))
    .unwrap();
    let viewer = server.client(created["token"].as_str());
    assert_eq!(post(&viewer, b"{\"argv\": [\"note\", \"viewer\"]}"), 403);
    assert_eq!(get(&client, &url), (200, "1 notes\n".into()), "nothing ran");
}
