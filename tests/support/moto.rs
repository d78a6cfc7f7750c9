//! Starts a real `moto_server` on a free 127.0.0.1 port for one test binary, and makes the
//! WebSocket API and MOCK integration that integration responses need.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_apigatewayv2::Client;
use aws_sdk_apigatewayv2::config::{Credentials, Region};
use aws_sdk_apigatewayv2::types::{IntegrationType, ProtocolType};

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Panics with install advice when moto is missing: a test that silently skips would count
    /// as passing.
    pub fn start() -> Self {
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = free_port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start {program} ({err}); install it with: pip install 'moto[server]'")
            });
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {endpoint} within 30s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, endpoint }
    }

    /// An SDK config loader pointed at this moto, with dummy credentials.
    pub fn loader(&self) -> aws_config::ConfigLoader {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
    }

    pub async fn client(&self) -> Client {
        Client::new(&self.loader().load().await)
    }

    /// A WebSocket API with one non-proxy (MOCK) integration: (api id, integration id).
    pub async fn websocket_integration(&self) -> (String, String) {
        websocket_integration_with(&self.client().await).await
    }
}

/// A WebSocket API with one MOCK integration, made with `client` (whose credentials decide the
/// account): (api id, integration id).
pub async fn websocket_integration_with(client: &Client) -> (String, String) {
    let api = client
        .create_api()
        .name("chat")
        .protocol_type(ProtocolType::Websocket)
        .route_selection_expression("$request.body.action")
        .send()
        .await
        .expect("create API in moto");
    let api_id = api.api_id().unwrap().to_owned();
    let integration = client
        .create_integration()
        .api_id(&api_id)
        .integration_type(IntegrationType::Mock)
        .send()
        .await
        .expect("create integration in moto");
    (api_id, integration.integration_id().unwrap().to_owned())
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
