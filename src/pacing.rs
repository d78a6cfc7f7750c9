//! Client-side pacing of AWS calls.
//!
//! API Gateway allows about 10 management calls per second per account, shared by every tool
//! in that account, so all reconciles draw from one token bucket. A caller reserves a token and
//! sleeps until it is due; reservations are handed out in call order, so nobody starves.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct Pacer {
    bucket: Option<Mutex<Bucket>>,
}

struct Bucket {
    per_second: f64,
    burst: f64,
    /// Tokens available at `updated`; negative when callers are queued for future tokens.
    tokens: f64,
    updated: Instant,
}

impl Pacer {
    /// `per_second == 0` turns pacing off (for benchmarks against an emulator).
    pub fn new(per_second: f64, burst: u32) -> Self {
        let bucket = (per_second > 0.0).then(|| {
            let burst = f64::from(burst.max(1));
            Mutex::new(Bucket { per_second, burst, tokens: burst, updated: Instant::now() })
        });
        Self { bucket }
    }

    pub fn unlimited() -> Self {
        Self { bucket: None }
    }

    /// A new, full pacer with the same rate and burst (one per account and region).
    pub fn like(&self) -> Self {
        match &self.bucket {
            None => Self::unlimited(),
            Some(bucket) => {
                let bucket = bucket.lock().expect("pacer lock poisoned");
                Self::new(bucket.per_second, bucket.burst as u32)
            }
        }
    }

    /// Reserves one call and waits until it may be made. Returns the time spent waiting.
    pub async fn acquire(&self) -> Duration {
        let wait = match &self.bucket {
            None => return Duration::ZERO,
            Some(bucket) => bucket.lock().expect("pacer lock poisoned").reserve(Instant::now()),
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

impl Bucket {
    fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.updated = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.per_second) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_passes_then_calls_are_spaced_by_the_rate() {
        let pacer = Pacer::new(10.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(pacer.acquire().await, Duration::ZERO);
        }
        // The next seven calls come at 100 ms intervals.
        for i in 1..=7u32 {
            pacer.acquire().await;
            let elapsed = start.elapsed();
            let expected = Duration::from_millis(100) * i;
            assert!(elapsed >= expected && elapsed < expected + Duration::from_millis(5), "call {i} at {elapsed:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_budget() {
        let pacer = std::sync::Arc::new(Pacer::new(5.0, 1));
        let start = Instant::now();
        let calls = (0..10).map(|_| {
            let pacer = pacer.clone();
            tokio::spawn(async move { pacer.acquire().await })
        });
        futures::future::join_all(calls).await;
        // One at once, then nine more at 5 per second.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_millis(1850), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_refills_up_to_the_burst_only() {
        let pacer = Pacer::new(1.0, 2);
        pacer.acquire().await;
        pacer.acquire().await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(pacer.acquire().await, Duration::ZERO);
        assert_eq!(pacer.acquire().await, Duration::ZERO);
        assert_eq!(pacer.acquire().await, Duration::from_secs(1));
    }

    #[tokio::test]
    async fn zero_rate_means_unpaced() {
        let pacer = Pacer::new(0.0, 0);
        for _ in 0..1000 {
            assert_eq!(pacer.acquire().await, Duration::ZERO);
        }
    }
}
