//! Per-app baselines: what an app's traffic usually looks like, learned
//! online, and when a window of it departs from that.
//!
//! Every window (10 s) of an app's traffic gives three figures: its request
//! rate, the share of 5xx answers and the 95th percentile of latency. Each
//! is learned as an exponentially weighted mean and variance (α = 0.05, so
//! about the last 20 windows weigh most), once for all hours and once per
//! hour of the day (UTC): a shop busy at noon and quiet at night is judged
//! against its own noon and its own night once an hour has been seen often
//! enough, and against its overall figures until then. Chosen over a fixed
//! threshold because apps differ by orders of magnitude, and over a
//! seasonal model (Holt-Winters) because it needs no history to start and
//! its state per app is a few hundred bytes.
//!
//! A window departs when, after the warm-up, its figure is above the mean
//! by `margin` standard deviations *and* by a factor (3x the rate, 2x the
//! latency, an error share above 5 points and the mean), and the window is
//! large enough to mean something (at least 1 request a second for the
//! rate, 20 requests for errors and latency). Departing windows are not
//! learned, so a spike does not become the norm while it lasts; once as
//! many have departed in a row as the warm-up counts, the change has lasted
//! and is learned as the new norm.

/// One window of an app's traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    pub requests: u64,
    pub errors: u64,
    /// Requests no replica could take (none healthy).
    pub unserved: u64,
    /// The 95th percentile of latency, in milliseconds.
    pub p95_ms: f64,
    /// The window's length in seconds.
    pub secs: f64,
}

/// What departs from the baseline in a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Departure {
    pub value: f64,
    /// The learned mean it departs from.
    pub usual: f64,
}

/// How a window compares with the app's baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Assessment {
    /// Requests per second far above the usual.
    pub rate: Option<Departure>,
    /// A share of 5xx answers far above the usual.
    pub errors: Option<Departure>,
    /// A 95th percentile of latency far above the usual.
    pub latency: Option<Departure>,
    /// Requests came and no replica could take any.
    pub unserved: bool,
    /// Whether the baseline has seen enough to judge.
    pub warm: bool,
}

/// How baselines judge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineConfig {
    /// Windows learned before any departure is reported.
    pub warmup: u32,
    /// Standard deviations above the mean that count as a departure.
    pub margin: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            warmup: 360,
            margin: 4.0,
        }
    }
}

const ALPHA: f64 = 0.05;

/// An exponentially weighted mean and variance.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Ewm {
    mean: f64,
    var: f64,
    seen: u32,
}

impl Ewm {
    fn learn(&mut self, x: f64, alpha: f64) {
        if self.seen == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let diff = x - self.mean;
            let step = alpha * diff;
            self.mean += step;
            self.var = (1.0 - alpha) * (self.var + diff * step);
        }
        self.seen = self.seen.saturating_add(1);
    }

    fn sd(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }
}

/// One figure's baseline: overall and per hour of the day.
#[derive(Debug, Clone, Default, PartialEq)]
struct Figure {
    all: Ewm,
    hours: [Ewm; 24],
    /// Windows in a row that departed.
    departed: u32,
}

impl Figure {
    /// The hour's figures once it has seen a warm-up of its own, the
    /// overall ones until then.
    fn usual(&self, hour: usize, warmup: u32) -> Ewm {
        let own = self.hours[hour % 24];
        if own.seen >= warmup { own } else { self.all }
    }

    fn learn(&mut self, hour: usize, x: f64, departed: bool, warmup: u32) {
        if departed {
            self.departed = self.departed.saturating_add(1);
            if self.departed < warmup.max(1) {
                return;
            }
        } else {
            self.departed = 0;
        }
        self.all.learn(x, ALPHA);
        self.hours[hour % 24].learn(x, ALPHA);
    }
}

/// An app's baseline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Baseline {
    rate: Figure,
    errors: Figure,
    latency: Figure,
}

