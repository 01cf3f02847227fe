//! The SQLite store against a real database file.

use rampart_core::audit::{AuditRecord, Outcome, Verifier};
use rampart_core::{AppId, AppName, Domain, EnvName, Role, TokenId, UserId, token};
use rampart_store::{
    AppStore, AuditStore, CronStore, IdentityStore, NewApp, NewToken, NewUser, ReleaseStore,
    SealedVar, SqliteStore, Store, StoreError,
};

fn record(action: &str) -> AuditRecord {
    AuditRecord {
        time: "2026-11-29T10:00:00.000Z".into(),
        actor: "system".into(),
        action: action.into(),
        target: "-".into(),
        outcome: Outcome::Ok,
        request_id: "req_test".into(),
    }
}

async fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("rampart.db"))
        .await
        .unwrap();
    (dir, store)
}

fn new_app(name: &str, domains: &[&str]) -> NewApp {
    NewApp {
        id: AppId::generate(),
        name: AppName::parse(name).unwrap(),
        domains: domains.iter().map(|d| Domain::parse(d).unwrap()).collect(),
        created_at: "2026-11-29T10:00:00.000Z".into(),
    }
}

async fn audit_len(store: &SqliteStore) -> usize {
    store.audit_entries(0, 1000).await.unwrap().len()
}

#[tokio::test]
async fn bootstrap_happens_once() {
    let (_dir, store) = open().await;
    let owner = NewUser {
        id: UserId::generate(),
        email: Some("owner@localhost".into()),
        role: Role::Owner,
        created_at: "2026-11-29T10:00:00.000Z".into(),
    };
    let secret = token::generate();
    let tok = NewToken::unlimited(
        TokenId::generate(),
        owner.id.clone(),
        "bootstrap".into(),
        token::hash(secret.expose()),
        owner.created_at.clone(),
    );
    store
        .bootstrap(&owner, &tok, &[("key_check", "abc")], record("bootstrap"))
        .await
        .unwrap();
    assert_eq!(store.user_count().await.unwrap(), 1);
    assert_eq!(
        store.setting("key_check").await.unwrap().as_deref(),
        Some("abc")
    );
    let found = store.token_by_hash(&tok.hash).await.unwrap().unwrap();
    assert_eq!(found.role, Role::Owner);

    let again = store
        .bootstrap(&owner, &tok, &[], record("bootstrap"))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)));
    assert_eq!(audit_len(&store).await, 1);
}

#[tokio::test]
async fn a_failed_mutation_leaves_no_trace() {
    let (_dir, store) = open().await;
    store
        .create_app(
            &new_app("shop", &["shop.example.com"]),
            record("app.create"),
        )
        .await
        .unwrap();

    // The name is free but the domain is taken: neither the app nor its
    // audit entry may remain.
    let err = store
        .create_app(
            &new_app("blog", &["blog.example.com", "shop.example.com"]),
            record("app.create"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("shop.example.com")),
        "{err}"
    );
    assert_eq!(store.apps().await.unwrap().len(), 1);
    assert_eq!(audit_len(&store).await, 1);

    let err = store
        .create_app(
            &new_app("shop", &["other.example.com"]),
            record("app.create"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("shop")),
        "{err}"
    );
    // The released domain of the refused app is free again.
    store
        .create_app(
            &new_app("blog", &["blog.example.com"]),
            record("app.create"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn unset_is_all_or_nothing() {
    let (_dir, store) = open().await;
    let app = new_app("shop", &["shop.localhost"]);
    store.create_app(&app, record("app.create")).await.unwrap();
    let var = |n: &str| SealedVar {
        name: EnvName::parse(n).unwrap(),
        sealed: vec![1, 2, 3],
        updated_at: "2026-11-29T10:00:00.000Z".into(),
    };
    store
        .set_env(&app.id, &[var("A"), var("B")], record("env.set"))
        .await
        .unwrap();
    let err = store
        .unset_env(
            &app.id,
            &[
                EnvName::parse("A").unwrap(),
                EnvName::parse("NOPE").unwrap(),
            ],
            record("env.unset"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    assert_eq!(store.env(&app.id).await.unwrap().len(), 2);

    store
        .delete_app(&app.id, record("app.delete"))
        .await
        .unwrap();
    assert!(
        store.env(&app.id).await.unwrap().is_empty(),
        "variables go with the app"
    );
}

#[tokio::test]
async fn concurrent_appends_form_one_chain() {
    let (_dir, store) = open().await;
    let store = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.append_audit(record(&format!("a{i}"))).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let entries = store.audit_entries(0, 1000).await.unwrap();
    assert_eq!(entries.len(), 40);
    let mut verifier = Verifier::new();
    for e in &entries {
        verifier.push(e).unwrap();
    }
    assert_eq!(store.audit_tail(1).await.unwrap()[0].seq, 40);
}

fn new_release(image: &str) -> rampart_store::NewRelease {
    rampart_store::NewRelease {
        image: image.into(),
        image_id: format!("sha256:{image}"),
        config: rampart_core::deploy::ReleaseConfig {
            env_names: vec!["A".into()],
            settings: Default::default(),
            release_command: None,
            processes: Default::default(),
            crons: Default::default(),
        },
        created_by: "usr_test".into(),
        created_at: "2026-11-29T10:00:00.000Z".into(),
    }
}

#[tokio::test]
async fn releases_number_themselves_and_one_is_live() {
    use rampart_core::deploy::ReleaseStatus::{Failed, Live, Retired};
    let (_dir, store) = open().await;
    let app = new_app("web", &["web.localhost"]);
    store.create_app(&app, record("app.create")).await.unwrap();
    let at = "2026-11-29T10:01:00.000Z";
    let (one, _) = store
        .create_release(&app.id, &new_release("a"), record("app.deploy"))
        .await
        .unwrap();
    let (two, _) = store
        .create_release(&app.id, &new_release("b"), record("app.deploy"))
        .await
        .unwrap();
    assert_eq!((one, two), (1, 2));
    assert_eq!(store.unfinished_releases().await.unwrap().len(), 2);

    store
        .finish_release(&app.id, 1, Live, None, at, record("deploy"))
        .await
        .unwrap();
    store
        .finish_release(&app.id, 2, Failed, Some("health check"), at, record("d"))
        .await
        .unwrap();
    let again = store
        .finish_release(&app.id, 2, Live, None, at, record("deploy"))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "{again}");
    let row = store.app(&app.name).await.unwrap().unwrap();
    assert_eq!(row.live_release, Some(1));

    let (three, _) = store
        .create_release(&app.id, &new_release("c"), record("app.deploy"))
        .await
        .unwrap();
    store
        .finish_release(&app.id, three, Live, None, at, record("deploy"))
        .await
        .unwrap();
    let statuses: Vec<_> = store
        .releases(&app.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.number, r.status))
        .collect();
    assert_eq!(statuses, [(3, Live), (2, Failed), (1, Retired)]);
    assert!(store.unfinished_releases().await.unwrap().is_empty());

    let missing = store
        .create_release(&AppId::generate(), &new_release("x"), record("app.deploy"))
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)));
    assert_eq!(store.releases(&app.id).await.unwrap().len(), 3);
}

