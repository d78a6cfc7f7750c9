//! Per-object retry delays: exponential with jitter, reset on success.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

/// Delays `base * 2^attempt`, capped at `max`, with "equal jitter": half the delay is fixed,
/// half random, so retries of many objects spread out but never come back immediately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub base: Duration,
    pub max: Duration,
}

impl Schedule {
    /// Throttling, AWS 5xx, network errors.
    pub const TRANSIENT: Self = Self { base: Duration::from_secs(1), max: Duration::from_secs(300) };
    /// A missing API or integration: it may appear later, but not within seconds.
    pub const DEPENDENCY: Self = Self { base: Duration::from_secs(30), max: Duration::from_secs(600) };

    /// `jitter` is uniform in [0, 1).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exponential = self.base.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX));
        let capped = exponential.min(self.max);
        capped / 2 + capped.mul_f64(jitter.clamp(0.0, 1.0)) / 2
    }
}

/// Spreads periodic work: `period` ± 10%.
pub fn jittered(period: Duration, jitter: f64) -> Duration {
    period.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// Failure counts per object, shared by all reconciles.
pub struct Attempts<K> {
    counts: Mutex<HashMap<K, u32>>,
}

impl<K: Eq + Hash> Default for Attempts<K> {
    fn default() -> Self {
        Self { counts: Mutex::default() }
    }
}

impl<K: Eq + Hash + Clone> Attempts<K> {
    /// Returns how many failures came before this one, and counts this one.
    pub fn record_failure(&self, key: &K) -> u32 {
        let mut counts = self.counts.lock().expect("attempts lock");
        let count = counts.entry(key.clone()).or_insert(0);
        let before = *count;
        *count = count.saturating_add(1);
        before
    }

    /// Whether `key`'s last attempt failed.
    pub fn contains(&self, key: &K) -> bool {
        self.counts.lock().expect("attempts lock").contains_key(key)
    }

    pub fn reset(&self, key: &K) {
        self.counts.lock().expect("attempts lock").remove(key);
    }

    /// Keeps only the objects `keep` accepts (the others have left the watch).
    pub fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        self.counts.lock().expect("attempts lock").retain(|key, _| keep(key));
    }

    pub fn len(&self) -> usize {
        self.counts.lock().expect("attempts lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_until_the_cap() {
        let s = Schedule::TRANSIENT;
        let no_jitter: Vec<_> = (0..12).map(|a| s.delay(a, 0.0).as_millis()).collect();
        assert_eq!(no_jitter, [500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 150000, 150000, 150000]);
        let full_jitter: Vec<_> = (0..4).map(|a| s.delay(a, 0.999_999).as_secs()).collect();
        assert_eq!(full_jitter, [0, 1, 3, 7]);
        assert_eq!(s.delay(u32::MAX, 0.5), Duration::from_secs(225));
    }

    #[test]
    fn jitter_spreads_delays_within_bounds() {
        let s = Schedule::DEPENDENCY;
        for jitter in [0.0, 0.25, 0.5, 0.75, 0.99] {
            let d = s.delay(1, jitter);
            assert!(d >= Duration::from_secs(30) && d < Duration::from_secs(60), "{d:?}");
        }
        assert_ne!(s.delay(1, 0.1), s.delay(1, 0.9));
    }

    #[test]
    fn resync_jitter_is_ten_percent() {
        let period = Duration::from_secs(600);
        assert_eq!(jittered(period, 0.0), Duration::from_secs(540));
        assert_eq!(jittered(period, 0.5), Duration::from_secs(600));
        assert!(jittered(period, 1.0) <= Duration::from_secs(660));
    }

    #[test]
    fn attempts_grow_per_object_and_reset_on_success() {
        let attempts = Attempts::default();
        assert_eq!(attempts.record_failure(&"a"), 0);
        assert_eq!(attempts.record_failure(&"a"), 1);
        assert_eq!(attempts.record_failure(&"b"), 0);
        attempts.reset(&"a");
        assert!(!attempts.contains(&"a") && attempts.contains(&"b"));
        assert_eq!(attempts.record_failure(&"a"), 0);
        assert_eq!(attempts.record_failure(&"b"), 1);
    }
}
