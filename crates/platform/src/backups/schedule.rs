//! Backup schedules, the scheduler's due work and retention.

use super::*;

impl Backups<'_> {
    /// Forgets the app's snapshots the schedule does not keep, then prunes.
    pub(super) async fn apply_retention(&self, app: &AppRow, schedule: &ScheduleRow) {
        let policy = KeepPolicy {
            last: schedule.keep_last,
            daily: schedule.keep_daily,
            weekly: schedule.keep_weekly,
            monthly: schedule.keep_monthly,
        };
        if policy.is_empty() {
            return;
        }
        let started_at = Timestamp::now().to_rfc3339();
        let mut result = Self::result(app, "retention", started_at);
        let app_id = app.id.to_string();
        let outcome = match self.repository().await {
            Err(e) => Err(e),
            Ok(repo) => tokio::task::spawn_blocking(move || {
                let forgotten = {
                    let _lock = repo.lock(false).map_err(BackupFailure::from)?;
                    let mine: Vec<_> = repo
                        .snapshots()
                        .map_err(BackupFailure::from)?
                        .into_iter()
                        .filter(|(_, s)| tag(&s.tags, TAG_APP_ID) == Some(app_id.as_str()))
                        .collect();
                    let decisions = decide(&mine, policy).map_err(BackupFailure::from)?;
                    let mut forgotten = Vec::new();
                    for d in decisions.iter().filter(|d| !d.keep) {
                        repo.backend()
                            .delete(Kind::Snapshot, &d.id.hex())
                            .map_err(BackupFailure::from)?;
                        forgotten.push(d.id.hex());
                    }
                    (forgotten, decisions.len())
                };
                let freed = if forgotten.0.is_empty() {
                    0
                } else {
                    rampart_backup::prune::prune(&repo)
                        .map_err(BackupFailure::from)?
                        .bytes_freed
                };
                Ok::<_, BackupFailure>((forgotten, freed))
            })
            .await
            .map_err(BackupFailure::from)
            .and_then(|r| r),
        };
        match outcome {
            Ok(((forgotten, total), freed)) => {
                result.ok = true;
                result.bytes = freed;
                result.detail = format!(
                    "kept {} of {total} snapshots; removed {}",
                    total - forgotten.len(),
                    if forgotten.is_empty() {
                        "none".to_owned()
                    } else {
                        forgotten
                            .iter()
                            .map(|h| &h[..12])
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
            }
            Err(message) => result.detail = message.to_string(),
        }
        result.finished_at = Timestamp::now().to_rfc3339();
        self.record_result(app, result).await;
    }

    /// `rampart backup schedule APP …`.
    pub async fn set_backup_schedule(
        &self,
        acting: Acting<'_>,
        app: &str,
        request: Option<wire::SetBackupSchedule>,
    ) -> Result<Option<wire::BackupSchedule>, Error> {
        let row = self.p.app_row(app).await?;
        let target = format!("apps/{}/backup-schedule", row.name);
        let Some(request) = request else {
            let record = self.p.record(acting, Action::BackupSchedule, target);
            self.p
                .committed(
                    self.p
                        .store
                        .set_backup_schedule(&row.id, None, record)
                        .await,
                )
                .await?;
            return Ok(None);
        };
        self.backup_config()?;
        let every = wire::parse_interval(&request.every).map_err(Error::Invalid)?;
        let verify = request
            .verify
            .as_deref()
            .map(wire::parse_interval)
            .transpose()
            .map_err(Error::Invalid)?;
        let now = time::OffsetDateTime::now_utc();
        let at =
            |secs: u64| Timestamp::from(now + time::Duration::seconds(secs as i64)).to_rfc3339();
        let schedule = ScheduleRow {
            app_id: row.id.clone(),
            every_secs: every,
            keep_last: request.keep_last,
            keep_daily: request.keep_daily,
            keep_weekly: request.keep_weekly,
            keep_monthly: request.keep_monthly,
            verify_every_secs: verify,
            next_backup_at: at(every),
            next_verify_at: verify.map(at),
        };
        if schedule.keep_last + schedule.keep_daily + schedule.keep_weekly + schedule.keep_monthly
            == 0
        {
            return Err(Error::Invalid(
                "keep at least one snapshot: give --keep-last, --keep-daily, --keep-weekly or --keep-monthly".into(),
            ));
        }
        let record = self.p.record(acting, Action::BackupSchedule, target);
        self.p
            .committed(
                self.p
                    .store
                    .set_backup_schedule(&row.id, Some(&schedule), record)
                    .await,
            )
            .await?;
        Ok(Some(schedule_view(&row.name, schedule)))
    }

    pub async fn backup_schedule(&self, app: &str) -> Result<wire::BackupSchedule, Error> {
        let row = self.p.app_row(app).await?;
        let schedule = self
            .p
            .store
            .backup_schedule(&row.id)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "app {:?} has no backup schedule",
                    row.name.as_str()
                ))
            })?;
        Ok(schedule_view(&row.name, schedule))
    }

    pub(super) async fn run_scheduled(
        &self,
        app: &AppRow,
        schedule: &ScheduleRow,
        backup_due: bool,
        verify_due: bool,
    ) {
        let next = |secs: u64| {
            Timestamp::from(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs as i64))
                .to_rfc3339()
        };
        let next_backup = if backup_due {
            self.run_backup(app, Reason::Scheduled).await;
            next(schedule.every_secs)
        } else {
            schedule.next_backup_at.clone()
        };
        let next_verify = match (verify_due, schedule.verify_every_secs) {
            (true, Some(secs)) => {
                self.run_verify(app, None).await;
                Some(next(secs))
            }
            _ => schedule.next_verify_at.clone(),
        };
        if let Err(error) = self
            .p
            .store
            .advance_backup_schedule(&app.id, &next_backup, next_verify.as_deref())
            .await
        {
            tracing::error!(%error, "cannot move a backup schedule on");
        }
    }
}

impl Platform {
    /// Starts the backups and test restores that are due, each app's on a
    /// task of its own, so a slow or stuck app never holds up another's; an
    /// app whose last run has not finished is left for the next call. The
    /// platform calls this every few seconds.
    pub async fn run_due_backups(self: &Arc<Self>) {
        let Ok(schedules) = self.store.backup_schedules().await else {
            return;
        };
        let now = Timestamp::now().to_rfc3339();
        for schedule in schedules {
            let backup_due = schedule.next_backup_at <= now;
            let verify_due = schedule.next_verify_at.as_ref().is_some_and(|t| *t <= now);
            if !backup_due && !verify_due {
                continue;
            }
            let Some(turn) = self.services().try_backup_turn(&schedule.app_id) else {
                continue;
            };
            let Some(app) = self
                .store
                .apps()
                .await
                .ok()
                .and_then(|apps| apps.into_iter().find(|a| a.id == schedule.app_id))
            else {
                continue;
            };
            let platform = Arc::clone(self);
            tokio::spawn(async move {
                let _turn = turn;
                platform
                    .backups()
                    .run_scheduled(&app, &schedule, backup_due, verify_due)
                    .await;
            });
        }
    }
}
