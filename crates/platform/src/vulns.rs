//! What every release contains and which published advisories affect it.
//!
//! At deploy the platform reads the new image's files through the engine
//! (a container is created from it, exported as a tar stream and removed;
//! nothing in the image runs) and records the packages it finds with the
//! release. Advisories are OSV records the operator imports (`all.zip`
//! files or folders of records); they live in the store and, indexed, in
//! memory. Findings are computed from the two whenever they are asked for,
//! so an import or an acceptance shows at once; the checks match every live
//! release daily and after each import, and a critical finding nobody
//! accepted raises an alert naming the app and the advisory.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use rampart_core::audit::Outcome;
use rampart_core::time::Timestamp;
use rampart_core::{Action, RequestId, wire};
use rampart_runtime::{LABEL_APP, LABEL_INSTALLATION, LABEL_TASK};
use rampart_store::{AcceptedRiskRow, AdvisoryImportRow, AppRow};
use rampart_vulns::db::{Added, Database};
use rampart_vulns::inventory::Package;
use rampart_vulns::severity::Severity;
use tokio::sync::mpsc;

use crate::alerts::Condition;
use crate::{Acting, Engine, Error, Platform};

/// Data whose newest record is older than this is stale: `rampart vulns`
/// says so and the checks raise `advisories_stale`. OSV's Debian and PyPI
/// exports change every day, so five days without a change means the
/// imports stopped, not that nothing was published.
pub const STALE_DAYS: u64 = 5;
/// The longest an acceptance holds before someone must look again.
pub const MAX_ACCEPT_DAYS: u32 = 365;
/// The most an advisory archive may weigh.
pub const MAX_ARCHIVE: usize = 1 << 30;
/// The label value of the containers an inventory is read through.
const INVENTORY_TASK: &str = "inventory";

/// The dependency list the platform was built from. It lists every
/// crate of the workspace's build, test-only ones included, so it may name
/// a little more than the binary holds, never less.
const OWN_LOCK: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"));

/// The advisories, indexed for matching.
pub(crate) type Advisories = Arc<RwLock<Database>>;

/// Loads the stored advisories into memory.
pub(crate) async fn load(store: &dyn rampart_store::Store) -> Result<Advisories, Error> {
    let records = store.advisory_records().await?;
    let db = tokio::task::spawn_blocking(move || {
        let mut db = Database::default();
        for text in records {
            match serde_json::from_str(&text) {
                Ok(record) => {
                    db.add(record);
                }
                Err(error) => tracing::error!(%error, "a stored advisory does not parse"),
            }
        }
        db
    })
    .await
    .map_err(|e| Error::Unavailable(format!("cannot load the advisories: {e}")))?;
    Ok(Arc::new(RwLock::new(db)))
}

/// A blocking reader over the chunks the engine streams.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

fn severity_at_least(min: Option<Severity>, severity: &str) -> bool {
    let Some(min) = min else {
        return true;
    };
    Severity::parse(severity).is_some_and(|s| s >= min)
}

/// Findings, advisory data and acceptances. A handle on the [`Platform`],
/// from [`Platform::vulns`].
#[derive(Debug, Clone, Copy)]
pub struct Vulns<'a> {
    pub(crate) p: &'a Platform,
}

impl Platform {
    pub fn vulns(&self) -> Vulns<'_> {
        Vulns { p: self }
    }
}

