//! Command-line flags; each has an environment twin that the Helm chart and tests rely on.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug, Clone)]
#[command(name = "integration-response-operator", version, about)]
pub struct Args {
    /// Region for objects without spec.region. Without it such objects are Stalled.
    #[arg(long, env = "AWS_REGION")]
    pub default_region: Option<String>,

    /// How often every object is compared with AWS (drift detection). Objects of one integration
    /// share a slot in the period; integrations are spread over it.
    #[arg(long, env = "RESYNC_PERIOD", default_value = "10m", value_parser = humantime::parse_duration)]
    pub resync_period: Duration,

    /// Reconciles run at once. AWS calls are paced account-wide anyway, so more only queues
    /// on the pacer; a few hide the latency of single calls.
    #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// AWS management calls per second across all reconciles (0 turns pacing off). API Gateway
    /// allows 10 per second per account, shared with every other tool in the account.
    #[arg(long, env = "AWS_RATE_LIMIT_RPS", default_value_t = 5.0)]
    pub aws_rps: f64,

    /// Calls that may go at once after an idle period.
    #[arg(long, env = "AWS_RATE_LIMIT_BURST", default_value_t = 5)]
    pub aws_burst: u32,

    /// Comma-separated namespaces to watch; all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE", value_delimiter = ',')]
    pub watch_namespace: Vec<String>,

    /// Only reconcile objects matching this label selector (for sharding across instances).
    #[arg(long, env = "LABEL_SELECTOR")]
    pub label_selector: Option<String>,

    /// Address of /livez, /readyz and /metrics.
    #[arg(long, env = "ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,

    /// Run only while holding a coordination.k8s.io Lease, so several replicas can run with one
    /// active (needed whenever more than one replica runs).
    #[arg(long, env = "LEADER_ELECT", default_value_t = false, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, env = "LEASE_NAME", default_value = "integration-response-operator")]
    pub lease_name: String,

    /// Namespace of the Lease (the operator's own namespace in a cluster).
    #[arg(long, env = "LEASE_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// How long a leader that stops renewing keeps the lease; a standby takes over after it.
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// This replica's identity in the Lease and in Events; defaults to the pod's name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// After SIGTERM, how long in-flight reconciles may take before the process exits anyway.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Log format; the level comes from RUST_LOG.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe_for_a_shared_account() {
        let args = Args::try_parse_from(["integration-response-operator"]).unwrap();
        assert_eq!(args.resync_period, Duration::from_secs(600));
        assert!(args.aws_rps > 0.0 && args.aws_rps < 10.0);
        assert!(args.watch_namespace.is_empty());
        assert_eq!(args.admin_addr.port(), 8080);
        assert!(!args.leader_elect);
        assert_eq!(args.lease_duration, Duration::from_secs(15));
    }

    #[test]
    fn flags_parse_humantime_and_namespace_lists() {
        let args = Args::try_parse_from([
            "x",
            "--resync-period=30s",
            "--watch-namespace=team-a,team-b",
            "--log-format=json",
            "--concurrency=2",
        ])
        .unwrap();
        assert_eq!(args.resync_period, Duration::from_secs(30));
        assert_eq!(args.watch_namespace, ["team-a", "team-b"]);
        assert_eq!(args.log_format, LogFormat::Json);
        assert!(Args::try_parse_from(["x", "--concurrency=0"]).is_err());
        assert!(Args::try_parse_from(["x", "--resync-period=often"]).is_err());
    }
}
