//! Real apps through the real binary, the Docker engine and the host's
//! PostgreSQL: the app manifest and the release phase that runs once per
//! deploy, before any new replica starts; processes beside web, one-off
//! commands and scheduled jobs; and a real Django project deployed end to
//! end.
//!
//! Long by choice: every file under `tests/` is a test binary of its own,
//! linked on its own, so an area's tests share one file and one link
//! rather than paying for a binary each.

mod common;

use std::process::Command;

use common::*;
use rampart_testkit::{Sandbox, Server, free_port, run};

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

/// Runs the CLI with `args` on a terminal of 132 by 43 (a pseudo-terminal
/// `script` makes), typing `input`; its exit status and what the terminal
/// showed.
fn on_terminal(sb: &Sandbox, server: &Server, args: &[&str], input: &str) -> (i32, String) {
    use std::io::Write;
    let template = cli(sb, server);
    let line = shlex::try_join(
        std::iter::once(template.get_program().to_str().unwrap()).chain(args.iter().copied()),
    )
    .unwrap();
    let mut cmd = Command::new("script");
    cmd.args([
        "-qec",
        &format!("stty cols 132 rows 43; exec {line}"),
        "/dev/null",
    ]);
    for (name, value) in template.get_envs() {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
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

    // From a terminal the command runs on one: what is typed reaches it,
    // its exit status comes back, and the run is audited as one on a
    // terminal.
    let (code, shown) = on_terminal(
        &sb,
        &server,
        &["run", "oneoff", "--", "repl"],
        "first line\nexit 5\n",
    );
    assert_eq!(code, 5, "{shown}");
    assert!(shown.contains("hello: tty yes"), "{shown}");
    assert!(shown.contains("hello: you said \"first line\""), "{shown}");
    // --no-tty runs it without one, reading nothing.
    let (code, shown) = on_terminal(
        &sb,
        &server,
        &["run", "--no-tty", "oneoff", "--", "repl"],
        "exit 5\n",
    );
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("hello: tty no"), "{shown}");
    assert!(shown.contains("hello: end of input"), "{shown}");
    let audit = ok_cli(&sb, &server, &["audit", "list", "--json"]);
    assert!(
        audit.contains("apps/oneoff/releases/1/run (tty): repl"),
        "{audit}"
    );
    assert!(
        audit.contains("apps/oneoff/releases/1/run (tty)/exit/5"),
        "{audit}"
    );
    assert!(tasks("oneoff").is_empty(), "no one-off container is left");

    // At most four one-off commands or scheduled runs of an app go at
    // once: a developer's token cannot fill the machine with long runs.
    let sleepers: Vec<_> = (0..4)
        .map(|_| {
            cli(&sb, &server)
                .args(["run", "oneoff", "--timeout", "20s", "--", "sleep", "60"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    eventually(
        std::time::Duration::from_secs(30),
        "four runs going",
        || tasks("oneoff").len() == 4,
    );
    let (code, _, err) = run(cli(&sb, &server).args(["run", "oneoff", "--", "note", "fifth"]));
    assert_ne!(code, 0);
    assert!(err.contains("already runs 4 one-off commands"), "{err}");
    for mut sleeper in sleepers {
        assert_eq!(sleeper.wait().unwrap().code(), Some(124));
    }
    assert!(tasks("oneoff").is_empty());

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
        // A terminal's size comes only with an upgrade to a terminal.
        (
            b"{\"argv\": [\"repl\"], \"tty\": {\"cols\": 80, \"rows\": 24}}",
            400,
        ),
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

    // The same over an upgrade to a terminal: a viewer is refused, a size
    // out of bounds is refused, and bytes that are not frames end the
    // command's input rather than reaching it.
    let on_tty = |api: &rampart_client::Client, argv: &[&str], cols: u16| {
        let request = rampart_core::wire::RunCommand {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            release: None,
            timeout_secs: Some(30),
            env: Default::default(),
            tty: Some(rampart_core::wire::TerminalSize { cols, rows: 24 }),
        };
        rt.block_on(api.run_terminal("oneoff", &request))
    };
    let refused = on_tty(&viewer, &["note", "viewer"], 80).unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    let refused = on_tty(&api, &["note", "wide"], 0).unwrap_err();
    assert_eq!(refused.status(), Some(400), "{refused}");
    let refused = on_tty(&api, &["note", "wide"], 1001).unwrap_err();
    assert_eq!(refused.status(), Some(400), "{refused}");
    let connection = on_tty(&api, &["repl"], 80).unwrap();
    let (early, shown) = rt.block_on(async move {
        use rampart_core::terminal::{Decoder, Frame};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut connection = connection;
        let mut decoder = Decoder::default();
        let mut frames = Vec::new();
        let mut printed = String::new();
        let mut buf = vec![0u8; 4096];
        let mut bytes = Vec::new();
        Frame::Input(b"note from a frame\nraw\n".to_vec()).encode(&mut bytes);
        connection.write_all(&bytes).await.unwrap();
        // What the command prints arrives while it runs, whatever its bytes.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !printed.contains("after raw") && std::time::Instant::now() < deadline {
            let Ok(Ok(n)) =
                tokio::time::timeout(std::time::Duration::from_secs(1), connection.read(&mut buf))
                    .await
            else {
                continue;
            };
            if n == 0 {
                break;
            }
            decoder.extend(&buf[..n]);
            while let Some(frame) = decoder.next_frame().unwrap() {
                if let Frame::Output(out) = &frame {
                    printed.push_str(&String::from_utf8_lossy(out));
                }
                frames.push(frame);
            }
        }
        let early = printed.clone();
        connection
            .write_all(b"\x09garbage that is no frame")
            .await
            .unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            connection.read_to_end(&mut rest),
        )
        .await
        .expect("the run ends")
        .unwrap();
        decoder.extend(&rest);
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame);
        }
        (early, frames)
    });
    // Output that looks like the engine's multiplexed stream (a header
    // announcing 4 GiB) is passed on as it is, while the command runs.
    assert!(early.contains("after raw"), "{early}");
    assert!(early.contains("you said \"note from a frame\""), "{early}");
    let printed: Vec<u8> = shown
        .iter()
        .filter_map(|f| match f {
            rampart_core::terminal::Frame::Output(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let printed = String::from_utf8_lossy(&printed);
    assert!(printed.contains("hello: end of input"), "{printed}");
    assert!(!printed.contains("garbage"), "{printed}");
    assert_eq!(
        shown.last(),
        Some(&rampart_core::terminal::Frame::Exited(0)),
        "{shown:?}"
    );
    assert_eq!(get(&client, &url), (200, "1 notes\n".into()), "nothing ran");
}

/// The example Django project (`examples/django`), built FROM the Python
/// base image `scripts/python-base-image` makes from Debian's packages.
const DJANGO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/django");
const PYTHON_BASE: &str = "local/python-django:bookworm";

fn django_context(sb: &Sandbox, name: &str, manifest: Option<&str>) -> std::path::PathBuf {
    let dir = sb.path().join(name);
    let (code, _, err) = run(Command::new("cp").arg("-r").arg(DJANGO).arg(&dir));
    assert_eq!(code, 0, "{err}");
    if let Some(manifest) = manifest {
        std::fs::write(dir.join("rampart.app.toml"), manifest).unwrap();
    }
    dir
}

/// `name=value` of each cookie a response sets.
fn cookies(response: &reqwest::blocking::Response) -> Vec<(String, String)> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn a_django_project_deploys_with_no_glue() {
    let (code, _, _) = docker(&["image", "inspect", PYTHON_BASE]);
    assert_eq!(
        code, 0,
        "the image {PYTHON_BASE} is missing: run scripts/python-base-image (scripts/test does)"
    );
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["blog".into()]);
    let server = start(&sb);
    ok_cli(&sb, &server, &["apps", "create", "blog", "--with-db"]);
    ok_cli(
        &sb,
        &server,
        &[
            "env",
            "set",
            "blog",
            "DJANGO_SECRET_KEY=a-long-random-test-key-0123456789abcdef",
        ],
    );
    ok_cli(
        &sb,
        &server,
        &["apps", "configure", "blog", "--health-path", "/admin/"],
    );

    // The release phase migrates once, with two replicas and with five.
    let project = django_context(&sb, "django", None);
    let (code, err) = deploy(&sb, &server, "blog", &project);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.matches("release phase: running python3 manage.py migrate --noinput")
            .count(),
        1,
        "{err}"
    );
    assert_eq!(
        err.matches("Applying board.0001_initial... OK").count(),
        1,
        "{err}"
    );
    assert_eq!(containers("blog").len(), 3, "two web replicas and a worker");
    ok_cli(&sb, &server, &["scale", "blog", "--replicas", "5"]);
    let (code, err) = deploy(&sb, &server, "blog", &project);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("No migrations to apply.").count(), 1, "{err}");
    assert_eq!(containers("blog").len(), 6);
    ok_cli(&sb, &server, &["scale", "blog", "--replicas", "2"]);

    let host = "blog.localhost";
    let base = app_url(&server, host);
    let client = edge_client(&server, host);
    assert_eq!(get(&client, &base), (200, "0 notes\n".into()));

    // A one-off command makes the superuser; its exit code comes back.
    let admin = |extra: &[&str]| {
        let mut cmd = cli(&sb, &server);
        cmd.args([
            "run",
            "blog",
            "-e",
            "DJANGO_SUPERUSER_PASSWORD=correct-horse-battery",
            "--",
        ])
        .args(["python3", "manage.py", "createsuperuser", "--noinput"])
        .args(["--username", "admin", "--email", "admin@example.com"])
        .args(extra);
        run(&mut cmd)
    };
    let (code, out, err) = admin(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Superuser created successfully."), "{out}");
    let (code, out, err) = admin(&[]);
    assert_eq!(code, 1, "a second one fails and says so: {out}{err}");
    assert!(
        out.contains("already taken") || err.contains("already taken"),
        "{out}{err}"
    );

    // `manage.py shell` runs on the caller's terminal, at its size.
    let (code, shown) = on_terminal(
        &sb,
        &server,
        &["run", "blog", "--", "python3", "manage.py", "shell"],
        "import os, sys\nprint('size', tuple(os.get_terminal_size()), sys.stdin.isatty())\nsys.exit(4)\n",
    );
    assert_eq!(code, 4, "{shown}");
    assert!(shown.contains("size (132, 43) True"), "{shown}");

    // The admin login works over the edge, CSRF and all.
    let no_redirects = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .resolve(host, server.edge_addr())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let login_url = format!("{base}admin/login/");
    let page = no_redirects.get(&login_url).send().unwrap();
    assert_eq!(page.status(), 200);
    let csrf_cookie = cookies(&page)
        .into_iter()
        .find(|(k, _)| k == "csrftoken")
        .expect("a CSRF cookie")
        .1;
    let html = page.text().unwrap();
    let token = html
        .split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field")
        .to_owned();
    let post_login = |password: &str| {
        no_redirects
            .post(&login_url)
            .header(reqwest::header::COOKIE, format!("csrftoken={csrf_cookie}"))
            .header(reqwest::header::REFERER, &login_url)
            .form(&[
                ("csrfmiddlewaretoken", token.as_str()),
                ("username", "admin"),
                ("password", password),
                ("next", "/admin/"),
            ])
            .send()
            .unwrap()
    };
    let refused = post_login("wrong-password");
    assert_eq!(
        refused.status(),
        200,
        "a wrong password shows the form again"
    );
    let signed_in = post_login("correct-horse-battery");
    assert_eq!(signed_in.status(), 302);
    let session = cookies(&signed_in)
        .into_iter()
        .find(|(k, _)| k == "sessionid")
        .expect("a session")
        .1;
    let dashboard = no_redirects
        .get(format!("{base}admin/"))
        .header(reqwest::header::COOKIE, format!("sessionid={session}"))
        .send()
        .unwrap();
    assert_eq!(dashboard.status(), 200);
    assert!(dashboard.text().unwrap().contains("Site administration"));
    let forged = no_redirects
        .post(&login_url)
        .form(&[("username", "admin"), ("password", "correct-horse-battery")])
        .send()
        .unwrap();
    assert_eq!(forged.status(), 403, "no CSRF token, no login");

    // Static files: hashed names, cached for a year, compressed.
    let css = html
        .split("/static/admin/css/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a stylesheet");
    assert!(css.contains('.') && css.len() > "base.css".len(), "{css}");
    let sheet = no_redirects
        .get(format!("{base}static/admin/css/{css}"))
        .header(reqwest::header::ACCEPT_ENCODING, "gzip")
        .send()
        .unwrap();
    assert_eq!(sheet.status(), 200);
    let header = |name: &str| {
        sheet
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        header("cache-control").contains("immutable"),
        "{:?}",
        sheet.headers()
    );
    assert!(
        header("cache-control").contains("max-age=315360000"),
        "{:?}",
        sheet.headers()
    );
    assert_eq!(header("content-encoding"), "gzip");
    assert!(header("etag").starts_with('"'), "{:?}", sheet.headers());

    // The worker process takes the jobs the web process queues in the
    // database.
    let queued = client
        .post(format!("{base}jobs"))
        .body("shout")
        .send()
        .unwrap();
    assert_eq!(queued.status(), 200);
    eventually(
        std::time::Duration::from_secs(30),
        "the worker to do the job",
        || get(&client, &format!("{base}jobs")).1.contains("\"SHOUT\""),
    );

    // Scheduled jobs run the project's own management commands; a failing
    // one is recorded with Django's message.
    let job = |args: &[&str]| {
        let mut all = vec!["cron", "add", "blog", "every 10s", "--json", "--"];
        all.extend_from_slice(args);
        let added: serde_json::Value = serde_json::from_str(&ok_cli(&sb, &server, &all)).unwrap();
        added["id"].as_str().unwrap().to_owned()
    };
    let report = job(&["python3", "manage.py", "report"]);
    let broken_report = job(&["python3", "manage.py", "report", "--fail"]);
    eventually(
        std::time::Duration::from_secs(60),
        "the reports to run",
        || {
            let runs = cron_runs(&sb, &server, "blog");
            runs.iter()
                .any(|r| r["job_id"] == report.as_str() && r["outcome"] == "ok")
                && runs.iter().any(|r| {
                    r["job_id"] == broken_report.as_str()
                        && r["outcome"] == "failed"
                        && r["detail"]
                            .as_str()
                            .unwrap_or("")
                            .contains("report failed as asked")
                })
        },
    );
    ok_cli(&sb, &server, &["cron", "remove", "blog", &report]);
    ok_cli(&sb, &server, &["cron", "remove", "blog", &broken_report]);
    // The nightly job its manifest declares is there without a command.
    let listed = json(cli(&sb, &server).args(["cron", "list", "blog"]));
    assert_eq!(
        listed,
        serde_json::json!([{
            "id": listed[0]["id"],
            "app": "blog",
            "schedule": "30 3 * * *",
            "argv": ["python3", "manage.py", "clearsessions"],
            "timeout_secs": 600,
            "next_run_at": listed[0]["next_run_at"],
            "created_by": listed[0]["created_by"],
            "created_at": listed[0]["created_at"],
            "source": "manifest",
        }]),
    );
    assert!(get(&client, &base).1.ends_with("notes\n"));

    // A media upload survives a redeploy.
    let photo = b"\x89PNG a photo, byte for byte \x00\x01";
    let stored = client
        .put(format!("{base}media/photo.png"))
        .body(photo.to_vec())
        .send()
        .unwrap();
    assert_eq!(stored.status(), 200);
    ok_cli(&sb, &server, &["restart", "blog"]);
    let back = client.get(format!("{base}media/photo.png")).send().unwrap();
    assert_eq!(back.status(), 200);
    assert_eq!(back.bytes().unwrap().as_ref(), photo);

    // A release command that fails leaves the live release serving.
    let broken = django_context(
        &sb,
        "broken",
        Some("release = \"python3 manage.py migrate board 9999\"\n"),
    );
    let (code, err) = deploy(&sb, &server, "blog", &broken);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the release command exited with status 1"),
        "{err}"
    );
    assert!(err.contains("keeps serving"), "{err}");
    assert_eq!(get(&client, &base).0, 200);

    // Ten redeploys under load: no request fails.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, stop, base) = (client.clone(), stop.clone(), base.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match get(&client, &base) {
                    (200, _) => ok += 1,
                    other => failed.push(other),
                }
            }
            (ok, failed)
        })
    };
    let live = json(cli(&sb, &server).args(["releases", "blog"]))
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "live")
        .map(|r| r["image"].as_str().unwrap().to_owned())
        .unwrap();
    for _ in 0..10 {
        ok_cli(&sb, &server, &["deploy", "blog", "--image", &live]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (served, failed) = load.join().unwrap();
    assert!(served > 50, "only {served} requests were served");
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        served as usize + failed.len()
    );
}

