//! The periodic resync (drift detection), driven by one clock per watch instead of a timer per
//! object.
//!
//! A reconcile that succeeds waits for a change (`Action::await_change`); this clock then wakes
//! every object once per resync period, at its integration's slot. kube-runtime's scheduler would
//! otherwise hold one entry per object for the whole period (two copies of its reference with
//! name, namespace, resourceVersion and uid: about 800 bytes each), so at 100,000 objects the
//! timers alone would take 80 MiB. The scheduler now holds only objects with a retry due.
//!
//! Slots are on the wall clock, so restarts and replicas agree; objects of one integration share
//! a slot and so one AWS read (see [`crate::snapshots`]). An object being reconciled, or whose
//! last reconcile failed, is left to its retry schedule (error_policy), which this clock must not
//! shorten; an object that does not match the schema waits for a change.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{ObjectRef, Store};

use super::{CachedObject, Context};
use crate::crd::IntegrationResponse;

/// The object's resync slot within a period: the same for every object of one integration,
/// however it names it (ids, recorded ids, or a reference).
pub fn phase(obj: &IntegrationResponse) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    let status = obj.status.as_ref();
    let api = status.and_then(|s| s.api_id.as_ref()).or(obj.spec.api_id.as_ref());
    let integration = status.and_then(|s| s.integration_id.as_ref()).or(obj.spec.integration_id.as_ref());
    (api, integration, api.is_none().then_some(&obj.spec.integration_ref)).hash(&mut hasher);
    hasher.finish()
}

/// Whether a slot at `phase` (recurring every `period` since the epoch) falls in `(from, to]`.
/// A window of a whole period or more holds every slot.
pub fn due(period: Duration, phase: u64, from: Duration, to: Duration) -> bool {
    let period_ms = period.as_millis().max(1) as u64;
    let (from_ms, to_ms) = (from.as_millis() as u64, to.as_millis() as u64);
    if to_ms <= from_ms {
        return false;
    }
    if to_ms - from_ms >= period_ms {
        return true;
    }
    let slot = phase % period_ms;
    let mut next = from_ms - from_ms % period_ms + slot;
    if next <= from_ms {
        next += period_ms;
    }
    next <= to_ms
}

/// How often the clock looks: often enough that a slot fires close to its time, rarely enough
/// that scanning a large cache costs nothing noticeable (about 2 ms per 100,000 objects).
pub fn tick(period: Duration) -> Duration {
    (period / 60).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// The cached objects to resync for slots in `(from, to]`.
pub fn due_objects(
    ctx: &Context,
    objects: &[Arc<CachedObject>],
    from: Duration,
    to: Duration,
) -> Vec<ObjectRef<CachedObject>> {
    let period = ctx.settings.resync_period;
    objects
        .iter()
        .filter(|cached| cached.resync_phase().is_some_and(|phase| due(period, phase, from, to)))
        .map(|cached| super::reference_to(cached.as_ref()))
        .filter(|object| !ctx.resync_waits(object.namespace.as_deref(), &object.name))
        .collect()
}

/// Every object of `store` at its integration's slot, once per resync period.
///
/// Slots are placed on the wall clock once, at start, and followed with the monotonic clock
/// after that: a wall clock stepped back (NTP correcting a node) would otherwise leave every
/// window empty for as long as the step, and one stepped forward would wake everything at once.
pub fn clock(
    ctx: Arc<Context>,
    store: Store<CachedObject>,
) -> impl Stream<Item = ObjectRef<CachedObject>> + Send + 'static {
    let every = tick(ctx.settings.resync_period);
    let wall_at_start = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let started = tokio::time::Instant::now();
    let position = move || wall_at_start + started.elapsed();
    futures::stream::unfold((ctx, store, position()), move |(ctx, store, from)| async move {
        tokio::time::sleep(every).await;
        let to = position();
        let due = due_objects(&ctx, &store.state(), from, to);
        Some((futures::stream::iter(due), (ctx, store, to)))
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(600);

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn a_slot_is_due_once_per_period_in_consecutive_windows() {
        let phase = 123_456;
        // Windows of one tick each over three periods: the slot fires exactly three times, each
        // at its place in the period.
        let mut fired = Vec::new();
        let mut from = ms(1_000);
        while from < ms(1_000 + 3 * 600_000) {
            let to = from + ms(10_000);
            if due(PERIOD, phase, from, to) {
                fired.push(to.as_millis() as u64);
            }
            from = to;
        }
        assert_eq!(fired.len(), 3, "{fired:?}");
        for at in fired {
            let slot_in_window = (at - 10_000..=at).any(|t| t % 600_000 == 123_456);
            assert!(slot_in_window, "{at}");
        }
    }

    #[test]
    fn windows_are_open_at_the_start_and_closed_at_the_end() {
        assert!(due(PERIOD, 500, ms(0), ms(500)));
        assert!(!due(PERIOD, 500, ms(500), ms(1_000)), "fired in the window before");
        assert!(due(PERIOD, 500, ms(600_499), ms(600_500)), "the next period");
        assert!(!due(PERIOD, 500, ms(700), ms(700)), "an empty window");
        assert!(!due(PERIOD, 500, ms(900), ms(700)), "a clock that went back");
        assert!(due(PERIOD, 9_999_999, ms(0), ms(600_000)), "a whole period holds every slot");
        assert!(due(PERIOD, 599_999, ms(599_000), ms(600_100)), "a window over the period's end");
        assert!(due(PERIOD, 50, ms(599_000), ms(600_100)), "and the start of the next");
        assert!(!due(PERIOD, 300_000, ms(599_000), ms(600_100)));
    }

    #[test]
    fn objects_of_one_integration_share_a_slot_however_they_name_it() {
        let object = |spec: serde_json::Value, status: serde_json::Value| -> IntegrationResponse {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1", "kind": "IntegrationResponse",
                "metadata": {"name": "a", "namespace": "ns"}, "spec": spec, "status": status,
            }))
            .unwrap()
        };
        let by_ids = object(
            serde_json::json!({"apiId": "api", "integrationId": "int", "integrationResponseKey": "$default"}),
            serde_json::json!({}),
        );
        let by_reference_resolved = object(
            serde_json::json!({"integrationRef": {"apiVersion": "v", "kind": "Integration", "name": "i"},
                               "integrationResponseKey": "/4\\d\\d/"}),
            serde_json::json!({"apiId": "api", "integrationId": "int"}),
        );
        let other = object(
            serde_json::json!({"apiId": "api", "integrationId": "int2", "integrationResponseKey": "$default"}),
            serde_json::json!({}),
        );
        assert_eq!(phase(&by_ids), phase(&by_reference_resolved));
        assert_ne!(phase(&by_ids), phase(&other));
    }

    #[test]
    fn the_clock_looks_often_enough_for_short_periods_and_rarely_for_long_ones() {
        assert_eq!(tick(Duration::from_secs(1)), ms(100));
        assert_eq!(tick(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(tick(Duration::from_secs(3600)), Duration::from_secs(5));
    }
}
