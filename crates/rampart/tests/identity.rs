//! Identity through the real binary, with MFA required (the default):
//! invitations, logins, MFA enrollment and replay, brute-force backoff,
//! enumeration resistance, token expiry and scope, the route × role matrix
//! read from the OpenAPI document, the last owner, and personal data.
//!
//! Long by choice: every file under `tests/` is a test binary of its own,
//! linked on its own, so an area's tests share one file and one link
//! rather than paying for a binary each.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rampart_client::{Client, ClientError, HttpMethod};
use rampart_core::Role;
use rampart_core::wire::{self, CreateToken, InviteUser, Login};
use rampart_testkit::{Sandbox, Server, run, sql};
use serde_json::Value;

fn sandbox() -> Sandbox {
    Sandbox::new(env!("CARGO_BIN_EXE_rampart"))
}

/// The platform with MFA required, as by default; `extra` adds settings.
/// These tests play a password guesser from the test's own address to
/// check the login throttle itself; the watch, which would ban that
/// address first (`watch.rs`), is told it is the operator's.
fn start(sb: &Sandbox, extra: &str) -> Server {
    let config = sb.write_raw_config(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\
         [edge.listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nadmin = \"\"\n\
         [watch]\nnever_ban = [\"127.0.0.1\"]\n{extra}"
    ));
    sb.start(&config).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The TOTP code of a base32 seed at unix time `at`.
fn code(secret: &str, at: u64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes)
        .unwrap()
        .generate(at)
}

fn status(result: &Result<impl Sized, ClientError>) -> Option<u16> {
    result.as_ref().err().and_then(ClientError::status)
}

/// Enrolls MFA for the client's user; returns the seed and recovery codes.
async fn enroll(client: &Client) -> (String, Vec<String>) {
    let enrollment = client.enroll_mfa().await.unwrap();
    assert!(
        enrollment
            .otpauth_uri
            .starts_with("otpauth://totp/Rampart:")
    );
    let codes = client
        .confirm_mfa(&code(&enrollment.secret, now()))
        .await
        .unwrap();
    assert_eq!(codes.codes.len(), 10);
    (enrollment.secret, codes.codes)
}

/// Invites a user and has them set a password; returns their id.
async fn add_user(owner: &Client, server: &Server, email: &str, role: Role) -> String {
    let invited = owner
        .invite_user(&InviteUser {
            email: email.into(),
            role,
        })
        .await
        .unwrap();
    assert_eq!(invited.user.status, "invited");
    anonymous(server)
        .accept_invitation(&wire::AcceptInvitation {
            invitation: invited.invitation,
            password: password_of(email),
        })
        .await
        .unwrap();
    invited.user.id
}

fn password_of(email: &str) -> String {
    format!("long enough password for {email}")
}

fn anonymous(server: &Server) -> Client {
    server.client(None)
}

async fn login(server: &Server, email: &str, code: Option<String>) -> Result<Client, ClientError> {
    let session = anonymous(server)
        .login(&Login {
            email: email.into(),
            password: password_of(email),
            code,
        })
        .await?;
    Ok(server.client(Some(&session.token)))
}