/// The process each of the app's replicas runs, by `rampart ps --json`.
fn processes(sb: &Sandbox, server: &Server, app: &str) -> Vec<(String, u64, String)> {
    let status = json(cli(sb, server).args(["ps", app]));
    let mut out: Vec<(String, u64, String)> = status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["process"].as_str().unwrap().to_owned(),
                r["release"].as_u64().unwrap_or(0),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn processes_beside_web_run_without_traffic_and_scale_on_their_own() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["crew".into()]);
    let server = start(&sb);
    ok_cli(&sb, &server, &["apps", "create", "crew"]);
    ok_cli(&sb, &server, &["scale", "crew", "web=1"]);
    let manifest = "[processes]\nworker = \"sleep 100000\"\n";
    let dir = context_with(&sb, "crew", manifest);
    let (code, err) = deploy(&sb, &server, "crew", &dir);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("started worker replica"), "{err}");
    let running = |p: &str, r: u64| (p.to_owned(), r, "running".to_owned());
    assert_eq!(
        processes(&sb, &server, "crew"),
        [running("web", 1), running("worker", 1)]
    );
    let status = json(cli(&sb, &server).args(["ps", "crew"]));
    let worker = status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["process"] == "worker")
        .unwrap()
        .clone();
    assert_eq!(worker["serving"], false, "a worker gets no traffic");
    assert_eq!(status["desired_processes"]["worker"], 1);

    // Scaling one process leaves the other alone.
    ok_cli(&sb, &server, &["scale", "crew", "worker=3"]);
    assert_eq!(
        processes(&sb, &server, "crew"),
        [
            running("web", 1),
            running("worker", 1),
            running("worker", 1),
            running("worker", 1)
        ]
    );
    ok_cli(&sb, &server, &["scale", "crew", "worker=1", "web=2"]);
    assert_eq!(
        processes(&sb, &server, "crew"),
        [running("web", 1), running("web", 1), running("worker", 1)]
    );

    // A redeploy replaces the workers with the new release's; a worker
    // killed from outside comes back.
    let (code, err) = deploy(&sb, &server, "crew", &dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        processes(&sb, &server, "crew"),
        [running("web", 2), running("web", 2), running("worker", 2)]
    );
    let worker_id = json(cli(&sb, &server).args(["ps", "crew"]))["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["process"] == "worker")
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    docker(&["kill", &worker_id]);
    eventually(
        std::time::Duration::from_secs(30),
        "the worker back",
        || processes(&sb, &server, "crew").contains(&running("worker", 2)),
    );

    // A process that exits at once fails the deploy; release 2 keeps
    // serving with its worker.
    let broken = context_with(
        &sb,
        "broken",
        "[processes]\nworker = \"exit 2 'no queue'\"\n",
    );
    let (code, err) = deploy(&sb, &server, "crew", &broken);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("exited with status 2") && err.contains("release 2 keeps serving"),
        "{err}"
    );
    assert!(err.contains("no queue"), "{err}");
    assert_eq!(
        processes(&sb, &server, "crew"),
        [running("web", 2), running("web", 2), running("worker", 2)]
    );

    // A manifest whose processes would take the app past the operator's
    // replica ceiling is refused before anything is built.
    let crowded: String = (1..=7)
        .map(|i| format!("p{i} = \"sleep 1000\"\n"))
        .collect();
    let crowded = context_with(&sb, "crowded", &format!("[processes]\n{crowded}"));
    let (code, err) = deploy(&sb, &server, "crew", &crowded);
    assert_ne!(code, 0);
    assert!(
        err.contains("together are above the operator's ceiling"),
        "{err}"
    );

    // Bad counts are refused and change nothing.
    for args in [
        &["scale", "crew", "Worker=1"][..],
        &["scale", "crew", "worker=99"],
        &["scale", "crew", "worker=7"],
        &["scale", "crew", "worker"],
        &["scale", "crew"],
    ] {
        let (code, _, _) = run(cli(&sb, &server).args(args));
        assert_ne!(code, 0, "{args:?}");
    }
    assert_eq!(
        processes(&sb, &server, "crew"),
        [running("web", 2), running("web", 2), running("worker", 2)]
    );
}

