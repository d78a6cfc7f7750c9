//! An in-process stand-in for API Gateway V2's integration-response calls, served over HTTP on
//! 127.0.0.1 in API Gateway's restJson1 shape, so the operator process runs its real SDK client
//! against it. It exists for runs too large for moto (about 170 calls per second here): it
//! answers in microseconds, keeps its state in memory, and knows only the integrations the bench
//! registers. Errors carry `x-amzn-ErrorType`, as API Gateway's do.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// (API id, integration id) → response id → the response as API Gateway answers it.
type Responses = HashMap<(String, String), BTreeMap<String, Value>>;

#[derive(Default)]
struct State {
    responses: Responses,
    next_id: u64,
}

pub struct FakeApiGateway {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

struct Reply {
    status: u16,
    error_type: Option<&'static str>,
    body: Value,
}

impl Reply {
    fn ok(status: u16, body: Value) -> Self {
        Self { status, error_type: None, body }
    }

    fn error(status: u16, error_type: &'static str, message: String) -> Self {
        Self { status, error_type: Some(error_type), body: json!({"message": message}) }
    }
}

impl FakeApiGateway {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake API Gateway");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Self { endpoint, state }
    }

    /// Makes `count` integrations on one API known; returns their ids.
    pub fn integrations(&self, count: usize) -> (String, Vec<String>) {
        let mut state = self.state.lock().unwrap();
        let api = "benchapi".to_owned();
        let ids: Vec<String> = (0..count).map(|i| format!("int{i:06}")).collect();
        for id in &ids {
            state.responses.entry((api.clone(), id.clone())).or_default();
        }
        (api, ids)
    }
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if stream.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let reply = answer(&state, method, target, &body);
        let text = if reply.status == 204 { String::new() } else { reply.body.to_string() };
        let mut head = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-amzn-requestid: fake\r\n",
            reply.status,
            text.len()
        );
        if let Some(error_type) = reply.error_type {
            head += &format!("x-amzn-errortype: {error_type}\r\n");
        }
        head += "\r\n";
        let stream = stream.get_mut();
        if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn answer(state: &Mutex<State>, method: &str, target: &str, body: &[u8]) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query: HashMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let body: Map<String, Value> = serde_json::from_slice(body).unwrap_or_default();
    let mut state = state.lock().unwrap();
    match segments.as_slice() {
        ["v2", "apis", api] if method == "GET" => Reply::ok(
            200,
            json!({"apiId": api, "name": "bench", "protocolType": "WEBSOCKET",
                   "routeSelectionExpression": "$request.body.action"}),
        ),
        ["v2", "apis", api, "integrations", integration, "integrationresponses", rest @ ..] => {
            let key = (api.to_string(), integration.to_string());
            let State { responses, next_id } = &mut *state;
            let Some(responses) = responses.get_mut(&key) else {
                return Reply::error(404, "NotFoundException", format!("Invalid Integration identifier {integration}"));
            };
            match (method, rest) {
                ("GET", []) => {
                    let start: usize = query.get("nextToken").and_then(|t| t.parse().ok()).unwrap_or(0);
                    let max: usize = query.get("maxResults").and_then(|m| m.parse().ok()).unwrap_or(usize::MAX);
                    let items: Vec<&Value> = responses.values().skip(start).take(max).collect();
                    let mut page = json!({"items": items});
                    if start.saturating_add(max) < responses.len() {
                        page["nextToken"] = json!((start + max).to_string());
                    }
                    Reply::ok(200, page)
                }
                ("POST", []) => {
                    let wanted = body.get("integrationResponseKey").cloned().unwrap_or_default();
                    if responses.values().any(|r| r["integrationResponseKey"] == wanted) {
                        return Reply::error(409, "ConflictException", format!("Response key {wanted} exists"));
                    }
                    *next_id += 1;
                    let id = format!("r{next_id:07}");
                    let mut response = body;
                    response.insert("integrationResponseId".into(), json!(id));
                    let response = Value::Object(response);
                    responses.insert(id, response.clone());
                    Reply::ok(201, response)
                }
                (_, [id]) => {
                    let Some(response) = responses.get_mut(*id) else {
                        return Reply::error(
                            404,
                            "NotFoundException",
                            format!("Invalid IntegrationResponse identifier {id}"),
                        );
                    };
                    match method {
                        "GET" => Reply::ok(200, response.clone()),
                        "PATCH" => {
                            let fields = response.as_object_mut().unwrap();
                            for (name, value) in body {
                                let empty = value.as_object().is_some_and(Map::is_empty) || value == json!("");
                                if empty {
                                    fields.remove(&name);
                                } else {
                                    fields.insert(name, value);
                                }
                            }
                            Reply::ok(200, response.clone())
                        }
                        "DELETE" => {
                            responses.remove(*id);
                            Reply::ok(204, json!({}))
                        }
                        _ => Reply::error(400, "BadRequestException", format!("{method} {path}")),
                    }
                }
                _ => Reply::error(400, "BadRequestException", format!("{method} {path}")),
            }
        }
        _ => Reply::error(404, "NotFoundException", format!("{method} {path}")),
    }
}