/// The platform, its owner enrolled in MFA.
async fn setup(sb: &Sandbox, extra: &str) -> (Server, Client, String) {
    let server = start(sb, extra);
    let owner = server.client(Some(&server.bootstrap_token()));
    let (secret, _) = enroll(&owner).await;
    (server, owner, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_cannot_act_until_they_enroll_mfa_through_the_cli() {
    let sb = sandbox();
    let server = start(&sb, "");
    let owner = server.client(Some(&server.bootstrap_token()));
    let me = owner.whoami().await.unwrap();
    assert!(me.mfa_required && !me.mfa_enrolled);
    let refused = owner
        .create_app(&wire::CreateApp {
            name: "early".into(),
            domains: None,
            with_db: false,
        })
        .await;
    assert_eq!(status(&refused), Some(403));
    assert!(format!("{:?}", refused).contains("MFA"), "{refused:?}");
    assert!(owner.apps().await.is_err(), "not even reads before MFA");

    // `rampart mfa enroll` shows the key and a QR code, asks for a code.
    let mut child = sb
        .command()
        .args(["mfa", "enroll"])
        .env("RAMPART_SERVER", server.url())
        .env("RAMPART_CA", server.ca_path())
        .env("RAMPART_TOKEN", server.bootstrap_token())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut shown = String::new();
    let secret = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{shown}");
        shown.push_str(&line);
        if let Some(uri) = line.trim().strip_prefix("otpauth://") {
            let secret = uri.split("secret=").nth(1).unwrap();
            break secret.split('&').next().unwrap().to_owned();
        }
    };
    assert!(
        shown.contains('█') || shown.contains('▀'),
        "a QR code: {shown}"
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", code(&secret, now())).as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let codes = String::from_utf8(output.stdout).unwrap();
    assert_eq!(codes.lines().count(), 10, "{codes}");

    owner
        .create_app(&wire::CreateApp {
            name: "now".into(),
            domains: None,
            with_db: false,
        })
        .await
        .unwrap();
    assert_eq!(status(&owner.enroll_mfa().await), Some(409));
    let audit = owner.audit(100).await.unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    assert!(actions.contains(&("app.create", "denied")), "{actions:?}");
    assert!(actions.contains(&("mfa.enroll", "ok")), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_logins_and_totp_replay() {
    let sb = sandbox();
    let (server, owner, _) = setup(&sb, "").await;

    // Invitation: single use.
    let invited = owner
        .invite_user(&InviteUser {
            email: "ada@example.com".into(),
            role: Role::Admin,
        })
        .await
        .unwrap();
    let accept = |password: &str| wire::AcceptInvitation {
        invitation: invited.invitation.clone(),
        password: password.into(),
    };
    let short = anonymous(&server).accept_invitation(&accept("short")).await;
    assert_eq!(status(&short), Some(400), "too short a password");
    assert!(
        login(&server, "ada@example.com", None).await.is_err(),
        "not active yet"
    );
    // That failure backs logins off for a second.
    tokio::time::sleep(Duration::from_millis(1150)).await;
    anonymous(&server)
        .accept_invitation(&accept(&password_of("ada@example.com")))
        .await
        .unwrap();
    let again = anonymous(&server)
        .accept_invitation(&accept("another long password"))
        .await;
    assert_eq!(status(&again), Some(401), "an invitation works once");
    let tampered = wire::AcceptInvitation {
        invitation: format!("{}x", &invited.invitation[..invited.invitation.len() - 1]),
        password: "another long password".into(),
    };
    assert_eq!(
        status(&anonymous(&server).accept_invitation(&tampered).await),
        Some(401)
    );

    // An expired invitation is refused like a used one.
    let late = owner
        .invite_user(&InviteUser {
            email: "late@example.com".into(),
            role: Role::Viewer,
        })
        .await
        .unwrap();
    sql(
        &sb.data_dir().join("rampart.db"),
        "UPDATE invitations SET expires_at = '2020-01-01T00:00:00Z' WHERE used_at IS NULL",
    )
    .await;
    let expired = anonymous(&server)
        .accept_invitation(&wire::AcceptInvitation {
            invitation: late.invitation,
            password: password_of("late@example.com"),
        })
        .await;
    assert_eq!(status(&expired), Some(401));
    let users = owner.users().await.unwrap();
    assert!(
        users
            .iter()
            .any(|u| u.email.as_deref() == Some("late@example.com") && u.status == "invited")
    );

    // An admin without MFA gets a session but may only enroll.
    let ada = login(&server, "ada@example.com", None).await.unwrap();
    assert!(ada.whoami().await.unwrap().mfa_required);
    assert_eq!(status(&ada.users().await), Some(403));
    let (secret, recovery) = enroll(&ada).await;
    ada.users().await.unwrap();
    // The seed is sealed at rest: neither its bytes nor its base32 text
    // are in the database.
    let seed = totp_rs::Secret::Encoded(secret.clone()).to_bytes().unwrap();
    let db = std::fs::read(sb.data_dir().join("rampart.db")).unwrap();
    let wal = std::fs::read(sb.data_dir().join("rampart.db-wal")).unwrap_or_default();
    for file in [&db, &wal] {
        assert!(!file.windows(seed.len()).any(|w| w == seed.as_slice()));
        assert!(!file.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }

    // From now on a code is needed, each time step once.
    // Each failure doubles the wait before the next attempt is judged.
    let backoff = |secs: u64| tokio::time::sleep(Duration::from_millis(secs * 1000 + 150));
    let t = now();
    let wrong = login(&server, "ada@example.com", Some("000000".into())).await;
    assert_eq!(status(&wrong), Some(401));
    backoff(1).await;
    let missing = login(&server, "ada@example.com", None).await;
    assert_eq!(status(&missing), Some(401));
    backoff(2).await;
    let stale = login(&server, "ada@example.com", Some(code(&secret, t - 120))).await;
    assert_eq!(status(&stale), Some(401), "a stale code");
    backoff(4).await;
    let next = code(&secret, now() + 30);
    let session = login(&server, "ada@example.com", Some(next.clone())).await;
    assert!(session.is_ok(), "{session:?}");
    let replay = login(&server, "ada@example.com", Some(next)).await;
    assert_eq!(status(&replay), Some(401), "a code is accepted once");
    backoff(1).await;
    let by_recovery = login(&server, "ada@example.com", Some(recovery[0].clone())).await;
    assert!(by_recovery.is_ok(), "{by_recovery:?}");
    let recovery_again = login(&server, "ada@example.com", Some(recovery[0].clone())).await;
    assert_eq!(
        status(&recovery_again),
        Some(401),
        "a recovery code works once"
    );

    // Logout revokes the session.
    let session = session.unwrap();
    session.logout().await.unwrap();
    assert_eq!(status(&session.whoami().await), Some(401));

    // The CLI: email, password and code on its prompts.
    backoff(1).await;
    let mut child = sb
        .command()
        .args(["login", "--server", &server.url(), "--ca"])
        .arg(server.ca_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let answers = format!(
        "ada@example.com\n{}\n{}\n",
        password_of("ada@example.com"),
        recovery[1]
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ada@example.com (admin)"), "{stdout}");
    let (code_, out, err) = run(sb.command().args(["users", "list"]));
    assert_eq!(code_, 0, "{err}");
    assert!(out.contains("ada@example.com"), "{out}");
    let (code_, _, _) = run(sb.command().arg("logout"));
    assert_eq!(code_, 0);

    let audit = owner.audit(500).await.unwrap();
    let seen = |action: &str, outcome: &str| {
        audit
            .iter()
            .any(|e| e.action == action && e.outcome.as_str() == outcome)
    };
    assert!(seen("session.create", "ok"));
    assert!(seen("session.create", "failed"));
    assert!(seen("session.end", "ok"));
    assert!(seen("invitation.accept", "ok"));
    assert!(seen("invitation.accept", "denied"));
    assert!(seen("mfa.enroll", "ok"));
    assert!(seen("user.invite", "ok"));
}

/// Sends a login and returns the status, the body and the time it took.
async fn attempt(
    server: &Server,
    email: &str,
    password: &str,
) -> (u16, Value, Duration, Option<u64>) {
    let started = Instant::now();
    let body = serde_json::json!({"email": email, "password": password}).to_string();
    let (status, bytes, retry) = raw_with_retry(server, body).await;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value, started.elapsed(), retry)
}

/// A raw HTTPS client that trusts the platform's CA alone.
fn https_client(server: &Server) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&server.ca_pem()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .unwrap()
}

async fn raw_with_retry(server: &Server, body: String) -> (u16, Vec<u8>, Option<u64>) {
    let http = https_client(server);
    let response = http
        .post(format!("{}/api/sessions", server.url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, response.bytes().await.unwrap().to_vec(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_back_off_and_do_not_reveal_accounts() {
    let sb = sandbox();
    let (server, owner, _) = setup(&sb, "[auth]\nmax_backoff_secs = 3\n").await;
    add_user(&owner, &server, "vic@example.com", Role::Viewer).await;

    // Unknown email and wrong password: same status, same body, same work.
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for round in 0..4 {
        for (email, times) in [
            ("nobody@example.com", &mut unknown),
            ("vic@example.com", &mut wrong),
        ] {
            // Wait out the per-address backoff so each attempt is judged.
            loop {
                let (status, body, took, retry) = attempt(&server, email, "not the password").await;
                if status == 429 {
                    assert!(retry.is_some_and(|r| (1..=3).contains(&r)), "{retry:?}");
                    tokio::time::sleep(Duration::from_secs(retry.unwrap())).await;
                    continue;
                }
                assert_eq!(status, 401, "round {round} {email}: {body}");
                assert_eq!(
                    body["error"]["message"],
                    "the email, password or code is wrong"
                );
                times.push(took);
                break;
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (u, w) = (median(&mut unknown), median(&mut wrong));
    // Without the dummy hash an unknown email would answer some forty times
    // faster; the window allows for other tests sharing the two cores.
    let ratio = u.as_secs_f64() / w.as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "an unknown email takes {u:?}, a wrong password {w:?}"
    );

    // After a failure the right password is not even checked until the
    // backoff has passed.
    let (status, _, _, _) = attempt(&server, "vic@example.com", "wrong again").await;
    assert!(status == 401 || status == 429);
    let (status, _, _, retry) =
        attempt(&server, "vic@example.com", &password_of("vic@example.com")).await;
    assert_eq!(status, 429, "still backing off");
    tokio::time::sleep(Duration::from_secs(retry.unwrap_or(3))).await;
    let (status, body, _, _) =
        attempt(&server, "vic@example.com", &password_of("vic@example.com")).await;
    assert_eq!(status, 201, "{body}");
    let audit = owner.audit(500).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "session.create" && e.target == "sessions/throttled")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_are_revoked_tampered_and_scoped() {
    let sb = sandbox();
    let (server, owner, _) = setup(&sb, "").await;
    for app in ["shop", "blog"] {
        owner
            .create_app(&wire::CreateApp {
                name: app.into(),
                domains: None,
                with_db: false,
            })
            .await
            .unwrap();
    }
    let scoped = owner
        .create_token(&CreateToken {
            name: "ci".into(),
            role: Some(Role::Developer),
            app: Some("shop".into()),
            expires_in_days: Some(30),
        })
        .await
        .unwrap();
    let ci = server.client(Some(&scoped.token));
    let me = ci.whoami().await.unwrap();
    assert_eq!(
        (me.role, me.app.as_deref()),
        (Role::Developer, Some("shop"))
    );
    let vars = std::collections::BTreeMap::from([("A".to_owned(), "1".to_owned())]);
    ci.set_env("shop", vars.clone()).await.unwrap();
    assert_eq!(status(&ci.set_env("blog", vars.clone()).await), Some(403));
    assert_eq!(status(&ci.tokens().await), Some(403));
    assert_eq!(
        status(&ci.reveal_env("shop", None).await),
        Some(403),
        "developer role"
    );
    let above = ci
        .create_token(&CreateToken {
            name: "x".into(),
            role: Some(Role::Owner),
            app: None,
            expires_in_days: None,
        })
        .await;
    assert_eq!(status(&above), Some(403));

    // Tampered: one character changed.
    let mut chars: Vec<char> = scoped.token.chars().collect();
    let i = chars.len() - 8;
    chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
    let tampered: String = chars.into_iter().collect();
    assert_eq!(
        status(&server.client(Some(&tampered)).whoami().await),
        Some(401)
    );

    // Expired.
    sql(
        &sb.data_dir().join("rampart.db"),
        &format!(
            "UPDATE api_tokens SET expires_at = '2020-01-01T00:00:00Z' WHERE id = '{}'",
            scoped.id
        ),
    )
    .await;
    let expired = ci.whoami().await;
    assert_eq!(status(&expired), Some(401));
    assert!(format!("{expired:?}").contains("expired"), "{expired:?}");

    // Revoked.
    let other = owner
        .create_token(&CreateToken {
            name: "short-lived".into(),
            role: None,
            app: None,
            expires_in_days: None,
        })
        .await
        .unwrap();
    owner.revoke_token(&other.id).await.unwrap();
    let revoked = server.client(Some(&other.token)).whoami().await;
    assert!(format!("{revoked:?}").contains("revoked"), "{revoked:?}");
    let bad = owner
        .create_token(&CreateToken {
            name: "y".into(),
            role: None,
            app: Some("missing".into()),
            expires_in_days: Some(0),
        })
        .await;
    assert!(matches!(status(&bad), Some(400 | 404)));
    let audit = owner.audit(500).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "token.create" && e.outcome.as_str() == "ok")
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "token.revoke" && e.outcome.as_str() == "ok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_are_kept_and_personal_data_is_exported_and_erased() {
    let sb = sandbox();
    let (server, owner, _) = setup(&sb, "").await;
    let owner_id = owner.whoami().await.unwrap().user_id;
    let ada_id = add_user(&owner, &server, "ada@example.com", Role::Admin).await;
    let ada = login(&server, "ada@example.com", None).await.unwrap();
    enroll(&ada).await;

    // Admins do not manage owners; nobody removes the last owner.
    assert_eq!(status(&ada.remove_user(&owner_id).await), Some(403));
    assert_eq!(status(&ada.set_role(&ada_id, Role::Owner).await), Some(403));
    assert_eq!(status(&owner.remove_user(&owner_id).await), Some(409));
    assert_eq!(
        status(&owner.set_role(&owner_id, Role::Admin).await),
        Some(409)
    );
    assert_eq!(status(&owner.erase_user(&owner_id).await), Some(409));
    let users = owner.users().await.unwrap();
    assert!(
        users
            .iter()
            .any(|u| u.id == owner_id && u.role == Role::Owner && u.status == "active")
    );

    // Roles change, and are audited.
    let dev_id = add_user(&owner, &server, "dev@example.com", Role::Viewer).await;
    ada.set_role(&dev_id, Role::Developer).await.unwrap();
    owner
        .create_app(&wire::CreateApp {
            name: "shop".into(),
            domains: None,
            with_db: false,
        })
        .await
        .unwrap();
    ada.grant(&dev_id, "shop", true).await.unwrap();
    let dev = login(&server, "dev@example.com", None).await.unwrap();
    assert_eq!(dev.whoami().await.unwrap().grants, ["shop"]);

    // Export through the CLI: everything held about the user.
    let export_file = sb.path().join("dev.json");
    let (code_, _, err) = run(sb
        .command()
        .args(["users", "export", "dev@example.com", "--output"])
        .arg(&export_file)
        .env("RAMPART_SERVER", server.url())
        .env("RAMPART_CA", server.ca_path())
        .env("RAMPART_TOKEN", server.bootstrap_token()));
    assert_eq!(code_, 0, "{err}");
    let export: Value = serde_json::from_slice(&std::fs::read(&export_file).unwrap()).unwrap();
    assert_eq!(export["user"]["email"], "dev@example.com");
    assert_eq!(export["user"]["grants"], serde_json::json!(["shop"]));
    assert!(
        !export["tokens"].as_array().unwrap().is_empty(),
        "the session"
    );
    assert_eq!(export["invitations"].as_array().unwrap().len(), 1);
    assert!(
        export["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "session.create"),
        "{export}"
    );
    let text = std::fs::read_to_string(&export_file).unwrap();
    assert!(!text.contains("argon2"), "no password hash in the export");

    // Erase: personal data gone, the chain still verifies.
    let (code_, _, err) = run(sb
        .command()
        .args(["users", "erase", "dev@example.com", "--yes"])
        .env("RAMPART_SERVER", server.url())
        .env("RAMPART_CA", server.ca_path())
        .env("RAMPART_TOKEN", server.bootstrap_token()));
    assert_eq!(code_, 0, "{err}");
    assert_eq!(
        status(&dev.whoami().await),
        Some(401),
        "their sessions are revoked"
    );
    let erased = owner.export_user(&dev_id).await.unwrap();
    assert!(erased.user.email.is_none() && erased.user.erased_at.is_some());
    assert!(erased.user.grants.is_empty() && erased.invitations.is_empty());
    let db = std::fs::read(sb.data_dir().join("rampart.db")).unwrap();
    assert!(
        !db.windows(b"dev@example.com".len())
            .any(|w| w == b"dev@example.com"),
        "the email is gone from the database file"
    );
    let verify = owner.verify_audit().await.unwrap();
    assert!(verify.ok, "{verify:?}");
    assert!(login(&server, "dev@example.com", None).await.is_err());
    let audit = owner.audit(500).await.unwrap();
    for action in ["user.set_role", "user.grant", "user.export", "user.erase"] {
        assert!(
            audit
                .iter()
                .any(|e| e.action == action && e.outcome.as_str() == "ok"),
            "{action}"
        );
    }
    assert!(
        audit
            .iter()
            .any(|e| e.action == "user.remove" && e.outcome.as_str() == "denied")
    );
}

/// Which roles may call a route, by method and template. Written out here,
/// apart from the policy, so a change of the policy shows up as a failure.
fn allowed(method: &str, path: &str) -> Option<&'static [Role]> {
    use Role::*;
    const ALL: &[Role] = &[Owner, Admin, Developer, Viewer];
    const MANAGERS: &[Role] = &[Owner, Admin];
    const BUILDERS: &[Role] = &[Owner, Admin, Developer];
    Some(match (method, path) {
        ("GET", "/api/whoami") => ALL,
        ("GET", "/api/apps") | ("GET", "/api/apps/{app}") | ("GET", "/api/apps/{app}/env") => ALL,
        ("POST", "/api/apps") | ("DELETE", "/api/apps/{app}") => MANAGERS,
        ("PUT", "/api/apps/{app}/env") | ("DELETE", "/api/apps/{app}/env") => BUILDERS,
        ("POST", "/api/apps/{app}/env/reveal") => MANAGERS,
        ("GET", "/api/tokens") | ("POST", "/api/tokens") | ("DELETE", "/api/tokens/{id}") => {
            MANAGERS
        }
        ("GET", "/api/audit") | ("GET", "/api/audit/verify") => MANAGERS,
        ("POST", "/api/apps/{app}/deploys/build")
        | ("POST", "/api/apps/{app}/deploys/image")
        | ("POST", "/api/apps/{app}/rollback")
        | ("POST", "/api/apps/{app}/patch")
        | ("POST", "/api/apps/{app}/runs")
        | ("POST", "/api/apps/{app}/cron")
        | ("DELETE", "/api/apps/{app}/cron/{id}") => BUILDERS,
        ("GET", "/api/apps/{app}/cron") | ("GET", "/api/apps/{app}/cron/runs") => ALL,
        ("GET", "/api/bans") | ("POST", "/api/bans") | ("DELETE", "/api/bans/{net}") => MANAGERS,
        ("GET", "/api/nodes")
        | ("PUT", "/api/nodes/{node}/labels/{key}")
        | ("DELETE", "/api/nodes/{node}/labels/{key}")
        | ("POST", "/api/nodes/{node}/drain")
        | ("POST", "/api/nodes/{node}/activate")
        | ("POST", "/api/nodes/{node}/ingress") => MANAGERS,
        ("GET", "/api/alerts")
        | ("GET", "/api/alerts/{id}")
        | ("POST", "/api/alerts/{id}/ack")
        | ("GET", "/api/notify")
        | ("POST", "/api/notify")
        | ("DELETE", "/api/notify/{id}")
        | ("POST", "/api/notify/test")
        | ("GET", "/api/top") => MANAGERS,
        ("GET", "/api/vulns")
        | ("GET", "/api/vulns/self")
        | ("GET", "/api/vulns/db")
        | ("GET", "/api/vulns/accepted")
        | ("POST", "/api/vulns/db/import")
        | ("POST", "/api/apps/{app}/vulns/accepted")
        | ("DELETE", "/api/apps/{app}/vulns/accepted/{advisory}") => MANAGERS,
        ("GET", "/api/apps/{app}/vulns") | ("GET", "/api/apps/{app}/sbom") => ALL,
        ("GET", "/api/incidents")
        | ("POST", "/api/incidents")
        | ("GET", "/api/incidents/{id}")
        | ("GET", "/api/incidents/actions")
        | ("GET", "/api/incidents/stats")
        | ("POST", "/api/incidents/{id}/state")
        | ("POST", "/api/incidents/{id}/notes")
        | ("PUT", "/api/incidents/{id}/owner")
        | ("POST", "/api/incidents/{id}/review")
        | ("POST", "/api/incidents/{id}/actions/{number}/done") => MANAGERS,
        ("POST", "/api/doctor")
        | ("GET", "/api/access-reviews")
        | ("POST", "/api/access-reviews")
        | ("POST", "/api/evidence")
        | ("GET", "/api/reports")
        | ("GET", "/api/reports/{id}")
        | ("POST", "/api/reports/{id}/triage")
        | ("POST", "/api/reports/{id}/close")
        | ("POST", "/api/privacy/sweep") => MANAGERS,
        ("GET", "/api/apps/{app}/releases")
        | ("GET", "/api/apps/{app}/settings")
        | ("GET", "/api/apps/{app}/ps")
        | ("GET", "/api/apps/{app}/top") => ALL,
        ("PATCH", "/api/apps/{app}/settings") | ("POST", "/api/apps/{app}/scale") => BUILDERS,
        ("GET", "/api/apps/{app}/logs") => BUILDERS,
        ("POST", "/api/apps/{app}/database") | ("POST", "/api/apps/{app}/database/reveal") => {
            MANAGERS
        }
        ("GET", "/api/apps/{app}/database") => ALL,
        ("POST", "/api/apps/{app}/backups") | ("POST", "/api/apps/{app}/backups/verify") => {
            BUILDERS
        }
        ("GET", "/api/apps/{app}/backups")
        | ("GET", "/api/apps/{app}/backups/results")
        | ("GET", "/api/apps/{app}/backup-schedule") => ALL,
        ("POST", "/api/apps/{app}/backups/{snapshot}/restore")
        | ("PUT", "/api/apps/{app}/backup-schedule")
        | ("DELETE", "/api/apps/{app}/backup-schedule") => MANAGERS,
        ("DELETE", "/api/sessions/current") => ALL,
        ("POST", "/api/mfa/enroll") | ("POST", "/api/mfa/confirm") => ALL,
        ("GET", "/api/users")
        | ("POST", "/api/users")
        | ("PATCH", "/api/users/{id}")
        | ("DELETE", "/api/users/{id}")
        | ("GET", "/api/users/{id}/export")
        | ("POST", "/api/users/{id}/erase")
        | ("PUT", "/api/users/{id}/grants/{app}")
        | ("DELETE", "/api/users/{id}/grants/{app}") => MANAGERS,
        _ => return None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_role_is_decided_as_the_table_says() {
    let sb = sandbox();
    let (server, owner, _) = setup(&sb, "").await;
    for app in ["granted", "other"] {
        owner
            .create_app(&wire::CreateApp {
                name: app.into(),
                domains: None,
                with_db: false,
            })
            .await
            .unwrap();
    }
    let admin_id = add_user(&owner, &server, "admin@example.com", Role::Admin).await;
    let dev_id = add_user(&owner, &server, "developer@example.com", Role::Developer).await;
    add_user(&owner, &server, "viewer@example.com", Role::Viewer).await;
    owner.grant(&dev_id, "granted", true).await.unwrap();
    let target = add_user(&owner, &server, "target@example.com", Role::Viewer).await;
    let admin = login(&server, "admin@example.com", None).await.unwrap();
    let (_, admin_recovery) = enroll(&admin).await;
    let _ = admin_id;

    let doc: Value = serde_json::from_slice(
        &anonymous(&server)
            .raw(HttpMethod::GET, "/api/openapi.json", None, Vec::new())
            .await
            .unwrap()
            .1,
    )
    .unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            if secured {
                routes.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(routes.len() >= 30, "{routes:?}");
    for (method, path) in &routes {
        assert!(
            allowed(method, path).is_some(),
            "{method} {path} is missing from the role table"
        );
    }

    // Roles that cannot delete run first, so destructive calls of owners and
    // admins come last; allowed calls get bodies that fail validation where
    // they can.
    let mut recovery = admin_recovery.into_iter();
    for role in [Role::Viewer, Role::Developer, Role::Admin, Role::Owner] {
        let email = format!("{role}@example.com");
        let regular = match role {
            Role::Owner => owner.clone(),
            Role::Admin => admin.clone(),
            _ => login(&server, &email, None).await.unwrap(),
        };
        for (method, path) in &routes {
            // Signing out spends a credential of its own.
            let client = if path == "/api/sessions/current" {
                match role {
                    Role::Owner => server.client(Some(
                        &owner
                            .create_token(&CreateToken {
                                name: "throwaway".into(),
                                role: None,
                                app: None,
                                expires_in_days: None,
                            })
                            .await
                            .unwrap()
                            .token,
                    )),
                    Role::Admin => login(&server, &email, recovery.next()).await.unwrap(),
                    _ => login(&server, &email, None).await.unwrap(),
                }
            } else {
                regular.clone()
            };
            let apps: &[&str] = if role == Role::Developer && path.contains("{app}") {
                &["granted", "other"]
            } else {
                &["granted"]
            };
            for app in apps {
                let concrete = path.replace("{app}", app).replace(
                    "{id}",
                    if path.starts_with("/api/users") {
                        &target
                    } else {
                        "tok_nonexistent0000000000"
                    },
                ) + if path.ends_with("/env") && method == "DELETE" {
                    "?names=A"
                } else {
                    ""
                };
                let (content_type, body) = if path.ends_with("/deploys/build") {
                    (Some("application/x-tar"), b"not a tar".to_vec())
                } else if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
                    (Some("application/json"), b"{\"unexpected\": true}".to_vec())
                } else {
                    (None, Vec::new())
                };
                let method_: HttpMethod = method.parse().unwrap();
                let (status, bytes) = client
                    .raw(method_, &concrete, content_type, body)
                    .await
                    .unwrap();
                let status = status.as_u16();
                let expected = allowed(method, path).unwrap().contains(&role)
                    && !(role == Role::Developer && *app == "other");
                if expected {
                    assert!(
                        status != 401 && status != 403,
                        "{role} {method} {concrete} should pass the policy, got {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    );
                } else {
                    assert_eq!(
                        status,
                        403,
                        "{role} {method} {concrete} should be refused: {}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
            }
        }
    }
    let verify = owner.verify_audit().await.unwrap();
    assert!(verify.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_at_the_public_doors_changes_nothing() {
    let sb = sandbox();
    let (server, owner, _) = setup(&sb, "").await;
    add_user(&owner, &server, "vic@example.com", Role::Viewer).await;
    let before = owner.audit(1000).await.unwrap().len();
    let users_before = owner.users().await.unwrap();
    let anon = anonymous(&server);
    let long = "a".repeat(100_000);
    for path in ["/api/sessions", "/api/invitations/accept"] {
        for (content_type, body) in [
            (Some("application/json"), b"not json".to_vec()),
            (
                Some("application/json"),
                b"{\"email\": 1, \"password\": []}".to_vec(),
            ),
            (Some("application/json"), b"{}".to_vec()),
            (Some("application/json"), vec![0xff, 0xfe, 0x00]),
            (
                Some("application/json"),
                format!("{{\"email\": \"{long}\"}}").into_bytes(),
            ),
            (
                Some("text/plain"),
                b"{\"email\": \"a\", \"password\": \"b\"}".to_vec(),
            ),
            (None, Vec::new()),
        ] {
            let (status, text) = anon
                .raw(HttpMethod::POST, path, content_type, body.clone())
                .await
                .unwrap();
            let status = status.as_u16();
            assert!(
                matches!(status, 400 | 413 | 415),
                "{path} {content_type:?}: {status} {}",
                String::from_utf8_lossy(&text)
            );
            let body: Value = serde_json::from_slice(&text).unwrap();
            assert!(body["error"]["message"].is_string());
        }
    }
    // Nothing was recorded or changed, and nothing was throttled.
    let after = owner.audit(1000).await.unwrap();
    assert_eq!(after.len(), before, "{:?}", &after[before..]);
    assert_eq!(owner.users().await.unwrap(), users_before);
    login(&server, "vic@example.com", None).await.unwrap();
}

/// Findings: a token limited to `admin` that belongs to an owner minted a
/// token with the owner's full role (no role stored meant "the user's"), and
/// could outlive itself; an admin could revoke an owner's tokens, locking out
/// a bootstrap owner who has no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_exceed_their_maker_and_admins_keep_off_owners_tokens() {
    let sb = sandbox();
    let (server, owner, _) = setup(&sb, "").await;
    let limited = owner
        .create_token(&CreateToken {
            name: "admin-only".into(),
            role: Some(Role::Admin),
            app: None,
            expires_in_days: Some(10),
        })
        .await
        .unwrap();
    let as_admin = server.client(Some(&limited.token));
    assert_eq!(as_admin.whoami().await.unwrap().role, Role::Admin);
    let minted = as_admin
        .create_token(&CreateToken {
            name: "minted".into(),
            role: None,
            app: None,
            expires_in_days: Some(3650),
        })
        .await
        .unwrap();
    let minted_client = server.client(Some(&minted.token));
    assert_eq!(
        minted_client.whoami().await.unwrap().role,
        Role::Admin,
        "a token made by an admin-limited token acts as admin at most"
    );
    let tokens = owner.tokens().await.unwrap();
    let expiry = |id: &str| {
        tokens
            .iter()
            .find(|t| t.id == id)
            .and_then(|t| t.expires_at.clone())
            .unwrap()
    };
    assert!(
        expiry(&minted.id) <= expiry(&limited.id),
        "the new token outlives its maker: {} > {}",
        expiry(&minted.id),
        expiry(&limited.id)
    );

    // A real admin may not revoke an owner's token; the owner may.
    add_user(&owner, &server, "admin@example.com", Role::Admin).await;
    let admin = login(&server, "admin@example.com", None).await.unwrap();
    enroll(&admin).await;
    let bootstrap_id = owner.whoami().await.unwrap().token_id;
    let refused = admin.revoke_token(&bootstrap_id).await;
    assert_eq!(status(&refused), Some(403), "{refused:?}");
    assert!(owner.whoami().await.is_ok(), "the owner was locked out");
    admin.revoke_token(&minted.id).await.unwrap_err();
    owner.revoke_token(&minted.id).await.unwrap();
    assert_eq!(status(&minted_client.whoami().await), Some(401));
}

/// Findings: every refused login, throttled ones included, was appended to
/// the audit log and fsynced, so anyone could grow it without limit; and
/// the backoff was check-then-act, so guesses sent in parallel all passed
/// the check and each got its own password check (and 19 MiB hash) before
/// any failure was recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_floods_and_parallel_guesses_are_bounded() {
    let sb = sandbox();
    let (server, owner, _) = setup(&sb, "[auth]\nmax_backoff_secs = 2\n").await;
    add_user(&owner, &server, "vic@example.com", Role::Viewer).await;
    let logins = |owner: &Client| {
        let owner = owner.clone();
        async move {
            owner
                .audit(5000)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.action == "session.create")
                .collect::<Vec<_>>()
        }
    };
    let before = logins(&owner).await.len();

    // Parallel guesses at one account: one is judged, the rest wait.
    let http = https_client(&server);
    let guesses: Vec<_> = (0..8)
        .map(|i| {
            let request = http
                .post(format!("{}/api/sessions", server.url()))
                .header("content-type", "application/json")
                .body(
                    serde_json::json!({
                        "email": "vic@example.com",
                        "password": format!("guess number {i}"),
                    })
                    .to_string(),
                );
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    let judged = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(
        judged, 1,
        "parallel guesses were each checked: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7);

    // A flood of 300 bad logins leaves a bounded trace that says so.
    for i in 0..300 {
        let body = serde_json::json!({
            "email": format!("{}@example.com", "x".repeat(i % 300 + 1)),
            "password": "flood",
        })
        .to_string();
        let (status, _, _) = raw_with_retry(&server, body).await;
        assert!(status == 401 || status == 429, "{status}");
    }
    let long = serde_json::json!({"email": "y".repeat(100_000), "password": "p"}).to_string();
    let (status, _, _) = raw_with_retry(&server, long).await;
    assert!(status == 400 || status == 413 || status == 429, "{status}");
    let entries = logins(&owner).await;
    let added = entries.len() - before;
    assert!(added <= 32, "a flood grew the audit log by {added} entries");
    assert!(
        entries.iter().any(|e| e.target == "sessions/flood"),
        "the flood itself is on record"
    );
    assert!(owner.verify_audit().await.unwrap().ok);
}
