//! Benchmarks the release operator binary against the Kubernetes API emulator (in this process)
//! and moto (or, with `--aws fake`, an in-process stand-in for API Gateway that answers in
//! microseconds, for sizes moto cannot converge in reasonable time), and prints a table. Run with
//! `bench/run.sh`, which builds the release binary first.
//!
//! Figures: apply-to-Ready latency, time for N objects to become Ready (pacing off and on),
//! AWS calls and Kubernetes writes during one steady-state resync, resident memory (peak and
//! steady), CPU per resync, start-up time with N existing objects, binary size.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_apigatewayv2::types::{IntegrationType, ProtocolType};
use clap::Parser;
use kube_emulator::Emulator;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

mod fake_aws;
use fake_aws::FakeApiGateway;

#[derive(Parser)]
struct Args {
    /// Object counts for the "N at once" runs.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    objects: Vec<usize>,
    /// AWS pacing for the "N at once" runs, requests per second (0 = off).
    #[arg(long, value_delimiter = ',', default_value = "0,10")]
    rps: Vec<f64>,
    /// Skip paced runs that would need more than this many seconds at their rate.
    #[arg(long, default_value_t = 400)]
    max_paced_seconds: u64,
    /// Objects share integrations in groups of this size.
    #[arg(long, default_value_t = 100)]
    per_integration: usize,
    /// The operator binary (a release build).
    #[arg(long, default_value = "target/release/integration-response-operator")]
    operator: PathBuf,
    #[arg(long, default_value = "crds/integrationresponses.apigatewayv2.aws.operator.rs.yaml")]
    crd: PathBuf,
    /// Extra environment for the operator, KEY=VALUE (e.g. MALLOC_ARENA_MAX=2).
    #[arg(long = "operator-env", value_parser = parse_env)]
    operator_env: Vec<(String, String)>,
    /// What answers the operator's AWS calls: `moto` (one moto_server process), or `fake` (an
    /// in-process stand-in for API Gateway's integration-response calls, for 100,000 objects).
    #[arg(long, default_value = "moto", value_parser = ["moto", "fake"])]
    aws: String,
    /// The resync period of the restarted operator, whose steady resync is measured. Larger
    /// installs need longer: every object's first resync after start-up must finish within it.
    #[arg(long, default_value_t = 30)]
    resync_seconds: u64,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{text}: expected KEY=VALUE"))
}

/// `--operator-env`, for every operator the bench starts.
static EXTRA_ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Moto {
    /// Killed on drop.
    _child: Child,
    endpoint: String,
    client: aws_sdk_apigatewayv2::Client,
}

impl Moto {
    async fn start() -> Self {
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = free_port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("moto_server starts (pip install 'moto[server]')");
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_apigatewayv2::config::Credentials::new("t", "t", None, None, "bench"))
            .load()
            .await;
        Self { _child: child, endpoint, client: aws_sdk_apigatewayv2::Client::new(&config) }
    }

    /// One WebSocket API with `count` MOCK integrations.
    async fn integrations(&self, count: usize) -> (String, Vec<String>) {
        let api = self
            .client
            .create_api()
            .name("bench")
            .protocol_type(ProtocolType::Websocket)
            .route_selection_expression("$request.body.action")
            .send()
            .await
            .unwrap();
        let api_id = api.api_id().unwrap().to_owned();
        let mut ids = Vec::new();
        for _ in 0..count {
            let integration = self
                .client
                .create_integration()
                .api_id(&api_id)
                .integration_type(IntegrationType::Mock)
                .send()
                .await
                .unwrap();
            ids.push(integration.integration_id().unwrap().to_owned());
        }
        (api_id, ids)
    }
}

/// Whatever answers the operator's AWS calls.
enum Aws {
    Moto(Moto),
    Fake(FakeApiGateway),
}

impl Aws {
    async fn start(kind: &str) -> Self {
        match kind {
            "fake" => Self::Fake(FakeApiGateway::start().await),
            _ => Self::Moto(Moto::start().await),
        }
    }

    fn endpoint(&self) -> &str {
        match self {
            Self::Moto(moto) => &moto.endpoint,
            Self::Fake(fake) => &fake.endpoint,
        }
    }

    /// One WebSocket API with `count` integrations.
    async fn integrations(&self, count: usize) -> (String, Vec<String>) {
        match self {
            Self::Moto(moto) => moto.integrations(count).await,
            Self::Fake(fake) => fake.integrations(count),
        }
    }
}