impl Baseline {
    /// Judges `window`, seen at `hour` (0 to 23, UTC), then learns it.
    pub fn assess(&mut self, window: Window, hour: usize, config: BaselineConfig) -> Assessment {
        let secs = window.secs.max(1.0);
        let rate = window.requests as f64 / secs;
        let warm = self.rate.all.seen >= config.warmup;
        let beyond = |usual: Ewm, x: f64, factor: f64, floor: f64| {
            (warm
                && x >= floor
                && x > usual.mean + config.margin * usual.sd()
                && x > usual.mean * factor)
                .then_some(Departure {
                    value: x,
                    usual: usual.mean,
                })
        };
        let busy = window.requests >= 20;
        let usual_rate = self.rate.usual(hour, config.warmup);
        let rate_departs = beyond(usual_rate, rate, 3.0, 1.0);
        let share = if window.requests == 0 {
            0.0
        } else {
            window.errors as f64 / window.requests as f64
        };
        let usual_errors = self.errors.usual(hour, config.warmup);
        let errors_departs = if busy {
            beyond(usual_errors, share, 1.0, usual_errors.mean + 0.05)
        } else {
            None
        };
        let usual_latency = self.latency.usual(hour, config.warmup);
        let latency_departs = if busy {
            beyond(usual_latency, window.p95_ms, 2.0, 50.0)
        } else {
            None
        };
        self.rate
            .learn(hour, rate, rate_departs.is_some(), config.warmup);
        if busy {
            self.errors
                .learn(hour, share, errors_departs.is_some(), config.warmup);
            self.latency.learn(
                hour,
                window.p95_ms,
                latency_departs.is_some(),
                config.warmup,
            );
        }
        Assessment {
            rate: rate_departs,
            errors: errors_departs,
            latency: latency_departs,
            unserved: window.requests > 0 && window.unserved == window.requests,
            warm,
        }
    }
}

/// Latencies of one window, kept as a histogram with buckets 10% apart, so
/// a window of any size costs the same few hundred bytes.
#[derive(Debug, Clone)]
pub struct Latencies {
    counts: Vec<u64>,
    total: u64,
    sum_ms: f64,
}

/// Bucket `i` holds latencies up to `BASE * GROWTH^i` milliseconds.
const BASE_MS: f64 = 0.1;
const GROWTH: f64 = 1.1;
const BUCKETS: usize = 200;

impl Default for Latencies {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            sum_ms: 0.0,
        }
    }
}

impl Latencies {
    pub fn add(&mut self, ms: f64) {
        let i = if ms <= BASE_MS {
            0
        } else {
            ((ms / BASE_MS).ln() / GROWTH.ln()).ceil() as usize
        };
        self.counts[i.min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.sum_ms += ms.max(0.0);
    }

    /// How many latencies there are.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Their sum, in milliseconds.
    pub fn sum_ms(&self) -> f64 {
        self.sum_ms
    }

    /// How many are at most `ms`, to the buckets' precision (10%): those in
    /// buckets whose upper edge is not above it.
    pub fn count_up_to(&self, ms: f64) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .take_while(|(i, _)| BASE_MS * GROWTH.powi(*i as i32) <= ms * (1.0 + 1e-9))
            .map(|(_, c)| c)
            .sum()
    }

