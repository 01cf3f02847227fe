//! What the platform counts about each app, for Prometheus and for
//! `rampart top`: counters and a latency histogram that only grow, and a
//! short history of ten-second windows in a ring of fixed size.
//!
//! The text is written here rather than through a registry because the
//! platform's figures are snapshots it refreshes (from the store, the
//! edge and the watch's windows), not values touched on a request path.

use std::collections::VecDeque;
use std::fmt::Write;

use crate::baseline::Latencies;

/// The latency histogram's upper bounds, in seconds (Prometheus'
/// defaults).
pub const LATENCY_BOUNDS_SECS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// An app's counters since the platform started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppCounters {
    pub requests: u64,
    /// Answers with a 5xx status.
    pub errors: u64,
    /// Requests answered within each of [`LATENCY_BOUNDS_SECS`].
    pub within: [u64; LATENCY_BOUNDS_SECS.len()],
    pub latency_sum_secs: f64,
}

impl AppCounters {
    /// Adds one window's figures.
    pub fn add(&mut self, requests: u64, errors: u64, latencies: &Latencies) {
        self.requests += requests;
        self.errors += errors;
        for (within, bound) in self.within.iter_mut().zip(LATENCY_BOUNDS_SECS) {
            *within += latencies.count_up_to(bound * 1000.0);
        }
        self.latency_sum_secs += latencies.sum_ms() / 1000.0;
    }
}

/// One ten-second window of an app.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// When the window closed, in Unix seconds.
    pub at: i64,
    pub requests: u32,
    pub errors: u32,
    pub p95_ms: f32,
    /// Replicas serving when it closed.
    pub healthy: u16,
}

/// The newest samples, at most `capacity` of them: 8,640 ten-second
/// windows are a day, 16 bytes each.
#[derive(Debug, Clone)]
pub struct History {
    capacity: usize,
    samples: VecDeque<Sample>,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            samples: VecDeque::new(),
        }
    }

    /// Adds the newest sample, forgetting the oldest when full.
    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The samples taken at or after `at`, oldest first.
    pub fn since(&self, at: i64) -> impl Iterator<Item = &Sample> {
        let start = self.samples.partition_point(|s| s.at < at);
        self.samples.range(start..)
    }

    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Prometheus' text exposition format, written family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// A label value with `\`, `"` and line breaks escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.is_nan() {
        "NaN".to_owned()
    } else {
        value.to_string()
    }
}

impl Exposition {
    /// Starts a family: `kind` is `counter`, `gauge` or `histogram`.
    pub fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// An app's latency histogram: its buckets, sum and count.
    pub fn histogram(&mut self, name: &str, app: &str, counters: &AppCounters) {
        for (within, bound) in counters.within.iter().zip(LATENCY_BOUNDS_SECS) {
            let le = number(bound);
            self.sample(
                &format!("{name}_bucket"),
                &[("app", app), ("le", &le)],
                *within as f64,
            );
        }
        self.sample(
            &format!("{name}_bucket"),
            &[("app", app), ("le", "+Inf")],
            counters.requests as f64,
        );
        self.sample(
            &format!("{name}_sum"),
            &[("app", app)],
            counters.latency_sum_secs,
        );
        self.sample(
            &format!("{name}_count"),
            &[("app", app)],
            counters.requests as f64,
        );
    }

    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_newest_and_finds_a_start() {
        let mut history = History::new(3);
        for at in [10, 20, 30, 40] {
            history.push(Sample {
                at,
                requests: at as u32,
                ..Default::default()
            });
        }
        assert_eq!(history.len(), 3);
        let since: Vec<i64> = history.since(25).map(|s| s.at).collect();
        assert_eq!(since, [30, 40]);
        assert_eq!(history.since(0).count(), 3);
        assert_eq!(history.since(41).count(), 0);
        assert_eq!(history.latest().map(|s| s.at), Some(40));
    }

    #[test]
    fn counters_fill_the_histogram_cumulatively() {
        let mut latencies = Latencies::default();
        for ms in [1.0, 3.0, 40.0, 200.0, 20_000.0] {
            latencies.add(ms);
        }
        let mut counters = AppCounters::default();
        counters.add(5, 1, &latencies);
        counters.add(0, 0, &Latencies::default());
        // 5 ms: 1 and 3; 50 ms: and 40; 250 ms: and 200; 20 s beyond all.
        assert_eq!(counters.within[0], 2);
        assert_eq!(counters.within[3], 3);
        assert_eq!(counters.within[5], 4);
        assert_eq!(counters.within[10], 4);
        assert!(counters.within.windows(2).all(|w| w[0] <= w[1]));
        assert!((counters.latency_sum_secs - 20.244).abs() < 1e-9);
        assert_eq!((counters.requests, counters.errors), (5, 1));
    }

    #[test]
    fn the_text_is_prometheus_exposition_with_labels_escaped() {
        let mut text = Exposition::default();
        text.family("rampart_app_requests_total", "Requests", "counter");
        text.sample("rampart_app_requests_total", &[("app", "a\"b\\c\nd")], 3.0);
        text.family("rampart_backup_age_seconds", "Age", "gauge");
        text.sample("rampart_backup_age_seconds", &[], f64::INFINITY);
        let counters = AppCounters {
            requests: 2,
            ..Default::default()
        };
        text.histogram("rampart_app_request_duration_seconds", "blog", &counters);
        let text = text.finish();
        assert!(text.starts_with(
            "# HELP rampart_app_requests_total Requests\n# TYPE rampart_app_requests_total counter\n\
             rampart_app_requests_total{app=\"a\\\"b\\\\c\\nd\"} 3\n"
        ), "{text}");
        assert!(text.contains("rampart_backup_age_seconds +Inf\n"), "{text}");
        assert!(text.contains(
            "rampart_app_request_duration_seconds_bucket{app=\"blog\",le=\"0.005\"} 0\n"
        ));
        assert!(
            text.contains(
                "rampart_app_request_duration_seconds_bucket{app=\"blog\",le=\"+Inf\"} 2\n"
            )
        );
        assert!(text.contains("rampart_app_request_duration_seconds_count{app=\"blog\"} 2\n"));
    }
}
