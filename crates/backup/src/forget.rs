//! Retention: which snapshots a `--keep-*` policy keeps. Pure, so it is
//! tested without a repository or a clock.

use std::collections::{BTreeMap, HashSet};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::format::Snapshot;

/// How many snapshots to keep, per group of snapshots of the same host and
/// paths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

impl KeepPolicy {
    pub fn is_empty(&self) -> bool {
        self.last == 0 && self.daily == 0 && self.weekly == 0 && self.monthly == 0
    }
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub id: Id,
    pub time: String,
    pub keep: bool,
    /// Which rules keep it.
    pub reasons: Vec<&'static str>,
}

fn keep_buckets(
    group: &[(Id, OffsetDateTime)],
    n: u32,
    bucket: impl Fn(&OffsetDateTime) -> (i32, u32),
    reason: &'static str,
    out: &mut BTreeMap<Id, Vec<&'static str>>,
) {
    let mut seen = HashSet::new();
    for (id, time) in group {
        if seen.len() as u32 >= n {
            break;
        }
        if seen.insert(bucket(time)) {
            out.entry(*id).or_default().push(reason);
        }
    }
}

/// Applies `policy`; every snapshot gets a decision.
pub fn decide(snapshots: &[(Id, Snapshot)], policy: KeepPolicy) -> Result<Vec<Decision>> {
    if policy.is_empty() {
        return Err(Error::Invalid(
            "no --keep-* option given; refusing to forget every snapshot".into(),
        ));
    }
    // Snapshots of one host and set of paths form a group.
    type Group = Vec<(Id, OffsetDateTime)>;
    let mut groups: BTreeMap<(String, Vec<String>), Group> = BTreeMap::new();
    for (id, snap) in snapshots {
        let time = OffsetDateTime::parse(&snap.time, &Rfc3339).map_err(|_| {
            Error::damaged(
                format!("snapshot {id}"),
                format!("unreadable time {:?}", snap.time),
            )
        })?;
        groups
            .entry((snap.hostname.clone(), snap.paths.clone()))
            .or_default()
            .push((*id, time));
    }
    let mut kept: BTreeMap<Id, Vec<&'static str>> = BTreeMap::new();
    for group in groups.values_mut() {
        group.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        for (id, _) in group.iter().take(policy.last as usize) {
            kept.entry(*id).or_default().push("last");
        }
        keep_buckets(
            group,
            policy.daily,
            |t| (t.year(), t.ordinal() as u32),
            "daily",
            &mut kept,
        );
        keep_buckets(
            group,
            policy.weekly,
            |t| {
                let (y, w, _) = t.to_iso_week_date();
                (y, u32::from(w))
            },
            "weekly",
            &mut kept,
        );
        keep_buckets(
            group,
            policy.monthly,
            |t| (t.year(), t.month() as u32),
            "monthly",
            &mut kept,
        );
    }
    Ok(snapshots
        .iter()
        .map(|(id, snap)| {
            let reasons = kept.get(id).cloned().unwrap_or_default();
            Decision {
                id: *id,
                time: snap.time.clone(),
                keep: !reasons.is_empty(),
                reasons,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Summary;

    fn snap(time: &str) -> Snapshot {
        Snapshot {
            time: time.into(),
            hostname: "h".into(),
            paths: vec!["/data".into()],
            tags: vec![],
            tree: Id([0; 32]),
            parent: None,
            summary: Summary::default(),
            program_version: "test".into(),
        }
    }

    fn set(times: &[&str]) -> Vec<(Id, Snapshot)> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| (Id([i as u8; 32]), snap(t)))
            .collect()
    }

    fn kept(decisions: &[Decision]) -> Vec<String> {
        decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.time[..10].to_owned())
            .collect()
    }

    #[test]
    fn daily_weekly_monthly_keep_the_newest_of_each_period() {
        let snaps = set(&[
            "2026-09-30T10:00:00Z",
            "2026-10-31T10:00:00Z",
            "2026-11-20T10:00:00Z",
            "2026-11-27T09:00:00Z",
            "2026-11-27T18:00:00Z",
            "2026-11-28T10:00:00Z",
            "2026-11-29T08:00:00Z",
            "2026-11-29T10:00:00Z",
        ]);
        let d = decide(
            &snaps,
            KeepPolicy {
                daily: 3,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(kept(&d), ["2026-11-27", "2026-11-28", "2026-11-29"]);
        assert!(!d[3].keep && d[4].keep, "the newest of 11-27 is kept");

        let d = decide(
            &snaps,
            KeepPolicy {
                monthly: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(kept(&d), ["2026-10-31", "2026-11-29"]);

        let d = decide(
            &snaps,
            KeepPolicy {
                weekly: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(kept(&d), ["2026-11-20", "2026-11-29"]);

        let d = decide(
            &snaps,
            KeepPolicy {
                last: 1,
                monthly: 3,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(kept(&d), ["2026-09-30", "2026-10-31", "2026-11-29"]);
    }

    #[test]
    fn groups_are_kept_separately_and_an_empty_policy_is_refused() {
        let mut snaps = set(&["2026-11-28T10:00:00Z", "2026-11-29T10:00:00Z"]);
        snaps[0].1.paths = vec!["/other".into()];
        let d = decide(
            &snaps,
            KeepPolicy {
                last: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(d.iter().all(|d| d.keep));
        assert!(decide(&snaps, KeepPolicy::default()).is_err());
    }
}
