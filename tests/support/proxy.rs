//! A TCP proxy on a free 127.0.0.1 port in front of moto, switchable at run time between
//! forwarding (`Up`), a dead service (`Down`) and a throttling one (`Throttle`), that records
//! every HTTP request it sees so tests can count AWS calls per integration and time them.
//!
//! - `Up`: bytes are piped both ways unchanged; request heads are parsed as they pass from
//!   client to server (bodies are skipped by `Content-Length`; the SDK sends no chunked bodies to
//!   moto) so that every request of a keep-alive connection is recorded.
//! - `Down`: the request head is read and recorded, then the connection is reset (RST), as a
//!   load balancer in front of a dead service would do. A keep-alive connection opened while up
//!   is cut the same way at its next request.
//! - `Throttle`: every request is answered `429` with API Gateway's `TooManyRequestsException`
//!   and `Connection: close`.
//!
//! The mode is looked at once per request, when its head has arrived.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::moto::Moto;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Up,
    Down,
    Throttle,
}

/// One HTTP request the proxy saw.
#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    /// Time since the proxy started.
    pub elapsed: Duration,
    pub method: String,
    pub path: String,
    /// `x-amz-target`, for JSON protocols (API Gateway V2 is restJson1 and has none).
    pub target: Option<String>,
    /// The mode the proxy was in when the request arrived.
    pub mode: Mode,
}

impl Request {
    /// The `{integrationId}` of `/v2/apis/{apiId}/integrations/{integrationId}/...`.
    pub fn integration_id(&self) -> Option<&str> {
        let path = self.path.split('?').next().unwrap_or_default();
        let mut parts = path.trim_start_matches('/').split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("v2"), Some("apis"), Some(_), Some("integrations"), Some(id)) if !id.is_empty() => Some(id),
            _ => None,
        }
    }

    /// A call on the integration's responses (`.../integrationresponses[/{id}]`).
    pub fn is_integration_responses(&self) -> bool {
        self.path.split('?').next().unwrap_or_default().split('/').nth(6) == Some("integrationresponses")
    }

    /// GetIntegrationResponses: the list that starts every create attempt.
    pub fn is_list_responses(&self) -> bool {
        self.method == "GET"
            && self.path.split('?').next().unwrap_or_default().trim_end_matches('/').ends_with("/integrationresponses")
    }
}

struct Shared {
    mode: Mutex<Mode>,
    log: Mutex<Vec<Request>>,
    started: Instant,
    upstream: SocketAddr,
}

impl Shared {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    fn record(&self, head: &Head, mode: Mode) {
        let at = Instant::now();
        let request = Request {
            at,
            elapsed: at - self.started,
            method: head.method.clone(),
            path: head.path.clone(),
            target: head.target.clone(),
            mode,
        };
        self.log.lock().unwrap().push(request);
    }
}

pub struct Proxy {
    pub endpoint: String,
    pub port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy in `Up` mode in front of `moto`.
    pub async fn in_front_of(moto: &Moto) -> Self {
        let upstream = moto.endpoint.trim_start_matches("http://").parse().expect("moto endpoint is host:port");
        Self::start(upstream).await
    }

    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds a free port");
        let port = listener.local_addr().unwrap().port();
        let shared =
            Arc::new(Shared { mode: Mutex::new(Mode::Up), log: Mutex::default(), started: Instant::now(), upstream });
        let accept = tokio::spawn({
            let shared = shared.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else { continue };
                    let _ = client.set_nodelay(true);
                    tokio::spawn(connection(client, shared.clone()));
                }
            }
        });
        Self { endpoint: format!("http://127.0.0.1:{port}"), port, shared, accept }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    pub fn up(&self) {
        self.set_mode(Mode::Up);
    }

    pub fn down(&self) {
        self.set_mode(Mode::Down);
    }

    pub fn throttle(&self) {
        self.set_mode(Mode::Throttle);
    }

    pub fn started(&self) -> Instant {
        self.shared.started
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The parts of a request head the proxy needs.
struct Head {
    method: String,
    path: String,
    target: Option<String>,
    content_length: usize,
    chunked: bool,
}

fn parse_head(bytes: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let mut head = Head { method, path, target: None, content_length: 0, chunked: false };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => head.content_length = value.parse().ok()?,
            "transfer-encoding" => head.chunked = value.to_ascii_lowercase().contains("chunked"),
            "x-amz-target" => head.target = Some(value.to_owned()),
            _ => {}
        }
    }
    Some(head)
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Reads from `reader` until `buf` holds a whole request head; its length, or `None` at EOF or
/// on an error or an oversized head.
async fn read_head(reader: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = head_end(buf) {
            return Some(end);
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        match reader.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Server-to-client bytes while up, until the server closes or `stop` fires; gives the client's
/// write half back when stopped, so the proxy can still answer on it.
fn pump_responses(
    mut server: OwnedReadHalf,
    mut client: OwnedWriteHalf,
) -> (oneshot::Sender<()>, JoinHandle<Option<OwnedWriteHalf>>) {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                _ = &mut stopped => return Some(client),
                read = server.read(&mut chunk) => match read {
                    Ok(0) | Err(_) => {
                        let _ = client.shutdown().await;
                        return None;
                    }
                    Ok(n) => {
                        if client.write_all(&chunk[..n]).await.is_err() {
                            return None;
                        }
                    }
                },
            }
        }
    });
    (stop, task)
}