/// Finding: every cron run and every app event was kept for ever, so a
/// developer's token with 32 jobs `every 10s` (each failing, so each also
/// an event) grew the control-plane database by about half a million rows
/// a day. An app keeps its newest runs and events only.
#[tokio::test]
async fn an_apps_run_and_event_records_stay_bounded() {
    let (_dir, store) = open().await;
    let app = new_app("chatty", &["chatty.localhost"]);
    store.create_app(&app, record("app.create")).await.unwrap();
    for i in 0..1_100u32 {
        let at = format!("2026-11-29T10:{:02}:{:02}.000Z", i / 60 % 60, i % 60);
        store
            .add_cron_run(&rampart_store::CronRunRow {
                job_id: "cron_x".into(),
                app_id: app.id.clone(),
                started_at: at.clone(),
                finished_at: at.clone(),
                outcome: "failed".into(),
                status: Some(1),
                duration_ms: 1,
                detail: format!("run {i}"),
            })
            .await
            .unwrap();
        store
            .add_event(
                &app.id,
                &rampart_store::AppEvent {
                    time: at,
                    kind: "cron_failed".into(),
                    message: format!("event {i}"),
                },
            )
            .await
            .unwrap();
    }
    let runs = store.cron_runs(&app.id, 5_000).await.unwrap();
    assert_eq!(runs.len(), 1_000);
    assert_eq!(
        runs.last().unwrap().detail,
        "run 1099",
        "the newest are kept"
    );
    let events = store.events(&app.id, 5_000).await.unwrap();
    assert_eq!(events.len(), 1_000);
    assert_eq!(events.last().unwrap().message, "event 1099");
}

fn job(app: &AppId, id: &str, from_manifest: bool) -> rampart_store::CronJobRow {
    rampart_store::CronJobRow {
        id: id.into(),
        app_id: app.clone(),
        schedule: "@daily".into(),
        command: vec!["report".into()],
        timeout_secs: 60,
        next_run_at: "2026-11-30T00:00:00.000Z".into(),
        created_by: "usr_test".into(),
        created_at: "2026-11-29T10:00:00.000Z".into(),
        from_manifest,
    }
}

