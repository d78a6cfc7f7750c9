//! Prometheus metrics. Labels come from small fixed sets (operation names, outcome categories),
//! never from object names or error text, so cardinality stays bounded.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsCallLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    result: &'static str,
}

pub struct Metrics {
    aws_calls: Family<AwsCallLabels, Counter>,
    pacer_wait: Histogram,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            aws_calls: Family::default(),
            pacer_wait: Histogram::new(exponential_buckets(0.01, 4.0, 8)),
            reconciles: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.005, 4.0, 9)),
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them under the operator's prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let registry = registry.sub_registry_with_prefix("integration_response_operator");
        registry.register(
            "aws_calls",
            "AWS API calls by operation and outcome",
            metrics.aws_calls.clone(),
        );
        registry.register(
            "aws_pacer_wait_seconds",
            "Time AWS calls waited for the client-side rate limiter",
            metrics.pacer_wait.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles by result category",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time taken by one reconcile",
            metrics.reconcile_duration.clone(),
        );
        metrics
    }

    pub fn count_aws_call(&self, operation: &'static str, outcome: &'static str) {
        self.aws_calls
            .get_or_create(&AwsCallLabels { operation, outcome })
            .inc();
    }

    pub fn observe_pacer_wait(&self, waited: Duration) {
        self.pacer_wait.observe(waited.as_secs_f64());
    }

    pub fn observe_reconcile(&self, result: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels { result })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Calls counted so far for one operation and outcome.
    pub fn aws_call_count(&self, operation: &'static str, outcome: &'static str) -> u64 {
        self.aws_calls
            .get_or_create(&AwsCallLabels { operation, outcome })
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_exposed_in_text_format() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.count_aws_call("GetIntegrationResponse", "ok");
        metrics.observe_reconcile("ok", Duration::from_millis(20));
        metrics.observe_pacer_wait(Duration::ZERO);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            r#"integration_response_operator_aws_calls_total{operation="GetIntegrationResponse",outcome="ok"} 1"#
        ));
        assert!(text.contains(r#"integration_response_operator_reconciles_total{result="ok"} 1"#));
        assert!(text.contains("integration_response_operator_reconcile_duration_seconds_count 1"));
        assert!(text.contains("integration_response_operator_aws_pacer_wait_seconds_count 1"));
    }
}