struct Upstream {
    writer: OwnedWriteHalf,
    stop: oneshot::Sender<()>,
    pump: JoinHandle<Option<OwnedWriteHalf>>,
}

async fn connection(client: TcpStream, shared: Arc<Shared>) {
    let (mut reader, writer) = client.into_split();
    let mut writer = Some(writer);
    let mut upstream: Option<Upstream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let Some(end) = read_head(&mut reader, &mut buf).await else { break };
        let Some(head) = parse_head(&buf[..end]) else { break };
        let mode = shared.mode();
        shared.record(&head, mode);
        if mode != Mode::Up {
            // Take the client's write half back from the response pump: the client sent a new
            // request, so it has read the whole previous response.
            if let Some(up) = upstream.take() {
                let _ = up.stop.send(());
                writer = up.pump.await.ok().flatten();
                drop(up.writer);
            }
            let Some(writer) = writer.take() else { return };
            let Ok(client) = reader.reunite(writer) else { return };
            match mode {
                Mode::Down => reset(client),
                _ => throttled(client, &buf[end..], head.content_length).await,
            }
            return;
        }
        if upstream.is_none() {
            let Ok(server) = TcpStream::connect(shared.upstream).await else { return };
            let _ = server.set_nodelay(true);
            let (server_reader, server_writer) = server.into_split();
            let Some(client_writer) = writer.take() else { return };
            let (stop, pump) = pump_responses(server_reader, client_writer);
            upstream = Some(Upstream { writer: server_writer, stop, pump });
        }
        let up = upstream.as_mut().expect("connected");
        if up.writer.write_all(&buf[..end]).await.is_err() {
            return;
        }
        buf.drain(..end);
        if head.chunked {
            // Not expected from the SDK: pipe the rest of the connection unparsed.
            let _ = up.writer.write_all(&buf).await;
            let _ = tokio::io::copy(&mut reader, &mut up.writer).await;
            return;
        }
        let mut body = head.content_length;
        let buffered = body.min(buf.len());
        if up.writer.write_all(&buf[..buffered]).await.is_err() {
            return;
        }
        buf.drain(..buffered);
        body -= buffered;
        while body > 0 {
            let mut chunk = vec![0u8; body.min(64 * 1024)];
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if up.writer.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    body -= n;
                }
            }
        }
    }
    // The client closed (or sent garbage): close towards the server too.
    if let Some(mut up) = upstream {
        let _ = up.writer.shutdown().await;
    }
}

/// Drops the connection with a reset rather than an orderly close.
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}

async fn throttled(mut client: TcpStream, buffered: &[u8], content_length: usize) {
    // Read the body first: closing with unread data would reset the connection before the
    // client has read the answer.
    let mut left = content_length.saturating_sub(buffered.len());
    let mut chunk = vec![0u8; 16 * 1024];
    while left > 0 {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
    let body = r#"{"message":"Too Many Requests"}"#;
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\n\
         Content-Type: application/json\r\n\
         x-amzn-ErrorType: TooManyRequestsException\r\n\
         x-amzn-RequestId: proxy-throttled\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
}
