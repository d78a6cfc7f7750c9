//! Command-line flags; each has an environment twin that the Helm chart and tests rely on.
//!
//! Periods, concurrency and rates are checked by clap as they are parsed, so a value that would
//! make the operator loop, stall or overflow stops the process at start (exit status 2) with a
//! message naming the flag and its environment twin, before it connects to anything.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug, Clone)]
#[command(name = "integration-response-operator", version, about)]
pub struct Args {
    /// Without a subcommand, the operator runs.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Region for objects without spec.region. Without it such objects are Stalled.
    #[arg(long, env = "AWS_REGION")]
    pub default_region: Option<String>,

    /// How often every object is compared with AWS (drift detection). Objects of one integration
    /// share a slot in the period; integrations are spread over it.
    #[arg(long, env = "RESYNC_PERIOD", default_value = "10m", value_parser = resync_period)]
    pub resync_period: Duration,

    /// Reconciles run at once. AWS calls are paced account-wide anyway, so more only queues
    /// on the pacer; a few hide the latency of single calls.
    #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 4, value_parser = concurrency, allow_negative_numbers = true)]
    pub concurrency: u16,

    /// AWS management calls per second across all reconciles (0 turns pacing off). API Gateway
    /// allows 10 per second per account, shared with every other tool in the account.
    #[arg(long, env = "AWS_RATE_LIMIT_RPS", default_value_t = 5.0, value_parser = aws_rps, allow_negative_numbers = true)]
    pub aws_rps: f64,