/// The runs `rampart cron runs --json` lists for `app`.
fn cron_runs(sb: &Sandbox, server: &Server, app: &str) -> Vec<serde_json::Value> {
    json(cli(sb, server).args(["cron", "runs", app]))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn scheduled_jobs_run_on_time_never_overlap_and_record_failures() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["ticker".into()]);
    let server = start(&sb);
    ok_cli(&sb, &server, &["apps", "create", "ticker", "--with-db"]);
    ok_cli(&sb, &server, &["scale", "ticker", "web=1"]);
    let dir = context(&sb.path().join("ctx"), "");
    let (code, err) = deploy(&sb, &server, "ticker", &dir);
    assert_eq!(code, 0, "{err}");
    let client = edge_client(&server, "ticker.localhost");
    let url = format!("{}notes", app_url(&server, "ticker.localhost"));

    // A job runs in the app's environment on its schedule.
    let added: serde_json::Value = serde_json::from_str(&ok_cli(
        &sb,
        &server,
        &[
            "cron",
            "add",
            "ticker",
            "every 10s",
            "--json",
            "--",
            "note",
            "tick",
        ],
    ))
    .unwrap();
    let tick = added["id"].as_str().unwrap().to_owned();
    assert_eq!(added["argv"], serde_json::json!(["note", "tick"]));
    let listed = json(cli(&sb, &server).args(["cron", "list", "ticker"]));
    assert_eq!(listed[0]["id"], tick.as_str());
    eventually(
        std::time::Duration::from_secs(40),
        "two runs of the job",
        || {
            cron_runs(&sb, &server, "ticker")
                .iter()
                .filter(|r| r["job_id"] == tick.as_str() && r["outcome"] == "ok")
                .count()
                >= 2
        },
    );
    ok_cli(&sb, &server, &["cron", "remove", "ticker", &tick]);
    let (_, notes) = get(&client, &url);
    let count: u32 = notes.split_whitespace().next().unwrap().parse().unwrap();
    assert!(count >= 2, "{notes}");

    // A run still going when the next is due makes that one skip; a failure
    // is recorded with its status and lines, and becomes an app event.
    let slow: serde_json::Value = serde_json::from_str(&ok_cli(
        &sb,
        &server,
        &[
            "cron",
            "add",
            "ticker",
            "every 10s",
            "--json",
            "--",
            "sleep",
            "15",
        ],
    ))
    .unwrap();
    let failing: serde_json::Value = serde_json::from_str(&ok_cli(
        &sb,
        &server,
        &[
            "cron",
            "add",
            "ticker",
            "every 10s",
            "--json",
            "--",
            "exit",
            "3",
            "disk full",
        ],
    ))
    .unwrap();
    let (slow, failing) = (
        slow["id"].as_str().unwrap().to_owned(),
        failing["id"].as_str().unwrap().to_owned(),
    );
    eventually(
        std::time::Duration::from_secs(60),
        "a skipped run and a failure",
        || {
            let runs = cron_runs(&sb, &server, "ticker");
            runs.iter()
                .any(|r| r["job_id"] == slow.as_str() && r["outcome"] == "skipped")
                && runs
                    .iter()
                    .any(|r| r["job_id"] == failing.as_str() && r["outcome"] == "failed")
        },
    );
    let runs = cron_runs(&sb, &server, "ticker");
    let failed = runs
        .iter()
        .find(|r| r["job_id"] == failing.as_str() && r["outcome"] == "failed")
        .unwrap();
    assert_eq!(failed["status"], 3);
    assert!(
        failed["detail"].as_str().unwrap().contains("disk full"),
        "{failed}"
    );
    let skipped = runs
        .iter()
        .find(|r| r["job_id"] == slow.as_str() && r["outcome"] == "skipped")
        .unwrap();
    assert!(
        skipped["detail"].as_str().unwrap().contains("still going"),
        "{skipped}"
    );
    let ps = json(cli(&sb, &server).args(["ps", "ticker"]));
    assert!(
        ps["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "cron_failed"),
        "{ps}"
    );
    assert_eq!(
        ps["replicas"].as_array().unwrap().len(),
        1,
        "runs never count as replicas: {ps}"
    );

    // Bad jobs are refused and add nothing.
    for args in [
        &["cron", "add", "ticker", "61 * * * *", "--", "note", "x"][..],
        &["cron", "add", "ticker", "every 1s", "--", "note", "x"],
        &["cron", "add", "ticker", "@sometimes", "--", "note", "x"],
        &[
            "cron",
            "add",
            "ticker",
            "every 1m",
            "--timeout",
            "0s",
            "--",
            "note",
            "x",
        ],
        &["cron", "remove", "ticker", "cron_nosuchjob"],
    ] {
        let (code, _, _) = run(cli(&sb, &server).args(args));
        assert_ne!(code, 0, "{args:?}");
    }
    let jobs = || json(cli(&sb, &server).args(["cron", "list", "ticker"]));
    assert_eq!(jobs().as_array().unwrap().len(), 2);

    // Jobs the manifest declares follow the live release: added when it
    // goes live, kept as they are when the next declares them too, gone
    // when the live release no longer declares them. Jobs added by hand
    // stay throughout.
    let declared = context_with(
        &sb,
        "declared",
        "[[cron]]\nschedule = \"every 10s\"\ncommand = \"note declared\"\n\
         [[cron]]\nschedule = \"@daily\"\ncommand = [\"note\", \"nightly\"]\ntimeout = \"5m\"\n",
    );
    let (code, err) = deploy(&sb, &server, "ticker", &declared);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("scheduled jobs declared: 2 (were 0; 2 added, 0 removed)"),
        "{err}"
    );
    let listed = jobs();
    let from_manifest: Vec<&serde_json::Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["source"] == "manifest")
        .collect();
    assert_eq!(listed.as_array().unwrap().len(), 4, "{listed}");
    assert_eq!(from_manifest.len(), 2, "{listed}");
    let every = from_manifest
        .iter()
        .find(|j| j["schedule"] == "every 10s")
        .unwrap();
    assert_eq!(every["argv"], serde_json::json!(["note", "declared"]));
    let every = every["id"].as_str().unwrap().to_owned();
    let nightly = from_manifest
        .iter()
        .find(|j| j["schedule"] == "@daily")
        .unwrap();
    assert_eq!(nightly["timeout_secs"], 300);
    eventually(
        std::time::Duration::from_secs(60),
        "a run of the declared job",
        || {
            cron_runs(&sb, &server, "ticker")
                .iter()
                .any(|r| r["job_id"] == every.as_str() && r["outcome"] == "ok")
        },
    );
    let (code, _, err) = run(cli(&sb, &server).args(["cron", "remove", "ticker", &every]));
    assert_ne!(code, 0);
    assert!(err.contains("declared in the rampart.app.toml"), "{err}");

    let ids = |listed: serde_json::Value| {
        let mut ids: Vec<String> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let before = ids(jobs());
    let (code, err) = deploy(&sb, &server, "ticker", &declared);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("scheduled jobs declared"), "{err}");
    assert_eq!(ids(jobs()), before, "the same jobs, not new ones");

    let (code, err) = deploy(&sb, &server, "ticker", &dir);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("scheduled jobs declared: 0 (were 2; 0 added, 2 removed)"),
        "{err}"
    );
    let listed = jobs();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["source"] == "added"),
        "{listed}"
    );
    let (code, _, err) = run(cli(&sb, &server).args(["rollback", "ticker"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        jobs().as_array().unwrap().len(),
        4,
        "a rollback brings its jobs back"
    );

    // A manifest that would take the app past 32 jobs is refused before
    // anything is built, and changes nothing.
    let many = "[[cron]]\nschedule = \"@hourly\"\ncommand = \"note many\"\n".repeat(31);
    let crowded = context_with(&sb, "crowded", &many);
    let releases = json(cli(&sb, &server).args(["releases", "ticker"]));
    let (code, err) = deploy(&sb, &server, "ticker", &crowded);
    assert_ne!(code, 0);
    assert!(err.contains("more than 32"), "{err}");
    assert_eq!(
        json(cli(&sb, &server).args(["releases", "ticker"])),
        releases
    );
    assert_eq!(jobs().as_array().unwrap().len(), 4);
    let audit = ok_cli(&sb, &server, &["audit", "list", "--json"]);
    assert!(
        audit.contains("apps/ticker/cron/declared: 2 added, 0 removed"),
        "{audit}"
    );
}

#[test]
fn manifest_settings_apply_unless_apps_configure_set_them() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["tuned".into()]);
    let server = start(&sb);
    ok_cli(&sb, &server, &["apps", "create", "tuned"]);
    ok_cli(&sb, &server, &["scale", "tuned", "web=1"]);
    let settings = || json(cli(&sb, &server).args(["apps", "configure", "tuned"]));

    let dir = context_with(&sb, "tuned", "port = 9000\nmemory_mb = 128\n");
    let (code, err) = deploy(&sb, &server, "tuned", &dir);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("settings from rampart.app.toml: port, memory_mb"),
        "{err}"
    );
    assert_eq!(
        (settings()["port"].clone(), settings()["memory_mb"].clone()),
        (9000.into(), 128.into())
    );
    let client = edge_client(&server, "tuned.localhost");
    assert_eq!(
        get(&client, &app_url(&server, "tuned.localhost")).0,
        200,
        "served on port 9000"
    );

    // What apps configure sets wins, and the deploy says so.
    ok_cli(
        &sb,
        &server,
        &["apps", "configure", "tuned", "--memory-mb", "200"],
    );
    let (code, err) = deploy(&sb, &server, "tuned", &dir);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("memory_mb: apps configure set 200, so rampart.app.toml's 128 is not used"),
        "{err}"
    );
    assert_eq!(settings()["memory_mb"], 200);
    assert_eq!(settings()["port"], 9000);

    // Values that break a rule or an operator's ceiling are refused before
    // anything is built.
    let before = json(cli(&sb, &server).args(["releases", "tuned"]));
    for (manifest, expected) in [
        ("port = 0\n", "rampart.app.toml: port: port must be between"),
        ("pids = 99999999\n", "rampart.app.toml: pids"),
        ("cpu_millis = 64000\n", "above the operator's ceiling"),
    ] {
        let dir = context_with(&sb, "bad", manifest);
        let (code, err) = deploy(&sb, &server, "tuned", &dir);
        assert_ne!(code, 0, "{manifest}");
        assert!(err.contains(expected), "{manifest}: {err}");
    }
    assert_eq!(json(cli(&sb, &server).args(["releases", "tuned"])), before);
    assert_eq!(settings()["port"], 9000);
}
