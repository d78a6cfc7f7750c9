//! Bringing objects back promptly after an AWS outage or a throttling storm.
//!
//! Each object retries on its own backoff, which after a minute of failures has grown to tens
//! of seconds; left alone, objects would come back that long after AWS did. So the AWS layer
//! tells this module how calls fare: after a streak of failures that says AWS as a whole is
//! unreachable or throttling (not just one object's trouble), the first call that succeeds
//! wakes every object waiting on such a failure. They still go through the pacer. While the
//! streak lasts and objects wait, a cheap read now and then finds out when AWS is back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::watch;

use crate::domain::Target;

/// Failed calls in a row, with no success between them, that make AWS count as down.
const DOWN_AFTER: u32 = 3;

pub struct AwsHealth {
    failures_in_a_row: AtomicU32,
    /// Where the last failure happened (region and integration), for probes.
    last_failed: Mutex<Option<(String, Target)>>,
    /// Bumped each time AWS answers again after being down.
    recovered: watch::Sender<u64>,
}

impl Default for AwsHealth {
    fn default() -> Self {
        Self { failures_in_a_row: AtomicU32::new(0), last_failed: Mutex::default(), recovered: watch::channel(0).0 }
    }
}

impl AwsHealth {
    /// A call that failed in a way that may be AWS's as a whole (throttling, 5xx, network).
    pub fn failed(&self, region: &str, target: &Target) {
        self.failures_in_a_row.fetch_add(1, Ordering::AcqRel);
        *self.last_failed.lock().expect("health lock") = Some((region.to_owned(), target.clone()));
    }

    /// A call that AWS answered (successfully, or with an answer about the request itself).
    pub fn answered(&self) {
        if self.failures_in_a_row.swap(0, Ordering::AcqRel) >= DOWN_AFTER {
            self.recovered.send_modify(|n| *n += 1);
        }
    }

    pub fn is_down(&self) -> bool {
        self.failures_in_a_row.load(Ordering::Acquire) >= DOWN_AFTER
    }

    /// Where to probe while AWS is down.
    pub fn probe_target(&self) -> Option<(String, Target)> {
        self.last_failed.lock().expect("health lock").clone()
    }

    /// Changes each time AWS is back.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.recovered.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            region: "us-east-1".into(),
            api_id: "a".into(),
            integration_id: "i".into(),
            identity: crate::roles::Identity::Own,
        }
    }

    #[test]
    fn one_objects_failures_between_successes_are_not_an_outage() {
        let health = AwsHealth::default();
        let recovered = health.subscribe();
        for _ in 0..10 {
            health.failed("us-east-1", &target());
            health.answered();
        }
        assert!(!health.is_down());
        assert!(!recovered.has_changed().unwrap(), "nothing to wake");
    }

    #[test]
    fn a_streak_of_failures_then_an_answer_signals_recovery_once() {
        let health = AwsHealth::default();
        let mut recovered = health.subscribe();
        for _ in 0..DOWN_AFTER {
            health.failed("eu-west-1", &target());
        }
        assert!(health.is_down());
        assert_eq!(health.probe_target().map(|(region, _)| region).as_deref(), Some("eu-west-1"));
        health.answered();
        assert!(!health.is_down());
        assert!(recovered.has_changed().unwrap());
        recovered.borrow_and_update();
        health.answered();
        assert!(!recovered.has_changed().unwrap(), "only the first answer after the outage");
    }
}