    /// Calls that may go at once after an idle period.
    #[arg(long, env = "AWS_RATE_LIMIT_BURST", default_value_t = 5, value_parser = aws_burst, allow_negative_numbers = true)]
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
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = lease_duration)]
    pub lease_duration: Duration,

    /// This replica's identity in the Lease and in Events; defaults to the pod's name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// After SIGTERM, how long in-flight reconciles may take before the process exits anyway.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = shutdown_timeout)]
    pub shutdown_timeout: Duration,

    /// Let spec.integrationRef name cluster-scoped objects (Crossplane's
    /// apigatewayv2.aws.upbound.io Integration). Off by default: any namespace could then attach
    /// responses to another team's integration.
    #[arg(long, env = "ALLOW_CLUSTER_SCOPED_REFS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_cluster_scoped_refs: bool,

    /// Which providers' Integration objects spec.integrationRef may name and the operator
    /// watches (comma-separated: ack, crossplane; or none). The chart sets it from
    /// references.ack.enabled and references.crossplane.enabled, with matching RBAC.
    #[arg(long, env = "REFERENCES", value_delimiter = ',', default_value = "ack,crossplane")]
    pub references: Vec<ReferenceProvider>,

    /// Objects in namespaces no IAMRoleSelector selects are Stalled (NoRoleSelector) instead of
    /// reconciled with the operator's own identity: every tenant must have a role.
    #[arg(long, env = "REQUIRE_ROLE_SELECTOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub require_role_selector: bool,

    /// Log format; the level comes from RUST_LOG.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Print the integration responses of an API (or one integration) as IntegrationResponse
    /// objects (YAML), with the adopt annotation and deletionPolicy Retain, ready to apply.
    Export(crate::export::ExportArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceProvider {
    Ack,
    Crossplane,
    /// Neither: spec.integrationRef is then refused with a Stalled condition.
    None,
}

impl Args {
    /// The Integration kinds of the enabled providers.
    pub fn reference_kinds(&self) -> Vec<crate::references::RefKind> {
        crate::references::RefKind::ALL
            .into_iter()
            .filter(|kind| {
                self.references.contains(&if kind.is_ack() {
                    ReferenceProvider::Ack
                } else {
                    ReferenceProvider::Crossplane
                })
            })
            .collect()
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

/// `--resync-period`: at 0 every object would be requeued at once and AWS re-read on every pass.
/// 1 s is the shortest useful period (the end-to-end drift test uses it); the reads it causes
/// still go through the account-wide pacer. Above a day, drift would go unnoticed for too long.
pub const RESYNC_PERIOD: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(24 * 60 * 60));

/// `--lease-duration`: the leader renews every third of it and gives up after two thirds. From
/// 3 s on, renewals come at most once a second, and the whole seconds written to the Lease
/// (`floor(duration)`) still outlast the holder's two-thirds deadline, so two replicas never
/// write at once. Above 10 minutes, a dead leader's work would stop for that long.
pub const LEASE_DURATION: (Duration, Duration) = (Duration::from_secs(3), Duration::from_secs(10 * 60));

/// `--shutdown-timeout`: 0 is allowed and means "do not wait for in-flight reconciles" (they
/// are crash safe, and the lease is still released). The pod's termination grace period
/// (60 s in the chart) cuts it short anyway, so more than 10 minutes is a mistake.
pub const SHUTDOWN_TIMEOUT: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(10 * 60));

/// `--concurrency`: AWS calls are paced account-wide, so more reconciles only queue on the pacer.
pub const CONCURRENCY: (u16, u16) = (1, 64);

/// `--aws-rps`, when not 0 (no pacing): below 0.1 every call would wait more than 10 s for its
/// token (and a tiny rate overflows the wait); above 100 pacing no longer means anything. API
/// Gateway allows 10 per second per account; more only makes sense against an emulator (the
/// end-to-end stack uses 50).
pub const AWS_RPS: (f64, f64) = (0.1, 100.0);

/// `--aws-burst`: at least one call must be able to go; more than 100 at once is far beyond what
/// an account allows.
pub const AWS_BURST: (u32, u32) = (1, 100);

fn resync_period(text: &str) -> Result<Duration, String> {
    duration_between(
        text,
        "--resync-period (RESYNC_PERIOD)",
        RESYNC_PERIOD,
        "; a shorter period re-reads AWS for every object almost without pause",
    )
}

fn lease_duration(text: &str) -> Result<Duration, String> {
    duration_between(
        text,
        "--lease-duration (LEASE_DURATION)",
        LEASE_DURATION,
        "; the leader renews every third of it, too often below that",
    )
}

fn shutdown_timeout(text: &str) -> Result<Duration, String> {
    duration_between(text, "--shutdown-timeout (SHUTDOWN_TIMEOUT)", SHUTDOWN_TIMEOUT, "")
}

fn concurrency(text: &str) -> Result<u16, String> {
    let (min, max) = CONCURRENCY;
    text.trim().parse().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| {
        format!(
            "--concurrency (RECONCILE_CONCURRENCY) must be a whole number between {min} and {max}, got {text} \
             (AWS calls are paced account-wide, so more reconciles only queue)"
        )
    })
}

fn aws_rps(text: &str) -> Result<f64, String> {
    let (min, max) = AWS_RPS;
    // `parse` accepts NaN and infinities; neither is in the range.
    text.trim().parse().ok().filter(|&rps: &f64| rps == 0.0 || (min..=max).contains(&rps)).ok_or_else(|| {
        format!(
            "--aws-rps (AWS_RATE_LIMIT_RPS) must be 0 (no pacing) or a number between {min} and {max}, got {text} \
             (API Gateway allows 10 calls per second per account)"
        )
    })
}

fn aws_burst(text: &str) -> Result<u32, String> {
    let (min, max) = AWS_BURST;
    text.trim().parse().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| {
        format!("--aws-burst (AWS_RATE_LIMIT_BURST) must be a whole number between {min} and {max}, got {text}")
    })
}

/// `too_short` follows the message when the value is below the range.
fn duration_between(
    text: &str,
    flag: &str,
    (min, max): (Duration, Duration),
    too_short: &str,
) -> Result<Duration, String> {
    let value = humantime::parse_duration(text.trim())
        .map_err(|err| format!("{flag} must be a duration such as 30s, 10m or 1h, got {text} ({err})"))?;
    if (min..=max).contains(&value) {
        return Ok(value);
    }
    let why = if value < min { too_short } else { "" };
    Err(format!("{flag} must be between {} and {}, got {text}{why}", short(min), short(max)))
}