impl Vulns<'_> {
    /// Reads the packages of `image_id` and records them as release
    /// `number`'s.
    pub(crate) async fn scan(
        &self,
        engine: &Engine,
        app: &AppRow,
        number: u64,
        image_id: &str,
    ) -> Result<Vec<Package>, Error> {
        let (tx, rx) = mpsc::channel(16);
        let labels = BTreeMap::from([
            (LABEL_INSTALLATION.to_owned(), engine.installation.clone()),
            (LABEL_APP.to_owned(), app.name.to_string()),
            (LABEL_TASK.to_owned(), INVENTORY_TASK.to_owned()),
        ]);
        let reader = tokio::task::spawn_blocking(move || {
            rampart_vulns::inventory::scan_tar(ChannelReader {
                rx,
                chunk: Bytes::new(),
            })
        });
        let exported = engine.runtime.export_image(image_id, labels, tx).await;
        let scanned = reader
            .await
            .map_err(|e| Error::Unavailable(format!("the scan stopped: {e}")))?;
        exported?;
        let mut packages =
            scanned.map_err(|e| Error::Unavailable(format!("cannot scan the image: {e}")))?;
        packages.sort_by(|a, b| {
            (a.ecosystem.as_osv(), &a.name, &a.version, &a.location).cmp(&(
                b.ecosystem.as_osv(),
                &b.name,
                &b.version,
                &b.location,
            ))
        });
        packages.dedup();
        let json = serde_json::to_string(&packages)
            .map_err(|e| Error::Unavailable(format!("cannot record the inventory: {e}")))?;
        self.p
            .store
            .put_inventory(&app.id, number, &Timestamp::now().to_rfc3339(), &json)
            .await?;
        Ok(packages)
    }

    /// A release's recorded packages, if it was scanned.
    async fn inventory(&self, app: &AppRow, number: u64) -> Result<Option<Vec<Package>>, Error> {
        let Some((_, json)) = self.p.store.inventory(&app.id, number).await? else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| Error::Store(rampart_store::StoreError::Corrupt(e.to_string())))
    }

    /// The findings of `packages` (release `number` of `app`), with the
    /// acceptances that hold now, and the pairs that could not be judged.
    fn judge(
        &self,
        app: &AppRow,
        number: u64,
        packages: &[Package],
        accepted: &[AcceptedRiskRow],
        now: &str,
    ) -> (Vec<wire::Finding>, Vec<String>) {
        let (found, unjudged) = self
            .p
            .advisories
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .findings(packages);
        let holds: Vec<&AcceptedRiskRow> = accepted
            .iter()
            .filter(|a| a.app_id == app.id && a.expires_at.as_str() > now)
            .collect();
        // A package both installed and named in a lockfile is one finding.
        let mut seen = BTreeSet::new();
        let findings = found
            .into_iter()
            .filter(|f| {
                seen.insert((
                    f.package.ecosystem.as_osv(),
                    f.package.name.clone(),
                    f.package.version.clone(),
                    f.advisory.id.clone(),
                ))
            })
            .map(|f| {
                let accepted = holds
                    .iter()
                    .find(|a| {
                        a.advisory == f.advisory.id || f.advisory.aliases.contains(&a.advisory)
                    })
                    .map(|a| accepted_view(app.name.as_str(), a));
                finding_view(app.name.as_str(), number, f, accepted)
            })
            .collect();
        let unjudged = unjudged
            .into_iter()
            .map(|u| {
                format!(
                    "{}: {} {} against {}: {}",
                    app.name, u.package.name, u.package.version, u.advisory, u.error
                )
            })
            .collect();
        (findings, unjudged)
    }

    /// The findings (as `ADVISORY in PACKAGE VERSION`) of release `old`
    /// that release `new` no longer has, and those it has that `old` did
    /// not; `None` unless both were scanned.
    pub(crate) async fn compare(
        &self,
        app: &AppRow,
        old: u64,
        new: u64,
    ) -> Result<Option<(Vec<String>, Vec<String>)>, Error> {
        let (Some(before), Some(after)) = (
            self.inventory(app, old).await?,
            self.inventory(app, new).await?,
        ) else {
            return Ok(None);
        };
        let now = Timestamp::now().to_rfc3339();
        let names = |packages: &[Package], number| -> BTreeSet<String> {
            self.judge(app, number, packages, &[], &now)
                .0
                .into_iter()
                .map(|f| format!("{} in {} {}", f.advisory, f.package, f.version))
                .collect()
        };
        let (before, after) = (names(&before, old), names(&after, new));
        Ok(Some((
            before.difference(&after).cloned().collect(),
            after.difference(&before).cloned().collect(),
        )))
    }

    /// The findings of an image about to be deployed that block it under
    /// the app's `refuse_critical` policy: critical, not accepted.
    pub(crate) async fn blocking(
        &self,
        app: &AppRow,
        number: u64,
        packages: &[Package],
    ) -> Result<Vec<wire::Finding>, Error> {
        let accepted = self.p.store.accepted_risks().await?;
        let now = Timestamp::now().to_rfc3339();
        let (findings, _) = self.judge(app, number, packages, &accepted, &now);
        Ok(findings
            .into_iter()
            .filter(|f| f.severity == Severity::Critical.as_str() && f.accepted.is_none())
            .collect())
    }

    /// The advisory data's size and age.
    pub async fn status(&self) -> Result<wire::VulnDbStatus, Error> {
        let (advisories, newest) = {
            let db = self.p.advisories.read().unwrap_or_else(|e| e.into_inner());
            (db.len() as u64, db.newest())
        };
        let last_import = self
            .p
            .store
            .advisory_imports(1)
            .await?
            .into_iter()
            .next()
            .map(|i| i.imported_at);
        let age_days = newest
            .as_deref()
            .and_then(Timestamp::parse)
            .map(|t| (Timestamp::now().unix_seconds() - t.unix_seconds()).max(0) as u64 / 86_400);
        Ok(wire::VulnDbStatus {
            advisories,
            stale: age_days.is_none_or(|d| d > STALE_DAYS),
            newest_record: newest,
            age_days,
            last_import,
        })
    }

    /// The findings of every live release (or `app`'s), at `min` severity
    /// or above.
    pub async fn report(
        &self,
        app: Option<&str>,
        min: Option<&str>,
    ) -> Result<wire::VulnReport, Error> {
        let min = match min {
            None => None,
            Some(text) => Some(Severity::parse(text).ok_or_else(|| {
                Error::Invalid(format!(
                    "severity must be critical, high, medium, low or unknown, not {text:?}"
                ))
            })?),
        };
        let apps = match app {
            Some(name) => vec![self.p.app_row(name).await?],
            None => self.p.store.apps().await?,
        };
        let accepted = self.p.store.accepted_risks().await?;
        let now = Timestamp::now().to_rfc3339();
        let mut report = wire::VulnReport {
            db: self.status().await?,
            findings: Vec::new(),
            unscanned: Vec::new(),
            unjudged: Vec::new(),
        };
        for app in &apps {
            let Some(live) = app.live_release else {
                continue;
            };
            let Some(packages) = self.inventory(app, live).await? else {
                report
                    .unscanned
                    .push(format!("{}: release {live} has not been scanned", app.name));
                continue;
            };
            let (findings, unjudged) = self.judge(app, live, &packages, &accepted, &now);
            report.findings.extend(
                findings
                    .into_iter()
                    .filter(|f| severity_at_least(min, &f.severity)),
            );
            report.unjudged.extend(unjudged);
        }
        report.findings.sort_by(|a, b| {
            let rank = |f: &wire::Finding| std::cmp::Reverse(Severity::parse(&f.severity));
            (rank(a), &a.app, &a.package, &a.advisory).cmp(&(
                rank(b),
                &b.app,
                &b.package,
                &b.advisory,
            ))
        });
        Ok(report)
    }

    /// The findings of the platform itself: every crates.io package of
    /// the workspace's Cargo.lock, built into the binary.
    pub async fn report_self(&self) -> Result<wire::VulnReport, Error> {
        let mut packages = rampart_vulns::inventory::cargo_lock(OWN_LOCK);
        for package in &mut packages {
            package.location = "Cargo.lock (built into rampart)".into();
        }
        let (found, unjudged) = self
            .p
            .advisories
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .findings(&packages);
        Ok(wire::VulnReport {
            db: self.status().await?,
            findings: found
                .into_iter()
                .map(|f| finding_view("rampart", 0, f, None))
                .collect(),
            unscanned: Vec::new(),
            unjudged: unjudged
                .into_iter()
                .map(|u| {
                    format!(
                        "rampart: {} {} against {}: {}",
                        u.package.name, u.package.version, u.advisory, u.error
                    )
                })
                .collect(),
        })
    }

    /// Imports an archive of OSV records (a zip file or a tar of a folder):
    /// new records and newer versions of known ones are stored in one
    /// transaction, or nothing is. Live releases are matched again after.
    pub async fn import(
        &self,
        acting: Acting<'_>,
        archive: Bytes,
    ) -> Result<wire::VulnImport, Error> {
        self.import_by(acting.caller.user_id.as_str(), acting.request_id, archive)
            .await
    }

    /// [`Vulns::import`] on behalf of `actor` (a user id, or `fetch` for
    /// the scheduled fetch).
    async fn import_by(
        &self,
        actor: &str,
        request_id: &RequestId,
        archive: Bytes,
    ) -> Result<wire::VulnImport, Error> {
        if archive.len() > MAX_ARCHIVE {
            return Err(Error::Invalid(format!(
                "an advisory archive may be at most {MAX_ARCHIVE} bytes"
            )));
        }
        // Each record is judged against the index as it is read, and only
        // a changed one is kept: its file's text for the store, and what
        // the index holds of it.
        let advisories = self.p.advisories.clone();
        let unpacked = tokio::task::spawn_blocking(move || {
            let db = advisories.read().unwrap_or_else(|e| e.into_inner());
            rampart_vulns::db::unpack_with(&archive, |mut record, text| {
                let added = db.would_add(&record);
                if added == Added::Unchanged {
                    return Some((added, None));
                }
                let text = String::from_utf8_lossy(text).into_owned();
                let row = (
                    record.id.clone(),
                    rampart_vulns::db::modified(&record),
                    text,
                );
                rampart_vulns::db::slim(&mut record);
                Some((added, Some((row, record))))
            })
        })
        .await
        .map_err(|e| Error::Unavailable(format!("the import stopped: {e}")))?
        .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut counts = [0u64; 3];
        let mut changed = Vec::new();
        let mut rows = Vec::new();
        for (added, kept) in unpacked.records {
            counts[added as usize] += 1;
            if let Some((row, record)) = kept {
                rows.push(row);
                changed.push(record);
            }
        }
        let newest = changed
            .iter()
            .max_by_key(|r| r.modified)
            .map(rampart_vulns::db::modified);
        let import = AdvisoryImportRow {
            imported_at: Timestamp::now().to_rfc3339(),
            imported_by: actor.to_owned(),
            new: counts[Added::New as usize],
            updated: counts[Added::Updated as usize],
            unchanged: counts[Added::Unchanged as usize],
            refused: unpacked.refused.len() as u64,
            newest_record: newest,
        };
        let record = Platform::record_by(
            actor,
            Action::VulnImport,
            format!("vulns/db (+{} new, {} updated)", import.new, import.updated),
            Outcome::Ok,
            request_id,
        );
        self.p
            .committed(self.p.store.import_advisories(&rows, &import, record).await)
            .await?;
        {
            let mut db = self.p.advisories.write().unwrap_or_else(|e| e.into_inner());
            for record in changed {
                db.add(record);
            }
        }
        let findings = self.rematch().await?;
        Ok(wire::VulnImport {
            new: import.new,
            updated: import.updated,
            unchanged: import.unchanged,
            skipped: unpacked.skipped as u64,
            refused: unpacked.refused,
            status: self.status().await?,
            findings,
        })
    }

    /// Fetches every `[vulns] urls` archive and imports it; a failure
    /// raises `advisories_fetch_failed` naming the URL, which resolves when
    /// a fetch of it succeeds.
    pub(crate) async fn fetch_all(&self) {
        for url in &self.p.vulns_config.urls {
            let fetched = async {
                let archive = fetch(url).await?;
                self.import_by(FETCH_ACTOR, &RequestId::generate(), archive)
                    .await
            }
            .await;
            match fetched {
                Ok(report) => {
                    tracing::info!(%url, new = report.new, updated = report.updated, "advisories fetched");
                    self.p
                        .alerts()
                        .resolve("advisories_fetch_failed", None, Some(url))
                        .await;
                }
                Err(error) => {
                    tracing::warn!(%url, %error, "cannot fetch advisories");
                    self.p
                        .alerts()
                        .raise(Condition {
                            rule: "advisories_fetch_failed",
                            severity: rampart_watch::alert::Severity::Warning,
                            app: None,
                            detail: Some(url),
                            summary: format!("cannot fetch advisories from {url}: {error}"),
                        })
                        .await;
                }
            }
        }
    }

    /// Patches, unattended, each app with `auto_patch` inside its window
    /// whose live release has findings with a published fix: the kept
    /// context is rebuilt, and when the result differs from the live image
    /// (a base image changed) it is deployed like any build; a failed
    /// health check leaves the live release serving, and the same image is
    /// not tried again.
    pub(crate) async fn auto_patch(&self) {
        let Ok(engine) = self.p.engine() else { return };
        let Ok(apps) = self.p.store.apps().await else {
            return;
        };
        let now = Timestamp::now().inner();
        let minute = u32::from(now.hour()) * 60 + u32::from(now.minute());
        for app in apps {
            let Some(live) = app.live_release else {
                continue;
            };
            if !app.settings.auto_patch
                || !rampart_core::deploy::in_patch_window(&app.settings.patch_window, minute)
            {
                continue;
            }
            let fixable = match self.report(Some(app.name.as_str()), None).await {
                Ok(report) => report
                    .findings
                    .iter()
                    .any(|f| f.fixed.is_some() && f.accepted.is_none()),
                Err(_) => false,
            };
            if !fixable {
                continue;
            }
            let Ok(context) = self.p.deploys().live_context(app.name.as_str()).await else {
                continue;
            };
            let Ok(Some(release)) = self.p.store.release(&app.id, live).await else {
                continue;
            };
            // The context is checked as any deploy's is before anything is
            // built from it (which images it may build from, its manifest).
            let deploys = self.p.deploys();
            let prepared = match deploys
                .prepare_deploy(
                    app.name.as_str(),
                    crate::deploy::Source::Build(context.clone()),
                )
                .await
            {
                Ok(prepared) => prepared,
                Err(error) => {
                    tracing::warn!(app = %app.name, %error, "an unattended patch is refused");
                    continue;
                }
            };
            let (tx, _rx) = mpsc::unbounded_channel();
            let probe = format!("rampart/{}:patch-probe", app.name);
            let image = match engine
                .runtime
                .build(&probe, context.clone(), false, tx)
                .await
            {
                Ok(image) => image,
                Err(error) => {
                    tracing::warn!(app = %app.name, %error, "an unattended patch cannot rebuild");
                    continue;
                }
            };
            let tried = {
                let mut tried = self.p.patch_tried.lock().unwrap_or_else(|e| e.into_inner());
                tried.insert(app.id.clone(), image.id.clone()).as_deref() == Some(&image.id)
            };
            if image.id == release.image_id || tried {
                continue;
            }
            tracing::info!(app = %app.name, release = live, "patching the live release unattended");
            let caller = crate::Caller {
                user_id: rampart_core::UserId::from_stored(PATCH_ACTOR.into()),
                role: rampart_core::Role::Admin,
                token_id: rampart_core::TokenId::from_stored(PATCH_ACTOR.into()),
                session: false,
                scope: None,
                expires_at: None,
                grants: Vec::new(),
                mfa_enrolled: true,
                needs_mfa: false,
            };
            let request_id = RequestId::generate();
            let acting = Acting {
                caller: &caller,
                request_id: &request_id,
            };
            let (tx, _rx) = mpsc::unbounded_channel();
            if let Err(error) = deploys.deploy(acting, prepared, tx).await {
                tracing::warn!(app = %app.name, %error, "an unattended patch failed; the live release keeps serving");
            }
        }
    }

    /// Matches every live release: scans those never scanned, raises an
    /// alert for each critical finding nobody accepted and resolves those
    /// that are gone. Returns how many findings there are.
    pub(crate) async fn rematch(&self) -> Result<u64, Error> {
        let apps = self.p.store.apps().await?;
        if let Ok(engine) = self.p.engine() {
            for app in &apps {
                if let Some(live) = app.live_release
                    && self.p.store.inventory(&app.id, live).await?.is_none()
                    && let Some(release) = self.p.store.release(&app.id, live).await?
                    && !release.image_id.is_empty()
                    && let Err(error) = self.scan(engine, app, live, &release.image_id).await
                {
                    tracing::warn!(app = %app.name, release = live, %error, "cannot scan a live release");
                }
            }
        }
        let report = self.report(None, None).await?;
        let mut critical: BTreeSet<(String, String)> = BTreeSet::new();
        for finding in &report.findings {
            if finding.severity != Severity::Critical.as_str() || finding.accepted.is_some() {
                continue;
            }
            let also = if finding.aliases.is_empty() {
                String::new()
            } else {
                format!(" ({})", finding.aliases.join(", "))
            };
            let fixed = finding.fixed.as_deref().map_or_else(
                || "no fix published".to_owned(),
                |f| format!("fixed in {f}"),
            );
            self.p
                .alerts()
                .raise(Condition {
                    rule: "vulnerability",
                    severity: rampart_watch::alert::Severity::Critical,
                    app: Some(&finding.app),
                    detail: Some(&finding.advisory),
                    summary: format!(
                        "{}: critical {}{also} in {} {} (release {}); {fixed}",
                        finding.app,
                        finding.advisory,
                        finding.package,
                        finding.version,
                        finding.release
                    ),
                })
                .await;
            critical.insert((finding.app.clone(), finding.advisory.clone()));
        }
        for alert in self.p.store.alerts(false, 10_000).await? {
            if alert.rule != "vulnerability" || alert.state != "firing" {
                continue;
            }
            let Some(app) = alert.app.as_deref() else {
                continue;
            };
            let advisory = alert
                .key
                .strip_prefix(&format!("vulnerability:{app}:"))
                .unwrap_or_default();
            if !critical.contains(&(app.to_owned(), advisory.to_owned())) {
                self.p
                    .alerts()
                    .resolve("vulnerability", Some(app), Some(advisory))
                    .await;
            }
        }
        Ok(report.findings.len() as u64)
    }

    /// Accepts a finding of `app` for `request.days`.
    pub async fn accept(
        &self,
        acting: Acting<'_>,
        app: &str,
        request: wire::AcceptRisk,
    ) -> Result<wire::AcceptedRisk, Error> {
        let row = self.p.app_row(app).await?;
        let advisory = request.advisory.trim();
        let id_like = !advisory.is_empty()
            && advisory.len() <= 128
            && advisory
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !id_like {
            return Err(Error::Invalid(format!(
                "{advisory:?} is not an advisory id (letters, digits, - _ . : only)"
            )));
        }
        let reason = request.reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control)
        {
            return Err(Error::Invalid(
                "the reason is required: one line of at most 500 characters".into(),
            ));
        }
        if request.days == 0 || request.days > MAX_ACCEPT_DAYS {
            return Err(Error::Invalid(format!(
                "an acceptance holds for 1 to {MAX_ACCEPT_DAYS} days, not {}",
                request.days
            )));
        }
        let now = Timestamp::now();
        let expires_at =
            Timestamp::from_unix_seconds(now.unix_seconds() + i64::from(request.days) * 86_400)
                .unwrap_or(now)
                .to_rfc3339();
        let accepted = AcceptedRiskRow {
            app_id: row.id.clone(),
            advisory: advisory.to_owned(),
            reason: reason.to_owned(),
            expires_at,
            created_by: acting.caller.user_id.to_string(),
            created_at: now.to_rfc3339(),
        };
        let record = self.p.record(
            acting,
            Action::VulnAccept,
            format!("apps/{}/vulns/{advisory}", row.name),
        );
        self.p
            .committed(self.p.store.accept_risk(&accepted, record).await)
            .await?;
        self.rematch().await?;
        Ok(accepted_view(row.name.as_str(), &accepted))
    }

    /// Withdraws an acceptance.
    pub async fn unaccept(
        &self,
        acting: Acting<'_>,
        app: &str,
        advisory: &str,
    ) -> Result<(), Error> {
        let row = self.p.app_row(app).await?;
        let record = self.p.record(
            acting,
            Action::VulnAccept,
            format!("apps/{}/vulns/{advisory}/withdrawn", row.name),
        );
        self.p
            .committed(
                self.p
                    .store
                    .remove_accepted_risk(&row.id, advisory, record)
                    .await,
            )
            .await?;
        self.rematch().await?;
        Ok(())
    }

    /// Acceptances, those that expired included.
    pub async fn accepted(&self) -> Result<Vec<wire::AcceptedRisk>, Error> {
        let apps: BTreeMap<_, _> = self
            .p
            .store
            .apps()
            .await?
            .into_iter()
            .map(|a| (a.id.clone(), a.name.to_string()))
            .collect();
        Ok(self
            .p
            .store
            .accepted_risks()
            .await?
            .iter()
            .filter_map(|a| Some(accepted_view(apps.get(&a.app_id)?, a)))
            .collect())
    }

    /// The CycloneDX bill of materials of a release (the live one by
    /// default), scanning it first if it never was.
    pub async fn sbom(&self, app: &str, release: Option<u64>) -> Result<serde_json::Value, Error> {
        let row = self.p.app_row(app).await?;
        let number = release
            .or(row.live_release)
            .ok_or_else(|| Error::NotFound(format!("app {app:?} has no live release; name one")))?;
        let found = self
            .p
            .store
            .release(&row.id, number)
            .await?
            .ok_or_else(|| Error::NotFound(format!("app {app:?} has no release {number}")))?;
        let packages = match self.inventory(&row, number).await? {
            Some(packages) => packages,
            None if found.image_id.is_empty() => {
                return Err(Error::NotFound(format!(
                    "release {number} never had an image"
                )));
            }
            None => {
                let engine = self.p.engine()?;
                self.scan(engine, &row, number, &found.image_id).await?
            }
        };
        let (scanned_at, _) = self
            .p
            .store
            .inventory(&row.id, number)
            .await?
            .unwrap_or_default();
        Ok(rampart_vulns::sbom::cyclonedx(
            &format!("{}", row.name),
            &format!("r{number}"),
            &scanned_at,
            &packages,
        ))
    }
}

