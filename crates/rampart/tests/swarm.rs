//! Apps on a real Docker Swarm (`runtime.backend = "swarm"`), through the
//! real binary: hardening read back from the services and their task
//! containers, encrypted overlays and isolation from inside a replica,
//! redeploys and a node drain under load, failed deploys and crash repair.
//!
//! `scripts/test` makes the machine's engine a single-node Swarm for these
//! tests and leaves it as it found it; without a Swarm they fail at once
//! with that reason. Media are in S3 (moto), as a Swarm needs.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

mod common;

use common::*;
use rampart_testkit::{Sandbox, Server, ok, run};
use serde_json::Value;

/// One test at a time: a drain pauses the only node, and node labels
/// steer (and, when changed, stop) every service on it.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Removes a test's services, then its containers, networks and volumes,
/// and the relay of its installation.
struct SwarmCleanup(Vec<String>);

impl Drop for SwarmCleanup {
    fn drop(&mut self) {
        let mut installations = std::collections::BTreeSet::new();
        for app in &self.0 {
            // A test that failed midway left its platform killed, and its
            // relay on the app's overlay.
            let (_, nets, _) = docker(&[
                "network",
                "ls",
                "--filter",
                &format!("label=rampart.app={app}"),
                "--format",
                "{{.Label \"rampart.installation\"}}",
            ]);
            installations.extend(nets.lines().map(str::to_owned));
            for id in services(app) {
                let service = inspect_service(&id);
                if let Some(i) = service["Spec"]["Labels"]["rampart.installation"].as_str() {
                    installations.insert(i.to_owned());
                }
                let _ = docker(&["service", "rm", &id]);
            }
        }
        // The task containers stop with their services.
        for _ in 0..100 {
            if self.0.iter().all(|app| containers(app).is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        for installation in installations {
            let _ = docker(&["rm", "-f", &format!("rampart-relay-{installation}")]);
        }
        drop(Cleanup(self.0.clone()));
        let (_, nets, _) = docker(&["network", "ls", "-q", "--filter", "label=rampart.relay"]);
        for net in nets.lines() {
            // Fails while another test's relay is still on it.
            let _ = docker(&["network", "rm", net]);
        }
    }
}

/// The services (replicas) of `app`.
fn services(app: &str) -> Vec<String> {
    let (_, out, _) = docker(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=rampart.app={app}"),
    ]);
    out.lines().map(str::to_owned).collect()
}

fn inspect_service(id: &str) -> Value {
    let (code, out, err) = docker(&["service", "inspect", id]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out).unwrap()[0].clone()
}

/// The running task containers of `app` on this node.
fn task_containers(app: &str) -> Vec<String> {
    let (_, out, _) = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=rampart.app={app}"),
        "--filter",
        "label=com.docker.swarm.service.id",
    ]);
    out.lines().map(str::to_owned).collect()
}