    /// Adds another window's latencies to these.
    pub fn merge(&mut self, other: &Latencies) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum_ms += other.sum_ms;
    }

    /// The 95th percentile (the upper edge of its bucket), 0 when empty.
    pub fn p95(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = (self.total as f64 * 0.95).ceil() as u64;
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return BASE_MS * GROWTH.powi(i as i32);
            }
        }
        BASE_MS * GROWTH.powi(BUCKETS as i32 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: BaselineConfig = BaselineConfig {
        warmup: 30,
        margin: 4.0,
    };

    fn window(requests: u64, errors: u64, p95_ms: f64) -> Window {
        Window {
            requests,
            errors,
            unserved: 0,
            p95_ms,
            secs: 10.0,
        }
    }

    /// Steady traffic around 20 req/s with some noise.
    fn warmed() -> Baseline {
        let mut b = Baseline::default();
        for i in 0..60u64 {
            let a = b.assess(
                window(190 + (i * 7) % 25, 1, 20.0 + (i % 5) as f64),
                12,
                CONFIG,
            );
            assert_eq!(
                (a.rate, a.errors, a.latency),
                (None, None, None),
                "window {i}"
            );
        }
        b
    }

    #[test]
    fn nothing_departs_during_the_warm_up() {
        let mut b = Baseline::default();
        for _ in 0..(CONFIG.warmup - 1) {
            b.assess(window(200, 0, 20.0), 3, CONFIG);
        }
        let a = b.assess(window(20_000, 10_000, 900.0), 3, CONFIG);
        assert!(!a.warm);
        assert_eq!((a.rate, a.errors, a.latency), (None, None, None));
    }

    #[test]
    fn a_tenfold_spike_departs_for_as_long_as_it_lasts_then_clears() {
        let mut b = warmed();
        for i in 0..30 {
            let a = b.assess(window(2_000, 10, 22.0), 12, CONFIG);
            let rate = a.rate.unwrap_or_else(|| panic!("window {i} of the spike"));
            assert!(rate.value >= 200.0 && rate.usual < 40.0, "{rate:?}");
        }
        let a = b.assess(window(200, 1, 21.0), 12, CONFIG);
        assert_eq!(a.rate, None);
    }

    #[test]
    fn a_change_that_lasts_becomes_the_norm() {
        let mut b = warmed();
        let departed = (0..CONFIG.warmup * 3)
            .filter(|_| b.assess(window(2_000, 10, 22.0), 12, CONFIG).rate.is_some())
            .count();
        assert!(departed >= CONFIG.warmup as usize && departed < CONFIG.warmup as usize * 3);
        assert_eq!(b.assess(window(2_000, 10, 22.0), 12, CONFIG).rate, None);
    }

    #[test]
    fn errors_and_latency_depart_on_their_own() {
        let mut b = warmed();
        let a = b.assess(window(200, 80, 21.0), 12, CONFIG);
        assert!(
            a.errors.is_some() && a.rate.is_none() && a.latency.is_none(),
            "{a:?}"
        );
        let a = b.assess(window(200, 1, 400.0), 12, CONFIG);
        assert!(a.latency.is_some() && a.errors.is_none(), "{a:?}");
        // Too few requests to mean anything.
        let a = b.assess(window(5, 5, 900.0), 12, CONFIG);
        assert_eq!((a.errors, a.latency), (None, None));
    }

    #[test]
    fn a_quiet_app_with_a_few_visits_is_no_spike() {
        let mut b = Baseline::default();
        for i in 0..60 {
            b.assess(window(i % 2, 0, 5.0), 0, CONFIG);
        }
        // 0.3 req/s against a usual 0.05: a big factor, but under 1 req/s.
        assert_eq!(b.assess(window(3, 0, 5.0), 0, CONFIG).rate, None);
    }

    #[test]
    fn each_hour_is_judged_against_its_own_once_it_has_been_seen() {
        let mut b = Baseline::default();
        // Nights at 2 req/s and noons at 100 req/s, many days over.
        for _ in 0..40 {
            b.assess(window(20, 0, 10.0), 3, CONFIG);
            b.assess(window(1_000, 0, 10.0), 12, CONFIG);
        }
        // Noon's usual traffic at night is a spike; at noon it is not.
        assert!(b.assess(window(1_000, 0, 10.0), 3, CONFIG).rate.is_some());
        assert!(b.assess(window(1_000, 0, 10.0), 12, CONFIG).rate.is_none());
    }

    #[test]
    fn requests_no_replica_took_are_unserved() {
        let mut b = Baseline::default();
        let mut w = window(30, 30, 1.0);
        w.unserved = 30;
        assert!(b.assess(w, 0, CONFIG).unserved);
        w.unserved = 29;
        assert!(!b.assess(w, 0, CONFIG).unserved);
        assert!(!b.assess(window(0, 0, 0.0), 0, CONFIG).unserved);
    }

    #[test]
    fn the_95th_percentile_is_within_a_bucket_of_the_truth() {
        let mut l = Latencies::default();
        assert_eq!(l.p95(), 0.0);
        for ms in 1..=1000 {
            l.add(ms as f64);
        }
        let p95 = l.p95();
        assert!((950.0..=950.0 * GROWTH).contains(&p95), "{p95}");
        let mut l = Latencies::default();
        l.add(1e12);
        l.add(-3.0);
        assert!(l.p95() > 0.0);
    }
}
