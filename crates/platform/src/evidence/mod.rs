//! Evidence for auditors (ISAE 3402, SOC 2): per control, what the platform
//! recorded over a period, as JSON and as a readable HTML report, signed
//! with the installation's Ed25519 key (`evidence.key` under the data
//! directory, made on the first export) so that `rampart evidence verify`
//! proves the bundle was not edited after export. Also the access reviews
//! that the access control's evidence lists.

mod html;

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::SigningKey;
use rampart_core::evidence;
use rampart_core::time::Timestamp;
use rampart_core::{Action, wire};
use rampart_store::AccessReviewRow;
use serde_json::{Value, json};

use crate::incidents::range;
use crate::{Acting, Error, Platform};

/// Audit actions that change who may do what.
const ACCESS_ACTIONS: [Action; 9] = [
    Action::UserInvite,
    Action::UserSetRole,
    Action::UserRemove,
    Action::UserGrant,
    Action::UserErase,
    Action::TokenCreate,
    Action::TokenRevoke,
    Action::MfaEnroll,
    Action::InvitationAccept,
];
/// The most audit entries one export reads.
const MAX_AUDIT: u32 = 200_000;
/// The longest period one export covers.
const MAX_PERIOD_DAYS: i64 = 3 * 366;

impl Platform {
    /// The installation's evidence signing key, made on first use.
    fn evidence_key(&self) -> Result<SigningKey, Error> {
        let path = self.dir.evidence_key();
        let read = |text: &str| -> Result<SigningKey, Error> {
            let seed: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{} is not an evidence key (64 hex digits); move it away to make a new one",
                        path.display()
                    ))
                })?;
            Ok(SigningKey::from_bytes(&seed))
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => read(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
                let text = format!("{}\n", hex::encode(seed));
                match crate::secrets::write_private(&path, text.as_bytes(), false) {
                    Ok(()) => Ok(SigningKey::from_bytes(&seed)),
                    // Another export made it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        read(&std::fs::read_to_string(&path).map_err(|e| {
                            Error::Unavailable(format!("cannot read {}: {e}", path.display()))
                        })?)
                    }
                    Err(e) => Err(Error::Unavailable(format!(
                        "cannot write {}: {e}",
                        path.display()
                    ))),
                }
            }
            Err(error) => Err(Error::Unavailable(format!(
                "cannot read {}: {error}",
                path.display()
            ))),
        }
    }

    /// Users, roles, MFA state, grants and tokens as they stand now.
    async fn access_snapshot(&self) -> Result<Value, Error> {
        let emails = self.user_names().await?;
        let name = |id: &str| emails.get(id).cloned().unwrap_or_else(|| id.to_owned());
        let mut users = Vec::new();
        for user in self.store.users().await? {
            let grants: Vec<String> = self
                .store
                .grants(&user.id)
                .await?
                .into_iter()
                .map(|g| g.to_string())
                .collect();
            users.push(json!({
                "user": user.email.clone().unwrap_or_else(|| user.id.to_string()),
                "id": user.id.to_string(),
                "role": user.role.as_str(),
                "status": user.status.as_str(),
                "mfa": user.mfa_enabled,
                "created_at": user.created_at,
                "grants": grants,
            }));
        }
        let tokens: Vec<Value> = self
            .store
            .tokens()
            .await?
            .into_iter()
            .filter(|t| t.kind == rampart_store::TokenKind::Api)
            .map(|t| {
                json!({
                    "id": t.id.to_string(),
                    "name": t.name,
                    "user": name(t.user_id.as_str()),
                    "role": t.role.as_str(),
                    "app": t.app.map(|(_, n)| n.to_string()),
                    "created_at": t.created_at,
                    "expires_at": t.expires_at,
                    "last_used_at": t.last_used_at,
                    "revoked_at": t.revoked_at,
                })
            })
            .collect();
        Ok(json!({ "users": users, "tokens": tokens }))
    }

    /// Records an access review: the reviewer looked at who may do what
    /// (the snapshot kept with it) and concluded `note`.
    pub async fn record_access_review(
        &self,
        acting: Acting<'_>,
        request: wire::RecordAccessReview,
    ) -> Result<wire::AccessReview, Error> {
        let note = request.note.trim();
        if note.is_empty() || note.chars().count() > 4000 {
            return Err(Error::Invalid(
                "the note must say what the review concluded, in at most 4000 characters".into(),
            ));
        }
        if note
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(Error::Invalid("the note holds control characters".into()));
        }
        let snapshot = self.access_snapshot().await?;
        let row = AccessReviewRow {
            id: format!("rev_{}", crate::ops::random_token(12)),
            at: Timestamp::now().to_rfc3339(),
            reviewer: acting.caller.user_id.to_string(),
            note: note.to_owned(),
            snapshot: snapshot.to_string(),
        };
        let record = self.record(
            acting,
            Action::AccessReview,
            format!("access-reviews/{}", row.id),
        );
        self.committed(self.store.add_access_review(&row, record).await)
            .await?;
        let emails = self.user_names().await?;
        Ok(review_view(row, &emails))
    }

    /// Access reviews, oldest first.
    pub async fn access_reviews(&self) -> Result<Vec<wire::AccessReview>, Error> {
        let emails = self.user_names().await?;
        Ok(self
            .store
            .access_reviews("0000", "9999")
            .await?
            .into_iter()
            .map(|r| review_view(r, &emails))
            .collect())
    }

    /// Exports the evidence of the period from `from` up to `to`, signed.
    pub async fn export_evidence(
        &self,
        acting: Acting<'_>,
        from: &str,
        to: &str,
    ) -> Result<wire::EvidenceBundle, Error> {
        let (from, to) = range(from, to)?;
        let span = Timestamp::parse(&to).map_or(0, Timestamp::unix_seconds)
            - Timestamp::parse(&from).map_or(0, Timestamp::unix_seconds);
        if span > MAX_PERIOD_DAYS * 86_400 {
            return Err(Error::Invalid(format!(
                "the period is longer than {MAX_PERIOD_DAYS} days; export it in parts"
            )));
        }
        let key = self.evidence_key()?;
        let exported_at = Timestamp::now().to_rfc3339();
        let emails = self.user_names().await?;
        let by = emails
            .get(acting.caller.user_id.as_str())
            .cloned()
            .unwrap_or_else(|| acting.caller.user_id.to_string());
        let evidence = self.collect_evidence(&from, &to, &emails).await?;
        let document = json!({
            "format": evidence::FORMAT,
            "platform": { "version": env!("CARGO_PKG_VERSION") },
            "period": { "from": from, "to": to },
            "exported_at": exported_at,
            "exported_by": by,
            "controls": evidence,
        });
        let html = html::render(&document);
        let mut json_text = serde_json::to_vec_pretty(&document).unwrap_or_default();
        json_text.push(b'\n');
        let files = BTreeMap::from([
            ("evidence.json".to_owned(), json_text),
            ("report.html".to_owned(), html.into_bytes()),
        ]);
        let sealed =
            evidence::seal(&key, &from, &to, &exported_at, &by, files).map_err(Error::Invalid)?;
        let public = key.verifying_key().to_bytes();
        let bundle = wire::EvidenceBundle {
            files: sealed
                .into_iter()
                .map(|(name, bytes)| (name, String::from_utf8_lossy(&bytes).into_owned()))
                .collect(),
            public_key: hex::encode(public),
            fingerprint: evidence::fingerprint(&public),
        };
        self.append(self.record(
            acting,
            Action::EvidenceExport,
            format!("evidence/{from}..{to} key {}", bundle.fingerprint),
        ))
        .await;
        Ok(bundle)
    }

    async fn collect_evidence(
        &self,
        from: &str,
        to: &str,
        emails: &HashMap<String, String>,
    ) -> Result<Value, Error> {
        let name = |id: &str| emails.get(id).cloned().unwrap_or_else(|| id.to_owned());
        let entries = self.store.audit_between(from, to, MAX_AUDIT).await?;
        let access_names: Vec<&str> = ACCESS_ACTIONS.iter().map(|a| a.as_str()).collect();
        let access_changes: Vec<Value> = entries
            .iter()
            .filter(|e| access_names.contains(&e.record.action.as_str()))
            .map(|e| {
                json!({
                    "seq": e.seq,
                    "at": e.record.time,
                    "actor": name(&e.record.actor),
                    "action": e.record.action,
                    "target": e.record.target,
                    "outcome": e.record.outcome.as_str(),
                })
            })
            .collect();
        let reviews: Vec<Value> = self
            .store
            .access_reviews(from, to)
            .await?
            .into_iter()
            .map(|r| serde_json::to_value(review_view(r, emails)).unwrap_or_default())
            .collect();

        let apps = self.store.apps().await?;
        let mut releases = Vec::new();
        let mut backups = Vec::new();
        let mut patch_events = Vec::new();
        for app in &apps {
            for r in self.store.releases(&app.id).await? {
                if r.created_at.as_str() < from || r.created_at.as_str() >= to {
                    continue;
                }
                releases.push(json!({
                    "app": app.name.as_str(),
                    "release": r.number,
                    "created_at": r.created_at,
                    "created_by": name(&r.created_by),
                    "image": r.image,
                    "image_id": r.image_id,
                    "outcome": r.status.as_str(),
                    "reason": r.reason,
                    "finished_at": r.finished_at,
                }));
            }
            for b in self
                .store
                .backup_results(app.name.as_str(), 100_000)
                .await?
            {
                if b.started_at.as_str() < from || b.started_at.as_str() >= to {
                    continue;
                }
                backups.push(json!({
                    "app": b.app,
                    "kind": b.kind,
                    "snapshot": b.snapshot,
                    "started_at": b.started_at,
                    "finished_at": b.finished_at,
                    "bytes": b.bytes,
                    "ok": b.ok,
                    "detail": b.detail,
                }));
            }
            for e in self.store.events(&app.id, 10_000).await? {
                if e.kind == "vulnerabilities" && e.time.as_str() >= from && e.time.as_str() < to {
                    patch_events.push(json!({
                        "app": app.name.as_str(), "at": e.time, "what": e.message,
                    }));
                }
            }
        }
        releases.sort_by(|a, b| a["created_at"].as_str().cmp(&b["created_at"].as_str()));
        backups.sort_by(|a, b| a["started_at"].as_str().cmp(&b["started_at"].as_str()));

        let imports: Vec<Value> = self
            .store
            .advisory_imports(10_000)
            .await?
            .into_iter()
            .filter(|i| i.imported_at.as_str() >= from && i.imported_at.as_str() < to)
            .map(|i| {
                json!({
                    "at": i.imported_at, "by": name(&i.imported_by), "new": i.new,
                    "updated": i.updated, "unchanged": i.unchanged, "refused": i.refused,
                    "newest_record": i.newest_record,
                })
            })
            .collect();
        let app_name = |id: &rampart_core::AppId| {
            apps.iter()
                .find(|a| &a.id == id)
                .map_or_else(|| id.to_string(), |a| a.name.to_string())
        };
        let accepted: Vec<Value> = self
            .store
            .accepted_risks()
            .await?
            .into_iter()
            .filter(|r| r.created_at.as_str() < to && r.expires_at.as_str() >= from)
            .map(|r| {
                json!({
                    "app": app_name(&r.app_id), "advisory": r.advisory, "reason": r.reason,
                    "by": name(&r.created_by), "at": r.created_at, "expires_at": r.expires_at,
                })
            })
            .collect();
        let findings = self.vulns().report(None, None).await?;

        let incidents = self.incidents();
        let mut incident_list = Vec::new();
        for i in incidents.list(true).await? {
            if i.opened_at.as_str() < from || i.opened_at.as_str() >= to {
                continue;
            }
            let detail = incidents.show(&i.id).await?;
            incident_list.push(serde_json::to_value(detail).unwrap_or_default());
        }
        incident_list.reverse();
        let stats = incidents.stats(from, to).await?;

        let reports: Vec<Value> = self
            .reports(true)
            .await?
            .into_iter()
            .filter(|r| r.received_at.as_str() >= from && r.received_at.as_str() < to)
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect();
        let doctor: Vec<Value> = self
            .store
            .doctor_runs(from, to)
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "at": r.at, "by": name(&r.actor), "passed": r.passed, "warned": r.warned,
                    "failed": r.failed,
                    "checks": serde_json::from_str::<Value>(&r.checks).unwrap_or_default(),
                })
            })
            .collect();

        let snapshot = self.access_snapshot().await?;
        let verification = self.verify_audit().await?;
        let head = self.store.audit_tail(1).await?.into_iter().next();
        Ok(json!({
            "access": {
                "users": snapshot["users"],
                "tokens": snapshot["tokens"],
                "changes": access_changes,
                "reviews": reviews,
            },
            "change_management": { "releases": releases },
            "backups": { "configured": self.backup.is_some(), "results": backups },
            "vulnerability_management": {
                "data": findings.db,
                "imports": imports,
                "findings_now": findings.findings,
                "accepted_risks": accepted,
                "fixes": patch_events,
            },
            "incidents": { "incidents": incident_list, "stats": stats },
            "security_reports": { "reports": reports },
            "doctor": { "runs": doctor },
            "audit": {
                "entries_in_period": entries.len(),
                "first_seq": entries.first().map(|e| e.seq),
                "last_seq": entries.last().map(|e| e.seq),
                "head_seq": head.as_ref().map(|e| e.seq),
                "head_hash": head.as_ref().map(|e| hex::encode(e.hash)),
                "verification": verification,
            },
        }))
    }
}

fn review_view(row: AccessReviewRow, emails: &HashMap<String, String>) -> wire::AccessReview {
    wire::AccessReview {
        reviewer: emails
            .get(&row.reviewer)
            .cloned()
            .unwrap_or_else(|| row.reviewer.clone()),
        snapshot: serde_json::from_str(&row.snapshot).unwrap_or_default(),
        id: row.id,
        at: row.at,
        note: row.note,
    }
}