/// A platform on the Swarm, with media in a fresh S3 server.
/// A platform on the Swarm and what goes with it.
struct OnSwarm {
    server: Server,
    _s3: rampart_testkit::S3Server,
    /// The relay container the platform started.
    relay: String,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl OnSwarm {
    /// Stops the platform as an operator would (SIGTERM): the relay goes
    /// with it, and the replicas stay.
    fn stop(self) {
        let relay = self.relay.clone();
        let (status, output) = self.server.stop().unwrap();
        assert!(status.success(), "{output}");
        let (_, left, _) = docker(&["ps", "-aq", "--filter", &format!("name=^{relay}$")]);
        assert!(left.trim().is_empty(), "the relay stops with the platform");
    }
}

fn relays() -> Vec<String> {
    let (_, out, _) = docker(&[
        "ps",
        "-a",
        "--filter",
        "label=rampart.relay",
        "--format",
        "{{.Names}}",
    ]);
    out.lines().map(str::to_owned).collect()
}

fn start_on_swarm(sb: &Sandbox, extra: &str) -> OnSwarm {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = relays();
    let (_, state, _) = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(
        state.trim(),
        "active",
        "these tests need the engine to be a Swarm manager (scripts/test makes it one)"
    );
    let (s3, admin) = rampart_testkit::S3Server::start_with_iam().unwrap();
    let secret_file = sb.path().join("s3-secret");
    std::fs::write(&secret_file, format!("{}\n", admin.secret_access_key)).unwrap();
    let config = sb.write_config(&format!(
        "{CONFIG}[runtime]\nbackend = \"swarm\"\n{extra}\
         [media]\ns3_endpoint = \"{}\"\ns3_access_key_id = \"{}\"\ns3_secret_key_file = \"{}\"\n",
        s3.endpoint(),
        admin.access_key_id,
        secret_file.display(),
    ));
    let server = sb.start(&config).unwrap();
    let relay = relays()
        .into_iter()
        .find(|r| !before.contains(r))
        .expect("the platform starts its relay");
    OnSwarm {
        server,
        _s3: s3,
        relay,
        _turn: turn,
    }
}

/// A line of `/proc/PID/status` of a container's first process.
fn proc_status(container: &str, field: &str) -> String {
    let pid = inspect(container)["State"]["Pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The engine's API version, as a number to compare (1.41 → 141).
fn api_version() -> u32 {
    let (_, out, _) = docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    let (major, minor) = out.trim().split_once('.').unwrap();
    major.parse::<u32>().unwrap() * 100 + minor.parse::<u32>().unwrap()
}

#[test]
fn apps_on_swarm_serve_from_hardened_services_on_encrypted_overlays() {
    let sb = sandbox();
    let _cleanup = SwarmCleanup(vec!["sw-a".into(), "sw-b".into()]);
    let on = start_on_swarm(&sb, "");
    let server = &on.server;
    let dir = context(&sb.path().join("ctx"), "");
    for app in ["sw-a", "sw-b"] {
        ok(cli(&sb, server).args(["apps", "create", app]));
        let release = json(cli(&sb, server).args(["deploy", app, "--path"]).arg(&dir));
        assert_eq!(release["status"], "live", "{release}");
    }
    let host = "sw-a.localhost";
    let client = edge_client(server, host);
    let (status, body) = get(&client, &app_url(server, host));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("hello from release 1"), "{body}");
    let ps = json(cli(&sb, server).args(["ps", "sw-a"]));
    let replicas = ps["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2, "{ps}");
    assert!(replicas.iter().all(|r| r["serving"] == true), "{ps}");

    // Each replica is a service of one task, hardened in its spec.
    let ids = services("sw-a");
    assert_eq!(ids.len(), 2, "{ids:?}");
    let mut overlay = String::new();
    for id in &ids {
        let service = inspect_service(id);
        let spec = &service["Spec"];
        assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 1, "{spec}");
        let c = &spec["TaskTemplate"]["ContainerSpec"];
        assert_eq!(c["CapabilityDrop"], serde_json::json!(["ALL"]), "{c}");
        assert!(c["CapabilityAdd"].is_null());
        assert_eq!(c["ReadOnly"], true);
        assert_eq!(c["User"], "65534:65534", "root images run as nobody");
        assert_eq!(c["Init"], true);
        assert!(
            c["Mounts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["Type"] == "tmpfs")
        );
        let limits = &spec["TaskTemplate"]["Resources"]["Limits"];
        assert_eq!(limits["MemoryBytes"], 256 * 1024 * 1024, "{limits}");
        assert_eq!(limits["NanoCPUs"], 1_000_000_000i64);
        assert_eq!(limits["Pids"], 256);
        // No port on any node, not even a virtual IP: the edge reaches
        // the task's own address.
        assert_eq!(spec["EndpointSpec"]["Mode"], "dnsrr", "{spec}");
        assert!(spec["EndpointSpec"]["Ports"].is_null(), "{spec}");
        assert!(service["Endpoint"]["Ports"].is_null(), "{service}");
        let placement = &spec["TaskTemplate"]["Placement"]["Constraints"];
        assert!(
            placement
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "node.labels.rampart.suspect != true"),
            "{placement}"
        );
        assert_eq!(spec["UpdateConfig"]["Order"], "start-first");
        assert_eq!(spec["UpdateConfig"]["FailureAction"], "rollback");
        let networks = spec["TaskTemplate"]["Networks"].as_array().unwrap();
        assert_eq!(networks.len(), 1);
        overlay = networks[0]["Target"].as_str().unwrap().to_owned();
    }
    let (_, out, _) = docker(&["network", "inspect", &overlay]);
    let net: Value = serde_json::from_str(&out).unwrap();
    let net = &net[0];
    assert_eq!(net["Driver"], "overlay", "{net}");
    assert_eq!(net["Internal"], true, "{net}");
    assert_eq!(net["Attachable"], true, "{net}");
    assert!(net["Options"].get("encrypted").is_some(), "IPsec: {net}");

    // The task containers the engine made from the spec.
    let tasks = task_containers("sw-a");
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    for id in &tasks {
        let c = inspect(id);
        let host_config = &c["HostConfig"];
        assert_eq!(host_config["ReadonlyRootfs"], true);
        assert_eq!(host_config["Privileged"], false);
        assert!(host_config["Binds"].as_array().is_none_or(|b| b.is_empty()));
        assert!(
            host_config["PortBindings"]
                .as_object()
                .is_none_or(|m| m.is_empty())
        );
        // No capability left to gain, by any means.
        assert_eq!(proc_status(id, "CapBnd"), "0000000000000000");
        assert_eq!(proc_status(id, "CapEff"), "0000000000000000");
        // Engines before API 1.44 drop a service's no-new-privileges; the
        // docs tell operators to set it engine-wide there.
        if api_version() >= 144 {
            assert_eq!(proc_status(id, "NoNewPrivs"), "1", "{id}");
        }
        let env = c["Config"]["Env"].as_array().unwrap();
        assert!(env.iter().any(|e| e == "MEDIA_STORAGE=s3"), "{env:?}");
    }

    // Walls: from inside a replica, its sibling answers (the control) and
    // the other app's replicas do not; nor does the world.
    let ip_on_overlay = |id: &str| -> String {
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
    let b = task_containers("sw-b");
    assert_eq!(b.len(), 2);
    let probe = |from: &str, to: &str| {
        let target = format!("{}:8080", ip_on_overlay(to));
        docker(&["exec", from, "/hello", "probe", &target])
    };
    let (code, out, err) = probe(&tasks[0], &tasks[1]);
    assert_eq!(code, 0, "sibling replicas connect: {out}{err}");
    for (from, to) in [(&tasks[0], &b[0]), (&b[1], &tasks[1])] {
        let (code, out, err) = probe(from, to);
        assert_eq!(code, 1, "app A must not reach app B: {out}{err}");
    }
    let (code, out, _) = docker(&["exec", &tasks[0], "/hello", "probe", "1.1.1.1:443"]);
    assert_eq!(code, 1, "no egress: {out}");
    // The relay sits on both overlays and listens on none of them.
    let relay = format!(
        "rampart-relay-{}",
        inspect_service(&ids[0])["Spec"]["Labels"]["rampart.installation"]
            .as_str()
            .unwrap()
    );
    let relay_ip = {
        let c = inspect(&relay);
        c["NetworkSettings"]["Networks"][overlay_name(&overlay)]["IPAddress"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for port in ["8080", "80", "443", "22"] {
        let (code, out, _) = docker(&[
            "exec",
            &tasks[0],
            "/hello",
            "probe",
            &format!("{relay_ip}:{port}"),
        ]);
        assert_eq!(code, 1, "the relay listens on no overlay port: {out}");
    }
    let relay_c = inspect(&relay);
    assert_eq!(relay_c["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(relay_c["HostConfig"]["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(proc_status(&relay, "NoNewPrivs"), "1");
    assert_eq!(proc_status(&relay, "CapEff"), "0000000000000000");

    // A one-off command runs beside the replicas, on the app's overlay.
    let out = ok(cli(&sb, server)
        .args(["run", "sw-a", "--timeout", "30s", "--", "probe"])
        .arg(format!("{}:8080", ip_on_overlay(&tasks[0]))));
    assert!(out.contains("connected"), "{out}");

    // Logs come from the services.
    let logs = ok(cli(&sb, server).args(["logs", "sw-a", "--tail", "5"]));
    assert!(logs.contains("listening on port 8080"), "{logs}");

    // A killed task comes back as a new task: the edge follows it.
    let before = task_containers("sw-a");
    let _ = docker(&["kill", &before[0]]);
    eventually(
        Duration::from_secs(60),
        "a replacement task serving",
        || {
            let now = task_containers("sw-a");
            now.len() == 2 && !now.contains(&before[0])
        },
    );
    eventually(Duration::from_secs(30), "the edge serving again", || {
        (0..6).all(|_| get(&client, &app_url(server, host)).0 == 200)
    });

    // Deleting the app removes its services and its overlay.
    // The managed PostgreSQL listens on this host's networks only: on a
    // Swarm a database is an external server's, and asking for a managed
    // one is refused with the reason, creating nothing.
    let (code, _, err) = run(cli(&sb, server).args(["db", "create", "sw-b"]));
    assert_ne!(code, 0);
    assert!(err.contains("postgres.mode = \"external\""), "{err}");
    let (code, _, _) = run(cli(&sb, server).args(["db", "info", "sw-b"]));
    assert_ne!(code, 0, "no database was recorded");

    ok(cli(&sb, server).args(["apps", "delete", "sw-a", "--yes"]));
    assert!(services("sw-a").is_empty());
    eventually(Duration::from_secs(30), "the overlay removed", || {
        let (_, nets, _) = docker(&["network", "ls", "-q", "--filter", "label=rampart.app=sw-a"]);
        nets.trim().is_empty()
    });
    on.stop();
}

/// A network's name from its id.
fn overlay_name(id: &str) -> String {
    let (_, out, _) = docker(&["network", "inspect", "-f", "{{.Name}}", id]);
    out.trim().to_owned()
}

#[test]
fn redeploys_on_swarm_fail_no_request_and_failed_deploys_leave_the_last_release() {
    let sb = sandbox();
    let _cleanup = SwarmCleanup(vec!["sw-steady".into()]);
    let on = start_on_swarm(&sb, "");
    let server = &on.server;
    ok(cli(&sb, server).args(["apps", "create", "sw-steady"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, server)
        .args(["deploy", "sw-steady", "--path"])
        .arg(&dir));
    ok(cli(&sb, server).args(["apps", "configure", "sw-steady", "--drain", "5"]));

    let stop = Arc::new(AtomicBool::new(false));
    let (handles, counters) = load(server, "sw-steady.localhost", 4, stop.clone());
    for n in 0..10 {
        let release =
            json(cli(&sb, server).args(["deploy", "sw-steady", "--image", "rampart/sw-steady:r1"]));
        assert_eq!(release["number"], n + 2);
        assert_eq!(release["status"], "live");
    }
    // A release that exits at once fails and changes nothing.
    let broken = context(&sb.path().join("broken"), "ENV HELLO_EXIT=3\n");
    let (code, _, err) = run(cli(&sb, server)
        .args(["deploy", "sw-steady", "--path"])
        .arg(&broken));
    assert_ne!(code, 0, "a crashing release must fail: {err}");
    std::thread::sleep(Duration::from_millis(500));
    let (good, bad, errors) = stop_load(&stop, handles, counters);
    assert_eq!(bad, 0, "failed requests during redeploys: {errors:?}");
    assert!(good > 100, "the load ran: {good} requests");
    let client = edge_client(server, "sw-steady.localhost");
    let (_, body) = get(&client, &app_url(server, "sw-steady.localhost"));
    assert!(body.starts_with("hello from release 11"), "{body}");
    eventually(Duration::from_secs(30), "only release 11 runs", || {
        let ids = services("sw-steady");
        ids.len() == 2
            && ids
                .iter()
                .all(|id| inspect_service(id)["Spec"]["Labels"]["rampart.release"] == "11")
    });
    on.stop();
}

#[test]
fn nodes_are_listed_labelled_and_a_drain_with_nowhere_to_go_changes_nothing() {
    let sb = sandbox();
    let _cleanup = SwarmCleanup(vec!["sw-node".into()]);
    let on = start_on_swarm(&sb, "");
    let server = &on.server;
    let nodes = json(cli(&sb, server).args(["nodes", "list"]));
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let node = nodes[0]["id"].as_str().unwrap().to_owned();
    let hostname = nodes[0]["hostname"].as_str().unwrap().to_owned();
    assert_eq!(nodes[0]["role"], "manager");
    assert_eq!(nodes[0]["availability"], "active");
    assert_eq!(nodes[0]["suspect"], false);
    let restore = RestoreNode(node.clone());

    // A zone label steers placement: replicas go to the emptiest zone.
    let labelled = json(cli(&sb, server).args(["nodes", "label", &hostname, "zone=z1"]));
    assert_eq!(labelled["labels"]["zone"], "z1", "{labelled}");
    ok(cli(&sb, server).args(["apps", "create", "sw-node"]));
    // An app's own placement joins the platform's.
    ok(cli(&sb, server).args([
        "apps",
        "configure",
        "sw-node",
        "--placement",
        "node.role == manager",
    ]));
    for bad in [
        "node.role",
        "node.labels.x == $(id)",
        "engine.labels.a == b",
    ] {
        let (code, _, err) =
            run(cli(&sb, server).args(["apps", "configure", "sw-node", "--placement", bad]));
        assert_ne!(code, 0, "{bad:?}");
        assert!(err.contains("placement"), "{err}");
    }
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, server)
        .args(["deploy", "sw-node", "--path"])
        .arg(&dir));
    for id in services("sw-node") {
        let constraints =
            inspect_service(&id)["Spec"]["TaskTemplate"]["Placement"]["Constraints"].clone();
        assert!(
            constraints
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "node.labels.zone == z1"),
            "{constraints}"
        );
        assert!(
            constraints
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "node.role == manager"),
            "{constraints}"
        );
    }
    let listed = json(cli(&sb, server).args(["nodes", "list"]));
    assert_eq!(listed[0]["replicas"], 2, "{listed}");

    // The platform's own label, and bad names or values: refused, nothing
    // changes.
    for bad in [
        "rampart.suspect=false",
        "zo ne=a",
        "zone=a b",
        "zone=\u{1b}[2J",
    ] {
        let (code, _, err) = run(cli(&sb, server).args(["nodes", "label", &node, bad]));
        assert_ne!(code, 0, "{bad:?} must be refused");
        assert!(err.contains("label"), "{bad:?}: {err}");
    }
    let (code, _, err) = run(cli(&sb, server).args(["nodes", "drain", "no-such-node"]));
    assert_ne!(code, 0);
    assert!(err.contains("no node"), "{err}");
    let (_, out, _) = docker(&[
        "node",
        "inspect",
        &node,
        "--format",
        "{{json .Spec.Labels}}",
    ]);
    assert_eq!(out.trim(), r#"{"zone":"z1"}"#);

    // With one node, the replicas have nowhere to go: the drain fails
    // before anything stops, the node takes replicas again, and the app
    // serves throughout; a suspicion is recorded only once the node is
    // empty.
    let stop = Arc::new(AtomicBool::new(false));
    let (handles, counters) = load(server, "sw-node.localhost", 2, stop.clone());
    let before = services("sw-node");
    let (code, out, err) = run(cli(&sb, server).args(["nodes", "drain", &node, "--suspect"]));
    let err = format!("{out}{err}");
    assert_ne!(code, 0, "nowhere to go: {err}\n{}", server.output());
    assert!(err.contains("no suitable node"), "{err}");
    assert!(err.contains("still serves"), "{err}");
    let (good, bad, errors) = stop_load(&stop, handles, counters);
    assert_eq!(bad, 0, "failed requests during a refused drain: {errors:?}");
    assert!(good > 10, "{good}");
    let mut after = services("sw-node");
    let mut before_sorted = before.clone();
    after.sort();
    before_sorted.sort();
    assert_eq!(after, before_sorted, "the replicas stayed");
    let listed = json(cli(&sb, server).args(["nodes", "list"]));
    assert_eq!(listed[0]["availability"], "active", "{listed}");
    assert_eq!(listed[0]["suspect"], false, "{listed}");
    assert_eq!(listed[0]["replicas"], 2, "{listed}");

    // Relabelling a node under serving replicas would get them stopped by
    // the Swarm: refused until the node is empty.
    let (code, _, err) = run(cli(&sb, server).args(["nodes", "label", &node, "zone", "--remove"]));
    assert_ne!(code, 0);
    assert!(err.contains("drain it first"), "{err}");
    let (_, body) = get(
        &edge_client(server, "sw-node.localhost"),
        &app_url(server, "sw-node.localhost"),
    );
    assert!(body.starts_with("hello from release 1"), "{body}");
    ok(cli(&sb, server).args(["apps", "delete", "sw-node", "--yes"]));
    ok(cli(&sb, server).args(["nodes", "label", &node, "zone", "--remove"]));
    // An empty node drains at once, and the suspicion is recorded; only an
    // activation clears it.
    let drained = json(cli(&sb, server).args(["nodes", "drain", &hostname, "--suspect"]));
    assert_eq!(drained["moved"], 0, "{drained}");
    assert_eq!(drained["node"]["availability"], "drain", "{drained}");
    assert_eq!(drained["node"]["suspect"], true, "{drained}");
    let (_, out, _) = docker(&[
        "node",
        "inspect",
        &node,
        "--format",
        "{{json .Spec.Labels}}",
    ]);
    assert_eq!(out.trim(), r#"{"rampart.suspect":"true"}"#);
    let activated = json(cli(&sb, server).args(["nodes", "activate", &node]));
    assert_eq!(activated["suspect"], false, "{activated}");
    assert_eq!(activated["availability"], "active");

    // Every change is in the audit log, the failed drain as failed.
    let audit = json(cli(&sb, server).args(["audit", "list"]));
    let lines: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "node.manage")
        .filter(|e| {
            e["target"]
                .as_str()
                .unwrap()
                .starts_with(&format!("nodes/{hostname}:"))
        })
        .map(|e| format!("{} {}", e["outcome"], e["target"].as_str().unwrap()))
        .collect();
    // Each refused request is on record too, as the gate saw it.
    let refused = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "node.manage" && e["outcome"] == "failed")
        .count();
    assert!(refused >= 7, "{audit}");
    let expected = [
        format!("\"ok\" nodes/{hostname}: label zone=z1"),
        format!("\"failed\" nodes/{hostname}: drain failed after moving 0 replica(s)"),
        format!("\"ok\" nodes/{hostname}: label zone removed"),
        format!("\"ok\" nodes/{hostname}: drained, 0 replica(s) moved, marked suspect"),
        format!("\"ok\" nodes/{hostname}: activated, suspicion cleared"),
    ];
    assert_eq!(lines, expected, "{audit}");
    let verify = json(cli(&sb, server).args(["audit", "verify"]));
    assert_eq!(verify["ok"], true, "{verify}");
    drop(restore);
    on.stop();
}

/// Puts the node back as the test found it, whatever happened.
struct RestoreNode(String);

impl Drop for RestoreNode {
    fn drop(&mut self) {
        let _ = docker(&["node", "update", "--availability", "active", &self.0]);
        for label in ["zone", "rampart.suspect"] {
            let _ = docker(&["node", "update", "--label-rm", label, &self.0]);
        }
    }
}

/// The image of a second node's engine (scripts/swarm-node-image).
const NODE_IMAGE: &str = "local/swarm-node:bookworm";

/// A second Swarm node: a Docker engine in a container on this machine,
/// joined as a worker; it leaves, and goes, when dropped.
struct SecondNode {
    container: String,
    id: String,
}

impl SecondNode {
    fn join() -> Self {
        let container = format!("rampart-test-node-{}", std::process::id());
        // Everything an engine needs, short of `--privileged` (whose full
        // capability set some hosts' bounding sets cannot grant).
        let (code, _, err) = docker(&[
            "run",
            "-d",
            "--name",
            &container,
            "--hostname",
            &container,
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--security-opt",
            "systempaths=unconfined",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            // The platform's binary, for `rampart ingress` on the node.
            "-v",
            &format!(
                "{}:/usr/local/bin/rampart:ro",
                env!("CARGO_BIN_EXE_rampart")
            ),
            NODE_IMAGE,
        ]);
        assert_eq!(
            code, 0,
            "{err} (scripts/swarm-node-image builds {NODE_IMAGE})"
        );
        let node = Self {
            container,
            id: String::new(),
        };
        eventually(Duration::from_secs(60), "the second engine", || {
            docker(&["exec", &node.container, "docker", "info"]).0 == 0
        });
        let (_, token, _) = docker(&["swarm", "join-token", "-q", "worker"]);
        let (_, addr, _) = docker(&["info", "--format", "{{.Swarm.NodeAddr}}"]);
        assert!(
            !addr.trim().starts_with("127."),
            "the Swarm must be advertised where a container reaches it (scripts/test uses the default bridge's address), not {addr}"
        );
        let (code, out, err) = docker(&[
            "exec",
            &node.container,
            "docker",
            "swarm",
            "join",
            "--token",
            token.trim(),
            &format!("{}:2377", addr.trim()),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        let (_, id, _) = docker(&[
            "exec",
            &node.container,
            "docker",
            "info",
            "--format",
            "{{.Swarm.NodeID}}",
        ]);
        let mut node = node;
        node.id = id.trim().to_owned();
        eventually(Duration::from_secs(60), "the second node ready", || {
            let (_, state, _) =
                docker(&["node", "inspect", &node.id, "--format", "{{.Status.State}}"]);
            state.trim() == "ready"
        });
        node
    }

    /// Makes the node's engine trust `ca` for the registry at `addr`.
    fn trust(&self, addr: &str, ca: &[u8]) {
        let dir = format!("/etc/docker/certs.d/{addr}");
        let (code, _, err) = docker(&["exec", &self.container, "mkdir", "-p", &dir]);
        assert_eq!(code, 0, "{err}");
        self.write(&format!("{dir}/ca.crt"), ca);
    }

    /// Writes `contents` to `path` in the node's container.
    fn write(&self, path: &str, contents: &[u8]) {
        let mut child = Command::new("docker")
            .args(["exec", "-i", &self.container, "sh", "-c"])
            .arg(format!("umask 077 && cat > {path}"))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), contents).unwrap();
        drop(child.stdin.take());
        assert!(
            child.wait().unwrap().success(),
            "writing {path} on the second node"
        );
    }

    /// The node container's address on the default bridge.
    fn ip(&self) -> std::net::IpAddr {
        let (_, out, _) = docker(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.IPAddress}}",
            &self.container,
        ]);
        out.trim().parse().unwrap()
    }

    /// Starts `rampart ingress` on the node with `credential`, syncing
    /// with the node listener at `server`; returns where it serves HTTPS.
    fn start_ingress(&self, server: &str, ca: &[u8], credential: &str) -> std::net::SocketAddr {
        self.write("/root/ca.pem", ca);
        self.write("/root/credential", credential.as_bytes());
        // The test's limits, as for the platform's edge: the load comes
        // from one client address.
        self.write(
            "/root/ingress.toml",
            format!(
                "{CONFIG}[edge.listen]\nhttps = \"0.0.0.0:8443\"\nhttp = \"0.0.0.0:8080\"\nadmin = \"\"\n"
            )
            .as_bytes(),
        );
        let (code, _, err) = docker(&[
            "exec",
            "-d",
            &self.container,
            "sh",
            "-c",
            &format!(
                "exec rampart ingress --server {server} --ca /root/ca.pem \
                 --credential-file /root/credential --data-dir /root/ingress \
                 --config /root/ingress.toml > /root/ingress.log 2>&1"
            ),
        ]);
        assert_eq!(code, 0, "{err}");
        eventually(Duration::from_secs(60), "the ingress serving", || {
            self.ingress_log().contains("apps are served at")
        });
        std::net::SocketAddr::from((self.ip(), 8443))
    }

    fn ingress_log(&self) -> String {
        docker(&["exec", &self.container, "cat", "/root/ingress.log"]).1
    }

    /// The images the node's engine holds, as `repository@digest`.
    fn images(&self) -> Vec<String> {
        let (_, out, _) = docker(&[
            "exec",
            &self.container,
            "docker",
            "image",
            "ls",
            "--digests",
            "--format",
            "{{.Repository}}@{{.Digest}}",
        ]);
        out.lines().map(str::to_owned).collect()
    }
}

/// The address of the platform's image registry in a test: where this
/// engine and a second node's both reach it. This
/// engine trusts the platform's CA for it until the value is dropped, as
/// docs/swarm.md tells an operator to do on every node.
struct RegistryAddress(String);

impl RegistryAddress {
    fn on_the_bridge() -> Self {
        // The address the Swarm is advertised on: the default bridge's
        // (scripts/test), which the second node joins through.
        let (_, addr, _) = docker(&["info", "--format", "{{.Swarm.NodeAddr}}"]);
        let ip: std::net::IpAddr = addr.trim().parse().unwrap();
        let port = std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self(format!("{ip}:{port}"))
    }

