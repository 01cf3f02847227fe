//! Alerts: one per condition, however often it is seen. A condition has a
//! key (the rule and what it is about: `crash_loop:shop`); while an alert
//! of that key fires, each new sighting adds to its count, and people are
//! told when it starts, again after the repeat interval if it goes on, and
//! when it clears. Time is passed in, as Unix seconds.

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// What is known of a firing alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firing {
    /// Sightings so far.
    pub count: u64,
    pub first_at: i64,
    pub last_at: i64,
    /// When people were last told.
    pub notified_at: i64,
}

/// What a sighting means for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A new alert: tell them.
    Firing,
    /// It goes on past the repeat interval: remind them.
    Repeat,
    /// Counted; nobody is told.
    Quiet,
}

/// A sighting at `now` of a condition whose alert is `firing` (if any);
/// the alert after it and whether people are told.
pub fn sighting(firing: Option<Firing>, now: i64, repeat_secs: i64) -> (Firing, Notice) {
    match firing {
        None => (
            Firing {
                count: 1,
                first_at: now,
                last_at: now,
                notified_at: now,
            },
            Notice::Firing,
        ),
        Some(mut alert) => {
            alert.count = alert.count.saturating_add(1);
            alert.last_at = alert.last_at.max(now);
            if now.saturating_sub(alert.notified_at) >= repeat_secs {
                alert.notified_at = now;
                (alert, Notice::Repeat)
            } else {
                (alert, Notice::Quiet)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_is_one_alert_with_a_count_and_reminders_at_the_interval() {
        let mut firing = None;
        let mut notices = Vec::new();
        for t in 0..1000 {
            let (alert, notice) = sighting(firing, 1_000 + t, 300);
            firing = Some(alert);
            if notice != Notice::Quiet {
                notices.push((t, notice));
            }
        }
        assert_eq!(
            notices,
            [
                (0, Notice::Firing),
                (300, Notice::Repeat),
                (600, Notice::Repeat),
                (900, Notice::Repeat)
            ]
        );
        let alert = firing.unwrap();
        assert_eq!(
            (alert.count, alert.first_at, alert.last_at),
            (1000, 1_000, 1_999)
        );
    }

    #[test]
    fn a_clock_going_back_changes_nothing_it_should_not() {
        let (alert, _) = sighting(None, 500, 60);
        let (again, notice) = sighting(Some(alert), 400, 60);
        assert_eq!(notice, Notice::Quiet);
        assert_eq!((again.count, again.last_at), (2, 500));
    }

    #[test]
    fn severities_round_trip_and_order() {
        for s in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        assert!(Severity::Critical > Severity::Warning);
        assert_eq!(Severity::parse("CRITICAL"), None);
    }
}