struct Operator {
    child: Child,
    admin_port: u16,
}

impl Operator {
    fn start(binary: &Path, kubeconfig: &Path, moto: &str, rps: f64, resync: &str) -> Self {
        let admin_port = free_port();
        let extra = EXTRA_ENV.get().cloned().unwrap_or_default();
        let child = Command::new(binary)
            .env_clear()
            .envs(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("AWS_ENDPOINT_URL_APIGATEWAYV2", moto)
            .env("AWS_ACCESS_KEY_ID", "t")
            .env("AWS_SECRET_ACCESS_KEY", "t")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("AWS_RATE_LIMIT_RPS", rps.to_string())
            .env("AWS_RATE_LIMIT_BURST", if rps > 0.0 { (rps as u32).max(1).to_string() } else { "1".into() })
            .env("RESYNC_PERIOD", resync)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("operator binary starts");
        Self { child, admin_port }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// (current resident memory, peak resident memory) in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// User plus system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        ticks / 100.0
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.admin_port)).await else {
            return (0, String::new());
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).await.is_err() {
            return (0, String::new());
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response).await;
        let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (code, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
    }

    async fn wait_ready(&self) -> Duration {
        let started = Instant::now();
        while self.get("/readyz").await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        started.elapsed()
    }

    /// Sum of `integration_response_operator_aws_calls_total` over all labels.
    async fn aws_calls(&self) -> u64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .filter(|l| l.starts_with("integration_response_operator_aws_calls_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

fn object(name: &str, api_id: &str, integration_id: &str, key: &str) -> Value {
    json!({
        "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
        "kind": "IntegrationResponse",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "apiId": api_id, "integrationId": integration_id, "integrationResponseKey": key,
            "templateSelectionExpression": "$integration.response.statuscode",
            "responseTemplates": {"application/json": "{\"error\": \"$context.error.message\"}"},
            "responseParameters": {"method.response.header.X-Error": "'1'"},
        },
    })
}

fn ready_count(emulator: &Emulator) -> usize {
    emulator
        .list("integrationresponses", "default")
        .iter()
        .filter(|o| {
            o["status"]["observedGeneration"] == o["metadata"]["generation"]
                && o["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
        .count()
}

/// Kubernetes writes the operator made (everything but reads and Events).
fn kube_writes(emulator: &Emulator) -> u64 {
    ["patch", "update", "create", "delete"]
        .iter()
        .flat_map(|verb| {
            ["integrationresponses", "integrationresponses/status"].map(|r| emulator.request_count(verb, r))
        })
        .sum()
}

struct Stack {
    emulator: Emulator,
    aws: Aws,
    kubeconfig: PathBuf,
    _dir: PathBuf,
}

async fn stack(crd: &Path, aws: &str) -> Stack {
    let emulator = Emulator::start(&[crd]).await.unwrap();
    let dir = std::env::temp_dir().join(format!("iro-bench-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).unwrap();
    Stack { emulator, aws: Aws::start(aws).await, kubeconfig, _dir: dir }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    EXTRA_ENV.set(args.operator_env.clone()).expect("set once");
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |name: String, value: String| {
        println!("{name:<64} {value}");
        rows.push((name, value));
    };
    let size = std::fs::metadata(&args.operator).expect("release binary (run bench/run.sh)").len();
    row("release binary size".into(), format!("{:.1} MiB", size as f64 / 1048576.0));

    // One object at a time: apply to Ready.
    {
        let s = stack(&args.crd, &args.aws).await;
        let (api_id, integrations) = s.aws.integrations(1).await;
        let operator = Operator::start(&args.operator, &s.kubeconfig, s.aws.endpoint(), 0.0, "10m");
        operator.wait_ready().await;
        row("resident memory with no objects, after start-up".into(), {
            let (now, peak) = operator.memory_kib();
            format!("{:.1} MiB (peak {:.1} MiB)", now as f64 / 1024.0, peak as f64 / 1024.0)
        });
        let mut samples = Vec::new();
        for i in 0..7 {
            let started = Instant::now();
            s.emulator
                .create(
                    "integrationresponses",
                    "default",
                    object(&format!("one-{i}"), &api_id, &integrations[0], &format!("/{i}/")),
                )
                .unwrap();
            while ready_count(&s.emulator) <= i {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples.push(started.elapsed());
        }
        row(
            "apply to Ready, one object (median of 7)".into(),
            format!("{:.0} ms", median(samples).as_secs_f64() * 1000.0),
        );
    }

    for &n in &args.objects {
        for &rps in &args.rps {
            if rps > 0.0 {
                // A lookup and a create per object at least; skip runs that cannot fit the budget.
                let ideal = (2 * n) as f64 / rps;
                if ideal > args.max_paced_seconds as f64 {
                    row(
                        format!("{n} objects at once, pacing {rps}/s"),
                        format!("skipped (ideal {ideal:.0} s > --max-paced-seconds)"),
                    );
                    continue;
                }
            }
            let s = stack(&args.crd, &args.aws).await;
            let groups = n.div_ceil(args.per_integration);
            let (api_id, integrations) = s.aws.integrations(groups).await;
            // Converge with the default resync (10 min), so only the work of converging counts.
            let operator = Operator::start(&args.operator, &s.kubeconfig, s.aws.endpoint(), rps, "10m");
            operator.wait_ready().await;
            let started = Instant::now();
            for i in 0..n {
                let integration = &integrations[i / args.per_integration];
                let name = format!("o{i:05}");
                s.emulator
                    .create("integrationresponses", "default", object(&name, &api_id, integration, &format!("/{i}/")))
                    .unwrap();
            }
            let cpu_at_start = operator.cpu_seconds();
            let mut peak_seen = 0;
            loop {
                peak_seen = peak_seen.max(operator.memory_kib().1);
                if ready_count(&s.emulator) == n {
                    break;
                }
                // Counting reads every object from the emulator, under its lock: not too often.
                tokio::time::sleep(Duration::from_millis((n as u64 / 50).max(100))).await;
            }
            let took = started.elapsed();
            let label = if rps > 0.0 { format!("pacing {rps}/s") } else { "pacing off".into() };
            let calls = operator.aws_calls().await;
            let cpu = operator.cpu_seconds() - cpu_at_start;
            let mut value = format!(
                "{:.1} s, {calls} AWS calls ({:.2}/object), operator CPU {cpu:.1} s",
                took.as_secs_f64(),
                calls as f64 / n as f64
            );
            if rps > 0.0 {
                // The fewest calls that can converge N new objects: a lookup and a create each.
                let ideal = (2 * n) as f64 / rps;
                value += &format!("; ideal {ideal:.1} s, ratio {:.2}", took.as_secs_f64() / ideal);
            }
            row(format!("{n} objects at once, {label}: all Ready"), value);
            let peak = peak_seen.max(operator.memory_kib().1);
            drop(operator);

            // A restart with a short resync: start-up with N existing objects, then one
            // resync of every object once they sit on their integrations' slots.
            let resync = Duration::from_secs(args.resync_seconds);
            let restarted = Operator::start(
                &args.operator,
                &s.kubeconfig,
                s.aws.endpoint(),
                rps,
                &format!("{}s", args.resync_seconds),
            );
            let startup = restarted.wait_ready().await;
            row(
                format!("{n} existing objects, {label}: start-up until /readyz"),
                format!("{} ms", startup.as_millis()),
            );
            // Every object's first resync comes within 1.5 periods, on its integration's slot;
            // after that, a window just under one period holds one resync of every object.
            tokio::time::sleep(resync * 3 / 2 + Duration::from_secs(1)).await;
            let (calls_before, writes_before, cpu_before) =
                (restarted.aws_calls().await, kube_writes(&s.emulator), restarted.cpu_seconds());
            tokio::time::sleep(resync - Duration::from_secs(1)).await;
            let calls = restarted.aws_calls().await - calls_before;
            let writes = kube_writes(&s.emulator) - writes_before;
            let cpu = restarted.cpu_seconds() - cpu_before;
            let (steady, peak_after_restart) = restarted.memory_kib();
            row(
                format!("{n} objects, {label}: one steady resync"),
                format!(
                    "{calls} AWS calls ({:.2}/object, {:.2}/integration), {writes} Kubernetes writes, {cpu:.2} CPU s",
                    calls as f64 / n as f64,
                    calls as f64 / groups as f64
                ),
            );
            row(
                format!("{n} objects, {label}: resident memory"),
                format!(
                    "peak {:.1} MiB converging; after a restart: peak {:.1} MiB, {:.1} MiB after one resync",
                    peak as f64 / 1024.0,
                    peak_after_restart as f64 / 1024.0,
                    steady as f64 / 1024.0
                ),
            );
        }
    }
    println!("\n{} figures", rows.len());
}