    fn certs_dir(&self) -> std::path::PathBuf {
        std::path::Path::new("/etc/docker/certs.d").join(&self.0)
    }

    fn trust_here(&self, ca: &[u8]) {
        std::fs::create_dir_all(self.certs_dir()).unwrap();
        std::fs::write(self.certs_dir().join("ca.crt"), ca).unwrap();
    }
}

impl Drop for RegistryAddress {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.certs_dir());
    }
}

impl Drop for SecondNode {
    fn drop(&mut self) {
        let _ = docker(&[
            "exec",
            &self.container,
            "docker",
            "swarm",
            "leave",
            "--force",
        ]);
        let _ = docker(&["rm", "-f", &self.container]);
        if !self.id.is_empty() {
            let _ = docker(&["node", "rm", "--force", &self.id]);
        }
    }
}

#[test]
fn a_drain_under_load_moves_replicas_to_another_node_with_no_failed_request() {
    let sb = sandbox();
    let _cleanup = SwarmCleanup(vec!["sw-multi".into()]);
    // This machine's kernel may lack ESP, which encrypted overlays need
    // between nodes; encryption is checked on one node above.
    let registry = RegistryAddress::on_the_bridge();
    let on = start_on_swarm(
        &sb,
        &format!("encrypt_overlays = false\nregistry = \"{}\"\n", registry.0),
    );
    let server = &on.server;
    let (_, here, _) = docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
    let here = here.trim().to_owned();
    let restore = RestoreNode(here.clone());
    let second = SecondNode::join();
    ok(cli(&sb, server).args(["nodes", "label", &here, "zone=a"]));
    ok(cli(&sb, server).args(["nodes", "label", &second.id, "zone=b"]));

    // The registry wants a credential, over TLS from the platform's CA.
    let ca = server.ca_pem();
    let registry_client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let base = registry_client
        .get(format!("https://{}/v2/", registry.0))
        .send()
        .unwrap();
    assert_eq!(base.status(), 401);
    assert_eq!(
        base.headers()["www-authenticate"],
        "Basic realm=\"rampart\""
    );
    let anyone = registry_client
        .get(format!(
            "https://{}/v2/rampart/sw-multi/manifests/latest",
            registry.0
        ))
        .basic_auth("rampart/sw-multi", Some("0".repeat(64)))
        .send()
        .unwrap();
    assert_eq!(anyone.status(), 404, "tags are not served");

    // An engine that does not trust the platform's CA for the registry
    // cannot pull: the deploy fails saying so, and nothing runs.
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, server).args(["apps", "create", "sw-multi"]));
    ok(cli(&sb, server).args(["apps", "configure", "sw-multi", "--drain", "3"]));
    let (code, out, err) = run(cli(&sb, server)
        .args(["deploy", "sw-multi", "--path"])
        .arg(&dir));
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("certs.d"), "the error says what to do: {err}");
    assert!(services("sw-multi").is_empty(), "no service was created");

    // Both engines trust the CA for the registry, as an operator sets them
    // up; the image is built here, and the second node pulls it from the
    // platform's registry when a replica is placed there.
    registry.trust_here(&ca);
    second.trust(&registry.0, &ca);
    let release = json(
        cli(&sb, server)
            .args(["deploy", "sw-multi", "--path"])
            .arg(&dir),
    );
    assert_eq!(release["status"], "live", "{release}");
    let repository = format!("{}/rampart/sw-multi", registry.0);
    for id in services("sw-multi") {
        let image = inspect_service(&id)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].clone();
        assert!(
            image
                .as_str()
                .unwrap()
                .starts_with(&format!("{repository}@sha256:")),
            "services name the image in the registry: {image}"
        );
    }
    assert!(
        second
            .images()
            .iter()
            .any(|i| i.starts_with(&format!("{repository}@sha256:"))),
        "the second node pulled the release image: {:?}",
        second.images()
    );

    // One replica in each zone, and both serve through the edge (the
    // second node's through the relay and the overlay).
    let nodes = json(cli(&sb, server).args(["nodes", "list"]));
    let replicas_on = |nodes: &Value, id: &str| {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .map(|n| n["replicas"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(replicas_on(&nodes, &here), 1, "{nodes}");
    assert_eq!(replicas_on(&nodes, &second.id), 1, "{nodes}");
    let host = "sw-multi.localhost";
    let client = edge_client(server, host);
    let mut served_by = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let (status, body) = get(&client, &app_url(server, host));
        assert_eq!(status, 200, "{body}");
        served_by.insert(
            body.split_whitespace()
                .nth(5)
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(served_by.len(), 2, "both replicas answer: {served_by:?}");

    // An edge on the second node, with the credential the platform issued
    // for it: it serves the same app from both replicas, through a relay
    // on that node's engine.
    let credential_file = sb.path().join("ingress-credential");
    let issued = json(
        cli(&sb, server)
            .args(["nodes", "ingress", &second.id, "--out"])
            .arg(&credential_file),
    );
    assert_eq!(issued["node"], second.id, "{issued}");
    assert_eq!(
        issued["credential"], "",
        "written to the file, not shown: {issued}"
    );
    let credential = std::fs::read_to_string(&credential_file).unwrap();
    // Another node's credential does not start an edge here.
    let here_credential = json(cli(&sb, server).args(["nodes", "ingress", &here]));
    second.write(
        "/root/other-credential",
        here_credential["credential"].as_str().unwrap().as_bytes(),
    );
    second.write("/root/ca.pem", &ca);
    let (code, _, err) = docker(&[
        "exec",
        &second.container,
        "rampart",
        "ingress",
        "--server",
        &registry.0,
        "--ca",
        "/root/ca.pem",
        "--credential-file",
        "/root/other-credential",
        "--data-dir",
        "/root/refused",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("is the credential of node"), "{err}");
    let ingress = second.start_ingress(&registry.0, &ca, credential.trim());
    let via_ingress = client_for(&ca, host, ingress);
    let ingress_url = format!("https://{host}:{}/", ingress.port());
    let mut served_by = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let (status, body) = get(&via_ingress, &ingress_url);
        assert_eq!(status, 200, "{body} ({})", second.ingress_log());
        served_by.insert(
            body.split_whitespace()
                .nth(5)
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(
        served_by.len(),
        2,
        "both replicas answer through the ingress: {served_by:?}"
    );
    // Its sync needs its own credential.
    let listener = |path: &str, user: &str, password: &str| {
        registry_client
            .get(format!("https://{}{path}", registry.0))
            .basic_auth(user, Some(password))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let (user, password) = credential.trim().split_once(':').unwrap();
    assert_eq!(listener("/ingress/v1/certificates", user, password), 200);
    let forged = format!("{}0", &password[..password.len() - 1]);
    for (user, password) in [
        (user, forged.as_str()),
        ("ingress/x", password),
        ("rampart/sw-multi", password),
    ] {
        assert_eq!(
            listener("/ingress/v1/routes", user, password),
            401,
            "{user}"
        );
    }

    // Drain the second node under load, through both edges: its replica
    // moves here, healthy and in both edges before the old one leaves; no
    // request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let (mut handles, counters) = load(server, host, 4, stop.clone());
    let (ingress_handles, ingress_counters) = load_at(&ca, ingress, host, 2, stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let drained = json(cli(&sb, server).args(["nodes", "drain", &second.id]));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handles.extend(ingress_handles);
    let (good, bad, errors) = stop_load(&stop, handles, counters);
    let (ingress_good, ingress_bad, ingress_errors) =
        stop_load(&stop, Vec::new(), ingress_counters);
    assert_eq!(bad, 0, "failed requests during the drain: {errors:?}");
    assert!(good > 50, "the load ran: {good}");
    assert_eq!(
        ingress_bad, 0,
        "failed requests through the ingress during the drain: {ingress_errors:?}"
    );
    assert!(
        ingress_good > 20,
        "the load through the ingress ran: {ingress_good}"
    );
    assert_eq!(drained["moved"], 1, "{drained}");
    assert_eq!(drained["node"]["availability"], "drain", "{drained}");
    let nodes = json(cli(&sb, server).args(["nodes", "list"]));
    assert_eq!(replicas_on(&nodes, &here), 2, "{nodes}");
    assert_eq!(replicas_on(&nodes, &second.id), 0, "{nodes}");
    let audit = json(cli(&sb, server).args(["audit", "list"]));
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "node.manage"
                && e["outcome"] == "ok"
                && e["target"]
                    .as_str()
                    .unwrap()
                    .ends_with(": drained, 1 replica(s) moved")),
        "{audit}"
    );
    // A ban reaches the edge on the second node: this machine, which the
    // node sees at the bridge's address, is refused there (on this app's
    // host only), and served again once the ban is lifted.
    let this_machine = registry.0.split(':').next().unwrap().to_owned();
    let through_ingress = || get(&client_for(&ca, host, ingress), &ingress_url).0;
    ok(cli(&sb, server).args(["bans", "add", &this_machine, "--host", host]));
    eventually(Duration::from_secs(10), "the ban at the ingress", || {
        through_ingress() == 403
    });
    ok(cli(&sb, server).args(["bans", "remove", &this_machine, "--host", host]));
    eventually(
        Duration::from_secs(10),
        "the ban lifted at the ingress",
        || through_ingress() == 200,
    );

    // A suspect node's edge gets nothing more, and every fetch of the
    // certificates is in the audit log.
    ok(cli(&sb, server).args(["nodes", "drain", &second.id, "--suspect"]));
    assert_eq!(listener("/ingress/v1/routes", user, password), 403);
    assert_eq!(listener("/ingress/v1/certificates", user, password), 403);
    let (code, _, err) = run(cli(&sb, server).args(["nodes", "ingress", &second.id]));
    assert_ne!(code, 0);
    assert!(err.contains("suspect"), "{err}");
    let audit = json(cli(&sb, server).args(["audit", "list"]));
    let synced = |outcome: &str| {
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "ingress.sync" && e["outcome"] == outcome)
            .count()
    };
    assert!(
        synced("ok") >= 2,
        "the ingress's fetch and the test's: {audit}"
    );
    assert!(synced("denied") >= 1, "{audit}");
    ok(cli(&sb, server).args(["nodes", "activate", &second.id]));
    // The node and the labels go while this test still has its turn: a
    // label removed under the next test's replicas would stop them.
    ok(cli(&sb, server).args(["apps", "delete", "sw-multi", "--yes"]));
    // The app's images leave the registry and this engine (the second
    // node keeps what it pulled: the platform does not reach its engine).
    let stored = sb.data_dir().join("registry");
    assert!(!stored.join("repositories/sw-multi").exists());
    assert_eq!(
        std::fs::read_dir(stored.join("blobs/sha256"))
            .unwrap()
            .count(),
        0,
        "no blob is left that no repository names"
    );
    let (_, images, _) = docker(&["image", "ls", "--digests", "--format", "{{.Repository}}"]);
    assert!(
        !images.lines().any(|r| r.ends_with("rampart/sw-multi")),
        "{images}"
    );
    drop(second);
    drop(restore);
    on.stop();
}

#[test]
fn an_app_on_swarm_keeps_its_data_in_an_external_database_over_tls() {
    let sb = sandbox();
    let _cleanup = SwarmCleanup(vec!["sw-db".into()]);
    // The operator's server, where the Swarm's tasks reach it: on the
    // address the Swarm is advertised on, with its own CA.
    let (_, addr, _) = docker(&["info", "--format", "{{.Swarm.NodeAddr}}"]);
    let ip: std::net::IpAddr = addr.trim().parse().unwrap();
    let external = rampart_testkit::ExternalPostgres::start_on(ip).unwrap();
    let on = start_on_swarm(
        &sb,
        &format!(
            "[postgres]\nmode = \"external\"\nadmin_url = \"{}\"\nca_file = \"{}\"\n",
            external.admin_url,
            external.ca_file.display()
        ),
    );
    let server = &on.server;
    ok(cli(&sb, server).args(["apps", "create", "sw-db", "--with-db"]));
    let db = json(cli(&sb, server).args(["db", "info", "sw-db"]));
    assert_eq!(db["host"], ip.to_string(), "{db}");
    // Overlays are internal: an app reaches a server outside only with
    // egress, which owners and admins switch on.
    ok(cli(&sb, server).args(["apps", "configure", "sw-db", "--egress", "true"]));
    let dir = context(&sb.path().join("ctx"), "");
    let release = json(
        cli(&sb, server)
            .args(["deploy", "sw-db", "--path"])
            .arg(&dir),
    );
    assert_eq!(release["status"], "live", "{release}");

    // Each replica writes and reads its rows over TLS verified against the
    // operator's CA (the hello app refuses anything else), whichever
    // replica the edge picks.
    let host = "sw-db.localhost";
    let client = edge_client(server, host);
    let notes = format!("https://{host}:{}/notes", server.edge_addr().port());
    for i in 1..=4 {
        let response = client
            .post(&notes)
            .body(format!("note {i}"))
            .send()
            .unwrap();
        let status = response.status();
        let body = response.text().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.trim(), format!("{i} notes"));
    }
    let (status, body) = get(&client, &notes);
    assert_eq!((status, body.trim()), (200, "4 notes"));
    // The rows are in the operator's server, in the app's own database.
    let verify = json(cli(&sb, server).args(["db", "info", "sw-db", "--reveal"]));
    assert!(
        verify["url"]
            .as_str()
            .unwrap()
            .contains("sslmode=verify-full"),
        "{verify}"
    );
    ok(cli(&sb, server).args(["apps", "delete", "sw-db", "--yes"]));
    on.stop();
}
