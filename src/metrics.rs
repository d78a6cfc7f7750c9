//! Prometheus metrics. Labels come from small fixed sets (operation names, outcome categories),
//! never from object names or error text, so cardinality stays bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsCallLabels {
    operation: &'static str,
    outcome: &'static str,
    /// The account called: an assumed role's, or `self` for the operator's own identity.
    account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// Where an object stands, for the `objects` gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectState {
    Ready,
    Progressing,
    Stalled,
    /// managementPolicy Observe, and AWS differs from the spec.
    Differs,
}

impl ObjectState {
    fn label(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Progressing => "progressing",
            Self::Stalled => "stalled",
            Self::Differs => "differs",
        }
    }
}

pub struct Metrics {
    aws_calls: Family<AwsCallLabels, Counter>,
    pacer_wait: Family<AccountLabels, Histogram>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Histogram,
    objects: Family<StateLabels, Gauge>,
    /// Each object's last state, so the gauges count objects rather than events.
    /// Boxed keys: a String's spare capacity field is 8 bytes per object for nothing.
    object_states: Mutex<HashMap<Box<str>, ObjectState>>,
    leader: Gauge,
    watch_restarts: Counter,
    event_write_failures: Counter,
    /// Account labels in use (`aws_call_count` sums over them).
    known_accounts: Mutex<std::collections::BTreeSet<String>>,
}

/// The `account` label of calls made with the operator's own identity.
pub const OWN_ACCOUNT: &str = "self";

impl Default for Metrics {
    fn default() -> Self {
        Self {
            aws_calls: Family::default(),
            pacer_wait: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 4.0, 8))),
            reconciles: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.005, 4.0, 9)),
            objects: Family::default(),
            object_states: Mutex::default(),
            leader: Gauge::default(),
            watch_restarts: Counter::default(),
            event_write_failures: Counter::default(),
            known_accounts: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them under the operator's prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let registry = registry.sub_registry_with_prefix("integration_response_operator");
        registry.register("aws_calls", "AWS API calls by operation and outcome", metrics.aws_calls.clone());
        registry.register(
            "aws_pacer_wait_seconds",
            "Time AWS calls waited for the client-side rate limiter",
            metrics.pacer_wait.clone(),
        );
        registry.register("reconciles", "Reconciles by result category", metrics.reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Time taken by one reconcile",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "objects",
            "IntegrationResponses by state (ready, progressing, stalled, differs)",
            metrics.objects.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica reconciles (holds the lease, or runs without election)",
            metrics.leader.clone(),
        );
        registry.register(
            "watch_restarts",
            "Watch errors and re-lists of IntegrationResponses",
            metrics.watch_restarts.clone(),
        );
        registry.register(
            "event_write_failures",
            "Kubernetes Events the API server refused or did not answer (logged at warn)",
            metrics.event_write_failures.clone(),
        );
        for state in [ObjectState::Ready, ObjectState::Progressing, ObjectState::Stalled, ObjectState::Differs] {
            let _ = metrics.objects.get_or_create(&StateLabels { state: state.label() });
        }
        metrics
    }

    /// Records an object's state; `None` when it is gone.
    pub fn set_object_state(&self, key: &str, state: Option<ObjectState>) {
        let mut states = self.object_states.lock().expect("object states lock");
        let previous = match state {
            Some(state) => match states.get_mut(key) {
                Some(slot) => Some(std::mem::replace(slot, state)),
                None => states.insert(key.into(), state),
            },
            None => states.remove(key),
        };
        if previous == state {
            return;
        }
        if let Some(previous) = previous {
            self.objects.get_or_create(&StateLabels { state: previous.label() }).dec();
        }
        if let Some(state) = state {
            self.objects.get_or_create(&StateLabels { state: state.label() }).inc();
        }
    }

    /// Drops every object `keep` refuses from the state gauges (they have left the watch).
    pub fn retain_objects(&self, mut keep: impl FnMut(&str) -> bool) {
        let gone: Vec<String> = {
            let states = self.object_states.lock().expect("object states lock");
            states.keys().filter(|key| !keep(key)).map(|key| key.to_string()).collect()
        };
        for key in gone {
            self.set_object_state(&key, None);
        }
    }

    /// Objects counted in the state gauges, all states together.
    pub fn tracked_objects(&self) -> usize {
        self.object_states.lock().expect("object states lock").len()
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn count_event_failure(&self) {
        self.event_write_failures.inc();
    }

    pub fn count_watch_restart(&self) {
        self.watch_restarts.inc();
    }

    pub fn count_aws_call(&self, operation: &'static str, outcome: &'static str, account: &str) {
        self.aws_calls.get_or_create(&AwsCallLabels { operation, outcome, account: account.to_owned() }).inc();
    }

    pub fn observe_pacer_wait(&self, waited: Duration, account: &str) {
        self.pacer_wait.get_or_create(&AccountLabels { account: account.to_owned() }).observe(waited.as_secs_f64());
    }

    pub fn observe_reconcile(&self, result: &'static str, took: Duration) {
        self.reconciles.get_or_create(&ReconcileLabels { result }).inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Calls counted so far for one operation and outcome, in every account.
    pub fn aws_call_count(&self, operation: &'static str, outcome: &'static str) -> u64 {
        let mut total = 0;
        for account in self.accounts_called() {
            total += self.aws_calls.get_or_create(&AwsCallLabels { operation, outcome, account }).get();
        }
        total
    }

    /// The accounts pacer waits were recorded for (every account called).
    fn accounts_called(&self) -> Vec<String> {
        let mut accounts = vec![OWN_ACCOUNT.to_owned()];
        // The families cannot be iterated; the pacer's is keyed alike and small.
        accounts.extend(self.known_accounts.lock().expect("accounts lock").iter().cloned());
        accounts.sort();
        accounts.dedup();
        accounts
    }

    /// Remembers an account label (bounded by the number of role selectors).
    pub fn note_account(&self, account: &str) {
        self.known_accounts.lock().expect("accounts lock").insert(account.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_exposed_in_text_format() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.count_aws_call("GetIntegrationResponse", "ok", OWN_ACCOUNT);
        metrics.observe_reconcile("ok", Duration::from_millis(20));
        metrics.observe_pacer_wait(Duration::ZERO, OWN_ACCOUNT);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            r#"integration_response_operator_aws_calls_total{operation="GetIntegrationResponse",outcome="ok",account="self"} 1"#
        ));
        assert!(text.contains(r#"integration_response_operator_reconciles_total{result="ok"} 1"#));
        assert!(text.contains("integration_response_operator_reconcile_duration_seconds_count 1"));
        assert!(text.contains(r#"integration_response_operator_aws_pacer_wait_seconds_count{account="self"} 1"#));
        assert!(text.contains(r#"integration_response_operator_objects{state="stalled"} 0"#));
    }

    #[test]
    fn object_gauges_count_each_object_once_in_its_latest_state() {
        let metrics = Metrics::default();
        let count = |state: ObjectState| metrics.objects.get_or_create(&StateLabels { state: state.label() }).get();
        metrics.set_object_state("ns/a", Some(ObjectState::Progressing));
        metrics.set_object_state("ns/a", Some(ObjectState::Ready));
        metrics.set_object_state("ns/a", Some(ObjectState::Ready));
        metrics.set_object_state("ns/b", Some(ObjectState::Stalled));
        assert_eq!(
            (count(ObjectState::Ready), count(ObjectState::Progressing), count(ObjectState::Stalled)),
            (1, 0, 1)
        );
        metrics.set_object_state("ns/b", None);
        assert_eq!(count(ObjectState::Stalled), 0);
    }
}
