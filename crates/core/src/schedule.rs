//! When a scheduled job runs: a five-field cron expression in UTC (`minute
//! hour day-of-month month day-of-week`, with lists, ranges, steps, names,
//! and `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`), or an
//! interval (`every 15m`).
//!
//! Cron expressions are parsed and evaluated by the `croner` crate, which
//! follows Vixie cron (a day matches when its day of month or its day of
//! week does, when both are restricted).

use std::str::FromStr;

use crate::time::Timestamp;
use crate::wire::parse_duration;

/// Most scheduled jobs one app may have, added by hand and declared in its
/// manifest together.
pub const MAX_JOBS_PER_APP: usize = 32;
/// How long a run may take unless the job says otherwise, and at most.
pub const DEFAULT_JOB_TIMEOUT_SECS: u64 = 3600;
pub const MAX_JOB_TIMEOUT_SECS: u64 = 6 * 3600;

/// The shortest interval a job may run at.
const MIN_INTERVAL_SECS: u64 = 10;
/// The longest schedule text accepted.
const MAX_SCHEDULE_LEN: usize = 128;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<croner::Cron>),
    /// Every so many seconds, from when it was set.
    Every(u64),
}

impl Schedule {
    /// Parses a schedule; the message says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_SCHEDULE_LEN || text.chars().any(char::is_control) {
            return Err(format!(
                "a schedule is at most {MAX_SCHEDULE_LEN} printable characters"
            ));
        }
        let text = text.trim();
        if let Some(every) = text.strip_prefix("every ") {
            let secs = parse_duration(every)?;
            if secs < MIN_INTERVAL_SECS {
                return Err(format!(
                    "{text:?} is more often than every {MIN_INTERVAL_SECS}s, the shortest a job runs at"
                ));
            }
            return Ok(Schedule::Every(secs));
        }
        if text.split_whitespace().count() != 5 && !text.starts_with('@') {
            return Err(format!(
                "{text:?} is not a schedule: five cron fields (\"30 3 * * *\"), @daily or the like, or \"every 15m\""
            ));
        }
        croner::Cron::from_str(text)
            .map(|cron| Schedule::Cron(Box::new(cron)))
            .map_err(|e| format!("{text:?} is not a cron expression: {e}"))
    }

    /// The first time strictly after `after` that the job is due.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Every(secs) => {
                Timestamp::from_unix_seconds(after.unix_seconds().checked_add(*secs as i64)?)
            }
            Schedule::Cron(cron) => {
                let from = chrono::DateTime::from_timestamp(after.unix_seconds(), 0)?;
                let next = cron.find_next_occurrence(&from, false).ok()?;
                Timestamp::from_unix_seconds(next.timestamp())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn cron_expressions_and_intervals_find_the_next_time() {
        let now = at("2026-11-30T13:40:10.000Z");
        for (schedule, next) in [
            ("*/15 * * * *", "2026-11-30T13:45:00.000Z"),
            ("30 3 * * *", "2026-12-01T03:30:00.000Z"),
            ("@daily", "2026-12-01T00:00:00.000Z"),
            ("@hourly", "2026-11-30T14:00:00.000Z"),
            ("0 9 * * MON", "2026-12-07T09:00:00.000Z"),
            ("0 0 1 1 *", "2027-01-01T00:00:00.000Z"),
            ("every 15m", "2026-11-30T13:55:10.000Z"),
            ("every 2h", "2026-11-30T15:40:10.000Z"),
        ] {
            let parsed = Schedule::parse(schedule).unwrap();
            assert_eq!(
                parsed.next_after(now).unwrap().to_rfc3339(),
                next,
                "{schedule}"
            );
        }
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* 25 * * *",
            "every 5s",
            "every soon",
            "@sometimes",
            "* * * * * * * *",
            "0 3 * * *\n",
            &"1".repeat(200),
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            Schedule::parse(" 0 3 * * * ").is_ok(),
            "surrounding blanks are fine"
        );
    }
}