/// Declared jobs are replaced as a set; jobs added by hand, and other
/// apps' jobs, are never touched by it.
#[tokio::test]
async fn declared_jobs_are_replaced_as_a_set_and_leave_added_ones_alone() {
    let (_dir, store) = open().await;
    let app = new_app("sched", &["sched.localhost"]);
    let other = new_app("other", &["other.localhost"]);
    store.create_app(&app, record("app.create")).await.unwrap();
    store
        .create_app(&other, record("app.create"))
        .await
        .unwrap();
    store
        .add_cron_job(&job(&app.id, "cron_hand", false), record("app.cron.set"))
        .await
        .unwrap();
    store
        .add_cron_job(&job(&other.id, "cron_other", true), record("app.cron.set"))
        .await
        .unwrap();
    let ids = |jobs: Vec<rampart_store::CronJobRow>| {
        let mut ids: Vec<(String, bool)> =
            jobs.into_iter().map(|j| (j.id, j.from_manifest)).collect();
        ids.sort();
        ids
    };
    let declared = [job(&app.id, "cron_a", true), job(&app.id, "cron_b", true)];
    store
        .set_declared_cron_jobs(&app.id, &declared, record("app.cron.set"))
        .await
        .unwrap();
    assert_eq!(
        ids(store.cron_jobs(Some(&app.id)).await.unwrap()),
        [
            ("cron_a".into(), true),
            ("cron_b".into(), true),
            ("cron_hand".into(), false)
        ]
    );
    // b stays (its next run untouched), a goes, c comes.
    store
        .advance_cron_job("cron_b", "2026-12-01T00:00:00.000Z")
        .await
        .unwrap();
    let declared = [job(&app.id, "cron_b", true), job(&app.id, "cron_c", true)];
    store
        .set_declared_cron_jobs(&app.id, &declared, record("app.cron.set"))
        .await
        .unwrap();
    let jobs = store.cron_jobs(Some(&app.id)).await.unwrap();
    let b = jobs.iter().find(|j| j.id == "cron_b").unwrap();
    assert_eq!(b.next_run_at, "2026-12-01T00:00:00.000Z");
    assert_eq!(
        ids(jobs),
        [
            ("cron_b".into(), true),
            ("cron_c".into(), true),
            ("cron_hand".into(), false)
        ]
    );
    // None declared: only the hand-added job is left; the other app's
    // declared job is never touched.
    store
        .set_declared_cron_jobs(&app.id, &[], record("app.cron.set"))
        .await
        .unwrap();
    assert_eq!(
        ids(store.cron_jobs(Some(&app.id)).await.unwrap()),
        [("cron_hand".into(), false)]
    );
    assert_eq!(store.cron_jobs(Some(&other.id)).await.unwrap().len(), 1);
    // A job of another app, or one added by hand, is refused, and nothing
    // changes.
    let seq = store.audit_tail(1).await.unwrap()[0].seq;
    for stray in [
        job(&other.id, "cron_x", true),
        job(&app.id, "cron_y", false),
    ] {
        let err = store
            .set_declared_cron_jobs(&app.id, &[stray], record("app.cron.set"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    }
    assert_eq!(store.audit_tail(1).await.unwrap()[0].seq, seq);
    assert_eq!(store.cron_jobs(None).await.unwrap().len(), 2);
}

#[tokio::test]
async fn erasing_a_user_takes_their_email_out_of_reviews_audits_and_timelines() {
    use rampart_store::{AccessReviewRow, DoctorRunRow, ProofStore};
    let (_dir, store) = open().await;
    let at = "2026-11-29T10:00:00.000Z".to_owned();
    let owner = NewUser {
        id: UserId::generate(),
        email: Some("owner@localhost".into()),
        role: Role::Owner,
        created_at: at.clone(),
    };
    let secret = token::generate();
    let tok = NewToken::unlimited(
        TokenId::generate(),
        owner.id.clone(),
        "bootstrap".into(),
        token::hash(secret.expose()),
        at.clone(),
    );
    store
        .bootstrap(&owner, &tok, &[], record("bootstrap"))
        .await
        .unwrap();
    let leaver = NewUser {
        id: UserId::generate(),
        email: Some("leaver@example.com".into()),
        role: Role::Admin,
        created_at: at.clone(),
    };
    let invitation = rampart_store::NewInvitation {
        id: "inv_1".into(),
        hash: token::hash(token::generate().expose()),
        created_at: at.clone(),
        expires_at: "2026-12-29T10:00:00.000Z".into(),
    };
    store
        .invite(&leaver, &invitation, record("user.invite"))
        .await
        .unwrap();
    let snapshot = r#"{"users":[{"user":"owner@localhost"},{"user":"leaver@example.com"}]}"#;
    store
        .add_access_review(
            &AccessReviewRow {
                id: "rev_1".into(),
                at: at.clone(),
                reviewer: owner.id.to_string(),
                note: "quarterly".into(),
                snapshot: snapshot.into(),
            },
            record("access.review"),
        )
        .await
        .unwrap();
    store
        .add_doctor_run(&DoctorRunRow {
            at: at.clone(),
            actor: "system".into(),
            passed: 0,
            warned: 0,
            failed: 1,
            checks: r#"[{"detail":"owners and admins without MFA: leaver@example.com (admin)"}]"#
                .into(),
        })
        .await
        .unwrap();

    store
        .erase_user(&leaver.id, &at, record("user.erase"))
        .await
        .unwrap();
    let review = &store.access_reviews("0", "9").await.unwrap()[0];
    assert_eq!(
        review.snapshot,
        r#"{"users":[{"user":"owner@localhost"},{"user":"(erased)"}]}"#
    );
    let run = &store.doctor_runs("0", "9").await.unwrap()[0];
    assert!(!run.checks.contains("leaver@"), "{}", run.checks);
    assert!(run.checks.contains("(erased) (admin)"));
}
