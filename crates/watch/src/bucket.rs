//! A leaky bucket: drops pour in, and leak out at a steady rate; pouring
//! into a full bucket overflows it.

use std::time::{Duration, Instant};

/// A leaky bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// How many drops it holds; one more overflows it.
    pub capacity: u32,
    /// How long one drop takes to leak out.
    pub leak: Duration,
}

/// A bucket's level at a time.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(at: Instant) -> Self {
        Self { level: 0.0, at }
    }

    fn leak_to(&mut self, shape: Shape, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at);
        if shape.leak.is_zero() {
            self.level = 0.0;
        } else {
            self.level = (self.level - elapsed.as_secs_f64() / shape.leak.as_secs_f64()).max(0.0);
        }
        self.at = self.at.max(now);
    }

    /// Pours one drop at `now`; whether the bucket overflowed.
    pub fn pour(&mut self, shape: Shape, now: Instant) -> bool {
        self.leak_to(shape, now);
        self.level += 1.0;
        self.level > f64::from(shape.capacity)
    }

    /// Whether it has leaked empty by `now`.
    pub fn is_empty(&self, shape: Shape, now: Instant) -> bool {
        let mut probe = *self;
        probe.leak_to(shape, now);
        probe.level <= 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        capacity: 3,
        leak: Duration::from_secs(1),
    };

    #[test]
    fn a_burst_over_capacity_overflows_and_a_trickle_never_does() {
        let t0 = Instant::now();
        let mut burst = Bucket::new(t0);
        let overflowed: Vec<bool> = (0..4).map(|_| burst.pour(SHAPE, t0)).collect();
        assert_eq!(overflowed, [false, false, false, true]);

        let mut trickle = Bucket::new(t0);
        for i in 0..100u64 {
            let at = t0 + Duration::from_millis(1100 * i);
            assert!(!trickle.pour(SHAPE, at), "drop {i}");
        }
    }

    #[test]
    fn it_leaks_empty_at_its_rate() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(t0);
        for _ in 0..3 {
            bucket.pour(SHAPE, t0);
        }
        assert!(!bucket.is_empty(SHAPE, t0 + Duration::from_millis(2900)));
        assert!(bucket.is_empty(SHAPE, t0 + Duration::from_secs(3)));
        // Half leaked: two more fit, the third overflows.
        let later = t0 + Duration::from_millis(1500);
        assert!(!bucket.pour(SHAPE, later));
        assert!(bucket.pour(SHAPE, later));
    }

    #[test]
    fn time_going_backwards_neither_panics_nor_refills() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = Bucket::new(t0);
        bucket.pour(SHAPE, t0);
        assert!(!bucket.pour(SHAPE, t0 - Duration::from_secs(5)));
        assert!(!bucket.is_empty(SHAPE, t0));
    }
}
