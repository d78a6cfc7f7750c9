//! Per-integration snapshots for resync reads.
//!
//! API Gateway allows 10 management calls per second per account, so a resync must not cost one
//! read per object. Objects already in sync are checked against one `GetIntegrationResponses`
//! per integration, shared by every reconcile that resyncs within `max_age` of it. A snapshot
//! holds only a fingerprint per response id; any mismatch sends the caller to a direct read, and
//! every write this operator makes to an integration drops its snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::aws::{AwsError, IntegrationResponses};
use crate::domain::Target;

struct Snapshot {
    taken: Instant,
    by_id: HashMap<String, u64>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Snapshot>>>;

pub struct Snapshots {
    max_age: Duration,
    slots: Mutex<HashMap<Target, Slot>>,
    /// Objects this process has just seen match AWS (after a create, update or check), with the
    /// fingerprint of the spec it matched. A reconcile triggered soon after (the integration's
    /// resync slot coming right after a create, say) needs no AWS read; so AWS is read for each
    /// object at least once per period and a quarter.
    verified: Mutex<HashMap<Box<str>, (Instant, u64)>>,
    /// When expired snapshots and verified marks were last dropped: they answer nothing after
    /// `max_age`, and at 100,000 objects would otherwise hold every response id and object name
    /// for good.
    swept: Mutex<Instant>,
}

impl Snapshots {
    pub fn new(max_age: Duration) -> Self {
        Self { max_age, slots: Mutex::default(), verified: Mutex::default(), swept: Mutex::new(Instant::now()) }
    }

    pub fn record_verified(&self, object: &str, fingerprint: u64) {
        self.sweep();
        self.verified.lock().expect("verified lock").insert(object.into(), (Instant::now(), fingerprint));
    }

    /// Whether `object` matched this spec fingerprint in AWS less than `max_age` ago.
    pub fn recently_verified(&self, object: &str, fingerprint: u64) -> bool {
        self.verified
            .lock()
            .expect("verified lock")
            .get(object)
            .is_some_and(|(at, seen)| *seen == fingerprint && at.elapsed() <= self.max_age)
    }

    pub fn forget(&self, object: &str) {
        self.verified.lock().expect("verified lock").remove(object);
    }

    /// Keeps only the objects `keep` accepts (the others have left the watch).
    pub fn retain_verified(&self, mut keep: impl FnMut(&str) -> bool) {
        self.verified.lock().expect("verified lock").retain(|object, _| keep(object));
    }

    pub fn verified_len(&self) -> usize {
        self.verified.lock().expect("verified lock").len()
    }

    /// The fingerprint of response `id` in a snapshot at most `max_age` old (taking one if
    /// needed; concurrent callers for one integration share it). `None`: not in the snapshot.
    pub async fn fingerprint(
        &self,
        aws: &IntegrationResponses,
        target: &Target,
        id: &str,
    ) -> Result<Option<u64>, AwsError> {
        self.sweep();
        let slot = self.slots.lock().expect("snapshot slots lock").entry(target.clone()).or_default().clone();
        let mut snapshot = slot.lock().await;
        let fresh = snapshot.as_ref().is_some_and(|s| s.taken.elapsed() <= self.max_age);
        if !fresh {
            let taken = Instant::now();
            let responses = aws.list(target).await?;
            let by_id = responses.iter().map(|r| (r.id.clone(), r.fields.fingerprint())).collect();
            *snapshot = Some(Snapshot { taken, by_id });
        }
        Ok(snapshot.as_ref().and_then(|s| s.by_id.get(id).copied()))
    }

    /// At most once per `max_age`, drops what has expired. A snapshot in use (its slot held
    /// elsewhere) is kept.
    fn sweep(&self) {
        {
            let mut swept = self.swept.lock().expect("sweep lock");
            if swept.elapsed() <= self.max_age {
                return;
            }
            *swept = Instant::now();
        }
        let max_age = self.max_age;
        self.verified.lock().expect("verified lock").retain(|_, (at, _)| at.elapsed() <= max_age);
        self.slots.lock().expect("snapshot slots lock").retain(|_, slot| {
            Arc::strong_count(slot) > 1
                || slot
                    .try_lock()
                    .map_or(true, |snapshot| snapshot.as_ref().is_some_and(|s| s.taken.elapsed() <= max_age))
        });
    }

    /// Drops the integration's snapshot: call after any write to it.
    pub fn invalidate(&self, target: &Target) {
        self.slots.lock().expect("snapshot slots lock").remove(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn verification_lasts_max_age_and_only_for_the_same_spec() {
        let snapshots = Snapshots::new(Duration::from_secs(60));
        snapshots.record_verified("ns/a", 7);
        assert!(snapshots.recently_verified("ns/a", 7));
        assert!(!snapshots.recently_verified("ns/a", 8), "a changed spec is read again");
        assert!(!snapshots.recently_verified("ns/b", 7));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!snapshots.recently_verified("ns/a", 7), "expired");
        snapshots.record_verified("ns/a", 7);
        snapshots.forget("ns/a");
        assert!(!snapshots.recently_verified("ns/a", 7));
    }

    #[tokio::test(start_paused = true)]
    async fn what_has_expired_is_dropped_once_something_new_is_recorded() {
        let snapshots = Snapshots::new(Duration::from_secs(60));
        snapshots.record_verified("ns/a", 7);
        snapshots.record_verified("ns/b", 7);
        tokio::time::advance(Duration::from_secs(40)).await;
        snapshots.record_verified("ns/b", 7);
        assert_eq!(snapshots.verified_len(), 2, "nothing has expired yet");
        tokio::time::advance(Duration::from_secs(30)).await;
        snapshots.record_verified("ns/c", 7);
        assert_eq!(snapshots.verified_len(), 2, "a expired; b (renewed) and c are kept");
        assert!(snapshots.recently_verified("ns/b", 7) && snapshots.recently_verified("ns/c", 7));
    }
}