/// The actor of the scheduled fetch in the audit log.
const FETCH_ACTOR: &str = "fetch";
/// The actor of unattended patches.
const PATCH_ACTOR: &str = "autopatch";
/// How long one archive may take to download.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Downloads one advisory archive, at most [`MAX_ARCHIVE`] bytes; no
/// redirects are followed (an operator names where the data comes from).
async fn fetch(url: &str) -> Result<Bytes, Error> {
    use futures::StreamExt;
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("rampart-vulns/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    });
    let unavailable = |e: reqwest::Error| Error::Unavailable(e.without_url().to_string());
    let response = client.get(url).send().await.map_err(unavailable)?;
    if !response.status().is_success() {
        return Err(Error::Unavailable(format!(
            "the server answered {}",
            response.status()
        )));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unavailable)?;
        if body.len() + chunk.len() > MAX_ARCHIVE {
            return Err(Error::Invalid(format!(
                "the archive is larger than {MAX_ARCHIVE} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

impl Platform {
    /// Fetches the configured advisory archives `[vulns] first_fetch`
    /// after start and then every `fetch_every`, and looks for unattended
    /// patches to make every `patch_check_every`, until `stopped`.
    pub async fn fetch_advisories_forever(
        self: Arc<Self>,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        let config = &self.vulns_config;
        let mut fetch_at = (!config.urls.is_empty())
            .then(|| tokio::time::Instant::now() + Duration::from_secs(config.first_fetch_secs));
        let mut patch_at =
            tokio::time::Instant::now() + Duration::from_secs(config.patch_check_every_secs);
        loop {
            let next = fetch_at.map_or(patch_at, |at| at.min(patch_at));
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stopped.changed() => return,
            }
            let now = tokio::time::Instant::now();
            if fetch_at.is_some_and(|at| at <= now) {
                self.vulns().fetch_all().await;
                fetch_at = Some(now + Duration::from_secs(config.fetch_every_secs));
            }
            if patch_at <= now {
                self.vulns().auto_patch().await;
                patch_at = tokio::time::Instant::now()
                    + Duration::from_secs(config.patch_check_every_secs);
            }
        }
    }
}

fn finding_view(
    app: &str,
    release: u64,
    f: rampart_vulns::db::Finding,
    accepted: Option<wire::AcceptedRisk>,
) -> wire::Finding {
    wire::Finding {
        app: app.to_owned(),
        release,
        ecosystem: f.package.ecosystem.as_osv().to_owned(),
        package: f.package.name,
        version: f.package.version,
        location: f.package.location,
        advisory: f.advisory.id,
        aliases: f.advisory.aliases,
        fixed: f.advisory.fixed,
        severity: f.severity.as_str().to_owned(),
        summary: f.summary,
        accepted,
    }
}

fn accepted_view(app: &str, row: &AcceptedRiskRow) -> wire::AcceptedRisk {
    wire::AcceptedRisk {
        app: app.to_owned(),
        advisory: row.advisory.clone(),
        reason: row.reason.clone(),
        expires_at: row.expires_at.clone(),
        created_by: row.created_by.clone(),
        created_at: row.created_at.clone(),
    }
}