/// `90s`, `10m`, `24h`: bounds as a user would write them.
fn short(duration: Duration) -> String {
    match duration.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
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

    /// The error clap reports for one flag, rendered as the user sees it.
    fn refused(args: &[&str]) -> String {
        let err = Args::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap_err();
        assert_eq!(err.exit_code(), 2, "a usage error: {err}");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{err}");
        err.to_string()
    }

    fn accepted(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn resync_period_is_between_one_second_and_a_day() {
        assert_eq!(accepted(&["--resync-period=1s"]).resync_period, Duration::from_secs(1));
        assert_eq!(accepted(&["--resync-period=24h"]).resync_period, Duration::from_secs(86_400));
        assert_eq!(accepted(&["--resync-period=1h30m"]).resync_period, Duration::from_secs(5_400));
        let message = refused(&["--resync-period=0s"]);
        assert!(message.contains("--resync-period (RESYNC_PERIOD) must be between 1s and 24h, got 0s"), "{message}");
        assert!(message.contains("re-reads AWS"), "{message}");
        for text in ["0", "999ms"] {
            let message = refused(&["--resync-period", text]);
            assert!(message.contains(&format!("must be between 1s and 24h, got {text}; a shorter")), "{message}");
        }
        for text in ["24h1s", "2d"] {
            let message = refused(&["--resync-period", text]);
            assert!(message.contains(&format!("must be between 1s and 24h, got {text}")), "{message}");
            assert!(!message.contains("shorter"), "the reason is for too short periods: {message}");
        }
        let message = refused(&["--resync-period=often"]);
        assert!(message.contains("--resync-period (RESYNC_PERIOD) must be a duration such as 30s"), "{message}");
    }

    #[test]
    fn lease_duration_is_between_three_seconds_and_ten_minutes() {
        assert_eq!(accepted(&["--lease-duration=3s"]).lease_duration, Duration::from_secs(3));
        assert_eq!(accepted(&["--lease-duration=10m"]).lease_duration, Duration::from_secs(600));
        for text in ["2999ms", "0s", "601s"] {
            let message = refused(&["--lease-duration", text]);
            assert!(
                message.contains(&format!("--lease-duration (LEASE_DURATION) must be between 3s and 10m, got {text}")),
                "{message}"
            );
        }
    }

    #[test]
    fn shutdown_timeout_may_be_zero_but_not_above_ten_minutes() {
        assert_eq!(accepted(&["--shutdown-timeout=0s"]).shutdown_timeout, Duration::ZERO);
        assert_eq!(accepted(&["--shutdown-timeout=10m"]).shutdown_timeout, Duration::from_secs(600));
        let message = refused(&["--shutdown-timeout=10m1s"]);
        assert!(
            message.contains("--shutdown-timeout (SHUTDOWN_TIMEOUT) must be between 0s and 10m, got 10m1s"),
            "{message}"
        );
    }

    #[test]
    fn concurrency_is_between_one_and_sixty_four() {
        assert_eq!(accepted(&["--concurrency=1"]).concurrency, 1);
        assert_eq!(accepted(&["--concurrency=64"]).concurrency, 64);
        for text in ["0", "65", "-1", "two"] {
            let message = refused(&["--concurrency", text]);
            assert!(
                message.contains(&format!(
                    "--concurrency (RECONCILE_CONCURRENCY) must be a whole number between 1 and 64, got {text}"
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn aws_rps_is_zero_or_a_finite_rate_up_to_a_hundred() {
        assert_eq!(accepted(&["--aws-rps=0"]).aws_rps, 0.0, "0 turns pacing off (benchmarks, e2e)");
        assert_eq!(accepted(&["--aws-rps=0.1"]).aws_rps, 0.1);
        assert_eq!(accepted(&["--aws-rps=50"]).aws_rps, 50.0, "the emulator stack uses 50");
        assert_eq!(accepted(&["--aws-rps=100"]).aws_rps, 100.0);
        for text in ["-1", "-0.5", "0.09", "100.5", "NaN", "inf", "-inf", "fast"] {
            // To clap, `-inf` looks like a flag, not a negative number: it needs the `=` form.
            let message = refused(&[&format!("--aws-rps={text}")]);
            assert!(
                message.contains(&format!(
                    "--aws-rps (AWS_RATE_LIMIT_RPS) must be 0 (no pacing) or a number between 0.1 and 100, got {text}"
                )),
                "{message}"
            );
            assert!(message.contains("10 calls per second per account"), "{message}");
        }
    }

    #[test]
    fn aws_burst_is_between_one_and_a_hundred() {
        assert_eq!(accepted(&["--aws-burst=1"]).aws_burst, 1);
        assert_eq!(accepted(&["--aws-burst=100"]).aws_burst, 100);
        for text in ["0", "101", "-1"] {
            let message = refused(&["--aws-burst", text]);
            assert!(
                message.contains(&format!(
                    "--aws-burst (AWS_RATE_LIMIT_BURST) must be a whole number between 1 and 100, got {text}"
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn reference_kinds_follow_the_enabled_providers() {
        use crate::references::RefKind;
        assert_eq!(accepted(&[]).reference_kinds(), RefKind::ALL);
        assert_eq!(accepted(&["--references=ack"]).reference_kinds(), [RefKind::Ack]);
        assert_eq!(
            accepted(&["--references", "crossplane"]).reference_kinds(),
            [RefKind::Crossplane, RefKind::CrossplaneNamespaced]
        );
        assert_eq!(accepted(&["--references=none"]).reference_kinds(), []);
        assert!(!accepted(&[]).allow_cluster_scoped_refs);
        assert!(accepted(&["--allow-cluster-scoped-refs=true"]).allow_cluster_scoped_refs);
    }

    #[test]
    fn export_is_a_subcommand_with_safe_defaults() {
        let args = accepted(&["export", "--api-id", "a1", "--namespace", "team-a"]);
        let Some(Command::Export(export)) = args.command else { panic!("export parsed") };
        assert_eq!(export.api_id, "a1");
        assert_eq!(export.namespace.as_deref(), Some("team-a"));
        assert_eq!(export.deletion_policy, crate::export::ExportDeletionPolicy::Retain);
        assert!(!export.observe);
        let args =
            accepted(&["export", "--api-id=a1", "--integration-id=i1", "--observe", "--deletion-policy", "Delete"]);
        let Some(Command::Export(export)) = args.command else { panic!("export parsed") };
        assert_eq!(export.integration_id.as_deref(), Some("i1"));
        assert!(export.observe);
        assert_eq!(export.deletion_policy, crate::export::ExportDeletionPolicy::Delete);
        assert!(Args::try_parse_from(["x", "export"]).is_err(), "--api-id is required");
        assert!(accepted(&[]).command.is_none(), "no subcommand runs the operator");
    }

    #[test]
    fn values_used_by_the_tests_the_bench_and_the_scripts_stay_valid() {
        // tests/e2e.rs, tests/operability.rs, tests/support/stack.rs, bench/, scripts/run-local.sh.
        for text in ["1s", "30s", "10m", "1h"] {
            accepted(&["--resync-period", text]);
        }
        for text in ["3s", "15s", "30s"] {
            accepted(&["--lease-duration", text]);
        }
        accepted(&["--aws-rps=0", "--aws-burst=1", "--concurrency=8"]);
        accepted(&["--aws-rps=10", "--aws-burst=10"]);
        accepted(&["--aws-rps=50", "--aws-burst=50"]);
    }
}
