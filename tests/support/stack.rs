//! The whole local stack for end-to-end tests: the Kubernetes API emulator (in this process),
//! moto (a process) with a WebSocket API and integration, and the real operator binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use integration_response_operator::crd::IntegrationResponse;
use kube::api::{Api, PostParams};
use kube::{Client, Config};
use kube_emulator::Emulator;

use super::moto::{Moto, free_port};

pub struct Stack {
    pub emulator: Emulator,
    pub moto: Moto,
    pub api_id: String,
    pub integration_id: String,
    pub client: Client,
    dir: PathBuf,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with_crd(true).await
    }

    /// `with_crd: false` starts an API server on which the CRD is not installed yet.
    pub async fn start_with_crd(with_crd: bool) -> Self {
        Self::start_with_crds(with_crd, &[]).await
    }

    /// With other CRDs installed too (the fixtures of other controllers' kinds).
    pub async fn start_with_crds(with_crd: bool, extra: &[&Path]) -> Self {
        let crd = crd_path();
        let mut crds: Vec<&Path> = if with_crd { vec![crd.as_path()] } else { vec![] };
        crds.extend(extra);
        let emulator = Emulator::start(&crds).await.expect("emulator starts");
        let moto = Moto::start();
        let (api_id, integration_id) = moto.websocket_integration().await;
        let dir = std::env::temp_dir().join(format!("iro-e2e-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        emulator.write_kubeconfig(&dir.join("kubeconfig")).unwrap();
        let client = Client::try_from(Config::new(emulator.url().parse().unwrap())).unwrap();
        Self { emulator, moto, api_id, integration_id, client, dir }
    }

    /// The kubeconfig that points kubectl (or any client) at the emulator.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn api(&self) -> Api<IntegrationResponse> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Starts the operator with the stack's settings plus `extra` environment.
    pub fn operator(&self, extra: &[(&str, &str)]) -> Operator {
        let admin_port = free_port();
        let log = self.dir.join(format!("operator-{admin_port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_integration-response-operator"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("AWS_ENDPOINT_URL_APIGATEWAYV2", &self.moto.endpoint)
            // IAMRoleSelectors' roles are assumed with moto's STS.
            .env("AWS_ENDPOINT_URL_STS", &self.moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("RESYNC_PERIOD", "1h")
            .env("AWS_RATE_LIMIT_RPS", "50")
            .env("AWS_RATE_LIMIT_BURST", "50")
            .env("RUST_LOG", std::env::var("E2E_RUST_LOG").unwrap_or("info,integration_response_operator=debug".into()))
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        for (key, value) in extra {
            command.env(key, value);
        }
        let child = command.spawn().expect("operator binary starts");
        Operator { child, admin_port, log }
    }

    pub async fn apply(&self, object: &IntegrationResponse) -> IntegrationResponse {
        self.api().create(&PostParams::default(), object).await.expect("create CR")
    }

    /// Integration responses moto holds for the stack's integration.
    pub async fn moto_responses(&self) -> Vec<aws_sdk_apigatewayv2::types::IntegrationResponse> {
        self.moto
            .client()
            .await
            .get_integration_responses()
            .api_id(&self.api_id)
            .integration_id(&self.integration_id)
            .send()
            .await
            .expect("list in moto")
            .items
            .unwrap_or_default()
    }

    pub fn cr(&self, name: &str) -> IntegrationResponse {
        super::integration_response(name, &self.api_id, &self.integration_id)
    }
}

pub fn crd_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/integrationresponses.apigatewayv2.aws.operator.rs.yaml")
}

pub struct Operator {
    child: Child,
    pub admin_port: u16,
    log: PathBuf,
}

impl Operator {
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit; `None` if it is still running after `timeout`. Async: the
    /// emulator runs on the test's runtime and must keep serving meanwhile.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn http_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.admin_port)).await else {
            return (0, String::new());
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (code, body)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` with `what`
/// and the operator's log.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, operator: Option<&Operator>, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            let logs = operator.map(Operator::logs).unwrap_or_default();
            let tail: String =
                logs.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            panic!("timed out after {timeout:?} waiting for {what}\n--- operator log (tail) ---\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long end-to-end waits last before failing with the operator's log.
pub const WAIT: Duration = Duration::from_secs(30);

/// Ready=True for the object's current generation.
pub fn ready(object: &IntegrationResponse) -> bool {
    let generation = object.metadata.generation;
    object.status.as_ref().is_some_and(|s| {
        s.observed_generation == generation && s.condition("Ready").is_some_and(|c| c.status == "True")
    })
}

pub async fn wait_ready(stack: &Stack, name: &str, operator: &Operator) -> IntegrationResponse {
    let api = stack.api();
    eventually(WAIT, &format!("{name} to be Ready"), Some(operator), || {
        let api = api.clone();
        async move { api.get(name).await.ok().filter(ready) }
    })
    .await
}

/// Every Event recorded in the `default` namespace.
pub async fn events(stack: &Stack) -> Vec<k8s_openapi::api::events::v1::Event> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(stack.client.clone(), "default");
    api.list(&kube::api::ListParams::default()).await.expect("list Events").items
}
